"""The projection head: its file, its checks, the embedder around it, its training parts."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from server.engine.errors import ModelUnavailableError
from server.engine.vision.embedders.base import ModelSpec
from server.engine.vision.embedders.projected import Head, ProjectedEmbedder, head_module, load_head
from server.engine.workflows.head_fitting import fit_whitening, nearest_mean, supcon

BASE = ModelSpec(model_id="efficientnet-lite0/imagenet/gem3", dim=1280)


def seeded_head(seed: int = 0, in_dim: int = 1280) -> Head:
    torch.manual_seed(seed)
    return Head(head_module(in_dim, 32, 16), BASE.model_id, {"classes": 3})


def test_a_saved_head_loads_with_the_same_id_and_the_same_vectors(tmp_path: Path) -> None:
    head = seeded_head()
    path = tmp_path / "models" / f"{head.id}.pt"
    head.save(path)
    again = load_head(path, BASE, head.id)
    x = np.random.default_rng(0).normal(size=(5, 1280)).astype(np.float32)
    assert again.id == head.id and again.out_dim == 16
    np.testing.assert_allclose(again.project(x), head.project(x), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(head.project(x), axis=1), 1.0, rtol=1e-5)
    assert seeded_head(1).id != head.id


def test_a_linear_head_and_a_format_1_mlp_head_load_as_saved(tmp_path: Path) -> None:
    torch.manual_seed(0)
    linear = Head(torch.nn.Linear(1280, 8), BASE.model_id, {"classes": 3})
    path = tmp_path / "linear.pt"
    linear.save(path)
    again = load_head(path, BASE, linear.id)
    x = np.random.default_rng(0).normal(size=(5, 1280)).astype(np.float32)
    assert again.kind == "linear" and again.hidden is None and again.out_dim == 8
    np.testing.assert_allclose(again.project(x), linear.project(x), rtol=1e-6)
    # A head file from before linear heads (format 1) has no "kind": it is an MLP.
    mlp = seeded_head()
    data = torch.load(io.BytesIO(mlp.to_bytes()), weights_only=True)
    del data["kind"]
    data["format"] = 1
    torch.save(data, path)
    old = load_head(path, BASE, mlp.id)
    assert old.kind == "mlp"
    np.testing.assert_allclose(old.project(x), mlp.project(x), rtol=1e-6)


def test_whitening_discounts_what_views_vary_in_and_keeps_what_tells_classes_apart() -> None:
    # Six classes whose means differ a little in 6 directions, while every view varies a
    # lot in 4 others (what a camera changes): raw nearest-mean is poor, whitened good.
    rng = np.random.default_rng(0)
    dims, classes, views = 24, 6, 30
    means = np.zeros((classes, dims))
    means[:, :classes] = 0.6 * np.eye(classes)
    spread = np.full(dims, 0.15)
    spread[classes : classes + 4] = 2.0
    y = np.repeat(np.arange(classes), views)
    x = (means[y] + rng.normal(size=(len(y), dims)) * spread + 5.0).astype(np.float32)
    train, test = np.arange(len(y)) % 3 != 0, np.arange(len(y)) % 3 == 0
    plain, _ = nearest_mean(
        x[train] / np.linalg.norm(x[train], axis=1, keepdims=True),
        y[train],
        x[test] / np.linalg.norm(x[test], axis=1, keepdims=True),
        y[test],
    )
    module = fit_whitening(x[train], y[train], dim=8, shrinkage=0.3)
    head = Head(module, BASE.model_id, {})
    assert isinstance(module, torch.nn.Linear) and module.weight.shape == (8, dims)
    whitened, _ = nearest_mean(head.project(x[train]), y[train], head.project(x[test]), y[test])
    assert plain < 0.5 and whitened > 0.85, (plain, whitened)
    # Closed form: the same vectors give the same head (8 > 5 class directions: the rest
    # is filled deterministically too).
    again = fit_whitening(x[train], y[train], dim=8, shrinkage=0.3)
    assert Head(again, BASE.model_id, {}).id == head.id
    # Asked for the model's own dimension (or more), it only whitens: no reduction.
    full = Head(fit_whitening(x[train], y[train], dim=99, shrinkage=0.3), BASE.model_id, {})
    assert full.out_dim == dims
    assert nearest_mean(full.project(x[train]), y[train], full.project(x[test]), y[test])[0] > 0.85


def _subspace_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosines of the principal angles between the column spaces of a and b."""
    return np.linalg.svd(np.linalg.qr(a)[0].T @ np.linalg.qr(b)[0], compute_uv=False)


def test_whitening_is_fixed_by_the_data_not_by_rounding() -> None:
    # 40 classes x 8 views in 64-d, reduced to 48: 39 directions from the class means,
    # 9 from the views. Input changed in the ninth decimal place must give the same
    # directions, including those beyond the class means (an arbitrary basis of their
    # complement would not: it follows the rounding of the SVD that produced it).
    rng = np.random.default_rng(3)
    classes, views, dims = 40, 8, 64
    y = np.repeat(np.arange(classes), views)
    x = rng.normal(size=(classes, dims))[y] + rng.normal(size=(len(y), dims)) * np.linspace(
        0.1, 1.0, dims
    )
    weights = [
        fit_whitening(v, y, dim=48, shrinkage=0.3).weight.detach().double().numpy().T
        for v in (x, x + rng.normal(size=x.shape) * 1e-9)
    ]
    assert weights[0].shape == (dims, 48)
    for part in (slice(0, classes - 1), slice(classes - 1, 48)):
        assert _subspace_cosines(weights[0][:, part], weights[1][:, part]).min() > 0.999


def test_whitening_keeps_only_directions_the_references_span() -> None:
    # 5 classes x 3 views in 64-d, asked for 32 directions: the 15 vectors span 14
    # (centred), so the head has 14, each carrying some of the training vectors' spread.
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(5), 3)
    x = rng.normal(size=(len(y), 64))
    module = fit_whitening(x, y, dim=32, shrinkage=0.3)
    projected = Head(module, BASE.model_id, {}).module(torch.from_numpy(x).float())
    assert module.weight.shape == (14, 64)
    assert projected.detach().numpy().std(axis=0).min() > 1e-3


def test_a_missing_corrupt_foreign_or_swapped_head_file_is_one_clear_error(tmp_path: Path) -> None:
    head = seeded_head()
    path = tmp_path / "head.pt"
    with pytest.raises(ModelUnavailableError, match="is missing.*identify train"):
        load_head(path, BASE)
    path.write_bytes(head.to_bytes()[:100])
    with pytest.raises(ModelUnavailableError, match="cannot be read"):
        load_head(path, BASE)
    head.save(path)
    other = ModelSpec(model_id="open_clip/ViT-B-32/x", dim=512)
    with pytest.raises(ModelUnavailableError, match="trained on efficientnet-lite0"):
        load_head(path, other)
    with pytest.raises(ModelUnavailableError, match="the project names head-000"):
        load_head(path, BASE, "head-000")


def test_the_projected_embedder_names_its_space_and_projects_window_vectors(
    embedder, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    head = seeded_head()
    projected = ProjectedEmbedder(embedder, head)
    assert projected.spec.dim == 16 and projected.spec.projection == head.id
    assert projected.spec.space_id == f"{embedder.spec.model_id}+{head.id}"
    assert embedder.spec.space_id == embedder.spec.model_id
    image = np.full((96, 128, 3), 90, np.uint8)
    image[20:70, 30:90] = (200, 40, 40)
    vec = projected.embed_batch(projected.preprocess(image)[None])
    plain = embedder.embed_batch(embedder.preprocess(image)[None])
    np.testing.assert_allclose(vec, head.project(plain), rtol=1e-5, atol=1e-6)
    wins, window_vecs = projected.region_vectors(image, lambda cols, rows: [(0, 0, 1, 1)])
    assert len(wins) == 1 and window_vecs.shape == (1, 16)


def test_supcon_prefers_embeddings_that_keep_classes_apart() -> None:
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    apart = torch.nn.functional.normalize(torch.eye(3)[y] + 0.01, dim=1)
    mixed = torch.nn.functional.normalize(
        torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])] + 0.01, dim=1
    )
    assert float(supcon(apart, y, 0.1)) < float(supcon(mixed, y, 0.1))


def test_nearest_mean_counts_right_answers_and_measures_margins() -> None:
    train = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], np.float32)
    train_y = np.array([0, 0, 1, 1])
    test = np.array([[1, 0.2], [0.3, 1], [1, 0]], np.float32)
    test_y = np.array([0, 1, 1])
    top1, margin = nearest_mean(train, train_y, test, test_y)
    assert top1 == pytest.approx(2 / 3)
    assert margin > 0  # the median query is right
