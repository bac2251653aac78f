"""The dataset build end to end: layout, relative data.yaml, split by content, hash, baseline."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from yolo_core.data import build_dataset, generate_scenes
from yolo_core.errors import UserInputError


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return generate_scenes(
        tmp_path_factory.mktemp("raw") / "scenes", 12, seed=5, width=320, height=320, object_px=(14, 48)
    )


def _splits(dataset_dir) -> dict[str, str]:
    items = json.loads((dataset_dir / "dataset.json").read_text())["items"]
    return {item["source"]: item["split"] for item in items}


def test_layout_and_relative_data_yaml(scenes, tmp_path):
    result = build_dataset(scenes, tmp_path / "ds", progress=False)
    data = yaml.safe_load(result.data_yaml.read_text())
    assert "path" not in data
    assert data["train"] == "images/train" and data["val"] == "images/val" and data["nc"] == 10
    for split in ("train", "val"):
        images = sorted(p.stem for p in (tmp_path / "ds" / "images" / split).iterdir())
        labels = sorted(p.stem for p in (tmp_path / "ds" / "labels" / split).iterdir())
        assert images == labels and images
    assert result.train_images + result.val_images == 12 and result.boxes > 50
    moved = shutil.move(tmp_path / "ds", tmp_path / "elsewhere")  # relative paths survive a move
    assert (moved / data["train"]).is_dir()


def test_split_is_by_content_and_stable(scenes, tmp_path):
    first = build_dataset(scenes, tmp_path / "a", seed=0, workers=1, progress=False)
    first_splits = _splits(tmp_path / "a")
    again = build_dataset(scenes, tmp_path / "a", seed=0, workers=2, progress=False)  # rebuild in place
    assert first.dataset_hash == again.dataset_hash
    assert _splits(tmp_path / "a") == first_splits
    renamed = tmp_path / "renamed"
    shutil.copytree(scenes, renamed)
    for folder, suffix in (("images", ".jpg"), ("annotations", ".txt")):
        (renamed / folder / f"frame_000000{suffix}").rename(renamed / folder / f"zz_new_name{suffix}")
    build_dataset(renamed, tmp_path / "b", seed=0, progress=False)
    before, after = _splits(tmp_path / "a"), _splits(tmp_path / "b")
    assert after.pop("images/zz_new_name.jpg") == before.pop("images/frame_000000.jpg")  # follows the bytes
    assert after == before
    reseeded = build_dataset(scenes, tmp_path / "c", seed=1, progress=False)
    assert reseeded.dataset_hash != first.dataset_hash


def test_baseline_has_per_image_and_per_class_statistics(scenes, tmp_path):
    result = build_dataset(scenes, tmp_path / "ds", progress=False)
    baseline = json.loads(result.baseline_path.read_text())
    assert baseline["image_count"] == 12 and len(baseline["per_image"]) == 12
    for feature in ("brightness", "contrast", "sharpness", "width", "height"):
        summary = baseline["images"][feature]
        assert summary["count"] == 12 and summary["min"] <= summary["p50"] <= summary["max"]
    assert baseline["images"]["width"]["p50"] == 320
    assert baseline["boxes_per_image"]["mean"] * 12 == pytest.approx(result.boxes)
    sizes = baseline["box_sizes_per_class"]
    assert sizes["pedestrian"]["sqrt_area"]["p50"] < sizes["bus"]["sqrt_area"]["p50"]
    assert sizes["people"]["count"] == 0  # not drawn by the generator


def test_refuses_foreign_output_folder_and_unknown_format(scenes, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(UserInputError, match="not empty"):
        build_dataset(scenes, tmp_path / "mine", progress=False)
    with pytest.raises(UserInputError, match="source_format"):
        build_dataset(scenes, tmp_path / "x", "pascal", progress=False)
    with pytest.raises(UserInputError, match="does not exist"):
        build_dataset(tmp_path / "missing", tmp_path / "y", progress=False)


def test_neither_split_is_left_empty(tmp_path):
    source = generate_scenes(tmp_path / "raw", 2, seed=0, width=256, height=256, object_px=(14, 40))
    result = build_dataset(source, tmp_path / "ds", val_fraction=0.01, progress=False)
    assert (result.train_images, result.val_images) == (1, 1)
    for item in json.loads(result.manifest_path.read_text())["items"]:
        assert (tmp_path / "ds" / item["image"]).is_file() and (tmp_path / "ds" / item["label"]).is_file()
