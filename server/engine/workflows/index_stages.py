"""The stages of ``identify index``, each usable alone: ``scan`` the folders, ``diff``
one file by content hash against what the store holds (``Known``), ``embed`` what the
diff says is needed, write it (``Writer``), and bring the vector index in step
(``updated_index``). ``index.build_index`` runs them in that order."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from server import contract
from server.engine.catalog.store import ReferenceRow, Store
from server.engine.catalog.vector_index import VectorIndex
from server.engine.catalog.vectors import (
    LIVE_SOURCES,
    REFERENCE_MIN_SIDE,
    ReferenceEvidence,
    embed_reference,
    open_or_none,
    rebuild_index,
    reference_vector_id,
)
from server.engine.errors import IdentifyError, ImageRejected
from server.engine.loop.outbox import tell, tell_added, tell_added_class, tell_removed
from server.engine.project.config import Project
from server.engine.project.references import ReferenceFile, scan_references
from server.engine.vision import appearance
from server.engine.vision.embedders import Embedder
from server.engine.vision.images import content_hash, decode_image, load_image, read_image_bytes
from server.engine.vision.localfeatures import FEATURE_KIND
from server.engine.workflows.common import Progress


@dataclass
class IndexSummary:
    """What one ``identify index`` run did."""

    files: int = 0
    embedded: int = 0
    unchanged: int = 0
    retired: int = 0
    deleted: int = 0
    """Files skipped because a person deleted them as references (through the API)."""
    classes: int = 0
    index_size: int = 0
    rebuilt_index: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


DELETED = "deleted as a reference through the server"
"""Why a file a person deleted as a reference is not indexed again."""

Scan = tuple[list[ReferenceFile], list[tuple[Path, str]]]
"""What ``scan`` found: reference files, and files skipped for not being images."""


def scan(project: Project) -> Scan:
    """Stage 1: the reference files in the project's folders (reads no image).

    Raises:
        ProjectConfigError: a reference folder is missing.
        NoReferencesError: no image file in any reference folder.
    """
    return scan_references(project.config)


@dataclass(frozen=True)
class Known:
    """What the store already holds of the folders' references, for the diff by hash."""

    existing: dict[str, ReferenceRow]
    """Active folder references by path."""
    deleted: set[tuple[str, str]]
    """(path, content hash) of files a person deleted as references."""
    with_vector: set[int]
    with_features: set[int]
    with_layout: set[int]
    rerank: bool

    @classmethod
    def load(cls, project: Project, store: Store, vector_id: str) -> Known:
        """Read it from the store."""
        existing = {r.path: r for r in store.active_references() if r.source not in LIVE_SOURCES}
        return cls(
            existing=existing,
            deleted=store.deleted_files(),
            with_vector=set(store.embeddings([r.id for r in existing.values()], vector_id)),
            with_features=store.feature_ids(FEATURE_KIND),
            with_layout=store.layout_ids(),
            rerank=project.config.rerank.enabled,
        )

    def is_current(self, row: ReferenceRow | None, digest: str) -> bool:
        """Whether ``row`` holds this very file with everything the index needs."""
        return (
            row is not None
            and row.content_hash == digest
            and row.id in self.with_vector
            and (not self.rerank or row.id in self.with_features)
        )


Need = Literal["nothing", "layout", "embedding"]
"""What the index needs of a file: nothing (it holds this very file), only its colour
layout (indexed before layouts were), or everything (new or changed)."""


@dataclass(frozen=True)
class Examined:
    """Stage 2's verdict on one file."""

    ref: ReferenceFile
    digest: str
    needs: Need
    data: bytes = b""
    """The file's bytes, when something is to be made of them."""
    error: str | None = None
    """Why the file is skipped (``DELETED``, or why it cannot be read)."""


def diff(ref: ReferenceFile, known: Known) -> Examined:
    """Stage 2 for one file: read and hash it, and compare it with what the store
    holds. Decodes nothing."""
    try:
        data = read_image_bytes(ref.path)
    except ImageRejected as exc:
        return Examined(ref, "", "nothing", error=exc.message)
    digest = content_hash(data)
    if (str(ref.path), digest) in known.deleted:
        return Examined(ref, digest, "nothing", error=DELETED)
    row = known.existing.get(str(ref.path))
    if not known.is_current(row, digest):
        return Examined(ref, digest, "embedding", data)
    if row is not None and row.id in known.with_layout:
        return Examined(ref, digest, "nothing")
    return Examined(ref, digest, "layout", data)


@dataclass(frozen=True)
class Embedded:
    """Stage 3's result for one file: what the writer stores of it."""

    ref: ReferenceFile
    digest: str
    evidence: ReferenceEvidence | None = None
    """None when the reference is unchanged, deleted or unreadable."""
    layout: appearance.Layout | None = None
    """Only the colour layout, for an unchanged reference indexed before layouts were."""
    size: tuple[int, int] = (0, 0)
    error: str | None = None


def embed(
    item: Examined, project: Project, embedder: Embedder, backgrounds: list[np.ndarray]
) -> Embedded:
    """Stage 3 for one file (on a worker): decode it and make what the diff says the
    index needs, its embedding (views, local features, layout) or its layout alone."""
    if item.error is not None or item.needs == "nothing":
        return Embedded(item.ref, item.digest, error=item.error)
    try:
        image = decode_image(
            item.data, item.ref.path.name, keep_alpha=True, min_side=REFERENCE_MIN_SIDE
        )
    except ImageRejected as exc:
        return Embedded(item.ref, item.digest, error=exc.message)
    if item.needs == "layout":
        return Embedded(item.ref, item.digest, layout=appearance.layout(image))
    evidence = embed_reference(project, embedder, image, item.digest, backgrounds)
    return Embedded(item.ref, item.digest, evidence, size=(image.shape[1], image.shape[0]))


@dataclass
class Writer:
    """Stage 4: writes what the workers embedded, new references in batches of one
    transaction each, and keeps the keys and vectors the index must take and drop."""

    store: Store
    known: Known
    vector_id: str
    summary: IndexSummary
    progress: Progress | None = None
    batch: list[Embedded] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)
    labels: set[str] = field(default_factory=set)
    """Labels some reference has (a reference of another makes a new class, told)."""

    def take(self, item: Embedded, batch_size: int) -> None:
        """Count or write one file."""
        if item.error is DELETED:
            self.summary.deleted += 1
        elif item.error is not None:
            self.summary.skipped.append((str(item.ref.path), item.error))
        elif item.evidence is None:
            self.summary.unchanged += 1
            self._unchanged(item)
        else:
            self.batch.append(item)
            if len(self.batch) >= batch_size:
                self.flush()
            return
        if self.progress:
            self.progress(1)

    def _unchanged(self, item: Embedded) -> None:
        row, ref = self.known.existing[str(item.ref.path)], item.ref
        with self.store.transaction():
            if item.layout is not None:
                self.store.put_layout(row.id, item.layout.to_bytes(), item.layout.aspect)
            if (row.label, row.taxonomy, row.rarity) != (ref.label, ref.taxonomy, ref.rarity):
                self.store.relabel(row.id, ref.label, ref.taxonomy, ref.rarity)
                self._tell_moved(row.id, row.label, ref.label, ref.taxonomy)

    def _tell_moved(self, row_id: int, old: str, label: str, taxonomy: str) -> None:
        """Tell of a reference that moved to another class (inside its transaction)."""
        if old == label:
            return
        event: contract.ReferencesEvent = {
            "type": "references",
            "action": "relabelled",
            "id": row_id,
            "label": label,
            "at": time.time(),
        }
        tell(self.store, event)
        if label not in self.labels:
            tell_added_class(self.store, label, taxonomy)
            self.labels.add(label)

    def flush(self) -> None:
        """Write the batch of new or changed references in one transaction."""
        if not self.batch:
            return
        with self.store.transaction():
            for item in self.batch:
                self._write(item)
        self.summary.embedded += len(self.batch)
        if self.progress:
            self.progress(len(self.batch))
        self.batch.clear()

    def _write(self, item: Embedded) -> None:
        assert item.evidence is not None
        store, ref = self.store, item.ref
        old = self.known.existing.get(str(ref.path))
        if old is not None and old.content_hash == item.digest:
            row_id = old.id
            store.relabel(row_id, ref.label, ref.taxonomy, ref.rarity)
            self._tell_moved(row_id, old.label, ref.label, ref.taxonomy)
        else:
            if old is not None:
                store.retire([old.id])
                self.retired.append(old.id)
                tell_removed(store, old.id, old.label)
            row_id = store.add_reference(
                path=str(ref.path),
                content_hash=item.digest,
                label=ref.label,
                taxonomy=ref.taxonomy,
                rarity=ref.rarity,
                source=str(ref.source),
                width=item.size[0],
                height=item.size[1],
            )
            tell_added(store, row_id, ref.label, ref.taxonomy, ref.label not in self.labels)
            self.labels.add(ref.label)
        item.evidence.save(store, row_id, self.vector_id, item.size)
        self.keys.append(row_id)
        self.vectors.append(item.evidence.vector)


def embed_live_references(
    project: Project,
    store: Store,
    embedder: Embedder,
    backgrounds: list[np.ndarray],
    summary: IndexSummary,
) -> list[tuple[int, np.ndarray]]:
    """Vectors, in the current space, of live references (added through the server)
    that have none there yet, and colour layouts for those stored before layouts were.
    They have no folder to rescan, so their stored image is embedded again."""
    live = [r for r in store.active_references() if r.source in LIVE_SOURCES]
    vector_id = reference_vector_id(project, embedder)
    have = store.embeddings([r.id for r in live], vector_id)
    have_layout = store.layout_ids()
    out = []
    for ref in live:
        if ref.id in have and ref.id in have_layout:
            continue
        try:
            image = load_image(Path(ref.path), keep_alpha=True)
        except ImageRejected as exc:
            summary.skipped.append((ref.path, exc.message))
            continue
        if ref.id in have:
            with store.transaction():
                lay = appearance.layout(image)
                store.put_layout(ref.id, lay.to_bytes(), lay.aspect)
            continue
        evidence = embed_reference(project, embedder, image, ref.content_hash, backgrounds)
        with store.transaction():
            evidence.save(store, ref.id, vector_id, (image.shape[1], image.shape[0]))
        summary.embedded += 1
        out.append((ref.id, evidence.vector))
    return out


def updated_index(
    project: Project,
    store: Store,
    embedder: Embedder,
    writer: Writer,
) -> VectorIndex:
    """Stage 5: the project's vector index with the writer's keys added and its retired
    ones removed; rebuilt from the stored embeddings when it is missing, damaged, of
    another model, or lacks an active reference the writer did not bring. Not saved."""
    try:
        index = open_or_none(project, embedder)
    except IdentifyError:  # another model, or damaged: the index is derived data
        index = None
    active = {r.id for r in store.active_references()}
    if index is None or any(k not in index for k in active - set(writer.keys)):
        writer.summary.rebuilt_index = project.index_path.exists()
        return rebuild_index(project, store, embedder)
    index.remove(writer.retired)
    if writer.keys:
        index.add(writer.keys, np.stack(writer.vectors))
    return index
