"""A real project (real SQLite file, real USearch index, the offline embedder) served
in-process by ``create_app``, as the CLI would serve it."""

from __future__ import annotations

import io
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from PIL import Image

from server.engine.project.config import Project, load_project
from server.engine.workflows.index import build_index
from server.http.app import create_app
from server.http.config import ServeConfig
from tests.conftest import DEMO_QUERIES, DEMO_REFS

KNOWN = ["Brazil", "Japan", "apple_red", "banana"]
"""Reference files of the served project."""
PROJECT_TEXT = """\
references:
  - path: {refs}
data_dir: {data}
model:
  name: efficientnet-lite0
  batch_size: 4
index:
  views: 2
taxonomies:
  - name: default
    threshold: 0.8
    margin: 0.05
  - name: fruit
review:
  min_crop_side: 32
  min_track_frames: 3
{extra}"""

Client = TestClient  # type: ignore[type-arg]


def query(name: str) -> bytes:
    """A demo query photo (camera-like: the thing composited on a real background)."""
    return (DEMO_QUERIES / name).read_bytes()


KNOWN_QUERY = "known-brazil.jpg"
"""Matches Brazil far above the test thresholds."""
UNKNOWN_QUERY = "unknown-germany.jpg"
"""A flag not in the project: scores well below the test thresholds."""


def png_bytes(array: np.ndarray) -> bytes:
    """Encode an RGB array as PNG."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    """A project indexed once per session: its reference folder and data folder."""
    root = tmp_path_factory.mktemp("served")
    refs = root / "refs"
    refs.mkdir()
    for name in KNOWN:
        shutil.copy(DEMO_REFS / f"{name}.png", refs / f"{name}.png")
    file = root / "p.yaml"
    file.write_text(PROJECT_TEXT.format(refs=refs, data=root / "data", extra=""))
    build_index(load_project(file), embedder)
    return root


@pytest.fixture()
def make_project(built: Path, tmp_path: Path) -> Callable[[str], Project]:
    """A private copy of the built project (same references, own database and index);
    ``extra`` is appended to the project file."""

    def make(extra: str = "") -> Project:
        data = tmp_path / "data"
        if not data.exists():
            shutil.copytree(built / "data", data)
        file = tmp_path / "p.yaml"
        file.write_text(PROJECT_TEXT.format(refs=built / "refs", data=data, extra=extra))
        return load_project(file)

    return make


@pytest.fixture()
def project(make_project: Callable[[str], Project]) -> Project:
    """The default private project."""
    return make_project("")


@pytest.fixture()
def serve(aiohttp_client: Any, embedder: Any) -> Callable[..., Awaitable[Client]]:
    """Start the real app for a project and return a test client."""

    async def start(project: Project, **kwargs: Any) -> Client:
        config = ServeConfig(project=project, **kwargs)
        client: Client = await aiohttp_client(create_app(config, embedder=lambda c: embedder))
        return client

    return start


@pytest.fixture()
async def client(serve: Callable[..., Awaitable[Client]], project: Project) -> Client:
    """A client of the default project's server."""
    return await serve(project)


def image_form(data: bytes, **fields: str) -> FormData:
    """A multipart form with an ``image`` file and text fields."""
    form = FormData()
    form.add_field("image", data, filename="photo.jpg", content_type="image/jpeg")
    for key, value in fields.items():
        form.add_field(key, value)
    return form


async def identify(client: Client, data: bytes, **params: str) -> dict[str, Any]:
    """POST /api/identify with a raw JPEG body; asserts 200 and returns the JSON."""
    resp = await client.post(
        "/api/identify", data=data, params=params, headers={"Content-Type": "image/jpeg"}
    )
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def error_of(resp: Any, status: int) -> str:
    """Assert an error response's status and shape; return its code."""
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return str(body["error"]["code"])
