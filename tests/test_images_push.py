"""`make push`: to a registry named by REGISTRY (a real local registry), and the ECR path (login
token, repositories with scan on push and immutable tags) against a real moto server."""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest

from tests.fixtures_docker import BuiltImages, DockerEngine

ROOT = Path(__file__).resolve().parent.parent
PUSH = ROOT / "images" / "scripts" / "push.py"
IMAGES = ["drone-yolo-preprocess", "drone-yolo-train", "drone-yolo-inference"]


def _registry_get(registry: str, path: str, accept: str = "application/json") -> tuple[dict, dict]:
    request = urllib.request.Request(f"http://{registry}/v2/{path}", headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), dict(response.headers)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_make_push_sends_every_image_to_the_named_registry(
    docker_engine: DockerEngine, docker_images: BuiltImages, local_registry: str, tmp_path: Path
) -> None:
    command = ["make", "--no-print-directory", "push", f"REGISTRY={local_registry}"]
    command += [
        f"DOCKER={docker_engine.client}",
        f"IMAGE_TAG={docker_images.tag}",
        "GIT_DIRTY=",  # CI's checkout may be dirty; the refusal has its own test (test_images_static)
        f"PUSHED_RECORD={tmp_path / 'pushed.json'}",
    ]  # as built, whatever came since
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=3000, env=docker_engine.env
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest_types = ", ".join(
        ["application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json"]
    )
    assert json.loads((tmp_path / "pushed.json").read_text()) == {local_registry: docker_images.tag}
    for image in IMAGES:
        assert f"pushed {local_registry}/{image}:{docker_images.tag}" in done.stdout
        tags, _ = _registry_get(local_registry, f"{image}/tags/list")
        assert docker_images.tag in tags["tags"]
        _, headers = _registry_get(local_registry, f"{image}/manifests/{docker_images.tag}", manifest_types)
        # The registry holds exactly the image docker pushed: same manifest digest.
        repo_digests = docker_engine(
            "image", "inspect", "--format", "{{json .RepoDigests}}", f"{image}:{docker_images.tag}"
        )
        assert f"{local_registry}/{image}@{headers['Docker-Content-Digest']}" in json.loads(
            repo_digests.stdout
        )


def _load_push_module():
    spec = importlib.util.spec_from_file_location("images_push", PUSH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _push_dry_run(env: dict[str, str], *images: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(PUSH), "--dry-run", "--tag", "0.1.0-abc", *images]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_ecr_path_logs_in_creates_repositories_and_skips_pushed_tags(aws_env, guarded_subprocess_env) -> None:
    ecr = boto3.client("ecr")
    ecr.create_repository(repositoryName="drone-yolo-train", imageTagMutability="IMMUTABLE")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}
    ecr.put_image(repositoryName="drone-yolo-train", imageManifest=json.dumps(manifest), imageTag="0.1.0-abc")

    done = _push_dry_run(guarded_subprocess_env, "drone-yolo-preprocess", "drone-yolo-train")
    assert done.returncode == 0, done.stderr

    token = ecr.get_authorization_token()["authorizationData"][0]
    username, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    registry = token["proxyEndpoint"].removeprefix("https://")
    assert f"+ docker login --username {username} --password-stdin {registry}\n" in done.stdout
    assert password not in done.stdout + done.stderr
    assert f"+ docker push {registry}/drone-yolo-preprocess:0.1.0-abc" in done.stdout
    assert "drone-yolo-train:0.1.0-abc is already in ECR: skipped" in done.stdout
    assert f"push {registry}/drone-yolo-train" not in done.stdout

    created = ecr.describe_repositories(repositoryNames=["drone-yolo-preprocess"])["repositories"][0]
    assert created["imageScanningConfiguration"] == {"scanOnPush": True}
    assert created["imageTagMutability"] == "IMMUTABLE"
    assert _push_dry_run(guarded_subprocess_env, "drone-yolo-preprocess").returncode == 0, "a second run"


def test_ecr_errors_are_one_line_without_a_traceback(guarded_subprocess_env) -> None:
    env = {**guarded_subprocess_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
    done = _push_dry_run(env, "drone-yolo-train")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ECR:") and "Traceback" not in done.stderr


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_docker_login_with_the_ecr_token_format(
    docker_engine: DockerEngine, local_registry: str, aws_env, tmp_path: Path, monkeypatch
) -> None:
    """The login half of the ECR path for real: moto's token, decoded, logs docker in (here to
    the local registry, which accepts any credentials) without the password in argv."""
    push = _load_push_module()
    login = push.ecr_login(boto3.client("ecr"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    push.Docker(docker_engine.client).login(
        push.RegistryLogin(local_registry, login.username, login.password)
    )
    auths = json.loads((tmp_path / "docker-config" / "config.json").read_text())["auths"]
    stored = base64.b64decode(auths[local_registry]["auth"]).decode()
    assert stored == f"AWS:{login.password}"
