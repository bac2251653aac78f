"""Tiles, letterbox geometry and cross-tile merging: pure functions, checked against SAHI."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_core.infer.detections import Detections
from yolo_core.infer.letterbox import letterbox_batch
from yolo_core.infer.merge import greedy_nmm, merge_detections, nms_detections
from yolo_core.infer.slicing import crop, tile_grid, tile_starts


@pytest.mark.parametrize(
    ("height", "width", "size", "overlap"),
    [
        (2160, 3840, 640, 0.2),
        (1080, 1920, 640, 0.2),
        (1152, 1152, 640, 0.2),
        (500, 700, 640, 0.25),
        (640, 640, 320, 0.0),
    ],
)
def test_tiles_match_sahi_and_cover_the_frame(height, width, size, overlap):
    sahi_slicing = pytest.importorskip("sahi.slicing")
    expected = sahi_slicing.get_slice_bboxes(height, width, size, size, False, overlap, overlap)
    tiles = tile_grid(height, width, size, overlap)
    assert tiles.tolist() == expected
    covered = np.zeros((height, width), bool)
    for tile in tiles:
        covered[tile[1] : tile[3], tile[0] : tile[2]] = True
    assert covered.all()


def test_tile_starts_rejects_bad_overlap():
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(1000, 640, 1.0)


def test_crop_is_a_view():
    frame = np.zeros((100, 200, 3), np.uint8)
    view = crop(frame, np.array([10, 20, 60, 90]))
    view[:] = 7
    assert view.shape == (70, 50, 3) and frame[20:90, 10:60].min() == 7


def test_letterbox_maps_boxes_back_to_source_pixels_for_mixed_sizes():
    """A white rectangle drawn in each source image is found on the canvas and mapped back."""
    shapes = [(480, 640), (300, 900), (1000, 250), (640, 640)]
    rect = [(100, 50, 300, 200), (400, 100, 700, 250), (20, 600, 200, 900), (0, 0, 640, 320)]
    images = []
    for (h, w), (x0, y0, x1, y1) in zip(shapes, rect, strict=True):
        image = np.zeros((h, w, 3), np.uint8)
        image[y0:y1, x0:x1] = 255
        images.append(image)
    canvas, transforms = letterbox_batch(images, imgsz=320, stride=32)
    assert canvas.shape[0] == 4 and canvas.shape[1] % 32 == 0 and canvas.shape[2] % 32 == 0
    assert max(canvas.shape[1:3]) == 320
    for i, transform in enumerate(transforms):
        ys, xs = np.nonzero(canvas[i, :, :, 0] > 128)
        found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        back = transform.boxes_to_source(found)[0]
        assert np.allclose(back, rect[i], atol=2 / transform.gain), (i, back, rect[i])


def test_letterbox_copies_exact_tiles_unchanged():
    tile = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    canvas, (transform,) = letterbox_batch([tile], imgsz=64, stride=32)
    assert canvas.shape == (1, 64, 64, 3) and transform.gain == 1 and transform.pad_x == transform.pad_y == 0
    assert (canvas[0] == tile).all()  # BGR kept: the model's first convolution reads BGR


def test_letterbox_keeps_extreme_strips_at_least_one_pixel_thick():
    """A valid 20000x20 strip scales below one pixel across at 640: it must still letterbox
    (it reached the server's model as a 0-pixel resize once, a 500)."""
    import torch

    from yolo_core.infer.letterbox_device import letterbox_on_device

    strips = [np.full((20, 20000, 3), 200, np.uint8), np.full((20000, 20, 3), 200, np.uint8)]
    canvas, transforms = letterbox_batch(strips, imgsz=640, stride=32)
    on_device, _ = letterbox_on_device(strips, 640, torch.device("cpu"))
    assert canvas.shape == (2, 640, 640, 3) and (on_device.numpy() == canvas).all()
    for i, transform in enumerate(transforms):
        back = transform.boxes_to_source(np.array([[0, 0, 640, 640]], np.float32))[0]
        assert back.tolist() == [0, 0, strips[i].shape[1], strips[i].shape[0]]  # clipped to the source


def test_letterbox_rejects_non_images():
    with pytest.raises(ValueError, match="image 1"):
        letterbox_batch([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)], imgsz=32)


def _dets(rows):
    table = np.asarray(rows, np.float32)
    return Detections(table[:, :4], table[:, 4], table[:, 5].astype(np.int64))


def test_greedy_nmm_folds_a_box_cut_at_a_tile_border_where_nms_keeps_it():
    whole = [500, 100, 540, 120, 0.9, 0]  # a car seen whole in the left tile
    partial = [530, 100, 540, 120, 0.8, 0]  # its last quarter, cut by the right tile's left border
    other_class = [505, 100, 545, 120, 0.7, 1]
    dets = _dets([whole, partial, other_class])
    assert len(nms_detections(dets, iou=0.5)) == 3  # IoU 0.25: NMS keeps the partial box
    merged = greedy_nmm(dets, threshold=0.5)  # IoS 1.0: merged
    assert len(merged) == 2
    car = merged.select(merged.class_ids == 0)
    assert car.boxes.tolist() == [[500, 100, 540, 120]] and car.scores.tolist() == [pytest.approx(0.9)]


def test_greedy_nmm_grows_the_kept_box_to_the_union():
    top_half = [100, 100, 140, 130, 0.9, 0]
    bottom_half = [100, 110, 140, 150, 0.6, 0]  # a partial box from the tile below
    merged = merge_detections(_dets([top_half, bottom_half]), "greedy_nmm", 0.5)
    assert merged.boxes.tolist() == [[100, 100, 140, 150]]


def test_greedy_nmm_agrees_with_sahi_on_random_boxes():
    combine = pytest.importorskip("sahi.postprocess.combine")
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (200, 2))
    wh = rng.uniform(5, 60, (200, 2))
    rows = np.column_stack([xy, xy + wh, rng.uniform(0.3, 1, 200), rng.integers(0, 3, 200)])
    rows = rows.astype(np.float32).astype(np.float64)  # the same values on both sides
    ours = greedy_nmm(_dets(rows), threshold=0.5, metric="ios")
    keep_to_merge = combine.batched_greedy_nmm(rows, match_metric="IOS", match_threshold=0.5)
    index_of_score = {float(np.float32(score)): i for i, score in enumerate(rows[:, 4])}
    assert sorted(keep_to_merge) == sorted(index_of_score[float(s)] for s in ours.scores)


def test_merge_rejects_unknown_method():
    with pytest.raises(ValueError, match="merge must be one of"):
        merge_detections(Detections.empty(), "mean", 0.5)


def test_detections_records_are_json_ready():
    dets = _dets([[1.234, 2, 3, 4, 0.51234567, 2]])
    assert dets.to_records({2: "car"}) == [
        {"class_id": 2, "class_name": "car", "score": 0.51235, "box": [1.23, 2.0, 3.0, 4.0]}
    ]
    assert Detections.concatenate([dets, dets.shifted(10, 20)]).boxes[1].tolist() == pytest.approx(
        [11.234, 22, 13, 24]
    )


class _FixedTilePredictor:
    """Stands in for the model: every tile yields the same spread-out boxes, so that nothing merges."""

    def __init__(self, per_tile: int) -> None:
        self.per_tile = per_tile

    def source(self, image):
        return image

    def predict(self, crops, conf, iou, max_det, deadline=None):
        starts = np.arange(self.per_tile, dtype=np.float32) * 12
        boxes = np.stack([starts, starts, starts + 8, starts + 8], axis=1)
        scores = np.linspace(0.9, 0.3, self.per_tile, dtype=np.float32)
        dets = Detections(boxes, scores, np.zeros(self.per_tile, np.int64))
        return [dets.best(max_det) for _ in crops]


def test_predict_sliced_bounds_detections_per_frame_when_asked():
    from yolo_core.infer.sliced import predict_sliced

    frame = np.zeros((640, 1280, 3), np.uint8)  # 320 px tiles, overlap 0.2: 15 tiles
    (unbounded,) = predict_sliced(_FixedTilePredictor(20), [frame], slice_size=320)
    (bounded,) = predict_sliced(_FixedTilePredictor(20), [frame], slice_size=320, frame_max_det=25)
    assert len(unbounded) > 25 and len(bounded) == 25
    assert bounded.scores.min() >= np.sort(unbounded.scores)[-25]  # the best ones are kept


def test_detections_best_keeps_the_highest_scores_in_order():
    dets = Detections(np.zeros((4, 4)), [0.2, 0.9, 0.5, 0.9], [0, 1, 2, 3])
    assert dets.best(3).class_ids.tolist() == [1, 3, 2]
    assert dets.best(10) is dets
