"""Captured endpoint traffic, read back for monitoring: the records of a time window, measured.

Why here and not in the entry point: the monitor command, `python -m pipeline monitor --local`, the
benchmark and the tests read captures the same way. Records are the server's data capture lines
(`yolo_core.serving.capture`), the same shape SageMaker writes to S3.

The window keeps each image's statistics and detections, not its pixels: ten thousand 4K frames
would not fit in memory. Where a later step needs pixels (embeddings of a sample, the report's
example images), `read_images` decodes the chosen ones again from their `ImageSource`.

A record is used when its `eventMetadata.inferenceTime` lies in [start, end). With either bound set,
a record without a readable time is left out, since it cannot be placed in the window; with neither
set, every record is used. Records whose request or answer cannot be read (a line cut by a crash, a
body that does not decode) are left out and counted.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from yolo_core.data.stats import image_statistics
from yolo_core.errors import UserInputError
from yolo_core.infer.detections import Detections
from yolo_core.monitoring.prediction_drift import detections_from_records
from yolo_core.serving.decode import DecodeLimits, decode_body

# The server admitted each captured body under its own limits, maybe larger than the defaults: only
# the per-image decompression-bomb guard stays.
CAPTURED_LIMITS = DecodeLimits(max_body_bytes=1 << 40, max_images=1 << 20, max_request_pixels=1 << 50)
# A line cut by a crash, a record of another shape, a body that does not decode (RequestError).
UNREADABLE = (AttributeError, KeyError, TypeError, ValueError, binascii.Error, UserInputError)
OUTSIDE = "outside the window or without a time"


@dataclass(frozen=True)
class ImageSource:
    """Where one served image lies: a capture file, the line's position in it, the image's index in
    its request, and the inference id the caller sent (ground truth is joined on it)."""

    file: Path
    line: int
    index: int
    inference_id: str | None


@dataclass
class Window:
    """What the monitored window's records yield, one entry per image in every list."""

    images: list[dict] = field(default_factory=list)
    detections: list[Detections] = field(default_factory=list)
    sources: list[ImageSource] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    records: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    first_time: datetime | None = None  # the earliest and latest inference time read
    last_time: datetime | None = None

    def saw(self, when: datetime | None) -> None:
        if when is not None:
            self.first_time = min(self.first_time or when, when)
            self.last_time = max(self.last_time or when, when)

    def left_out_text(self) -> str:
        return ", ".join(f"{count} {why}" for why, count in sorted(self.left_out.items()))


def parse_time(text: str | None, what: str) -> datetime | None:
    """An ISO 8601 time as UTC (no offset: UTC); a bad one names what it was."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserInputError(
            f"{what}: {text!r} is not an ISO 8601 time (e.g. 2024-05-01T13:00:00Z)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def capture_lines(folder: Path) -> Iterator[tuple[Path, int, str]]:
    """(file, line position, text) of every non-blank line of every .jsonl file below `folder`, in
    path order (SageMaker's hourly folders sort by name)."""
    for path in sorted(folder.rglob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for position, line in enumerate(handle):
                if line.strip():
                    yield path, position, line


def inference_time(record: dict) -> datetime | None:
    """The record's eventMetadata.inferenceTime, or None where it is missing or unreadable."""
    text = (record.get("eventMetadata") or {}).get("inferenceTime")
    try:
        return parse_time(text, "inferenceTime") if isinstance(text, str) else None
    except UserInputError:
        return None


def in_window(when: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    """[start, end); a record without a time is in only when no bound is set."""
    if when is None:
        return start is None and end is None
    return (start is None or when >= start) and (end is None or when < end)


def payload_bytes(payload: dict) -> bytes:
    """A capture payload's data as the endpoint saw it (BASE64 decoded, JSON as its text)."""
    data = payload["data"]
    return base64.b64decode(data, validate=True) if payload.get("encoding") == "BASE64" else data.encode()


def exchange_frames(record: dict) -> list[tuple[np.ndarray, list[dict]]]:
    """Each image of a captured request with its detection rows from the captured answer."""
    capture = record["captureData"]
    request, answer = capture["endpointInput"], capture["endpointOutput"]
    decoded = decode_body(request["observedContentType"], payload_bytes(request), CAPTURED_LIMITS)
    body = json.loads(payload_bytes(answer))
    results = [body] if decoded.single else body["predictions"]
    if len(results) != len(decoded.images):
        raise ValueError("the answer has not one result per image")
    return [(image, result["detections"]) for image, result in zip(decoded.images, results, strict=True)]


def _inference_id(record: dict) -> str | None:
    value = (record.get("eventMetadata") or {}).get("inferenceId")
    return str(value) if value else None


def add_exchange(window: Window, record: dict, file: Path, line: int) -> None:
    """Measure one record's images as preprocess measured the baseline, and keep its detections."""
    frames = exchange_frames(record)  # all of it or nothing: a bad image leaves the record out
    measured = [(image_statistics(image), detections_from_records(rows), rows) for image, rows in frames]
    inference_id = _inference_id(record)
    for index, (statistics, detections, rows) in enumerate(measured):
        window.images.append(statistics)
        window.detections.append(detections)
        window.sources.append(ImageSource(file, line, index, inference_id))
        window.names.update({int(row["class_id"]): str(row["class_name"]) for row in rows})
    window.records += 1


def read_window(folder: Path, start: datetime | None = None, end: datetime | None = None) -> Window:
    """The window's records, measured; what is outside or unreadable is counted, not fatal. No
    readable record at all is the caller's error, named with the folder and the bounds."""
    window = Window()
    for file, line, text in capture_lines(folder):
        try:
            record = json.loads(text)
            when = inference_time(record)
            if not in_window(when, start, end):
                window.left_out[OUTSIDE] += 1
                continue
            add_exchange(window, record, file, line)
            window.saw(when)
        except UNREADABLE:
            window.left_out["unreadable"] += 1
    if not window.records:
        why = window.left_out_text() or "no .jsonl lines"
        raise UserInputError(
            f"dataset_source {folder}: no readable capture records between start_time "
            f"{start or 'unset'} and end_time {end or 'unset'} ({why})"
        )
    return window


def read_images(sources: Sequence[ImageSource]) -> list[tuple[np.ndarray, list[dict]]]:
    """The pixels and detection rows of chosen served images, decoded again from their capture
    lines, in the order asked (each file is read once)."""
    wanted: dict[Path, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for position, source in enumerate(sources):
        wanted[source.file][source.line].append(position)
    found: list[tuple[np.ndarray, list[dict]] | None] = [None] * len(sources)
    for file, lines in wanted.items():
        with file.open(encoding="utf-8", errors="replace") as handle:
            for line_number, text in enumerate(handle):
                if line_number in lines:
                    frames = exchange_frames(json.loads(text))
                    for position in lines[line_number]:
                        found[position] = frames[sources[position].index]
    return [item for item in found if item is not None]
