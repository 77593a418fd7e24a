"""Shared torch plumbing: device choice, resize-and-normalise, batched forward."""

from __future__ import annotations

import cv2
import numpy as np

from server.engine.errors import ModelUnavailableError
from server.engine.project.runners import DEVICE, DEVICES


def pick_device(device: str) -> str:
    """The device to run on: ``auto`` picks a CUDA GPU, then Apple's GPU (``mps``), then
    the CPU; any other value is that device, checked to be there.

    Raises:
        ModelUnavailableError: the device asked for is not on this machine, or is not a
            device name.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps() else "cpu"
    if not DEVICE.fullmatch(device):
        raise ModelUnavailableError(f"unknown device {device!r}: use {DEVICES}")
    if device == "mps" and not _mps():
        raise ModelUnavailableError(
            "device 'mps' asked for, but Apple's GPU (Metal) is not available here: use auto or cpu"
        )
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelUnavailableError(
                f"device {device!r} asked for, but no CUDA GPU is available: use auto or cpu"
            )
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelUnavailableError(
                f"device {device!r} asked for, but this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s) (cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
    return device


def _mps() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


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
