"""Long runs over stored data: the files ``identify label`` has decided (by content, so
a second run skips them), and re-applications with their cursor (so one resumes where a
crash stopped it)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server import contract
from server.engine.catalog.store.base import StoreBase, now_iso
from server.engine.catalog.store.observations import _jsonable


@dataclass(frozen=True)
class LabelledObject:
    """One object of a labelled file, as it stands now."""

    path: str
    observation_id: int
    bbox: list[int] | None
    label: str | None
    """The reviewer's label, else the accepted one; None: unknown so far."""
    matched: bool
    score: float
    margin: float
    taxonomy: str | None
    review_id: int | None
    status: str
    """``auto`` (accepted, not queued), or the review item's status."""


@dataclass(frozen=True)
class Reapplication:
    """One re-application: where it stands."""

    id: int
    status: str
    """``running`` (or stopped by a crash, to be resumed), ``done``."""
    space: str
    cursor: int
    """The last observation id re-decided."""
    upto: int
    """The last observation id it covers (the newest when it started)."""
    counts: dict[str, int]
    started_at: str
    finished_at: str | None


@dataclass(frozen=True)
class StoredDecision:
    """An observation as re-application reads it."""

    id: int
    image_id: int
    vector: bytes
    """The vector it was decided on."""
    candidates: list[dict[str, Any]]
    label: str | None
    matched: bool
    bbox: list[int] | None
    provenance: dict[str, Any]
    path: str
    review_id: int | None
    review_status: str | None
    review_reason: str | None


class RunRows(StoreBase):
    """Labelled files and re-applications."""

    def labelled_hashes(self) -> set[str]:
        """The content hash of every file labelled so far."""
        return {r[0] for r in self.db.execute("select content_hash from labelled")}

    def labelled(self, digests: Iterable[str]) -> set[str]:
        """Those of ``digests`` already labelled."""
        wanted = list(dict.fromkeys(digests))
        out: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            rows = self.db.execute(
                f"select content_hash from labelled where content_hash in "
                f"({', '.join('?' * len(chunk))})",
                chunk,
            )
            out.update(r[0] for r in rows)
        return out

    def mark_labelled(
        self, digest: str, path: str, observations: Sequence[int], queued: int
    ) -> None:
        """Record a file as labelled, inside the caller's transaction (with its
        observations: a crash leaves both or neither)."""
        self._insert(
            "labelled",
            {
                "content_hash": digest,
                "path": path,
                "observations": json.dumps(list(observations)),
                "queued": queued,
                "labelled_at": now_iso(),
            },
            replace_on=("content_hash",),
        )

    def labelled_objects(self, digests: Sequence[str]) -> list[LabelledObject]:
        """Every object of the labelled files ``digests``, in their order, as decided
        now (after re-applications and reviews)."""
        out: list[LabelledObject] = []
        for digest in digests:
            row = self.db.execute(
                "select path, observations from labelled where content_hash = ?", [digest]
            ).fetchone()
            if row is None:
                continue
            for obs_id in json.loads(row[1]):
                found = self.db.execute(_OBJECT, [obs_id]).fetchone()
                if found is not None:
                    out.append(_labelled_object(row[0], found))
        return out

    def running_reapplication(self) -> Reapplication | None:
        """The re-application that has not finished (one a crash stopped), if any."""
        row = self.db.execute(
            f"select {_RUN_COLUMNS} from reapplications where status = 'running' "
            "order by id desc limit 1"
        ).fetchone()
        return None if row is None else _run(row)

    def last_reapplication(self) -> Reapplication | None:
        """The newest re-application."""
        row = self.db.execute(
            f"select {_RUN_COLUMNS} from reapplications order by id desc limit 1"
        ).fetchone()
        return None if row is None else _run(row)

    def start_reapplication(self, space: str) -> Reapplication:
        """A new re-application of every observation of ``space`` recorded so far."""
        upto = int(
            self.db.execute(
                "select coalesce(max(id), 0) from observations where model_id = ?", [space]
            ).fetchone()[0]
        )
        with self.transaction():
            run_id = self._insert(
                "reapplications",
                {
                    "status": "running",
                    "space": space,
                    "cursor": 0,
                    "upto": upto,
                    "counts": "{}",
                    "started_at": now_iso(),
                },
            )
        run = self.running_reapplication()
        assert run is not None and run.id == run_id
        return run

    def advance_reapplication(
        self, run_id: int, cursor: int, counts: Mapping[str, int], done: bool = False
    ) -> None:
        """Move a re-application's cursor, inside the caller's transaction (with the
        batch it re-decided)."""
        self.db.conn.execute(
            "update reapplications set cursor = ?, counts = ?, status = ?, finished_at = ? "
            "where id = ?",
            [
                cursor,
                json.dumps(dict(counts)),
                "done" if done else "running",
                now_iso() if done else None,
                run_id,
            ],
        )

    def stored_decisions(
        self, space: str, after: int, upto: int, limit: int
    ) -> list[StoredDecision]:
        """Observations of ``space`` with ids in (``after``, ``upto``], oldest first,
        with their stored embeddings."""
        rows = self.db.execute(
            "select o.id, o.image_id, coalesce(o.decided_vector, e.vector), o.candidates, "
            "o.label, o.matched, o.bbox, o.provenance, i.path, r.id, r.status, r.reason "
            "from observations o "
            "join embeddings e on e.image_id = o.image_id and e.model_id = o.model_id "
            "join images i on i.id = o.image_id "
            "left join review r on r.observation_id = o.id "
            "where o.model_id = ? and o.id > ? and o.id <= ? order by o.id limit ?",
            [space, after, upto, limit],
        ).fetchall()
        return [
            StoredDecision(
                int(r[0]),
                int(r[1]),
                r[2],
                json.loads(r[3] or "[]"),
                r[4],
                bool(r[5]),
                json.loads(r[6]) if r[6] and r[6] != "null" else None,
                json.loads(r[7]) if r[7] else {},
                str(r[8] or ""),
                r[9],
                r[10],
                r[11],
            )
            for r in rows
        ]

    def observations_in(self, space: str, after: int, upto: int) -> tuple[int, int]:
        """Observations of ``space`` with ids in (``after``, ``upto``], and those of
        every other space (which a re-application cannot re-decide)."""
        row = self.db.execute(
            "select coalesce(sum(model_id = ? and id > ? and id <= ?), 0), "
            "coalesce(sum(model_id != ?), 0) from observations",
            [space, after, upto, space],
        ).fetchone()
        return int(row[0]), int(row[1])

    def redecide(
        self,
        observation_id: int,
        result: contract.Decided,
        taxonomy: str | None,
        thresholds: tuple[float, float],
    ) -> None:
        """Replace an observation's decision (and the thresholds its provenance says
        it was decided at), inside the caller's transaction."""
        self.db.conn.execute(
            "update observations set label = ?, score = ?, margin = ?, matched = ?, "
            "reason = ?, candidates = ?, reference_id = ?, taxonomy = ?, "
            "provenance = json_set(coalesce(provenance, '{}'), '$.threshold', ?, "
            "'$.margin', ?, '$.reapplied_at', ?) where id = ?",
            [
                result["label"],
                float(result["score"]),
                float(result["margin"]),
                int(bool(result["matched"])),
                result.get("reason", ""),
                json.dumps(result["candidates"], default=_jsonable),
                result.get("reference_id"),
                taxonomy,
                round(thresholds[0], 4),
                round(thresholds[1], 4),
                now_iso(),
                observation_id,
            ],
        )


_RUN_COLUMNS = "id, status, space, cursor, upto, counts, started_at, finished_at"

_OBJECT = (
    "select o.id, o.bbox, case when a.id is not null then "
    "case when a.type in ('confirmed', 'corrected') then a.true_label end "
    "when o.matched = 1 then o.label end, "
    "o.matched, o.score, o.margin, o.taxonomy, r.id, coalesce(r.status, 'auto') "
    "from observations o left join review r on r.observation_id = o.id "
    "left join annotations a on a.review_id = r.id and a.type != 'missed' "
    "where o.id = ?"
)


def _labelled_object(path: str, r: tuple[Any, ...]) -> LabelledObject:
    return LabelledObject(
        path,
        int(r[0]),
        json.loads(r[1]) if r[1] and r[1] != "null" else None,
        r[2],
        bool(r[3]),
        float(r[4]),
        float(r[5]),
        r[6],
        r[7],
        str(r[8]),
    )


def _run(r: tuple[Any, ...]) -> Reapplication:
    return Reapplication(
        int(r[0]),
        str(r[1]),
        str(r[2]),
        int(r[3]),
        int(r[4]),
        json.loads(r[5] or "{}"),
        str(r[6]),
        r[7],
    )
