"""The sections of a project file that say what runs the models: the embedder
(``model:``), the detector (``detector:``), and the devices they may run on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
"""What ``model.device`` and ``detector.device`` may say."""
DEVICES = "auto, cpu, cuda, cuda:N or mps"


def check_device(device: str, field: str) -> None:
    """A project file's device, spelt as one of ``DEVICES`` (raises ValueError)."""
    if not DEVICE.fullmatch(device):
        raise ValueError(f"{field} must be {DEVICES}, not {device!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Which embedder turns an image into a vector."""

    name: str = "ViT-B-32"
    """A registry name (``efficientnet-lite0``) or any open_clip architecture name."""
    pretrained: str | None = None
    """open_clip pretrained tag (e.g. ``laion2b_s34b_b79k``); None picks the default."""
    checkpoint: Path | None = None
    """A local weights file, used instead of downloading; relative to the project file."""
    device: str = "auto"
    """``auto`` (a CUDA GPU, then Apple's GPU, then the CPU), ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``."""
    batch_size: int = 16
    """Images per forward pass when indexing."""
    backend: Literal["torch", "mlx"] = "torch"
    """What runs the model: ``torch``, or ``mlx`` (Apple's framework: Apple's GPU on
    Apple Silicon, the CPU elsewhere; same weights, same vectors)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("model.batch_size must be at least 1")
        check_device(self.device, "model.device")
        if self.backend == "mlx" and self.device.startswith("cuda"):
            raise ValueError(
                "model.backend mlx runs on Apple's GPU or the CPU, not "
                f"{self.device}: use backend: torch for CUDA"
            )


DetectorKind = Literal["locate", "none", "quad", "yolo"]


@dataclass(frozen=True)
class DetectorConfig:
    """How the things in a whole picture are found before each is identified:
    ``locate`` searches windows for the one best object (``locate:``), ``none`` takes the
    whole picture, ``quad`` finds flat things (cards, covers, boxes) by their corners and
    straightens each, ``yolo`` runs an Ultralytics model from ``weights``."""

    kind: DetectorKind = "locate"
    weights: Path | None = None
    """``yolo``: the model file (``.pt``); relative to the project file."""
    classes: tuple[str, ...] = ()
    """``yolo``: keep only detections of these class names; empty keeps all."""
    confidence: float = 0.25
    """Detections scoring less are dropped."""
    iou: float = 0.7
    """``yolo``: non-maximum suppression's overlap."""
    image_size: int = 640
    """``yolo``: the side pictures are resized to for the model, in pixels."""
    max_det: int = 20
    """Most things taken from one picture (the best ones)."""
    device: str = "auto"
    """``yolo``: ``auto`` (a CUDA GPU, then Apple's GPU, then the CPU), ``cpu``,
    ``cuda``, ``cuda:1``, ``mps``; ``identify detector train`` trains there too."""
    min_area: float = 0.01
    """``quad``: the smallest thing, as a share of the picture's area."""

    def __post_init__(self) -> None:
        check_device(self.device, "detector.device")
        if self.kind == "yolo" and self.weights is None:
            raise ValueError("detector.weights must name a YOLO model file for kind yolo")
        if not 0 <= self.confidence <= 1 or not 0 < self.iou <= 1:
            raise ValueError("detector.confidence and detector.iou must be between 0 and 1")
        if not 32 <= self.image_size <= 4096 or self.image_size % 32:
            raise ValueError("detector.image_size must be a multiple of 32, from 32 to 4096")
        if not 1 <= self.max_det <= 300:
            raise ValueError("detector.max_det must be between 1 and 300")
        if not 0 < self.min_area < 1:
            raise ValueError("detector.min_area must be between 0 and 1")
