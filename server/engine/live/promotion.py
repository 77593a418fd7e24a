"""Separate taxonomies while serving: their auto-labels (every accepted answer, and
every reviewer's label, stored instead of made a reference), and promotion of those at
or above a confidence, or of chosen ones, into the references.

A promotion is a series of steps, one answer each, as an import is: ``plan`` (engine
thread), then per step ``prepare`` (a worker: decode and embed its picture) and
``commit`` (engine thread: the reference and the answer's mark, in one transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from server import contract
from server.engine.catalog.making import PreparedReference
from server.engine.catalog.store import AutoLabel
from server.engine.errors import IdentifyError
from server.engine.live.catalogue import Catalogue
from server.engine.live.context import Live
from server.engine.loop.promote import MAX_PROMOTE, picture, promotable, taxonomy_of


@dataclass(frozen=True)
class Promotion:
    """One answer to promote, checked."""

    label: AutoLabel


class Promoter:
    """Auto-labels and promotion of one open project."""

    def __init__(self, live: Live, catalogue: Catalogue) -> None:
        self.live = live
        self.catalogue = catalogue

    def labels(
        self,
        taxonomy: str,
        limit: int = 100,
        before: int | None = None,
        min_confidence: float | None = None,
    ) -> tuple[list[AutoLabel], int]:
        """A separate taxonomy's labelled answers, newest first.

        Raises:
            NotFoundError: the taxonomy is not declared.
            IdentifyError: a limit out of range.
        """
        taxonomy_of(self.live.project, taxonomy)
        if not 1 <= limit <= MAX_PROMOTE:
            raise IdentifyError(f"limit must be between 1 and {MAX_PROMOTE}")
        return self.live.store.auto_labels(taxonomy, limit, before, min_confidence)

    def plan(
        self, taxonomy: str, min_confidence: float | None = None, ids: Sequence[int] | None = None
    ) -> list[Promotion]:
        """The answers a promotion takes (see ``loop.promote.promotable``).

        Raises:
            NotFoundError: the taxonomy is not declared, or an id is not such an answer.
            ConflictError: a unified taxonomy.
            IdentifyError: too many ids.
        """
        live = self.live
        return [
            Promotion(r)
            for r in promotable(live.project, live.store, taxonomy, min_confidence, ids)
        ]

    def prepare(self, step: Promotion) -> PreparedReference:
        """Decode and embed the answer's picture (worker-safe).

        Raises:
            NotFoundError: its picture is gone.
            ImageRejected: the quality gate refuses it.
        """
        data = picture(self.live.store, step.label)
        return self.catalogue.prepare(data, step.label.label, step.label.taxonomy)

    def commit(self, step: Promotion, prepared: PreparedReference) -> contract.ReferenceAdded:
        """The reference, and the answer marked promoted, together (engine thread).

        Raises:
            ConflictError: promoted meanwhile (nothing is written).
        """
        answer = step.label.id
        return self.catalogue.commit(
            prepared,
            source="promote",
            also=lambda ref_id: self.live.store.mark_promoted(answer, ref_id),
        )
