"""What a job step is told, as a pure function of the DAG step and what the run knows so far.

The local runner does the I/O (it finds a parameter's folder or S3 prefix and fingerprints it);
this module decides the rest: where each input comes from, the resolved arguments or
hyperparameters, and the fingerprints the cache key is made of. The cache key, the MLflow params
and the /opt/ml tree all read the one `JobSpec`, so they cannot disagree about what ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline import dag as d
from pipeline.gate import as_string, param_value


@dataclass(frozen=True)
class RunValues:
    """What the DAG's value references resolve to at this point of a run."""

    params: Mapping[str, Any]
    image_uris: Mapping[str, str] = field(default_factory=dict)  # image -> URI
    outputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # step -> output -> location
    keys: Mapping[str, str] = field(default_factory=dict)  # step -> cache key
    properties: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # step -> property -> value


@dataclass(frozen=True)
class JobSpec:
    """A job step's inputs (name -> location), their fingerprints, and what it is told."""

    inputs: dict[str, str]
    fingerprints: dict[str, str]
    files: tuple[str, ...] = ()  # inputs that are one file of an output, staged as that file
    arguments: tuple[str, ...] = ()
    hyperparameters: dict[str, str] = field(default_factory=dict)

    def tracking_params(self) -> dict[str, str]:
        """The spec as flat MLflow params (input.NAME, hp.NAME, arguments)."""
        params = {f"input.{name}": location for name, location in self.inputs.items()}
        params.update({f"hp.{name}": value for name, value in self.hyperparameters.items()})
        if self.arguments:
            params["arguments"] = " ".join(self.arguments)
        return params


def job_inputs(step: d.Step) -> tuple[d.Input, ...]:
    """What a job step reads (a processing step's inputs, a training step's channels)."""
    if isinstance(step, d.ProcessingStep):
        return step.inputs
    return step.channels if isinstance(step, d.TrainingStep) else ()


def resolve_value(value: d.Value, values: RunValues) -> str:
    """A DAG value (parameter, literal, image, another step's output or property) as a string."""
    if isinstance(value, d.StepPropertyRef):
        return values.properties[value.step][value.property]
    if isinstance(value, d.ImageRef):
        return values.image_uris[value.image]
    if isinstance(value, d.OutputRef):
        return values.outputs[value.step][value.output]
    return as_string(param_value(value, values.params))


def locate_output_input(item: d.Input, values: RunValues) -> tuple[str, str]:
    """(location, fingerprint) of an input that is an earlier step's output (or one file of it):
    the fingerprint is that step's cache key, so it changes exactly when the output can."""
    assert isinstance(item.source, d.OutputRef), item
    location = values.outputs[item.source.step][item.source.output]
    fingerprint = f"{values.keys[item.source.step]}/{item.source.output}"
    if item.path:
        return f"{location}/{item.path}", f"{fingerprint}/{item.path}"
    return location, fingerprint


def job_spec(
    step: d.ProcessingStep | d.TrainingStep,
    located: Mapping[str, tuple[str, str]],
    values: RunValues,
    hyperparameter_overrides: Mapping[str, str] | None = None,
    extra_arguments: Sequence[str] = (),
) -> JobSpec:
    """`located`: input name -> (location, fingerprint), found by the caller."""
    items = job_inputs(step)
    inputs = {item.name: located[item.name][0] for item in items}
    fingerprints = {item.name: located[item.name][1] for item in items}
    files = tuple(item.name for item in items if item.path)
    if isinstance(step, d.ProcessingStep):
        arguments = tuple(resolve_value(v, values) for v in step.arguments) + tuple(extra_arguments)
        return JobSpec(inputs, fingerprints, files, arguments=arguments)
    declared = {name: as_string(param_value(v, values.params)) for name, v in step.hyperparameters}
    hyperparameters = {**declared, **(hyperparameter_overrides or {})}
    return JobSpec(inputs, fingerprints, files, hyperparameters=hyperparameters)
