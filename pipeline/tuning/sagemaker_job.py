"""The SageMaker hyperparameter tuning job: a `CreateHyperParameterTuningJob` request, made offline.

Bayesian search over `space.SEARCH_SPACE`, maximising mAP50-95. Each training job is the
pipeline's Train step (same image, role, instance, channel, fixed hyperparameters and provenance
environment), so a tuned configuration means the same thing in the pipeline. SageMaker reads the
metrics from the job's log: the train command prints one line per epoch, and a last one for the
best weights' validation (`yolo_core.train.tracking.TrackingCallbacks`), e.g.

    epoch=3 train/box_loss=1.2 ... metrics/mAP50B=0.41 metrics/mAP50-95B=0.23 ...
    final ... metrics/mAP50-95B=0.24 ...

The objective is the last value a job emits: the best weights'. `TrainingJobEarlyStoppingType`
"Auto" stops jobs whose per-epoch objective trails the others', as the local search's pruner does.

Spot-safe trials: every training job of a tuning job gets the same `CheckpointConfig` URI, and a
training job resumes (or re-exports) the run it finds there, so the definition also sets
`CHECKPOINTS_PER_JOB=1`: the train command then keeps its run in a folder named after its own
training job (`entrypoints.contract`), which a spot restart of that job finds and resumes and no
other trial reads.

The request is checked with botocore's own validation against the SageMaker service model
(`validate_request`), since moto 5.2.5 stores a tuning job without checking it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from entrypoints.contract import CHECKPOINTS_PER_JOB_ENV
from pipeline import dag as d
from pipeline.config import EnvConfig
from pipeline.sagemaker_render import CHECKPOINT_LOCAL_PATH
from pipeline.tuning.space import SEARCH_SPACE, Dimension, SearchSpace
from yolo_core.errors import UserInputError
from yolo_core.hyperparams import Hyperparameters

OBJECTIVE = "mAP50-95"
STRATEGY = "Bayesian"
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"  # what "%.5g" prints, nan/inf left out
_SCALING = {"linear": "Linear", "log": "Logarithmic"}
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")


def metric_definitions() -> list[dict[str, str]]:
    """One regex per model-card metric, over the `name=value` pairs of the per-epoch line."""
    from yolo_core.train.tracking import metric_key
    from yolo_core.train.trainer import CARD_METRICS

    return [
        {"Name": short, "Regex": re.escape(metric_key(key)) + "=" + _NUMBER}
        for key, short in CARD_METRICS.items()
    ]


def _range(dimension: Dimension) -> tuple[str, dict[str, Any]]:
    if dimension.kind == "categorical":
        return "CategoricalParameterRanges", {"Name": dimension.name, "Values": list(dimension.choices)}
    number = (lambda v: str(int(v))) if dimension.kind == "integer" else (lambda v: f"{v:g}")
    kind = "IntegerParameterRanges" if dimension.kind == "integer" else "ContinuousParameterRanges"
    return kind, {
        "Name": dimension.name,
        "MinValue": number(dimension.low),
        "MaxValue": number(dimension.high),
        "ScalingType": _SCALING[dimension.scale],
    }


def parameter_ranges(space: SearchSpace) -> dict[str, list[dict[str, Any]]]:
    ranges: dict[str, list[dict[str, Any]]] = {
        "IntegerParameterRanges": [],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for dimension in space.dimensions:
        kind, entry = _range(dimension)
        ranges[kind].append(entry)
    return ranges


def _as_string(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def static_hyperparameters(
    train_step: d.TrainingStep, parameters: Mapping[str, Any], fixed: Mapping[str, str]
) -> dict[str, str]:
    """The Train step's hyperparameters with the pipeline parameters' values, plus `fixed`."""
    resolved = {
        key: _as_string(parameters[value.name] if isinstance(value, d.ParamRef) else value)
        for key, value in train_step.hyperparameters
    }
    return {**resolved, **{key: _as_string(value) for key, value in fixed.items()}}


def default_job_name(config: EnvConfig, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%y%m%d-%H%M%S")
    return f"{config.pipeline_name[:18].rstrip('-')}-{stamp}"


def tuning_job_request(
    config: EnvConfig,
    *,
    job_name: str,
    dataset_uri: str,
    code_commit: str,
    parameters: Mapping[str, Any] | None = None,
    fixed: Mapping[str, str] | None = None,
    space: SearchSpace = SEARCH_SPACE,
    max_jobs: int = 20,
    max_parallel: int = 2,
    seed: int = 0,
) -> dict[str, Any]:
    """The keyword arguments of `create_hyper_parameter_tuning_job` (no AWS call).

    `parameters` override the pipeline parameters' defaults (Epochs, ImageSize, TrainImageTag,
    TrainInstanceType, UseSpotInstances, ...); `fixed` adds hyperparameters every job gets.
    """
    if not _JOB_NAME.match(job_name):
        raise UserInputError(f"tuning job name {job_name!r}: 1-32 letters, digits and hyphens")
    if not dataset_uri.startswith("s3://"):
        raise UserInputError(f"--dataset {dataset_uri!r}: expected the s3:// URI of a preprocessed dataset")
    dag = d.build_dag(config)
    values = {**dag.defaults(config), **d.parse_parameter_overrides(dag, dict(parameters or {}))}
    train_step = dag.step(d.TRAIN)
    assert isinstance(train_step, d.TrainingStep)
    static = static_hyperparameters(train_step, values, fixed or {})
    space.check_fixed(static)
    spot = bool(values[train_step.use_spot.name])
    image = config.images.uri(train_step.image, str(values[d.IMAGE_TAG_PARAMS[train_step.image]]))
    stopping = {"MaxRuntimeInSeconds": config.spot.max_run_s}
    if spot:
        stopping["MaxWaitTimeInSeconds"] = config.spot.max_wait_s
    (channel,) = train_step.channels
    return {
        "HyperParameterTuningJobName": job_name,
        "HyperParameterTuningJobConfig": {
            "Strategy": STRATEGY,
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": OBJECTIVE},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": max_parallel},
            "ParameterRanges": parameter_ranges(space),
            "TrainingJobEarlyStoppingType": "Auto",
            "RandomSeed": seed,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            "AlgorithmSpecification": {
                "TrainingImage": image,
                "TrainingInputMode": "File",
                "MetricDefinitions": metric_definitions(),
            },
            "RoleArn": config.roles.execution,
            "InputDataConfig": [
                {
                    "ChannelName": channel.name,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": dataset_uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    "InputMode": "File",
                }
            ],
            "OutputDataConfig": {"S3OutputPath": config.s3_uri("tuning", job_name, "output")},
            "ResourceConfig": {
                "InstanceType": str(values[train_step.instance_type.name]),
                "InstanceCount": 1,
                "VolumeSizeInGB": 50,
            },
            "StoppingCondition": stopping,
            "EnableManagedSpotTraining": spot,
            "CheckpointConfig": {
                "S3Uri": config.s3_uri("tuning", job_name, "checkpoints"),
                "LocalPath": CHECKPOINT_LOCAL_PATH,
            },
            # As the pipeline's jobs: what a job records as its provenance (MLflow tags); and
            # each trial's run in a checkpoint folder of its own.
            "Environment": {"GIT_COMMIT": code_commit, "IMAGE_URI": image, CHECKPOINTS_PER_JOB_ENV: "1"},
        },
        "Tags": [{"Key": "environment", "Value": config.name}],
    }


def validate_request(request: Mapping[str, Any]) -> None:
    """botocore's parameter validation against the SageMaker service model, and what it cannot
    see: that every regex compiles and the objective is one of the metrics defined."""
    import botocore.session
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateHyperParameterTuningJob").input_shape
    try:
        validate_parameters(dict(request), shape)
    except ParamValidationError as exc:
        raise UserInputError(f"tuning job request: {' '.join(str(exc).split())}") from None
    definitions = request["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]
    for definition in definitions:
        re.compile(definition["Regex"])
    objective = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    if objective not in {m["Name"] for m in definitions}:
        raise UserInputError(f"tuning job request: objective {objective!r} has no metric definition")
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    Hyperparameters.from_mapping(static, source="tuning job StaticHyperParameters")


def create_tuning_job(sagemaker: Any, request: Mapping[str, Any]) -> str:
    """Create the tuning job (after `validate_request`); its ARN."""
    validate_request(request)
    return sagemaker.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]
