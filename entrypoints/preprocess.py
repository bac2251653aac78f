"""`preprocess`: the SageMaker Processing step that turns raw drone imagery into a dataset.

Contract (every path can be overridden by a flag, so the same command runs outside a container;
SAGEMAKER_BASE_DIR moves the /opt/ml tree):
  input    /opt/ml/processing/input/data         VisDrone-DET, COCO JSON or YOLO folder
  outputs  /opt/ml/processing/output/dataset     YOLO layout, data.yaml, dataset.json (+ report, baseline)
           /opt/ml/processing/output/report      quality_report.json
           /opt/ml/processing/output/baseline    baseline.json (statistics for the drift monitor)
  message  /opt/ml/output/message                the one-line reason when the step fails (written
                                                 only when the /opt/ml tree exists, or to --message-file)
Exit status 0, or 1 with a one-line reason (e.g. too many bad images; the report says which).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

from entrypoints.contract import ProcessingPaths, processing_message_file, run_main
from entrypoints.environment import configure_offline
from yolo_core.cli_args import Parser, number, writable_folder, zero_or_at_least
from yolo_core.data.ranges import SETTING_RANGES
from yolo_core.errors import UserInputError

OUTPUT_FLAGS = ("--output-dataset", "--output-report", "--output-baseline")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return width, height


def _pair(text: str) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    return low, high


def _fraction_flag(group: argparse._ArgumentGroup, flag: str, default: float, help_text: str) -> None:
    """A fraction flag, checked against the range `build_dataset` itself enforces."""
    bounds = SETTING_RANGES[flag.removeprefix("--").replace("-", "_")]
    kind = number(float, bounds.low, bounds.high, low_open=bounds.low_open, high_open=bounds.high_open)
    group.add_argument(flag, type=kind, default=default, help=f"{help_text}, in {bounds}")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the contract table of the module docstring as written, and shows defaults."""


def build_parser() -> argparse.ArgumentParser:
    paths = ProcessingPaths.from_env()
    parser = Parser(
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
        "--message-file",
        type=Path,
        help="failure reason (default: <base>/output/message, only when the /opt/ml tree exists)",
    )
    data = parser.add_argument_group("dataset")
    data.add_argument(
        "--tile-size",
        type=zero_or_at_least(32, "no tiling"),
        default=0,
        help="cut larger frames into tiles of this size (0: no)",
    )
    fraction = partial(_fraction_flag, data)
    fraction("--tile-overlap", 0.2, "overlap of neighbouring tiles")
    fraction("--min-visible-fraction", 0.5, "keep a cut box above this")
    fraction("--empty-tile-ratio", 0.1, "share of empty tiles kept")
    fraction("--val-fraction", 0.2, "share of frames in val")
    fraction("--max-bad-fraction", 0.1, "fail above this share of bad images")
    data.add_argument("--seed", type=int, default=0, help="salt of the content-hash split")
    data.add_argument(
        "--color-rule", choices=("convert", "reject"), default="convert", help="grey/RGBA/16-bit"
    )
    data.add_argument(
        "--unlabeled-images", choices=("quarantine", "background"), default="quarantine", help="no label file"
    )
    data.add_argument("--no-mask-ignored", action="store_true", help="do not grey out ignored regions")
    data.add_argument(
        "--workers",
        type=number(int, 0),
        default=0,
        help="processes (0: one per core)",
    )
    data.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo = parser.add_argument_group("synthetic input (when --input is missing or empty)")
    demo.add_argument(
        "--synthetic",
        type=number(int, 0),
        default=0,
        metavar="N",
        help="generate N synthetic VisDrone frames",
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


def _check_synthetic(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Frame and object sizes that cannot make a scene are a usage error naming both flags."""
    if not args.synthetic:
        return
    from yolo_core.data.synthetic import scene_size_problem

    (width, height), (low, high) = args.synthetic_size, args.synthetic_object_px
    problem = scene_size_problem(width, height, (low, high))
    if problem:
        parser.error(f"--synthetic-size {width}x{height} with --synthetic-object-px {low},{high}: {problem}")


def run(args: argparse.Namespace) -> int:
    from yolo_core.data import build_dataset, generate_scenes

    source, source_format = args.input, args.format
    synthetic = not _has_files(source)
    if synthetic and not args.synthetic:
        raise UserInputError(f"{source}: input folder is missing or empty (use --synthetic N for a demo)")
    for flag in OUTPUT_FLAGS:  # after the input check: a missing input leaves no folders behind
        writable_folder(getattr(args, flag.removeprefix("--").replace("-", "_")), flag)
    with tempfile.TemporaryDirectory(prefix="preprocess-") as scratch:
        if synthetic:
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
    parser = build_parser()
    args = parser.parse_args(argv)  # before the runtime set-up, so --help answers at once
    _check_synthetic(parser, args)

    def offline_run() -> int:
        configure_offline()  # inside run_main: a refused cache folder is a one-line error
        return run(args)

    # The default lies in the contract tree; write_failure writes there only where that tree exists.
    run_main(offline_run, failure_file=args.message_file or processing_message_file())


if __name__ == "__main__":
    main()
