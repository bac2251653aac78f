"""Sliced inference: tiny objects in a 4K frame, and batching across frames changes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolo_core.data.synthetic import render_frame
from yolo_core.evaluation.ground_truth import GroundTruth
from yolo_core.evaluation.metrics import match_detections
from yolo_core.infer import merge
from yolo_core.infer.deadline import Deadline, DeadlineExceeded
from yolo_core.infer.detections import Detections
from yolo_core.infer.predictor import Predictor
from yolo_core.infer.sliced import predict_sliced

TINY_PX = (10, 11)  # pedestrians whose boxes are 11-15 px
# 256 px tiles run at the model's 320: magnified 1.25 times, the pedestrians reach the size the
# fixture model was trained on (boxes of 16-20 px); a 640 full-frame pass shrinks them 6 times.
SLICE = 256
CONF = 0.05  # the fixture model is small and briefly trained: its scores on tiny objects are low


def _truth(rows: list[str]) -> GroundTruth:
    """Scored objects of the VisDrone rows (category c is class c - 1), as xyxy pixel boxes."""
    boxes, classes = [], []
    for row in rows:
        left, top, width, height, score, category, *_ = (int(v) for v in row.split(","))
        if score == 1 and 1 <= category <= 10:
            boxes.append([left, top, left + width, top + height])
            classes.append(category - 1)
    return GroundTruth(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64))


def _recall(dets, truth: GroundTruth) -> float:
    """Share of ground-truth objects found (a detection of the same class at IoU >= 0.5)."""
    order = np.argsort(-dets.scores, kind="stable")
    found = match_detections(dets.select(order), truth)[:, 0].sum()
    return float(found) / max(1, len(truth.class_ids))


@pytest.mark.slow
def test_sliced_inference_finds_objects_under_16_px_that_a_full_frame_pass_misses(trained_model_dir: Path):
    frame, rows = render_frame(0, 5, 3840, 2160, TINY_PX, classes=("pedestrian",), density=0.08)
    truth = _truth(rows)
    sizes = np.maximum(truth.boxes[:, 2] - truth.boxes[:, 0], truth.boxes[:, 3] - truth.boxes[:, 1])
    assert len(truth.class_ids) >= 100 and sizes.max() < 16
    tiles = Predictor.from_model_dir(trained_model_dir, device="cpu", precision="fp32", batch_size=8)
    (sliced,) = predict_sliced(tiles, [frame], slice_size=SLICE, overlap=0.2, conf=CONF)
    full = Predictor.from_model_dir(trained_model_dir, imgsz=640, device="cpu", precision="fp32")
    (whole,) = full.predict([frame], conf=CONF)
    sliced_recall, whole_recall = _recall(sliced, truth), _recall(whole, truth)
    assert sliced_recall >= 0.5, sliced_recall
    assert whole_recall <= 0.05, whole_recall


def test_batching_tiles_across_frames_gives_the_same_result_as_frame_by_frame(trained_model_dir: Path):
    predictor = Predictor.from_model_dir(trained_model_dir, device="cpu", precision="fp32", batch_size=8)
    frames = [render_frame(i, 3, 720, 400, (14, 48))[0] for i in range(2)]
    together = predict_sliced(predictor, frames, slice_size=320, overlap=0.2, full_frame=True)
    for frame, joint in zip(frames, together, strict=True):
        (alone,) = predict_sliced(predictor, [frame], slice_size=320, overlap=0.2, full_frame=True)
        assert len(alone) == len(joint) > 0
        assert np.allclose(np.sort(alone.scores), np.sort(joint.scores), atol=1e-3)
    assert predict_sliced(predictor, []) == []


class _CountingEngine:
    """Stands in for the predictor's engine: counts forward passes, and leaves the caller (its
    deadline abandoned) during pass `leave_after`."""

    def __init__(self, engine, deadline: Deadline, leave_after: int) -> None:
        self.engine, self.deadline, self.leave_after, self.passes = engine, deadline, leave_after, 0
        self.fixed_square, self.names, self.stride = engine.fixed_square, engine.names, engine.stride

    def forward(self, batch):
        self.passes += 1
        if self.passes == self.leave_after:
            self.deadline.abandoned.set()  # e.g. the request timed out during this pass
        return self.engine.forward(batch)


def test_sliced_inference_stops_between_batches_once_past_its_deadline(trained_model_dir):
    """16 tiles in 8 batches of 2: after the deadline, no batch starts but the one the predictor
    had already handed to its engine (it overlaps one batch's preparation with the last's pass)."""
    frame = np.zeros((512, 512, 3), np.uint8)  # 128 px tiles, no overlap
    predictor = Predictor.from_model_dir(
        trained_model_dir, device="cpu", backend="torch", precision="fp32", batch_size=2
    )
    real_engine = predictor.engine
    deadline = Deadline.after(3600)
    predictor.engine = stand_in = _CountingEngine(real_engine, deadline, leave_after=3)
    with pytest.raises(DeadlineExceeded):
        predict_sliced(predictor, [frame], slice_size=128, overlap=0.0, deadline=deadline)
    assert stand_in.passes in (3, 4)  # of 8
    finished = Deadline.after(3600)
    predictor.engine = counted = _CountingEngine(real_engine, finished, leave_after=0)
    assert len(predict_sliced(predictor, [frame], slice_size=128, overlap=0.0, deadline=finished)) == 1
    assert counted.passes == 8


def test_predictor_checks_its_deadline_before_each_batch(tmp_path: Path):
    from test_serve_contract import build_random_model  # an untrained yolo11n: built in seconds

    predictor = Predictor.from_model_dir(
        build_random_model(tmp_path), device="cpu", precision="fp32", batch_size=2
    )
    gone = Deadline.after(3600)
    gone.abandoned.set()
    with pytest.raises(DeadlineExceeded):
        predictor.predict([np.zeros((64, 64, 3), np.uint8)] * 3, deadline=gone)
    assert len(predictor.predict([np.zeros((64, 64, 3), np.uint8)] * 3, deadline=Deadline.after(3600))) == 3


def test_the_cross_tile_merge_keeps_only_the_best_candidates_when_there_are_too_many(monkeypatch):
    corners = np.stack([np.arange(50) * 20, np.zeros(50)], axis=1)
    boxes = np.concatenate([corners, corners + 8], axis=1).astype(np.float32)  # 12 px apart: none merge
    scores = np.random.default_rng(0).permutation(50).astype(np.float32) / 50
    dets = Detections(boxes, scores, np.zeros(50, np.int64))
    assert len(merge.merge_detections(dets, "greedy_nmm", 0.5)) == 50
    monkeypatch.setattr(merge, "MAX_MERGE_CANDIDATES", 10)
    for method in merge.MERGE_METHODS:
        kept = merge.merge_detections(dets, method, 0.5)
        assert sorted(kept.scores.tolist()) == sorted(np.sort(dets.scores)[-10:].tolist())
