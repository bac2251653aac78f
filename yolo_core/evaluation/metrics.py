"""Detection metrics over a whole split: precision, recall, mAP50, mAP50-95, per class, plots.

The AP arithmetic and the plots are Ultralytics' own (`ap_per_class`, `ConfusionMatrix`), fed with
our predictor's detections, so the numbers are those a user of `yolo val` knows; the matching of
detections to ground truth follows its validator (greedy by confidence, one-to-one, per class).

`precision` and `recall` are those of what the server returns: the detections above the serving
confidence. For whole frames they are the low-conf pass's detections above it (mAP needs the whole
curve): NMS and the matching are greedy by score, so a lower-scored box changes neither. Sliced
inference merges boxes across tiles, lower-scored ones into higher, so there the caller passes
what a pass at the serving conf returned. Ultralytics' figures at the conf of the best F1 (what
`yolo val` prints) are kept beside them as `precision_at_max_f1` and `recall_at_max_f1`.

What the monitor can compare with served traffic, which holds only the served detections: their
mAP50-95 (`served_map50_95`: the PR curve cut at the serving conf, so at most `map50_95`), and
precision and recall pooled over all boxes (`precision_pooled`, `recall_pooled`: one proportion
each, which a binomial test can take, where `precision` and `recall` are means over classes).
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
from yolo_core.serving.options import InferenceOptions

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
PLOT_FILES = {"BoxPR_curve.png": "pr_curve.png", "confusion_matrix_normalized.png": "confusion_matrix.png"}
SERVING_CONF = InferenceOptions().conf  # the server's default: what a client gets without asking


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
    serving_conf: float = SERVING_CONF  # precision, recall and the confusion matrix are at it
    _tp: list[np.ndarray] = field(default_factory=list)
    _conf: list[np.ndarray] = field(default_factory=list)
    _pred_cls: list[np.ndarray] = field(default_factory=list)
    _target_cls: list[np.ndarray] = field(default_factory=list)
    _served_tp: list[np.ndarray] = field(default_factory=list)  # (N, 10) matches of served boxes
    _served_conf: list[np.ndarray] = field(default_factory=list)
    _served_cls: list[np.ndarray] = field(default_factory=list)
    _confusion: object = None

    def __post_init__(self) -> None:
        from ultralytics.utils.metrics import ConfusionMatrix

        self._confusion = ConfusionMatrix(names=self.names)

    def add(self, dets: Detections, truth: GroundTruth, served: Detections | None = None) -> None:
        """`served`: what the server returns for the image, where that is not `dets` above the
        serving conf (sliced inference)."""
        dets = _by_score(dets)
        correct = match_detections(dets, truth)
        self._tp.append(correct)
        self._conf.append(dets.scores)
        self._pred_cls.append(dets.class_ids)
        self._target_cls.append(truth.class_ids)
        if served is None:
            above = dets.scores > self.serving_conf  # the predictor keeps `score > conf`
            served, served_correct = dets.select(above), correct[above]
        else:
            served = _by_score(served)
            served_correct = match_detections(served, truth)
        self._served_tp.append(served_correct)
        self._served_conf.append(served.scores)
        self._served_cls.append(served.class_ids)
        self._confusion.process_batch(
            {
                "bboxes": torch.from_numpy(served.boxes),
                "conf": torch.from_numpy(served.scores),
                "cls": torch.from_numpy(served.class_ids),
            },
            {"bboxes": torch.from_numpy(truth.boxes), "cls": torch.from_numpy(truth.class_ids)},
            conf=self.serving_conf,
        )

    def finish(self, plots_dir: Path | None = None) -> dict:
        """Overall and per-class metrics; with `plots_dir`, the PR curve and confusion matrix PNGs.

        Overall figures are means over the classes that have ground truth, as Ultralytics'."""
        from ultralytics.utils.metrics import ap_per_class, smooth

        tp = np.concatenate(self._tp) if self._tp else np.zeros((0, len(IOU_THRESHOLDS)), bool)
        conf = np.concatenate(self._conf) if self._conf else np.zeros(0)
        pred_cls = np.concatenate(self._pred_cls) if self._pred_cls else np.zeros(0)
        target_cls = np.concatenate(self._target_cls) if self._target_cls else np.zeros(0)
        with tempfile.TemporaryDirectory() as tmp:
            _, _, p_max_f1, r_max_f1, _, ap, classes, _, _, f1_curve, confs, _ = ap_per_class(
                tp, conf, pred_cls, target_cls,
                plot=plots_dir is not None, save_dir=Path(tmp), names=self.names, prefix="Box",
            )  # fmt: skip
            if plots_dir is not None:
                self._confusion.plot(normalize=True, save_dir=tmp)
                _copy_plots(Path(tmp), plots_dir)
        # ap_per_class's own choice of the max-F1 point, which it does not return.
        max_f1_conf = float(confs[smooth(f1_curve.mean(0), 0.1).argmax()]) if len(classes) else 0.0
        served_tp = np.concatenate(self._served_tp) if self._served_tp else np.zeros_like(tp)
        served_conf = np.concatenate(self._served_conf) if self._served_conf else np.zeros(0)
        served_cls = np.concatenate(self._served_cls) if self._served_cls else np.zeros(0)
        precision, recall = precision_recall(served_tp[:, 0], served_cls, target_cls, classes)
        counts = np.bincount(target_cls.astype(int), minlength=len(self.names))
        per_class = {
            self.names.get(int(c), str(int(c))): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "precision_at_max_f1": float(p_max_f1[i]),
                "recall_at_max_f1": float(r_max_f1[i]),
                "map50": float(ap[i, 0]),
                "map50_95": float(ap[i].mean()),
                "instances": int(counts[int(c)]),
            }
            for i, c in enumerate(classes)
        }
        return {
            "precision": _mean(precision),
            "recall": _mean(recall),
            "precision_at_max_f1": _mean(p_max_f1),
            "recall_at_max_f1": _mean(r_max_f1),
            "map50": _mean(ap[:, 0]),
            "map50_95": _mean(ap),
            "served_map50_95": _mean(mean_ap(served_tp, served_conf, served_cls, target_cls)),
            "precision_pooled": _share(served_tp[:, 0].sum(), len(served_tp)),
            "recall_pooled": _share(served_tp[:, 0].sum(), len(target_cls)),
            "serving_conf": self.serving_conf,
            "max_f1_conf": max_f1_conf,
            "per_class": per_class,
            "confusion_matrix": self._confusion.matrix.astype(int).tolist(),
        }


def mean_ap(tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray) -> np.ndarray:
    """(10,) mAP at each IoU threshold, averaged over the classes with labels: Ultralytics'
    `ap_per_class`, whose curve ends at the last recall reached (precision 0 beyond), so the
    detections above a conf score at most what the whole low-conf pass scores."""
    from ultralytics.utils.metrics import ap_per_class

    if not len(target_cls):
        return np.zeros(len(IOU_THRESHOLDS))
    ap = ap_per_class(tp, conf, pred_cls, target_cls)[5]
    return ap.mean(0)


def precision_recall(
    hits: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per class of `classes`, precision and recall of a set of detections, `hits` marking those
    that match an object. A class with no detection has precision 0, as in Ultralytics: for a
    quality gate, silence is not precision."""
    precision, recall = np.zeros(len(classes)), np.zeros(len(classes))
    for i, c in enumerate(classes):
        detected = pred_cls == c
        found = hits[detected].sum()
        labels = (target_cls == c).sum()
        precision[i] = found / detected.sum() if detected.any() else 0.0
        recall[i] = found / labels if labels else 0.0
    return precision, recall


def _by_score(dets: Detections) -> Detections:
    return dets.select(np.argsort(-dets.scores, kind="stable"))


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


def _share(part: int, whole: int) -> float:
    return float(part / whole) if whole else 0.0


def _copy_plots(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for produced, name in PLOT_FILES.items():
        if (source / produced).exists():
            shutil.copyfile(source / produced, target / name)
