"""TensorRT backend (GPU): the same raw head output as the other engines, from a TensorRT engine.

The engine is built by Ultralytics' own exporter (ONNX, then TensorRT with a dynamic batch and
image size up to the predictor's batch and `imgsz`), which follows TensorRT's API changes from
version 7 to 11, and run through Ultralytics' `AutoBackend`. Both are maintained upstream; this
module only adapts their input (RGB, 0-1 floats) to our canvas (BGR uint8, NHWC) on the GPU and
keeps the built engine in the user's private cache, named by the weights' content, the precision,
the batch bound and the GPU: an engine is only valid for the GPU model it was built on. The model
folder is never written (the exporter writes beside its input, so it exports a private copy).

Needs `pip install tensorrt` (the CUDA 13 wheels for torch 2.14) and a GPU; it is offered as an
`auto` candidate only where `tensorrt` imports. Not exercised in CI (no GPU there): the GPU suite
(benchmarks/gpu_suite.sh) runs it on a lent machine.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import torch

from yolo_core.cache_dir import private_dir
from yolo_core.errors import UserInputError
from yolo_core.infer.onnx_backend import cached_onnx_path

TENSORRT = "tensorrt"
MAX_BATCH = 32  # the optimization profile's largest batch
QUANTIZE = {"fp16": 16, "fp32": 32}


def cached_engine_path(weights: Path, precision: str, device: torch.device) -> Path:
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(device)).strip("-").lower()
    stem = cached_onnx_path(weights).stem  # <weights stem>-<content digest>
    return private_dir(TENSORRT) / f"{stem}-{precision}-b{MAX_BATCH}-{gpu}.engine"


def build_engine_file(
    weights: Path, engine_path: Path, imgsz: int, precision: str, device: torch.device
) -> Path:
    """Export with Ultralytics into a private scratch folder, then move the engine into place."""
    from ultralytics import YOLO

    scratch = engine_path.parent / f"{engine_path.stem}.build"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        copy = scratch / "model.pt"
        shutil.copyfile(weights, copy)
        built = YOLO(str(copy)).export(
            format="engine",
            quantize=QUANTIZE[precision],
            dynamic=True,
            batch=MAX_BATCH,
            imgsz=imgsz,
            device=device.index or 0,
            verbose=False,
        )
        Path(built).replace(engine_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return engine_path


class TensorRtEngine:
    """uint8 BGR NHWC batch in (host array or GPU tensor), raw head output float32 out."""

    fixed_square = False

    def __init__(self, weights: Path, imgsz: int, device: torch.device, precision: str):
        if device.type != "cuda":
            raise UserInputError("backend 'tensorrt' needs a CUDA GPU")
        if precision not in QUANTIZE:
            raise UserInputError(f"backend 'tensorrt' runs fp16 or fp32, not {precision!r}")
        from ultralytics.nn.autobackend import AutoBackend

        engine_path = cached_engine_path(Path(weights), precision, device)
        if not engine_path.exists():
            build_engine_file(Path(weights), engine_path, imgsz, precision, device)
        self.device = device
        self.backend = AutoBackend(str(engine_path), device=device, fp16=precision == "fp16", verbose=False)
        names = self.backend.names
        pairs = names.items() if isinstance(names, dict) else enumerate(names)
        self.names = {int(k): str(v) for k, v in pairs}
        stride = self.backend.stride
        self.stride = int(max(stride, 32)) if np.isscalar(stride) else 32

    def forward(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        if len(batch) > MAX_BATCH:
            raise ValueError(f"the TensorRT engine takes at most {MAX_BATCH} images a pass, got {len(batch)}")
        pixels = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(batch))
        x = pixels.to(self.device).permute(0, 3, 1, 2).flip(1).float().div_(255)  # BGR 0-255 -> RGB 0-1
        out = self.backend(x)
        raw = out[0] if isinstance(out, list | tuple) else out
        return raw.float()
