"""Quantise a model folder to int8 and measure what it costs, in one step that cannot skip the second.

Calibration takes an evenly spaced subset of the training split (never the images it is scored
on), letterboxed as the predictor letterboxes them; the cost is the evaluation's own mAP50-95 of
OpenVINO fp32 and of OpenVINO int8 on the validation split, through the same `evaluate_split`
the pipeline gates on. The figures land in the int8 report and in model.json (`extra.int8`), so
whoever serves the int8 model sees what it gave up.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from yolo_core.data.images_io import read_prepared_image
from yolo_core.errors import UserInputError
from yolo_core.evaluation.evaluate import EvaluationSettings, evaluate_split
from yolo_core.evaluation.ground_truth import load_split
from yolo_core.infer.int8 import (
    DEFAULT_CALIBRATION_IMAGES,
    QuantizedModel,
    quantize_ir,
    record_accuracy,
    save_quantized,
)
from yolo_core.infer.letterbox import letterbox_batch
from yolo_core.infer.openvino_backend import OpenVinoEngine, cached_ir_path
from yolo_core.model_card import ModelCard
from yolo_core.runtime import cpu_thread_count
from yolo_core.weights import verify_weights

LOG = logging.getLogger(__name__)
CALIBRATION_SPLIT = "train"


def calibration_files(dataset_dir: Path, count: int) -> list[Path]:
    """`count` training images spread evenly over the sorted split (all of them if fewer)."""
    if count < 1:
        raise UserInputError(f"calibration images: {count} is not at least 1")
    files = load_split(dataset_dir, CALIBRATION_SPLIT).image_files
    if not files:
        raise UserInputError(
            f"{Path(dataset_dir) / 'data.yaml'}: the train split has no images to calibrate on"
        )
    if len(files) <= count:
        return files
    if count == 1:
        return files[:1]
    return [files[round(i * (len(files) - 1) / (count - 1))] for i in range(count)]


def calibration_canvases(files: list[Path], imgsz: int, stride: int) -> list[np.ndarray]:
    """Each image letterboxed alone, as one (1, H, W, 3) uint8 batch: what the engine is fed."""
    return [letterbox_batch([read_prepared_image(file)], imgsz, stride)[0] for file in files]


def _headline(report: dict) -> dict[str, float]:
    return {name: report["metrics"][name]["value"] for name in ("map50", "map50_95")}


def measure_cost(model_dir: Path, dataset_dir: Path, settings: EvaluationSettings) -> dict:
    """fp32 and int8 OpenVINO on the same split with the same settings; the drop between them."""
    figures = {}
    with tempfile.TemporaryDirectory(prefix="int8-cost-") as scratch:
        for precision in ("fp32", "int8"):
            asked = replace(settings, backend="openvino", precision=precision)
            report = evaluate_split(model_dir, dataset_dir, Path(scratch) / precision, asked).report
            figures[precision] = _headline(report)
            images = report["dataset"]["images"]
    return {
        "split": settings.split,
        "images": images,
        **figures,
        "map50_95_drop": round(figures["fp32"]["map50_95"] - figures["int8"]["map50_95"], 6),
        "map50_drop": round(figures["fp32"]["map50"] - figures["int8"]["map50"], 6),
    }


def quantize_model_dir(
    model_dir: Path,
    dataset_dir: Path,
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
    settings: EvaluationSettings | None = None,
) -> QuantizedModel:
    """`<weights>-int8/` in the model folder, its report holding the measured cost; model.json too."""
    settings = settings or EvaluationSettings(device="cpu")
    model_dir = Path(model_dir)
    card = ModelCard.load(model_dir)
    weights = model_dir / card.weights_file
    files = calibration_files(dataset_dir, calibration_images)  # a bad dataset fails before the export
    verify_weights(weights, card.weights_sha256)  # before the export unpickles it
    # The fp32 engine exports the IR into the cache where it is missing, and knows the stride.
    engine = OpenVinoEngine(weights, card.imgsz, torch.device("cpu"), "fp32", cpu_thread_count())
    canvases = calibration_canvases(files, settings.imgsz or card.imgsz, engine.stride)
    names = hashlib.sha256("\n".join(f.name for f in files).encode()).hexdigest()
    calibration = {"split": CALIBRATION_SPLIT, "images": len(files), "files_sha256": names}
    quantized = save_quantized(
        weights, quantize_ir(cached_ir_path(weights), canvases), {"calibration": calibration}
    )
    quantized = record_accuracy(quantized, measure_cost(model_dir, dataset_dir, settings))
    card.extra["int8"] = quantized.summary()
    card.save(model_dir)
    LOG.info("int8 model in %s: %s", quantized.ir.parent, quantized.report["accuracy"])
    return quantized
