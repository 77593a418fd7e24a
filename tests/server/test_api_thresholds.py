"""Thresholds over the API: applied to the next request, persisted, validated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.engine.project.config import Project

from .conftest import KNOWN_QUERY, Client, error_of, identify, query


async def test_thresholds_show_project_values(client: Client) -> None:
    body = await (await client.get("/api/thresholds")).json()
    # Explicit values apply to whole pictures too.
    assert body["taxonomies"]["default"] == {
        "threshold": 0.8,
        "margin": 0.05,
        "picture": {"threshold": 0.8, "margin": 0.05},
    }
    assert body["taxonomies"]["fruit"] == {
        "threshold": 0.6,
        "margin": 0.03,
        "picture": {"threshold": 0.6, "margin": 0.03},
    }
    assert body["overrides"] == []


async def test_pictures_calibrated_apart_show_their_own_default(
    serve: Callable[..., Awaitable[Client]], make_project: Callable[[str], Project], embedder: Any
) -> None:
    """A taxonomy without values of its own inherits verify's calibration: the crops'
    for crops, the pictures' for whole pictures; an explicit value applies to both."""
    project = make_project(
        f"calibration:\n  model: {embedder.spec.space_id}\n  threshold: 0.62\n"
        f"  margin: 0.04\n  picture_threshold: 0.7\n  picture_margin: 0.06\n"
    )
    client = await serve(project)
    body = await (await client.get("/api/thresholds")).json()
    assert body["default"]["picture"] == {"threshold": 0.7, "margin": 0.06}
    assert body["taxonomies"]["fruit"] == {
        "threshold": 0.62,
        "margin": 0.04,
        "picture": {"threshold": 0.7, "margin": 0.06},
    }
    resp = await client.put(
        "/api/thresholds", json={"scope": "taxonomy", "name": "fruit", "threshold": 0.9}
    )
    assert (await resp.json())["taxonomies"]["fruit"] == {
        "threshold": 0.9,
        "margin": 0.04,
        "picture": {"threshold": 0.9, "margin": 0.06},
    }


async def test_class_threshold_applies_to_the_next_request_and_persists(
    serve: Callable[..., Awaitable[Client]], project: Project
) -> None:
    client = await serve(project)
    assert (await identify(client, query(KNOWN_QUERY)))["objects"][0]["label"] == "Brazil"
    resp = await client.put(
        "/api/thresholds", json={"scope": "class", "name": "Brazil", "threshold": 1.9}
    )
    assert resp.status == 200
    brazil = (await resp.json())["classes"]["Brazil"]
    default = (await resp.json())["taxonomies"]["default"]
    assert brazil == {
        "threshold": 1.9,
        "margin": None,
        "taxonomy": "default",
        "in_force": {"threshold": 1.9, "margin": default["margin"]},
        "picture": {"threshold": 1.9, "margin": default["picture"]["margin"]},
    }
    obj = (await identify(client, query(KNOWN_QUERY)))["objects"][0]
    assert obj["label"] is None and obj["reason"] == "below_threshold"
    await client.close()
    client = await serve(project)
    assert (await identify(client, query(KNOWN_QUERY)))["objects"][0]["label"] is None
    # Clearing the override restores the project's threshold.
    await client.put("/api/thresholds", json={"scope": "class", "name": "Brazil"})
    assert (await identify(client, query(KNOWN_QUERY)))["objects"][0]["label"] == "Brazil"


async def test_taxonomy_margin_applies_to_its_classes(client: Client) -> None:
    resp = await client.put(
        # Above any margin a query can have (scores stay under 1.7).
        "/api/thresholds",
        json={"scope": "taxonomy", "name": "default", "margin": 1.99},
    )
    assert (await resp.json())["taxonomies"]["default"] == {
        "threshold": 0.8,
        "margin": 1.99,
        "picture": {"threshold": 0.8, "margin": 1.99},
    }
    obj = (await identify(client, query(KNOWN_QUERY)))["objects"][0]
    assert obj["label"] is None and obj["reason"] == "low_margin"


async def test_bad_threshold_requests_are_rejected(client: Client) -> None:
    async def put(**body: object) -> str:
        resp = await client.put("/api/thresholds", json=body)
        return await error_of(resp, resp.status if resp.status != 200 else 400)

    assert await put(scope="taxonomy", name="nope", threshold=0.5) == "not_found"
    assert await put(scope="class", name="Nope", threshold=0.5) == "not_found"
    assert await put(scope="galaxy", name="default", threshold=0.5) == "identify_error"
    assert await put(scope="class", name="Brazil", threshold=5) == "identify_error"
    assert await put(scope="class", name="Brazil", threshold="high") == "identify_error"
    assert await put(scope="class", name="Brazil", margin=-0.1) == "identify_error"
    assert await put(scope="class", name="Brazil", thresold=0.5) == "identify_error"
    assert (await (await client.get("/api/thresholds")).json())["overrides"] == []
