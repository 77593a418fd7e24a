"""Imports run as jobs: a file a step, identification and health answered between
steps, progress on the events stream, cancelled by the API or by the client leaving;
a cancelled job has committed exactly the files it reports."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

from tests.conftest import DEMO_REFS

from .conftest import KNOWN, KNOWN_QUERY, Client, error_of, identify, query

FILES = 12


def folder_of_references(tmp_path: Path, n: int = FILES) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    sources = sorted(p for p in DEMO_REFS.glob("*.png") if p.stem not in KNOWN)
    for i in range(n):
        shutil.copy(sources[i % len(sources)], folder / f"thing_{i:02d}.png")
    return folder


async def job_of(client: Client, job_id: int) -> dict[str, Any]:
    resp = await client.get(f"/api/jobs/{job_id}")
    assert resp.status == 200
    return await resp.json()  # type: ignore[no-any-return]


async def until_finished(client: Client, job_id: int) -> dict[str, Any]:
    for _ in range(1200):
        job = await job_of(client, job_id)
        if job["status"] != "running":
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("the job did not finish")


async def labels(client: Client) -> set[str]:
    return {c["label"] for c in (await (await client.get("/api/classes")).json())["classes"]}


async def test_an_import_job_reports_progress_and_lets_health_and_identify_through(
    client: Client, tmp_path: Path
) -> None:
    folder = folder_of_references(tmp_path)
    async with client.ws_connect("/api/events") as events:
        resp = await client.post(
            "/api/references/import", json={"path": str(folder), "wait": False}
        )
        assert resp.status == 202
        job = (await resp.json())["job"]
        assert job["kind"] == "import" and job["total"] == FILES
        # Between steps the engine thread answers others: both come back while the
        # job has files left.
        health = await (await client.get("/api/health")).json()
        result = await identify(client, query(KNOWN_QUERY), record="0")
        during = await job_of(client, job["id"])
        assert health["project"] and result["objects"][0]["label"] == "Brazil"
        assert during["status"] == "running" and during["done"] < FILES
        finished = await until_finished(client, job["id"])
        progress = [("running", -1)]
        while progress[-1][0] == "running":
            event = await events.receive_json(timeout=30)
            if event["type"] == "job":
                progress.append((event["status"], event["done"]))
        progress.pop(0)
    assert finished["status"] == "done" and finished["done"] == FILES
    assert [r["ok"] for r in finished["results"]] == [True] * FILES
    # One event as it starts, one per file, one as it ends.
    assert progress[0] == ("running", 0) and progress[-1] == ("done", FILES)
    assert len(progress) == FILES + 2
    assert [d for _, d in progress] == sorted(d for _, d in progress)
    assert {f"Thing {i:02d}" for i in range(FILES)} <= await labels(client)
    listed = (await (await client.get("/api/jobs")).json())["jobs"]
    assert listed[0]["id"] == job["id"] and "results" not in listed[0]


async def test_a_cancelled_import_has_committed_exactly_what_it_reports(
    client: Client, tmp_path: Path
) -> None:
    folder = folder_of_references(tmp_path)
    resp = await client.post("/api/references/import", json={"path": str(folder), "wait": False})
    job_id = (await resp.json())["job"]["id"]
    while (await job_of(client, job_id))["done"] < 2:
        await asyncio.sleep(0.05)
    assert (await client.delete(f"/api/jobs/{job_id}")).status == 202
    job = await until_finished(client, job_id)
    assert job["status"] == "cancelled" and 2 <= job["done"] < FILES
    imported = {r["label"] for r in job["results"] if r["ok"]}
    assert len(job["results"]) == job["done"]
    assert {label for label in await labels(client) if label.startswith("Thing")} == imported
    assert await error_of(await client.delete(f"/api/jobs/{job_id}"), 409) == "conflict"
    assert await error_of(await client.get("/api/jobs/999"), 404) == "not_found"


async def test_an_import_stops_when_its_client_goes_away(client: Client, tmp_path: Path) -> None:
    folder = folder_of_references(tmp_path)
    body = json.dumps({"path": str(folder)}).encode()
    _, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b"POST /api/references/import HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{client.server.port}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    for _ in range(400):
        jobs = (await (await client.get("/api/jobs")).json())["jobs"]
        if jobs and jobs[0]["done"] >= 1:
            break
        await asyncio.sleep(0.05)
    writer.close()  # the client gives up
    job = await until_finished(client, jobs[0]["id"])
    assert job["status"] == "cancelled" and job["done"] < FILES


async def test_at_most_two_jobs_run_at_once(client: Client, tmp_path: Path) -> None:
    from server.http.limits import MAX_RUNNING_JOBS

    folder = folder_of_references(tmp_path)
    started = []
    for _ in range(MAX_RUNNING_JOBS):
        resp = await client.post(
            "/api/references/import", json={"path": str(folder), "wait": False}
        )
        assert resp.status == 202
        started.append((await resp.json())["job"]["id"])
    resp = await client.post("/api/references/import", json={"path": str(folder), "wait": False})
    assert await error_of(resp, 429) == "busy" and resp.headers["Retry-After"] == "1"
    for job_id in started:
        await client.delete(f"/api/jobs/{job_id}")
        await until_finished(client, job_id)
