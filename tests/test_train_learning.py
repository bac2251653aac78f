"""Training learns, and the checkpoint folder of a real run behaves on restart.

`trained_model_dir` (tests/fixtures_data.py) is one real training run on the synthetic drone set,
on the CPU, under the network guard; the tests here check what it learned and reuse its
checkpoint folder (copied) to restart it.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from tests.fixtures_data import (
    FINE_TUNING_HYPERPARAMETERS,
    FROM_WEIGHTS_MAP50_THRESHOLD,
    LEARNING_HYPERPARAMETERS,
    MAP50_THRESHOLD,
)
from yolo_core.hyperparams import Hyperparameters
from yolo_core.model_card import ModelCard
from yolo_core.train.data_source import read_data_yaml
from yolo_core.train.trainer import TrainingJob, train

pytestmark = pytest.mark.slow


def _copy_run(trained_model_dir: Path, tmp_path: Path) -> Path:
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(trained_model_dir.parent / "checkpoints", checkpoints)
    return checkpoints


def _job(dataset: Path, checkpoints: Path, tmp_path: Path) -> TrainingJob:
    return TrainingJob(
        data_yaml=dataset / "data.yaml",
        checkpoint_dir=checkpoints,
        model_dir=tmp_path / "model",
        hyperparameters=Hyperparameters(**LEARNING_HYPERPARAMETERS),
        handle_signals=False,
    )


def test_training_learns_the_synthetic_drone_set(trained_model_dir: Path, synthetic_dataset: Path) -> None:
    card = ModelCard.load(trained_model_dir)
    assert card.metrics["mAP50"] > MAP50_THRESHOLD, card.metrics
    assert card.extra["epochs_completed"] == LEARNING_HYPERPARAMETERS["epochs"]
    assert card.class_names == read_data_yaml(synthetic_dataset / "data.yaml").class_names

    from ultralytics import YOLO

    image = sorted((synthetic_dataset / "images" / "val").glob("*.jpg"))[0]
    result = YOLO(str(trained_model_dir / "best.pt")).predict(str(image), imgsz=card.imgsz, verbose=False)[0]
    assert len(result.boxes) > 0


def test_restarting_a_finished_run_does_not_train_again(
    trained_model_dir: Path, synthetic_dataset: Path, tmp_path: Path
) -> None:
    checkpoints = _copy_run(trained_model_dir, tmp_path)
    results = (checkpoints / "run" / "results.csv").read_text()
    outcome = train(_job(synthetic_dataset, checkpoints, tmp_path))
    assert not outcome.trained
    assert outcome.card.metrics == ModelCard.load(trained_model_dir).metrics
    assert (tmp_path / "model" / "best.pt").read_bytes() == (trained_model_dir / "best.pt").read_bytes()
    assert (checkpoints / "run" / "results.csv").read_text() == results


def test_corrupt_newest_checkpoint_falls_back_and_the_run_still_finishes(
    trained_model_dir: Path, synthetic_dataset: Path, tmp_path: Path
) -> None:
    """As if the host died after the last epoch's save but before the export, with the newest
    checkpoint torn on its way to S3: the previous one is used and the last epoch is redone."""
    checkpoints = _copy_run(trained_model_dir, tmp_path)
    state_file = checkpoints / "run_state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "status": "running"}))
    epochs = LEARNING_HYPERPARAMETERS["epochs"]
    weights = checkpoints / "run" / "weights"
    newest = weights / f"epoch-{epochs:04d}.pt"
    newest.write_bytes(newest.read_bytes()[:4096])

    outcome = train(_job(synthetic_dataset, checkpoints, tmp_path))
    assert outcome.trained and outcome.resumed_from == weights / f"epoch-{epochs - 1:04d}.pt"
    assert outcome.epochs_completed == epochs
    assert (weights / f"epoch-{epochs:04d}.pt.corrupt").exists()
    assert outcome.card.extra["resumes"] == 1 and outcome.mlflow_run_id == state["mlflow_run_id"]
    with (checkpoints / "run" / "results.csv").open() as handle:
        assert int(float(list(csv.DictReader(handle))[-1]["epoch"])) == epochs


def test_training_starts_from_user_weights(
    trained_model_dir: Path, synthetic_dataset: Path, tmp_path: Path
) -> None:
    """One epoch from the trained weights keeps what they learned (from scratch it scores ~0)."""
    settings = {**LEARNING_HYPERPARAMETERS, **FINE_TUNING_HYPERPARAMETERS, "epochs": 1}
    settings["tracking_uri"] = "none"
    job = TrainingJob(
        data_yaml=synthetic_dataset / "data.yaml",
        checkpoint_dir=tmp_path / "checkpoints",
        model_dir=tmp_path / "model",
        hyperparameters=Hyperparameters(**settings),
        weights=trained_model_dir / "best.pt",
        handle_signals=False,
    )
    outcome = train(job)
    assert outcome.card.metrics["mAP50"] > FROM_WEIGHTS_MAP50_THRESHOLD, outcome.card.metrics
    assert outcome.mlflow_run_id == ""  # tracking "none"
