"""``identify reapply``: every stored answer decided again against the references and
thresholds in force now (see ``loop.reapply``), with no server running (a running
server does it through ``POST /api/reapply``)."""

from __future__ import annotations

from dataclasses import dataclass

from server import contract
from server.engine.catalog.store import Reapplication, Store
from server.engine.catalog.vectors import sync_index
from server.engine.decide.identifier import Identifier
from server.engine.errors import NotIndexedError
from server.engine.loop.reapply import apply_batch, kept_picture, remaining, start, to_json
from server.engine.project.config import Project
from server.engine.vision.embedders import project_embedder
from server.engine.workflows.common import Stage, open_project, quiet, writer_lock


@dataclass(frozen=True)
class Reapplied:
    """What a re-application did."""

    project: Project
    run: Reapplication
    resumed: bool
    """It went on from where a crash (or Ctrl-C) stopped an earlier one."""

    def to_json(self) -> contract.Reapplication:
        """What ``GET /api/reapply`` says of it."""
        return to_json(self.run, 0, running_here=False)


def reapply(ref: str, stage: Stage = quiet) -> Reapplied:
    """Under the writer lock: the re-application a crash stopped resumed, or a new one
    started, and run batch by batch to its end (each batch one transaction).

    Raises:
        NotIndexedError: the project has no database or index yet.
        IndexMismatchError: the index was built with another model.
        ConflictError: a server (or another command) holds the project.
    """
    project = open_project(ref)
    if not project.db_path.exists():
        raise NotIndexedError(f"{project.name} has no database yet (run identify index first)")
    embedder = project_embedder(project.config)
    with writer_lock(project, "identify reapply"):
        store = Store(project.db_path)
        try:
            index, changed = sync_index(project, store, embedder)
            if changed:
                index.save()
            ident = Identifier(project, embedder, store, index)
            run, resumed = start(store, embedder.spec.space_id)
            picture_of = kept_picture(store)
            resolve = project.config.review.reapply_resolves
            with stage("reapply", remaining(store, run)) as advance:
                while run.status == "running":
                    run, step = apply_batch(ident, run, picture_of, resolve)
                    advance(step.seen)
        finally:
            store.close()
    return Reapplied(project, run, resumed)
