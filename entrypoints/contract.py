"""The SageMaker container contract: where inputs, config and outputs live under /opt/ml.

Entry points read the contract here and pass plain arguments to `yolo_core`, which never looks
at /opt/ml or the environment. `SAGEMAKER_BASE_DIR` moves the tree for local runs and tests.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from yolo_core.errors import UserInputError, one_line
from yolo_core.jsonfile import read_json_object

DEFAULT_BASE_DIR = Path("/opt/ml")
# Set by a tuning job's definition: its training jobs share one checkpoint URI, so each keeps its
# run in a folder named after itself there (a spot restart keeps the job's name, and finds it).
CHECKPOINTS_PER_JOB_ENV = "CHECKPOINTS_PER_JOB"


def base_dir() -> Path:
    return Path(os.environ.get("SAGEMAKER_BASE_DIR", str(DEFAULT_BASE_DIR)))


def image_commit() -> str:
    """The commit an image was built from (`GIT_COMMIT`, baked in at build time; the local runner
    sets it for its step processes), else the checkout's: what `yolo_core` records as the code."""
    from yolo_core.version import git_commit

    return os.environ.get("GIT_COMMIT") or git_commit()


def checkpoints_per_job() -> bool:
    return os.environ.get(CHECKPOINTS_PER_JOB_ENV, "").strip().lower() in {"1", "true", "yes"}


def checkpoint_job_name() -> str:
    """This job's own checkpoint folder name where its checkpoints are kept per job, else ""."""
    if not checkpoints_per_job():
        return ""
    name = os.environ.get("TRAINING_JOB_NAME", "").strip()
    if not name or "/" in name or name in {".", ".."}:
        raise UserInputError(
            f"{CHECKPOINTS_PER_JOB_ENV} is set, but TRAINING_JOB_NAME ({name!r}) names no job "
            "whose checkpoint folder this could be (SageMaker sets it in every training job)"
        )
    return name


@dataclass(frozen=True)
class TrainingPaths:
    """The training-job layout under the base directory; `checkpoint_job`: this job's folder
    under checkpoints/ where a tuning job's trials share one checkpoint URI (else "")."""

    base: Path
    checkpoint_job: str = ""

    @classmethod
    def from_env(cls) -> TrainingPaths:
        """The layout, without the per-job checkpoint folder: `with_job_checkpoints` adds it, where
        a bad environment can still be reported as one line."""
        return cls(base_dir())

    def with_job_checkpoints(self) -> TrainingPaths:
        return TrainingPaths(self.base, checkpoint_job_name())

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    def channel(self, name: str) -> Path:
        return self.base / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoint_dir(self) -> Path:
        root = self.base / "checkpoints"
        return root / self.checkpoint_job if self.checkpoint_job else root

    @property
    def worker_dir(self) -> Path:
        """Where the torchrun workers of a multi-host run report to their launcher."""
        return self.output_dir / "workers"


def write_training_config(paths: TrainingPaths, hyperparameters: dict[str, str], channels: list[str]) -> None:
    """The config files SageMaker writes before a training job starts, and its empty folders.

    For every tree laid out outside SageMaker: the local runner's and `make train-tree`'s."""
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters_file.write_text(json.dumps(hyperparameters, indent=2))
    channel_config = {
        name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"} for name in channels
    }
    paths.input_data_config_file.write_text(json.dumps(channel_config, indent=2))
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    for folder in (paths.model_dir, paths.output_dir, paths.checkpoint_dir):
        folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class ProcessingPaths:
    """The processing-job layout: inputs and outputs under /opt/ml/processing."""

    base: Path

    @classmethod
    def from_env(cls) -> ProcessingPaths:
        return cls.under(base_dir())

    @classmethod
    def under(cls, base: Path) -> ProcessingPaths:
        """The layout in a tree whose root plays /opt/ml (the local runner's)."""
        return cls(base / "processing")

    def input(self, name: str) -> Path:
        return self.base / "input" / name

    def output(self, name: str) -> Path:
        return self.base / "output" / name


def processing_message_file(base: Path | None = None) -> Path:
    """Where a Processing job's container leaves its failure reason: /opt/ml/output/message."""
    return (base_dir() if base is None else base) / "output" / "message"


def model_monitor_output_dir(base: Path | None = None) -> Path:
    """Model Monitor's default `output_path`, uploaded as the run's reports: processing/resultdata."""
    return ProcessingPaths.under(base_dir() if base is None else base).base / "resultdata"


def cloudwatch_metrics_dir(base: Path | None = None) -> Path:
    """Where a Model Monitor container leaves metric lines for CloudWatch: output/metrics/cloudwatch."""
    return (base_dir() if base is None else base) / "output" / "metrics" / "cloudwatch"


def read_json_file(path: Path, what: str) -> dict:
    """Read a contract JSON file; a missing file is an empty config, a broken one a user error."""
    return read_json_object(path, what) if path.exists() else {}


def write_failure(failure_file: Path | None, reason: str) -> None:
    """SageMaker shows the first line of /opt/ml/output/failure as the job's failure reason.

    Only inside an existing contract tree: on a laptop, /opt/ml is not created for it."""
    if failure_file is None:
        return
    try:
        failure_file.parent.mkdir(exist_ok=True)
        failure_file.write_text(one_line(reason)[:1000] + "\n")
    except OSError:
        pass


def run_main(main: Callable[[], int | None], failure_file: Path | None = None) -> None:
    """Run an entry point: exit 0, or exit 1 with a one-line reason (stderr and failure file).

    A `UserInputError` is the user's to fix, so it prints no traceback; any other exception is
    our defect and keeps its traceback on stderr, while the reason line stays one line.
    """
    try:
        code = main() or 0
    except KeyboardInterrupt:
        reason = "interrupted"
        write_failure(failure_file, reason)
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(130)
    except UserInputError as exc:
        reason = one_line(str(exc)) or type(exc).__name__
        write_failure(failure_file, reason)
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a container command
        traceback.print_exc()
        reason = one_line(f"{type(exc).__name__}: {exc}")
        write_failure(failure_file, reason)
        print(f"error: {reason}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)
