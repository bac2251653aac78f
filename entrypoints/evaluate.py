"""`evaluate`: the SageMaker Processing command that scores a trained model on a dataset.

Inputs (each overridable by a flag): the model artifact under /opt/ml/processing/input/model
(`model.tar.gz`, a folder holding it, or a model folder) and the dataset under
/opt/ml/processing/input/dataset (with data.yaml). Output: evaluation.json, pr_curve.png and
confusion_matrix.png in /opt/ml/processing/output/evaluation/. Exit 0, or 1 with a one-line
reason on stderr and in /opt/ml/output/message (the job's ExitMessage).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from entrypoints.contract import ProcessingPaths, base_dir, run_main
from yolo_core.runtime import configure_offline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    paths = ProcessingPaths.from_env()
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--model",
        type=Path,
        default=paths.input("model"),
        help="model folder, model.tar.gz, or folder with one",
    )
    add("--dataset", type=Path, default=paths.input("dataset"), help="dataset folder with data.yaml")
    add("--output", type=Path, default=paths.output("evaluation"))
    add("--split", default="val")
    add("--imgsz", type=int, default=0, help="0: the model card's image size")
    add("--conf", type=float, default=0.001)
    add("--iou", type=float, default=0.7)
    add("--max-det", type=int, default=300)
    add("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    add("--precision", default="auto", help="auto, fp32, fp16, bf16")
    add("--batch-size", type=int, default=8)
    add("--slice-size", type=int, default=0, help="0: whole images; else sliced inference with these tiles")
    add("--overlap", type=float, default=0.2)
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["evaluate"]:  # `docker run IMAGE evaluate` may hand the word on
        args = args[1:]
    return parser.parse_args(args)


def evaluate(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_offline()
    from yolo_core.evaluation.artifact import resolve_model_dir
    from yolo_core.evaluation.evaluate import EvaluationSettings, evaluate_model

    settings = EvaluationSettings(
        split=args.split,
        conf=args.conf,
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
        report = evaluate_model(model_dir, args.dataset, args.output, settings)
    metrics = {name: entry["value"] for name, entry in report["metrics"].items()}
    print(f"evaluation: {metrics} -> {args.output}")
    return 0


def main(argv: list[str] | None = None) -> None:
    run_main(lambda: evaluate(argv), failure_file=base_dir() / "output" / "message")


if __name__ == "__main__":
    main()
