"""`python -m pipeline audit`: the audit trail of an environment, oldest event first.

Without `--local` it reads the environment's S3 trail; with it (or `--audit-log FILE`) the local file
that `--local` commands and the demo write.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from pipeline.governance.audit import event_line, s3_trail
from pipeline.governance.enforce import trail_for


def add_arguments(commands: Any, env_args: Callable, store_args: Callable, version_help: str) -> None:
    audit = commands.add_parser("audit", help="the audit trail: decisions and refusals, oldest first")
    env_args(audit)
    store_args(audit)
    audit.add_argument(
        "--local", action="store_true", help="the local trail (<work-dir>/registry-audit.jsonl)"
    )
    audit.add_argument("--version", default="", help=f"only this model version; {version_help}")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace, config: Any) -> int:
    if args.local or args.audit_log:
        trail = trail_for(config, True, args.work_dir, args.audit_log, None)
    else:
        from pipeline.aws import AwsClients, refuse_placeholder_account

        refuse_placeholder_account(config, "audit")
        trail = s3_trail(config, AwsClients(config.region).s3)
    events = [e for e in trail.read() if not args.version or str(e.get("version", "")) == args.version]
    for event in events:
        print(json.dumps(event, sort_keys=True) if args.json else event_line(event))
    return 0
