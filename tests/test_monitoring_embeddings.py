"""Drift on backbone embeddings: the MMD test's decisions far from its thresholds, its edge cases,
the reference document, and (slow) the embedder on an untrained yolo11n built from its yaml.

Every sample is drawn from a fixed seed and every model runs in float32 on the CPU, so the numbers
are the same on every run; each assertion leaves a wide margin to the threshold it is held to.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from yolo_core.errors import UserInputError
from yolo_core.monitoring.checks import DEFAULT_POLICY, MMD2, decide
from yolo_core.monitoring.embedding_drift import (
    FEATURE,
    MAX_ROWS,
    embedding_reference,
    mmd_outcome,
    permutations_for,
    reference_vectors,
)

PERMUTATIONS = 999  # smallest attainable p-value 0.001


def gaussian(rows: int, seed: int, shift: float = 0.0, dimensions: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).normal(shift, 1.0, (rows, dimensions)).astype(np.float32)


def test_same_distribution_is_not_flagged():
    outcome = mmd_outcome(gaussian(120, 1), gaussian(80, 2), PERMUTATIONS)
    assert (outcome.feature_name, outcome.test, outcome.effect_name) == (FEATURE, "mmd", MMD2)
    assert outcome.p_value > 0.2
    assert outcome.effect < DEFAULT_POLICY.min_mmd2 / 3
    assert not decide([outcome])[0].violated


def test_a_shift_of_one_standard_deviation_is_flagged():
    outcome = mmd_outcome(gaussian(120, 1), gaussian(80, 2, shift=1.0), PERMUTATIONS)
    assert outcome.p_value == pytest.approx(1 / (PERMUTATIONS + 1))
    assert outcome.effect > 5 * DEFAULT_POLICY.min_mmd2
    assert outcome.statistic == outcome.effect
    assert decide([outcome])[0].violated


def test_same_seed_same_outcome_and_samples_are_capped():
    reference, current = gaussian(1000, 3), gaussian(700, 4, shift=0.1)
    first = mmd_outcome(reference, current, 200, seed=7)
    assert first == mmd_outcome(reference, current, 200, seed=7)
    assert f"reference n={MAX_ROWS}, served n={MAX_ROWS}" in first.detail


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        (np.zeros((0, 8)), gaussian(50, 1, dimensions=8)),
        (gaussian(50, 1, dimensions=8), np.zeros((0, 8))),
        (gaussian(4, 1, dimensions=8), gaussian(50, 2, shift=3.0, dimensions=8)),
        (np.zeros((0,)), np.zeros((0,))),
    ],
)
def test_empty_or_tiny_samples_are_no_evidence(reference, current):
    outcome = mmd_outcome(reference, current)
    assert (outcome.statistic, outcome.p_value, outcome.effect) == (0.0, 1.0, 0.0)
    assert not decide([outcome])[0].violated


def test_constant_samples_give_finite_numbers():
    outcome = mmd_outcome(np.ones((20, 4)), np.ones((20, 4)), 99)
    assert np.isfinite([outcome.statistic, outcome.p_value, outcome.effect]).all()
    assert not decide([outcome])[0].violated


def test_vectors_of_another_length_are_refused():
    with pytest.raises(ValueError, match="8 and 16 dimensions"):
        mmd_outcome(gaussian(20, 1, dimensions=8), gaussian(20, 2, dimensions=16))


def test_enough_permutations_for_holm_over_the_family():
    permutations = permutations_for(family_size=15, alpha=0.01)
    assert 15 / (permutations + 1) <= 0.01 / 2


def test_reference_document_round_trip():
    vectors = gaussian(400, 5, dimensions=6) * 1e-10  # an untrained backbone's scale
    document = json.loads(json.dumps(embedding_reference(vectors, max_rows=300, seed=1)))
    assert (document["version"], document["kind"], document["dimensions"]) == (1, "embedding_reference", 6)
    restored = reference_vectors(document, "reference.json")
    assert restored.shape == (300, 6) and restored.dtype == np.float32
    rows = np.sort(np.random.default_rng(1).choice(400, 300, replace=False))
    np.testing.assert_allclose(restored, vectors[rows], rtol=1e-4)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"version": 1, "kind": "statistics", "dimensions": 2, "vectors": []}, "not an embedding reference"),
        ({"version": 2, "kind": "embedding_reference", "dimensions": 2, "vectors": []}, "version"),
        ({"version": 1, "kind": "embedding_reference", "dimensions": 0, "vectors": []}, "dimensions"),
        ({"version": 1, "kind": "embedding_reference", "dimensions": 2, "vectors": [[1, 2], [3]]}, "vectors"),
        ({"version": 1, "kind": "embedding_reference", "dimensions": 1, "vectors": [["a"]]}, "not a number"),
        ([1, 2], "not an embedding reference"),
    ],
)
def test_a_bad_reference_document_names_its_file(document, message):
    with pytest.raises(UserInputError, match=f"model/embeddings.json: .*{message}"):
        reference_vectors(document, "model/embeddings.json")


@pytest.fixture(scope="module")
def untrained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt + model.json of a yolo11n from its yaml, random weights from torch seed 0."""
    from yolo_core.runtime import configure_offline

    configure_offline()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from yolo_core.data.visdrone_classes import NAMES
    from yolo_core.model_card import ModelCard
    from yolo_core.weights import sha256_of

    folder = tmp_path_factory.mktemp("untrained-yolo11n")
    names = [NAMES[i] for i in sorted(NAMES)]
    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    torch.save({"model": model, "train_args": {"imgsz": 320}}, folder / "best.pt")
    card = ModelCard(class_names=names, imgsz=320, model="yolo11n.yaml")
    card.weights_sha256 = sha256_of(folder / card.weights_file)
    card.save(folder)
    return folder


@pytest.mark.slow
def test_backbone_embeddings_flag_a_darkened_stream_and_not_the_same_stream(untrained_model_dir):
    from yolo_core.monitoring.embeddings import BackboneEmbedder
    from yolo_core.monitoring.power import render
    from yolo_core.monitoring.shifts import darker

    embedder = BackboneEmbedder.from_model_dir(untrained_model_dir, batch_size=8)
    assert embedder.layer == 10  # yolo11's C2PSA, the last backbone layer
    frames = [render(0, index).image for index in range(70)]
    reference = embedder.embed(frames[:40])
    assert reference.shape == (40, 256) and reference.dtype == np.float32
    assert np.array_equal(reference, embedder.embed(frames[:40]))  # deterministic
    np.testing.assert_allclose(
        embedder.embed(frames[:3]), reference[:3], rtol=1e-4, atol=1e-6 * np.abs(reference).max()
    )
    assert embedder.embed([]).shape == (0, 0)

    same = mmd_outcome(reference, embedder.embed(frames[40:]), PERMUTATIONS)
    dark = mmd_outcome(reference, embedder.embed([darker(frame, 0.5) for frame in frames[40:]]), PERMUTATIONS)
    assert same.p_value > 0.05 and same.effect < DEFAULT_POLICY.min_mmd2
    assert dark.p_value == pytest.approx(1 / (PERMUTATIONS + 1)) and dark.effect > 5 * DEFAULT_POLICY.min_mmd2
    assert [check.violated for check in decide([same, dark])] == [False, True]


@pytest.mark.slow
def test_an_image_of_another_shape_embeds_as_it_would_alone(untrained_model_dir):
    from yolo_core.monitoring.embeddings import BackboneEmbedder
    from yolo_core.monitoring.power import render

    embedder = BackboneEmbedder.from_model_dir(untrained_model_dir, batch_size=4)
    frames = [render(1, index).image for index in range(3)]
    portrait = np.ascontiguousarray(frames[2].transpose(1, 0, 2))  # 240 x 320 -> 320 x 240
    mixed = embedder.embed([frames[0], portrait, frames[1]])
    alone = embedder.embed([portrait])
    np.testing.assert_allclose(mixed[1], alone[0], rtol=1e-4, atol=1e-6 * np.abs(alone).max())
