"""Crash harness: a real ``identify serve`` process takes writes (references added,
imported, deleted; review labels; bulk annotations; folders labelled; re-applications
over many stored answers) from a client that notes each acknowledged one, and is killed
with SIGKILL at a random moment; after a restart every acknowledged write must be there
(and every acknowledged delete gone), and a re-application the kill cut short resumes
where it stopped and counts each answer once. Used by ``test_crash`` (a few kills) and
``tests/benchmarks/bench_crash.py`` (25)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import DEMO_QUERIES, DEMO_REFS

UNKNOWN = DEMO_QUERIES / "unknown-germany.jpg"


@dataclass
class Ledger:
    """What the server acknowledged (2xx) before it was killed."""

    references: dict[int, str] = field(default_factory=dict)
    """Reference id -> label, added by upload, import or a review label."""
    deleted: set[int] = field(default_factory=set)
    resolved: dict[int, str] = field(default_factory=dict)
    """Review item id -> status."""
    annotations: dict[int, str] = field(default_factory=dict)
    """Annotation id -> type, made by a bulk request."""
    labelled: set[str] = field(default_factory=set)
    """Files a label job acknowledged."""
    reapplications: set[int] = field(default_factory=set)
    """Re-applications started (their rows)."""
    resumed: int = 0
    """Re-applications a kill cut short, resumed after the restart."""
    writes: int = 0

    def present(self) -> dict[int, str]:
        return {i: label for i, label in self.references.items() if i not in self.deleted}


def call(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    ctype: str | None = None,
    timeout: float = 60,
) -> tuple[int, Any]:
    request = urllib.request.Request(
        base + path, data=body, method=method, headers={"Content-Type": ctype} if ctype else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def multipart(image: bytes, **fields: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f'filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
        + image
        + b"\r\n"
    )
    return b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Server:
    """``identify serve`` in its own process."""

    def __init__(self, project: Path, port: int) -> None:
        self.project, self.port = project, port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "identify_tui.cli",
                "serve",
                "--project",
                str(self.project),
                "--port",
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "serving" in line, line

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)


def writer(base: str, ledger: Ledger, folder: Path, seed: int, stop: threading.Event) -> None:
    """Writes of every kind, one after another, until the server stops answering."""
    rng = random.Random(seed)
    photo = (DEMO_QUERIES / "known-kiwi.jpg").read_bytes()
    unknown = UNKNOWN.read_bytes()
    n = 0
    try:
        while not stop.is_set():
            n += 1
            kind = rng.choice(
                ["add", "add", "delete", "import", "review", "bulk", "label", "reapply"]
            )
            tag = f"S{seed}N{n}"
            if kind == "add":
                body, ctype = multipart(photo, label=f"Add {tag}")
                status, out = call(base, "POST", "/api/references", body, ctype)
                if status == 201:
                    ledger.references[out["id"]] = out["label"]
            elif kind == "delete" and ledger.present():
                ref = rng.choice(sorted(ledger.present()))
                status, _ = call(base, "DELETE", f"/api/references/{ref}")
                if status == 200:
                    ledger.deleted.add(ref)
            elif kind == "import":
                status, out = call(
                    base,
                    "POST",
                    "/api/references/import",
                    json.dumps({"path": str(folder), "label": f"Imp {tag}"}).encode(),
                    "application/json",
                )
                if status == 201:
                    for r in out["results"]:
                        if r["ok"]:
                            ledger.references[r["id"]] = r["label"]
            elif kind == "review":
                status, out = call(
                    base, "POST", f"/api/identify?source={tag}", unknown, "image/jpeg"
                )
                item = out["objects"][0]["review_id"] if status == 200 else None
                if item is not None:
                    status, out = call(
                        base,
                        "POST",
                        f"/api/review/{item}/resolve",
                        json.dumps({"action": "correct", "label": f"Rev {tag}"}).encode(),
                        "application/json",
                    )
                    if status == 200:
                        ledger.resolved[item] = out["status"]
                        ledger.references[out["reference_id"]] = out["resolved_label"]
            elif kind == "bulk":
                bulk_annotations(base, ledger, unknown, tag)
            elif kind == "label":
                body = json.dumps({"paths": [str(folder.parent / "photos")]}).encode()
                status, out = call(base, "POST", "/api/label", body, "application/json")
                if status == 200:
                    ledger.labelled.update(r["path"] for r in out["results"] if r["ok"])
            elif kind == "reapply":
                body = json.dumps({"wait": False}).encode()
                status, _ = call(base, "POST", "/api/reapply", body, "application/json")
                if status == 202:
                    _, state = call(base, "GET", "/api/reapply")
                    ledger.reapplications.add(state["reapplication"]["id"])
            else:
                continue
            ledger.writes += 1
    except (OSError, urllib.error.URLError, ValueError):
        return  # killed: the writes in flight were never acknowledged


def bulk_annotations(base: str, ledger: Ledger, picture: bytes, tag: str) -> None:
    """Queue two pictures, then annotate them in one bulk request: a new class, a
    missed object beside it, and nothing there."""
    items = []
    for side in ("a", "b"):
        status, out = call(base, "POST", f"/api/identify?source={tag}{side}", picture, "image/jpeg")
        if status != 200 or out["objects"][0]["review_id"] is None:
            return
        items.append(out["objects"][0]["review_id"])
    ops = [
        {"op": "create", "item_id": items[0], "type": "confirmed", "label": f"Bulk {tag}"},
        {"op": "create", "item_id": items[0], "type": "missed", "box": [0, 0, 20, 20]},
        {"op": "create", "item_id": items[1], "type": "false_positive"},
    ]
    body = json.dumps({"operations": ops}).encode()
    status, out = call(base, "POST", "/api/annotations/bulk", body, "application/json")
    if status != 200:
        return
    for result in out["results"]:
        if result["ok"]:
            made = result["annotation"]
            ledger.annotations[made["id"]] = made["type"]
            if made["reference_id"] is not None:
                ledger.references[made["reference_id"]] = made["true_label"]


def active_references(base: str) -> dict[int, str]:
    _, classes = call(base, "GET", "/api/classes")
    out: dict[int, str] = {}
    for c in classes["classes"]:
        label = urllib.request.quote(c["label"])
        _, refs = call(base, "GET", f"/api/classes/references?label={label}")
        out.update({r["id"]: r["label"] for r in refs["references"]})
    return out


def check(base: str, ledger: Ledger) -> list[str]:
    """What the restarted server lost of the acknowledged writes (empty: nothing)."""
    active = active_references(base)
    lost = [
        f"reference {i} ({label})"
        for i, label in ledger.present().items()
        if active.get(i) != label
    ]
    lost += [f"deleted reference {i} is back" for i in ledger.deleted if i in active]
    for item, status in ledger.resolved.items():
        _, got = call(base, "GET", f"/api/review/{item}")
        if got["status"] != status:
            lost.append(f"review item {item}: {got['status']}, acknowledged {status}")
    for annotation, kind in ledger.annotations.items():
        status, got = call(base, "GET", f"/api/annotations/{annotation}")
        if status != 200 or got["type"] != kind:
            lost.append(f"annotation {annotation} ({kind}): {status}")
    lost += check_runs(base, ledger)
    status, _ = call(
        base,
        "POST",
        "/api/identify?record=0",
        (DEMO_QUERIES / "known-kiwi.jpg").read_bytes(),
        "image/jpeg",
    )
    if status != 200:
        lost.append(f"identify after restart: {status}")
    return lost


def check_runs(base: str, ledger: Ledger) -> list[str]:
    """Labelled files are known by their content after the restart; a re-application
    the kill cut short resumes (same run) and counts each answer once."""
    lost = []
    if ledger.labelled:
        body = json.dumps({"paths": [str(Path(p)) for p in sorted(ledger.labelled)]}).encode()
        _, out = call(base, "POST", "/api/label", body, "application/json", timeout=300)
        lost += [
            f"labelled file {r['path']} labelled again" for r in out["results"] if not r["already"]
        ]
    _, state = call(base, "GET", "/api/reapply")
    run = state["reapplication"]
    if ledger.reapplications and (run is None or run["id"] < max(ledger.reapplications)):
        lost.append(f"re-application {max(ledger.reapplications)} is gone")
    elif run is not None and run["status"] == "interrupted":
        body = json.dumps({"wait": True}).encode()
        status, out = call(base, "POST", "/api/reapply", body, "application/json", timeout=300)
        again = out.get("reapplication") if status == 200 else None
        if again is None or not out["resumed"] or again["id"] != run["id"]:
            lost.append(f"re-application {run['id']} did not resume: {status} {out}")
        elif again["status"] != "done" or again["done"] != again["total"]:
            lost.append(f"re-application {run['id']} resumed to {again}")
        else:
            ledger.resumed += 1
    return lost


def seed_answers(db: Path, space: str, dim: int, n: int, seed: int = 0) -> None:
    """``n`` stored answers (random unit vectors), so that a re-application runs long
    enough for a kill to land in it."""
    import numpy as np

    from server.engine.catalog.store import Store

    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = Store(db)
    try:
        with store.transaction():
            for v in vectors:
                store.record(
                    path="",
                    content_hash="seeded",
                    width=8,
                    height=8,
                    model_id=space,
                    embedding=v,
                    result={"label": None, "score": 0.0, "margin": 0.0, "matched": False,
                            "reason": "below_threshold", "candidates": []},
                )  # fmt: skip
    finally:
        store.close()


def writer_folders(work: Path) -> Path:
    """The folders ``writer`` imports (returned) and labels (``photos`` beside it)."""
    folder = work / "import"
    folder.mkdir(exist_ok=True)
    for name in ("kiwi.png", "lemon.png"):
        (folder / name).write_bytes((DEMO_REFS / name).read_bytes())
    photos = work / "photos"
    photos.mkdir(exist_ok=True)
    for name in ("known-brazil.jpg", "known-japan.jpg", "unknown-orange.jpg"):
        (photos / name).write_bytes((DEMO_QUERIES / name).read_bytes())
    return folder


def write_until_killed(
    server: Server, ledger: Ledger, folder: Path, seed: int, wait_s: float
) -> None:
    """Start the server, write to it from a client (``writer``), and SIGKILL it after
    ``wait_s`` seconds, whatever it is doing."""
    server.start()
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(server.base, ledger, folder, seed, stop))
    thread.start()
    time.sleep(wait_s)
    server.kill()
    stop.set()
    thread.join(120)


def run_kills(
    project: Path,
    port: int,
    work: Path,
    kills: int,
    seed: int = 0,
    min_s: float = 1.0,
    max_s: float = 4.0,
) -> tuple[Ledger, list[str]]:
    """``kills`` rounds of: start, write, SIGKILL at a random moment, restart, check."""
    folder = writer_folders(work)
    ledger, lost = Ledger(), []
    rng = random.Random(seed)
    server = Server(project, port)
    for k in range(kills):
        write_until_killed(server, ledger, folder, seed * 1000 + k, rng.uniform(min_s, max_s))
        server.start()
        lost += check(server.base, ledger)
        server.stop()
    return ledger, lost
