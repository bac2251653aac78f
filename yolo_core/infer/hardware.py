"""Pick the device, numeric precision and backend a predictor runs with, from the hardware.

bfloat16 only pays on CPUs with bf16 matrix units (Intel AMX): elsewhere oneDNN emulates it and
it is slower than fp32. So "auto" reads the CPU flags instead of assuming. Where a CPU runs fp32,
ONNX Runtime's fused kernels beat eager torch (2.9x against 2.0x Ultralytics' per-image predict
on a 2-core EPYC, benchmarks/RESULTS.md), so "auto" picks it there when it is installed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from yolo_core.infer.choices import BACKENDS, PRECISIONS

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The feature flags of the first CPU listed, or an empty set where there is no /proc."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_has_bf16_matrix_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    return "amx_bf16" in cpu_flags(cpuinfo)


def resolve_device(device: str) -> torch.device:
    """'auto' is the first GPU when there is one; 'cpu', 'cuda', 'cuda:1' and '0' are taken as given."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device.isdigit():
        device = f"cuda:{device}"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA GPU is available")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' is fp16 on a GPU, bf16 on a CPU with AMX, and fp32 otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ValueError("precision 'fp16' needs a GPU; use 'bf16' or 'fp32' on a CPU")
        return precision
    if device.type == "cuda":
        return "fp16"
    return "bf16" if cpu_has_bf16_matrix_units() else "fp32"


def resolve_backend(backend: str, device: torch.device, precision: str) -> str:
    """'auto' is ONNX Runtime for fp32 on a CPU (when installed), torch everywhere else (GPU
    half precision, bf16 on AMX: what only torch runs here)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    fp32_on_cpu = device.type == "cpu" and resolve_precision(precision, device) == "fp32"
    return "onnx" if fp32_on_cpu and importlib.util.find_spec("onnxruntime") is not None else "torch"
