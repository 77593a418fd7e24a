"""``identify index``: embed new or changed references, retire removed ones, save.

Incremental by content hash: a second run with nothing changed reads and hashes the
files but embeds nothing. Unreadable files are skipped and listed, never fatal. The
vector index is derived data: when it is missing, damaged or built with another model,
it is rebuilt from the embeddings stored in the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from server.engine.catalog.store import ReferenceRow, Store
from server.engine.catalog.vector_index import HnswParams, VectorIndex
from server.engine.errors import (
    IdentifyError,
    ImageRejected,
    IndexMismatchError,
    NoReferencesError,
    NotIndexedError,
)
from server.engine.project.config import Project
from server.engine.project.references import ReferenceFile, scan_references
from server.engine.vision import appearance, synth, threads
from server.engine.vision.embedders import Embedder, l2_normalise
from server.engine.vision.images import (
    content_hash,
    decode_image,
    flatten_alpha,
    load_image,
    read_image_bytes,
)
from server.engine.vision.localfeatures import FEATURE_KIND, LocalFeatures, extract
from server.engine.vision.pipeline_io import bounded_map

Progress = Callable[[int], None]
"""Called with the number of files just processed."""

VIEW_STRENGTH = 0.5
"""Harshness of the synthetic views averaged into a reference's vector (milder than
verify's queries: they describe the thing, not the worst camera)."""
VIEW_SIZE = (320, 320)
"""Frame size of the synthetic views: the crop is resized to the model's input anyway, and
a 320-pixel frame renders in a third of the time of a 448-pixel one."""
LIVE_SOURCES = frozenset({"api", "review"})
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
from a copy enlarged to 320). Decoding at a quarter instead of half the size
(the earlier 512) took JPEG indexing from 0.72-0.75x to 0.83-0.94x the bare model."""


def view_backgrounds() -> list[np.ndarray]:
    """The fixed, seeded backgrounds for reference views."""
    rng = np.random.default_rng(20261122)
    return [synth.fallback_background(rng, VIEW_SIZE) for _ in range(VIEW_BACKGROUNDS)]


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


def build_index(
    project: Project, embedder: Embedder, progress: Progress | None = None
) -> IndexSummary:
    """Bring the database and the vector index in step with the reference folders.

    Raises:
        ProjectConfigError: a reference folder is missing.
        NoReferencesError: no image in any reference folder, or none that could be read
            (nothing is then written; a first run leaves no database behind).
    """
    started = time.perf_counter()
    files, not_images = scan_references(project.config)
    summary = IndexSummary(files=len(files) + len(not_images))
    summary.skipped.extend((str(p), why) for p, why in not_images)
    model_id = reference_vector_id(project, embedder)
    rerank = project.config.rerank
    created = not project.db_path.exists()
    store = Store(project.db_path)
    try:
        aliases = store.aliases()
        files = [replace(f, label=aliases.get(f.label, f.label)) for f in files]
        deleted = store.deleted_files()
        existing = {r.path: r for r in store.active_references() if r.source not in LIVE_SOURCES}
        have_vec = set(store.embeddings([r.id for r in existing.values()], model_id))
        have_feat = store.feature_ids(FEATURE_KIND)
        have_layout = store.layout_ids()

        backgrounds = view_backgrounds()

        def is_current(row: ReferenceRow | None, digest: str) -> bool:
            return (
                row is not None
                and row.content_hash == digest
                and row.id in have_vec
                and (not rerank.enabled or row.id in have_feat)
            )

        def prepare(ref: ReferenceFile) -> _Prepared:
            try:
                data = read_image_bytes(ref.path)
                digest = content_hash(data)
                if (str(ref.path), digest) in deleted:
                    return _Prepared(ref, digest, error=DELETED)
                row = existing.get(str(ref.path))
                current = is_current(row, digest)
                if current and row is not None and row.id in have_layout:
                    return _Prepared(ref, digest)
                image = decode_image(
                    data, ref.path.name, keep_alpha=True, min_side=REFERENCE_MIN_SIDE
                )
            except ImageRejected as exc:
                return _Prepared(ref, "", error=exc.message)
            if current:  # indexed before colour layouts were: add just that
                return _Prepared(ref, digest, layout=appearance.layout(image))
            evidence = embed_reference(project, embedder, image, digest, backgrounds)
            return _Prepared(ref, digest, evidence, size=(image.shape[1], image.shape[0]))

        seen_paths: set[str] = set()
        batch: list[_Prepared] = []
        new_keys: list[int] = []
        new_vecs: list[np.ndarray] = []
        retired: list[int] = []

        def flush() -> None:
            if not batch:
                return
            with store.db.conn:
                for item in batch:
                    assert item.evidence is not None
                    old = existing.get(str(item.ref.path))
                    if old is not None and old.content_hash == item.digest:
                        row_id = old.id
                        store.relabel(row_id, item.ref.label, item.ref.taxonomy, item.ref.rarity)
                    else:
                        if old is not None:
                            store.retire([old.id])
                            retired.append(old.id)
                        row_id = store.add_reference(
                            path=str(item.ref.path),
                            content_hash=item.digest,
                            label=item.ref.label,
                            taxonomy=item.ref.taxonomy,
                            rarity=item.ref.rarity,
                            source=str(item.ref.source),
                            width=item.size[0],
                            height=item.size[1],
                        )
                    item.evidence.save(store, row_id, model_id, item.size)
                    new_keys.append(row_id)
                    new_vecs.append(item.evidence.vector)
            summary.embedded += len(batch)
            if progress:
                progress(len(batch))
            batch.clear()

        # Each worker decodes, renders the views of and embeds one reference at a time,
        # on its own share of the cores: on a CPU, two references at once on one thread
        # each beat one at a time on two threads (see ``threads``). This thread writes.
        with threads.worker_pool(project.config.server.workers, "index") as (pool, workers):
            window = max(2 * workers, project.config.model.batch_size)
            for item in bounded_map(pool, prepare, files, window):
                seen_paths.add(str(item.ref.path))
                if item.error is DELETED:
                    summary.deleted += 1
                    if progress:
                        progress(1)
                elif item.error is not None:
                    summary.skipped.append((str(item.ref.path), item.error))
                    if progress:
                        progress(1)
                elif item.evidence is None:
                    summary.unchanged += 1
                    row = existing[str(item.ref.path)]
                    with store.db.conn:
                        if item.layout is not None:
                            store.put_layout(row.id, item.layout.to_bytes(), item.layout.aspect)
                        if (row.label, row.taxonomy, row.rarity) != (
                            item.ref.label,
                            item.ref.taxonomy,
                            item.ref.rarity,
                        ):
                            store.relabel(
                                row.id, item.ref.label, item.ref.taxonomy, item.ref.rarity
                            )
                    if progress:
                        progress(1)
                else:
                    batch.append(item)
                    if len(batch) >= project.config.model.batch_size:
                        flush()
            flush()
        gone = [r.id for p, r in existing.items() if p not in seen_paths]
        if (
            summary.skipped
            and not summary.deleted
            and {r.id for r in store.active_references()} <= set(gone)
        ):
            raise NoReferencesError(nothing_readable(summary.skipped, project.file.parent))
        with store.db.conn:
            store.retire(gone)
        retired.extend(gone)
        summary.retired = len(retired)
        # References added while serving (API, review labels) have no folder to rescan,
        # but after a change of vector space (a new head, another number of views) they
        # need a vector in it too: embedded again from the image the server stored.
        for key, vec in _embed_live_references(project, store, embedder, backgrounds, summary):
            new_keys.append(key)
            new_vecs.append(vec)

        index = _updated_index(project, store, embedder, new_keys, new_vecs, retired, summary)
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
            with store.db.conn:
                lay = appearance.layout(image)
                store.put_layout(ref.id, lay.to_bytes(), lay.aspect)
            continue
        evidence = embed_reference(project, embedder, image, ref.content_hash, backgrounds)
        with store.db.conn:
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
