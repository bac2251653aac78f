"""Ground-truth labels for served images, in SageMaker Model Monitor's ground-truth format.

Why this format: Model Monitor's model-quality jobs merge labels with captured traffic on the
inference id, and a labelling team that feeds them writes these files already; the monitor reads
the same files, locally or from the S3 prefix they were synced from.

A label file is JSON Lines (a file, or a folder searched recursively for `*.jsonl`), one line per
request the caller sent with an inference id (the `X-Amzn-SageMaker-Inference-Id` header):

    {"groundTruthData": {"data": "<JSON text>", "encoding": "JSON"},
     "eventMetadata": {"eventId": "<the inferenceId the caller sent>"},
     "eventVersion": "0"}

`data` is JSON text (a string, as Model Monitor wants it) holding the objects of the image:

    {"labels": [{"class_id": 0, "box": [x1, y1, x2, y2]}, ...]}                 one-image request
    {"images": [{"labels": [...]}, {"labels": [...]}, ...]}                     batched request

`images` lists the request's images in the order they were sent. Boxes are in the image's source
pixels, corners (x1 < x2, y1 < y2), as the server answers; `class_id` is the model's class index.
An image without objects has `"labels": []` (its detections are all false alarms). A line that
cannot be read is counted with its reason and left out, so one bad line does not stop a run.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from yolo_core.errors import UserInputError
from yolo_core.evaluation.ground_truth import GroundTruth

NOT_JSON = "not JSON"
NO_EVENT_ID = "no eventMetadata.eventId"
NOT_JSON_ENCODED = "groundTruthData.encoding is not JSON"
BAD_DATA = "groundTruthData.data is not JSON text"
NO_LABELS = "data has neither labels nor images"
BAD_LABEL = "a label is not {class_id, box: [x1, y1, x2, y2]} with x1 < x2, y1 < y2"
DUPLICATE = "eventId seen before (the first line kept)"


class UnreadableLine(ValueError):
    """A line left out; its message is the reason it is counted under."""


@dataclass
class GroundTruthSet:
    """Labels per served image, keyed by (inference id, image index in its request)."""

    labels: dict[tuple[str, int], GroundTruth] = field(default_factory=dict)
    unreadable: Counter[str] = field(default_factory=Counter)  # reason -> lines left out
    lines: int = 0  # lines read, unreadable ones included

    def __len__(self) -> int:
        return len(self.labels)


def read_ground_truth(path: Path, num_classes: int) -> GroundTruthSet:
    """Every readable line under `path`; a missing path or no readable line names the path."""
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"ground truth {path}: no such file or folder")
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    truth = GroundTruthSet()
    seen: set[str] = set()
    for file in files:
        with file.open(encoding="utf-8", errors="replace") as handle:
            for text in handle:
                if text.strip():
                    truth.lines += 1
                    _add_line(truth, seen, text, num_classes)
    if not seen:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(truth.unreadable.items())) or "no lines"
        raise UserInputError(f"ground truth {path}: no readable line in {len(files)} file(s) ({why})")
    return truth


def _add_line(truth: GroundTruthSet, seen: set[str], text: str, num_classes: int) -> None:
    try:
        event_id, images = parse_line(text, num_classes)
        if event_id in seen:
            raise UnreadableLine(DUPLICATE)
    except UnreadableLine as exc:
        truth.unreadable[str(exc)] += 1
        return
    seen.add(event_id)
    for index, image in enumerate(images):
        truth.labels[(event_id, index)] = image


def parse_line(text: str, num_classes: int) -> tuple[str, list[GroundTruth]]:
    """(event id, the labels of each image of the request) of one line, or UnreadableLine."""
    try:
        record = json.loads(text)
    except ValueError:
        raise UnreadableLine(NOT_JSON) from None
    if not isinstance(record, dict):
        raise UnreadableLine(NOT_JSON)
    event_id = (record.get("eventMetadata") or {}).get("eventId")
    if not isinstance(event_id, str) or not event_id:
        raise UnreadableLine(NO_EVENT_ID)
    payload = record.get("groundTruthData") or {}
    if str(payload.get("encoding", "")).upper() != "JSON":
        raise UnreadableLine(NOT_JSON_ENCODED)
    try:
        data = json.loads(payload["data"])
    except (KeyError, TypeError, ValueError):
        raise UnreadableLine(BAD_DATA) from None
    images = data.get("images") if isinstance(data, dict) else None
    if isinstance(data, dict) and "labels" in data:
        images = [data]
    if not isinstance(images, list) or not all(isinstance(image, dict) for image in images):
        raise UnreadableLine(NO_LABELS)
    return event_id, [_image_truth(image.get("labels"), num_classes) for image in images]


def _image_truth(labels: object, num_classes: int) -> GroundTruth:
    if not isinstance(labels, list):
        raise UnreadableLine(NO_LABELS)
    rows = [_label(label, num_classes) for label in labels]
    boxes = np.array([box for _, box in rows], np.float32).reshape(-1, 4)
    return GroundTruth(boxes, np.array([class_id for class_id, _ in rows], np.int64))


def _label(label: object, num_classes: int) -> tuple[int, list[float]]:
    if not isinstance(label, dict):
        raise UnreadableLine(BAD_LABEL)
    class_id, box = label.get("class_id"), label.get("box")
    if not _is_integral(class_id) or not (isinstance(box, list) and len(box) == 4):
        raise UnreadableLine(BAD_LABEL)
    if not 0 <= class_id < num_classes:
        raise UnreadableLine(f"class_id outside 0..{num_classes - 1}")
    if not all(_is_number(v) for v in box) or not (box[0] < box[2] and box[1] < box[3]):
        raise UnreadableLine(BAD_LABEL)
    return int(class_id), [float(v) for v in box]


def _is_integral(value: object) -> bool:
    return _is_number(value) and float(value).is_integer()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
