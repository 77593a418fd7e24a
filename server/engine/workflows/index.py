"""``identify index``: embed new or changed references, retire removed ones, save.

Incremental by content hash: a second run with nothing changed reads and hashes the
files but embeds nothing. Unreadable files are skipped and listed, never fatal. The
vector index is derived data: when it is missing, damaged or built with another model,
it is rebuilt from the embeddings stored in the database. The stages are in
``index_stages``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from server.engine.catalog.store import Store
from server.engine.catalog.vectors import reference_vector_id, view_backgrounds
from server.engine.errors import NoReferencesError
from server.engine.loop.outbox import tell_removed
from server.engine.project.config import Project
from server.engine.project.references import ReferenceFile
from server.engine.vision import threads
from server.engine.vision.embedders import Embedder, project_embedder
from server.engine.vision.pipeline_io import bounded_map
from server.engine.workflows.common import Progress, Stage, open_project, quiet, writer_lock
from server.engine.workflows.index_stages import (
    Embedded,
    IndexSummary,
    Known,
    Scan,
    Writer,
    diff,
    embed,
    embed_live_references,
    scan,
    updated_index,
)
from server.engine.workflows.preflight import preflight

__all__ = ["IndexRun", "IndexSummary", "build_index", "describe_skipped", "index_project"]


@dataclass(frozen=True)
class IndexRun:
    """What ``identify index`` did, and in which vector space."""

    project: Project
    summary: IndexSummary
    space_id: str
    device: str
    """Where the model ran (``model.device``, ``auto`` resolved)."""


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
    return IndexRun(project, summary, embedder.spec.space_id, embedder.device)


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
        index = updated_index(project, store, embedder, written)
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
) -> Writer:
    """Stages 2-4 over every file, then retire the references whose file is gone; the
    writer holds what the index must take and drop."""
    vector_id = reference_vector_id(project, embedder)
    aliases = store.aliases()
    files = [replace(f, label=aliases.get(f.label, f.label)) for f in files]
    known = Known.load(project, store, vector_id)
    backgrounds = view_backgrounds()
    writer = Writer(store, known, vector_id, summary, progress)
    writer.labels.update(r.label for r in store.active_references())
    batch_size = project.config.model.batch_size

    def prepare(ref: ReferenceFile) -> Embedded:
        return embed(diff(ref, known), project, embedder, backgrounds)

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
        for path, row in known.existing.items():
            if path not in seen:
                tell_removed(store, row.id, row.label)
    writer.retired.extend(gone)
    summary.retired = len(writer.retired)
    # After a change of vector space (a new head, another number of views) the
    # references added while serving need a vector in it too.
    for key, vec in embed_live_references(project, store, embedder, backgrounds, summary):
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
