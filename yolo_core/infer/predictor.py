"""Batched detection on images of any size: letterbox, one forward pass per batch, NMS, source pixels.

The one inference path behind evaluation, sliced inference and the server, so that a metric
measured offline is the metric of what is served.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from yolo_core.infer.deadline import Deadline
from yolo_core.infer.detections import Detections
from yolo_core.infer.hardware import resolve_backend, resolve_device, resolve_precision
from yolo_core.infer.letterbox import LetterboxTransform, letterbox_batch
from yolo_core.infer.letterbox_device import Image, letterbox_on_device, to_device
from yolo_core.infer.merge import batched_nms
from yolo_core.model_card import ModelCard
from yolo_core.runtime import apply_thread_count, configure_offline, cpu_thread_count, offline_configured
from yolo_core.weights import verify_weights

LETTERBOX_PLACES = ("auto", "host", "device")
MAX_NMS_CANDIDATES = 30000  # as Ultralytics: bounds NMS time on a pathological image


class Predictor:
    """A loaded detector. `predict` takes BGR uint8 arrays (as cv2.imread gives) and returns
    one `Detections` per image, boxes in that image's pixels.

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
    ):
        """`weights_sha256`: the digest the weights must have, checked before any engine reads
        them ("": none recorded, loaded with a warning; None: no card, the caller vouches)."""
        if weights_sha256 is not None:
            verify_weights(Path(weights), weights_sha256)  # before an engine unpickles or exports it
        if letterbox not in LETTERBOX_PLACES:
            raise ValueError(f"letterbox must be one of {LETTERBOX_PLACES}, got {letterbox!r}")
        if batch_size < 1 or imgsz < 32:
            raise ValueError(f"batch_size must be >= 1 and imgsz >= 32, got {batch_size} and {imgsz}")
        self.device = resolve_device(device)
        # Letterboxing on the device means torch's tensors: "auto" then picks torch.
        backend = "torch" if (letterbox, backend) == ("device", "auto") else backend
        backend = resolve_backend(backend, self.device, precision)
        if letterbox == "device" and backend != "torch":
            raise ValueError("letterbox='device' needs the torch backend (ONNX Runtime takes host arrays)")
        # ONNX Runtime is run in fp32 only: "auto" must not pick bf16/fp16 for it.
        self.precision = resolve_precision(
            "fp32" if backend == "onnx" and precision == "auto" else precision, self.device
        )
        self.imgsz = imgsz
        self.batch_size = batch_size
        self.backend = backend
        self.letterbox_on_device = letterbox == "device" or (
            letterbox == "auto" and backend == "torch" and self.device.type == "cuda"
        )
        _import_ultralytics_offline()
        if self.device.type == "cpu":
            # After Ultralytics is imported: it caps CPU inference at cores - 1 threads.
            apply_thread_count(threads or cpu_thread_count())
        if backend == "torch":
            from yolo_core.infer.torch_backend import TorchEngine

            self.engine = TorchEngine(Path(weights), self.device, self.precision)
        else:
            from yolo_core.infer.onnx_backend import OnnxEngine

            self.engine = OnnxEngine(Path(weights), imgsz, self.device, self.precision)
        self.names = dict(names) if names else self.engine.names
        self.stride = self.engine.stride

    @classmethod
    def from_model_dir(cls, model_dir: Path, **kw) -> Predictor:
        """Load `best.pt` with the class names, image size and digest from `model.json` beside it."""
        card = ModelCard.load(Path(model_dir))
        kw.setdefault("imgsz", card.imgsz)
        kw.setdefault("names", card.names)
        return cls(Path(model_dir) / card.weights_file, weights_sha256=card.weights_sha256, **kw)

    def source(self, image: np.ndarray) -> Image:
        """The image as `predict` reads it fastest: on the device when letterboxing there, so that
        crops of it (tiles) are device views, uploaded once. Unchanged otherwise."""
        return to_device(image, self.device) if self.letterbox_on_device else image

    def predict(
        self,
        images: Sequence[Image],
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
        deadline: Deadline | None = None,
    ) -> list[Detections]:
        """`deadline`, checked before each batch, stops work nobody can use any more."""
        results: list[Detections] = []
        for chunk in _chunks(images, self.batch_size):
            if deadline is not None:
                deadline.check()
            results.extend(self._predict_batch(chunk, conf, iou, max_det))
        return results

    def _predict_batch(
        self, images: Sequence[Image], conf: float, iou: float, max_det: int
    ) -> list[Detections]:
        square = self.engine.fixed_square
        if self.letterbox_on_device:
            canvas, transforms = letterbox_on_device(images, self.imgsz, self.device, self.stride, square)
        else:
            canvas, transforms = letterbox_batch(images, self.imgsz, self.stride, square)
        raw = self.engine.forward(canvas)
        return [
            _to_source(kept, transform)
            for kept, transform in zip(select_detections(raw, conf, iou, max_det), transforms, strict=True)
        ]


def select_detections(
    raw: torch.Tensor, conf: float, iou: float, max_det: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image of a raw (B, 4 + classes, anchors) head output: (xyxy, score, class) after NMS.

    Same rule as Ultralytics' single-label NMS: best class per anchor, score > conf, at most
    30000 candidates per image by score, per-class IoU NMS, the best `max_det` kept. All images
    go through one NMS call (grouped by image and class) and one device-to-host copy.
    """
    batch, num_classes = raw.shape[0], raw.shape[1] - 4
    candidates = raw.transpose(1, 2)  # (B, anchors, 4 + classes)
    scores, classes = candidates[..., 4:].max(dim=-1)
    above = scores > conf
    if int(above.sum(1).max()) > MAX_NMS_CANDIDATES:
        above &= scores >= scores.topk(MAX_NMS_CANDIDATES, dim=1).values[:, -1:]
    image_index, anchor_index = above.nonzero(as_tuple=True)
    xywh = candidates[image_index, anchor_index, :4]
    boxes = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], dim=1)
    kept_scores, kept_classes = scores[image_index, anchor_index], classes[image_index, anchor_index]
    kept = batched_nms(boxes, kept_scores, image_index * num_classes + kept_classes, iou, len(boxes))
    kept = kept[_first_per_group(image_index[kept], batch, max_det)]  # by image, best first
    counts = torch.bincount(image_index[kept], minlength=batch).tolist()
    arrays = (t.cpu().numpy() for t in (boxes[kept], kept_scores[kept], kept_classes[kept]))
    return list(zip(*(np.split(a, np.cumsum(counts)[:-1]) for a in arrays), strict=True))


def _first_per_group(groups: torch.Tensor, num_groups: int, limit: int) -> torch.Tensor:
    """Indices that order items (already best first) by group and keep the first `limit` of each."""
    order = torch.sort(groups, stable=True).indices
    sorted_groups = groups[order]
    counts = torch.bincount(sorted_groups, minlength=num_groups)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order), device=groups.device) - starts[sorted_groups]
    return order[rank < limit]


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
