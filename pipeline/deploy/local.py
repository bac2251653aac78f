"""The deployment on this machine: the serve entrypoint (or its container) as staging and as
production, each on a port the system picks, recorded in the environment's history.

A new version is started beside the live ones as staging and tested; only when it passes does it
become staging, and a production server of it is started on its own port, after which the old
production server is stopped. A version that fails is stopped and the old ones keep serving.
Servers are detached (they outlive the command); they are stopped by their recorded id.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from entrypoints.contract import DEFAULT_BASE_DIR
from pipeline.deploy.aws import Candidate
from pipeline.deploy.decisions import previous_live
from pipeline.deploy.history import History
from yolo_core.errors import UserInputError
from yolo_core.processes import stop_process, wait_for_announced_port, wait_until_answers

# uvicorn's start-up line: the port the kernel picked for `--port 0`.
SERVER_PORT_ANNOUNCEMENT = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT_S = 300
CONTAINER_PORT = 8080
CAPTURE_VARIANT = "AllTraffic"  # SageMaker's variant folder in a capture prefix


def serve_command(model_dir: Path, threads: int = 0, capture_dir: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "entrypoints.serve", "--model-dir", str(model_dir)]
    capture = ["--capture-dir", str(capture_dir)] if capture_dir is not None else []
    return [*command, "--host", "127.0.0.1", "--port", "0", "--threads", str(threads), *capture]


def start_server(
    model_dir: Path,
    log_file: Path,
    threads: int = 0,
    detach: bool = False,
    capture_dir: Path | None = None,
) -> tuple[subprocess.Popen, str]:
    """The serve entrypoint on a loopback port it picks; returns the process and its URL once /ping is 200."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        server = subprocess.Popen(
            serve_command(model_dir, threads, capture_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            start_new_session=detach,
        )
    try:
        port = wait_for_announced_port(log_file, SERVER_PORT_ANNOUNCEMENT, server, timeout_s=START_TIMEOUT_S)
        url = f"http://127.0.0.1:{port}"
        wait_until_answers(f"{url}/ping", server, timeout_s=START_TIMEOUT_S)
    except RuntimeError as exc:
        stop_process(server, grace_s=30)
        raise UserInputError(f"{model_dir}: the server did not come up ({exc}; log: {log_file})") from None
    return server, url


def _docker_port(name: str, server: subprocess.Popen) -> int:
    while server.poll() is None:
        done = subprocess.run(
            ["docker", "port", name, f"{CONTAINER_PORT}/tcp"], capture_output=True, text=True, check=False
        )
        if done.returncode == 0 and done.stdout.strip():
            return int(done.stdout.split()[0].rsplit(":", 1)[1])
        time.sleep(0.2)
    raise RuntimeError(f"container {name} exited with {server.returncode}")


def start_container(image: str, model_dir: Path, log_file: Path) -> tuple[subprocess.Popen, str, str]:
    """`docker run IMAGE serve` with the model mounted where the contract puts it."""
    name = f"drone-yolo-serve-{uuid.uuid4().hex[:10]}"
    command = ["docker", "run", "--rm", "--name", name, "-p", f"127.0.0.1::{CONTAINER_PORT}"]
    command += ["-v", f"{model_dir.resolve()}:{DEFAULT_BASE_DIR / 'model'}:ro", image, "serve"]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{_docker_port(name, server)}"
        wait_until_answers(f"{url}/ping", server, timeout_s=START_TIMEOUT_S)
    except RuntimeError as exc:
        subprocess.run(["docker", "stop", name], capture_output=True, check=False)
        raise UserInputError(f"{image}: the container did not come up ({exc}; log: {log_file})") from None
    return server, url, name


def stop_recorded(entry: dict[str, Any]) -> None:
    """Stops the server a history entry names: by its container name, or by its process id once
    that process is still the serve command of the entry's model (ids are reused)."""
    import psutil

    if entry.get("container"):
        subprocess.run(["docker", "stop", entry["container"]], capture_output=True, check=False)
        return
    try:
        process = psutil.Process(entry["pid"])
        command = process.cmdline()
    except (KeyError, psutil.Error):
        return
    if "entrypoints.serve" not in command or entry.get("model_dir") not in command:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except psutil.TimeoutExpired:
        process.kill()


class LocalDeployer:
    """Staging and production servers of one environment, their state in `state_dir`."""

    def __init__(self, state_dir: Path, docker_image: str = "", threads: int = 0) -> None:
        self.state_dir = Path(state_dir)
        self.history = History(str(self.state_dir))
        self.docker_image = docker_image
        self.threads = threads
        self._candidate: dict[str, Any] | None = None

    def _start(self, stage: str, candidate: Candidate) -> dict[str, Any]:
        log = self.state_dir / "logs" / f"{stage}-v{candidate.version}-{uuid.uuid4().hex[:6]}.log"
        model_dir = Path(candidate.model_dir)
        if self.docker_image:
            server, url, container = start_container(self.docker_image, model_dir, log)
            return {"pid": server.pid, "url": url, "container": container, "log": str(log)}
        capture = None
        if stage == "production":  # each server its own folder: a window holds only its traffic
            capture = self.state_dir / "data-capture" / stage / log.stem / CAPTURE_VARIANT
        server, url = start_server(model_dir, log, self.threads, detach=True, capture_dir=capture)
        return {"pid": server.pid, "url": url, "log": str(log)} | (
            {"capture_dir": str(capture)} if capture else {}
        )

    def capture_dir(self, stage: str) -> Path | None:
        """Where the live (not containerised) server of `stage` captures its traffic, laid out as
        SageMaker's capture prefix: .../AllTraffic/yyyy/mm/dd/hh/*.jsonl; None without capture."""
        live = self.history.live(stage)
        return Path(live["capture_dir"]) if live and live.get("capture_dir") else None

    def stage(self, candidate: Candidate) -> str:
        """Starts `candidate` beside whatever is live; returns its URL (staging once it passes)."""
        self._candidate = {**candidate.__dict__, **self._start("staging", candidate)}
        return self._candidate["url"]

    def refuse(self) -> None:
        """The candidate failed: stop it; the recorded staging and production servers go on."""
        if self._candidate:
            stop_recorded(self._candidate)
            self._candidate = None

    def accept(self) -> dict[str, Any]:
        """The candidate passed: it replaces the recorded staging server."""
        if self._candidate is None:
            raise UserInputError("nothing staged in this run")
        old = self.history.live("staging")
        entry = self.history.record("staging", **self._candidate)
        if old and old.get("url") != entry["url"]:
            stop_recorded(old)
        self._candidate = None
        return entry

    def _switch(self, candidate: Candidate, action: str) -> str:
        old = self.history.live("production")
        started = self._start("production", candidate)
        self.history.record("production", **candidate.__dict__, **started, action=action)
        if old:
            stop_recorded(old)
        return "live"

    def promote(self, candidate: Candidate) -> str:
        return self._switch(candidate, "promote")

    def rollback(self) -> tuple[dict[str, Any], str]:
        previous = previous_live(self.history.read()["deployments"], "production")
        if previous is None:
            raise UserInputError(f"{self.state_dir}: no previous production version recorded")
        if not Path(previous.get("model_dir", "")).is_dir():
            raise UserInputError(
                f"previous version {previous['version']}: model folder {previous.get('model_dir')} is gone"
            )
        candidate = Candidate(
            previous["version"], previous["package_arn"], previous["commit"], previous["model_dir"]
        )
        return previous, self._switch(candidate, "rollback")

    def url(self, stage: str) -> str:
        live = self.history.live(stage)
        return live["url"] if live else ""

    def stop_all(self) -> list[str]:
        """Stops the recorded staging and production servers (`pipeline stop --local`, the demo's
        and tests' clean-up) and records them stopped, so the history lists nothing live afterwards.
        Returns what it stopped, e.g. ["staging v3 http://127.0.0.1:PORT"]."""
        stopped = []
        for stage in ("staging", "production"):
            live = self.history.live(stage)
            if live:
                stop_recorded(live)
                self.history.record_stopped(stage, live)
                stopped.append(f"{stage} v{live.get('version')} {live.get('url')}")
        return stopped
