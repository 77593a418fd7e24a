"""A hostile page in a real headless Chromium: on another origin (another port of
127.0.0.1, with or without the server's token cookie) or through DNS rebinding (a name
of its own resolved to 127.0.0.1), it can neither add a reference nor read events, live
results or the API. The same script run by the server's own page does all of it, so the
attack is real and it is the server that refuses it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from server.engine.project.config import Project
from server.engine.vision.images import decode_image
from server.http.app import create_app
from server.http.config import ServeConfig
from tests.server.conftest import KNOWN_QUERY, query

from .chromium import Browser, write_y4m
from .test_webcam_page import require_chromium, server_session

TOKEN = "s3cret-token-for-tests"

ATTACK = """
(async (target) => {
  const out = {};
  const canvas = new OffscreenCanvas(240, 180);
  const g = canvas.getContext("2d");
  g.fillStyle = "#2a6"; g.fillRect(0, 0, 240, 180);
  g.fillStyle = "#fd2"; g.fillRect(40, 30, 160, 120);
  g.fillStyle = "#12a"; g.beginPath(); g.arc(120, 90, 40, 0, 7); g.fill();
  const image = await canvas.convertToBlob({type: "image/jpeg"});
  const form = new FormData();
  form.append("label", "Planted");
  form.append("image", image, "planted.jpg");
  try {
    const r = await fetch(target + "/api/references", {method: "POST", body: form,
                                                       mode: "no-cors", credentials: "include"});
    out.post = r.type === "opaque" ? "sent" : String(r.status);
  } catch (e) { out.post = "blocked"; }
  try {
    const r = await fetch(target + "/api/health", {credentials: "include"});
    out.read = String(r.status) + ":" + (await r.text()).slice(0, 40);
  } catch (e) { out.read = "blocked"; }
  for (const name of ["events", "live"]) {
    out[name] = await new Promise((done) => {
      const ws = new WebSocket(target.replace("http", "ws") + "/api/" + name);
      ws.onopen = () => { if (name === "live") ws.send('{"type": "ping"}'); };
      ws.onmessage = (e) => { done("message"); ws.close(); };
      ws.onerror = () => done("error");
      setTimeout(() => done("silent"), 5000);
    });
  }
  return JSON.stringify(out);
})
"""


async def attack_from(browser: Browser, page: str, target: str) -> dict[str, str]:
    await browser.open(page)
    for _ in range(200):  # until the page has loaded
        if (
            await browser.evaluate(f"location.href === {json.dumps(page)} && document.readyState")
            == "complete"
        ):
            break
        await asyncio.sleep(0.05)
    raw = await browser.evaluate(f"{ATTACK}({json.dumps(target)})", await_promise=True)
    assert isinstance(raw, str), raw
    return json.loads(raw)  # type: ignore[no-any-return]


async def planted(base: str, headers: dict[str, str] | None = None) -> bool:
    async with (
        server_session() as http,
        http.get(base + "/api/classes", headers=headers or {}) as resp,
    ):
        assert resp.status == 200
        return "Planted" in {c["label"] for c in (await resp.json())["classes"]}


async def evil_site(aiohttp_server: Any) -> str:
    """Another origin on this machine: an empty page."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>hi</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}"


async def test_another_origin_cannot_write_or_read_on_loopback_without_a_token(
    aiohttp_server: Any, project: Project, embedder: Any, tmp_path: Path
) -> None:
    binary = require_chromium()
    video = write_y4m(tmp_path / "c.y4m", [(decode_image(query(KNOWN_QUERY)), 2)], (64, 48))
    server = await aiohttp_server(
        create_app(ServeConfig(project=project), embedder=lambda c: embedder)
    )
    base = f"http://127.0.0.1:{server.port}"
    evil = await evil_site(aiohttp_server)
    rebound = f"http://evil.example:{server.port}"
    flags = ["--host-resolver-rules=MAP evil.example 127.0.0.1"]
    async with Browser(binary, video, tmp_path / "profile", flags) as browser:
        seen = await attack_from(browser, evil + "/", base)
        # The server refuses the upgrades (an error in the page), not mere silence.
        assert seen["events"] == "error" and seen["live"] == "error", seen
        assert seen["read"] == "blocked", seen
        assert not await planted(base), seen
        # DNS rebinding: the attacker's name now resolves to 127.0.0.1, so the page and
        # the server share an origin; the Host check is what refuses.
        rebinding = await attack_from(browser, rebound + "/", rebound)
        assert rebinding["read"].startswith("403:"), rebinding
        assert rebinding["events"] == "error" and rebinding["live"] == "error", rebinding
        assert not await planted(base), rebinding
        # Control: the very same script on the server's own page does everything.
        own = await attack_from(browser, base + "/", base)
        assert own["read"].startswith("200:") and own["events"] == "message", own
        assert own["live"] == "message"


async def test_another_port_cannot_write_or_read_with_the_token_cookie(
    aiohttp_server: Any, project: Project, embedder: Any, tmp_path: Path
) -> None:
    binary = require_chromium()
    video = write_y4m(tmp_path / "c.y4m", [(decode_image(query(KNOWN_QUERY)), 2)], (64, 48))
    server = await aiohttp_server(
        create_app(ServeConfig(project=project, token=TOKEN), embedder=lambda c: embedder)
    )
    base = f"http://127.0.0.1:{server.port}"
    evil = await evil_site(aiohttp_server)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with Browser(binary, video, tmp_path / "profile") as browser:
        await browser.open(f"{base}/?token={TOKEN}")  # the user's own tab: sets the cookie
        own = await attack_from(browser, base + "/", base)
        assert own["read"].startswith("200:") and own["events"] == "message", own
        assert await planted(base, auth)  # the script works where it is allowed to
        async with (
            server_session() as http,
            http.post(
                base + "/api/classes/rename", headers=auth, json={"from": "Planted", "to": "Kept"}
            ) as resp,
        ):
            assert resp.status == 200
        seen = await attack_from(browser, evil + "/", base)
        assert seen["events"] == "error" and seen["live"] == "error", seen
        assert seen["read"] == "blocked", seen
        assert not await planted(base, auth), seen
