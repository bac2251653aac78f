"""The model-build DAG, declared once.

Preprocess -> (FeatureStore) -> Train -> Evaluate -> quality gate (one check per metric) ->
Register -> MlflowMirror, or a Fail step naming the metric that fell short. FeatureStore writes
the baseline's image statistics to the feature store beside training; MlflowMirror gives the
registered model package its MLflow model version (the registry's other half). The SageMaker
renderer (`sagemaker_render`) and the local runner (`local_runner`) both walk this declaration, so
a step, an input, a parameter or a threshold cannot exist in one and not in the other. Nothing
here imports the SageMaker SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from pipeline.config import EnvConfig
from yolo_core.data.ranges import Bounds
from yolo_core.errors import UserInputError
from yolo_core.serving.options import InferenceOptions
from yolo_core.vocabulary import parse_bool

ParamKind = Literal["string", "integer", "float", "boolean"]
ImageName = Literal["preprocess", "train", "inference"]


@dataclass(frozen=True)
class Param:
    """A pipeline parameter; its default comes from the environment's config."""

    name: str
    kind: ParamKind
    default: Callable[[EnvConfig], str | int | float | bool]
    description: str
    bounds: Bounds | None = None  # allowed values of a count or threshold, checked before any run


@dataclass(frozen=True)
class ParamRef:
    name: str


@dataclass(frozen=True)
class OutputRef:
    """A folder another step wrote: a processing output, or the trained model (`output="model"`)."""

    step: str
    output: str


@dataclass(frozen=True)
class StepPropertyRef:
    """A property of a step known once it ran (`ModelPackageArn` of the Register step)."""

    step: str
    property: str


@dataclass(frozen=True)
class ImageRef:
    """The URI of one of the images (registry/repository:tag, the tag a parameter)."""

    image: ImageName


@dataclass(frozen=True)
class MetricRef:
    """A value read from a step's JSON report (a SageMaker PropertyFile + JsonGet)."""

    step: str
    property_file: str
    json_path: str


Value = str | int | float | bool | ParamRef | MetricRef | StepPropertyRef | ImageRef | OutputRef
Source = ParamRef | OutputRef


@dataclass(frozen=True)
class Input:
    """A step input; `path` picks one file of the source (a manifest) instead of all of it."""

    name: str
    source: Source
    path: str = ""


@dataclass(frozen=True)
class PropertyFile:
    """A JSON file in one of a step's outputs whose values later steps read."""

    name: str
    output: str
    path: str


@dataclass(frozen=True)
class ProcessingStep:
    """A Processing job: inputs under /opt/ml/processing/input/<name>, outputs under .../output/<name>."""

    name: str
    entrypoint: str
    image: ImageName
    instance_type: ParamRef
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    arguments: tuple[Value, ...] = ()
    property_files: tuple[PropertyFile, ...] = ()
    # Talks to AWS and MLflow rather than computing from its inputs: the local runner never
    # caches it, and runs it on the host (where the tracking store and the AWS endpoint are).
    service: bool = False
    role: str = "processing"  # the kind of job whose role it runs as (config `roles`, JOB_KINDS)


@dataclass(frozen=True)
class TrainingStep:
    """A Training job: channels under /opt/ml/input/data/<name>; the model is /opt/ml/model."""

    name: str
    entrypoint: str
    image: ImageName
    instance_type: ParamRef
    instance_count: ParamRef  # several: one torchrun node per instance (entrypoints/distributed.py)
    channels: tuple[Input, ...]
    hyperparameters: tuple[tuple[str, Value], ...]
    use_spot: ParamRef
    outputs: tuple[str, ...] = ("model",)


@dataclass(frozen=True)
class ConditionStep:
    """Continue with `on_pass` if `left >= right`, else run the Fail step `on_fail`."""

    name: str
    left: MetricRef
    right: ParamRef
    on_pass: str
    on_fail: str


@dataclass(frozen=True)
class FailStep:
    name: str
    message: tuple[Value, ...]


# What a registered model package accepts and answers: the pipeline's Register step and the
# registry's own registration (pipeline/registry.py) both declare these.
MODEL_CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image", "application/json")
MODEL_RESPONSE_TYPES = ("application/json",)


@dataclass(frozen=True)
class RegisterStep:
    """A model package in PendingManualApproval with the evaluation attached as its metrics."""

    name: str
    model: OutputRef
    evaluation: OutputRef
    evaluation_file: str
    image: ImageName
    approval_status: str = "PendingManualApproval"
    content_types: tuple[str, ...] = MODEL_CONTENT_TYPES
    response_types: tuple[str, ...] = MODEL_RESPONSE_TYPES


Step = ProcessingStep | TrainingStep | ConditionStep | FailStep | RegisterStep


@dataclass(frozen=True)
class Gate:
    """One metric of the quality gate: its key in evaluation.json, label and threshold parameter."""

    metric: str
    label: str
    threshold_param: str
    threshold: Callable[[EnvConfig], float]


SERVING_DEFAULT_CONF = InferenceOptions().conf  # what a client gets without asking

PREPROCESS, TRAIN, EVALUATE, REGISTER = "Preprocess", "Train", "Evaluate", "RegisterModel"
FEATURE_STORE, MLFLOW_MIRROR = "FeatureStore", "MlflowMirror"
FEATURES_OUTPUT, MIRROR_OUTPUT = "features", "mirror"
EVALUATION_FILE = "evaluation.json"
EVALUATION_PROPERTY_FILE = "EvaluationReport"

GATES = (
    Gate("map50_95", "mAP50-95", "MinMap50To95", lambda c: c.thresholds.map50_95),
    Gate("precision", "precision", "MinPrecision", lambda c: c.thresholds.precision),
    Gate("recall", "recall", "MinRecall", lambda c: c.thresholds.recall),
)

PARAMETERS = (
    Param(
        "InputDataUri", "string", lambda c: c.s3_uri("raw"), "raw imagery (VisDrone, COCO or YOLO folders)"
    ),
    Param("InputFormat", "string", lambda c: "visdrone", "layout of the raw imagery: visdrone, coco or yolo"),
    Param("PreprocessInstanceType", "string", lambda c: c.instance_types.preprocess, "preprocess instance"),
    Param("TrainInstanceType", "string", lambda c: c.instance_types.train, "training instance"),
    Param(
        "TrainInstanceCount",
        "integer",
        lambda c: 1,
        "training instances; several train together (torchrun across hosts, NCCL or gloo)",
        Bounds(1),
    ),
    Param("EvaluateInstanceType", "string", lambda c: c.instance_types.evaluate, "evaluation instance"),
    Param("UseSpotInstances", "boolean", lambda c: c.spot.enabled, "managed spot training on/off"),
    Param("Epochs", "integer", lambda c: c.training.epochs, "training epochs", Bounds(1)),
    Param("ImageSize", "integer", lambda c: c.training.imgsz, "train and evaluate image size", Bounds(32)),
    Param(
        "ServingConf",
        "float",
        lambda c: SERVING_DEFAULT_CONF,
        "the endpoint's confidence threshold: the gate's precision and recall are measured there",
        Bounds(0, 1),
    ),
    *(
        Param(g.threshold_param, "float", g.threshold, f"minimum {g.label} to register", Bounds(0, 1))
        for g in GATES
    ),
    Param("PreprocessImageTag", "string", lambda c: c.images.tag, "tag of the preprocess image"),
    Param("TrainImageTag", "string", lambda c: c.images.tag, "tag of the train image (also evaluates)"),
    Param("InferenceImageTag", "string", lambda c: c.images.tag, "tag of the inference image registered"),
    Param(
        "MlflowTrackingUri",
        "string",
        lambda c: c.mlflow_tracking_uri,
        "MLflow for training and the registry's mirror: a SageMaker MLflow ARN, http(s)://, or none",
    ),
    Param("MlflowExperiment", "string", lambda c: c.experiment_name, "MLflow experiment of the runs"),
)

IMAGE_TAG_PARAMS: dict[str, str] = {
    "preprocess": "PreprocessImageTag",
    "train": "TrainImageTag",
    "inference": "InferenceImageTag",
}


def _check_name(gate: Gate) -> str:
    return "Check" + gate.threshold_param.removeprefix("Min")


def _fail_name(gate: Gate) -> str:
    return gate.threshold_param.removeprefix("Min") + "TooLow"


def _gate_steps() -> Iterator[Step]:
    """A chain of checks, so the Fail step that runs names exactly the metric that fell short."""
    for index, gate in enumerate(GATES):
        metric = MetricRef(EVALUATE, EVALUATION_PROPERTY_FILE, f"metrics.{gate.metric}.value")
        threshold = ParamRef(gate.threshold_param)
        on_pass = _check_name(GATES[index + 1]) if index + 1 < len(GATES) else REGISTER
        yield ConditionStep(_check_name(gate), metric, threshold, on_pass=on_pass, on_fail=_fail_name(gate))
        yield FailStep(
            _fail_name(gate),
            (f"{gate.label} ", metric, " is below the minimum ", threshold, f" ({gate.threshold_param})"),
        )


@dataclass(frozen=True)
class Dag:
    parameters: tuple[Param, ...]
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"no step named {name!r} in the DAG")

    def param(self, name: str) -> Param:
        for param in self.parameters:
            if param.name == name:
                return param
        raise KeyError(f"no parameter named {name!r} in the DAG")

    def defaults(self, config: EnvConfig) -> dict[str, str | int | float | bool]:
        return {p.name: p.default(config) for p in self.parameters}

    @property
    def first_gate(self) -> str:
        return _check_name(GATES[0])

    def followers(self, name: str) -> tuple[Step, ...]:
        """The steps that read something of step `name` directly."""
        return tuple(s for s in self.steps if name in references(s))

    def gated(self) -> set[str]:
        """Steps that run only when a condition leads to them: its targets and what follows those."""
        targets = {n for s in self.steps if isinstance(s, ConditionStep) for n in (s.on_pass, s.on_fail)}
        return targets | {f.name for t in targets for f in self.followers(t)}

    def shared(self) -> tuple[Step, ...]:
        """Steps that need nothing of training: rendered once, whatever the training capacity."""
        after_train = {TRAIN}
        for step in self.steps:  # declared in dependency order
            if references(step) & after_train:
                after_train.add(step.name)
        return tuple(s for s in self.steps if s.name not in after_train and s.name not in self.gated())


def references(step: Step) -> set[str]:
    """The names of the steps whose outputs or properties `step` reads."""
    values: list[object] = []
    if isinstance(step, ProcessingStep):
        values = [i.source for i in step.inputs] + list(step.arguments)
    elif isinstance(step, TrainingStep):
        values = [c.source for c in step.channels] + [v for _, v in step.hyperparameters]
    elif isinstance(step, RegisterStep):
        values = [step.model, step.evaluation]
    elif isinstance(step, ConditionStep):
        values = [step.left]
    elif isinstance(step, FailStep):
        values = list(step.message)
    return {v.step for v in values if isinstance(v, OutputRef | StepPropertyRef | MetricRef)}


def build_dag(config: EnvConfig | None = None) -> Dag:
    """The DAG of one environment: its fixed training settings and feature group are constants."""
    fixed = tuple(sorted((config.training.hyperparameters if config else {}).items()))
    steps: tuple[Step, ...] = (
        ProcessingStep(
            PREPROCESS,
            entrypoint="preprocess",
            image="preprocess",
            instance_type=ParamRef("PreprocessInstanceType"),
            inputs=(Input("data", ParamRef("InputDataUri")),),
            outputs=("dataset", "report", "baseline"),
            arguments=("--format", ParamRef("InputFormat")),
        ),
        ProcessingStep(
            FEATURE_STORE,
            entrypoint="feature_store",
            image="preprocess",
            instance_type=ParamRef("PreprocessInstanceType"),
            inputs=(
                Input("baseline", OutputRef(PREPROCESS, "baseline")),
                Input("manifest", OutputRef(PREPROCESS, "dataset"), path="dataset.json"),
            ),
            outputs=(FEATURES_OUTPUT,),
            arguments=feature_store_arguments(config),
            service=True,
        ),
        TrainingStep(
            TRAIN,
            entrypoint="train",
            image="train",
            instance_type=ParamRef("TrainInstanceType"),
            instance_count=ParamRef("TrainInstanceCount"),
            channels=(Input("dataset", OutputRef(PREPROCESS, "dataset")),),
            hyperparameters=(
                *fixed,
                ("epochs", ParamRef("Epochs")),
                ("imgsz", ParamRef("ImageSize")),
                ("tracking_uri", ParamRef("MlflowTrackingUri")),
                ("experiment_name", ParamRef("MlflowExperiment")),
            ),
            use_spot=ParamRef("UseSpotInstances"),
        ),
        ProcessingStep(
            EVALUATE,
            entrypoint="evaluate",
            image="train",
            instance_type=ParamRef("EvaluateInstanceType"),
            inputs=(
                Input("model", OutputRef(TRAIN, "model")),
                Input("dataset", OutputRef(PREPROCESS, "dataset")),
            ),
            outputs=("evaluation",),
            arguments=("--serving-conf", ParamRef("ServingConf")),
            property_files=(PropertyFile(EVALUATION_PROPERTY_FILE, "evaluation", EVALUATION_FILE),),
        ),
        *_gate_steps(),
        RegisterStep(
            REGISTER,
            model=OutputRef(TRAIN, "model"),
            evaluation=OutputRef(EVALUATE, "evaluation"),
            evaluation_file=EVALUATION_FILE,
            image="inference",
        ),
        ProcessingStep(
            MLFLOW_MIRROR,
            entrypoint="register_mirror",
            image="train",
            instance_type=ParamRef("PreprocessInstanceType"),
            inputs=(
                Input("model", OutputRef(TRAIN, "model")),
                Input("evaluation", OutputRef(EVALUATE, "evaluation")),
            ),
            outputs=(MIRROR_OUTPUT,),
            arguments=(
                "--model-package-arn",
                StepPropertyRef(REGISTER, "ModelPackageArn"),
                "--tracking-uri",
                ParamRef("MlflowTrackingUri"),
                "--experiment",
                ParamRef("MlflowExperiment"),
                "--input-data-uri",
                ParamRef("InputDataUri"),
                "--dataset-location",
                OutputRef(PREPROCESS, "dataset"),
                *(part for image in IMAGE_TAG_PARAMS for part in ("--image", image, ImageRef(image))),  # type: ignore[arg-type]
            ),
            service=True,
        ),
    )
    return Dag(parameters=PARAMETERS, steps=steps)


def feature_store_arguments(config: EnvConfig | None) -> tuple[Value, ...]:
    """Where the feature group and its offline store are: fixed per environment."""
    if config is None:
        return ()
    return (
        "--feature-group",
        config.feature_store.feature_group,
        "--offline-store-uri",
        config.s3_uri(config.feature_store.offline_prefix),
        "--role-arn",
        config.roles.job_role("processing"),
        "--region",
        config.region,
    )


def coerce_parameter(param: Param, raw: object) -> str | int | float | bool:
    """A parameter value from the command line (a string) or Python, checked against its kind and range."""
    text = str(raw).strip()
    if param.kind in ("integer", "float"):
        return _in_bounds(param, _number(param, text))
    if param.kind == "boolean":
        if isinstance(raw, bool):
            return raw
        return parse_bool(text, f"parameter {param.name}")
    return text


def _number(param: Param, text: str) -> int | float:
    try:
        return int(text) if param.kind == "integer" else float(text)
    except ValueError:
        raise UserInputError(f"parameter {param.name}: {text!r} is not a valid {param.kind}") from None


def _in_bounds(param: Param, value: int | float) -> int | float:
    """SageMaker would accept any number and fail an hour later in the step; refuse it here."""
    if param.bounds is not None and not param.bounds.contains(value):
        raise UserInputError(f"parameter {param.name}: {value!r} is out of range (allowed: {param.bounds})")
    return value


def parse_parameter_overrides(
    dag: Dag, items: list[str] | dict[str, object]
) -> dict[str, str | int | float | bool]:
    """`["Epochs=3", ...]` (or a dict) into typed values; unknown names are errors."""
    pairs = items.items() if isinstance(items, dict) else split_pairs(items, "parameter").items()
    values = {}
    for name, raw in pairs:
        try:
            param = dag.param(name)
        except KeyError:
            known = ", ".join(p.name for p in dag.parameters)
            raise UserInputError(f"unknown pipeline parameter {name!r} (known: {known})") from None
        values[name] = coerce_parameter(param, raw)
    return values


def split_pairs(items: list[str], what: str) -> dict[str, str]:
    """`["a=1", "b=2"]` -> `{"a": "1", "b": "2"}`; anything without `=` is an error naming it."""
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserInputError(f"{what} {item!r}: expected NAME=VALUE")
        pairs[name.strip()] = value
    return pairs
