"""`make demo`: the whole path on this machine, on synthetic drone imagery.

Generates a synthetic VisDrone-style set, runs the declared DAG locally (preprocess, train,
evaluate, quality gate), registers the model in MLflow and in a SageMaker model registry (a moto
server on loopback stands in for AWS and lives as long as the demo), approves it, deploys it locally
as `python -m pipeline deploy --local` does (a staging server, its smoke, accuracy and latency test,
the automatic gate, a production server), sends production a new synthetic frame, prints what it
found, both URLs, the evaluation metrics and where everything is, and stops both servers.
Steps are cached: a second run reuses the finished ones.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from entrypoints.preprocess import _size as frame_size_argument
from pipeline import dag as d
from pipeline.local_aws import use_moto
from yolo_core.cli_args import Parser, number
from yolo_core.errors import UserInputError

if TYPE_CHECKING:
    from pipeline.config import EnvConfig
    from pipeline.local_runner import LocalRunSettings
    from pipeline.registry import ModelRegistry

DEMO_CLASSES = ("pedestrian", "car", "bus")
DEMO_HYPERPARAMETERS = {
    "batch": "8",
    "nbs": "8",
    "warmup_epochs": "1",
    "workers": "0",
    "plots": "false",
    "val": "false",
}


def _parameter_argument(name: str) -> Callable[[str], int | float]:
    """An argparse type for a flag that feeds pipeline parameter `name`: its kind and range."""
    param = next(p for p in d.PARAMETERS if p.name == name)

    def parse(text: str) -> int | float:
        try:
            return d.coerce_parameter(param, text)
        except UserInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--work-dir", type=Path, default=Path(".demo"), help="everything the demo writes")
    add("--fresh", action="store_true", help="delete the work dir first (no cached steps)")
    add("--frames", type=number(int, 1), default=48, help="synthetic frames to generate")
    add(
        "--frame-size",
        type=frame_size_argument,
        default=(320, 320),
        metavar="WxH",
        help="synthetic frame size",
    )
    add("--object-px", type=int, nargs=2, default=(14, 48), metavar=("LO", "HI"), help="object sizes")
    add("--epochs", type=_parameter_argument("Epochs"), default=30)
    add("--imgsz", type=_parameter_argument("ImageSize"), default=320)
    add("--seed", type=int, default=0)
    add(
        "--min-map50-95",
        type=_parameter_argument("MinMap50To95"),
        default=0.05,
        help="demo quality gate (dev's is stricter)",
    )
    add("--min-precision", type=_parameter_argument("MinPrecision"), default=0.1)
    add("--min-recall", type=_parameter_argument("MinRecall"), default=0.1)
    add(
        "--conf",
        type=_parameter_argument("ServingConf"),
        default=0.1,
        help="the served model's conf: the gate's precision and recall, and the demo's queries, use it",
    )
    add("--hp", action="append", default=[], metavar="NAME=VALUE", help="extra training hyperparameter")
    add("--env", default="dev", help="config whose names (bucket, registry) the demo uses")


def _say(text: str) -> None:
    print(text, flush=True)


def _stage(title: str) -> None:
    _say(f"\n=== {title} ===")


def generate_raw(args: argparse.Namespace, raw_dir: Path) -> Path:
    """The synthetic VisDrone set; kept between runs when its settings did not change."""
    from yolo_core.data import generate_scenes

    width, height = args.frame_size
    stamp = {
        "frames": args.frames,
        "size": [width, height],
        "object_px": list(args.object_px),
        "seed": args.seed,
    }
    stamp_file = raw_dir.parent / "raw-settings.json"
    if raw_dir.is_dir() and stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        _say(f"reusing {args.frames} synthetic frames in {raw_dir}")
        return raw_dir
    shutil.rmtree(raw_dir, ignore_errors=True)
    _say(f"generating {args.frames} synthetic {width}x{height} drone frames in {raw_dir}")
    generate_scenes(
        raw_dir, args.frames, args.seed, width, height, tuple(args.object_px), classes=DEMO_CLASSES
    )
    stamp_file.write_text(json.dumps(stamp))
    return raw_dir


def query(url: str, frame: Path, conf: float) -> dict:
    """One frame to a running server's /invocations; its JSON answer."""
    _say(f"sending {frame.name} to {url} (X-Conf {conf:g})")
    request = urllib.request.Request(
        f"{url}/invocations",
        data=frame.read_bytes(),
        headers={"Content-Type": "image/jpeg", "X-Conf": str(conf)},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def deploy_locally(config: EnvConfig, registry: ModelRegistry, version: str, dataset: Path, work_dir: Path):
    """`python -m pipeline deploy --local`'s flow for `version`: staging, its test, the gate,
    production. The holdout is the dataset whose val split the registered evaluation scored, every
    image of it, so the endpoint's mAP50-95 is measured on the same frames as the registered one."""
    from pipeline.deploy import flow
    from pipeline.deploy.cli import candidate, holdout_data, state_dir
    from pipeline.deploy.declaration import build_deployment
    from pipeline.deploy.local import LocalDeployer

    local_state = state_dir(work_dir, config)
    deployer = LocalDeployer(local_state)
    chosen, tags = candidate(registry, version, True, local_state)
    data = holdout_data(dataset, tags, chosen.version, limit=None)
    outcome = flow.deploy_local(build_deployment(config), deployer, chosen, data, registry.audit_log)
    return deployer, outcome


def _query_frame(args: argparse.Namespace, folder: Path) -> Path:
    from yolo_core.data import generate_scenes

    width, height = args.frame_size
    generate_scenes(folder, 1, args.seed + 10_000, width, height, tuple(args.object_px), classes=DEMO_CLASSES)
    return sorted((folder / "images").glob("*.jpg"))[0]


def _print_detections(answer: dict, limit: int = 10) -> int:
    detections = answer.get("detections", [])
    _say(f"{len(detections)} detections on the {answer.get('width')}x{answer.get('height')} frame")
    for item in sorted(detections, key=lambda d: -d["score"])[:limit]:
        box = ", ".join(f"{v:.0f}" for v in item["box"])
        _say(f"  {item['class_name']:<12} {item['score']:.2f}  box [{box}]")
    if not detections:
        _say("  (none: train longer, e.g. --epochs 60, for a model that finds objects)")
    return len(detections)


def demo_settings(
    args: argparse.Namespace, config: EnvConfig, work_dir: Path, raw_dir: Path
) -> LocalRunSettings:
    """The local run the demo makes (tests build the same one, to share its cached steps)."""
    from pipeline.dag import split_pairs
    from pipeline.local_runner import LocalRunSettings

    return LocalRunSettings(
        config=config,
        work_dir=work_dir,
        parameters={
            "InputDataUri": str(raw_dir),
            "Epochs": args.epochs,
            "ImageSize": args.imgsz,
            "MinMap50To95": args.min_map50_95,
            "MinPrecision": args.min_precision,
            "MinRecall": args.min_recall,
            "ServingConf": args.conf,
        },
        hyperparameters={**DEMO_HYPERPARAMETERS, **split_pairs(args.hp, "--hp")},
    )


def check_demo_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks across flags, before anything runs: frames too small for the objects are a usage error."""
    from yolo_core.data.synthetic import scene_size_problem

    (width, height), (low, high) = args.frame_size, args.object_px
    problem = scene_size_problem(width, height, (low, high))
    if problem:
        parser.error(f"--frame-size {width}x{height} with --object-px {low} {high}: {problem}")


def demo_arguments(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="demo")
    add_demo_arguments(parser)
    args = parser.parse_args(argv)
    check_demo_arguments(parser, args)
    return args


MONITORED_FRAMES = 48  # half normal, half drifted


def monitor_demo_traffic(
    args: argparse.Namespace,
    config: EnvConfig,
    registry: ModelRegistry,
    deployer,
    work_dir: Path,
    tracking_uri: str,
) -> list[dict]:
    """New frames to production, normal then drifted, each followed by a local monitoring run."""
    from pipeline.demo_monitoring import monitor_traffic
    from pipeline.monitoring.local import registered_references
    from yolo_core.data import generate_scenes

    live = deployer.history.live("production")
    references = registered_references(registry, live["version"], work_dir / "monitoring" / "references")
    width, height = args.frame_size
    with tempfile.TemporaryDirectory(prefix="demo-traffic-", dir=work_dir) as scratch:
        generate_scenes(
            scratch,
            MONITORED_FRAMES,
            args.seed + 20_000,
            width,
            height,
            tuple(args.object_px),
            classes=DEMO_CLASSES,
        )
        frames = sorted((Path(scratch) / "images").glob("*.jpg"))
        return monitor_traffic(
            config, work_dir, deployer.url("production"), deployer.capture_dir("production"),
            references, frames, tracking_uri, _say, args.conf,
        )  # fmt: skip


def _seconds_since_start() -> float:
    """The whole command's time, slow imports included (the user's clock started at the prompt)."""
    import psutil  # a dependency (Ultralytics' too)

    return time.time() - psutil.Process().create_time()


def run_demo(args: argparse.Namespace) -> int:
    from pipeline.aws import AwsClients
    from pipeline.config import load_config
    from pipeline.local_runner import run_local, summary
    from pipeline.registry import ModelRegistry
    from pipeline.tracking import ui_command

    work_dir = args.work_dir.resolve()
    if args.fresh:
        shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    config = load_config(args.env)

    _stage("1/6 synthetic drone imagery")
    raw_dir = generate_raw(args, work_dir / "raw")

    with use_moto(work_dir, config.region) as moto:
        _say(f"AWS stand-in: moto_server at {moto.endpoint} (in memory, stops with the demo)")
        _stage("2/6 the pipeline, locally: preprocess -> train -> evaluate -> quality gate -> register")
        settings = demo_settings(args, config, work_dir, raw_dir)
        result = run_local(settings)
        _say(summary(result))
        if result.status != "Succeeded" or result.registered is None:
            _say(f"\nthe pipeline stopped: {result.failure}")
            _say(f"MLflow: {ui_command(result.tracking_uri)}")
            return 1

        _stage("3/6 approval")
        audit_log = work_dir / "registry-audit.jsonl"
        registry = ModelRegistry(config, result.tracking_uri, AwsClients(config.region), audit_log)
        approved = registry.approve(
            result.registered.version, "demo: metrics above the demo thresholds", who="demo"
        )
        _say(f"{approved.name} version {approved.version}: {approved.status} in MLflow and SageMaker (moto)")
        lineage = registry.lineage(approved.version)
        _say(
            json.dumps(
                {k: lineage[k] for k in ("approval", "data", "code_commit", "images", "pipeline")}, indent=2
            )
        )

        _stage("4/6 staging test and production, locally (python -m pipeline deploy --local)")
        dataset = Path(result.record("Preprocess").outputs["dataset"])
        deployer, outcome = deploy_locally(config, registry, approved.version, dataset, work_dir)
        monitoring: list[dict] = []
        try:
            if outcome.report is not None:
                checks = "; ".join(f"{c.name}: {c.detail}" for c in outcome.report.checks)
                _say(f"staging test {'passed' if outcome.report.passed else 'failed'}: {checks}")
            if not outcome.ok:
                _say(outcome.message)
                return 1
            _say(f"promoted: {outcome.message}" if outcome.status == "live" else outcome.message)
            _say(f"staging:    {deployer.url('staging')}")
            _say(f"production: {deployer.url('production') or '(waiting for the manual gate)'}")
            serving = deployer.url("production") or deployer.url("staging")
            with tempfile.TemporaryDirectory(prefix="demo-frame-", dir=work_dir) as scratch:
                answer = query(serving, _query_frame(args, Path(scratch)), args.conf)
            found = _print_detections(answer)
            if deployer.capture_dir("production"):
                _stage("5/6 monitoring: normal traffic, then a drifted batch (pipeline monitor --local)")
                monitoring = monitor_demo_traffic(
                    args, config, registry, deployer, work_dir, result.tracking_uri
                )
        finally:
            deployer.stop_all()
            _say("stopped the staging and production servers")

    _stage("6/6 where everything is")
    _say(f"raw synthetic data:    {raw_dir}")
    _say(f"artifact store:        {result.store}")
    for record in result.records:
        for name, location in record.outputs.items():
            _say(f"  {record.step}.{name}: {location}")
    for name, location in result.features.items():
        _say(f"feature store {name}: {location}")
    _say("evaluation metrics:    " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(result.metrics.items())))
    _say(f"registered model:      MLflow {approved.name} v{approved.version} ({approved.status})")
    _say(f"SageMaker package:     {approved.model_package_arn} (moto; gone with the demo)")
    _say(f"approval audit log:    {work_dir / 'registry-audit.jsonl'} (promotions too)")
    _say(f"deployment history:    {deployer.state_dir}")
    _say(f"step logs:             {work_dir / 'logs'}")
    _say(f"detections on a new frame: {found}")
    for run in monitoring:
        _say(f"monitoring, {run['label']} traffic: {run['violations']} violations, {run['alerts']} alert(s)")
    _say(f"open MLflow:           {ui_command(result.tracking_uri)}")
    _say(f"demo finished in {_seconds_since_start():.0f} s")
    return 0
