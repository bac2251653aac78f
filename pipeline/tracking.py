"""MLflow for a local pipeline run: one parent run, one child run per step.

The training entrypoint opens its own MLflow run (it must, to survive spot restarts); the runner
adopts it as the Train child afterwards by setting `mlflow.parentRunId` on it. Every param and tag
value passes through `redact_uri` on its way in (`_flat`), so a tracking URI's credentials are
used to connect but never recorded. Every call to the tracking server is retried under
`yolo_core.retry.TRACKING`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolo_core.redact import redact_uri, redact_values
from yolo_core.retry import TRACKING, TRANSFER, apply_mlflow_http_policy, call_with_retry

PARENT_TAG = "mlflow.parentRunId"


def default_tracking_uri(folder: Path) -> str:
    return f"sqlite:///{Path(folder).resolve() / 'mlflow.db'}"


def ui_command(tracking_uri: str) -> str:
    """The command to browse the runs; the `mlflow` of this Python's environment, which is on the
    PATH only when that venv is activated."""
    beside = Path(sys.executable).parent / "mlflow"
    return f"{beside if beside.is_file() else 'mlflow'} ui --backend-store-uri {redact_uri(tracking_uri)}"


def _flat(values: dict[str, Any]) -> dict[str, str]:
    """Values as MLflow stores them: strings, cut to its size limit, credentials redacted."""
    return {key: str(value)[:5000] for key, value in redact_values(values).items()}


@dataclass
class PipelineTracking:
    """A parent run for the pipeline, and child runs for its steps."""

    tracking_uri: str
    experiment: str
    artifact_root: Path
    parent_run_id: str = ""
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        if self._client is None:
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            apply_mlflow_http_policy()  # MLflow's HTTP client fails fast: TRACKING does the retrying
            from mlflow import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def experiment_id(self) -> str:
        found = call_with_retry(self.client.get_experiment_by_name, self.experiment, policy=TRACKING)
        if found is not None:
            return found.experiment_id
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        return call_with_retry(
            self.client.create_experiment,
            self.experiment,
            artifact_location=self.artifact_root.resolve().as_uri(),
            policy=TRACKING,
        )

    def start(self, name: str, params: dict[str, Any], tags: dict[str, Any]) -> str:
        run = call_with_retry(
            self.client.create_run, self.experiment_id(), run_name=name, tags=_flat(tags), policy=TRACKING
        )
        self.parent_run_id = run.info.run_id
        self.log_params(self.parent_run_id, params)
        return self.parent_run_id

    def child(self, step: str, params: dict[str, Any], tags: dict[str, Any]) -> str:
        run = call_with_retry(
            self.client.create_run,
            self.experiment_id(),
            run_name=step,
            tags=_flat({**tags, PARENT_TAG: self.parent_run_id, "step": step}),
            policy=TRACKING,
        )
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def adopt(self, run_id: str, step: str, tags: dict[str, Any]) -> None:
        """Make a run someone else created (the trainer's) a child of the pipeline run."""
        for key, value in _flat({**tags, PARENT_TAG: self.parent_run_id, "step": step}).items():
            call_with_retry(self.client.set_tag, run_id, key, value, policy=TRACKING)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        for key, value in _flat(params).items():
            call_with_retry(self.client.log_param, run_id, key, value, policy=TRACKING)

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            call_with_retry(self.client.log_metric, run_id, key, float(value), policy=TRACKING)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        for key, value in _flat(tags).items():
            call_with_retry(self.client.set_tag, run_id, key, value, policy=TRACKING)

    def log_artifacts(self, run_id: str, folder: Path, path: str) -> None:
        call_with_retry(self.client.log_artifacts, run_id, str(folder), path, policy=TRACKING)

    def artifact_uri(self, run_id: str) -> str:
        return call_with_retry(self.client.get_run, run_id, policy=TRACKING).info.artifact_uri

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        call_with_retry(self.client.set_terminated, run_id, status, policy=TRACKING)


def download_registered(artifact_uri: str, target: Path) -> str:
    """MLflow artifacts (a registered model folder, its monitoring references) into `target`, with
    the transfer policy's retries: a store or network hiccup costs a retry, not the deployment."""
    from mlflow.artifacts import download_artifacts

    return call_with_retry(
        download_artifacts,
        artifact_uri=artifact_uri,
        dst_path=str(target),
        policy=TRANSFER,
        what=f"download of {redact_uri(artifact_uri)}",
    )
