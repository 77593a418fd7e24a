"""The reference vectors and the index built of them.

How one reference becomes evidence (its vector, averaged over the plain image and
synthetic camera views; its local features; its colour layout), the key that evidence
is stored under, and the lifecycle of the USearch index: open it, rebuild it from the
stored embeddings, or bring it in step with the store after a crash. Used by
``identify index``, ``verify``, ``train`` and the live service alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from server.engine.catalog.store import Store
from server.engine.catalog.vector_index import HnswParams, VectorIndex
from server.engine.errors import (
    IdentifyError,
    IndexMismatchError,
    NotIndexedError,
)
from server.engine.project.config import Project
from server.engine.vision import appearance, backdrops, synth
from server.engine.vision.embedders import Embedder, l2_normalise
from server.engine.vision.images import (
    flatten_alpha,
)
from server.engine.vision.localfeatures import FEATURE_KIND, LocalFeatures, extract

VIEW_STRENGTH = 0.5
"""Harshness of the synthetic views averaged into a reference's vector (milder than
verify's queries: they describe the thing, not the worst camera)."""


VIEW_SIZE = (320, 320)
"""Frame size of the synthetic views: the crop is resized to the model's input anyway, and
a 320-pixel frame renders in a third of the time of a 448-pixel one."""


LIVE_SOURCES = frozenset({"api", "review", "promote"})
"""``images.source`` of references added while the server runs; they have no file in a
reference folder, so ``identify index`` must not retire them."""


VIEW_BACKGROUNDS = 8
"""Procedural backgrounds the views are composited on. Not verify's photos, so verify
never grades the index on the backgrounds it was built with."""


REFERENCE_MIN_SIDE = 256
"""Large JPEG references are decoded at a reduced scale, keeping at least this many
pixels on the shorter side: as many as the views draw (the object's longer side is at
most 80 % of a 320-px view, 256 px) and more than the model's 224-px input; the local
features work at 320 px on the longer side, which a 4:3 photo then still has (a
1600x1200 photo decodes at 400x300; a square one at 256x256, whose keypoints then come
from a copy enlarged to 320). Less would starve the views; more costs decoding time
(see RESULTS.md, Design choices)."""


def view_backgrounds() -> list[np.ndarray]:
    """The fixed, seeded backgrounds for reference views."""
    rng = np.random.default_rng(20261122)
    return [backdrops.fallback_background(rng, VIEW_SIZE) for _ in range(VIEW_BACKGROUNDS)]


def reference_views(
    image: np.ndarray, digest: str, count: int, backgrounds: list[np.ndarray]
) -> list[np.ndarray]:
    """The plain reference (alpha flattened) and ``count`` synthetic camera crops of it.

    Seeded by the content hash: the same file always gives the same vector.
    """
    plain = flatten_alpha(image)
    if count == 0:
        return [plain]
    rng = np.random.default_rng(int(digest[:16], 16))
    out = [plain]
    for i in range(count):
        view = synth.camera_view(
            image, backgrounds[i % len(backgrounds)], rng, size=VIEW_SIZE, strength=VIEW_STRENGTH
        )
        out.append(synth.crop_object(view, rng))
    return out


@dataclass(frozen=True)
class ReferenceEvidence:
    """What the index keeps of one reference: its vector, its local features (None with
    the second stage off) and its colour layout."""

    vector: np.ndarray
    features: LocalFeatures | None
    layout: appearance.Layout

    def save(self, store: Store, row_id: int, vector_id: str, size: tuple[int, int]) -> None:
        """Write all of it for reference row ``row_id`` (inside the caller's transaction)."""
        store.put_embedding(row_id, vector_id, self.vector)
        if self.features is not None:
            store.put_features(
                row_id, FEATURE_KIND, self.features.keypoints, self.features.descriptors, size
            )
        store.put_layout(row_id, self.layout.to_bytes(), self.layout.aspect)


def hnsw_params(project: Project) -> HnswParams:
    """HNSW parameters from the project's ``index:`` section."""
    ic = project.config.index
    return HnswParams(ic.connectivity, ic.expansion_add, ic.expansion_search)


def reference_vector_id(project: Project, embedder: Embedder) -> str:
    """Key of stored reference vectors: the vector space (model and projection head) and
    the number of views averaged in."""
    return f"{embedder.spec.space_id}#views={project.config.index.views}"


def open_or_none(project: Project, embedder: Embedder) -> VectorIndex | None:
    """The project's index if it exists and matches the embedder (else raises)."""
    return VectorIndex.open(
        project.index_path,
        embedder.spec,
        project.config.index.dtype,
        hnsw_params(project),
        views=project.config.index.views,
    )


def rebuild_index(project: Project, store: Store, embedder: Embedder) -> VectorIndex:
    """A fresh index from the embeddings stored for every active reference."""
    index = VectorIndex.create(
        project.index_path,
        embedder.spec,
        project.config.index.dtype,
        hnsw_params(project),
        views=project.config.index.views,
    )
    refs = store.active_references()
    vectors = store.embeddings([r.id for r in refs], reference_vector_id(project, embedder))
    keys = [r.id for r in refs if r.id in vectors]
    if keys:
        index.add(keys, np.stack([vectors[k] for k in keys]))
    return index


def sync_index(project: Project, store: Store, embedder: Embedder) -> tuple[VectorIndex, bool]:
    """The project's index, brought in step with the database's active references.

    The database is the truth; the index may lag it after a crash between a committed
    change and the next index save. Missing vectors are added from the stored
    embeddings, stale keys removed; an unreadable index is rebuilt.

    Returns:
        (index, changed): ``changed`` says the index differs from the file on disk.

    Raises:
        NotIndexedError: no reference was ever indexed.
        IndexMismatchError: the index was built with another model.
    """
    try:
        index = open_or_none(project, embedder)
    except IndexMismatchError:
        raise
    except IdentifyError:
        index = None
    refs = store.active_references()
    if index is None:
        if not refs:
            raise NotIndexedError(
                f"project '{project.name}' has no index yet: run `identify index "
                f"--project {project.file}` first"
            )
        return rebuild_index(project, store, embedder), True
    active = {r.id for r in refs}
    present = index.keys()
    stale = sorted(present - active)
    missing = sorted(active - present)
    vectors = store.embeddings(missing, reference_vector_id(project, embedder))
    index.remove(stale)
    add = [k for k in missing if k in vectors]
    if add:
        index.add(add, np.stack([vectors[k] for k in add]))
    return index, bool(stale or add)


def embed_reference(
    project: Project,
    embedder: Embedder,
    image: np.ndarray,
    digest: str,
    backgrounds: list[np.ndarray],
) -> ReferenceEvidence:
    """One reference's vector (plain image and its synthetic views, averaged), local
    features and colour layout, exactly as ``identify index`` computes them."""
    views = reference_views(image, digest, project.config.index.views, backgrounds)
    flat = embedder.embed_batch(np.stack([embedder.preprocess(v) for v in views]))
    vector = l2_normalise(flat.mean(axis=0, keepdims=True))[0]
    rerank = project.config.rerank
    feats = extract(views[0], rerank.max_features) if rerank.enabled else None
    return ReferenceEvidence(vector, feats, appearance.layout(image))
