"""An independent mAP from pycocotools on the same detections, to cross-check our own metrics.

Both evaluators see the same predictions and the same ground truth; if their mAP50 or mAP50-95
disagree by more than a hundredth, one of them is being fed wrongly, and the evaluation fails
rather than let a quality gate read a figure that one of two evaluators contradicts.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from yolo_core.errors import UserInputError
from yolo_core.evaluation.ground_truth import GroundTruth
from yolo_core.infer.detections import Detections

COCO_TOLERANCE = 0.01
COMPARED = {"map50": "mAP50", "map50_95": "mAP50-95"}


class CrossCheckFailed(UserInputError):
    """Our mAP and pycocotools' disagree. A `UserInputError` so that it ends the step with its
    one-line reason and no traceback: the figures say what went wrong, the stack does not."""


def _xywh(boxes: np.ndarray) -> list[list[float]]:
    return [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in boxes]


def coco_datasets(
    predictions: list[Detections], truths: list[GroundTruth], names: dict[int, str]
) -> tuple[dict, list[dict]]:
    """COCO ground-truth dataset and result list; category id = class id + 1 (COCO ids start at 1)."""
    images, annotations, results = [], [], []
    for image_id, (dets, truth) in enumerate(zip(predictions, truths, strict=True), start=1):
        images.append({"id": image_id})
        for box, class_id in zip(_xywh(truth.boxes), truth.class_ids, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(class_id) + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        for box, score, class_id in zip(_xywh(dets.boxes), dets.scores, dets.class_ids, strict=True):
            results.append(
                {"image_id": image_id, "category_id": int(class_id) + 1, "bbox": box, "score": float(score)}
            )
    categories = [{"id": class_id + 1, "name": name} for class_id, name in sorted(names.items())]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def coco_map(
    predictions: list[Detections], truths: list[GroundTruth], names: dict[int, str], max_det: int = 300
) -> dict[str, float]:
    """{"map50", "map50_95"} from pycocotools' COCOeval over all object sizes, `max_det` per image."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, results = coco_datasets(predictions, truths, names)
    if not dataset["annotations"] or not results:
        return {"map50": 0.0, "map50_95": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        ground_truth = COCO()
        ground_truth.dataset = dataset
        ground_truth.createIndex()
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(results), iouType="bbox")
        evaluator.params.maxDets = [1, 10, max_det]
        evaluator.evaluate()
        evaluator.accumulate()
    # precision[T, R, K, A, M]: IoU thresholds, recall points, classes, area ranges ("all" first), maxDets.
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    return {"map50": _mean_valid(precision[0]), "map50_95": _mean_valid(precision)}


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else 0.0


def cross_check(ours: dict[str, float], coco: dict[str, float], tolerance: float = COCO_TOLERANCE) -> dict:
    """The record for evaluation.json: each mAP by both evaluators, their difference, the verdict."""
    record: dict = {"tolerance": tolerance}
    for name in COMPARED:
        difference = abs(ours[name] - coco[name])
        record[name] = {
            "ours": round(ours[name], 6),
            "pycocotools": round(coco[name], 6),
            "difference": round(difference, 6),
            "passed": difference <= tolerance,
        }
    record["passed"] = all(record[name]["passed"] for name in COMPARED)
    return record


def cross_check_failure(record: dict) -> str | None:
    """One line naming each disagreeing figure and the tolerance, or None when both agree."""
    problems = [
        f"{label} ours {record[name]['ours']:.4f} vs pycocotools {record[name]['pycocotools']:.4f} "
        f"(difference {record[name]['difference']:.4f})"
        for name, label in COMPARED.items()
        if not record[name]["passed"]
    ]
    if not problems:
        return None
    return f"COCO cross-check failed: {'; '.join(problems)}, over the {record['tolerance']} tolerance"
