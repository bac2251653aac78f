"""Helpers for the tests that run the real `train` command in subprocesses (spot, multi-host)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def start_train(base: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """`train` on the /opt/ml tree at `base`, its output in `log`."""
    env = {**env, "SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1", "IMAGE_URI": "local/train:test"}
    return subprocess.Popen(
        [sys.executable, "-m", "entrypoints.train"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def wait_until(
    done: Callable[[], bool], what: str, process: subprocess.Popen, log: Path, timeout_s: float
) -> None:
    """Polls for a file or a log line that the code under test writes: the test acts on its word."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if process.poll() is not None:
            pytest.fail(f"train exited ({process.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            kill_tree(process)
            pytest.fail(f"no {what} after {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def kill_tree(process: subprocess.Popen) -> None:
    """Kill a started command and the processes it started (torchrun and its workers run in
    sessions of their own, so killing the command alone would leave them)."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in [*children, process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.wait()
