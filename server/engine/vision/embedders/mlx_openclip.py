"""open_clip's vision transformer (CLIP's image tower: ViT-B-32, ViT-B-16, ViT-L-14, ...)
in MLX (``model.backend: mlx``), from the same weights as torch.

The model is loaded by open_clip as the torch embedder loads it (pretrained tag, cache
or ``model.checkpoint``), and its vision tower's tensors are copied into MLX arrays: the
patch embedding (a convolution whose stride is its size), the class token and positions,
then per layer pre-norm attention and MLP with their residuals, the final norm on the
class token and the projection. Towers with other parts (attention pooling, pooling by
average, patch dropout at inference) are refused by name rather than run differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.errors import ModelUnavailableError
from server.engine.vision.embedders.base import l2_normalise
from server.engine.vision.embedders.mlx_common import compiled, import_mlx, mlx_device
from server.engine.vision.embedders.openclip import load_clip
from server.engine.vision.embedders.torch_common import resize_normalise


def _array(mx: Any, tensor: Any) -> Any:
    return mx.array(tensor.detach().float().cpu().numpy())


@dataclass(frozen=True)
class Layer:
    """One residual attention block's weights (MLX arrays)."""

    ln1: tuple[Any, Any, float]
    qkv: tuple[Any, Any]
    out: tuple[Any, Any]
    ln2: tuple[Any, Any, float]
    fc: tuple[Any, Any]
    proj: tuple[Any, Any]
    heads: int
    quick_gelu: bool


def _norm(mx: Any, ln: Any) -> tuple[Any, Any, float]:
    return _array(mx, ln.weight), _array(mx, ln.bias), float(ln.eps)


def _linear(mx: Any, weight: Any, bias: Any) -> tuple[Any, Any]:
    return _array(mx, weight).T, _array(mx, bias)


def _layer(mx: Any, block: Any) -> Layer:
    for part in ("ls_1", "ls_2"):
        if type(getattr(block, part)).__name__ != "Identity":
            raise ModelUnavailableError(f"unsupported for MLX: layer scale ({part})")
    attn = block.attn
    if not getattr(attn, "batch_first", False) or attn.in_proj_weight is None:
        raise ModelUnavailableError("unsupported for MLX: attention without a packed projection")
    gelu = type(block.mlp.gelu).__name__
    if (
        gelu not in ("GELU", "QuickGELU")
        or getattr(block.mlp.gelu, "approximate", "none") != "none"
    ):
        raise ModelUnavailableError(f"unsupported activation for MLX: {gelu}")
    return Layer(
        _norm(mx, block.ln_1),
        _linear(mx, attn.in_proj_weight, attn.in_proj_bias),
        _linear(mx, attn.out_proj.weight, attn.out_proj.bias),
        _norm(mx, block.ln_2),
        _linear(mx, block.mlp.c_fc.weight, block.mlp.c_fc.bias),
        _linear(mx, block.mlp.c_proj.weight, block.mlp.c_proj.bias),
        int(attn.num_heads),
        gelu == "QuickGELU",
    )


@dataclass(frozen=True)
class Tower:
    """A vision transformer's weights (MLX arrays)."""

    patch: Any
    """(width, p, p, 3): the patch embedding as an NHWC convolution."""
    stride: int
    cls: Any
    positions: Any
    ln_pre: tuple[Any, Any, float]
    layers: list[Layer]
    ln_post: tuple[Any, Any, float]
    proj: Any


def convert(mx: Any, visual: Any) -> Tower:
    """open_clip's ``VisionTransformer`` as MLX arrays.

    Raises:
        ModelUnavailableError: a tower this port does not run (see the module docstring).
    """
    kind = type(visual).__name__
    if kind != "VisionTransformer":
        raise ModelUnavailableError(f"backend mlx runs open_clip vision transformers, not {kind}")
    if getattr(visual, "attn_pool", None) is not None or visual.pool_type != "tok":
        raise ModelUnavailableError("unsupported for MLX: pooling other than the class token")
    if visual.proj is None or visual.conv1.bias is not None:
        raise ModelUnavailableError("unsupported for MLX: a tower without a projection")
    stride = int(visual.conv1.stride[0])
    return Tower(
        _array(mx, visual.conv1.weight.permute(0, 2, 3, 1)),
        stride,
        _array(mx, visual.class_embedding),
        _array(mx, visual.positional_embedding),
        _norm(mx, visual.ln_pre),
        [_layer(mx, b) for b in visual.transformer.resblocks],
        _norm(mx, visual.ln_post),
        _array(mx, visual.proj),
    )


def forward(mx: Any, tower: Tower, x: Any) -> Any:
    """NHWC pictures -> the projected class token (not normalised)."""
    patches = mx.conv2d(x, tower.patch, stride=tower.stride)
    n, h, w, width = patches.shape
    tokens = patches.reshape(n, h * w, width)
    cls = mx.broadcast_to(tower.cls.reshape(1, 1, width), (n, 1, width))
    t = mx.concatenate([cls, tokens], axis=1) + tower.positions
    t = mx.fast.layer_norm(t, *tower.ln_pre)
    for layer in tower.layers:
        t = t + _attention(mx, layer, mx.fast.layer_norm(t, *layer.ln1))
        hidden = mx.fast.layer_norm(t, *layer.ln2) @ layer.fc[0] + layer.fc[1]
        if layer.quick_gelu:
            hidden = hidden * mx.sigmoid(1.702 * hidden)
        else:
            hidden = 0.5 * hidden * (1.0 + mx.erf(hidden / math.sqrt(2.0)))
        t = t + hidden @ layer.proj[0] + layer.proj[1]
    pooled = mx.fast.layer_norm(t[:, 0], *tower.ln_post)
    return pooled @ tower.proj


def _attention(mx: Any, layer: Layer, x: Any) -> Any:
    n, length, width = x.shape
    heads = layer.heads
    qkv = (x @ layer.qkv[0] + layer.qkv[1]).reshape(n, length, 3, heads, width // heads)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    scale = 1.0 / math.sqrt(width // heads)
    y = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale)
    y = y.transpose(0, 2, 1, 3).reshape(n, length, width)
    return y @ layer.out[0] + layer.out[1]


class MlxOpenClipEmbedder:
    """``OpenClipEmbedder``'s vectors, computed by MLX."""

    def __init__(
        self, name: str, pretrained: str | None = None, checkpoint: Path | None = None
    ) -> None:
        mx = import_mlx()
        clip = load_clip(name, pretrained, checkpoint)
        self._mx = mx
        self._tower = convert(mx, clip.model.visual)
        self._size, self._mean, self._std = clip.size, clip.mean, clip.std
        self.spec = clip.spec
        self._forward = compiled(mx, lambda x: forward(mx, self._tower, x))

    @property
    def device(self) -> str:
        """``mlx:gpu`` (Apple's GPU) or ``mlx:cpu``."""
        return mlx_device(self._mx)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """See ``Embedder.preprocess``."""
        return resize_normalise(image, self._size, self._mean, self._std)

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """See ``Embedder.embed_batch``."""
        mx = self._mx
        x = mx.array(np.ascontiguousarray(batch.transpose(0, 2, 3, 1), dtype=np.float32))
        return l2_normalise(np.array(self._forward(x), dtype=np.float32))
