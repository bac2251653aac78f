"""Evaluation: our metrics agree with pycocotools on the same predictions; report and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from yolo_core.errors import UserInputError
from yolo_core.evaluation.coco_check import coco_map
from yolo_core.evaluation.evaluate import EvaluationSettings, evaluate_model
from yolo_core.evaluation.ground_truth import GroundTruth, label_file_for, read_labels
from yolo_core.evaluation.metrics import MetricsAccumulator, match_detections
from yolo_core.infer.detections import Detections

NAMES = {0: "car", 1: "bus"}


def test_matching_is_one_to_one_per_class_in_score_order():
    truth = GroundTruth(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32), np.array([0, 0]))
    dets = Detections(
        np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 0, 30, 10], [20, 0, 30, 10]], np.float32),
        np.array([0.9, 0.8, 0.7, 0.6], np.float32),
        np.array([0, 0, 1, 0]),
    )
    correct = match_detections(dets, truth)
    assert correct[:, 0].tolist() == [True, False, False, True]  # a duplicate and a wrong class miss
    assert correct[3].all() and not correct[1].any()


def _noisy_predictions(seed: int):
    """Ground truth for 20 images, and predictions that find most objects with jittered boxes."""
    rng = np.random.default_rng(seed)
    truths, preds = [], []
    for _ in range(20):
        n = int(rng.integers(1, 8))
        xy = rng.uniform(0, 500, (n, 2))
        boxes = np.hstack([xy, xy + rng.uniform(10, 80, (n, 2))]).astype(np.float32)
        classes = rng.integers(0, 2, n)
        truths.append(GroundTruth(boxes, classes))
        keep = rng.random(n) < 0.85
        jitter = rng.normal(0, 3, (n, 4)).astype(np.float32)
        false_xy = rng.uniform(0, 500, (2, 2))
        false_boxes = np.hstack([false_xy, false_xy + 30]).astype(np.float32)
        preds.append(
            Detections(
                np.vstack([(boxes + jitter)[keep], false_boxes]),
                np.concatenate([rng.uniform(0.4, 1.0, keep.sum()), rng.uniform(0.0, 0.6, 2)]),
                np.concatenate([classes[keep], rng.integers(0, 2, 2)]),
            )
        )
    return preds, truths


@pytest.mark.parametrize("seed", [0, 1])
def test_our_map_agrees_with_pycocotools_on_the_same_predictions(seed, tmp_path):
    preds, truths = _noisy_predictions(seed)
    accumulator = MetricsAccumulator(NAMES)
    for dets, truth in zip(preds, truths, strict=True):
        accumulator.add(dets, truth)
    ours = accumulator.finish(plots_dir=tmp_path)
    coco = coco_map(preds, truths, NAMES)
    assert 0.3 < ours["map50_95"] < ours["map50"] < 1.0
    assert abs(ours["map50"] - coco["map50"]) <= 0.01
    assert abs(ours["map50_95"] - coco["map50_95"]) <= 0.01
    assert (tmp_path / "pr_curve.png").stat().st_size > 1000
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 1000


def test_perfect_predictions_score_one():
    truth = GroundTruth(np.array([[0, 0, 10, 10], [20, 20, 60, 50]], np.float32), np.array([0, 1]))
    dets = Detections(truth.boxes, np.array([0.9, 0.8], np.float32), truth.class_ids)
    accumulator = MetricsAccumulator(NAMES)
    accumulator.add(dets, truth)
    ours = accumulator.finish()
    assert ours["map50"] == pytest.approx(1.0, abs=0.01) and ours["map50_95"] == pytest.approx(1.0, abs=0.01)
    assert coco_map([dets], [truth], NAMES) == pytest.approx({"map50": 1.0, "map50_95": 1.0})


def test_label_rows_are_checked(tmp_path):
    label = tmp_path / "labels" / "val" / "a.txt"
    label.parent.mkdir(parents=True)
    label.write_text("0 0.5 0.5 0.2 0.4\n\n7 0.1 0.1 0.1 0.1\n")
    with pytest.raises(UserInputError, match=r"a.txt:3"):
        read_labels(label, 100, 50, num_classes=2)
    label.write_text("1 0.5 0.5 0.2 0.4\n")
    truth = read_labels(label, 100, 50, num_classes=2)
    assert truth.boxes.tolist() == [pytest.approx([40, 15, 60, 35])] and truth.class_ids.tolist() == [1]
    assert label_file_for(tmp_path / "images" / "val" / "a.jpg") == label


def test_evaluating_the_trained_model_writes_a_property_file_report(
    trained_model_dir, synthetic_dataset, tmp_path
):
    report = evaluate_model(trained_model_dir, synthetic_dataset, tmp_path, EvaluationSettings(device="cpu"))
    on_disk = json.loads((tmp_path / "evaluation.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    for name in ("map50", "map50_95", "precision", "recall"):
        assert 0.0 <= on_disk["metrics"][name]["value"] <= 1.0
    assert on_disk["metrics"]["map50"]["value"] > 0.3  # the fixture model learned
    check = on_disk["coco_cross_check"]
    assert check["map50_difference"] <= 0.01 and check["map50_95_difference"] <= 0.01
    assert set(on_disk["per_class"]) <= set(
        json.loads((trained_model_dir / "model.json").read_text())["class_names"]
    )
    assert (tmp_path / "pr_curve.png").exists() and (tmp_path / "confusion_matrix.png").exists()


def test_dataset_with_other_classes_is_rejected(trained_model_dir, tmp_path):
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "images" / "val" / "a.jpg").write_bytes(b"")
    (tmp_path / "data.yaml").write_text("train: images/val\nval: images/val\nnames: {0: cat}\n")
    with pytest.raises(UserInputError, match="1 classes, but the model has"):
        evaluate_model(trained_model_dir, tmp_path, tmp_path / "out", EvaluationSettings(device="cpu"))
