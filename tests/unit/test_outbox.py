"""The outbox and webhooks' parts: an event exists exactly when its change does, the
signature a receiver checks, backoff, one attempt against a real loopback receiver
(redirects, huge answers, refused connections), and the webhook settings' checks."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path

import pytest

from server.engine.catalog.store import Store
from server.engine.errors import ProjectConfigError
from server.engine.loop.outbox import tell
from server.engine.loop.webhook_attempt import post
from server.engine.loop.webhooks import backoff, sign, verify_signature
from server.engine.project.config import load_project
from server.engine.project.outreach import WebhookConfig
from tests.receiver import Receiver

EVENT = {"type": "queue", "action": "added", "item_id": 1, "pending": 1, "at": 0.0}


def test_an_event_is_written_and_heard_only_when_its_change_commits(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    heard: list[object] = []
    with pytest.raises(RuntimeError), store.transaction():
        tell(store, EVENT, heard.append)  # type: ignore[arg-type]
        raise RuntimeError("the change fails")
    assert store.last_event_id() == 0 and heard == []
    with store.transaction():
        event_id = tell(store, EVENT, heard.append)  # type: ignore[arg-type]
        assert heard == []  # not before the commit
    assert heard == [EVENT] and store.outbox_event(event_id).body == EVENT  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="not told"):
        tell(store, {"type": "identification"}, None)  # type: ignore[arg-type,typeddict-item]


def test_a_signature_verifies_only_with_its_secret_body_and_a_recent_time() -> None:
    body = b'{"id":1}'
    now = int(time.time())
    header = sign("k" * 16, now, body)
    assert header.startswith(f"t={now},v1=") and verify_signature("k" * 16, header, body)
    assert not verify_signature("x" * 16, header, body)
    assert not verify_signature("k" * 16, header, body + b" ")
    assert not verify_signature("k" * 16, sign("k" * 16, now - 3600, body), body)
    assert not verify_signature("k" * 16, "garbage", body)


def test_backoff_doubles_within_jitter_up_to_the_cap() -> None:
    hook = WebhookConfig("h", "http://x", secret="s" * 16, backoff_s=1.0, max_backoff_s=8.0)
    rng = random.Random(0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        waits = [backoff(attempt, hook, rng) for _ in range(200)]
        assert ceiling / 2 <= min(waits) and max(waits) <= ceiling
        assert max(waits) - min(waits) > ceiling / 4  # jittered, not a constant


def test_one_attempt_follows_no_redirect_reads_little_and_survives_refusals() -> None:
    receiver = Receiver(plan=lambda n: ["redirect", "huge", "500"][n]).start()
    try:
        headers = {"Content-Type": "application/json"}
        redirected = post(receiver.url, b"{}", headers, 2.0)
        assert not redirected.ok and redirected.status == 307 and "not followed" in redirected.error
        huge = post(receiver.url, b"{}", headers, 2.0)
        assert huge.ok and huge.status == 200
        failed = post(receiver.url, b"{}", headers, 2.0)
        assert not failed.ok and failed.error.startswith("HTTP 500")
        assert len(receiver.arrivals) == 3  # one each: nothing followed or retried here
    finally:
        receiver.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = post(f"http://127.0.0.1:{port}/", b"{}", {}, 2.0)
    assert not refused.ok and refused.error == "connection refused"


def test_an_answer_trickled_byte_by_byte_is_cut_off_at_the_attempts_deadline() -> None:
    # 46 bytes at one per 0.2 s: ~9 s in all, though no single read waits over 0.2 s.
    receiver = Receiver(plan=lambda n: "trickle").start()
    try:
        started = time.monotonic()
        outcome = post(receiver.url, b"{}", {}, 1.0)
        took = time.monotonic() - started
    finally:
        receiver.stop()
    assert not outcome.ok and outcome.error == "no whole answer within 1 s"
    assert took < 3.0, took


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("url: ftp://host/x\n    secret_env: S", "is not http"),
        ("url: 'http://host:99999/x'\n    secret_env: S", "is not http"),
        ("url: 'http://host:abc/x'\n    secret_env: S", "is not http"),
        ("url: 'http://'\n    secret_env: S", "is not http"),
        ("url: http://u:p@host/\n    secret_env: S", "no user or password"),
        ("url: http://host/", "exactly one of secret_env"),
        ("url: http://host/\n    secret: short", "at least 16"),
        ("url: http://host/\n    secret_env: 'not a var'", "not a variable name"),
        ("url: http://host/\n    secret_env: S\n    events: [queue, nonsense]", "unknown event"),
        ("url: http://host/\n    secret_env: S\n    atempts: 3", "did you mean 'attempts'"),
        ("url: http://host/\n    secret_env: S\n    timeout_s: 0", "timeout_s"),
    ],
)
def test_a_bad_webhook_entry_is_one_clear_error(tmp_path: Path, entry: str, message: str) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(f"references: [{{path: {tmp_path}}}]\nwebhooks:\n  - name: ops\n    {entry}\n")
    with pytest.raises(ProjectConfigError, match=message) as caught:
        load_project(file)
    assert "p.yaml:" in str(caught.value)


def test_webhook_names_are_unique_and_filters_take_an_action(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    hook = "  - name: ops\n    url: http://h/\n    secret_env: S\n"
    file.write_text(f"references: [{{path: {tmp_path}}}]\nwebhooks:\n{hook}{hook}")
    with pytest.raises(ProjectConfigError, match="unique"):
        load_project(file)
    only_added = WebhookConfig("h", "http://x", secret="s" * 16, events=("queue.added", "alert"))
    assert only_added.wants("queue", "added") and only_added.wants("alert", "cleared")
    assert not only_added.wants("queue", "resolved") and not only_added.wants("class", "created")
