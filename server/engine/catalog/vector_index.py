"""The one wrapper that owns USearch.

- cosine metric, scalar type chosen per project (f16 by default);
- a JSON metadata file beside the index (model id, dimension, dtype, projection) checked
  on open, with a clear ``IndexMismatchError``;
- atomic saves (write to a temporary file, then rename);
- always loaded into memory, never memory-mapped (``view=True``): mutating a viewed
  index that holds deleted entries crashes the process.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from usearch.index import Index

from server.engine.errors import IdentifyError, IndexMismatchError
from server.engine.vision.embedders.base import ModelSpec

FORMAT_VERSION = 1


@dataclass(frozen=True)
class IndexMeta:
    """What the vectors in an index mean; stored as ``<index>.json``."""

    model_id: str
    dim: int
    dtype: str
    projection: str
    views: int = 0
    """Synthetic views averaged into each reference vector (``index.views``)."""
    count: int = 0
    format: int = FORMAT_VERSION

    def describe(self) -> str:
        """Short human description for error messages."""
        return (
            f"{self.model_id} ({self.dim}-d, {self.dtype}, projection {self.projection}, "
            f"{self.views} views per reference)"
        )


@dataclass(frozen=True)
class HnswParams:
    """USearch HNSW parameters."""

    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 64


def meta_path(path: Path) -> Path:
    """The metadata file beside an index file."""
    return path.with_name(path.name + ".json")


class VectorIndex:
    """A cosine USearch index keyed by database row ids."""

    def __init__(self, index: Index, meta: IndexMeta, path: Path) -> None:
        self._lock = threading.RLock()
        """Searches may come from several threads (the server's prepare workers locate
        objects in frames) while the engine thread adds or removes references: every
        call into USearch holds this lock."""
        self._index = index
        self.meta = meta
        self.path = path
        self.unsaved = False
        """The index differs from the file on disk (set by ``add`` and ``remove``)."""

    @classmethod
    def create(
        cls,
        path: Path,
        spec: ModelSpec,
        dtype: str = "f16",
        params: HnswParams | None = None,
        views: int = 0,
    ) -> VectorIndex:
        """A new, empty index for vectors of ``spec`` (not written until ``save``)."""
        p = params or HnswParams()
        index = Index(
            ndim=spec.dim,
            metric="cos",
            dtype=dtype,
            connectivity=p.connectivity,
            expansion_add=p.expansion_add,
            expansion_search=p.expansion_search,
        )
        meta = IndexMeta(
            model_id=spec.model_id,
            dim=spec.dim,
            dtype=dtype,
            projection=spec.projection,
            views=views,
        )
        return cls(index, meta, path)

    @classmethod
    def open(
        cls,
        path: Path,
        spec: ModelSpec,
        dtype: str,
        params: HnswParams | None = None,
        views: int = 0,
    ) -> VectorIndex | None:
        """Open an index and check it matches ``spec`` and ``dtype``.

        Returns:
            The index, or None when no index file exists yet.

        Raises:
            IndexMismatchError: built with another model, dimension, dtype or projection.
            IdentifyError: the files are unreadable.
        """
        mpath = meta_path(path)
        if not path.exists() and not mpath.exists():
            return None
        try:
            raw = json.loads(mpath.read_text(encoding="utf-8"))
            meta = IndexMeta(**raw)
        except (OSError, ValueError, TypeError) as exc:
            raise IdentifyError(
                f"index metadata {mpath} is missing or unreadable ({exc}); "
                "run `identify index` to rebuild it from the database"
            ) from None
        wanted = IndexMeta(
            model_id=spec.model_id,
            dim=spec.dim,
            dtype=dtype,
            projection=spec.projection,
            views=views,
            count=meta.count,
        )
        if (meta.model_id, meta.dim, meta.dtype, meta.projection, meta.views) != (
            wanted.model_id,
            wanted.dim,
            wanted.dtype,
            wanted.projection,
            wanted.views,
        ):
            raise IndexMismatchError(
                f"the index at {path} was built with {meta.describe()}, but the project now "
                f"uses {wanted.describe()}; run `identify index` to rebuild it"
            )
        try:
            index = Index.restore(str(path), view=False)
        except (ValueError, RuntimeError, OSError):
            index = None
        if index is None or len(index) != meta.count:
            raise IdentifyError(
                f"index {path} is missing, damaged or out of step with its metadata; "
                "run `identify index` to rebuild it from the database"
            )
        p = params or HnswParams()
        # USearch's setter is untyped, so type checkers see a read-only property.
        index.expansion_search = p.expansion_search  # type: ignore[misc]
        return cls(index, meta, path)

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def __contains__(self, key: int) -> bool:
        with self._lock:
            return bool(self._index.contains(int(key)))

    def keys(self) -> set[int]:
        """Every key in the index."""
        with self._lock:
            return {int(k) for k in np.asarray(self._index.keys, dtype=np.uint64)}

    def add(self, keys: Sequence[int], vectors: np.ndarray) -> None:
        """Add vectors under ``keys`` (existing keys are replaced)."""
        if len(keys) == 0:
            return
        keys_arr = np.asarray(keys, dtype=np.uint64)
        with self._lock:
            present = [int(k) for k in keys_arr if self._index.contains(int(k))]
            if present:
                self._index.remove(present)
            self._index.add(keys_arr, np.asarray(vectors, dtype=np.float32))
            self.unsaved = True

    def remove(self, keys: Sequence[int]) -> None:
        """Remove keys that are present; absent keys are ignored."""
        with self._lock:
            present = [int(k) for k in keys if self._index.contains(int(k))]
            if present:
                self._index.remove(present)
                self.unsaved = True

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of each row of ``vectors``.

        Returns:
            (keys, similarities), each (n, k'); missing neighbours have key -1 and
            similarity -inf. Similarity is cosine similarity (1 - USearch distance).
        """
        q = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
        n = q.shape[0]
        with self._lock:
            size = len(self._index)
            if size == 0:
                return np.full((n, 1), -1, np.int64), np.full((n, 1), -np.inf, np.float32)
            k = max(1, min(k, size))
            matches = self._index.search(q, k)
        keys = np.asarray(matches.keys, dtype=np.int64).reshape(n, -1)
        sims = 1.0 - np.asarray(matches.distances, dtype=np.float32).reshape(n, -1)
        # USearch returns ``Matches`` (no counts) for a single query, ``BatchMatches``
        # otherwise.
        counts = np.asarray(getattr(matches, "counts", [len(matches.keys)])).reshape(n)
        cols = np.arange(keys.shape[1])[None, :]
        missing = cols >= counts[:, None]
        keys[missing] = -1
        sims[missing] = -np.inf
        return keys, sims

    def save(self) -> None:
        """Write the index and its metadata atomically (temporary file, then rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.meta = IndexMeta(**{**asdict(self.meta), "count": len(self._index)})
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with self._lock:
            self._index.save(str(tmp))
        mtmp = meta_path(tmp)
        mtmp.write_text(json.dumps(asdict(self.meta), indent=2), encoding="utf-8")
        for f in (tmp, mtmp):
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        os.replace(mtmp, meta_path(self.path))
        self.unsaved = False

    @property
    def memory_bytes(self) -> int:
        """Bytes USearch reports for the in-memory index."""
        with self._lock:
            return int(self._index.memory_usage)
