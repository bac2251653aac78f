"""`serve`: the SageMaker inference container command.

Reads the contract (model in /opt/ml/model, or under `SAGEMAKER_BASE_DIR`; port 8080 or
`SAGEMAKER_BIND_TO_PORT`) and the batching, limit and capture settings (flags, each defaulting
to an environment variable, since SageMaker configures containers through the environment),
then runs the app under uvicorn. SIGTERM: uvicorn stops accepting connections, lets in-flight
requests finish (up to `--graceful-timeout-s`, under SageMaker's 30 s before SIGKILL), drains the
batcher and the capture writer, and the process exits 0. `--port 0` takes a free port from the
system; `--port-file` names a file that receives the bound port once the server listens (how tests
and scripts find it, without picking a port first and racing for it).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
import zipfile
from pathlib import Path

from entrypoints.contract import base_dir, run_main
from entrypoints.environment import configure_offline
from yolo_core.cli_args import (
    DEVICE_HELP,
    PRECISION_HELP,
    Parser,
    choice,
    number,
    resolve_hardware,
    writable_folder,
)
from yolo_core.errors import UserInputError
from yolo_core.infer.choices import BACKENDS
from yolo_core.model_card import ModelCard
from yolo_core.serving.decode import DecodeLimits
from yolo_core.serving.options import parse_default_options
from yolo_core.vocabulary import INFERENCE_PRECISIONS as PRECISIONS

# Every flag's environment variable (SageMaker configures containers through the environment).
ENV_PREFIX = "SERVE_"
DESCRIPTION = (
    "The SageMaker inference container command: loads the model folder and answers /ping and "
    "/invocations. Every flag also reads an environment variable, SERVE_ and the flag's name "
    "(--max-batch-size: SERVE_MAX_BATCH_SIZE; --port: SAGEMAKER_BIND_TO_PORT); a flag wins over "
    "its variable."
)
POSITIVE = number(float, 0, low_open=True)
NON_NEGATIVE = number(float, 0)
AT_LEAST_ONE = number(int, 1)


def _width_height(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1920x1080")
    return int(width), int(height)


def _env_flag(
    parser: argparse.ArgumentParser, flag: str, default: object, env: str = "", **kw: object
) -> None:
    """A flag whose default comes from its environment variable, named in its help."""
    env = env or ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()
    kw["help"] = f"{kw.get('help', '')} [env {env}]".strip()
    if kw.get("action") == "store_true":
        default = (os.environ.get(env) or "").lower() in {"1", "true"} or default
    else:
        default = os.environ.get(env) or default
    parser.add_argument(flag, default=default, **kw)


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="serve", description=DESCRIPTION, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    add = functools.partial(_env_flag, parser)

    add("--model-dir", str(base_dir() / "model"), type=Path, help="best.pt + model.json")
    add("--host", "0.0.0.0")
    add("--port", "8080", env="SAGEMAKER_BIND_TO_PORT", type=number(int, 0, 65535), help="0: any free port")
    add("--port-file", None, type=Path, help="written with the bound port once listening")
    add("--device", "auto", help=DEVICE_HELP)
    add("--precision", "auto", type=choice(PRECISIONS), choices=PRECISIONS, help=PRECISION_HELP)
    add(
        "--backend",
        "auto",
        type=choice(BACKENDS),
        choices=BACKENDS,
        help="auto: the fastest engine this host runs with fp32's boxes, measured at load (see /metrics)",
    )
    add("--threads", "0", type=number(int, 0), help="CPU threads; 0: all cores")
    add("--max-batch-size", "8", type=AT_LEAST_ONE, help="1: no batching")
    add("--max-wait-ms", "5", type=NON_NEGATIVE, help="how long a batch waits to fill")
    add("--max-queued-images", "512", type=AT_LEAST_ONE, help="beyond this, 503 busy")
    add("--request-timeout-s", "55", type=POSITIVE, help="past it: 503, and the work stops between batches")
    add(
        "--max-request-tiles",
        "512",
        type=AT_LEAST_ONE,
        help="model inputs (images, or tiles when slicing) per request; over it: 413",
    )
    add("--body-timeout-s", "20", type=POSITIVE, help="to receive a request body; slower: 408")
    add(
        "--stuck-after-s",
        "120",
        type=POSITIVE,
        help="a batch running longer turns /ping unhealthy; above --request-timeout-s",
    )
    add("--max-body-mb", "32", type=POSITIVE)
    add("--max-megapixels", "64", type=POSITIVE, help="per image")
    add("--max-request-megapixels", "256", type=POSITIVE)
    add("--max-megapixels-in-flight", "512", type=POSITIVE, help="decoded at once, all requests together")
    add("--max-images", "16", type=AT_LEAST_ONE, help="per request")
    add(
        "--default-options",
        "",
        help="server-wide defaults, e.g. 'conf=0.3;slice_size=640'; requests override them",
    )
    add("--capture-dir", None, type=Path, help="data capture folder; unset: no capture")
    add("--capture-percentage", "100", type=number(float, 0, 100), help="share of requests captured")
    add("--capture-queue-mb", "64", type=POSITIVE, help="captures waiting for the disk; beyond: dropped")
    add("--warmup-batches", "1", type=number(int, 0))
    add(
        "--warmup-shape",
        None,
        type=_width_height,
        help="WIDTHxHEIGHT of the frames to expect, e.g. 3840x2160; unset: the model's image size",
    )
    add("--graceful-timeout-s", "25", type=NON_NEGATIVE)
    add("--cudnn-autotune", False, action="store_true")
    add("--access-log", False, action="store_true")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _parser()
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:  # `docker run IMAGE serve` may hand the word on
        args = args[1:]
    parsed = parser.parse_args(args)
    if parsed.max_queued_images < parsed.max_images:
        parser.error(
            f"argument --max-queued-images: {parsed.max_queued_images} is below --max-images "
            f"{parsed.max_images}: a full request could never be queued"
        )
    if parsed.max_megapixels_in_flight < parsed.max_request_megapixels:
        parser.error(
            f"argument --max-megapixels-in-flight: {parsed.max_megapixels_in_flight:g} is below "
            f"--max-request-megapixels {parsed.max_request_megapixels:g}: a full request could never "
            "be decoded"
        )
    if parsed.stuck_after_s <= parsed.request_timeout_s:
        parser.error(
            f"argument --stuck-after-s: {parsed.stuck_after_s:g} is not above --request-timeout-s "
            f"{parsed.request_timeout_s:g}: a request working within its limit would look stuck"
        )
    return parsed


def check_weights_file(weights: Path) -> None:
    """A torch checkpoint is a zip archive (or, before torch 1.6, a pickle). Anything else, such as
    a text or HTML file saved as best.pt, is refused before the port opens; the real load happens
    in the background, so that /ping answers at once."""
    if not weights.is_file():
        raise UserInputError(f"{weights}: the weights named by model.json are missing")
    if weights.suffix != ".pt":
        return
    with weights.open("rb") as file:
        pickled = file.read(1) == b"\x80"
    if not (pickled or zipfile.is_zipfile(weights)):
        raise UserInputError(f"{weights}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")


def serve(args: argparse.Namespace) -> int:
    card = ModelCard.load(args.model_dir)  # fail fast, before torch loads and the port opens
    check_weights_file(args.model_dir / card.weights_file)
    limits = DecodeLimits(
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_images=args.max_images,
        max_pixels=int(args.max_megapixels * 1e6),
        max_request_pixels=int(args.max_request_megapixels * 1e6),
    )
    default_options = parse_default_options(args.default_options)
    if args.capture_dir is not None:
        writable_folder(args.capture_dir, "--capture-dir")
    configure_offline(threads=args.threads or None)
    resolve_hardware(args.device, args.precision, args.backend)  # the first torch import
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    from yolo_core.infer.predictor import Predictor
    from yolo_core.serving.app import ServerSettings, create_app
    from yolo_core.serving.listening import PortReportingServer

    settings = ServerSettings(
        limits=limits,
        default_options=default_options,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_queued_images=args.max_queued_images,
        request_timeout_s=args.request_timeout_s,
        max_request_tiles=args.max_request_tiles,
        max_pixels_in_flight=int(args.max_megapixels_in_flight * 1e6),
        body_timeout_s=args.body_timeout_s,
        stuck_after_s=args.stuck_after_s,
        capture_dir=args.capture_dir,
        capture_percentage=args.capture_percentage,
        capture_max_queued_bytes=int(args.capture_queue_mb * 1024 * 1024),
        warmup_batches=args.warmup_batches,
        warmup_shape=args.warmup_shape,
    )
    load_failures: list[str] = []

    def load_predictor() -> Predictor:
        predictor = Predictor.from_model_dir(
            args.model_dir,
            device=args.device,
            precision=args.precision,
            backend=args.backend,
            batch_size=args.max_batch_size,
            threads=args.threads or None,
        )
        if not args.cudnn_autotune:
            # Micro-batches come in every size from 1 to the maximum: cuDNN's autotuner would stall
            # for seconds on each new shape, in the middle of live traffic (p99 of 4.9 s measured).
            import torch

            torch.backends.cudnn.benchmark = False
        return predictor

    def on_load_failure(reason: str) -> None:
        load_failures.append(reason)
        server.should_exit = True

    app = create_app(settings, load_predictor, on_load_failure)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        timeout_graceful_shutdown=args.graceful_timeout_s,
        timeout_keep_alive=75,  # longer than a client's idle pool, so connections are reused
        lifespan="on",
    )
    server = PortReportingServer(config, args.port_file)
    # uvicorn re-raises the captured SIGTERM once it has drained; a no-op handler turns that into a
    # normal return, so a drained shutdown exits 0 rather than "killed by signal".
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server.run()
    if load_failures:
        raise UserInputError(f"{args.model_dir}: the model failed to load: {load_failures[0]}")
    return 0


def main(argv: list[str] | None = None) -> None:
    run_main(lambda: serve(parse_args(argv)))


if __name__ == "__main__":
    main()
