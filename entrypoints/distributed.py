"""Training across SageMaker hosts: the torchrun launch read from resourceconfig.json, and the
workers' reports back to the launcher.

SageMaker runs the same `train` command on every host of a job, each with a resourceconfig.json
naming all of them. Ultralytics' DDP is single-node, so with several hosts the command launches
torchrun itself (`launch_plan` decides how, `launch` runs it). As SageMaker's own drivers do, the
leader is the first host, in natural order (algo-2 before algo-10), the node rank is this host's
index in that order, and the rendezvous is at the leader on port 7777; NCCL (GPUs) or gloo (CPU)
use the interface resourceconfig.json names. A rendezvous that does not complete fails after
`RENDEZVOUS_TIMEOUT_S`, a collective after `COLLECTIVE_TIMEOUT_S`, and torchrun never restarts
workers (a spot restart starts the whole job again): a failure is an exit, never a hang.

Each torchrun worker runs `train --worker` and leaves its exit code in a status file and its
one-line reason in a failure file of its own, since torchrun reports any failed worker as its own
exit code 1: the launcher turns them into the contract's exit status and failure line.

For several host trees on one machine (tests, benchmarks), `TRAIN_MASTER_ADDR` gives the leader's
address when its host name does not resolve, and `TRAIN_MASTER_PORT` another port.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from entrypoints.contract import TrainingPaths
from yolo_core.errors import UserInputError, one_line

MASTER_PORT = 7777  # SageMaker's own distributed drivers use it
RENDEZVOUS_TIMEOUT_S = 900  # hosts of one job start within minutes of each other
COLLECTIVE_TIMEOUT_S = 1800  # the leader alone writes checkpoints and plots while the others wait
SHUTDOWN_TIMEOUT_S = 60  # after SIGTERM torchrun waits this long for workers to checkpoint, then kills
WORKER_FLAG = "--worker"
MASTER_ADDR_ENV, MASTER_PORT_ENV = "TRAIN_MASTER_ADDR", "TRAIN_MASTER_PORT"
RENDEZVOUS_TIMEOUT_ENV = "TRAIN_RENDEZVOUS_TIMEOUT_S"
_DIGITS = re.compile(r"(\d+)")
_ERROR_LINE = re.compile(r"^\s*[\w.]*(Error|Exception|Timeout)\b.*:")


def natural_key(host: str) -> tuple:
    """algo-2 before algo-10: digit runs compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(host))


def ordered_hosts(hosts: Sequence[str]) -> list[str]:
    return sorted(hosts, key=natural_key)


def host_count(resource_config: Mapping) -> int:
    return len(resource_config.get("hosts") or [])


@dataclass(frozen=True)
class TorchrunPlan:
    """How this host starts its part of the run."""

    hosts: tuple[str, ...]  # in natural order; the first leads
    node_rank: int
    nproc_per_node: int
    master_addr: str
    master_port: int
    backend: str  # "nccl" on GPUs, "gloo" on the CPU
    network_interface: str  # '' lets NCCL / gloo choose
    rendezvous_timeout_s: int = RENDEZVOUS_TIMEOUT_S

    @property
    def nnodes(self) -> int:
        return len(self.hosts)

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    @property
    def leader(self) -> str:
        return self.hosts[0]

    @property
    def is_leader(self) -> bool:
        return self.node_rank == 0

    def command(self, python: str = sys.executable) -> list[str]:
        """torchrun (as `python -m torch.distributed.run`) running this command's worker mode."""
        return [
            python,
            "-m",
            "torch.distributed.run",
            f"--nnodes={self.nnodes}",
            f"--nproc-per-node={self.nproc_per_node}",
            f"--node-rank={self.node_rank}",
            f"--master-addr={self.master_addr}",
            f"--master-port={self.master_port}",
            f"--rdzv-conf=timeout={self.rendezvous_timeout_s}",
            "--max-restarts=0",
            f"--shutdown-timeout={SHUTDOWN_TIMEOUT_S}",
            "-m",
            "entrypoints.train",
            WORKER_FLAG,
            f"--backend={self.backend}",
        ]

    def environment(self) -> dict[str, str]:
        """The socket interface for NCCL and gloo, from resourceconfig.json."""
        if not self.network_interface:
            return {}
        return {"NCCL_SOCKET_IFNAME": self.network_interface, "GLOO_SOCKET_IFNAME": self.network_interface}


def launch_plan(
    resource_config: Mapping,
    gpus: int,
    master_addr: str = "",
    master_port: int = MASTER_PORT,
    rendezvous_timeout_s: int = RENDEZVOUS_TIMEOUT_S,
) -> TorchrunPlan:
    """The plan for this host from resourceconfig.json (`current_host`, `hosts`,
    `network_interface_name`) and its GPU count; `master_addr` overrides the leader's host name."""
    hosts = ordered_hosts([str(h) for h in resource_config.get("hosts") or []])
    current = str(resource_config.get("current_host") or "")
    if not hosts:
        raise UserInputError("resourceconfig.json: 'hosts' is empty")
    if current not in hosts:
        raise UserInputError(f"resourceconfig.json: current_host {current!r} is not one of hosts {hosts}")
    return TorchrunPlan(
        hosts=tuple(hosts),
        node_rank=hosts.index(current),
        nproc_per_node=max(gpus, 1),
        master_addr=master_addr or hosts[0],
        master_port=master_port,
        backend="nccl" if gpus else "gloo",
        network_interface=str(resource_config.get("network_interface_name") or ""),
        rendezvous_timeout_s=rendezvous_timeout_s,
    )


def plan_from_env(
    resource_config: Mapping, gpus: int, environ: Mapping[str, str] = os.environ
) -> TorchrunPlan:
    """`launch_plan` with the local-run overrides (`TRAIN_MASTER_ADDR`, `TRAIN_MASTER_PORT`,
    `TRAIN_RENDEZVOUS_TIMEOUT_S`) read from the environment."""
    try:
        port = int(environ.get(MASTER_PORT_ENV) or MASTER_PORT)
        timeout = int(environ.get(RENDEZVOUS_TIMEOUT_ENV) or RENDEZVOUS_TIMEOUT_S)
    except ValueError as exc:
        raise UserInputError(
            f"{MASTER_PORT_ENV} / {RENDEZVOUS_TIMEOUT_ENV}: not an integer ({exc})"
        ) from None
    return launch_plan(resource_config, gpus, environ.get(MASTER_ADDR_ENV, ""), port, timeout)


# --- the workers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerIdentity:
    """A torchrun worker's place, from the variables torchrun sets for it."""

    rank: int
    local_rank: int
    world_size: int


def worker_identity(environ: Mapping[str, str] = os.environ) -> WorkerIdentity:
    try:
        return WorkerIdentity(int(environ["RANK"]), int(environ["LOCAL_RANK"]), int(environ["WORLD_SIZE"]))
    except (KeyError, ValueError):
        raise UserInputError(
            f"{WORKER_FLAG}: only torchrun starts workers (RANK, LOCAL_RANK, WORLD_SIZE unset)"
        ) from None


def status_file(paths: TrainingPaths, local_rank: int) -> Path:
    return paths.worker_dir / f"local-rank-{local_rank}.json"


def failure_file(paths: TrainingPaths, local_rank: int) -> Path:
    return paths.worker_dir / f"local-rank-{local_rank}.failure"


def write_status(paths: TrainingPaths, local_rank: int, exit_code: int, trained: bool = False) -> None:
    path = status_file(paths, local_rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"exit_code": exit_code, "trained": trained}) + "\n")


@dataclass(frozen=True)
class LaunchResult:
    exit_code: int
    reason: str  # one line; '' on success
    trained: bool  # whether the workers fitted in this start


def _worker_report(paths: TrainingPaths, local_rank: int) -> tuple[int | None, str, bool]:
    """(exit code or None when unreported, reason, trained) of one worker."""
    status, failure = status_file(paths, local_rank), failure_file(paths, local_rank)
    code, trained = None, False
    if status.is_file():
        document = json.loads(status.read_text())
        code, trained = int(document["exit_code"]), bool(document.get("trained"))
    reason = failure.read_text().strip() if failure.is_file() else ""
    if code is None and reason:
        code = 1  # run_main wrote the reason of an unexpected error and exited 1
    return code, reason, trained


def launch_result(
    reports: Sequence[tuple[int | None, str, bool]],
    torchrun_code: int,
    torchrun_error: str,
    signum: int | None,
) -> LaunchResult:
    """The host's exit status from its workers' reports (in local-rank order) and torchrun's exit.

    The first failing worker's code and reason win; a worker that never reported (killed, or the
    rendezvous failed) leaves torchrun's code and last error line, or the signal the launcher got."""
    trained = any(report[2] for report in reports)
    for code, reason, _ in reports:
        if code:
            return LaunchResult(code, reason or f"a training worker exited with code {code}", trained)
    if all(code == 0 for code, _, _ in reports) and torchrun_code == 0:
        return LaunchResult(0, "", trained)
    if signum is not None:
        name = signal.Signals(signum).name
        return LaunchResult(
            128 + signum, f"training interrupted by {name}; the workers did not report", trained
        )
    detail = f": {torchrun_error}" if torchrun_error else ""
    return LaunchResult(
        torchrun_code or 1, f"distributed launch failed (torchrun exit {torchrun_code}){detail}", trained
    )


def _forward(stream: IO[str], to: IO[str], last_error: list[str]) -> None:
    """Copy torchrun's stderr through, remembering its last exception line."""
    for line in stream:
        to.write(line)
        to.flush()
        if _ERROR_LINE.match(line):
            last_error[:] = [one_line(line)[:500]]


def launch(plan: TorchrunPlan, paths: TrainingPaths) -> LaunchResult:
    """Run torchrun for this host and wait; SIGTERM and SIGINT are passed on to it once, and it
    passes them to the workers, which stop together at their next safe point."""
    for local_rank in range(plan.nproc_per_node):
        status_file(paths, local_rank).unlink(missing_ok=True)
        failure_file(paths, local_rank).unlink(missing_ok=True)
    env = {**os.environ, **plan.environment()}
    process = subprocess.Popen(plan.command(), env=env, stderr=subprocess.PIPE, text=True, bufsize=1)
    received: list[int] = []

    def pass_on(signum: int, frame: object) -> None:
        received.append(signum)
        process.send_signal(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGTERM, signal.SIGINT)}
    last_error: list[str] = []
    forwarder = threading.Thread(target=_forward, args=(process.stderr, sys.stderr, last_error), daemon=True)
    forwarder.start()
    try:
        code = process.wait()
        forwarder.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    reports = [_worker_report(paths, local_rank) for local_rank in range(plan.nproc_per_node)]
    return launch_result(
        reports, code, last_error[0] if last_error else "", received[0] if received else None
    )
