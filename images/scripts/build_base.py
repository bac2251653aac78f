"""Make the local stand-in for the GPU base image, for CI and machines that cannot pull images.

1. A Debian root filesystem with Python (mmdebstrap from Debian's mirror, plus the host's extra CA
   certificates so that pip in later builds trusts this network), imported as `OS_IMAGE`.
2. The torch, torchvision (CUDA builds) and uv wheels that the base Dockerfile pins, downloaded
   by pip on the host into a cache outside the repo (~/.cache/drone-yolo-toolkit; reused when
   present, never required; `--drop-wheels` deletes them once the image is built).
3. `images/base/Dockerfile` built on top, with the wheels served to the build over HTTP from the
   docker0 bridge address (no 2.9 GB build context, no wheel layer).

Each image is labelled with a hash of its inputs, and a rebuild is skipped when that label
matches, so a second run takes a second.

    python images/scripts/build_base.py [--docker /usr/bin/docker]   # prints the base image ref
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import hashlib
import http.server
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_DOCKERFILE = REPO / "images" / "base" / "Dockerfile"
OS_IMAGE = "local/debian-python:bookworm"
BASE_IMAGE = "local/torch-base:2.14.1"
KEY_LABEL = "org.drone-yolo-toolkit.inputs"
SUITE = "bookworm"  # Python 3.11, the version of the cp311 wheels and of CI
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
OS_PACKAGES = ("python3", "python3-venv", "ca-certificates")
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
CACHE = Path(os.environ.get("DRONE_YOLO_CACHE", Path.home() / ".cache" / "drone-yolo-toolkit"))


def log(message: str) -> None:
    print(f"[base] {message}", file=sys.stderr, flush=True)


def dockerfile_pins() -> dict[str, str]:
    """The `ARG NAME=VERSION` defaults of the base Dockerfile: the one place the versions live."""
    return dict(re.findall(r"^ARG (\w+_VERSION)=(\S+)$", BASE_DOCKERFILE.read_text(), flags=re.M))


def wheel_requirements() -> list[str]:
    pins = dockerfile_pins()
    return [
        f"torch=={pins['TORCH_VERSION']}",
        f"torchvision=={pins['TORCHVISION_VERSION']}",
        f"uv=={pins['UV_VERSION']}",
    ]


def extra_ca_files() -> list[Path]:
    return sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []


def inputs_key(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


class Engine:
    """The docker client this script drives."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def run(self, *args: str, capture: bool = False) -> str:
        result = subprocess.run(
            [self.executable, *args], check=True, text=True, stdout=subprocess.PIPE if capture else None
        )
        return (result.stdout or "").strip()

    def label(self, image: str, label: str) -> str | None:
        result = subprocess.run(
            [
                self.executable,
                "image",
                "inspect",
                "--format",
                f'{{{{index .Config.Labels "{label}"}}}}',
                image,
            ],
            text=True,
            capture_output=True,
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def bridge_gateway(self) -> str:
        """The host's address on the default bridge, which build containers reach."""
        gateway = self.run(
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            capture=True,
        )
        if gateway:
            return gateway
        name = self.run(
            "network",
            "inspect",
            "bridge",
            "--format",
            '{{index .Options "com.docker.network.bridge.name"}}',
            capture=True,
        )
        return interface_ipv4(name or "docker0")


def interface_ipv4(name: str) -> str:
    """The IPv4 address of a network interface (SIOCGIFADDR), without needing iproute2."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
    return socket.inet_ntoa(packed[20:24])


def os_image_key() -> str:
    return inputs_key(SUITE, MIRROR, *OS_PACKAGES, *(path.read_bytes() for path in extra_ca_files()))


def make_os_image(engine: Engine) -> None:
    """Debian + Python as a root filesystem tarball, imported as an image."""
    key = os_image_key()
    if engine.label(OS_IMAGE, KEY_LABEL) == key:
        log(f"{OS_IMAGE} is up to date")
        return
    if not shutil.which("mmdebstrap"):
        raise SystemExit("error: mmdebstrap is not installed (apt-get install mmdebstrap)")
    hooks = []
    if extra_ca_files():
        names = " ".join(str(path) for path in extra_ca_files())
        hooks += [
            f"--customize-hook=copy-in {names} {EXTRA_CA_DIR}",
            '--customize-hook=chroot "$1" update-ca-certificates',
        ]
    with tempfile.TemporaryDirectory(prefix="drone-yolo-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        started = time.monotonic()
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(OS_PACKAGES)}",
                *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale")),
                *hooks,
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            check=True,
        )
        log(f"mmdebstrap: {time.monotonic() - started:.0f} s")
        engine.run(
            "import",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            f"LABEL {KEY_LABEL}={key}",
            str(rootfs),
            OS_IMAGE,
        )


def download_wheels(requirements: list[str]) -> Path:
    """pip-download the wheels once into the cache, one folder per requirement set."""
    folder = CACHE / "base-wheels" / inputs_key(*requirements)
    marker = folder / ".complete"
    if marker.exists():
        log(f"wheels cached in {folder}")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # No --platform/--python-version flags: with them pip drops one of torch's CUDA wheels.
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(folder), *requirements]
    subprocess.run(pip, check=True)
    marker.touch()
    log(f"pip download: {time.monotonic() - started:.0f} s")
    return folder


WHEEL_LIST = "wheels.txt"


class _WheelHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the wheel folder, plus /wheels.txt, the names of its wheels (one a line)."""

    def do_GET(self) -> None:
        if self.path != f"/{WHEEL_LIST}":
            return super().do_GET()
        body = "".join(f"{wheel.name}\n" for wheel in sorted(Path(self.directory).glob("*.whl"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve_folder(folder: Path, host: str) -> Iterator[str]:
    """An HTTP file server for the build containers, bound to the bridge address only."""
    handler = functools.partial(_WheelHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def build_base(engine: Engine, tag: str = BASE_IMAGE, drop_wheels: bool = False) -> str:
    requirements = wheel_requirements()
    make_os_image(engine)
    context = sorted(path for path in BASE_DOCKERFILE.parent.iterdir() if path.is_file())
    key = inputs_key(*(path.read_bytes() for path in context), os_image_key(), *requirements)
    if engine.label(tag, KEY_LABEL) == key:
        log(f"{tag} is up to date")
        return tag
    wheels = download_wheels(requirements)
    host = engine.bridge_gateway()
    started = time.monotonic()
    with serve_folder(wheels, host) as url:
        engine.run(
            "build",
            "--file",
            str(BASE_DOCKERFILE),
            "--build-arg",
            f"OS_IMAGE={OS_IMAGE}",
            "--build-arg",
            f"WHEELS_URL={url}",
            "--label",
            f"{KEY_LABEL}={key}",
            "--tag",
            tag,
            str(BASE_DOCKERFILE.parent),
        )
    log(f"docker build {tag}: {time.monotonic() - started:.0f} s")
    if drop_wheels:
        shutil.rmtree(wheels, ignore_errors=True)
        log(f"deleted the wheels in {wheels} (a rebuild downloads them again)")
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docker", default="docker", help="docker client (one that can use BuildKit)")
    parser.add_argument("--tag", default=BASE_IMAGE, help="name of the base image to make")
    parser.add_argument(
        "--drop-wheels", action="store_true", help="delete the ~2.9 GB of downloaded wheels once built"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DOCKER_BUILDKIT", "1")
    try:
        print(build_base(Engine(args.docker), args.tag, args.drop_wheels))
    except subprocess.CalledProcessError as exc:
        print(f"error: {exc.cmd[0]} {exc.cmd[1]} failed with exit status {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
