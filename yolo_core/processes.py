"""Child processes we start (servers, daemons): learning their port, stopping them politely, then for sure."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from pathlib import Path


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


def wait_for_announced_port(
    log_file: Path, announcement: re.Pattern[str], process: subprocess.Popen, timeout_s: float, since: int = 0
) -> int:
    """The port a server started with port 0 says it bound, read from its log after byte `since`.

    Binding port 0 lets the kernel pick a free port atomically; probing for a free port and then
    passing it on leaves a window in which another process can take it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        with log_file.open("rb") as log:
            log.seek(since)
            found = announcement.search(log.read().decode(errors="replace"))
        if found:
            return int(found.group(1))
        name = process.args[0]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} before it announced its port")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} announced no port within {timeout_s:.0f} s (log: {log_file})")
        time.sleep(0.1)


def wait_until_answers(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    """Polls `url` until it answers 200 (a server's readiness), failing early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:  # not listening yet, or still loading (an HTTPError is an OSError)
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s")
