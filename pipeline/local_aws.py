"""A moto server on loopback: the AWS stand-in for the demo and the tests.

It is a real HTTP server (`moto_server -H 127.0.0.1 -p PORT`) in its own process; every boto3
client reaches it through `AWS_ENDPOINT_URL`. Its state lives in memory and ends with it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from yolo_core.processes import stop_process

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moto_command() -> list[str]:
    beside_python = Path(sys.executable).parent / "moto_server"
    found = beside_python if beside_python.exists() else shutil.which("moto_server")
    if not found:
        raise RuntimeError("moto_server is not installed (pip install 'moto[server]')")
    return [str(found)]


@dataclass
class MotoServer:
    port: int = 0
    log_file: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, region: str = "us-east-1") -> dict[str, str]:
        """What a client needs to talk to this server instead of AWS."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": region}

    def start(self, timeout_s: float = 30.0) -> MotoServer:
        self.port = self.port or free_port()
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [*_moto_command(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **FAKE_CREDENTIALS},
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode} before it answered")
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.endpoint} within {timeout_s:.0f} s")

    def reset(self) -> None:
        """Forget every resource (between tests)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace_s=10, kill_wait_s=10)

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def use_moto(work_dir: Path, region: str) -> Iterator[MotoServer]:
    """A moto server on loopback as this process's AWS (and its children's), while the block runs."""
    work_dir.mkdir(parents=True, exist_ok=True)
    server = MotoServer(log_file=work_dir / "moto_server.log").start()
    saved = {key: os.environ.get(key) for key in server.env(region)}
    os.environ.update(server.env(region))
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
