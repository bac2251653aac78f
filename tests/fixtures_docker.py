"""A real Docker engine, a loopback-only registry and the project's images, once per session.

CI is a fresh machine running as root, so the session installs what it lacks from Debian (docker.io,
mmdebstrap, docker-registry; one `apt-get update`), starts `dockerd` when no daemon answers and
stops it at the end (a daemon that was already running is used and left alone). Images are never
pulled: the GPU base is stood in for by `images/scripts/build_base.py` (mmdebstrap + the same
torch wheels), and the images are built from it with `make build`, as a user would. Without root
and without a reachable daemon the container tests are skipped, with the reason, except where
`DRONE_YOLO_REQUIRE_DOCKER=1` (set by `.ci/run`): there a missing engine fails the tests, so CI can
never go green with the container contract unchecked.

Containers in the tests run as an unprivileged user (see `container_user`): SageMaker itself runs
images as root, so passing as another uid shows the images do not depend on it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from yolo_core.processes import stop_process, wait_for_announced_port, wait_until_answers

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_DOCKER_ENV = "DRONE_YOLO_REQUIRE_DOCKER"
# Set by `.ci/run`: drop what only a rebuild would reuse (the base's downloaded wheels, ~2.9 GB, and
# BuildKit's pip/uv cache mounts, ~1 GB) once the images are built; a CI machine's disk may be small.
FREE_DISK_ENV = "DRONE_YOLO_FREE_DISK"


def _free_disk() -> bool:
    return os.environ.get(FREE_DISK_ENV) == "1"


def _unavailable(reason: str) -> None:
    """Skip the container tests on a developer machine; fail them where CI requires them."""
    if os.environ.get(REQUIRE_DOCKER_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_DOCKER_ENV}=1: the container tests must run here)", pytrace=False)
    pytest.skip(reason)


APT_PACKAGES = ("docker.io", "mmdebstrap", "docker-registry")
IMAGE_USER_ID = 10001  # the `yolo` account of images/Dockerfile
TARGETS = ("preprocess", "train", "inference")


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _run(command: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def _client_can_build(client: str) -> bool:
    """BuildKit through buildx, or a pre-23 client (Debian's) that has it built in."""
    if _run([client, "buildx", "version"], timeout=30).returncode == 0:
        return True
    version = _run([client, "version", "--format", "{{.Client.Version}}"], timeout=30).stdout
    major = re.match(r"(\d+)\.", version.strip())
    return bool(major) and int(major.group(1)) < 23


def _find_client() -> str | None:
    candidates = ["/usr/bin/docker", shutil.which("docker")]
    return next((c for c in candidates if c and os.access(c, os.X_OK) and _client_can_build(c)), None)


def _missing_tools() -> list[str]:
    wanted = {
        "docker.io": ("dockerd", "docker"),
        "mmdebstrap": ("mmdebstrap",),
        "docker-registry": ("docker-registry",),
    }
    return [package for package, tools in wanted.items() if not all(shutil.which(t) for t in tools)]


def _apt_install(packages: list[str], log: Path) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    with log.open("a") as out:
        for command in (
            ["apt-get", *lock, "update", "-q"],
            ["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *packages],
        ):
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=900, check=False
            )
            if done.returncode != 0:
                pytest.fail(f"{' '.join(command)} failed ({done.returncode}); see {log}")


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


@dataclass
class DockerEngine:
    """The docker client the tests drive, against a daemon that answers."""

    client: str
    log_dir: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_BUILDKIT": "1"}

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        done = _run([self.client, *args], timeout=timeout, env=self.env)
        if check and done.returncode != 0:
            output = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            pytest.fail(f"docker {' '.join(args[:3])} ... exited {done.returncode}:\n{output}")
        return done

    def run_with_input(
        self, args: list[str], data: bytes, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """A docker command fed `data` on stdin; stdout and stderr stay bytes."""
        command = [self.client, *args]
        return subprocess.run(
            command, input=data, capture_output=True, timeout=timeout, env=self.env, check=False
        )

    def answers(self) -> bool:
        return _run([self.client, "info"], timeout=30).returncode == 0

    def start_daemon(self, timeout_s: float = 90) -> None:
        log = self.log_dir / "dockerd.log"
        self.process = subprocess.Popen(
            ["dockerd", "--pidfile", str(self.log_dir / "dockerd.pid")],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop_daemon()
                pytest.fail(f"dockerd did not start:\n{_tail(log)}")
            time.sleep(0.5)

    def stop_daemon(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace_s=60, kill_wait_s=30)


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    log_dir = tmp_path_factory.mktemp("docker")
    missing = _missing_tools()
    if missing and _is_root():
        _apt_install(missing, log_dir / "apt.log")
    client = _find_client()
    if client is None:
        _unavailable(f"no docker client that can use BuildKit (install {', '.join(APT_PACKAGES)} as root)")
    engine = DockerEngine(client, log_dir)
    if not engine.answers():
        if not _is_root() or not shutil.which("dockerd"):
            _unavailable("no Docker daemon answers, and starting dockerd needs root")
        engine.start_daemon()
    try:
        yield engine
    finally:
        engine.stop_daemon()


# The registry's start-up line (at log level info) names the port the kernel picked for port 0.
REGISTRY_PORT = re.compile(r"listening on 127\.0\.0\.1:(\d+)")

REGISTRY_CONFIG = """\
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
"""


@pytest.fixture
def local_registry(docker_engine: DockerEngine) -> Iterator[str]:
    """Debian's docker-registry on loopback only, without auth, storing in a temporary folder.

    One per test, so that the gigabytes a push stores are deleted as soon as the test ends.

    (Debian's own config listens on every interface with htpasswd auth.) Docker treats
    127.0.0.0/8 registries as insecure, i.e. plain HTTP is allowed without daemon settings.
    """
    if not shutil.which("docker-registry"):
        _unavailable("docker-registry is not installed (apt-get install docker-registry)")
    with tempfile.TemporaryDirectory(prefix="drone-yolo-registry-") as tmp:
        config = Path(tmp) / "config.yml"
        config.write_text(REGISTRY_CONFIG.format(root=Path(tmp) / "storage"))
        log = Path(tmp) / "registry.log"
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=log.open("ab"), stderr=subprocess.STDOUT
        )
        try:
            try:
                port = wait_for_announced_port(log, REGISTRY_PORT, process, timeout_s=30)
                address = f"127.0.0.1:{port}"
                wait_until_answers(f"http://{address}/v2/", process, timeout_s=30)
            except RuntimeError as exc:
                pytest.fail(f"docker-registry did not start ({exc}):\n{_tail(log)}")
            yield address
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="session")
def docker_base_image(docker_engine: DockerEngine) -> str:
    """The local stand-in for the CUDA PyTorch base (skipped quickly when it is up to date)."""
    log = docker_engine.log_dir / "build_base.log"
    with log.open("w") as out:
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "images" / "scripts" / "build_base.py"),
                "--docker",
                docker_engine.client,
                *(["--drop-wheels"] if _free_disk() else []),
            ],
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
            timeout=2400,
            env=docker_engine.env,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"the base image was not built:\n{_tail(log)}")
    return done.stdout.strip().splitlines()[-1]


def make_variable(name: str, **overrides: str) -> str:
    """The value `make` computes for a Makefile variable (so the tests never duplicate it)."""
    assignments = [f"{key}={value}" for key, value in overrides.items()]
    done = _run(
        [
            "make",
            "--no-print-directory",
            "-s",
            "--eval",
            "print-%: ; @echo $($*)",
            f"print-{name}",
            *assignments,
        ],
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass(frozen=True)
class BuiltImages:
    tag: str
    commit: str
    base: str

    def ref(self, target: str) -> str:
        return f"drone-yolo-{target}:{self.tag}"


@pytest.fixture(scope="session")
def docker_images(docker_engine: DockerEngine, docker_base_image: str) -> BuiltImages:
    """Every image, built for real by `make build` on the stand-in base."""
    log = docker_engine.log_dir / "make_build.log"
    # Read once and passed on, so that a commit made during the build cannot split them.
    commit = make_variable("GIT_COMMIT")
    tag = make_variable("IMAGE_TAG", GIT_COMMIT=commit)
    settings = {
        "DOCKER": docker_engine.client,
        "BASE_IMAGE": docker_base_image,
        "GIT_COMMIT": commit,
        "IMAGE_TAG": tag,
    }
    with log.open("w") as out:
        done = subprocess.run(
            ["make", "--no-print-directory", "build", *(f"{k}={v}" for k, v in settings.items())],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=2400,
            env=docker_engine.env,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"make build failed:\n{_tail(log)}")
    if _free_disk():
        docker_engine("builder", "prune", "--force", "--filter", "type=exec.cachemount", check=False)
    return BuiltImages(tag=tag, commit=commit, base=docker_base_image)


def container_user() -> str:
    """Containers write into host folders as this uid:gid: the caller's, or the image's `yolo`
    account when the tests run as root (so that they still run the images unprivileged)."""
    if _is_root():
        return f"{IMAGE_USER_ID}:{IMAGE_USER_ID}"
    return f"{os.getuid()}:{os.getgid()}"


def hand_to_container(path: Path) -> Path:
    """Let the container user write under `path` (chown when root; already theirs otherwise)."""
    if _is_root():
        for entry in [path, *path.rglob("*")]:
            os.chown(entry, IMAGE_USER_ID, IMAGE_USER_ID, follow_symlinks=False)
    return path
