"""Prediction drift: what the model answers on served images against a reference of its answers.

Why: a model can see images that pass every image-statistic check and still answer differently
(objects smaller from a higher altitude, another class mix on another site). The reference is a
"prediction profile": the model's detections on the validation set, or on the first window of
served traffic, kept as raw values in a small JSON document, since the KS and chi-square tests
need samples rather than summaries:

    {"version": 1, "kind": "prediction_profile", "image_count": N,
     "boxes_per_image": [...], "confidence": [...], "sqrt_area": [...],
     "class_counts": {"car": 812, ...}, "sqrt_area_per_class": {"car": [...], ...}}

A served window is profiled by the same function and compared profile to profile. Detections
within one image are treated as independent draws: true of the synthetic scenes, optimistic for
real ones (a car park yields many similar cars), where the minimum PSI is the guard.
Box sizes are also compared per class (a higher altitude shrinks every class; a new camera may
change one), against the reference's own answers for that class, never against the labels: a model's
boxes differ from its labels (tighter, looser) without any drift, and that bias would alarm on
every window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolo_core.infer.detections import Detections
from yolo_core.monitoring.checks import Outcome
from yolo_core.monitoring.image_drift import numeric_outcome
from yolo_core.monitoring.two_sample import homogeneity_test

PROFILE_KIND = "prediction_profile"
NUMERIC = ("boxes_per_image", "confidence", "sqrt_area")
PREFIX = "prediction."
MIN_CLASS_BOXES = 20  # fewer served boxes of a class say little about its size distribution


def prediction_profile(detections: Sequence[Detections], names: dict[int, str]) -> dict:
    """The JSON profile of per-image detections (boxes xyxy in source pixels, scores, class ids)."""
    merged = Detections.concatenate(list(detections))
    sides = np.clip(merged.boxes[:, 2:] - merged.boxes[:, :2], 0, None)
    sqrt_area = np.sqrt(sides[:, 0] * sides[:, 1])
    labels = np.array([names.get(int(c), str(int(c))) for c in merged.class_ids], dtype=object)
    classes = sorted(set(labels.tolist()))
    return {
        "version": 1,
        "kind": PROFILE_KIND,
        "image_count": len(detections),
        "boxes_per_image": [len(d) for d in detections],
        "confidence": _rounded(merged.scores),
        "sqrt_area": _rounded(sqrt_area),
        "class_counts": {name: int(np.sum(labels == name)) for name in classes},
        "sqrt_area_per_class": {name: _rounded(sqrt_area[labels == name]) for name in classes},
    }


def detections_from_records(records: Sequence[dict]) -> Detections:
    """Detections from the server's JSON rows (`box`, `score`, `class_id`), as data capture holds them."""
    return Detections(
        np.array([r["box"] for r in records], np.float32).reshape(-1, 4),
        np.array([r["score"] for r in records], np.float32),
        np.array([r["class_id"] for r in records], np.int64),
    )


def prediction_outcomes(reference: dict, served: dict) -> list[Outcome]:
    """Boxes per image, confidences and box sizes (KS), and the class mix (chi-square)."""
    outcomes = [
        numeric_outcome(PREFIX + name, np.asarray(reference[name], float), np.asarray(served[name], float))
        for name in NUMERIC
    ]
    return [*outcomes, class_mix_outcome(reference["class_counts"], served["class_counts"])]


def class_mix_outcome(reference: dict[str, int], served: dict[str, int]) -> Outcome:
    """Chi-square of homogeneity over class counts, classes too rare to test pooled together."""
    statistic, p_value, effect = homogeneity_test(reference, served)
    return Outcome(
        PREFIX + "class_mix", "chi2", statistic, p_value, effect,
        f"baseline shares {_shares(reference)}; served shares {_shares(served)}",
    )  # fmt: skip


def class_size_outcomes(reference: dict, served: dict, min_boxes: int = MIN_CLASS_BOXES) -> list[Outcome]:
    """Per class with enough boxes on both sides, served box sizes against the reference's (KS)."""
    known = reference.get("sqrt_area_per_class", {})
    return [
        numeric_outcome(f"{PREFIX}sqrt_area.{name}", np.asarray(known[name], float), np.asarray(sizes, float))
        for name, sizes in sorted(served["sqrt_area_per_class"].items())
        if len(sizes) >= min_boxes and len(known.get(name, ())) >= min_boxes
    ]


def _shares(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    top = sorted(counts.items(), key=lambda item: -item[1])[:4]
    return ", ".join(f"{name} {count / total:.0%}" for name, count in top) or "none"


def _median(sizes: Sequence[float]) -> str:
    return f"served median {float(np.median(sizes)):.4g} (n={len(sizes)})"


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in values]
