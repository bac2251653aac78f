"""`evaluate`: the SageMaker Processing command that scores a trained model on a dataset.

Inputs (each overridable by a flag): the model artifact under /opt/ml/processing/input/model
(`model.tar.gz`, a folder holding it, or a model folder) and the dataset under
/opt/ml/processing/input/dataset (with data.yaml). Output: evaluation.json, pr_curve.png,
confusion_matrix.png and monitoring_constraints.json (the model's answers and backbone embeddings on
the split and the metrics above: what the monitor compares served traffic with) in
/opt/ml/processing/output/evaluation/. Exit 0, or 1 with a one-line
reason on stderr and in /opt/ml/output/message (the job's ExitMessage), also when our mAP and
pycocotools' disagree by more than 0.01 (evaluation.json is written first, with both figures).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from entrypoints.contract import ProcessingPaths, processing_message_file, run_main
from entrypoints.environment import configure_offline
from yolo_core.cli_args import (
    DEVICE_HELP,
    PRECISION_HELP,
    Parser,
    choice,
    number,
    resolve_hardware,
    zero_or_at_least,
)
from yolo_core.evaluation.metrics import SERVING_CONF
from yolo_core.serving.options import MIN_SLICE_SIZE
from yolo_core.vocabulary import INFERENCE_PRECISIONS as PRECISIONS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    paths = ProcessingPaths.from_env()
    parser = Parser(
        prog="evaluate",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--model",
        type=Path,
        default=paths.input("model"),
        help="model folder, model.tar.gz, or folder with one",
    )
    add("--dataset", type=Path, default=paths.input("dataset"), help="dataset folder with data.yaml")
    add("--output", type=Path, default=paths.output("evaluation"), help="where evaluation.json goes")
    add("--split", default="val", help="the data.yaml split to score")
    add(
        "--imgsz",
        type=zero_or_at_least(32, "the model's size"),
        default=0,
        help="0: the model card's image size; else >= 32",
    )
    add(
        "--conf",
        type=number(float, 0, 1),
        default=0.001,
        help="lowest confidence kept, for mAP; precision and recall are at the server's default conf",
    )
    add(
        "--serving-conf",
        type=number(float, 0, 1),
        default=SERVING_CONF,
        help="the conf the endpoint answers at: precision, recall and the monitoring profile are there",
    )
    add("--iou", type=number(float, 0, 1), default=0.7, help="NMS IoU threshold")
    add("--max-det", type=number(int, 1), default=300, help="detections kept per image")
    add("--device", default="auto", help=DEVICE_HELP)
    add("--precision", default="auto", type=choice(PRECISIONS), choices=PRECISIONS, help=PRECISION_HELP)
    add("--batch-size", type=number(int, 1), default=8, help="images per forward pass")
    add(
        "--slice-size",
        type=zero_or_at_least(MIN_SLICE_SIZE, "no slicing"),  # tinier tiles: thousands per image
        default=0,
        help=f"0: whole images; else sliced inference with tiles of this size (>= {MIN_SLICE_SIZE})",
    )
    add("--overlap", type=number(float, 0, 1, high_open=True), default=0.2, help="tile overlap, with slicing")
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["evaluate"]:  # `docker run IMAGE evaluate` may hand the word on
        args = args[1:]
    return parser.parse_args(args)


def evaluate(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_offline()
    resolve_hardware(args.device, args.precision)  # before minutes of unpacking and loading
    from yolo_core.data.json_io import write_json
    from yolo_core.evaluation.artifact import resolve_model_dir
    from yolo_core.evaluation.evaluate import EvaluationSettings, evaluate_split
    from yolo_core.monitoring.constraints import CONSTRAINTS_FILE
    from yolo_core.monitoring.reference import monitoring_reference

    settings = EvaluationSettings(
        split=args.split,
        conf=min(args.conf, args.serving_conf),
        serving_conf=args.serving_conf,
        iou=args.iou,
        max_det=args.max_det,
        imgsz=args.imgsz or None,
        device=args.device,
        precision=args.precision,
        batch_size=args.batch_size,
        slice_size=args.slice_size,
        overlap=args.overlap,
    )
    with tempfile.TemporaryDirectory(prefix="evaluate-model-") as scratch:
        model_dir = resolve_model_dir(args.model, Path(scratch))
        evaluation = evaluate_split(model_dir, args.dataset, args.output, settings)
        report = evaluation.report
        reference = monitoring_reference(
            model_dir,
            args.dataset,
            report,
            args.serving_conf,
            args.split,
            args.device,
            args.precision,
            served=evaluation.served,  # the evaluation's own answers where they are the server's
        )
    write_json(args.output / CONSTRAINTS_FILE, reference)
    metrics = {name: entry["value"] for name, entry in report["metrics"].items()}
    print(f"evaluation: {metrics} -> {args.output}")
    return 0


def main(argv: list[str] | None = None) -> None:
    run_main(lambda: evaluate(argv), failure_file=processing_message_file())


if __name__ == "__main__":
    main()
