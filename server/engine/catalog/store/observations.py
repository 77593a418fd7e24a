"""Observations: every image or crop identified, its embedding, the decision, and (for a miss) its review item, written together."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server import contract
from server.engine.catalog.store.base import StoreBase, now_iso


def _jsonable(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass(frozen=True)
class QueueEntry:
    """Where a queued miss came from."""

    source: str
    taxonomy: str
    track_id: str | None = None
    box: Sequence[int] | None = None
    """Where the object is in the stored picture; None: the whole picture."""
    region: str = "whole"
    """``whole``, ``verified`` (the reference's geometry was found there) or ``doubtful``
    (only where the picture looked most like something known)."""
    region_path: str | None = None
    """The region at the resolution it came in, when the stored picture is too small."""
    reason: str | None = None
    """Why an accepted answer is queued (``audit``, ``low_confidence``); None: a miss,
    queued for the decision's own reason."""


@dataclass(frozen=True)
class Recorded:
    """Row ids written by ``Store.record``."""

    image_id: int
    observation_id: int
    review_id: int | None = None


class ObservationRows(StoreBase):
    """Identifications as they were made."""

    def record_observation(
        self,
        *,
        path: str,
        content_hash: str,
        width: int,
        height: int,
        model_id: str,
        embedding: np.ndarray,
        result: contract.Decided,
        kind: str = "query",
    ) -> int:
        """Store a query image (or crop), its embedding and the decision made about it."""
        return self.record(
            path=path,
            content_hash=content_hash,
            width=width,
            height=height,
            model_id=model_id,
            embedding=embedding,
            result=result,
            kind=kind,
        ).image_id

    def record(
        self,
        *,
        path: str,
        content_hash: str,
        width: int,
        height: int,
        model_id: str,
        embedding: np.ndarray,
        result: contract.Decided,
        kind: str = "query",
        queue: QueueEntry | None = None,
        provenance: Mapping[str, object] | None = None,
        taxonomy: str | None = None,
        decided: np.ndarray | None = None,
    ) -> Recorded:
        """Store an image, its embedding, the decision (with ``provenance``: what made
        it, and ``decided``: the vector it was decided on when that is not
        ``embedding``) and, with ``queue``, its review item.

        All rows are written in one transaction: a crash leaves all or none of them.
        """
        ts = now_iso()
        # Serialise first, then write the rows in one transaction with plain SQL:
        # sqlite-utils commits after each insert, which could leave an orphan image row.
        candidates = json.dumps(result["candidates"], default=_jsonable)
        bbox = json.dumps(result.get("bbox"), default=_jsonable)
        vector = np.asarray(embedding, np.float32).tobytes()
        conn = self.db.conn
        review_id: int | None = None
        with self.transaction():
            cur = conn.execute(
                "insert into images (kind, path, content_hash, width, height, source, status, "
                "created_at, updated_at) values (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
                [kind, path, content_hash, width, height, queue.source if queue else None, ts, ts],
            )
            image_id = int(cur.lastrowid or 0)
            conn.execute(
                "insert into embeddings (image_id, model_id, vector) values (?, ?, ?)",
                [image_id, model_id, vector],
            )
            cur = conn.execute(
                "insert into observations (image_id, model_id, label, score, margin, matched, "
                "reason, candidates, bbox, created_at, provenance, taxonomy, reference_id, "
                "decided_vector) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    image_id,
                    model_id,
                    result["label"],
                    float(result["score"]),
                    float(result["margin"]),
                    int(bool(result["matched"])),
                    result.get("reason", ""),
                    candidates,
                    bbox,
                    ts,
                    None if provenance is None else json.dumps(provenance, default=_jsonable),
                    taxonomy,
                    result.get("reference_id"),
                    None if decided is None else np.asarray(decided, np.float32).tobytes(),
                ],
            )
            observation_id = int(cur.lastrowid or 0)
            if queue is not None:
                review_id = self._queue(image_id, observation_id, result, queue, candidates, ts)
        return Recorded(image_id, observation_id, review_id)

    def _queue(
        self,
        image_id: int,
        observation_id: int,
        result: contract.Decided,
        queue: QueueEntry,
        candidates: str,
        ts: str,
    ) -> int:
        """``record``'s review row, inside its transaction; returns its id."""
        top = result["candidates"][0] if result["candidates"] else None
        cur = self.db.conn.execute(
            "insert into review (image_id, observation_id, reason, taxonomy, source, "
            "track_id, label, score, margin, candidates, status, created_at, box, "
            "region, region_path, matched_label) values "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)",
            [
                image_id,
                observation_id,
                queue.reason or result.get("reason", ""),
                queue.taxonomy,
                queue.source,
                queue.track_id,
                top["label"] if top else None,
                float(result["score"]),
                float(result["margin"]),
                candidates,
                ts,
                json.dumps(queue.box) if queue.box is not None else None,
                queue.region,
                queue.region_path,
                result["label"] if result["matched"] else None,
            ],
        )
        return int(cur.lastrowid or 0)

    def recent_unknowns(self, limit: int) -> tuple[int, int]:
        """Of the last ``limit`` observations: how many, and how many were unknown."""
        row = self.db.execute(
            "select count(*), coalesce(sum(matched = 0), 0) from"
            " (select matched from observations order by id desc limit ?)",
            [limit],
        ).fetchone()
        return int(row[0]), int(row[1])

    def recent_scores(self, limit: int) -> list[tuple[str | None, float, float]]:
        """The last ``limit`` observations: (best candidate's label, score, margin)."""
        rows = self.db.execute(
            "select candidates, score, margin from observations order by id desc limit ?",
            [limit],
        ).fetchall()
        out = []
        for candidates, score, margin in rows:
            top = json.loads(candidates or "[]")
            out.append((top[0]["label"] if top else None, float(score), float(margin)))
        return out

    def recent_wins(self, model_id: str, limit: int) -> tuple[list[int | None], np.ndarray]:
        """The last ``limit`` observations in one embedding space: the reference that won
        each (None: nothing was accepted) and its stored embedding, as rows (those of
        the most common dimension: a space holds one)."""
        rows = self.db.execute(
            "select o.matched, o.candidates, e.vector from observations o join embeddings e "
            "on e.image_id = o.image_id and e.model_id = o.model_id where o.model_id = ? "
            "order by o.id desc limit ?",
            [model_id, limit],
        ).fetchall()
        dims = Counter(len(r[2]) for r in rows)
        if not dims:
            return [], np.zeros((0, 0), np.float32)
        size = dims.most_common(1)[0][0]
        winners: list[int | None] = []
        vectors = []
        for matched, candidates, vector in rows:
            if len(vector) != size:
                continue
            top = json.loads(candidates or "[]") if matched else []
            winners.append(int(top[0]["reference_id"]) if top else None)
            vectors.append(np.frombuffer(vector, np.float32))
        return winners, np.stack(vectors)

    def observation_counts(self) -> tuple[int, int]:
        """Identifications recorded, and how many of them were accepted."""
        row = self.db.execute(
            "select count(*), coalesce(sum(matched), 0) from observations"
        ).fetchone()
        return int(row[0]), int(row[1])
