"""A monitoring run's drift checks in one call: what the `monitor` entry point computes.

Why one function: image checks, backbone-embedding checks, prediction checks and the label-size
checks form one family, so they are corrected together (see `checks.decide`); the caller reads the
files (and embeds the images) and writes the documents, this only decides.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolo_core.monitoring.checks import DEFAULT_POLICY, Check, Outcome, Policy, decide
from yolo_core.monitoring.embedding_drift import mmd_outcome, permutations_for
from yolo_core.monitoring.image_drift import image_outcomes
from yolo_core.monitoring.prediction_drift import class_size_outcomes, prediction_outcomes


def drift_checks(
    baseline: dict,
    served_images: Sequence[dict],
    prediction_reference: dict | None = None,
    served_predictions: dict | None = None,
    policy: Policy = DEFAULT_POLICY,
    reference_embeddings: np.ndarray | None = None,
    served_embeddings: np.ndarray | None = None,
    extra: Sequence[Outcome] = (),
) -> list[Check]:
    """All checks of a run: served image statistics against baseline.json; when both profiles
    are given, served predictions against the reference profile (box sizes per class too);
    when both embedding arrays are given (`embedding_drift.reference_vectors`, and the served
    images through the same `BackboneEmbedder`), an MMD test of the served embeddings; and any
    `extra` outcomes of the run (model quality against ground truth), corrected with the rest."""
    outcomes = image_outcomes(baseline, served_images) + list(extra)
    if prediction_reference is not None and served_predictions is not None:
        outcomes += prediction_outcomes(prediction_reference, served_predictions)
        outcomes += class_size_outcomes(prediction_reference, served_predictions)
    if reference_embeddings is not None and served_embeddings is not None:
        # Enough permutations that a clear shift survives Holm over the whole family.
        permutations = permutations_for(len(outcomes) + 1, policy.alpha)
        outcomes.append(mmd_outcome(reference_embeddings, served_embeddings, permutations))
    return decide(outcomes, policy)
