"""Build a training dataset from a raw source folder: the one call preprocess makes.

Output layout (what train and evaluate read):
    <out>/images/{train,val}/*.jpg   <out>/labels/{train,val}/*.txt (YOLO)
    <out>/data.yaml            train/val relative to the yaml, no `path:` key, names
    <out>/quality_report.json  findings per file and line, quarantined images
    <out>/baseline.json        statistics for the drift monitor
    <out>/dataset.json         manifest: dataset_hash, settings, and per written image its source
                               frame, offset and size (tiles record where they came from)
Frames are processed in a process pool, one frame per task, each decoded once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import yaml
from tqdm import tqdm

from yolo_core.data import coco, quality, split, visdrone, yolo_folder
from yolo_core.data.frame_job import UNLABELED_RULES, FrameOptions, FrameResult, output_stem, process_frame
from yolo_core.data.images_io import COLOR_RULES
from yolo_core.data.json_io import write_json
from yolo_core.data.pool import process_pool
from yolo_core.data.ranges import SETTING_RANGES, range_problem
from yolo_core.data.source import Discovery
from yolo_core.data.stats import build_baseline, write_baseline
from yolo_core.errors import UserInputError
from yolo_core.runtime import cpu_thread_count

FORMATS = {"visdrone": visdrone.discover, "coco": coco.discover, "yolo": yolo_folder.discover}
BASELINE_FILE = "baseline.json"  # the drift monitor's reference statistics
OUTPUT_FILES = ("data.yaml", "dataset.json", "quality_report.json", BASELINE_FILE)
SPLITS = ("train", "val")


@dataclass(frozen=True)
class DatasetResult:
    """Where the dataset landed and what it holds."""

    data_yaml: Path
    report_path: Path
    baseline_path: Path
    manifest_path: Path
    dataset_hash: str
    names: dict[int, str]
    images_seen: int
    images_quarantined: int
    train_images: int
    val_images: int
    boxes: int

    @property
    def root(self) -> Path:
        return self.data_yaml.parent


def _check_arguments(
    source_dir: Path, out_dir: Path, source_format: str, options: FrameOptions, max_bad_fraction: float
) -> None:
    if source_format not in FORMATS:
        raise UserInputError(f"source_format {source_format!r} is not one of {sorted(FORMATS)}")
    if not source_dir.is_dir():
        raise UserInputError(f"{source_dir}: source folder does not exist")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserInputError(f"{out_dir}: the output path is a file, not a folder")
    if out_dir.resolve() == source_dir.resolve() or source_dir.resolve() in out_dir.resolve().parents:
        raise UserInputError(
            f"{out_dir}: the output folder must not be inside the source folder {source_dir}"
        )
    if options.tile_size is not None and options.tile_size < 32:
        raise UserInputError(f"tile_size {options.tile_size} is too small (at least 32)")
    values = {**asdict(options), "max_bad_fraction": max_bad_fraction}
    for name in SETTING_RANGES:
        problem = range_problem(name, values[name])
        if problem:
            raise UserInputError(f"{name}={problem}")
    choices = {"color_rule": COLOR_RULES, "unlabeled_images": UNLABELED_RULES}
    for name, allowed in choices.items():
        if getattr(options, name) not in allowed:
            raise UserInputError(f"{name}={getattr(options, name)!r} is not one of {sorted(allowed)}")


def _check_unique_names(discovery: Discovery) -> None:
    """Output names are flattened source paths; two sources must not write the same file."""
    seen: dict[str, str] = {}
    for item in discovery.items:
        other = seen.setdefault(output_stem(item.rel), item.rel)
        if other != item.rel:
            raise UserInputError(
                f"{item.rel} and {other} would both be written as {output_stem(item.rel)}; rename one"
            )


def _prepare_output(out_dir: Path) -> None:
    """Clear a previous build in `out_dir`; refuse to write over a folder we did not make."""
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not any((out_dir / name).exists() for name in OUTPUT_FILES):
            raise UserInputError(f"{out_dir}: output folder is not empty and holds no previous dataset")
        for name in ("images", "labels"):
            shutil.rmtree(out_dir / name, ignore_errors=True)
        for name in OUTPUT_FILES:
            (out_dir / name).unlink(missing_ok=True)
    for kind in ("images", "labels"):
        for split_name in SPLITS:
            (out_dir / kind / split_name).mkdir(parents=True, exist_ok=True)


def _run_frames(
    discovery: Discovery, options: FrameOptions, workers: int | None, progress: bool
) -> list[FrameResult]:
    job = partial(process_frame, options=options)
    items = discovery.items
    workers = workers or cpu_thread_count()
    bar = partial(
        tqdm, total=len(items), desc="preprocess", unit="frame", disable=not progress, mininterval=1.0
    )
    if workers <= 1 or len(items) < 8:
        return list(bar(map(job, items)))
    # Small chunks: a frame takes tens of milliseconds, and big chunks leave a core idle at the end.
    with process_pool(workers) as pool:
        return list(bar(pool.map(job, items, chunksize=2)))


def _balance_splits(results: list[FrameResult], options: FrameOptions) -> dict[str, str]:
    """Each frame's split; with two frames or more, neither split is left empty."""
    kept = [r for r in results if not r.quarantined]
    splits = {r.rel: split.split_of(r.split_key, options.val_fraction) for r in kept}
    if len(kept) >= 2 and options.val_fraction > 0:
        for empty, lowest in (("val", True), ("train", False)):
            if empty not in splits.values():
                chosen = sorted(kept, key=lambda r: r.split_key)[0 if lowest else -1]
                _move_outputs(chosen, splits[chosen.rel], empty, options.out_dir)
                splits[chosen.rel] = empty
    return splits


def _move_outputs(result: FrameResult, old: str, new: str, out_dir: Path) -> None:
    for output in result.outputs:
        for kind, suffix in (("images", output.suffix), ("labels", ".txt")):
            source = out_dir / kind / old / f"{output.name}{suffix}"
            source.rename(out_dir / kind / new / source.name)


def _manifest_items(results: list[FrameResult], splits: dict[str, str]) -> list[dict]:
    items = []
    for result in results:
        if result.quarantined:
            continue
        split_name = splits[result.rel]
        for output in result.outputs:
            items.append(
                {
                    "image": f"images/{split_name}/{output.name}{output.suffix}",
                    "label": f"labels/{split_name}/{output.name}.txt",
                    "split": split_name,
                    "source": result.rel,
                    "source_digest": result.digest,
                    "frame_width": result.frame_size[0],
                    "frame_height": result.frame_size[1],
                    "x": output.x,
                    "y": output.y,
                    "width": output.width,
                    "height": output.height,
                    "boxes": output.boxes,
                    "label_digest": hashlib.blake2b(output.label_text.encode(), digest_size=16).hexdigest(),
                }
            )
    return sorted(items, key=lambda item: item["image"])


def _quality_report(
    results: list[FrameResult], discovery: Discovery, source_dir: Path, source_format: str, max_bad: float
) -> quality.QualityReport:
    counts: Counter = Counter()
    issues = list(discovery.issues)
    for result in results:
        counts.update(result.counts)
        issues += result.issues
    quarantined = {
        r.rel: [i.kind for i in r.issues if i.severity == quality.ERROR] for r in results if r.quarantined
    }
    return quality.QualityReport(
        str(source_dir), source_format, max_bad, len(results), quarantined, issues, counts
    )


def _baseline(kept: list[FrameResult], names: dict[int, str]) -> dict:
    box_sizes: dict[int, list[tuple[float, float]]] = {}
    for result in kept:
        for cls, width, height in result.box_sizes:
            box_sizes.setdefault(cls, []).append((width, height))
    return build_baseline([r.stats for r in kept], box_sizes, names)


def dataset_hash(items: list[dict], names: dict[int, str], settings: dict) -> str:
    """Identifies the dataset's content: source bytes, tiles, labels, classes and settings."""
    document = json.dumps({"items": items, "names": names, "settings": settings}, sort_keys=True)
    return hashlib.sha256(document.encode()).hexdigest()


def _write_data_yaml(out_dir: Path, names: dict[int, str], has_val: bool) -> Path:
    # No `path:` key: Ultralytics then resolves train/val against this file's folder, which
    # survives moving the dataset (S3 channels, spot restarts on another host).
    document = {"train": "images/train", "val": "images/val" if has_val else "images/train", "nc": len(names)}
    document["names"] = dict(names)
    path = out_dir / "data.yaml"
    path.write_text(
        "# Written by yolo_core.data.build_dataset.\n" + yaml.safe_dump(document, sort_keys=False)
    )
    return path


def build_dataset(
    source_dir: str | Path,
    out_dir: str | Path,
    source_format: str = "visdrone",
    *,
    tile_size: int | None = None,
    tile_overlap: float = 0.2,
    min_visible_fraction: float = 0.5,
    empty_tile_ratio: float = 0.1,
    val_fraction: float = 0.2,
    max_bad_fraction: float = 0.1,
    seed: int = 0,
    color_rule: str = "convert",
    unlabeled_images: str = "quarantine",
    mask_ignored: bool = True,
    jpeg_quality: int = 95,
    workers: int | None = None,
    progress: bool = True,
) -> DatasetResult:
    """Convert, validate, optionally tile, split and describe a source folder as a YOLO dataset.

    `source_format`: "visdrone" | "coco" | "yolo" (see those modules for their semantics).
    `tile_size`: cut frames larger than this into tiles (None: whole frames), neighbours
    overlapping by `tile_overlap`; a cut box survives if `min_visible_fraction` of it is inside;
    `empty_tile_ratio` of the tiles without targets are kept as background.
    `color_rule`: "convert" or "reject" grayscale, RGBA and 16-bit images.
    `unlabeled_images`: "quarantine" images without labels, or keep them as "background".
    `mask_ignored`: grey out ignored regions (VisDrone category 0 / score 0, COCO crowds).
    Raises `UserInputError` (after writing the quality report) when more than
    `max_bad_fraction` of the images are quarantined.
    """
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    options = FrameOptions(
        out_dir=out_dir,
        tile_size=tile_size,
        tile_overlap=tile_overlap,
        min_visible_fraction=min_visible_fraction,
        empty_tile_ratio=empty_tile_ratio,
        val_fraction=val_fraction,
        seed=seed,
        color_rule=color_rule,
        unlabeled_images=unlabeled_images,
        mask_ignored=mask_ignored,
        jpeg_quality=jpeg_quality,
    )
    _check_arguments(source_dir, out_dir, source_format, options, max_bad_fraction)
    discovery = FORMATS[source_format](source_dir)
    _check_unique_names(discovery)
    _prepare_output(out_dir)
    results = _run_frames(discovery, options, workers, progress)

    report = _quality_report(results, discovery, source_dir, source_format, max_bad_fraction)
    report_path = report.write(out_dir / "quality_report.json")
    report.raise_if_failed(report_path)

    splits = _balance_splits(results, options)
    items = _manifest_items(results, splits)
    settings = {k: v for k, v in asdict(options).items() if k != "out_dir"} | {"source_format": source_format}
    digest = dataset_hash(items, discovery.names, settings)
    kept = [r for r in results if not r.quarantined]
    baseline_path = write_baseline(_baseline(kept, discovery.names), out_dir / BASELINE_FILE)
    split_counts = Counter(item["split"] for item in items)
    manifest = {
        "dataset_hash": digest,
        "source_format": source_format,
        "names": discovery.names,
        "settings": settings,
        "counts": {
            "frames": len(kept),
            "train_images": split_counts["train"],
            "val_images": split_counts["val"],
        },
        "items": items,
    }
    manifest_path = write_json(out_dir / "dataset.json", manifest)
    data_yaml = _write_data_yaml(out_dir, discovery.names, split_counts["val"] > 0)
    return DatasetResult(
        data_yaml=data_yaml,
        report_path=report_path,
        baseline_path=baseline_path,
        manifest_path=manifest_path,
        dataset_hash=digest,
        names=dict(discovery.names),
        images_seen=len(results),
        images_quarantined=len(report.quarantined),
        train_images=split_counts["train"],
        val_images=split_counts["val"],
        boxes=int(report.counts["boxes_kept"]),
    )
