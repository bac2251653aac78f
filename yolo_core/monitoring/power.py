"""Power and false-alarm rate of the drift checks, simulated on synthetic drone scenes.

Why: a threshold is only stated honestly with the rate at which it fires. Each seed draws its own
baseline (frames 0..59 of `render_frame(seed)`, measured as preprocess measures them, without the
JPEG round trip on either side) and its own served window (the next 40 frames), then runs the
whole family of checks on the window as served and under each shift. A shift counts as detected
when the check it should move is violated; an unshifted window counts as a false alarm when any
check is violated.

Predictions are simulated on detection lists: each frame's labels (targets the annotator kept)
stand for the model's detections, with confidences drawn from Beta(6, 2). A class-mix shift
relabels a fraction of them; a higher altitude renders the same frames with objects scaled down,
which changes the image, the box sizes and the number of objects together.

Given a `BackboneEmbedder`, each seed's baseline frames and every served window are also embedded
and the MMD test of the embeddings joins the family; `alarm_rates(runs, EMBEDDING_CHECK)` then
counts that check alone (detected or falsely alarmed). Without one, the family is as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from yolo_core.data.stats import build_baseline, image_statistics
from yolo_core.data.synthetic import render_frame
from yolo_core.data.visdrone_classes import CATEGORY_NAMES, NAMES
from yolo_core.infer.detections import Detections
from yolo_core.monitoring.checks import DEFAULT_POLICY, Check, Policy
from yolo_core.monitoring.drift import drift_checks
from yolo_core.monitoring.embedding_drift import FEATURE
from yolo_core.monitoring.prediction_drift import prediction_profile
from yolo_core.monitoring.shifts import IMAGE_SHIFTS, relabelled

if TYPE_CHECKING:  # the embedder imports torch and the predictor: only when one is passed
    from yolo_core.monitoring.embeddings import BackboneEmbedder

WIDTH, HEIGHT, OBJECT_PX = 320, 240, (14, 48)
BASELINE_FRAMES, SERVED_FRAMES = 60, 40
CLASS_MIX_TARGET = 8  # bus: a depot or a city centre instead of the suburbs the baseline saw
EXPECTED_CHECK = {
    "darker": "image.brightness",
    "blurred": "image.sharpness",
    "hazy": "image.contrast",
    "higher_altitude": "prediction.sqrt_area",
    "class_mix": "prediction.class_mix",
}
UNITS = {
    "darker": "gain",
    "blurred": "sigma px",
    "hazy": "veil fraction",
    "higher_altitude": "object scale",
    "class_mix": "fraction relabelled to bus",
}
TARGET_POWER, MAX_FALSE_ALARMS = 0.9, 0.10
EMBEDDING_CHECK = FEATURE  # the check `alarm_rates(runs, EMBEDDING_CHECK)` counts alone


@dataclass(frozen=True)
class Shift:
    """One kind of shift at one magnitude; kind "none" is the unshifted window."""

    kind: str
    magnitude: float = 0.0

    @property
    def label(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind} ({UNITS[self.kind]} {self.magnitude:g})"


NO_SHIFT = Shift("none")
# The magnitudes the tests assert: benchmarks/drift_power.py shows each beside smaller ones.
STATED_SHIFTS = (
    Shift("darker", 0.9),
    Shift("blurred", 0.5),
    Shift("hazy", 0.2),
    Shift("higher_altitude", 0.85),
    Shift("class_mix", 0.3),
)


@dataclass(frozen=True)
class Frame:
    """A served frame as the monitor sees it: the image and the model's (simulated) answer."""

    image: np.ndarray
    detections: Detections


def render(seed: int, index: int, object_scale: float = 1.0) -> Frame:
    """Frame `index` of scene seed `seed`, objects scaled by `object_scale`, labels as detections."""
    object_px = (round(OBJECT_PX[0] * object_scale), round(OBJECT_PX[1] * object_scale))
    image, rows = render_frame(index, seed, WIDTH, HEIGHT, object_px)
    return Frame(image, pseudo_detections(rows, np.random.default_rng([seed, index, 1])))


def pseudo_detections(rows: Sequence[str], rng: np.random.Generator) -> Detections:
    """VisDrone rows of kept targets as detections clipped to the frame, scores from Beta(6, 2)."""
    boxes, class_ids = [], []
    for row in rows:
        left, top, width, height, score, category = (int(v) for v in row.split(",")[:6])
        if score == 1 and category in CATEGORY_NAMES:
            boxes.append([max(0, left), max(0, top), min(WIDTH, left + width), min(HEIGHT, top + height)])
            class_ids.append(category - 1)
    return Detections(np.array(boxes, float).reshape(-1, 4), rng.beta(6, 2, len(boxes)), class_ids)


def baseline_documents(frames: Sequence[Frame]) -> tuple[dict, dict]:
    """baseline.json as preprocess builds it from these frames, and their prediction profile."""
    records, box_sizes = [], {}
    for index, frame in enumerate(frames):
        records.append(
            {"file": f"{index:06d}.jpg", **image_statistics(frame.image), "boxes": len(frame.detections)}
        )
        sides = frame.detections.boxes[:, 2:] - frame.detections.boxes[:, :2]
        for class_id, (w, h) in zip(frame.detections.class_ids, sides, strict=True):
            box_sizes.setdefault(int(class_id), []).append((float(w), float(h)))
    baseline = build_baseline(records, box_sizes, NAMES)
    return baseline, prediction_profile([frame.detections for frame in frames], NAMES)


def shifted(frames: Sequence[Frame], shift: Shift, rng: np.random.Generator) -> list[Frame]:
    """The served frames under an image or class-mix shift (altitude is rendered, see `render`)."""
    if shift.kind in IMAGE_SHIFTS:
        return [Frame(IMAGE_SHIFTS[shift.kind](f.image, shift.magnitude), f.detections) for f in frames]
    if shift.kind == "class_mix":
        return [
            Frame(f.image, relabelled(f.detections, shift.magnitude, CLASS_MIX_TARGET, rng)) for f in frames
        ]
    return list(frames)


def window_checks(
    baseline: tuple[dict, dict],
    frames: Sequence[Frame],
    policy: Policy,
    embedder: BackboneEmbedder | None = None,
    reference_embeddings: np.ndarray | None = None,
) -> list[Check]:
    """The run's checks on one served window against one seed's baseline (and, with an
    embedder, the window's embeddings against the baseline frames' `reference_embeddings`)."""
    served_images = [image_statistics(frame.image) for frame in frames]
    served_predictions = prediction_profile([frame.detections for frame in frames], NAMES)
    served_embeddings = None if embedder is None else embedder.embed([frame.image for frame in frames])
    return drift_checks(
        baseline[0],
        served_images,
        baseline[1],
        served_predictions,
        policy,
        reference_embeddings=reference_embeddings,
        served_embeddings=served_embeddings,
    )


def seed_checks(
    seed: int,
    shifts: Iterable[Shift],
    policy: Policy = DEFAULT_POLICY,
    embedder: BackboneEmbedder | None = None,
) -> dict[Shift, list[Check]]:
    """One seed: its baseline, its served window, and the checks of the window under each shift."""
    baseline_frames = [render(seed, i) for i in range(BASELINE_FRAMES)]
    baseline = baseline_documents(baseline_frames)
    reference = None if embedder is None else embedder.embed([frame.image for frame in baseline_frames])
    served_range = range(BASELINE_FRAMES, BASELINE_FRAMES + SERVED_FRAMES)
    served = [render(seed, i) for i in served_range]
    results = {}
    for shift in shifts:
        if shift.kind == "higher_altitude":
            frames = [render(seed, i, shift.magnitude) for i in served_range]
        else:
            frames = shifted(served, shift, np.random.default_rng([seed, 2]))
        results[shift] = window_checks(baseline, frames, policy, embedder, reference)
    return results


def alarmed(shift: Shift, checks: Sequence[Check], check_name: str | None = None) -> bool:
    """Detected (the shift's own check violated), or for no shift: a false alarm (any violated).
    With `check_name`, that check alone counts, for shifts and no shift alike."""
    if check_name is not None:
        return any(check.violated and check.feature_name == check_name for check in checks)
    if shift.kind == "none":
        return any(check.violated for check in checks)
    return any(check.violated and check.feature_name == EXPECTED_CHECK[shift.kind] for check in checks)


def alarm_rates(
    runs: Sequence[dict[Shift, list[Check]]], check_name: str | None = None
) -> dict[Shift, float]:
    """Per shift, the fraction of seeds' runs (from `seed_checks`) that raised its alarm: power,
    or the false-alarm rate for no shift; with `check_name`, the rates of that one check."""
    shifts = list(runs[0]) if runs else []
    return {
        shift: sum(alarmed(shift, run[shift], check_name) for run in runs) / len(runs) for shift in shifts
    }


def effects(runs: Sequence[dict[Shift, list[Check]]], check_name: str) -> dict[Shift, list[float]]:
    """Per shift, one check's effect size in each seed's run: what a minimum effect is set from."""
    shifts = list(runs[0]) if runs else []
    return {
        shift: [check.effect for run in runs for check in run[shift] if check.feature_name == check_name]
        for shift in shifts
    }
