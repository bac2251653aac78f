"""Letterbox a batch of images of any sizes into one tensor, and map boxes back.

Each image is scaled to fit `imgsz` (aspect kept) and centred on a grey canvas the size of the
largest scaled image, rounded up to the model stride. A batch of 16:9 frames is thus run at
640x384 rather than 640x640, as Ultralytics does for a single image, and mixed sizes still share
one forward pass. Padding is centred the same way as Ultralytics' `LetterBox`, so boxes agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
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


@dataclass(frozen=True)
class LetterboxPlan:
    """Where each image of a batch goes: one canvas size, and per image its scaled size and
    placement. Shared by the host (OpenCV) and device (torch) letterboxes, so both place pixels
    identically and map boxes back the same way."""

    canvas_height: int
    canvas_width: int
    scaled_sizes: list[tuple[int, int]]  # (height, width) of each image on the canvas
    transforms: list[LetterboxTransform]

    def placements(self) -> Iterator[tuple[int, int, int, int, bool]]:
        """Per image: (pad_y, pad_x, height, width, fills_canvas)."""
        for (h, w), transform in zip(self.scaled_sizes, self.transforms, strict=True):
            yield transform.pad_y, transform.pad_x, h, w, (h, w) == (self.canvas_height, self.canvas_width)


def _scaled_size(height: int, width: int, imgsz: int) -> tuple[int, int, float]:
    """At least one pixel each way: a 20000x20 strip scales to 640x1, not to an empty image."""
    gain = min(imgsz / height, imgsz / width)
    return max(1, round(height * gain)), max(1, round(width * gain)), gain


def plan_letterbox(
    shapes: Sequence[tuple[int, ...]], imgsz: int, stride: int = 32, square: bool = False
) -> LetterboxPlan:
    """The placement of images of these (height, width, ...) shapes on one canvas.

    `square=True` always pads to imgsz x imgsz (for backends with a fixed input shape).
    """
    if not shapes:
        raise ValueError("letterbox: no images")
    sizes = [_scaled_size(shape[0], shape[1], imgsz) for shape in shapes]
    if square:
        canvas_h = canvas_w = math.ceil(imgsz / stride) * stride
    else:
        canvas_h = math.ceil(max(h for h, _, _ in sizes) / stride) * stride
        canvas_w = math.ceil(max(w for _, w, _ in sizes) / stride) * stride
    transforms = [
        # Ultralytics rounds half-pixel padding this way; matching it keeps boxes identical.
        LetterboxTransform(
            gain, round((canvas_w - w) / 2 - 0.1), round((canvas_h - h) / 2 - 0.1), shape[1], shape[0]
        )
        for shape, (h, w, gain) in zip(shapes, sizes, strict=True)
    ]
    return LetterboxPlan(canvas_h, canvas_w, [(h, w) for h, w, _ in sizes], transforms)


def letterbox_batch(
    images: Sequence[np.ndarray], imgsz: int, stride: int = 32, square: bool = False
) -> tuple[np.ndarray, list[LetterboxTransform]]:
    """BGR uint8 HxWx3 images -> (B, H, W, 3) BGR uint8 canvas and one transform per image.

    The NHWC layout is deliberate: viewed as NCHW it is already channels_last for the model.
    Channels stay BGR: the engines fold the swap into the model's first convolution.
    """
    for index, image in enumerate(images):
        check_image(image, index)
    plan = plan_letterbox([im.shape for im in images], imgsz, stride, square)
    batch = np.empty((len(images), plan.canvas_height, plan.canvas_width, 3), dtype=np.uint8)
    for i, (source, (pad_y, pad_x, h, w, fills)) in enumerate(zip(images, plan.placements(), strict=True)):
        if not fills:  # tiles fill the canvas: no grey pass for them
            batch[i] = PAD_VALUE
        region = batch[i, pad_y : pad_y + h, pad_x : pad_x + w]
        if (h, w) == source.shape[:2]:
            region[...] = source
        else:  # resized straight into the canvas: no intermediate image
            resized = cv2.resize(source, (w, h), dst=region, interpolation=cv2.INTER_LINEAR)
            if resized is not region:
                region[...] = resized
    return batch, plan.transforms


def check_image(image, index: int) -> None:
    """An HxWx3 uint8 array or tensor, or a ValueError naming the image and what it is."""
    if image.ndim != 3 or image.shape[2] != 3 or str(image.dtype).removeprefix("torch.") != "uint8":
        raise ValueError(
            f"image {index}: expected an HxWx3 uint8 BGR array, got shape {image.shape} dtype {image.dtype}"
        )
