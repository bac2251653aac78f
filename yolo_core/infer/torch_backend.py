"""Run an Ultralytics detection checkpoint as a plain torch module, tuned for inference.

Fused conv+BN, channels_last, fp16 weights on a GPU and bf16 autocast on a CPU with AMX: the
steps Ultralytics' per-image `predict` leaves out, and where most of the speed-up comes from.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch

from yolo_core.errors import UserInputError
from yolo_core.infer.hardware import DTYPES
from yolo_core.weights import load_checkpoint


def load_ultralytics_model(weights: Path) -> torch.nn.Module:
    """The checkpoint's (EMA) model in fp32 eval mode, on the CPU, unfused; unpickled with
    `weights_only=True` (callers with a model card verify its digest first: yolo_core.weights)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    weights = Path(weights)
    if not weights.is_file():
        raise UserInputError(f"{weights}: weights file not found")
    checkpoint = load_checkpoint(weights)
    model = checkpoint.get("ema") or checkpoint.get("model")
    if not isinstance(model, torch.nn.Module):
        raise UserInputError(f"{weights}: the checkpoint holds no model")
    # What Ultralytics' load_checkpoint attaches, for the parts of Ultralytics that read it.
    model.args = {**DEFAULT_CFG_DICT, **(checkpoint.get("train_args") or {})}
    if not hasattr(model, "stride"):
        model.stride = torch.tensor([32.0])
    return model.float().eval()


def model_names(model: torch.nn.Module) -> dict[int, str]:
    names = getattr(model, "names", None) or {}
    if isinstance(names, list | tuple):
        names = dict(enumerate(names))
    return {int(k): str(v) for k, v in names.items()}


def read_bgr_bytes(model: torch.nn.Module) -> torch.nn.Module:
    """Fold the BGR->RGB swap and the /255 scaling into the first convolution, exactly.

    The network then takes letterboxed BGR pixel values (0-255, cast to float) as they come from
    OpenCV: no per-image channel flip or normalisation pass. The zero padding of that convolution
    is unchanged (0 / 255 = 0), and 0-255 are exact in bf16 and fp16 (in fp16 a weight under
    255 x 6e-5 becomes subnormal and keeps ~3e-8 absolute precision: far below what it adds).
    """
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        first.weight.copy_(first.weight.flip(1) / 255.0)
    return model


def _decode_boxes_in_float32(head: torch.nn.Module, device: torch.device) -> None:
    """Run the head's box decoding (anchor grid + DFL distances, times the stride) in fp32.

    In bf16 a coordinate near 600 px is only good to 4 px (2 in fp16 near 1000), which would
    move small boxes; the decoding is a sliver of the compute, the convolutions stay fast.
    """
    head.dfl.float()
    inner = head._inference

    def decode(x: dict) -> torch.Tensor:
        as_float = {k: [t.float() for t in v] if isinstance(v, list) else v.float() for k, v in x.items()}
        with torch.autocast(device.type, enabled=False):
            return inner(as_float)

    head._inference = decode


class TorchEngine:
    """uint8 BGR NHWC batch in, raw head output (B, 4 + classes, anchors) float32 out."""

    fixed_square = False  # any stride-multiple input shape works

    def __init__(self, weights: Path, device: torch.device, precision: str):
        model = load_ultralytics_model(weights)
        self.names = model_names(model)
        self.stride = int(max(model.stride.tolist())) if hasattr(model, "stride") else 32
        model = read_bgr_bytes(model.fuse(verbose=False))
        for param in model.parameters():
            param.requires_grad_(False)
        self.device = device
        self.precision = precision
        # bf16 on a CPU runs under autocast (the weights stay fp32, the matmuls go to AMX); on a GPU
        # the weights themselves are cast, which avoids autocast's per-call casting.
        self.weight_dtype = DTYPES[precision] if device.type == "cuda" else torch.float32
        self.model = model.to(device=device, dtype=self.weight_dtype, memory_format=torch.channels_last)
        if precision != "fp32":
            _decode_boxes_in_float32(self.model.model[-1], device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True

    def _autocast(self):
        if self.device.type == "cpu" and self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def forward(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """`batch`: the (B, H, W, 3) uint8 canvas, a host array or a tensor already on the device."""
        pixels = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
        pixels = pixels.to(self.device)  # uint8: a quarter of the bytes of a float copy; no-op if there
        # NHWC memory viewed as NCHW is channels_last already; BGR and 0-255 are what the
        # first convolution expects (read_bgr_bytes).
        x = pixels.permute(0, 3, 1, 2).to(self.weight_dtype)
        with torch.inference_mode(), self._autocast():
            out = self.model(x)
        raw = out[0] if isinstance(out, list | tuple) else out
        return raw.float()
