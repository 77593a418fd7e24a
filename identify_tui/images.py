"""Thumbnails fetched from the server and rendered off the UI thread, with a cache, so
the next review item shows at once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from .client import ApiClient, ApiError
from .widgets.thumbnail import Picture, half_blocks

CACHE_SIZE = 400
"""Rendered thumbnails kept (a few hundred small texts)."""


class ImageCache:
    """``await picture(path, w, h)``: fetch, decode and render once; then from memory."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._done: OrderedDict[tuple[str, int, int], Picture] = OrderedDict()
        self._pending: dict[tuple[str, int, int], asyncio.Task[Picture]] = {}

    def cached(self, path: str, width: int, height: int) -> Picture | None:
        return self._done.get((path, width, height))

    async def picture(self, path: str, width: int, height: int) -> Picture:
        """The rendered picture.

        Raises:
            ApiError: the image could not be fetched or decoded.
        """
        key = (path, width, height)
        if key in self._done:
            self._done.move_to_end(key)
            return self._done[key]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(path, width, height))
            self._pending[key] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._pending.pop(key, None)

    async def _load(self, path: str, width: int, height: int) -> Picture:
        data = await self.client.image(path)
        try:
            text = await asyncio.to_thread(half_blocks, data, width, height)
        except ValueError:
            raise ApiError(f"{path} is not an image") from None
        self._done[(path, width, height)] = text
        while len(self._done) > CACHE_SIZE:
            self._done.popitem(last=False)
        return text

    def prefetch(self, path: str, width: int, height: int) -> None:
        """Start loading in the background; errors are ignored here and seen when the
        picture is actually shown."""
        if (path, width, height) in self._done or (path, width, height) in self._pending:
            return
        task = asyncio.ensure_future(self._load(path, width, height))
        self._pending[(path, width, height)] = task
        task.add_done_callback(
            lambda t: (
                self._pending.pop((path, width, height), None),
                t.exception() if not t.cancelled() else None,
            )
        )
