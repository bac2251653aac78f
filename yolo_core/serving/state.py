"""What a running server holds: its settings, the model, the batcher, the pixel budget, data
capture and its counters, in one object that the request stages take as an argument.

`/ping`'s answer and `/metrics`' numbers are read from it here, as plain data, so that the web
framework only wraps them in responses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from yolo_core.serving.batcher import MicroBatcher
from yolo_core.serving.budget import PixelBudget
from yolo_core.serving.capture import DEFAULT_MAX_QUEUED_BYTES, DataCapture
from yolo_core.serving.decode import DecodeLimits
from yolo_core.serving.errors import RequestError
from yolo_core.serving.model import ModelHolder, PredictorLike
from yolo_core.serving.options import InferenceOptions


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


def error_body(status: int, message: str) -> dict:
    """Every error answer's JSON: the message names the problem, the status repeats the code."""
    return {"error": message, "status": status}


@dataclass
class ServerState:
    settings: ServerSettings
    model: ModelHolder
    batcher: MicroBatcher
    pixels: PixelBudget
    capture: DataCapture | None = None
    errors: Counter[int] = field(default_factory=Counter)  # answers by 4xx/5xx status
    in_flight: int = 0  # requests being answered now: what a SIGTERM drain waits for

    @classmethod
    def create(
        cls,
        settings: ServerSettings,
        load_predictor: Callable[[], PredictorLike],
        on_load_failure: Callable[[str], None] | None = None,
    ) -> ServerState:
        if settings.max_pixels_in_flight < settings.limits.max_request_pixels:
            raise ValueError(
                f"max_pixels_in_flight ({settings.max_pixels_in_flight}) is below max_request_pixels "
                f"({settings.limits.max_request_pixels}): a full request could never be decoded"
            )
        model = ModelHolder(load_predictor, on_load_failure, settings.warmup_batches, settings.warmup_shape)
        batcher = MicroBatcher(
            model.run, settings.max_batch_size, settings.max_wait_ms / 1000, settings.max_queued_images
        )
        capture = (
            DataCapture(settings.capture_dir, settings.capture_percentage, settings.capture_max_queued_bytes)
            if settings.capture_dir
            else None
        )
        return cls(settings, model, batcher, PixelBudget(settings.max_pixels_in_flight), capture)

    def start(self) -> None:
        """Load the model in the background and start the batcher (in the running event loop)."""
        self.model.start_loading()
        self.batcher.start()

    async def stop(self) -> None:
        """Finish queued requests, then write what capture holds: the end of a SIGTERM drain."""
        await self.batcher.stop()
        if self.capture is not None:
            self.capture.close()

    def require_ready(self) -> None:
        if not self.model.ready:
            raise RequestError(503, "model is still loading; retry when GET /ping answers 200")

    @property
    def class_names(self) -> dict[int, str]:
        predictor = self.model.predictor
        if predictor is None:
            raise RuntimeError("the model is not loaded")
        return predictor.names

    def health(self) -> tuple[int, dict]:
        """`/ping`: (status, JSON body). Unhealthy while a batch runs past `stuck_after_s`, so that
        the platform replaces the instance; 503 while loading; 500 once loading has failed."""
        busy_s = self.batcher.running_for()
        stuck_after_s = self.settings.stuck_after_s
        if busy_s > stuck_after_s:
            message = (
                f"inference worker stuck: one batch has run for {busy_s:.0f} s, over stuck_after_s="
                f"{stuck_after_s:g}; replace this instance"
            )
            return 503, error_body(503, message)
        if self.model.ready:
            return 200, {"status": "ready"}
        if self.model.error:
            return 500, error_body(500, f"model failed to load: {self.model.error}")
        return 503, {"status": "loading"}

    def metrics(self) -> dict:
        """`/metrics`: batching, queues, budgets, errors and capture, as numbers; the inference
        engine and how it was chosen (null until the model is loaded)."""
        capture = self.capture
        return {
            "model_ready": self.model.ready,
            "in_flight": self.in_flight,
            "max_batch_size": self.settings.max_batch_size,
            "max_wait_ms": self.settings.max_wait_ms,
            **asdict(self.batcher.stats),
            "queued_images": self.batcher.queued_images,
            "worker_busy_s": round(self.batcher.running_for(), 3),
            "pixels_in_flight": self.pixels.in_use,
            "requests_waiting_for_pixels": self.pixels.waiting,
            "errors": dict(self.errors),
            "captured": capture.lines_written if capture else 0,
            "capture_failed": capture.lines_failed if capture else 0,
            "capture_dropped": capture.lines_dropped if capture else 0,
            "engine": self.model.engine_record(),
        }
