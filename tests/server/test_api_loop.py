"""Bulk auto-labelling of a folder and retroactive re-application through the API:
jobs with progress on the events socket, resumable, each refusing bad input."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from server.engine.project.config import Project
from tests.conftest import DEMO_QUERIES, DEMO_REFS
from tests.integration.crash import seed_answers

from .conftest import KNOWN_QUERY, UNKNOWN_QUERY, Client, error_of, identify, image_form, query


def folder_of(root: Path, names: list[str]) -> Path:
    folder = root / "incoming"
    (folder / "sub").mkdir(parents=True)
    for i, name in enumerate(names):
        shutil.copy(DEMO_QUERIES / name, (folder / "sub" if i % 2 else folder) / name)
    return folder


async def test_label_a_folder_as_a_job_with_progress_events(client: Client, tmp_path: Path) -> None:
    folder = folder_of(tmp_path, [KNOWN_QUERY, UNKNOWN_QUERY, "known-japan.jpg"])
    (folder / "junk.jpg").write_bytes(b"not a picture")
    async with client.ws_connect("/api/events") as ws:
        resp = await client.post("/api/label", json={"paths": [str(folder)]})
        body = await resp.json()
        assert resp.status == 200, body
        jobs = []
        while True:
            event = json.loads((await asyncio.wait_for(ws.receive(), 30)).data)
            if event["type"] == "job" and event["kind"] == "label":
                jobs.append(event)
                if event["status"] != "running":
                    break
    assert jobs[-1]["status"] == "done" and jobs[-1]["done"] == jobs[-1]["total"] == 4
    assert [e["done"] for e in jobs] == sorted(e["done"] for e in jobs)
    summary = body["summary"]
    assert summary["pictures"] == 4 and summary["labelled"] == 3 and summary["unreadable"] == 1
    assert summary["errors"][0]["path"].endswith("junk.jpg")
    by_name = {Path(r["path"]).name: r for r in body["results"]}
    assert by_name["junk.jpg"]["ok"] is False
    [brazil] = by_name[KNOWN_QUERY]["objects"]
    assert brazil["label"] == "Brazil" and brazil["status"] == "auto"
    [germany] = by_name[UNKNOWN_QUERY]["objects"]
    assert germany["label"] is None and germany["status"] == "pending"
    item = await (await client.get(f"/api/review/{germany['review_id']}")).json()
    assert item["source"] == "label"

    # A missed object annotated beside Germany's item is not Germany's label.
    missed = {"item_id": germany["review_id"], "type": "missed", "box": [0, 0, 20, 20]}
    resp = await client.post("/api/annotations", json={**missed, "label": "Japan"})
    assert resp.status == 201, await resp.text()
    again = await (await client.post("/api/label", json={"paths": [str(folder)]})).json()
    assert again["summary"]["labelled"] == 0 and again["summary"]["already_labelled"] == 3
    assert again["summary"]["classes"] == summary["classes"]
    by_name = {Path(r["path"]).name: r for r in again["results"]}
    assert by_name[UNKNOWN_QUERY]["objects"][0]["label"] is None


async def test_label_refuses_bad_paths(client: Client, tmp_path: Path) -> None:
    for bad in [{}, {"paths": []}, {"paths": "x"}, {"paths": [3]}, {"paths": ["a\x00b"]}]:
        resp = await client.post("/api/label", json=bad)
        assert await error_of(resp, 400) == "identify_error", bad
    resp = await client.post("/api/label", json={"paths": [str(tmp_path / "nowhere")]})
    assert await error_of(resp, 404) == "not_found"
    (tmp_path / "empty").mkdir()
    resp = await client.post("/api/label", json={"paths": [str(tmp_path / "empty")]})
    assert "no image files" in (await resp.json())["error"]["message"]
    resp = await client.post("/api/label", json={"paths": [str(tmp_path)], "wait": "yes"})
    assert await error_of(resp, 400) == "identify_error"


async def test_reapply_labels_what_a_new_reference_now_matches(client: Client) -> None:
    unknown = (await identify(client, query(UNKNOWN_QUERY)))["objects"][0]
    known = (await identify(client, query(KNOWN_QUERY)))["objects"][0]
    assert not unknown["matched"] and unknown["review_id"] is not None and known["matched"]
    # Nothing changed yet: nothing moves.
    first = await (await client.post("/api/reapply", json={})).json()
    assert first["reapplication"]["status"] == "done"
    assert first["reapplication"]["counts"]["unchanged"] == 2
    # Germany becomes a class (its reference the flag itself), then old answers are
    # decided again: the queued Germany matches now and leaves the queue as ``auto``.
    flag = (DEMO_REFS.parent / "queries" / UNKNOWN_QUERY).read_bytes()
    added = await client.post("/api/references", data=image_form(flag, label="Germany"))
    assert added.status == 201, await added.text()
    async with client.ws_connect("/api/events") as ws:
        resp = await client.post("/api/reapply", json={})
        body = await resp.json()
        assert resp.status == 200, body
        seen: list[dict[str, Any]] = []
        while not any(e["type"] == "queue" and e["action"] == "resolved" for e in seen):
            seen.append(json.loads((await asyncio.wait_for(ws.receive(), 30)).data))
    run = body["reapplication"]
    assert run["status"] == "done" and run["done"] == run["total"] == 2
    counts = run["counts"]
    assert counts["newly_labelled"] == 1 and counts["unchanged"] == 1 and counts["resolved"] == 1
    # Germany's reference is newer than the answer: its evidence was not stored, so
    # the second stage ran again from the queued picture.
    assert counts["second_stage"] >= 1 and counts["second_stage_rerun"] >= 1
    resolved = next(e for e in seen if e["type"] == "queue" and e["action"] == "resolved")
    assert resolved["status"] == "auto" and resolved["label"] == "Germany"
    item = await (await client.get(f"/api/review/{unknown['review_id']}")).json()
    assert item["status"] == "auto"
    state = await (await client.get("/api/reapply")).json()
    assert state["reapplication"]["id"] == run["id"]


async def test_a_second_reapplication_while_one_runs_is_refused(
    serve: Any, project: Project, embedder: Any
) -> None:
    seed_answers(project.db_path, embedder.spec.space_id, embedder.spec.dim, 3000)
    client = await serve(project)
    resp = await client.post("/api/reapply", json={"wait": False})
    assert resp.status == 202
    job = (await resp.json())["job"]
    second = await client.post("/api/reapply", json={})
    assert await error_of(second, 409) == "conflict"
    assert f"job {job['id']}" in (await second.json())["error"]["message"]
    for _ in range(600):
        state = await (await client.get(f"/api/jobs/{job['id']}")).json()
        if state["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert state["status"] == "done" and state["done"] == state["total"] == 3000
    bad = await client.post("/api/reapply", json={"wait": 1})
    assert await error_of(bad, 400) == "identify_error"
