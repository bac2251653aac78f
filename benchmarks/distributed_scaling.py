"""Training images/s of one process against two (two "hosts" launched by the train command's torchrun).

One run prints, side by side, on the same synthetic data, seed and hyperparameters:
- `1x<all>`: one process with every CPU thread this process may use (the single-host baseline);
- `1x<half>`: one process with half of them (what each of the two processes gets);
- `2x<half>`: two hosts on this machine, each its own /opt/ml tree and resourceconfig.json, gloo
  over loopback, each process with half of the threads (on 2 cores: 1 thread each);
and the ratios of `2x` to each (2.0 against `1x<half>` would be perfect scaling). Every variant is
the real `train` command; images/s are read from the leader's results.csv over the epochs between
the first (warm-up) and the last (which validates), so start-up and export are left out.

`--device cuda`: each "host" gets one GPU (CUDA_VISIBLE_DEVICES) and NCCL; it needs two GPUs,
since NCCL refuses two ranks on one device. The figures name the CPU (or GPUs) and the threads.

    python benchmarks/distributed_scaling.py --images 64 --imgsz 320 --epochs 5 --json out.json
    python benchmarks/distributed_scaling.py --device cuda --images 512 --imgsz 640 --batch 32
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from entrypoints import distributed  # noqa: E402
from entrypoints.contract import TrainingPaths, write_training_config  # noqa: E402
from yolo_core.runtime import cpu_thread_count  # noqa: E402
from yolo_core.vocabulary import cpu_model_name  # noqa: E402

HOSTS = ("algo-1", "algo-2")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--images", type=int, default=64, help="synthetic frames (a fifth go to val)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=5, help="at least 3: the first and last are not timed")
    parser.add_argument("--batch", type=int, default=8, help="global batch (split over the processes)")
    parser.add_argument("--precision", default="fp32", help="the same for every variant")
    parser.add_argument("--variants", default="1xall,1xhalf,2xhalf", help="which of them to run")
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    return parser


def _dataset(root: Path, images: int, imgsz: int) -> Path:
    from yolo_core.data.dataset import build_dataset
    from yolo_core.data.synthetic import generate_scenes

    raw = generate_scenes(root / "raw", images, seed=7, width=imgsz, height=imgsz, object_px=(10, 40))
    return build_dataset(raw, root / "dataset", "visdrone", seed=7, progress=False).root


def _hyperparameters(args: argparse.Namespace, threads: int) -> dict[str, str]:
    return {
        "epochs": str(args.epochs),
        "imgsz": str(args.imgsz),
        "batch": str(args.batch),
        "nbs": str(args.batch),
        "warmup_epochs": "1",
        "val": "false",
        "plots": "false",
        "threads": str(threads),
        "precision": args.precision if args.device == "cpu" else "amp",
        "tracking_uri": "none",
        "seed": "0",
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_variant(root: Path, dataset: Path, hosts: tuple[str, ...], hp: dict[str, str], device: str) -> Path:
    """The train command on one tree per host, all at once; the leader's results.csv."""
    shutil.rmtree(root, ignore_errors=True)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        distributed.MASTER_ADDR_ENV: "127.0.0.1",
        distributed.MASTER_PORT_ENV: str(_free_port()),
    }
    processes = []
    for index, host in enumerate(hosts):
        training = TrainingPaths(root / host)
        write_training_config(training, hp, ["dataset"])
        resources = {"current_host": host, "hosts": list(hosts), "network_interface_name": "lo"}
        training.resource_config_file.write_text(json.dumps(resources))
        shutil.copytree(dataset, training.channel("dataset"))
        host_env = {**env, "SAGEMAKER_BASE_DIR": str(training.base)}
        if device == "cuda":
            host_env["CUDA_VISIBLE_DEVICES"] = str(index)
        log = (root / f"{host}.log").open("w")
        command = [sys.executable, "-m", "entrypoints.train"]
        processes.append((host, subprocess.Popen(command, cwd=ROOT, env=host_env, stdout=log, stderr=log)))
    for host, process in processes:
        if process.wait() != 0:
            tail = (root / f"{host}.log").read_text()[-3000:]
            raise SystemExit(f"{root.name}: train on {host} exited {process.returncode}:\n{tail}")
    return TrainingPaths(root / hosts[0]).checkpoint_dir / "run" / "results.csv"


def images_per_second(results_csv: Path, train_images: int) -> float:
    """Over epochs 2..N-1: results.csv's `time` is seconds since the start, at each epoch's end."""
    with results_csv.open() as handle:
        seconds = [float(row["time"]) for row in csv.DictReader(handle)]
    timed = len(seconds) - 2
    return train_images * timed / (seconds[-2] - seconds[0])


def _gpu_names() -> list[str]:
    import torch

    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def main() -> None:
    args = _parser().parse_args()
    if args.epochs < 3:
        raise SystemExit("--epochs must be at least 3 (the first and the last are not timed)")
    if args.device == "cuda" and len(_gpu_names()) < 2:
        raise SystemExit("--device cuda needs two GPUs: NCCL refuses two ranks on one device")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="distributed-scaling-"))
    dataset = _dataset(work / "data", args.images, args.imgsz)
    train_images = len(list((dataset / "images" / "train").glob("*")))
    threads = cpu_thread_count()
    half = max(threads // 2, 1)
    variants = {
        "1xall": (HOSTS[:1], threads),
        "1xhalf": (HOSTS[:1], half),
        "2xhalf": (HOSTS, half),
    }
    chosen = [name for name in args.variants.split(",") if name]
    unknown = sorted(set(chosen) - set(variants))
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown}; known: {sorted(variants)}")
    machine = ", ".join(_gpu_names()) if args.device == "cuda" else cpu_model_name()
    print(
        f"{machine}; {threads} CPU threads for this process; {train_images} train images at {args.imgsz} px"
    )
    print(f"global batch {args.batch}, {args.epochs} epochs (2..{args.epochs - 1} timed), {args.precision}")
    results = {}
    for name in chosen:
        hosts, variant_threads = variants[name]
        hp = _hyperparameters(args, variant_threads)
        csv_path = _run_variant(work / name, dataset, hosts, hp, args.device)
        rate = images_per_second(csv_path, train_images)
        results[name] = {
            "processes": len(hosts),
            "threads_per_process": variant_threads,
            "images_per_s": rate,
        }
        print(f"{len(hosts)} process(es) x {variant_threads} thread(s): {rate:8.2f} images/s", flush=True)
    for base in ("1xall", "1xhalf"):
        if base in results and "2xhalf" in results:
            ratio = results["2xhalf"]["images_per_s"] / results[base]["images_per_s"]
            results[f"ratio_2xhalf_over_{base}"] = ratio
            print(f"ratio 2 processes / {base}: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "threads": threads, **results}, indent=2))


if __name__ == "__main__":
    main()
