"""A reference that wins matches of unlike things is flagged in health and classes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from server.engine.catalog.store import Store
from server.engine.project.config import Project

from .conftest import Client


def _record(store: Store, model_id: str, label: str, ref: int, vector: np.ndarray, n: int) -> None:
    top = {"label": label, "score": 0.9, "cosine": 0.9, "reference_id": ref}
    result = {"label": label, "score": 0.9, "margin": 0.2, "matched": True, "candidates": [top]}
    store.record(
        path="",
        content_hash=f"{label}-{n}",
        width=64,
        height=64,
        model_id=model_id,
        embedding=vector,
        result=result,
        kind="crop",
    )


def seed_hub_history(project: Project, embedder: Any, hub: str) -> None:
    """Past observations in ``project``: five things seen six times each (one direction,
    a little noise each view), three of them classes of the project and two deleted
    since, and ``hub`` accepted for eight things that share nothing but it."""
    rng = np.random.default_rng(0)
    dim, space = embedder.spec.dim, embedder.spec.space_id
    store = Store(project.db_path)
    ids = {r.label: r.id for r in store.active_references()}
    others = [(label, ref) for label, ref in ids.items() if label != hub]
    others += [("Gone A", 10_001), ("Gone B", 10_002)]
    for label, ref in others:
        centre = rng.normal(size=dim)
        for n in range(6):
            _record(store, space, label, ref, centre + 0.15 * rng.normal(size=dim), n)
    pull = rng.normal(size=dim)
    for n in range(8):
        _record(store, space, hub, ids[hub], rng.normal(size=dim) + 0.3 * pull, n)
    store.close()


async def test_health_and_classes_flag_a_reference_whose_matches_do_not_look_alike(
    serve: Callable[..., Awaitable[Client]], project: Project, embedder: Any
) -> None:
    hub = "Japan"
    seed_hub_history(project, embedder, hub)
    client = await serve(project)
    health = await (await client.get("/api/health")).json()
    assert [h["label"] for h in health["hubs"]] == [hub]
    listed = await client.get("/api/classes/references", params={"label": hub})
    [ref] = (await listed.json())["references"]
    assert health["hubs"][0]["reference_id"] == ref["id"] and ref["hub"] is True
    assert health["hubs"][0]["matches"] == 8
    assert health["hubs"][0]["agreement"] < health["hubs"][0]["typical"]
    classes = (await (await client.get("/api/classes")).json())["classes"]
    assert {c["label"] for c in classes if c["hub"]} == {hub}


async def test_no_hub_without_enough_history(client: Client) -> None:
    health = await (await client.get("/api/health")).json()
    assert health["hubs"] == []
    classes = (await (await client.get("/api/classes")).json())["classes"]
    assert not any(c["hub"] for c in classes)
