"""MLflow tracking against a real MLflow server on loopback (the HTTP case of the tracking URI)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from yolo_core.errors import UserInputError
from yolo_core.processes import stop_process
from yolo_core.train.tracking import RunTracker, metric_key

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path, guarded_subprocess_env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
               "--artifacts-destination", str(tmp_path / "server-artifacts")]  # fmt: skip
    server = subprocess.Popen(command, env=guarded_subprocess_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if requests.get(url + "/health", timeout=2).ok:
                    break
            except requests.RequestException:  # not listening yet, or still starting up
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start:\n" + (tmp_path / "server.log").read_text()[-2000:])
            time.sleep(0.5)
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
