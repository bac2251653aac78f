"""`model.json`: what a trained model needs to be served and audited, next to `best.pt`.

Written by training, read by evaluation, serving, registration and monitoring, so that none of
them has to open the checkpoint to learn the class names or the image size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from yolo_core.errors import UserInputError
from yolo_core.jsonfile import read_json_object
from yolo_core.redact import redact_values

MODEL_CARD_FILE = "model.json"
WEIGHTS_FILE = "best.pt"


def _is_names(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_sha256(value: object) -> bool:
    """Empty (not recorded: cards from before digests, or written by hand) or 64 lowercase hex."""
    return isinstance(value, str) and (value == "" or re.fullmatch(r"[0-9a-f]{64}", value) is not None)


def _is_records(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _is_kind(kind: type) -> Callable[[object], bool]:
    return lambda value: isinstance(value, kind)


# Field -> (check, what was expected): the card comes from a file a person may have edited.
_FIELD_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {
    "class_names": (_is_names, "a non-empty list of class names (strings)"),
    "imgsz": (_is_positive_int, "a positive integer (pixels)"),
    "dataset_hash": (_is_kind(str), "a string"),
    "metrics": (_is_kind(dict), "an object of metric values"),
    "code_version": (_is_kind(str), "a string"),
    "model": (_is_kind(str), "a string"),
    "weights_file": (_is_kind(str), "a string (file name in the model folder)"),
    "weights_sha256": (_is_sha256, "the weights file's SHA-256 (64 lowercase hex digits), or empty"),
    "hyperparameters": (_is_kind(dict), "an object"),
    "extra": (_is_kind(dict), "an object"),
    "inference_engines": (_is_records, "a list of engine-choice records (objects)"),
}


@dataclass
class ModelCard:
    class_names: list[str]
    imgsz: int
    dataset_hash: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    code_version: str = ""
    model: str = ""
    weights_file: str = WEIGHTS_FILE
    weights_sha256: str = ""  # checked before the weights are unpickled (yolo_core.weights)
    hyperparameters: dict[str, object] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)
    # Engine choices measured where the model was made (yolo_core.infer.engine_choice records):
    # a predictor on a host with the same key uses one without measuring again.
    inference_engines: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The card is an artifact anyone with the model may read: a tracking URI's credentials stay out.
        self.hyperparameters = redact_values(self.hyperparameters)

    def save(self, model_dir: Path) -> Path:
        model_dir.mkdir(parents=True, exist_ok=True)
        path = model_dir / MODEL_CARD_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, model_dir: Path) -> ModelCard:
        """Read and type-check model.json, so a hand-edited card fails here, naming the field."""
        path = Path(model_dir) / MODEL_CARD_FILE
        if not path.exists():
            raise UserInputError(f"{path}: model.json is missing from the model folder")
        raw = read_json_object(path, "model card")
        missing = {"class_names", "imgsz"} - set(raw)
        if missing:
            raise UserInputError(f"{path}: missing field(s) {', '.join(sorted(missing))}")
        fields = {k: v for k, v in raw.items() if k in _FIELD_TYPES}
        for name, value in fields.items():
            check, expected = _FIELD_TYPES[name]
            if not check(value):
                raise UserInputError(f"{path}: field '{name}' must be {expected}, got {value!r:.80}")
        return cls(**fields)

    @property
    def names(self) -> dict[int, str]:
        return dict(enumerate(self.class_names))
