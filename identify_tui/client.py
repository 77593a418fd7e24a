"""The TUI's only way to the project: the server's HTTP API (never the database)."""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack
from urllib.parse import quote

import aiohttp

from server.contract import (
    ClassInfo,
    ClassList,
    ClassReferences,
    Cluster,
    Clusters,
    Health,
    Job,
    MapPointInfo,
    Reapplication,
    ReferenceInfo,
    ResolveAction,
    ReviewItem,
    ReviewPage,
    Stats,
    ThresholdCurve,
    Thresholds,
    ThresholdScope,
)

REQUEST_TIMEOUT_S = 10.0
"""A request that takes longer is reported as failed (the item stays in the queue)."""


class ApiError(Exception):
    """The server answered with an error; ``message`` is for the user."""

    def __init__(self, message: str, code: str = "error", status: int = 0) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


class Unreachable(ApiError):
    """No answer: the server is not running, the URL is wrong, or the network is down."""


@dataclass(frozen=True)
class TuiConfig:
    """Where the server is and how to authenticate."""

    server: str = "http://127.0.0.1:8765"
    """Base URL of ``identify serve`` (for a remote box, through an SSH tunnel)."""
    token: str | None = None
    """Bearer token, when the server was started with ``--token``."""
    project_hint: str | None = None
    """Shown in the "start a server" advice."""


class ResolveOptions(TypedDict, total=False):
    """What a review decision may say besides its action."""

    label: str
    """The right label (``correct``)."""
    candidate: int
    """The candidate confirmed, from 1 (``confirm``; default 1)."""
    region: Literal["box", "whole"]
    """What the label makes a reference of (default: the box, when there is one)."""


class ApiClient:
    """JSON and image requests to one server, with one session."""

    def __init__(self, config: TuiConfig) -> None:
        self.config = config
        self.base = config.server.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.config.token}"} if self.config.token else {}
            reviewer = _reviewer()
            if reviewer:
                headers["X-Identify-Reviewer"] = reviewer
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A JSON request; returns the decoded body.

        Raises:
            Unreachable: no answer.
            ApiError: an error answer (its message is the server's).
        """
        try:
            async with self.session.request(method, self.base + path, **kwargs) as resp:
                if resp.content_type == "application/json":
                    body = await resp.json()
                else:
                    body = {"raw": await resp.read()}
                if resp.status >= 400:
                    err = body.get("error", {}) if isinstance(body, dict) else {}
                    raise ApiError(
                        err.get("message", f"HTTP {resp.status}"),
                        err.get("code", "error"),
                        resp.status,
                    )
                return (
                    body["raw"]
                    if isinstance(body, dict) and "raw" in body and len(body) == 1
                    else body
                )
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise Unreachable(f"cannot reach {self.base}: {exc.__class__.__name__}") from None

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request(
            "GET", path, params={k: str(v) for k, v in params.items() if v is not None}
        )

    async def post(self, path: str, body: Mapping[str, object] | None = None) -> Any:
        return await self.request("POST", path, json=body or {})

    async def put(self, path: str, body: Mapping[str, object]) -> Any:
        return await self.request("PUT", path, json=body)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    async def image(self, path: str) -> bytes:
        """Raw bytes of an image endpoint."""
        data = await self.request("GET", path)
        if not isinstance(data, bytes):
            raise ApiError(f"{path} did not return an image")
        return data

    def events_url(self) -> str:
        return self.base.replace("http://", "ws://").replace("https://", "wss://") + "/api/events"

    # --- the endpoints, typed by the API contract (``server.contract``); the bodies are
    # the server's to get right, which ``tests/server/test_contract.py`` checks

    async def health(self) -> Health:
        body: Health = await self.get("/api/health")
        return body

    async def stats(self) -> Stats:
        body: Stats = await self.get("/api/stats")
        return body

    async def review_page(self, limit: int, before: int | None = None) -> ReviewPage:
        """Pending items, newest first (``before``: older than that id)."""
        body: ReviewPage = await self.get("/api/review", limit=limit, before=before)
        return body

    async def resolve(
        self, item_id: int, action: ResolveAction, **options: Unpack[ResolveOptions]
    ) -> ReviewItem:
        """Decide about a queued item (a 409 ``conflict`` when someone did meanwhile)."""
        body: ReviewItem = await self.post(
            f"/api/review/{item_id}/resolve", {"action": action, **options}
        )
        return body

    async def reopen(self, item_id: int) -> ReviewItem:
        """Undo a decision: the item is pending again."""
        body: ReviewItem = await self.post(f"/api/review/{item_id}/reopen")
        return body

    async def classes(self) -> list[ClassInfo]:
        body: ClassList = await self.get("/api/classes")
        return body["classes"]

    async def class_references(self, label: str) -> list[ReferenceInfo]:
        body: ClassReferences = await self.get("/api/classes/references", label=label)
        return body["references"]

    async def import_references(self, path: str, label: str | None = None) -> None:
        """Add a file or folder on the server as references (labels from file names
        unless ``label``), waiting until they are in."""
        body = {"path": path} if label is None else {"path": path, "label": label}
        await self.post("/api/references/import", body)

    async def promote(self, taxonomy: str) -> int:
        """Promote a separate taxonomy's labels (its promote_confidence and up, and every
        reviewer's); returns how many became references."""
        body = await self.post(f"/api/taxonomies/{quote(taxonomy, safe='')}/promote", {})
        return int(body["promoted"])

    async def reapply_start(self) -> Job:
        """Start a re-application of every stored answer (409 while one runs); its job."""
        body = await self.post("/api/reapply", {"wait": False})
        job: Job = body["job"]
        return job

    async def resend_dead_letters(self) -> int:
        """Send every webhook's dead letters again; how many."""
        body = await self.post("/api/webhooks/resend", {})
        return int(body["resend"])

    async def clusters(self) -> Clusters:
        """The newest grouping's open clusters."""
        body: Clusters = await self.get("/api/clusters")
        return body

    async def cluster(self, cluster_id: int) -> Cluster:
        """One cluster with all its members."""
        body: Cluster = await self.get(f"/api/clusters/{cluster_id}")
        return body

    async def cluster_map(self) -> list[MapPointInfo]:
        """The newest grouping's items on the 2-D map."""
        body = await self.get("/api/clusters/map")
        points: list[MapPointInfo] = body["points"]
        return points

    async def regroup(self) -> Clusters:
        """Group the pending unknowns now."""
        body: Clusters = await self.post("/api/clusters/regroup", {})
        return body

    async def label_cluster(self, cluster_id: int, label: str, merge: bool) -> Job:
        """Start naming a cluster as a new class, or merging it into a known one
        (``merge``): a job, a member a step."""
        verb = "merge" if merge else "name"
        body = await self.post(
            f"/api/clusters/{cluster_id}/{verb}", {"label": label, "wait": False}
        )
        job: Job = body["job"]
        return job

    async def drop_members(self, cluster_id: int, items: list[int]) -> Cluster:
        """Take members out of a cluster (they stay in the queue)."""
        body: Cluster = await self.post(f"/api/clusters/{cluster_id}/drop", {"items": items})
        return body

    async def dismiss_cluster(self, cluster_id: int) -> Cluster:
        """Hide a cluster (its members stay in the queue)."""
        body: Cluster = await self.post(f"/api/clusters/{cluster_id}/dismiss", {})
        return body

    async def job(self, job_id: int) -> Job:
        body: Job = await self.get(f"/api/jobs/{job_id}")
        return body

    async def reapplication(self) -> Reapplication | None:
        """The newest re-application as it stands (None before the first)."""
        body = await self.get("/api/reapply")
        run: Reapplication | None = body["reapplication"]
        return run

    async def rename_class(self, old: str, new: str) -> None:
        await self.post("/api/classes/rename", {"from": old, "to": new})

    async def merge_classes(self, sources: list[str], into: str) -> None:
        await self.post("/api/classes/merge", {"from": sources, "into": into})

    async def remove_reference(self, ref_id: int) -> None:
        await self.delete(f"/api/references/{ref_id}")

    async def thresholds(self) -> Thresholds:
        body: Thresholds = await self.get("/api/thresholds")
        return body

    async def set_threshold(
        self,
        scope: ThresholdScope,
        name: str,
        threshold: float | None = None,
        margin: float | None = None,
    ) -> Thresholds:
        """Override a taxonomy's or a class's values (None inherits the project file's:
        both None clears the override)."""
        change = {"scope": scope, "name": name, "threshold": threshold, "margin": margin}
        body: Thresholds = await self.put("/api/thresholds", change)
        return body

    async def threshold_curve(
        self,
        *,
        taxonomy: str | None = None,
        label: str | None = None,
        threshold: float | None = None,
        margin: float | None = None,
    ) -> ThresholdCurve:
        """Coverage and precision around ``threshold`` and ``margin`` (default: those in
        force) for a taxonomy or a class (``label``)."""
        body: ThresholdCurve = await self.get(
            "/api/thresholds/curve",
            taxonomy=taxonomy,
            label=label,
            threshold=threshold,
            margin=margin,
        )
        return body


def _reviewer() -> str | None:
    """The name annotations are recorded under (``local:NAME``): the login name."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return None
    return "".join(ch for ch in name if ch.isascii() and ch.isprintable())[:64] or None
