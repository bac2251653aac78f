"""`backend="auto"`: time every engine this host runs on the model's real input, keep the fastest
whose boxes agree with fp32.

No rule read from a CPU flag gets this right on every machine: on an AMD EPYC with AVX-512 BF16
a bf16 convolution runs 3.6x fp32, on an Intel Xeon with AMX OpenVINO bf16 runs 2.5x its fp32,
and where neither is present bf16 is emulated and 20x slower. So each candidate
(`engine_candidates`) runs the same probe batch, shaped as the frames to expect, at the
predictor's batch size; a candidate whose boxes agree with torch fp32 less than `MIN_AGREEMENT`
both ways (`agreement`) is never picked, however fast. The decision (`pick_engine`) is a pure
function of the measurements.

A choice is kept in the private cache under a key of everything that could change it: the CPU
model, the GPU, the thread count, the engines' versions, the weights' digest, the probe's shape
and batch size, and the candidates. A model card may carry choices measured on the training host
(`record`), used where the key matches. Measuring costs a few seconds at the first load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from yolo_core.cache_dir import private_dir
from yolo_core.errors import UserInputError, exception_line
from yolo_core.infer.agreement import Agreement, engine_agreement
from yolo_core.infer.engine_candidates import REFERENCE, EngineSpec
from yolo_core.infer.engines import Engine, build_engine
from yolo_core.infer.host import Host
from yolo_core.infer.letterbox import letterbox_batch

LOG = logging.getLogger(__name__)
MIN_AGREEMENT = 0.98
CACHE = "engines"
MIN_RUNS, MAX_RUNS, MIN_SECONDS = 3, 15, 0.6  # timed forward passes per candidate
PROBE_SEED = 20260
SOURCES = ("explicit", "measured", "cache", "model card")


@dataclass(frozen=True)
class Measurement:
    engine: EngineSpec
    images_per_s: float = 0.0  # 0: it failed to build or run
    agreement: Agreement | None = None  # None for the reference itself
    error: str = ""

    def usable(self, min_agreement: float) -> bool:
        agrees = self.agreement is None or self.agreement.holds(min_agreement)
        return self.images_per_s > 0 and agrees

    def to_dict(self) -> dict:
        return {
            **self.engine.to_dict(),
            "images_per_s": round(self.images_per_s, 2),
            "agreement": self.agreement.to_dict() if self.agreement else None,
            **({"error": self.error} if self.error else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Measurement:
        agreement = data.get("agreement")
        return cls(
            EngineSpec(data["backend"], data["precision"]),
            float(data.get("images_per_s", 0.0)),
            Agreement(**agreement) if agreement else None,
            str(data.get("error", "")),
        )


def pick_engine(measurements: Sequence[Measurement], min_agreement: float = MIN_AGREEMENT) -> Measurement:
    """The fastest measurement whose boxes agree with the reference (ties: the first listed)."""
    usable = [m for m in measurements if m.usable(min_agreement)]
    if not usable:
        failures = "; ".join(f"{m.engine.name}: {m.error or 'disagrees with fp32'}" for m in measurements)
        raise UserInputError(f"no inference engine ran the model here ({failures})")
    return max(usable, key=lambda m: m.images_per_s)


@dataclass(frozen=True)
class EngineChoice:
    """What was chosen, how, and on what evidence: logged, shown by /metrics, kept in model.json."""

    engine: EngineSpec
    source: str  # one of SOURCES
    key: str = ""
    measurements: tuple[Measurement, ...] = ()
    probe: dict = field(default_factory=dict)  # batch, canvas height and width
    host: dict = field(default_factory=dict)
    int8: dict = field(default_factory=dict)  # the quantised model's measured cost, where offered

    def to_record(self) -> dict:
        return {
            "engine": self.engine.to_dict(),
            "source": self.source,
            "key": self.key,
            "probe": self.probe,
            "host": self.host,
            "min_agreement": MIN_AGREEMENT,
            "measurements": [m.to_dict() for m in self.measurements],
            **({"int8": self.int8} if self.int8 else {}),
        }

    @classmethod
    def from_record(cls, record: dict, source: str) -> EngineChoice:
        engine = record["engine"]
        return cls(
            EngineSpec(engine["backend"], engine["precision"]),
            source,
            str(record.get("key", "")),
            tuple(Measurement.from_dict(m) for m in record.get("measurements", [])),
            dict(record.get("probe", {})),
            dict(record.get("host", {})),
            dict(record.get("int8", {})),
        )

    def summary(self) -> str:
        timings = ", ".join(
            f"{m.engine.name} {m.images_per_s:.1f}/s" + ("" if m.usable(MIN_AGREEMENT) else " (excluded)")
            for m in self.measurements
        )
        cost = ""
        if self.int8:
            drop = self.int8.get("map50_95_drop")
            cost = f"; int8 costs {drop:+.4f} mAP50-95" if drop is not None else "; int8 cost not measured"
        return f"{self.engine.name} ({self.source}{': ' + timings if timings else ''}{cost})"


def choice_key(
    host: Host, weights_sha256: str, probe: dict, candidates: Sequence[EngineSpec], int8_sha256: str = ""
) -> str:
    """A digest of everything that could change the choice (a new quantised model included)."""
    material = {
        "host": host.to_dict(),
        "weights": weights_sha256,
        "probe": probe,
        "candidates": [c.to_dict() for c in candidates],
        "min_agreement": MIN_AGREEMENT,
        **({"int8": int8_sha256} if int8_sha256 else {}),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def probe_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """Synthetic drone frames of the size to expect: objects for the agreement check to compare."""
    from yolo_core.data.synthetic import render_frame

    return [render_frame(i, PROBE_SEED, width, height, (8, 90))[0] for i in range(count)]


def time_forward(engine: Engine, canvas: np.ndarray) -> tuple[float, torch.Tensor]:
    """(images/s, raw output): the median of timed passes after two untimed ones (kernel choice,
    first-touch allocations: the first two passes of a bf16 graph run up to 2x slower)."""
    engine.forward(canvas)
    raw = engine.forward(canvas)
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < MAX_RUNS and (len(times) < MIN_RUNS or time.perf_counter() - started < MIN_SECONDS):
        begin = time.perf_counter()
        raw = engine.forward(canvas)
        if raw.is_cuda:
            torch.cuda.synchronize(raw.device)
        times.append(time.perf_counter() - begin)
    return len(canvas) / statistics.median(times), raw


class EngineCache:
    """Choices by key, one JSON file each in the private cache (written atomically)."""

    def __init__(self, root: Path | None = None) -> None:
        self.dir = private_dir(CACHE, root)

    def get(self, key: str) -> dict | None:
        path = self.dir / f"{key}.json"
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("key") == key else None

    def put(self, record: dict) -> None:
        path = self.dir / f"{record['key']}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)


@dataclass
class EngineRequest:
    """What the choice is made for."""

    weights: Path
    weights_sha256: str
    imgsz: int
    device: torch.device
    batch_size: int
    probe_shape: tuple[int, int]  # (width, height) of the frames to expect
    known: Sequence[dict] = ()  # records from the model card
    int8: dict = field(default_factory=dict)  # `QuantizedModel.summary()` where int8 is offered


def _build(spec: EngineSpec, request: EngineRequest, host: Host) -> Engine:
    return build_engine(spec, request.weights, request.imgsz, request.device, host.threads)


def _known_record(key: str, request: EngineRequest, cache: EngineCache) -> tuple[dict, str] | None:
    for record in request.known:
        if isinstance(record, dict) and record.get("key") == key:
            return record, "model card"
    record = cache.get(key)
    return (record, "cache") if record else None


def measure_engines(
    request: EngineRequest, host: Host, candidates: Sequence[EngineSpec]
) -> tuple[list[Measurement], dict[EngineSpec, Engine], dict]:
    """Time each candidate on the probe and check it against the reference; the engines built."""
    width, height = request.probe_shape
    frames = probe_frames(width, height, request.batch_size)
    engines: dict[EngineSpec, Engine] = {}
    reference = engines[REFERENCE] = _build(REFERENCE, request, host)
    canvas, _ = letterbox_batch(frames, request.imgsz, reference.stride)
    probe = {"batch": len(canvas), "height": int(canvas.shape[1]), "width": int(canvas.shape[2])}
    reference_speed, reference_raw = time_forward(reference, canvas)
    measurements: list[Measurement] = []
    for spec in candidates:
        if spec == REFERENCE:
            measurements.append(Measurement(spec, reference_speed))
            continue
        try:
            engine = engines[spec] = _build(spec, request, host)
            speed, raw = time_forward(engine, canvas)
        except UserInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - an engine that cannot run here is left out, with why
            LOG.warning("inference engine %s failed on the probe: %s", spec.name, exception_line(exc))
            measurements.append(Measurement(spec, error=exception_line(exc)))
            continue
        measurements.append(Measurement(spec, speed, engine_agreement(raw, reference_raw)))
    return measurements, engines, probe


def choose_engine(
    request: EngineRequest, host: Host, candidates: Sequence[EngineSpec], cache_root: Path | None = None
) -> tuple[EngineChoice, Engine]:
    """The engine to run and the record of why; one candidate is built as asked, unmeasured."""
    if len(candidates) == 1:
        return EngineChoice(candidates[0], "explicit", host=host.to_dict(), int8=request.int8), _build(
            candidates[0], request, host
        )
    width, height = request.probe_shape
    shape_key = {
        "batch": request.batch_size,
        "frame_width": width,
        "frame_height": height,
        "imgsz": request.imgsz,
    }
    key = choice_key(host, request.weights_sha256, shape_key, candidates, request.int8.get("ir_sha256", ""))
    cache = EngineCache(cache_root)
    known = _known_record(key, request, cache)
    if known is not None:
        choice = EngineChoice.from_record(*known)
        if choice.engine in candidates:
            LOG.info("inference engine: %s", choice.summary())
            return choice, _build(choice.engine, request, host)
    measurements, engines, probe = measure_engines(request, host, candidates)
    best = pick_engine(measurements)
    choice = EngineChoice(
        best.engine, "measured", key, tuple(measurements), probe, host.to_dict(), request.int8
    )
    cache.put(choice.to_record())
    LOG.info("inference engine: %s", choice.summary())
    return choice, engines[best.engine]


def measure_model_engines(
    weights: Path, imgsz: int, device: torch.device, batch_size: int, threads: int
) -> EngineChoice:
    """The choice `backend="auto"` makes for these weights here, at the square input a server
    expects by default: what training records in model.json, for hosts like this one."""
    from yolo_core.infer.engine_candidates import engine_candidates
    from yolo_core.infer.host import probe_host
    from yolo_core.infer.int8 import int8_offer, offered_int8
    from yolo_core.weights import sha256_of

    host = probe_host(device, threads)
    int8 = offered_int8(Path(weights), host)
    candidates = engine_candidates(host, int8=int8 is not None)
    request = EngineRequest(
        Path(weights),
        sha256_of(Path(weights)),
        imgsz,
        device,
        batch_size,
        (imgsz, imgsz),
        int8=int8_offer(int8, candidates),
    )
    return choose_engine(request, host, candidates)[0]
