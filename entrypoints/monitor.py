"""`monitor`: drift of captured endpoint traffic against the preprocess baseline, as a Model Monitor
bring-your-own container (and as the step of a scheduled Processing pipeline, which sets the same
variables).

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

baseline_constraints is a JSON object with two optional keys (Model Monitor hands the container
the file its schedule's baseline names, unread): `prediction_profile`, the registered model's
`prediction_profile()` on the validation set, which adds the prediction checks (boxes per image,
confidence, box size, class mix, box size per class against the labels); and `monitoring_config`,
`{"alpha": 0.01, "min_psi": 0.1}`, the thresholds of `yolo_core.monitoring.checks.Policy`.
`constraints_document()` writes one. Without the file, only the image statistics are checked, at
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
import base64
import binascii
import functools
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from entrypoints.contract import (
    cloudwatch_metrics_dir,
    model_monitor_output_dir,
    processing_message_file,
    run_main,
)
from entrypoints.environment import configure_offline
from yolo_core.cli_args import Parser, writable_folder
from yolo_core.data.json_io import write_json
from yolo_core.data.stats import image_statistics
from yolo_core.errors import UserInputError
from yolo_core.infer.detections import Detections
from yolo_core.jsonfile import read_json_object
from yolo_core.monitoring.checks import DEFAULT_POLICY, Check, Policy
from yolo_core.monitoring.documents import checks_document, statistics_document, violations_document
from yolo_core.monitoring.drift import drift_checks
from yolo_core.monitoring.prediction_drift import PROFILE_KIND, detections_from_records, prediction_profile
from yolo_core.serving.decode import DecodeLimits, decode_body

DESCRIPTION = (
    "Drift of captured endpoint traffic against the preprocess baseline, under the Model Monitor "
    "bring-your-own-container contract: every flag defaults to its environment variable."
)
ENABLED, DISABLED = "Enabled", "Disabled"
CONSTRAINTS_KIND = "drift_constraints"
METRICS_FILE = "metrics.jsonl"
METRIC_PREFIX = "feature_baseline_drift_"  # the prebuilt Model Monitor container's metric names
# The server admitted each captured body under its own limits, maybe larger than the defaults: only
# the per-image decompression-bomb guard stays.
CAPTURED_LIMITS = DecodeLimits(max_body_bytes=1 << 40, max_images=1 << 20, max_request_pixels=1 << 50)
# A line cut by a crash, a record of another shape, a body that does not decode (RequestError).
UNREADABLE = (AttributeError, KeyError, TypeError, ValueError, binascii.Error, UserInputError)


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
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["monitor"]:  # `docker run IMAGE monitor` may hand the word on
        args = args[1:]
    return parser.parse_args(args)


# ---- the contract's inputs, checked ----------------------------------------------------------


def parse_time(text: str | None, env: str) -> datetime | None:
    """An ISO 8601 time as UTC (no offset: UTC); a bad one names its variable."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserInputError(f"{env}: {text!r} is not an ISO 8601 time (e.g. 2024-05-01T13:00:00Z)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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


def constraints_document(prediction_profile: dict | None = None, policy: Policy = DEFAULT_POLICY) -> dict:
    """The baseline_constraints file this command reads: a prediction profile and the thresholds."""
    document = {
        "version": 1,
        "kind": CONSTRAINTS_KIND,
        "monitoring_config": {"alpha": policy.alpha, "min_psi": policy.min_psi},
    }
    return document | ({"prediction_profile": prediction_profile} if prediction_profile else {})


def read_constraints(text: str | None) -> tuple[dict | None, Policy]:
    """The prediction profile (None: image checks only) and the thresholds of baseline_constraints."""
    if not text:
        return None, DEFAULT_POLICY
    document = read_json_object(Path(text), "baseline_constraints file")
    profile = document.get("prediction_profile")
    if profile is not None and (not isinstance(profile, dict) or profile.get("kind") != PROFILE_KIND):
        raise UserInputError(f"{text}: prediction_profile is not a {PROFILE_KIND} document")
    return profile, _policy(document.get("monitoring_config", {}), text)


def _policy(config: object, where: str) -> Policy:
    """The thresholds, each checked: alpha a probability, min_psi not negative."""
    if not isinstance(config, dict):
        raise UserInputError(f"{where}: monitoring_config must be a JSON object")
    alpha, min_psi = config.get("alpha", DEFAULT_POLICY.alpha), config.get("min_psi", DEFAULT_POLICY.min_psi)
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise UserInputError(f"{where}: monitoring_config.alpha {alpha!r} is not a number between 0 and 1")
    if not isinstance(min_psi, int | float) or min_psi < 0:
        raise UserInputError(f"{where}: monitoring_config.min_psi {min_psi!r} is not a number >= 0")
    return Policy(alpha=float(alpha), min_psi=float(min_psi))


# ---- captured traffic --------------------------------------------------------------------------


@dataclass
class Window:
    """What the monitored window's records yield: image measurements, detections, class names."""

    images: list[dict] = field(default_factory=list)
    detections: list[Detections] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    records: int = 0
    left_out: Counter[str] = field(default_factory=Counter)


def capture_lines(folder: Path) -> Iterator[str]:
    """Every line of every .jsonl file below `folder`, in path order (hours sort by name)."""
    for path in sorted(folder.rglob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as handle:
            yield from (line for line in handle if line.strip())


def inference_time(record: dict) -> datetime | None:
    """The record's eventMetadata.inferenceTime, or None where it is missing or unreadable."""
    text = (record.get("eventMetadata") or {}).get("inferenceTime")
    try:
        return parse_time(text, "inferenceTime") if isinstance(text, str) else None
    except UserInputError:
        return None


def in_window(when: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    """[start, end); a record without a time is in only when no bound is set."""
    if when is None:
        return start is None and end is None
    return (start is None or when >= start) and (end is None or when < end)


def payload_bytes(payload: dict) -> bytes:
    """A capture payload's data as the endpoint saw it (BASE64 decoded, JSON as its text)."""
    data = payload["data"]
    return base64.b64decode(data, validate=True) if payload.get("encoding") == "BASE64" else data.encode()


def exchange_frames(record: dict) -> list[tuple[np.ndarray, list[dict]]]:
    """Each image of a captured request with its detection rows from the captured answer."""
    capture = record["captureData"]
    request, answer = capture["endpointInput"], capture["endpointOutput"]
    decoded = decode_body(request["observedContentType"], payload_bytes(request), CAPTURED_LIMITS)
    body = json.loads(payload_bytes(answer))
    results = [body] if decoded.single else body["predictions"]
    if len(results) != len(decoded.images):
        raise ValueError("the answer has not one result per image")
    return [(image, result["detections"]) for image, result in zip(decoded.images, results, strict=True)]


def add_exchange(window: Window, record: dict) -> None:
    """Measure one record's images as preprocess measured the baseline, and keep its detections."""
    for image, rows in exchange_frames(record):
        window.images.append(image_statistics(image))
        window.detections.append(detections_from_records(rows))
        window.names.update({int(row["class_id"]): str(row["class_name"]) for row in rows})
    window.records += 1


def read_window(folder: Path, start: datetime | None, end: datetime | None) -> Window:
    """The window's records, measured; what is outside or unreadable is counted, not fatal."""
    window = Window()
    for line in capture_lines(folder):
        try:
            record = json.loads(line)
            if not in_window(inference_time(record), start, end):
                window.left_out["outside the window or without a time"] += 1
                continue
            add_exchange(window, record)
        except UNREADABLE:
            window.left_out["unreadable"] += 1
    if not window.records:
        raise UserInputError(
            f"dataset_source {folder}: no readable capture records between start_time "
            f"{start or 'unset'} and end_time {end or 'unset'} ({_left_out(window) or 'no .jsonl lines'})"
        )
    return window


def _left_out(window: Window) -> str:
    return ", ".join(f"{count} {why}" for why, count in sorted(window.left_out.items()))


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
            "Value": check.psi,
        }
        for check in checks
    ]


def write_metric_lines(lines: list[dict], folder: Path) -> Path:
    """The lines Model Monitor forwards to CloudWatch when publish_cloudwatch_metrics is Enabled."""
    writable_folder(folder, "CloudWatch metrics folder")
    path = folder / METRICS_FILE
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def write_reports(checks: list[Check], window: Window, profile: dict | None, output: Path) -> None:
    """statistics.json, constraint_violations.json and checks.json in output_path."""
    write_json(output / "statistics.json", statistics_document(window.images, profile))
    write_json(output / "constraint_violations.json", violations_document(checks))
    write_json(output / "checks.json", checks_document(checks))


def summary(window: Window, checks: list[Check], output: Path) -> str:
    """The run in one log line: what was read, what was left out, which checks fired."""
    violated = [check.feature_name for check in checks if check.violated]
    read = f"{window.records} records, {len(window.images)} images"
    return (
        f"monitor: {read} ({_left_out(window) or 'none left out'}); "
        f"{len(violated)} of {len(checks)} checks violated {violated or ''} -> {output}"
    )


# ---- the run ------------------------------------------------------------------------------------


def monitor(args: argparse.Namespace) -> int:
    """Check every input, read the window, run the checks, write the reports (and metric lines)."""
    folder = capture_folder(args.dataset_source)
    start, end = parse_time(args.start_time, "start_time"), parse_time(args.end_time, "end_time")
    if start and end and start >= end:
        raise UserInputError(f"start_time {args.start_time} is not before end_time {args.end_time}")
    publish = publishing(args.publish_cloudwatch_metrics)
    baseline = read_baseline(args.baseline_statistics)
    reference, policy = read_constraints(args.baseline_constraints)
    output = writable_folder(Path(args.output_path), "output_path")
    configure_offline()
    window = read_window(folder, start, end)
    served = prediction_profile(window.detections, window.names)
    checks = drift_checks(baseline, window.images, reference, served, policy)
    write_reports(checks, window, served, output)
    if publish:
        dimensions = {
            "Endpoint": args.sagemaker_endpoint_name,
            "MonitoringSchedule": args.sagemaker_monitoring_schedule_name,
        }
        write_metric_lines(
            metric_lines(checks, end or datetime.now(UTC), dimensions), cloudwatch_metrics_dir()
        )
    print(summary(window, checks, output), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)  # before run_main, so --help and usage errors answer at once
    run_main(lambda: monitor(args), failure_file=processing_message_file())


if __name__ == "__main__":
    main()
