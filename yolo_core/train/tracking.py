"""MLflow tracking of a training run that may be stopped and resumed on another host.

The tracking URI is configuration: an HTTP(S) MLflow server, a SageMaker managed MLflow ARN
(through the `sagemaker-mlflow` plugin), any URI MLflow accepts, or, by default, a local sqlite
store kept in the checkpoint folder so that it travels with the run across spot restarts. The run
id is stored in the run's state file, so a resumed run continues the same MLflow run.

Every call goes through the `TRACKING` retry policy; a tracking failure in the middle of training
is logged and training goes on (hours of GPU time are worth more than one lost metric).
Parameters and messages carry the tracking URI only through `redact_uri`: its credentials connect,
they are never recorded.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from yolo_core.errors import UserInputError
from yolo_core.redact import redact_text, redact_uri, redact_values
from yolo_core.retry import TRACKING, apply_mlflow_http_policy, call_with_retry
from yolo_core.train.checkpoint import atomic_write_bytes, commit_file

LOG = logging.getLogger(__name__)
_KEY_CHARS = re.compile(r"[^0-9A-Za-z_\-. /]")
_PARAM_VALUE_LIMIT = 6000


def metric_key(name: str) -> str:
    """Ultralytics names metrics like 'metrics/mAP50(B)'; MLflow allows no parentheses."""
    return _KEY_CHARS.sub("", name)


class LocalStore:
    """A sqlite MLflow store whose durable copy lives in the checkpoint folder.

    SageMaker uploads the checkpoint folder while it is written, so a live database there could
    reach S3 mid-transaction. The live copy stays in a work folder; `snapshot()` copies it
    consistently (sqlite's backup API) and atomically into the checkpoint folder after each epoch.
    Artifacts are written straight into the checkpoint folder (each file is written once).
    """

    def __init__(self, checkpoint_dir: Path, work_dir: Path) -> None:
        self.root = Path(checkpoint_dir) / "mlflow"
        self.durable_db = self.root / "mlflow.db"
        self.location_file = self.root / "artifact_root.txt"
        self.artifact_root = self.root / "artifacts"
        self.live_db = Path(work_dir) / "mlflow.db"

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.live_db}"

    def open(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        self.live_db.parent.mkdir(parents=True, exist_ok=True)
        if self.durable_db.exists():
            shutil.copyfile(self.durable_db, self.live_db)
            self._relocate_artifacts()
        atomic_write_bytes(self.location_file, str(self.artifact_root).encode())
        return self.uri

    def _relocate_artifacts(self) -> None:
        """The store keeps absolute artifact paths; after a move they must point here again."""
        old = self.location_file.read_text().strip() if self.location_file.exists() else ""
        new = str(self.artifact_root)
        if not old or old == new:
            return
        LOG.info("MLflow store moved: artifact root %s -> %s", old, new)
        with sqlite3.connect(self.live_db) as db:
            db.execute(
                "UPDATE experiments SET artifact_location = ? || substr(artifact_location, ?) "
                "WHERE substr(artifact_location, 1, ?) = ?",
                (new, len(old) + 1, len(old), old),
            )
            db.execute(
                "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                "WHERE substr(artifact_uri, 1, ?) = ?",
                (new, len(old) + 1, len(old), old),
            )

    def snapshot(self) -> None:
        if not self.live_db.exists():
            return
        staged = self.root / f".mlflow.db.tmp-{os.getpid()}"
        source, target = sqlite3.connect(self.live_db), sqlite3.connect(staged)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        commit_file(staged, self.durable_db)


def _check_uri(uri: str) -> None:
    if uri.startswith("arn:"):
        if not re.match(r"^arn:aws[\w-]*:sagemaker:[\w-]+:\d{12}:mlflow-(tracking-server|app)/", uri):
            raise UserInputError(
                f"hyperparameter 'tracking_uri': {redact_uri(uri)!r} is not a SageMaker MLflow ARN"
            )
        try:
            import sagemaker_mlflow  # noqa: F401 - registers the arn: scheme with MLflow
        except ImportError:
            raise UserInputError(
                "hyperparameter 'tracking_uri': an ARN needs the sagemaker-mlflow package in the image"
            ) from None
        return
    if not re.match(r"^(https?|sqlite|postgresql|mysql|file|databricks)(\+\w+)?:", uri):
        raise UserInputError(
            f"hyperparameter 'tracking_uri': {redact_uri(uri)!r} is not an http(s)://, sqlite:// "
            "or SageMaker ARN URI"
        )


class RunTracker:
    """One MLflow run, created once and continued after every restart."""

    def __init__(self, tracking_uri: str, run_id: str, local_store: LocalStore | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.local_store = local_store
        self._client = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import mlflow

            # The sagemaker-mlflow plugin adds its routing header from the *global* tracking URI
            # (without it, requests to a SageMaker ARN fail); on any other URI it logs an error
            # for every request, which is noise.
            mlflow.set_tracking_uri(self.tracking_uri)
            if not self.tracking_uri.startswith("arn:"):
                logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
            self._client = mlflow.MlflowClient(self.tracking_uri)
        return self._client

    def __getstate__(self) -> dict[str, Any]:  # DDP pickles callbacks: the client stays behind
        return {**self.__dict__, "_client": None}

    @classmethod
    def open(
        cls,
        tracking_uri: str,
        experiment_name: str,
        run_name: str,
        run_id: str,
        tags: Mapping[str, str],
        local_store: LocalStore | None = None,
    ) -> RunTracker:
        """Continue run `run_id` if it exists there, else start a new run in the experiment."""
        apply_mlflow_http_policy()
        if tracking_uri:
            _check_uri(tracking_uri)
            local_store = None
        elif local_store is None:
            raise ValueError("a local store is needed when no tracking URI is given")
        else:
            tracking_uri = local_store.open()
        tracker = cls(tracking_uri, run_id, local_store)
        if run_id and tracker._run_exists(run_id):
            call_with_retry(tracker.client.update_run, run_id, status="RUNNING", policy=TRACKING)
            tracker.set_tags(tags)
            return tracker
        experiment_id = tracker._experiment_id(experiment_name)
        run = call_with_retry(
            tracker.client.create_run,
            experiment_id,
            tags=redact_values(tags),
            run_name=run_name or None,
            policy=TRACKING,
            what="MLflow create_run",
        )
        tracker.run_id = run.info.run_id
        return tracker

    def _run_exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            call_with_retry(self.client.get_run, run_id, policy=TRACKING, what="MLflow get_run")
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                LOG.warning(
                    "MLflow run %s not found at %s; starting a new run", run_id, redact_uri(self.tracking_uri)
                )
                return False
            raise
        return True

    def _experiment_id(self, name: str) -> str:
        experiment = call_with_retry(self.client.get_experiment_by_name, name, policy=TRACKING)
        if experiment is not None:
            return experiment.experiment_id
        location = str(self.local_store.artifact_root) if self.local_store else None
        return call_with_retry(
            self.client.create_experiment, name, artifact_location=location, policy=TRACKING
        )

    def _safely(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            call_with_retry(fn, *args, policy=TRACKING, what=f"MLflow {what}", **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking must not end a training run
            LOG.warning("MLflow %s failed, continuing without it: %s", what, redact_text(str(exc)))

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        redacted = redact_values(params)
        items = [Param(key, str(value)[:_PARAM_VALUE_LIMIT]) for key, value in sorted(redacted.items())]
        for start in range(0, len(items), 100):  # MLflow accepts 100 params per batch
            self._safely("log params", self.client.log_batch, self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_key(key), float(value), now, step) for key, value in metrics.items()]
        self._safely("log metrics", self.client.log_batch, self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(key, str(value)) for key, value in redact_values(tags).items()]
        self._safely("set tags", self.client.log_batch, self.run_id, tags=items)

    def log_artifacts(self, files: Iterable[tuple[Path, str]]) -> None:
        for path, folder in files:
            if Path(path).is_file():
                self._safely(
                    f"log artifact {Path(path).name}",
                    self.client.log_artifact,
                    self.run_id,
                    str(path),
                    folder,
                )

    def snapshot(self) -> None:
        if self.local_store is not None:
            self.local_store.snapshot()

    def finish(self, status: str = "FINISHED") -> None:
        self._safely("set_terminated", self.client.set_terminated, self.run_id, status)
        self.snapshot()


class NoTracker:
    """Stands in for `RunTracker` when tracking is off (tracking_uri 'none')."""

    run_id = ""

    def __getattr__(self, name: str) -> Any:
        if name in {"log_params", "log_metrics", "set_tags", "log_artifacts", "snapshot", "finish"}:
            return lambda *args, **kwargs: None
        raise AttributeError(name)


class TrackingCallbacks:
    """Ultralytics callbacks that send each epoch's losses, metrics and learning rates to MLflow,
    and print them as one line (also with `NoTracker`: SageMaker's metric regexes read that line)."""

    def __init__(self, tracker: RunTracker | NoTracker) -> None:
        self.tracker = tracker
        self.validated = False  # did a validation run since the last epoch was logged?

    def on_val_end(self, validator: Any) -> None:
        self.validated = True

    def on_fit_epoch_end(self, trainer: Any) -> None:
        from ultralytics.utils import RANK

        if RANK not in {-1, 0}:
            return
        losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss else {}
        # Without a validation this epoch (`val: false` validates only at the end), Ultralytics
        # still reports its placeholder zeros: logging them would draw mAP 0 for every epoch.
        validation = (trainer.metrics or {}) if self.validated else {}
        self.validated = False
        metrics = {
            **losses,
            **validation,
            **getattr(trainer, "lr", {}),
        }
        step = trainer.epoch + 1
        self.tracker.log_metrics({k: v for k, v in metrics.items() if _is_number(v)}, step=step)
        self.tracker.snapshot()
        summary = " ".join(f"{metric_key(k)}={float(v):.5g}" for k, v in metrics.items() if _is_number(v))
        label = f"epoch={step}" if step <= trainer.epochs else "final"  # final_eval logs at epochs + 1
        print(f"{label} {summary}", flush=True)  # one line per epoch for SageMaker metric regexes

    def register(self, callbacks: dict[str, list]) -> None:
        callbacks.setdefault("on_fit_epoch_end", []).append(self.on_fit_epoch_end)
        callbacks.setdefault("on_val_end", []).append(self.on_val_end)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
