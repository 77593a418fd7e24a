"""Taxonomy modes: a separate taxonomy keeps its references curated; answers and
reviewers' labels are stored as auto-labels (with their pictures) until promoted."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from server.engine.project.config import Project, load_project

from .conftest import (
    KNOWN_QUERY,
    PROJECT_TEXT,
    UNKNOWN_QUERY,
    Client,
    error_of,
    identify,
    query,
)

Serve = Callable[..., Awaitable[Client]]


@pytest.fixture()
def separate(built: Path, tmp_path: Path) -> Project:
    """The served project with its default taxonomy curated (``mode: separate``)."""
    shutil.copytree(built / "data", tmp_path / "data")
    text = PROJECT_TEXT.format(refs=built / "refs", data=tmp_path / "data", extra="")
    text = text.replace("    margin: 0.05\n", "    margin: 0.05\n    mode: separate\n", 1)
    file = tmp_path / "p.yaml"
    file.write_text(text)
    return load_project(file)


async def classes(client: Client) -> dict[str, int]:
    body = await (await client.get("/api/classes")).json()
    return {c["label"]: c["references"] for c in body["classes"]}


async def labels(client: Client, **params: Any) -> dict[str, Any]:
    resp = await client.get("/api/taxonomies/default/labels", params=params)
    body = await resp.json()
    assert resp.status == 200, body
    return body  # type: ignore[no-any-return]


async def test_a_separate_taxonomy_stores_labels_and_promotes_them(
    serve: Serve, separate: Project
) -> None:
    client = await serve(separate)
    before = await classes(client)
    known = (await identify(client, query(KNOWN_QUERY)))["objects"][0]
    assert known["matched"] and known["review_id"] is None
    unknown = (await identify(client, query(UNKNOWN_QUERY)))["objects"][0]
    resp = await client.post(
        f"/api/review/{unknown['review_id']}/resolve",
        json={"action": "correct", "label": "Germany"},
    )
    item = await resp.json()
    # The label is stored as an annotation, not made a reference.
    assert item["status"] == "confirmed" and item["reference_id"] is None
    assert await classes(client) == before
    body = await labels(client)
    assert body["total"] == 2
    named, auto = body["labels"]
    assert (named["label"], named["reviewed"]) == ("Germany", True)
    assert named["item_id"] == unknown["review_id"] and not named["matched"]
    assert (auto["label"], auto["matched"], auto["reviewed"]) == ("Brazil", True, False)
    assert auto["confidence"] == known["score"] and auto["picture_kept"]
    assert auto["source_reference_id"] == known["reference_id"]
    assert auto["taxonomy"] == "default" and auto["model"].startswith("efficientnet")
    # A floor above every score keeps the reviewer's label only.
    floor = str(known["score"] + 0.01)
    assert [x["label"] for x in (await labels(client, min_confidence=floor))["labels"]] == [
        "Germany"
    ]

    resp = await client.post("/api/taxonomies/default/promote", json={"min_confidence": 0})
    done = await resp.json()
    assert resp.status == 200 and done["promoted"] == 2, done
    after = await classes(client)
    assert after["Germany"] == 1 and after["Brazil"] == before["Brazil"] + 1
    promoted = {x["id"]: x["promoted_reference_id"] for x in (await labels(client))["labels"]}
    assert all(promoted.values())
    # The promoted thing is known now; promoting again finds nothing left.
    again = await identify(client, query(UNKNOWN_QUERY), record="0")
    assert again["objects"][0]["label"] == "Germany"
    nothing = await client.post("/api/taxonomies/default/promote", json={"min_confidence": 0})
    assert (await nothing.json())["promoted"] == 0
    twice = await client.post("/api/taxonomies/default/promote", json={"ids": [named["id"]]})
    assert await error_of(twice, 404) == "not_found"


async def test_promote_by_default_takes_the_confident_answers_only(
    serve: Serve, separate: Project
) -> None:
    client = await serve(separate)
    known = (await identify(client, query(KNOWN_QUERY)))["objects"][0]
    resp = await client.post(
        "/api/taxonomies/default/promote", json={"min_confidence": known["score"] + 0.01}
    )
    assert (await resp.json())["promoted"] == 0
    [answer] = (await labels(client))["labels"]
    resp = await client.post("/api/taxonomies/default/promote", json={"ids": [answer["id"]]})
    assert (await resp.json())["promoted"] == 1


async def test_an_audited_answer_is_promotable_only_as_its_reviewer_judged_it(
    serve: Serve, built: Path, tmp_path: Path
) -> None:
    shutil.copytree(built / "data", tmp_path / "data")
    text = PROJECT_TEXT.format(
        refs=built / "refs", data=tmp_path / "data", extra="  audit_share: 1.0\n"
    )
    text = text.replace("    margin: 0.05\n", "    margin: 0.05\n    mode: separate\n", 1)
    (tmp_path / "p.yaml").write_text(text)
    client = await serve(load_project(tmp_path / "p.yaml"))
    first = (await identify(client, query(KNOWN_QUERY), source="a"))["objects"][0]
    second = (await identify(client, query(KNOWN_QUERY), source="b"))["objects"][0]
    assert first["matched"] and first["review_id"] and second["review_id"]
    # Waiting for its reviewer, an audited answer is no label yet.
    assert (await labels(client))["total"] == 0
    await client.post(
        f"/api/review/{first['review_id']}/resolve", json={"action": "false_positive"}
    )
    await client.post(f"/api/review/{second['review_id']}/resolve", json={"action": "confirm"})
    # Nothing there: no label (it must never become a reference); confirmed: its label.
    body = await labels(client)
    assert [(x["item_id"], x["label"], x["reviewed"]) for x in body["labels"]] == [
        (second["review_id"], "Brazil", True)
    ]


async def test_promote_is_refused_where_it_means_nothing(
    serve: Serve, make_project: Callable[[str], Project]
) -> None:
    client = await serve(make_project(""))
    unified = await client.post("/api/taxonomies/fruit/promote", json={})
    assert await error_of(unified, 409) == "conflict"
    assert "unified" in (await unified.json())["error"]["message"]
    nowhere = await client.post("/api/taxonomies/nope/promote", json={})
    assert await error_of(nowhere, 404) == "not_found"
    for body in ({"ids": []}, {"ids": ["x"]}, {"min_confidence": "high"}, {"wait": 1}):
        bad = await client.post("/api/taxonomies/fruit/promote", json=body)
        assert await error_of(bad, 400) == "identify_error", body
    assert (await client.get("/api/taxonomies/nope/labels")).status == 404
