"""Locating the object in a whole picture: windows, boxes, the shortlist, and the
regional vectors of the offline embedder."""

from __future__ import annotations

import numpy as np
import pytest

from server.engine.vision.images import load_image
from server.engine.vision.locate import (
    SCALES,
    iou,
    shortlist,
    to_box,
    window_vectors,
    windows,
)
from tests.conftest import DEMO_QUERIES


def test_windows_are_square_inside_the_picture_and_at_every_scale() -> None:
    wins = windows(640, 480, grid=(20, 15))
    assert wins and all(0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 for x0, y0, x1, y1 in wins)
    assert (0.0, 0.0, 1.0, 1.0) not in wins  # the whole picture is identified anyway
    sides = {round((x1 - x0) * 640) for x0, _, x1, _ in wins}
    for x0, y0, x1, y1 in wins:  # square in pixels, up to one grid cell
        assert abs((x1 - x0) * 640 - (y1 - y0) * 480) <= 32 + 1e-6
    assert len(sides) == len(SCALES)
    # Overlapping steps: every pixel of the picture is inside some smallest window.
    smallest = min(sides)
    small = [w for w in wins if round((w[2] - w[0]) * 640) == smallest]
    xs = {w[0] for w in small} | {w[2] for w in small}
    assert min(xs) == 0 and max(xs) == 1


def test_to_box_grows_the_window_and_stays_in_the_picture() -> None:
    assert to_box((0.25, 0.25, 0.75, 0.75), 400, 200, grow=0.1) == (80, 40, 320, 160)
    assert to_box((0.0, 0.0, 0.5, 1.0), 400, 200, grow=0.1) == (0, 0, 220, 200)


def test_shortlist_takes_the_best_windows_that_do_not_overlap_much() -> None:
    wins = [
        (0.0, 0.0, 0.5, 0.5),
        (0.05, 0.0, 0.55, 0.5),
        (0.5, 0.5, 1.0, 1.0),
        (0.4, 0.0, 0.9, 0.5),
    ]
    best = np.array([0.9, 0.95, 0.5, 0.7])
    picked = shortlist(wins, best, 3)
    # 1 is the best; 0 overlaps it too much; 3 overlaps 1 by less than half.
    assert picked == [wins[1], wins[3], wins[2]]
    assert iou(wins[0], wins[1]) > 0.5 > iou(wins[1], wins[3])
    assert shortlist(wins, best, 0) == []


def test_regional_vectors_are_gem_over_the_window(embedder) -> None:  # type: ignore[no-untyped-def]
    """The summed-area shortcut gives what pooling each window directly gives."""
    import torch

    from server.engine.vision.embedders.efficientnet import GEM_P, MEAN, REGION_LONG_SIDE, STD
    from server.engine.vision.embedders.torch_common import resized_normalised

    image = load_image(DEMO_QUERIES / "known-pineapple.jpg")
    wins, vectors = window_vectors(embedder, image)
    assert vectors.shape == (len(wins), embedder.spec.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    h, w = image.shape[:2]
    scale = REGION_LONG_SIDE / max(h, w)
    size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))
    x = torch.from_numpy(resized_normalised(image, size, MEAN, STD))[None]
    with torch.inference_mode():
        fmap = embedder._model.forward_features(x)[0].clamp(min=1e-6).pow(GEM_P)
    rows, cols = fmap.shape[1:]
    for i in (0, len(wins) // 2, len(wins) - 1):
        x0, y0, x1, y1 = wins[i]
        cell = fmap[:, round(y0 * rows) : round(y1 * rows), round(x0 * cols) : round(x1 * cols)]
        direct = cell.mean(dim=(1, 2)).pow(1 / GEM_P).numpy()
        direct /= np.linalg.norm(direct)
        assert float(direct @ vectors[i]) == pytest.approx(1.0, abs=1e-4)


class _NoMap:
    """An embedder without a feature map (as CLIP's ViT): windows are embedded as crops."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.spec, self.inner = inner.spec, inner
        self.seen: list[tuple[int, int]] = []

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        self.seen.append(image.shape[:2])
        return self.inner.preprocess(image)

    def embed_batch(self, batch: np.ndarray) -> np.ndarray:
        return self.inner.embed_batch(batch)


def test_embedders_without_a_feature_map_embed_window_crops(embedder) -> None:  # type: ignore[no-untyped-def]
    image = load_image(DEMO_QUERIES / "known-pineapple.jpg")
    plain = _NoMap(embedder)
    wins, vectors = window_vectors(plain, image)
    assert len(wins) == len(vectors) == len(plain.seen) > 4
    h, w = image.shape[:2]
    assert all(ch < h or cw < w for ch, cw in plain.seen)  # crops, not the picture


def test_outline_maps_reference_corners_and_refuses_nonsense() -> None:
    from server.engine.vision.localfeatures import LocalFeatures, outline, work_scale

    empty = (np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    query = LocalFeatures(*empty, size=(640, 480))
    ref = LocalFeatures(*empty, size=(200, 100))
    # Query keypoints -> reference keypoints: the reference sits at (100, 50) in the
    # query, at its own size, in pixels.
    qs, rs = work_scale(640, 480), work_scale(200, 100)
    to_pixels = np.diag([1 / qs, 1 / qs, 1.0])
    shift = np.array([[1, 0, -100], [0, 1, -50], [0, 0, 1]], float)
    homography = np.diag([rs, rs, 1.0]) @ shift @ to_pixels
    quad = outline(query, ref, homography)
    assert quad is not None
    np.testing.assert_allclose(quad, [[100, 50], [300, 50], [300, 150], [100, 150]], atol=1e-3)
    tiny = np.diag([1000.0, 1000.0, 1.0]) @ homography  # the reference shrinks to a dot
    assert outline(query, ref, tiny) is None
    away = np.array([[1, 0, 5000], [0, 1, 0], [0, 0, 1]], float) @ homography  # far outside
    assert outline(query, ref, away) is None
