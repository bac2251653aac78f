"""Per-request inference options: confidence, IoU, max detections and slicing.

They may come from the JSON body, from `X-Conf`-style headers, or from SageMaker's
`X-Amzn-SageMaker-Custom-Attributes` header (the only header `InvokeEndpoint` forwards, as
`conf=0.3;slice_size=640`). Later sources win: server defaults < custom attributes < X- headers
< JSON body. A value out of range or a misspelt name is a 400 that names it, never ignored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

from yolo_core.errors import UserInputError
from yolo_core.serving.errors import RequestError, echo, shorten
from yolo_core.vocabulary import parse_bool

CUSTOM_ATTRIBUTES_HEADER = "x-amzn-sagemaker-custom-attributes"
# Below 128 px a tile spans 4 cells of YOLO's coarsest (stride 32) feature map and is upscaled 5x
# to a 640 model input, which adds no detail; the tile count (the cost) grows with 1 / size**2, so
# 64 px tiles would cost 4x as many passes for nothing. Offline evaluation shares this floor.
MIN_SLICE_SIZE = 128
# Past half a tile, each pixel is seen by more than 4 tiles (1 / (1 - overlap)**2) and the cost
# explodes (0.9 means 100 passes per tile's area) for no gain in recall.
MAX_SLICE_OVERLAP = 0.5


@dataclass(frozen=True)
class InferenceOptions:
    """Hashable, so that the batcher can group requests that can share a forward pass."""

    conf: float = 0.25
    iou: float | None = None  # None: the predictor's default for the chosen path
    max_det: int = 300
    slice_size: int = 0  # 0: one pass over the whole frame; else tiles of this size
    slice_overlap: float = 0.2
    full_frame: bool = False  # with slicing: also a whole-frame pass for large objects

    @property
    def sliced(self) -> bool:
        return self.slice_size > 0


@dataclass(frozen=True)
class _Range:
    kind: type
    low: float
    high: float

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        noun = "an integer" if self.kind is int else "a number"
        return f"{noun} from {self.low:g} to {self.high:g}"


_RANGES = {
    "conf": _Range(float, 0.0, 1.0),
    "iou": _Range(float, 0.0, 1.0),
    "max_det": _Range(int, 1, 3000),
    "slice_size": _Range(int, 0, 8192),
    "slice_overlap": _Range(float, 0.0, MAX_SLICE_OVERLAP),
    "full_frame": _Range(bool, 0, 1),
}
OPTION_NAMES = tuple(_RANGES)
HEADER_NAMES = {name: "x-" + name.replace("_", "-") for name in OPTION_NAMES}  # x-conf, x-slice-size


def _spelling(raw: object) -> str:
    """The value as the client wrote it (JSON `true`, `null`, not Python's `True`, `None`), short."""
    if isinstance(raw, bool) or raw is None:
        return json.dumps(raw)
    if isinstance(raw, list | dict):
        return "[...]" if isinstance(raw, list) else "{...}"
    return echo(raw)


def _convert(name: str, raw: object, where: str) -> object:
    spec = _RANGES[name]
    problem = f"{where}: {name}={_spelling(raw)} is not {spec.describe()}"
    if spec.kind is bool:
        if isinstance(raw, bool):
            return raw
        try:
            return parse_bool(str(raw), name)
        except UserInputError:
            raise RequestError(400, problem) from None
    if isinstance(raw, bool) or raw is None or isinstance(raw, list | dict):
        raise RequestError(400, problem)
    try:
        number = float(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer past float's range
        raise RequestError(400, problem) from None
    if not spec.low <= number <= spec.high:
        raise RequestError(400, problem)
    if spec.kind is int:
        if number != int(number):
            raise RequestError(400, problem)
        number = int(number)
        if name == "slice_size" and 0 < number < MIN_SLICE_SIZE:
            message = f"{where}: slice_size={_spelling(raw)} must be 0 (no slicing) or >= {MIN_SLICE_SIZE}"
            raise RequestError(400, message)
    return number


def parse_key_values(text: str, where: str) -> dict[str, str]:
    """`conf=0.3;slice_size=640` (`,` also separates) into a dict; used for custom attributes."""
    pairs: dict[str, str] = {}
    for item in text.replace(",", ";").split(";"):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise RequestError(400, f"{where}: {echo(item.strip())} is not name=value")
        pairs[key.strip().lower().replace("-", "_")] = value.strip()
    return pairs


def _apply(options: InferenceOptions, values: Mapping[str, object], where: str) -> InferenceOptions:
    unknown = sorted(set(values) - set(OPTION_NAMES))
    if unknown:
        raise RequestError(
            400, f"{where}: unknown option(s) {shorten(', '.join(unknown))}; known: {', '.join(OPTION_NAMES)}"
        )
    changes = {name: _convert(name, raw, where) for name, raw in values.items()}
    return dataclasses.replace(options, **changes)


def parse_options(
    defaults: InferenceOptions,
    headers: Mapping[str, str],
    body_fields: Mapping[str, object] | None = None,
) -> InferenceOptions:
    """The options of one request; `headers` must be case-insensitive (Starlette's are)."""
    options = defaults
    attributes = headers.get(CUSTOM_ATTRIBUTES_HEADER)
    if attributes:
        where = "X-Amzn-SageMaker-Custom-Attributes header"
        options = _apply(options, parse_key_values(attributes, where), where)
    for name, header in HEADER_NAMES.items():
        value = headers.get(header)
        if value is not None:
            options = _apply(options, {name: value}, f"{header.title()} header")
    if body_fields:
        options = _apply(options, body_fields, "JSON body")
    return options


def parse_default_options(text: str) -> InferenceOptions:
    """Server-wide defaults from a flag or env var, in the custom-attributes syntax."""
    where = "default options"
    return _apply(InferenceOptions(), parse_key_values(text, where), where)
