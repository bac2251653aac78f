"""`preprocess`: the SageMaker Processing step that turns raw drone imagery into a dataset.

Contract (every path can be overridden by a flag, so the same command runs outside a container;
SAGEMAKER_BASE_DIR moves the /opt/ml tree):
  input    /opt/ml/processing/input/data         VisDrone-DET, COCO JSON or YOLO folder
  outputs  /opt/ml/processing/output/dataset     YOLO layout, data.yaml, dataset.json (+ report, baseline)
           /opt/ml/processing/output/report      quality_report.json
           /opt/ml/processing/output/baseline    baseline.json (statistics for the drift monitor)
  message  /opt/ml/output/message                the one-line reason when the step fails
Exit status 0, or 1 with a one-line reason (e.g. too many bad images; the report says which).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from entrypoints.contract import ProcessingPaths, base_dir, run_main
from yolo_core.errors import UserInputError
from yolo_core.runtime import configure_offline


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def _pair(text: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    return low, high


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the contract table of the module docstring as written, and shows defaults."""


def build_parser() -> argparse.ArgumentParser:
    paths = ProcessingPaths.from_env()
    parser = argparse.ArgumentParser(
        prog="preprocess",
        description=__doc__,
        formatter_class=_HelpFormatter,
    )
    io = parser.add_argument_group("paths")
    io.add_argument("--input", type=Path, default=paths.input("data"), help="raw source folder")
    io.add_argument(
        "--format", choices=("visdrone", "coco", "yolo"), default="visdrone", help="source layout"
    )
    io.add_argument("--output-dataset", type=Path, default=paths.output("dataset"), help="dataset folder")
    io.add_argument(
        "--output-report", type=Path, default=paths.output("report"), help="quality report folder"
    )
    io.add_argument("--output-baseline", type=Path, default=paths.output("baseline"), help="baseline folder")
    io.add_argument(
        "--message-file", type=Path, default=base_dir() / "output" / "message", help="failure reason"
    )
    data = parser.add_argument_group("dataset")
    data.add_argument(
        "--tile-size", type=int, default=0, help="cut larger frames into tiles of this size (0: no)"
    )
    data.add_argument("--tile-overlap", type=float, default=0.2, help="overlap of neighbouring tiles (0-1)")
    data.add_argument("--min-visible-fraction", type=float, default=0.5, help="keep a cut box above this")
    data.add_argument("--empty-tile-ratio", type=float, default=0.1, help="share of empty tiles kept")
    data.add_argument("--val-fraction", type=float, default=0.2, help="share of frames in val")
    data.add_argument(
        "--max-bad-fraction", type=float, default=0.1, help="fail above this share of bad images"
    )
    data.add_argument("--seed", type=int, default=0, help="salt of the content-hash split")
    data.add_argument(
        "--color-rule", choices=("convert", "reject"), default="convert", help="grey/RGBA/16-bit"
    )
    data.add_argument(
        "--unlabeled-images", choices=("quarantine", "background"), default="quarantine", help="no label file"
    )
    data.add_argument("--no-mask-ignored", action="store_true", help="do not grey out ignored regions")
    data.add_argument("--workers", type=int, default=0, help="processes (0: one per core)")
    data.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo = parser.add_argument_group("synthetic input (when --input is missing or empty)")
    demo.add_argument(
        "--synthetic", type=int, default=0, metavar="N", help="generate N synthetic VisDrone frames"
    )
    demo.add_argument("--synthetic-size", type=_size, default=(640, 640), metavar="WxH", help="frame size")
    demo.add_argument(
        "--synthetic-object-px", type=_pair, default=(8, 64), metavar="LO,HI", help="object sizes"
    )
    return parser


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(path.is_file() for path in folder.rglob("*"))


def _publish(source: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, folder / source.name)


def _build(build_dataset, source: Path, source_format: str, args: argparse.Namespace):
    return build_dataset(
        source,
        args.output_dataset,
        source_format,
        tile_size=args.tile_size or None,
        tile_overlap=args.tile_overlap,
        min_visible_fraction=args.min_visible_fraction,
        empty_tile_ratio=args.empty_tile_ratio,
        val_fraction=args.val_fraction,
        max_bad_fraction=args.max_bad_fraction,
        seed=args.seed,
        color_rule=args.color_rule,
        unlabeled_images=args.unlabeled_images,
        mask_ignored=not args.no_mask_ignored,
        workers=args.workers or None,
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    from yolo_core.data import build_dataset, generate_scenes

    with tempfile.TemporaryDirectory(prefix="preprocess-") as scratch:
        source, source_format = args.input, args.format
        if not _has_files(source):
            if not args.synthetic:
                raise UserInputError(
                    f"{source}: input folder is missing or empty (use --synthetic N for a demo)"
                )
            width, height = args.synthetic_size
            source, source_format = Path(scratch) / "synthetic", "visdrone"
            print(f"generating {args.synthetic} synthetic {width}x{height} frames", file=sys.stderr)
            generate_scenes(source, args.synthetic, args.seed, width, height, args.synthetic_object_px)
        try:
            result = _build(build_dataset, source, source_format, args)
        except UserInputError:
            report = args.output_dataset / "quality_report.json"
            if report.is_file():  # the failed run's findings go where the pipeline collects reports
                _publish(report, args.output_report)
            raise
    _publish(result.report_path, args.output_report)
    _publish(result.baseline_path, args.output_baseline)
    print(
        f"dataset {result.dataset_hash[:12]}: {result.train_images} train, {result.val_images} val images, "
        f"{result.boxes} boxes; {result.images_quarantined} of {result.images_seen} source images bad\n"
        f"  dataset:  {result.data_yaml}\n"
        f"  report:   {args.output_report / result.report_path.name}\n"
        f"  baseline: {args.output_baseline / result.baseline_path.name}"
    )
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)  # before the runtime set-up, so --help answers at once
    configure_offline()
    run_main(lambda: run(args), failure_file=args.message_file)


if __name__ == "__main__":
    main()
