"""The one small interface every embedder implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

Window = tuple[float, float, float, float]
"""x0, y0, x1, y1 as fractions of the picture's width and height."""


@dataclass(frozen=True)
class ModelSpec:
    """What identifies an embedding space; stored beside the index and checked on open."""

    model_id: str
    """Stable id of the weights, e.g. ``efficientnet-lite0/imagenet`` or
    ``open_clip/ViT-B-32/laion2b_s34b_b79k``."""
    dim: int
    """Embedding dimension."""
    projection: str = "none"
    """Id of a projection head applied after the model (``none`` without one)."""
    default_threshold: float = 0.5
    """Score threshold used before ``identify verify`` calibrated the project."""
    default_margin: float = 0.03
    """Margin threshold used before calibration."""

    @property
    def space_id(self) -> str:
        """Id of the vector space: the model, and the projection head when there is one.
        Stored vectors and calibrations are valid for one space only."""
        return self.model_id if self.projection == "none" else f"{self.model_id}+{self.projection}"


class Embedder(Protocol):
    """Turns RGB images into L2-normalised vectors."""

    spec: ModelSpec

    @property
    def device(self) -> str:
        """Where it runs: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (``auto`` resolved)."""
        ...

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """One RGB uint8 image (H, W, 3) -> the model's input tensor as float32 (C, H, W).

        Thread-safe and free of model state, so it can run on a decoding thread pool.
        """
        ...

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """Preprocessed inputs (N, C, H, W) -> L2-normalised float32 vectors (N, dim)."""
        ...


def embed_images(embedder: Embedder, images: list[np.ndarray]) -> np.ndarray:
    """Convenience: preprocess and embed a list of RGB images in one batch."""
    if not images:
        return np.zeros((0, embedder.spec.dim), dtype=np.float32)
    return embedder.embed_batch(np.stack([embedder.preprocess(im) for im in images]))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation that leaves all-zero rows at zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
