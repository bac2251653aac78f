"""Everything done to one source frame, in one worker process, decoding it once.

read + hash + decode + check -> parse labels against the real size -> statistics -> split ->
mask ignored regions -> write the frame (its bytes copied when untouched) or its tiles.
Writing unchanged frames byte for byte avoids a lossy, slow re-encode; tiles and masked or
converted frames are encoded once as JPEG.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from yolo_core.data import quality, split
from yolo_core.data.images_io import LoadedImage, load_image
from yolo_core.data.labels import Labels
from yolo_core.data.source import SourceItem
from yolo_core.data.stats import image_statistics
from yolo_core.data.tiling import clip_to_windows, tile_windows

MASK_GREY = 114  # the grey Ultralytics pads letterboxes with: "nothing here" to the model
COPYABLE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
UNLABELED_RULES = ("quarantine", "background")


@dataclass(frozen=True)
class FrameOptions:
    """The build settings a worker needs (picklable)."""

    out_dir: Path
    tile_size: int | None = None
    tile_overlap: float = 0.2
    min_visible_fraction: float = 0.5
    empty_tile_ratio: float = 0.1
    val_fraction: float = 0.2
    seed: int = 0
    color_rule: str = "convert"
    unlabeled_images: str = "quarantine"
    mask_ignored: bool = True
    jpeg_quality: int = 95


@dataclass(frozen=True)
class OutputItem:
    """One written training image: a whole frame or a tile at (x, y) of its source frame."""

    name: str
    suffix: str
    x: int
    y: int
    width: int
    height: int
    boxes: int
    label_text: str


@dataclass
class FrameResult:
    rel: str
    digest: str = ""
    split_key: float = 0.0
    frame_size: tuple[int, int] = (0, 0)
    issues: list[quality.Issue] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    stats: dict | None = None
    box_sizes: list[tuple[int, float, float]] = field(default_factory=list)
    outputs: list[OutputItem] = field(default_factory=list)

    @property
    def quarantined(self) -> bool:
        return self.stats is None


def output_stem(rel: str) -> str:
    """A flat, unique file stem from the source path: `a/images/b/c.jpg` -> `a__b__c`."""
    parts = [part for part in PurePosixPath(rel).with_suffix("").parts if part != "images"]
    return "__".join(parts)


def yolo_label_text(classes: np.ndarray, boxes: np.ndarray, width: int, height: int) -> str:
    """YOLO label lines (class, centre and size normalised) for pixel corner boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    rows = np.column_stack(
        [
            np.asarray(classes, dtype=np.float64),
            (boxes[:, 0] + boxes[:, 2]) / (2 * width),
            (boxes[:, 1] + boxes[:, 3]) / (2 * height),
            (boxes[:, 2] - boxes[:, 0]) / width,
            (boxes[:, 3] - boxes[:, 1]) / height,
        ]
    )
    # One formatting call for the whole file: cheaper than formatting a string per line.
    return ("%d %.6f %.6f %.6f %.6f\n" * len(rows)) % tuple(rows.ravel().tolist())


def _labels(item: SourceItem, width: int, height: int, options: FrameOptions) -> Labels:
    if item.parse_labels is not None:
        return item.parse_labels(width, height)
    labels = Labels(item.rel, width, height)
    if options.unlabeled_images == "quarantine":
        labels.error(quality.IMAGE_WITHOUT_LABELS, "no label file or entry for this image")
    else:
        labels.issues.append(
            quality.warning(
                item.rel, quality.IMAGE_WITHOUT_LABELS, "kept as background", "no labels: no objects"
            )
        )
    return labels


def _mask(image: np.ndarray, regions: list[tuple[float, float, float, float]]) -> None:
    for x0, y0, x1, y1 in regions:
        image[int(y0) : math.ceil(y1), int(x0) : math.ceil(x1)] = MASK_GREY


def _encode(image: np.ndarray, quality_level: int) -> np.ndarray:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality_level])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return buffer


def _write_file(path: str, data: bytes | np.ndarray) -> None:
    # Unbuffered: one write() call straight from the encoder's buffer, no intermediate copy.
    view = memoryview(data).cast("B")
    with open(path, "wb", buffering=0) as file:
        while view:
            view = view[file.write(view) :]


def _write(options: FrameOptions, split_name: str, output: OutputItem, data: bytes | np.ndarray) -> None:
    # Plain strings: pathlib's joins cost more than the writes of the small label files.
    root = os.fspath(options.out_dir)
    _write_file(f"{root}/images/{split_name}/{output.name}{output.suffix}", data)
    _write_file(f"{root}/labels/{split_name}/{output.name}.txt", output.label_text.encode())


def _write_whole(result: FrameResult, loaded: LoadedImage, labels: Labels, split_name: str, options) -> None:
    """The frame as one training image: its original bytes when nothing changed them."""
    height, width = loaded.image.shape[:2]
    suffix = Path(result.rel).suffix.lower()
    untouched = not loaded.converted and not (options.mask_ignored and labels.ignored)
    copy = untouched and suffix in COPYABLE_SUFFIXES
    text = yolo_label_text(labels.class_array(), labels.box_array(), width, height)
    output = OutputItem(
        output_stem(result.rel), suffix if copy else ".jpg", 0, 0, width, height, len(labels.boxes), text
    )
    _write(options, split_name, output, loaded.data if copy else _encode(loaded.image, options.jpeg_quality))
    result.outputs.append(output)


def _write_tiles(result: FrameResult, image: np.ndarray, labels: Labels, split_name: str, options) -> None:
    """The frame as overlapping tiles, each with the boxes visible enough inside it."""
    height, width = image.shape[:2]
    stem = output_stem(result.rel)
    classes = labels.class_array()
    windows = tile_windows(width, height, options.tile_size, options.tile_overlap)
    clipped = clip_to_windows(labels.box_array(), windows, options.min_visible_fraction)
    for window, (tile_boxes, kept, touching) in zip(windows, clipped, strict=True):
        result.counts["tile_boxes_dropped_by_visibility"] += touching - len(kept)
        if not len(kept):
            if not split.keep_empty_tile(
                result.rel, window.x, window.y, options.seed, options.empty_tile_ratio
            ):
                result.counts["empty_tiles_dropped"] += 1
                continue
            result.counts["empty_tiles_kept"] += 1
        x, y, w, h = window.x, window.y, window.width, window.height
        text = yolo_label_text(classes[kept], tile_boxes, w, h)
        output = OutputItem(f"{stem}__x{x}_y{y}", ".jpg", x, y, w, h, len(kept), text)
        _write(options, split_name, output, _encode(image[y : y + h, x : x + w], options.jpeg_quality))
        result.outputs.append(output)


def process_frame(item: SourceItem, options: FrameOptions) -> FrameResult:
    """Check, convert and write one source frame; bad input ends as findings, never an exception."""
    cv2.setNumThreads(1)  # one frame per core: OpenCV's own threads would only contend
    loaded = load_image(item.image, item.rel, options.color_rule)
    result = FrameResult(item.rel, loaded.digest, split.split_key(loaded.digest, options.seed))
    result.issues += loaded.issues
    if loaded.image is None:
        return result
    height, width = loaded.image.shape[:2]
    result.frame_size = (width, height)
    labels = _labels(item, width, height, options)
    result.issues += labels.issues
    result.counts.update(labels.counts)
    if labels.has_errors:
        return result
    result.stats = {"file": item.rel, **image_statistics(loaded.image), "boxes": len(labels.boxes)}
    result.box_sizes = [
        (c, x1 - x0, y1 - y0) for c, (x0, y0, x1, y1) in zip(labels.classes, labels.boxes, strict=True)
    ]
    result.counts["boxes_kept"] += len(labels.boxes)
    if options.mask_ignored and labels.ignored:
        _mask(loaded.image, labels.ignored)
        result.counts["frames_masked"] += 1
    split_name = split.split_of(result.split_key, options.val_fraction)
    if options.tile_size is None or (width <= options.tile_size and height <= options.tile_size):
        _write_whole(result, loaded, labels, split_name, options)
    else:
        _write_tiles(result, loaded.image, labels, split_name, options)
    return result
