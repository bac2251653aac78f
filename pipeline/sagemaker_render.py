"""Render the declared DAG as a SageMaker pipeline (SDK v3), and upsert or start it.

The definition is built offline: every S3 path is explicit, role validation and telemetry are off,
and nothing calls AWS until `upsert` or `start`.

Spot on/off is a runtime parameter, but SageMaker rejects `MaxWaitTimeInSeconds` on an on-demand
job and pipelines cannot re-join branches after a condition (aws/sagemaker-python-sdk#4140, #3565).
So the training step and everything after it is rendered twice under a `UseSpot` condition: the
spot branch keeps the declared step names, the on-demand copies end in `OnDemand`.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline import dag as d
from pipeline.config import EnvConfig

SPOT_CONDITION = "UseSpot"
ON_DEMAND_SUFFIX = "OnDemand"
PROCESSING_ROOT = "/opt/ml/processing"
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
CONTAINER_INIT = ("dumb-init", "--")  # the images' ENTRYPOINT, which a ContainerEntrypoint replaces
_SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def _quiet_sdk() -> None:
    """The SDK logs each default it applies and each field it drops; only errors matter here."""
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("sagemaker"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _validate_config_once() -> None:
    """The SDK re-validates its config against a large JSON schema on every lookup (~1.7 s each,
    ~80 lookups per definition); the config does not change, so validate each distinct one once.
    """
    from sagemaker.core.config.config_manager import SageMakerConfig

    original = SageMakerConfig.validate_sagemaker_config
    if getattr(original, "_validated_once", False):
        return
    seen: set[str] = set()

    def validate(sagemaker_config: dict | None = None) -> None:
        key = json.dumps(sagemaker_config, sort_keys=True, default=str)
        if key not in seen:
            original(sagemaker_config)
            seen.add(key)

    validate._validated_once = True  # type: ignore[attr-defined]
    SageMakerConfig.validate_sagemaker_config = staticmethod(validate)


def _use_valid_sdk_config() -> None:
    """Point the SDK at a user config that passes its schema (it needs `SchemaVersion`).

    The SDK also builds sessions of its own (a LocalSession inside ProcessingStep), which read
    this file; a file without `SchemaVersion` makes every one of them raise.
    """
    from entrypoints.environment import exported_config_dir
    from yolo_core.runtime import default_config_dir

    path = default_config_dir(exported_config_dir()) / "sagemaker-sdk-config.yaml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_SDK_CONFIG) + "\n")  # JSON is YAML
    os.environ["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(path)


def pipeline_session(config: EnvConfig, boto_session: Any = None) -> Any:
    """A PipelineSession for the environment's region and bucket (no AWS call is made here)."""
    _use_valid_sdk_config()
    _validate_config_once()
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    from yolo_core.retry import aws_session

    boto_session = boto_session or aws_session(region_name=config.region)  # the SDK's clients retry too
    session = PipelineSession(
        boto_session=boto_session, default_bucket=config.bucket, sagemaker_config=_SDK_CONFIG
    )
    _quiet_sdk()
    return session


@dataclass
class _Renderer:
    """Turns DAG declarations into SDK step objects for one branch (spot or on-demand)."""

    config: EnvConfig
    dag: d.Dag
    session: Any
    params: dict[str, Any]
    code_commit: str
    suffix: str = ""
    spot: bool = True
    built: dict[str, Any] = field(default_factory=dict)

    # -- values ------------------------------------------------------------------------------
    def name(self, step_name: str) -> str:
        """Steps that need nothing of training are shared by both branches and keep their names."""
        shared = {step.name for step in self.dag.shared()}
        return step_name if step_name in shared else step_name + self.suffix

    def image_uri(self, image: str) -> Any:
        from sagemaker.core.workflow.functions import Join

        return Join(
            on=":", values=[self.config.images.repository_uri(image), self.params[d.IMAGE_TAG_PARAMS[image]]]
        )

    def job_environment(self, image: str) -> dict[str, Any]:
        """What a job records as its provenance: the code commit and the exact image it ran."""
        return {"GIT_COMMIT": self.code_commit, "IMAGE_URI": self.image_uri(image)}

    def s3_location(self, *parts: str) -> Any:
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join

        return Join(
            on="/",
            values=[self.config.s3_uri("executions"), ExecutionVariables.PIPELINE_EXECUTION_ID, *parts],
        )

    def value(self, value: d.Value, as_string: bool = False) -> Any:
        from sagemaker.core.workflow.functions import Join, JsonGet

        if isinstance(value, d.ParamRef):
            param = self.params[value.name]
            # v3 emits integer parameters unquoted where AWS expects strings (hyperparameters).
            return Join(on="", values=[param]) if as_string else param
        if isinstance(value, d.MetricRef):
            return JsonGet(
                step_name=self.name(value.step),
                property_file=value.property_file,
                json_path=value.json_path,
            )
        if isinstance(value, d.StepPropertyRef):
            return getattr(self.built[self.name(value.step)].properties, value.property)
        if isinstance(value, d.ImageRef):
            return self.image_uri(value.image)
        if isinstance(value, d.OutputRef):
            return self.source(value)
        return str(value).lower() if isinstance(value, bool) else (str(value) if as_string else value)

    def source(self, source: d.Source) -> Any:
        if isinstance(source, d.ParamRef):
            return self.params[source.name]
        producer = self.built[self.name(source.step)]
        if isinstance(self.dag.step(source.step), d.TrainingStep):
            return producer.properties.ModelArtifacts.S3ModelArtifacts
        return producer.properties.ProcessingOutputConfig.Outputs[source.output].S3Output.S3Uri

    def input_uri(self, item: d.Input) -> Any:
        from sagemaker.core.workflow.functions import Join

        source = self.source(item.source)
        return Join(on="/", values=[source, item.path]) if item.path else source

    def retry_policies(self, job: bool = True) -> list[Any]:
        from sagemaker.mlops.workflow.retry import (
            SageMakerJobExceptionTypeEnum,
            SageMakerJobStepRetryPolicy,
            StepExceptionTypeEnum,
            StepRetryPolicy,
        )

        retry = self.config.retry
        common = {
            "backoff_rate": retry.backoff_rate,
            "interval_seconds": retry.interval_s,
            "max_attempts": retry.max_attempts,
        }
        policies: list[Any] = [
            StepRetryPolicy(
                exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
                **common,
            )
        ]
        if job:
            policies.append(
                SageMakerJobStepRetryPolicy(
                    exception_types=[
                        SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                        SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                        SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT,
                    ],
                    **common,
                )
            )
        return policies

    def base_job_name(self, step_name: str) -> str:
        return f"{self.config.pipeline_name}-{step_name.lower()}"[:50]

    # -- steps -------------------------------------------------------------------------------
    def processing(self, step: d.ProcessingStep) -> Any:
        from sagemaker.core.processing import Processor
        from sagemaker.core.shapes import (
            ProcessingInput,
            ProcessingOutput,
            ProcessingS3Input,
            ProcessingS3Output,
        )
        from sagemaker.core.workflow.properties import PropertyFile
        from sagemaker.mlops.workflow.steps import ProcessingStep

        processor = Processor(
            role=self.config.roles.job_role(step.role),
            image_uri=self.image_uri(step.image),
            instance_count=1,
            instance_type=self.params[step.instance_type.name],
            # As the image's own ENTRYPOINT: dumb-init forwards SIGTERM (a stop) and reaps zombies.
            entrypoint=[*CONTAINER_INIT, step.entrypoint],
            base_job_name=self.base_job_name(step.name),
            sagemaker_session=self.session,
            env=self.job_environment(step.image),
        )
        inputs = [
            ProcessingInput(
                input_name=item.name,
                s3_input=ProcessingS3Input(
                    s3_uri=self.input_uri(item),
                    local_path=f"{PROCESSING_ROOT}/input/{item.name}",
                    s3_data_type="S3Prefix",
                    s3_input_mode="File",
                ),
            )
            for item in step.inputs
        ]
        outputs = [
            ProcessingOutput(
                output_name=output,
                s3_output=ProcessingS3Output(
                    s3_uri=self.s3_location(self.name(step.name), output),
                    local_path=f"{PROCESSING_ROOT}/output/{output}",
                    s3_upload_mode="EndOfJob",
                ),
            )
            for output in step.outputs
        ]
        arguments = [self.value(value, as_string=True) for value in step.arguments]
        step_args = processor.run(inputs=inputs, outputs=outputs, arguments=arguments or None)
        return ProcessingStep(
            name=self.name(step.name),
            step_args=step_args,
            property_files=[
                PropertyFile(name=p.name, output_name=p.output, path=p.path) for p in step.property_files
            ],
            retry_policies=self.retry_policies(),
        )

    def training(self, step: d.TrainingStep) -> Any:
        from sagemaker.core.shapes import StoppingCondition
        from sagemaker.core.training.configs import CheckpointConfig, Compute, InputData, OutputDataConfig
        from sagemaker.mlops.workflow.steps import TrainingStep
        from sagemaker.train.model_trainer import ModelTrainer

        spot = self.config.spot
        stopping = StoppingCondition(
            max_runtime_in_seconds=spot.max_run_s,
            **({"max_wait_time_in_seconds": spot.max_wait_s} if self.spot else {}),
        )
        trainer = ModelTrainer(
            training_image=self.image_uri(step.image),
            role=self.config.roles.job_role("training"),
            base_job_name=self.base_job_name(step.name),
            compute=Compute(
                instance_type=self.params[step.instance_type.name],
                instance_count=self.params[step.instance_count.name],
                volume_size_in_gb=50,
                enable_managed_spot_training=self.spot,
            ),
            stopping_condition=stopping,
            # A spot restart resumes from here; a retry of the step in the same execution too.
            checkpoint_config=CheckpointConfig(
                s3_uri=self.s3_location(self.name(step.name), "checkpoints"), local_path=CHECKPOINT_LOCAL_PATH
            ),
            output_data_config=OutputDataConfig(
                s3_output_path=self.s3_location(self.name(step.name), "output")
            ),
            hyperparameters={key: self.value(value, as_string=True) for key, value in step.hyperparameters},
            input_data_config=[
                InputData(channel_name=channel.name, data_source=self.source(channel.source))
                for channel in step.channels
            ],
            environment=self.job_environment(step.image),
            sagemaker_session=self.session,
        )
        return TrainingStep(
            name=self.name(step.name), step_args=trainer.train(), retry_policies=self.retry_policies()
        )

    def register(self, step: d.RegisterStep) -> Any:
        from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
        from sagemaker.core.workflow.execution_variables import ExecutionVariables
        from sagemaker.core.workflow.functions import Join
        from sagemaker.mlops.workflow.model_step import ModelStep
        from sagemaker.serve.model_builder import ModelBuilder

        evaluation_uri = Join(on="/", values=[self.source(step.evaluation), step.evaluation_file])
        builder = ModelBuilder(
            image_uri=self.image_uri(step.image),
            s3_model_data_url=self.source(step.model),
            role_arn=self.config.roles.job_role("hosting"),
            sagemaker_session=self.session,
            dependencies={},
            log_level=logging.WARNING,
        )
        step_args = builder.register(
            model_package_group_name=self.config.model_package_group,
            content_types=list(step.content_types),
            response_types=list(step.response_types),
            approval_status=step.approval_status,
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(content_type="application/json", s3_uri=evaluation_uri)
            ),
            customer_metadata_properties={
                "code_commit": self.code_commit,
                "input_data_uri": self.params["InputDataUri"],
                "pipeline_execution_arn": ExecutionVariables.PIPELINE_EXECUTION_ARN,
                **{f"{image}_image": self.image_uri(image) for image in d.IMAGE_TAG_PARAMS},
            },
        )
        return ModelStep(
            name=self.name(step.name), step_args=step_args, retry_policies=self.retry_policies(job=False)
        )

    def fail(self, step: d.FailStep) -> Any:
        from sagemaker.core.workflow.functions import Join
        from sagemaker.mlops.workflow.fail_step import FailStep

        message = Join(on="", values=[self.value(part) for part in step.message])
        return FailStep(name=self.name(step.name), error_message=message)

    def condition(self, step: d.ConditionStep) -> Any:
        from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
        from sagemaker.mlops.workflow.condition_step import ConditionStep

        return ConditionStep(
            name=self.name(step.name),
            conditions=[
                ConditionGreaterThanOrEqualTo(left=self.value(step.left), right=self.value(step.right))
            ],
            # What follows the target (the MLflow mirror after Register) runs only when it does.
            if_steps=[self.build(self.dag.step(step.on_pass))]
            + [self.build(follower) for follower in self.dag.followers(step.on_pass)],
            else_steps=[self.build(self.dag.step(step.on_fail))],
        )

    def build(self, step: d.Step) -> Any:
        """Build `step` once (per branch) and remember it so later steps can reference it."""
        name = self.name(step.name)
        if name not in self.built:
            if isinstance(step, d.ProcessingStep):
                self.built[name] = self.processing(step)
            elif isinstance(step, d.TrainingStep):
                self.built[name] = self.training(step)
            elif isinstance(step, d.RegisterStep):
                self.built[name] = self.register(step)
            elif isinstance(step, d.FailStep):
                self.built[name] = self.fail(step)
            else:
                self.built[name] = self.condition(step)
        return self.built[name]


def _parameters(dag: d.Dag, config: EnvConfig) -> dict[str, Any]:
    from sagemaker.core.workflow.parameters import (
        ParameterBoolean,
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )

    kinds = {"string": ParameterString, "integer": ParameterInteger, "float": ParameterFloat}
    params: dict[str, Any] = {}
    for param in dag.parameters:
        default = param.default(config)
        if param.kind == "boolean":
            params[param.name] = ParameterBoolean(name=param.name, default_value=bool(default))
        else:
            params[param.name] = kinds[param.kind](name=param.name, default_value=default)
    return params


def _branch_roots(dag: d.Dag) -> list[d.Step]:
    """The steps a branch lists directly: the jobs from training on and the first gate check.

    Condition targets and what follows them are owned by their condition step, so they are not
    listed again; shared steps are listed once, outside the branches.
    """
    outside = dag.gated() | {s.name for s in dag.shared()}
    return [s for s in dag.steps if s.name not in outside]


def build_pipeline(config: EnvConfig, code_commit: str, session: Any = None, dag: d.Dag | None = None) -> Any:
    """The SDK Pipeline object for one environment."""
    from sagemaker.core.workflow.conditions import ConditionEquals
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.pipeline import Pipeline

    dag = dag or d.build_dag(config)
    session = session or pipeline_session(config)
    params = _parameters(dag, config)
    spot = _Renderer(config, dag, session, params, code_commit, suffix="", spot=True)
    shared = {step.name: spot.build(step) for step in dag.shared()}
    on_demand = _Renderer(
        config,
        dag,
        session,
        params,
        code_commit,
        suffix=ON_DEMAND_SUFFIX,
        spot=False,
        built=dict(shared),
    )
    roots = _branch_roots(dag)
    choose_capacity = ConditionStep(
        name=SPOT_CONDITION,
        conditions=[ConditionEquals(left=params["UseSpotInstances"], right=True)],
        if_steps=[spot.build(step) for step in roots],
        else_steps=[on_demand.build(step) for step in roots],
    )
    _quiet_sdk()
    return Pipeline(
        name=config.pipeline_name,
        parameters=list(params.values()),
        steps=[*shared.values(), choose_capacity],
        sagemaker_session=session,
        pipeline_experiment_config=None,
    )


def build_job_pipeline(
    config: EnvConfig, dag: d.Dag, name: str, code_commit: str, session: Any = None
) -> Any:
    """The SDK Pipeline of a DAG of job steps only (no training, no conditions), in declared order:
    the monitoring pipeline. Its jobs run on demand; the retry policies are the model build's."""
    from sagemaker.mlops.workflow.pipeline import Pipeline

    session = session or pipeline_session(config)
    params = _parameters(dag, config)
    renderer = _Renderer(config, dag, session, params, code_commit, spot=False)
    steps = [renderer.build(step) for step in dag.steps]
    _quiet_sdk()
    return Pipeline(
        name=name,
        parameters=list(params.values()),
        steps=steps,
        sagemaker_session=session,
        pipeline_experiment_config=None,
    )


def definition(config: EnvConfig, code_commit: str) -> dict[str, Any]:
    """The pipeline definition as a JSON-ready dict, made without calling AWS.

    Importing the SDK creates boto3 clients, which look for credentials; without any, botocore
    would ask the EC2 metadata endpoint. Rendering needs no credentials, so that lookup is off.
    """
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    return json.loads(build_pipeline(config, code_commit).definition())


def write_definition(config: EnvConfig, code_commit: str, out: Any) -> str:
    text = json.dumps(definition(config, code_commit), indent=2, sort_keys=True) + "\n"
    out.write(text)
    return text


def upsert(config: EnvConfig, code_commit: str, boto_session: Any = None) -> str:
    """Create or update the pipeline in SageMaker; returns its ARN."""
    pipeline = build_pipeline(config, code_commit, session=pipeline_session(config, boto_session))
    response = pipeline.upsert(
        role_arn=config.roles.pipeline,
        description=f"drone YOLO model build ({config.name})",
        tags=[{"Key": "environment", "Value": config.name}],
    )
    return response["PipelineArn"]


def start(
    config: EnvConfig,
    parameters: dict[str, Any] | None = None,
    boto_session: Any = None,
    display_name: str | None = None,
) -> str:
    """Start an execution of the upserted pipeline; returns the execution ARN."""
    from sagemaker.mlops.workflow.pipeline import format_start_parameters

    from yolo_core.retry import aws_client_config, aws_session

    boto_session = boto_session or aws_session(region_name=config.region)
    client = boto_session.client("sagemaker", config=aws_client_config())
    request: dict[str, Any] = {
        "PipelineName": config.pipeline_name,
        "PipelineParameters": format_start_parameters(dict(sorted((parameters or {}).items()))),
    }
    if display_name:
        request["PipelineExecutionDisplayName"] = display_name
    return client.start_pipeline_execution(**request)["PipelineExecutionArn"]


def step_names(definition_json: dict[str, Any]) -> Iterable[str]:
    """Every step name in a definition, nested condition branches included."""
    stack = list(definition_json["Steps"])
    while stack:
        step = stack.pop()
        yield step["Name"]
        arguments = step.get("Arguments", {})
        if step.get("Type") == "Condition":
            stack.extend(arguments.get("IfSteps", []) + arguments.get("ElseSteps", []))
