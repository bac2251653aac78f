"""The monitoring pipeline, declared once: Monitor -> PublishMonitoring.

Monitor runs the `monitor` entry point over the production endpoint's captured traffic against the
production model's references (preprocess's baseline.json, the evaluation's constraints document,
the model itself for embeddings, ground truth when there is some); PublishMonitoring puts its
metrics to CloudWatch, its alert on the bus when anything is violated, and its run to MLflow beside
the model version. EventBridge Scheduler starts it hourly with the defaults below, which name the
`monitoring/production/` prefix that a promotion to production fills (`production_references`).

The SageMaker renderer (`pipeline.monitoring.render`) and `python -m pipeline monitor --local`
(`pipeline.monitoring.local`) both walk this declaration, as the model-build DAG's do.
"""

from __future__ import annotations

from entrypoints.monitor import RESULTS_OUTPUT
from pipeline import dag as d
from pipeline.config import EnvConfig
from pipeline.deploy.declaration import build_deployment
from pipeline.monitoring.declaration import Monitoring, build_monitoring
from yolo_core.data.ranges import Bounds

MONITOR, PUBLISH = "Monitor", "PublishMonitoring"
MONITOR_INPUTS = ("capture", "baseline", "constraints", "model", "ground_truth")
REFERENCE_PREFIX = ("monitoring", "production")  # the production model's references, under the bucket


def production_references(config: EnvConfig) -> dict[str, str]:
    """Where a promotion puts the production model's references: input name -> S3 prefix."""
    return {name: config.s3_uri(*REFERENCE_PREFIX, name) for name in ("baseline", "constraints", "model")}


def ground_truth_prefix(config: EnvConfig, monitoring: Monitoring) -> str:
    """Where labellers put ground truth for the monitored endpoint (the schedule's default)."""
    return config.s3_uri("ground-truth", monitoring.endpoint)


def monitoring_parameters(config: EnvConfig, monitoring: Monitoring) -> tuple[d.Param, ...]:
    references = production_references(config)
    capture = f"{build_deployment(config).capture_uri}/{monitoring.endpoint}"  # SageMaker adds the name
    return (
        d.Param("CaptureUri", "string", lambda c: capture, "the endpoint's data capture prefix"),
        d.Param("BaselineUri", "string", lambda c: references["baseline"], "folder with baseline.json"),
        d.Param(
            "ConstraintsUri",
            "string",
            lambda c: references["constraints"],
            "folder with monitoring_constraints.json",
        ),
        d.Param("ModelUri", "string", lambda c: references["model"], "the production model (embeddings)"),
        d.Param(
            "GroundTruthUri",
            "string",
            lambda c: ground_truth_prefix(c, monitoring),
            "ground-truth labels by inference id (no .jsonl there: no quality checks)",
        ),
        d.Param(
            "WindowHours",
            "integer",
            lambda c: 1,
            "hours before the last full hour to monitor (0: every record)",
            Bounds(0),
        ),
        d.Param("ModelVersion", "string", lambda c: "", "the MLflow model version monitored (for the link)"),
        d.Param("MonitorInstanceType", "string", lambda c: c.instance_types.evaluate, "monitor instance"),
        d.Param("TrainImageTag", "string", lambda c: c.images.tag, "tag of the train image (monitors)"),
        d.Param("MlflowTrackingUri", "string", lambda c: c.mlflow_tracking_uri, "MLflow of monitoring runs"),
        d.Param("MlflowExperiment", "string", lambda c: c.experiment_name, "MLflow experiment"),
    )


def build_monitoring_dag(config: EnvConfig) -> d.Dag:
    monitoring = build_monitoring(config)
    monitor = d.ProcessingStep(
        MONITOR,
        entrypoint="monitor",
        image="train",
        instance_type=d.ParamRef("MonitorInstanceType"),
        inputs=tuple(d.Input(name, d.ParamRef(_uri_param(name))) for name in MONITOR_INPUTS),
        outputs=(RESULTS_OUTPUT,),
        arguments=("--processing-layout", "--last-hours", d.ParamRef("WindowHours")),
        role="monitoring",
    )
    publish = d.ProcessingStep(
        PUBLISH,
        entrypoint="monitor_publish",
        image="train",
        instance_type=d.ParamRef("MonitorInstanceType"),
        inputs=(d.Input(RESULTS_OUTPUT, d.OutputRef(MONITOR, RESULTS_OUTPUT)),),
        outputs=(),
        arguments=(
            "--env",
            config.name,
            "--report-uri",
            d.OutputRef(MONITOR, RESULTS_OUTPUT),
            "--model-version",
            d.ParamRef("ModelVersion"),
            "--tracking-uri",
            d.ParamRef("MlflowTrackingUri"),
            "--experiment",
            d.ParamRef("MlflowExperiment"),
        ),
        service=True,
        role="monitoring",
    )
    return d.Dag(parameters=monitoring_parameters(config, monitoring), steps=(monitor, publish))


def _uri_param(input_name: str) -> str:
    return "".join(part.capitalize() for part in input_name.split("_")) + "Uri"
