"""``identify label``: auto-label folders of pictures (through the server when one
holds the project)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from identify_tui.cli import remote
from identify_tui.cli.common import (
    EXIT_ERROR,
    note,
    project_option,
    server_token_option,
    stage,
    user_errors,
)
from server.engine.workflows.common import serving_url
from server.engine.workflows.label import label as run_label
from server.engine.workflows.label import summary_of, write_export


@click.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--export",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every object's label to this .csv or .jsonl file.",
)
@server_token_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@user_errors
def label(
    project: str, as_json: bool, export: Path | None, token: str | None, paths: tuple[Path, ...]
) -> None:
    """Auto-label every picture under PATHS (folders recursively): each object found is
    decided; an accepted answer is its label, a miss (and a sample of accepted answers)
    goes to the review queue. Resumable: a picture labelled before, found by its
    content, is not decided again. While `identify serve` holds the project, the work
    is sent to it.

    \b
    Example:
      identify label --project projects/demo.yaml --export labels.csv ~/photos/shelf
    """
    asked = [str(p.expanduser().resolve()) for p in paths]
    url = serving_url(project)
    if url is not None:
        note(f"a server holds the project: labelling through {url}")
        results: list[dict[str, Any]] = remote.run_job(
            url, token, "/api/label", {"paths": asked}, "label"
        )["results"]
    else:
        results = run_label(project, asked, stage).results
    summary = summary_of(results)
    if export is not None:
        rows = write_export(results, export)
        note(f"{rows} label(s) written to {export}")
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"label: {summary['pictures']} picture(s): {summary['labelled']} labelled, "
            f"{summary['already_labelled']} labelled before, {summary['unreadable']} unreadable; "
            f"{summary['objects']} object(s), {summary['accepted']} accepted "
            f"({100 * summary['coverage']:.1f} %), {summary['queued']} queued for review"
        )
        for cls, n in list(summary["classes"].items())[:10]:
            click.echo(f"  {cls}: {n}")
    for err in summary["errors"]:
        click.echo(f"{err['path']}: error: {err['error']}", err=True)
    if summary["unreadable"]:
        sys.exit(EXIT_ERROR)
