"""VisDrone-DET to YOLO: the semantics of its annotation rows, made explicit.

A VisDrone-DET source is a folder with `images/` and `annotations/` (or several such folders
one level down, e.g. `VisDrone2019-DET-train/` and `-val/`); `annotations/X.txt` belongs to
`images/X.jpg`. Each row is `left,top,width,height,score,category,truncation,occlusion`
(a trailing comma is allowed). How rows become training data:
- category 1-10 with score 1: a target of YOLO class `category - 1` (pedestrian ... motor);
- category 0 ("ignored region") or score 0: not a target. These regions hold objects that
  were deliberately left unannotated, so they are MASKED OUT of the image (filled with the
  grey 114 that Ultralytics pads with) unless masking is turned off: otherwise the detector
  would be punished for finding real objects there;
- category 11 ("others"): not a target and not masked (the objects are real, just outside the
  ten classes); the row is dropped and counted as `others_dropped`. It never becomes class 10;
- boxes are clipped to the image; boxes with no width or height left are dropped and counted;
- any other category, a row without 8 fields, or a field that is not a number is an error
  that quarantines the image (its labels cannot be trusted).
Truncation and occlusion are read for validation only.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from yolo_core.data import quality
from yolo_core.data.labels import Labels, parse_numbers
from yolo_core.data.source import Discovery, SourceItem, list_images, orphan_labels, read_label_text, relative
from yolo_core.data.visdrone_classes import IGNORED_REGION, NAMES, OTHERS

FIELDS = 8


def parse_annotation_text(text: str, file: str, width: int, height: int) -> Labels:
    """Parse one VisDrone-DET annotation file's text against an image of the given size."""
    labels = Labels(file, width, height)
    classes: list[int] = []
    corners: list[list[float]] = []
    lines: list[int | None] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = line.rstrip(",").split(",")
        if len(fields) != FIELDS:
            labels.error(
                quality.LABEL_FIELD_COUNT,
                f"expected {FIELDS} comma-separated fields, got {len(fields)}",
                number,
            )
            continue
        values = parse_numbers(fields)
        if values is None:
            labels.error(quality.LABEL_NOT_NUMBER, f"a field is not a number: {line!r}", number)
            continue
        left, top, box_w, box_h, score, category = values[:6]
        if category != int(category) or not IGNORED_REGION <= category <= OTHERS:
            labels.error(quality.LABEL_UNKNOWN_CLASS, f"category {category:g} is not 0-{OTHERS}", number)
            continue
        category = int(category)
        if category == IGNORED_REGION or score == 0:
            labels.counts["score0_rows" if category != IGNORED_REGION else "category0_rows"] += 1
            labels.add_ignored(left, top, left + box_w, top + box_h)
        elif category == OTHERS:
            labels.counts["others_dropped"] += 1
        else:
            classes.append(category - 1)
            corners.append([left, top, left + box_w, top + box_h])
            lines.append(number)
    labels.add_boxes(classes, corners, lines)
    return labels


def parse_annotation_file(path: Path, file: str, width: int, height: int) -> Labels:
    labels = Labels(file, width, height)
    text = read_label_text(path, labels)
    return labels if text is None else parse_annotation_text(text, file, width, height)


def _roots(source_dir: Path) -> list[Path]:
    if (source_dir / "images").is_dir():
        return [source_dir]
    return sorted(p for p in source_dir.iterdir() if (p / "images").is_dir()) if source_dir.is_dir() else []


def discover(source_dir: Path) -> Discovery:
    """List the images of a VisDrone-DET folder with their annotation files."""
    items: list[SourceItem] = []
    issues: list[quality.Issue] = []
    for root in _roots(source_dir):
        annotations = root / "annotations"
        matched: set[Path] = set()
        for image in list_images(root / "images"):
            rel_image = image.relative_to(root / "images")
            annotation = (annotations / rel_image).with_suffix(".txt")
            rel = relative(image, source_dir)
            if annotation.is_file():
                matched.add(annotation)
                parser = partial(parse_annotation_file, annotation, relative(annotation, source_dir))
                items.append(SourceItem(rel, image, parser))
            else:
                items.append(SourceItem(rel, image, None))
        label_files = sorted(annotations.rglob("*.txt")) if annotations.is_dir() else []
        issues += orphan_labels(label_files, matched, source_dir)
    return Discovery(items, dict(NAMES), issues)
