"""One rank of a multi-process (multi-host) training run: its process group and what ranks agree on.

Ultralytics' own DDP is single-node: it spawns its workers itself and sizes the process group from
the local device list, and it refuses DDP on the CPU. A run across SageMaker hosts is launched by
torchrun instead (the train entry point), and each rank hands its place here as a `DistributedSpec`.
What the ranks must agree on goes through `RankGroup`: the leader's start (its run state and the
checkpoint to resume from, so a follower needs nothing in its own checkpoint folder), the stop flag
after SIGTERM on any rank (so every rank stops at the same step), and a digest of the parameters
at the end (identical on every rank, or the run fails rather than export a model no rank trained).
Control messages travel on a gloo group even when training uses NCCL: they are small CPU objects.

Ultralytics reads RANK, LOCAL_RANK and WORLD_SIZE from the environment when it is imported, and
much of its DDP code (distributed samplers, loss scaling, validation gathering, rank-0-only saving)
keys on them; torchrun sets them, and `check_ultralytics_ranks` refuses a process where they differ
from the spec.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

LOG = logging.getLogger(__name__)
BACKENDS = ("gloo", "nccl")


@dataclass(frozen=True)
class DistributedSpec:
    """This process's place in the run, as the launcher (torchrun) assigned it."""

    rank: int
    local_rank: int
    world_size: int
    backend: str  # "gloo" (CPU) or "nccl" (GPUs)
    timeout_s: float = 1800.0  # a collective waiting longer than this fails instead of hanging
    init_method: str = "env://"  # torchrun's rendezvous store (MASTER_ADDR/MASTER_PORT it sets)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} is not one of {BACKENDS}")
        if not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise ValueError(f"rank {self.rank} (local {self.local_rank}) of world size {self.world_size}")

    @property
    def is_leader(self) -> bool:
        return self.rank == 0


def check_ultralytics_ranks(spec: DistributedSpec) -> None:
    """Ultralytics fixed its ranks at import; they must be this process's or its DDP code misbehaves."""
    from ultralytics.utils import LOCAL_RANK, RANK, WORLD_SIZE

    seen = (RANK, LOCAL_RANK, WORLD_SIZE)
    if seen != (spec.rank, spec.local_rank, spec.world_size):
        raise RuntimeError(
            f"Ultralytics was imported with RANK, LOCAL_RANK, WORLD_SIZE = {seen}, this process is "
            f"{(spec.rank, spec.local_rank, spec.world_size)}: set them before importing Ultralytics"
        )


class RankGroup:
    """The initialised process group of this rank, and the few things ranks agree on through it."""

    def __init__(self, spec: DistributedSpec, control: Any) -> None:
        self.spec = spec
        self._control = control  # the gloo group for control messages

    def share(self, value: Any = None) -> Any:
        """The leader's `value` on every rank (followers pass nothing)."""
        box = [value if self.spec.is_leader else None]
        dist.broadcast_object_list(box, src=0, group=self._control)
        return box[0]

    def agreed_stop(self, signum: int | None) -> int:
        """The signal any rank received (0: none), the same on every rank; every rank must call it
        at the same points, which is what makes them stop at the same step."""
        flag = torch.tensor([signum or 0], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._control)
        return int(flag.item())

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        values: list[Any] = [None] * self.spec.world_size
        dist.all_gather_object(values, value, group=self._control)
        return values


@contextlib.contextmanager
def process_group(spec: DistributedSpec) -> Iterator[RankGroup]:
    """Join the run's process group for the duration; gloo for control messages beside NCCL."""
    if spec.backend == "nccl":
        torch.cuda.set_device(spec.local_rank)  # before any NCCL call: one GPU per local rank
    timeout = datetime.timedelta(seconds=spec.timeout_s)
    dist.init_process_group(
        backend=spec.backend,
        init_method=spec.init_method,
        rank=spec.rank,
        world_size=spec.world_size,
        timeout=timeout,
    )
    try:
        control = dist.new_group(backend="gloo", timeout=timeout) if spec.backend == "nccl" else None
        LOG.info("rank %d of %d joined the process group (%s)", spec.rank, spec.world_size, spec.backend)
        yield RankGroup(spec, control)
    finally:
        dist.destroy_process_group()


def parameters_digest(model: torch.nn.Module) -> str:
    """sha256 over every parameter's bytes, in order: equal digests mean identical parameters."""
    digest = hashlib.sha256()
    for parameter in model.parameters():
        digest.update(parameter.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _ddp_on_any_device(module: torch.nn.Module, device_ids: list | None = None, **kwargs: Any) -> Any:
    """DistributedDataParallel as Ultralytics constructs it, with `device_ids` dropped for a CPU
    module (it passes `[device.index]`, which is `[None]` on the CPU, and DDP refuses that)."""
    on_cpu = next(module.parameters()).device.type == "cpu"
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=None if on_cpu else device_ids, **kwargs
    )


class _ParallelView:
    """`torch.nn.parallel` with the DDP constructor above."""

    DistributedDataParallel = staticmethod(_ddp_on_any_device)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.nn.parallel, name)


class _NnView:
    """`torch.nn` as Ultralytics' trainer module sees it while it wraps the model."""

    parallel = _ParallelView()

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.nn, name)


@contextlib.contextmanager
def ddp_on_cpu() -> Iterator[None]:
    """While the trainer sets up: Ultralytics' DDP wrapping accepts a CPU model (gloo)."""
    from ultralytics.engine import trainer as trainer_module

    saved = trainer_module.nn
    trainer_module.nn = _NnView()
    try:
        yield
    finally:
        trainer_module.nn = saved
