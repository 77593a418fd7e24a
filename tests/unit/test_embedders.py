"""Embedders: the real offline model, and the real CLIP architecture from a weights file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import data

from server.engine.errors import ModelUnavailableError
from server.engine.project.config import ModelConfig
from server.engine.vision.embedders import create_embedder, embed_images


def test_offline_model_embeds_real_photos_into_unit_vectors(embedder) -> None:  # type: ignore[no-untyped-def]
    cat, coffee = data.chelsea(), data.coffee()
    crop = cat[40:280, 60:400]
    v = embed_images(embedder, [cat, coffee, crop])
    assert v.shape == (3, 1280) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # A crop of the cat is nearer the cat than the coffee is.
    assert v[2] @ v[0] > v[2] @ v[1] + 0.1


def test_offline_model_classifies_like_imagenet() -> None:
    """The packaged weights are mapped onto timm's architecture correctly."""
    import torch

    from server.engine.vision.embedders.efficientnet import MEAN, STD, load_efficientnet_lite0
    from server.engine.vision.embedders.torch_common import resize_normalise

    model = load_efficientnet_lite0()
    x = torch.from_numpy(resize_normalise(data.coffee(), 224, MEAN, STD))[None]
    with torch.inference_mode():
        top = int(model(x).argmax())
    assert top == 967  # ImageNet "espresso"


@pytest.fixture(scope="module")
def clip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CLIP ViT-B-32, the real architecture, with seeded random weights in a file."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    path = tmp_path_factory.mktemp("clip") / "vit-b-32-seeded.pt"
    torch.save({k: v.half() for k, v in model.state_dict().items()}, path)
    return path


def test_clip_loads_from_a_local_checkpoint_and_embeds(clip_checkpoint: Path) -> None:
    emb = create_embedder(ModelConfig(name="ViT-B-32", checkpoint=clip_checkpoint, device="cpu"))
    assert emb.spec.dim == 512
    assert emb.spec.model_id.startswith("open_clip/ViT-B-32/file-")
    v = embed_images(emb, [data.astronaut(), data.rocket()])
    assert v.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    again = create_embedder(ModelConfig(name="ViT-B-32", checkpoint=clip_checkpoint, device="cpu"))
    assert again.spec.model_id == emb.spec.model_id
    np.testing.assert_allclose(embed_images(again, [data.astronaut()])[0], v[0], atol=1e-5)


def test_clip_weights_that_cannot_be_downloaded_say_what_to_do(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as err:
        create_embedder(ModelConfig(name="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu"))
    assert "model.checkpoint" in err.value.message and "efficientnet-lite0" in err.value.message


def test_missing_checkpoint_file_and_unknown_model_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="not found"):
        create_embedder(ModelConfig(name="ViT-B-32", checkpoint=tmp_path / "nope.pt"))
    with pytest.raises(ModelUnavailableError, match="unknown model 'ViT-Q-99'"):
        create_embedder(ModelConfig(name="ViT-Q-99"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not weights")
    with pytest.raises(ModelUnavailableError, match="cannot load"):
        create_embedder(ModelConfig(name="ViT-B-32", checkpoint=bad))
