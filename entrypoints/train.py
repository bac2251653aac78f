"""`train`: the SageMaker training-job command.

Reads the contract under /opt/ml (`SAGEMAKER_BASE_DIR` moves it for local runs):
- input/config/hyperparameters.json: string values, see `--help` for the names;
- input/config/inputdataconfig.json: the channels, either one `dataset` channel holding a
  data.yaml (what preprocess writes), or `train` (+ `val`) channels with images/ and labels/
  folders; an optional `weights` channel holds starting weights (.pt);
- input/config/resourceconfig.json: the hosts. One host trains alone (several GPUs on it with
  Ultralytics' DDP); with several, each host launches torchrun (`entrypoints/distributed.py`),
  whose workers run this command with `--worker`, and the leader (first host) exports the model;
- checkpoints/: the run itself; a spot restart finds it there and resumes (in a multi-host run
  only the leader writes it, and sends the followers what they resume from). With
  CHECKPOINTS_PER_JOB=1 (a tuning job's trials, which share one checkpoint URI) the run is in
  checkpoints/<TRAINING_JOB_NAME>/, so no trial resumes another's.
Writes model/best.pt + model/model.json (the leader's host only), or output/failure (one line)
and a non-zero exit.
Environment: IMAGE_URI and GIT_COMMIT (set by both pipeline renderers: SageMaker and local) and
TRAINING_JOB_NAME/ARN (set by SageMaker) become MLflow tags.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from entrypoints import distributed
from entrypoints.contract import TrainingPaths, image_commit, read_json_file, run_main, write_failure
from yolo_core.errors import UserInputError
from yolo_core.hyperparams import Hyperparameters, describe
from yolo_core.runtime import passive_openmp_waits
from yolo_core.train.spot import TrainingInterrupted

if TYPE_CHECKING:
    from yolo_core.train.trainer import TrainingJob, TrainingOutcome

# Before anything imports torch (OpenMP reads it once, as torch loads it).
passive_openmp_waits()
LOG = logging.getLogger("train")
TAG_ENV = {
    "IMAGE_URI": "image_uri",
    "TRAINING_JOB_NAME": "training_job_name",
    "TRAINING_JOB_ARN": "training_job_arn",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train",
        description=(
            "Train a YOLOv11 detector under the SageMaker training contract. Resumes from "
            "/opt/ml/checkpoints after a spot interruption; a finished run is only re-exported. "
            "With several hosts in resourceconfig.json, each launches torchrun."
        ),
        epilog="Hyperparameters (hyperparameters.json, all values strings):\n" + describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # What the launcher's torchrun starts on each host: one rank of a multi-host run.
    parser.add_argument(distributed.WORKER_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=("gloo", "nccl"), default="gloo", help=argparse.SUPPRESS)
    return parser


def channels(paths: TrainingPaths) -> dict[str, Path]:
    """The input channels: inputdataconfig.json's names, or the folders present if it is absent."""
    config = read_json_file(paths.input_data_config_file, "inputdataconfig.json")
    data_root = paths.base / "input" / "data"
    names = list(config) if config else sorted(p.name for p in data_root.glob("*") if p.is_dir())
    found = {}
    for name in names:
        folder = paths.channel(name)
        if not folder.is_dir():
            raise UserInputError(f"{paths.input_data_config_file}: channel '{name}' has no folder {folder}")
        found[name] = folder
    return found


def _find_one(folder: Path, pattern: str, what: str) -> Path:
    matches = sorted(folder.glob(pattern)) or sorted(folder.glob(f"*/{pattern}"))
    if len(matches) != 1:
        detail = "none" if not matches else ", ".join(str(m) for m in matches[:5])
        raise UserInputError(f"channel folder {folder}: expected one {what}, found {detail}")
    return matches[0]


def _names_from(folder: Path) -> dict[int, str]:
    import yaml

    for candidate in (folder / "data.yaml", folder / "dataset.json"):
        if candidate.is_file():
            document = (yaml.safe_load if candidate.suffix == ".yaml" else json.loads)(candidate.read_text())
            names = (document or {}).get("names")
            if names:
                return (
                    dict(enumerate(names))
                    if isinstance(names, list)
                    else {int(k): v for k, v in names.items()}
                )
    raise UserInputError(f"channel folder {folder}: needs a data.yaml or dataset.json with the class names")


def data_yaml_for(found: dict[str, Path], work_dir: Path) -> Path:
    """The data.yaml to train on, from a `dataset` channel or from `train`/`val` channels."""
    from yolo_core.train.data_source import write_data_yaml

    if "dataset" in found:
        return _find_one(found["dataset"], "data.yaml", "data.yaml")
    if "train" not in found:
        raise UserInputError(
            "inputdataconfig.json: needs a 'dataset' channel or a 'train' channel; "
            f"got {sorted(found) or 'none'}"
        )
    train_images = found["train"] / "images"
    val_images = found["val"] / "images" if "val" in found else train_images
    for folder in (train_images, val_images):
        if not folder.is_dir():
            raise UserInputError(f"channel folder {folder.parent}: expected images/ and labels/ folders")
    return write_data_yaml(work_dir / "data.yaml", train_images, val_images, _names_from(found["train"]))


def weights_for(hp: Hyperparameters, found: dict[str, Path]) -> Path | None:
    """Starting weights: `weights` as a path, or a file (or the only .pt) in the weights channel."""
    if "weights" in found:
        if hp.weights:
            candidate = found["weights"] / hp.weights
            if not candidate.is_file():
                raise UserInputError(
                    f"hyperparameter 'weights': {hp.weights} not found in {found['weights']}"
                )
            return candidate
        return _find_one(found["weights"], "*.pt", ".pt file")
    if hp.weights:
        path = Path(hp.weights)
        if not path.is_file():
            raise UserInputError(f"hyperparameter 'weights': {path} not found (and no 'weights' channel)")
        return path
    return None


def check_weights(weights: Path | None) -> None:
    """Load the starting weights once up front: a broken file is then one line naming it, not
    Ultralytics' traceback (and its advice to download the file) from inside the trainer."""
    if weights is None:
        return
    from yolo_core.infer.torch_backend import load_ultralytics_model

    load_ultralytics_model(weights)


def _job(paths: TrainingPaths, hp: Hyperparameters, work_dir: Path) -> TrainingJob:
    """The run this host's contract describes, its inputs checked."""
    from yolo_core.train.trainer import TrainingJob

    found = channels(paths)
    work_dir.mkdir(parents=True, exist_ok=True)
    data_yaml = data_yaml_for(found, work_dir)
    weights = weights_for(hp, found)
    check_weights(weights)
    return TrainingJob(
        data_yaml=data_yaml,
        checkpoint_dir=paths.checkpoint_dir,
        model_dir=paths.model_dir,
        hyperparameters=hp,
        weights=weights,
        tags={tag: os.environ[env] for env, tag in TAG_ENV.items() if os.environ.get(env)},
        code_commit=image_commit(),
        work_dir=work_dir,
    )


def _interrupted(exc: TrainingInterrupted, failure_file: Path) -> int:
    """The spot contract: the reason in the failure file, exit 128 + the signal."""
    write_failure(failure_file, str(exc))
    print(f"error: {exc}", file=sys.stderr)
    return exc.exit_code


def _report(outcome: TrainingOutcome) -> None:
    verb = "trained" if outcome.trained else "exported (the run had already finished)"
    print(
        f"train: {verb}; {outcome.epochs_completed} epochs; metrics {outcome.card.metrics}; "
        f"model in {outcome.model_dir}; MLflow run {outcome.mlflow_run_id}",
        flush=True,
    )


def _train_alone(paths: TrainingPaths, hp: Hyperparameters) -> int:
    from yolo_core.train.trainer import train

    try:
        outcome = train(_job(paths, hp, paths.output_dir / "train-work"))
    except TrainingInterrupted as exc:
        return _interrupted(exc, paths.failure_file)
    _report(outcome)
    return 0


def _launch_hosts(paths: TrainingPaths, hp: Hyperparameters, resources: dict) -> int:
    """This host's part of a multi-host run: torchrun here, then (the leader) the export."""
    from yolo_core.train.devices import gpu_count_of, resolve_device
    from yolo_core.train.trainer import finish

    plan = distributed.plan_from_env(resources, gpu_count_of(resolve_device(hp.device)))
    job = _job(paths, hp, paths.output_dir / "train-work")  # bad input fails here, on every host
    LOG.info(
        "host %s: node %d of %d, %d process(es), %s, rendezvous at %s:%d",
        plan.hosts[plan.node_rank],
        plan.node_rank,
        plan.nnodes,
        plan.nproc_per_node,
        plan.backend,
        plan.master_addr,
        plan.master_port,
    )
    result = distributed.launch(plan, paths)
    if result.exit_code:
        write_failure(paths.failure_file, result.reason)
        print(f"error: {result.reason}", file=sys.stderr)
        return result.exit_code
    if not plan.is_leader:
        print(f"train: node {plan.node_rank} done; the leader {plan.leader} exports the model", flush=True)
        return 0
    _report(finish(job, trained=result.trained))
    return 0


def _train_rank(paths: TrainingPaths, hp: Hyperparameters, backend: str) -> int:
    """One torchrun worker: a rank of the run; its outcome goes to the launcher's status file."""
    from yolo_core.train.distributed import DistributedSpec
    from yolo_core.train.trainer import train_rank

    me = distributed.worker_identity()
    spec = DistributedSpec(
        me.rank, me.local_rank, me.world_size, backend, timeout_s=distributed.COLLECTIVE_TIMEOUT_S
    )
    job = _job(paths, hp, paths.output_dir / "train-work" / f"rank-{me.rank}")
    try:
        trained = train_rank(job, spec)
    except TrainingInterrupted as exc:
        distributed.write_status(paths, me.local_rank, exc.exit_code)
        return _interrupted(exc, distributed.failure_file(paths, me.local_rank))
    distributed.write_status(paths, me.local_rank, 0, trained)
    return 0


def run(argv: list[str] | None = None) -> int:
    """The command's work; `main` adds the contract's failure handling around it."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a != "train"]  # `docker run IMAGE train`
    options = _parser().parse_args(args)
    rank = f"[rank {os.environ.get('RANK', '?')}] " if options.worker else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s {rank}%(name)s: %(message)s")

    from entrypoints.environment import configure_offline

    configure_offline()
    paths = TrainingPaths.from_env().with_job_checkpoints()
    hp = Hyperparameters.from_mapping(
        read_json_file(paths.hyperparameters_file, "hyperparameters.json"),
        source=str(paths.hyperparameters_file),
    )
    if options.worker:
        return _train_rank(paths, hp, options.backend)
    resources = read_json_file(paths.resource_config_file, "resourceconfig.json")
    if distributed.host_count(resources) > 1:
        return _launch_hosts(paths, hp, resources)
    return _train_alone(paths, hp)


def main() -> None:
    paths = TrainingPaths.from_env()
    if distributed.WORKER_FLAG in sys.argv:  # a worker's reason goes to its launcher
        failure = distributed.failure_file(paths, int(os.environ.get("LOCAL_RANK") or 0))
    else:
        failure = paths.failure_file
    run_main(run, failure)


if __name__ == "__main__":
    main()
