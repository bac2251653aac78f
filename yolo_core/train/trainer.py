"""Train a YOLOv11 detector: start, resume after a spot restart, or just re-export a finished run.

`train(job)` is the one call the train entry point, the notebook and the tests make. The run
lives in `job.checkpoint_dir`:

    run_state.json         hyperparameters, augmentation, MLflow run id, resumes, status
    run/                   Ultralytics' folder: args.yaml, results.csv, plots
    run/weights/           epoch-NNNN[.partial].pt (last two), best.pt, final.pt (stripped best)
    mlflow/                the default sqlite MLflow store and its artifacts

At each start: a finished run is exported again without training; a run whose last checkpoint
already covers every epoch (stopped between its last save and the export) is validated and
exported; otherwise training resumes from the newest readable checkpoint, or starts.
A run across processes (hosts) calls `train_rank(job, spec)` in every rank, then `finish(job)` on
the leader's host: the same three decisions, taken by the leader and shared with the ranks.
Requires `yolo_core.runtime.configure_offline()` to have run before (it keeps Ultralytics offline).
"""

from __future__ import annotations

import logging
import math
import platform
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_core.errors import UserInputError, exception_line, one_line
from yolo_core.hyperparams import Hyperparameters, ultralytics_args
from yolo_core.infer.int8 import quantized_dir
from yolo_core.model_card import WEIGHTS_FILE, ModelCard
from yolo_core.redact import redact_values
from yolo_core.runtime import apply_thread_count, cpu_thread_count
from yolo_core.train.augment import AugmentConfig, augment_config
from yolo_core.train.checkpoint import Checkpoint, CheckpointStore, atomic_copy, atomic_write_bytes
from yolo_core.train.data_source import DataSpec, dataset_hash, read_data_yaml
from yolo_core.train.devices import check_batch_for_ranks, resolve_batch, resolve_device
from yolo_core.train.precision import cpu_bf16_speedup, resolve_precision, ultralytics_amp_arg
from yolo_core.train.run_state import FINISHED, RunState
from yolo_core.train.spot import StopSignal, TrainingInterrupted
from yolo_core.train.tracking import LocalStore, NoTracker, RunTracker, TrackingCallbacks
from yolo_core.version import code_version, git_commit
from yolo_core.weights import sha256_of

if TYPE_CHECKING:
    from yolo_core.train.distributed import DistributedSpec, RankGroup

LOG = logging.getLogger(__name__)
RUN_SUBDIR = "run"
SERVER_BATCH = 8
CARD_METRICS = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
}
_ULTRALYTICS_INTEGRATIONS = (
    "clearml",
    "comet",
    "dvc",
    "mlflow",
    "neptune",
    "raytune",
    "tensorboard",
    "wandb",
)


@dataclass(frozen=True)
class TrainingJob:
    """Everything a run needs, as plain arguments (the entry point reads them from /opt/ml)."""

    data_yaml: Path
    checkpoint_dir: Path
    model_dir: Path
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    weights: Path | None = None  # starting weights supplied by the user (never downloaded)
    dataset_hash: str = ""  # computed from the data when empty
    code_commit: str = ""  # the commit of the code (an image's GIT_COMMIT); the checkout's when empty
    tags: Mapping[str, str] = field(default_factory=dict)  # extra MLflow tags, e.g. image_uri
    work_dir: Path | None = None  # scratch space (the live MLflow database); a temp dir if None
    handle_signals: bool = True  # SIGTERM/SIGINT -> checkpoint and TrainingInterrupted
    callbacks: Mapping[str, Sequence[Callable]] = field(default_factory=dict)  # extra Ultralytics callbacks
    # Measure the inference engines for the model on this host (a few seconds) and record the
    # choice in model.json, so a server on a host like this one starts without measuring.
    record_inference_engine: bool = True


@dataclass(frozen=True)
class TrainingOutcome:
    model_dir: Path
    card: ModelCard
    trained: bool  # False when this start found a finished run and only exported it
    resumed_from: Path | None
    epochs_completed: int
    mlflow_run_id: str


@dataclass(frozen=True)
class _Plan:
    """The resolved settings of this start."""

    hp: Hyperparameters
    augment: AugmentConfig
    data: DataSpec
    device: str
    precision: str
    batch: int
    run_dir: Path
    store: CheckpointStore


def _card_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {short: round(float(metrics[key]), 6) for key, short in CARD_METRICS.items() if key in metrics}


def _disable_ultralytics_integrations() -> None:
    """Our tracker owns MLflow; Ultralytics' own callbacks would open second runs."""
    from ultralytics.utils import SETTINGS

    enabled = {key: False for key in _ULTRALYTICS_INTEGRATIONS if SETTINGS.get(key)}
    if enabled:
        SETTINGS.update(enabled)


# Where the run's MLflow lives is a connection detail, not a training setting: run_state.json keeps
# it redacted (the checkpoint folder is synced to S3), so a resumed run connects with the URI given.
_CONNECTION_FIELDS = ("tracking_uri",)


def _recorded_hyperparameters(state: RunState, given: Hyperparameters) -> Hyperparameters:
    connection = {name: getattr(given, name) for name in _CONNECTION_FIELDS}
    recorded = Hyperparameters.from_mapping({**state.hyperparameters, **connection}, source="run_state.json")
    changed = sorted(k for k, v in given.to_dict().items() if recorded.to_dict().get(k) != v)
    if changed:
        LOG.warning("resuming with the run's recorded hyperparameters; ignoring new values of %s", changed)
    return recorded


def _plan(job: TrainingJob, state: RunState | None, precision: str = "") -> _Plan:
    """The settings of this start; `precision` given (the leader's) is taken, not resolved again."""
    hp = _recorded_hyperparameters(state, job.hyperparameters) if state else job.hyperparameters
    augment = AugmentConfig(**state.augment) if state else augment_config(hp.augment, hp.augment_overrides)
    device = resolve_device(hp.device)
    threads = hp.threads or cpu_thread_count()
    if device == "cpu":
        apply_thread_count(threads)
    run_dir = Path(job.checkpoint_dir).resolve() / RUN_SUBDIR
    data = read_data_yaml(job.data_yaml)
    batch = resolve_batch(hp.batch, device)

    def bf16_speedup() -> float:  # measured only for "auto" on a CPU with bf16 instructions
        return cpu_bf16_speedup(hp.model, len(data.class_names), hp.imgsz, batch, threads)

    return _Plan(
        hp=hp,
        augment=augment,
        data=data,
        device=device,
        precision=precision or resolve_precision(hp.precision, device, bf16_speedup=bf16_speedup),
        batch=batch,
        run_dir=run_dir,
        store=CheckpointStore(run_dir / "weights"),
    )


def _ultralytics_args(plan: _Plan, weights: Path | None, resume_from: Path | None) -> dict[str, Any]:
    """Train arguments for Ultralytics; on resume only what may differ on a new host.

    Fields declared with `ultralytics=` pass as they are; the rest is derived here: paths and the
    device, batch and amp resolved for this host, the model file, the starting weights, the
    augmentation preset, and `cache` ('' is our "no cache", Ultralytics' is False).
    """
    hp = plan.hp
    resuming = resume_from is not None
    args = {
        "data": str(plan.data.yaml_path.resolve()),
        "save_dir": str(plan.run_dir),
        "device": plan.device,
        "cache": hp.cache or False,
        **ultralytics_args(hp, resuming=resuming),
    }
    if resuming:
        return {**args, "resume": str(resume_from)}
    return {
        **args,
        "task": "detect",
        "mode": "train",
        "model": f"{hp.model}.yaml",
        "pretrained": str(weights) if weights else False,
        "batch": plan.batch,
        "amp": ultralytics_amp_arg(plan.precision),
        "save": True,
        "exist_ok": True,
        "augmentations": plan.augment.albumentations(),
        **plan.augment.ultralytics_args(),
    }


def _is_complete(checkpoint: Checkpoint) -> bool:
    """All epochs done, or early stopping had decided to stop, when this checkpoint was saved."""
    if checkpoint.partial:
        return False
    args = checkpoint.data["train_args"]
    if checkpoint.completed_epochs >= int(args["epochs"]):
        return True
    patience = args.get("patience") or math.inf
    best_epoch = (checkpoint.data.get("stopper") or {}).get("best_epoch", 0)
    return checkpoint.completed_epochs - best_epoch >= patience


def _check_weights(weights: Path | None) -> None:
    if weights is None:
        return
    if not Path(weights).is_file():
        raise UserInputError(f"weights {weights}: file not found")
    if Path(weights).suffix != ".pt":
        raise UserInputError(f"weights {weights}: expected an Ultralytics .pt checkpoint")


def _run_tags(job: TrainingJob, plan: _Plan, state: RunState) -> dict[str, str]:
    import torch
    import ultralytics

    tags = {
        "git_commit": job.code_commit or git_commit(),
        "code_version": code_version(job.code_commit),
        "dataset_hash": state.dataset_hash,
        "resumes": str(state.resumes),
        "device": plan.device,
        "precision": plan.precision,
        "ultralytics_version": ultralytics.__version__,
        "torch_version": torch.__version__,
        "host": platform.node(),
    }
    if plan.device != "cpu":
        tags["gpu"] = torch.cuda.get_device_name(0)
    return {**tags, **job.tags}


def _open_tracker(
    job: TrainingJob, plan: _Plan, state: RunState, work_dir: Path
) -> tuple[RunTracker | NoTracker, str]:
    """The tracker of this start and the MLflow run id to record (the run's own, or a new one)."""
    if plan.hp.tracking_uri == "none":
        return NoTracker(), state.mlflow_run_id
    local = LocalStore(job.checkpoint_dir, work_dir)
    tracker = RunTracker.open(
        tracking_uri=plan.hp.tracking_uri,
        experiment_name=plan.hp.experiment_name,
        run_name=plan.hp.run_name,
        run_id=state.mlflow_run_id,
        tags=_run_tags(job, plan, state),
        local_store=local,
    )
    if tracker.run_id != state.mlflow_run_id:  # a new MLflow run: record its parameters once
        tracker.log_params(
            {
                **plan.hp.to_dict(),
                **{f"augment.{k}": v for k, v in plan.augment.to_dict().items()},
                **{f"resolved.{k}": v for k, v in state.resolved.items()},
            }
        )
    return tracker, tracker.run_id


def _validate(final_weights: Path, plan: _Plan) -> dict[str, float]:
    """Validation metrics of a finished model, for a run stopped between its last save and export."""
    from ultralytics import YOLO

    batch = plan.batch if plan.batch > 0 else 16
    metrics = YOLO(str(final_weights)).val(
        data=str(plan.data.yaml_path.resolve()),
        imgsz=plan.hp.imgsz,
        batch=batch,
        device=plan.device,
        plots=False,
        verbose=False,
        project=str(plan.run_dir),
        name="final-val",
        exist_ok=True,
    )
    return dict(metrics.results_dict)


def _finalize_stored_run(plan: _Plan) -> dict[str, float]:
    """final.pt of a run whose checkpoint covers every epoch; its validation metrics."""
    from ultralytics.utils.torch_utils import strip_optimizer

    if not plan.store.best_path.exists():
        raise UserInputError(f"{plan.store.dir}: the run is complete but best.pt is missing")
    final = atomic_copy(plan.store.best_path, plan.store.final_path)
    strip_optimizer(final)
    return _validate(final, plan)


def _inference_engines(weights: Path, plan: _Plan) -> list[dict]:
    """The engine choice measured for the exported weights on this host, as a card record; none
    (and a warning) if measuring fails: a model must not be lost to a benchmark."""
    from yolo_core.infer.engine_choice import measure_model_engines
    from yolo_core.infer.hardware import resolve_device as inference_device

    device = inference_device("cpu" if plan.device == "cpu" else plan.device.split(",")[0])
    batch = 8 if plan.device == "cpu" else 16  # the server's default micro-batch (entrypoints.serve)
    try:
        choice = measure_model_engines(
            weights, plan.hp.imgsz, device, batch, plan.hp.threads or cpu_thread_count()
        )
    except Exception as exc:  # noqa: BLE001 - recorded as absent; serving measures again
        LOG.warning("measuring the inference engines failed (%s); model.json records none", exc)
        return []
    LOG.info("inference engine for this host: %s", choice.summary())
    return [choice.to_record()]


def _export(plan: _Plan, state: RunState, job: TrainingJob) -> ModelCard:
    """best weights (stripped) + model.json into the model folder."""
    model_dir = Path(job.model_dir)
    weights = atomic_copy(plan.store.final_path, model_dir / WEIGHTS_FILE)
    card = ModelCard(
        class_names=plan.data.class_names,
        imgsz=plan.hp.imgsz,
        dataset_hash=state.dataset_hash,
        metrics=_card_metrics(state.metrics),
        code_version=code_version(job.code_commit),
        model=plan.hp.model,
        weights_sha256=sha256_of(weights),  # readers refuse weights that differ (yolo_core.weights)
        hyperparameters=plan.hp.to_dict(),
        extra={
            "epochs_completed": state.epochs_completed,
            "resumes": state.resumes,
            "mlflow_run_id": state.mlflow_run_id,
            "augment": state.augment,
            **state.resolved,
        },
    )
    card.save(model_dir)
    card = _quantize(model_dir, plan, card)
    if job.record_inference_engine:  # after int8, so the recorded choice has measured it too
        card.inference_engines = _inference_engines(weights, plan)
        card.save(model_dir)
    return card


def _quantize(model_dir: Path, plan: _Plan, card: ModelCard) -> ModelCard:
    """The int8 model and its measured cost beside the weights, where the hyperparameters ask
    (`yolo_core.evaluation.quantization`); the card as it then reads. A failure is logged and
    leaves the fp32 model as it is: a model must not be lost to its int8 copy."""
    if not plan.hp.int8_calibration_images:
        return card
    from yolo_core.evaluation.evaluate import EvaluationSettings
    from yolo_core.evaluation.quantization import quantize_model_dir

    settings = EvaluationSettings(device="cpu", imgsz=plan.hp.imgsz)
    try:
        quantized = quantize_model_dir(
            model_dir, plan.data.yaml_path.parent, plan.hp.int8_calibration_images, settings
        )
    except Exception as exc:  # noqa: BLE001 - recorded as absent, with why
        LOG.warning("int8 quantisation failed (%s); the model has no int8 copy", exception_line(exc))
        return card
    LOG.info("int8 model: mAP50-95 drop %+.4f on val", quantized.map50_95_drop)
    return ModelCard.load(model_dir)


def _artifacts(plan: _Plan, model_dir: Path) -> list[tuple[Path, str]]:
    plots = sorted(p for p in plan.run_dir.glob("*") if p.suffix in {".png", ".jpg", ".csv", ".yaml"})
    int8 = quantized_dir(model_dir / WEIGHTS_FILE)
    return [(p, "plots") for p in plots] + [
        (model_dir / WEIGHTS_FILE, "model"),
        (model_dir / "model.json", "model"),
        *((p, f"model/{int8.name}") for p in sorted(int8.glob("*"))),  # where `quantize` made one
    ]


def _outcome(job: TrainingJob, card: ModelCard, state: RunState, trained: bool, resumed: Path | None):
    return TrainingOutcome(
        model_dir=Path(job.model_dir),
        card=card,
        trained=trained,
        resumed_from=resumed,
        epochs_completed=state.epochs_completed,
        mlflow_run_id=state.mlflow_run_id,
    )


def _fit(
    job: TrainingJob,
    plan: _Plan,
    resume: Checkpoint | None,
    tracker: RunTracker | NoTracker,
    ranks: RankGroup | None = None,
) -> tuple[dict[str, float], int]:
    """Train (from the start, or on from `resume`), alone or as one of `ranks`; the final metrics
    and the epochs completed."""
    from ultralytics.utils import callbacks as ultralytics_callbacks

    from yolo_core.train.engine import ToolkitTrainer

    _disable_ultralytics_integrations()
    callbacks = ultralytics_callbacks.get_default_callbacks()
    # Also without tracking: its per-epoch metric line is what a SageMaker tuning job's regexes read.
    TrackingCallbacks(tracker).register(callbacks)
    for event, functions in job.callbacks.items():
        callbacks.setdefault(event, []).extend(functions)
    args = _ultralytics_args(plan, job.weights, resume.path if resume else None)
    trainer = ToolkitTrainer(overrides=args, _callbacks=callbacks)
    if ranks is not None:
        trainer.distribute(ranks)
    signals = StopSignal() if job.handle_signals else None
    try:
        if signals is None:
            trainer.train()
        else:
            with signals:
                trainer.stop_signal = signals
                trainer.train()
    except TrainingInterrupted:
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    return _results_of(trainer, plan)


def _results_of(trainer: Any, plan: _Plan) -> tuple[dict[str, float], int]:
    """Final metrics and epochs done; with DDP they are only in the files the workers wrote."""
    if getattr(trainer, "ddp", False):
        import torch

        newest = plan.store.newest_good()
        final_path = plan.store.final_path
        final = torch.load(final_path, map_location="cpu", weights_only=False) if final_path.exists() else {}
        metrics = final.get("train_metrics") or {}
        completed = newest.completed_epochs if newest else 0
    else:
        metrics, completed = trainer.metrics or {}, trainer.epoch + 1
    return {k: float(v) for k, v in metrics.items() if k != "fitness"}, completed


def _load(job: TrainingJob, precision: str = "") -> tuple[RunState | None, _Plan]:
    checkpoint_dir = Path(job.checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    state = RunState.load(checkpoint_dir)
    return state, _plan(job, state, precision)


def _is_finished(state: RunState | None, plan: _Plan) -> bool:
    return bool(state and state.finished and plan.store.final_path.exists())


def _reexport(job: TrainingJob, plan: _Plan, state: RunState) -> TrainingOutcome:
    LOG.info("the run in %s has finished; exporting its model again without training", job.checkpoint_dir)
    return _outcome(job, _export(plan, state, job), state, trained=False, resumed=None)


def _begin(
    job: TrainingJob, plan: _Plan, state: RunState | None, resume: Checkpoint | None, world_size: int = 1
) -> RunState:
    """The run's state for a start that trains or finalizes: new, or the stored one counted on."""
    _check_weights(job.weights if state is None else None)
    if state is None:
        digest = job.dataset_hash or dataset_hash(plan.data)
        recorded = redact_values(plan.hp.to_dict())
        state = RunState(hyperparameters=recorded, augment=plan.augment.to_dict(), dataset_hash=digest)
    state.starts += 1
    state.resumes += int(resume is not None)
    state.class_names = plan.data.class_names
    state.resolved = {"device": plan.device, "precision": plan.precision, "batch": plan.batch}
    if world_size > 1:
        state.resolved["world_size"] = world_size
    return state


def _conclude(job: TrainingJob, plan: _Plan, state: RunState, tracker: RunTracker | NoTracker) -> ModelCard:
    """Export the model, log it, and mark the run finished."""
    card = _export(plan, state, job)
    tracker.log_metrics({f"final/{k}": v for k, v in card.metrics.items()}, step=state.epochs_completed)
    tracker.log_artifacts(_artifacts(plan, Path(job.model_dir)))
    state.status = FINISHED
    state.save(job.checkpoint_dir)
    tracker.finish("FINISHED")
    return card


def _finalize(plan: _Plan, state: RunState, resume: Checkpoint) -> None:
    LOG.info("checkpoint %s covers the whole run: validating and exporting", resume.path.name)
    state.metrics, state.epochs_completed = _finalize_stored_run(plan), resume.completed_epochs


def train(job: TrainingJob) -> TrainingOutcome:
    """Run the training described by `job`; a start does one of three things, in this order.

    Re-export a finished run; else (tracked in MLflow) finish a stored run whose checkpoint covers
    every epoch, or fit: from the start, or on from the newest readable checkpoint.
    """
    state, plan = _load(job)
    if _is_finished(state, plan):
        return _reexport(job, plan, state)
    resume = plan.store.newest_good()
    state = _begin(job, plan, state, resume)

    with tempfile.TemporaryDirectory(prefix="train-work-", dir=job.work_dir) as work_dir:
        tracker, state.mlflow_run_id = _open_tracker(job, plan, state, Path(work_dir))
        state.save(job.checkpoint_dir)
        if resume is not None and _is_complete(resume):
            _finalize(plan, state, resume)
            trained = False
        else:
            if resume is not None:
                LOG.info("resuming from %s", resume.path)
            state.metrics, state.epochs_completed = _fit(job, plan, resume, tracker)
            trained = True
        card = _conclude(job, plan, state, tracker)
    return _outcome(job, card, state, trained=trained, resumed=resume.path if resume else None)


# --- a run across processes (hosts) ---------------------------------------------------------


@dataclass(frozen=True)
class _LeaderStart:
    """What the leader tells every rank before fitting: the run state and the checkpoint to resume."""

    state: dict[str, Any]
    checkpoint_name: str = ""
    checkpoint: bytes = b""


@dataclass(frozen=True)
class _LeaderFailed:
    reason: str


def train_rank(job: TrainingJob, spec: DistributedSpec) -> bool:
    """One rank of a run across processes (each host's torchrun workers call it); whether it trained.

    The leader (rank 0) decides what this start does, as `train` would, and shares it with the run
    state and the checkpoint to resume from, so a follower needs nothing in its own checkpoint
    folder and never writes there. The ranks then fit together; the leader alone writes checkpoints
    and MLflow. A finished or complete run is not fitted again. Validating and exporting is
    `finish(job)`'s, on the leader's host, once every rank has returned.
    """
    from yolo_core.train.distributed import check_ultralytics_ranks, process_group

    check_ultralytics_ranks(spec)
    check_batch_for_ranks(job.hyperparameters.batch, spec.world_size)
    with process_group(spec) as ranks:
        return _lead(job, ranks) if spec.is_leader else _follow(job, ranks)


def _lead(job: TrainingJob, ranks: RankGroup) -> bool:
    with tempfile.TemporaryDirectory(prefix="train-work-", dir=job.work_dir) as work_dir:
        try:
            state, plan = _load(job)
            finished = _is_finished(state, plan)
            resume = None if finished else plan.store.newest_good()
            if finished or (resume is not None and _is_complete(resume)):
                LOG.info("rank 0: the run needs no training; the leader validates and exports it")
                ranks.share(None)
                return False
            state = _begin(job, plan, state, resume, world_size=ranks.spec.world_size)
            tracker, state.mlflow_run_id = _open_tracker(job, plan, state, Path(work_dir))
            state.save(job.checkpoint_dir)
        except BaseException as exc:
            ranks.share(_LeaderFailed(one_line(str(exc)) or type(exc).__name__))
            raise
        start = _LeaderStart(asdict(state))
        if resume is not None:
            LOG.info("resuming from %s", resume.path)
            start = _LeaderStart(asdict(state), resume.path.name, resume.path.read_bytes())
        ranks.share(start)
        _fit(job, plan, resume, tracker, ranks)
        tracker.snapshot()
    return True


def _follow(job: TrainingJob, ranks: RankGroup) -> bool:
    start = ranks.share()
    if start is None:
        return False
    if isinstance(start, _LeaderFailed):
        raise RuntimeError(f"the leader (rank 0) failed before training: {start.reason}")
    state = RunState(**start.state)
    with tempfile.TemporaryDirectory(prefix="leader-run-", dir=job.work_dir) as mirror:
        follower = replace(job, checkpoint_dir=Path(mirror))
        plan = _plan(follower, state, precision=state.resolved["precision"])
        resume = None
        if start.checkpoint_name:
            atomic_write_bytes(plan.store.dir / start.checkpoint_name, start.checkpoint)
            resume = plan.store.newest_good()
            LOG.info("rank %d: resuming from the leader's %s", ranks.spec.rank, start.checkpoint_name)
        _fit(follower, plan, resume, NoTracker(), ranks)
    return True


def finish(job: TrainingJob, trained: bool) -> TrainingOutcome:
    """After `train_rank` returned on every rank: validate the leader's run and export its model
    (or export a finished run again). `trained`: whether the ranks fitted in this start."""
    state = RunState.load(Path(job.checkpoint_dir))
    if state is None:
        raise UserInputError(f"{job.checkpoint_dir}: no run state; the ranks started no run")
    plan = _plan(job, state, precision=state.resolved.get("precision", ""))
    if _is_finished(state, plan):
        return _reexport(job, plan, state)
    resume = plan.store.newest_good()
    if resume is None or not _is_complete(resume):
        newest = resume.path.name if resume else "none"
        raise RuntimeError(
            f"{plan.store.dir}: the ranks stopped before the last epoch (newest checkpoint: {newest})"
        )
    if not trained:  # this start only finalizes: counted as `train` counts it
        state = _begin(job, plan, state, resume, world_size=int(state.resolved.get("world_size", 1)))
    with tempfile.TemporaryDirectory(prefix="train-work-", dir=job.work_dir) as work_dir:
        tracker, state.mlflow_run_id = _open_tracker(job, plan, state, Path(work_dir))
        _finalize(plan, state, resume)
        card = _conclude(job, plan, state, tracker)
    return _outcome(job, card, state, trained=trained, resumed=None)
