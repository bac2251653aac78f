"""Post-training int8 quantisation of the OpenVINO model, kept beside the weights with its cost.

int8 is the one precision that changes what the model finds, so it is never made silently: the
`quantize` command (`yolo_core.evaluation.quantization`) quantises the fp32 IR with NNCF on a
calibration subset of the training images, letterboxed exactly as inference feeds them, and the
evaluation then measures the mAP50-95 it costs on the validation split. Both land in
`<weights stem>-int8/` beside the weights (`model.xml`, `model.bin`, `quantization.json`), which
ships inside the model artifact. The report names the weights' digest: a quantised model of
other weights is never found. `backend="auto"` considers int8 only where that drop was measured,
and every record of the engine choice carries it.

What it buys is measured per CPU, like every engine: on a Xeon with VNNI and no bf16 (Cascade
Lake, Ice Lake) int8 ran 1.4-1.6x OpenVINO fp32 on yolo11n; where bf16 is native it is slower than
bf16; without VNNI it gains little.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from yolo_core.errors import UserInputError
from yolo_core.runtime import import_openvino
from yolo_core.train.checkpoint import atomic_write_bytes
from yolo_core.weights import sha256_of

if TYPE_CHECKING:  # torch comes with them: the `quantize` command parses its flags first
    from yolo_core.infer.engine_candidates import EngineSpec
    from yolo_core.infer.host import Host

LOG = logging.getLogger(__name__)
FOLDER_SUFFIX = "-int8"
IR_FILE = "model.xml"
REPORT_FILE = "quantization.json"
DEFAULT_CALIBRATION_IMAGES = 64  # NNCF's activation statistics settle well before this on yolo11n


def quantized_dir(weights: Path) -> Path:
    """Where the int8 model of these weights lives: `best.pt` -> `best-int8/` beside it."""
    weights = Path(weights)
    return weights.with_name(weights.stem + FOLDER_SUFFIX)


@dataclass(frozen=True)
class QuantizedModel:
    """An int8 IR and its report: calibration, and the accuracy it costs once measured."""

    ir: Path
    report: dict

    @property
    def map50_95_drop(self) -> float | None:
        cost = self.report.get("accuracy") or {}
        drop = cost.get("map50_95_drop")
        return float(drop) if isinstance(drop, (int, float)) else None

    @property
    def digest(self) -> str:
        return str(self.report.get("ir_sha256", ""))

    def summary(self) -> dict:
        """What an engine-choice record says of it: the measured cost and how it was made."""
        return {
            "map50_95_drop": self.map50_95_drop,
            "accuracy": self.report.get("accuracy"),
            "calibration": self.report.get("calibration"),
            "ir_sha256": self.digest,
        }


def find_quantized(weights: Path) -> QuantizedModel | None:
    """The int8 model made from exactly these weights, or None (absent, unreadable, or of others)."""
    folder = quantized_dir(weights)
    ir, report_path = folder / IR_FILE, folder / REPORT_FILE
    if not (ir.is_file() and ir.with_suffix(".bin").is_file() and report_path.is_file()):
        return None
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        LOG.warning("%s is unreadable: the int8 model beside it is ignored", report_path)
        return None
    if not isinstance(report, dict) or report.get("weights_sha256") != sha256_of(Path(weights)):
        LOG.warning("%s was made from other weights: ignored", folder)
        return None
    return QuantizedModel(ir, report)


def offered_int8(weights: Path, host: Host, precision: str = "auto") -> QuantizedModel | None:
    """The weights' quantised model where int8 is on offer: asked for by name, or, for "auto",
    only once its mAP50-95 cost was measured (it changes what the model finds)."""
    if host.on_gpu or not host.installed("openvino") or precision not in ("auto", "int8"):
        return None
    quantized = find_quantized(weights)
    if quantized is None or (precision == "auto" and quantized.map50_95_drop is None):
        return None
    return quantized


def int8_offer(quantized: QuantizedModel | None, candidates: Sequence[EngineSpec]) -> dict:
    """What the engine request carries of int8: its cost where int8 is among the candidates."""
    wanted = quantized is not None and any(spec.precision == "int8" for spec in candidates)
    return quantized.summary() if wanted else {}


def require_quantized(weights: Path) -> QuantizedModel:
    """The int8 model of these weights, or a one-line error saying how to make it."""
    found = find_quantized(weights)
    if found is None:
        raise UserInputError(
            f"precision 'int8': no int8 model of {weights} (expected {quantized_dir(weights)}/); "
            f"make it with `quantize --model {Path(weights).parent} "
            "--dataset DATASET`, which also measures the mAP50-95 it costs"
        )
    return found


def _ignored_head(model) -> object:  # noqa: ANN001 - OpenVINO and NNCF objects
    """NNCF's ignored scope: every op of the detection head (the module of the last sigmoid:
    its convolutions and its box decoding) and every sigmoid, as Ultralytics' int8 export."""
    import nncf

    operations = model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in operations if op.get_type_name() == "Sigmoid"]
    if not sigmoids:
        raise UserInputError("the model has no sigmoid: not a YOLO detection head that int8 knows")
    head = sigmoids[-1].rsplit("/", 1)[0] + "/"  # e.g. "/model.23/"
    names = [
        op.get_friendly_name()
        for op in operations
        if op.get_type_name() == "Sigmoid" or op.get_friendly_name().startswith(head)
    ]
    return nncf.IgnoredScope(names=names, validate=False)


def quantize_ir(fp32_ir: Path, canvases: Sequence[np.ndarray]):  # noqa: ANN201 - an OpenVINO model
    """The fp32 IR quantised on these letterboxed uint8 NHWC canvases (one image each)."""
    ov = import_openvino()
    import nncf

    if not canvases:
        raise UserInputError("int8 calibration needs at least one training image")
    nncf.set_log_level(logging.WARNING)  # not a line per op it leaves in float
    model = ov.Core().read_model(str(fp32_ir))
    return nncf.quantize(
        model,
        nncf.Dataset(list(canvases)),
        preset=nncf.QuantizationPreset.MIXED,  # symmetric weights, asymmetric activations
        subset_size=len(canvases),
        ignored_scope=_ignored_head(model),
    )


def save_quantized(weights: Path, model, report: dict) -> QuantizedModel:  # noqa: ANN001
    """Write the IR and its report into the weights' int8 folder, replacing any earlier one whole:
    a half-written folder is never found (the report, read last, is written last)."""
    ov = import_openvino()

    folder = quantized_dir(weights)
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    ov.save_model(model, str(staging / IR_FILE), compress_to_fp16=False)
    ir_weights = (staging / IR_FILE).with_suffix(".bin")
    report = {**report, "weights_sha256": sha256_of(Path(weights)), "ir_sha256": sha256_of(ir_weights)}
    shutil.rmtree(folder, ignore_errors=True)
    staging.replace(folder)
    write_report(folder / REPORT_FILE, report)
    return QuantizedModel(folder / IR_FILE, report)


def write_report(path: Path, report: dict) -> None:
    atomic_write_bytes(path, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())


def record_accuracy(quantized: QuantizedModel, accuracy: dict) -> QuantizedModel:
    """The report with the measured accuracy of fp32 and int8 (and the drop) added."""
    report = {**quantized.report, "accuracy": accuracy}
    write_report(quantized.ir.with_name(REPORT_FILE), report)
    return QuantizedModel(quantized.ir, report)
