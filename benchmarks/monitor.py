"""Monitoring captured traffic against serving it: the monitor keeps up with the endpoint it watches.

Starts the real `serve` entry point on a loopback port with data capture on (every request
captured), sends `--requests` one-image JPEG requests (synthetic drone frames, each carrying an
inference id) from `--clients` closed-loop clients, and times the serving wall time from the first
send to the last answer. The server is then stopped cleanly (SIGTERM drains the capture writer)
and the captured lines are counted. Then the real `monitor` entry point runs over the capture folder
as its own process, exactly as a user runs it, against a baseline.json that the real `preprocess`
entry point built from a separate set of frames (and a prediction profile of the model on those
frames as `--baseline-constraints`); its wall time includes its start-up. Prints both times and
their ratio: the target is monitoring in less time than serving took (ratio below 1).

    python benchmarks/monitor.py --json-out out.json          # CPU, random yolo11n weights
    python benchmarks/monitor.py --requests 2000 --weights best.pt
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import harness
import httpx

from yolo_core.data.json_io import write_json
from yolo_core.data.synthetic import generate_scenes
from yolo_core.monitoring.constraints import constraints_document
from yolo_core.monitoring.prediction_drift import prediction_profile
from yolo_core.processes import wait_for_announced_port, wait_until_answers
from yolo_core.serving.app import INFERENCE_ID_HEADER
from yolo_core.serving.options import parse_default_options
from yolo_core.weights import sha256_of

START_TIMEOUT_S = 300
PORT_IN_FILE = re.compile(r"^(\d+)\s*$")  # what --port-file holds once the server listens
STOP_TIMEOUT_S = 120
BASELINE_SEED, SERVED_SEED = 101, 202  # two separate sets of frames from the same generator
# Random weights score every box near 1e-4: below the default conf, answers would be empty and the
# monitor would read no detections. These defaults give each answer 30 boxes, as a trained model
# gives on a busy drone frame, so the captured answers weigh what real ones do.
RANDOM_WEIGHTS_OPTIONS = "conf=0.00001;max_det=30"
STEPS = ("raw-baseline", "raw-served", "preprocess", "capture", "monitor-output")  # under --work-dir


def monitor_command(
    capture_dir: Path,
    baseline_statistics: Path,
    output_path: Path,
    constraints: Path | None = None,
    model_dir: Path | None = None,
) -> list[str]:
    """The monitor as a user runs it over a capture folder: the one place its flags are chosen.
    With the model, it also embeds a sample of the served images (the backbone-embedding check)."""
    command = [sys.executable, "-m", "entrypoints.monitor", "--dataset-source", str(capture_dir)]
    command += ["--baseline-statistics", str(baseline_statistics), "--output-path", str(output_path)]
    if constraints is not None:
        command += ["--baseline-constraints", str(constraints)]
    if model_dir is not None:
        command += ["--model-path", str(model_dir)]
    return command


def frames(folder: Path, count: int, seed: int, args: argparse.Namespace) -> list[Path]:
    """`count` synthetic VisDrone frames (JPEG, quality 90) in `folder`, all different."""
    generate_scenes(folder, count, seed, args.width, args.height, tuple(args.object_px))
    return sorted((folder / "images").glob("*.jpg"))


def model_dir_for(weights: Path, imgsz: int) -> Path:
    """best.pt + model.json, as the server loads them from /opt/ml/model."""
    from yolo_core.infer.torch_backend import load_ultralytics_model, model_names
    from yolo_core.model_card import ModelCard

    names = model_names(load_ultralytics_model(weights))
    folder = Path(tempfile.mkdtemp(prefix="bench-monitor-model-"))
    shutil.copyfile(weights, folder / "best.pt")
    digest = sha256_of(folder / "best.pt")
    card = ModelCard(
        class_names=[names[i] for i in sorted(names)], imgsz=imgsz, model=weights.name, weights_sha256=digest
    )
    card.save(folder)
    return folder


def baseline_statistics(raw: Path, work: Path) -> Path:
    """baseline.json from the real preprocess entry point over the baseline frames."""
    command = [sys.executable, "-m", "entrypoints.preprocess", "--input", str(raw), "--format", "visdrone"]
    command += ["--output-dataset", str(work / "dataset"), "--output-report", str(work / "report")]
    command += ["--output-baseline", str(work / "baseline"), "--message-file", str(work / "message")]
    done = subprocess.run(
        command, cwd=harness.ROOT, env=harness.subprocess_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"preprocess exited {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")
    return work / "baseline" / "baseline.json"


def baseline_constraints(model_dir: Path, images: list[Path], args: argparse.Namespace, path: Path) -> Path:
    """The constraints document with the model's prediction profile and backbone embeddings on the
    baseline frames (what evaluation would register for a trained model on its validation split),
    under the server's default options."""
    import cv2

    from yolo_core.infer.predictor import Predictor
    from yolo_core.monitoring.embedding_drift import embedding_reference
    from yolo_core.monitoring.embeddings import BackboneEmbedder

    options = parse_default_options(args.server_options)
    predictor = Predictor.from_model_dir(model_dir, device=args.device)
    pixels = [cv2.imread(str(image)) for image in images]
    detections = predictor.predict(pixels, conf=options.conf, max_det=options.max_det)
    embeddings = embedding_reference(BackboneEmbedder.from_model_dir(model_dir).embed(pixels))
    document = constraints_document(
        prediction_profile(detections, predictor.names), embedding_reference=embeddings
    )
    return write_json(path, document)


class Server:
    """The real `serve` entry point with data capture into `capture_dir`, on a free loopback port."""

    def __init__(self, model_dir: Path, capture_dir: Path, args: argparse.Namespace, scratch: Path) -> None:
        port_file = scratch / "port"
        port_file.write_text("")  # replaced whole (atomically) by the server once it listens
        command = [sys.executable, "-m", "entrypoints.serve", "--model-dir", str(model_dir)]
        command += ["--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file)]
        command += ["--device", args.device, "--capture-dir", str(capture_dir), "--capture-percentage", "100"]
        command += ["--warmup-batches", "3", "--warmup-shape", f"{args.width}x{args.height}"]
        command += ["--default-options", args.server_options]
        self.port_file = port_file
        self.log_path = scratch / "serve.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=harness.ROOT, stdout=log, stderr=subprocess.STDOUT, env=harness.subprocess_env()
            )
        self.url = ""

    def wait_ready(self) -> None:
        """The port the server wrote to its --port-file (the log line announcing it), then /ping."""
        try:
            port = wait_for_announced_port(self.port_file, PORT_IN_FILE, self.process, START_TIMEOUT_S)
            self.url = f"http://127.0.0.1:{port}"
            wait_until_answers(f"{self.url}/ping", self.process, START_TIMEOUT_S)
        except RuntimeError as exc:
            raise SystemExit(f"server not ready: {exc}: {self.output()}") from None

    def metrics(self) -> dict:
        return httpx.get(f"{self.url}/metrics", timeout=10).json()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int | None:
        """SIGTERM, the drain that writes every queued capture line; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return None
        return self.process.returncode


def send(url: str, bodies: list[bytes], clients: int, requests: int) -> dict:
    """Closed loop: each client sends its next request when the last is answered, each request with
    its own inference id; the wall time runs from the first send to the last answer."""
    answered = [0] * clients
    failures: list[str] = []
    lock = threading.Lock()
    issued = iter(range(requests))

    def client(index: int) -> None:
        with httpx.Client(timeout=120) as session:
            for number in issued:
                headers = {"Content-Type": "image/jpeg", INFERENCE_ID_HEADER: f"client{index}-{number:06d}"}
                # Consecutive requests, and the clients, cycle through the frames in step.
                response = session.post(
                    f"{url}/invocations", content=bodies[number % len(bodies)], headers=headers
                )
                if response.status_code == 200:
                    answered[index] += 1
                else:
                    with lock:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

    wall = harness.run_clients(client, clients, failures)
    return {"answered": sum(answered), "failed": len(failures), "seconds": wall}


def capture_lines(folder: Path) -> int:
    return sum(
        sum(1 for line in path.open(encoding="utf-8") if line.strip()) for path in folder.rglob("*.jsonl")
    )


def serve_and_capture(model_dir: Path, bodies: list[bytes], args: argparse.Namespace, work: Path) -> dict:
    """Serve the requests with capture on; stop the server so that every line is on disk."""
    capture_dir = work / "capture"
    server = Server(model_dir, capture_dir, args, work)
    try:
        server.wait_ready()
        served = send(server.url, bodies, args.clients, args.requests)
        metrics = server.metrics()
    finally:
        status = server.stop()
    if status != 0:
        print(f"  server exit status {status} (expected 0 after SIGTERM): {server.output()[-1000:]}")
    lines = capture_lines(capture_dir)
    return {
        **served,
        "capture_dir": capture_dir,
        "captured_lines": lines,
        "capture_dropped": metrics.get("capture_dropped", 0),
        "capture_failed": metrics.get("capture_failed", 0),
        "server_exit": status,
    }


def run_monitor(command: list[str], output_path: Path) -> dict:
    """The monitor's wall time, start-up included, and what it reports."""
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=harness.ROOT, env=harness.subprocess_env(), capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"monitor exited {done.returncode}: {(done.stdout + done.stderr)[-3000:]}")
    summary = [line for line in done.stderr.splitlines() if line.startswith("monitor:")]
    violations = json.loads((output_path / "constraint_violations.json").read_text())["violations"]
    checks = json.loads((output_path / "checks.json").read_text())
    statistics = json.loads((output_path / "statistics.json").read_text())
    return {
        "seconds": wall,
        "summary": summary[-1] if summary else done.stderr.strip()[-500:],
        "violations": len(violations),
        "violated": sorted({v["feature_name"] for v in violations}),
        "checks": _count_checks(checks),
        "images": _image_count(statistics),
    }


def _count_checks(document: object) -> int | None:
    if isinstance(document, dict):
        document = document.get("checks")
    return len(document) if isinstance(document, list) else None


def _image_count(statistics: dict) -> int | None:
    """Images the monitor measured: Model Monitor's `dataset.item_count` in statistics.json."""
    count = (statistics.get("dataset") or {}).get("item_count")
    return count if isinstance(count, int) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--device", default="auto", help="the server's device: auto, cpu, cuda, cuda:0")
    add("--weights", type=Path, help="a .pt checkpoint; default: random weights from --model")
    add("--model", default="yolo11n.yaml", help="architecture for random weights when --weights is absent")
    add("--imgsz", type=int, default=320)
    add("--width", type=int, default=320)
    add("--height", type=int, default=240)
    add("--object-px", type=int, nargs=2, default=(8, 64), metavar=("LO", "HI"))
    add("--frames", type=int, default=48, help="distinct served frames the requests cycle through")
    add("--baseline-frames", type=int, default=48, help="frames preprocess builds the baseline from")
    add("--requests", type=int, default=10000)
    add("--clients", type=int, default=2)
    add("--work-dir", type=Path, help="keep the captures and reports here (default: a temporary folder)")
    add(
        "--server-options",
        default="auto",
        help=f"the server's --default-options; auto: {RANDOM_WEIGHTS_OPTIONS!r} with random weights, "
        "else the server's defaults",
    )
    add("--json-out", "--json", dest="json_out", type=Path, help="write the summary here as JSON")
    args = parser.parse_args()

    device = harness.device_from(args)
    args.device = str(device)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    for stale in STEPS:  # a reused --work-dir: last run's frames or captures would be counted again
        shutil.rmtree(work / stale, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    weights, trained = harness.prepare_weights(args)
    if args.server_options == "auto":
        args.server_options = "" if trained else RANDOM_WEIGHTS_OPTIONS
    model_dir = model_dir_for(weights, args.imgsz)
    baseline_images = frames(work / "raw-baseline", args.baseline_frames, BASELINE_SEED, args)
    served_images = frames(work / "raw-served", args.frames, SERVED_SEED, args)
    bodies = [path.read_bytes() for path in served_images]
    baseline = baseline_statistics(work / "raw-baseline", work / "preprocess")
    constraints = baseline_constraints(model_dir, baseline_images, args, work / "constraints.json")
    machine = harness.describe_machine(device)
    mean_kib = sum(map(len, bodies)) / len(bodies) / 1024
    print(f"machine: {machine}")
    kind = "trained" if trained else "random weights"
    options = f", server options {args.server_options!r}" if args.server_options else ""
    print(f"model: {weights.name} ({kind}), imgsz {args.imgsz}, device {args.device}{options}")
    print(
        f"load: {args.requests} requests, {args.clients} clients, {args.frames} distinct "
        f"{args.width}x{args.height} JPEG frames (mean {mean_kib:.1f} KiB); "
        f"baseline from {args.baseline_frames} other frames"
    )

    served = serve_and_capture(model_dir, bodies, args, work)
    if not served["answered"]:
        raise SystemExit("no request succeeded")
    print(
        f"serving: {served['answered']} answered, {served['failed']} failed in {served['seconds']:.2f} s; "
        f"{served['captured_lines']} lines captured, {served['capture_dropped']} dropped, "
        f"{served['capture_failed']} failed to write"
    )
    output_path = work / "monitor-output"
    command = monitor_command(served["capture_dir"], baseline, output_path, constraints, model_dir)
    print(f"monitor: python {' '.join(command[1:])}")
    monitored = run_monitor(command, output_path)
    print(f"  {monitored['summary']}")

    requests, records = served["answered"], served["captured_lines"]
    images = monitored["images"] if monitored["images"] is not None else records
    serving_s, monitoring_s = served["seconds"], monitored["seconds"]
    ratio = monitoring_s / serving_s
    targets = {"monitoring_faster_than_serving": ratio < 1.0, "every_request_captured": records == requests}
    print()
    print(f"{'':<12}{'seconds':>10}{'per s':>10}")
    print(f"{'serving':<12}{serving_s:>10.2f}{requests / serving_s:>10.1f}  requests ({images} images)")
    per_s = records / monitoring_s
    print(f"{'monitoring':<12}{monitoring_s:>10.2f}{per_s:>10.1f}  records (start-up included)")
    print(
        f"ratio (monitoring / serving): {ratio:.3f}  (monitoring {monitoring_s:.2f} s vs "
        f"baseline: serving {serving_s:.2f} s, {requests} requests)"
    )
    violated = f" {monitored['violated']}" if monitored["violated"] else ""
    print(f"violations: {monitored['violations']} of {monitored['checks']} checks{violated}")
    print(f"targets: {targets}")
    harness.write_json(
        args.json_out,
        {
            "benchmark": "monitor",
            "machine": machine,
            "model": weights.name,
            "trained": trained,
            "imgsz": args.imgsz,
            "frame": [args.width, args.height],
            "distinct_frames": args.frames,
            "baseline_frames": args.baseline_frames,
            "clients": args.clients,
            "server_options": args.server_options,
            "requests": requests,
            "failed": served["failed"],
            "images": images,
            "captured_records": records,
            "capture_dropped": served["capture_dropped"],
            "serving_s": round(serving_s, 3),
            "requests_per_s": round(requests / serving_s, 2),
            "monitoring_s": round(monitoring_s, 3),
            "records_per_s": round(records / monitoring_s, 2),
            "ratio_monitoring_over_serving": round(ratio, 4),
            "violations": monitored["violations"],
            "violated": monitored["violated"],
            "checks": monitored["checks"],
            "monitor_command": command[1:],
            "targets": targets,
        },
    )


if __name__ == "__main__":
    main()
