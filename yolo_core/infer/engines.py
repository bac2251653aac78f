"""Build one inference engine from weights: the one place that knows every backend's class.

Every engine takes a letterboxed uint8 BGR NHWC batch and returns the raw head output
(B, 4 + classes, anchors) as a float32 tensor, so letterboxing, decoding, NMS and merging are
shared; `names`, `stride` and `fixed_square` describe the model it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from yolo_core.infer.engine_candidates import EngineSpec


class Engine(Protocol):
    names: dict[int, str]
    stride: int
    fixed_square: bool

    def forward(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor: ...


def build_engine(spec: EngineSpec, weights: Path, imgsz: int, device: torch.device, threads: int) -> Engine:
    """The engine for `spec` (exports it needs land in the private cache, once per weights)."""
    weights = Path(weights)
    if spec.backend == "torch":
        from yolo_core.infer.torch_backend import TorchEngine

        return TorchEngine(weights, device, spec.precision)
    if spec.backend == "onnx":
        from yolo_core.infer.onnx_backend import OnnxEngine

        return OnnxEngine(weights, imgsz, device, spec.precision)
    if spec.backend == "openvino":
        from yolo_core.infer.openvino_backend import OpenVinoEngine

        return OpenVinoEngine(weights, imgsz, device, spec.precision, threads)
    if spec.backend == "tensorrt":
        from yolo_core.infer.tensorrt_backend import TensorRtEngine

        return TensorRtEngine(weights, imgsz, device, spec.precision)
    raise ValueError(f"unknown backend {spec.backend!r}")
