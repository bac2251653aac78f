"""Power of the drift checks per shift and magnitude, beside the target, and their false alarms.

Each seed draws its own baseline (60 synthetic 320x240 frames) and served window (40 frames),
and runs the monitor's whole family of checks (Holm at family-wise alpha 0.01, minimum PSI 0.1)
on the window as served and under each shift; see `yolo_core.monitoring.power`. Power is the
fraction of seeds where the shift's own check fires (target >= 0.9); the false-alarm rate is the
fraction where the unshifted window raises any alarm (target <= 0.10). The magnitudes the tests
assert (`STATED_SHIFTS`) are marked; the smaller ones show how much margin they have.

With `--embeddings`, every window is also embedded by a detector's backbone (`--model-dir`, or a
yolo11n built from `yolo11n.yaml` with random weights, torch seed 0, 320 px) and the MMD test of
the embeddings joins the family; a second table gives that check's own power and false alarms,
and the spread of its effect (squared MMD) per shift, which is what `Policy.min_mmd2` is set from.

    python benchmarks/drift_power.py --seeds 20 [--kinds darker,hazy] [--json out.json]
    python benchmarks/drift_power.py --seeds 20 --kinds darker,blurred,hazy --embeddings
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from yolo_core.monitoring.checks import DEFAULT_POLICY  # noqa: E402
from yolo_core.monitoring.power import (  # noqa: E402
    BASELINE_FRAMES,
    EMBEDDING_CHECK,
    EXPECTED_CHECK,
    MAX_FALSE_ALARMS,
    NO_SHIFT,
    SERVED_FRAMES,
    STATED_SHIFTS,
    TARGET_POWER,
    Shift,
    alarm_rates,
    effects,
    seed_checks,
)

# Weakest first; each holds the stated magnitude (main() checks), so the margin shows beside it.
GRID = {
    "darker": (0.97, 0.95, 0.93, 0.9),
    "blurred": (0.3, 0.4, 0.5, 0.7),
    "hazy": (0.05, 0.1, 0.15, 0.2),
    "higher_altitude": (0.95, 0.9, 0.85),
    "class_mix": (0.1, 0.2, 0.3, 0.4),
}


def shifts_for(kinds: list[str]) -> list[Shift]:
    """The grid's shifts of these kinds, weakest first."""
    return [Shift(kind, magnitude) for kind in kinds for magnitude in GRID[kind]]


def print_table(rates: dict[Shift, float], seeds: int, check_name: str | None = None) -> None:
    """Each figure beside its target: power for shifts, the false-alarm rate for none."""
    print(f"\n{'shift':<44}{'check':<24}{'rate':>6}  {'target':<8}{'met':<5}tests")
    for shift, rate in rates.items():
        if shift.kind == "none":
            check, target, met = check_name or "any", f"<= {MAX_FALSE_ALARMS:.2f}", rate <= MAX_FALSE_ALARMS
        else:
            check = check_name or EXPECTED_CHECK[shift.kind]
            target, met = f">= {TARGET_POWER}", rate >= TARGET_POWER
        stated = "stated" if shift in STATED_SHIFTS else ""
        print(f"{shift.label:<44}{check:<24}{rate:>6.2f}  {target:<8}{'yes' if met else 'no':<5}{stated}")
    print(f"\n({seeds} seeds; rate = fraction of seeds; power target >= {TARGET_POWER}, "
          f"false alarms target <= {MAX_FALSE_ALARMS})")  # fmt: skip


def print_effects(spread: dict[Shift, list[float]]) -> None:
    """Per shift, the minimum, median and maximum effect over seeds, beside the policy's minimum."""
    minimum = f"(Policy.min_mmd2 {DEFAULT_POLICY.min_mmd2})"
    print(f"\n{'shift':<44}{'min mmd2':>10}{'median':>10}{'max':>10}   {minimum}")
    for shift, values in spread.items():
        low, mid, high = np.min(values), np.median(values), np.max(values)
        print(f"{shift.label:<44}{low:>10.4f}{mid:>10.4f}{high:>10.4f}")


def random_model_dir(folder: Path, imgsz: int = 320) -> Path:
    """best.pt + model.json of a yolo11n from `yolo11n.yaml` with seeded random weights: no
    download, the same weights on every machine."""
    from yolo_core.runtime import configure_offline

    configure_offline()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from yolo_core.data.visdrone_classes import NAMES
    from yolo_core.model_card import ModelCard
    from yolo_core.weights import sha256_of

    names = [NAMES[i] for i in sorted(NAMES)]
    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    torch.save({"model": model, "train_args": {"imgsz": imgsz}}, folder / "best.pt")
    card = ModelCard(class_names=names, imgsz=imgsz, model="yolo11n.yaml")
    card.weights_sha256 = sha256_of(folder / card.weights_file)
    card.save(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1, one baseline and window each")
    parser.add_argument("--kinds", default=",".join(GRID), help=f"comma list of {', '.join(GRID)}")
    parser.add_argument("--json", type=Path, help="write the rates here as JSON")
    parser.add_argument("--embeddings", action="store_true", help="add the backbone-embedding MMD check")
    parser.add_argument("--model-dir", type=Path, help="model folder to embed with (default: random yolo11n)")
    args = parser.parse_args()
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    unknown = sorted(set(kinds) - set(GRID))
    if unknown:
        parser.error(f"--kinds: unknown {unknown}; choose from {', '.join(GRID)}")
    off_grid = [shift.label for shift in STATED_SHIFTS if shift.magnitude not in GRID[shift.kind]]
    assert not off_grid, f"stated magnitudes missing from GRID: {off_grid}"
    print(
        f"baseline {BASELINE_FRAMES} frames, served window {SERVED_FRAMES} frames, "
        f"alpha {DEFAULT_POLICY.alpha} (Holm, whole run), minimum PSI {DEFAULT_POLICY.min_psi}"
    )
    embedder = None
    if args.embeddings:
        from yolo_core.monitoring.embeddings import BackboneEmbedder

        model_dir = args.model_dir or random_model_dir(Path(tempfile.mkdtemp(prefix="drift-power-")))
        embedder = BackboneEmbedder.from_model_dir(model_dir)
        print(f"embeddings: {model_dir}, layer {embedder.layer}, {embedder.dimensions} dimensions")
    started = time.perf_counter()
    shifts = [NO_SHIFT, *shifts_for(kinds)]
    runs = []
    for seed in range(args.seeds):
        runs.append(seed_checks(seed, shifts, embedder=embedder))
        print(f"seed {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)
    rates = alarm_rates(runs)
    print_table(rates, args.seeds)
    if embedder is not None:
        print_table(alarm_rates(runs, EMBEDDING_CHECK), args.seeds, EMBEDDING_CHECK)
        print_effects(effects(runs, EMBEDDING_CHECK))
    print(f"{time.perf_counter() - started:.0f} s")
    if args.json:
        rows = [
            {"shift": s.kind, "magnitude": s.magnitude, "rate": r, "stated": s in STATED_SHIFTS}
            for s, r in rates.items()
        ]
        args.json.write_text(json.dumps({"seeds": args.seeds, "rates": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
