"""Webhooks: events lost and unsigned over SIGKILLs, and delivery latency.

1. ``identify serve`` killed with SIGKILL N times while a client writes (references,
   review labels, bulk annotations, labelled folders, re-applications) and a receiver
   on loopback fails 70 % of attempts (500s, closed connections); after the last kill
   a restart with the receiver healthy must deliver every event of the outbox (target:
   none lost, none unsigned).
2. A healthy receiver: an unknown picture identified every 0.2 s, each queueing an
   item; the time from the change (the event's ``at``) to the receiver (target: p50
   under 1 s).

    python -m tests.benchmarks.bench_webhooks [--kills 20] [--seed 0] [--events 100]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from identify_tui.cli import main as cli
from tests.conftest import DEMO_QUERIES, DEMO_REFS, REPO, write_project
from tests.integration.crash import Server, call
from tests.integration.hooks import run_hook_kills
from tests.integration.test_serve_cli import free_port
from tests.receiver import Receiver, webhook_yaml

EVERYTHING_A_MISS = "taxonomies:\n  - name: default\n    threshold: 1.5\n    margin: 0.05\n"


def project_in(work: Path, receiver: Receiver) -> Path:
    refs = work / "refs"
    refs.mkdir()
    for name in ("Brazil", "Japan", "apple_red", "banana", "grapes", "India"):
        shutil.copy(DEMO_REFS / f"{name}.png", refs / f"{name}.png")
    hooks = "webhooks:\n" + webhook_yaml(receiver.url, extra="    attempts: 1000\n")
    project = write_project(work, refs, EVERYTHING_A_MISS + hooks)
    assert CliRunner().invoke(cli, ["index", "--project", str(project)]).exit_code == 0
    return project


def latency(events: int) -> dict[str, float]:
    """Seconds from each change to its delivery, on a healthy receiver."""
    receiver = Receiver().start()
    work = Path(tempfile.mkdtemp(prefix="bench-hooks-latency-"))
    try:
        server = Server(project_in(work, receiver), free_port())
        server.start()
        picture = (DEMO_QUERIES / "unknown-germany.jpg").read_bytes()
        try:
            for n in range(events):
                call(server.base, "POST", f"/api/identify?source=s{n}", picture, "image/jpeg")
                time.sleep(0.2)
            time.sleep(3.0)
        finally:
            server.stop()
        waits = [
            a.at - float(a.body["data"]["at"])
            for a in receiver.taken().values()
            if a.body.get("type") == "queue"
        ]
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)
    waits.sort()
    return {
        "events": len(waits),
        "p50_s": round(statistics.median(waits), 4),
        "p95_s": round(waits[int(0.95 * (len(waits) - 1))], 4),
        "max_s": round(waits[-1], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--events", type=int, default=100, help="events timed on a healthy receiver"
    )
    parser.add_argument("--out", type=Path, default=REPO / ".bench" / "results" / "webhooks.json")
    args = parser.parse_args()
    receiver = Receiver().start()
    work = Path(tempfile.mkdtemp(prefix="bench-hooks-"))
    try:
        run = run_hook_kills(
            project_in(work, receiver), free_port(), work, receiver, args.kills, args.seed
        )
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "kills": run.kills,
        "writes_acknowledged": run.writes,
        "events": run.events,
        "undelivered_at_kills": sum(run.undelivered_at_kill),
        "lost": len(run.missing),
        "acknowledged_changes_untold": len(run.untold),
        "unsigned": run.unsigned,
        "arrivals": run.arrivals,
        "delivered_twice": run.duplicates,
        "latency": latency(args.events),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
