"""``identify promote``: make references of a separate taxonomy's labels (answers at or
above a confidence, every reviewer's label, or chosen answers), with no server running
(a running server does the same through ``POST /api/taxonomies/{name}/promote``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from server.engine.catalog import making
from server.engine.catalog.media import Media
from server.engine.catalog.store import AutoLabel, Store
from server.engine.catalog.vectors import sync_index, view_backgrounds
from server.engine.errors import IdentifyError, NotIndexedError
from server.engine.loop.outbox import tell_added
from server.engine.loop.promote import picture, promotable
from server.engine.project.config import Project
from server.engine.vision.embedders import project_embedder
from server.engine.workflows.common import Stage, open_project, quiet, writer_lock


@dataclass
class Promoted:
    """What a promotion did."""

    project: Project
    references: list[tuple[int, int, str]] = field(default_factory=list)
    """(answer id, reference id, label) of each answer made a reference."""
    failed: list[tuple[int, str]] = field(default_factory=list)
    """(answer id, why) of each answer that could not be."""


def promote(
    ref: str,
    taxonomy: str,
    min_confidence: float | None = None,
    ids: Sequence[int] | None = None,
    stage: Stage = quiet,
) -> Promoted:
    """Under the writer lock: each answer's picture embedded and written as a reference
    with the answer marked promoted (one transaction each), then the index brought in
    step and saved.

    Raises:
        NotIndexedError: the project has no database yet.
        NotFoundError, ConflictError, IdentifyError: see ``loop.promote.promotable``;
            ConflictError also when a server holds the project.
    """
    project = open_project(ref)
    if not project.db_path.exists():
        raise NotIndexedError(f"{project.name} has no database yet (run identify index first)")
    out = Promoted(project)
    with writer_lock(project, "identify promote"):
        store = Store(project.db_path)
        try:
            rows = promotable(project, store, taxonomy, min_confidence, ids)
            if not rows:
                return out
            embedder = project_embedder(project.config)
            media, backgrounds = Media(project.data_dir, store), view_backgrounds()
            labels = {label for label, _, _ in store.class_counts()}
            with stage("promote", len(rows)) as advance:
                for row in rows:
                    try:
                        prepared = making.prepare(
                            project, embedder, picture(store, row), row.label, None, backgrounds
                        )
                        ref_id = making.write(
                            project,
                            embedder,
                            store,
                            media,
                            prepared,
                            row.taxonomy,
                            "promote",
                            also=partial(_mark, store, row, row.label not in labels),
                        )
                        labels.add(row.label)
                        out.references.append((row.id, ref_id, row.label))
                    except IdentifyError as exc:
                        out.failed.append((row.id, exc.message))
                    advance(1)
            index, _ = sync_index(project, store, embedder)
            index.save()
        finally:
            store.close()
    return out


def _mark(store: Store, answer: AutoLabel, new_class: bool, reference: int) -> None:
    """The answer marked promoted, and the reference told of, with the reference."""
    store.mark_promoted(answer.id, reference)
    tell_added(store, reference, answer.label, answer.taxonomy, new_class)
