"""Push the built images to Amazon ECR, or to any registry named by REGISTRY.

ECR (the default): log Docker in with a token from `ecr:GetAuthorizationToken`, create each missing
repository with scan-on-push and immutable tags, then tag and push. An image tag carries the git
commit, so a tag that is already in an (immutable) ECR repository holds this very build and is
skipped rather than failing the push.

Any other registry (`--registry HOST[:PORT][/PATH]`, `make push REGISTRY=...`): tag and push only;
log in beforehand with `docker login` if it needs credentials.

    .venv/bin/python images/scripts/push.py --tag 0.1.0-0123abcd drone-yolo-train drone-yolo-inference

`--dry-run` does the AWS side for real (token, repositories) and prints the docker commands
instead of running them, with the password left out.

After a real push the tag is recorded per registry (pipeline/pushed_images.py), and
`python -m pipeline upsert` uses it for the config's registry unless told another tag.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError


@dataclass(frozen=True)
class RegistryLogin:
    registry: str  # host[:port], as docker names it
    username: str
    password: str


class Docker:
    """Runs docker commands, or only prints them (`dry_run`)."""

    def __init__(self, executable: str = "docker", dry_run: bool = False) -> None:
        self.executable = executable
        self.dry_run = dry_run

    def __call__(self, *args: str, stdin: str | None = None) -> None:
        command = [self.executable, *args]
        print("+", " ".join(command), flush=True)
        if not self.dry_run:
            subprocess.run(command, input=stdin, text=True, check=True)

    def login(self, login: RegistryLogin) -> None:
        """The password goes through stdin, so it is neither in argv nor in the output."""
        self("login", "--username", login.username, "--password-stdin", login.registry, stdin=login.password)


def ecr_client():
    import boto3

    from yolo_core.retry import aws_client_config

    return boto3.client("ecr", config=aws_client_config())


def ecr_login(ecr) -> RegistryLogin:
    """The registry of this account and region, and a 12-hour docker password for it."""
    data = ecr.get_authorization_token()["authorizationData"][0]
    username, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    return RegistryLogin(urlparse(data["proxyEndpoint"]).netloc, username, password)


def ensure_repository(ecr, name: str) -> bool:
    """Create the repository if it is missing (scan on push, immutable tags); True if created."""
    try:
        ecr.create_repository(
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": True},
            imageTagMutability="IMMUTABLE",
        )
    except ecr.exceptions.RepositoryAlreadyExistsException:
        return False
    print(f"created ECR repository {name} (scan on push, immutable tags)", flush=True)
    return True


def ecr_has_tag(ecr, name: str, tag: str) -> bool:
    try:
        ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        return False
    return True


def push_images(
    images: Sequence[str], tag: str, registry: str | None, docker: Docker, ecr_factory=ecr_client
) -> tuple[str, list[str]]:
    """Tag `<image>:<tag>` as `<registry>/<image>:<tag>` and push each; return the registry and
    the pushed refs."""
    ecr = None
    if not registry:
        ecr = ecr_factory()
        login = ecr_login(ecr)
        docker.login(login)
        registry = login.registry
    pushed = []
    for image in images:
        remote = f"{registry.rstrip('/')}/{image}:{tag}"
        if ecr is not None:
            ensure_repository(ecr, image)
            if ecr_has_tag(ecr, image, tag):
                print(f"{remote} is already in ECR: skipped (tags are immutable)", flush=True)
                continue
        docker("tag", f"{image}:{tag}", remote)
        docker("push", remote)
        pushed.append(remote)
    return registry, pushed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", nargs="+", help="local image names (repositories), pushed as NAME:TAG")
    parser.add_argument("--tag", required=True, help="the local tag to push (make build's IMAGE_TAG)")
    parser.add_argument("--registry", default="", help="push here instead of ECR (host[:port][/path])")
    parser.add_argument("--docker", default="docker", help="the docker client to run")
    parser.add_argument("--dry-run", action="store_true", help="print the docker commands only")
    parser.add_argument("--record", type=Path, default=None, help="where the pushed tag is recorded")
    args = parser.parse_args(argv)
    docker = Docker(args.docker, dry_run=args.dry_run)
    try:
        registry, pushed = push_images(args.images, args.tag, args.registry or None, docker)
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(exc.cmd[:2])} failed with exit status {exc.returncode}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"error: ECR: {exc}", file=sys.stderr)
        return 1
    for ref in pushed:
        print(f"pushed {ref}")
    if not args.dry_run:
        from pipeline.pushed_images import RECORD, record_push

        record_push(registry, args.tag, args.record or RECORD)
        print(f"recorded {registry} tag {args.tag} for `python -m pipeline upsert`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
