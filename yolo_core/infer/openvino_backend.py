"""OpenVINO backend: the same raw head output as the other engines, from OpenVINO's CPU plugin.

The fastest CPU engine measured here: fused kernels in fp32, bf16 on CPUs with AVX-512 BF16
or AMX (1.9-2.5x fp32 on yolo11n), and int8 where the user quantised the model (`int8`). The
model is converted once from our ONNX export (the same graph ONNX Runtime runs) and saved as
OpenVINO IR in the user's private cache, named by the weights' content, with fp32 weights
(OpenVINO would compress them to fp16 by default, which changes boxes). The uint8 NHWC canvas
goes in as it is: the cast to float and the layout change are the first nodes of the compiled
graph, not a host-side pass over every pixel.

A compiled model per input shape: static shapes run ~10% faster than a dynamic one here, and a
compilation takes ~0.3 s, so each (batch, height, width) is compiled on first sight and kept
(the least recently used dropped past `MAX_COMPILED`). A batch of two or more runs as parallel
streams, one per pair of threads at most (`streams_for`), each on its share of the images: a
stream's threads wait only for each other, so one thread preempted by host work (decoding the
next requests, on a server) holds up half the batch instead of all of it.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from yolo_core.cache_dir import private_dir
from yolo_core.errors import UserInputError
from yolo_core.infer.int8 import require_quantized
from yolo_core.infer.onnx_backend import cached_onnx_path, export_onnx, sidecar_path
from yolo_core.runtime import import_openvino

OPENVINO = "openvino"  # the private cache folder of converted models
MAX_COMPILED = 16
# int8: the quantised IR (`yolo_core.infer.int8`), whose float remainder (the head) runs in fp32.
HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
MAX_STREAMS = 2


def streams_for(batch: int, threads: int) -> int:
    """Parallel streams for a batch: one image or one thread means one stream."""
    return max(1, min(MAX_STREAMS, batch, threads))


def openvino_bf16_supported() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (it lists BF16 among its capabilities)."""
    ov = import_openvino()

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def cached_ir_path(weights: Path) -> Path:
    """The IR of these weights in the private cache (`.xml`, with its `.bin` beside it)."""
    onnx_path = cached_onnx_path(weights)
    return private_dir(OPENVINO) / onnx_path.with_suffix(".xml").name


def convert_to_ir(onnx_path: Path, ir_path: Path) -> Path:
    """ONNX graph -> OpenVINO IR with uint8 NHWC input and fp32 weights; written atomically."""
    ov = import_openvino()

    # The runtime's own ONNX reader: `ov.convert_model` is the converter tool, which sends telemetry.
    model = ov.Core().read_model(str(onnx_path))
    prepost = ov.preprocess.PrePostProcessor(model)
    prepost.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    prepost.input().model().set_layout(ov.Layout("NCHW"))
    prepost.input().preprocess().convert_element_type(ov.Type.f32)
    model = prepost.build()
    tmp = ir_path.with_suffix(f".{os.getpid()}.tmp.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(ir_path.with_suffix(".bin"))
    tmp.replace(ir_path)  # last: an .xml that exists has its .bin
    return ir_path


def _compile_off_thread(core, model, config: dict):  # noqa: ANN001, ANN202 - OpenVINO's objects
    """`core.compile_model` in a thread of its own, which ends with it.

    Compiling installs an alternate signal stack on the calling thread (20 KB, seen with 2026.4),
    which can be gone by the time a signal arrives: a SIGTERM to a training or serving process
    (spot reclaim, a server drain) then killed it with SIGSEGV instead of reaching the handler.
    On a thread that exits, the alternate stack goes with it."""
    with ThreadPoolExecutor(1, thread_name_prefix="openvino-compile") as compiler:
        return compiler.submit(core.compile_model, model, "CPU", config).result()


class OpenVinoEngine:
    """uint8 BGR NHWC batch in, raw head output (B, 4 + classes, anchors) float32 out."""

    fixed_square = False

    def __init__(self, weights: Path, imgsz: int, device: torch.device, precision: str, threads: int):
        ov = import_openvino()

        if device.type != "cpu":
            raise UserInputError(f"backend 'openvino' runs on the CPU here, not on {device}")
        if precision not in HINTS:
            raise UserInputError(f"backend 'openvino' runs fp32, bf16 or int8, not {precision!r}")
        weights = Path(weights)
        if weights.suffix != ".pt":
            raise UserInputError(f"{weights}: the openvino backend converts .pt weights")
        onnx_path = cached_onnx_path(weights)
        if not (onnx_path.exists() and sidecar_path(onnx_path).exists()):
            export_onnx(weights, onnx_path, imgsz)  # the graph and its names, written together
        ir_path = cached_ir_path(weights)
        if not ir_path.exists():
            convert_to_ir(onnx_path, ir_path)
        if precision == "int8":
            ir_path = require_quantized(weights).ir
        meta = json.loads(sidecar_path(onnx_path).read_text())
        self.names = {int(k): v for k, v in meta.get("names", {}).items()}
        self.stride = int(meta.get("stride", 32))
        self._core = ov.Core()
        self._model = self._core.read_model(str(ir_path))
        self._precision = HINTS[precision]
        self.threads = int(threads)
        self._compiled: OrderedDict[tuple[int, ...], object] = OrderedDict()

    def _queue_for(self, shape: tuple[int, ...], streams: int):
        """Infer requests (one per stream) of the model compiled for this per-stream shape."""
        key = (*shape, streams)
        queue = self._compiled.get(key)
        if queue is not None:
            self._compiled.move_to_end(key)
            return queue
        ov = import_openvino()
        model = self._model.clone()
        model.reshape({0: list(shape)})
        config = {
            "INFERENCE_PRECISION_HINT": self._precision,
            "INFERENCE_NUM_THREADS": self.threads,
            "NUM_STREAMS": streams,
            "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
        }
        queue = ov.AsyncInferQueue(_compile_off_thread(self._core, model, config), streams)
        self._compiled[key] = queue
        if len(self._compiled) > MAX_COMPILED:
            self._compiled.popitem(last=False)
        return queue

    def forward(self, batch: np.ndarray) -> torch.Tensor:
        pixels = np.ascontiguousarray(batch)
        count = len(pixels)
        streams = streams_for(count, self.threads)
        per_stream = -(-count // streams)
        if per_stream * streams != count:  # an odd batch: the last stream's share padded, dropped after
            padding = np.repeat(pixels[-1:], per_stream * streams - count, axis=0)
            pixels = np.concatenate([pixels, padding])
        queue = self._queue_for((per_stream, *pixels.shape[1:]), streams)
        outputs: list[np.ndarray | None] = [None] * streams

        def keep(request, index: int) -> None:  # the request reuses its output buffer: copy it
            outputs[index] = np.array(request.get_output_tensor(0).data, copy=True)

        queue.set_callback(keep)
        for index in range(streams):
            queue.start_async({0: pixels[index * per_stream : (index + 1) * per_stream]}, index)
        queue.wait_all()
        return torch.from_numpy(np.concatenate(outputs)[:count])
