"""Errors as JSON, the host and origin checks, and authentication, for every route.

Loopback is not a trust boundary against the browser: every page its user opens may send
requests to 127.0.0.1. ``same_origin`` refuses requests addressed to a name this server
does not answer to (a DNS-rebinding page reaches it as ``evil.example``) and requests
made by a page of any other origin (another site, or another port of 127.0.0.1), so only
the server's own page and non-browser clients (the CLI, the TUI, curl) get through.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from server import contract
from server.engine.errors import IdentifyError

from .keys import CONFIG, STATS
from .limits import MAX_WRITES_PER_CLIENT, RETRY_AFTER_S

log = logging.getLogger(__name__)

TOKEN_COOKIE = "identify_token"
"""Set when the web page is opened with ``?token=``; later requests carry it."""
PUBLIC_PATHS = frozenset({"/favicon.ico"})


def error_body(status: int, code: str, message: str) -> web.Response:
    """The one error shape: ``{"error": {"code": ..., "message": ...}}``."""
    body: contract.ErrorBody = {"error": {"code": code, "message": message}}
    return web.json_response(body, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render domain errors and HTTP errors as JSON; log and count the unexpected."""
    try:
        return await handler(request)
    except IdentifyError as exc:
        response = error_body(exc.status, exc.code, exc.message)
        if exc.status == 429:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        response = error_body(exc.status, code, message)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        request.app[STATS].server_errors += 1
        return error_body(500, "internal", "internal error; see the server log")


def _hostname(host: str) -> str | None:
    """The name in a ``Host`` header (``name``, ``name:port``, ``[v6]:port``)."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 1 else None
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else (host if ":" not in host else None)


def _origin_of(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of an origin, or None when it does not parse (yarl decodes
    the host lazily: an invalid IDNA name raises only when it is read)."""
    try:
        parsed = URL(url)
        scheme, host, port = parsed.scheme, parsed.host, parsed.port
    except ValueError:  # UnicodeError included
        return None
    if not scheme or not host:
        return None
    return scheme.lower(), host.lower().rstrip("."), port


@web.middleware
async def same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """403 for a ``Host`` this server does not serve, and for any request (WebSocket
    upgrades included) whose ``Origin`` is not the origin the request was sent to.

    The origin compared with is the request's own ``Host``, so the page works however
    it was reached (``localhost``, an SSH tunnel's port) while a page on another port
    of the same machine is another origin and is refused. Browsers send ``Origin`` on
    every cross-origin request that could change or read something (POST, PUT, DELETE,
    fetch, WebSocket); clients that are not browsers send none.
    """
    config = request.app[CONFIG]
    host = request.headers.get("Host", "")
    name = _hostname(host)
    if name is None or not config.serves_host(name):
        return error_body(
            403,
            "forbidden_host",
            f"this server does not answer to the host {host[:100]!r}; "
            "start it with --allow-host NAME to add a name",
        )
    origin = request.headers.get("Origin")
    if origin is not None:
        own = _origin_of(f"{request.scheme}://{host}")
        if own is None or _origin_of(origin) != own:
            return error_body(
                403,
                "forbidden_origin",
                f"requests from pages of {origin[:100]!r} are refused; "
                "use this server's own page or a non-browser client",
            )
    return await handler(request)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def client_limits(request: web.Request, handler: Handler) -> web.StreamResponse:
    """At most ``MAX_WRITES_PER_CLIENT`` changing requests in flight per client address
    (429 with ``Retry-After`` beyond), on every route that changes something."""
    if request.method in SAFE_METHODS:
        return await handler(request)
    in_flight, key = request.app[STATS].writes_in_flight, request.remote or ""
    if in_flight[key] >= MAX_WRITES_PER_CLIENT:
        request.app[STATS].writes_refused += 1
        response = error_body(
            429,
            "busy",
            f"at most {MAX_WRITES_PER_CLIENT} changing "
            "requests at once per client; try again in a moment",
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    in_flight[key] += 1
    try:
        return await handler(request)
    finally:
        in_flight[key] -= 1
        if not in_flight[key]:
            del in_flight[key]


def _token_ok(given: str | None, token: str) -> bool:
    # Header values are decoded with surrogateescape: bytes that are not UTF-8 come back
    # as the same bytes (and simply do not match), never as an encoding error.
    return given is not None and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), token.encode()
    )


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With ``--token``: a bearer header, the cookie, or once ``?token=`` (which sets the
    cookie, so the web page need not keep the token in its URL)."""
    token = request.app[CONFIG].token
    if token is None or request.path in PUBLIC_PATHS:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    if _token_ok(bearer, token) or _token_ok(request.cookies.get(TOKEN_COOKIE), token):
        return await handler(request)
    if _token_ok(request.query.get("token"), token):
        response = await handler(request)
        if not response.prepared:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response
    return error_body(
        401, "unauthorized", "this server needs its token: 'Authorization: Bearer <token>'"
    )
