"""Which devices a run uses, as the device string Ultralytics understands.

Several visible GPUs mean single-node DDP (Ultralytics launches one process per GPU with
`torch.distributed.run`); one GPU means plain training on it; none means the CPU.
"""

from __future__ import annotations

from yolo_core.errors import UserInputError

DEFAULT_CPU_BATCH = 16


def visible_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(requested: str, gpu_count: int | None = None) -> str:
    """'' -> every visible GPU ('0,1,...'), else 'cpu'; explicit choices are checked."""
    gpus = visible_gpu_count() if gpu_count is None else gpu_count
    requested = requested.strip().lower().removeprefix("cuda:")
    if requested == "":
        return ",".join(str(i) for i in range(gpus)) if gpus else "cpu"
    if requested == "cpu":
        return "cpu"
    indices = [part.strip() for part in requested.split(",")]
    if not all(index.isdigit() for index in indices):
        raise UserInputError(
            f"hyperparameter 'device': {requested!r} is not '', 'cpu' or GPU indices like '0,1'"
        )
    missing = [index for index in indices if int(index) >= gpus]
    if missing:
        raise UserInputError(f"hyperparameter 'device': GPU(s) {missing} requested, {gpus} visible")
    return ",".join(indices)


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
