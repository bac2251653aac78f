"""Batched detection on images of any size: letterbox, one forward pass per batch, NMS, source pixels.

The one inference path behind evaluation, sliced inference and the server, so that a metric
measured offline is the metric of what is served. The engine is measured for this host
(`engine_choice`) unless the caller names it. Host work overlaps the engine: while batch N runs
(in a worker thread; every engine releases the GIL), batch N+1 is letterboxed and batch N-1's
boxes are selected, so the host side costs little beyond the model itself. A server letterboxes
each image as it decodes it (`prepare`), in its request threads, for the same reason.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from yolo_core.infer.deadline import Deadline
from yolo_core.infer.detections import Detections
from yolo_core.infer.engine_candidates import EngineSpec, engine_candidates
from yolo_core.infer.engine_choice import EngineChoice, EngineRequest, choose_engine
from yolo_core.infer.hardware import resolve_device
from yolo_core.infer.host import probe_host
from yolo_core.infer.int8 import int8_offer, offered_int8
from yolo_core.infer.letterbox import LetterboxTransform, letterbox_batch
from yolo_core.infer.letterbox_device import Image, letterbox_on_device, to_device
from yolo_core.infer.nms import select_detections
from yolo_core.model_card import ModelCard
from yolo_core.runtime import apply_thread_count, configure_offline, cpu_thread_count, offline_configured
from yolo_core.weights import sha256_of, verify_weights

LETTERBOX_PLACES = ("auto", "host", "device")
DEFAULT_IOU = 0.7  # NMS IoU of whole-frame predictions unless the caller names one (the server's)


@dataclass(frozen=True)
class Prepared:
    """An image letterboxed on its own canvas ahead of its batch (`Predictor.prepare`); a batch of
    them with one canvas shape is stacked as it is, any other batch is letterboxed from `source`."""

    canvas: np.ndarray  # (H, W, 3) uint8
    transform: LetterboxTransform
    source: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.source.shape


Input = Image | Prepared


class Predictor:
    """A loaded detector. `predict` takes BGR uint8 arrays (as cv2.imread gives) and returns
    one `Detections` per image, boxes in that image's pixels.

    `backend`/`precision`: "auto" measures the engines this host runs and keeps the fastest that
    agrees with fp32 (`engine_choice`; the record is `engine_choice`), on frames of `probe_shape`
    (width, height; default the model's square input); explicit values are checked and obeyed.
    `letterbox` says where images are resized and padded: "host" (OpenCV, the fastest on a
    CPU), "device" (torch kernels next to the model: the host then only uploads source pixels,
    which is what a GPU needs; torch backend only), or "auto" (device on a GPU, else host).
    """

    names: dict[int, str]

    def __init__(
        self,
        weights: Path,
        imgsz: int = 640,
        device: str = "auto",
        precision: str = "auto",
        backend: str = "auto",
        batch_size: int = 8,
        threads: int | None = None,
        names: dict[int, str] | None = None,
        letterbox: str = "auto",
        weights_sha256: str | None = None,
        probe_shape: tuple[int, int] | None = None,
        known_engines: Sequence[dict] = (),
    ):
        """`weights_sha256`: the digest the weights must have, checked before any engine reads
        them ("": none recorded, loaded with a warning; None: no card, the caller vouches).
        `known_engines`: engine choices recorded in the model card, used where their key matches."""
        if weights_sha256 is not None:
            verify_weights(Path(weights), weights_sha256)  # before an engine unpickles or exports it
        if letterbox not in LETTERBOX_PLACES:
            raise ValueError(f"letterbox must be one of {LETTERBOX_PLACES}, got {letterbox!r}")
        if batch_size < 1 or imgsz < 32:
            raise ValueError(f"batch_size must be >= 1 and imgsz >= 32, got {batch_size} and {imgsz}")
        if letterbox == "device" and backend not in ("auto", "torch"):
            raise ValueError(
                "letterbox='device' needs the torch backend (the other engines take host arrays)"
            )
        self.device = resolve_device(device)
        _import_ultralytics_offline()
        threads = threads or cpu_thread_count()
        if self.device.type == "cpu":
            # After Ultralytics is imported: it caps CPU inference at cores - 1 threads.
            apply_thread_count(threads)
        host = probe_host(self.device, threads)
        int8 = offered_int8(Path(weights), host, precision)
        # Letterboxing on the device means torch's tensors: then only torch engines are candidates.
        candidates = engine_candidates(
            host, "torch" if letterbox == "device" else backend, precision, int8 is not None
        )
        request = EngineRequest(
            weights=Path(weights),
            weights_sha256=weights_sha256 or (sha256_of(Path(weights)) if len(candidates) > 1 else ""),
            imgsz=imgsz,
            device=self.device,
            batch_size=batch_size,
            probe_shape=probe_shape or (imgsz, imgsz),
            known=known_engines,
            int8=int8_offer(int8, candidates),
        )
        self.engine_choice: EngineChoice
        self.engine_choice, self.engine = choose_engine(request, host, candidates)
        self.backend, self.precision = self.engine_choice.engine.backend, self.engine_choice.engine.precision
        self.imgsz = imgsz
        self.batch_size = batch_size
        self.letterbox_on_device = letterbox == "device" or (
            letterbox == "auto" and self.backend == "torch" and self.device.type == "cuda"
        )
        self.names = dict(names) if names else self.engine.names
        self.stride = self.engine.stride
        self._worker: ThreadPoolExecutor | None = None

    @classmethod
    def from_model_dir(cls, model_dir: Path, **kw) -> Predictor:
        """Load `best.pt` with the class names, image size, digest and recorded engine choices from
        `model.json` beside it."""
        card = ModelCard.load(Path(model_dir))
        kw.setdefault("imgsz", card.imgsz)
        kw.setdefault("names", card.names)
        kw.setdefault("known_engines", card.inference_engines)
        return cls(Path(model_dir) / card.weights_file, weights_sha256=card.weights_sha256, **kw)

    @property
    def engine_spec(self) -> EngineSpec:
        return self.engine_choice.engine

    def source(self, image: np.ndarray) -> Image:
        """The image as `predict` reads it fastest: on the device when letterboxing there, so that
        crops of it (tiles) are device views, uploaded once. Unchanged otherwise."""
        return to_device(image, self.device) if self.letterbox_on_device else image

    def prepare(self, image: np.ndarray) -> Input:
        """The image letterboxed alone now, off the inference thread (a server's request thread):
        a batch of frames of one size then needs only stacking. Unchanged where the letterbox runs
        on the device or the engine takes only square inputs."""
        if self.letterbox_on_device or self.engine.fixed_square:
            return image
        canvas, (transform,) = letterbox_batch([image], self.imgsz, self.stride)
        return Prepared(canvas[0], transform, image)

    def predict(
        self,
        images: Sequence[Input],
        conf: float = 0.25,
        iou: float = DEFAULT_IOU,
        max_det: int = 300,
        deadline: Deadline | None = None,
    ) -> list[Detections]:
        """`deadline`, checked before each batch, stops work nobody can use any more."""
        chunks = list(_chunks(images, self.batch_size))
        if not chunks:
            return []
        if len(chunks) == 1:  # nothing to overlap with: no thread hand-off
            if deadline is not None:
                deadline.check()
            canvas, transforms = self._letterbox(chunks[0])
            return self._select(self.engine.forward(canvas), transforms, conf, iou, max_det)
        return self._predict_overlapped(chunks, conf, iou, max_det, deadline)

    def _predict_overlapped(
        self, chunks: list[Sequence[Input]], conf: float, iou: float, max_det: int, deadline: Deadline | None
    ) -> list[Detections]:
        """Batch N's forward pass in the worker while this thread letterboxes batch N+1 and selects
        batch N-1's boxes. At most one batch runs on after a deadline stops the rest."""
        worker = self._worker = self._worker or ThreadPoolExecutor(1, thread_name_prefix="engine")
        results: list[Detections] = []
        running: tuple[Future, list[LetterboxTransform]] | None = None
        try:
            for chunk in chunks:
                if deadline is not None:
                    deadline.check()
                canvas, transforms = self._letterbox(chunk)
                finished = (running[0].result(), running[1]) if running else None
                running = (worker.submit(self.engine.forward, canvas), transforms)
                if finished is not None:
                    results += self._select(*finished, conf, iou, max_det)
            raw, transforms = running[0].result(), running[1]
            running = None
            return results + self._select(raw, transforms, conf, iou, max_det)
        finally:
            if running is not None:  # stopped early: the pass in flight ends before we return
                running[0].exception()

    def _letterbox(
        self, images: Sequence[Input]
    ) -> tuple[np.ndarray | torch.Tensor, list[LetterboxTransform]]:
        square = self.engine.fixed_square
        if images and all(isinstance(im, Prepared) for im in images):
            shapes = {im.canvas.shape for im in images}
            if len(shapes) == 1:
                return np.stack([im.canvas for im in images]), [im.transform for im in images]
        sources = [im.source if isinstance(im, Prepared) else im for im in images]
        if self.letterbox_on_device:
            return letterbox_on_device(sources, self.imgsz, self.device, self.stride, square)
        return letterbox_batch(sources, self.imgsz, self.stride, square)

    @staticmethod
    def _select(
        raw: torch.Tensor, transforms: list[LetterboxTransform], conf: float, iou: float, max_det: int
    ) -> list[Detections]:
        return [
            _to_source(kept, transform)
            for kept, transform in zip(select_detections(raw, conf, iou, max_det), transforms, strict=True)
        ]


def _to_source(kept: tuple[np.ndarray, np.ndarray, np.ndarray], transform: LetterboxTransform) -> Detections:
    boxes, scores, classes = kept
    return Detections(transform.boxes_to_source(boxes), scores, classes)


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _import_ultralytics_offline() -> None:
    """Loading a checkpoint imports Ultralytics, which must not reach the network; what an entry
    point configured (its cache root, config folder, threads) is kept."""
    if "ultralytics" not in sys.modules and not offline_configured():
        configure_offline()
