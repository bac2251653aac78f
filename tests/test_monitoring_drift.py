"""Drift statistics: the tests' edge cases, Model Monitor's documents, and the power to detect
synthetic shifts of drone scenes with few false alarms.

Power and false alarms are counted over 20 seeds, each with its own baseline and served window
(`yolo_core.monitoring.power`): a shift at its stated magnitude must fire its own check in at
least 90% of seeds, and an unshifted window may raise any alarm in at most 10%. Everything is a
pure function of the seeds, so the counts are the same on every run and machine.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from yolo_core.data.stats import image_statistics
from yolo_core.data.visdrone_classes import NAMES
from yolo_core.infer.detections import Detections
from yolo_core.monitoring.checks import QUALITY_DROP, Outcome, Policy, decide
from yolo_core.monitoring.documents import checks_document, statistics_document, violations_document
from yolo_core.monitoring.drift import ResampledTests, drift_checks
from yolo_core.monitoring.embedding_drift import permutations_for
from yolo_core.monitoring.image_drift import numeric_outcome
from yolo_core.monitoring.power import (
    BASELINE_FRAMES,
    MAX_FALSE_ALARMS,
    NO_SHIFT,
    STATED_SHIFTS,
    TARGET_POWER,
    Shift,
    alarm_rates,
    baseline_documents,
    render,
    seed_checks,
)
from yolo_core.monitoring.prediction_drift import detections_from_records, prediction_profile
from yolo_core.monitoring.shifts import darker
from yolo_core.monitoring.two_sample import POOLED, holm, homogeneity_test, ks_test, pool_sparse, psi

SEEDS = range(20)


def test_holm_adjusts_like_the_step_down_procedure():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


@pytest.mark.parametrize(
    ("reference", "current", "drifted"),
    [([320.0] * 60, [320.0] * 40, False), ([320.0] * 60, [640.0] * 40, True), ([320.0] * 60, [], False)],
)
def test_constant_or_empty_samples_give_finite_figures(reference, current, drifted):
    statistic, p_value = ks_test(reference, current)
    effect = psi(reference, current)
    assert all(math.isfinite(v) for v in (statistic, p_value, effect))
    [check] = decide([numeric_outcome("image.width", np.array(reference), np.array(current))])
    assert check.violated is drifted


def test_sparse_classes_are_pooled_before_the_chi_square():
    names, table = pool_sparse(
        {"car": 500, "van": 300, "bus": 2, "truck": 1}, {"car": 50, "van": 30, "bus": 1}
    )
    assert names == ["car", "van", POOLED]
    assert table.tolist() == [[500, 300, 3], [50, 30, 1]]
    assert homogeneity_test({"car": 10}, {"car": 5}) == (0.0, 1.0, 0.0)  # one category: nothing to test


def test_a_trivial_difference_in_huge_samples_is_significant_but_not_a_violation():
    rng = np.random.default_rng(0)
    reference = rng.normal(100, 10, 100_000)
    trivial, real = rng.normal(100.5, 10, 100_000), rng.normal(105, 10, 100_000)
    checks = decide([numeric_outcome("a", reference, trivial), numeric_outcome("b", reference, real)])
    assert checks[0].p_value < 1e-6 and checks[0].effect < Policy().min_psi and not checks[0].violated
    assert checks[1].violated


def test_holm_correction_spans_the_whole_run():
    outcomes = [Outcome(f"f{i}", "ks", 0.5, 0.004, 1.0, "") for i in range(3)]
    assert [c.violated for c in decide(outcomes[:1])] == [True]
    assert not any(c.violated for c in decide(outcomes))  # 3 x 0.004 > alpha 0.01


def test_detections_read_back_from_the_servers_records():
    detections = Detections([[1, 2, 11, 22], [0, 0, 4, 9]], [0.9, 0.4], [3, 0])
    again = detections_from_records(detections.to_records({0: "pedestrian", 3: "car"}))
    np.testing.assert_allclose(again.boxes, detections.boxes)
    assert again.class_ids.tolist() == [3, 0]


@pytest.fixture(scope="module")
def documents_of_a_run():
    """One seed's baseline and a darkened served window, through the JSON files they travel as."""
    frames = [render(0, i) for i in range(BASELINE_FRAMES + 20)]
    baseline, reference = baseline_documents(frames[:BASELINE_FRAMES])
    baseline, reference = json.loads(json.dumps(baseline)), json.loads(json.dumps(reference))
    served_images = [image_statistics(darker(frame.image, 0.6)) for frame in frames[BASELINE_FRAMES:]]
    served = prediction_profile([frame.detections for frame in frames[BASELINE_FRAMES:]], NAMES)
    checks = drift_checks(baseline, served_images, reference, served)
    return checks, served_images, served


def test_constraint_violations_name_each_violated_check(documents_of_a_run):
    checks, _, _ = documents_of_a_run
    violations = violations_document(checks)["violations"]
    assert {v["feature_name"] for v in violations} == {c.feature_name for c in checks if c.violated}
    assert "image.brightness" in {v["feature_name"] for v in violations}
    assert all(set(v) == {"feature_name", "constraint_check_type", "description"} for v in violations)
    assert all(v["constraint_check_type"] == "baseline_drift_check" for v in violations)
    assert len(checks_document(checks)["checks"]) == len(checks)
    json.dumps(checks_document(checks))  # plain JSON types only


def test_statistics_document_has_model_monitors_shape(documents_of_a_run):
    _, served_images, served = documents_of_a_run
    document = statistics_document(served_images, served)
    features = {f["name"]: f for f in document["features"]}
    assert document["dataset"]["item_count"] == len(served_images)
    brightness = features["image.brightness"]["numerical_statistics"]
    assert brightness["common"]["num_present"] == len(served_images)
    assert brightness["mean"] == pytest.approx(np.mean([s["brightness"] for s in served_images]))
    buckets = features["prediction.class"]["string_statistics"]["distribution"]["categorical"]["buckets"]
    assert sum(b["count"] for b in buckets) == len(served["confidence"])


@pytest.fixture(scope="module")
def runs() -> list[dict]:
    """Every seed's checks with no shift and under each stated shift (about 2 s a seed)."""
    return [seed_checks(seed, [NO_SHIFT, *STATED_SHIFTS]) for seed in SEEDS]


@pytest.mark.slow
@pytest.mark.parametrize("shift", STATED_SHIFTS, ids=lambda shift: shift.label)
def test_each_stated_shift_is_detected_with_power_at_least_0_9(runs, shift: Shift):
    assert alarm_rates(runs)[shift] >= TARGET_POWER


@pytest.mark.slow
def test_unshifted_windows_raise_false_alarms_in_at_most_10_percent_of_seeds(runs):
    assert len(runs) >= 20
    assert alarm_rates(runs)[NO_SHIFT] <= MAX_FALSE_ALARMS


@pytest.mark.slow
def test_box_sizes_per_class_see_a_higher_altitude(runs):
    altitude = next(shift for shift in STATED_SHIFTS if shift.kind == "higher_altitude")
    per_class = "prediction.sqrt_area."
    flagged = [
        {c.feature_name for c in run[altitude] if c.violated and c.feature_name.startswith(per_class)}
        for run in runs
    ]
    assert sum(len(classes) >= 3 for classes in flagged) >= TARGET_POWER * len(runs)
    unshifted = [c for run in runs for c in run[NO_SHIFT] if c.feature_name.startswith(per_class)]
    assert unshifted and not any(c.violated for c in unshifted)


def test_resampled_tests_get_resamples_for_the_whole_familys_size(documents_of_a_run):
    """The family's size is known in one place: every fixed check plus each resampled test's count;
    the resampled tests then run with enough resamples for Holm over all of them, and join it."""
    _, served_images, served = documents_of_a_run
    frames = [render(0, i) for i in range(BASELINE_FRAMES)]
    baseline, reference = json.loads(json.dumps(baseline_documents(frames)))
    fixed = drift_checks(baseline, served_images, reference, served)
    asked: list[int] = []

    def quality(resamples: int) -> list[Outcome]:
        asked.append(resamples)
        return [Outcome("quality.recall", "binomial", 0.4, 1e-6, 0.3, "0.4 vs 0.7", QUALITY_DROP)]

    checks = drift_checks(baseline, served_images, reference, served, resampled=[ResampledTests(3, quality)])
    assert asked == [permutations_for(len(fixed) + 3, Policy().alpha)]
    assert [c.feature_name for c in checks] == [c.feature_name for c in fixed] + ["quality.recall"]
