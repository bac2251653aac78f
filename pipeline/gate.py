"""The quality gate as a pure function over the DAG, the evaluation and the run's parameters.

SageMaker evaluates the ConditionSteps itself from the PropertyFile; locally `LocalRunner` asks
`evaluate_gate` and does only the I/O around it (records, tracking tags, output). Testable with
a dict for `evaluation.json`: no MLflow, no S3, no processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline import dag as d
from yolo_core.errors import UserInputError


def json_path_get(document: Any, path: str) -> Any:
    """The subset of JsonPath the gate uses: dotted keys (`metrics.map50_95.value`)."""
    for part in path.split("."):
        if not isinstance(document, dict) or part not in document:
            raise UserInputError(f"evaluation.json: no value at {path!r} (missing {part!r})")
        document = document[part]
    return document


def param_value(value: d.Value, params: dict[str, Any]) -> Any:
    """A declared value with parameters resolved; the runner resolves step outputs itself."""
    if isinstance(value, d.ParamRef):
        return params[value.name]
    if isinstance(value, d.MetricRef):
        raise ValueError("metric values are only known inside the gate")
    if isinstance(value, d.StepPropertyRef | d.ImageRef | d.OutputRef):
        raise ValueError("step properties, images and outputs are the runner's to resolve")
    return value


def as_string(value: Any) -> str:
    """A value as SageMaker passes it on: booleans lower-case, like its JSON."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class GateCheck:
    step: str
    passed: bool
    verdict: str  # e.g. "metrics.map50_95.value = 0.4100 >= MinMap50To95 = 0.3"


@dataclass(frozen=True)
class GateResult:
    checks: tuple[GateCheck, ...]  # in the order they ran; the first failure ends the walk
    end: d.Step  # the Register step, or the Fail step reached
    failure: str  # the Fail step's message, "" when the gate passed

    @property
    def passed(self) -> bool:
        return not isinstance(self.end, d.FailStep)


def fail_message(step: d.FailStep, evaluation: dict[str, Any], params: dict[str, Any]) -> str:
    parts = []
    for part in step.message:
        if isinstance(part, d.MetricRef):
            parts.append(as_string(json_path_get(evaluation, part.json_path)))
        else:
            parts.append(as_string(param_value(part, params)))
    return "".join(parts)


def evaluate_gate(dag: d.Dag, evaluation: dict[str, Any], params: dict[str, Any]) -> GateResult:
    """Walk the ConditionSteps from the first, as SageMaker does: each metric >= its threshold."""
    checks = []
    step: d.Step = dag.step(dag.first_gate)
    while isinstance(step, d.ConditionStep):
        left = float(json_path_get(evaluation, step.left.json_path))
        right = float(params[step.right.name])
        passed = left >= right
        relation = ">=" if passed else "<"
        verdict = f"{step.left.json_path} = {left:.4f} {relation} {step.right.name} = {right:g}"
        checks.append(GateCheck(step.name, passed, verdict))
        step = dag.step(step.on_pass if passed else step.on_fail)
    failure = fail_message(step, evaluation, params) if isinstance(step, d.FailStep) else ""
    return GateResult(tuple(checks), step, failure)
