"""Errors as JSON, and authentication, for every route."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from server.engine.errors import IdentifyError

from .keys import CONFIG, STATS

log = logging.getLogger(__name__)

TOKEN_COOKIE = "identify_token"
"""Set when the web page is opened with ``?token=``; later requests carry it."""
PUBLIC_PATHS = frozenset({"/favicon.ico"})


def error_body(status: int, code: str, message: str) -> web.Response:
    """The one error shape: ``{"error": {"code": ..., "message": ...}}``."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render domain errors and HTTP errors as JSON; log and count the unexpected."""
    try:
        return await handler(request)
    except IdentifyError as exc:
        return error_body(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) \
            else exc.reason
        response = error_body(exc.status, code, message)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        request.app[STATS].server_errors += 1
        return error_body(500, "internal", "internal error; see the server log")


def _token_ok(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


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
    return error_body(401, "unauthorized",
                      "this server needs its token: 'Authorization: Bearer <token>'")
