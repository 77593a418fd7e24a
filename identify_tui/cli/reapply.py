"""``identify reapply``: every stored answer decided again (through the server when one
holds the project)."""

from __future__ import annotations

import json
from typing import Any

import click

from identify_tui.cli import remote
from identify_tui.cli.common import note, project_option, server_token_option, stage, user_errors
from server.engine.workflows.common import serving_url
from server.engine.workflows.reapply import reapply as run_reapply


@click.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print what was done as one JSON object.")
@server_token_option
@user_errors
def reapply(project: str, as_json: bool, token: str | None) -> None:
    """Decide every stored answer again, from its stored vector, against the references
    and thresholds in force now (after references were added or removed, or thresholds
    changed): what is newly labelled, relabelled or unlabelled, and the queued misses
    that match now (resolved as auto). Resumable: one stopped by a crash or Ctrl-C goes
    on where it stopped. While `identify serve` holds the project, the work is sent to it.

    \b
    Example:
      identify reapply --project projects/demo.yaml
    """
    url = serving_url(project)
    if url is not None:
        note(f"a server holds the project: re-applying through {url}")
        job = remote.run_job(url, token, "/api/reapply", {}, "reapply")
        result: dict[str, Any] = job["results"][-1]
        run, resumed = result["reapplication"], bool(result["resumed"])
        name = project
    else:
        done = run_reapply(project, stage)
        run, resumed, name = dict(done.to_json()), done.resumed, done.project.name
    if as_json:
        click.echo(json.dumps({**run, "resumed": resumed}))
        return
    c = run["counts"]
    click.echo(
        f"reapply {name}: {c['seen']} answer(s) decided again"
        + (" (resumed)" if resumed else "")
        + f": {c['newly_labelled']} newly labelled, {c['relabelled']} relabelled, "
        f"{c['unlabelled']} unlabelled, {c['unchanged']} unchanged; "
        f"{c['resolved']} queued miss(es) resolved as auto"
    )
    if c["second_stage"]:
        click.echo(
            f"  second stage run again from the kept picture for {c['second_stage_rerun']} "
            f"of {c['second_stage']} answer(s) with a reference added since"
        )
    if c["other_space"]:
        click.echo(
            f"  {c['other_space']} answer(s) stored in another vector space (another model "
            "or head) left as they were"
        )
