"""``identify webhooks``: where each webhook stands and its dead letters, read from the
database while no server runs (a running server is asked instead), and dead letters
marked to be sent again (the next ``identify serve`` sends them)."""

from __future__ import annotations

from server import contract
from server.engine.catalog.store import Store
from server.engine.errors import NotIndexedError
from server.engine.loop.webhook_attempt import shown_url
from server.engine.loop.webhooks import dead_letter_info, request_resend
from server.engine.workflows.common import open_project, writer_lock


def webhook_status(ref: str) -> contract.Webhooks:
    """Each configured webhook (``stopped``: no server delivers now) and the dead
    letters not taken since.

    Raises:
        NotIndexedError: the project has no database yet.
    """
    project = open_project(ref)
    if not project.db_path.exists():
        raise NotIndexedError(f"{project.name} has no database yet (run identify index first)")
    store = Store(project.db_path)
    try:
        last = store.last_event_id()
        hooks: list[contract.WebhookStatus] = []
        for hook in project.config.webhooks:
            cursor = store.webhook_cursor(hook.name, start=last, create=False)
            hooks.append(
                {
                    "name": hook.name,
                    "url": shown_url(hook.url),
                    "state": "stopped",
                    "cursor": cursor.cursor,
                    "waiting": store.events_waiting(cursor.cursor),
                    "attempts": cursor.attempts,
                    "next_at": cursor.next_at,
                    "last_error": cursor.last_error,
                    "delivered": cursor.delivered,
                    "dead_letters": store.dead_letter_count(hook.name),
                }
            )
        return {"webhooks": hooks, "dead_letters": dead_letter_info(store)}
    finally:
        store.close()


def resend(ref: str, ids: list[int] | None, webhook: str | None) -> int:
    """Mark dead letters to be sent again (under the writer lock); how many.

    Raises:
        NotFoundError: no webhook of that name.
        ConflictError: a server (or another command) holds the project.
    """
    project = open_project(ref)
    with writer_lock(project, "identify webhooks resend"):
        store = Store(project.db_path)
        try:
            return request_resend(store, project, ids, webhook)
        finally:
            store.close()
