"""What the inference benchmarks share: weights, frames, timing, agreement and the compute floor.

Every figure is measured in one run against its baseline on the same weights and images, since
the machine is shared and absolute numbers move between runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from entrypoints.environment import configure_offline  # noqa: E402

# oneDNN capped below bf16 (ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI: a Cascade Lake's instructions on a
# newer Xeon, the "CPU without bf16" proxy) emulates bf16, which the engine choice's cache key
# cannot see: such a run measures its own choices in a cache of its own.
if os.environ.get("ONEDNN_MAX_CPU_ISA") and not os.environ.get("XDG_CACHE_HOME"):
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="bench-isa-cap-cache-")
configure_offline()

import torch  # noqa: E402

from yolo_core.infer.agreement import CONFIDENT, FLOOR, matched_share  # noqa: E402
from yolo_core.infer.detections import Detections  # noqa: E402
from yolo_core.infer.hardware import DTYPES, resolve_device  # noqa: E402
from yolo_core.runtime import apply_thread_count, cpu_thread_count  # noqa: E402
from yolo_core.vocabulary import cpu_flags  # noqa: E402

AGREEMENT_CONF = FLOOR  # both sides of an agreement figure run at this confidence


def common_parser(doc: str) -> argparse.ArgumentParser:
    """A script's parser, described by its docstring's first line, with the shared options."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    add_common_args(parser)
    return parser


def add_common_args(parser) -> None:
    add = parser.add_argument
    add("--device", default="auto", help="auto, cpu, cuda, cuda:0")
    add("--weights", type=Path, help="a .pt checkpoint (a trained one for meaningful agreement figures)")
    add("--model", default="yolo11n.yaml", help="architecture for random weights when --weights is absent")
    add(
        "--precisions",
        default="auto",
        help="comma list of fp32,bf16,fp16,int8 (int8: a model made by `quantize` beside --weights); "
        "auto: every one this host runs",
    )
    add("--repeats", type=int, default=3, help="timed repeats; the median is reported")
    add(
        "--backends",
        default="auto",
        help="comma list of torch,onnx,openvino,tensorrt; auto: the measured choice, then every engine here",
    )
    add(
        "--letterbox",
        default="auto",
        help="comma list of host,device (torch only); auto: the predictor's choice",
    )
    add("--json", type=Path, help="write the results here as JSON")


def prepare_weights(args) -> tuple[Path, bool]:
    """(checkpoint path, given?): the given weights, or random ones built from the yaml."""
    if args.weights:
        return args.weights, True
    from ultralytics import YOLO

    path = Path(tempfile.mkdtemp(prefix="bench-weights-")) / f"{Path(args.model).stem}-random.pt"
    YOLO(args.model).save(path)
    return path, False


@dataclass(frozen=True)
class Variant:
    """One configuration of our predictor that a benchmark runs ("auto": the measured choice)."""

    backend: str
    precision: str
    letterbox: str = "auto"

    @property
    def name(self) -> str:
        if self.backend == "auto":
            return "auto"
        place = [f"letterbox on {self.letterbox}"] if self.letterbox != "auto" else []
        return " ".join([self.backend, self.precision, *place])

    def predictor_options(self) -> dict[str, str]:
        return {"backend": self.backend, "precision": self.precision, "letterbox": self.letterbox}


def host_engines(device: torch.device, weights: Path | None = None) -> list:
    """Every (engine, precision) this host runs natively, as the predictor's "auto" measures them
    (OpenVINO int8 where the weights have a quantised model: `quantize`)."""
    from yolo_core.infer.engine_candidates import native_engines
    from yolo_core.infer.host import probe_host
    from yolo_core.infer.int8 import find_quantized

    int8 = weights is not None and find_quantized(weights) is not None
    return native_engines(probe_host(device, cpu_thread_count()), int8)


def our_variants(device: torch.device, args) -> list[Variant]:
    """ "auto" first, then each engine and precision this host runs (or those asked for with
    --backends/--precisions), torch in each letterbox place asked for."""
    backends, precisions = _comma_list(args.backends), _comma_list(args.precisions)
    places = _comma_list(getattr(args, "letterbox", "auto"))
    variants = [Variant("auto", "auto")] if "auto" in backends else []
    for spec in host_engines(device, getattr(args, "weights", None)):
        if "auto" not in backends and spec.backend not in backends:
            continue
        if "auto" not in precisions and spec.precision not in precisions:
            continue
        for place in places if spec.backend == "torch" else ["auto"]:
            variants.append(Variant(spec.backend, spec.precision, place))
    return variants


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def describe_machine(device: torch.device) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "cpu_threads": cpu_thread_count(),
        "bf16_instructions": sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"}),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, object]:
    """Median wall seconds of `repeats` calls and the last result, after one untimed call with
    the same work (oneDNN and cuDNN pick their kernels per input shape on first sight)."""
    result = fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def matmul_flops_per_second(device: torch.device, precision: str, size: int | None = None) -> float:
    """FLOP/s of a large square matrix product in this precision: the machine's compute ceiling
    (int8: operations/s of torch's int8 product, the VNNI or AMX-int8 kernels where present)."""
    size = size or (8192 if device.type == "cuda" else 2048)
    if precision == "int8":
        a = torch.randint(-128, 128, (size, size), dtype=torch.int8, device=device)
        b, product = a.clone(), torch._int_mm
    else:
        a = torch.randn(size, size, device=device).to(DTYPES[precision])
        b, product = torch.randn(size, size, device=device).to(DTYPES[precision]), torch.matmul
    with torch.inference_mode():
        for _ in range(2):
            product(a, b)
        runs = 10 if device.type == "cuda" else 3
        sync(device)
        start = time.perf_counter()
        for _ in range(runs):
            product(a, b)
        sync(device)
    return 2 * size**3 * runs / (time.perf_counter() - start)


def model_flops(weights: Path, height: int, width: int) -> float:
    """FLOPs of one forward pass of the fused model at an input of height x width (thop)."""
    from ultralytics.utils.torch_utils import get_flops

    from yolo_core.infer.torch_backend import load_ultralytics_model

    model = load_ultralytics_model(weights).fuse(verbose=False)
    return float(get_flops(model, [height, width])) * 1e9


def letterboxed_shape(height: int, width: int, imgsz: int, stride: int = 32) -> tuple[int, int]:
    """The network input our letterbox gives a frame of this size (see yolo_core.infer.letterbox)."""
    gain = min(imgsz / height, imgsz / width)
    return math.ceil(round(height * gain) / stride) * stride, math.ceil(round(width * gain) / stride) * stride


def agreement(a: list[Detections], b: list[Detections]) -> float | None:
    """Share of `a`'s confident boxes (score >= 0.35) matched one to one by a same-class box of `b`
    scoring >= 0.1 at IoU >= 0.5 (the engine choice's rule: a box at a threshold on one side may
    sit just under it on the other); None when `a` has no confident box. Run both sides at a
    confidence of at most 0.1."""
    matched, total = matched_share(
        [(d.boxes, d.scores, d.class_ids) for d in a], [(d.boxes, d.scores, d.class_ids) for d in b]
    )
    return matched / total if total else None


def both_ways(a: list[Detections], b: list[Detections]) -> dict:
    a_in_b, b_in_a = agreement(a, b), agreement(b, a)
    return {
        "a_in_b": None if a_in_b is None else round(a_in_b, 4),
        "b_in_a": None if b_in_a is None else round(b_in_a, 4),
        "confident_a": sum(int((d.scores >= CONFIDENT).sum()) for d in a),
        "confident_b": sum(int((d.scores >= CONFIDENT).sum()) for d in b),
    }


def fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def agreement_cells(agreement: dict) -> tuple[str, str]:
    """Both directions of an agreement figure (ours in theirs, theirs in ours) as table cells."""
    return fraction(agreement["a_in_b"]), fraction(agreement["b_in_a"])


def use_threads(device: torch.device, threads: int | None = None) -> None:
    """Every core unless told otherwise (Ultralytics itself caps CPU inference at cores - 1)."""
    if device.type == "cpu":
        apply_thread_count(threads or cpu_thread_count())


def ultralytics_default_threads() -> int:
    """Ultralytics' own CPU thread rule, min(8, cores - 1), applied to the cores we may use."""
    return min(8, max(1, cpu_thread_count() - 1))


def write_json(path: Path | None, results: dict) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"results written to {path}")


def device_from(args) -> torch.device:
    return resolve_device(args.device)


def run_clients(client: Callable[[int], None], clients: int, failures: list[str]) -> float:
    """Run `client(index)` on `clients` threads at once; the wall time from the first start to the
    last finish. Prints the first of the `failures` the clients recorded."""
    import threading

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if failures:
        print(f"  {len(failures)} requests failed, first: {failures[0]}")
    return wall


def subprocess_env() -> dict[str, str]:
    """This environment with the repository on PYTHONPATH, for `python -m entrypoints.*` children."""
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env
