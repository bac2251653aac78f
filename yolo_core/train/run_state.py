"""What a run remembers across restarts, in `run_state.json` beside its checkpoints.

The checkpoint files hold the model; this file holds the rest: the hyperparameters and the
augmentation the run started with (a restart uses these, not whatever it is handed next), the
MLflow run to continue, how often it was resumed, and whether it finished.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from yolo_core.errors import UserInputError
from yolo_core.train.checkpoint import atomic_write_bytes

STATE_FILE = "run_state.json"
RUNNING, FINISHED = "running", "finished"


@dataclass
class RunState:
    hyperparameters: dict[str, Any]
    augment: dict[str, Any]
    status: str = RUNNING
    starts: int = 0
    resumes: int = 0
    mlflow_run_id: str = ""
    dataset_hash: str = ""
    class_names: list[str] = field(default_factory=list)
    epochs_completed: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    resolved: dict[str, Any] = field(default_factory=dict)  # device, precision, batch actually used

    @property
    def finished(self) -> bool:
        return self.status == FINISHED

    def save(self, checkpoint_dir: Path) -> Path:
        text = json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"
        return atomic_write_bytes(Path(checkpoint_dir) / STATE_FILE, text.encode())

    @classmethod
    def load(cls, checkpoint_dir: Path) -> RunState | None:
        path = Path(checkpoint_dir) / STATE_FILE
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise UserInputError(
                f"{path}: the run state is unreadable ({exc}); remove the checkpoint folder to start anew"
            ) from None
