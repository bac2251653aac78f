"""Which (engine, precision) pairs a host can run, and which of them a request leaves open.

A pure function of the host's description: "auto" leaves every pair this host runs natively
(emulated bf16, >20x slower than fp32 on a CPU without bf16 instructions, is never a candidate;
OpenVINO int8 only where the weights have a quantised model whose mAP cost was measured);
an explicit backend or precision narrows the list; an explicit pair the host cannot run is a
`UserInputError` naming it, never a silent substitute.
"""

from __future__ import annotations

from dataclasses import dataclass

from yolo_core.errors import UserInputError
from yolo_core.infer.choices import BACKENDS
from yolo_core.infer.host import Host
from yolo_core.vocabulary import INFERENCE_PRECISIONS


@dataclass(frozen=True, order=True)
class EngineSpec:
    backend: str  # one of choices.ENGINES
    precision: str  # fp32, bf16, fp16 or int8

    @property
    def name(self) -> str:
        return f"{self.backend} {self.precision}"

    def to_dict(self) -> dict[str, str]:
        return {"backend": self.backend, "precision": self.precision}


# What every other engine must agree with: torch in fp32 on the same device.
REFERENCE = EngineSpec("torch", "fp32")


def native_engines(host: Host, int8: bool = False) -> list[EngineSpec]:
    """Every pair this host runs at full speed, the reference first; `int8`: the weights have a
    quantised model with its measured cost (`yolo_core.infer.int8`)."""
    specs = [EngineSpec("torch", "fp32")]
    if host.on_gpu:
        specs.append(EngineSpec("torch", "fp16"))
        if host.installed("onnx") and host.onnx_cuda:
            specs.append(EngineSpec("onnx", "fp32"))
        if host.installed("tensorrt"):
            specs += [EngineSpec("tensorrt", "fp16"), EngineSpec("tensorrt", "fp32")]
        return specs
    if host.cpu_bf16:
        specs.append(EngineSpec("torch", "bf16"))
    if host.installed("onnx"):
        specs.append(EngineSpec("onnx", "fp32"))
    if host.installed("openvino"):
        specs.append(EngineSpec("openvino", "fp32"))
        if host.openvino_bf16:
            specs.append(EngineSpec("openvino", "bf16"))
        if int8:
            specs.append(EngineSpec("openvino", "int8"))
    return specs


def _why_not(host: Host, spec: EngineSpec) -> str | None:
    """Why this host cannot run an explicitly requested pair; None when it can."""
    backend, precision = spec.backend, spec.precision
    where = "a GPU" if host.on_gpu else "this CPU"
    if backend == "openvino" and host.on_gpu:
        return "backend 'openvino' runs on the CPU here; use --device cpu"
    if backend == "tensorrt" and not host.on_gpu:
        return "backend 'tensorrt' needs a CUDA GPU"
    if backend != "torch" and not host.installed(backend):
        return f"backend {backend!r} is not installed (pip install {_package(backend)})"
    if precision == "fp16" and not host.on_gpu and backend != "openvino":
        return "precision 'fp16' needs a GPU; use 'bf16' or 'fp32' on a CPU"
    if backend == "onnx" and precision != "fp32":
        return f"backend 'onnx' runs fp32 only, not {precision!r}"
    if precision == "int8" and backend != "openvino":
        return f"precision 'int8' runs a quantised model on backend 'openvino', not {backend!r}"
    if backend == "openvino" and precision == "fp16":
        return "backend 'openvino' runs fp32 or bf16 on a CPU, not 'fp16'"
    if backend == "openvino" and precision == "bf16" and not host.openvino_bf16:
        return f"precision 'bf16' with backend 'openvino': OpenVINO finds no bf16 support on {where}"
    if backend == "tensorrt" and precision == "bf16":
        return "backend 'tensorrt' runs fp16 or fp32 here, not 'bf16'"
    return None


def _runs(precision: str) -> str:
    """The backend an explicit precision means when no backend was named."""
    return "openvino" if precision == "int8" else "torch"


def _package(backend: str) -> str:
    return {"onnx": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}.get(backend, backend)


def engine_candidates(
    host: Host, backend: str = "auto", precision: str = "auto", int8: bool = False
) -> list[EngineSpec]:
    """The pairs left open by the request: one when both are given (checked), else the native
    pairs that match what was given (at least one, or a `UserInputError` saying why none)."""
    if backend not in BACKENDS:
        raise UserInputError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in INFERENCE_PRECISIONS:
        raise UserInputError(f"precision must be one of {INFERENCE_PRECISIONS}, got {precision!r}")
    if backend != "auto" and precision != "auto":
        spec = EngineSpec(backend, precision)
        reason = _why_not(host, spec)
        if reason:
            raise UserInputError(reason)
        return [spec]
    if backend != "auto" and backend != "torch" and not host.installed(backend):
        raise UserInputError(_why_not(host, EngineSpec(backend, "fp32")) or f"backend {backend!r}")
    matching = [
        spec
        for spec in native_engines(host, int8)
        if backend in ("auto", spec.backend) and precision in ("auto", spec.precision)
    ]
    if matching:
        return matching
    # Nothing native matches, e.g. bf16 asked of a CPU without bf16 instructions: torch still runs
    # it (emulated, slowly), as asked; the other engines say why they cannot.
    asked = EngineSpec(backend if backend != "auto" else _runs(precision), precision)
    reason = _why_not(host, asked)
    if reason:
        raise UserInputError(reason)
    return [asked]
