"""Detection metrics over a whole split: precision, recall, mAP50, mAP50-95, per class, plots.

The AP arithmetic and the plots are Ultralytics' own (`ap_per_class`, `ConfusionMatrix`), fed with
our predictor's detections, so the numbers are those a user of `yolo val` knows; the matching of
detections to ground truth follows its validator (greedy by confidence, one-to-one, per class).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from yolo_core.evaluation.ground_truth import GroundTruth
from yolo_core.infer.detections import Detections

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
PLOT_FILES = {"BoxPR_curve.png": "pr_curve.png", "confusion_matrix_normalized.png": "confusion_matrix.png"}


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from torchvision.ops import box_iou

    return box_iou(torch.from_numpy(a).float(), torch.from_numpy(b).float()).numpy()


def match_detections(dets: Detections, truth: GroundTruth) -> np.ndarray:
    """(N, 10) bool: is detection i (in descending score order) a true positive at each IoU threshold."""
    correct = np.zeros((len(dets), len(IOU_THRESHOLDS)), dtype=bool)
    if len(dets) == 0 or len(truth.class_ids) == 0:
        return correct
    iou = pairwise_iou(truth.boxes, dets.boxes) * (truth.class_ids[:, None] == dets.class_ids[None, :])
    claimed = np.zeros((len(truth.class_ids), len(IOU_THRESHOLDS)), dtype=bool)
    columns = np.arange(len(IOU_THRESHOLDS))
    for j in np.flatnonzero((iou >= IOU_THRESHOLDS[0]).any(0)):
        available = np.where(claimed, 0.0, iou[:, j, None])
        best = available.argmax(0)
        correct[j] = available[best, columns] >= IOU_THRESHOLDS
        claimed[best, columns] |= correct[j]
    return correct


@dataclass
class MetricsAccumulator:
    """Feed (detections, ground truth) image by image; `finish` computes everything at once."""

    names: dict[int, str]
    confusion_conf: float = 0.25
    _tp: list[np.ndarray] = field(default_factory=list)
    _conf: list[np.ndarray] = field(default_factory=list)
    _pred_cls: list[np.ndarray] = field(default_factory=list)
    _target_cls: list[np.ndarray] = field(default_factory=list)
    _confusion: object = None

    def __post_init__(self) -> None:
        from ultralytics.utils.metrics import ConfusionMatrix

        self._confusion = ConfusionMatrix(names=self.names)

    def add(self, dets: Detections, truth: GroundTruth) -> None:
        order = np.argsort(-dets.scores, kind="stable")
        dets = dets.select(order)
        self._tp.append(match_detections(dets, truth))
        self._conf.append(dets.scores)
        self._pred_cls.append(dets.class_ids)
        self._target_cls.append(truth.class_ids)
        self._confusion.process_batch(
            {
                "bboxes": torch.from_numpy(dets.boxes),
                "conf": torch.from_numpy(dets.scores),
                "cls": torch.from_numpy(dets.class_ids),
            },
            {"bboxes": torch.from_numpy(truth.boxes), "cls": torch.from_numpy(truth.class_ids)},
            conf=self.confusion_conf,
        )

    def finish(self, plots_dir: Path | None = None) -> dict:
        """Overall and per-class metrics; with `plots_dir`, the PR curve and confusion matrix PNGs."""
        from ultralytics.utils.metrics import ap_per_class

        target_cls = np.concatenate(self._target_cls) if self._target_cls else np.zeros(0)
        with tempfile.TemporaryDirectory() as tmp:
            _, _, precision, recall, _, ap, classes, *_ = ap_per_class(
                np.concatenate(self._tp) if self._tp else np.zeros((0, 10), bool),
                np.concatenate(self._conf) if self._conf else np.zeros(0),
                np.concatenate(self._pred_cls) if self._pred_cls else np.zeros(0),
                target_cls,
                plot=plots_dir is not None,
                save_dir=Path(tmp),
                names=self.names,
                prefix="Box",
            )
            if plots_dir is not None:
                self._confusion.plot(normalize=True, save_dir=tmp)
                _copy_plots(Path(tmp), plots_dir)
        counts = np.bincount(target_cls.astype(int), minlength=len(self.names))
        per_class = {
            self.names.get(int(c), str(int(c))): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "map50": float(ap[i, 0]),
                "map50_95": float(ap[i].mean()),
                "instances": int(counts[int(c)]),
            }
            for i, c in enumerate(classes)
        }
        return {
            "precision": float(precision.mean()) if len(classes) else 0.0,
            "recall": float(recall.mean()) if len(classes) else 0.0,
            "map50": float(ap[:, 0].mean()) if len(classes) else 0.0,
            "map50_95": float(ap.mean()) if len(classes) else 0.0,
            "per_class": per_class,
            "confusion_matrix": self._confusion.matrix.astype(int).tolist(),
        }


def _copy_plots(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for produced, name in PLOT_FILES.items():
        if (source / produced).exists():
            shutil.copyfile(source / produced, target / name)
