"""The review queue's quality gate: tiny or blurred crops are not worth a person's time,
and would poison the reference set if labelled."""

from __future__ import annotations

import cv2
import numpy as np

from .config import ReviewConfig

SHARPNESS_SIDE = 256
"""Crops are scaled to this longer side before measuring sharpness, so the measure does
not depend on the camera's resolution."""


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image at ``SHARPNESS_SIDE`` pixels."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = grey.shape[:2]
    scale = SHARPNESS_SIDE / max(h, w)
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                          interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def gate(image: np.ndarray, cfg: ReviewConfig) -> str | None:
    """Why a crop may not enter the review queue (``too_small``, ``blurry``), or None."""
    if min(image.shape[:2]) < cfg.min_crop_side:
        return "too_small"
    if cfg.min_sharpness > 0 and sharpness(image) < cfg.min_sharpness:
        return "blurry"
    return None
