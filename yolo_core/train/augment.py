"""Augmentation presets for aerial imagery.

A drone sees the ground from above: there is no "up" in the picture, so both flips and 90-degree
turns are label-preserving; the altitude changes the object scale; the weather and the camera
add blur, sensor noise, exposure changes and haze. Geometry that Ultralytics already does well
(flips, scale jitter, translation, HSV) stays with Ultralytics; the rest is albumentations.

The preset is a plain dataclass, so a run records it (and restores it on resume) as JSON, and
`augment_overrides` in the hyperparameters changes single fields by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import albumentations as A
import cv2
import numpy as np

from yolo_core.errors import UserInputError


class Haze(A.ImageOnlyTransform):
    """Blend the image towards a bright, slightly blue airlight, as distance haze does.

    albumentations' RandomFog draws thousands of circles (seconds per 640 px image); this is one
    weighted sum. A named class (not A.Lambda) so that checkpoints can store and restore it.
    """

    def __init__(self, strength_range: tuple[float, float] = (0.1, 0.35), p: float = 0.5) -> None:
        super().__init__(p=p)
        self.strength_range = tuple(strength_range)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        grey = self.py_random.uniform(190.0, 235.0)
        return {
            "strength": self.py_random.uniform(*self.strength_range),
            "airlight": (grey, grey, min(255.0, grey + 15.0)),  # RGB, a touch of sky blue
        }

    def apply(
        self, img: np.ndarray, strength: float, airlight: tuple[float, ...], **params: Any
    ) -> np.ndarray:
        channels = img.shape[2] if img.ndim == 3 else 1
        veil = np.empty_like(img)
        veil[...] = np.array(airlight[:channels], dtype=img.dtype) if channels > 1 else airlight[0]
        return cv2.addWeighted(img, 1.0 - strength, veil, strength, 0.0)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("strength_range",)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and magnitudes of each augmentation; 0 turns one off."""

    fliplr: float = 0.5
    flipud: float = 0.5
    rotate90_p: float = 0.5
    scale: float = 0.5  # scale jitter +- this fraction: altitude changes
    translate: float = 0.1
    degrees: float = 0.0
    hsv_h: float = 0.015
    hsv_s: float = 0.5
    hsv_v: float = 0.4
    blur_p: float = 0.1  # motion or defocus blur
    blur_max_kernel: int = 5
    noise_p: float = 0.1
    noise_max_std: float = 0.04  # as a fraction of the value range
    brightness_p: float = 0.3
    brightness_limit: float = 0.2
    contrast_limit: float = 0.2
    haze_p: float = 0.1
    haze_max: float = 0.35

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise UserInputError(f"augment_overrides.{spec.name}: {value!r} must be a number >= 0")
            if (spec.name.endswith("_p") or spec.name.startswith("flip")) and value > 1:
                raise UserInputError(f"augment_overrides.{spec.name}: probability {value} is above 1")
        if self.blur_max_kernel < 3:
            raise UserInputError("augment_overrides.blur_max_kernel: must be at least 3")

    def ultralytics_args(self) -> dict[str, float]:
        """The part Ultralytics' own pipeline applies (train arguments of the same names)."""
        keys = ("fliplr", "flipud", "scale", "translate", "degrees", "hsv_h", "hsv_s", "hsv_v")
        return {key: float(getattr(self, key)) for key in keys}

    def albumentations(self) -> list[A.BasicTransform]:
        """The part applied by albumentations, inside Ultralytics' loader (boxes follow the image)."""
        kernel = int(self.blur_max_kernel) | 1  # odd
        candidates = [
            (self.rotate90_p, lambda p: A.RandomRotate90(p=p)),
            (
                self.blur_p,
                lambda p: A.OneOf(
                    [A.MotionBlur(blur_limit=(3, kernel)), A.Blur(blur_limit=(3, kernel))], p=p
                ),
            ),
            (
                self.noise_p,
                # noise drawn at half resolution: 4x cheaper, and sensor noise is not i.i.d. anyway
                lambda p: A.GaussNoise(
                    std_range=(0.01, max(0.01, self.noise_max_std)), noise_scale_factor=0.5, p=p
                ),
            ),
            (
                self.brightness_p,
                lambda p: A.RandomBrightnessContrast(
                    brightness_limit=self.brightness_limit, contrast_limit=self.contrast_limit, p=p
                ),
            ),
            (self.haze_p, lambda p: Haze(strength_range=(0.05, max(0.05, self.haze_max)), p=p)),
        ]
        return [make(p) for p, make in candidates if p > 0]

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


_PRESETS: dict[str, AugmentConfig] = {
    "aerial": AugmentConfig(),
    # Ultralytics' own defaults, for comparison: no vertical flip, no 90-degree turns, no haze
    "ultralytics": AugmentConfig(
        flipud=0.0, rotate90_p=0.0, hsv_s=0.7, blur_p=0.01, noise_p=0.0, brightness_p=0.0, haze_p=0.0
    ),
    "none": AugmentConfig(
        fliplr=0.0,
        flipud=0.0,
        rotate90_p=0.0,
        scale=0.0,
        translate=0.0,
        hsv_h=0.0,
        hsv_s=0.0,
        hsv_v=0.0,
        blur_p=0.0,
        noise_p=0.0,
        brightness_p=0.0,
        haze_p=0.0,
    ),
}


def augment_config(preset: str, overrides: dict[str, Any] | None = None) -> AugmentConfig:
    """The named preset with `overrides` applied; unknown names are a `UserInputError`."""
    if preset not in _PRESETS:
        raise UserInputError(
            f"hyperparameter 'augment': unknown preset {preset!r} (one of {sorted(_PRESETS)})"
        )
    overrides = dict(overrides or {})
    known = {spec.name for spec in fields(AugmentConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UserInputError(f"augment_overrides: unknown field(s) {unknown}; known: {sorted(known)}")
    return replace(_PRESETS[preset], **overrides)
