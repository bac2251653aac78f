"""Training precision: fp16 AMP on GPUs without Ultralytics' download, bf16 autocast on AMX CPUs.

Ultralytics checks AMP by downloading a pretrained model and comparing its predictions, which
fails offline; and it refuses bf16 autocast on CPUs, although CPUs with AMX run bf16 matrix
products several times faster than fp32. Both are changed only while our trainer trains
(`precision_patches`), so other Ultralytics use in the process keeps its behaviour.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator

import torch

from yolo_core import devices

LOG = logging.getLogger(__name__)


def resolve_precision(requested: str, device: str, amx: bool | None = None) -> str:
    """Pick "fp32", "amp" (fp16 autocast + grad scaling) or "bf16" for a device string, by the
    rule every run shares (`yolo_core.devices.resolve_precision`): `auto` is AMP on GPUs, bf16 on
    CPUs with AMX, otherwise fp32; an explicit choice the device can't honour is a `UserInputError`.
    """
    return devices.resolve_precision(
        requested, on_gpu=device not in {"cpu", "mps"}, names=devices.TRAINING, amx=amx
    )


def ultralytics_amp_arg(precision: str) -> bool | str:
    """Ultralytics' `amp` train argument for our precision name."""
    return {"fp32": False, "amp": True, "bf16": "bf16"}[precision]


def local_amp_check(model: torch.nn.Module, imgsz: int = 256, tolerance: float = 0.02) -> bool:
    """Whether fp16 autocast gives the same outputs as fp32 on this GPU, without any download.

    Some GPUs (e.g. GTX 16xx) produce NaN or garbage under fp16; the model being trained, on a
    random batch, is enough to see that. Returns False (train in fp32) on a mismatch.
    """
    device = next(model.parameters()).device
    if device.type in {"cpu", "mps"}:
        return False
    probe = copy.deepcopy(model).eval()
    x = torch.rand(2, 3, imgsz, imgsz, device=device)
    try:
        with torch.no_grad():
            reference = _first_tensor(probe(x)).float()
            with torch.autocast(device.type, dtype=torch.float16):
                mixed = _first_tensor(probe(x)).float()
    except Exception as exc:  # noqa: BLE001 - any failure means "don't use AMP"
        LOG.warning("AMP check failed (%s); training in fp32", exc)
        return False
    finally:
        del probe
    scale = reference.abs().max().clamp_min(1e-6)
    error = float((reference - mixed).abs().max() / scale)
    ok = bool(torch.isfinite(mixed).all()) and error < tolerance
    LOG.info("AMP check on %s: relative error %.2e -> %s", device, error, "AMP on" if ok else "fp32")
    return ok


def _first_tensor(output: object) -> torch.Tensor:
    while isinstance(output, list | tuple):
        output = output[0]
    if isinstance(output, dict):
        output = next(iter(output.values()))
    return output  # type: ignore[return-value]


def _autocast_allowing_cpu_bf16(original):  # noqa: ANN001, ANN202 - wraps Ultralytics' function
    def autocast(enabled: bool | torch.dtype, device: str = "cuda"):  # noqa: ANN202
        if enabled is torch.bfloat16 and device == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return original(enabled, device=device)

    return autocast


@contextlib.contextmanager
def precision_patches() -> Iterator[None]:
    """While training: CPU bf16 autocast allowed, and the AMP check done locally (no download)."""
    from ultralytics.engine import trainer as trainer_module

    saved = trainer_module.autocast, trainer_module.check_amp
    trainer_module.autocast = _autocast_allowing_cpu_bf16(saved[0])
    trainer_module.check_amp = local_amp_check
    try:
        yield
    finally:
        trainer_module.autocast, trainer_module.check_amp = saved
