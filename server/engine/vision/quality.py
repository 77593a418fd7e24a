"""The review queue's quality gate: tiny or blurred crops are not worth a person's time,
and would poison the reference set if labelled."""

from __future__ import annotations

import cv2
import numpy as np

from server.engine.project.config import ReviewConfig

SHARPNESS_SIDE = 256
"""Crops are scaled to this longer side before measuring sharpness, so the measure does
not depend on the camera's resolution."""


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image at ``SHARPNESS_SIDE`` pixels."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = grey.shape[:2]
    scale = SHARPNESS_SIDE / max(h, w)
    if scale < 1.0:
        grey = cv2.resize(
            grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def pixel_correlation(image: np.ndarray) -> float:
    """Correlation between neighbouring pixels (horizontal and vertical, averaged) of
    the grey image at ``SHARPNESS_SIDE`` pixels.

    Pictures of things are smooth at the scale of a pixel, so real pictures score high
    and random noise near zero, JPEG-compressed too (RESULTS.md, "Design choices").
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    grey = grey.astype(np.float32)
    h, w = grey.shape[:2]
    scale = SHARPNESS_SIDE / max(h, w)
    if scale < 1.0:
        grey = cv2.resize(
            grey, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    values = []
    for a, b in ((grey[:, :-1], grey[:, 1:]), (grey[:-1, :], grey[1:, :])):
        a, b = a - a.mean(), b - b.mean()
        norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
        values.append(float((a * b).sum()) / norm if norm > 0 else 1.0)  # flat: smooth
    return float(np.mean(values))


def gate(image: np.ndarray, cfg: ReviewConfig) -> str | None:
    """Why a crop may not enter the review queue or become a reference (``too_small``,
    ``noise``, ``blurry``), or None."""
    if min(image.shape[:2]) < cfg.min_crop_side:
        return "too_small"
    if cfg.min_pixel_correlation > 0 and pixel_correlation(image) < cfg.min_pixel_correlation:
        return "noise"
    if cfg.min_sharpness > 0 and sharpness(image) < cfg.min_sharpness:
        return "blurry"
    return None
