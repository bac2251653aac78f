"""YOLO folders to our YOLO layout: re-validated, re-split, optionally tiled.

A YOLO source has images under `images/` (any sub-folders, e.g. `images/train`) and labels
at the same relative path under `labels/` with a `.txt` suffix, as Ultralytics expects; a
folder without `images/` keeps each label next to its image. Class names come from a
`data.yaml` (or any `*.yaml` with `names`) at the top, or from `classes.txt` (one per line).
Each label line is `class x_center y_center width height`, normalised to 0-1. A line with
another field count, a non-number, a class id outside the names, or a coordinate outside 0-1
(beyond a rounding tolerance) is an error that quarantines the image; boxes reaching past the
edge within the tolerance are clipped. An empty label file means an image with no objects.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import yaml

from yolo_core.data import quality
from yolo_core.data.labels import Labels, parse_numbers
from yolo_core.data.source import Discovery, SourceItem, list_images, orphan_labels, read_label_text, relative
from yolo_core.errors import UserInputError, one_line

FIELDS = 5
TOLERANCE = 1e-3


def parse_label_text(text: str, file: str, width: int, height: int, num_classes: int) -> Labels:
    """Parse one YOLO label file's text against an image of the given size."""
    labels = Labels(file, width, height)
    classes: list[int] = []
    corners: list[list[float]] = []
    lines: list[int | None] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != FIELDS:
            labels.error(quality.LABEL_FIELD_COUNT, f"expected {FIELDS} fields, got {len(fields)}", number)
            continue
        values = parse_numbers(fields)
        if values is None:
            labels.error(quality.LABEL_NOT_NUMBER, f"a field is not a number: {raw.strip()!r}", number)
            continue
        cls, xc, yc, w, h = values
        if cls != int(cls) or not 0 <= cls < num_classes:
            labels.error(quality.LABEL_UNKNOWN_CLASS, f"class {cls:g} is not in 0-{num_classes - 1}", number)
            continue
        left, top, right, bottom = xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2
        if min(left, top, w, h) < -TOLERANCE or max(right, bottom) > 1 + TOLERANCE:
            message = f"normalised box ({xc:g},{yc:g},{w:g},{h:g}) reaches outside 0-1"
            labels.error(quality.LABEL_OUT_OF_RANGE, message, number)
            continue
        classes.append(int(cls))
        corners.append([left * width, top * height, right * width, bottom * height])
        lines.append(number)
    labels.add_boxes(classes, corners, lines)
    return labels


def parse_label_file(path: Path, file: str, num_classes: int, width: int, height: int) -> Labels:
    labels = Labels(file, width, height)
    text = read_label_text(path, labels)
    return labels if text is None else parse_label_text(text, file, width, height, num_classes)


def read_names(source_dir: Path) -> dict[int, str]:
    """Class names from `data.yaml` / `*.yaml` (`names` list or dict) or `classes.txt`."""
    for path in [
        source_dir / "data.yaml",
        *sorted(source_dir.glob("*.yaml")),
        *sorted(source_dir.glob("*.yml")),
    ]:
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise UserInputError(f"{path}: not valid YAML ({one_line(str(exc))})") from None
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, list):
            return {i: str(name) for i, name in enumerate(names)}
        if isinstance(names, dict):
            try:
                ids = {int(k): str(v) for k, v in names.items()}
            except ValueError:
                raise UserInputError(f"{path}: names keys must be class ids 0..n-1") from None
            if sorted(ids) != list(range(len(ids))):
                raise UserInputError(f"{path}: names keys must be 0..{len(ids) - 1}, got {sorted(ids)}")
            return dict(sorted(ids.items()))
    classes_txt = source_dir / "classes.txt"
    if classes_txt.is_file():
        names_list = [line.strip() for line in classes_txt.read_text().splitlines() if line.strip()]
        return dict(enumerate(names_list))
    raise UserInputError(f"{source_dir}: no class names; add data.yaml with `names:` or classes.txt")


def _label_path(image: Path, source_dir: Path) -> Path:
    images_dir = source_dir / "images"
    if images_dir.is_dir():
        return (source_dir / "labels" / image.relative_to(images_dir)).with_suffix(".txt")
    return image.with_suffix(".txt")


def discover(source_dir: Path) -> Discovery:
    """List the images of a YOLO folder with their label files."""
    names = read_names(source_dir)
    images_dir = source_dir / "images"
    images = list_images(images_dir if images_dir.is_dir() else source_dir)
    items: list[SourceItem] = []
    matched: set[Path] = set()
    for image in images:
        label = _label_path(image, source_dir)
        parser = None
        if label.is_file():
            matched.add(label)
            parser = partial(parse_label_file, label, relative(label, source_dir), len(names))
        items.append(SourceItem(relative(image, source_dir), image, parser))
    labels_dir = source_dir / "labels" if images_dir.is_dir() else source_dir
    label_files = (
        [p for p in labels_dir.rglob("*.txt") if p.name != "classes.txt"] if labels_dir.is_dir() else []
    )
    return Discovery(items, names, orphan_labels(sorted(label_files), matched, source_dir))
