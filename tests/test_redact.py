"""Credentials in a tracking URI are used to connect but never written down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.tracking import PipelineTracking, ui_command
from yolo_core.hyperparams import Hyperparameters
from yolo_core.model_card import MODEL_CARD_FILE, ModelCard
from yolo_core.redact import redact_text, redact_uri

SECRET = "s3cr3t-t0ken"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/x"
URI = f"https://alice:{SECRET}@mlflow.example.com:5000/path?token={SECRET}&experiment=7#top"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (URI, "https://***@mlflow.example.com:5000/path?token=***&experiment=7#top"),
        (f"https://{SECRET}@host/", "https://***@host/"),
        (f"https://bob:p@ss{SECRET}@host/x", "https://***@host/x"),  # an unescaped '@' in a password
        (f"postgresql://u:{SECRET}@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
        (f"http://host/api?password={SECRET};Api_Key={SECRET}", "http://host/api?password=***;Api_Key=***"),
        (f"http://host/?X-Amz-Signature={SECRET}&sig={SECRET}&q=1", "http://host/?X-Amz-Signature=***&sig=***&q=1"),
        ("sqlite:////tmp/run/mlflow.db", "sqlite:////tmp/run/mlflow.db"),
        (ARN, ARN),
        ("http://host:8080/?experiment=7", "http://host:8080/?experiment=7"),
        ("yolo11n", "yolo11n"),
        ("", ""),
    ],
)  # fmt: skip
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


def test_redact_text_finds_uris_inside_a_message() -> None:
    message = f"API request to {URI} failed (retry 3)"
    assert SECRET not in redact_text(message) and "mlflow.example.com:5000" in redact_text(message)


def test_the_model_card_records_the_uri_without_its_credentials(tmp_path: Path) -> None:
    hp = Hyperparameters(tracking_uri=URI)
    assert hp.tracking_uri == URI  # what the trainer connects with is untouched
    ModelCard(["car"], 320, hyperparameters=hp.to_dict()).save(tmp_path)
    text = (tmp_path / MODEL_CARD_FILE).read_text()
    assert SECRET not in text
    assert json.loads(text)["hyperparameters"]["tracking_uri"] == redact_uri(URI)
    assert ModelCard.load(tmp_path).hyperparameters["imgsz"] == 640


def test_pipeline_params_and_tags_are_redacted(tmp_path: Path) -> None:
    tracking = PipelineTracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "redact", tmp_path / "artifacts")
    parent = tracking.start("pipeline", {"hp.tracking_uri": URI, "epochs": 3}, {"source": URI})
    child = tracking.child("Train", {"tracking_uri": URI}, {})
    for run_id in (parent, child):
        data = tracking.client.get_run(run_id).data
        assert SECRET not in json.dumps([data.params, data.tags])
    assert tracking.client.get_run(parent).data.params["epochs"] == "3"
    assert SECRET not in ui_command(URI)


def test_run_state_keeps_the_uri_redacted_and_a_resume_connects_with_the_given_one(caplog) -> None:
    """run_state.json travels to S3 with the checkpoints: it holds the redacted URI, and resuming
    takes the live one from the job (no "changed hyperparameter" warning for it)."""
    from yolo_core.redact import redact_values
    from yolo_core.train.run_state import RunState
    from yolo_core.train.trainer import _recorded_hyperparameters

    given = Hyperparameters(tracking_uri=URI, epochs=3)
    state = RunState(hyperparameters=redact_values(given.to_dict()), augment={}, dataset_hash="d")
    assert SECRET not in json.dumps(state.hyperparameters)
    with caplog.at_level("WARNING"):
        resumed = _recorded_hyperparameters(state, given)
    assert resumed.tracking_uri == URI and resumed.epochs == 3
    assert "ignoring new values" not in caplog.text
