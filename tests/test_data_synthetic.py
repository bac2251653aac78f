"""The synthetic drone-scene generator: layout, determinism, and the VisDrone cases it must hold."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_core.data import generate_scenes
from yolo_core.data.visdrone_classes import CATEGORY_BY_NAME


def _rows(folder) -> list[list[int]]:
    rows = []
    for path in sorted((folder / "annotations").glob("*.txt")):
        rows += [[int(v) for v in line.split(",")] for line in path.read_text().splitlines()]
    return rows


def test_same_seed_same_bytes_other_seed_other_scenes(tmp_path):
    small = {"width": 320, "height": 320, "object_px": (14, 48)}
    a = generate_scenes(tmp_path / "a", 3, seed=7, **small)
    b = generate_scenes(tmp_path / "b", 3, seed=7, workers=2, **small)
    c = generate_scenes(tmp_path / "c", 3, seed=8, **small)
    names = sorted(p.name for p in (a / "images").iterdir())
    assert names == ["frame_000000.jpg", "frame_000001.jpg", "frame_000002.jpg"]
    for name in names:
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()
        assert (a / "images" / name).read_bytes() != (c / "images" / name).read_bytes()
    assert _rows(a) == _rows(b) != _rows(c)


def test_rows_cover_the_visdrone_cases_at_drone_scales(tmp_path):
    folder = generate_scenes(tmp_path / "big", 3, seed=0, width=1280, height=720, object_px=(6, 80))
    rows = np.array(_rows(folder))
    assert rows.shape[1] == 8 and len(rows) > 100
    targets = rows[(rows[:, 4] == 1) & (rows[:, 5] >= 1) & (rows[:, 5] <= 10)]
    drawn = {CATEGORY_BY_NAME[n] for n in ("pedestrian", "car", "van", "truck", "bus", "motor")}
    assert set(targets[:, 5]) == drawn
    assert (rows[:, 5] == 0).any() and (rows[:, 4] == 0).any() and (rows[:, 5] == 11).any()
    long_side = targets[:, 2:4].max(axis=1)
    assert long_side.min() >= 5 and long_side.max() <= 90 and np.median(long_side) < 50
    cut = (targets[:, 0] < 0) | (targets[:, 1] < 0) | (targets[:, 0] + targets[:, 2] > 1280)
    assert cut.any() and (targets[cut, 6] == 1).all()  # cut by the frame edge, marked truncated
    assert set(targets[:, 7]) >= {0, 1}  # some objects partly hidden by trees


def test_rejects_impossible_settings(tmp_path):
    with pytest.raises(ValueError, match="classes"):
        generate_scenes(tmp_path, 1, classes=("dragon",))
    with pytest.raises(ValueError, match="object_px"):
        generate_scenes(tmp_path, 1, width=64, height=64, object_px=(6, 80))
