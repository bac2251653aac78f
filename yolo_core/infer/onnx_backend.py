"""ONNX Runtime backend: the same raw head output as the torch backend, from an exported graph.

The fastest fp32 engine on a CPU here (fused Conv+SiLU kernels). The graph is exported once
from the `.pt` with torch's own exporter (no Ultralytics export extras), with a dynamic batch and
image size, and cached in the user's private cache folder (`yolo_core.cache_dir`; not the shared
temp folder, where another user could plant a graph we would load) under the weights' content
hash: never beside the weights, since a model folder is a pipeline step's artifact (or read-only
in a container) and must not change by being read. Class names and stride travel in a small JSON
file next to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from yolo_core.cache_dir import ONNX, private_dir
from yolo_core.errors import UserInputError
from yolo_core.infer.torch_backend import load_ultralytics_model, model_names, read_bgr_bytes

OPSET = 17


def sidecar_path(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(onnx_path.suffix + ".json")


def export_onnx(weights: Path, onnx_path: Path, imgsz: int = 640) -> Path:
    """Export a fused fp32 detection model with dynamic (batch, height, width) axes; like the torch
    engine, the graph takes BGR pixel values 0-255 (see read_bgr_bytes)."""
    model = read_bgr_bytes(load_ultralytics_model(weights).fuse(verbose=False).eval())
    head = model.model[-1]
    head.export, head.format, head.dynamic = True, "onnx", True  # anchors follow the input size
    example = torch.zeros(1, 3, imgsz, imgsz)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_suffix(f".{os.getpid()}.tmp.onnx")  # concurrent exports do not collide
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, but needs no extra package
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["images"],
            output_names=["output0"],
            dynamic_axes={
                "images": {0: "batch", 2: "height", 3: "width"},
                "output0": {0: "batch", 2: "anchors"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    stride = int(max(model.stride.tolist()))
    sidecar_path(onnx_path).write_text(json.dumps({"names": model_names(model), "stride": stride}))
    tmp.replace(onnx_path)  # last: a graph that exists is complete, and its sidecar is there
    return onnx_path


def cached_onnx_path(weights: Path, cache_root: Path | None = None) -> Path:
    """Where the export of these weights lives: the private cache, named by their content (the
    graph's axes are dynamic, so one export serves every image size)."""
    with weights.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()[:16]
    return private_dir(ONNX, cache_root) / f"{weights.stem}-{digest}.onnx"


class OnnxEngine:
    """uint8 BGR NHWC batch in, raw head output (B, 4 + classes, anchors) float32 out."""

    fixed_square = False

    def __init__(self, weights: Path, imgsz: int, device: torch.device, precision: str):
        import onnxruntime as ort

        if precision != "fp32":
            raise ValueError(f"the onnx backend runs in fp32 only, got precision {precision!r}")
        onnx_path = weights
        if weights.suffix == ".pt":
            onnx_path = cached_onnx_path(weights)
            if not onnx_path.exists():
                export_onnx(weights, onnx_path, imgsz)
        if not onnx_path.is_file():
            raise UserInputError(f"{onnx_path}: ONNX model not found")
        meta_file = sidecar_path(onnx_path)
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        self.names = {int(k): v for k, v in meta.get("names", {}).items()}
        self.stride = int(meta.get("stride", 32))
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, batch: np.ndarray) -> torch.Tensor:
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        (raw,) = self.session.run(None, {self.input_name: x})[:1]
        return torch.from_numpy(raw)
