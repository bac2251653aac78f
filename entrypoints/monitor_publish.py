"""`monitor_publish`: the PublishMonitoring step: a monitoring run's metrics, alert and MLflow run.

Runs after Monitor, in SageMaker (a Processing job in the train image, with the role the monitoring
template's publisher policy allows) and in `python -m pipeline monitor --local` alike. Input:
/opt/ml/processing/input/resultdata, the Monitor step's output (run.json, checks.json,
constraint_violations.json, report.html, cloudwatch/metrics.jsonl). It logs the run to MLflow
linked to the model version (unless the tracking URI is none), then puts every metric to CloudWatch
and, when a check is violated, one event on the environment's monitoring bus, whose rule routes it
to the alert queue. Exit 0, or 1 with a one-line reason (an unreachable bus, a broken results
folder) on stderr and in /opt/ml/output/message.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from entrypoints.contract import ProcessingPaths, processing_message_file, run_main
from entrypoints.monitor import METRICS_FOLDER, RESULTS_OUTPUT
from yolo_core.cli_args import Parser
from yolo_core.jsonfile import read_json_object
from yolo_core.monitoring.run import CHECKS_FILE, REPORT_FILE, RUN_FILE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    paths = ProcessingPaths.from_env()
    parser = Parser(prog="monitor_publish", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--env", required=True, help="environment whose bus, namespace and endpoint are used")
    add("--config", type=Path, help="a config YAML instead of the bundled one")
    add("--report-uri", required=True, help="where the Monitor step's results were uploaded")
    add("--model-version", default="", help="the MLflow model version monitored ('' : no link)")
    add("--tracking-uri", default="none", help="MLflow URI, or none")
    add("--experiment", default="", help="MLflow experiment of the monitoring runs")
    add("--results", type=Path, default=paths.input(RESULTS_OUTPUT), help="the Monitor step's output folder")
    args = list(sys.argv[1:] if argv is None else argv)
    return parser.parse_args(args[1:] if args[:1] == ["monitor_publish"] else args)


def publish(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pipeline.aws import AwsClients
    from pipeline.config import load_config
    from pipeline.monitoring.alerts import MonitoringRun
    from pipeline.monitoring.declaration import build_monitoring
    from pipeline.monitoring.publish import publish_outputs
    from yolo_core.monitoring.capture import parse_time

    config = load_config(args.env, args.config)
    monitoring = build_monitoring(config)
    summary = read_json_object(args.results / RUN_FILE, "monitoring run summary")
    checks = read_json_object(args.results / CHECKS_FILE, "monitoring checks")["checks"]
    run_id = _log_to_mlflow(args, config.model_package_group, summary, checks) or uuid.uuid4().hex
    run = MonitoringRun(
        endpoint=monitoring.endpoint,
        run_id=run_id,
        start=parse_time(summary["start"], f"{RUN_FILE} start"),
        end=parse_time(summary["end"], f"{RUN_FILE} end"),
        report_uri=f"{args.report_uri.rstrip('/')}/{REPORT_FILE}",
    )
    published = publish_outputs(
        AwsClients(config.region), monitoring, run, args.results, args.results / METRICS_FOLDER
    )
    alert = f"alert {published.event_id} on {monitoring.bus_name}" if published.event_id else "no alert"
    print(f"monitor_publish: {published.metrics} metrics to {monitoring.namespace}; {alert}; run {run_id}")
    return 0


def _log_to_mlflow(args: argparse.Namespace, model_name: str, summary: dict, checks: list) -> str:
    if args.tracking_uri.strip().lower() in ("", "none"):
        return ""
    from pipeline.monitoring.tracking import log_monitoring_run

    experiment = args.experiment or f"{model_name}-monitoring"
    return log_monitoring_run(
        args.tracking_uri, experiment, model_name, args.model_version, summary, checks, args.results
    )


def main(argv: list[str] | None = None) -> None:
    run_main(lambda: publish(argv), failure_file=processing_message_file())


if __name__ == "__main__":
    main()
