"""Binding, tokens, and the one-writer rule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import WSServerHandshakeError

from server.engine.errors import ConflictError, IdentifyError
from server.engine.project.config import Project
from server.engine.project.lock import ProjectLock
from server.http.config import ServeConfig
from server.http.middlewares import TOKEN_COOKIE

from .conftest import KNOWN_QUERY, Client, error_of, image_form, query

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
    for method, path in [
        ("GET", "/api/health"),
        ("GET", "/api/review"),
        ("POST", "/api/identify"),
        ("GET", "/"),
        ("GET", "/api/events"),
    ]:
        resp = await client.request(method, path)
        assert await error_of(resp, 401) == "unauthorized", path
    wrong = await client.get("/api/health", headers={"Authorization": "Bearer nope-nope-nope"})
    assert wrong.status == 401
    ok = await client.get("/api/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200


async def test_token_in_the_page_url_sets_a_cookie_for_later_requests(
    serve: Serve, project: Project
) -> None:
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
    for path in ["/static/../app.py", "/static/%2e%2e/app.py", "/static/../../engine/errors.py"]:
        resp = await client.get(path)
        assert resp.status in (403, 404), path


async def test_cli_writers_are_refused_while_the_server_runs(
    client: Client, project: Project
) -> None:
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


# --- Host and Origin: the browser is not trusted ------------------------------------

FOREIGN = "http://evil.example"


async def test_a_host_this_server_does_not_serve_is_refused(serve: Serve, project: Project) -> None:
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 reaches
    the server with ``Host: evil.example``."""
    client = await serve(project)
    for path in ["/api/health", "/", "/api/review"]:
        resp = await client.get(path, headers={"Host": "evil.example:8765"})
        assert await error_of(resp, 403) == "forbidden_host", path
    for host in [f"127.0.0.1:{client.port}", f"localhost:{client.port}", "localhost"]:
        assert (await client.get("/api/health", headers={"Host": host})).status == 200, host


async def test_with_a_token_the_host_is_checked_first(serve: Serve, project: Project) -> None:
    tokened = await serve(project, token=TOKEN)
    resp = await tokened.get(
        "/api/health", headers={"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"}
    )
    assert await error_of(resp, 403) == "forbidden_host"


@pytest.mark.parametrize(
    "host", ["xn--zz", "xn--zz:8765", "[::1", "[]:1", ":80", "a:b:c", "\u00e9vil.example", ""]
)
async def test_odd_host_headers_are_a_403_not_a_500(
    serve: Serve, project: Project, host: str
) -> None:
    client = await serve(project)
    resp = await client.get("/api/health", headers={"Host": host})
    assert resp.status in (400, 403), await resp.text()
    health = await (await client.get("/api/health")).json()
    assert health["server"]["server_errors"] == 0


async def test_allow_host_adds_a_name(serve: Serve, project: Project) -> None:
    client = await serve(project, allow_hosts=("gpu-box.lan",))
    assert (await client.get("/api/health", headers={"Host": "gpu-box.lan:80"})).status == 200
    assert (await client.get("/api/health", headers={"Host": "GPU-BOX.LAN."})).status == 200
    assert (await client.get("/api/health", headers={"Host": "other.lan"})).status == 403


def test_serves_host_rules(project: Project) -> None:
    loop = ServeConfig(project=project)
    assert loop.serves_host("127.0.0.1") and loop.serves_host("localhost")
    assert loop.serves_host("::1") and not loop.serves_host("192.168.1.5")
    wild = ServeConfig(project=project, host="0.0.0.0", token=TOKEN)
    assert wild.serves_host("192.168.1.5") and wild.serves_host("fe80::1")
    assert not wild.serves_host("evil.example")
    with pytest.raises(IdentifyError, match="--allow-host"):
        ServeConfig(project=project, allow_hosts=("http://x/",))


@pytest.mark.parametrize(
    "origin",
    [
        FOREIGN,
        "null",
        "http://127.0.0.1:1",
        "http://localhost:1",
        "http://xn--zz",
        "http://xn--a",
        "http://[::1",
        "http://127.0.0.1:99999",
    ],
)
async def test_a_page_of_another_origin_can_neither_write_nor_read(
    serve: Serve, project: Project, origin: str
) -> None:
    client = await serve(project)
    before = await (await client.get("/api/classes")).json()
    form = image_form(query(KNOWN_QUERY), label="Evil")
    resp = await client.post("/api/references", data=form, headers={"Origin": origin})
    assert await error_of(resp, 403) == "forbidden_origin"
    resp = await client.put(
        "/api/thresholds",
        headers={"Origin": origin},
        json={"scope": "taxonomy", "name": "default", "threshold": 0.1},
    )
    assert resp.status == 403
    for path in ["/api/events", "/api/live"]:
        with pytest.raises(WSServerHandshakeError) as err:
            await client.ws_connect(path, origin=origin)
        assert err.value.status == 403, path
    assert await (await client.get("/api/classes")).json() == before


async def test_the_servers_own_page_origin_is_accepted(serve: Serve, project: Project) -> None:
    client = await serve(project)
    own = f"http://127.0.0.1:{client.port}"
    resp = await client.put(
        "/api/thresholds",
        headers={"Origin": own},
        json={"scope": "taxonomy", "name": "default", "threshold": 0.5},
    )
    assert resp.status == 200
    async with client.ws_connect("/api/live", origin=own) as ws:
        assert (await ws.receive_json())["type"] == "hello"
    # Reached through a tunnel on another local port, the page's origin is that port's.
    tunnel = {"Host": "localhost:9000", "Origin": "http://localhost:9000"}
    assert (await client.get("/api/health", headers=tunnel)).status == 200


async def test_with_a_token_another_port_of_the_same_machine_cannot_write(
    serve: Serve, project: Project
) -> None:
    """The token cookie is SameSite=Strict, but 127.0.0.1:3000 is the same site as the
    server, so the browser sends it: the origin check is what refuses."""
    client = await serve(project, token=TOKEN)
    assert (await client.get("/", params={"token": TOKEN})).status == 200  # sets the cookie
    resp = await client.post(
        "/api/references",
        headers={"Origin": "http://127.0.0.1:3000"},
        data=image_form(query(KNOWN_QUERY), label="Evil"),
    )
    assert await error_of(resp, 403) == "forbidden_origin"
    assert (await client.get("/api/health")).status == 200  # the cookie itself works
