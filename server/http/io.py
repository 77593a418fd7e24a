"""Reading request bodies within the named limits."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, web

from server.engine.errors import IdentifyError, ImageRejected

from .limits import ALLOWED_IMAGE_TYPES, MAX_FORM_PARTS, MAX_JSON_BYTES, MAX_REQUEST_BYTES


class UnsupportedMediaType(IdentifyError):
    """A body of a content type this endpoint does not take."""

    status = 415
    code = "unsupported_media_type"


async def read_json(request: web.Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """A JSON object body, read whole (however many segments it arrives in).

    Strings must be valid Unicode (no lone surrogates); ``NaN`` and ``Infinity`` are not
    JSON and are refused, as is nesting too deep to be a real request.

    Raises:
        UnsupportedMediaType: not ``application/json``.
        IdentifyError: too large, malformed, or not an object.
    """
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send JSON with 'Content-Type: application/json'")
    if request.content_length is not None and request.content_length > limit:
        raise IdentifyError(f"JSON bodies are limited to {limit} bytes")
    raw = bytearray()
    async for chunk in request.content.iter_any():
        raw.extend(chunk)
        if len(raw) > limit:
            raise IdentifyError(f"JSON bodies are limited to {limit} bytes")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
        # A lone surrogate ("\ud800") parses, but is not text anything downstream can
        # store or print.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise IdentifyError("malformed JSON: nested too deeply") from None
    except UnicodeEncodeError:
        raise IdentifyError(
            "malformed JSON: a string is not valid Unicode (a lone surrogate)"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise IdentifyError(f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise IdentifyError("the JSON body must be an object")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def _read_capped(
    part: BodyPartReader, budget: list[int], cap: int | None = None
) -> bytes | None:
    """One part's bytes, charged to the request's remaining ``budget`` (413 past it);
    None when the part is longer than ``cap``."""
    chunks = bytearray()
    while chunk := await part.read_chunk():
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_REQUEST_BYTES, actual_size=MAX_REQUEST_BYTES - budget[0]
            )
        if cap is not None and len(chunks) + len(chunk) > cap:
            return None
        chunks.extend(chunk)
    return bytes(chunks)


async def _read_form(request: web.Request) -> tuple[bytes | None, dict[str, str]]:
    """The ``image`` part and the text fields of a multipart body, within the limits
    on the whole body (``MAX_REQUEST_BYTES``, chunked or not) and on its parts."""
    budget = [MAX_REQUEST_BYTES]
    data: bytes | None = None
    fields: dict[str, str] = {}
    try:
        reader = await request.multipart()
        parts = 0
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > MAX_FORM_PARTS:
                raise IdentifyError(f"a form has at most {MAX_FORM_PARTS} parts")
            if not isinstance(part, BodyPartReader):
                raise IdentifyError("nested multipart forms are not accepted")
            if part.name is None:
                await _read_capped(part, budget)  # not ours, but it counts
                continue
            if part.name == "image":
                data = await _read_capped(part, budget)
                continue
            raw = await _read_capped(part, budget, MAX_JSON_BYTES)
            if raw is None:
                raise IdentifyError(f"form field {part.name[:40]!r} is over {MAX_JSON_BYTES} bytes")
            try:
                fields[part.name] = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise IdentifyError(f"form field {part.name[:40]!r} is not UTF-8 text") from None
    except (ValueError, AssertionError, RuntimeError, LookupError) as exc:
        # aiohttp's reader raises these for a missing or bad boundary and for parts
        # that do not parse.
        raise IdentifyError(f"malformed multipart body: {exc}") from None
    return data, fields


async def read_image(request: web.Request) -> tuple[bytes, dict[str, str]]:
    """An uploaded image and the other form fields: multipart (field ``image``) or a raw
    ``image/*`` body (fields then come from the query string).

    The whole body is capped at ``MAX_REQUEST_BYTES`` (413), chunked or not, across
    every part of a form, and a form has at most ``MAX_FORM_PARTS`` parts.

    Raises:
        UnsupportedMediaType: neither multipart nor an accepted image type.
        ImageRejected: no ``image`` field, or an empty body.
        IdentifyError: a malformed form.
    """
    ctype = request.content_type
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise web.HTTPRequestEntityTooLarge(
            max_size=MAX_REQUEST_BYTES, actual_size=request.content_length
        )
    if ctype == "multipart/form-data":
        data, fields = await _read_form(request)
        if data is None:
            raise ImageRejected("the form has no 'image' field")
    elif ctype in ALLOWED_IMAGE_TYPES:
        data = await request.read()  # capped by client_max_size, chunked bodies too
        fields = dict(request.query)
    else:
        raise UnsupportedMediaType(
            f"content type {ctype or 'none'!r} is not accepted: send multipart/form-data "
            f"with an 'image' field, or one of {', '.join(sorted(ALLOWED_IMAGE_TYPES))}"
        )
    if not data:
        raise ImageRejected("the image is empty (0 bytes)")
    return data, fields
