"""A monitoring run's drift checks in one call: what the `monitor` entry point computes.

Why one function: image checks, prediction checks and the label-size checks form one family, so
they are corrected together (see `checks.decide`); the caller reads the files and writes the
documents, this only decides.
"""

from __future__ import annotations

from collections.abc import Sequence

from yolo_core.monitoring.checks import DEFAULT_POLICY, Check, Policy, decide
from yolo_core.monitoring.image_drift import image_outcomes
from yolo_core.monitoring.prediction_drift import label_size_outcomes, prediction_outcomes


def drift_checks(
    baseline: dict,
    served_images: Sequence[dict],
    prediction_reference: dict | None = None,
    served_predictions: dict | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> list[Check]:
    """All checks of a run: served image statistics against baseline.json and, when both profiles
    are given, served predictions against the reference profile and the baseline's label sizes."""
    outcomes = image_outcomes(baseline, served_images)
    if prediction_reference is not None and served_predictions is not None:
        outcomes += prediction_outcomes(prediction_reference, served_predictions)
        outcomes += label_size_outcomes(baseline, served_predictions)
    return decide(outcomes, policy)
