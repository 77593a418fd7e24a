"""``identify promote``: a separate taxonomy's labels made references."""

from __future__ import annotations

import click

from identify_tui.cli.common import project_option, stage, user_errors
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
@user_errors
def promote(
    project: str, taxonomy: str, min_confidence: float | None, ids: tuple[int, ...]
) -> None:
    """Make references of a separate taxonomy's labels: its accepted answers at or
    above a confidence, and every reviewer's label (or the answers given with --id).
    With a server running, use its API or the TUI instead.

    \b
    Example:
      identify promote --project projects/cards.yaml --taxonomy cards --min-confidence 0.9
    """
    done = run_promote(project, taxonomy, min_confidence, ids or None, stage)
    click.echo(
        f"promote {done.project.name}/{taxonomy}: {len(done.references)} reference(s) made"
        + (f", {len(done.failed)} answer(s) not" if done.failed else "")
    )
    for answer, why in done.failed:
        click.echo(f"  answer {answer}: {why}")
