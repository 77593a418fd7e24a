"""Groups of pending unknowns (clusters): each run, its clusters and where every item it
grouped lies on the 2-D map."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.engine.catalog.store.base import StoreBase, now_iso

OPEN = "open"
"""A cluster of the newest run nobody acted on yet."""


@dataclass(frozen=True)
class ClusterRow:
    """One cluster as stored."""

    id: int
    run_id: int
    size: int
    """Members not dropped."""
    medoid_item_id: int
    mean_similarity: float
    nearest_label: str | None
    nearest_score: float | None
    status: str
    """``open``, ``naming`` (a name is being applied), ``named``, ``merged``,
    ``dismissed``, ``superseded`` (a newer run grouped the queue again)."""
    label: str | None
    created_at: str


@dataclass(frozen=True)
class ClusterRunRow:
    """One clustering of the queue."""

    id: int
    created_at: str
    items: int
    clusters: int
    noise: int
    seconds: float
    dims: int
    """Dimensions the embeddings were reduced to before grouping."""


@dataclass(frozen=True)
class MapPoint:
    item_id: int
    cluster_id: int | None
    x: float
    y: float


_CLUSTER_COLS = (
    "c.id, c.run_id, (select count(*) from cluster_points p where p.cluster_id = c.id"
    " and p.dropped = 0), c.medoid_item_id, c.mean_similarity, c.nearest_label,"
    " c.nearest_score, c.status, c.label, c.created_at"
)


def _cluster(r: Any) -> ClusterRow:
    return ClusterRow(
        int(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4]), r[5], r[6], str(r[7]), r[8],
        str(r[9]),
    )  # fmt: skip


class ClusterRows(StoreBase):
    """The ``cluster_runs``, ``clusters`` and ``cluster_points`` tables."""

    def pending_unknowns(self, space: str, limit: int) -> tuple[list[int], np.ndarray]:
        """The newest ``limit`` pending review items that are misses (not audits of
        accepted answers) stored in vector space ``space``: their ids and the vectors
        they were decided on."""
        rows = self.db.execute(
            "select r.id, coalesce(o.decided_vector, e.vector) from review r "
            "join observations o on o.id = r.observation_id "
            "join embeddings e on e.image_id = o.image_id and e.model_id = o.model_id "
            "where r.status = 'pending' and r.reason not in ('audit', 'low_confidence') "
            "and o.model_id = ? and r.id not in (select p.item_id from cluster_points p "
            "join clusters c on c.id = p.cluster_id where c.status = 'naming' and p.dropped = 0) "
            "order by r.id desc limit ?",
            [space, limit],
        ).fetchall()
        ids = [int(r[0]) for r in rows]
        if not rows:
            return ids, np.zeros((0, 0), np.float32)
        return ids, np.stack([np.frombuffer(r[1], np.float32) for r in rows])

    def write_cluster_run(
        self,
        run: dict[str, float | int],
        clusters: Sequence[dict[str, object]],
        points: Sequence[tuple[int, int | None, float, float]],
    ) -> tuple[int, list[int]]:
        """Store a run, its clusters (``medoid_item_id``, ``mean_similarity``,
        ``nearest_label``, ``nearest_score``) and the map's points (item, the index of
        its cluster in ``clusters`` or None, x, y), inside the caller's transaction; the
        open clusters of earlier runs are superseded (one being named is not: its
        members were left out of the grouping). Returns the run id and the new
        clusters' ids, in order."""
        self.db.conn.execute("update clusters set status = 'superseded' where status = 'open'")
        run_id = self._insert("cluster_runs", {**run, "created_at": now_iso()})
        ids = []
        for c in clusters:
            ids.append(
                self._insert(
                    "clusters",
                    {
                        "run_id": run_id,
                        "medoid_item_id": c["medoid_item_id"],
                        "mean_similarity": c["mean_similarity"],
                        "nearest_label": c["nearest_label"],
                        "nearest_score": c["nearest_score"],
                        "status": OPEN,
                        "label": None,
                        "created_at": now_iso(),
                    },
                )
            )
        self.db.conn.executemany(
            "insert into cluster_points (run_id, item_id, cluster_id, x, y, dropped) "
            "values (?, ?, ?, ?, ?, 0)",
            [
                (run_id, item, None if number is None else ids[number], x, y)
                for item, number, x, y in points
            ],
        )
        return run_id, ids

    def latest_cluster_run(self) -> ClusterRunRow | None:
        """The newest run, if any."""
        r = self.db.execute(
            "select id, created_at, items, clusters, noise, seconds, dims from cluster_runs "
            "order by id desc limit 1"
        ).fetchone()
        if r is None:
            return None
        return ClusterRunRow(
            int(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]), float(r[5]), int(r[6])
        )

    def cluster_run_pending(self, run_id: int) -> int:
        """The queue's length when run ``run_id`` grouped it."""
        row = self.db.execute("select pending from cluster_runs where id = ?", [run_id]).fetchone()
        return int(row[0] or 0) if row else 0

    def clusters_of(self, run_id: int) -> list[ClusterRow]:
        """A run's clusters, largest first."""
        rows = self.db.execute(
            f"select {_CLUSTER_COLS} from clusters c where c.run_id = ? order by 3 desc, c.id",
            [run_id],
        ).fetchall()
        return [_cluster(r) for r in rows]

    def cluster(self, cluster_id: int) -> ClusterRow | None:
        """One cluster."""
        r = self.db.execute(
            f"select {_CLUSTER_COLS} from clusters c where c.id = ?", [cluster_id]
        ).fetchone()
        return None if r is None else _cluster(r)

    def cluster_members(self, cluster_id: int) -> list[int]:
        """Its items not dropped, in the order they were grouped."""
        rows = self.db.execute(
            "select item_id from cluster_points where cluster_id = ? and dropped = 0 "
            "order by rowid",
            [cluster_id],
        ).fetchall()
        return [int(r[0]) for r in rows]

    def map_points(self, run_id: int) -> list[MapPoint]:
        """Every item a run placed on the map (dropped members as noise)."""
        rows = self.db.execute(
            "select item_id, case when dropped = 1 then null else cluster_id end, x, y "
            "from cluster_points where run_id = ? order by rowid",
            [run_id],
        ).fetchall()
        return [MapPoint(int(r[0]), r[1], float(r[2]), float(r[3])) for r in rows]

    def drop_members(self, cluster_id: int, item_ids: Sequence[int]) -> int:
        """Take items out of a cluster (they stay in the queue); how many."""
        with self.transaction():
            cur = self.db.conn.execute(
                f"update cluster_points set dropped = 1 where cluster_id = ? and dropped = 0 "
                f"and item_id in ({', '.join('?' * len(item_ids))})",
                [cluster_id, *item_ids],
            )
        return int(cur.rowcount or 0)

    def set_cluster_status(
        self, cluster_id: int, status: str, label: str | None = None, expect: str | None = None
    ) -> bool:
        """Move a cluster to ``status`` (only from ``expect``, when given); whether it
        moved."""
        sql = "update clusters set status = ?, label = coalesce(?, label) where id = ?"
        args: list[object] = [status, label, cluster_id]
        if expect is not None:
            sql += " and status = ?"
            args.append(expect)
        with self.transaction():
            cur = self.db.conn.execute(sql, args)
        return bool(cur.rowcount)

    def reopen_naming(self) -> int:
        """Clusters left ``naming`` by a crash are open again; how many."""
        with self.transaction():
            cur = self.db.conn.execute(
                "update clusters set status = 'open' where status = 'naming'"
            )
        return int(cur.rowcount or 0)

    def pending_among(self, item_ids: Sequence[int]) -> set[int]:
        """Which of ``item_ids`` are still pending."""
        if not item_ids:
            return set()
        rows = self.db.execute(
            f"select id from review where status = 'pending' and id in "
            f"({', '.join('?' * len(item_ids))})",
            list(item_ids),
        ).fetchall()
        return {int(r[0]) for r in rows}
