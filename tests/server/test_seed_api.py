"""The seed tool's live canvas API: ``POST /api/falcon`` in its ``masks`` shape, and
``GET /refs/<ref_filename>`` for the matched reference, with no way to any other file."""

from __future__ import annotations

import io
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from PIL import Image

from server.engine.project.config import Project, load_project
from server.engine.workflows.index import build_index
from server.http import limits
from tests.conftest import DEMO_REFS

from .conftest import (
    KNOWN_QUERY,
    PROJECT_TEXT,
    UNKNOWN_QUERY,
    Client,
    error_of,
    identify,
    image_form,
    query,
)

MASK_KEYS = {
    "bbox_norm",
    "area_fraction",
    "label",
    "name",
    "rarity",
    "score",
    "top_k",
    "margin",
    "confident",
    "ref_filename",
}


async def test_falcon_answers_in_the_seed_shape_and_its_reference_loads(client: Client) -> None:
    resp = await client.post("/api/falcon", data=image_form(query(KNOWN_QUERY), query="flag"))
    body = await resp.json()
    assert resp.status == 200, body
    assert set(body) == {"image_size", "count", "masks", "query", "elapsed_seconds"}
    assert body["query"] == "flag" and body["count"] == len(body["masks"]) == 1
    (mask,) = body["masks"]
    assert set(mask) == MASK_KEYS
    assert mask["confident"] is True and mask["name"] == "Brazil" and mask["label"] == "flag"
    box = mask["bbox_norm"]
    assert 0 <= box["x1"] < box["x2"] <= 1 and 0 <= box["y1"] < box["y2"] <= 1
    assert 0 < mask["area_fraction"] <= 1
    assert mask["top_k"][0] == {
        "name": "Brazil",
        "filename": mask["ref_filename"],
        "score": mask["score"],
    }
    assert mask["ref_filename"].endswith("_Brazil.png")
    ref = await client.get(f"/refs/{mask['ref_filename']}")
    assert ref.status == 200 and (await ref.read()).startswith(b"\x89PNG")


async def test_an_unknown_thing_is_not_confident(client: Client) -> None:
    resp = await client.post("/api/falcon", data=image_form(query(UNKNOWN_QUERY), query="flag"))
    (mask,) = (await resp.json())["masks"]
    assert mask["confident"] is False


async def test_falcon_without_a_query_or_with_a_bad_image_is_a_clear_error(
    client: Client,
) -> None:
    no_query = await client.post("/api/falcon", data=image_form(query(KNOWN_QUERY)))
    assert await error_of(no_query, 400) == "identify_error"
    broken = await client.post("/api/falcon", data=image_form(b"not a picture", query="card"))
    assert broken.status in (400, 415, 422)
    assert (await (await client.get("/api/health")).json())["project"]  # still up


async def test_refs_serves_references_only(client: Client, project: Project) -> None:
    outside = project.file.parent / "secret.png"
    outside.write_bytes(b"\x89PNG secret")
    for name in (
        "../secret.png",
        "..%2Fsecret.png",
        "1_..%2F..%2Fsecret.png",
        "1_secret.png",  # a real id with another file's name
        "999999_Brazil.png",
        "Brazil.png",
        "1_" + "x" * 300,
    ):
        resp = await client.get(f"/refs/{name}")
        assert resp.status == 404, name
        assert b"secret" not in await resp.read()


async def test_refs_needs_the_token_like_the_rest(
    serve: Callable[..., Awaitable[Client]], project: Project
) -> None:
    client = await serve(project, token="a-long-token-1234")
    assert (await client.get("/refs/1_Brazil.png")).status == 401
    headers = {"Authorization": "Bearer a-long-token-1234"}
    resp = await client.post(
        "/api/falcon", data=image_form(query(KNOWN_QUERY), query="flag"), headers=headers
    )
    name = (await resp.json())["masks"][0]["ref_filename"]
    assert (await client.get(f"/refs/{name}", headers=headers)).status == 200
    assert Path(name).name == name


async def test_falcon_refuses_an_oversized_upload_and_a_pixel_bomb(client: Client) -> None:
    big = b"\xff\xd8" + b"\0" * (limits.MAX_REQUEST_BYTES + 10)
    resp = await client.post("/api/falcon", data=image_form(big, query="card"))
    assert await error_of(resp, 413) == "request_entity_too_large"
    buf = io.BytesIO()
    Image.new("L", (10_000, 10_000)).save(buf, format="PNG")  # 100 MB once decoded
    resp = await client.post("/api/falcon", data=image_form(buf.getvalue(), query="card"))
    assert resp.status in (400, 413, 422), await resp.text()
    assert (await (await client.get("/api/health")).json())["project"]  # still up


async def test_the_rarity_in_a_reference_file_name_is_answered(
    serve: Callable[..., Awaitable[Client]], tmp_path: Path, embedder: Any
) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    shutil.copy(DEMO_REFS / "Brazil.png", refs / "Brazil_ur.png")  # rarity code "ur"
    for name in ("Japan", "banana"):
        shutil.copy(DEMO_REFS / f"{name}.png", refs / f"{name}.png")
    file = tmp_path / "rare.yaml"
    file.write_text(PROJECT_TEXT.format(refs=refs, data=tmp_path / "data", extra=""))
    build_index(load_project(file), embedder)
    client = await serve(load_project(file))
    found = await identify(client, query(KNOWN_QUERY))
    assert (found["objects"][0]["label"], found["objects"][0]["rarity"]) == ("Brazil", "ur")
    resp = await client.post("/api/falcon", data=image_form(query(KNOWN_QUERY), query="flag"))
    (mask,) = (await resp.json())["masks"]
    assert (mask["name"], mask["rarity"]) == ("Brazil", "ur")
    unknown = await identify(client, query(UNKNOWN_QUERY))
    assert unknown["objects"][0]["label"] is None and unknown["objects"][0]["rarity"] is None
