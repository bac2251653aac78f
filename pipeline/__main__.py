"""`python -m pipeline COMMAND`: render, upsert and start the SageMaker pipeline, run it locally,
approve or reject registered models, show their lineage, and run the demo.

  definition  write the pipeline definition JSON (offline)
  upsert      create or update the pipeline in SageMaker
  start       start an execution (parameters as -p Name=Value)
  local       run the same DAG on this machine (subprocesses, or --docker images)
  approve     approve a registered model version (MLflow and SageMaker; ML engineers; audited)
  reject      reject a registered model version (ML engineers; audited)
  lineage     data, code, images and pipeline run behind a model version
  features    write a baseline's image statistics to the feature store
  layout      lay out a SageMaker training tree (/opt/ml) from a dataset folder, for `make run-train`
  deploy      an approved version: staging, its tests, the gate, production (blue/green)
  promote     pass the manual gate: the staged version to production (audited)
  rollback    put the previous production version back (audited)
  stop        stop the staging and production servers `deploy --local` started
  templates   CloudFormation for the endpoints, alarms, autoscaling and the approval rule
  monitor     the monitoring pipeline: --local over a capture folder, --definition, --upsert
  audit       the audit trail: every decision and refusal of approve/reject/deploy/promote/rollback
  tune        hyperparameter search: --local short trials here, or a SageMaker tuning job
  compare     registered model versions side by side (metrics, data, code, hyperparameters)
  demo        synthetic data -> local pipeline -> registry -> approval -> local serving
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from entrypoints.contract import run_main
from entrypoints.environment import configure_offline
from yolo_core.cli_args import Parser
from yolo_core.errors import UserInputError

DEFAULT_WORK_DIR = Path(".pipeline")
VERSION_HELP = "MLflow version number, 'latest', a SageMaker model package ARN, or sagemaker:N"


def _env_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env", default="dev", help="environment: dev, staging or prod (pipeline/config/<env>.yaml)"
    )
    parser.add_argument("--config", type=Path, help="a config YAML instead of the bundled one")


def _store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="MLflow store, logs, audit log"
    )
    parser.add_argument("--tracking-uri", default="", help="MLflow URI (default: sqlite in --work-dir)")
    parser.add_argument(
        "--audit-log",
        type=Path,
        help="audit trail file (default: the S3 trail; --local: <work-dir>/registry-audit.jsonl)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = Parser(  # and its subcommands: a bad flag is one line, not the usage block
        prog="python -m pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    definition = commands.add_parser("definition", help="write the SageMaker pipeline definition JSON")
    _env_args(definition)
    definition.add_argument("--out", type=Path, help="file to write (default: stdout)")
    definition.add_argument(
        "--commit", default="", help="code commit recorded in the definition (default: git)"
    )

    upsert = commands.add_parser("upsert", help="create or update the pipeline in SageMaker")
    _env_args(upsert)
    upsert.add_argument("--commit", default="")
    upsert.add_argument(
        "--image-tag", default="", help="images' tag (default: the one `make push` pushed, else the config's)"
    )

    start = commands.add_parser("start", help="start a pipeline execution")
    _env_args(start)
    start.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    start.add_argument("--display-name", default="")

    local = commands.add_parser("local", help="run the DAG on this machine")
    _env_args(local)
    _store_args(local)
    local.add_argument("--input", required=True, help="raw data: a folder or s3:// URI (sets InputDataUri)")
    local.add_argument("--store", default="", help="artifact store: folder or s3://bucket/prefix")
    local.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    local.add_argument(
        "--hp", action="append", default=[], metavar="NAME=VALUE", help="extra fixed hyperparameter"
    )
    local.add_argument("--docker", action="store_true", help="run each step in its image")
    local.add_argument("--gpus", action="store_true", help="with --docker: give the containers every GPU")
    local.add_argument("--moto", action="store_true", help="use a throwaway moto server as AWS")
    local.add_argument(
        "--no-register", action="store_true", help="stop after the quality gate (no AWS needed)"
    )

    for name, verb in (("approve", "approve"), ("reject", "reject")):
        decide = commands.add_parser(name, help=f"{verb} a registered model version")
        _env_args(decide)
        _store_args(decide)
        decide.add_argument("--version", required=True, help=VERSION_HELP)
        decide.add_argument("--reason", required=True, help="why (recorded in the audit log)")
        decide.add_argument("--who", default="", help="who decides (default: the OS user)")

    lineage = commands.add_parser("lineage", help="where a model version came from")
    _env_args(lineage)
    _store_args(lineage)
    lineage.add_argument("--version", default="latest", help=VERSION_HELP)

    features = commands.add_parser("features", help="feature-store records from a preprocess baseline")
    _env_args(features)
    features.add_argument("--baseline", type=Path, required=True, help="baseline.json from preprocess")
    features.add_argument("--dataset-hash", required=True, help="dataset_hash from dataset.json")
    features.add_argument("--out", type=Path, default=Path("features"), help="folder for the Parquet files")
    features.add_argument("--offline-store", action="store_true", help="also write to S3 + the feature group")

    layout = commands.add_parser("layout", help="a SageMaker training tree from a dataset folder")
    layout.add_argument("--dataset", type=Path, required=True, help="preprocess's dataset (with data.yaml)")
    layout.add_argument("--opt-ml", type=Path, required=True, help="the tree to lay out (mounted as /opt/ml)")
    layout.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="a hyperparameter")

    from pipeline.deploy.cli import add_arguments as add_deploy_arguments

    add_deploy_arguments(commands, _env_args, _store_args, VERSION_HELP)

    from pipeline.monitoring.cli import add_arguments as add_monitor_arguments

    add_monitor_arguments(commands, _env_args, _store_args, VERSION_HELP)

    from pipeline.governance.cli import add_arguments as add_audit_arguments

    add_audit_arguments(commands, _env_args, _store_args, VERSION_HELP)

    from pipeline.tuning.cli import add_arguments as add_tune_arguments

    add_tune_arguments(commands, _env_args, _store_args)

    from pipeline.compare import add_arguments as add_compare_arguments

    add_compare_arguments(commands, _env_args, _store_args, VERSION_HELP)

    demo = commands.add_parser("demo", help="the whole path on synthetic data, on this machine")
    from pipeline.demo import add_demo_arguments

    add_demo_arguments(demo)
    return parser


def _config(args: argparse.Namespace):
    from pipeline.config import load_config

    return load_config(None if args.config else args.env, args.config)


def _commit(args: argparse.Namespace) -> str:
    from yolo_core.version import git_commit

    return args.commit or git_commit()


def cmd_definition(args: argparse.Namespace) -> int:
    from pipeline.sagemaker_render import write_definition

    config = _config(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w") as handle:
            write_definition(config, _commit(args), handle)
        print(f"wrote the {config.name} pipeline definition to {args.out}", file=sys.stderr)
    else:
        write_definition(config, _commit(args), sys.stdout)
    return 0


def cmd_upsert(args: argparse.Namespace) -> int:
    from pipeline.aws import refuse_placeholder_account
    from pipeline.pushed_images import pushed_tag
    from pipeline.sagemaker_render import upsert

    config = _config(args)
    refuse_placeholder_account(config, "upsert")
    tag = args.image_tag or pushed_tag(config.images.registry) or config.images.tag
    config = config.model_copy(update={"images": config.images.model_copy(update={"tag": tag})})
    print(f"images: {config.images.registry}/...:{tag}", file=sys.stderr)
    print(upsert(config, _commit(args)))
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from pipeline import dag as d
    from pipeline.aws import refuse_placeholder_account
    from pipeline.sagemaker_render import start

    config = _config(args)
    parameters = d.parse_parameter_overrides(d.build_dag(config), args.param)
    refuse_placeholder_account(config, "start")
    print(start(config, parameters, display_name=args.display_name or None))
    return 0


def _hyperparameters(items: list[str]) -> dict[str, str]:
    from pipeline.dag import split_pairs
    from yolo_core.hyperparams import Hyperparameters

    pairs = split_pairs(items, "--hp")
    Hyperparameters.from_mapping(pairs, source="--hp")  # fail now, not in the training step
    return pairs


def cmd_local(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from pipeline.aws import refuse_placeholder_account
    from pipeline.dag import split_pairs
    from pipeline.local_runner import LocalRunSettings, run_local, summary
    from pipeline.tracking import ui_command

    config = _config(args)
    if args.gpus and not args.docker:
        raise UserInputError("--gpus: only with --docker (without it the steps use this machine's GPUs)")
    if not args.moto and not (args.no_register and not f"{args.input}{args.store}".startswith("s3://")):
        refuse_placeholder_account(config, "local (registers in SageMaker; --no-register needs no AWS)")
    with ExitStack() as stack:
        if args.moto:
            from pipeline.local_aws import use_moto

            stack.enter_context(use_moto(args.work_dir, config.region))
        settings = LocalRunSettings(
            config=config,
            work_dir=args.work_dir,
            store=args.store,
            parameters={"InputDataUri": args.input, **split_pairs(args.param, "parameter")},
            hyperparameters=_hyperparameters(args.hp),
            tracking_uri=args.tracking_uri,
            docker=args.docker,
            gpus=args.gpus,
            register=not args.no_register,
            audit_log=args.audit_log,
        )
        result = run_local(settings)
    print(summary(result))
    print(f"  open MLflow: {ui_command(result.tracking_uri)}")
    return 0 if result.status == "Succeeded" else 1


def _registry(args: argparse.Namespace, audit=None):
    from pipeline.aws import AwsClients
    from pipeline.registry import ModelRegistry
    from pipeline.tracking import default_tracking_uri

    config = _config(args)
    tracking_uri = args.tracking_uri or default_tracking_uri(args.work_dir)
    audit = audit or args.audit_log or args.work_dir / "registry-audit.jsonl"
    return ModelRegistry(config, tracking_uri, AwsClients(config.region), audit)


def cmd_decide(args: argparse.Namespace) -> int:
    from pipeline.aws import refuse_placeholder_account
    from pipeline.governance.enforce import guard

    config = _config(args)
    refuse_placeholder_account(config, args.command)
    registry = _registry(args, guard(args, config, args.version))
    decide = registry.approve if args.command == "approve" else registry.reject
    model = decide(args.version, args.reason, args.who or None)
    print(f"{model.name} version {model.version}: {model.status} (MLflow and {model.model_package_arn})")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    print(json.dumps(_registry(args).lineage(args.version), indent=2, sort_keys=True))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from pipeline.feature_store import write_feature_files, write_offline_store

    config = _config(args)
    files = write_feature_files(args.baseline, args.dataset_hash, args.out)
    print(f"{files.image_count} image records: {files.images}; class summaries: {files.classes}")
    if args.offline_store:
        from pipeline.aws import AwsClients, refuse_placeholder_account

        refuse_placeholder_account(config, "features --offline-store")
        aws = AwsClients(config.region)
        written = write_offline_store(config, files, args.dataset_hash, aws.sagemaker, aws.s3)
        print(f"offline store: {written.images_uri} (feature group {written.feature_group_arn})")
    return 0


def cmd_layout(args: argparse.Namespace) -> int:
    from pipeline.layout import lay_out_training_tree

    hyperparameters = _hyperparameters(args.hp)
    base = lay_out_training_tree(args.dataset, args.opt_ml, hyperparameters)
    print(f"training tree in {base}: input/data/dataset, input/config/*.json; `make run-train OPT_ML={base}`")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from pipeline.deploy.cli import run

    needs_registry = args.command in {"deploy", "promote"}
    return run(args, _config(args), _registry(args) if needs_registry else None)


def cmd_audit(args: argparse.Namespace) -> int:
    from pipeline.governance.cli import run

    return run(args, _config(args))


def cmd_monitor(args: argparse.Namespace) -> int:
    from pipeline.monitoring.cli import run

    return run(args, _config(args), lambda: _registry(args))


def cmd_tune(args: argparse.Namespace) -> int:
    from pipeline.tuning.cli import run

    return run(args, _config(args))


def cmd_compare(args: argparse.Namespace) -> int:
    from pipeline.compare import run

    return run(args, _registry(args))


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(args)


COMMANDS = {
    "definition": cmd_definition,
    "upsert": cmd_upsert,
    "start": cmd_start,
    "local": cmd_local,
    "approve": cmd_decide,
    "reject": cmd_decide,
    "lineage": cmd_lineage,
    "features": cmd_features,
    "layout": cmd_layout,
    "deploy": cmd_deploy,
    "promote": cmd_deploy,
    "rollback": cmd_deploy,
    "stop": cmd_deploy,
    "templates": cmd_deploy,
    "monitor": cmd_monitor,
    "audit": cmd_audit,
    "tune": cmd_tune,
    "compare": cmd_compare,
    "demo": cmd_demo,
}


def _with_clear_aws_errors(args: argparse.Namespace) -> int:
    """AWS errors are the user's to fix (credentials, endpoint, permissions): one line, no traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return COMMANDS[args.command](args)
    except (BotoCoreError, ClientError) as exc:
        raise UserInputError(f"AWS: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from pipeline.demo import check_demo_arguments

        check_demo_arguments(parser, args)

    def offline_command() -> int:
        configure_offline()  # inside run_main: a refused cache folder is a one-line error
        return _with_clear_aws_errors(args)

    run_main(offline_command)


if __name__ == "__main__":
    main()
