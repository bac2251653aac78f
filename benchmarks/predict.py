"""Our batched Predictor against Ultralytics `model.predict` called per image, at 640 px.

Both run the same checkpoint on the same generated drone frames. Prints images/s for each, the
ratio to Ultralytics as a user runs it (its own thread rule: min(8, cores - 1)), the agreement of
the boxes with Ultralytics' (confident boxes, both ways), and for each engine its model-alone
figure (the forward pass on a ready canvas) with end-to-end / model-alone: what the host work
around the model costs. `auto` is the predictor's measured choice (named in the table).

    python benchmarks/predict.py --weights best.pt --json out.json
"""

from __future__ import annotations

import harness

from yolo_core.data.synthetic import render_frame
from yolo_core.infer.detections import Detections
from yolo_core.infer.engine_choice import time_forward
from yolo_core.infer.letterbox import letterbox_batch
from yolo_core.infer.predictor import Predictor


def ultralytics_detections(result) -> Detections:
    boxes = result.boxes
    return Detections(boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(), boxes.cls.cpu().numpy())


def baseline_variants(device) -> list[tuple[str, int | None]]:
    """Ultralytics as a user runs it (its own CPU thread rule), and with every core like ours."""
    if device.type == "cuda":
        return [("default", None)]
    default = harness.ultralytics_default_threads()
    every = harness.cpu_thread_count()
    variants = [(f"default ({default} thread{'s' if default > 1 else ''})", default)]
    return variants + ([(f"all {every} cores", every)] if every != default else [])


def ultralytics_per_image(weights, images, imgsz: int, device, threads: int | None):
    from ultralytics import YOLO

    yolo = YOLO(str(weights))
    target = str(device.index or 0) if device.type == "cuda" else "cpu"
    options = {"imgsz": imgsz, "device": target, "verbose": False, "conf": harness.AGREEMENT_CONF}
    yolo.predict(images[0], **options)  # sets the predictor up
    harness.use_threads(device, threads)  # after the setup, which sets Ultralytics' own count

    def run() -> list[Detections]:
        return [ultralytics_detections(yolo.predict(im, **options)[0]) for im in images]

    return run


def print_table(rows: list, user_ips: float) -> None:
    header = f"\n{'variant':<46}{'images/s':>10}{'ratio':>8}{'alone img/s':>13}{'e2e/alone':>11}"
    print(header + f"{'agree a->b':>12}{'b->a':>7}")
    for label, ips, figures in rows:
        line = f"{label:<46}{ips:>10.2f}{ips / user_ips:>8.2f}"
        if figures:
            alone = figures.get("model_alone_images_per_s")
            line += f"{alone:>13.1f}{figures['end_to_end_over_model_alone']:>11.3f}" if alone else " " * 24
            a_in_b, b_in_a = harness.agreement_cells(figures["agreement"])
            line += f"{a_in_b:>12}{b_in_a:>7}"
        print(line)


def model_alone(predictor: Predictor, images, device, repeats: int) -> float:
    """Images/s of the engine's forward pass on an already letterboxed batch."""
    canvas, _ = letterbox_batch(images[: predictor.batch_size], predictor.imgsz, predictor.stride)
    speeds = [time_forward(predictor.engine, canvas)[0] for _ in range(max(1, repeats))]
    harness.sync(device)
    return sorted(speeds)[len(speeds) // 2]


def main() -> None:
    parser = harness.common_parser(__doc__)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch-sizes", default="8", help="comma list of our batch sizes")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    device = harness.device_from(args)
    weights, trained = harness.prepare_weights(args)
    images = [render_frame(i, 7, args.width, args.height, (8, 90))[0] for i in range(args.images)]
    machine = harness.describe_machine(device)
    print(f"machine: {machine}")
    print(f"weights: {weights} ({'given' if trained else 'random: agreement figures are not meaningful'})")
    height, width = harness.letterboxed_shape(args.height, args.width, args.imgsz)
    results = {
        "benchmark": "predict",
        "machine": machine,
        "weights_given": trained,
        "images": len(images),
        "image_size": [args.height, args.width],
        "imgsz": args.imgsz,
        "network_input": [height, width],
        "baselines": {},
        "ours": {},
    }
    rows = []
    base_dets = None
    for label, threads in baseline_variants(device):
        run = ultralytics_per_image(weights, images, args.imgsz, device, threads)
        seconds, base_dets = harness.timed(run, device, args.repeats)
        results["baselines"][label] = {"images_per_s": round(len(images) / seconds, 2), "threads": threads}
        rows.append((f"ultralytics predict per image, {label}", len(images) / seconds, None))
    user_ips = rows[0][1]  # as a user would run it: Ultralytics' own thread choice
    harness.use_threads(device)
    for variant in harness.our_variants(device, args):
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            options = {"batch_size": batch_size, "probe_shape": (args.width, args.height)}
            predictor = Predictor(
                weights, imgsz=args.imgsz, device=str(device), **options, **variant.predictor_options()
            )

            def run(p=predictor) -> list[Detections]:
                return p.predict(images, conf=harness.AGREEMENT_CONF)

            seconds, dets = harness.timed(run, device, args.repeats)
            ips = len(images) / seconds
            alone = model_alone(predictor, images, device, args.repeats)
            figures = {
                "engine": predictor.engine_spec.name,
                "images_per_s": round(ips, 2),
                "ratio_vs_ultralytics_default": round(ips / user_ips, 2),
                "model_alone_images_per_s": round(alone, 2),
                "end_to_end_over_model_alone": round(ips / alone, 3),
                "agreement": {"against": "ultralytics", **harness.both_ways(dets, base_dets)},
            }
            if variant.backend == "auto":
                figures["choice"] = predictor.engine_choice.to_record()
            name = variant.name if variant.backend != "auto" else f"auto (= {predictor.engine_spec.name})"
            results["ours"][f"{variant.name.replace(' ', '_')}_batch_{batch_size}"] = figures
            rows.append((f"ours {name}, batch {batch_size}", ips, figures))
    print_table(rows, user_ips)
    print("\nratio: to Ultralytics' default; agreement: confident boxes (>= 0.35) of ours in Ultralytics' "
          "(>= 0.1) and back; e2e/alone: end to end over the engine's forward pass alone.")  # fmt: skip
    harness.write_json(args.json, results)


if __name__ == "__main__":
    main()
