"""The batched predictor: source-pixel boxes for mixed sizes, precision choice, ONNX parity."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_core.errors import UserInputError
from yolo_core.evaluation.ground_truth import GroundTruth, load_split
from yolo_core.evaluation.metrics import match_detections
from yolo_core.infer.detections import Detections
from yolo_core.infer.predictor import Predictor
from yolo_core.infer.sliced import predict_sliced


def matched_fraction(a: Detections, b: Detections) -> float:
    """Share of `a`'s boxes matched one-to-one by a same-class box of `b` at IoU 0.5."""
    if len(a) == 0:
        return 1.0
    order = np.argsort(-a.scores, kind="stable")
    return float(match_detections(a.select(order), GroundTruth(b.boxes, b.class_ids))[:, 0].mean())


# Two engines (or two resamplings) move scores a little: a box right at the threshold may be on one
# side only. So each side's confident boxes are looked for among all of the other side's boxes
# above a much lower threshold, never counts compared at one threshold.
CONFIDENT, LOW = 0.35, 0.1


def agree_both_ways(a: Detections, b: Detections, required: float = 0.98) -> bool:
    return (
        matched_fraction(a.select(a.scores >= CONFIDENT), b) >= required
        and matched_fraction(b.select(b.scores >= CONFIDENT), a) >= required
    )


@pytest.fixture(scope="module")
def predictor(trained_model_dir: Path) -> Predictor:
    return Predictor.from_model_dir(
        trained_model_dir, device="cpu", precision="fp32", batch_size=4, backend="torch"
    )


@pytest.fixture(scope="module")
def val_images(synthetic_dataset: Path) -> list[np.ndarray]:
    files = load_split(synthetic_dataset, "val").image_files[:3]
    return [cv2.imread(str(f)) for f in files]


def _embed(
    image: np.ndarray, scale: float, canvas_hw: tuple[int, int], offset: tuple[int, int]
) -> np.ndarray:
    """The image scaled and pasted on a grey canvas at (x, y) = offset."""
    scaled = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    canvas = np.full((*canvas_hw, 3), 90, np.uint8)
    x, y = offset
    canvas[y : y + scaled.shape[0], x : x + scaled.shape[1]] = scaled
    return canvas


def _moved(dets: Detections, scale: float, x: int, y: int) -> Detections:
    return Detections(dets.boxes * scale + np.array([x, y, x, y], np.float32), dets.scores, dets.class_ids)


def _boxes_only(dets: Detections) -> Detections:
    """The same boxes under one class: where they land is the question, not what they are called."""
    return Detections(dets.boxes, dets.scores, np.zeros_like(dets.class_ids))


def test_boxes_are_in_source_pixels_for_a_batch_of_mixed_sizes(predictor, val_images):
    """The same scene, scaled and placed differently in frames of different shapes, batched
    together: each frame's boxes are the single-image boxes moved by that placement. The frames
    are sized so that the scene reaches the network at about its trained scale. Confident boxes
    on one side are looked for among all boxes on the other, so scores near the threshold that
    move a little with resampling do not count. Classes are left out: a briefly trained model may
    call a van a car at another scale (seen with another training seed), and that says nothing of
    where the boxes are."""
    image = val_images[0]
    alone = predictor.predict([image], conf=LOW)[0]
    assert (alone.scores >= CONFIDENT).sum() >= 2, "the trained model should find objects"
    placements = [(1.0, (320, 320), (0, 0)), (2.0, (640, 704), (50, 0)), (1.25, (440, 400), (0, 30))]
    frames = [_embed(image, s, hw, off) for s, hw, off in placements]
    batched = predictor.predict(frames, conf=LOW)
    for (scale, _, (x, y)), dets in zip(placements, batched, strict=True):
        expected = _moved(alone, scale, x, y)
        assert agree_both_ways(_boxes_only(dets), _boxes_only(expected), required=0.8)


def test_results_do_not_depend_on_batch_size(trained_model_dir, val_images):
    one = Predictor.from_model_dir(trained_model_dir, device="cpu", precision="fp32", batch_size=1)
    many = Predictor.from_model_dir(trained_model_dir, device="cpu", precision="fp32", batch_size=8)
    for a, b in zip(one.predict(val_images, conf=LOW), many.predict(val_images, conf=LOW), strict=True):
        assert (a.scores >= CONFIDENT).sum() > 0
        assert agree_both_ways(a, b, required=1.0)


def test_output_types_and_names(predictor, val_images):
    assert predictor.names[0] == "pedestrian" and predictor.precision == "fp32"
    (dets,) = predictor.predict(val_images[:1], conf=CONFIDENT, max_det=2)
    assert (
        dets.boxes.dtype == np.float32
        and dets.scores.dtype == np.float32
        and dets.class_ids.dtype == np.int64
    )
    assert len(dets) == 2 and (dets.scores >= CONFIDENT).all()  # the scene has more than two objects
    assert predictor.predict([]) == []


def test_onnx_backend_gives_the_same_boxes(trained_model_dir, tmp_path, val_images, predictor):
    pytest.importorskip("onnxruntime")
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    onnx = Predictor.from_model_dir(model_dir, device="cpu", backend="onnx", batch_size=4)
    assert onnx.backend == "onnx" and onnx.precision == "fp32"
    assert sorted(p.name for p in model_dir.iterdir()) == ["best.pt", "model.json"]  # left as it was
    frames = [val_images[0], cv2.resize(val_images[1], (480, 270))]
    for a, b in zip(onnx.predict(frames, conf=LOW), predictor.predict(frames, conf=LOW), strict=True):
        assert (b.scores >= CONFIDENT).sum() > 0
        assert agree_both_ways(a, b)


def test_device_letterbox_places_pixels_as_opencv_does():
    """The torch letterbox (what a GPU runs) against the OpenCV one, on mixed sizes: the same
    canvas shape and transforms, pixels within one grey level (fixed-point rounding in OpenCV)."""
    import torch

    from yolo_core.infer.letterbox import letterbox_batch
    from yolo_core.infer.letterbox_device import letterbox_on_device

    rng = np.random.default_rng(0)
    shapes = [(720, 1280), (540, 960), (320, 320), (500, 333), (640, 640)]  # down, up, odd, exact
    images = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for shape in shapes]
    images[1] = cv2.GaussianBlur(images[1], (9, 9), 3)  # smooth as photos are, and random
    for square in (False, True):
        host, host_transforms = letterbox_batch(images, 640, 32, square)
        device, device_transforms = letterbox_on_device(images, 640, torch.device("cpu"), 32, square)
        assert device.dtype == torch.uint8 and tuple(device.shape) == host.shape
        assert device_transforms == host_transforms
        assert np.abs(device.numpy().astype(int) - host.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="image 0"):
        letterbox_on_device([torch.zeros((8, 8), dtype=torch.uint8)], 32, torch.device("cpu"))


def test_device_letterbox_gives_the_same_detections(trained_model_dir, val_images, predictor):
    """The predictor and sliced inference with letterboxing on the device (the GPU default),
    on the CPU here: tiles are cut from the uploaded frame; boxes match the host path's."""
    on_device = Predictor.from_model_dir(
        trained_model_dir, device="cpu", precision="fp32", batch_size=4, letterbox="device"
    )
    assert on_device.letterbox_on_device and not predictor.letterbox_on_device
    frames = [val_images[0], cv2.resize(val_images[1], (480, 270)), cv2.resize(val_images[2], (700, 700))]
    for a, b in zip(on_device.predict(frames, conf=LOW), predictor.predict(frames, conf=LOW), strict=True):
        assert (b.scores >= CONFIDENT).sum() > 0
        assert agree_both_ways(a, b)
    # Tiles only: the full-frame pass is a resized frame (checked above), and the cross-tile merge
    # would turn a one-pixel resampling difference into a differently merged box.
    big = cv2.resize(np.concatenate(val_images[:2], axis=1), (1000, 480))
    sliced = [predict_sliced(p, [big], slice_size=320, conf=LOW)[0] for p in (on_device, predictor)]
    assert (sliced[1].scores >= CONFIDENT).sum() > 0
    assert agree_both_ways(*sliced)
    with pytest.raises(ValueError, match="torch backend"):
        Predictor.from_model_dir(trained_model_dir, device="cpu", backend="onnx", letterbox="device")


def test_missing_model_card_is_a_user_error(tmp_path):
    with pytest.raises(UserInputError, match="model.json"):
        Predictor.from_model_dir(tmp_path)


def test_corrupt_weights_are_a_user_error(tmp_path):
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserInputError, match="best.pt"):
        Predictor(tmp_path / "best.pt", device="cpu")
