"""The inference server under concurrent clients, two servers side by side in one run.

`--compare engines` (the default): the server with `--backend auto` (the engine it measures at
load) against the same server on the engine the previous release picked by rule (torch bf16 on a
CPU with AMX, ONNX Runtime fp32 on other CPUs, torch fp16 on a GPU), both batching. Target: at
least 1.4 x the requests/s, p99 within 1.5 x p50 plus the batch wait.
`--compare batching`: batching off (`--max-batch-size 1`) against on, same engine. Targets: on a
CPU never slower, p99 within the same bound; on a GPU at least 3 x the requests/s.

Each server is the real `serve` entry point on a loopback port, on the same model and JPEG
frames; `--clients` closed-loop clients (16 by default) send requests until `--requests` have
been answered or `--duration-s` has passed. Prints requests/s, p50 and p99 latency, the batch
sizes formed, the engine each server ran (its /metrics) and the compute floor.

    python benchmarks/serve.py --weights best.pt --json out.json
    python benchmarks/serve.py --compare batching --device cuda --weights best.pt
"""

from __future__ import annotations

import argparse
import io
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness
import httpx
import numpy as np
from PIL import Image

from yolo_core.data.synthetic import render_frame
from yolo_core.model_card import ModelCard
from yolo_core.vocabulary import cpu_has_amx_bf16

START_TIMEOUT_S = 300


def model_dir_for(weights: Path, imgsz: int) -> Path:
    """best.pt + model.json, as the server loads them from /opt/ml/model."""
    from yolo_core.infer.torch_backend import load_ultralytics_model, model_names

    names = model_names(load_ultralytics_model(weights))
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-model-"))
    shutil.copyfile(weights, folder / "best.pt")
    ModelCard(class_names=[names[i] for i in sorted(names)], imgsz=imgsz, model=weights.name).save(folder)
    return folder


def jpeg_frames(count: int, width: int, height: int) -> list[bytes]:
    frames = []
    for index in range(count):
        bgr = render_frame(index, 11, width, height, (8, 90))[0]
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(buffer, format="JPEG", quality=90)
        frames.append(buffer.getvalue())
    return frames


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def previous_default_engine(device) -> tuple[str, str]:
    """The (backend, precision) the previous release's `auto` took by rule, without measuring."""
    if device.type == "cuda":
        return "torch", "fp16"
    return ("torch", "bf16") if cpu_has_amx_bf16() else ("onnx", "fp32")


class Server:
    def __init__(
        self, model_dir: Path, args: argparse.Namespace, max_batch_size: int, engine: tuple[str, str]
    ) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "entrypoints.serve", "--model-dir", str(model_dir)]
        command += ["--host", "127.0.0.1", "--port", self.url.rsplit(":", 1)[1], "--device", args.device]
        command += ["--backend", engine[0], "--precision", engine[1], "--max-batch-size", str(max_batch_size)]
        command += ["--max-wait-ms", str(args.max_wait_ms), "--warmup-batches", "3"]
        command += ["--warmup-shape", f"{args.width}x{args.height}"]
        if args.server_threads:
            command += ["--threads", str(args.server_threads)]
        self.log = tempfile.NamedTemporaryFile(prefix="bench-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=harness.ROOT, stdout=self.log, stderr=subprocess.STDOUT, env=harness.subprocess_env()
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited {self.process.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"server not ready in {START_TIMEOUT_S} s: {self.output()}")

    def engine(self) -> dict:
        """The engine this server runs and how it chose it, from its /metrics."""
        record = httpx.get(f"{self.url}/metrics", timeout=10).json()["engine"]
        return {"engine": record["engine"], "source": record["source"]}

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def load(url: str, frames: list[bytes], clients: int, requests: int, duration_s: float) -> dict:
    """Closed loop: each client sends its next request when the last is answered."""
    latencies: list[float] = []
    batch_sizes: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()
    issued = iter(range(requests))
    deadline = time.monotonic() + duration_s

    def client(index: int) -> None:
        with httpx.Client(timeout=120) as session:
            for number in issued:
                if time.monotonic() > deadline:
                    return
                body = frames[(index + number) % len(frames)]
                start = time.perf_counter()
                response = session.post(
                    f"{url}/invocations", content=body, headers={"Content-Type": "image/jpeg"}
                )
                elapsed = time.perf_counter() - start
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                        batch_sizes.append(int(response.headers["X-Batch-Size"]))
                    else:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

    wall = harness.run_clients(client, clients, failures)
    if not latencies:
        raise SystemExit("no request succeeded")
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "failed": len(failures),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "mean_batch_images": round(statistics.mean(batch_sizes), 2),
    }


def measure(
    model_dir: Path, frames: list[bytes], args: argparse.Namespace, batch: int, engine: tuple[str, str]
) -> dict:
    server = Server(model_dir, args, batch, engine)
    try:
        server.wait_ready()
        # Warm-up: the batch shapes the run will see (a GPU autotunes its kernels per shape).
        load(server.url, frames, args.clients, args.warmup_requests, 300)
        return {**load(server.url, frames, args.clients, args.requests, args.duration_s), **server.engine()}
    finally:
        server.stop()


def main() -> None:
    parser = harness.common_parser(__doc__)
    add = parser.add_argument
    add("--compare", choices=("engines", "batching"), default="engines")
    add("--precision", default="auto", help="with --compare batching: the server's precision")
    add("--imgsz", type=int, default=640)
    add("--width", type=int, default=960)
    add("--height", type=int, default=540)
    add("--frames", type=int, default=8, help="distinct JPEG frames the clients cycle through")
    add("--clients", type=int, default=16)
    add("--requests", type=int, default=160, help="per server, after the warm-up requests")
    add("--warmup-requests", type=int, default=48, help="per server, not timed")
    add("--duration-s", type=float, default=90, help="per server, at most")
    add("--max-batch-size", type=int, default=0,
        help="with batching on; 0: the server's default (8) on a CPU, 16 on a GPU")  # fmt: skip
    add("--max-wait-ms", type=float, default=5)
    add("--server-threads", type=int, default=0, help="CPU threads of the server; 0: all cores")
    args = parser.parse_args()

    device = harness.device_from(args)
    args.device = str(device)
    # On a CPU big batches gain little (ONNX Runtime: 1.2x from batch 1 to 2-4, less at 16);
    # a GPU wants them big.
    args.max_batch_size = args.max_batch_size or (16 if device.type == "cuda" else 8)
    weights, trained = harness.prepare_weights(args)
    model_dir = model_dir_for(weights, args.imgsz)
    frames = jpeg_frames(args.frames, args.width, args.height)
    machine = harness.describe_machine(device)
    print(f"machine: {machine}")
    print(f"model: {weights.name} ({'trained' if trained else 'random weights'}), imgsz {args.imgsz}")
    print(f"load: {args.clients} clients, {args.width}x{args.height} JPEG, {args.requests} requests each")

    if args.compare == "engines":
        names = ("previous default", "auto")
        engines = (previous_default_engine(device), ("auto", "auto"))
        batches = (args.max_batch_size, args.max_batch_size)
    else:
        names = ("batching off", "batching on")
        engines = ((args.backends, args.precision),) * 2
        batches = (1, args.max_batch_size)
    runs = zip(batches, engines, strict=True)
    base, ours = (measure(model_dir, frames, args, size, engine) for size, engine in runs)
    print(f"{names[0]}: {base}")
    print(f"{names[1]}: {ours}")

    height, width = harness.letterboxed_shape(args.height, args.width, args.imgsz)
    flops = harness.model_flops(weights, height, width)
    precision = ours["engine"]["precision"]
    ceiling = harness.matmul_flops_per_second(device, precision)
    if not flops:
        raise SystemExit("model FLOPs unknown: install ultralytics-thop")
    floor_ms = 1000 * flops / ceiling
    ratio = ours["requests_per_s"] / base["requests_per_s"]
    p99_bound = 1.5 * ours["p50_ms"] + args.max_wait_ms
    within = ours["p99_ms"] <= p99_bound
    if args.compare == "engines":
        targets = {"at_least_1.4x_requests_per_s": ratio >= 1.4, "p99_within_1.5x_p50_plus_wait": within}
    elif device.type == "cuda":
        targets = {"at_least_3x_requests_per_s": ratio >= 3.0}
    else:
        targets = {"never_slower": ratio >= 1.0, "p99_within_1.5x_p50_plus_wait": within}
    print()
    print(f"{'':<18}{'engine':<16}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'batch':>8}")
    for name, row in zip(names, (base, ours), strict=True):
        engine = f"{row['engine']['backend']} {row['engine']['precision']}"
        print(
            f"{name:<18}{engine:<16}{row['requests_per_s']:>12}{row['p50_ms']:>10}{row['p99_ms']:>10}"
            f"{row['mean_batch_images']:>8}"
        )
    print(f"ratio: {ratio:.2f} x requests/s; p99 {ours['p99_ms']} ms vs bound {p99_bound:.1f} ms")
    print(
        f"compute floor: {flops / 1e9:.1f} GFLOP per request at {height}x{width} / "
        f"{ceiling / 1e12:.2f} TFLOP/s ({precision} matmul) = {floor_ms:.2f} ms, "
        f"at most {1000 / floor_ms:.0f} requests/s"
    )
    print(f"targets: {targets}")
    harness.write_json(
        args.json,
        {
            "benchmark": "serve",
            "compare": args.compare,
            "machine": machine,
            "model": weights.name,
            "trained": trained,
            "imgsz": args.imgsz,
            "frame": [args.width, args.height],
            "clients": args.clients,
            "max_batch_size": args.max_batch_size,
            "max_wait_ms": args.max_wait_ms,
            names[0].replace(" ", "_"): base,
            names[1].replace(" ", "_"): ours,
            "ratio_requests_per_s": round(ratio, 2),
            "compute_floor": {
                "gflop_per_request": round(flops / 1e9, 2),
                "matmul_tflops": round(ceiling / 1e12, 3),
                "floor_ms_per_request": round(floor_ms, 3),
            },
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
