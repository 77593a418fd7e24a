"""Promotion of a separate taxonomy's labels into its references: which answers it
takes, and the picture each becomes a reference of. The server (``live.promotion``) and
``identify promote`` (``workflows.promote``) both follow these rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from server.engine.catalog.making import reference_bytes
from server.engine.catalog.store import AutoLabel, Store
from server.engine.errors import ConflictError, IdentifyError, NotFoundError
from server.engine.project.config import DEFAULT_TAXONOMY, Project, Taxonomy

MAX_PROMOTE = 1000
"""Most answers one promotion takes (the newest first)."""


def taxonomy_of(project: Project, name: str) -> Taxonomy:
    """A declared taxonomy (``default`` always is).

    Raises:
        NotFoundError: not declared.
    """
    if name != DEFAULT_TAXONOMY and name not in {t.name for t in project.config.taxonomies}:
        raise NotFoundError(f"no taxonomy {name[:100]!r}")
    return project.config.taxonomy(name)


def promotable(
    project: Project,
    store: Store,
    name: str,
    min_confidence: float | None = None,
    ids: Sequence[int] | None = None,
) -> list[AutoLabel]:
    """The answers a promotion takes: ``ids`` (answer ids) if given, else every one not
    yet promoted whose confidence is at least ``min_confidence`` (default: the
    taxonomy's ``promote_confidence``), and every reviewer's label; only those whose
    picture is still kept.

    Raises:
        NotFoundError: the taxonomy is not declared, or an id is not such an answer.
        ConflictError: a unified taxonomy (its labels are references already).
        IdentifyError: too many ids.
    """
    taxonomy = taxonomy_of(project, name)
    if taxonomy.mode != "separate":
        raise ConflictError(
            f"taxonomy {name!r} is unified: every label in it is a reference at once, "
            "so there is nothing to promote (set mode: separate to curate it)"
        )
    if ids is not None and len(ids) > MAX_PROMOTE:
        raise IdentifyError(f"at most {MAX_PROMOTE} answers at once")
    floor = taxonomy.promote_confidence if min_confidence is None else min_confidence
    rows, _ = store.auto_labels(
        name,
        MAX_PROMOTE,
        min_confidence=None if ids is not None else floor,
        ids=ids,
        unpromoted=True,
    )
    if ids is not None:
        missing = sorted(set(ids) - {r.id for r in rows})
        if missing:
            raise NotFoundError(
                f"answer {missing[0]} is not a labelled, unpromoted answer of {name!r} "
                "with its picture kept"
            )
    return rows


def picture(store: Store, label: AutoLabel) -> bytes:
    """What an answer becomes a reference of: a reviewed item's region (as a label in
    a unified taxonomy would make), or the auto-label's kept crop.

    Raises:
        NotFoundError: the picture is gone.
    """
    if label.item_id is not None:
        item = store.review_item(label.item_id)
        return reference_bytes(item, item.box, None)
    try:
        return Path(label.picture).read_bytes()
    except OSError:
        raise NotFoundError(f"the picture of answer {label.id} is gone") from None
