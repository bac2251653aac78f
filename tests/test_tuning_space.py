"""The search space is checked against the hyperparameters; trials are ranked as the table shows."""

from __future__ import annotations

import csv
import io
import math

import pytest

from pipeline.tuning.ranking import (
    COMPLETE,
    FAILED,
    PRUNED,
    TrialRecord,
    best_trial,
    rank_trials,
    table_csv,
    table_rows,
)
from pipeline.tuning.space import SEARCH_SPACE, SearchSpace, categorical, continuous, integer
from yolo_core.errors import UserInputError
from yolo_core.hyperparams import Hyperparameters


def test_the_declared_space_names_hyperparameters_and_fits_their_bounds() -> None:
    assert set(SEARCH_SPACE.names) <= set(Hyperparameters.field_names())
    for dimension in SEARCH_SPACE.dimensions:
        for value in dimension.values_to_check():
            Hyperparameters.from_mapping({dimension.name: value})


@pytest.mark.parametrize(
    ("dimension", "message"),
    [
        (continuous("learning_rate", 0.001, 0.1), "is not a hyperparameter"),
        (continuous("lr0", 0.001, 2.0), "above the maximum"),
        (continuous("lr0", 0.0, 0.1, scale="log"), "log scale needs low > 0"),
        (continuous("lr0", 0.1, 0.01), "must be below high"),
        (integer("lr0", 1, 3), "a 'integer' dimension cannot set it"),
        (integer("imgsz", 300, 340), "not a multiple of 32"),
        (categorical("optimizer", "SGD", "Lion"), "'Lion' is refused by training"),
        (categorical("optimizer", "SGD"), "at least two distinct choices"),
        (integer("epochs", 1, 10), "a setting of the run"),
        (categorical("tracking_uri", "none", "http://x"), "a setting of the run"),
    ],
)
def test_a_dimension_training_would_refuse_is_an_error(dimension, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        SearchSpace((dimension,))


def test_a_name_declared_twice_is_an_error() -> None:
    with pytest.raises(UserInputError, match="more than once"):
        SearchSpace((continuous("lr0", 0.001, 0.01), continuous("lr0", 0.01, 0.1)))


def test_fixed_values_must_not_clash_with_the_space() -> None:
    with pytest.raises(UserInputError, match="both fixed and tuned"):
        SEARCH_SPACE.check_fixed({"lr0": "0.01"})
    lr_only = SearchSpace((continuous("lr0", 0.001, 0.01),))
    with pytest.raises(UserInputError, match="optimizer 'auto' chooses its own lr0"):
        lr_only.check_fixed({})
    assert lr_only.check_fixed({"optimizer": "SGD"}).optimizer == "SGD"
    with pytest.raises(UserInputError, match="unknown hyperparameter"):
        SEARCH_SPACE.check_fixed({"learning_rate": "1"})


def _trial(number: int, state: str, value: float | None, last: float | None = None) -> TrialRecord:
    return TrialRecord(number, state, value, last, 3, {"lr0": 0.001 * (number + 1)}, f"run{number}")


def test_finished_trials_rank_first_by_objective_then_pruned_then_failed() -> None:
    trials = [
        _trial(0, COMPLETE, 0.20),
        _trial(1, PRUNED, None, last=0.90),  # a high early value does not beat a finished trial
        _trial(2, COMPLETE, 0.35),
        _trial(3, FAILED, None),
        _trial(4, COMPLETE, 0.20),  # ties keep trial order, as Optuna's best_trial
        _trial(5, PRUNED, None, last=0.10),
        _trial(6, COMPLETE, math.nan),
    ]
    ranked = rank_trials(trials)
    assert [t.number for t in ranked] == [2, 0, 4, 6, 1, 5, 3]
    assert best_trial(ranked).number == 2


def test_the_table_top_row_is_the_best_trial() -> None:
    ranked = rank_trials([_trial(0, COMPLETE, 0.1), _trial(1, COMPLETE, 0.3), _trial(2, PRUNED, None, 0.2)])
    header, *rows = table_rows(ranked, ["lr0"], "mAP50-95")
    assert header[:4] == ["rank", "trial", "state", "mAP50-95"] and rows[0][:3] == ["1", "1", COMPLETE]
    assert rows[-1][2] == PRUNED and rows[-1][3] == "0.20000"
    read_back = list(csv.DictReader(io.StringIO(table_csv(ranked, ["lr0"], "mAP50-95"))))
    assert read_back[0]["trial"] == "1" and float(read_back[0]["lr0"]) == ranked[0].params["lr0"]


def test_no_finished_trial_means_no_recommendation() -> None:
    with pytest.raises(ValueError, match="no trial finished"):
        best_trial(rank_trials([_trial(0, PRUNED, None, 0.5), _trial(1, FAILED, None)]))
