"""Our batched Predictor against Ultralytics `model.predict` called per image, at 640 px.

Both run the same checkpoint on the same generated drone frames with every CPU core (Ultralytics
alone would use cores - 1). Prints images/s for each, the ratio, the agreement of the boxes
(matched both ways at IoU 0.5, same class) and the compute floor: model FLOPs per image over the
FLOP/s of a large matrix product in the same precision, measured in this run.

    python benchmarks/predict.py --weights best.pt --json out.json
"""

from __future__ import annotations

import argparse

import harness

from yolo_core.data.synthetic import render_frame
from yolo_core.infer.detections import Detections
from yolo_core.infer.predictor import Predictor


def ultralytics_detections(result) -> Detections:
    boxes = result.boxes
    return Detections(boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(), boxes.cls.cpu().numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    harness.add_common_args(parser)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    args = parser.parse_args()

    device = harness.device_from(args)
    weights, trained = harness.prepare_weights(args)
    images = [render_frame(i, 7, args.width, args.height, (8, 90))[0] for i in range(args.images)]
    machine = harness.describe_machine(device)
    print(f"machine: {machine}")
    print(f"weights: {weights} ({'given' if trained else 'random: agreement figures are not meaningful'})")

    from ultralytics import YOLO

    yolo = YOLO(str(weights))
    ultralytics_device = str(device.index or 0) if device.type == "cuda" else "cpu"

    def predict_one(image):
        return yolo.predict(image, imgsz=args.imgsz, device=ultralytics_device, verbose=False)[0]

    def baseline() -> list[Detections]:
        return [ultralytics_detections(predict_one(image)) for image in images]

    predict_one(images[0])  # warm-up and predictor setup
    harness.use_all_cores(device)
    base_s, base_dets = harness.timed(baseline, device, args.repeats)
    base_ips = len(images) / base_s
    height, width = harness.letterboxed_shape(args.height, args.width, args.imgsz)
    flops = harness.model_flops(weights, height, width)
    results = {
        "benchmark": "predict",
        "machine": machine,
        "weights_trained": trained,
        "images": len(images),
        "image_size": [args.height, args.width],
        "imgsz": args.imgsz,
        "network_input": [height, width],
        "model_gflops_per_image": round(flops / 1e9, 3),
        "baseline": {"name": "ultralytics model.predict per image", "images_per_s": round(base_ips, 2)},
        "ours": {},
    }
    print(f"\n{'variant':<34}{'images/s':>10}{'ratio':>8}{'floor img/s':>13}{'agree a->b':>12}{'b->a':>7}")
    print(f"{'ultralytics predict, per image':<34}{base_ips:>10.2f}{1.0:>8.2f}")
    fp32_dets = None
    for precision in harness.fast_precisions(device, args.precisions):
        predictor = Predictor(weights, imgsz=args.imgsz, device=str(device), precision=precision,
                              batch_size=args.batch_size)  # fmt: skip
        predictor.predict(images[: args.batch_size])  # warm-up
        ours_s, ours_dets = harness.timed(lambda p=predictor: p.predict(images), device, args.repeats)
        ips = len(images) / ours_s
        floor_ips = harness.matmul_flops_per_second(device, precision) / flops
        reference = fp32_dets if fp32_dets is not None else base_dets
        agree = harness.both_ways(ours_dets, reference)
        fp32_dets = ours_dets if precision == "fp32" else fp32_dets
        label = f"ours {precision}, batch {args.batch_size}"
        against = "ours fp32" if reference is not base_dets else "ultralytics"
        a_in_b, b_in_a = harness.fraction(agree["a_in_b"]), harness.fraction(agree["b_in_a"])
        print(f"{label:<34}{ips:>10.2f}{ips / base_ips:>8.2f}{floor_ips:>13.1f}{a_in_b:>12}{b_in_a:>7}"
              f"  (boxes vs {against})")  # fmt: skip
        results["ours"][precision] = {
            "images_per_s": round(ips, 2),
            "ratio_vs_baseline": round(ips / base_ips, 2),
            "compute_floor_images_per_s": round(floor_ips, 1),
            "agreement": {"against": against, **agree},
        }
    print(f"\nmodel: {flops / 1e9:.2f} GFLOPs per image at {height}x{width}; floor = matmul FLOP/s / that")
    harness.write_json(args.json, results)


if __name__ == "__main__":
    main()
