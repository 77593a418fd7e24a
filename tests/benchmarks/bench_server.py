"""Load on ``identify serve`` against the bare pipeline in-process, loopback only.

    python -m tests.benchmarks.bench_server [--seconds 60] [--http-clients 4]
                                            [--ws-clients 4] [--fps 30] [--browser]
                                            [--import-files 1000 [--only-import]]

1. *Bare*: the engine in-process, no HTTP, on the demo's camera photos (decode, embed,
   search, second stage, decide), images per second: one image after another, and
   with the server's arrangement of workers; the faster of the two is the baseline.
2. *HTTP*: ``identify serve`` in its own process; N clients post the same photos to
   ``/api/identify`` back to back. Throughput (in ``--rounds`` alternating with the
   bare pipeline, ``--round-seconds`` each), p50/p99 latency, 429s and 5xx.
3. *Overload*: M WebSocket clients stream frames to ``/api/live`` at ``--fps`` each
   without waiting for answers (a misbehaving client; the page itself waits), for
   ``--seconds``. Answered and dropped frames, p50/p99 latency of answered frames in the
   first and the last 10 seconds, the server's memory (RSS) over the run.
4. ``--browser``: headless Chromium's fake camera on the page: time from the camera
   starting to the first identified frame.
5. ``--import-files N``: identification alone, then while an import of N reference
   files runs as a job, with ``/api/health`` polled every 0.1 s: identification
   throughput during against alone, health p50/p99 (``--only-import`` skips 1-4).

Bounded in time and count; everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from server.engine.live.service import Service
from server.engine.project.config import load_project
from server.engine.vision import threads
from server.engine.vision.embedders import project_embedder
from server.engine.vision.images import decode_image
from server.engine.workflows.index import build_index
from tests.conftest import DEMO_QUERIES, REPO

MAX_REQUESTS = 100_000
"""Upper bound on requests per phase, whatever the duration."""


def photos() -> list[bytes]:
    return [p.read_bytes() for p in sorted(DEMO_QUERIES.glob("*.jpg"))]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def make_project(work: Path) -> Path:
    """A copy of the demo project with its own data folder, indexed."""
    file = work / "demo.yaml"
    text = (REPO / "projects" / "demo.yaml").read_text(encoding="utf-8")
    text = text.replace("../examples/demo/references", str(REPO / "examples/demo/references"))
    file.write_text(text + f"\ndata_dir: {work / 'data'}\n", encoding="utf-8")
    project = load_project(file)
    build_index(project, project_embedder(project.config))
    return file


class Bare:
    """The pipeline in-process, without HTTP, on the server's project."""

    def __init__(self, file: Path) -> None:
        project = load_project(file)
        self.service = Service.open(project, project_embedder(project.config))
        self.data = photos()
        self.service.warm_up()

    def sequential(self, seconds: float) -> dict[str, Any]:
        """One image after another, torch's default threads."""
        done, times = 0, []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and done < MAX_REQUESTS:
            t0 = time.perf_counter()
            prepared = self.service.prepare(self.data[done % len(self.data)])
            self.service.identify_prepared(prepared, source="bench", record=False)
            times.append(time.perf_counter() - t0)
            done += 1
        return {
            "images_per_s": done / sum(times),
            "p50_ms": pct(times, 50) * 1000,
            "p99_ms": pct(times, 99) * 1000,
            "n": done,
        }

    def parallel(self, seconds: float) -> tuple[int, float]:
        """The server's arrangement: images prepared by one worker per core (one thread
        each), decided one by one on this thread. Returns (images, seconds)."""
        data = self.data
        workers, per_worker = threads.plan()
        previous = threads.apply(per_worker)
        n = 0
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            pending = [
                pool.submit(self.service.prepare, data[i % len(data)]) for i in range(workers)
            ]
            while time.perf_counter() - started < seconds and n < MAX_REQUESTS:
                prepared = pending.pop(0).result()
                pending.append(pool.submit(self.service.prepare, data[(n + workers) % len(data)]))
                self.service.identify_prepared(prepared, source="bench", record=False)
                n += 1
            elapsed = time.perf_counter() - started
            for f in pending:
                f.result()
        threads.restore(previous)
        return n, elapsed

    def close(self) -> None:
        self.service.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def http_load(base: str, clients: int, seconds: float) -> dict[str, Any]:
    data = photos()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    end = time.perf_counter() + seconds

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        n = i
        while time.perf_counter() < end and len(latencies) < MAX_REQUESTS:
            t0 = time.perf_counter()
            async with session.post(
                f"{base}/api/identify?record=0",
                data=data[n % len(data)],
                headers={"Content-Type": "image/jpeg"},
            ) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 200:
                    latencies.append(time.perf_counter() - t0)
            n += clients

    started, cpu = time.perf_counter(), os.times()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(i, session) for i in range(clients)))
    elapsed = time.perf_counter() - started
    client_cpu = (os.times().user - cpu.user + os.times().system - cpu.system) / elapsed
    return {
        "clients": clients,
        "images_per_s": statuses.get(200, 0) / elapsed,
        "load_generator_cpu_cores": round(client_cpu, 3),
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "statuses": statuses,
        "errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
    }


async def ws_overload(
    base: str, clients: int, fps: float, seconds: float, pid: int
) -> dict[str, Any]:
    data = photos()
    ws_base = base.replace("http://", "ws://")
    answered: list[tuple[float, float]] = []  # (time since start, latency)
    sent = errors = 0
    memory: list[tuple[float, float]] = []
    start = time.perf_counter()
    end = start + seconds

    async def client(i: int, session: aiohttp.ClientSession) -> None:
        nonlocal sent, errors
        sent_at: dict[int, float] = {}
        async with session.ws_connect(f"{ws_base}/api/live", max_msg_size=0) as ws:
            await ws.receive_json()  # hello

            async def reader() -> None:
                nonlocal errors
                async for msg in ws:
                    body = json.loads(msg.data)
                    if body["type"] == "result":
                        t = sent_at.pop(body["frame"], None)
                        if t is not None:
                            now = time.perf_counter()
                            answered.append((now - start, now - t))
                    elif body["type"] == "error":
                        errors += 1

            task = asyncio.create_task(reader())
            frame = 0
            next_at = time.perf_counter()
            while time.perf_counter() < end and sent < MAX_REQUESTS:
                frame += 1
                sent_at[frame] = time.perf_counter()
                await ws.send_bytes(data[(i + frame) % len(data)])
                sent += 1
                next_at += 1.0 / fps
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            await asyncio.sleep(1.0)  # let the last answers arrive
            await ws.close()
            task.cancel()

    async def sampler() -> None:
        while time.perf_counter() < end:
            memory.append((time.perf_counter() - start, rss_mib(pid)))
            await asyncio.sleep(5)

    cpu = os.times()
    async with aiohttp.ClientSession() as session:
        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(client(i, session) for i in range(clients)))
        sampling.cancel()
    client_cpu = (os.times().user - cpu.user + os.times().system - cpu.system) / (
        time.perf_counter() - start
    )
    first = [lat for t, lat in answered if t < 10]
    last = [lat for t, lat in answered if t >= seconds - 10]
    return {
        "clients": clients,
        "fps_each": fps,
        "seconds": seconds,
        "sent": sent,
        "answered": len(answered),
        "dropped": sent - len(answered),
        "errors": errors,
        "answered_per_s": len(answered) / seconds,
        "load_generator_cpu_cores": round(client_cpu, 3),
        "p50_ms": pct([lat for _, lat in answered], 50) * 1000,
        "p99_ms": pct([lat for _, lat in answered], 99) * 1000,
        "p99_first_10s_ms": pct(first, 99) * 1000,
        "p99_last_10s_ms": pct(last, 99) * 1000,
        "rss_mib_start": memory[0][1] if memory else None,
        "rss_mib_end": memory[-1][1] if memory else None,
        "rss_mib_samples": [round(m, 1) for _, m in memory],
    }


async def browser_first_frame(base: str, work: Path) -> dict[str, Any]:
    from tests.browser.chromium import Browser, find_chromium, write_y4m

    binary = find_chromium()
    if binary is None:
        return {"error": "chromium is not installed"}
    video = write_y4m(
        work / "cam.y4m",
        [(decode_image(p.read_bytes()), 50) for p in sorted(DEMO_QUERIES.glob("known-*.jpg"))[:2]],
        size=(640, 480),
    )
    async with Browser(binary, video, work / "profile") as browser:
        await browser.open(base + "/")
        for _ in range(300):
            state = await browser.evaluate("JSON.stringify(window.identifyState || null)")
            state = json.loads(state) if state else None
            if state and state.get("firstResultAt") is not None:
                return {"first_result_ms": state["firstResultAt"] - state["cameraStartedAt"]}
            await asyncio.sleep(0.1)
    return {"error": "no result within 30 s"}


def import_folder(work: Path, files: int) -> Path:
    """``files`` reference files for an import: the demo's references under new names
    (each is decoded, embedded with its views and committed like any other)."""
    folder = work / "incoming"
    folder.mkdir(exist_ok=True)
    sources = sorted((REPO / "examples" / "demo" / "references").glob("*.png"))
    for i in range(files):
        shutil.copy(sources[i % len(sources)], folder / f"import_{i:04d}.png")
    return folder


async def import_phase(base: str, folder: Path, clients: int, seconds: float) -> dict[str, Any]:
    """Identification alone for ``seconds``, then again while an import of the folder
    runs, with ``/api/health`` asked every 0.1 s meanwhile; the import is cancelled
    afterwards (the measurement is of the server while an import runs, not of the
    import's length)."""
    alone = await http_load(base, clients, seconds)
    health_ms: list[float] = []
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{base}/api/references/import", json={"path": str(folder), "wait": False}
        ) as resp:
            job = (await resp.json())["job"]
        end = time.perf_counter() + seconds

        async def poll_health() -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                async with session.get(f"{base}/api/health") as r:
                    await r.read()
                health_ms.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.1)

        during, _ = await asyncio.gather(http_load(base, clients, seconds), poll_health())
        async with session.get(f"{base}/api/jobs/{job['id']}") as r:
            done = (await r.json())["done"]
        async with session.delete(f"{base}/api/jobs/{job['id']}") as r:
            await r.read()
    return {
        "files": job["total"],
        "files_imported_meanwhile": done,
        "import_files_per_s": done / seconds,
        "clients": clients,
        "identify_alone_per_s": alone["images_per_s"],
        "identify_during_import_per_s": during["images_per_s"],
        "ratio_identify_during_to_alone": during["images_per_s"] / alone["images_per_s"],
        "identify_p99_ms_alone": alone["p99_ms"],
        "identify_p99_ms_during": during["p99_ms"],
        "health_requests": len(health_ms),
        "health_p50_ms": pct(health_ms, 50),
        "health_p99_ms": pct(health_ms, 99),
        "health_max_ms": max(health_ms),
        "statuses_during": during["statuses"],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def against_server(file: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    bare = Bare(file)
    out: dict[str, Any] = {"bare_sequential": bare.sequential(min(args.seconds, 20.0))}
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting the server is brief
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
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "serving ... on URL" once the port is bound
        base = f"http://127.0.0.1:{port}"
        if args.import_files:
            out["import"] = await import_phase(
                base, import_folder(work, args.import_files), args.http_clients, args.import_seconds
            )
            if args.only_import:
                bare.close()
                return out
        # Throughput in alternating rounds (bare, then the server, which is idle while
        # the bare pipeline runs), so a drift in the machine's speed hits both alike.
        rounds = []
        for _ in range(args.rounds):
            n, elapsed = await asyncio.to_thread(bare.parallel, args.round_seconds)
            http = await http_load(base, args.http_clients, args.round_seconds)
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{base}/api/health") as resp,
            ):
                server = (await resp.json())["server"]
            http["server_prepare_ms"], http["server_decide_ms"] = (
                server["prepare_ms"],
                server["decide_ms"],
            )
            rounds.append({"bare_per_s": n / elapsed, "http": http})
        bare_rate = float(np.mean([r["bare_per_s"] for r in rounds]))
        http_rate = float(np.mean([r["http"]["images_per_s"] for r in rounds]))
        out["throughput"] = {
            "rounds": args.rounds,
            "round_seconds": args.round_seconds,
            "http_clients": args.http_clients,
            "bare_parallel_per_s": bare_rate,
            "http_per_s": http_rate,
            "ratio_http_to_bare": http_rate / bare_rate,
            "ratio_per_round": [
                round(r["http"]["images_per_s"] / r["bare_per_s"], 3) for r in rounds
            ],
            "http_p50_ms": float(np.median([r["http"]["p50_ms"] for r in rounds])),
            "http_p99_ms": float(max(r["http"]["p99_ms"] for r in rounds)),
            "statuses": {
                k: sum(r["http"]["statuses"].get(k, 0) for r in rounds)
                for k in {k for r in rounds for k in r["http"]["statuses"]}
            },
            "load_generator_cpu_cores": float(
                np.mean([r["http"]["load_generator_cpu_cores"] for r in rounds])
            ),
        }
        bare.close()
        out["overload"] = await ws_overload(base, args.ws_clients, args.fps, args.seconds, proc.pid)
        out["overload"]["ratio_answered_to_bare"] = out["overload"]["answered_per_s"] / bare_rate
        if args.browser:
            out["browser"] = await browser_first_frame(base, work)
        async with aiohttp.ClientSession() as session, session.get(f"{base}/api/health") as resp:
            out["health_after"] = (await resp.json())["server"]
        return out
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--http-clients", type=int, default=4)
    parser.add_argument("--ws-clients", type=int, default=4)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--round-seconds", type=float, default=10.0)
    parser.add_argument("--browser", action="store_true")
    parser.add_argument(
        "--import-files",
        type=int,
        default=0,
        help="also measure health and identification while an import of this many files runs",
    )
    parser.add_argument("--import-seconds", type=float, default=30.0)
    parser.add_argument(
        "--only-import", action="store_true", help="with --import-files: skip the other phases"
    )
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results" / "server.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    try:
        file = make_project(work)
        result = asyncio.run(against_server(file, args, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
