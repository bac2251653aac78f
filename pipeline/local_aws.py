"""A moto server on loopback: the AWS stand-in for the demo and the tests.

It is a real HTTP server (`moto_server -H 127.0.0.1 -p PORT`) in its own process; every boto3
client reaches it through `AWS_ENDPOINT_URL`. Its state lives in memory and ends with it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from yolo_core.processes import stop_process, wait_for_announced_port, wait_until_answers

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


# Werkzeug's start-up line names the port the kernel picked for `-p 0`.
_ANNOUNCED_PORT = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")


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
        """Binds port 0 (or the port given) and learns the port from the server's own log."""
        if self.log_file is None:
            self.log_file = Path(tempfile.mkdtemp(prefix="moto-")) / "moto_server.log"
        start_of_this_run = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [*_moto_command(), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **FAKE_CREDENTIALS, "PYTHONUNBUFFERED": "1"},
            )
        try:
            self.port = wait_for_announced_port(
                self.log_file, _ANNOUNCED_PORT, self.process, timeout_s, since=start_of_this_run
            )
            wait_until_answers(f"{self.endpoint}/moto-api/", self.process, timeout_s)
        except RuntimeError:
            self.stop()
            raise
        return self

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
