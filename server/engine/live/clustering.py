"""Clusters of the pending unknowns, for a server (see ``loop.clusters``): grouped on
request or when the queue has grown, named as a new class or merged into a known one
(their members labelled through the review desk), members dropped, clusters
dismissed."""

from __future__ import annotations

import numpy as np

from server import contract
from server.engine.catalog.store import ClusterRow, MapPoint
from server.engine.errors import ConflictError, IdentifyError, NotFoundError
from server.engine.live.context import Live
from server.engine.loop import clusters
from server.engine.project.naming import clean_label

ACTIONABLE = clusters.ACTIONABLE


class ClusterDesk:
    """The clusters of one open project (engine thread, but for ``compute``)."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self._png: tuple[int, bytes] | None = None
        """The newest grouping's map, once drawn: (its run id, the PNG)."""
        live.store.reopen_naming()  # a naming a crash cut short can be done again

    @property
    def space(self) -> str:
        return self.live.embedder.spec.space_id

    def snapshot(self) -> tuple[list[int], np.ndarray]:
        """The pending unknowns to group: their ids and vectors."""
        cfg = self.live.project.config.clusters
        return self.live.store.pending_unknowns(self.space, cfg.max_items)

    def compute(self, item_ids: list[int], vectors: np.ndarray) -> clusters.Computed:
        """Group a snapshot (worker-safe: touches neither database nor index)."""
        return clusters.compute(
            item_ids, vectors, self.live.project.config.clusters.min_cluster_size
        )

    def store(self, computed: clusters.Computed) -> contract.Clusters:
        """Store a grouping and tell of its clusters; the clusters as they stand."""
        clusters.store_run(
            self.live.ident, computed, self.live.project.config.clusters, self.live.emit
        )
        return self.listing()

    def due(self) -> bool:
        """Whether the queue has grown enough to be grouped again."""
        return clusters.due(self.live.store, self.live.project.config.clusters, self.space)

    def listing(self, members: int | None = 6) -> contract.Clusters:
        """The newest grouping's clusters still to act on, largest first."""
        return clusters.listing(self.live.store, self.live.project.config.clusters, members)

    def get(self, cluster_id: int) -> contract.Cluster:
        """One cluster with all its members.

        Raises:
            NotFoundError: no such cluster.
        """
        return clusters.cluster_json(self._row(cluster_id), self.live.store, None)

    def map_points(self) -> list[contract.MapPointInfo]:
        """The newest grouping's map."""
        run = self.live.store.latest_cluster_run()
        if run is None:
            return []
        return [
            {
                "item_id": p.item_id,
                "cluster_id": p.cluster_id,
                "x": round(p.x, 5),
                "y": round(p.y, 5),
            }
            for p in self.live.store.map_points(run.id)
        ]

    def map_picture(self) -> tuple[int, bytes | None, list[MapPoint]]:
        """The newest grouping's id (0: none), its map as a PNG when drawn before, and
        otherwise its points, to be drawn on a worker (``draw_map``)."""
        run = self.live.store.latest_cluster_run()
        if run is None:
            return 0, None, []
        if self._png is not None and self._png[0] == run.id:
            return run.id, self._png[1], []
        return run.id, None, self.live.store.map_points(run.id)

    def keep_picture(self, run_id: int, png: bytes) -> None:
        """Keep a grouping's map, drawn once."""
        self._png = (run_id, png)

    def begin_naming(self, cluster_id: int, label: object, merge: bool) -> tuple[list[int], str]:
        """Check a name (a new class) or a merge (into a known one) and mark the cluster
        ``naming``: its members, to be labelled ``label``.

        Raises:
            NotFoundError: no such cluster; a merge into a class that does not exist.
            ConflictError: the cluster was named, merged or dismissed already, a newer
                grouping replaced it, some members were reviewed meanwhile, or a name
                that is a known class (merge into it instead).
            IdentifyError: a label that is not usable.
        """
        row = self._row(cluster_id)
        name = clean_label(label)
        if row.status != ACTIONABLE:
            raise ConflictError(f"cluster {cluster_id} is {row.status}, not open: nothing to do")
        known = {c for c, _, _ in self.live.store.class_counts()}
        if merge and name not in known:
            raise NotFoundError(f"no class {name!r} to merge cluster {cluster_id} into")
        if not merge and name in known:
            raise ConflictError(f"class {name!r} exists: merge the cluster into it instead")
        members = self.live.store.cluster_members(cluster_id)
        reviewed = sorted(set(members) - self.live.store.pending_among(members))
        if reviewed:
            raise ConflictError(
                f"{len(reviewed)} of cluster {cluster_id}'s members were reviewed meanwhile "
                f"(items {', '.join(map(str, reviewed[:10]))}): drop them or group again"
            )
        if not self.live.store.set_cluster_status(cluster_id, "naming", expect=ACTIONABLE):
            raise ConflictError(f"cluster {cluster_id} is being named already")
        return members, name

    def end_naming(
        self, cluster_id: int, label: str, merge: bool, labelled: list[int]
    ) -> contract.Cluster:
        """After its members were labelled (``labelled``: those that were): named (or
        merged) when every member was; else open again without the labelled ones, to
        be named again (or looked at)."""
        store = self.live.store
        members = store.cluster_members(cluster_id)
        if set(members) <= set(labelled):
            store.set_cluster_status(cluster_id, "merged" if merge else "named", label, "naming")
        else:
            if labelled:
                store.drop_members(cluster_id, labelled)
            store.set_cluster_status(cluster_id, ACTIONABLE, None, "naming")
        return self.get(cluster_id)

    def drop(self, cluster_id: int, item_ids: object) -> contract.Cluster:
        """Take members that do not belong out of a cluster (they stay in the queue).

        Raises:
            NotFoundError: no such cluster.
            ConflictError: it is not open.
            IdentifyError: ids that are not a list of its members.
        """
        row = self._row(cluster_id)
        if row.status != ACTIONABLE:
            raise ConflictError(f"cluster {cluster_id} is {row.status}, not open")
        if (
            not isinstance(item_ids, list)
            or not item_ids
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in item_ids)
        ):
            raise IdentifyError("'items' must list review item ids of the cluster's members")
        members = set(self.live.store.cluster_members(cluster_id))
        strangers = sorted(set(item_ids) - members)
        if strangers:
            raise IdentifyError(f"not members of cluster {cluster_id}: {strangers[:10]}")
        self.live.store.drop_members(cluster_id, list(item_ids))
        return self.get(cluster_id)

    def dismiss(self, cluster_id: int) -> contract.Cluster:
        """Hide a cluster (its members stay in the queue).

        Raises:
            NotFoundError: no such cluster.
            ConflictError: it is not open.
        """
        row = self._row(cluster_id)
        if not self.live.store.set_cluster_status(cluster_id, "dismissed", expect=ACTIONABLE):
            raise ConflictError(f"cluster {cluster_id} is {row.status}, not open")
        return self.get(cluster_id)

    def _row(self, cluster_id: int) -> ClusterRow:
        row = self.live.store.cluster(cluster_id)
        if row is None:
            raise NotFoundError(f"no cluster {cluster_id}")
        return row
