"""The monitoring reference of a model, made when it is evaluated: what its answers and its
backbone's embeddings look like on the validation split, and the metrics it was registered with.

Why at evaluation: it is the last step that holds both the model and the held-out images, and a
reference made from the same frames the registered metrics came from lets the monitor compare a
served window with exactly what was approved. The detections are those the server would return
(its default conf, IoU and max_det), so served and reference profiles are comparable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from yolo_core.data.images_io import read_prepared_image
from yolo_core.errors import UserInputError
from yolo_core.evaluation.ground_truth import load_split
from yolo_core.infer.detections import Detections
from yolo_core.infer.predictor import Predictor
from yolo_core.model_card import ModelCard
from yolo_core.monitoring.checks import DEFAULT_POLICY, Policy
from yolo_core.monitoring.constraints import constraints_document
from yolo_core.monitoring.embedding_drift import embedding_reference
from yolo_core.monitoring.embeddings import BackboneEmbedder
from yolo_core.monitoring.prediction_drift import prediction_profile
from yolo_core.serving.options import InferenceOptions

CHUNK = 16  # images decoded at once: the split is read in pieces, never whole into memory


def registered_evaluation(evaluation: dict, serving_conf: float) -> dict:
    """The part of evaluation.json the quality checks compare against."""
    return {
        "metrics": evaluation["metrics"],
        "serving_conf": serving_conf,
        "dataset": evaluation.get("dataset"),
    }


def monitoring_reference(
    model_dir: Path,
    dataset_dir: Path,
    evaluation: dict,
    serving_conf: float,
    split: str = "val",
    device: str = "auto",
    precision: str = "auto",
    policy: Policy = DEFAULT_POLICY,
    served: list[Detections] | None = None,
) -> dict:
    """The constraints document of the model in `model_dir` over `split` of `dataset_dir`, its
    answers at `serving_conf` (the endpoint's; the server's other defaults). `served`: those
    answers per image, where the evaluation's pass already gave them; else they are predicted."""
    options = InferenceOptions(conf=serving_conf)
    files = load_split(dataset_dir, split).image_files
    if not files:
        raise UserInputError(f"{dataset_dir}: the {split} split has no images to profile the model on")
    if served is not None and len(served) != len(files):
        raise ValueError(f"{len(served)} served answers for the {len(files)} images of the {split} split")
    predictor = (
        None
        if served is not None
        else Predictor.from_model_dir(model_dir, device=device, precision=precision)
    )
    embedder = BackboneEmbedder.from_model_dir(model_dir)
    detections: list[Detections] = list(served or [])
    vectors = []
    for start in range(0, len(files), CHUNK):
        images = [read_prepared_image(path) for path in files[start : start + CHUNK]]
        if predictor is not None:  # iou: as served
            detections += predictor.predict(images, conf=options.conf, max_det=options.max_det)
        vectors.append(embedder.embed(images))
    return constraints_document(
        prediction_profile=prediction_profile(detections, ModelCard.load(model_dir).names),
        policy=policy,
        embedding_reference=embedding_reference(np.concatenate(vectors)),
        registered_evaluation=registered_evaluation(evaluation, options.conf),
    )
