"""Evaluation: our metrics agree with pycocotools on the same predictions; report and plots."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from yolo_core.data.images_io import read_prepared_image
from yolo_core.errors import UserInputError
from yolo_core.evaluation import evaluate as evaluate_module
from yolo_core.evaluation.coco_check import CrossCheckFailed, coco_map, cross_check, cross_check_failure
from yolo_core.evaluation.evaluate import (
    EvaluationSettings,
    evaluate_model,
    evaluate_split,
    pass_gives_served_answers,
)
from yolo_core.evaluation.ground_truth import GroundTruth, label_file_for, load_split, read_labels
from yolo_core.evaluation.metrics import MetricsAccumulator, match_detections, precision_recall
from yolo_core.infer.agreement import FLOOR, matched_share
from yolo_core.infer.detections import Detections
from yolo_core.infer.predictor import Predictor
from yolo_core.model_card import ModelCard
from yolo_core.monitoring.prediction_drift import prediction_profile
from yolo_core.monitoring.reference import monitoring_reference
from yolo_core.serving.options import InferenceOptions
from yolo_core.weights import sha256_of

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
    check = on_disk["coco_check"]
    assert check["passed"] and check["tolerance"] == 0.01
    assert check["map50"]["difference"] <= 0.01 and check["map50_95"]["difference"] <= 0.01
    assert check["map50_95"]["ours"] == on_disk["metrics"]["map50_95"]["value"]
    serving_conf = InferenceOptions().conf  # what the server answers with when a client sets none
    assert on_disk["settings"]["serving_conf"] == serving_conf
    assert on_disk["metrics"]["precision"]["conf"] == on_disk["metrics"]["recall"]["conf"] == serving_conf
    at_max_f1 = on_disk["metrics"]["precision_at_max_f1"]
    assert 0.0 <= at_max_f1["value"] <= 1.0 and 0.0 < at_max_f1["conf"] < 1.0
    assert on_disk["metrics"]["recall_at_max_f1"]["conf"] == at_max_f1["conf"]
    assert set(on_disk["per_class"]) <= set(
        json.loads((trained_model_dir / "model.json").read_text())["class_names"]
    )
    assert on_disk["model"]["weights_sha256"] == sha256_of(trained_model_dir / "best.pt")  # verified
    assert (tmp_path / "pr_curve.png").exists() and (tmp_path / "confusion_matrix.png").exists()


def test_dataset_with_other_classes_is_rejected(trained_model_dir, tmp_path):
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "images" / "val" / "a.jpg").write_bytes(b"")
    (tmp_path / "data.yaml").write_text("train: images/val\nval: images/val\nnames: {0: cat}\n")
    with pytest.raises(UserInputError, match="1 classes, but the model has"):
        evaluate_model(trained_model_dir, tmp_path, tmp_path / "out", EvaluationSettings(device="cpu"))


def _box(x: float) -> list[float]:
    return [x, 0.0, x + 20.0, 20.0]


def test_precision_and_recall_are_at_the_serving_conf_and_at_max_f1_beside_them():
    """Four cars. Three found with high scores, then, above the serving conf (0.25), three false
    alarms and the fourth car; below it one more false alarm. At the serving conf the server
    returns 7 boxes, 4 right: precision 4/7, recall 4/4. The best F1 is on the plateau between
    0.93 and 0.35, where 3 of 4 cars are found and nearly nothing else: recall 3/4."""
    truth = GroundTruth(np.array([_box(0), _box(100), _box(200), _box(300)], np.float32), np.zeros(4))
    scored = [(0, 0.95), (100, 0.94), (200, 0.93), (500, 0.35), (600, 0.32), (300, 0.30), (700, 0.27)]
    scored.append((800, 0.10))
    dets = Detections(np.array([_box(x) for x, _ in scored]), np.array([s for _, s in scored]), np.zeros(8))
    accumulator = MetricsAccumulator({0: "car"}, serving_conf=0.25)
    accumulator.add(dets, truth)
    ours = accumulator.finish()
    assert ours["serving_conf"] == 0.25
    assert ours["precision"] == pytest.approx(4 / 7) and ours["recall"] == pytest.approx(1.0)
    assert 0.35 < ours["max_f1_conf"] < 0.93
    assert ours["recall_at_max_f1"] == pytest.approx(0.75)
    assert ours["precision_at_max_f1"] > 0.9  # Ultralytics interpolates it between 1 (0.93) and 3/4 (0.35)
    assert ours["per_class"]["car"]["precision"] == pytest.approx(4 / 7)
    assert ours["per_class"]["car"]["recall_at_max_f1"] == pytest.approx(0.75)


def test_precision_and_recall_are_counted_per_class():
    hits = np.array([True, False, True, False])
    pred_cls, target_cls = np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2])
    precision, recall = precision_recall(hits, pred_cls, target_cls, np.array([0, 1, 2]))
    assert precision.tolist() == [0.5, 0.5, 0.0]  # class 2: no detection, precision 0 as in Ultralytics
    assert recall.tolist() == [0.5, 1.0, 0.0]


def test_served_detections_given_apart_are_what_precision_and_recall_count():
    """Sliced inference: what the server returns may differ from the low-conf pass (merged boxes)."""
    truth = GroundTruth(np.array([_box(0), _box(100)], np.float32), np.zeros(2))
    dets = Detections(np.array([_box(0), _box(100)]), np.array([0.9, 0.8]), np.zeros(2))
    served = Detections(np.array([[0, 0, 120, 20]]), np.array([0.9]), np.zeros(1))  # one merged box
    accumulator = MetricsAccumulator({0: "car"}, serving_conf=0.25)
    accumulator.add(dets, truth, served)
    ours = accumulator.finish()
    assert ours["map50"] == pytest.approx(1.0, abs=0.01)
    assert ours["precision"] == 0.0 and ours["recall"] == 0.0


def test_evaluation_conf_above_the_serving_conf_is_refused():
    with pytest.raises(UserInputError, match=r"conf=0.5 is above the serving conf 0.25"):
        EvaluationSettings(conf=0.5, serving_conf=0.25)


def _shifted(truths: list[GroundTruth], pixels: float) -> list[GroundTruth]:
    """The same objects, misplaced: fed to one evaluator only, it must make the two disagree."""
    return [GroundTruth(t.boxes + pixels, t.class_ids) for t in truths]


def test_cross_check_fails_with_both_figures_when_the_evaluators_disagree():
    preds, truths = _noisy_predictions(0)
    accumulator = MetricsAccumulator(NAMES)
    for dets, truth in zip(preds, truths, strict=True):
        accumulator.add(dets, truth)
    ours = accumulator.finish()
    assert cross_check_failure(cross_check(ours, coco_map(preds, truths, NAMES))) is None
    record = cross_check(ours, coco_map(preds, _shifted(truths, 8), NAMES))
    assert not record["passed"] and record["map50_95"]["difference"] > 0.01
    reason = cross_check_failure(record)
    assert "\n" not in reason and "0.01 tolerance" in reason
    assert (
        f"ours {record['map50_95']['ours']:.4f} vs pycocotools {record['map50_95']['pycocotools']:.4f}"
        in reason
    )


def test_evaluation_fails_after_writing_the_report_when_pycocotools_disagrees(
    trained_model_dir, synthetic_dataset, tmp_path, monkeypatch
):
    real_coco_map = evaluate_module.coco_map
    monkeypatch.setattr(
        evaluate_module,
        "coco_map",
        lambda preds, truths, names, max_det: real_coco_map(preds, _shifted(truths, 8), names, max_det),
    )
    with pytest.raises(CrossCheckFailed, match=r"COCO cross-check failed: .*mAP50-95 ours .* vs pycocotools"):
        evaluate_model(trained_model_dir, synthetic_dataset, tmp_path, EvaluationSettings(device="cpu"))
    check = json.loads((tmp_path / "evaluation.json").read_text())["coco_check"]
    assert not check["passed"] and check["map50_95"]["difference"] > 0.01


@pytest.mark.parametrize("seed", [0, 1])
def test_the_served_map_is_the_curve_cut_at_the_serving_conf(seed):
    """The monitor sees only the served boxes: their mAP50-95 can only lose the low-conf tail."""
    preds, truths = _noisy_predictions(seed)
    accumulator = MetricsAccumulator(NAMES, serving_conf=0.25)
    for dets, truth in zip(preds, truths, strict=True):
        accumulator.add(dets, truth)
    ours = accumulator.finish()
    assert 0.0 <= ours["served_map50_95"] <= ours["map50_95"] + 1e-9 <= 1.0 + 1e-9
    assert 0.0 < ours["precision_pooled"] < 1.0 and 0.0 < ours["recall_pooled"] < 1.0


def test_served_map_drops_when_true_boxes_score_below_the_serving_conf():
    truth = GroundTruth(np.array([_box(0), _box(100)], np.float32), np.zeros(2))
    dets = Detections(np.array([_box(0), _box(100)]), np.array([0.9, 0.1]), np.zeros(2))
    accumulator = MetricsAccumulator({0: "car"}, serving_conf=0.25)
    accumulator.add(dets, truth)
    ours = accumulator.finish()
    assert ours["map50_95"] > 0.9 and 0.3 < ours["served_map50_95"] < 0.7  # half the cars served
    assert ours["precision_pooled"] == 1.0 and ours["recall_pooled"] == 0.5


def test_the_report_holds_the_served_figures_at_the_serving_conf(
    trained_model_dir, synthetic_dataset, tmp_path
):
    evaluate_model(trained_model_dir, synthetic_dataset, tmp_path, EvaluationSettings(device="cpu"))
    metrics = json.loads((tmp_path / "evaluation.json").read_text())["metrics"]
    served = metrics["served_map50_95"]
    assert 0.0 <= served["value"] <= metrics["map50_95"]["value"] + 1e-9 and served["value"] <= 1.0
    for name in ("served_map50_95", "precision_pooled", "recall_pooled"):
        assert metrics[name]["conf"] == InferenceOptions().conf
        assert 0.0 <= metrics[name]["value"] <= 1.0


def _as_boxes(detections: list[Detections]) -> list[tuple]:
    return [(d.boxes, d.scores, d.class_ids) for d in detections]


def test_the_evaluation_pass_gives_the_answers_the_monitoring_reference_profiles(
    trained_model_dir, synthetic_dataset, tmp_path
):
    """NMS keeps boxes greedily by score, so the low-conf pass cut at the serving conf is what the
    server answers: the reference takes it instead of a second pass. Checked against a fresh pass
    read at a lower floor, both ways on confident boxes (never at the same cut)."""
    settings = EvaluationSettings(device="cpu")
    evaluation = evaluate_split(trained_model_dir, synthetic_dataset, tmp_path, settings)
    files = load_split(synthetic_dataset, "val").image_files
    served = evaluation.served
    assert served is not None and len(served) == len(files)
    assert all((d.scores >= settings.serving_conf).all() for d in served)
    fresh = Predictor.from_model_dir(trained_model_dir, device="cpu").predict(
        [read_prepared_image(f) for f in files], conf=FLOOR
    )
    for side, other in ((served, fresh), (fresh, served)):
        matched, total = matched_share(_as_boxes(side), _as_boxes(other))
        assert total > 0 and matched >= 0.98 * total, (matched, total)

    reference = monitoring_reference(
        trained_model_dir,
        synthetic_dataset,
        evaluation.report,
        settings.serving_conf,
        device="cpu",
        served=served,
    )
    card = ModelCard.load(trained_model_dir)
    assert reference["prediction_profile"] == prediction_profile(served, card.names)
    assert reference["embedding_reference"]


def test_only_a_pass_that_matches_the_server_hands_its_answers_on(trained_model_dir) -> None:
    card, settings = ModelCard.load(trained_model_dir), EvaluationSettings(device="cpu")
    assert pass_gives_served_answers(settings, card)
    assert pass_gives_served_answers(replace(settings, imgsz=card.imgsz), card)
    for other in ({"slice_size": 320}, {"iou": 0.5}, {"max_det": 100}, {"imgsz": card.imgsz + 32}):
        assert not pass_gives_served_answers(replace(settings, **other), card), other
