"""``identify webhooks``: where each webhook stands, its dead letters, and sending them
again (through the server when one holds the project)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from identify_tui.cli import remote
from identify_tui.cli.common import note, project_option, server_token_option, user_errors
from server.engine.workflows.common import serving_url
from server.engine.workflows.webhooks import resend as run_resend
from server.engine.workflows.webhooks import webhook_status


@click.group()
def webhooks() -> None:
    """Webhooks: the project's events sent, signed, to other systems.

    \b
    Example:
      identify webhooks show --project projects/demo.yaml
      identify webhooks resend --project projects/demo.yaml --webhook ops
    """


@webhooks.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@server_token_option
@user_errors
def show(project: str, as_json: bool, token: str | None) -> None:
    """Where each webhook stands (delivered, waiting, retrying, the last error) and the
    events it did not take after its last retry (dead letters).

    \b
    Example:
      identify webhooks show --project projects/demo.yaml
    """
    url = serving_url(project)
    if url is not None:
        body: Any = remote.call(url, token, "GET", "/api/webhooks")
    else:
        body = webhook_status(project)
    if as_json:
        click.echo(json.dumps(body))
        return
    if not body["webhooks"]:
        click.echo("no webhooks in the project file (see the README, Webhooks)")
    for hook in body["webhooks"]:
        line = (
            f"{hook['name']}  {hook['url']}  {hook['state']}: {hook['delivered']} delivered, "
            f"{hook['waiting']} waiting, {hook['dead_letters']} dead letter(s)"
        )
        click.echo(line)
        if hook["attempts"]:
            due = hook["next_at"]
            when = f", next in {max(0.0, due - time.time()):.0f} s" if due else ""
            click.echo(f"  {hook['attempts']} failed attempt(s){when}: {hook['last_error']}")
    if url is None and body["webhooks"]:
        note("no server runs: events wait for `identify serve`, which delivers them")
    for letter in body["dead_letters"]:
        click.echo(
            f"  dead letter {letter['id']}: {letter['webhook']} event {letter['event_id']} "
            f"({letter['event_type']}) after {letter['attempts']} attempt(s): {letter['error']}"
        )


@webhooks.command()
@project_option
@click.option("--id", "ids", type=int, multiple=True, help="Dead letters to send again.")
@click.option("--webhook", default=None, help="Every dead letter of this webhook.")
@server_token_option
@user_errors
def resend(project: str, ids: tuple[int, ...], webhook: str | None, token: str | None) -> None:
    """Send dead letters again (those given with --id, or a webhook's, or all): one
    attempt each, by the server (now if it runs, else when `identify serve` next starts);
    one that fails again stays a dead letter.

    \b
    Example:
      identify webhooks resend --project projects/demo.yaml --webhook ops
    """
    chosen = list(ids) or None
    url = serving_url(project)
    if url is not None:
        body: dict[str, Any] = {}
        if chosen is not None:
            body["ids"] = chosen
        if webhook is not None:
            body["webhook"] = webhook
        count = int(remote.call(url, token, "POST", "/api/webhooks/resend", body)["resend"])
        click.echo(f"{count} dead letter(s) being sent again by {url}")
    else:
        count = run_resend(project, chosen, webhook)
        click.echo(f"{count} dead letter(s) marked: `identify serve` sends them when it starts")
