"""The quality gate as a pure function (`pipeline.gate.evaluate_gate`): a dict for
evaluation.json, the dev config's parameters, no MLflow, S3 or processes."""

from __future__ import annotations

import pytest

from pipeline import dag as d
from pipeline.config import load_config
from pipeline.gate import evaluate_gate
from yolo_core.errors import UserInputError

CONFIG = load_config("dev")
DAG = d.build_dag(CONFIG)
THRESHOLDS = {"MinMap50To95": 0.3, "MinPrecision": 0.5, "MinRecall": 0.4}
PARAMS = {**DAG.defaults(CONFIG), **THRESHOLDS}


def evaluation(map50_95: float, precision: float, recall: float) -> dict:
    figures = {"map50_95": map50_95, "precision": precision, "recall": recall}
    return {"metrics": {name: {"value": value} for name, value in figures.items()}}


def test_a_model_above_every_threshold_reaches_register() -> None:
    gate = evaluate_gate(DAG, evaluation(0.41, 0.62, 0.55), PARAMS)
    assert gate.passed and gate.end.name == d.REGISTER and gate.failure == ""
    assert [(c.step, c.passed) for c in gate.checks] == [
        ("CheckMap50To95", True),
        ("CheckPrecision", True),
        ("CheckRecall", True),
    ]
    assert gate.checks[0].verdict == "metrics.map50_95.value = 0.4100 >= MinMap50To95 = 0.3"


def test_the_first_metric_short_of_its_threshold_ends_the_walk_and_names_itself() -> None:
    gate = evaluate_gate(DAG, evaluation(0.41, 0.45, 0.1), PARAMS)
    assert not gate.passed and gate.end.name == "PrecisionTooLow"
    assert [(c.step, c.passed) for c in gate.checks] == [("CheckMap50To95", True), ("CheckPrecision", False)]
    assert gate.checks[-1].verdict == "metrics.precision.value = 0.4500 < MinPrecision = 0.5"
    assert gate.failure == "precision 0.45 is below the minimum 0.5 (MinPrecision)"


def test_a_threshold_equal_to_the_metric_passes_as_in_sagemaker() -> None:
    """SageMaker's ConditionGreaterThanOrEqualTo: equality passes."""
    assert evaluate_gate(DAG, evaluation(0.3, 0.5, 0.4), PARAMS).passed


def test_a_missing_metric_is_bad_input_naming_its_path() -> None:
    document = evaluation(0.41, 0.62, 0.55)
    del document["metrics"]["recall"]
    with pytest.raises(UserInputError, match=r"no value at 'metrics.recall.value'"):
        evaluate_gate(DAG, document, PARAMS)
