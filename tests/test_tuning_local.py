"""The local search: short trials, each a child MLflow run of the search's run, ranked by mAP50-95,
and the best configuration written in the forms `local` and `upsert --config` take.

The trials fine-tune `trained_model_dir`'s weights on 16 frames at 160 px for 3 epochs, so that
their objectives differ; the test checks the structure of what the search records, never how well
a trial did.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from pipeline.__main__ import main
from pipeline.config import load_config
from pipeline.dag import split_pairs
from pipeline.tracking import PARENT_TAG, default_tracking_uri
from pipeline.tuning.local_search import EPOCH_METRIC, PruningCallback
from pipeline.tuning.space import SEARCH_SPACE

TRIALS, EPOCHS = 5, 3


def _same(a: object, b: object) -> bool:
    """Values as the table, the JSON and MLflow write them (strings of the same number or word)."""
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except ValueError:
        return str(a) == str(b)


def _trainer(epoch: int, value: float, epochs: int = EPOCHS) -> SimpleNamespace:
    """The attributes of Ultralytics' trainer the callback reads (the real one runs in the slow test)."""
    return SimpleNamespace(epoch=epoch - 1, epochs=epochs, metrics={EPOCH_METRIC: value}, stop=False)


def test_a_trailing_trial_is_stopped_and_the_final_validation_is_not_reported() -> None:
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=2)
    study = optuna.create_study(direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(0))
    leader = PruningCallback(study.ask())
    for epoch, value in enumerate((0.5, 0.6, 0.7), start=1):
        leader.on_fit_epoch_end(_trainer(epoch, value))
    study.tell(leader.trial, 0.7)

    trailing = PruningCallback(study.ask())
    first = _trainer(1, 0.1)
    trailing.on_fit_epoch_end(first)  # epoch 1: within the warm-up, never pruned
    assert not first.stop and trailing.pruned_at is None
    second = _trainer(2, 0.1)
    trailing.on_fit_epoch_end(second)
    assert second.stop and trailing.pruned_at == 2
    trailing.on_fit_epoch_end(_trainer(3, 0.9))  # the best weights' validation after the stop
    assert trailing.reported == {1: 0.1, 2: 0.1} and trailing.last_reported == 0.1


def test_a_local_search_needs_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--local", "--env", "dev", "--work-dir", str(tmp_path)])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "error: tune --local: --dataset (missing) has no data.yaml (or --synthetic N)"
    )


@pytest.mark.slow
def test_a_local_search_ranks_its_trials_in_mlflow_and_writes_the_best(
    tiny_dataset: Path, trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from mlflow import MlflowClient

    work, out = tmp_path / "work", tmp_path / "search"
    args = ["tune", "--local", "--env", "dev", "--dataset", str(tiny_dataset), "--work-dir", str(work)]
    args += ["--out", str(out), "--trials", str(TRIALS), "--epochs", str(EPOCHS), "--imgsz", "160"]
    args += ["--weights", str(trained_model_dir / "best.pt"), "--hp", "batch=8", "--hp", "warmup_epochs=0"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    printed = capsys.readouterr().out
    assert exit_info.value.code == 0, printed

    results = out / "results"
    with (results / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == TRIALS and [int(r["rank"]) for r in rows] == list(range(1, TRIALS + 1))
    states = [r["state"] for r in rows]
    assert set(states) <= {"COMPLETE", "PRUNED"} and states[0] == "COMPLETE"
    assert states == sorted(states)  # every finished trial ranks above every pruned one
    finished = [float(r["mAP50-95"]) for r in rows if r["state"] == "COMPLETE"]
    assert finished == sorted(finished, reverse=True)
    for row in rows:
        assert int(row["epochs"]) == EPOCHS or row["state"] == "PRUNED"
        assert row["state"] == "COMPLETE" or int(row["epochs"]) < EPOCHS  # a pruned trial stopped early

    best = json.loads((results / "best_hyperparameters.json").read_text())
    assert set(best) == set(SEARCH_SPACE.names)
    assert all(_same(best[name], rows[0][name]) for name in best)  # the table's top row
    assert rows[0]["mlflow_run"] in printed and "best: trial " + rows[0]["trial"] in printed

    client = MlflowClient(default_tracking_uri(work))
    experiment = client.get_experiment_by_name("drone-yolo-dev-tuning")
    (parent,) = client.search_runs([experiment.experiment_id], "tags.tuning = 'local'")
    children = client.search_runs([experiment.experiment_id], f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'")
    assert len(children) == TRIALS and all(c.info.status == "FINISHED" for c in children)
    by_rank = sorted(children, key=lambda c: int(c.data.tags["tuning.rank"]))
    assert [c.info.run_id for c in by_rank] == [r["mlflow_run"] for r in rows]
    assert [c.data.tags["tuning.state"] for c in by_rank] == states
    top = by_rank[0]
    assert all(_same(top.data.params[name], value) for name, value in best.items())
    assert parent.data.tags["tuning.best_run_id"] == top.info.run_id
    assert parent.data.metrics["best/mAP50-95"] == pytest.approx(float(rows[0]["mAP50-95"]))
    logged = {item.path for item in client.list_artifacts(parent.info.run_id, "search")}
    assert {"search/trials.csv", "search/trials.txt", "search/best_hyperparameters.json"} <= logged

    tuned = load_config(None, results / "dev-tuned.yaml")
    assert {k: str(v) for k, v in tuned.training.hyperparameters.items()} == {
        **{k: str(v) for k, v in load_config("dev").training.hyperparameters.items()},
        **best,
    }
    local_args = (results / "local_args.txt").read_text().split()
    assert split_pairs(local_args[1::2], "--hp") == best and set(local_args[::2]) == {"--hp"}
