"""``identify index``: embed new or changed references, retire removed ones, save.

In stages, each testable alone: ``scan`` the folders, diff by content hash against the
store (``Known``, ``examine``), embed (``examine``, on workers), write (``_Writer``),
and sync the index.

Incremental by content hash: a second run with nothing changed reads and hashes the
files but embeds nothing. Unreadable files are skipped and listed, never fatal. The
vector index is derived data: when it is missing, damaged or built with another model,
it is rebuilt from the embeddings stored in the database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

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
    view_backgrounds,
)
from server.engine.errors import (
    IdentifyError,
    ImageRejected,
    NoReferencesError,
)
from server.engine.project.config import Project
from server.engine.project.references import ReferenceFile, scan_references
from server.engine.vision import appearance, threads
from server.engine.vision.embedders import Embedder, project_embedder
from server.engine.vision.images import (
    content_hash,
    decode_image,
    load_image,
    read_image_bytes,
)
from server.engine.vision.localfeatures import FEATURE_KIND
from server.engine.vision.pipeline_io import bounded_map
from server.engine.workflows.common import Progress, Stage, open_project, quiet, writer_lock
from server.engine.workflows.preflight import preflight


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

    @property
    def images_per_second(self) -> float:
        """Embedding throughput of this run."""
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


DELETED = "deleted as a reference through the server"

Scan = tuple[list[ReferenceFile], list[tuple[Path, str]]]
"""What ``scan`` found: reference files, and files skipped for not being images."""


def scan(project: Project) -> Scan:
    """Stage 1: the reference files in the project's folders (reads no image).

    Raises:
        ProjectConfigError: a reference folder is missing.
        NoReferencesError: no image file in any reference folder.
    """
    return scan_references(project.config)


@dataclass
class _Prepared:
    ref: ReferenceFile
    digest: str
    evidence: ReferenceEvidence | None = None
    """None when the reference is unchanged, deleted or unreadable."""
    layout: appearance.Layout | None = None
    """Only the colour layout, for an unchanged reference indexed before layouts were."""
    size: tuple[int, int] = (0, 0)
    error: str | None = None


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


def examine(
    ref: ReferenceFile,
    known: Known,
    project: Project,
    embedder: Embedder,
    backgrounds: list[np.ndarray],
) -> _Prepared:
    """Stages 2 and 3 for one file (on a worker): the diff by content hash, and the
    embedding of a new or changed reference. Reads the store's snapshot only."""
    try:
        data = read_image_bytes(ref.path)
        digest = content_hash(data)
        if (str(ref.path), digest) in known.deleted:
            return _Prepared(ref, digest, error=DELETED)
        row = known.existing.get(str(ref.path))
        current = known.is_current(row, digest)
        if current and row is not None and row.id in known.with_layout:
            return _Prepared(ref, digest)
        image = decode_image(data, ref.path.name, keep_alpha=True, min_side=REFERENCE_MIN_SIDE)
    except ImageRejected as exc:
        return _Prepared(ref, "", error=exc.message)
    if current:  # indexed before colour layouts were: add just that
        return _Prepared(ref, digest, layout=appearance.layout(image))
    evidence = embed_reference(project, embedder, image, digest, backgrounds)
    return _Prepared(ref, digest, evidence, size=(image.shape[1], image.shape[0]))


@dataclass
class _Writer:
    """Stage 4: writes what the workers prepared, new references in batches of one
    transaction each, and keeps the keys and vectors the index must take."""

    store: Store
    known: Known
    vector_id: str
    summary: IndexSummary
    progress: Progress | None
    batch: list[_Prepared] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)

    def take(self, item: _Prepared, batch_size: int) -> None:
        """Count or write one prepared file."""
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

    def _unchanged(self, item: _Prepared) -> None:
        row, ref = self.known.existing[str(item.ref.path)], item.ref
        with self.store.transaction():
            if item.layout is not None:
                self.store.put_layout(row.id, item.layout.to_bytes(), item.layout.aspect)
            if (row.label, row.taxonomy, row.rarity) != (ref.label, ref.taxonomy, ref.rarity):
                self.store.relabel(row.id, ref.label, ref.taxonomy, ref.rarity)

    def flush(self) -> None:
        """Write the batch of new or changed references in one transaction."""
        if not self.batch:
            return
        store = self.store
        with store.transaction():
            for item in self.batch:
                assert item.evidence is not None
                ref, old = item.ref, self.known.existing.get(str(item.ref.path))
                if old is not None and old.content_hash == item.digest:
                    row_id = old.id
                    store.relabel(row_id, ref.label, ref.taxonomy, ref.rarity)
                else:
                    if old is not None:
                        store.retire([old.id])
                        self.retired.append(old.id)
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
                item.evidence.save(store, row_id, self.vector_id, item.size)
                self.keys.append(row_id)
                self.vectors.append(item.evidence.vector)
        self.summary.embedded += len(self.batch)
        if self.progress:
            self.progress(len(self.batch))
        self.batch.clear()


@dataclass(frozen=True)
class IndexRun:
    """What ``identify index`` did, and in which vector space."""

    project: Project
    summary: IndexSummary
    space_id: str


def index_project(ref: str, stage: Stage = quiet) -> IndexRun:
    """``identify index``: load and check the project, then ``build_index`` under the
    writer lock, scanning the folders once (the progress bar counts that scan).

    Raises:
        ProjectConfigError, ModelUnavailableError, NoReferencesError: see ``preflight``
            and ``build_index``.
        ConflictError: another process holds the project (a running server).
    """
    project = open_project(ref)
    preflight(project, references=True)
    embedder = project_embedder(project.config)
    scanned = scan(project)
    with writer_lock(project, "identify index"), stage("embedding", len(scanned[0])) as update:
        summary = build_index(project, embedder, update, scanned)
    return IndexRun(project, summary, embedder.spec.space_id)


def build_index(
    project: Project,
    embedder: Embedder,
    progress: Progress | None = None,
    scanned: Scan | None = None,
) -> IndexSummary:
    """Bring the database and the vector index in step with the reference folders:
    scan (unless ``scanned`` is given), diff by content hash, embed, write, sync the
    index.

    Raises:
        ProjectConfigError: a reference folder is missing.
        NoReferencesError: no image in any reference folder, or none that could be read
            (nothing is then written; a first run leaves no database behind).
    """
    started = time.perf_counter()
    files, not_images = scanned if scanned is not None else scan(project)
    summary = IndexSummary(files=len(files) + len(not_images))
    summary.skipped.extend((str(p), why) for p, why in not_images)
    created = not project.db_path.exists()
    store = Store(project.db_path)
    try:
        written = _write_references(project, store, embedder, files, summary, progress)
        # Stage 5: the index, in step with what was written (or rebuilt), saved.
        index = _updated_index(
            project, store, embedder, written.keys, written.vectors, written.retired, summary
        )
        index.save()
        summary.index_size = len(index)
        summary.classes = len({r.label for r in store.active_references()})
    except NoReferencesError:
        store.close()
        if created:  # a first run that found nothing to index leaves nothing behind
            for suffix in ("", "-wal", "-shm"):
                Path(f"{project.db_path}{suffix}").unlink(missing_ok=True)
        raise
    finally:
        store.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _write_references(
    project: Project,
    store: Store,
    embedder: Embedder,
    files: list[ReferenceFile],
    summary: IndexSummary,
    progress: Progress | None,
) -> _Writer:
    """Stages 2-4 over every file, then retire the references whose file is gone; the
    writer holds what the index must take and drop."""
    vector_id = reference_vector_id(project, embedder)
    aliases = store.aliases()
    files = [replace(f, label=aliases.get(f.label, f.label)) for f in files]
    known = Known.load(project, store, vector_id)
    backgrounds = view_backgrounds()
    writer = _Writer(store, known, vector_id, summary, progress)
    batch_size = project.config.model.batch_size

    def prepare(ref: ReferenceFile) -> _Prepared:
        return examine(ref, known, project, embedder, backgrounds)

    # Each worker decodes, renders the views of and embeds one reference at a time,
    # on its own share of the cores: on a CPU, two references at once on one thread
    # each beat one at a time on two threads (see ``threads``). This thread writes.
    seen: set[str] = set()
    with threads.worker_pool(project.config.server.workers, "index") as (pool, workers):
        for item in bounded_map(pool, prepare, files, max(2 * workers, batch_size)):
            seen.add(str(item.ref.path))
            writer.take(item, batch_size)
        writer.flush()
    gone = [r.id for p, r in known.existing.items() if p not in seen]
    if (
        summary.skipped
        and not summary.deleted
        and {r.id for r in store.active_references()} <= set(gone)
    ):
        raise NoReferencesError(nothing_readable(summary.skipped, project.file.parent))
    with store.transaction():
        store.retire(gone)
    writer.retired.extend(gone)
    summary.retired = len(writer.retired)
    # References added while serving (API, review labels) have no folder to rescan,
    # but after a change of vector space (a new head, another number of views) they
    # need a vector in it too: embedded again from the image the server stored.
    for key, vec in _embed_live_references(project, store, embedder, backgrounds, summary):
        writer.keys.append(key)
        writer.vectors.append(vec)
    return writer


def nothing_readable(
    skipped: list[tuple[str, str]], root: Path | None = None, shown: int = 5
) -> str:
    """The one-line error when every reference image was skipped."""
    lines = describe_skipped(skipped, root)
    more = f"; and {len(lines) - shown} more" if len(lines) > shown else ""
    return (
        f"no reference image could be read ({len(lines)} file(s) skipped: "
        f"{'; '.join(lines[:shown])}{more})"
    )


def _embed_live_references(
    project: Project,
    store: Store,
    embedder: Embedder,
    backgrounds: list[np.ndarray],
    summary: IndexSummary,
) -> list[tuple[int, np.ndarray]]:
    """Vectors, in the current space, of live references that have none there yet (and
    colour layouts for those stored before layouts were)."""
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


def _updated_index(
    project: Project,
    store: Store,
    embedder: Embedder,
    keys: list[int],
    vecs: list[np.ndarray],
    retired: list[int],
    summary: IndexSummary,
) -> VectorIndex:
    try:
        index = open_or_none(project, embedder)
    except IdentifyError:
        # Another model, or damaged: the index is derived data, rebuild it.
        index = None
    active = {r.id for r in store.active_references()}
    if index is None or any(k not in index for k in active - set(keys)):
        summary.rebuilt_index = project.index_path.exists()
        return rebuild_index(project, store, embedder)
    index.remove(retired)
    if keys:
        index.add(keys, np.stack(vecs))
    return index


def describe_skipped(skipped: list[tuple[str, str]], root: Path | None = None) -> list[str]:
    """Lines for the summary: ``path: reason``."""
    lines = []
    for path, why in skipped:
        shown = path
        if root is not None:
            try:
                shown = str(Path(path).relative_to(root))
            except ValueError:
                pass
        lines.append(f"{shown}: {why}")
    return lines
