"""Whether two engines give the same answers: what the engine choice requires before speed counts.

On confident boxes, both ways: the share of one side's boxes scoring at least `CONFIDENT` that a
box of the other side (scoring at least `FLOOR`, same class, IoU >= 0.5) matches one to one. A
box right at a threshold on one side may sit just under it on the other, so the other side is
read at the lower floor, never at the same cut. Where the probe gives too few confident boxes to
judge (random weights, or frames unlike the model's data), the raw class scores of the
reference's best anchors are compared instead: the share within `SCORE_TOLERANCE`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torchvision.ops import box_iou

from yolo_core.infer.nms import select_detections

CONFIDENT = 0.35
FLOOR = 0.1
MATCH_IOU = 0.5
MIN_CONFIDENT_BOXES = 8  # fewer over the whole probe: judge by raw scores
TOP_ANCHORS = 1000
SCORE_TOLERANCE = 0.05
NMS_IOU = 0.7
Boxes = tuple[np.ndarray, np.ndarray, np.ndarray]  # xyxy, scores, classes of one image


@dataclass(frozen=True)
class Agreement:
    candidate_in_reference: float
    reference_in_candidate: float
    method: str  # "boxes" or "raw scores"
    confident_boxes: int  # the reference's, over the probe

    def holds(self, minimum: float) -> bool:
        return min(self.candidate_in_reference, self.reference_in_candidate) >= minimum

    def to_dict(self) -> dict:
        return asdict(self)


def matched_share(side: list[Boxes], other: list[Boxes]) -> tuple[int, int]:
    """(matched, total) confident boxes of `side` that `other`'s boxes above the floor match."""
    matched = total = 0
    for (boxes, scores, classes), (other_boxes, other_scores, other_classes) in zip(side, other, strict=True):
        mine = np.flatnonzero(scores >= CONFIDENT)
        mine = mine[np.argsort(-scores[mine], kind="stable")]
        theirs = np.flatnonzero(other_scores >= FLOOR)
        total += len(mine)
        if not len(mine) or not len(theirs):
            continue
        iou = box_iou(torch.from_numpy(boxes[mine]).float(), torch.from_numpy(other_boxes[theirs]).float())
        iou = iou.numpy() * (classes[mine][:, None] == other_classes[theirs][None, :])
        claimed = np.zeros(len(theirs), dtype=bool)
        for row in iou:
            row = np.where(claimed, 0.0, row)
            best = int(row.argmax())
            if row[best] >= MATCH_IOU:
                claimed[best] = True
                matched += 1
    return matched, total


def _raw_score_agreement(candidate: torch.Tensor, reference: torch.Tensor) -> float:
    reference_scores = reference[:, 4:].amax(1)  # (B, anchors)
    candidate_scores = candidate[:, 4:].amax(1)
    count = min(TOP_ANCHORS, reference_scores.shape[1])
    top = reference_scores.topk(count, dim=1).indices
    gap = (candidate_scores.gather(1, top) - reference_scores.gather(1, top)).abs()
    return float((gap <= SCORE_TOLERANCE).float().mean())


def engine_agreement(candidate: torch.Tensor, reference: torch.Tensor) -> Agreement:
    """How well a candidate engine's raw output on the probe agrees with the reference's."""
    candidate, reference = candidate.float().cpu(), reference.float().cpu()
    ours = select_detections(candidate, FLOOR, NMS_IOU, 300)
    theirs = select_detections(reference, FLOOR, NMS_IOU, 300)
    ours_matched, ours_total = matched_share(ours, theirs)
    theirs_matched, theirs_total = matched_share(theirs, ours)
    if min(ours_total, theirs_total) < MIN_CONFIDENT_BOXES:
        share = _raw_score_agreement(candidate, reference)
        return Agreement(share, share, "raw scores", theirs_total)
    return Agreement(ours_matched / ours_total, theirs_matched / theirs_total, "boxes", theirs_total)
