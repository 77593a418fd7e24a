"""Annotation rows: every decision about a prediction, with its payload and provenance
(see ``loop.annotations`` for what each type means)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from server.engine.catalog.store.base import StoreBase, now_iso
from server.engine.errors import IdentifyError, NotFoundError

MAX_PAGE = 1000
"""Most annotations one listing returns."""
FILTERS = ("type", "label", "taxonomy", "author", "item_id", "since", "until")
"""What a listing may filter on (``label`` takes a class or a level of its path)."""


@dataclass(frozen=True)
class AnnotationRow:
    """One stored annotation."""

    id: int
    type: str
    image_id: int
    observation_id: int | None
    review_id: int | None
    predicted_label: str | None
    """The answer given (None: unknown)."""
    candidate_label: str | None
    """The best candidate when it was answered."""
    true_label: str | None
    taxonomy: str | None
    box: list[int] | None
    """In the item's stored picture; None: the whole picture."""
    image_width: int | None
    image_height: int | None
    score: float | None
    margin: float | None
    reference_id: int | None
    """The reference this annotation made, if any."""
    author: str
    provenance: dict[str, Any]
    created_at: str
    updated_at: str


_COLUMNS = [f.name for f in fields(AnnotationRow)]
_SELECT = f"select {', '.join(_COLUMNS)} from annotations"


def _row(values: Sequence[Any]) -> AnnotationRow:
    row = dict(zip(_COLUMNS, values, strict=True))
    row["box"] = json.loads(row["box"]) if row["box"] else None
    row["provenance"] = json.loads(row["provenance"] or "{}")
    return AnnotationRow(**row)


class AnnotationRows(StoreBase):
    """Annotations: written inside the caller's transaction (with the review item and
    reference they go with), read with filters."""

    def insert_annotation(self, values: Mapping[str, Any]) -> int:
        """Write one annotation (``AnnotationRow``'s fields but ``id`` and the times);
        inside the caller's transaction. Returns its id."""
        ts = now_iso()
        row = {k: _stored(k, v) for k, v in values.items()}
        return self._insert("annotations", {**row, "created_at": ts, "updated_at": ts})

    def update_annotation(self, annotation_id: int, values: Mapping[str, Any]) -> None:
        """Change some of an annotation's fields; inside the caller's transaction."""
        sets = ", ".join(f"{k} = ?" for k in values)
        self.db.conn.execute(
            f"update annotations set {sets}, updated_at = ? where id = ?",
            [*(_stored(k, v) for k, v in values.items()), now_iso(), annotation_id],
        )

    def delete_annotation(self, annotation_id: int) -> None:
        """Remove an annotation; inside the caller's transaction."""
        self.db.conn.execute("delete from annotations where id = ?", [annotation_id])

    def annotation(self, annotation_id: int) -> AnnotationRow:
        """One annotation.

        Raises:
            NotFoundError: no such annotation.
        """
        row = self.db.execute(_SELECT + " where id = ?", [annotation_id]).fetchone()
        if row is None:
            raise NotFoundError(f"no annotation {annotation_id}")
        return _row(row)

    def item_annotation(self, review_id: int) -> AnnotationRow | None:
        """The annotation that decided a review item (not a missed object beside it)."""
        row = self.db.execute(
            _SELECT + " where review_id = ? and type != 'missed' order by id desc limit 1",
            [review_id],
        ).fetchone()
        return None if row is None else _row(row)

    def annotations(
        self, filters: Mapping[str, Any], limit: int = 100, before: int | None = None
    ) -> tuple[list[AnnotationRow], int]:
        """Annotations newest first and how many match in all (``before``: smaller ids).

        Raises:
            IdentifyError: an unknown filter or a limit out of range.
        """
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise IdentifyError(f"unknown filter {unknown[0]!r}; one of {', '.join(FILTERS)}")
        if not 1 <= limit <= MAX_PAGE:
            raise IdentifyError(f"limit must be between 1 and {MAX_PAGE}")
        where, args = [], []
        for key, value in filters.items():
            if value is None:
                continue
            if key == "label":
                where.append("(true_label = ? or true_label like ? escape '\\')")
                escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                args += [value, escaped + " > %"]
            elif key == "item_id":
                where.append("review_id = ?")
                args.append(value)
            elif key in ("since", "until"):
                where.append("created_at >= ?" if key == "since" else "created_at < ?")
                args.append(value)
            else:
                where.append(f"{key} = ?")
                args.append(value)
        clause = (" where " + " and ".join(where)) if where else ""
        total = int(
            self.db.execute("select count(*) from annotations" + clause, args).fetchone()[0]
        )
        if before is not None:
            clause += (" and" if where else " where") + " id < ?"
            args.append(before)
        rows = self.db.execute(
            _SELECT + clause + " order by id desc limit ?", [*args, limit]
        ).fetchall()
        return [_row(r) for r in rows], total

    def annotation_log(self, since: str | None = None) -> list[tuple[str, str, str | None]]:
        """(type, created_at, true or predicted label) of every annotation, oldest first
        (``since``: from that time)."""
        rows = self.db.execute(
            "select type, created_at, coalesce(true_label, predicted_label) from annotations "
            "where created_at >= ? order by id",
            [since or ""],
        ).fetchall()
        return [(str(t), str(at), label) for t, at, label in rows]

    def reviewed_outcomes(self) -> dict[str, tuple[int, int, int]]:
        """Per reason an item was queued for: (items queued, of them judged right or
        wrong, of those right). A judged item has a confirmed or corrected annotation;
        false positives (no object) and skips are left out."""
        out: dict[str, tuple[int, int, int]] = {}
        rows = self.db.execute(
            "select r.reason, count(*), "
            "sum(case when a.type in ('confirmed', 'corrected') then 1 else 0 end), "
            "sum(case when a.type = 'confirmed' then 1 else 0 end) "
            "from review r left join annotations a on a.review_id = r.id "
            "and a.type != 'missed' group by r.reason"
        )
        for reason, queued, judged, right in rows:
            out[str(reason)] = (int(queued), int(judged or 0), int(right or 0))
        return out

    def judged_answers(self) -> list[tuple[str, float, float, str | None, str | None, bool]]:
        """Every reviewed answer judged right or wrong, as re-deciding it at other
        thresholds needs: (reason it was queued for, score, margin, the best
        candidate's label, the true class, whether that class was indexed when the
        answer was given)."""
        rows = self.db.execute(
            "select r.reason, a.score, a.margin, a.candidate_label, a.predicted_label, "
            "a.type, a.true_label, r.created_at from annotations a "
            "join review r on r.id = a.review_id "
            "where a.type in ('confirmed', 'corrected') and a.score is not null"
        ).fetchall()
        out = []
        for reason, score, margin, top, predicted, kind, true_label, at in rows:
            if predicted is None:  # answered unknown
                truth, indexed = (None, False) if kind == "confirmed" else (true_label, True)
            elif kind == "confirmed":
                truth, indexed = predicted, True
            else:
                truth = true_label
                indexed = truth is not None and self.label_known_at(truth, at)
            out.append((str(reason), float(score), float(margin or 0.0), top, truth, indexed))
        return out

    def answer_counts(self) -> tuple[int, int]:
        """Answers recorded and of them accepted, leaving out those a reviewer said
        hold nothing (a false positive is no object, so no answer to be right about)."""
        row = self.db.execute(
            "select count(*), coalesce(sum(o.matched), 0) from observations o "
            "where not exists (select 1 from review r join annotations a on a.review_id = r.id "
            "where r.observation_id = o.id and a.type = 'false_positive')"
        ).fetchone()
        return int(row[0]), int(row[1])

    def latest_thresholds(self) -> tuple[float, float] | None:
        """The score and margin thresholds the newest recorded answer was decided at."""
        row = self.db.execute(
            "select provenance from observations where provenance is not null "
            "order by id desc limit 1"
        ).fetchone()
        made = json.loads(row[0]) if row else {}
        if made.get("threshold") is None or made.get("margin") is None:
            return None
        return float(made["threshold"]), float(made["margin"])

    def label_known_at(self, label: str, at: str) -> bool:
        """Whether a class had a reference (active or not now) at time ``at``."""
        row = self.db.execute(
            "select 1 from images where kind = 'reference' and label = ? and created_at <= ? "
            "limit 1",
            [label, at],
        ).fetchone()
        return row is not None

    def image_size(self, image_id: int) -> tuple[int, int]:
        """(width, height) of an image as it came.

        Raises:
            NotFoundError: no such image.
        """
        row = self.db.execute(
            "select width, height from images where id = ?", [image_id]
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no image {image_id}")
        return int(row[0] or 0), int(row[1] or 0)

    def observation_provenance(self, observation_id: int | None) -> dict[str, Any]:
        """What produced an observation's prediction (empty when it was not recorded)."""
        if observation_id is None:
            return {}
        row = self.db.execute(
            "select provenance from observations where id = ?", [observation_id]
        ).fetchone()
        return json.loads(row[0]) if row and row[0] else {}


def _stored(key: str, value: Any) -> Any:
    if key in ("box", "provenance"):
        return None if value is None else json.dumps(value)
    return value
