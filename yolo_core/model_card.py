"""`model.json`: what a trained model needs to be served and audited, next to `best.pt`.

Written by training, read by evaluation, serving, registration and monitoring, so that none of
them has to open the checkpoint to learn the class names or the image size.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from yolo_core.errors import UserInputError

MODEL_CARD_FILE = "model.json"
WEIGHTS_FILE = "best.pt"


@dataclass
class ModelCard:
    class_names: list[str]
    imgsz: int
    dataset_hash: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    code_version: str = ""
    model: str = ""
    weights_file: str = WEIGHTS_FILE
    hyperparameters: dict[str, object] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    def save(self, model_dir: Path) -> Path:
        model_dir.mkdir(parents=True, exist_ok=True)
        path = model_dir / MODEL_CARD_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, model_dir: Path) -> ModelCard:
        path = Path(model_dir) / MODEL_CARD_FILE
        if not path.exists():
            raise UserInputError(f"{path}: model.json is missing from the model folder")
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}: not valid JSON ({exc})") from None
        known = set(cls.__dataclass_fields__)
        missing = {"class_names", "imgsz"} - set(raw)
        if missing:
            raise UserInputError(f"{path}: missing field(s) {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in raw.items() if k in known})

    @property
    def names(self) -> dict[int, str]:
        return dict(enumerate(self.class_names))
