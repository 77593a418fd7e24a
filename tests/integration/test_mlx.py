"""``model.backend: mlx``: EfficientNet-Lite0 in MLX from the torch weights file, giving
the torch model's vectors (so an index built by one is searched by the other)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from server.engine.errors import ModelUnavailableError, ProjectConfigError
from server.engine.project.config import ModelConfig, load_project
from server.engine.vision.embedders import create_embedder, embed_images, project_embedder
from server.engine.vision.images import load_image
from server.engine.vision.locate import windows
from server.engine.workflows.index import build_index
from tests.conftest import DEMO_REFS, write_project

MLX = ModelConfig(name="efficientnet-lite0", device="cpu", backend="mlx")


@pytest.fixture(scope="module")
def mlx_embedder():  # type: ignore[no-untyped-def]
    return create_embedder(MLX)


def _pictures() -> list[np.ndarray]:
    """The demo's references as they are, and as a camera would crop them (a corner
    cut off, turned a quarter, shrunk): different sizes and contents."""
    out = []
    for path in sorted(DEMO_REFS.glob("*.png")):
        image = load_image(path)
        h, w = image.shape[:2]
        out += [image, np.rot90(image[h // 5 :, : w * 4 // 5]).copy(), image[::3, ::3].copy()]
    return out


def test_mlx_gives_the_torch_models_vectors(embedder, mlx_embedder) -> None:  # type: ignore[no-untyped-def]
    pictures = _pictures()
    assert len(pictures) >= 24
    a, b = embed_images(embedder, pictures), embed_images(mlx_embedder, pictures)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= 0.999, cosine.min()
    assert mlx_embedder.spec == embedder.spec and mlx_embedder.device == "mlx:cpu"
    # Not a tautology: other pictures' vectors are far from these.
    assert float((a[0] * b[1:]).sum(axis=1).max()) < 0.99


def test_mlx_gives_the_torch_models_window_vectors(embedder, mlx_embedder) -> None:  # type: ignore[no-untyped-def]
    image = load_image(DEMO_REFS / "Brazil.png")
    h, w = image.shape[:2]
    grid = lambda cols, rows: windows(w, h, (cols, rows))
    wins_a, a = embedder.region_vectors(image, grid)
    wins_b, b = mlx_embedder.region_vectors(image, grid)
    assert wins_a == wins_b and len(wins_a) > 10
    assert float((a * b).sum(axis=1).min()) >= 0.999


def test_an_index_built_with_torch_is_searched_with_mlx(
    tmp_path: Path, small_refs: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    from server.engine.decide.identifier import Identifier

    file = write_project(tmp_path, small_refs)
    build_index(load_project(file), embedder)
    text = file.read_text().replace("  batch_size: 4\n", "  batch_size: 4\n  backend: mlx\n")
    file.write_text(text)
    project = load_project(file)
    assert project.config.model.backend == "mlx"
    ident = Identifier.open(project, project_embedder(project.config))
    try:
        ref = ident.store.active_references()[0]
        decision = ident.decide(ident.evidence([load_image(Path(ref.path))])[0])
        assert decision.label == ref.label and decision.score > 0.9
    finally:
        ident.close()


def test_what_mlx_cannot_run_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        ModelUnavailableError,
        match="runs on backend torch only; backend mlx runs efficientnet-lite0 and CLIP",
    ):
        create_embedder(ModelConfig(name="RN50", backend="mlx"))
    with pytest.raises(ModelUnavailableError, match="Apple's GPU"):
        create_embedder(ModelConfig(name="efficientnet-lite0", device="mps", backend="mlx"))
    refs = tmp_path / "refs"
    refs.mkdir()
    for value, why in (
        ("backend: jax", "model.backend: expected 'torch' or 'mlx', got 'jax'"),
        ("device: cuda\n  backend: mlx", "mlx runs on Apple's GPU or the CPU"),
    ):
        file = tmp_path / "p.yaml"
        file.write_text(f"references:\n  - path: {refs}\nmodel:\n  {value}\n")
        with pytest.raises(ProjectConfigError, match=why):
            load_project(file)
    monkeypatch.setitem(sys.modules, "mlx.core", None)  # MLX not installed
    with pytest.raises(ModelUnavailableError, match=r"pip install 'mlx\[cpu\]'.*backend: torch"):
        create_embedder(MLX)


def test_mlx_gives_the_torch_clip_towers_vectors(tmp_path: Path) -> None:
    """ViT-B-32 with seeded weights saved to a file (no CLIP weights can be fetched
    here): the same vectors from both backends, and from neither a constant."""
    import open_clip
    import torch

    torch.manual_seed(0)
    checkpoint = tmp_path / "vit-b-32-seed0.pt"
    torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), checkpoint)
    cfg = {"name": "ViT-B-32", "checkpoint": checkpoint, "device": "cpu"}
    torch_e = create_embedder(ModelConfig(**cfg))  # type: ignore[arg-type]
    mlx_e = create_embedder(ModelConfig(**cfg, backend="mlx"))  # type: ignore[arg-type]
    assert mlx_e.spec == torch_e.spec and mlx_e.device == "mlx:cpu"
    pictures = _pictures()[::7][:4]
    a, b = embed_images(torch_e, pictures), embed_images(mlx_e, pictures)
    assert float((a * b).sum(axis=1).min()) >= 0.999
    assert float((a[0] * a[1:]).sum(axis=1).max()) < 0.999  # the pictures differ
