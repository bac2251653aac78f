"""Our batched Predictor against Ultralytics `model.predict` called per image, at 640 px.

Both run the same checkpoint on the same generated drone frames with every CPU core (Ultralytics
alone would use cores - 1). Prints images/s for each, the ratio, the agreement of the boxes
(matched both ways at IoU 0.5, same class) and the compute floor: model FLOPs per image over the
FLOP/s of a large matrix product in the same precision, measured in this run.

    python benchmarks/predict.py --weights best.pt --json out.json
"""

from __future__ import annotations

import harness

from yolo_core.data.synthetic import render_frame
from yolo_core.infer.detections import Detections
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
    yolo.predict(images[0], imgsz=imgsz, device=target, verbose=False)  # sets the predictor up
    harness.use_threads(device, threads)  # after the setup, which sets Ultralytics' own count

    def run() -> list[Detections]:
        return [
            ultralytics_detections(yolo.predict(im, imgsz=imgsz, device=target, verbose=False)[0])
            for im in images
        ]

    return run


def print_table(rows: list, user_ips: float) -> None:
    print(f"\n{'variant':<44}{'images/s':>10}{'ratio':>8}{'floor img/s':>13}{'agree a->b':>12}{'b->a':>7}")
    for label, ips, figures in rows:
        line = f"{label:<44}{ips:>10.2f}{ips / user_ips:>8.2f}"
        if figures:
            a_in_b, b_in_a = harness.agreement_cells(figures["agreement"])
            line += f"{figures['compute_floor_images_per_s']:>13.1f}{a_in_b:>12}{b_in_a:>7}"
        print(line)


def main() -> None:
    parser = harness.common_parser(__doc__)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch-sizes", default="4,8", help="comma list of our batch sizes")
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
    flops = harness.model_flops(weights, height, width)
    results = {
        "benchmark": "predict",
        "machine": machine,
        "weights_given": trained,
        "images": len(images),
        "image_size": [args.height, args.width],
        "imgsz": args.imgsz,
        "network_input": [height, width],
        "model_gflops_per_image": round(flops / 1e9, 3),
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
    all_cores_ips = rows[-1][1]
    harness.use_threads(device)
    fp32_dets = None
    for variant in harness.our_variants(device, args):
        precision, name = variant.precision, variant.name
        floor_ips = harness.matmul_flops_per_second(device, precision) / flops
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            predictor = Predictor(weights, imgsz=args.imgsz, device=str(device), batch_size=batch_size,
                                  **variant.predictor_options())  # fmt: skip
            predictor.predict(images[:batch_size])  # warm-up (and the ONNX export, once)
            seconds, dets = harness.timed(lambda p=predictor: p.predict(images), device, args.repeats)
            reference, against = (
                (fp32_dets, "ours fp32") if precision != "fp32" else (base_dets, "ultralytics")
            )  # ONNX Runtime (fp32) is compared with Ultralytics, as torch fp32 is
            figures = {
                "images_per_s": round(len(images) / seconds, 2),
                "ratio_vs_ultralytics_default": round(len(images) / seconds / user_ips, 2),
                "ratio_vs_ultralytics_all_cores": round(len(images) / seconds / all_cores_ips, 2),
                "compute_floor_images_per_s": round(floor_ips, 1),
                "agreement": {"against": against, **harness.both_ways(dets, reference)},
            }
            results["ours"][f"{name.replace(' ', '_')}_batch_{batch_size}"] = figures
            rows.append((f"ours {name}, batch {batch_size}", len(images) / seconds, figures))
        first_torch_fp32 = fp32_dets is None and (variant.backend, precision) == ("torch", "fp32")
        fp32_dets = dets if first_torch_fp32 else fp32_dets
    print_table(rows, user_ips)
    print(f"\nmodel: {flops / 1e9:.2f} GFLOPs per image at {height}x{width}; floor = matmul FLOP/s / that. "
          "Agreement: ours fp32 against Ultralytics, other precisions against ours fp32.")  # fmt: skip
    harness.write_json(args.json, results)


if __name__ == "__main__":
    main()
