"""The margin of the tests' model-quality threshold, measured over training seeds.

`tests/test_train_learning.py` asserts that the session's training run (tests/fixtures_data.py:
the synthetic drone set, `LEARNING_HYPERPARAMETERS`) reaches a val mAP50 above a threshold. A
machine of another CPU computes slightly different numbers, which acts like another seed, so the
threshold must hold with a margin across seeds. This trains the same job with seeds 0..N-1 and
prints each seed's mAP50, the minimum and the threshold beside it.

    python benchmarks/learning_margin.py --seeds 10 --json results.json   # ~3 min a seed on 2 cores
    python benchmarks/learning_margin.py --only 3,4 --json part.json      # some seeds (one machine each)
    python benchmarks/learning_margin.py --merge part-*.json               # the summary over all parts
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from entrypoints.environment import configure_offline  # noqa: E402

configure_offline()

from tests.fixtures_data import (  # noqa: E402
    FINE_TUNING_HYPERPARAMETERS,
    FROM_WEIGHTS_MAP50_THRESHOLD,
    LEARNING_HYPERPARAMETERS,
    MAP50_THRESHOLD,
)
from yolo_core.data.dataset import build_dataset  # noqa: E402
from yolo_core.data.synthetic import generate_scenes  # noqa: E402
from yolo_core.hyperparams import Hyperparameters  # noqa: E402
from yolo_core.train.trainer import TrainingJob, train  # noqa: E402

# The thresholds tests/test_train_learning.py asserts on these figures.
THRESHOLDS = {"mAP50": MAP50_THRESHOLD, "one_more_epoch_mAP50": FROM_WEIGHTS_MAP50_THRESHOLD}


def synthetic_dataset(root: Path) -> Path:
    """The tests' dataset, built the way the `synthetic_dataset` fixture builds it."""
    raw = generate_scenes(root / "raw", 48, seed=7, width=320, height=320, object_px=(14, 48))
    return build_dataset(raw, root / "dataset", "visdrone", seed=7, progress=False).root


def train_with_seed(dataset: Path, root: Path, seed: int, **overrides) -> dict[str, float]:
    """The card's metrics of one run; `overrides` as the tests give them (e.g. weights=...)."""
    weights = overrides.pop("weights", None)
    overrides.setdefault("tracking_uri", "none")  # tracking changes no figure, and needs no MLflow here
    name = f"seed-{seed}" + ("-from-weights" if weights else "")
    job = TrainingJob(
        data_yaml=dataset / "data.yaml",
        checkpoint_dir=root / name / "checkpoints",
        model_dir=root / name / "model",
        hyperparameters=Hyperparameters(**{**LEARNING_HYPERPARAMETERS, "seed": seed, **overrides}),
        weights=weights,
        handle_signals=False,
    )
    return {key: float(value) for key, value in train(job).card.metrics.items()}


def measure_seed(dataset: Path, root: Path, seed: int) -> dict[str, float]:
    """The fixture's run, and test_training_starts_from_user_weights' one epoch from its weights."""
    full = train_with_seed(dataset, root, seed)
    weights = root / f"seed-{seed}" / "model" / "best.pt"
    again = train_with_seed(dataset, root, seed, weights=weights, epochs=1, **FINE_TUNING_HYPERPARAMETERS)
    return {"mAP50": full["mAP50"], "mAP50-95": full["mAP50-95"], "one_more_epoch_mAP50": again["mAP50"]}


def summarise(results: dict[str, dict[str, float]]) -> None:
    """Each threshold beside the lowest figure over the seeds measured."""
    for name, threshold in THRESHOLDS.items():
        values = [figures[name] for figures in results.values()]
        print(
            f"{name} over {len(values)} seeds: min {min(values):.3f}, mean {statistics.mean(values):.3f}, "
            f"max {max(values):.3f}; test threshold {threshold} (margin {min(values) - threshold:+.3f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="train seeds 0..N-1")
    parser.add_argument("--only", help="comma-separated seeds instead of --seeds (split across machines)")
    parser.add_argument("--merge", type=Path, nargs="+", help="summarise earlier --json files")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.merge:
        merged = {}
        for path in args.merge:
            merged.update(json.loads(path.read_text())["by_seed"])
        summarise(merged)
        return
    seeds = [int(seed) for seed in args.only.split(",")] if args.only else list(range(args.seeds))
    root = Path(tempfile.mkdtemp(prefix="learning-margin-"))
    dataset = synthetic_dataset(root)
    results = {}
    for seed in seeds:
        started = time.perf_counter()
        results[seed] = measure_seed(dataset, root, seed)
        figures = ", ".join(f"{name} {value:.3f}" for name, value in results[seed].items())
        print(f"seed {seed}: {figures} ({time.perf_counter() - started:.0f} s)", flush=True)
        if args.json:  # written after each seed, so a run stopped early keeps what it measured
            args.json.write_text(json.dumps({"by_seed": results, "thresholds": THRESHOLDS}, indent=2))
    summarise(results)


if __name__ == "__main__":
    main()
