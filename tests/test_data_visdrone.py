"""VisDrone-DET conversion against hand-written YOLO labels, one row per edge case."""

from __future__ import annotations

import cv2
from data_support import issues_of, label_lines, read_report, write_image, write_text

from yolo_core.data import build_dataset
from yolo_core.data.visdrone import parse_annotation_text

# Image 200x100. Each row exercises one rule of yolo_core/data/visdrone.py.
ANNOTATION = """\
10,20,30,40,1,4,0,0
120,0,30,30,0,1,0,0
160,5,30,30,0,0,0,0
150,50,20,20,1,11,0,0
190,90,20,20,1,1,1,0
50,50,0,10,1,4,0,0
10,20,30,40,1,4,0,0
300,300,10,10,1,4,0,0
60,60,10,10,1,9,0,0,
"""
EXPECTED_LABELS = [
    "3 0.125000 0.400000 0.150000 0.400000",  # row 1: car (category 4) -> class 3
    "0 0.975000 0.950000 0.050000 0.100000",  # row 5: pedestrian cut by the corner, clipped
    "8 0.325000 0.650000 0.050000 0.100000",  # row 9: bus, trailing comma accepted
]


def test_rows_follow_the_documented_semantics():
    labels = parse_annotation_text(ANNOTATION, "annotations/a.txt", 200, 100)
    assert labels.classes == [3, 0, 8]
    assert labels.boxes == [(10, 20, 40, 60), (190, 90, 200, 100), (60, 60, 70, 70)]
    assert labels.ignored == [(120, 0, 150, 30), (160, 5, 190, 35)]  # score 0 and category 0
    assert labels.counts == {
        "score0_rows": 1,
        "category0_rows": 1,
        "ignored_regions": 2,
        "others_dropped": 1,
        "boxes_clipped": 1,
        "boxes_degenerate": 1,
        "duplicates_dropped": 1,
        "boxes_out_of_range": 1,
    }
    assert not labels.has_errors
    found = [(i.kind, i.line, i.action) for i in labels.issues]
    assert found == [
        ("label_degenerate_box", 6, "dropped"),
        ("label_duplicate_box", 7, "dropped"),
        ("label_out_of_range", 8, "dropped"),
    ]


def test_conversion_writes_expected_labels_and_masks_ignored_regions(tmp_path):
    source = tmp_path / "visdrone"
    write_image(source / "images" / "a.png")
    write_text(source / "annotations" / "a.txt", ANNOTATION)
    write_image(source / "images" / "b.png")
    write_text(source / "annotations" / "b.txt", "")  # a frame without objects
    out = tmp_path / "dataset"
    result = build_dataset(source, out, "visdrone", val_fraction=0.0, progress=False)

    assert label_lines(out, "train", "a") == EXPECTED_LABELS
    assert label_lines(out, "train", "b") == []
    assert result.names[0] == "pedestrian" and result.names[9] == "motor" and len(result.names) == 10
    masked = cv2.imread(str(out / "images" / "train" / "a.jpg"))
    assert masked.shape == (100, 200, 3)
    for region in (masked[2:28, 122:148], masked[7:33, 162:188]):  # score-0 and category-0 rows
        assert abs(region.mean() - 114) < 2 and region.std() < 5  # grey, up to JPEG ringing
    assert masked[20:60, 10:40].std() > 40  # the car's pixels are untouched
    # b.png had nothing to mask or convert: copied byte for byte.
    assert (out / "images" / "train" / "b.png").read_bytes() == (source / "images" / "b.png").read_bytes()
    report = read_report(out)
    assert report["counts"]["others_dropped"] == 1
    assert issues_of(report, "annotations/a.txt")[0] == ("label_degenerate_box", 6, "warning")


def test_masking_can_be_turned_off(tmp_path):
    source = tmp_path / "visdrone"
    write_image(source / "images" / "a.png")
    write_text(source / "annotations" / "a.txt", ANNOTATION)
    out = tmp_path / "dataset"
    build_dataset(source, out, "visdrone", val_fraction=0.0, mask_ignored=False, progress=False)
    assert (out / "images" / "train" / "a.png").read_bytes() == (source / "images" / "a.png").read_bytes()
    assert label_lines(out, "train", "a") == EXPECTED_LABELS


def test_category_11_never_becomes_a_class_and_bad_rows_quarantine():
    labels = parse_annotation_text("1,1,5,5,1,11,0,0\n", "x.txt", 50, 50)
    assert labels.classes == [] and labels.counts["others_dropped"] == 1
    bad = parse_annotation_text("1,1,5,5,1,12,0,0\n1,1,5,5,1\n1,x,5,5,1,4,0,0\n", "x.txt", 50, 50)
    assert [(i.kind, i.line, i.severity) for i in bad.issues] == [
        ("label_unknown_class", 1, "error"),
        ("label_field_count", 2, "error"),
        ("label_not_number", 3, "error"),
    ]
