"""Which device and numeric precision a run uses: one set of rules for training and inference.

Training hands Ultralytics a device string ('cpu', '0', '0,1': several GPUs mean single-node DDP);
inference runs on one `torch.device`. Both count the visible GPUs the same way. Training's
precision: `auto` is half precision (AMP) on a GPU; on a CPU it is bf16 only where the CPU has
bf16 instructions (AVX-512 BF16 or AMX; elsewhere bf16 is emulated, many times slower) and a
measurement on the model says it pays (`bf16_pays`), fp32 otherwise. An explicit choice the
device cannot honour is a `UserInputError` naming the field, never a silent downgrade.
(Inference measures its engines and precisions instead: `yolo_core.infer.engine_choice`.)
torch is imported only when a GPU must be counted or a `torch.device` built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yolo_core.errors import UserInputError
from yolo_core.vocabulary import TRAINING_PRECISIONS, cpu_has_bf16_instructions

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class PrecisionNames:
    """How one side of the toolkit names its precisions."""

    choices: tuple[str, ...]
    half: str  # GPU half precision: "amp" (autocast + gradient scaling)
    what: str  # how an error names the value


TRAINING = PrecisionNames(TRAINING_PRECISIONS, "amp", "hyperparameter 'precision'")


def visible_gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_precision(
    requested: str,
    *,
    on_gpu: bool,
    names: PrecisionNames = TRAINING,
    bf16_native: bool | None = None,
    bf16_pays: Callable[[], bool] | None = None,
) -> str:
    """The precision to run: one of `names.choices` other than "auto".

    `bf16_native`: whether the CPU has bf16 instructions (read from /proc/cpuinfo when None and
    needed). `bf16_pays`: asked only for "auto" on such a CPU, whether bf16 is measurably faster
    than fp32 for this run (None: not measured, so fp32).
    """
    if requested not in names.choices:
        raise UserInputError(f"{names.what}: {requested!r} is not one of {', '.join(names.choices)}")
    if on_gpu:
        return names.half if requested == "auto" else requested
    if requested == names.half:
        raise UserInputError(f"{names.what}: {requested!r} needs a GPU; use 'bf16' or 'fp32' on a CPU")
    if requested not in ("auto", "bf16"):
        return requested
    native = cpu_has_bf16_instructions() if bf16_native is None else bf16_native
    if requested == "bf16" and not native:
        raise UserInputError(
            f"{names.what}: 'bf16' on a CPU needs bf16 instructions (avx512_bf16 or amx_bf16 in "
            "/proc/cpuinfo; elsewhere it is emulated, many times slower); use 'fp32'"
        )
    if requested == "auto":
        return "bf16" if native and bf16_pays is not None and bf16_pays() else "fp32"
    return requested


def resolve_device(requested: str, gpu_count: int | None = None) -> str:
    """Training's Ultralytics device string: '' -> every visible GPU ('0,1,...'), else 'cpu';
    explicit choices ('cpu', '1', 'cuda:1', '0,1') are checked against the visible GPUs."""
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


def resolve_torch_device(requested: str, gpu_count: int | None = None) -> torch.device:
    """Inference's one device: 'auto' is the first GPU when there is one; 'cpu', 'cuda', 'cuda:1'
    and '0' are taken as given (a CUDA device where no GPU is visible is a `UserInputError`)."""
    import torch

    if requested == "auto":
        gpus = visible_gpu_count() if gpu_count is None else gpu_count
        return torch.device("cuda:0" if gpus else "cpu")
    device = f"cuda:{requested}" if requested.isdigit() else requested
    resolved = torch.device(device)
    if resolved.type == "cuda" and not (visible_gpu_count() if gpu_count is None else gpu_count):
        raise UserInputError(f"device {device!r}: no CUDA GPU is available")
    return resolved
