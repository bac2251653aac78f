"""COCO JSON conversion against hand-written YOLO labels."""

from __future__ import annotations

import pytest
from data_support import issues_of, label_lines, read_report, write_image, write_json

from yolo_core.data import build_dataset
from yolo_core.errors import UserInputError

COCO = {
    "images": [
        {"id": 1, "file_name": "a.png", "width": 200, "height": 100},
        {"id": 2, "file_name": "b.png", "width": 200, "height": 100},
        {"id": 3, "file_name": "c.png", "width": 200, "height": 100},
        {"id": 4, "file_name": "d.png", "width": 640, "height": 480},
    ],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 7, "bbox": [10, 20, 30, 40], "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 3, "bbox": [190, 90, 20, 20], "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": 3, "bbox": [100, 0, 40, 30], "iscrowd": 1},
        {"id": 13, "image_id": 1, "category_id": 3, "bbox": [60, 60, 0, 10], "iscrowd": 0},
        {"id": 14, "image_id": 3, "category_id": 99, "bbox": [10, 10, 10, 10]},
        {"id": 15, "image_id": 3, "category_id": 3, "bbox": [10, 10, 10]},
        {"id": 16, "image_id": 42, "category_id": 3, "bbox": [10, 10, 10, 10]},
    ],
    "categories": [{"id": 7, "name": "bus"}, {"id": 3, "name": "car"}],
}


def test_coco_conversion(tmp_path):
    source = tmp_path / "coco"
    for name in ("a", "b", "c", "d"):
        write_image(source / "images" / f"{name}.png")  # d is 200x100 but declared 640x480
    write_json(source / "annotations" / "instances.json", COCO)
    out = tmp_path / "dataset"
    result = build_dataset(source, out, "coco", val_fraction=0.0, max_bad_fraction=0.5, progress=False)

    assert result.names == {0: "car", 1: "bus"}  # categories sorted by id
    assert label_lines(out, "train", "a") == [
        "1 0.125000 0.400000 0.150000 0.400000",  # bus (id 7)
        "0 0.975000 0.950000 0.050000 0.100000",  # car (id 3) clipped at the corner
    ]
    assert label_lines(out, "train", "b") == []  # no annotations: a background image
    report = read_report(out)
    assert report["quarantined"] == [
        {"file": "images/c.png", "reasons": ["label_field_count", "label_unknown_class"]},
        {"file": "images/d.png", "reasons": ["image_size_mismatch"]},
    ]
    by_field = {
        (i["kind"], i["field"]) for i in report["issues"] if i["file"] == "annotations/instances.json"
    }
    assert by_field >= {
        ("label_degenerate_box", "annotations[3]"),
        ("label_unknown_class", "annotations[4]"),
        ("label_field_count", "annotations[5]"),
        ("label_without_image", "annotations[6]"),
    }
    assert report["counts"]["ignored_regions"] == 1 and report["counts"]["boxes_clipped"] == 1
    assert issues_of(report, "images/c.png") == []  # findings name the JSON file holding them


def test_broken_coco_json_is_a_user_error(tmp_path):
    source = tmp_path / "coco"
    write_image(source / "images" / "a.png")
    (source / "annotations").mkdir()
    (source / "annotations" / "x.json").write_text("{not json")
    with pytest.raises(UserInputError, match="x.json"):
        build_dataset(source, tmp_path / "out", "coco", progress=False)


@pytest.mark.parametrize(
    "escaping", ["../secret.png", "images/../../secret.png", "/tmp/secret.png", "..\\secret.png"]
)
def test_file_names_that_climb_out_are_reported_never_read(tmp_path, escaping):
    source = tmp_path / "coco"
    write_image(source / "images" / "a.png")
    write_image(tmp_path / "secret.png")  # what `../secret.png` would reach from images/ or the top
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 200, "height": 100},
            {"id": 2, "file_name": escaping, "width": 200, "height": 100},
        ],
        "annotations": [{"id": 9, "image_id": 2, "category_id": 3, "bbox": [10, 10, 10, 10]}],
        "categories": [{"id": 3, "name": "car"}],
    }
    write_json(source / "annotations" / "instances.json", coco)
    out = tmp_path / "dataset"
    result = build_dataset(source, out, "coco", val_fraction=0.0, progress=False)

    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == ["a.png"]
    report = read_report(out)
    assert report["images_seen"] == 1
    (finding,) = [i for i in report["issues"] if i["kind"] == "image_path_outside_source"]
    assert finding["file"] == "annotations/instances.json" and finding["field"] == "images[1]"
    assert repr(escaping) in finding["message"] and finding["severity"] == "error"
    assert not [i for i in report["issues"] if i["kind"] == "label_without_image"]  # one finding, not two
    assert result.names == {0: "car"}
