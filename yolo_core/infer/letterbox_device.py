"""Letterbox on the accelerator: upload each source image as uint8 once, resize and pad there.

On a GPU the host side of a batch is what limits throughput (the forward pass of a yolo11n batch
takes a few milliseconds): OpenCV resizing on the CPU took 1.8 ms per 960x540 frame on an H200
machine, and a 4K frame's 32 tiles cost 39 MB of host copies before the upload. Here the host
only uploads the source pixels (a 4K frame once, however many tiles are cut from it); resizing,
padding and tile cropping run as device kernels. The placement is the same `LetterboxPlan` as
the host letterbox, and the resampling is the same (bilinear, half-pixel centres, no
antialiasing, rounded to uint8), so boxes agree with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from yolo_core.infer.letterbox import PAD_VALUE, LetterboxTransform, check_image, plan_letterbox

Image = np.ndarray | torch.Tensor


def to_device(image: Image, device: torch.device) -> torch.Tensor:
    """An HxWx3 uint8 image as a tensor on `device` (views of it, such as tiles, stay views)."""
    if isinstance(image, torch.Tensor):
        return image.to(device)
    return torch.from_numpy(np.ascontiguousarray(image)).to(device)


def resize_bilinear(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """HxWx3 uint8 -> height x width x 3 uint8, as OpenCV's INTER_LINEAR resizes."""
    chw = image.permute(2, 0, 1).unsqueeze(0).float()
    resized = F.interpolate(chw, size=(height, width), mode="bilinear", align_corners=False, antialias=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8).squeeze(0).permute(1, 2, 0)


def letterbox_on_device(
    images: Sequence[Image], imgsz: int, device: torch.device, stride: int = 32, square: bool = False
) -> tuple[torch.Tensor, list[LetterboxTransform]]:
    """BGR uint8 HxWx3 images (arrays, or tensors already on `device`) -> a (B, H, W, 3) uint8
    canvas on `device`, NHWC as the host letterbox gives, and one transform per image."""
    for index, image in enumerate(images):
        check_image(image, index)
    plan = plan_letterbox([tuple(im.shape) for im in images], imgsz, stride, square)
    shape = (len(images), plan.canvas_height, plan.canvas_width, 3)
    batch = torch.empty(shape, dtype=torch.uint8, device=device)
    for i, (source, (pad_y, pad_x, h, w, fills)) in enumerate(zip(images, plan.placements(), strict=True)):
        if not fills:
            batch[i] = PAD_VALUE
        pixels = to_device(source, device)
        if (h, w) != tuple(pixels.shape[:2]):
            pixels = resize_bilinear(pixels, h, w)
        batch[i, pad_y : pad_y + h, pad_x : pad_x + w] = pixels
    return batch, plan.transforms
