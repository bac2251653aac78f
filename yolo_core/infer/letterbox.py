"""Letterbox a batch of images of any sizes into one tensor, and map boxes back.

Each image is scaled to fit `imgsz` (aspect kept) and centred on a grey canvas the size of the
largest scaled image, rounded up to the model stride. A batch of 16:9 frames is thus run at
640x384 rather than 640x640, as Ultralytics does for a single image, and mixed sizes still share
one forward pass. Padding is centred the same way as Ultralytics' `LetterBox`, so boxes agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxTransform:
    """How one source image was placed on the canvas: canvas = source * gain + (pad_x, pad_y)."""

    gain: float
    pad_x: int
    pad_y: int
    source_width: int
    source_height: int

    def boxes_to_source(self, boxes: np.ndarray) -> np.ndarray:
        """Map xyxy boxes from canvas pixels to source pixels, clipped to the source image."""
        out = boxes.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.gain
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.gain
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.source_width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.source_height)
        return out


def _scaled_size(height: int, width: int, imgsz: int) -> tuple[int, int, float]:
    gain = min(imgsz / height, imgsz / width)
    return round(height * gain), round(width * gain), gain


def letterbox_batch(
    images: Sequence[np.ndarray], imgsz: int, stride: int = 32, square: bool = False
) -> tuple[np.ndarray, list[LetterboxTransform]]:
    """BGR uint8 HxWx3 images -> (B, H, W, 3) BGR uint8 canvas and one transform per image.

    `square=True` always pads to imgsz x imgsz (for backends with a fixed input shape).
    The NHWC layout is deliberate: viewed as NCHW it is already channels_last for the model.
    Channels stay BGR: the engines fold the swap into the model's first convolution.
    """
    if not images:
        raise ValueError("letterbox_batch: no images")
    for index, image in enumerate(images):
        _check_image(image, index)
    sizes = [_scaled_size(im.shape[0], im.shape[1], imgsz) for im in images]
    if square:
        canvas_h = canvas_w = math.ceil(imgsz / stride) * stride
    else:
        canvas_h = math.ceil(max(h for h, _, _ in sizes) / stride) * stride
        canvas_w = math.ceil(max(w for _, w, _ in sizes) / stride) * stride
    batch = np.empty((len(images), canvas_h, canvas_w, 3), dtype=np.uint8)
    transforms = []
    for i, (source, (h, w, gain)) in enumerate(zip(images, sizes, strict=True)):
        # Ultralytics rounds half-pixel padding this way; matching it keeps boxes identical.
        pad_y = round((canvas_h - h) / 2 - 0.1)
        pad_x = round((canvas_w - w) / 2 - 0.1)
        if (h, w) != (canvas_h, canvas_w):  # tiles fill the canvas: no grey pass for them
            batch[i] = PAD_VALUE
        region = batch[i, pad_y : pad_y + h, pad_x : pad_x + w]
        if (h, w) == source.shape[:2]:
            region[...] = source
        else:  # resized straight into the canvas: no intermediate image
            resized = cv2.resize(source, (w, h), dst=region, interpolation=cv2.INTER_LINEAR)
            if resized is not region:
                region[...] = resized
        transforms.append(LetterboxTransform(gain, pad_x, pad_y, source.shape[1], source.shape[0]))
    return batch, transforms


def _check_image(image: np.ndarray, index: int) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image {index}: expected an HxWx3 uint8 BGR array, got shape {image.shape} dtype {image.dtype}"
        )
