"""The local hyperparameter search: a few short trials on this machine, tracked in MLflow.

Optuna's TPE sampler (seeded) picks each trial's values from `space.SEARCH_SPACE`; each trial is
one `yolo_core.train.trainer.train` call, whose MLflow run is created as a child of the search's
parent run. A per-epoch callback reports the validation mAP50-95 to Optuna's median pruner and
stops a trial that trails the others at the same epoch (Ultralytics then validates its best
weights as at any early stop). When the trials are done every child run is tagged with its rank
and state, and the parent gets the comparison table and the best configuration as artifacts.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.tracking import PARENT_TAG, PipelineTracking
from pipeline.tuning import ranking
from pipeline.tuning.ranking import COMPLETE, FAILED, PRUNED, TrialRecord
from pipeline.tuning.space import SEARCH_SPACE, SearchSpace
from yolo_core.errors import UserInputError
from yolo_core.hyperparams import Hyperparameters

LOG = logging.getLogger(__name__)
OBJECTIVE = "mAP50-95"
EPOCH_METRIC = "metrics/mAP50-95(B)"  # Ultralytics' key for it, in the trainer's metrics
# What every trial needs unless told otherwise: per-epoch validation (the pruner's input), no plots.
TRIAL_DEFAULTS = {"val": True, "plots": False}
BEST_FILE, TABLE_FILE, CSV_FILE = "best_hyperparameters.json", "trials.txt", "trials.csv"


@dataclass(frozen=True)
class SearchSettings:
    data_yaml: Path
    work_dir: Path  # trials' checkpoints and models, the search's outputs
    tracking_uri: str
    experiment: str = "drone-yolo-tuning"
    trials: int = 8
    epochs: int = 3
    fixed: Mapping[str, Any] = field(default_factory=dict)  # hyperparameters every trial gets
    space: SearchSpace = SEARCH_SPACE
    seed: int = 0
    weights: Path | None = None  # starting weights of every trial (fine-tuning); none: from scratch
    pruner_startup_trials: int = 2  # trials that run to the end before any is pruned
    pruner_warmup_epochs: int = 1  # epochs of each trial that are never pruned
    name: str = "local-search"


@dataclass(frozen=True)
class SearchResult:
    parent_run_id: str
    ranked: list[TrialRecord]
    best: TrialRecord
    best_hyperparameters: dict[str, str]
    table: str
    out_dir: Path


class PruningCallback:
    """Ultralytics `on_fit_epoch_end`: report the epoch's mAP50-95; stop the trial if Optuna prunes.

    Setting `trainer.stop` ends training after this epoch the way early stopping does, so the run
    still validates and exports its best weights and its MLflow run finishes cleanly.
    """

    def __init__(self, trial: Any, metric: str = EPOCH_METRIC) -> None:
        self.trial = trial
        self.metric = metric
        self.reported: dict[int, float] = {}
        self.pruned_at: int | None = None

    def on_fit_epoch_end(self, trainer: Any) -> None:
        epoch = trainer.epoch + 1
        # The final validation of the best weights calls this again (at epochs + 1, or after a stop).
        if self.pruned_at is not None or epoch > trainer.epochs or epoch in self.reported:
            return
        value = (trainer.metrics or {}).get(self.metric)
        if value is None or math.isnan(float(value)):
            return
        self.reported[epoch] = float(value)
        self.trial.report(float(value), epoch)
        if epoch < trainer.epochs and self.trial.should_prune():
            self.pruned_at = epoch
            trainer.stop = True
            LOG.info("trial %d pruned after epoch %d (mAP50-95 %.5f)", self.trial.number, epoch, value)

    @property
    def last_reported(self) -> float | None:
        return self.reported[max(self.reported)] if self.reported else None


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """One value per dimension, from Optuna's sampler."""
    values: dict[str, Any] = {}
    for dim in space.dimensions:
        if dim.kind == "categorical":
            values[dim.name] = trial.suggest_categorical(dim.name, list(dim.choices))
        elif dim.kind == "integer":
            values[dim.name] = trial.suggest_int(
                dim.name, int(dim.low), int(dim.high), log=dim.scale == "log"
            )
        else:
            values[dim.name] = trial.suggest_float(dim.name, dim.low, dim.high, log=dim.scale == "log")
    return values


def _as_strings(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


class _Search:
    """The trials of one search and their MLflow runs."""

    def __init__(self, settings: SearchSettings, tracking: PipelineTracking, parent_run_id: str) -> None:
        self.settings = settings
        self.tracking = tracking
        self.parent_run_id = parent_run_id
        self.records: dict[int, TrialRecord] = {}

    def hyperparameters(self, number: int, params: Mapping[str, Any]) -> Hyperparameters:
        s = self.settings
        return Hyperparameters.from_mapping(
            {
                **TRIAL_DEFAULTS,
                **s.fixed,
                **params,
                "epochs": s.epochs,
                "tracking_uri": s.tracking_uri,
                "experiment_name": s.experiment,
                "run_name": f"{s.name}-trial-{number}",
            },
            source=f"trial {number}",
        )

    def objective(self, trial: Any) -> float:
        import optuna

        from yolo_core.train.trainer import TrainingJob, train

        params = suggest(trial, self.settings.space)
        folder = self.settings.work_dir / "trials" / f"trial-{trial.number:03d}"
        pruning = PruningCallback(trial)
        job = TrainingJob(
            data_yaml=self.settings.data_yaml,
            checkpoint_dir=folder / "checkpoints",
            model_dir=folder / "model",
            hyperparameters=self.hyperparameters(trial.number, params),
            weights=self.settings.weights,
            tags={
                PARENT_TAG: self.parent_run_id,
                "tuning.search": self.settings.name,
                "tuning.trial": trial.number,
            },
            work_dir=folder,
            handle_signals=False,
            callbacks={"on_fit_epoch_end": [pruning.on_fit_epoch_end]},
        )
        record = TrialRecord(trial.number, FAILED, None, None, 0, params)
        self.records[trial.number] = record
        outcome = train(job)
        value = float(outcome.card.metrics.get(OBJECTIVE, math.nan))
        state = PRUNED if pruning.pruned_at is not None else COMPLETE
        self.records[trial.number] = TrialRecord(
            trial.number,
            state,
            value if state == COMPLETE else None,
            pruning.last_reported,
            outcome.epochs_completed,
            params,
            outcome.mlflow_run_id,
        )
        shown = f"{value:.5f}" if state == COMPLETE else f"(pruned at epoch {pruning.pruned_at})"
        print(f"trial {trial.number}: {state} {OBJECTIVE} {shown} {_as_strings(params)}", flush=True)
        if state == PRUNED:
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
        return value

    def tag_children(self, ranked: list[TrialRecord]) -> None:
        for rank, record in enumerate(ranked, start=1):
            if not record.run_id:
                continue
            self.tracking.set_tags(record.run_id, {"tuning.rank": rank, "tuning.state": record.state})
            if record.score is not None:
                self.tracking.log_metrics(record.run_id, {"tuning.objective": record.score})


def _study(settings: SearchSettings) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is printed instead
    sampler = optuna.samplers.TPESampler(
        seed=settings.seed, n_startup_trials=max(1, min(10, settings.trials // 2))
    )
    # Steps are epochs counted from 1; Optuna prunes from step n_warmup_steps on.
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=settings.pruner_startup_trials, n_warmup_steps=settings.pruner_warmup_epochs + 1
    )
    return optuna.create_study(study_name=settings.name, direction="maximize", sampler=sampler, pruner=pruner)


def _search_params(settings: SearchSettings) -> dict[str, Any]:
    return {
        "space": settings.space.to_json(),
        "trials": settings.trials,
        "epochs_per_trial": settings.epochs,
        "fixed": json.dumps(_as_strings(settings.fixed), sort_keys=True),
        "sampler": f"TPESampler(seed={settings.seed})",
        "pruner": f"MedianPruner(n_startup_trials={settings.pruner_startup_trials}, "
        f"never before epoch {settings.pruner_warmup_epochs + 1})",
        "weights": str(settings.weights or ""),
        "objective": f"{OBJECTIVE} (maximize)",
    }


def write_outputs(out_dir: Path, ranked: list[TrialRecord], names: list[str]) -> tuple[dict[str, str], str]:
    """trials.txt, trials.csv and best_hyperparameters.json (the top row's tuned values)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    best = _as_strings(ranking.best_trial(ranked).params)
    table = ranking.table_text(ranked, names, OBJECTIVE)
    (out_dir / TABLE_FILE).write_text(table + "\n")
    (out_dir / CSV_FILE).write_text(ranking.table_csv(ranked, names, OBJECTIVE))
    (out_dir / BEST_FILE).write_text(json.dumps(best, indent=2, sort_keys=True) + "\n")
    return best, table


def run_search(settings: SearchSettings) -> SearchResult:
    """Run the trials; rank them; tag their runs; write and log the table and the best config."""
    if settings.trials < 1 or settings.epochs < 1:
        raise ValueError("a search needs at least one trial of at least one epoch")
    if (settings.work_dir / "trials").exists():  # a finished trial there would only be re-exported
        raise UserInputError(f"{settings.work_dir}: holds an earlier search's trials; give another folder")
    settings.space.check_fixed({**TRIAL_DEFAULTS, **settings.fixed})
    tracking = PipelineTracking(
        settings.tracking_uri, settings.experiment, settings.work_dir / "mlflow-artifacts"
    )
    parent = tracking.start(
        settings.name, _search_params(settings), {"tuning": "local", "objective": OBJECTIVE}
    )
    search = _Search(settings, tracking, parent)
    try:
        _study(settings).optimize(search.objective, n_trials=settings.trials)
        ranked = ranking.rank_trials(list(search.records.values()))
        search.tag_children(ranked)
        out_dir = settings.work_dir / "results"
        best, table = write_outputs(out_dir, ranked, list(settings.space.names))
    except BaseException:
        tracking.finish(parent, "FAILED")
        raise
    winner = ranked[0]
    tracking.set_tags(parent, {"tuning.best_trial": winner.number, "tuning.best_run_id": winner.run_id})
    tracking.log_metrics(parent, {f"best/{OBJECTIVE}": winner.value or 0.0})
    tracking.log_params(parent, {f"best.{k}": v for k, v in best.items()})
    tracking.log_artifacts(parent, out_dir, "search")
    tracking.finish(parent)
    return SearchResult(parent, ranked, winner, best, table, out_dir)
