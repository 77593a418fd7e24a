"""Classes and references over the API: changes apply to the next request and survive
a restart and a later ``identify index``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from server.engine.project.config import Project
from server.engine.workflows.index import build_index
from server.http.keys import ENGINE
from tests.conftest import DEMO_REFS

from .conftest import KNOWN_QUERY, Client, error_of, identify, image_form, query

KIWI_PHOTO = "known-kiwi.jpg"
Serve = Callable[..., Awaitable[Client]]


async def classes(client: Client) -> dict[str, int]:
    body = await (await client.get("/api/classes")).json()
    return {c["label"]: c["references"] for c in body["classes"]}


async def add_kiwi(client: Client) -> dict[str, Any]:
    resp = await client.post(
        "/api/references",
        data=image_form((DEMO_REFS / "kiwi.png").read_bytes(), label="Kiwi", taxonomy="fruit"),
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_classes_are_listed_with_counts(client: Client) -> None:
    assert await classes(client) == {"Apple Red": 1, "Banana": 1, "Brazil": 1, "Japan": 1}


async def test_added_reference_is_matched_by_the_next_request_and_survives_restart(
    serve: Serve, project: Project, embedder: Any
) -> None:
    client = await serve(project)
    before = (await identify(client, query(KIWI_PHOTO)))["objects"][0]
    assert before["label"] != "Kiwi"
    added = await add_kiwi(client)
    assert added["label"] == "Kiwi" and added["taxonomy"] == "fruit"
    after = (await identify(client, query(KIWI_PHOTO)))["objects"][0]
    assert after["label"] == "Kiwi" and after["reference_id"] == added["id"]
    image = await client.get(f"/api/references/{added['id']}/image")
    assert image.status == 200 and (await image.read())[:4] == b"\x89PNG"
    await client.close()  # a full shutdown: the index is saved

    client = await serve(project)
    again = (await identify(client, query(KIWI_PHOTO)))["objects"][0]
    assert again["label"] == "Kiwi"
    await client.close()
    # A later `identify index` keeps it: it has no file in a reference folder.
    summary = build_index(project, embedder)
    assert summary.retired == 0 and summary.index_size == 5


async def test_reference_added_then_crash_is_back_after_restart(
    serve: Serve, project: Project
) -> None:
    client = await serve(project)
    await add_kiwi(client)
    # A crash after the database commit, before the index was saved: the index on disk
    # does not hold the new reference.
    await client.app[ENGINE].run(lambda s: setattr(s, "dirty", False))
    await client.close()
    client = await serve(project)
    assert (await identify(client, query(KIWI_PHOTO)))["objects"][0]["label"] == "Kiwi"


async def test_removed_reference_is_not_matched_and_stays_removed(
    serve: Serve, project: Project, embedder: Any
) -> None:
    client = await serve(project)
    refs = await (await client.get("/api/classes/references", params={"label": "Brazil"})).json()
    [ref] = refs["references"]
    assert ref["source"] == "folder"
    resp = await client.delete(f"/api/references/{ref['id']}")
    assert resp.status == 200
    obj = (await identify(client, query(KNOWN_QUERY)))["objects"][0]
    assert obj["label"] != "Brazil" and "Brazil" not in [c["label"] for c in obj["candidates"]]
    assert await error_of(await client.delete(f"/api/references/{ref['id']}"), 404) == "not_found"
    await client.close()
    summary = build_index(project, embedder)  # the file is still in the folder
    assert summary.deleted == 1 and summary.embedded == 0
    client = await serve(project)
    assert "Brazil" not in await classes(client)


async def test_rename_applies_at_once_and_to_later_indexing(
    serve: Serve, project: Project, embedder: Any
) -> None:
    client = await serve(project)
    resp = await client.post("/api/classes/rename", json={"from": "Brazil", "to": "Brasil"})
    assert resp.status == 200 and (await resp.json())["references"] == 1
    assert (await identify(client, query(KNOWN_QUERY)))["objects"][0]["label"] == "Brasil"
    await client.close()
    summary = build_index(project, embedder)
    assert summary.embedded == 0
    client = await serve(project)
    assert "Brasil" in await classes(client) and "Brazil" not in await classes(client)


async def test_rename_onto_an_existing_class_is_a_conflict(client: Client) -> None:
    resp = await client.post("/api/classes/rename", json={"from": "Brazil", "to": "Japan"})
    assert await error_of(resp, 409) == "conflict"
    resp = await client.post("/api/classes/rename", json={"from": "Nope", "to": "X"})
    assert await error_of(resp, 404) == "not_found"


async def test_merge_moves_every_reference_into_one_class(client: Client) -> None:
    resp = await client.post(
        "/api/classes/merge", json={"from": ["Brazil", "Japan"], "into": "Banana"}
    )
    assert resp.status == 200 and (await resp.json())["moved"] == 2
    assert await classes(client) == {"Apple Red": 1, "Banana": 3}
    assert (await identify(client, query(KNOWN_QUERY)))["objects"][0]["label"] == "Banana"


async def test_bad_reference_requests_get_clear_errors(client: Client) -> None:
    kiwi = (DEMO_REFS / "kiwi.png").read_bytes()
    no_label = await client.post("/api/references", data=image_form(kiwi))
    assert await error_of(no_label, 400) == "identify_error"
    blank = await client.post("/api/references", data=image_form(kiwi, label="   "))
    assert "empty" in (await blank.json())["error"]["message"]
    control = await client.post("/api/references", data=image_form(kiwi, label="a\x07b"))
    assert await error_of(control, 400) == "identify_error"
    bad_tax = await client.post(
        "/api/references", data=image_form(kiwi, label="Kiwi", taxonomy="nope")
    )
    assert "not declared" in (await bad_tax.json())["error"]["message"]
    bad_image = await client.post("/api/references", data=image_form(b"nope", label="Kiwi"))
    assert await error_of(bad_image, 422) == "image_rejected"
    assert await error_of(await client.get("/api/references/999/image"), 404) == "not_found"
    assert await error_of(await client.get("/api/references/abc/image"), 404) == "not_found"
    assert (
        await error_of(await client.get("/api/classes/references", params={"label": "Nope"}), 404)
        == "not_found"
    )
    malformed = await client.post(
        "/api/classes/rename", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert "malformed JSON" in (await malformed.json())["error"]["message"]
    wrong_type = await client.post(
        "/api/classes/merge", data=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert await error_of(wrong_type, 415) == "unsupported_media_type"
    assert await classes(client) == {"Apple Red": 1, "Banana": 1, "Brazil": 1, "Japan": 1}


async def test_odd_label_characters_are_kept(client: Client) -> None:
    kiwi = (DEMO_REFS / "kiwi.png").read_bytes()
    label = "Fruit > Kiwi / «gold» 🥝"
    resp = await client.post("/api/references", data=image_form(kiwi, label=label))
    assert (await resp.json())["label"] == label
    refs = await client.get("/api/classes/references", params={"label": label})
    assert refs.status == 200


async def test_import_from_a_server_path_names_files_by_the_rules(
    client: Client, tmp_path: Path
) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "kiwi_gold.png").write_bytes((DEMO_REFS / "kiwi.png").read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("ignored: not an image type")
    resp = await client.post("/api/references/import", json={"path": str(folder)})
    body = await resp.json()
    assert resp.status == 201 and body["added"] == 1
    by_name = {Path(r["path"]).name: r for r in body["results"]}
    assert by_name["kiwi_gold.png"]["label"] == "Kiwi Gold"
    assert by_name["broken.png"]["error"]["code"] == "image_rejected"
    one = await client.post(
        "/api/references/import", json={"path": str(folder / "kiwi_gold.png"), "label": "Kiwi"}
    )
    assert (await one.json())["results"][0]["label"] == "Kiwi"
    missing = await client.post("/api/references/import", json={"path": str(tmp_path / "no")})
    assert await error_of(missing, 404) == "not_found"
    assert (await classes(client))["Kiwi Gold"] == 1


async def test_one_client_may_have_only_a_few_writes_in_flight(client: Client) -> None:
    from server.http.limits import MAX_WRITES_PER_CLIENT

    async def add(i: int) -> int:
        resp = await client.post(
            "/api/references", data=image_form(query(KNOWN_QUERY), label=f"Many {i}")
        )
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(add(i) for i in range(MAX_WRITES_PER_CLIENT + 4)))
    assert set(statuses) <= {201, 429} and 429 in statuses and 201 in statuses, statuses
    health = await (await client.get("/api/health")).json()
    assert health["server"]["writes_refused"] + health["server"]["busy_refused"] == statuses.count(
        429
    )
    assert health["server"]["writes_in_flight"] == 0


async def test_references_are_embedded_off_the_engine_thread(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from server.engine.live.service import Service

    seen: dict[str, str] = {}
    for name in ("prepare_reference", "commit_reference"):
        original = getattr(Service, name)

        def spy(
            self: Service,
            *args: object,
            _original: object = original,
            _name: str = name,
            **kwargs: object,
        ) -> object:
            seen[_name] = threading.current_thread().name
            return _original(self, *args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(Service, name, spy)
    resp = await client.post(
        "/api/references", data=image_form(query(KNOWN_QUERY), label="Offthread")
    )
    assert resp.status == 201
    assert seen["prepare_reference"].startswith("prepare")
    assert seen["commit_reference"].startswith("engine")
