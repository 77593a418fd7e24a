"""Groups of pending unknowns (``GET /api/clusters``) and the 2-D map's points."""

from typing import Literal, TypedDict

ClusterStatus = Literal["open", "naming", "named", "merged", "dismissed", "superseded"]


class Cluster(TypedDict):
    """One group of pending unknowns that look alike."""

    id: int
    run_id: int
    size: int
    """Members not dropped."""
    medoid_item_id: int
    """The member most like the others (its picture: ``/api/review/{id}/image``)."""
    mean_similarity: float
    """Mean cosine between two of its members."""
    nearest_label: str | None
    """The known class nearest the members' mean direction (None: no references)."""
    nearest_score: float | None
    """That cosine."""
    status: ClusterStatus
    label: str | None
    """The class it was named or merged into."""
    members: list[int]
    """Review item ids, the medoid first (the first few, or all with ``?members=all``)."""
    created_at: str


class ClusterRun(TypedDict):
    """One grouping of the queue."""

    id: int
    created_at: str
    items: int
    """Pending unknowns grouped."""
    clusters: int
    noise: int
    """Items alike to too few others to be grouped."""
    seconds: float
    dims: int
    """Dimensions the vectors were reduced to (PCA) before grouping."""


class Clusters(TypedDict):
    """``GET /api/clusters``: the newest grouping's clusters still to act on."""

    run: ClusterRun | None
    """None: the queue was never grouped."""
    clusters: list[Cluster]
    message: str | None
    """Said plainly when there is nothing to show (too few items, no grouping yet)."""


class MapPointInfo(TypedDict):
    """An item on the 2-D map (its first two principal components)."""

    item_id: int
    cluster_id: int | None
    x: float
    y: float


class ClusterNamed(TypedDict):
    """``POST /api/clusters/{id}/name`` or ``/merge``: what its members became."""

    cluster: Cluster
    resolved: int
    """Members labelled (each an annotation; in a unified taxonomy, a reference too)."""
    failed: list[dict[str, object]]
    """Members that could not be (their item id and why)."""
