"""What this host can run inference with: its processor, its GPU, and the engines installed.

Read once per predictor, from /proc/cpuinfo, torch and the engines' own reports, never assumed.
The description is also the hardware half of the engine choice's cache key: a choice measured
on one CPU model, thread count or engine version is not reused on another.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import asdict, dataclass, field

import torch

from yolo_core.vocabulary import cpu_has_bf16_instructions, cpu_model_name


@dataclass(frozen=True)
class Host:
    device: str  # "cpu" or "cuda:N"
    cpu_model: str
    cpu_bf16: bool  # native bf16 instructions (avx512_bf16 or amx_bf16)
    threads: int
    gpu: str = ""
    versions: dict[str, str] = field(default_factory=dict)  # engine -> installed version
    openvino_bf16: bool = False  # OpenVINO's CPU plugin lists BF16
    onnx_cuda: bool = False  # ONNX Runtime has its CUDA provider

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    def installed(self, engine: str) -> bool:
        return engine in self.versions

    def to_dict(self) -> dict:
        return asdict(self)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _engine_versions(on_gpu: bool) -> dict[str, str]:
    versions = {"torch": torch.__version__}
    if importlib.util.find_spec("onnxruntime") is not None:
        versions["onnx"] = _version("onnxruntime") or _version("onnxruntime-gpu")
    if not on_gpu and importlib.util.find_spec("openvino") is not None:
        versions["openvino"] = _version("openvino")
    if on_gpu and importlib.util.find_spec("tensorrt") is not None:
        import tensorrt

        versions["tensorrt"] = str(tensorrt.__version__)
    return {engine: version or "unknown" for engine, version in versions.items()}


def probe_host(device: torch.device, threads: int) -> Host:
    """This machine, as the engine choice sees it (imports the engines it finds, not more)."""
    on_gpu = device.type == "cuda"
    versions = _engine_versions(on_gpu)
    openvino_bf16 = False
    if "openvino" in versions:
        from yolo_core.infer.openvino_backend import openvino_bf16_supported

        openvino_bf16 = openvino_bf16_supported()
    onnx_cuda = False
    if on_gpu and "onnx" in versions:
        import onnxruntime

        onnx_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return Host(
        device=str(device),
        cpu_model=cpu_model_name(),
        cpu_bf16=cpu_has_bf16_instructions(),
        threads=threads,
        gpu=torch.cuda.get_device_name(device) if on_gpu else "",
        versions=versions,
        openvino_bf16=openvino_bf16,
        onnx_cuda=onnx_cuda,
    )
