"""The SageMaker inference contract as a Starlette app: `GET /ping`, `POST /invocations`.

`/ping` is 503 until the model has loaded (in the background, so it answers at once), then 200.
`/invocations` decodes the body off the event loop, queues the images with the batcher and
answers JSON detections. Every bad request is a 4xx JSON `{"error": ..., "status": ...}` naming
the problem; nothing a client sends can stop the server. `/metrics` shows batching at work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from yolo_core.infer.detections import Detections
from yolo_core.serving.batcher import MicroBatcher
from yolo_core.serving.capture import CapturedExchange, DataCapture
from yolo_core.serving.decode import DecodeLimits, body_too_large_error, decode_body, media_type
from yolo_core.serving.errors import RequestError
from yolo_core.serving.model import ModelHolder, PredictorLike
from yolo_core.serving.options import InferenceOptions, parse_options

log = logging.getLogger(__name__)
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
    capture_dir: Path | None = None
    capture_percentage: float = 100.0
    warmup_batches: int = 1  # full batches run before /ping says 200
    warmup_shape: tuple[int, int] | None = None  # (width, height) of the frames to expect


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def read_body(request: Request, limits: DecodeLimits) -> bytes:
    """The body, refused with 413 as soon as it is known to pass the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise body_too_large_error(int(declared), limits)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise body_too_large_error(size, limits)
        chunks.append(chunk)
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
    model = ModelHolder(load_predictor, on_load_failure, settings.warmup_batches, settings.warmup_shape)
    errors: Counter[int] = Counter()
    in_flight = Counter[str]()  # requests being answered now: what a SIGTERM drain waits for
    batcher = MicroBatcher(
        model.run, settings.max_batch_size, settings.max_wait_ms / 1000, settings.max_queued_images
    )
    capture = DataCapture(settings.capture_dir, settings.capture_percentage) if settings.capture_dir else None

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

    async def answer(request: Request) -> Response:
        started = time.monotonic()
        if not model.ready:
            raise RequestError(503, "model is still loading; retry when GET /ping answers 200")
        body = await read_body(request, settings.limits)
        content_type = request.headers.get("content-type")
        decoded = await run_in_threadpool(decode_body, content_type, body, settings.limits)
        options = parse_options(settings.default_options, request.headers, decoded.option_fields)
        remaining = settings.request_timeout_s - (time.monotonic() - started)
        try:
            result = await asyncio.wait_for(batcher.submit(decoded.images, options), max(remaining, 0.001))
        except TimeoutError:
            raise RequestError(
                503, f"request did not finish within {settings.request_timeout_s:g} s (server overloaded)"
            ) from None
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
                "errors": dict(errors),
                "captured": capture.lines_written if capture else 0,
                "capture_failed": capture.lines_failed if capture else 0,
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
