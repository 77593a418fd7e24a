"""Auto-labels of separate taxonomies: each answer as it was decided (its label,
confidence, the reference it matched, the model), or a reviewer's label for it, and the
reference a promotion made of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.engine.catalog.store.base import StoreBase
from server.engine.errors import ConflictError

_LABELLED = (
    "select o.id, case when a.id is not null then "
    "case when a.type in ('confirmed', 'corrected') then a.true_label end "
    "when r.status = 'pending' then null "
    "when o.matched = 1 then o.label end as label, "
    "o.matched, o.score as confidence, "
    "o.reference_id, o.taxonomy, o.model_id, a.id is not null as reviewed, r.id as item_id, "
    "o.promoted_id, i.path, o.created_at from observations o "
    "join images i on i.id = o.image_id "
    "left join review r on r.observation_id = o.id "
    "left join annotations a on a.review_id = r.id and a.type != 'missed' "
    "where o.taxonomy = ?"
)
"""Every answer of a taxonomy with the label it carries: a reviewer's when one judged
it (none when the reviewer said it is no known class, or nothing there), else the
accepted one unless it waits for a person (an audit); answers with no label are left
out by the callers."""


@dataclass(frozen=True)
class AutoLabel:
    """One labelled answer of a separate taxonomy."""

    id: int
    """The observation's id (what ``promote`` takes)."""
    label: str
    matched: bool
    confidence: float
    """The answer's score."""
    source_reference_id: int | None
    """The reference the answer matched (None: it was unknown and a reviewer named it)."""
    taxonomy: str
    model: str
    """The vector space it was decided in."""
    reviewed: bool
    item_id: int | None
    promoted_id: int | None
    """The reference its promotion made, if any."""
    picture: str
    """Its kept picture ('' when gone)."""
    created_at: str


class LabelRows(StoreBase):
    """Auto-labels and their promotion."""

    def auto_labels(
        self,
        taxonomy: str,
        limit: int,
        before: int | None = None,
        min_confidence: float | None = None,
        ids: Sequence[int] | None = None,
        unpromoted: bool = False,
    ) -> tuple[list[AutoLabel], int]:
        """Labelled answers of ``taxonomy``, newest first, and how many match in all;
        ``min_confidence`` keeps those scoring at least it, and every reviewer's label (a
        person's word is worth more than any score)."""
        where, args = ["label is not null"], [taxonomy]
        extra: list[Any] = []
        if min_confidence is not None:
            where.append("(reviewed or confidence >= ?)")
            extra.append(min_confidence)
        if ids is not None:
            where.append(f"id in ({', '.join('?' * len(ids)) or 'null'})")
            extra += [int(i) for i in ids]
        if unpromoted:
            where.append("promoted_id is null and path != ''")
        query = f"select * from ({_LABELLED}) where " + " and ".join(where)
        total = int(
            self.db.execute(f"select count(*) from ({query})", [*args, *extra]).fetchone()[0]
        )
        if before is not None:
            query += " and id < ?"
            extra.append(before)
        rows = self.db.execute(query + " order by id desc limit ?", [*args, *extra, limit])
        return [
            AutoLabel(
                int(r[0]),
                str(r[1]),
                bool(r[2]),
                float(r[3]),
                r[4],
                str(r[5]),
                str(r[6]),
                bool(r[7]),
                r[8],
                r[9],
                str(r[10] or ""),
                str(r[11]),
            )
            for r in rows.fetchall()
        ], total

    def mark_promoted(self, observation_id: int, reference_id: int) -> None:
        """Record the reference a promotion made; inside the caller's transaction.

        Raises:
            ConflictError: it was promoted meanwhile (the caller's transaction rolls
                back, so no second reference is made).
        """
        cur = self.db.conn.execute(
            "update observations set promoted_id = ? where id = ? and promoted_id is null",
            [reference_id, observation_id],
        )
        if cur.rowcount == 0:
            raise ConflictError(f"answer {observation_id} is already promoted")
