"""Reading request bodies within the named limits."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, web

from server.engine.errors import IdentifyError, ImageRejected

from .limits import ALLOWED_IMAGE_TYPES, MAX_JSON_BYTES, MAX_REQUEST_BYTES


class UnsupportedMediaType(IdentifyError):
    """A body of a content type this endpoint does not take."""

    status = 415
    code = "unsupported_media_type"


async def read_json(request: web.Request) -> dict[str, Any]:
    """A JSON object body.

    Raises:
        UnsupportedMediaType: not ``application/json``.
        IdentifyError: too large, malformed, or not an object.
    """
    if request.content_type != "application/json":
        raise UnsupportedMediaType("send JSON with 'Content-Type: application/json'")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise IdentifyError(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    raw = await request.content.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise IdentifyError(f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IdentifyError(f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise IdentifyError("the JSON body must be an object")
    return body


async def _read_capped(part: BodyPartReader, cap: int = MAX_REQUEST_BYTES) -> bytes:
    chunks = bytearray()
    while chunk := await part.read_chunk():
        chunks.extend(chunk)
        if len(chunks) > cap:
            raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=len(chunks))
    return bytes(chunks)


async def read_image(request: web.Request) -> tuple[bytes, dict[str, str]]:
    """An uploaded image and the other form fields: multipart (field ``image``) or a raw
    ``image/*`` body (fields then come from the query string).

    The body size is capped by the application's ``client_max_size`` (413).

    Raises:
        UnsupportedMediaType: neither multipart nor an accepted image type.
        ImageRejected: no ``image`` field, or an empty body.
    """
    ctype = request.content_type
    if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST_BYTES,
                                            actual_size=request.content_length)
    if ctype == "multipart/form-data":
        reader = await request.multipart()
        data: bytes | None = None
        fields: dict[str, str] = {}
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.name == "image":
                data = await _read_capped(part)
            else:
                fields[part.name] = (await _read_capped(part, MAX_JSON_BYTES)).decode(
                    "utf-8", "replace")
        if data is None:
            raise ImageRejected("the form has no 'image' field")
    elif ctype in ALLOWED_IMAGE_TYPES:
        data = await request.read()
        fields = dict(request.query)
    else:
        raise UnsupportedMediaType(
            f"content type {ctype or 'none'!r} is not accepted: send multipart/form-data "
            f"with an 'image' field, or one of {', '.join(sorted(ALLOWED_IMAGE_TYPES))}")
    if not data:
        raise ImageRejected("the image is empty (0 bytes)")
    return data, fields
