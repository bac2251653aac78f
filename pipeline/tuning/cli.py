"""`python -m pipeline tune`: the hyperparameter search, here (--local) or as a SageMaker tuning job
(--definition writes its request offline, --create creates it).

A local search writes, beside the table of its trials, the best configuration in the forms the
other commands take: `best_hyperparameters.json`, `local_args.txt` (`--hp NAME=VALUE ...` for
`python -m pipeline local`) and `<env>-tuned.yaml`, the environment's config with the tuned values
added to `training.hyperparameters`, for `local`, `upsert` and `start` (`--config FILE`): the
SageMaker pipeline fixes its hyperparameters in the definition, so `start -p` takes only pipeline
parameters (Epochs, ImageSize, ...), and a tuned configuration reaches it through `upsert --config`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from yolo_core.cli_args import number
from yolo_core.errors import UserInputError

LOCAL_ARGS_FILE = "local_args.txt"


def add_arguments(commands: Any, env_args: Callable, store_args: Callable) -> None:
    tune = commands.add_parser("tune", help="hyperparameter search: --local, --definition or --create")
    env_args(tune)
    store_args(tune)
    mode = tune.add_mutually_exclusive_group(required=True)
    for flag, meaning in (
        ("--local", "short trials here (Optuna), in MLflow"),
        ("--definition", "write the SageMaker tuning job request"),
        ("--create", "create the SageMaker tuning job"),
    ):
        mode.add_argument(flag, action="store_true", help=meaning)
    add = tune.add_argument
    add("--dataset", default="", help="--local: a dataset folder (data.yaml); SageMaker: its s3:// URI")
    add("--synthetic", type=number(int, 4), default=0, help="--local: N synthetic frames, not --dataset")
    add("--trials", type=number(int, 1), default=8, help="trials (SageMaker: training jobs)")
    add("--epochs", type=number(int, 1), default=3, help="--local: epochs of each trial")
    add("--imgsz", type=number(int, 32), default=320, help="--local: image size of the trials")
    add("--weights", type=Path, help="--local: starting weights (.pt) of every trial")
    add("--hp", action="append", default=[], metavar="NAME=VALUE", help="a fixed hyperparameter")
    add(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="SageMaker: a pipeline parameter",
    )
    add("--max-parallel", type=number(int, 1), default=2, help="SageMaker: jobs at once")
    add("--job-name", default="", help="SageMaker: the tuning job's name (default: timestamped)")
    add("--seed", type=number(int, 0), default=0, help="the sampler's seed")
    add("--out", type=Path, help="--definition: the file (default: stdout); --local: the search's folder")
    add("--commit", default="", help="code commit the jobs record (default: git)")


def _fixed(args: argparse.Namespace) -> dict[str, str]:
    from pipeline.dag import split_pairs

    return split_pairs(args.hp, "--hp")


def run(args: argparse.Namespace, config: Any) -> int:
    if args.local:
        return run_local(args, config)
    return run_sagemaker(args, config)


def run_sagemaker(args: argparse.Namespace, config: Any) -> int:
    from pipeline.dag import split_pairs
    from pipeline.tuning.sagemaker_job import default_job_name, tuning_job_request, validate_request
    from yolo_core.version import git_commit

    if not args.dataset:
        raise UserInputError(
            "tune --definition/--create: --dataset s3://... (the preprocessed dataset) is needed"
        )
    request = tuning_job_request(
        config,
        job_name=args.job_name or default_job_name(config),
        dataset_uri=args.dataset,
        code_commit=args.commit or git_commit(),
        parameters=split_pairs(args.param, "parameter"),
        fixed=_fixed(args),
        max_jobs=args.trials,
        max_parallel=args.max_parallel,
        seed=args.seed,
    )
    validate_request(request)
    if args.definition:
        text = json.dumps(request, indent=2, sort_keys=True) + "\n"
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
            print(f"wrote the {config.name} tuning job request to {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    from pipeline.aws import AwsClients, refuse_placeholder_account
    from pipeline.tuning.sagemaker_job import create_tuning_job

    refuse_placeholder_account(config, "tune --create")
    print(create_tuning_job(AwsClients(config.region).sagemaker, request))
    return 0


def _local_dataset(args: argparse.Namespace, folder: Path) -> Path:
    if args.synthetic and args.dataset:
        raise UserInputError("tune --local: give --dataset or --synthetic, not both")
    if args.synthetic:
        from yolo_core.data.dataset import build_dataset
        from yolo_core.data.synthetic import generate_scenes

        raw = generate_scenes(
            folder / "synthetic" / "raw",
            args.synthetic,
            seed=args.seed,
            width=320,
            height=320,
            object_px=(14, 48),
        )
        return build_dataset(
            raw, folder / "synthetic" / "dataset", "visdrone", seed=args.seed, progress=False
        ).data_yaml
    data_yaml = Path(args.dataset) / "data.yaml"
    if not args.dataset or not data_yaml.is_file():
        raise UserInputError(
            f"tune --local: --dataset {args.dataset or '(missing)'} has no data.yaml (or --synthetic N)"
        )
    return data_yaml


def tuned_config_text(config: Any, best: dict[str, str]) -> str:
    """The environment's config with the tuned values among its fixed training hyperparameters."""
    import yaml

    document = config.model_dump(mode="json")
    document["training"]["hyperparameters"] = {**document["training"]["hyperparameters"], **best}
    header = "# Generated by `python -m pipeline tune --local`: the bundled config plus the tuned values.\n"
    return header + yaml.safe_dump(document, sort_keys=False)


def run_local(args: argparse.Namespace, config: Any) -> int:
    from pipeline.tracking import default_tracking_uri, ui_command
    from pipeline.tuning.local_search import SearchSettings, run_search

    name = f"local-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    folder = args.out or args.work_dir / "tuning" / name
    tracking_uri = args.tracking_uri or default_tracking_uri(args.work_dir)
    settings = SearchSettings(
        data_yaml=_local_dataset(args, folder),
        work_dir=folder,
        tracking_uri=tracking_uri,
        experiment=f"{config.experiment_name}-tuning",
        trials=args.trials,
        epochs=args.epochs,
        fixed={**config.training.hyperparameters, **_fixed(args), "imgsz": args.imgsz},
        seed=args.seed,
        weights=args.weights,
        name=name,
    )
    result = run_search(settings)
    best = result.best_hyperparameters
    tuned = result.out_dir / f"{config.name}-tuned.yaml"
    tuned.write_text(tuned_config_text(config, best))
    local_args = " ".join(f"--hp {key}={value}" for key, value in sorted(best.items()))
    (result.out_dir / LOCAL_ARGS_FILE).write_text(local_args + "\n")
    print(result.table)
    score = f"{result.best.value:.5f} mAP50-95"
    print(f"best: trial {result.best.number} ({score}): {json.dumps(best, sort_keys=True)}")
    print(f"  in {result.out_dir}: best_hyperparameters.json, trials.csv, {tuned.name}, {LOCAL_ARGS_FILE}")
    print(f"  a full local run:  python -m pipeline local --env {config.name} --input RAW {local_args}")
    print(f"  SageMaker:         python -m pipeline upsert --config {tuned}  (then start --config {tuned})")
    print(f"  MLflow (parent run {result.parent_run_id}): {ui_command(tracking_uri)}")
    return 0
