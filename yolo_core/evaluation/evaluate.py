"""Evaluate a model folder on a dataset split and write evaluation.json and the plots.

Predictions come from the same `Predictor` (or sliced inference) that serves the model, so the
metrics describe what is deployed: precision and recall at the server's default confidence.
evaluation.json is shaped for a SageMaker `PropertyFile`: a pipeline condition reads
`metrics.precision.value` with `JsonGet`. A disagreement with pycocotools fails the evaluation,
after the report (with both figures) is written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from yolo_core.data.images_io import read_prepared_image
from yolo_core.errors import UserInputError
from yolo_core.evaluation.coco_check import CrossCheckFailed, coco_map, cross_check, cross_check_failure
from yolo_core.evaluation.ground_truth import (
    DatasetSplit,
    GroundTruth,
    label_file_for,
    load_split,
    read_labels,
)
from yolo_core.evaluation.metrics import SERVING_CONF, MetricsAccumulator
from yolo_core.infer.detections import Detections
from yolo_core.infer.predictor import DEFAULT_IOU, Predictor
from yolo_core.infer.sliced import predict_sliced
from yolo_core.model_card import ModelCard
from yolo_core.serving.options import InferenceOptions
from yolo_core.train.data_source import dataset_hash

EVALUATION_FILE = "evaluation.json"
HEADLINE_METRICS = ("map50", "map50_95")
# Each figure measured at one conf, with that conf: the serving conf, or the max-F1 conf. The served
# and pooled figures are what the monitor compares served traffic with (see metrics.py).
OPERATING_POINT_METRICS = {
    "precision": "serving_conf",
    "recall": "serving_conf",
    "precision_at_max_f1": "max_f1_conf",
    "recall_at_max_f1": "max_f1_conf",
    "served_map50_95": "serving_conf",
    "precision_pooled": "serving_conf",
    "recall_pooled": "serving_conf",
}


@dataclass(frozen=True)
class EvaluationSettings:
    split: str = "val"
    conf: float = 0.001  # as `yolo val`: mAP integrates over the whole PR curve
    serving_conf: float = SERVING_CONF  # precision and recall are of the detections above it
    iou: float = 0.7
    max_det: int = 300
    imgsz: int | None = None  # None: the model card's
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    batch_size: int = 8
    slice_size: int = 0  # 0: whole images; else sliced inference with these tiles
    overlap: float = 0.2

    def __post_init__(self) -> None:
        if self.conf > self.serving_conf:
            raise UserInputError(
                f"conf={self.conf} is above the serving conf {self.serving_conf}: precision and "
                "recall at the serving conf need the detections down to it"
            )


def _predict(predictor: Predictor, images: list, settings: EvaluationSettings) -> list[Detections]:
    if settings.slice_size:
        return predict_sliced(
            predictor, images, slice_size=settings.slice_size, overlap=settings.overlap,
            conf=settings.conf, tile_iou=settings.iou, max_det=settings.max_det,
        )  # fmt: skip
    return predictor.predict(images, conf=settings.conf, iou=settings.iou, max_det=settings.max_det)


def _served(predictor: Predictor, images: list, settings: EvaluationSettings) -> list[Detections | None]:
    """What the server returns, where it is not the low-conf pass above the serving conf: sliced
    inference merges lower-scored boxes into higher ones across tiles. None: it is."""
    if not settings.slice_size:
        return [None] * len(images)
    return _predict(predictor, images, replace(settings, conf=settings.serving_conf))


@dataclass(frozen=True)
class Evaluation:
    """The report, and the server's answers per image where the evaluation's own pass gave them
    (None otherwise): the monitoring reference then needs no second pass over the split."""

    report: dict
    served: list[Detections] | None


def pass_gives_served_answers(settings: EvaluationSettings, card: ModelCard) -> bool:
    """Whether the evaluation's detections above the serving conf are what the server answers.

    NMS keeps boxes greedily by score, so no box below the serving conf suppresses one above it:
    the low-conf pass cut at the serving conf is the served answer when the rest matches the
    server's defaults (whole frames, its IoU and max_det, the card's image size)."""
    served = InferenceOptions()
    return (
        not settings.slice_size
        and settings.iou == DEFAULT_IOU
        and settings.max_det == served.max_det
        and settings.imgsz in (None, card.imgsz)
    )


def evaluate_model(
    model_dir: Path, dataset_dir: Path, output_dir: Path, settings: EvaluationSettings
) -> dict:
    """Run the model over the split, compute metrics and the COCO cross-check, write the report."""
    return evaluate_split(model_dir, dataset_dir, output_dir, settings).report


def evaluate_split(
    model_dir: Path, dataset_dir: Path, output_dir: Path, settings: EvaluationSettings
) -> Evaluation:
    """`evaluate_model`, keeping the served answers where its pass gives them."""
    card = ModelCard.load(model_dir)
    split = load_split(dataset_dir, settings.split)
    if len(split.names) != len(card.class_names):
        raise UserInputError(
            f"{Path(dataset_dir) / 'data.yaml'}: {len(split.names)} classes, "
            f"but the model has {len(card.class_names)} ({', '.join(card.class_names)})"
        )
    predictor = Predictor.from_model_dir(
        model_dir,
        imgsz=settings.imgsz or card.imgsz,
        device=settings.device,
        precision=settings.precision,
        backend=settings.backend,
        batch_size=settings.batch_size,
    )
    accumulator = MetricsAccumulator(split.names, serving_conf=settings.serving_conf)
    keep_served = pass_gives_served_answers(settings, card)
    served_answers: list[Detections] = []
    predictions: list[Detections] = []
    truths: list[GroundTruth] = []
    chunk = max(settings.batch_size, 1)
    for start in range(0, len(split.image_files), chunk):
        files = split.image_files[start : start + chunk]
        images = [read_prepared_image(f) for f in files]
        found, served = _predict(predictor, images, settings), _served(predictor, images, settings)
        for dets, served_dets, image, file in zip(found, served, images, files, strict=True):
            truth = read_labels(label_file_for(file), image.shape[1], image.shape[0], len(split.names))
            accumulator.add(dets, truth, served_dets)
            predictions.append(dets)
            truths.append(truth)
            if keep_served:
                # the server's rule, as the predictor's and the accumulator's: score > conf
                served_answers.append(dets.select(dets.scores > settings.serving_conf))
    output_dir.mkdir(parents=True, exist_ok=True)
    ours = accumulator.finish(plots_dir=output_dir)
    coco = coco_map(predictions, truths, split.names, settings.max_det)
    report = build_report(ours, coco, card, split, len(predictions), settings)
    (output_dir / EVALUATION_FILE).write_text(json.dumps(report, indent=2) + "\n")
    failure = cross_check_failure(report["coco_check"])
    if failure:
        raise CrossCheckFailed(f"{failure} (see {output_dir / EVALUATION_FILE})")
    return Evaluation(report, served_answers if keep_served else None)


def build_report(
    ours: dict, coco: dict, card: ModelCard, split: DatasetSplit, images: int, settings: EvaluationSettings
) -> dict:
    return {
        "metrics": {
            **{name: {"value": round(ours[name], 6)} for name in HEADLINE_METRICS},
            **{
                name: {"value": round(ours[name], 6), "conf": round(ours[conf], 6)}
                for name, conf in OPERATING_POINT_METRICS.items()
            },
        },
        "per_class": ours["per_class"],
        "coco_check": cross_check(ours, coco),
        "confusion_matrix": {
            "labels": [*split.spec.class_names, "background"],
            "rows_predicted_columns_true": ours["confusion_matrix"],
        },
        "dataset": {"split": settings.split, "images": images, "dataset_hash": dataset_hash(split.spec)},
        "model": {
            "dataset_hash": card.dataset_hash,
            "code_version": card.code_version,
            "imgsz": card.imgsz,
            "weights_sha256": card.weights_sha256,  # verified before loading; "" if the card had none
        },
        "settings": asdict(settings),
    }
