"""Stopping a child process we started (a server, a daemon): politely first, then for sure."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, grace_s: float, kill_wait_s: float | None = None) -> None:
    """SIGTERM, up to `grace_s` for a clean exit (servers drain, trainers checkpoint), then SIGKILL.

    `kill_wait_s` bounds the wait after SIGKILL (None: until it is gone).
    """
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=kill_wait_s)
