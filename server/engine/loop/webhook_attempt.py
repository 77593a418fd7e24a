"""One attempt at a webhook: a POST with a deadline for the whole exchange, no redirect
followed, little of the answer read, and every failure an ``Outcome``, never raised."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_ANSWER_BYTES = 64 * 1024
"""Of a receiver's answer, only this much is read (its body is not used)."""


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave."""

    ok: bool
    status: int | None = None
    error: str = ""


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Outcome:
    """POST ``body`` once, within ``timeout`` seconds in all (connect, send and the whole
    answer: a receiver that trickles its answer byte by byte is cut off at the deadline
    like one that says nothing); redirects are not followed, the answer is read only up
    to ``MAX_ANSWER_BYTES``. Never raises for what a receiver or the network does."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return Outcome(False, None, f"not a usable port in {shown_url(url)!r}")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        conn = http.client.HTTPSConnection(
            parts.hostname or "", port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    expired = threading.Event()

    def expire() -> None:
        # Shutting the socket down wakes the read blocked on it: the attempt fails.
        expired.set()
        if conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    deadline = threading.Timer(timeout, expire)
    deadline.daemon = True
    deadline.start()
    try:
        conn.request("POST", target, body, dict(headers))
        answer = conn.getresponse()
        answer.read(MAX_ANSWER_BYTES)
        status = answer.status
        if expired.is_set():
            return Outcome(False, status, f"no whole answer within {timeout:g} s")
        if 200 <= status < 300:
            return Outcome(True, status)
        if 300 <= status < 400:
            where = (answer.getheader("Location") or "")[:200]
            return Outcome(False, status, f"HTTP {status} redirect to {where!r}, not followed")
        return Outcome(False, status, f"HTTP {status} {answer.reason}"[:200])
    except TimeoutError:
        return Outcome(False, None, f"no answer within {timeout:g} s")
    except ConnectionRefusedError:
        return Outcome(False, None, "connection refused")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set():
            return Outcome(False, None, f"no whole answer within {timeout:g} s")
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:200])
    finally:
        deadline.cancel()
        conn.close()


def shown_url(url: str) -> str:
    """A webhook's address without its query (which may hold a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
