"""One `/invocations` request in stages, as a model server's handler (TorchServe's `BaseHandler`,
SageMaker's `input_fn/predict_fn/output_fn`): read, decode, infer, encode. Each stage is a plain
function of plain values, tested without the web framework; `app.py` only moves bytes in and out.

1. `read_request`: content type, body and headers -> the images, headers read but pixels not yet
   decoded, and the request's options; every limit whose cost is known from the headers (sizes,
   model inputs) is checked here, before anything is decoded.
2. `decode_opened` (decode.py): the pixels, once the server-wide pixel budget allows
   (`holding_pixels`).
3. `infer`: the images through the micro-batcher, within the request's deadline.
4. `encode_response`: the detections -> body, content type and headers.
5. `captured_exchange`: the request and its answer, for data capture.

Each stage raises `RequestError` with the HTTP status and a message naming the field at fault.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from yolo_core.infer.deadline import Deadline, DeadlineExceeded
from yolo_core.infer.detections import Detections
from yolo_core.serving.batcher import BatchResult
from yolo_core.serving.capture import CapturedExchange
from yolo_core.serving.cost import check_cost
from yolo_core.serving.decode import OpenedRequest, media_type, open_body
from yolo_core.serving.errors import RequestError
from yolo_core.serving.options import InferenceOptions, parse_options
from yolo_core.serving.state import ServerSettings, ServerState

T = TypeVar("T")
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Invocation:
    """One request, read: its images (sizes known, pixels not decoded) and its options."""

    opened: OpenedRequest
    options: InferenceOptions

    @property
    def pixels(self) -> int:
        return self.opened.pixels


@dataclass(frozen=True)
class EncodedResponse:
    body: bytes
    content_type: str
    headers: dict[str, str]


def read_request(
    content_type: str | None, body: bytes, headers: Mapping[str, str], settings: ServerSettings
) -> Invocation:
    """Stage 1: the body's images (headers only) and the options from server defaults, headers and
    a JSON body; a request over a size or cost limit is refused here, before any decoding.
    `headers` must be case-insensitive (Starlette's are)."""
    opened = open_body(content_type, body, settings.limits)
    options = parse_options(settings.default_options, headers, opened.option_fields)
    check_cost(opened.sizes, options, settings.max_request_tiles)
    return Invocation(opened, options)


async def before_deadline(work: Awaitable[T], deadline: Deadline) -> T:
    """`work`, or the 503 of a request past its time limit (stopped in the worker too)."""
    try:
        return await asyncio.wait_for(work, max(deadline.at - time.monotonic(), 0.001))
    except (TimeoutError, DeadlineExceeded):
        raise RequestError(
            503, f"request did not finish within {deadline.limit_s:g} s (server overloaded)"
        ) from None


@asynccontextmanager
async def holding_pixels(state: ServerState, pixels: int, deadline: Deadline) -> AsyncIterator[None]:
    """Stage 2's admission: `pixels` of the server-wide budget, waited for within the deadline,
    given back once the request has been answered."""
    await before_deadline(state.pixels.acquire(pixels), deadline)
    try:
        yield
    finally:
        state.pixels.release(pixels)


async def infer(
    state: ServerState, images: list[np.ndarray], options: InferenceOptions, deadline: Deadline
) -> BatchResult[Detections]:
    """Stage 3: one request's images through the micro-batcher (sharing forward passes with other
    requests of the same options), within its deadline."""
    return await before_deadline(state.batcher.submit(images, options, deadline), deadline)


def image_result(image_shape: Sequence[int], detections: Detections, names: dict[int, str]) -> dict:
    return {
        "width": int(image_shape[1]),
        "height": int(image_shape[0]),
        "detections": detections.to_records(names),
    }


def encode_response(
    image_shapes: Sequence[Sequence[int]],
    result: BatchResult[Detections],
    names: dict[int, str],
    single: bool,
) -> EncodedResponse:
    """Stage 4: compact JSON, one result per image (a single image sent as such: that result alone,
    else `{"predictions": [...]}`), and how the request was batched in headers."""
    results = [
        image_result(shape, detections, names)
        for shape, detections in zip(image_shapes, result.outputs, strict=True)
    ]
    payload = results[0] if single else {"predictions": results}
    headers = {"X-Batch-Size": str(result.batch_images), "X-Batch-Requests": str(result.batch_requests)}
    return EncodedResponse(json.dumps(payload, separators=(",", ":")).encode(), JSON_TYPE, headers)


def captured_exchange(
    content_type: str | None, body: bytes, response: EncodedResponse, inference_id: str | None
) -> CapturedExchange:
    """Stage 5: what data capture records of one answered request."""
    kind = media_type(content_type)
    return CapturedExchange(kind, body, response.content_type, response.body, inference_id)
