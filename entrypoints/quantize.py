"""`quantize`: make the int8 OpenVINO model of a model folder and measure the mAP50-95 it costs.

Calibrates on a subset of the dataset's training split, scores fp32 and int8 on `--split`, and
writes `<weights>-int8/` (the IR and quantization.json) beside the weights, with the figures in
model.json: the folder then serves `--precision int8`, and `auto` considers int8 from then on,
its cost shown in every engine-choice record. Exit 0, or 1 with a one-line reason.

    quantize --model runs/model --dataset runs/dataset
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from entrypoints.contract import run_main
from entrypoints.environment import configure_offline
from yolo_core.cli_args import Parser, number
from yolo_core.infer.int8 import DEFAULT_CALIBRATION_IMAGES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = Parser(
        prog="quantize",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--model", type=Path, required=True, help="model folder (best.pt and model.json)")
    add("--dataset", type=Path, required=True, help="dataset folder with data.yaml")
    add(
        "--calibration-images",
        type=number(int, 1),
        default=DEFAULT_CALIBRATION_IMAGES,
        help="training images to calibrate on, spread evenly over the split",
    )
    add("--split", default="val", help="the data.yaml split the cost is measured on")
    add("--batch-size", type=number(int, 1), default=8, help="images per forward pass while scoring")
    return parser.parse_args(sys.argv[1:] if argv is None else argv)


def quantize(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_offline()
    from yolo_core.evaluation.evaluate import EvaluationSettings
    from yolo_core.evaluation.quantization import quantize_model_dir

    settings = EvaluationSettings(split=args.split, device="cpu", batch_size=args.batch_size)
    quantized = quantize_model_dir(args.model, args.dataset, args.calibration_images, settings)
    cost = quantized.report["accuracy"]
    print(
        f"int8 model in {quantized.ir.parent}: mAP50-95 {cost['fp32']['map50_95']:.4f} (fp32) -> "
        f"{cost['int8']['map50_95']:.4f} (int8), drop {cost['map50_95_drop']:+.4f} on "
        f"{cost['images']} {cost['split']} images; calibrated on "
        f"{quantized.report['calibration']['images']} training images"
    )
    return 0


def main(argv: list[str] | None = None) -> None:
    run_main(lambda: quantize(argv))


if __name__ == "__main__":
    main()
