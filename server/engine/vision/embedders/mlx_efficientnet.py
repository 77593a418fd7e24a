"""EfficientNet-Lite0 in MLX (``model.backend: mlx``): the same network and the same
weights file as the torch embedder, so its vectors live in the same space (an index built
with one is searched with the other).

The torch model is built once from the weights file (``load_efficientnet_lite0``) and
converted layer by layer: every convolution with the batch normalisation after it folded
into one convolution with a bias (inference only, as the embedder runs), weights laid out
as MLX wants them (output, height, width, input), activations NHWC. MLX runs on Apple's
GPU when there is one (unified memory, no copy), else on the CPU (``mlx[cpu]`` on Linux).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.errors import ModelUnavailableError
from server.engine.vision.embedders.base import Window, l2_normalise
from server.engine.vision.embedders.efficientnet import (
    GEM_P,
    INPUT_SIZE,
    MEAN,
    REGION_LONG_SIDE,
    SPEC,
    STD,
    load_efficientnet_lite0,
)
from server.engine.vision.embedders.mlx_common import compiled, import_mlx, mlx_device
from server.engine.vision.embedders.torch_common import resize_normalise, resized_normalised


@dataclass(frozen=True)
class ConvBN:
    """A convolution with its batch normalisation folded in, then ReLU6 or nothing."""

    weight: Any
    """(out, kh, kw, in / groups), an MLX array."""
    bias: Any
    stride: int
    padding: int
    groups: int
    relu6: bool

    def __call__(self, mx: Any, x: Any) -> Any:
        y = mx.conv2d(x, self.weight, self.stride, self.padding, 1, self.groups) + self.bias
        return mx.clip(y, 0.0, 6.0) if self.relu6 else y


@dataclass(frozen=True)
class Block:
    """A block's convolutions, and whether its input is added to its output."""

    layers: Sequence[ConvBN]
    skip: bool

    def __call__(self, mx: Any, x: Any) -> Any:
        y = x
        for layer in self.layers:
            y = layer(mx, y)
        return x + y if self.skip else y


def _fold(mx: Any, conv: Any, bn: Any) -> ConvBN:
    import torch

    if conv.bias is not None or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
        raise ModelUnavailableError(f"unsupported convolution for MLX: {conv}")
    if conv.stride[0] != conv.stride[1] or conv.padding[0] != conv.padding[1]:
        raise ModelUnavailableError(f"unsupported convolution for MLX: {conv}")
    act = type(getattr(bn, "act", torch.nn.Identity())).__name__
    if act not in ("ReLU6", "Identity"):
        raise ModelUnavailableError(f"unsupported activation for MLX: {act}")
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale[:, None, None, None]
        bias = bn.bias - bn.running_mean * scale
    return ConvBN(
        mx.array(weight.permute(0, 2, 3, 1).contiguous().numpy()),
        mx.array(bias.numpy()),
        int(conv.stride[0]),
        int(conv.padding[0]),
        int(conv.groups),
        act == "ReLU6",
    )


def convert(mx: Any, model: Any) -> list[Block]:
    """timm's efficientnet_lite0 as MLX blocks (stem, blocks, head).

    Raises:
        ModelUnavailableError: a layer this port does not have (squeeze-excite, ...).
    """
    out = [Block([_fold(mx, model.conv_stem, model.bn1)], False)]
    for stage in model.blocks:
        for block in stage:
            kind = type(block).__name__
            if type(block.se).__name__ != "Identity" or type(block.aa).__name__ != "Identity":
                raise ModelUnavailableError(f"unsupported block for MLX: {kind} with SE")
            if kind == "DepthwiseSeparableConv":
                pairs = [(block.conv_dw, block.bn1), (block.conv_pw, block.bn2)]
            elif kind == "InvertedResidual":
                pairs = [
                    (block.conv_pw, block.bn1),
                    (block.conv_dw, block.bn2),
                    (block.conv_pwl, block.bn3),
                ]
            else:
                raise ModelUnavailableError(f"unsupported block for MLX: {kind}")
            out.append(Block([_fold(mx, c, b) for c, b in pairs], bool(block.has_skip)))
    out.append(Block([_fold(mx, model.conv_head, model.bn2)], False))
    return out


class MlxEfficientNetLite0Embedder:
    """``EfficientNetLite0Embedder``'s vectors, computed by MLX."""

    def __init__(self, checkpoint: Path | None = None) -> None:
        mx = import_mlx()
        self.spec = SPEC
        self._mx = mx
        self._blocks = convert(mx, load_efficientnet_lite0(checkpoint))
        self._forward = compiled(mx, self._features)

    @property
    def device(self) -> str:
        """``mlx:gpu`` (Apple's GPU) or ``mlx:cpu``."""
        return mlx_device(self._mx)

    def _features(self, x: Any) -> Any:
        for block in self._blocks:
            x = block(self._mx, x)
        return x

    def _feature_map(self, batch: np.ndarray) -> Any:
        """(N, C, H, W) float32 -> the GeM-powered feature map, NHWC."""
        mx = self._mx
        x = mx.array(np.ascontiguousarray(batch.transpose(0, 2, 3, 1), dtype=np.float32))
        return mx.power(mx.maximum(self._forward(x), 1e-6), GEM_P)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """See ``Embedder.preprocess``."""
        return resize_normalise(image, INPUT_SIZE, MEAN, STD)

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """See ``Embedder.embed_batch``."""
        mx = self._mx
        feats = mx.power(mx.mean(self._feature_map(batch), axis=(1, 2)), 1.0 / GEM_P)
        return l2_normalise(np.array(feats, dtype=np.float32))

    def region_vectors(
        self, image: np.ndarray, windows_for: Callable[[int, int], list[Window]]
    ) -> tuple[list[Window], np.ndarray]:
        """See ``EfficientNetLite0Embedder.region_vectors``."""
        h, w = image.shape[:2]
        scale = REGION_LONG_SIDE / max(h, w)
        size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))
        x = resized_normalised(image, size, MEAN, STD)
        fmap = np.array(self._feature_map(x[None])[0], dtype=np.float64)  # (rows, cols, C)
        rows, cols = fmap.shape[:2]
        wins = windows_for(cols, rows)
        if not wins:
            return [], np.zeros((0, SPEC.dim), np.float32)
        means = window_means(fmap, wins)
        return wins, l2_normalise(np.power(np.maximum(means, 1e-12), 1.0 / GEM_P))


def window_means(fmap: np.ndarray, wins: Sequence[Window]) -> np.ndarray:
    """The mean of ``fmap`` (rows, cols, C) over each window (fractions of its sides),
    from a summed-area table: O(1) per window."""
    rows, cols = fmap.shape[:2]
    table = np.pad(fmap.cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))
    cells = np.array(
        [
            (round(x0 * cols), round(y0 * rows), round(x1 * cols), round(y1 * rows))
            for x0, y0, x1, y1 in wins
        ],
        dtype=np.int64,
    )
    x0, y0, x1, y1 = (cells[:, i] for i in range(4))
    sums = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    return sums / ((x1 - x0) * (y1 - y0))[:, None]
