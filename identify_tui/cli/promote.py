"""``identify promote``: a separate taxonomy's labels made references."""

from __future__ import annotations

from urllib.parse import quote

import click

from identify_tui.cli import remote
from identify_tui.cli.common import note, project_option, server_token_option, stage, user_errors
from server.engine.workflows.common import serving_url
from server.engine.workflows.promote import promote as run_promote


@click.command()
@project_option
@click.option("--taxonomy", required=True, help="A taxonomy in mode: separate.")
@click.option(
    "--min-confidence",
    type=float,
    default=None,
    help="Answers scoring at least this [default: the taxonomy's promote_confidence, 0.85]; "
    "reviewers' labels are always taken.",
)
@click.option("--id", "ids", type=int, multiple=True, help="Promote these answers only.")
@server_token_option
@user_errors
def promote(
    project: str,
    taxonomy: str,
    min_confidence: float | None,
    ids: tuple[int, ...],
    token: str | None,
) -> None:
    """Make references of a separate taxonomy's labels: its accepted answers at or
    above a confidence, and every reviewer's label (or the answers given with --id).
    While `identify serve` holds the project, the work is sent to it.

    \b
    Example:
      identify promote --project projects/cards.yaml --taxonomy cards --min-confidence 0.9
    """
    url = serving_url(project)
    if url is not None:
        note(f"a server holds the project: promoting through {url}")
        body: dict[str, object] = {"min_confidence": min_confidence}
        if ids:
            body["ids"] = list(ids)
        path = f"/api/taxonomies/{quote(taxonomy, safe='')}/promote"
        results = remote.run_job(url, token, path, body, "promote")["results"]
        made = sum(bool(r["ok"]) for r in results)
        failed = [(r["id"], r["error"]["message"]) for r in results if not r["ok"]]
        name = project
    else:
        done = run_promote(project, taxonomy, min_confidence, ids or None, stage)
        made, failed, name = len(done.references), done.failed, done.project.name
    click.echo(
        f"promote {name}/{taxonomy}: {made} reference(s) made"
        + (f", {len(failed)} answer(s) not" if failed else "")
    )
    for answer, why in failed:
        click.echo(f"  answer {answer}: {why}")
