"""``identify match``: identify image files and say why an unknown is unknown."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from identify_tui.cli.common import EXIT_ERROR, progress_bar, project_option, user_errors
from server.engine.workflows.match import match_project


def explain(obj: Any) -> str:
    """One decision as ``match`` prints it: the answer, and for an unknown what was
    missing (the score or margin needed)."""
    if obj.matched:
        return f"{obj.label}  score {obj.score:.3f}  margin {obj.margin:.3f}"
    best = obj.candidates[0].label if obj.candidates else "-"
    if obj.reason == "below_threshold":
        why = f"score {obj.score:.3f} < {obj.threshold:.3f} needed"
        rest = f"margin {obj.margin:.3f}"
    elif obj.reason == "low_margin":
        why = f"margin {obj.margin:.3f} < {obj.margin_threshold:.3f} needed"
        rest = f"score {obj.score:.3f}"
    else:
        return f"unknown ({obj.reason})"
    return f"unknown ({obj.reason}: {why}; closest {best}, {rest})"


@click.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, per line.")
@click.option(
    "--no-record",
    is_flag=True,
    help="Do not store the queries and results in the project database.",
)
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@user_errors
def match(project: str, as_json: bool, no_record: bool, images: tuple[Path, ...]) -> None:
    """Identify image files (the whole image is one object).

    Unreadable files get an error line (or an "error" field with --json); the exit code
    is non-zero if any file failed.

    \b
    Example:
      identify match --project projects/demo.yaml --json photo1.jpg photo2.jpg
    """
    failures = 0
    run = match_project(project, record=not no_record, note=_note)
    with run, progress_bar(len(images), "identifying", results_on_stdout=True) as update:
        for result in run.results(list(images)):
            update(1)
            if result.error is not None:
                failures += 1
            if as_json:
                click.echo(json.dumps(result.to_json()))
            elif result.error is not None:
                click.echo(f"{result.path}: error: {result.error}", err=True)
            else:
                for obj in result.decisions:
                    click.echo(f"{result.path}: {explain(obj)}")
    if failures:
        sys.exit(EXIT_ERROR)


def _note(message: str) -> None:
    click.echo(f"identify: note: {message}", err=True)
