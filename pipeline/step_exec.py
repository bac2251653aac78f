"""How the local runner executes one step: its entrypoint as a subprocess, or its image in Docker.

Either way the step sees the SageMaker layout: the subprocess gets `SAGEMAKER_BASE_DIR` pointing at
a private /opt/ml tree, the container gets that tree mounted at /opt/ml. Output is streamed line
by line with the step's name in front, progress bars thinned to one line every few seconds, and
kept in a log file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.fingerprint import REPO_ROOT

PROGRESS_EVERY_S = 3.0
_PROGRESS_LINE = re.compile(r"\d+%\|")


@dataclass
class StepProcessResult:
    returncode: int
    tail: list[str]
    log_file: Path


@dataclass
class _LineStream:
    """Splits a byte stream on \\n and \\r; \\r-terminated lines (progress bars) are thinned."""

    emit: Callable[[str], None]
    log: object
    tail: deque = field(default_factory=lambda: deque(maxlen=40))
    buffer: bytes = b""
    last_progress: float = 0.0

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        while True:
            cut = min((i for i in (self.buffer.find(b"\n"), self.buffer.find(b"\r")) if i >= 0), default=-1)
            if cut < 0:
                return
            line, is_progress = self.buffer[:cut], self.buffer[cut : cut + 1] == b"\r"
            self.buffer = self.buffer[cut + 1 :]
            self._line(line.decode(errors="replace").rstrip(), is_progress)

    def close(self) -> None:
        if self.buffer:
            self._line(self.buffer.decode(errors="replace").rstrip(), False)
            self.buffer = b""

    def _line(self, text: str, is_progress: bool) -> None:
        if not text:
            return
        now = time.monotonic()
        if is_progress or _PROGRESS_LINE.search(text):
            if now - self.last_progress < PROGRESS_EVERY_S:
                return
            self.last_progress = now
        self.log.write(text + "\n")
        self.tail.append(text)
        self.emit(text)


def stream_process(
    command: Sequence[str], env: dict[str, str], cwd: Path, log_file: Path, emit: Callable[[str], None]
) -> StepProcessResult:
    """Run `command`, showing its output live; returns its exit code and last lines."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w", buffering=1) as log:  # line-buffered: the log is readable while it runs
        log.write("$ " + " ".join(command) + "\n")
        stream = _LineStream(emit, log)
        process = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0
        )
        assert process.stdout is not None
        try:
            while chunk := process.stdout.read(65536):  # unbuffered: returns what is there
                stream.feed(chunk)
        except BaseException:
            process.terminate()  # Ctrl-C: stop the step too, its SIGTERM handler saves a checkpoint
            process.wait(timeout=60)
            raise
        stream.close()
        returncode = process.wait()
    return StepProcessResult(returncode, list(stream.tail), log_file)


def subprocess_env(
    base_dir: Path, extra: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> dict:
    """The environment of a step subprocess: its own /opt/ml tree, the repo importable."""
    env = dict(os.environ if env is None else env)
    paths = [str(REPO_ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    env.update(
        {"SAGEMAKER_BASE_DIR": str(base_dir), "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(paths)}
    )
    env.update(extra or {})
    return env


def run_step_subprocess(
    entrypoint: str,
    arguments: Sequence[str],
    base_dir: Path,
    log_file: Path,
    emit: Callable[[str], None],
    env: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> StepProcessResult:
    """`python -m entrypoints.<entrypoint> ARGS` with /opt/ml at `base_dir`."""
    command = [sys.executable, "-m", f"entrypoints.{entrypoint}", *arguments]
    return stream_process(command, subprocess_env(base_dir, extra_env, env), base_dir, log_file, emit)


def run_step_in_docker(
    image: str,
    command: str,
    arguments: Sequence[str],
    base_dir: Path,
    log_file: Path,
    emit: Callable[[str], None],
    extra_env: dict[str, str] | None = None,
    gpus: bool = False,
) -> StepProcessResult:
    """`docker run IMAGE COMMAND ARGS` with `base_dir` mounted as /opt/ml, no network.

    The boundary the images work (issue 6) plugs into: same inputs, same result as the
    subprocess form. `--pull never`: a step runs the image `make build` made, never one fetched
    from a registry. The container runs as the calling user so that the files it writes into the
    mounted tree stay removable (the images work under any uid). With `gpus`, every GPU is passed
    in, falling back to the CPU where Docker has no GPU runtime (images/scripts/docker-run-gpu.sh).
    """
    options = ["--rm", "--network", "none", "--pull", "never", "--shm-size", "2g"]
    options += ["-v", f"{base_dir}:/opt/ml"]
    options += ["--user", f"{os.getuid()}:{os.getgid()}"] if hasattr(os, "getuid") else []
    for key, value in (extra_env or {}).items():
        options += ["-e", f"{key}={value}"]
    gpu_run = [str(REPO_ROOT / "images" / "scripts" / "docker-run-gpu.sh"), "docker"]
    run = gpu_run if gpus else ["docker", "run"]
    return stream_process(
        [*run, *options, image, command, *arguments], dict(os.environ), base_dir, log_file, emit
    )


def local_image_id(image: str) -> str | None:
    """The local image's content ID, or None when Docker does not have it."""
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else None


def docker_image_id(image: str) -> str:
    """The local image's content ID (the Docker mode's code fingerprint)."""
    found = local_image_id(image)
    if found is None:
        raise RuntimeError(f"docker image {image!r} not found locally (build it with `make build`)")
    return found
