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

The handlers here are thin: the request's stages (read, decode, infer, encode, capture) are plain
functions in `stages.py`, and what the server holds (model, batcher, budget, capture, counters) is
one `ServerState` (`state.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from yolo_core.errors import exception_line
from yolo_core.infer.deadline import Deadline
from yolo_core.serving.decode import DecodeLimits, body_too_large_error, decode_opened
from yolo_core.serving.errors import RequestError
from yolo_core.serving.model import PredictorLike
from yolo_core.serving.stages import (
    captured_exchange,
    encode_response,
    holding_pixels,
    infer,
    read_request,
)
from yolo_core.serving.state import ServerSettings, ServerState, error_body

log = logging.getLogger(__name__)
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status)


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


async def answer(state: ServerState, request: Request) -> Response:
    """`/invocations`, stage by stage (stages.py); the slow stages run off the event loop."""
    settings = state.settings
    started = time.monotonic()
    deadline = Deadline(started + settings.request_timeout_s, settings.request_timeout_s)
    state.require_ready()
    body = await read_body(request, settings.limits, settings.body_timeout_s)
    content_type = request.headers.get("content-type")
    invocation = await run_in_threadpool(read_request, content_type, body, request.headers, settings)
    async with holding_pixels(state, invocation.pixels, deadline):
        decoded = await run_in_threadpool(decode_opened, invocation.opened)
        # Letterboxed here, in the request's thread, while the worker runs other requests' batches.
        inputs = await run_in_threadpool(state.model.prepare, decoded.images, invocation.options)
        result = await infer(state, inputs, invocation.options, deadline)
        shapes = [image.shape for image in decoded.images]
        encoded = encode_response(shapes, result, state.class_names, decoded.single)
        if state.capture is not None:
            inference_id = request.headers.get(INFERENCE_ID_HEADER)
            state.capture.submit(captured_exchange(content_type, body, encoded, inference_id))
        elapsed_ms = f"{(time.monotonic() - started) * 1000:.1f}"  # in the server, queue included
        headers = {**encoded.headers, "X-Elapsed-Ms": elapsed_ms}
        return Response(encoded.body, media_type=encoded.content_type, headers=headers)


def create_app(
    settings: ServerSettings,
    load_predictor: Callable[[], PredictorLike],
    on_load_failure: Callable[[str], None] | None = None,
) -> Starlette:
    state = ServerState.create(settings, load_predictor, on_load_failure)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        state.start()
        try:
            yield
        finally:  # uvicorn gets here after in-flight requests finished (SIGTERM drain)
            await state.stop()

    async def ping(request: Request) -> Response:
        status, body = state.health()
        return JSONResponse(body, status_code=status)

    async def invocations(request: Request) -> Response:
        state.in_flight += 1
        try:
            return await answer(state, request)
        finally:
            state.in_flight -= 1

    async def metrics(request: Request) -> Response:
        return JSONResponse(state.metrics())

    async def on_request_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status", None) or getattr(exc, "status_code", 500)
        message = getattr(exc, "message", None) or getattr(exc, "detail", None) or str(exc)
        state.errors[status] += 1
        log.info("%s %s -> %d: %s", request.method, request.url.path, status, message)
        response = error_response(status, message)
        response.headers.update(getattr(exc, "headers", None) or {})  # e.g. Allow on a 405
        return response

    async def on_unexpected_error(request: Request, exc: Exception) -> Response:
        state.errors[500] += 1  # Starlette logs the traceback after this answer is sent
        return error_response(500, f"internal error: {type(exc).__name__}: {exception_line(exc)}")

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
