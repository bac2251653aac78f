"""`python -m pipeline monitor`: the monitoring pipeline, locally over a capture folder, or rendered
and upserted for SageMaker (where the monitoring template's schedule starts it every hour)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from yolo_core.cli_args import number
from yolo_core.errors import UserInputError


def add_arguments(commands: Any, env_args: Callable, store_args: Callable, version_help: str) -> None:
    monitor = commands.add_parser(
        "monitor", help="the monitoring pipeline: --local, --definition or --upsert"
    )
    env_args(monitor)
    store_args(monitor)
    mode = monitor.add_mutually_exclusive_group(required=True)
    mode.add_argument("--local", action="store_true", help="run it here over --capture DIR")
    mode.add_argument("--definition", action="store_true", help="write its SageMaker definition JSON")
    mode.add_argument("--upsert", action="store_true", help="create or update it in SageMaker")
    monitor.add_argument("--capture", type=Path, help="with --local: the data-capture folder to monitor")
    monitor.add_argument(
        "--version", default="latest", help=f"with --local: the approved version; {version_help}"
    )
    monitor.add_argument("--ground-truth", type=Path, help="labels by inference id (.jsonl): quality checks")
    monitor.add_argument(
        "--window-hours", type=number(int, 0), default=0, help="the hours before the last full hour (0: all)"
    )
    monitor.add_argument("--moto", action="store_true", help="with --local: a throwaway moto server as AWS")
    monitor.add_argument("--out", type=Path, help="with --definition: the file to write (default: stdout)")
    monitor.add_argument("--commit", default="", help="code commit recorded (default: git)")


def run(args: argparse.Namespace, config: Any, registry_of: Callable[[], Any]) -> int:
    from yolo_core.version import git_commit

    if args.definition:
        from pipeline.monitoring.render import monitoring_definition

        text = json.dumps(
            monitoring_definition(config, args.commit or git_commit()), indent=2, sort_keys=True
        )
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text + "\n")
            print(f"wrote the {config.name} monitoring pipeline definition to {args.out}", file=sys.stderr)
        else:
            print(text)
        return 0
    from pipeline.aws import refuse_placeholder_account

    if args.upsert:
        from pipeline.monitoring.render import upsert_monitoring

        refuse_placeholder_account(config, "monitor --upsert")
        print(upsert_monitoring(config, args.commit or git_commit()))
        return 0
    if args.capture is None or not args.capture.is_dir():
        raise UserInputError(f"monitor --local: --capture {args.capture or '(missing)'} is not a folder")
    if not args.moto:
        refuse_placeholder_account(
            config, "monitor --local (publishes to CloudWatch and EventBridge; --moto)"
        )
    with ExitStack() as stack:
        if args.moto:
            from pipeline.local_aws import use_moto

            stack.enter_context(use_moto(args.work_dir, config.region))
        return monitor_locally(args, config, registry_of())


def monitor_locally(args: argparse.Namespace, config: Any, registry: Any) -> int:
    from pipeline.aws import AwsClients
    from pipeline.monitoring.local import (
        provision_alert_route,
        receive_alerts,
        registered_references,
        run_monitoring_locally,
    )
    from pipeline.tracking import default_tracking_uri

    references = registered_references(registry, args.version, args.work_dir / "monitoring" / "references")
    clients = AwsClients(config.region)
    queue = provision_alert_route(clients, config) if args.moto else ""
    run = run_monitoring_locally(
        config,
        args.work_dir,
        args.capture,
        references,
        args.ground_truth,
        args.window_hours,
        args.tracking_uri or default_tracking_uri(args.work_dir),
    )
    summary = run.summary
    print(
        f"monitored version {references.version}: {summary['records']} records, {summary['images']} images, "
        f"{summary['violations']} of {summary['checks']} checks violated; report: {run.results}/report.html"
    )
    for alert in receive_alerts(clients, queue) if queue else ():
        detail = alert["detail"]
        print(f"alert on the queue: {alert['detail-type']}: {detail['violation_count']} {detail['features']}")
    return 0
