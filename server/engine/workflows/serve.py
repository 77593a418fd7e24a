"""What ``identify serve`` and ``identify tui`` need of a project before the server (or
the client) starts: the settings to serve it with, the project checked, its address.

Two steps for ``serve``, because the transport checks its own settings in between
(``server.http.config``: a public host needs a token), and those cheap refusals should
come before the project is checked against its model and index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from server.engine.project.config import CameraConfig, Project
from server.engine.workflows.common import open_project
from server.engine.workflows.preflight import preflight


@dataclass(frozen=True)
class ServePlan:
    """The project to serve and its server settings: the project file's, overridden by
    the command line's."""

    project: Project
    host: str
    port: int
    cameras: tuple[CameraConfig, ...]
    workers: int | None
    allow_hosts: tuple[str, ...]


def serve_plan(
    ref: str,
    host: str | None = None,
    port: int | None = None,
    cameras: Sequence[str] = (),
    allow_hosts: Sequence[str] = (),
) -> ServePlan:
    """Load the project named ``ref`` and settle its server settings: ``host`` and
    ``port`` replace the project's, ``cameras`` (sources) and ``allow_hosts`` add to
    them. ``ready_to_serve`` checks the project.

    Raises:
        ProjectConfigError: no such project, or a file that does not validate.
    """
    project = open_project(ref)
    server = project.config.server
    return ServePlan(
        project=project,
        host=host or server.host,
        port=server.port if port is None else port,
        cameras=server.cameras + tuple(CameraConfig(source=c) for c in cameras),
        workers=server.workers,
        allow_hosts=server.allow_hosts + tuple(allow_hosts),
    )


def ready_to_serve(plan: ServePlan) -> None:
    """Check the project as far as it can be before its model loads.

    Raises:
        ProjectConfigError, ModelUnavailableError, NotIndexedError: see ``preflight``.
    """
    preflight(plan.project, indexed=True)


def server_url(ref: str) -> str:
    """The address a client reaches the project's server on (its host and port; a
    wildcard host is reached on loopback)."""
    server = open_project(ref).config.server
    host = "127.0.0.1" if server.host in ("0.0.0.0", "::") else server.host
    return f"http://{host}:{server.port}"
