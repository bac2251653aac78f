"""`serve`: the SageMaker inference container command.

Reads the contract (model in /opt/ml/model, or under `SAGEMAKER_BASE_DIR`; port 8080 or
`SAGEMAKER_BIND_TO_PORT`) and the batching, limit and capture settings (flags, each defaulting
to an environment variable, since SageMaker configures containers through the environment),
then runs the app under uvicorn. SIGTERM: uvicorn stops accepting connections, lets in-flight
requests finish (up to `--graceful-timeout-s`, under SageMaker's 30 s before SIGKILL), drains the
batcher and the capture writer, and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from entrypoints.contract import base_dir, run_main
from yolo_core.errors import UserInputError
from yolo_core.model_card import ModelCard
from yolo_core.runtime import configure_offline
from yolo_core.serving.decode import DecodeLimits
from yolo_core.serving.options import parse_default_options


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _width_height(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 1920x1080")
    return int(width), int(height)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serve", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--model-dir", type=Path, default=_env("SERVE_MODEL_DIR", str(base_dir() / "model")))
    add("--host", default=_env("SERVE_HOST", "0.0.0.0"))
    add("--port", type=int, default=_env("SAGEMAKER_BIND_TO_PORT", "8080"))
    add("--device", default=_env("SERVE_DEVICE", "auto"), help="auto, cpu, cuda, cuda:1")
    add("--precision", default=_env("SERVE_PRECISION", "auto"), help="auto, fp32, fp16, bf16")
    add(
        "--backend",
        default=_env("SERVE_BACKEND", "auto"),
        help="torch, onnx, or auto: ONNX Runtime for fp32 on a CPU, torch on a GPU or for bf16",
    )
    add("--threads", type=int, default=_env("SERVE_THREADS", "0"), help="CPU threads; 0: all cores")
    add("--max-batch-size", type=int, default=_env("SERVE_MAX_BATCH_SIZE", "8"), help="1: no batching")
    add("--max-wait-ms", type=float, default=_env("SERVE_MAX_WAIT_MS", "5"))
    add("--max-queued-images", type=int, default=_env("SERVE_MAX_QUEUED_IMAGES", "512"))
    add("--request-timeout-s", type=float, default=_env("SERVE_REQUEST_TIMEOUT_S", "55"))
    add("--max-body-mb", type=float, default=_env("SERVE_MAX_BODY_MB", "32"))
    add("--max-megapixels", type=float, default=_env("SERVE_MAX_MEGAPIXELS", "64"), help="per image")
    add("--max-request-megapixels", type=float, default=_env("SERVE_MAX_REQUEST_MEGAPIXELS", "256"))
    add("--max-images", type=int, default=_env("SERVE_MAX_IMAGES", "16"), help="per request")
    add(
        "--default-options",
        default=_env("SERVE_DEFAULT_OPTIONS", ""),
        help="server-wide defaults, e.g. 'conf=0.3;slice_size=640'; requests override them",
    )
    add("--capture-dir", type=Path, default=os.environ.get("SERVE_CAPTURE_DIR") or None)
    add("--capture-percentage", type=float, default=_env("SERVE_CAPTURE_PERCENTAGE", "100"))
    add("--warmup-batches", type=int, default=_env("SERVE_WARMUP_BATCHES", "1"))
    add(
        "--warmup-shape",
        type=_width_height,
        default=os.environ.get("SERVE_WARMUP_SHAPE") or None,
        help="WIDTHxHEIGHT of the frames to expect, e.g. 3840x2160; default: the model's image size",
    )
    add("--graceful-timeout-s", type=float, default=_env("SERVE_GRACEFUL_TIMEOUT_S", "25"))
    add("--cudnn-autotune", action="store_true", default=_env("SERVE_CUDNN_AUTOTUNE", "") in {"1", "true"})
    add("--access-log", action="store_true", default=_env("SERVE_ACCESS_LOG", "") in {"1", "true"})
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:  # `docker run IMAGE serve` may hand the word on
        args = args[1:]
    return parser.parse_args(args)


def serve(args: argparse.Namespace) -> int:
    card = ModelCard.load(args.model_dir)  # fail fast, before torch loads and the port opens
    weights = args.model_dir / card.weights_file
    if not weights.is_file():
        raise UserInputError(f"{weights}: the weights named by model.json are missing")
    limits = DecodeLimits(
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_images=args.max_images,
        max_pixels=int(args.max_megapixels * 1e6),
        max_request_pixels=int(args.max_request_megapixels * 1e6),
    )
    default_options = parse_default_options(args.default_options)
    configure_offline(threads=args.threads or None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    from yolo_core.infer.predictor import Predictor
    from yolo_core.serving.app import ServerSettings, create_app

    settings = ServerSettings(
        limits=limits,
        default_options=default_options,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_queued_images=args.max_queued_images,
        request_timeout_s=args.request_timeout_s,
        capture_dir=args.capture_dir,
        capture_percentage=args.capture_percentage,
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
    server = uvicorn.Server(config)
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
