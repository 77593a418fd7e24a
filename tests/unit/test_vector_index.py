"""The USearch wrapper: round trips, cosine values, mismatches, damage, atomic saves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from server.engine.catalog.vector_index import VectorIndex, meta_path
from server.engine.errors import IdentifyError, IndexMismatchError
from server.engine.vision.embedders.base import ModelSpec

SPEC = ModelSpec(model_id="test/model", dim=32)


def _unit(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _saved(path: Path, dtype: str = "f16", n: int = 20) -> tuple[list[int], np.ndarray]:
    keys = [1000 + 7 * i for i in range(n)]  # database ids: not 0..n-1
    vecs = _unit(n)
    index = VectorIndex.create(path, SPEC, dtype)
    index.add(keys, vecs)
    index.save()
    return keys, vecs


@pytest.mark.parametrize("dtype", ["f16", "i8"])
def test_create_add_save_open_search_round_trip(tmp_path: Path, dtype: str) -> None:
    path = tmp_path / "index.usearch"
    keys, vecs = _saved(path, dtype)
    index = VectorIndex.open(path, SPEC, dtype)
    assert index is not None
    assert len(index) == len(keys)
    assert index.meta.count == len(keys) and index.meta.dtype == dtype
    assert all(k in index for k in keys) and 1 not in index
    found, sims = index.search(vecs[:5], 3)
    assert found.shape == (5, 3) and sims.shape == (5, 3)
    assert found[:, 0].tolist() == keys[:5]  # each vector finds its own id first
    assert np.allclose(sims[:, 0], 1.0, atol=0.02)


@pytest.mark.parametrize(("dtype", "atol"), [("f16", 5e-3), ("i8", 0.05)])
def test_similarities_are_cosine_like_numpy(tmp_path: Path, dtype: str, atol: float) -> None:
    keys = list(range(10, 30))
    vecs = _unit(20) * 3.0  # unnormalised on purpose: cosine, not dot product
    index = VectorIndex.create(tmp_path / "i.usearch", SPEC, dtype)
    index.add(keys, vecs)
    query = _unit(1, seed=5)[0] * 0.5
    found, sims = index.search(query, 20)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    expected = dict(zip(keys, (unit @ (query / np.linalg.norm(query))).tolist(), strict=True))
    assert sorted(found[0].tolist()) == keys
    for key, sim in zip(found[0].tolist(), sims[0].tolist(), strict=True):
        assert sim == pytest.approx(expected[key], abs=atol)
    assert (np.diff(sims[0]) <= 1e-6).all()  # best first


def test_single_and_batch_queries_agree(tmp_path: Path) -> None:
    index = VectorIndex.create(tmp_path / "i.usearch", SPEC)
    vecs = _unit(10)
    index.add(list(range(10)), vecs)
    k1, s1 = index.search(vecs[3], 4)
    kb, sb = index.search(vecs[2:5], 4)
    assert k1.shape == (1, 4)
    np.testing.assert_array_equal(k1[0], kb[1])
    np.testing.assert_allclose(s1[0], sb[1])


def test_k_larger_than_the_index_returns_every_entry(tmp_path: Path) -> None:
    index = VectorIndex.create(tmp_path / "i.usearch", SPEC)
    index.add([5, 6, 7], _unit(3))
    found, sims = index.search(_unit(2, seed=9), 50)
    assert found.shape == (2, 3)
    assert (found >= 0).all() and np.isfinite(sims).all()


def test_remove_takes_keys_out_and_ignores_absent_ones(tmp_path: Path) -> None:
    path = tmp_path / "i.usearch"
    index = VectorIndex.create(path, SPEC)
    vecs = _unit(5)
    index.add([1, 2, 3, 4, 5], vecs)
    index.remove([2, 4, 999])
    assert len(index) == 3
    assert 2 not in index and 4 not in index
    found, _ = index.search(vecs[1], 5)
    assert 2 not in found[0].tolist()
    index.save()
    reopened = VectorIndex.open(path, SPEC, "f16")
    assert reopened is not None and len(reopened) == 3
    assert sorted(k for k in reopened.search(vecs, 5)[0][0].tolist() if k >= 0) == [1, 3, 5]


def test_re_adding_an_existing_key_replaces_its_vector(tmp_path: Path) -> None:
    index = VectorIndex.create(tmp_path / "i.usearch", SPEC)
    vecs = _unit(4)
    index.add([1, 2, 3], vecs[:3])
    index.add([2], vecs[3:4])
    assert len(index) == 3
    found, sims = index.search(vecs[3], 1)
    assert found[0, 0] == 2 and sims[0, 0] == pytest.approx(1.0, abs=5e-3)
    found, sims = index.search(vecs[1], 3)  # key 2's old vector is gone
    sim_of_2 = dict(zip(found[0].tolist(), sims[0].tolist(), strict=True))[2]
    assert sim_of_2 == pytest.approx(float(vecs[1] @ vecs[3]), abs=5e-3)


def test_adding_nothing_is_a_no_op(tmp_path: Path) -> None:
    index = VectorIndex.create(tmp_path / "i.usearch", SPEC)
    index.add([], np.zeros((0, 32), np.float32))
    assert len(index) == 0


def test_searching_an_empty_index_returns_missing_keys(tmp_path: Path) -> None:
    index = VectorIndex.create(tmp_path / "i.usearch", SPEC)
    found, sims = index.search(_unit(3), 5)
    assert found.shape == (3, 1)
    assert (found == -1).all()
    assert np.isneginf(sims).all()


def test_open_returns_none_when_nothing_exists(tmp_path: Path) -> None:
    assert VectorIndex.open(tmp_path / "none.usearch", SPEC, "f16") is None


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "index.usearch"
    _saved(path)
    index = VectorIndex.open(path, SPEC, "f16")
    assert index is not None
    index.add([1], _unit(1, seed=3))
    index.save()  # overwrite in place
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["index.usearch", "index.usearch.json"]
    meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    assert meta["count"] == 21
    assert meta["model_id"] == "test/model" and meta["dim"] == 32 and meta["dtype"] == "f16"


@pytest.mark.parametrize(
    ("spec", "dtype"),
    [
        (ModelSpec(model_id="other/model", dim=32), "f16"),
        (ModelSpec(model_id="test/model", dim=64), "f16"),
        (ModelSpec(model_id="test/model", dim=32, projection="head-v2"), "f16"),
        (SPEC, "i8"),
    ],
    ids=["model_id", "dim", "projection", "dtype"],
)
def test_open_with_another_model_or_dtype_is_a_mismatch(
    tmp_path: Path, spec: ModelSpec, dtype: str
) -> None:
    path = tmp_path / "index.usearch"
    _saved(path, "f16")
    with pytest.raises(IndexMismatchError) as err:
        VectorIndex.open(path, spec, dtype)
    msg = err.value.message
    assert "test/model (32-d, f16, projection none, 0 views" in msg  # what the index holds
    assert f"{spec.model_id} ({spec.dim}-d, {dtype}, projection {spec.projection}," in msg
    assert err.value.status == 409


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_index_file_is_an_identify_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "index.usearch"
    _saved(path)
    raw = path.read_bytes()
    path.write_bytes(
        {"garbage": b"\x00not an index\xff" * 64, "truncated": raw[: len(raw) // 2], "empty": b""}[
            damage
        ]
    )
    with pytest.raises(IdentifyError, match="identify index"):
        VectorIndex.open(path, SPEC, "f16")


def test_missing_index_file_beside_its_metadata_is_an_identify_error(tmp_path: Path) -> None:
    path = tmp_path / "index.usearch"
    _saved(path)
    path.unlink()
    with pytest.raises(IdentifyError, match="identify index"):
        VectorIndex.open(path, SPEC, "f16")


@pytest.mark.parametrize(
    "meta",
    [None, "{not json", "[1, 2, 3]", '{"model_id": "x"}'],
    ids=["missing", "garbage", "list", "incomplete"],
)
def test_missing_or_garbage_metadata_is_an_identify_error(tmp_path: Path, meta: str | None) -> None:
    path = tmp_path / "index.usearch"
    _saved(path)
    if meta is None:
        meta_path(path).unlink()
    else:
        meta_path(path).write_text(meta, encoding="utf-8")
    with pytest.raises(IdentifyError, match="metadata") as err:
        VectorIndex.open(path, SPEC, "f16")
    assert not isinstance(err.value, IndexMismatchError)


def test_metadata_count_out_of_step_with_the_index_is_an_identify_error(tmp_path: Path) -> None:
    path = tmp_path / "index.usearch"
    _saved(path)
    meta = json.loads(meta_path(path).read_text(encoding="utf-8"))
    meta_path(path).write_text(json.dumps({**meta, "count": 3}), encoding="utf-8")
    with pytest.raises(IdentifyError, match="out of step"):
        VectorIndex.open(path, SPEC, "f16")
