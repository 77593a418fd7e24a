"""The review queue's rows: misses waiting for a person, and what the person decided.

Rows are written by ``record`` (with the observation, in one transaction); these
methods read them and move them from ``pending`` to a final status exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from server import contract
from server.engine.catalog.store.base import StoreBase, now_iso
from server.engine.errors import ConflictError, IdentifyError, NotFoundError

FINAL: tuple[contract.FinalStatus, ...] = (
    "confirmed",
    "corrected",
    "false_positive",
    "skipped",
    "auto",
)
STATUSES: tuple[contract.ReviewStatus, ...] = ("pending", *FINAL)
"""``pending`` until a person acts; the others are final."""
REASONS = ("below_threshold", "low_margin", "empty_index", "audit", "low_confidence")
"""Why an item is queued: a miss (the first three), or an accepted answer checked too."""
MAX_PAGE = 500
"""Most items one listing returns."""


@dataclass(frozen=True)
class ReviewItem:
    """One queued miss."""

    id: int
    image_id: int
    reason: contract.QueueReason
    taxonomy: str | None
    source: str | None
    track_id: str | None
    label: str | None
    """The best candidate's label when it was queued (not accepted)."""
    score: float
    margin: float
    candidates: list[contract.Candidate]
    status: contract.ReviewStatus
    resolved_label: str | None
    reference_id: int | None
    created_at: str
    resolved_at: str | None
    box: list[int] | None
    """Where the object was found in the stored picture; None: the whole picture."""
    region: contract.Region | None
    """``whole``, ``verified`` or ``doubtful`` (see ``store.QueueEntry``)."""
    seen: int
    """Times this picture from this source came while the item waited."""
    region_path: str | None
    """The region at the resolution it came in (see ``store.QueueEntry``), or None."""
    observation_id: int | None
    accepted_label: str | None
    """The class that was accepted (an audited answer); None: the answer was unknown."""
    crop_path: str

    def to_json(self) -> contract.ReviewItem:
        """The API shape (the crop is fetched separately)."""
        return {
            "id": self.id,
            "reason": self.reason,
            "taxonomy": self.taxonomy,
            "source": self.source,
            "track_id": self.track_id,
            "label": self.label,
            "score": self.score,
            "margin": self.margin,
            "candidates": self.candidates,
            "status": self.status,
            "resolved_label": self.resolved_label,
            "reference_id": self.reference_id,
            "created_at": self.created_at,
            "resolved_at": self.resolved_at,
            "box": self.box,
            "region": self.region or "whole",
            "seen": self.seen,
            "accepted_label": self.accepted_label,
        }


_SELECT = (
    "select r.id, r.image_id, r.reason, r.taxonomy, r.source, r.track_id, r.label, r.score, "
    "r.margin, r.candidates, r.status, r.resolved_label, r.reference_id, r.created_at, "
    "r.resolved_at, r.box, r.region, r.seen, r.region_path, r.observation_id, "
    "r.matched_label, i.path "
    "from review r join images i on i.id = r.image_id"
)


_FIELDS = [f.name for f in fields(ReviewItem)]
"""Column order of ``_SELECT``."""


_STATUS: dict[object, contract.ReviewStatus] = {s: s for s in STATUSES}
"""A status read back from the database (which holds only ``STATUSES``), typed."""


def _item(row: tuple[Any, ...]) -> ReviewItem:
    values = dict(zip(_FIELDS, row, strict=True))
    values["candidates"] = json.loads(values["candidates"] or "[]")
    values["box"] = json.loads(values["box"]) if values["box"] else None
    return ReviewItem(**values)


class ReviewRows(StoreBase):
    """The review queue: listing, and moving items from pending to final and back."""

    def review_items(
        self,
        status: str = "pending",
        taxonomy: str | None = None,
        reason: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> tuple[list[ReviewItem], int]:
        """Items newest first, and how many match in all.

        ``before`` pages: items with a smaller id than it.
        """
        if status not in STATUSES:
            raise IdentifyError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        if reason is not None and reason not in REASONS:
            raise IdentifyError(f"unknown reason {reason!r}; one of {', '.join(REASONS)}")
        if not 1 <= limit <= MAX_PAGE:
            raise IdentifyError(f"limit must be between 1 and {MAX_PAGE}")
        where: list[str] = ["r.status = ?"]
        args: list[str] = [status]
        if taxonomy is not None:
            where.append("r.taxonomy = ?")
            args.append(taxonomy)
        if reason is not None:
            where.append("r.reason = ?")
            args.append(reason)
        clause = " where " + " and ".join(where)
        total = int(self.db.execute("select count(*) from review r" + clause, args).fetchone()[0])
        page_args: list[Any] = list(args)
        if before is not None:
            clause += " and r.id < ?"
            page_args.append(before)
        rows = self.db.execute(
            _SELECT + clause + " order by r.id desc limit ?", [*page_args, limit]
        ).fetchall()
        return [_item(r) for r in rows], total

    def review_item(self, item_id: int) -> ReviewItem:
        """One item by id.

        Raises:
            NotFoundError: no such item.
        """
        row = self.db.execute(_SELECT + " where r.id = ?", [item_id]).fetchone()
        if row is None:
            raise NotFoundError(f"no review item {item_id}")
        return _item(row)

    def resolve_item(
        self, item_id: int, status: str, label: str | None, reference_id: int | None
    ) -> ReviewItem:
        """Move a pending item to its final status, exactly once.

        Raises:
            NotFoundError: no such item.
            ConflictError: someone resolved it meanwhile.
        """
        with self.transaction():
            self.mark_resolved(item_id, status, label, reference_id)
        return self.review_item(item_id)

    def mark_resolved(
        self, item_id: int, status: str, label: str | None, reference_id: int | None
    ) -> None:
        """``resolve``'s write alone, inside the caller's transaction (so that a label
        and the reference it makes commit together, or neither).

        Raises:
            NotFoundError: no such item.
            ConflictError: it is not pending (the caller's transaction rolls back).
        """
        cur = self.db.conn.execute(
            "update review set status = ?, resolved_label = ?, reference_id = ?, "
            "resolved_at = ? where id = ? and status = 'pending'",
            [status, label, reference_id, now_iso(), item_id],
        )
        if cur.rowcount == 0:
            item = self.review_item(item_id)
            raise ConflictError(f"review item {item_id} is already {item.status}")

    def reopen_item(self, item_id: int) -> ReviewItem:
        """Put a resolved item back in the queue (an undo).

        Raises:
            NotFoundError: no such item.
            ConflictError: it is still pending.
        """
        with self.transaction():
            self.mark_reopened(item_id)
        return self.review_item(item_id)

    def mark_reopened(self, item_id: int) -> None:
        """``reopen_item``'s write alone, inside the caller's transaction.

        Raises:
            NotFoundError: no such item.
            ConflictError: it is still pending.
        """
        cur = self.db.conn.execute(
            "update review set status = 'pending', resolved_label = null, "
            "reference_id = null, resolved_at = null where id = ? and status != 'pending'",
            [item_id],
        )
        if cur.rowcount == 0:
            self.review_item(item_id)
            raise ConflictError(f"review item {item_id} is still pending")

    def restatus_item(
        self, item_id: int, status: str, label: str | None, reference_id: int | None
    ) -> None:
        """Change a decided item's outcome (its annotation changed); inside the caller's
        transaction."""
        self.db.conn.execute(
            "update review set status = ?, resolved_label = ?, reference_id = ? where id = ?",
            [status, label, reference_id, item_id],
        )

    def review_outcomes(
        self,
    ) -> list[tuple[str | None, float, float, str | None, str, str | None]]:
        """Every judged prediction: (taxonomy, score, margin, best candidate, annotation
        type, true label), audited accepts included; missed objects had no prediction."""
        rows = self.db.execute(
            "select taxonomy, score, margin, candidate_label, type, true_label from annotations "
            "where type != 'missed' and score is not null"
        )
        return [
            (tax, float(score), float(mar), top, str(kind), final)
            for tax, score, mar, top, kind, final in rows
        ]

    def pending_count(self) -> int:
        """Items waiting for a person."""
        return int(
            self.db.execute("select count(*) from review where status = 'pending'").fetchone()[0]
        )

    def review_counts(self) -> contract.QueueCounts:
        """Items per status."""
        out: contract.QueueCounts = {
            "pending": 0,
            "confirmed": 0,
            "corrected": 0,
            "false_positive": 0,
            "skipped": 0,
            "auto": 0,
        }
        for status, n in self.db.execute("select status, count(*) from review group by status"):
            out[_STATUS[status]] = int(n)
        return out

    def pending_duplicate(
        self, content_hash: str, source: str, box: Sequence[int] | None = None
    ) -> int | None:
        """The pending review item holding this very picture from this source, with this
        box (one picture holds several things), if any."""
        row = self.db.execute(
            "select r.id from review r join images i on i.id = r.image_id "
            "where i.content_hash = ? and r.source = ? and r.status = 'pending' "
            "and coalesce(r.box, '') = ? order by r.id limit 1",
            [content_hash, source, "" if box is None else json.dumps(list(box))],
        ).fetchone()
        return None if row is None else int(row[0])

    def seen_again(self, review_id: int) -> None:
        """Count one more sighting of a pending item's picture (a duplicate)."""
        with self.transaction():
            self.db.conn.execute("update review set seen = seen + 1 where id = ?", [review_id])
