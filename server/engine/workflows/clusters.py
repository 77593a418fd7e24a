"""``identify clusters``: the newest grouping of the pending unknowns, read from the
database, and the queue grouped again, while no server runs (a running server is asked
instead; naming, merging, dropping and dismissing go through it)."""

from __future__ import annotations

from server import contract
from server.engine.catalog.store import Store
from server.engine.decide.identifier import Identifier
from server.engine.errors import NotIndexedError
from server.engine.loop import clusters
from server.engine.project.config import Project
from server.engine.vision.embedders import project_embedder
from server.engine.workflows.common import open_project, writer_lock


def _indexed(ref: str) -> Project:
    project = open_project(ref)
    if not project.db_path.exists():
        raise NotIndexedError(f"{project.name} has no database yet (run identify index first)")
    return project


def show(ref: str) -> contract.Clusters:
    """The newest grouping's open clusters (every member listed).

    Raises:
        NotIndexedError: the project has no database yet.
    """
    project = _indexed(ref)
    store = Store(project.db_path)
    try:
        return clusters.listing(store, project.config.clusters, None)
    finally:
        store.close()


def group(ref: str) -> contract.Clusters:
    """Group the pending unknowns now, under the writer lock; the clusters found.

    Raises:
        NotIndexedError, IndexMismatchError: the project is not indexed for its model.
        ConflictError: a server (or another command) holds the project.
    """
    project = _indexed(ref)
    embedder = project_embedder(project.config)
    with writer_lock(project, "identify clusters group"):
        ident = Identifier.open(project, embedder)
        try:
            clusters.regroup(ident, project.config.clusters, embedder.spec.space_id)
            return clusters.listing(ident.store, project.config.clusters, None)
        finally:
            ident.close()
