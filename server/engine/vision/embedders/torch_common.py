"""Shared torch plumbing: device choice, resize-and-normalise, batched forward."""

from __future__ import annotations

import cv2
import numpy as np

from server.engine.errors import ModelUnavailableError


def pick_device(device: str) -> str:
    """Resolve ``auto`` to ``cuda`` when a GPU is present, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailableError(f"device '{device}' asked for, but no CUDA GPU is available")
    return device


def resize_normalise(
    image: np.ndarray, size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """Squash the whole image to ``size`` x ``size`` (no centre crop: an object crop must
    keep its edges) and normalise to a float32 CHW tensor."""
    return resized_normalised(image, (size, size), mean, std)


def resized_normalised(
    image: np.ndarray, size: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """Resize an RGB image to ``size`` (width, height) and normalise to float32 CHW."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if w > size[0] and h > size[1] else cv2.INTER_LINEAR
    x: np.ndarray = cv2.resize(image, size, interpolation=interp).astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
