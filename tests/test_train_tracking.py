"""MLflow tracking against a real MLflow server on loopback (the HTTP case of the tracking URI)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from yolo_core.errors import UserInputError
from yolo_core.processes import stop_process, wait_for_announced_port, wait_until_answers
from yolo_core.train.tracking import RunTracker, metric_key

pytestmark = pytest.mark.slow


# uvicorn's start-up line names the port the kernel picked for `--port 0`.
UVICORN_PORT = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@pytest.fixture
def mlflow_server(tmp_path: Path, guarded_subprocess_env: dict[str, str]) -> Iterator[str]:
    log_file = tmp_path / "server.log"
    log = log_file.open("w")
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", "0",
               "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
               "--artifacts-destination", str(tmp_path / "server-artifacts")]  # fmt: skip
    server = subprocess.Popen(command, env=guarded_subprocess_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            port = wait_for_announced_port(log_file, UVICORN_PORT, server, timeout_s=240)
            url = f"http://127.0.0.1:{port}"
            wait_until_answers(url + "/health", server, timeout_s=240)
        except RuntimeError as exc:
            pytest.fail(f"mlflow server did not start ({exc}):\n" + log_file.read_text()[-2000:])
        yield url
    finally:
        stop_process(server, grace_s=10)
        log.close()


def test_a_resumed_run_continues_the_same_mlflow_run_over_http(mlflow_server: str, tmp_path: Path) -> None:
    first = RunTracker.open(mlflow_server, "http-test", "spot", "", {"resumes": "0"})
    first.log_params({"epochs": 3, "imgsz": 320})
    first.log_metrics({"metrics/mAP50(B)": 0.25, "train/box_loss": 1.5}, step=1)
    first.finish("KILLED")  # as on SIGTERM

    again = RunTracker.open(mlflow_server, "http-test", "spot", first.run_id, {"resumes": "1"})
    assert again.run_id == first.run_id
    again.log_metrics({"metrics/mAP50(B)": 0.5}, step=2)
    card = tmp_path / "model.json"
    card.write_text("{}")
    again.log_artifacts([(card, "model")])
    again.finish()

    run = again.client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumes"] == "1"
    assert run.data.params == {"epochs": "3", "imgsz": "320"}
    history = again.client.get_metric_history(first.run_id, metric_key("metrics/mAP50(B)"))
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 0.25), (2, 0.5)]
    assert [a.path for a in again.client.list_artifacts(first.run_id, "model")] == ["model/model.json"]
    assert len(again.client.search_runs([run.info.experiment_id])) == 1


def test_unknown_tracking_uris_are_user_errors() -> None:
    with pytest.raises(UserInputError, match="'tracking_uri'"):
        RunTracker.open("ftp://example", "x", "", "", {})
    with pytest.raises(UserInputError, match="not a SageMaker MLflow ARN"):
        RunTracker.open("arn:aws:s3:::bucket", "x", "", "", {})


def test_params_and_tags_sent_to_mlflow_carry_no_credentials(tmp_path: Path) -> None:
    from yolo_core.hyperparams import Hyperparameters

    secret = "s3cr3t-t0ken"
    uri = f"https://alice:{secret}@mlflow.example.com/?token={secret}"
    tracker = RunTracker.open(f"sqlite:///{tmp_path / 'mlflow.db'}", "redact", "", "", {"origin": uri})
    tracker.log_params({**Hyperparameters(tracking_uri=uri).to_dict(), "weights": uri})  # as the trainer does
    data = tracker.client.get_run(tracker.run_id).data
    assert data.params["tracking_uri"] == "https://***@mlflow.example.com/?token=***"
    assert secret not in str(data.params) and secret not in str(data.tags)
    assert data.params["epochs"] == "100"
