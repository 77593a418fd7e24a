"""A throwaway copy of a project to judge a version in, without the references made of
the pictures it is judged on.

In a unified taxonomy every reviewed label became a reference at once, so a reviewed
crop is in the index it would be judged against, and matches itself. A judgement on
reviewed data is therefore made in a copy: the database copied (SQLite's online backup,
safe while a server writes), the references made of the judged annotations retired
there, and an index built in the version's space beside it. The project itself is not
touched; the copy is removed afterwards, and one left by a process that was killed is
removed by the next judgement.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Collection, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from server.engine.catalog.store import Store
from server.engine.project.config import Project, ProjectConfig
from server.engine.vision.embedders import project_embedder
from server.engine.workflows.common import Stage, quiet, reference_count
from server.engine.workflows.index import build_index

PREFIX = ".judging-"


@contextmanager
def judging_copy(
    project: Project,
    config: ProjectConfig,
    leave_out: Collection[int],
    stage: Stage = quiet,
    what: str = "indexing a copy",
) -> Iterator[Project]:
    """The project in a temporary folder under its data folder, with ``config`` (a
    version's space) and without the references ``leave_out``, indexed."""
    _sweep(project.data_dir)
    prefix = f"{PREFIX}{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=project.data_dir) as tmp:
        copy = dataclasses.replace(project, data_dir=Path(tmp), config=config)
        with (
            closing(sqlite3.connect(project.db_path)) as source,
            closing(sqlite3.connect(copy.db_path)) as target,
        ):
            source.backup(target)
        store = Store(copy.db_path)
        try:
            with store.transaction():
                store.retire(leave_out)
        finally:
            store.close()
        with stage(what, reference_count(project)) as update:
            build_index(copy, project_embedder(config), update)
        yield copy


def _sweep(data_dir: Path) -> None:
    """Remove the copies of processes that are gone (named by their process id)."""
    for folder in data_dir.glob(f"{PREFIX}*"):
        pid = folder.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True
