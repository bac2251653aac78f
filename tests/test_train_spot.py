"""Managed spot training, end to end through the real `train` command in subprocesses.

A run is stopped with SIGTERM in the middle of an epoch, its checkpoint folder is copied to a
new "host" (another base directory, as SageMaker restores /opt/ml/checkpoints from S3 on a new
instance; the old host is then deleted), and the command started there finishes the run: the
right number of epochs, one MLflow run, a model in the new /opt/ml/model. A third start finds the
run finished and only exports the model again.
"""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from entrypoints.contract import TrainingPaths, write_training_config
from tests.train_support import kill_tree, start_train, wait_until
from yolo_core.model_card import ModelCard

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 3
HYPERPARAMETERS = {  # strings, as SageMaker writes them
    "epochs": str(EPOCHS),
    "imgsz": "160",
    "batch": "2",  # many small batches: a long epoch to land the signal in
    "nbs": "4",
    "warmup_epochs": "1",
    "plots": "false",
    "experiment_name": "spot-test",
}

pytestmark = pytest.mark.slow


def _host(base: Path, dataset: Path) -> Path:
    """A fresh /opt/ml with the contract's config files and the dataset channel."""
    training = TrainingPaths(base)
    write_training_config(training, HYPERPARAMETERS, ["dataset"])
    shutil.copytree(dataset, training.channel("dataset"))
    return base


def _run_to_end(base: Path, env: dict[str, str], log: Path) -> str:
    process = start_train(base, env, log)
    try:
        code = process.wait(timeout=600)
    except subprocess.TimeoutExpired:
        kill_tree(process)
        raise
    output = log.read_text()
    assert code == 0, output[-3000:]
    return output


def test_sigterm_mid_epoch_then_resume_on_a_new_host(
    synthetic_dataset: Path, tmp_path: Path, guarded_subprocess_env: dict[str, str]
) -> None:
    host_a = _host(tmp_path / "host-a" / "opt" / "ml", synthetic_dataset)
    weights_a = host_a / "checkpoints" / "run" / "weights"
    log_a = tmp_path / "first.log"
    process = start_train(host_a, guarded_subprocess_env, log_a)
    epoch_one = weights_a / "epoch-0001.pt"
    wait_until(epoch_one.exists, epoch_one.name, process, log_a, timeout_s=480)
    marker = "epoch 2: first batch done"  # into epoch 2's batches
    wait_until(lambda: marker in log_a.read_text(), repr(marker), process, log_a, timeout_s=480)
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=120)
    first_log = log_a.read_text()
    assert code == 128 + signal.SIGTERM, first_log[-3000:]
    failure = (host_a / "output" / "failure").read_text()
    assert failure.count("\n") == 1 and "interrupted by SIGTERM in epoch 2" in failure
    assert (weights_a / "epoch-0001.partial.pt").exists(), "the snapshot taken mid-epoch 2"
    assert not (host_a / "model" / "best.pt").exists()

    # A new spot host: the checkpoint folder restored elsewhere, the old host gone.
    host_b = _host(tmp_path / "host-b" / "opt" / "ml", synthetic_dataset)
    shutil.copytree(host_a / "checkpoints", host_b / "checkpoints", dirs_exist_ok=True)  # into the empty one
    shutil.rmtree(tmp_path / "host-a")
    second_log = _run_to_end(host_b, guarded_subprocess_env, tmp_path / "second.log")
    assert "train: trained; 3 epochs" in second_log
    assert "epoch=1 " not in second_log and "epoch=2 " in second_log and "epoch=3 " in second_log

    run_dir = host_b / "checkpoints" / "run"
    with (run_dir / "results.csv").open() as handle:
        assert [int(float(row["epoch"])) for row in csv.DictReader(handle)] == [1, 2, 3]
    card = ModelCard.load(host_b / "model")
    assert (host_b / "model" / "best.pt").stat().st_size > 1_000_000
    assert card.extra["epochs_completed"] == EPOCHS and card.extra["resumes"] == 1
    assert card.imgsz == 160 and card.class_names[0] == "pedestrian"
    assert card.dataset_hash == json.loads((synthetic_dataset / "dataset.json").read_text())["dataset_hash"]
    assert set(card.metrics) == {"precision", "recall", "mAP50", "mAP50-95"}
    _check_single_mlflow_run(host_b / "checkpoints" / "mlflow", card.extra["mlflow_run_id"])

    # Started again (say, a retry of a job that had finished): no training, same model out.
    shutil.rmtree(host_b / "model")
    third_log = _run_to_end(host_b, guarded_subprocess_env, tmp_path / "third.log")
    assert "exported (the run had already finished)" in third_log and "epoch=" not in third_log
    assert ModelCard.load(host_b / "model").metrics == card.metrics
    with (run_dir / "results.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == EPOCHS


def _check_single_mlflow_run(store: Path, run_id: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("spot-test")
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_id for run in runs] == [run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["resumes"] == "1" and run.data.tags["image_uri"] == "local/train:test"
    assert run.data.params["epochs"] == str(EPOCHS) and run.data.params["augment.flipud"] == "0.5"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "metrics/mAP50B"))
    assert steps[:EPOCHS] == [1, 2, 3]
    artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
    assert artifacts == {"model/best.pt", "model/model.json"}
    local = Path(run.info.artifact_uri.removeprefix("file://"))
    assert local.is_relative_to(store) and (local / "model" / "model.json").exists()
