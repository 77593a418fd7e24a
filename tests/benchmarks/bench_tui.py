"""The terminal UI under a long queue and a flood of live events.

    python -m tests.benchmarks.bench_tui [--items 1000] [--presses 200] [--minutes 10]

1. *Review*: a real server (``identify serve`` in its own process on 127.0.0.1, as it
   is deployed) with ``--items`` pending review items (real crops, recorded through the
   engine in another process); the Review screen in a headless 80x24 terminal in this
   process, which holds nothing but the TUI. For each of ``--presses`` key presses
   (``x``, "not any of them"), the time until the next item is on screen (its id shown
   and the screen refreshed), and whether its crop was already rendered (prefetched).
   Python's garbage-collector pauses in this process are recorded alongside.
2. *Live*: a server in this process publishes 30 identification events per second
   through its real ``/api/events`` socket for ``--minutes``; the Live screen shows
   them. The process's RSS is sampled every 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import numpy as np
from aiohttp import web
from textual import events

from identify_tui.app import make_tui
from identify_tui.client import TuiConfig
from identify_tui.screens.live import LiveScreen
from identify_tui.screens.review import CROP_CELLS, ReviewScreen
from tests.conftest import REPO

# The engine and the server are imported where they are used: the process that measures
# the Review screen holds nothing but the TUI, as a reviewer's terminal would.

EVENTS_PER_S = 30


def fill_queue(file: Path, items: int) -> None:
    """``items`` misses in the queue, recorded by the engine from the demo photos."""
    from server.engine.live.service import Service
    from server.engine.project.config import load_project
    from server.engine.vision.embedders import project_embedder
    from tests.benchmarks.bench_server import photos

    project = load_project(file)
    service = Service.open(project, project_embedder(project.config))
    service.set_threshold("taxonomy", "demo", 1.99)  # everything is a miss
    prepared = [service.prepare(p) for p in photos()]
    for i in range(items):
        service.identify_prepared(prepared[i % len(prepared)], source=f"bench-{i % 4}")
    service.set_threshold("taxonomy", "demo", None)
    service.close()


def _make_project(work: Path) -> Path:
    from tests.benchmarks.bench_server import make_project

    return make_project(work)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GcPauses:
    """Durations of the garbage collector's runs in this process (ms, by generation)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._started = 0.0
        self.objects: list[int] = []

    def __enter__(self) -> Self:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def count_objects(self) -> None:
        """Note how many objects the collector tracks now (what a full run walks)."""
        self.objects.append(len(gc.get_objects()))

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], (time.perf_counter() - self._started) * 1000))

    def summary(self) -> dict[str, Any]:
        full = [ms for gen, ms in self.pauses if gen == 2]
        return {
            "collections": len(self.pauses),
            "full_collections": len(full),
            "max_ms": max((ms for _, ms in self.pauses), default=0.0),
            "full_max_ms": max(full, default=0.0),
            "tracked_objects": self.objects,
        }


def serve_process(file: Path) -> tuple[subprocess.Popen[str], str]:
    """``identify serve`` for the project in its own process; returns it and its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "identify_tui.cli",
            "serve",
            "--project",
            str(file),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # "serving ... on URL" once the port is bound
    return proc, f"http://127.0.0.1:{port}"


async def serve(file: Path) -> tuple[web.AppRunner, web.Application, str]:
    from server.engine.project.config import load_project
    from server.http.app import create_app
    from server.http.config import ServeConfig

    app = create_app(ServeConfig(project=load_project(file)))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, app, f"http://127.0.0.1:{port}"


async def review(url: str, presses: int) -> dict[str, Any]:
    app = make_tui(TuiConfig(server=url))
    latencies: list[float] = []
    painted: list[float] = []
    original = ReviewScreen._compositor_refresh

    def record(self: ReviewScreen) -> None:
        original(self)
        painted.append(time.perf_counter())

    ReviewScreen._compositor_refresh = record  # type: ignore[method-assign]
    with GcPauses() as gc_pauses:
        async with app.run_test(size=(80, 24)) as pilot:
            queue_len, prefetched = await _press(app, pilot, presses, painted, latencies, gc_pauses)
    ReviewScreen._compositor_refresh = original  # type: ignore[method-assign]
    ms = np.array(latencies) * 1000
    return {
        "presses": len(latencies),
        "queue_left": queue_len,
        "next_item_ms_p50": float(np.percentile(ms, 50)),
        "next_item_ms_p95": float(np.percentile(ms, 95)),
        "next_item_ms_max": float(ms.max()),
        "crop_prefetched_share": prefetched / max(1, len(latencies)),
        "gc": gc_pauses.summary(),
    }


async def _press(
    app: Any,
    pilot: Any,
    presses: int,
    painted: list[float],
    latencies: list[float],
    gc_pauses: GcPauses,
) -> tuple[int, int]:
    """Press ``x`` up to ``presses`` times, appending each press's latency. Returns the
    queue length left and how many next crops were already rendered (prefetched)."""
    prefetched = 0
    screen = app.screen
    assert isinstance(screen, ReviewScreen)
    while screen.shown_id is None:
        await pilot.pause(0.05)
    await pilot.pause(2.0)  # first pictures and prefetches
    gc_pauses.count_objects()
    for n in range(presses):
        if n % 50 == 49:
            gc_pauses.count_objects()
        if screen.index + 1 >= len(screen.items):
            break
        expected = screen.items[screen.index + 1]["id"]
        # The key goes in as the terminal would send it; the clock stops at the first
        # screen update painted after the item changed.
        started = time.perf_counter()
        app.post_message(events.Key("x", "x"))
        while screen.shown_id != expected:
            await asyncio.sleep(0.001)
        changed = time.perf_counter()
        while not painted or painted[-1] < changed:
            await asyncio.sleep(0.001)
        latencies.append(painted[-1] - started)
        path = f"/api/review/{expected}/image"
        prefetched += app.images.cached(path, *CROP_CELLS) is not None
        await pilot.pause(0.3)  # a quick reviewer's pace
    return int(screen.total), prefetched


async def live(server_app: web.Application, url: str, minutes: float) -> dict[str, Any]:
    from server.http.keys import EVENTS

    app = make_tui(TuiConfig(server=url))
    hub = server_app[EVENTS]
    rng = random.Random(0)
    labels = [f"Class {i}" for i in range(200)]
    samples: list[tuple[float, float]] = []
    sent = 0
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f4")
        while not (app.events.connected and isinstance(app.screen, LiveScreen)):
            await pilot.pause(0.05)
        start = time.perf_counter()
        next_sample = next_event = start
        while time.perf_counter() - start < minutes * 60:
            matched = rng.random() < 0.7
            hub.publish(
                {
                    "type": "identification",
                    "source": f"cam-{sent % 3}",
                    "at": time.time(),
                    "objects": [
                        {
                            "label": rng.choice(labels) if matched else None,
                            "matched": matched,
                            "score": rng.random(),
                            "margin": rng.random() / 4,
                            "bbox": None,
                            "candidates": [],
                        }
                    ],
                }
            )
            sent += 1
            if time.perf_counter() >= next_sample:
                samples.append((time.perf_counter() - start, rss_mib_self()))
                next_sample += 30
            next_event += 1 / EVENTS_PER_S
            await asyncio.sleep(max(0.0, next_event - time.perf_counter()))
        await pilot.pause(1.0)
        received = app.events.total
    rss = [m for _, m in samples]
    return {
        "minutes": minutes,
        "events_sent": sent,
        "events_received": received,
        "events_per_s": sent / (minutes * 60),
        "rss_mib_first": rss[0],
        "rss_mib_last": rss[-1],
        "rss_mib_max": max(rss),
        "rss_mib_samples": [round(m, 1) for m in rss],
    }


def rss_mib_self() -> float:
    from tests.benchmarks.bench_server import rss_mib

    return rss_mib(os.getpid())


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")  # keep torch and the engine out of here
    with spawn.Pool(1) as pool:
        file = pool.apply(_make_project, (work,))
        pool.apply(fill_queue, (file, args.items))
    proc, url = serve_process(file)
    try:
        out: dict[str, Any] = {"items": args.items, "review": await review(url, args.presses)}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    if args.minutes > 0:
        runner, server_app, url = await serve(file)
        try:
            out["live"] = await live(server_app, url, args.minutes)
        finally:
            await runner.cleanup()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--presses", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results" / "tui.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    try:
        result = asyncio.run(run(args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
