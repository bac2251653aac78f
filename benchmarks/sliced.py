"""Our sliced inference against SAHI's `get_sliced_prediction` on generated 3840x2160 frames.

Same checkpoint, slice 640, overlap 0.2, inference size 640, confidence 0.25, greedy NMM with
IoS 0.5 on both sides. SAHI runs with its defaults (batch_size 1 and an extra full-frame pass)
and with each batch_size asked for; we run with the full-frame pass on (the same work as SAHI's
default) and off (our default). Prints seconds per frame, the ratio to SAHI's default, the
agreement of the boxes both ways (IoU 0.5, same class, against SAHI doing the same work) and the
compute floor (model FLOPs for the tiles over the FLOP/s of a large matrix product).

    python benchmarks/sliced.py --weights best.pt --json out.json
"""

from __future__ import annotations

import harness
import numpy as np

from yolo_core.data.synthetic import render_frame
from yolo_core.infer.detections import Detections
from yolo_core.infer.predictor import Predictor
from yolo_core.infer.sliced import predict_sliced
from yolo_core.infer.slicing import tile_grid


def sahi_detections(result) -> Detections:
    preds = result.object_prediction_list
    return Detections(
        np.array([p.bbox.to_xyxy() for p in preds], np.float32).reshape(-1, 4),
        np.array([p.score.value for p in preds], np.float32),
        np.array([p.category.id for p in preds], np.int64),
    )


def print_table(rows: list, base: float, fastest: float) -> None:
    print(f"\n{'variant':<44}{'s/frame':>9}{'vs SAHI default':>17}{'vs fastest':>12}{'floor s':>9}"
          f"{'agree ours->SAHI':>18}{'SAHI->ours':>12}")  # fmt: skip
    for label, seconds, ours in rows:
        line = f"{label:<44}{seconds:>9.3f}{base / seconds:>17.2f}{fastest / seconds:>12.2f}"
        if ours:
            a_in_b, b_in_a = harness.agreement_cells(ours["agreement_with_sahi_same_work"])
            line += f"{ours['compute_floor_s_per_frame']:>9.3f}{a_in_b:>18}{b_in_a:>12}"
        print(line)


def main() -> None:
    parser = harness.common_parser(__doc__)
    add = parser.add_argument
    add("--frames", type=int, default=2)
    add("--width", type=int, default=3840)
    add("--height", type=int, default=2160)
    add("--slice-size", type=int, default=640)
    add("--overlap", type=float, default=0.2)
    add("--imgsz", type=int, default=640)
    add("--conf", type=float, default=harness.AGREEMENT_CONF, help="both sides (agreement needs <= 0.1)")
    add("--batch-size", type=int, default=0, help="our batch size for tiles; 0: 8 on a CPU, 32 on a GPU")
    add("--sahi-batch-sizes", default="auto", help="comma list; auto: 8 on a CPU, 8,32 on a GPU")
    parser.set_defaults(repeats=2)
    args = parser.parse_args()

    device = harness.device_from(args)
    args.batch_size = args.batch_size or (32 if device.type == "cuda" else 8)
    weights, trained = harness.prepare_weights(args)
    frames = [render_frame(i, 11, args.width, args.height, (6, 80))[0] for i in range(args.frames)]
    frames_rgb = [np.ascontiguousarray(f[..., ::-1]) for f in frames]  # SAHI takes RGB arrays
    machine = harness.describe_machine(device)
    print(f"machine: {machine}")
    print(f"weights: {weights} ({'given' if trained else 'random: agreement figures are not meaningful'})")

    from sahi import AutoDetectionModel
    from sahi.predict import get_sliced_prediction

    sahi_model = AutoDetectionModel.from_pretrained(
        model_type="ultralytics", model_path=str(weights), confidence_threshold=args.conf,
        device=str(device), image_size=args.imgsz,
    )  # fmt: skip

    def sahi(batch_size: int, full_frame: bool) -> list[Detections]:
        return [
            sahi_detections(
                get_sliced_prediction(
                    frame, sahi_model, slice_height=args.slice_size, slice_width=args.slice_size,
                    overlap_height_ratio=args.overlap, overlap_width_ratio=args.overlap,
                    perform_standard_pred=full_frame, batch_size=batch_size, verbose=0,
                )
            )
            for frame in frames_rgb
        ]  # fmt: skip

    sahi(1, True)  # warm-up, model setup
    harness.use_threads(device)  # SAHI loaded Ultralytics, which capped the threads
    n = len(frames)
    base_s, sahi_default = harness.timed(lambda: sahi(1, True), device, args.repeats)
    rows = [("SAHI default (batch 1, full-frame pass)", base_s / n, None)]
    results = {
        "benchmark": "sliced",
        "machine": machine,
        "weights_trained": trained,
        "frames": n,
        "frame_size": [args.height, args.width],
        "slice_size": args.slice_size,
        "overlap": args.overlap,
        "imgsz": args.imgsz,
        "sahi": {"default": {"s_per_frame": round(base_s / n, 3)}},
        "ours": {},
    }
    sizes = [int(s) for s in args.sahi_batch_sizes.split(",")] if args.sahi_batch_sizes != "auto" else [8]
    if args.sahi_batch_sizes == "auto" and device.type == "cuda":
        sizes = [8, 32]
    for size in sizes:
        sahi(size, True)
        seconds, _ = harness.timed(lambda s=size: sahi(s, True), device, args.repeats)
        rows.append((f"SAHI batch {size} (full-frame pass)", seconds / n, None))
        results["sahi"][f"batch_{size}"] = {"s_per_frame": round(seconds / n, 3)}
    fastest = min(rows, key=lambda row: row[1])
    results["sahi"]["fastest"] = {"name": fastest[0], "s_per_frame": round(fastest[1], 3)}
    sahi_tiles = sahi(max(sizes), False)

    tiles = len(tile_grid(args.height, args.width, args.slice_size, args.overlap))
    tile_flops = harness.model_flops(weights, args.imgsz, args.imgsz)
    full_flops = harness.model_flops(weights, *harness.letterboxed_shape(args.height, args.width, args.imgsz))
    results["model_gflops_per_frame"] = {
        "tiles_only": round(tiles * tile_flops / 1e9, 2),
        "with_full_frame": round((tiles * tile_flops + full_flops) / 1e9, 2),
    }
    for variant in harness.our_variants(device, args):
        predictor = Predictor(weights, imgsz=args.imgsz, device=str(device), batch_size=args.batch_size,
                              probe_shape=(args.slice_size, args.slice_size),
                              **variant.predictor_options())  # fmt: skip
        precision = predictor.precision
        name = variant.name if variant.backend != "auto" else f"auto (= {predictor.engine_spec.name})"
        predict_sliced(predictor, frames[:1], args.slice_size, args.overlap)  # warm-up
        floor_flops = harness.matmul_flops_per_second(device, precision)
        for full_frame in (True, False):

            def ours(p=predictor, ff=full_frame) -> list[Detections]:
                return predict_sliced(p, frames, args.slice_size, args.overlap, full_frame=ff, conf=args.conf)

            seconds, dets = harness.timed(ours, device, args.repeats)
            flops = tiles * tile_flops + (full_flops if full_frame else 0)
            figures = {
                "engine": predictor.engine_spec.name,
                "s_per_frame": round(seconds / n, 3),
                "ratio_vs_sahi_default": round(base_s / seconds, 2),
                "ratio_vs_sahi_fastest": round(fastest[1] * n / seconds, 2),
                "compute_floor_s_per_frame": round(flops / floor_flops, 3),
                "agreement_with_sahi_same_work": harness.both_ways(
                    dets, sahi_default if full_frame else sahi_tiles
                ),
            }
            work = "full_frame" if full_frame else "tiles_only"
            results["ours"][f"{variant.name.replace(' ', '_')}_{work}"] = figures
            label = f"ours {name}, batch {args.batch_size}" + (", full-frame pass" if full_frame else "")
            rows.append((label, seconds / n, figures))
    print_table(rows, base_s / n, fastest[1])
    print(
        f"{tiles} tiles of {args.slice_size} per frame. Agreement: against SAHI doing the same work "
        "(full-frame pass on or off). Floor: model FLOPs / matmul FLOP/s in the same precision."
    )
    harness.write_json(args.json, results)


if __name__ == "__main__":
    main()
