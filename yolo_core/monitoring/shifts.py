"""Synthetic shifts of served traffic, each with one magnitude: what the monitor must detect.

Why: the power of the drift checks is measured, and the demo shows an alert, on shifts whose size
is stated rather than found. Images: darker (gain), blurred (Gaussian sigma in pixels), hazy
(blend toward a light grey veil). Predictions: a class mix where a fraction of detections become
another class. A higher altitude is rendered, not transformed (`power.py` draws the scenes with
smaller objects), since it changes the scene: more, smaller objects.
"""

from __future__ import annotations

import cv2
import numpy as np

from yolo_core.infer.detections import Detections

HAZE_GREY = 200  # a veil is bright: haze scatters sunlight toward the camera


def darker(image: np.ndarray, gain: float) -> np.ndarray:
    """Every pixel times `gain` (< 1): dusk, or an underexposing camera."""
    return cv2.convertScaleAbs(image, alpha=gain)


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of `sigma` pixels: motion, focus, or a dirty lens."""
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)


def hazy(image: np.ndarray, amount: float) -> np.ndarray:
    """A blend of `amount` (0..1) toward a uniform grey veil: contrast falls, brightness rises."""
    return cv2.addWeighted(image, 1.0 - amount, np.full_like(image, HAZE_GREY), amount, 0.0)


def relabelled(
    detections: Detections, fraction: float, class_id: int, rng: np.random.Generator
) -> Detections:
    """Each detection becomes `class_id` with probability `fraction`: another site's class mix."""
    class_ids = np.where(rng.random(len(detections)) < fraction, class_id, detections.class_ids)
    return Detections(detections.boxes, detections.scores, class_ids)


IMAGE_SHIFTS = {"darker": darker, "blurred": blurred, "hazy": hazy}
