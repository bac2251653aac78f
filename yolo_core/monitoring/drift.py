"""A monitoring run's drift checks in one call: what the `monitor` entry point computes.

Why one function: image checks, backbone-embedding checks, prediction checks and the label-size
checks form one family, so they are corrected together (see `checks.decide`); the caller reads the
files (and embeds the images) and writes the documents, this only decides. It is also the one place
that knows the family's size, which the resampled tests (MMD permutations, the quality bootstrap)
need before they run: enough resamples that a clear effect survives Holm over the whole family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from yolo_core.monitoring.checks import DEFAULT_POLICY, Check, Outcome, Policy, decide
from yolo_core.monitoring.embedding_drift import mmd_outcome, permutations_for
from yolo_core.monitoring.image_drift import image_outcomes
from yolo_core.monitoring.prediction_drift import class_size_outcomes, prediction_outcomes


@dataclass(frozen=True)
class ResampledTests:
    """Tests whose p-values come from resampling: at most `count` outcomes, computed by `run` from
    the number of resamples the family's size calls for."""

    count: int
    run: Callable[[int], Sequence[Outcome]]


def drift_checks(
    baseline: dict,
    served_images: Sequence[dict],
    prediction_reference: dict | None = None,
    served_predictions: dict | None = None,
    policy: Policy = DEFAULT_POLICY,
    reference_embeddings: np.ndarray | None = None,
    served_embeddings: np.ndarray | None = None,
    resampled: Sequence[ResampledTests] = (),
) -> list[Check]:
    """All checks of a run: served image statistics against baseline.json; when both profiles
    are given, served predictions against the reference profile (box sizes per class too);
    when both embedding arrays are given (`embedding_drift.reference_vectors`, and the served
    images through the same `BackboneEmbedder`), an MMD test of the served embeddings; and the
    run's other `resampled` tests (model quality against ground truth), corrected with the rest."""
    outcomes = image_outcomes(baseline, served_images)
    if prediction_reference is not None and served_predictions is not None:
        outcomes += prediction_outcomes(prediction_reference, served_predictions)
        outcomes += class_size_outcomes(prediction_reference, served_predictions)
    tests = list(resampled)
    if reference_embeddings is not None and served_embeddings is not None:
        tests.append(ResampledTests(1, lambda n: [mmd_outcome(reference_embeddings, served_embeddings, n)]))
    resamples = permutations_for(len(outcomes) + sum(test.count for test in tests), policy.alpha)
    for test in tests:
        outcomes += test.run(resamples)
    return decide(outcomes, policy)
