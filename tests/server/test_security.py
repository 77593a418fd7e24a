"""Binding, tokens, and the one-writer rule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from server.engine.config import Project
from server.engine.errors import ConflictError, IdentifyError
from server.engine.lock import ProjectLock
from server.http.config import ServeConfig
from server.http.middlewares import TOKEN_COOKIE

from .conftest import Client, error_of

TOKEN = "s3cret-token-for-tests"
Serve = Callable[..., Awaitable[Client]]


def test_non_loopback_host_needs_a_token(project: Project) -> None:
    with pytest.raises(IdentifyError, match="--token"):
        ServeConfig(project=project, host="0.0.0.0")
    assert ServeConfig(project=project, host="0.0.0.0", token=TOKEN).token == TOKEN
    assert ServeConfig(project=project, host="0.0.0.0", insecure_no_auth=True).token is None
    with pytest.raises(IdentifyError, match="at least 8"):
        ServeConfig(project=project, token="short")


async def test_token_is_required_on_every_route(serve: Serve, project: Project) -> None:
    client = await serve(project, token=TOKEN)
    for method, path in [("GET", "/api/health"), ("GET", "/api/review"),
                         ("POST", "/api/identify"), ("GET", "/"), ("GET", "/api/events")]:
        resp = await client.request(method, path)
        assert await error_of(resp, 401) == "unauthorized", path
    wrong = await client.get("/api/health", headers={"Authorization": "Bearer nope-nope-nope"})
    assert wrong.status == 401
    ok = await client.get("/api/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200


async def test_token_in_the_page_url_sets_a_cookie_for_later_requests(
        serve: Serve, project: Project) -> None:
    client = await serve(project, token=TOKEN)
    page = await client.get("/", params={"token": TOKEN})
    assert page.status == 200 and "getUserMedia" not in await page.text()
    assert TOKEN_COOKIE in page.cookies and page.cookies[TOKEN_COOKIE]["httponly"]
    # The client's cookie jar now carries it: the API and the WebSocket work.
    assert (await client.get("/api/health")).status == 200
    async with client.ws_connect("/api/live") as ws:
        assert (await ws.receive_json())["type"] == "hello"


async def test_page_and_script_are_served_and_nothing_outside_static(client: Client) -> None:
    page = await client.get("/")
    assert page.status == 200 and "/static/live.js" in await page.text()
    script = await client.get("/static/live.js")
    assert script.status == 200 and "getUserMedia" in await script.text()
    for path in ["/static/../app.py", "/static/%2e%2e/app.py", "/static/../../engine/store.py"]:
        resp = await client.get(path)
        assert resp.status in (403, 404), path


async def test_cli_writers_are_refused_while_the_server_runs(client: Client,
                                                            project: Project) -> None:
    with pytest.raises(ConflictError, match="using this project"):
        ProjectLock(project.data_dir, "identify index").acquire()


def test_lock_says_who_holds_it_and_is_released(project: Project) -> None:
    held = ProjectLock(project.data_dir, "identify serve on http://127.0.0.1:8765").acquire()
    try:
        with pytest.raises(ConflictError, match="identify serve on http://127.0.0.1:8765"):
            ProjectLock(project.data_dir, "identify index").acquire()
    finally:
        held.release()
    with ProjectLock(project.data_dir, "identify index"):
        pass
