"""The TUI's only way to the project: the server's HTTP API (never the database)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

REQUEST_TIMEOUT_S = 10.0
"""A request that takes longer is reported as failed (the item stays in the queue)."""


class ApiError(Exception):
    """The server answered with an error; ``message`` is for the user."""

    def __init__(self, message: str, code: str = "error", status: int = 0) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


class Unreachable(ApiError):
    """No answer: the server is not running, the URL is wrong, or the network is down."""


@dataclass(frozen=True)
class TuiConfig:
    """Where the server is and how to authenticate."""

    server: str = "http://127.0.0.1:8765"
    """Base URL of ``identify serve`` (for a remote box, through an SSH tunnel)."""
    token: str | None = None
    """Bearer token, when the server was started with ``--token``."""
    project_hint: str | None = None
    """Shown in the "start a server" advice."""


class ApiClient:
    """JSON and image requests to one server, with one session."""

    def __init__(self, config: TuiConfig) -> None:
        self.config = config
        self.base = config.server.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A JSON request; returns the decoded body.

        Raises:
            Unreachable: no answer.
            ApiError: an error answer (its message is the server's).
        """
        try:
            async with self.session.request(method, self.base + path, **kwargs) as resp:
                if resp.content_type == "application/json":
                    body = await resp.json()
                else:
                    body = {"raw": await resp.read()}
                if resp.status >= 400:
                    err = body.get("error", {}) if isinstance(body, dict) else {}
                    raise ApiError(
                        err.get("message", f"HTTP {resp.status}"),
                        err.get("code", "error"),
                        resp.status,
                    )
                return (
                    body["raw"]
                    if isinstance(body, dict) and "raw" in body and len(body) == 1
                    else body
                )
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(f"cannot reach {self.base}: {exc.__class__.__name__}") from None

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request(
            "GET", path, params={k: str(v) for k, v in params.items() if v is not None}
        )

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return await self.request("POST", path, json=body or {})

    async def put(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("PUT", path, json=body)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    async def image(self, path: str) -> bytes:
        """Raw bytes of an image endpoint."""
        data = await self.request("GET", path)
        if not isinstance(data, bytes):
            raise ApiError(f"{path} did not return an image")
        return data

    def events_url(self) -> str:
        return self.base.replace("http://", "ws://").replace("https://", "wss://") + "/api/events"
