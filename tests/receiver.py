"""A real HTTP receiver of webhooks on loopback, for tests and benchmarks: it checks each
delivery's signature, notes each event once per idempotency id (and every arrival),
and can be told to fail: answer 500, hang past the sender's timeout, close the
connection without answering, redirect to itself, or answer with a huge body."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from server.engine.loop.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER

SECRET = "test-secret-of-some-length"


def verified(secret: bytes, header: str, body: bytes) -> bool:
    """The README's check of a delivery's signature, word for word (independent of the
    sender's code, so a signing bug on both sides cannot hide)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        sent_at, given = int(fields["t"]), fields["v1"]
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret, f"{sent_at}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given) and abs(time.time() - sent_at) < 300


Behaviour = str
"""``ok``, ``500``, ``hang``, ``close``, ``redirect``, ``huge``, ``trickle`` (a 200
sent a byte every ``trickle_s``, so no single read waits long)."""


@dataclass
class Arrival:
    event_id: int
    signed: bool
    body: dict[str, Any]
    at: float
    answered: Behaviour


@dataclass
class Receiver:
    """Start with ``start()``; ``url`` is where to send; ``plan(n)`` picks the n-th
    request's behaviour (0-based)."""

    plan: Callable[[int], Behaviour] = lambda n: "ok"
    secret: str = SECRET
    hang_s: float = 3.0
    trickle_s: float = 0.2
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=x"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size)
                with receiver.lock:
                    n = len(receiver.arrivals)
                    behaviour = receiver.plan(n)
                    signed = verified(
                        receiver.secret.encode(), self.headers.get(SIGNATURE_HEADER, ""), body
                    )
                    try:
                        doc = json.loads(body)
                    except ValueError:
                        doc = {}
                    receiver.arrivals.append(
                        Arrival(
                            int(self.headers.get(EVENT_ID_HEADER) or -1),
                            signed,
                            doc,
                            time.time(),
                            behaviour,
                        )
                    )
                if behaviour == "hang":
                    time.sleep(receiver.hang_s)
                    return
                if behaviour == "close":
                    self.close_connection = True
                    self.connection.close()
                    return
                if behaviour == "trickle":
                    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
                    try:
                        for byte in answer:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(receiver.trickle_s)
                    except OSError:
                        pass  # the sender gave up at its deadline
                    self.close_connection = True
                    return
                if behaviour == "redirect":
                    self.send_response(307)
                    self.send_header("Location", "/hook")
                    self.end_headers()
                    return
                status = 500 if behaviour == "500" else 200
                payload = b"x" * (8 * 1024 * 1024) if behaviour == "huge" else b"{}"
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass  # the sender stopped reading: it reads only so much

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def taken(self) -> dict[int, Arrival]:
        """Each event a 2xx was answered for, by its id (the first such arrival)."""
        with self.lock:
            out: dict[int, Arrival] = {}
            for a in self.arrivals:
                if a.answered in ("ok", "huge") and a.event_id not in out:
                    out[a.event_id] = a
            return out

    def tries(self) -> Counter[int]:
        """Arrivals per event id."""
        with self.lock:
            return Counter(a.event_id for a in self.arrivals)

    def unsigned(self) -> int:
        """Arrivals whose signature did not verify."""
        with self.lock:
            return sum(not a.signed for a in self.arrivals)

    def wait_for(self, ids: set[int], timeout: float = 60.0) -> bool:
        """Wait until every one of ``ids`` was taken; whether it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ids <= set(self.taken()):
                return True
            time.sleep(0.05)
        return ids <= set(self.taken())


def webhook_yaml(url: str, name: str = "hook", extra: str = "", env: str | None = None) -> str:
    """A ``webhooks:`` entry for a project file (quick retries, for tests)."""
    secret = f"secret_env: {env}" if env else f"secret: {SECRET}"
    return (
        f"  - name: {name}\n    url: '{url}'\n    {secret}\n    backoff_s: 0.05\n"
        f"    max_backoff_s: 0.2\n    timeout_s: 1.0\n{extra}"
    )
