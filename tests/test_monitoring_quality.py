"""Model quality on labelled served traffic: the ground-truth files, the join, the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from yolo_core.errors import UserInputError
from yolo_core.evaluation.ground_truth import GroundTruth
from yolo_core.infer.detections import Detections
from yolo_core.monitoring import ground_truth as gt
from yolo_core.monitoring.checks import decide
from yolo_core.monitoring.ground_truth import GroundTruthSet, read_ground_truth
from yolo_core.monitoring.quality import (
    NO_INFERENCE_ID,
    NO_LABELS,
    NOT_SERVED,
    REPEATED_ID,
    join_ground_truth,
    quality_outcomes,
)

NAMES = {0: "car", 1: "bus"}
CONF = 0.25
REGISTERED = {
    "metrics": {
        "map50_95": {"value": 0.97},  # the whole curve's: never what the monitor compares with
        "served_map50_95": {"value": 0.9, "conf": CONF},
        "precision_pooled": {"value": 0.9, "conf": CONF},
        "recall_pooled": {"value": 0.9, "conf": CONF},
    }
}


def _line(event_id: str, data: object, encoding: str = "JSON") -> str:
    record = {
        "groundTruthData": {"data": json.dumps(data), "encoding": encoding},
        "eventMetadata": {"eventId": event_id},
        "eventVersion": "0",
    }
    return json.dumps(record) + "\n"


def _label(class_id: object, box: list) -> dict:
    return {"class_id": class_id, "box": box}


def test_single_and_batched_lines_are_read_from_a_folder_and_bad_lines_counted(tmp_path):
    (tmp_path / "2024" / "05").mkdir(parents=True)
    (tmp_path / "2024" / "05" / "a.jsonl").write_text(
        _line("one", {"labels": [_label(1, [0, 0, 10, 20])]})
        + _line("batch", {"images": [{"labels": []}, {"labels": [_label(0, [5, 5, 9, 9])] * 2}]})
        + "{cut by a crash\n\n"
        + _line("one", {"labels": []})  # a second line for the same request
    )
    (tmp_path / "b.jsonl").write_text(
        _line("far", {"labels": [_label(2, [0, 0, 1, 1])]})
        + _line("flat", {"labels": [_label(0, [0, 0, 0, 5])]})
        + _line("csv", {"labels": []}, encoding="CSV")
        + json.dumps({"groundTruthData": {"data": "{}", "encoding": "JSON"}})
        + "\n"
    )
    (tmp_path / "notes.txt").write_text("not a label file\n")
    truth = read_ground_truth(tmp_path, num_classes=2)
    assert sorted(truth.labels) == [("batch", 0), ("batch", 1), ("one", 0)]
    assert truth.labels[("one", 0)].boxes.tolist() == [[0, 0, 10, 20]]
    assert truth.labels[("one", 0)].class_ids.tolist() == [1]
    assert len(truth.labels[("batch", 0)].class_ids) == 0 and len(truth.labels[("batch", 1)].class_ids) == 2
    assert truth.lines == 8
    assert truth.unreadable == {
        gt.NOT_JSON: 1,
        gt.DUPLICATE: 1,
        "class_id outside 0..1": 1,
        gt.BAD_LABEL: 1,
        gt.NOT_JSON_ENCODED: 1,
        gt.NO_EVENT_ID: 1,
    }


def test_a_missing_path_or_a_file_without_a_readable_line_names_the_path(tmp_path):
    with pytest.raises(UserInputError, match=r"nowhere.jsonl: no such file"):
        read_ground_truth(tmp_path / "nowhere.jsonl", num_classes=2)
    bad = tmp_path / "labels.jsonl"
    bad.write_text(_line("x", {"labels": [_label(5, [0, 0, 1, 1])]}) + "oops\n")
    with pytest.raises(UserInputError, match=r"labels.jsonl: no readable line .*1 not JSON"):
        read_ground_truth(bad, num_classes=2)


def _truth(boxes: list[list[float]], classes: list[int]) -> GroundTruth:
    return GroundTruth(np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64))


def test_served_images_join_their_labels_on_inference_id_and_index():
    a, b, c = (_truth([[0, 0, 5, 5]], [0]) for _ in range(3))
    truth = GroundTruthSet(labels={("r1", 0): a, ("r1", 1): b, ("r9", 0): c})
    dets = [Detections.empty() for _ in range(5)]
    served = [
        ("r1", 0, dets[0]),
        ("r1", 1, dets[1]),
        ("r1", 1, dets[2]),
        (None, 0, dets[3]),
        ("r2", 0, dets[4]),
    ]
    pairs, unpaired = join_ground_truth(served, truth)
    assert [(d is dets[0] or d is dets[1], t) for d, t in pairs] == [(True, a), (True, b)]
    assert unpaired == {REPEATED_ID: 1, NO_INFERENCE_ID: 1, NO_LABELS: 1, NOT_SERVED: 1}


def _scenes(seed: int, images: int = 40) -> list[GroundTruth]:
    rng = np.random.default_rng(seed)
    truths = []
    for _ in range(images):
        n = int(rng.integers(2, 7))
        xy = rng.uniform(0, 500, (n, 2))
        truths.append(
            _truth(np.hstack([xy, xy + rng.uniform(15, 60, (n, 2))]).tolist(), rng.integers(0, 2, n))
        )
    return truths


def _found(truth: GroundTruth, keep: np.ndarray, false_boxes: int, rng) -> Detections:
    """The kept objects found (high scores), false alarms beside them, and a low-score false box
    that a caller with a lower X-Conf got and the monitor must not count."""
    far = rng.uniform(600, 900, (false_boxes + 1, 2))
    boxes = np.vstack([truth.boxes[keep], np.hstack([far, far + 30])])
    scores = np.concatenate([rng.uniform(0.5, 1.0, keep.sum() + false_boxes), [0.1]])
    classes = np.concatenate([truth.class_ids[keep], rng.integers(0, 2, false_boxes + 1)])
    return Detections(boxes, scores, classes)


def _pairs(seed: int, degraded: bool) -> list[tuple[Detections, GroundTruth]]:
    rng = np.random.default_rng(seed + 100)
    pairs = []
    for truth in _scenes(seed):
        keep = rng.random(len(truth.class_ids)) < 0.5 if degraded else np.ones(len(truth.class_ids), bool)
        pairs.append((_found(truth, keep, 2 if degraded else 0, rng), truth))
    return pairs


def test_detections_that_match_the_labels_raise_no_quality_alarm():
    outcomes, monitored = quality_outcomes(_pairs(0, degraded=False), NAMES, REGISTERED, CONF)
    assert [o.feature_name for o in outcomes] == ["quality.map50_95", "quality.precision", "quality.recall"]
    assert monitored["precision"] == 1.0 and monitored["recall"] == 1.0  # the 0.1 boxes left out
    assert monitored["map50_95"] > 0.95 and monitored["images"] == 40 and monitored["skipped"] == {}
    assert (
        monitored["detections"]
        == monitored["labels"]
        == sum(v["labels"] for v in monitored["per_class"].values())
    )
    checks = decide(outcomes)
    assert not any(check.violated for check in checks)
    assert all(check.effect < 0 for check in checks)  # better than registered


def test_missing_half_the_objects_and_adding_false_boxes_is_a_quality_drop():
    outcomes, monitored = quality_outcomes(_pairs(0, degraded=True), NAMES, REGISTERED, CONF)
    assert 0.2 < monitored["recall"] < 0.7 and monitored["precision"] < 0.7 and monitored["map50_95"] < 0.7
    checks = decide(outcomes)
    assert all(check.violated for check in checks), [check.description for check in checks]
    assert {check.effect_name for check in checks} == {"quality_drop"}
    assert all(check.effect > 0.2 for check in checks)


def test_the_bootstrap_is_determined_by_its_seed():
    pairs = _pairs(1, degraded=True)
    registered = {"metrics": {"served_map50_95": {"value": 0.45, "conf": CONF}}}  # near the monitored mAP

    def bootstrap_p(seed: int) -> float:
        outcomes, _ = quality_outcomes(pairs, NAMES, registered, CONF, seed=seed, resamples=200)
        return outcomes[0].p_value

    assert bootstrap_p(3) == bootstrap_p(3)
    assert len({bootstrap_p(seed) for seed in range(4)}) > 1


def test_an_evaluation_without_the_served_figures_skips_them_and_says_why():
    old = {"metrics": {"map50_95": {"value": 0.6}, "precision": {"value": 0.8, "conf": CONF}}}
    outcomes, monitored = quality_outcomes(_pairs(0, degraded=True), NAMES, old, CONF)
    assert outcomes == []
    assert set(monitored["skipped"]) == {"quality.map50_95", "quality.precision", "quality.recall"}
    assert "no metrics.served_map50_95" in monitored["skipped"]["quality.map50_95"]
    assert 0.0 < monitored["map50_95"] < 1.0  # still measured for the report


def test_a_registered_figure_at_another_conf_is_not_compared():
    outcomes, monitored = quality_outcomes(_pairs(0, degraded=False), NAMES, REGISTERED, serving_conf=0.5)
    assert outcomes == [] and "at conf 0.25, the monitor at 0.5" in monitored["skipped"]["quality.recall"]


def test_no_labelled_pairs_skip_every_figure():
    outcomes, monitored = quality_outcomes([], NAMES, REGISTERED, CONF)
    assert outcomes == [] and monitored["images"] == 0 and len(monitored["skipped"]) == 3


def test_the_ground_truth_format_is_documented_where_users_read_it():
    doc = gt.__doc__ or ""
    assert '"groundTruthData"' in doc and '"eventId"' in doc and '"images"' in doc
    assert Path(gt.__file__).name == "ground_truth.py"
