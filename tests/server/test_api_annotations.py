"""Annotations over the API: each decision stored with the seeds' meaning, payload and
provenance; create, list, change, delete and bulk; audits of accepted answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.engine.project.config import Project

from .conftest import KNOWN_QUERY, UNKNOWN_QUERY, Client, error_of, identify, query


async def queued(client: Client, source: str, name: str = UNKNOWN_QUERY) -> dict[str, Any]:
    """The review item a picture was queued as."""
    obj = (await identify(client, query(name), source=source))["objects"][0]
    assert obj["review_id"] is not None, obj
    return await (await client.get(f"/api/review/{obj['review_id']}")).json()  # type: ignore[no-any-return]


async def annotate(client: Client, status: int = 201, **body: Any) -> Any:
    resp = await client.post("/api/annotations", json=body)
    answer = await resp.json()
    assert resp.status == status, answer
    return answer


async def classes(client: Client) -> dict[str, int]:
    body = await (await client.get("/api/classes")).json()
    return {c["label"]: c["references"] for c in body["classes"]}


async def test_a_review_decision_is_an_annotation_with_payload_and_provenance(
    client: Client,
) -> None:
    item = await queued(client, "door")
    resp = await client.post(
        f"/api/review/{item['id']}/resolve",
        json={"action": "confirm"},
        headers={"X-Identify-Reviewer": "alice" + "x" * 100},
    )
    assert resp.status == 200
    page = await (await client.get("/api/annotations", params={"item_id": item["id"]})).json()
    [annotation] = page["annotations"]
    # Unknown was answered for a flag whose class is indexed: the answer was wrong.
    assert annotation["type"] == "corrected"
    assert annotation["predicted_label"] is None
    assert annotation["candidate_label"] == item["candidates"][0]["label"]
    assert annotation["true_label"] == item["candidates"][0]["label"]
    assert annotation["score"] == item["score"] and annotation["margin"] == item["margin"]
    assert annotation["author"] == "local:alice" + "x" * 59  # names are cut to 64
    assert annotation["reference_id"] is not None
    w, h = annotation["image_size"]
    assert max(w, h) <= 384 and min(w, h) > 0
    prov = annotation["provenance"]
    assert prov["embedder"].startswith("efficientnet") and prov["detector"] == "locate"
    assert (prov["threshold"], prov["margin"]) == (0.8, 0.05)


async def test_unknown_and_nothing_there_are_told_apart(client: Client) -> None:
    a, b = await queued(client, "a"), await queued(client, "b")
    for item, action in ((a, "unknown"), (b, "false_positive")):
        resp = await client.post(f"/api/review/{item['id']}/resolve", json={"action": action})
        assert resp.status == 200
    types = {
        x["item_id"]: x["type"]
        for x in (await (await client.get("/api/annotations")).json())["annotations"]
    }
    # "None of the known classes" confirms an unknown answer; "nothing there" is a
    # hard negative. Neither makes a reference.
    assert types == {a["id"]: "confirmed", b["id"]: "false_positive"}
    assert sum((await classes(client)).values()) == 4


async def test_create_with_a_type_checks_its_meaning(client: Client) -> None:
    item = await queued(client, "door")
    top = item["candidates"][0]["label"]
    wrong = await client.post(
        "/api/annotations", json={"item_id": item["id"], "type": "confirmed", "label": top}
    )
    assert "that is corrected, not confirmed" in (await wrong.json())["error"]["message"]
    fp = await client.post(
        "/api/annotations",
        json={"item_id": item["id"], "type": "false_positive", "label": "x"},
    )
    assert await error_of(fp, 400) == "identify_error"
    made = await annotate(client, item_id=item["id"], type="corrected", label=top)
    assert made["reference_id"] is not None and made["true_label"] == top
    again = await client.post(
        "/api/annotations", json={"item_id": item["id"], "type": "corrected", "label": top}
    )
    assert await error_of(again, 409) == "conflict"
    assert (await (await client.get(f"/api/review/{item['id']}")).json())["status"] == "corrected"


async def test_missed_objects_need_a_box_inside_the_picture(client: Client) -> None:
    item = await queued(client, "door")
    no_box = await client.post("/api/annotations", json={"item_id": item["id"], "type": "missed"})
    assert "needs the box" in (await no_box.json())["error"]["message"]
    for box in ([0, 0, 5000, 10], [10, 10, 10, 20], [-1, 0, 5, 5], [0, 0, 5], [0, 0, 5.5, 9]):
        bad = await client.post(
            "/api/annotations", json={"item_id": item["id"], "type": "missed", "box": box}
        )
        assert await error_of(bad, 400) == "identify_error", box
    made = await annotate(client, item_id=item["id"], type="missed", box=[5, 6, 50, 60])
    assert made["box"] == [5, 6, 50, 60] and made["predicted_label"] is None
    # A missed object is beside the item: the item still waits for its own decision.
    assert (await (await client.get(f"/api/review/{item['id']}")).json())["status"] == "pending"
    gone = await client.post(
        "/api/annotations", json={"item_id": 10**6, "type": "missed", "box": [0, 0, 5, 5]}
    )
    assert await error_of(gone, 404) == "not_found"


async def test_changing_a_label_moves_its_reference_and_deleting_undoes_it(
    client: Client,
) -> None:
    item = await queued(client, "door")
    made = await annotate(client, item_id=item["id"], type="confirmed", label="Germany")
    assert (await classes(client))["Germany"] == 1
    resp = await client.patch(f"/api/annotations/{made['id']}", json={"label": "Deutschland"})
    changed = await resp.json()
    assert resp.status == 200 and changed["reference_id"] == made["reference_id"]
    now = await classes(client)
    assert "Germany" not in now and now["Deutschland"] == 1
    obj = (await identify(client, query(UNKNOWN_QUERY), record="false"))["objects"][0]
    assert obj["label"] == "Deutschland"
    # Saying nothing is there takes the reference away.
    fp = await client.patch(
        f"/api/annotations/{made['id']}", json={"type": "false_positive", "label": None}
    )
    assert (await fp.json())["reference_id"] is None and "Deutschland" not in await classes(client)
    assert (await (await client.get(f"/api/review/{item['id']}")).json())["status"] == (
        "false_positive"
    )
    bad = await client.patch(f"/api/annotations/{made['id']}", json={"author": "mallory"})
    assert await error_of(bad, 400) == "identify_error"
    assert (await client.delete(f"/api/annotations/{made['id']}")).status == 200
    assert (await (await client.get(f"/api/review/{item['id']}")).json())["status"] == "pending"
    assert (await client.get(f"/api/annotations/{made['id']}")).status == 404


async def test_undo_in_review_deletes_the_annotation(client: Client) -> None:
    item = await queued(client, "door")
    await client.post(
        f"/api/review/{item['id']}/resolve", json={"action": "correct", "label": "Germany"}
    )
    assert (await (await client.get("/api/annotations")).json())["total"] == 1
    assert (await client.post(f"/api/review/{item['id']}/reopen")).status == 200
    assert (await (await client.get("/api/annotations")).json())["total"] == 0
    assert "Germany" not in await classes(client)


async def test_listing_filters(client: Client) -> None:
    a, b = await queued(client, "a"), await queued(client, "b")
    await annotate(client, item_id=a["id"], type="confirmed", label="Flags > Europe > Germany")
    await annotate(client, item_id=b["id"], type="false_positive")
    await annotate(client, item_id=b["id"], type="missed", box=[0, 0, 9, 9])

    async def ids(**params: Any) -> list[str]:
        resp = await client.get("/api/annotations", params=params)
        body = await resp.json()
        assert resp.status == 200, body
        return [x["type"] for x in body["annotations"]]

    assert await ids() == ["missed", "false_positive", "confirmed"]
    assert await ids(type="missed") == ["missed"]
    assert await ids(label="Flags > Europe") == ["confirmed"]
    assert await ids(label="Flags > Eur") == []  # a level of the path, not a prefix
    assert await ids(item_id=str(b["id"])) == ["missed", "false_positive"]
    assert await ids(limit="1") == ["missed"]
    assert await ids(since="2999-01-01") == []
    assert await ids(author="local") == ["missed", "false_positive", "confirmed"]
    bad = await client.get("/api/annotations", params={"type": "approved"})
    assert "unknown annotation type" in (await bad.json())["error"]["message"]
    stats = await (await client.get("/api/stats", params={"label": "Flags"})).json()
    assert stats["annotations"] == 1 and stats["counts"]["confirmed"] == 1
    depth = await (await client.get("/api/stats", params={"depth": "1"})).json()
    assert {row["label"] for row in depth["labels"]} == {"Flags", "(none)"}


async def test_bulk_applies_each_operation_on_its_own(client: Client) -> None:
    items = [await queued(client, f"s{i}") for i in range(3)]
    ops: list[Any] = [
        {"op": "create", "item_id": items[0]["id"], "type": "false_positive"},
        {"op": "create", "item_id": 10**6, "type": "false_positive"},
        {"op": "create", "item_id": items[1]["id"], "type": "confirmed", "label": "Ümlaut ★ flag"},
        "not an operation",
        {"op": "rename", "id": 1},
        {"op": "create", "item_id": items[2]["id"], "type": "missed"},
        {"op": "create", "item_id": items[2]["id"], "type": "missed", "box": [0, 0, 4, 4], "x": 1},
        {"op": "update", "id": 10**6, "label": "x"},
        {"op": "delete"},
    ]
    resp = await client.post("/api/annotations/bulk", json={"operations": ops})
    body = await resp.json()
    assert resp.status == 200, body
    assert [r["ok"] for r in body["results"]] == [True, False, True] + [False] * 6
    assert [r["index"] for r in body["results"]] == list(range(9))
    assert (body["applied"], body["failed"]) == (2, 7)
    assert body["results"][1]["error"]["code"] == "not_found"
    assert body["results"][2]["annotation"]["true_label"] == "Ümlaut ★ flag"
    made = body["results"][0]["annotation"]["id"]
    follow = [{"op": "update", "id": made, "type": "missed"}, {"op": "delete", "id": made}]
    body = await (await client.post("/api/annotations/bulk", json={"operations": follow})).json()
    assert [r["ok"] for r in body["results"]] == [False, True] and body["results"][1]["deleted"]
    too_many = [{"op": "delete", "id": i} for i in range(1001)]
    resp = await client.post("/api/annotations/bulk", json={"operations": too_many})
    assert "at most 1000" in (await resp.json())["error"]["message"] and resp.status == 400
    assert (await (await client.get("/api/annotations")).json())["total"] == 1


async def test_odd_labels_are_cleaned_or_refused(client: Client) -> None:
    item = await queued(client, "door")
    bad = await client.post(
        "/api/annotations",
        json={"item_id": item["id"], "type": "confirmed", "label": "a\x00b"},
    )
    assert await error_of(bad, 400) == "identify_error"
    assert (await (await client.get(f"/api/review/{item['id']}")).json())["status"] == "pending"


async def test_accepted_answers_are_audited(
    serve: Callable[..., Awaitable[Client]], make_project: Callable[[str], Project]
) -> None:
    """Every accepted answer here is sampled (share 1): it is queued too, and a
    reviewer who says it was wrong is counted as a correction of an accept."""
    client = await serve(make_project("  audit_share: 1.0\n  audit_margin: 0\n"))
    obj = (await identify(client, query(KNOWN_QUERY)))["objects"][0]
    assert obj["matched"] and obj["review_id"] is not None
    item = await (await client.get(f"/api/review/{obj['review_id']}")).json()
    assert item["reason"] == "audit" and item["accepted_label"] == obj["label"]
    resp = await client.post(
        f"/api/review/{item['id']}/resolve", json={"action": "correct", "label": "Japan"}
    )
    assert (await resp.json())["status"] == "corrected"
    [annotation] = (await (await client.get("/api/annotations")).json())["annotations"]
    assert (annotation["predicted_label"], annotation["true_label"]) == (obj["label"], "Japan")
    curve = await (await client.get("/api/thresholds/curve")).json()
    assert curve["reviewed"] == 1


async def test_thin_margins_are_queued_as_low_confidence(
    serve: Callable[..., Awaitable[Client]], make_project: Callable[[str], Project]
) -> None:
    client = await serve(make_project("  audit_share: 0\n  audit_margin: 1.0\n"))
    obj = (await identify(client, query(KNOWN_QUERY)))["objects"][0]
    item = await (await client.get(f"/api/review/{obj['review_id']}")).json()
    assert item["reason"] == "low_confidence"
    resp = await client.post(f"/api/review/{item['id']}/resolve", json={"action": "confirm"})
    assert (await resp.json())["status"] == "confirmed"


async def test_audits_can_be_turned_off(
    serve: Callable[..., Awaitable[Client]], make_project: Callable[[str], Project]
) -> None:
    off = await serve(make_project("  audit_share: 0\n  audit_margin: 0\n"))
    assert (await identify(off, query(KNOWN_QUERY)))["objects"][0]["review_id"] is None


async def test_renaming_a_class_renames_its_annotations(client: Client) -> None:
    item = await queued(client, "door")
    await annotate(client, item_id=item["id"], type="confirmed", label="Germany")
    resp = await client.post("/api/classes/rename", json={"from": "Germany", "to": "Deutschland"})
    assert resp.status == 200
    [row] = (await (await client.get("/api/annotations")).json())["annotations"]
    assert row["true_label"] == "Deutschland"


async def test_reviews_estimate_accuracy_beside_verify_and_warn_when_they_differ(
    serve: Callable[..., Awaitable[Client]], make_project: Callable[[str], Project]
) -> None:
    """One accepted answer (audited: it was wrong) and one unknown (rightly): half
    right, where verify predicted 0.95."""
    calibration = (
        "calibration:\n  threshold: 0.8\n  margin: 0.05\n  predicted_open_set_accuracy: 0.95\n"
    )
    client = await serve(make_project("  audit_share: 1.0\n  audit_margin: 0\n" + calibration))
    before = (await (await client.get("/api/stats")).json())["reality"]
    assert before["reviewed"] is None and before["predicted"] == 0.95
    accepted = (await identify(client, query(KNOWN_QUERY)))["objects"][0]
    rejected = (await identify(client, query(UNKNOWN_QUERY)))["objects"][0]
    waiting = (await (await client.get("/api/stats")).json())["reality"]
    assert set(waiting["waiting_for"]) == {"unknown answers", "other accepts (audits)"}
    await client.post(
        f"/api/review/{accepted['review_id']}/resolve", json={"action": "correct", "label": "Japan"}
    )
    await client.post(f"/api/review/{rejected['review_id']}/resolve", json={"action": "unknown"})
    real = (await (await client.get("/api/stats")).json())["reality"]
    assert real["reviewed"] == 0.5 and real["reviews"] == 2 and real["waiting_for"] == []
    assert "verify predicted 0.95" in real["warning"]
    health = await (await client.get("/api/health")).json()
    assert health["reality"] == real
