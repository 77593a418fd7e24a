"""Groups of pending unknowns: things nobody indexed yet, seen many times, shown as one
group to be named once.

The pending misses' stored vectors (the ones they were decided on) are unit vectors, so
the chord between two of them (``sqrt(2 - 2 cos)``) orders pairs as their cosine does:
HDBSCAN (scikit-learn's) groups them by euclidean distance after a PCA that keeps the
directions holding ``KEEP_VARIANCE`` of the variance, at most ``MAX_DIMS`` of them
(HDBSCAN's neighbour search is what costs, and it grows with the dimensions: 10,000
items of 512 dimensions took 400 s unreduced, 17 s at 32; see RESULTS.md, clusters).
Items alike in fewer than ``min_cluster_size`` are left out (noise), never forced into
a group.

Each cluster has its size, a medoid (the member most like the others, by mean cosine),
its members' mean pairwise cosine, and the nearest known class: the one whose reference
is nearest the members' mean direction, with that cosine. The 2-D map is the first two
principal components of every item grouped.
"""

from __future__ import annotations

import time
import typing
from dataclasses import dataclass

import numpy as np

from server import contract
from server.engine.catalog.store import ClusterRow, Store
from server.engine.decide.decision import aggregate
from server.engine.decide.identifier import Identifier
from server.engine.loop.outbox import EventSink, tell
from server.engine.project.outreach import ClustersConfig

ACTIONABLE = "open"
"""The status of a cluster a person may still act on."""
KEEP_VARIANCE = 0.9
MAX_DIMS = 32
MIN_SILHOUETTE = 0.25
"""A group whose mean silhouette is below this is not kept: Kaufman and Rousseeuw's
line under which "no substantial structure has been found"."""


@dataclass(frozen=True)
class Grouping:
    """What HDBSCAN made of a set of vectors."""

    labels: np.ndarray
    """Cluster number per item, -1 for noise."""
    xy: np.ndarray
    """The 2-D map, per item."""
    dims: int


def reduce(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The vectors in the principal directions that hold ``KEEP_VARIANCE`` of their
    variance (at most ``MAX_DIMS``), and the first two (the map)."""
    centred = vectors - vectors.mean(axis=0)
    # The right singular vectors of the centred data are its principal directions.
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    share = np.cumsum(s**2) / max(float((s**2).sum()), 1e-12)
    wanted = int(np.searchsorted(share, KEEP_VARIANCE)) + 1
    dims = min(MAX_DIMS, max(2, wanted), len(s))
    projected = centred @ vt[:dims].T
    xy = projected[:, :2] if dims >= 2 else np.zeros((len(vectors), 2))
    return projected, xy


def group(vectors: np.ndarray, min_cluster_size: int) -> Grouping:
    """Group unit vectors (see the module docstring): HDBSCAN as scikit-learn runs it;
    when it finds no group (it will not call the whole set one group), once more
    allowing a single group, so that a queue holding mostly one new thing shows it. A
    group is kept only when its members are alike beyond chance (see ``silhouette``)."""
    from sklearn.cluster import HDBSCAN  # lazy: scikit-learn loads in about a second

    n = len(vectors)
    if n < min_cluster_size:
        return Grouping(np.full(n, -1), np.zeros((n, 2)), 0)
    reduced, xy = reduce(vectors.astype(np.float64))
    labels = np.asarray(HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit(reduced).labels_)
    if labels.max() < 0:
        single = HDBSCAN(min_cluster_size=min_cluster_size, allow_single_cluster=True, copy=True)
        labels = np.asarray(single.fit(reduced).labels_)
    labels = absorb(vectors, labels)
    for number in sorted({int(v) for v in labels if v >= 0}):
        members = labels == number
        if silhouette(vectors, members) < MIN_SILHOUETTE:
            labels[members] = -1
    return Grouping(labels, xy, reduced.shape[1])


def absorb(vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """HDBSCAN keeps a group's densest core: on a blob of views of one thing, alike
    everywhere, points fall off it one by one as the density rises and the core that
    lasts wins, the rest called noise. So an ungrouped item as near a group's mean
    direction as that group's farthest member is to the mean of the others joins it
    (the nearest such group)."""
    numbers = sorted({int(v) for v in labels if v >= 0})
    if not numbers:
        return labels
    best = np.full(len(vectors), -np.inf)
    out = labels.copy()
    for number in numbers:
        members = labels == number
        total = vectors[members].sum(axis=0)
        near = vectors @ (total / max(float(np.linalg.norm(total)), 1e-12))
        # A member is judged against the others' mean (it is not in its own).
        inside = vectors[members]
        rest = total[None, :] - inside
        own = (inside * rest).sum(axis=1) / np.maximum(np.linalg.norm(rest, axis=1), 1e-12)
        joins = (labels < 0) & (near >= own.min()) & (near > best)
        out[joins], best[joins] = number, near[joins]
    return out


def silhouette(vectors: np.ndarray, members: np.ndarray) -> float:
    """A group's mean silhouette in cosine distance, the rest of the queue as "the
    others": per member, (b - a) / max(a, b) with ``a`` its mean distance to the other
    members and ``b`` to the non-members. 1: tight and apart; about 0: no more alike
    to each other than to the rest (HDBSCAN finds denser spots even in structureless
    data: random directions give groups near 0). A group with no one outside it is
    judged apart from nothing, so it stands (1)."""
    inside, outside = vectors[members], vectors[~members]
    m = len(inside)
    if not len(outside):
        return 1.0
    within = inside @ inside.T
    a = 1.0 - (within.sum(axis=1) - np.diag(within)) / max(1, m - 1)
    b = 1.0 - (inside @ outside.T).mean(axis=1)
    return float(np.mean((b - a) / np.maximum(np.maximum(a, b), 1e-12)))


@dataclass(frozen=True)
class Group:
    """One group HDBSCAN found, described."""

    number: int
    members: np.ndarray
    """Indices into the snapshot."""
    medoid_item_id: int
    mean_similarity: float
    direction: np.ndarray
    """The members' mean, a unit vector."""


@dataclass(frozen=True)
class Computed:
    """A grouping of a snapshot of the queue, before it is stored."""

    item_ids: list[int]
    grouping: Grouping
    clusters: list[Group]
    seconds: float


def compute(item_ids: list[int], vectors: np.ndarray, min_cluster_size: int) -> Computed:
    """Group a snapshot of the queue and describe each group (no database, no index:
    it may run on a worker while identification goes on)."""
    started = time.perf_counter()
    grouping = group(vectors, min_cluster_size)
    clusters = []
    for n in sorted({int(n) for n in grouping.labels if n >= 0}):
        members = np.flatnonzero(grouping.labels == n)
        x = vectors[members]
        sims = x @ x.T
        mean_to_others = (sims.sum(axis=1) - np.diag(sims)) / max(1, len(x) - 1)
        direction = x.mean(axis=0)
        clusters.append(
            Group(
                n,
                members,
                item_ids[int(members[int(np.argmax(mean_to_others))])],
                round(float(mean_to_others.mean()), 4),
                direction / max(float(np.linalg.norm(direction)), 1e-12),
            )
        )
    return Computed(item_ids, grouping, clusters, time.perf_counter() - started)


def nearest(ident: Identifier, direction: np.ndarray) -> tuple[str | None, float | None]:
    """The known class whose reference is nearest ``direction``, and that cosine."""
    if not len(ident.index):
        return None, None
    top_k = ident.project.config.index.top_k
    keys, scores = ident.index.search(direction[None, :].astype(np.float32), top_k)
    ranked = aggregate(keys[0], scores[0], ident.labels)
    return (ranked[0].label, round(ranked[0].cosine, 4)) if ranked else (None, None)


def store_run(
    ident: Identifier, computed: Computed, cfg: ClustersConfig, sink: EventSink | None = None
) -> int:
    """Store a grouping (the open clusters of earlier runs are superseded; members
    reviewed since the snapshot are left out), telling of each cluster found; its id."""
    store = ident.store
    still = store.pending_among(computed.item_ids)
    order: dict[int, int] = {}
    clusters: list[dict[str, object]] = []
    for g in computed.clusters:
        if g.medoid_item_id not in still:
            continue
        order[g.number] = len(clusters)
        label, score = nearest(ident, g.direction)
        clusters.append(
            {
                "medoid_item_id": g.medoid_item_id,
                "mean_similarity": g.mean_similarity,
                "nearest_label": label,
                "nearest_score": score,
            }
        )
    points = [
        (item, order.get(int(n)), float(xy[0]), float(xy[1]))
        for item, n, xy in zip(
            computed.item_ids, computed.grouping.labels, computed.grouping.xy, strict=True
        )
        if item in still
    ]
    run = {
        "items": len(points),
        "clusters": len(clusters),
        "noise": sum(1 for p in points if p[1] is None),
        "seconds": round(computed.seconds, 3),
        "dims": computed.grouping.dims,
        "min_cluster_size": cfg.min_cluster_size,
        "pending": store.pending_count(),
    }
    with store.transaction():
        run_id, ids = store.write_cluster_run(run, clusters, points)
        for cluster_id in ids:
            row = store.cluster(cluster_id)
            assert row is not None
            event: contract.ClusterEvent = {
                "type": "cluster",
                "action": "found",
                "id": row.id,
                "size": row.size,
                "nearest_label": row.nearest_label,
                "nearest_score": row.nearest_score,
                "at": time.time(),
            }
            tell(store, event, sink)
    return run_id


def regroup(
    ident: Identifier, cfg: ClustersConfig, space: str, sink: EventSink | None = None
) -> int:
    """Snapshot, group and store in one go (see ``compute`` and ``store_run``)."""
    item_ids, vectors = ident.store.pending_unknowns(space, cfg.max_items)
    return store_run(ident, compute(item_ids, vectors, cfg.min_cluster_size), cfg, sink)


def due(store: Store, cfg: ClustersConfig, space: str) -> bool:
    """Whether the queue grew by ``regroup_growth`` since the last grouping (or was
    never grouped) and holds at least ``min_cluster_size`` unknowns."""
    if cfg.regroup_growth <= 0:
        return False
    pending = store.pending_count()
    if pending < cfg.min_cluster_size:
        return False
    last = store.latest_cluster_run()
    if last is None:
        return True
    grouped_at = store.cluster_run_pending(last.id)
    return pending >= grouped_at * (1 + cfg.regroup_growth) and pending > grouped_at


def cluster_json(row: ClusterRow, store: Store, shown: int | None = 6) -> contract.Cluster:
    """One cluster as the API shows it, with its first ``shown`` members (None: all),
    the medoid first."""
    members = store.cluster_members(row.id)
    if row.medoid_item_id in members:
        members = [row.medoid_item_id] + [m for m in members if m != row.medoid_item_id]
    return {
        "id": row.id,
        "run_id": row.run_id,
        "size": row.size,
        "medoid_item_id": row.medoid_item_id,
        "mean_similarity": row.mean_similarity,
        "nearest_label": row.nearest_label,
        "nearest_score": row.nearest_score,
        "status": typing.cast(contract.ClusterStatus, row.status),
        "label": row.label,
        "members": members if shown is None else members[:shown],
        "created_at": row.created_at,
    }


def listing(store: Store, cfg: ClustersConfig, members: int | None = 6) -> contract.Clusters:
    """The newest grouping's clusters still to act on, largest first."""
    run = store.latest_cluster_run()
    if run is None:
        return {
            "run": None,
            "clusters": [],
            "message": f"the queue was never grouped (it groups at {cfg.min_cluster_size} "
            "unknowns or more; identify clusters group, or g on the Clusters screen, groups it now)",
        }
    rows = [r for r in store.clusters_of(run.id) if r.status in (ACTIONABLE, "naming")]
    message = None
    if not rows:
        message = (
            f"no group of {cfg.min_cluster_size} or more alike "
            f"among the {run.items} pending unknowns grouped"
        )
    return {
        "run": {
            "id": run.id,
            "created_at": run.created_at,
            "items": run.items,
            "clusters": run.clusters,
            "noise": run.noise,
            "seconds": run.seconds,
            "dims": run.dims,
        },
        "clusters": [cluster_json(r, store, members) for r in rows],
        "message": message,
    }
