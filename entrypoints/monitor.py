"""`monitor`: drift of captured endpoint traffic against the preprocess baseline and the registered
model, as a Model Monitor bring-your-own container, and as the Monitor step of the scheduled
monitoring pipeline (`--processing-layout`, pipeline/monitoring/dag.py).

Contract: the environment variables Model Monitor sets, each also a flag for local runs (a flag
wins over its variable); SAGEMAKER_BASE_DIR moves the /opt/ml tree:
  dataset_source              folder of data-capture .jsonl files, searched recursively
                              (/opt/ml/processing/endpointdata/<endpoint>/<variant>/yyyy/mm/dd/hh)
  baseline_statistics         preprocess's baseline.json: per-image statistics, label box sizes
  baseline_constraints        optional: this project's constraints document, below
  output_path                 default /opt/ml/processing/resultdata: statistics.json,
                              constraint_violations.json and checks.json (every check) go there
  start_time, end_time        optional ISO 8601 times (no offset: UTC), the window to monitor
  publish_cloudwatch_metrics  Enabled | Disabled (default): with Enabled, one metric line per check
                              (its PSI) in /opt/ml/output/metrics/cloudwatch/metrics.jsonl
  sagemaker_endpoint_name, sagemaker_monitoring_schedule_name: those lines' dimensions, when set
  model_path                  optional: the registered model (folder or model.tar.gz): adds the
                              backbone-embedding check (with the constraints' embedding_reference)
  ground_truth_source         optional: ground-truth labels by inference id (a .jsonl file or a
                              folder of them, yolo_core/monitoring/ground_truth.py): adds the model
                              quality checks (with the constraints' registered_evaluation)

--processing-layout (the monitoring pipeline): what is not set comes from the Processing job's
layout: inputs capture/, baseline/ (baseline.json), constraints/ (monitoring_constraints.json),
model/ and ground_truth/ under /opt/ml/processing/input, output_path
/opt/ml/processing/output/resultdata, metric lines always written, into its cloudwatch/ folder
(the PublishMonitoring step sends them); --last-hours N monitors the N hours before the last full
hour (0: every record). A ground_truth folder without .jsonl files means no quality checks.
report.html (plots, the most drifted images with their boxes) and run.json (the window and counts)
are written beside the other documents.

baseline_constraints is the evaluation's monitoring_constraints.json
(`yolo_core.monitoring.constraints`; Model Monitor hands the container the file its schedule's
baseline names, unread): the model's prediction profile on the validation set (prediction checks:
boxes per image, confidence, box size, class mix, box size per class against the labels), its
backbone embeddings there, its registered metrics, and `monitoring_config`, the thresholds of
`yolo_core.monitoring.checks.Policy`. Without the file, only the image statistics are checked, at
the default thresholds.

Time window: a record is used when its `eventMetadata.inferenceTime` lies in [start_time, end_time)
(Model Monitor may download more than the window, so a folder can hold records outside it). With either
bound set, a record without a readable time is left out, since it cannot be placed in the window;
with neither set, every record is used. Records whose request or answer cannot be read (a line cut
by a crash, a body that does not decode) are left out and counted on stderr.

Exit 0 when the checks ran, violations or not (Model Monitor reads them from
constraint_violations.json and reports CompletedWithViolations); 1 with a one-line reason naming the
variable or file on bad input (no dataset_source, an unreadable baseline, a bad time, no capture
records in the window), on stderr and in /opt/ml/output/message.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from entrypoints.contract import (
    ProcessingPaths,
    cloudwatch_metrics_dir,
    model_monitor_output_dir,
    processing_message_file,
    run_main,
)
from entrypoints.environment import configure_offline
from yolo_core.cli_args import Parser, number, writable_folder
from yolo_core.data.dataset import BASELINE_FILE
from yolo_core.errors import UserInputError
from yolo_core.jsonfile import read_json_object
from yolo_core.monitoring.capture import parse_time
from yolo_core.monitoring.checks import Check
from yolo_core.monitoring.constraints import CONSTRAINTS_FILE, read_constraints
from yolo_core.monitoring.run import MonitoringResult, MonitorInputs, run_monitoring

DESCRIPTION = (
    "Drift of captured endpoint traffic against the preprocess baseline, under the Model Monitor "
    "bring-your-own-container contract: every flag defaults to its environment variable."
)
ENABLED, DISABLED = "Enabled", "Disabled"
METRICS_FILE = "metrics.jsonl"
RESULTS_OUTPUT, METRICS_FOLDER = "resultdata", "cloudwatch"  # the monitoring pipeline's output
METRIC_PREFIX = "feature_baseline_drift_"  # the prebuilt Model Monitor container's metric names


def _env_flag(parser: argparse.ArgumentParser, env: str, default: str | None, help_text: str) -> None:
    """A flag named after its Model Monitor variable, which gives its default."""
    flag = "--" + env.replace("_", "-")
    parser.add_argument(
        flag,
        dest=env,
        default=os.environ.get(env) or default,
        metavar=env.rsplit("_", 1)[-1].upper(),
        help=f"{help_text} [env {env}]",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The contract's variables, each overridable by its flag."""
    parser = Parser(
        prog="monitor",
        description=DESCRIPTION,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = functools.partial(_env_flag, parser)
    add("dataset_source", None, "folder of captured .jsonl files")
    add("baseline_statistics", None, "preprocess's baseline.json")
    add("baseline_constraints", None, "prediction profile and thresholds (JSON)")
    add("output_path", str(model_monitor_output_dir()), "where the reports go")
    add("start_time", None, "first inference time monitored (ISO 8601)")
    add("end_time", None, "end of the window, exclusive (ISO 8601)")
    add("publish_cloudwatch_metrics", DISABLED, f"{ENABLED} or {DISABLED}")
    add("sagemaker_endpoint_name", None, "Endpoint dimension of the metric lines")
    add("sagemaker_monitoring_schedule_name", None, "MonitoringSchedule dimension of the metric lines")
    add("model_path", None, "the registered model (folder or model.tar.gz): the embedding check")
    add("ground_truth_source", None, "ground-truth labels by inference id (.jsonl): the quality checks")
    parser.add_argument(
        "--processing-layout",
        action="store_true",
        help="the monitoring pipeline's step: unset inputs and outputs from /opt/ml/processing",
    )
    parser.add_argument(
        "--last-hours",
        type=number(int, 0),
        default=None,
        help="without start/end times: the N hours before the last full hour (0: every record)",
    )
    parser.add_argument(
        "--metrics-dir", default=str(cloudwatch_metrics_dir()), help="where the CloudWatch metric lines go"
    )
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["monitor"]:  # `docker run IMAGE monitor` may hand the word on
        args = args[1:]
    return parser.parse_args(args)


# ---- the contract's inputs, checked ----------------------------------------------------------


def apply_processing_layout(args: argparse.Namespace, paths: ProcessingPaths) -> None:
    """The monitoring pipeline's Processing job: inputs and outputs at their layout's places."""
    layout = {
        "dataset_source": paths.input("capture"),
        "baseline_statistics": paths.input("baseline") / BASELINE_FILE,
        "baseline_constraints": paths.input("constraints") / CONSTRAINTS_FILE,
        "model_path": paths.input("model"),
        "ground_truth_source": paths.input("ground_truth"),
    }
    for name, path in layout.items():
        if not getattr(args, name):
            setattr(args, name, str(path))
    output = paths.output(RESULTS_OUTPUT)
    if args.output_path == str(model_monitor_output_dir()):
        args.output_path = str(output)
    args.metrics_dir = str(Path(args.output_path) / METRICS_FOLDER)
    args.publish_cloudwatch_metrics = ENABLED


def monitored_window(
    args: argparse.Namespace, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """start_time/end_time, else --last-hours before the last full hour, else unbounded."""
    start, end = parse_time(args.start_time, "start_time"), parse_time(args.end_time, "end_time")
    if start and end and start >= end:
        raise UserInputError(f"start_time {args.start_time} is not before end_time {args.end_time}")
    if start or end or not args.last_hours:
        return start, end
    end = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=args.last_hours), end


def model_folder(text: str | None, scratch: Path) -> Path | None:
    """model_path as a model folder (a model.tar.gz is unpacked into `scratch`); None when unset or
    an empty folder (the pipeline's model input with nothing in it)."""
    if not text:
        return None
    path = Path(text)
    if not path.exists():
        raise UserInputError(f"model_path {text}: no such file or folder")
    if path.is_dir() and not any(path.iterdir()):
        return None
    from yolo_core.evaluation.artifact import resolve_model_dir

    return resolve_model_dir(path, scratch)


def ground_truth_source(text: str | None) -> Path | None:
    """ground_truth_source, or None where it is unset or a folder holding no .jsonl file."""
    if not text:
        return None
    path = Path(text)
    if not path.exists():
        raise UserInputError(f"ground_truth_source {text}: no such file or folder")
    if path.is_dir() and next(path.rglob("*.jsonl"), None) is None:
        return None
    return path


def publishing(text: str) -> bool:
    """Model Monitor's switch, compared without case; anything else is a typo worth refusing."""
    if text.lower() not in {ENABLED.lower(), DISABLED.lower()}:
        raise UserInputError(f"publish_cloudwatch_metrics: {text!r} is not {ENABLED} or {DISABLED}")
    return text.lower() == ENABLED.lower()


def capture_folder(text: str | None) -> Path:
    """dataset_source, which must be a folder (Model Monitor always sets it)."""
    if not text:
        raise UserInputError("dataset_source: not set (the folder of captured .jsonl files)")
    if not Path(text).is_dir():
        raise UserInputError(f"dataset_source {text}: no such folder")
    return Path(text)


def read_baseline(text: str | None) -> dict:
    """preprocess's baseline.json, with the per-image rows the image checks compare against."""
    if not text:
        raise UserInputError("baseline_statistics: not set (preprocess's baseline.json)")
    baseline = read_json_object(Path(text), "baseline_statistics file")
    rows = baseline.get("per_image")
    if not isinstance(rows, list) or not rows:
        raise UserInputError(
            f"{text}: the baseline_statistics file has no per_image rows (not a baseline.json)"
        )
    return baseline


# ---- outputs ------------------------------------------------------------------------------------


def metric_lines(checks: list[Check], at: datetime, dimensions: dict[str, str | None]) -> list[dict]:
    """One CloudWatch metric line per check (its PSI), in the BYOC contract's PutMetricData shape."""
    named = [{"Name": name, "Value": value} for name, value in dimensions.items() if value]
    stamp = at.isoformat().replace("+00:00", "Z")
    return [
        {
            "MetricName": METRIC_PREFIX + check.feature_name,
            "Timestamp": stamp,
            "Dimensions": named,
            "Value": check.effect,
        }
        for check in checks
    ]


def write_metric_lines(lines: list[dict], folder: Path) -> Path:
    """The lines Model Monitor forwards to CloudWatch when publish_cloudwatch_metrics is Enabled."""
    writable_folder(folder, "CloudWatch metrics folder")
    path = folder / METRICS_FILE
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def summary(result: MonitoringResult, output: Path) -> str:
    """The run in one log line: what was read, what was left out, which checks fired."""
    window, violated = result.window, result.violated
    read = f"{window.records} records, {len(window.images)} images"
    return (
        f"monitor: {read} ({window.left_out_text() or 'none left out'}); "
        f"{len(violated)} of {len(result.checks)} checks violated {violated or ''} -> {output}"
    )


# ---- the run ------------------------------------------------------------------------------------


def monitor(args: argparse.Namespace) -> int:
    """Check every input, run the checks, write the reports (and metric lines)."""
    if args.processing_layout:
        apply_processing_layout(args, ProcessingPaths.from_env())
    folder = capture_folder(args.dataset_source)
    start, end = monitored_window(args)
    publish = publishing(args.publish_cloudwatch_metrics)
    baseline = read_baseline(args.baseline_statistics)
    constraints = read_constraints(Path(args.baseline_constraints) if args.baseline_constraints else None)
    output = writable_folder(Path(args.output_path), "output_path")
    ground_truth = ground_truth_source(args.ground_truth_source)
    configure_offline()
    with tempfile.TemporaryDirectory(prefix="monitor-model-") as scratch:
        model_dir = model_folder(args.model_path, Path(scratch))
        description = {
            "endpoint": args.sagemaker_endpoint_name or "",
            "schedule": args.sagemaker_monitoring_schedule_name or "",
            "model": str(args.model_path or ""),
        }
        inputs = MonitorInputs(
            folder, baseline, constraints, output, start, end, model_dir, ground_truth, description
        )
        result = run_monitoring(inputs)
    if publish:
        dimensions = {
            "Endpoint": args.sagemaker_endpoint_name,
            "MonitoringSchedule": args.sagemaker_monitoring_schedule_name,
        }
        at = end or result.window.last_time or datetime.now(UTC)
        write_metric_lines(metric_lines(result.checks, at, dimensions), Path(args.metrics_dir))
    print(summary(result, output), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)  # before run_main, so --help and usage errors answer at once
    run_main(lambda: monitor(args), failure_file=processing_message_file())


if __name__ == "__main__":
    main()
