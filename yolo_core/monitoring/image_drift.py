"""Data drift: served images' statistics against the preprocess baseline's per-image values.

Why per statistic: a darker, blurred or hazy stream moves brightness, sharpness or contrast, and
naming the statistic that moved tells a person what changed in the field. The served images must
be measured by `yolo_core.data.stats.image_statistics`, as the baseline was. Aspect (width over
height) is derived here, since a camera swap can keep one side and change the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolo_core.data.stats import IMAGE_FEATURES
from yolo_core.monitoring.checks import Outcome
from yolo_core.monitoring.two_sample import ks_test, psi

DRIFT_FEATURES = (*IMAGE_FEATURES, "aspect")
PREFIX = "image."


def feature_values(records: Sequence[dict], name: str) -> np.ndarray:
    """One statistic over image records (baseline `per_image` rows or served measurements)."""
    if name == "aspect":
        return np.array([r["width"] / r["height"] for r in records if r["height"]], float)
    return np.array([r[name] for r in records], float)


def numeric_outcome(feature_name: str, reference: np.ndarray, current: np.ndarray) -> Outcome:
    """KS test and PSI of one numeric feature, with both medians for the reader."""
    statistic, p_value = ks_test(reference, current)
    return Outcome(
        feature_name=feature_name,
        test="ks",
        statistic=statistic,
        p_value=p_value,
        effect=psi(reference, current),
        detail=f"baseline median {_median(reference)}, served median {_median(current)}",
    )


def image_outcomes(baseline: dict, served: Sequence[dict]) -> list[Outcome]:
    """One outcome per image statistic: served measurements against baseline.json's `per_image`."""
    reference = baseline["per_image"]
    return [
        numeric_outcome(PREFIX + name, feature_values(reference, name), feature_values(served, name))
        for name in DRIFT_FEATURES
    ]


def _median(values: np.ndarray) -> str:
    return f"{float(np.median(values)):.4g} (n={values.size})" if values.size else "n/a (n=0)"
