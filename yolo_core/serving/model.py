"""The served model: loaded in the background, so that `/ping` answers at once with 503 until
it is ready, then run on one batch of images with one request's options."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np

from yolo_core.infer.deadline import Deadline
from yolo_core.infer.detections import Detections
from yolo_core.infer.sliced import predict_sliced
from yolo_core.serving.options import InferenceOptions

log = logging.getLogger(__name__)


class PredictorLike(Protocol):
    names: dict[int, str]
    imgsz: int
    batch_size: int

    def predict(self, images: list[np.ndarray], **kwargs: object) -> list[Detections]: ...

    def source(self, image: np.ndarray) -> object: ...

    def prepare(self, image: np.ndarray) -> object: ...


class ModelHolder:
    def __init__(
        self,
        load: Callable[[], PredictorLike],
        on_failure: Callable[[str], None] | None = None,
        warmup_batches: int = 1,
        warmup_shape: tuple[int, int] | None = None,
    ):
        self._load = load
        self._warmup_batches = warmup_batches
        self._warmup_shape = warmup_shape  # (width, height) of the frames to expect
        self._on_failure = on_failure
        self._ready = threading.Event()
        self.predictor: PredictorLike | None = None
        self.error: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start_loading(self) -> threading.Thread:
        thread = threading.Thread(target=self._load_and_warm_up, name="model-loader", daemon=True)
        thread.start()
        return thread

    def _load_and_warm_up(self) -> None:
        try:
            predictor = self._load()
            self._warm_up(predictor)
            # Torch and Ultralytics leave ~350k long-lived objects: each full collection walks them
            # all (~1 s on 2 busy cores) holding the GIL, stalling every request in flight. Frozen,
            # they are skipped. (No gc.collect() first: that would block /ping for as long.)
            gc.freeze()
        except ValueError as exc:  # UserInputError among them: a bad model file or setting
            log.error("loading the model failed: %s", _first_line(exc))
            self._fail(_first_line(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported through /ping and the process exit status
            log.exception("loading the model failed")  # unexpected: keep the traceback
            self._fail(f"{type(exc).__name__}: {_first_line(exc)}")
            return
        self.predictor = predictor
        self._ready.set()
        log.info("model ready: %d classes", len(predictor.names))

    def _fail(self, reason: str) -> None:
        """Record why loading failed (for /ping and the exit status) and tell the server."""
        self.error = reason
        if self._on_failure is not None:
            self._on_failure(reason)

    def _warm_up(self, predictor: PredictorLike) -> None:
        """Full batches of the expected frame size, so that allocation and kernel selection happen
        before /ping says 200, not in the first clients' requests. On a GPU every batch size gets a
        pass too: cuDNN builds a plan per input shape (up to a second each, measured on an H200),
        OpenVINO compiles one (~0.3 s), and micro-batches come in every size."""
        if self._warmup_batches == 0:
            return
        width, height = self._warmup_shape or (predictor.imgsz, predictor.imgsz)
        image = predictor.prepare(np.zeros((height, width, 3), dtype=np.uint8))
        sizes = list(range(1, predictor.batch_size)) + [predictor.batch_size] * self._warmup_batches
        for size in sizes:
            predictor.predict([image] * size)

    def prepare(self, images: list[np.ndarray], options: InferenceOptions) -> list:
        """Decoded images as the predictor's batches take them fastest (letterboxed alone, ahead
        of the batch: `Predictor.prepare`); sliced requests keep whole frames, to be cut."""
        predictor = self.predictor
        if predictor is None or options.sliced:
            return images
        return [predictor.prepare(image) for image in images]

    def engine_record(self) -> dict | None:
        """How the engine was chosen, with the timings (`EngineChoice.to_record`), for /metrics."""
        choice = getattr(self.predictor, "engine_choice", None)
        return choice.to_record() if choice is not None else None

    def run(
        self, images: list, options: InferenceOptions, deadline: Deadline | None = None
    ) -> list[Detections]:
        """One forward pass (or one sliced pass) over images that share `options`; `deadline` is
        checked between forward passes (`DeadlineExceeded`)."""
        predictor = self.predictor
        if predictor is None:
            raise RuntimeError("the model is not loaded")
        iou = {} if options.iou is None else {"iou": options.iou}
        if not options.sliced:
            return predictor.predict(
                images, conf=options.conf, max_det=options.max_det, deadline=deadline, **iou
            )
        # `iou` means NMS IoU on both paths: for slicing, the NMS inside each tile (the cross-tile
        # merge keeps its own, IoS-based default).
        framed = predict_sliced(
            predictor,
            images,
            slice_size=options.slice_size,
            overlap=options.slice_overlap,
            full_frame=options.full_frame,
            conf=options.conf,
            max_det=options.max_det,
            deadline=deadline,
            **({} if options.iou is None else {"tile_iou": options.iou}),
        )
        return [detections.best(options.max_det) for detections in framed]  # max_det there is per tile


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
