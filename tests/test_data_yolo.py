"""YOLO-folder conversion against hand-written labels, and its line-level checks."""

from __future__ import annotations

import pytest
from data_support import label_lines, write_image, write_text

from yolo_core.data import build_dataset
from yolo_core.data.yolo_folder import parse_label_text
from yolo_core.errors import UserInputError


def test_yolo_folder_round_trips_labels(tmp_path):
    source = tmp_path / "yolo"
    write_text(source / "data.yaml", "names: [plane, boat]\n")
    write_image(source / "images" / "train" / "x.png")
    write_text(source / "labels" / "train" / "x.txt", "0 0.5 0.5 0.2 0.4\n1 0.95 0.5 0.1004 0.2\n")
    write_image(source / "images" / "val" / "y.png")
    write_text(source / "labels" / "val" / "y.txt", "")
    out = tmp_path / "dataset"
    result = build_dataset(source, out, "yolo", val_fraction=0.0, progress=False)
    assert result.names == {0: "plane", 1: "boat"}
    assert label_lines(out, "train", "train__x") == [
        "0 0.500000 0.500000 0.200000 0.400000",
        "1 0.949900 0.500000 0.100200 0.200000",  # reached 0.0002 past the edge: clipped
    ]
    assert label_lines(out, "train", "val__y") == []


def test_every_bad_line_kind_is_reported_with_its_line():
    lines = [
        "0 0.5 0.5 0.2",  # four fields
        "0 0.5 zero 0.2 0.2",
        "7 0.5 0.5 0.2 0.2",  # two classes only
        "0 1.7 0.5 0.2 0.2",
        "0 0.5 0.5 0.2 0.2",
        "0 0.5 0.5 0.2 0.2",  # the same box again
    ]
    text = "\n".join(lines)
    labels = parse_label_text(text, "labels/x.txt", 100, 100, num_classes=2)
    assert [(i.kind, i.line, i.severity) for i in labels.issues] == [
        ("label_field_count", 1, "error"),
        ("label_not_number", 2, "error"),
        ("label_unknown_class", 3, "error"),
        ("label_out_of_range", 4, "error"),
        ("label_duplicate_box", 6, "warning"),
    ]
    assert labels.classes == [0]


def test_missing_class_names_is_a_user_error(tmp_path):
    write_image(tmp_path / "yolo" / "images" / "x.png")
    with pytest.raises(UserInputError, match="no class names"):
        build_dataset(tmp_path / "yolo", tmp_path / "out", "yolo", progress=False)
