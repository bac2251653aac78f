"""The SageMaker inference contract as a Starlette app: `GET /ping`, `POST /invocations`.

`/ping` is 503 until the model has loaded (in the background, so it answers at once), then 200.
`/invocations` decodes the body off the event loop, queues the images with the batcher and
answers JSON detections. Every bad request is a 4xx JSON `{"error": ..., "status": ...}` naming
the problem; nothing a client sends can stop the server. `/metrics` shows batching at work.

Nothing a client sends can wedge it either: a request's cost (model inputs) is checked against
`max_request_tiles` from image headers before decoding; decoding waits for a server-wide budget
of pixels; a body must arrive within `body_timeout_s` (408); the request's deadline travels into
the worker, which stops between forward passes once it has passed; and a batch that runs past
`stuck_after_s` turns `/ping` unhealthy, so that the platform replaces the instance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from yolo_core.infer.deadline import Deadline, DeadlineExceeded
from yolo_core.infer.detections import Detections
from yolo_core.serving.batcher import MicroBatcher
from yolo_core.serving.budget import PixelBudget
from yolo_core.serving.capture import DEFAULT_MAX_QUEUED_BYTES, CapturedExchange, DataCapture
from yolo_core.serving.cost import check_cost
from yolo_core.serving.decode import (
    DecodeLimits,
    OpenedRequest,
    body_too_large_error,
    decode_opened,
    media_type,
    open_body,
)
from yolo_core.serving.errors import RequestError
from yolo_core.serving.model import ModelHolder, PredictorLike
from yolo_core.serving.options import InferenceOptions, parse_options

log = logging.getLogger(__name__)
T = TypeVar("T")
JSON_TYPE = "application/json"
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"


@dataclass(frozen=True)
class ServerSettings:
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    default_options: InferenceOptions = field(default_factory=InferenceOptions)
    max_batch_size: int = 8  # images per forward pass; 1 turns batching off
    max_wait_ms: float = 5.0  # longest a request waits for company
    max_queued_images: int = 512  # beyond this, 503 "busy" instead of an ever longer wait
    request_timeout_s: float = 55.0  # SageMaker gives up at 60 s
    max_request_tiles: int = 512  # model inputs per request: 16 4K frames in 640 px tiles
    max_pixels_in_flight: int = 512_000_000  # decoded at once, all requests: ~1.5 GB of BGR
    body_timeout_s: float = 20.0  # to receive a whole body; slower clients get 408
    stuck_after_s: float = 120.0  # a batch running longer: /ping unhealthy (deadline + a batch)
    capture_dir: Path | None = None
    capture_percentage: float = 100.0
    capture_max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES  # beyond: dropped, counted
    warmup_batches: int = 1  # full batches run before /ping says 200
    warmup_shape: tuple[int, int] | None = None  # (width, height) of the frames to expect


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def read_body(request: Request, limits: DecodeLimits, timeout_s: float) -> bytes:
    """The body, refused with 413 as soon as it is known to pass the limit, and with 408 when it
    does not arrive within `timeout_s` (a stalled client must not hold a request open forever)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise body_too_large_error(int(declared), limits)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise body_too_large_error(size, limits)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(
            408, f"request body not received within {timeout_s:g} s ({size} bytes arrived); send it faster"
        ) from None
    return b"".join(chunks)


def _image_result(image_shape: tuple[int, ...], detections: Detections, names: dict[int, str]) -> dict:
    return {
        "width": int(image_shape[1]),
        "height": int(image_shape[0]),
        "detections": detections.to_records(names),
    }


def create_app(
    settings: ServerSettings,
    load_predictor: Callable[[], PredictorLike],
    on_load_failure: Callable[[str], None] | None = None,
) -> Starlette:
    if settings.max_pixels_in_flight < settings.limits.max_request_pixels:
        raise ValueError(
            f"max_pixels_in_flight ({settings.max_pixels_in_flight}) is below max_request_pixels "
            f"({settings.limits.max_request_pixels}): a full request could never be decoded"
        )
    model = ModelHolder(load_predictor, on_load_failure, settings.warmup_batches, settings.warmup_shape)
    pixels = PixelBudget(settings.max_pixels_in_flight)
    errors: Counter[int] = Counter()
    in_flight = Counter[str]()  # requests being answered now: what a SIGTERM drain waits for
    batcher = MicroBatcher(
        model.run, settings.max_batch_size, settings.max_wait_ms / 1000, settings.max_queued_images
    )
    capture = (
        DataCapture(settings.capture_dir, settings.capture_percentage, settings.capture_max_queued_bytes)
        if settings.capture_dir
        else None
    )

    @asynccontextmanager
    async def lifespan(app: Starlette):
        model.start_loading()
        batcher.start()
        try:
            yield
        finally:  # uvicorn gets here after in-flight requests finished (SIGTERM drain)
            await batcher.stop()
            if capture is not None:
                capture.close()

    async def ping(request: Request) -> Response:
        busy_s = batcher.running_for()
        if busy_s > settings.stuck_after_s:
            return error_response(
                503,
                f"inference worker stuck: one batch has run for {busy_s:.0f} s, over stuck_after_s="
                f"{settings.stuck_after_s:g}; replace this instance",
            )
        if model.ready:
            return JSONResponse({"status": "ready"})
        if model.error:
            return error_response(500, f"model failed to load: {model.error}")
        return JSONResponse({"status": "loading"}, status_code=503)

    async def invocations(request: Request) -> Response:
        in_flight["invocations"] += 1
        try:
            return await answer(request)
        finally:
            in_flight["invocations"] -= 1

    async def before_deadline(work: Awaitable[T], deadline: Deadline) -> T:
        """`work`, or the 503 of a request past its time limit (stopped in the worker too)."""
        try:
            return await asyncio.wait_for(work, max(deadline.at - time.monotonic(), 0.001))
        except (TimeoutError, DeadlineExceeded):
            raise RequestError(
                503, f"request did not finish within {settings.request_timeout_s:g} s (server overloaded)"
            ) from None

    async def answer(request: Request) -> Response:
        started = time.monotonic()
        deadline = Deadline(started + settings.request_timeout_s, settings.request_timeout_s)
        if not model.ready:
            raise RequestError(503, "model is still loading; retry when GET /ping answers 200")
        body = await read_body(request, settings.limits, settings.body_timeout_s)
        content_type = request.headers.get("content-type")
        opened = await run_in_threadpool(open_body, content_type, body, settings.limits)
        options = parse_options(settings.default_options, request.headers, opened.option_fields)
        check_cost(opened.sizes, options, settings.max_request_tiles)
        await before_deadline(pixels.acquire(opened.pixels), deadline)
        try:  # the pixels are given back once the request is answered
            return await infer_and_encode(request, started, deadline, opened, options, body)
        finally:
            pixels.release(opened.pixels)

    async def infer_and_encode(
        request: Request,
        started: float,
        deadline: Deadline,
        opened: OpenedRequest,
        options: InferenceOptions,
        body: bytes,
    ) -> Response:
        decoded = await run_in_threadpool(decode_opened, opened)
        result = await before_deadline(batcher.submit(decoded.images, options, deadline), deadline)
        content_type = request.headers.get("content-type")
        names = model.predictor.names  # type: ignore[union-attr]
        results = [
            _image_result(image.shape, detections, names)
            for image, detections in zip(decoded.images, result.outputs, strict=True)
        ]
        payload = results[0] if decoded.single else {"predictions": results}
        output = json.dumps(payload, separators=(",", ":")).encode()
        if capture is not None:
            inference_id = request.headers.get(INFERENCE_ID_HEADER)
            capture.submit(CapturedExchange(media_type(content_type), body, JSON_TYPE, output, inference_id))
        headers = {
            "X-Batch-Size": str(result.batch_images),
            "X-Batch-Requests": str(result.batch_requests),
            "X-Elapsed-Ms": f"{(time.monotonic() - started) * 1000:.1f}",  # in the server, queue included
        }
        return Response(output, media_type=JSON_TYPE, headers=headers)

    async def metrics(request: Request) -> Response:
        return JSONResponse(
            {
                "model_ready": model.ready,
                "in_flight": in_flight["invocations"],
                "max_batch_size": settings.max_batch_size,
                "max_wait_ms": settings.max_wait_ms,
                **asdict(batcher.stats),
                "queued_images": batcher.queued_images,
                "worker_busy_s": round(batcher.running_for(), 3),
                "pixels_in_flight": pixels.in_use,
                "requests_waiting_for_pixels": pixels.waiting,
                "errors": dict(errors),
                "captured": capture.lines_written if capture else 0,
                "capture_failed": capture.lines_failed if capture else 0,
                "capture_dropped": capture.lines_dropped if capture else 0,
            }
        )

    async def on_request_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status", None) or getattr(exc, "status_code", 500)
        message = getattr(exc, "message", None) or getattr(exc, "detail", None) or str(exc)
        errors[status] += 1
        log.info("%s %s -> %d: %s", request.method, request.url.path, status, message)
        response = error_response(status, message)
        response.headers.update(getattr(exc, "headers", None) or {})  # e.g. Allow on a 405
        return response

    async def on_unexpected_error(request: Request, exc: Exception) -> Response:
        errors[500] += 1  # Starlette logs the traceback after this answer is sent
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}".splitlines()[0])

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={
            RequestError: on_request_error,
            HTTPException: on_request_error,
            Exception: on_unexpected_error,
        },
        lifespan=lifespan,
    )
