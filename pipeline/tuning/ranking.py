"""Which trial of a search is best, and the comparison table that shows it: pure functions.

Finished trials come first, by objective (higher is better), then pruned ones by the last value
they reported, then failed ones; ties keep trial order, as Optuna's `best_trial` does. The best
configuration written out is the first row of this ranking, so it is the one the table shows.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.text_table import format_table

COMPLETE, PRUNED, FAILED = "COMPLETE", "PRUNED", "FAIL"
_STATE_ORDER = {COMPLETE: 0, PRUNED: 1, FAILED: 2}


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the search saw it; `params` are the tuned values only."""

    number: int
    state: str
    value: float | None  # the objective of a finished trial
    last_reported: float | None  # the last per-epoch objective (all a pruned trial has)
    epochs: int
    params: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""

    @property
    def score(self) -> float | None:
        return self.value if self.state == COMPLETE else self.last_reported


def _sort_key(trial: TrialRecord) -> tuple[int, float, int]:
    score = trial.score
    missing = score is None or math.isnan(score)
    return (_STATE_ORDER.get(trial.state, len(_STATE_ORDER)), math.inf if missing else -score, trial.number)


def rank_trials(trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    return sorted(trials, key=_sort_key)


def best_trial(ranked: Sequence[TrialRecord]) -> TrialRecord:
    """The top row; it must have finished (a pruned trial's model saw only part of the budget)."""
    if not ranked or ranked[0].state != COMPLETE:
        raise ValueError("no trial finished: nothing to recommend (more trials, or a later pruning start)")
    return ranked[0]


def _value(value: float | None) -> str:
    return "" if value is None else f"{value:.5f}"


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _header(names: Sequence[str], objective: str) -> list[str]:
    return ["rank", "trial", "state", objective, "epochs", *names, "mlflow_run"]


def table_rows(ranked: Sequence[TrialRecord], names: Sequence[str], objective: str) -> list[list[str]]:
    """Header and rows: rank, trial, state, objective (last reported for pruned), epochs, params, run."""
    rows = [
        [
            str(rank),
            str(trial.number),
            trial.state,
            _value(trial.score),
            str(trial.epochs),
            *(_param(trial.params.get(name, "")) for name in names),
            trial.run_id,
        ]
        for rank, trial in enumerate(ranked, start=1)
    ]
    return [_header(names, objective), *rows]


def table_text(ranked: Sequence[TrialRecord], names: Sequence[str], objective: str) -> str:
    header, *rows = table_rows(ranked, names, objective)
    return format_table(header, rows)


def table_csv(ranked: Sequence[TrialRecord], names: Sequence[str], objective: str) -> str:
    """The same table with full-precision values, for reading back (the test, a spreadsheet)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_header(names, objective))
    for rank, trial in enumerate(ranked, start=1):
        score = "" if trial.score is None else repr(trial.score)
        params = [trial.params.get(name, "") for name in names]
        writer.writerow([rank, trial.number, trial.state, score, trial.epochs, *params, trial.run_id])
    return out.getvalue()
