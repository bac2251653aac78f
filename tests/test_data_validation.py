"""Every kind of bad input ends in the quality report with its file and line, never a crash."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_support import issues_of, read_report, write_image, write_text

from yolo_core.data import build_dataset
from yolo_core.errors import UserInputError

GOOD_ROW = "10,10,20,20,1,4,0,0\n"


def _bad_visdrone_source(root):
    """Eight good frames plus one frame per kind of problem."""
    images, annotations = root / "images", root / "annotations"
    for i in range(8):
        write_image(images / f"good{i}.jpg")
        write_text(annotations / f"good{i}.txt", GOOD_ROW)
    (images / "zero.jpg").write_bytes(b"")
    whole = write_image(images / "cut.jpg").read_bytes()
    (images / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (images / "noise.jpg").write_bytes(b"this is not an image at all" * 20)
    write_image(images / "grey.png", channels=1)
    write_image(images / "rgba.png", channels=4)
    write_image(images / "deep.png", dtype=np.uint16)
    for name in ("zero", "cut", "noise", "grey", "rgba", "deep"):
        write_text(annotations / f"{name}.txt", GOOD_ROW)
    for name, text in {
        "fields": GOOD_ROW + "1,2,3,4,1\n",
        "words": "ten,10,20,20,1,4,0,0\n",
        "unknown": GOOD_ROW + GOOD_ROW.replace(",4,", ",17,"),
        "dupes": GOOD_ROW + GOOD_ROW,
        "outside": GOOD_ROW + "500,500,20,20,1,4,0,0\n",
        "binary": None,
    }.items():
        write_image(images / f"{name}.jpg")
        path = annotations / f"{name}.txt"
        if text is None:
            path.write_bytes(b"\xff\xfe\x00bad")
        else:
            write_text(path, text)
    write_image(images / "nolabel.jpg")
    write_text(annotations / "orphan.txt", GOOD_ROW)
    return root


EXPECTED = {
    # file: [(kind, line, severity)]
    "images/zero.jpg": [("image_zero_bytes", None, "error")],
    "images/cut.jpg": [("image_truncated", None, "error")],
    "images/noise.jpg": [("image_unreadable", None, "error")],
    "images/grey.png": [("image_grayscale", None, "warning")],
    "images/rgba.png": [("image_rgba", None, "warning")],
    "images/deep.png": [("image_16bit", None, "warning")],
    "annotations/fields.txt": [("label_field_count", 2, "error")],
    "annotations/words.txt": [("label_not_number", 1, "error")],
    "annotations/unknown.txt": [("label_unknown_class", 2, "error")],
    "annotations/dupes.txt": [("label_duplicate_box", 2, "warning")],
    "annotations/outside.txt": [("label_out_of_range", 2, "warning")],
    "annotations/binary.txt": [("label_unreadable", None, "error")],
    "images/nolabel.jpg": [("image_without_labels", None, "error")],
    "annotations/orphan.txt": [("label_without_image", None, "warning")],
}


def test_every_bad_kind_is_reported_with_file_and_line(tmp_path):
    source = _bad_visdrone_source(tmp_path / "raw")
    out = tmp_path / "dataset"
    result = build_dataset(source, out, max_bad_fraction=0.5, progress=False)
    report = read_report(out)
    for file, expected in EXPECTED.items():
        assert issues_of(report, file) == expected, file
    quarantined = {entry["file"] for entry in report["quarantined"]}
    assert quarantined == {
        "images/zero.jpg",
        "images/cut.jpg",
        "images/noise.jpg",
        "images/fields.jpg",
        "images/words.jpg",
        "images/unknown.jpg",
        "images/binary.jpg",
        "images/nolabel.jpg",
    }
    assert report["images_seen"] == 21 and report["passed"] is True
    assert result.images_quarantined == 8
    written = {p.stem for p in (out / "images").rglob("*.*")}
    assert {"grey", "rgba", "deep", "dupes", "outside"} <= written  # repaired, kept
    assert not written & {"zero", "cut", "noise", "fields", "nolabel"}  # left out


def test_colour_rule_reject_quarantines_converted_kinds(tmp_path):
    source = _bad_visdrone_source(tmp_path / "raw")
    build_dataset(source, tmp_path / "out", max_bad_fraction=0.9, color_rule="reject", progress=False)
    report = read_report(tmp_path / "out")
    for file in ("images/grey.png", "images/rgba.png", "images/deep.png"):
        assert [(k, s) for k, _, s in issues_of(report, file)] == [(EXPECTED[file][0][0], "error")]


def test_too_many_bad_images_fail_with_one_line_after_writing_the_report(tmp_path):
    source = _bad_visdrone_source(tmp_path / "raw")
    out = tmp_path / "dataset"
    with pytest.raises(UserInputError) as failure:
        build_dataset(source, out, max_bad_fraction=0.1, progress=False)
    message = str(failure.value)
    assert "\n" not in message
    assert "8 of 21 images are bad" in message and "quality_report.json" in message
    report = json.loads((out / "quality_report.json").read_text())
    assert report["passed"] is False and not (out / "data.yaml").exists()


def test_unlabeled_images_can_be_kept_as_background(tmp_path):
    source = tmp_path / "raw"
    write_image(source / "images" / "a.jpg")
    write_text(source / "annotations" / "a.txt", GOOD_ROW)
    write_image(source / "images" / "b.jpg")
    result = build_dataset(source, tmp_path / "out", unlabeled_images="background", progress=False)
    assert result.images_quarantined == 0 and result.train_images + result.val_images == 2
