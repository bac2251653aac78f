"""Model quality on labelled served traffic against the registered model's evaluation.

Why these tests: drift checks say the input changed, not that answers got worse; where a caller
labels some served images (see `ground_truth`), the monitor measures the model itself. Each figure
is a one-sided test of "no worse than registered" and its effect is the drop (registered minus
monitored), held to `Policy.min_quality_drop` by `checks.decide` like every other check:

- precision and recall: pooled proportions (true positives at IoU 0.5 over served boxes, over
  labelled objects), a binomial test against evaluation.json's `precision_pooled` / `recall_pooled`;
- mAP50-95: a bootstrap over images (objects in one image are not independent draws; images are),
  against `served_map50_95`. Captured answers hold only the boxes above the serving conf, so their
  mAP is that of a PR curve cut there, lower than `map50_95` of the low-conf pass: the evaluation
  reports the same cut figure for this comparison.

An evaluation.json written before those figures existed lacks them: the outcome is skipped and the
returned metrics say why, since a comparison with the class-mean or whole-curve figures would
raise alarms for a change of arithmetic. Boxes within an image are treated as independent in the
binomial tests: optimistic for crowded scenes, where the minimum drop is the guard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import stats

from yolo_core.evaluation.ground_truth import GroundTruth
from yolo_core.evaluation.metrics import IOU_THRESHOLDS, match_detections, mean_ap
from yolo_core.infer.detections import Detections
from yolo_core.monitoring.checks import QUALITY_DROP, Outcome
from yolo_core.monitoring.ground_truth import GroundTruthSet

PREFIX = "quality."
BOOTSTRAP_RESAMPLES = 999  # p-values in steps of 1/1000: enough below alpha = 0.01 after Holm
CONF_TOLERANCE = 1e-6
NO_LABELS = "served images without labels"
NO_INFERENCE_ID = "served images without an inferenceId"
REPEATED_ID = "served images repeating an inferenceId (the first one paired)"
NOT_SERVED = "labelled images not among the served ones"
# monitored figure -> the evaluation.json metric it is compared with
REGISTERED = {"map50_95": "served_map50_95", "precision": "precision_pooled", "recall": "recall_pooled"}


def join_ground_truth(
    served: Sequence[tuple[str | None, int, Detections]], truth: GroundTruthSet
) -> tuple[list[tuple[Detections, GroundTruth]], Counter]:
    """Served images (inference id, index in its request, detections) paired with their labels,
    and the counts of those left unpaired on either side."""
    pairs, unpaired, paired = [], Counter(), set()
    for inference_id, index, detections in served:
        key = (inference_id, index)
        if inference_id is None:
            unpaired[NO_INFERENCE_ID] += 1
        elif key in paired:
            unpaired[REPEATED_ID] += 1
        elif key not in truth.labels:
            unpaired[NO_LABELS] += 1
        else:
            paired.add(key)
            pairs.append((detections, truth.labels[key]))
    if len(truth.labels) > len(paired):
        unpaired[NOT_SERVED] += len(truth.labels) - len(paired)
    return pairs, unpaired


def quality_outcomes(
    pairs: Sequence[tuple[Detections, GroundTruth]],
    names: dict[int, str],
    registered: dict,
    serving_conf: float,
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[list[Outcome], dict]:
    """The quality outcomes, and the monitored metrics for the report (with `skipped`: reason per
    figure not tested).

    Only detections scoring above `serving_conf` count (the server's own `score > conf`): a caller
    who asked for a lower X-Conf got more rows, and dropping them restores what is served by
    default; a caller who asked for a higher conf got fewer, which lowers the monitored recall.
    `names` labels the per-class counts; `registered` is the registered evaluation.json."""
    matched = [_matched(dets, truth, serving_conf) for dets, truth in pairs]
    hits = int(sum(tp[:, 0].sum() for tp, _, _, _ in matched))
    detections = sum(len(tp) for tp, _, _, _ in matched)
    labels = sum(len(target) for _, _, _, target in matched)
    per_iou = mean_ap(*_pooled(matched))
    monitored = {
        "map50": float(per_iou[0]),
        "map50_95": float(per_iou.mean()),
        "precision": hits / detections if detections else 0.0,
        "recall": hits / labels if labels else 0.0,
        "images": len(matched),
        "labels": labels,
        "detections": detections,
        "per_class": _per_class(matched, names),
        "serving_conf": serving_conf,
        "bootstrap_resamples": resamples,
        "skipped": {},
    }
    trials = {"map50_95": labels, "precision": detections, "recall": labels}
    outcomes = []
    for figure, metric in REGISTERED.items():
        value, why_not = _registered_value(registered, metric, serving_conf)
        if why_not is None and not trials[figure]:
            why_not = "no served boxes above the conf" if figure == "precision" else "no labelled objects"
        if why_not is not None:
            monitored["skipped"][PREFIX + figure] = why_not
        elif figure == "map50_95":
            outcomes.append(_bootstrap_outcome(matched, value, monitored, seed, resamples))
        else:
            outcomes.append(_binomial_outcome(figure, hits, trials[figure], value))
    return outcomes, monitored


def _matched(
    dets: Detections, truth: GroundTruth, serving_conf: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tp (N, 10), scores, classes, label classes) of one image's served boxes, best first."""
    served = dets.select(dets.scores > serving_conf)
    served = served.select(np.argsort(-served.scores, kind="stable"))
    return match_detections(served, truth), served.scores, served.class_ids, truth.class_ids


def _per_class(matched: Sequence[tuple], names: dict[int, str]) -> dict[str, dict]:
    """Labelled objects and recall at IoU 0.5 per class: where a drop comes from."""
    tp, _, pred_cls, target_cls = _pooled(matched)
    found = Counter(pred_cls[tp[:, 0]].tolist())
    counts = Counter(target_cls.tolist())
    return {
        names.get(int(c), str(int(c))): {"labels": n, "recall": round(found[c] / n, 6)}
        for c, n in sorted(counts.items())
    }


def _pooled(matched: Sequence[tuple]) -> tuple[np.ndarray, ...]:
    if not matched:
        return np.zeros((0, len(IOU_THRESHOLDS)), bool), np.zeros(0), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(column) for column in zip(*matched, strict=True))


def _registered_value(registered: dict, metric: str, serving_conf: float) -> tuple[float, str | None]:
    """The registered figure, or why it cannot be compared."""
    entry = (registered.get("metrics") or {}).get(metric)
    if not isinstance(entry, dict) or "value" not in entry:
        return 0.0, f"evaluation.json has no metrics.{metric}: evaluate the model again to test this"
    conf = entry.get("conf")
    if conf is not None and abs(float(conf) - serving_conf) > CONF_TOLERANCE:
        return 0.0, f"metrics.{metric} is at conf {conf}, the monitor at {serving_conf}"
    return float(entry["value"]), None


def _binomial_outcome(figure: str, hits: int, trials: int, registered: float) -> Outcome:
    result = stats.binomtest(hits, trials, p=min(max(registered, 0.0), 1.0), alternative="less")
    detail = f"registered {registered:.4f}, monitored {hits}/{trials} = {hits / trials:.4f} (IoU 0.5)"
    return Outcome(
        PREFIX + figure, "binomial", float(result.statistic), float(result.pvalue),
        registered - hits / trials, detail, QUALITY_DROP,
    )  # fmt: skip


def _bootstrap_outcome(
    matched: Sequence[tuple], registered: float, monitored: dict, seed: int, resamples: int
) -> Outcome:
    """p = (1 + #resampled mAPs >= registered) / (1 + resamples): how often images like these
    score as well as the registered model did."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(matched), (resamples, len(matched)))
    maps = np.array([mean_ap(*_pooled([matched[i] for i in draw])).mean() for draw in draws])
    p_value = (1 + int(np.sum(maps >= registered))) / (1 + resamples)
    low, high = np.quantile(maps, [0.025, 0.975])
    value = monitored["map50_95"]
    detail = (
        f"registered served_map50_95 {registered:.4f}, monitored {value:.4f} on {len(matched)} images "
        f"(bootstrap 95% interval {low:.4f}-{high:.4f}, {resamples} resamples)"
    )
    return Outcome(PREFIX + "map50_95", "bootstrap", value, p_value, registered - value, detail, QUALITY_DROP)
