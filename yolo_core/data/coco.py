"""COCO detection JSON to YOLO.

A COCO source is a folder with one or more JSON files (`annotations/*.json` or `*.json` at the
top) and the images they name, looked up under `images/`, next to the JSON, or at the top.
Semantics: categories are sorted by id and numbered 0..K-1 (their names become the class
names; several JSON files must agree on them); `bbox` is `[x, y, width, height]` in pixels;
`iscrowd: 1` (or `ignore: 1`) marks a region that is not a target and is masked out, as
VisDrone's ignored regions are; an image with no annotations is a background image. Findings
name the JSON file and the entry (`annotations[12]`), since JSON has no useful line numbers.
A `file_name` that is absolute or climbs out with `..` is reported and never followed: reading it
would pull a file from outside the source folder into the dataset.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from yolo_core.data import quality
from yolo_core.data.labels import Labels, parse_numbers
from yolo_core.data.source import Discovery, SourceItem, list_images, relative
from yolo_core.errors import UserInputError
from yolo_core.safe_paths import climbs_out


def parse_annotations(
    annotations: tuple[tuple[int, dict], ...],
    file: str,
    declared_size: tuple[int, int] | None,
    category_index: dict[int, int],
    width: int,
    height: int,
) -> Labels:
    """Turn one image's COCO annotations (with their index in the JSON) into labels."""
    labels = Labels(file, width, height)
    if declared_size and declared_size != (width, height):
        labels.error(
            quality.IMAGE_SIZE_MISMATCH,
            f"JSON says {declared_size[0]}x{declared_size[1]}, the image is {width}x{height}",
        )
        return labels
    classes: list[int] = []
    corners: list[list[float]] = []
    wheres: list[str | None] = []
    for index, annotation in annotations:
        where = f"annotations[{index}]"
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            labels.error(
                quality.LABEL_FIELD_COUNT, f"bbox must be [x, y, width, height], got {bbox!r}", None, where
            )
            continue
        values = parse_numbers([str(v) for v in bbox])
        if values is None:
            labels.error(
                quality.LABEL_NOT_NUMBER, f"bbox {bbox!r} has a value that is not a number", None, where
            )
            continue
        x, y, w, h = values
        if annotation.get("iscrowd") or annotation.get("ignore"):
            labels.add_ignored(x, y, x + w, y + h)
            continue
        category = annotation.get("category_id")
        if category not in category_index:
            labels.error(
                quality.LABEL_UNKNOWN_CLASS, f"category_id {category!r} is not in categories", None, where
            )
            continue
        classes.append(category_index[category])
        corners.append([x, y, x + w, y + h])
        wheres.append(where)
    labels.add_boxes(classes, corners, wheres=wheres)
    return labels


def _json_files(source_dir: Path) -> list[Path]:
    annotations_dir = source_dir / "annotations"
    found = sorted(annotations_dir.glob("*.json")) if annotations_dir.is_dir() else []
    return found or sorted(source_dir.glob("*.json"))


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserInputError(f"{path}: not a readable COCO JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise UserInputError(f"{path}: a COCO file needs an `images` list")
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise UserInputError(f"{path}: `{key}` must be a list")
    return data


def _categories(files: list[tuple[Path, dict]]) -> dict[int, str]:
    categories: dict[int, str] = {}
    for path, data in files:
        for entry in data.get("categories", []):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
                raise UserInputError(f"{path}: every category needs an integer `id`, got {entry!r}")
            name = str(entry.get("name", entry["id"]))
            if categories.setdefault(entry["id"], name) != name:
                raise UserInputError(
                    f"{path}: category {entry['id']} is named {name!r} here but differently elsewhere"
                )
    if not categories:
        raise UserInputError(f"{files[0][0]}: no categories")
    return dict(sorted(categories.items()))


def _find_image(file_name: str, json_path: Path, source_dir: Path) -> Path:
    for folder in (source_dir / "images", json_path.parent, source_dir):
        candidate = folder / file_name
        if candidate.is_file():
            return candidate
    return source_dir / "images" / file_name


def _outside(file: str, file_name: str, index: int) -> quality.Issue:
    """A bad `images` row: like a bad label row it is reported, and its image is never read."""
    message = f"file_name {file_name!r} is absolute or climbs out of the source folder; not followed"
    return quality.Issue(
        file, quality.IMAGE_PATH_OUTSIDE, quality.ERROR, "ignored", message, None, f"images[{index}]"
    )


def discover(source_dir: Path) -> Discovery:
    """List the images named by the COCO JSON files of a folder, plus unlisted images found."""
    json_paths = _json_files(source_dir)
    if not json_paths:
        raise UserInputError(f"{source_dir}: no COCO JSON file (looked in annotations/ and at the top)")
    files = [(path, _load(path)) for path in json_paths]
    categories = _categories(files)
    category_index = {category_id: i for i, category_id in enumerate(categories)}
    items: list[SourceItem] = []
    issues: list[quality.Issue] = []
    listed: set[Path] = set()
    for path, data in files:
        file = relative(path, source_dir)
        by_image: dict[object, list[tuple[int, dict]]] = {}
        for index, annotation in enumerate(data.get("annotations", [])):
            image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
            by_image.setdefault(image_id, []).append((index, annotation))
        known_ids = set()
        for index, entry in enumerate(data["images"]):
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("file_name"), str)
                or "id" not in entry
            ):
                issues.append(
                    quality.warning(
                        file,
                        quality.LABEL_FIELD_COUNT,
                        "ignored",
                        "needs `id` and `file_name`",
                        None,
                        f"images[{index}]",
                    )
                )
                continue
            known_ids.add(entry["id"])
            if climbs_out(entry["file_name"]):
                issues.append(_outside(file, entry["file_name"], index))
                continue
            image = _find_image(entry["file_name"], path, source_dir)
            listed.add(image)
            declared = (entry.get("width"), entry.get("height"))
            size = declared if all(isinstance(v, int) for v in declared) else None
            parser = partial(
                parse_annotations, tuple(by_image.get(entry["id"], ())), file, size, category_index
            )
            items.append(SourceItem(relative(image, source_dir), image, parser))
        for image_id in sorted(set(by_image) - known_ids, key=str):
            index = by_image[image_id][0][0]
            message = f"annotation for image_id {image_id!r}, which is not in `images`"
            issues.append(
                quality.warning(
                    file, quality.LABEL_WITHOUT_IMAGE, "ignored", message, None, f"annotations[{index}]"
                )
            )
    images_dir = source_dir / "images"
    for image in list_images(images_dir if images_dir.is_dir() else source_dir):
        if image not in listed:
            items.append(SourceItem(relative(image, source_dir), image, None))
    return Discovery(items, {i: categories[c] for c, i in category_index.items()}, issues)
