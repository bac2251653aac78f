"""Suppress or merge overlapping detections: per-image NMS and the cross-tile merge.

A box cut by a tile border is seen twice: whole in one tile, partial in the next. Plain IoU-NMS
keeps the partial box (its IoU with the whole one is small), so sliced inference double-counts.
Greedy non-maximum merging with intersection-over-smaller (IoS) instead folds the partial box into
the whole one and grows the kept box to their union, as SAHI's default postprocess does.

Memory stays linear in the number of boxes: overlaps are computed one kept box's row at a time,
never as an N x N matrix, and at most `MAX_MERGE_CANDIDATES` boxes (the best scores) are merged.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision

from yolo_core.infer.detections import Detections

MERGE_METHODS = ("greedy_nmm", "nms")
MATCH_METRICS = ("ios", "iou")
# As Ultralytics bounds NMS candidates: far above what a normal frame holds (so results there are
# unchanged), while a pathological one costs at most this many rows of this many overlaps.
MAX_MERGE_CANDIDATES = 30000


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, class_ids: torch.Tensor, iou: float, max_det: int
) -> torch.Tensor:
    """Indices kept by per-class NMS (torchvision's kernel), best first, at most `max_det`."""
    return torchvision.ops.batched_nms(boxes.float(), scores.float(), class_ids, iou)[:max_det]


def nms_detections(dets: Detections, iou: float, class_agnostic: bool = False) -> Detections:
    if len(dets) == 0:
        return dets
    classes = np.zeros_like(dets.class_ids) if class_agnostic else dets.class_ids
    keep = batched_nms(
        torch.from_numpy(dets.boxes), torch.from_numpy(dets.scores), torch.from_numpy(classes), iou, len(dets)
    )
    return dets.select(keep.numpy())


def pairwise_overlap(boxes_a: np.ndarray, boxes_b: np.ndarray, metric: str) -> np.ndarray:
    """(len(a), len(b)) IoU, or intersection over the smaller of the two areas (IoS)."""
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = np.prod((bottom_right - top_left).clip(min=0), axis=2)
    area_a = np.prod(boxes_a[:, 2:] - boxes_a[:, :2], axis=1)[:, None]
    area_b = np.prod(boxes_b[:, 2:] - boxes_b[:, :2], axis=1)[None, :]
    if metric == "ios":
        denom = np.minimum(area_a, area_b)
    elif metric == "iou":
        denom = area_a + area_b - inter
    else:
        raise ValueError(f"match metric must be one of {MATCH_METRICS}, got {metric!r}")
    return inter / np.maximum(denom, 1e-9)


def _greedy_nmm_one_class(boxes: np.ndarray, scores: np.ndarray, threshold: float, metric: str):
    """Yield (kept index, merged box) in score order; SAHI's greedy NMM semantics.

    A kept box claims every lower-scored, unclaimed box that matches it; the claimed boxes are then
    folded in one by one, each only if it still matches the growing union.
    """
    order = np.argsort(-scores, kind="stable")
    claimed = np.zeros(len(boxes), dtype=bool)
    for rank, index in enumerate(order):
        if claimed[index]:
            continue
        later = order[rank + 1 :]
        later = later[~claimed[later]]
        matches = later[pairwise_overlap(boxes[index][None], boxes[later], metric)[0] >= threshold]
        claimed[matches] = True
        merged = boxes[index].copy()
        for other in matches:
            if pairwise_overlap(merged[None], boxes[other][None], metric)[0, 0] >= threshold:
                merged[:2] = np.minimum(merged[:2], boxes[other][:2])
                merged[2:] = np.maximum(merged[2:], boxes[other][2:])
        yield index, merged


def greedy_nmm(
    dets: Detections, threshold: float = 0.5, metric: str = "ios", class_agnostic: bool = False
) -> Detections:
    """Greedy non-maximum merging: keep the best box of each cluster, grown to the cluster's union."""
    if len(dets) == 0:
        return dets
    groups = [np.arange(len(dets))] if class_agnostic else _indices_by_class(dets.class_ids)
    kept, boxes = [], []
    for members in groups:
        for local, merged in _greedy_nmm_one_class(
            dets.boxes[members], dets.scores[members], threshold, metric
        ):
            kept.append(members[local])
            boxes.append(merged)
    kept_index = np.asarray(kept)
    result = Detections(np.stack(boxes), dets.scores[kept_index], dets.class_ids[kept_index])
    return result.select(np.argsort(-result.scores, kind="stable"))


def _indices_by_class(class_ids: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(class_ids == c) for c in np.unique(class_ids)]


def merge_detections(dets: Detections, method: str, threshold: float) -> Detections:
    """The cross-tile merge named by `method` ("greedy_nmm" with IoS, or "nms" with IoU)."""
    if method not in MERGE_METHODS:
        raise ValueError(f"merge must be one of {MERGE_METHODS}, got {method!r}")
    dets = dets.best(MAX_MERGE_CANDIDATES)
    if method == "greedy_nmm":
        return greedy_nmm(dets, threshold, metric="ios")
    return nms_detections(dets, threshold)
