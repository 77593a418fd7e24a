"""HTTP and WebSocket routes, one file per resource."""

from __future__ import annotations

from aiohttp import web

from server.engine.errors import IdentifyError, NotFoundError
from server.engine.loop.annotations import author_of

from ..keys import CONFIG

MAX_ID = 2**63 - 1
"""Row ids are SQLite integers: anything larger names nothing."""


def is_row_id(value: object) -> bool:
    """A JSON value that can be a row id: an integer (not a bool) from 0 to ``MAX_ID``."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID


def int_param(request: web.Request, name: str) -> int:
    """A numeric path parameter (an unknown id is a 404, like any other).

    Only ASCII digits count (``"²".isdigit()`` is true), and an id past ``MAX_ID``
    names nothing.
    """
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > MAX_ID:
        raise NotFoundError(f"no such {name}: {raw[:40]!r}")
    return int(raw)


def query_float(request: web.Request, name: str) -> float | None:
    """An optional number query parameter (its range is the engine's to check).

    Raises:
        IdentifyError: not a number.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise IdentifyError(f"query parameter {name!r} must be a number") from None


def query_int(request: web.Request, name: str, default: int | None) -> int | None:
    """An optional integer query parameter (ASCII digits, with an optional minus, within
    SQLite's integer range).

    Raises:
        IdentifyError: not such an integer.
    """
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    digits = raw.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19 or abs(int(raw)) > MAX_ID:
        raise IdentifyError(f"query parameter {name!r} must be an integer (at most {MAX_ID})")
    return int(raw)


def author(request: web.Request) -> str:
    """Who a change is by: ``token`` on a server with a token (every request carried
    it), else ``local``; with ``:name`` when the client names its reviewer
    (``X-Identify-Reviewer``)."""
    principal = "token" if request.app[CONFIG].token is not None else "local"
    return author_of(principal, request.headers.get("X-Identify-Reviewer"))
