"""The commands that write, when a server holds the project: the same work sent to its
API (the server stays the one writer), with the job's progress drawn as a local run's."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from identify_tui.cli.common import progress_bar
from server.engine.errors import IdentifyError

POLL_S = 0.5
TIMEOUT_S = 30.0


def call(url: str, token: str | None, method: str, path: str, body: Any = None) -> Any:
    """One API request; its JSON answer.

    Raises:
        IdentifyError: the server refused it (its message), or could not be reached.
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        raise IdentifyError(f"the server at {url} refused it: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise IdentifyError(f"cannot reach the server at {url}: {exc}") from None


def run_job(url: str, token: str | None, path: str, body: dict[str, Any], label: str) -> Any:
    """Start a job (``wait: false``), draw its progress until it ends, and return the
    finished job with its results.

    Raises:
        IdentifyError: see ``call``; or the job failed or was cancelled.
    """
    job = call(url, token, "POST", path, {**body, "wait": False})["job"]
    done = 0
    with progress_bar(int(job["total"]), label) as advance:
        while True:
            job = call(url, token, "GET", f"/api/jobs/{job['id']}")
            advance(int(job["done"]) - done)
            done = int(job["done"])
            if job["status"] != "running":
                break
            time.sleep(POLL_S)
    if job["status"] != "done":
        raise IdentifyError(
            f"the server's {job['kind']} job {job['id']} {job['status']}"
            + (f": {job['error']}" if job.get("error") else "")
        )
    return job
