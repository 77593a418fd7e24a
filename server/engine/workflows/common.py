"""What the command workflows share: how they report progress, the writer lock, and the
number of references a progress bar counts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from server.engine.catalog.store import Store
from server.engine.project.config import Project, load_project
from server.engine.project.lock import ProjectLock, holder

Progress = Callable[[int], None]
"""Called with the number of items just processed."""


class Stage(Protocol):
    """Opens the progress report of one stage of a command: ``stage(label, length)`` is a
    context manager that gives a ``Progress`` (the CLI draws a bar; tests pass
    ``quiet``)."""

    def __call__(self, label: str, length: int) -> AbstractContextManager[Progress]: ...


@contextmanager
def quiet(label: str, length: int) -> Iterator[Progress]:
    """A stage that reports nothing."""
    yield lambda n: None


def open_project(ref: str) -> Project:
    """The project named ``ref`` (a name under ./projects/ or a file path).

    Raises:
        ProjectConfigError: no such project, or a file that does not validate.
    """
    return load_project(ref)


def writer_lock(project: Project, holder: str) -> ProjectLock:
    """The project's one-writer lock, taken for a command that writes (a running server
    holds it)."""
    return ProjectLock(project.data_dir, holder)


def reference_count(project: Project) -> int:
    """Active references, for progress bars (0 before the first index)."""
    if not project.db_path.exists():
        return 0
    store = Store(project.db_path)
    try:
        return len(store.active_references())
    finally:
        store.close()


def serving_url(ref: str) -> str | None:
    """The address of the server that holds the project, if one does (a CLI run would
    be a second writer: it goes through the server's API instead)."""
    project = open_project(ref)
    who = holder(project.data_dir) or ""
    prefix = "identify serve on "
    if not who.startswith(prefix):
        return None
    url = who[len(prefix) :].split(" ", 1)[0]
    return url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//127.0.0.1:")
