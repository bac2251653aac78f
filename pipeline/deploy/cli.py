"""`python -m pipeline deploy | promote | rollback | stop | templates`: the flow wired to a deployer.

The version to deploy comes from the registry (an MLflow version, `latest`, a package ARN as the
EventBridge rule passes it, or `sagemaker:N`) and must be Approved. `--local` serves it on this
machine (its state under `<work-dir>/deploy/<env>`); without it, SageMaker in the config's account.
deploy, promote and rollback are guarded (`pipeline/governance/enforce.py`): the caller's role must
be allowed them in the environment, and each decision or refusal goes to the audit trail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.deploy import flow
from pipeline.deploy.aws import Candidate
from pipeline.deploy.declaration import build_deployment
from pipeline.registry import PACKAGE_TAG
from yolo_core.errors import UserInputError


def add_arguments(commands: Any, env_args: Any, store_args: Any, version_help: str) -> None:
    deploy = commands.add_parser("deploy", help="approved model -> staging -> tests -> gate -> production")
    promote = commands.add_parser("promote", help="pass the manual gate: staging's version to production")
    rollback = commands.add_parser("rollback", help="put the previous production version back")
    for parser in (deploy, promote, rollback):
        env_args(parser)
        store_args(parser)
        parser.add_argument("--local", action="store_true", help="serve on this machine, not SageMaker")
        parser.add_argument("--docker", action="store_true", help="with --local: the inference image")
        parser.add_argument("--image", default="", help="with --docker: the image (default: the config's)")
        parser.add_argument("--threads", type=int, default=0, help="with --local: CPU threads per server")
    for parser in (deploy, promote):
        parser.add_argument("--version", required=True, help=version_help)
    deploy.add_argument(
        "--holdout", type=Path, help="labelled YOLO folder (default: deployment.holdout_dataset)"
    )
    for parser in (promote, rollback):
        parser.add_argument(
            "--reason", required=parser is promote, default="", help="recorded in the audit log"
        )
        parser.add_argument("--who", default="", help="who decides (default: the OS user)")
    stop = commands.add_parser("stop", help="stop this machine's staging and production servers (--local)")
    env_args(stop)
    store_args(stop)
    stop.add_argument(
        "--local", action="store_true", required=True, help="the servers `deploy --local` started"
    )
    templates = commands.add_parser("templates", help="CloudFormation for the endpoints, alarms and rule")
    env_args(templates)
    templates.add_argument("--out", type=Path, default=Path("infra"), help="folder to write")


def state_dir(work_dir: Path, config: Any) -> Path:
    """Where an environment's local deployment keeps its history, model copies and server logs."""
    return Path(work_dir) / "deploy" / config.name


def _model_dir(version: Any, state_dir: Path) -> str:
    """A copy of the registered model folder (MLflow's `model` artifact) that the servers read."""
    from pipeline.tracking import download_registered

    target = state_dir / "models" / f"v{version.version}"
    if not (target / "model" / "model.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        download_registered(version.source, target)
    return str(target / "model")


def candidate(registry: Any, version: str, local: bool, state_dir: Path) -> tuple[Candidate, dict[str, str]]:
    """The registered version, refused unless approved (MLflow locally, the package on SageMaker)."""
    model_version = registry.approved_version(version, in_sagemaker=not local)
    tags = dict(model_version.tags)
    model_dir = _model_dir(model_version, state_dir) if local else ""
    candidate = Candidate(
        str(model_version.version), tags.get(PACKAGE_TAG, ""), tags.get("code_commit", ""), model_dir
    )
    return candidate, tags


def holdout_data(folder: Path, tags: dict[str, str], version: str, limit: int | None) -> flow.HoldoutData:
    """What the staging test compares with: the labelled folder's val split (its first `limit`
    images; None: all) against the version's registered mAP50-95."""
    from yolo_core.evaluation.ground_truth import load_split

    split = load_split(folder, "val")
    if not split.image_files:
        raise UserInputError(f"{folder}: the holdout's val split has no images")
    registered = tags.get("metric.map50_95")
    if registered is None:
        raise UserInputError(f"model version {version} has no registered metric.map50_95 to test against")
    count = len(split.image_files) if limit is None else limit
    return flow.HoldoutData(folder, list(split.names.values()), float(registered), count)


def _holdout_dir(args: argparse.Namespace, config: Any) -> Path:
    folder = args.holdout or (
        Path(config.deployment.holdout_dataset) if config.deployment.holdout_dataset else None
    )
    if folder is None:
        raise UserInputError(
            f"deploy: give --holdout DIR (a labelled YOLO folder) or deployment.holdout_dataset in "
            f"pipeline/config/{config.name}.yaml"
        )
    return folder


def _deployer(args: argparse.Namespace, config: Any, deployment: Any, state_dir: Path) -> Any:
    if args.local:
        from pipeline.deploy.local import LocalDeployer

        image = ""
        if args.docker:
            from pipeline.local_images import resolve_local_image

            image = args.image or resolve_local_image(config.images, "inference", config.images.tag)
        return LocalDeployer(state_dir, image, args.threads)
    from pipeline.aws import AwsClients
    from pipeline.deploy.aws import SageMakerDeployer
    from pipeline.deploy.history import History

    clients = AwsClients(config.region)
    history = History(config.s3_uri("deployments", deployment.project), clients.s3)
    return SageMakerDeployer(deployment, config.roles.job_role("hosting"), clients, history)


def run(args: argparse.Namespace, config: Any, registry: Any) -> int:
    if args.command == "templates":
        from pipeline.deploy.templates import write_templates

        for path in write_templates(config, args.out):
            print(path)
        return 0
    if args.command == "stop":
        from pipeline.deploy.local import LocalDeployer

        deployer = LocalDeployer(state_dir(args.work_dir, config))
        for server in deployer.stop_all():
            print(f"stopped {server}")
        return 0
    from pipeline.governance.enforce import guard

    if args.docker and not args.local:
        raise UserInputError("--docker: only with --local")
    if not args.local:
        from pipeline.aws import refuse_placeholder_account

        refuse_placeholder_account(config, args.command)  # before STS is asked who is calling
    audit_log = guard(args, config, getattr(args, "version", ""))
    deployment = build_deployment(config)
    local_state = state_dir(args.work_dir, config)
    deployer = _deployer(args, config, deployment, local_state)
    if args.command == "rollback":
        outcome = flow.rollback(deployment, deployer, args.reason, args.who, audit_log)
        if not args.local and outcome.status == "live":
            restored = deployer.history.live("production") or {}
            _monitor_live_version(config, deployer, str(restored.get("version", "")), None)
    else:
        chosen, tags = candidate(registry, args.version, args.local, local_state)
        if args.command == "promote":
            outcome = flow.promote(deployment, deployer, chosen, args.reason, args.who, audit_log)
        else:
            outcome = deploy(args, config, deployment, deployer, chosen, tags, audit_log)
        if not args.local and outcome.status == "live":
            _monitor_live_version(config, deployer, chosen.version, tags)
    print(outcome.message)
    if args.local:
        for stage in ("staging", "production"):
            if deployer.url(stage):
                print(f"{stage}: {deployer.url(stage)}")
    return 0 if outcome.ok else 1


def _monitor_live_version(config: Any, deployer: Any, version: str, tags: dict[str, str] | None) -> None:
    """Point the scheduled monitoring at the version now live in production: its references from
    its registry tags (a promotion; remembered in the history) or from the history (a rollback)."""
    from pipeline.monitoring.references import (
        publish_production_references,
        reference_sources,
        seed_ground_truth_prefix,
    )

    try:
        if tags is not None:
            sources = reference_sources(tags)
            deployer.history.save_monitoring_sources(version, sources)
        else:
            sources = deployer.history.monitoring_sources(version)
            if sources is None:
                raise UserInputError(f"the deployment history has no references of version {version}")
        copied = publish_production_references(deployer.clients.s3, config, sources)
        print(f"monitoring references of version {version}: {', '.join(copied.values())}")
        seed_ground_truth_prefix(deployer.clients.s3, config)
    except UserInputError as exc:  # registered before monitoring existed: say so, go on
        print(f"monitoring references not updated: {exc}", file=sys.stderr)


def deploy(
    args, config, deployment, deployer, chosen: Candidate, tags: dict[str, str], audit_log: Any
) -> flow.Outcome:
    data = holdout_data(_holdout_dir(args, config), tags, chosen.version, config.deployment.holdout_images)
    if args.local:
        return flow.deploy_local(deployment, deployer, chosen, data, audit_log)
    from pipeline.deploy.checks import sagemaker_invoker

    runtime = deployer.clients.client("sagemaker-runtime")
    return flow.deploy(
        deployment, deployer, lambda c: sagemaker_invoker(runtime, deployer.stage(c)), chosen, data, audit_log
    )
