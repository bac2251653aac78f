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

from yolo_core.infer.detections import Detections
from yolo_core.infer.hardware import resolve_device, resolve_precision
from yolo_core.infer.letterbox import LetterboxTransform, letterbox_batch
from yolo_core.infer.merge import batched_nms
from yolo_core.model_card import ModelCard
from yolo_core.runtime import apply_thread_count, configure_offline, cpu_thread_count

BACKENDS = ("torch", "onnx")
MAX_NMS_CANDIDATES = 30000  # as Ultralytics: bounds NMS time on a pathological image


class Predictor:
    """A loaded detector. `predict` takes BGR uint8 arrays (as cv2.imread gives) and returns
    one `Detections` per image, boxes in that image's pixels."""

    names: dict[int, str]

    def __init__(
        self,
        weights: Path,
        imgsz: int = 640,
        device: str = "auto",
        precision: str = "auto",
        backend: str = "torch",
        batch_size: int = 8,
        threads: int | None = None,
        names: dict[int, str] | None = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if batch_size < 1 or imgsz < 32:
            raise ValueError(f"batch_size must be >= 1 and imgsz >= 32, got {batch_size} and {imgsz}")
        self.device = resolve_device(device)
        # ONNX Runtime is run in fp32 only: "auto" must not pick bf16/fp16 for it.
        self.precision = resolve_precision(
            "fp32" if backend == "onnx" and precision == "auto" else precision, self.device
        )
        self.imgsz = imgsz
        self.batch_size = batch_size
        self.backend = backend
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
        """Load `best.pt` with the class names and image size from `model.json` beside it."""
        card = ModelCard.load(Path(model_dir))
        kw.setdefault("imgsz", card.imgsz)
        kw.setdefault("names", card.names)
        return cls(Path(model_dir) / card.weights_file, **kw)

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.7, max_det: int = 300
    ) -> list[Detections]:
        results: list[Detections] = []
        for chunk in _chunks(images, self.batch_size):
            results.extend(self._predict_batch(chunk, conf, iou, max_det))
        return results

    def _predict_batch(
        self, images: Sequence[np.ndarray], conf: float, iou: float, max_det: int
    ) -> list[Detections]:
        canvas, transforms = letterbox_batch(images, self.imgsz, self.stride, square=self.engine.fixed_square)
        raw = self.engine.forward(canvas)
        return [
            _to_source(kept, transform)
            for kept, transform in zip(select_detections(raw, conf, iou, max_det), transforms, strict=True)
        ]


def select_detections(
    raw: torch.Tensor, conf: float, iou: float, max_det: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per image of a raw (B, 4 + classes, anchors) head output: (xyxy, score, class) after NMS.

    Same rule as Ultralytics' single-label NMS: best class per anchor, score > conf, at most
    30000 candidates by score, per-class IoU NMS, the best `max_det` kept.
    """
    candidates = raw.transpose(1, 2)  # (B, anchors, 4 + classes)
    scores, classes = candidates[..., 4:].max(dim=-1)
    for image_index in range(candidates.shape[0]):
        keep = scores[image_index] > conf
        image_scores = scores[image_index][keep]
        xywh = candidates[image_index, keep, :4]
        image_classes = classes[image_index][keep]
        if len(image_scores) > MAX_NMS_CANDIDATES:
            top = image_scores.topk(MAX_NMS_CANDIDATES).indices
            image_scores, xywh, image_classes = image_scores[top], xywh[top], image_classes[top]
        boxes = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], dim=1)
        kept = batched_nms(boxes, image_scores, image_classes, iou, max_det)
        yield boxes[kept], image_scores[kept], image_classes[kept]


def _to_source(kept: tuple[torch.Tensor, torch.Tensor, torch.Tensor], transform: LetterboxTransform):
    boxes, scores, classes = (t.cpu().numpy() for t in kept)
    return Detections(transform.boxes_to_source(boxes), scores, classes)


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _import_ultralytics_offline() -> None:
    """Loading a checkpoint imports Ultralytics, which must not reach the network."""
    if "ultralytics" not in sys.modules:
        configure_offline()
