"""HTTP and WebSocket routes, one file per resource."""

from __future__ import annotations

from aiohttp import web

from server.engine.errors import NotFoundError


def int_param(request: web.Request, name: str) -> int:
    """A numeric path parameter (an unknown id is a 404, like any other)."""
    raw = request.match_info[name]
    if not raw.isdigit():
        raise NotFoundError(f"no such {name}: {raw!r}")
    return int(raw)


def query_int(request: web.Request, name: str, default: int | None) -> int | None:
    """An optional integer query parameter.

    Raises:
        IdentifyError: not an integer.
    """
    from server.engine.errors import IdentifyError

    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise IdentifyError(f"query parameter {name!r} must be an integer") from None
