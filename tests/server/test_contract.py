"""Real answers and events of a running server hold to ``server.contract``.

For every shape met (nested ones too), the keys sent are the keys declared: the
required ones always, nothing undeclared ever, and every optional one at least once.
Every shape of the contract and every kind of event must be met, so a key or a shape
added on one side only fails here.
"""

# No ``from __future__ import annotations``: on Python 3.11 it makes ``TypedDict`` count
# ``NotRequired`` keys as required (see ``server.contract``), and this file has its own.
import asyncio
import shutil
import types
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import (
    Any,
    Literal,
    NotRequired,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

import numpy as np
import pytest

from server import contract
from server.engine.catalog.store import QueueEntry, Store
from server.engine.project.config import CameraConfig, Project, load_project
from server.engine.vision.images import encode_jpeg

from .conftest import KNOWN_QUERY, PROJECT_TEXT, UNKNOWN_QUERY, Client, query
from .test_clusters import variants
from .test_hubs import seed_hub_history

Shape = Any
"""A ``TypedDict`` class (the typing module has no name for their type)."""


def _extends(shape: Shape, base: Shape) -> bool:
    """Whether ``shape`` has every field of ``base``, as declared there (what extending
    it gives; Python 3.11 keeps no other trace of a ``TypedDict``'s bases)."""
    return get_type_hints(base).items() <= get_type_hints(shape).items()


class Conformance:
    """Checks values against shapes, and remembers the keys sent of each shape."""

    def __init__(self) -> None:
        self.sent: dict[Shape, set[str]] = defaultdict(set)

    def check(self, shape: Shape, value: Any, where: str = "") -> None:
        where = where or shape.__name__
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        required, optional = shape.__required_keys__, shape.__optional_keys__
        keys = set(value)
        assert not keys - required - optional, f"{where}: undeclared {keys - required - optional}"
        assert required <= keys, f"{where}: missing {required - keys}"
        self.sent[shape] |= keys
        for key, hint in get_type_hints(shape).items():
            if key in value:
                self._walk(hint, value[key], f"{where}.{key}")

    def _walk(self, hint: Any, value: Any, where: str) -> None:
        origin, args = get_origin(hint), get_args(hint)
        if is_typeddict(hint):
            self.check(hint, value, where)
        elif origin is Literal:
            assert value in args, f"{where}: {value!r} is not one of {args}"
        elif origin in (Union, types.UnionType):
            fitting = [a for a in args if _fits(a, value)]
            assert fitting, f"{where}: {value!r} fits none of {args}"
            self._walk(fitting[0], value, where)
        elif origin is list:
            assert isinstance(value, list), f"{where}: not a list"
            for i, item in enumerate(value):
                self._walk(args[0], item, f"{where}[{i}]")
        elif origin is dict:
            assert isinstance(value, dict), f"{where}: not an object"
            for key, item in value.items():
                self._walk(args[1], item, f"{where}[{key!r}]")

    def never_sent(self) -> dict[str, set[str]]:
        """Declared keys of the shapes met that no value had."""
        out = {}
        for shape, keys in self.sent.items():
            missing = set(shape.__required_keys__ | shape.__optional_keys__) - keys
            if missing:
                out[shape.__name__] = missing
        return out

    def unmet(self, module: Any) -> set[str]:
        """The shapes of ``module`` no value was checked against (directly or as a base
        of one that was)."""
        shapes = {name: obj for name, obj in vars(module).items() if is_typeddict(obj)}
        return {
            name for name, obj in shapes.items() if not any(_extends(met, obj) for met in self.sent)
        }


def _fits(hint: Any, value: Any) -> bool:
    """Whether ``value`` is of the kind ``hint`` says (enough to pick a union member)."""
    origin = get_origin(hint)
    if hint is type(None):
        return value is None
    if is_typeddict(hint) or origin is dict:
        return isinstance(value, dict)
    if origin is list:
        return isinstance(value, list)
    if origin is Literal:
        return value in get_args(hint)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, hint)


def event_shape(event: dict[str, Any]) -> Shape:
    """The one kind of ``contract.Event`` whose required ``Literal`` fields (``type``,
    ``action``) the event's values match."""

    def matches(shape: Shape) -> bool:
        hints = get_type_hints(shape)
        return all(
            event.get(key) in get_args(hints[key])
            for key in shape.__required_keys__
            if get_origin(hints[key]) is Literal
        )

    [shape] = [s for s in get_args(contract.Event) if matches(s)]
    return shape


# --- the checker itself can fail -------------------------------------------------------


class _Inner(TypedDict):
    x: int


class _Outer(TypedDict):
    inner: list[_Inner]
    maybe: NotRequired[str]


def test_a_key_added_on_one_side_only_is_caught() -> None:
    with pytest.raises(AssertionError, match="undeclared"):
        Conformance().check(_Outer, {"inner": [{"x": 1, "y": 2}]})  # the server added one
    with pytest.raises(AssertionError, match="missing"):
        Conformance().check(_Outer, {"inner": [{}]})  # the contract added one
    quiet = Conformance()
    quiet.check(_Outer, {"inner": [{"x": 1}]})
    assert quiet.never_sent() == {"_Outer": {"maybe"}}  # an optional key never sent
    odd = {"scope": "everything", "name": "n", "threshold": None, "margin": None}
    with pytest.raises(AssertionError, match="is not one of"):
        Conformance().check(contract.ThresholdOverride, odd)  # a value outside a Literal


def test_events_are_told_apart_by_type_and_action() -> None:
    assert event_shape({"type": "queue", "action": "added"}) is contract.QueueEvent
    assert event_shape({"type": "references", "action": "added"}) is contract.ReferencesEvent
    assert event_shape({"type": "references", "action": "merged"}) is contract.ClassesEvent


# --- the real server -------------------------------------------------------------------


async def _json(resp: Any, status: int = 200) -> Any:
    body = await resp.json()
    assert resp.status == status, body
    return body


async def _identify_and_review(client: Client, c: Conformance) -> None:
    """Identify, queue a miss (twice: seen again), list it, label it, see the stats,
    undo it, fail to undo it again, and skip it in bulk (a job)."""
    headers = {"Content-Type": "image/jpeg"}
    for name, source in ((KNOWN_QUERY, "api"), (UNKNOWN_QUERY, "door"), (UNKNOWN_QUERY, "door")):
        params = {"source": source}
        resp = await client.post("/api/identify", data=query(name), params=params, headers=headers)
        body = await _json(resp)
        c.check(contract.IdentifyResponse, body)
    item = f"/api/review/{body['objects'][0]['review_id']}"
    c.check(contract.ReviewPage, await _json(await client.get("/api/review")))
    c.check(contract.ReviewItem, await _json(await client.get(item)))
    label = {"action": "correct", "label": "Germany"}
    c.check(contract.ReviewItem, await _json(await client.post(f"{item}/resolve", json=label)))
    c.check(contract.Stats, await _json(await client.get("/api/stats")))
    c.check(contract.ReviewItem, await _json(await client.post(f"{item}/reopen")))
    c.check(contract.ErrorBody, await _json(await client.post(f"{item}/reopen"), 409))
    skip = {"ids": [body["objects"][0]["review_id"]], "action": "skip"}
    bulk = await _json(await client.post("/api/review/bulk", json=skip))
    c.check(contract.ReviewItem, bulk["results"][0]["item"])
    c.check(contract.Job, bulk["job"])
    c.check(contract.Job, await _json(await client.get(f"/api/jobs/{bulk['job']['id']}")))


async def _annotations(client: Client, c: Conformance) -> None:
    """Annotate a new item (a missed object beside it, then its own decision), change
    the label (its reference follows), list and read them, and delete in bulk."""
    resp = await client.post(
        "/api/identify",
        data=query(UNKNOWN_QUERY),
        params={"source": "hall"},
        headers={"Content-Type": "image/jpeg"},
    )
    item = (await _json(resp))["objects"][0]["review_id"]
    missed = {"item_id": item, "type": "missed", "box": [0, 0, 10, 10]}
    c.check(
        contract.Annotation, await _json(await client.post("/api/annotations", json=missed), 201)
    )
    named = {"item_id": item, "type": "confirmed", "label": "Deutschland"}
    made = await _json(await client.post("/api/annotations", json=named), 201)
    c.check(contract.Annotation, made)
    change = await client.patch(f"/api/annotations/{made['id']}", json={"label": "Flag of Germany"})
    c.check(contract.Annotation, await _json(change))
    c.check(contract.AnnotationPage, await _json(await client.get("/api/annotations")))
    c.check(contract.Annotation, await _json(await client.get(f"/api/annotations/{made['id']}")))
    ops = {
        "operations": [
            {"op": "update", "id": made["id"], "label": "Germany's flag"},
            {"op": "delete", "id": made["id"]},
            {"op": "delete", "id": 10**6},
        ]
    }
    c.check(
        contract.BulkResponse, await _json(await client.post("/api/annotations/bulk", json=ops))
    )
    page = await _json(await client.get("/api/taxonomies/default/labels"))
    assert page["labels"], "the accepted Brazil is labelled"
    c.check(contract.AutoLabelPage, page)


async def _classes_and_thresholds(client: Client, c: Conformance) -> None:
    """List classes and a hub's references; rename, merge and add a reference; set a
    class's threshold, read the thresholds and a curve."""
    c.check(contract.ClassList, await _json(await client.get("/api/classes")))
    refs = await client.get("/api/classes/references", params={"label": "Japan"})
    c.check(contract.ClassReferences, await _json(refs))
    rename = {"from": "Apple Red", "to": "Apple"}
    c.check(
        contract.ClassRenamed, await _json(await client.post("/api/classes/rename", json=rename))
    )
    merge = {"from": ["Apple"], "into": "Banana"}
    c.check(
        contract.ClassesMerged, await _json(await client.post("/api/classes/merge", json=merge))
    )
    added = await client.post(
        "/api/references",
        data=query(UNKNOWN_QUERY),
        params={"label": "Germany"},
        headers={"Content-Type": "image/jpeg"},
    )
    c.check(contract.ReferenceAdded, await _json(added, 201))
    change = {"scope": "class", "name": "Brazil", "threshold": 0.9}
    c.check(contract.Thresholds, await _json(await client.put("/api/thresholds", json=change)))
    c.check(contract.Thresholds, await _json(await client.get("/api/thresholds")))
    curve = await client.get("/api/thresholds/curve", params={"taxonomy": "default"})
    c.check(contract.ThresholdCurve, await _json(curve))


async def _events_until_cleared(ws: Any) -> list[dict[str, Any]]:
    """Every event up to the one for the override ``Brazil`` cleared (sent last)."""
    events = []
    while True:
        event = await asyncio.wait_for(ws.receive_json(), 30)
        events.append(event)
        if event["type"] == "thresholds" and event["threshold"] is None:
            return events


def seed_judged(project: Project, embedder: Any, n: int = 30) -> None:
    """``n`` reviewed misses (rightly unknown) and one reviewed audit of an accepted
    answer, written as the review desk writes them, so that the reviews recommend
    thresholds (``ThresholdAdvice`` is sent)."""
    store = Store(project.db_path)
    rng = np.random.default_rng(3)
    ref = next(r for r in store.active_references() if r.label == "Brazil")
    try:
        for i in range(n + 1):
            audit = i == n
            score = 0.9 if audit else 0.3 + 0.01 * i
            top = {"label": "Brazil", "score": score, "cosine": score, "reference_id": ref.id}
            result = {
                "label": "Brazil" if audit else None,
                "score": score,
                "margin": 0.2,
                "matched": audit,
                "reason": "matched" if audit else "below_threshold",
                "candidates": [top],
            }
            vector = rng.normal(size=embedder.spec.dim)
            with store.transaction():
                made = store.record(
                    path="",
                    content_hash=f"judged-{i}",
                    width=64,
                    height=64,
                    model_id=embedder.spec.space_id,
                    embedding=vector / np.linalg.norm(vector),
                    result=result,  # type: ignore[arg-type]
                    queue=QueueEntry("seed", "default", reason="audit" if audit else None),
                    provenance={"threshold": 0.8, "margin": 0.05},
                )
                assert made.review_id is not None
                store.insert_annotation(
                    {
                        "type": "confirmed",
                        "image_id": made.image_id,
                        "observation_id": made.observation_id,
                        "review_id": made.review_id,
                        "predicted_label": result["label"],
                        "candidate_label": "Brazil",
                        "true_label": result["label"],
                        "taxonomy": "default",
                        "score": score,
                        "margin": 0.2,
                        "author": "local",
                        "provenance": {},
                    }
                )
                store.mark_resolved(made.review_id, "confirmed", result["label"], None)
    finally:
        store.close()


async def _label_and_reapply(client: Client, c: Conformance, tmp_path: Path) -> None:
    """Label a folder (a junk file in it), then re-apply; their jobs' events too."""
    folder = tmp_path / "to-label"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(query(KNOWN_QUERY))
    (folder / "junk.jpg").write_bytes(b"junk")
    body = await _json(await client.post("/api/label", json={"paths": [str(folder)]}))
    c.check(contract.LabelSummary, body["summary"])
    for result in body["results"]:
        if result["ok"]:
            c.check(contract.LabelledFile, result)
    ran = await _json(await client.post("/api/reapply", json={}))
    c.check(contract.Reapplication, ran["reapplication"])
    state = await _json(await client.get("/api/reapply"))
    c.check(contract.Reapplication, state["reapplication"])


OUTREACH = (
    "alerts:\n  unknown_rate: 0.5\n  window: 6\n  min_answers: 3\n"
    "webhooks:\n  - name: gone\n    url: http://127.0.0.1:9/refused\n"
    "    secret: a-secret-of-sixteen-chars\n    attempts: 1\n    events: [queue.added]\n"
)
"""An alert soon raised, and a webhook whose receiver refuses: a dead letter."""


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def _clusters_alerts_webhooks(client: Client, c: Conformance) -> None:
    """Queue a new thing six times over (an alert is raised: mostly unknowns), group
    it, see it, name it; the webhook's dead letters, sent again."""
    for n, data in enumerate(variants(UNKNOWN_QUERY, 6)):
        params = {"source": f"cam{n}"}
        headers = {"Content-Type": "image/jpeg"}
        await _json(await client.post("/api/identify", data=data, params=params, headers=headers))
    grouped = await _json(await client.post("/api/clusters/regroup"))
    c.check(contract.Clusters, grouped)
    [cluster] = grouped["clusters"]
    c.check(contract.Cluster, await _json(await client.get(f"/api/clusters/{cluster['id']}")))
    c.check(contract.Clusters, await _json(await client.get("/api/clusters")))
    points = (await _json(await client.get("/api/clusters/map")))["points"]
    for point in points:
        c.check(contract.MapPointInfo, point)
    named = await client.post(f"/api/clusters/{cluster['id']}/name", json={"label": "Neuland"})
    c.check(contract.ClusterNamed, await _json(named))

    async def raised() -> bool:
        return bool((await _json(await client.get("/api/health")))["alerts"])

    async def dead() -> bool:
        return bool((await _json(await client.get("/api/webhooks")))["dead_letters"])

    await _until(raised)
    # Health while the alert is up (later answers may clear it).
    c.check(contract.Health, await _json(await client.get("/api/health")))
    await _until(dead)
    c.check(contract.Webhooks, await _json(await client.get("/api/webhooks")))
    c.check(contract.Resent, await _json(await client.post("/api/webhooks/resend", json={})))


async def _detector_found_nothing(
    serve: Callable[..., Awaitable[Client]], built: Path, tmp_path: Path, c: Conformance
) -> None:
    """A project whose detector (the quad finder) finds nothing in a bare picture: the
    located object says so."""
    shutil.copytree(built / "data", tmp_path / "quad" / "data")
    file = tmp_path / "quad" / "p.yaml"
    file.write_text(
        PROJECT_TEXT.format(
            refs=built / "refs", data=tmp_path / "quad" / "data", extra="detector:\n  kind: quad\n"
        )
    )
    client = await serve(load_project(file))
    bare = np.clip(np.random.default_rng(1).normal(90, 8, (300, 400, 3)), 0, 255)
    resp = await client.post(
        "/api/identify",
        data=encode_jpeg(bare.astype(np.uint8), 90),
        headers={"Content-Type": "image/jpeg"},
    )
    body = await _json(resp)
    assert body["objects"][0]["detector_found_nothing"] is True
    c.check(contract.IdentifyResponse, body)


async def test_every_answer_and_event_holds_to_the_contract(
    serve: Callable[..., Awaitable[Client]],
    make_project: Callable[[str], Project],
    embedder: Any,
    tmp_path: Path,
    built: Path,
) -> None:
    project = make_project(OUTREACH)
    seed_hub_history(project, embedder, "Japan")  # so that health and classes have a hub
    seed_judged(project, embedder)  # so that the reviews recommend thresholds
    camera = CameraConfig(source=str(tmp_path / "gone.avi"), name="door")
    client = await serve(project, cameras=(camera,))
    c = Conformance()
    async with client.ws_connect("/api/events") as ws:
        await _identify_and_review(client, c)
        await _annotations(client, c)
        await _clusters_alerts_webhooks(client, c)
        await _classes_and_thresholds(client, c)
        await _label_and_reapply(client, c, tmp_path)
        c.check(contract.Health, await _json(await client.get("/api/health")))
        clear = {"scope": "class", "name": "Brazil"}
        await _json(await client.put("/api/thresholds", json=clear))
        events = await _events_until_cleared(ws)
    await _detector_found_nothing(serve, built, tmp_path, c)
    kinds = set()
    for event in events:
        kinds.add(event_shape(event))
        c.check(event_shape(event), event, f"event {event['type']}/{event.get('action')}")
    assert kinds == set(get_args(contract.Event))
    assert c.never_sent() == {}
    assert c.unmet(contract) == set()
