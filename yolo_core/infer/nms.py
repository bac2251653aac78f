"""From a raw head output to detections: best class per anchor, confidence cut, per-class NMS.

Shared by every engine (they all return the raw (B, 4 + classes, anchors) output), by the
predictor and by the engine choice's agreement check, so that all of them select boxes alike.
"""

from __future__ import annotations

import numpy as np
import torch

from yolo_core.infer.merge import batched_nms

MAX_NMS_CANDIDATES = 30000  # as Ultralytics: bounds NMS time on a pathological image


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
