"""Training precision: fp16 AMP on GPUs without Ultralytics' download, bf16 autocast on CPUs
where it is measured to pay.

Ultralytics checks AMP by downloading a pretrained model and comparing its predictions, which
fails offline; and it refuses bf16 autocast on CPUs, although CPUs with bf16 instructions run
yolo11n's forward and backward pass 1.45-2x faster in bf16 (AVX-512 BF16 on an AMD EPYC, AMX on
an Intel Xeon). Both are changed only while our trainer trains (`precision_patches`), so other
Ultralytics use in the process keeps its behaviour. Whether bf16 pays on a CPU is measured on the
model being trained, at its image size and batch (`cpu_bf16_speedup`), not read from a flag:
the figure is kept in the private cache per CPU model, torch version, model and shape.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from yolo_core import devices
from yolo_core.cache_dir import private_dir
from yolo_core.vocabulary import cpu_model_name

LOG = logging.getLogger(__name__)


BF16_MIN_SPEEDUP = 1.1  # bf16 must beat fp32 by this much to be worth its rounding
SPEEDUP_CACHE = "train-precision"
MAX_PROBE_BATCH = 8


def resolve_precision(
    requested: str,
    device: str,
    bf16_native: bool | None = None,
    bf16_speedup: Callable[[], float] | None = None,
) -> str:
    """Pick "fp32", "amp" (fp16 autocast + grad scaling) or "bf16" for a device string, by the
    rule every run shares (`yolo_core.devices.resolve_precision`): `auto` is AMP on GPUs, bf16 on
    CPUs with bf16 instructions where `bf16_speedup()` (fp32 time / bf16 time of a training step)
    reaches `BF16_MIN_SPEEDUP`, otherwise fp32; an explicit choice the device can't honour is a
    `UserInputError`."""
    pays = None if bf16_speedup is None else (lambda: bf16_speedup() >= BF16_MIN_SPEEDUP)
    return devices.resolve_precision(
        requested,
        on_gpu=device not in {"cpu", "mps"},
        names=devices.TRAINING,
        bf16_native=bf16_native,
        bf16_pays=pays,
    )


def _tensors(output: object) -> Iterator[torch.Tensor]:
    """Every tensor in a head's output (a tensor, or lists and dicts of them)."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, dict):
        for value in output.values():
            yield from _tensors(value)
    elif isinstance(output, list | tuple):
        for value in output:
            yield from _tensors(value)


def _step_seconds(model: torch.nn.Module, images: torch.Tensor, bf16: bool, runs: int = 2) -> float:
    """Median seconds of a forward and backward pass, after one untimed pass."""
    times = []
    for run in range(runs + 1):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outputs = model(images)
        sum(t.float().mean() for t in _tensors(outputs)).backward()
        model.zero_grad(set_to_none=True)
        if run:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def cpu_bf16_speedup(
    model: str, num_classes: int, imgsz: int, batch: int, threads: int, cache_root: Path | None = None
) -> float:
    """fp32 time / bf16 time of a training step of this model on this CPU (cached).

    The model is built from its yaml with random weights (the arithmetic is what is timed), at
    the run's image size and a batch of at most `MAX_PROBE_BATCH`: a few seconds, once."""
    batch = max(1, min(batch if batch > 0 else MAX_PROBE_BATCH, MAX_PROBE_BATCH))
    facts = {
        "cpu": cpu_model_name(),
        "torch": torch.__version__,
        "model": model,
        "classes": num_classes,
        "imgsz": imgsz,
        "batch": batch,
        "threads": threads,
    }
    key = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:32]
    path = private_dir(SPEEDUP_CACHE, cache_root) / f"{key}.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        return float(json.loads(path.read_text())["speedup"])
    from ultralytics.nn.tasks import DetectionModel

    # channels_last, as the trainer runs on a CPU (yolo_core.train.engine)
    network = DetectionModel(f"{model}.yaml", nc=num_classes, verbose=False).train()
    network = network.to(memory_format=torch.channels_last)
    images = torch.rand(batch, 3, imgsz, imgsz).contiguous(memory_format=torch.channels_last)
    fp32, bf16 = _step_seconds(network, images, False), _step_seconds(network, images, True)
    speedup = fp32 / bf16
    LOG.info(
        "bf16 training step on this CPU: %.2fx fp32 (%.3f s vs %.3f s, batch %d)", speedup, bf16, fp32, batch
    )
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**facts, "fp32_s": fp32, "bf16_s": bf16, "speedup": speedup}))
    tmp.replace(path)
    return speedup


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
