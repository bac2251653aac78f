"""The tiler: window layout, clipping and visibility at tile edges, tile <-> frame round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from yolo_core.data import build_dataset, generate_scenes
from yolo_core.data.tiling import Window, clip_to_window, frame_to_tile, tile_to_frame, tile_windows
from yolo_core.data.visdrone import parse_annotation_file


def test_windows_cover_the_frame_evenly_with_at_least_the_overlap():
    windows = tile_windows(1920, 1080, 640, 0.2)
    assert sorted({w.x for w in windows}) == [0, 427, 853, 1280]
    assert sorted({w.y for w in windows}) == [0, 440]
    assert all((w.width, w.height) == (640, 640) for w in windows)
    covered = np.zeros((1080, 1920), bool)
    for w in windows:
        covered[w.y : w.y + w.height, w.x : w.x + w.width] = True
    assert covered.all()
    assert tile_windows(300, 200, 640, 0.2) == [Window(0, 0, 300, 200)]  # small frame: one window
    with pytest.raises(ValueError):
        tile_windows(100, 100, 64, 1.0)


def test_boxes_are_clipped_at_tile_edges_and_kept_by_visible_fraction():
    window = Window(100, 100, 200, 200)
    boxes = np.array(
        [
            [120, 130, 160, 170],  # inside
            [280, 120, 320, 140],  # half inside (right edge): kept at 0.5
            [290, 150, 340, 170],  # a fifth inside: dropped
            [90, 290, 110, 310],  # a quarter inside (corner): dropped
            [400, 400, 420, 420],  # elsewhere
            [299.5, 150, 330, 160],  # a sliver, under 1 px wide once clipped: dropped
        ]
    )
    clipped, kept = clip_to_window(boxes, window, min_visible_fraction=0.5)
    assert kept.tolist() == [0, 1]
    np.testing.assert_allclose(clipped, [[20, 30, 60, 70], [180, 20, 200, 40]])
    _, kept_loose = clip_to_window(boxes, window, min_visible_fraction=0.2)
    assert kept_loose.tolist() == [0, 1, 2, 3]


def test_tile_to_frame_round_trip():
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 2000, (50, 4))
    window = Window(427, 440, 640, 640)
    np.testing.assert_allclose(tile_to_frame(frame_to_tile(boxes, window), window), boxes)


def _tile_boxes(label_file, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Classes and frame-pixel corners of a tile's YOLO labels."""
    rows = np.array(label_file.read_text().split(), float).reshape(-1, 5)
    xc, yc = rows[:, 1] * window.width, rows[:, 2] * window.height
    w, h = rows[:, 3] * window.width, rows[:, 4] * window.height
    return rows[:, 0].astype(int), tile_to_frame(
        np.column_stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2]), window
    )


def test_tiles_record_their_frame_and_map_back_to_source_boxes(tmp_path):
    source = generate_scenes(tmp_path / "raw", 2, seed=3, width=480, height=320, object_px=(14, 48))
    out = tmp_path / "tiles"
    build_dataset(source, out, tile_size=160, tile_overlap=0.25, empty_tile_ratio=1.0, progress=False)
    items = json.loads((out / "dataset.json").read_text())["items"]
    assert len(items) == 2 * len(tile_windows(480, 320, 160, 0.25))  # empty_tile_ratio=1 keeps all
    checked_inside = 0
    for item in items:
        assert (item["frame_width"], item["frame_height"]) == (480, 320)
        assert (out / item["image"]).is_file() and item["image"].startswith(f"images/{item['split']}/")
        window = Window(item["x"], item["y"], item["width"], item["height"])
        stem = item["source"].removeprefix("images/").removesuffix(".jpg")
        frame = parse_annotation_file(source / "annotations" / f"{stem}.txt", "a.txt", 480, 320)
        expected, kept = clip_to_window(frame.box_array(), window, 0.5)
        classes, boxes = _tile_boxes(out / item["label"], window)
        # Tile labels mapped back to the frame are the frame's boxes clipped to the window.
        np.testing.assert_allclose(boxes, tile_to_frame(expected, window), atol=1e-3)
        assert classes.tolist() == frame.class_array()[kept].tolist()
        checked_inside += len(kept)
    assert checked_inside > 10


def test_empty_tiles_follow_the_ratio(tmp_path):
    source = generate_scenes(tmp_path / "raw", 2, seed=1, width=320, height=320, object_px=(14, 30))
    kept_none = build_dataset(source, tmp_path / "a", tile_size=64, empty_tile_ratio=0.0, progress=False)
    kept_all = build_dataset(source, tmp_path / "b", tile_size=64, empty_tile_ratio=1.0, progress=False)
    report = json.loads(kept_none.report_path.read_text())["counts"]
    assert report["empty_tiles_dropped"] > 0 and "empty_tiles_kept" not in report
    total = kept_all.train_images + kept_all.val_images
    assert total == 2 * len(tile_windows(320, 320, 64, 0.2))
    assert kept_none.train_images + kept_none.val_images == total - report["empty_tiles_dropped"]
