"""Property: whatever JSON a client sends to a JSON route, the answer is never a 5xx
(Hypothesis generates the bodies; derandomised, so every run sends the same ones)."""

from __future__ import annotations

import asyncio
import http.client
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import UNKNOWN_QUERY, Client, identify, query

ROUTES = [
    ("PUT", "/api/thresholds"),
    ("POST", "/api/classes/rename"),
    ("POST", "/api/classes/merge"),
    ("POST", "/api/review/bulk"),
    ("POST", "/api/review/1/resolve"),
    ("POST", "/api/references/import"),
    ("POST", "/api/annotations"),
    ("PATCH", "/api/annotations/1"),
    ("POST", "/api/annotations/bulk"),
    ("POST", "/api/taxonomies/fruit/promote"),
]
FIELDS = [
    "scope",
    "name",
    "threshold",
    "margin",
    "from",
    "to",
    "into",
    "ids",
    "action",
    "label",
    "candidate",
    "region",
    "path",
    "taxonomy",
    "item_id",
    "type",
    "box",
    "operations",
    "op",
    "id",
    "min_confidence",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        ["Brazil", "Japan", "default", "class", "taxonomy", "confirm", "correct", "missed"]
        + ["confirmed", "corrected", "false_positive", "create", "update", "delete"]
    )
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), values, max_size=6) | values


async def test_no_json_body_gets_a_5xx(client: Client) -> None:
    # Item 1 and its annotation 1 exist, so that bodies reach past "no such item".
    await identify(client, query(UNKNOWN_QUERY))
    missed = {"item_id": 1, "type": "missed", "box": [0, 0, 8, 8]}
    assert (await client.post("/api/annotations", json=missed)).status == 201
    port = client.server.port
    seen: list[int] = []

    @settings(
        max_examples=450,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(route=st.sampled_from(ROUTES), body=bodies)
    def send(route: tuple[str, str], body: Any) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request(
                route[0],
                route[1],
                body=json.dumps(body),
                headers={"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            resp.read()
        finally:
            conn.close()
        seen.append(resp.status)
        assert resp.status < 500, (route, body, resp.status)

    await asyncio.to_thread(send)
    assert len(seen) >= 450 and any(400 <= s < 500 for s in seen)
    health = await (await client.get("/api/health")).json()
    assert health["server"]["server_errors"] == 0
