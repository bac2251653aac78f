"""The batch size for the devices a run uses; the device string itself is decided by
`yolo_core.devices.resolve_device` (re-exported here, where the trainer imports it).

Several visible GPUs mean single-node DDP (Ultralytics launches one process per GPU with
`torch.distributed.run`); one GPU means plain training on it; none means the CPU.
"""

from __future__ import annotations

from yolo_core.devices import resolve_device
from yolo_core.errors import UserInputError

__all__ = ["DEFAULT_CPU_BATCH", "check_batch_for_ranks", "gpu_count_of", "resolve_batch", "resolve_device"]

DEFAULT_CPU_BATCH = 16


def gpu_count_of(device: str) -> int:
    return 0 if device == "cpu" else len(device.split(","))


def resolve_batch(batch: int, device: str) -> int:
    """-1 (automatic) works on one GPU only; on CPU it means a fixed default."""
    if batch != -1:
        return batch
    gpus = gpu_count_of(device)
    if gpus == 0:
        return DEFAULT_CPU_BATCH
    if gpus > 1:
        raise UserInputError(
            f"hyperparameter 'batch': -1 (automatic) is single-GPU only; give a multiple of {gpus} "
            f"for {gpus} GPUs, e.g. {16 * gpus}"
        )
    return -1


def check_batch_for_ranks(batch: int, world_size: int) -> None:
    """A run across processes splits each batch evenly over its ranks (and cannot size it itself)."""
    if world_size > 1 and (batch < 1 or batch % world_size):
        raise UserInputError(
            f"hyperparameter 'batch': {batch} does not split over {world_size} processes; give a "
            f"multiple of {world_size}, e.g. {8 * world_size}"
        )
