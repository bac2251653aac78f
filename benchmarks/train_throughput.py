"""Training throughput: our trainer against plain Ultralytics, and the augmented dataloader alone.

One run prints, side by side:
- training images/s of plain `YOLO("yolo11n.yaml").train(...)` with Ultralytics' defaults, and
  of `yolo_core.train` (all CPU threads, channels_last, aerial augmentation, spot-safe
  checkpoints) in fp32 and, where the CPU has bf16 instructions (avx512_bf16 or amx_bf16), bf16;
  on a GPU (`--device cuda`): plain, ours with AMP, ours in fp32;
- the ratio of each to plain Ultralytics (targets on a CPU: fp32 >= 1.2, bf16 >= 1.8);
- optionally (`--accuracy-epochs N`) val mAP50 and mAP50-95 of ours after N epochs in each
  precision, same data and seed, and bf16's difference to fp32 (target: within 0.02);
- the augmented dataloader alone, images/s, aerial preset against Ultralytics' default pipeline.
Each variant runs in its own process (thread settings are per process). Self-contained: the
synthetic data is generated in the work folder; nothing is downloaded.

    python benchmarks/train_throughput.py --images 32 --imgsz 320 --epochs 3 --json out.json
    python benchmarks/train_throughput.py --device cuda --images 512 --imgsz 640 --batch 32
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from entrypoints.environment import configure_offline  # noqa: E402
from yolo_core.runtime import passive_openmp_waits  # noqa: E402

# As in the train entry point: sleeping OpenMP waits, so that a busy machine doesn't crawl.
passive_openmp_waits()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--images", type=int, default=32, help="training images (val: a quarter as many)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per throughput run")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--model", default="yolo11n")
    parser.add_argument("--accuracy-epochs", type=int, default=0, help="also train N epochs per precision")
    parser.add_argument("--repeats", type=int, default=1, help="run each variant N times, keep the best")
    parser.add_argument("--loader-batches", type=int, default=20, help="batches timed for the loader alone")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # internal: run one variant
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


# --- data ------------------------------------------------------------------------------------


def make_dataset(work: Path, images: int, imgsz: int) -> Path:
    """Synthetic drone scenes at the training size, built the way preprocessing builds them."""
    data_yaml = work / f"dataset-{images}-{imgsz}" / "data.yaml"
    if data_yaml.exists():
        return data_yaml
    from yolo_core.data.dataset import build_dataset
    from yolo_core.data.synthetic import generate_scenes

    frames = images + max(2, images // 4)
    small, large = max(8, imgsz // 24), max(16, imgsz // 7)
    raw = generate_scenes(
        work / f"raw-{images}-{imgsz}", frames, seed=3, width=imgsz, height=imgsz, object_px=(small, large)
    )
    build_dataset(raw, data_yaml.parent, "visdrone", val_fraction=0.2, seed=3, progress=False)
    return data_yaml


# --- one variant, in its own process ---------------------------------------------------------


class EpochTimer:
    """Times the training loop of each epoch (batches only, not validation)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.seconds: list[float] = []
        self.images = 0

    def on_train_epoch_start(self, trainer) -> None:  # noqa: ANN001
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer) -> None:  # noqa: ANN001
        self.seconds.append(time.perf_counter() - self.started)
        self.images = len(trainer.train_loader.dataset)

    def callbacks(self) -> dict[str, list]:
        return {
            "on_train_epoch_start": [self.on_train_epoch_start],
            "on_train_epoch_end": [self.on_train_epoch_end],
        }

    def summary(self) -> dict[str, float]:
        steady = self.seconds[1:] if len(self.seconds) > 2 else self.seconds  # the first epoch warms up
        return {
            "images_per_epoch": self.images,
            "epoch_seconds": [round(s, 3) for s in self.seconds],
            "train_images_per_s": round(self.images / statistics.median(steady), 3),
        }


def run_plain(args: argparse.Namespace, timer: EpochTimer) -> dict:
    import torch
    from ultralytics import YOLO

    from yolo_core.train.precision import precision_patches

    model = YOLO(f"{args.model}.yaml")
    for event, functions in timer.callbacks().items():
        for function in functions:
            model.add_callback(event, function)
    device = "0" if args.device == "cuda" else "cpu"
    # Ultralytics' AMP check downloads a model; on a GPU the local check replaces it (nothing else).
    guard = precision_patches() if args.device == "cuda" else contextlib.nullcontext()
    with guard:
        model.train(
            data=str(args.data),
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            device=device,
            plots=False,
            project=str(args.work_dir / "plain"),
            name="run",
            exist_ok=True,
            seed=0,
            verbose=False,
        )
    metrics = model.trainer.metrics or {}
    return {"threads": torch.get_num_threads(), "mAP50": float(metrics.get("metrics/mAP50(B)", 0.0))}


def run_ours(args: argparse.Namespace, timer: EpochTimer, precision: str, epochs: int, learn: bool) -> dict:
    import torch

    from yolo_core.hyperparams import Hyperparameters
    from yolo_core.train.trainer import TrainingJob, train

    settings = {"nbs": args.batch, "warmup_epochs": 1.0, "close_mosaic": max(1, epochs // 6)} if learn else {}
    device = "0" if args.device == "cuda" else "cpu"  # one GPU: DDP would run the timer elsewhere
    hp = Hyperparameters(
        model=args.model,
        epochs=epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        precision=precision,
        device=device,
        plots=False,
        tracking_uri="none",  # tracking is not what is measured (and MLflow may be absent)
        **settings,
    )
    folder = Path(tempfile.mkdtemp(prefix=f"ours-{precision}-", dir=args.work_dir))
    job = TrainingJob(
        data_yaml=args.data,
        checkpoint_dir=folder / "checkpoints",
        model_dir=folder / "model",
        hyperparameters=hp,
        handle_signals=False,
        callbacks=timer.callbacks(),
        work_dir=folder,
    )
    outcome = train(job)
    metrics = outcome.card.metrics
    return {
        "threads": torch.get_num_threads(),
        "mAP50": metrics.get("mAP50", 0.0),
        "mAP50-95": metrics.get("mAP50-95", 0.0),
    }


def run_variant(args: argparse.Namespace) -> dict:
    timer = EpochTimer()
    kind, _, precision = args.variant.partition(":")
    started = time.perf_counter()
    if kind == "plain":
        extra = run_plain(args, timer)
    elif kind == "ours":
        extra = run_ours(args, timer, precision, args.epochs, learn=False)
    elif kind == "accuracy":
        extra = run_ours(args, timer, precision, args.accuracy_epochs, learn=True)
    else:
        raise SystemExit(f"unknown variant {args.variant}")
    return {**timer.summary(), **extra, "wall_seconds": round(time.perf_counter() - started, 1)}


# --- the augmented dataloader alone ----------------------------------------------------------


def loader_images_per_s(
    data_yaml: Path, imgsz: int, batch: int, preset: str, batches: int, workers: int
) -> float:
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_dataloader, build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    from yolo_core.train.augment import augment_config

    augment = augment_config(preset)
    overrides = {"imgsz": imgsz, **augment.ultralytics_args()}
    if preset != "ultralytics":
        overrides["augmentations"] = augment.albumentations()
    cfg = get_cfg(overrides=overrides)
    data = check_det_dataset(str(data_yaml))
    dataset = build_yolo_dataset(cfg, data["train"], batch, data, mode="train")
    loader = build_dataloader(dataset, batch, workers, shuffle=True)
    iterator = (batch for _ in iter(int, 1) for batch in loader)  # epoch after epoch
    next(iterator)  # workers start, caches warm
    seen, started = 0, time.perf_counter()
    for _ in range(batches):
        seen += len(next(iterator)["img"])
    return round(seen / (time.perf_counter() - started), 2)


# --- the whole benchmark ---------------------------------------------------------------------


def _variants(args: argparse.Namespace) -> list[str]:
    from yolo_core.vocabulary import cpu_has_bf16_instructions

    if args.device == "cuda":
        throughput = ["plain", "ours:amp", "ours:fp32"]
        accuracy = ["accuracy:amp", "accuracy:fp32"]
    else:
        precisions = ["fp32", "bf16"] if cpu_has_bf16_instructions() else ["fp32"]
        throughput = ["plain"] + [f"ours:{p}" for p in precisions]
        accuracy = [f"accuracy:{p}" for p in precisions]
    return throughput + (accuracy if args.accuracy_epochs else [])


def _spawn(args: argparse.Namespace, variant: str) -> dict:
    out = args.work_dir / f"{variant.replace(':', '-')}.json"
    command = [
        sys.executable,
        __file__,
        "--variant",
        variant,
        "--data",
        str(args.data),
        "--json",
        str(out),
        "--work-dir",
        str(args.work_dir),
        "--device",
        args.device,
        "--imgsz",
        str(args.imgsz),
        "--epochs",
        str(args.epochs),
        "--batch",
        str(args.batch),
        "--model",
        args.model,
        "--accuracy-epochs",
        str(args.accuracy_epochs),
    ]
    print(f"... {variant}", flush=True)
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr)[-3000:]
        raise SystemExit(f"variant {variant} failed ({completed.returncode}):\n{tail}")
    return json.loads(out.read_text())


def _machine(device: str) -> dict:
    import torch

    from yolo_core.runtime import cpu_thread_count
    from yolo_core.vocabulary import cpu_flags, cpu_model_name

    info = {
        "cpu": cpu_model_name(),
        "cpu_cores": cpu_thread_count(),
        "bf16_instructions": sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"}),
        "platform": platform.platform(),
        "torch": torch.__version__,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpus"] = torch.cuda.device_count()
    return info


def _report(results: dict, args: argparse.Namespace) -> None:
    plain = results["variants"]["plain"]["train_images_per_s"]
    print(f"\nmachine: {results['machine']}")
    print(f"data: {args.images} train images at {args.imgsz} px, batch {args.batch}, {args.epochs} epochs\n")
    print(f"{'variant':<18}{'threads':>8}{'train img/s':>13}{'vs plain':>10}{'epoch s':>22}")
    for name, row in results["variants"].items():
        if name.startswith("accuracy"):
            continue
        epochs = ",".join(f"{s:.1f}" for s in row["epoch_seconds"])
        ratio = row["train_images_per_s"] / plain
        print(f"{name:<18}{row['threads']:>8}{row['train_images_per_s']:>13.2f}{ratio:>9.2f}x{epochs:>22}")
    accuracy = {k: v for k, v in results["variants"].items() if k.startswith("accuracy")}
    if accuracy:
        print(f"\naccuracy after {args.accuracy_epochs} epochs, same data and seed (val; train img/s):")
        for name, row in accuracy.items():
            print(
                f"  {name:<16} mAP50 {row['mAP50']:.3f}  mAP50-95 {row['mAP50-95']:.3f}"
                f"   {row['train_images_per_s']:.2f} img/s"
            )
        reduced = accuracy.get("accuracy:bf16") or accuracy.get("accuracy:amp")
        if reduced and "accuracy:fp32" in accuracy:
            gap = reduced["mAP50-95"] - accuracy["accuracy:fp32"]["mAP50-95"]
            print(f"  reduced precision - fp32, mAP50-95: {gap:+.3f} (target: within 0.02)")
    loader = results["loader"]
    print(
        f"\naugmented dataloader alone ({loader['workers']} workers), images/s: "
        f"aerial {loader['aerial']:.1f}, Ultralytics default {loader['ultralytics']:.1f}"
    )


def main() -> None:
    args = _parser().parse_args()
    configure_offline()
    args.work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="train-bench-")).resolve()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.variant:
        args.json.write_text(json.dumps(run_variant(args)))
        return
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no GPU visible")
    args.data = make_dataset(args.work_dir, args.images, args.imgsz)
    results = {
        "machine": _machine(args.device),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "variants": {},
    }
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):  # alternating, so that a burst of other load hits every variant
        for variant in _variants(args):
            runs.setdefault(variant, []).append(_spawn(args, variant))
    for variant, tries in runs.items():
        best = max(tries, key=lambda row: row["train_images_per_s"])
        results["variants"][variant] = {
            **best,
            "all_train_images_per_s": [r["train_images_per_s"] for r in tries],
        }
    workers = 0 if args.device == "cpu" else min(8, os.cpu_count() or 1)
    results["loader"] = {
        "workers": workers,
        **{
            preset: loader_images_per_s(
                args.data, args.imgsz, args.batch, preset, args.loader_batches, workers
            )
            for preset in ("aerial", "ultralytics")
        },
    }
    _report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
