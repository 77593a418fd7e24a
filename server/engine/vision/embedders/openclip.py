"""Any open_clip image tower as an embedder (CLIP ViT-B-32 by default).

Weights are downloaded and cached by open_clip the normal way, or read from a local
checkpoint file. When neither works, one message says exactly what to do.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.errors import ModelUnavailableError
from server.engine.vision.embedders.base import ModelSpec, l2_normalise
from server.engine.vision.embedders.torch_common import pick_device, resize_normalise

DEFAULT_TAGS = {"ViT-B-32": "laion2b_s34b_b79k"}


def checkpoint_id(path: Path) -> str:
    """A short content id of a weights file (size + hash of its first 16 MiB)."""
    h = hashlib.blake2b(digest_size=8)
    with path.open("rb") as fh:
        h.update(fh.read(16 * 1024 * 1024))
    return f"file-{path.stat().st_size}-{h.hexdigest()}"


def default_tag(name: str) -> str | None:
    """The pretrained tag used when a project names an architecture only."""
    import open_clip

    if name in DEFAULT_TAGS:
        return DEFAULT_TAGS[name]
    tags = open_clip.list_pretrained_tags_by_model(name)
    return tags[0] if tags else None


HUB_HOST = ("huggingface.co", 443)
HUB_PROBE_S = 3.0
"""How long to wait for the model hub before saying it cannot be reached (instead of
letting the download retry for a minute)."""


def weights_available(name: str, tag: str | None) -> bool:
    """Whether open_clip's weights ``name``/``tag`` are already on this machine (the
    Hugging Face cache, or open_clip's own URL cache)."""
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(name, tag) if tag else {}
    if not cfg:
        return False
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        # As open_clip reads it: 'org/model/file' or 'org/model/' (its default files).
        model_id, filename = os.path.split(cfg["hf_hub"])
        names = (
            [filename]
            if filename
            else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        )
        if any(isinstance(try_to_load_from_cache(model_id, n), str) for n in names):
            return True
    url = cfg.get("url")
    return (
        isinstance(url, str)
        and bool(url)
        and (Path.home() / ".cache" / "clip" / os.path.basename(url)).is_file()
    )


def hub_reachable() -> bool:
    """A quick look at whether the model hub answers: False at once when
    ``HF_HUB_OFFLINE`` is set, True behind an HTTPS proxy (the download goes through
    it; a direct look would say nothing), else a TCP connection within ``HUB_PROBE_S``
    (the name lookup included)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    pool = ThreadPoolExecutor(1, thread_name_prefix="hub-probe")
    try:
        pool.submit(lambda: socket.create_connection(HUB_HOST, HUB_PROBE_S).close()).result(
            timeout=HUB_PROBE_S
        )
    except (OSError, TimeoutError):
        return False
    finally:
        pool.shutdown(wait=False)
    return True


def create_openclip_model(name: str, pretrained: str | None, checkpoint: Path | None) -> Any:
    """Build the open_clip model with weights from a file, the cache or the hub.

    Without a file or cached weights, the hub is asked first, once and briefly: with no
    network this fails in seconds with one message, not after a minute of retries.
    """
    import open_clip

    if name not in open_clip.list_models():
        raise ModelUnavailableError(
            f"unknown model '{name}': use efficientnet-lite0 or an open_clip architecture "
            "(`identify models` lists them)"
        )
    if checkpoint is not None and not checkpoint.is_file():
        raise ModelUnavailableError(f"model checkpoint not found: {checkpoint}")
    if checkpoint is None and not weights_available(name, pretrained) and not hub_reachable():
        raise ModelUnavailableError(_no_weights(name, pretrained))
    source = str(checkpoint) if checkpoint else pretrained
    try:
        return open_clip.create_model(name, pretrained=source, require_pretrained=True)
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        if checkpoint is not None:
            raise ModelUnavailableError(
                f"cannot load {name} weights from {checkpoint}: {exc}"
            ) from None
        raise ModelUnavailableError(_no_weights(name, pretrained)) from None


def _no_weights(name: str, pretrained: str | None) -> str:
    return (
        f"cannot get CLIP weights {name}/{pretrained}: not cached on this machine and "
        "the model hub cannot be reached. Either copy the weights file here and set "
        "`model.checkpoint: PATH` in the project, or use the offline model with "
        "`model.name: efficientnet-lite0`."
    )


@dataclass(frozen=True)
class ClipModel:
    """An open_clip model loaded, with what its embedder needs to know of it."""

    model: Any
    spec: ModelSpec
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_clip(name: str, pretrained: str | None, checkpoint: Path | None) -> ClipModel:
    """The model (``create_openclip_model``), its vector space and its preprocessing."""
    tag = None if checkpoint else (pretrained or default_tag(name))
    model = create_openclip_model(name, tag, checkpoint).eval()
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", model.visual.image_size)
    weights = checkpoint_id(checkpoint) if checkpoint else tag
    spec = ModelSpec(
        model_id=f"open_clip/{name}/{weights}",
        dim=int(model.visual.output_dim),
        default_threshold=0.75,
        default_margin=0.03,
    )
    return ClipModel(
        model,
        spec,
        int(size[0] if isinstance(size, (tuple, list)) else size),
        tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),
        tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),
    )


class OpenClipEmbedder:
    """The image tower of an open_clip model, L2-normalised."""

    def __init__(
        self,
        name: str,
        pretrained: str | None = None,
        checkpoint: Path | None = None,
        device: str = "auto",
    ) -> None:
        import torch

        clip = load_clip(name, pretrained, checkpoint)
        self.device = pick_device(device)
        self._torch = torch
        self._model = clip.model.to(self.device)
        self._size, self._mean, self._std = clip.size, clip.mean, clip.std
        self.spec = clip.spec

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """See ``Embedder.preprocess``."""
        return resize_normalise(image, self._size, self._mean, self._std)

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """See ``Embedder.embed_batch``."""
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return l2_normalise(self._model.encode_image(x).float().cpu().numpy())
