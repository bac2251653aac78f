"""Pick the device, numeric precision and backend a predictor runs with, from the hardware.

bfloat16 only pays on CPUs with bf16 matrix units (Intel AMX): elsewhere oneDNN emulates it and
it is slower than fp32. So "auto" reads the CPU flags instead of assuming. Where a CPU runs fp32,
ONNX Runtime's fused kernels beat eager torch (2.9x against 2.0x Ultralytics' per-image predict
on a 2-core EPYC, benchmarks/RESULTS.md), so "auto" picks it there when it is installed.
"""

from __future__ import annotations

import importlib.util

import torch

from yolo_core import devices
from yolo_core.errors import UserInputError
from yolo_core.infer.choices import BACKENDS
from yolo_core.vocabulary import cpu_has_amx_bf16

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# The probe under the name this module reads it by at each call (tests stand a fake in for it).
cpu_has_bf16_matrix_units = cpu_has_amx_bf16


def resolve_device(device: str) -> torch.device:
    """'auto' is the first GPU when there is one; 'cpu', 'cuda', 'cuda:1' and '0' are taken as given."""
    return devices.resolve_torch_device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is fp16 on a GPU, bf16 on a CPU with AMX, and fp32 otherwise (`yolo_core.devices`)."""
    on_gpu = device.type == "cuda"
    amx = False if on_gpu or precision != "auto" else cpu_has_bf16_matrix_units()
    return devices.resolve_precision(precision, on_gpu=on_gpu, names=devices.INFERENCE, amx=amx)


def resolve_backend(backend: str, device: torch.device, precision: str) -> str:
    """'auto' is ONNX Runtime for fp32 on a CPU (when installed), torch everywhere else (GPU
    half precision, bf16 on AMX: what only torch runs here)."""
    if backend not in BACKENDS:
        raise UserInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    fp32_on_cpu = device.type == "cpu" and resolve_precision(precision, device) == "fp32"
    return "onnx" if fp32_on_cpu and importlib.util.find_spec("onnxruntime") is not None else "torch"
