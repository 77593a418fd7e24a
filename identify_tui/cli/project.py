"""``identify init``, ``index``, ``gc`` and ``models``: a project's file, its index,
its storage, and the models it may use."""

from __future__ import annotations

from pathlib import Path

import click

from identify_tui.cli.common import note, project_option, stage, user_errors
from server.engine.workflows.index import describe_skipped, index_project
from server.engine.workflows.project import collect_garbage, list_models, new_project


@click.command()
@click.argument("name")
@click.option(
    "--refs",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of reference images (one file or one sub-folder per class).",
)
@click.option(
    "--model",
    default=None,
    help="Embedder: an open_clip architecture, or efficientnet-lite0 (offline) "
    "[default: ViT-B-32 when its weights are on this machine, else "
    "efficientnet-lite0].",
)
@click.option("--force", is_flag=True, help="Overwrite an existing project file.")
@user_errors
def init(name: str, refs: Path, model: str | None, force: bool) -> None:
    """Write a new project file to projects/NAME.yaml and print its path.

    \b
    Example:
      identify init cards --refs ~/photos/cards --model efficientnet-lite0
    """
    path = new_project(Path.cwd(), name, refs, model, force=force, note=note)
    click.echo(str(path))


@click.command()
@project_option
@user_errors
def index(project: str) -> None:
    """Embed new or changed reference images into the project's index.

    Incremental: files whose content did not change are not embedded again.
    Unreadable files are skipped and listed.

    \b
    Example:
      identify index --project projects/demo.yaml
    """
    run = index_project(project, stage)
    s, proj = run.summary, run.project
    click.echo(
        f"indexed {proj.name}: {s.index_size} references in {s.classes} classes "
        f"({s.embedded} embedded, {s.unchanged} unchanged, {s.retired} removed, "
        f"{len(s.skipped)} skipped) in {s.seconds:.1f}s with {run.space_id} on {run.device}"
    )
    if s.rebuilt_index:
        click.echo("the vector index was rebuilt from the database")
    if s.skipped:
        click.echo(f"skipped {len(s.skipped)} file(s):")
        for line in describe_skipped(s.skipped, proj.file.parent):
            click.echo(f"  {line}")


@click.command()
@project_option
@user_errors
def gc(project: str) -> None:
    """Apply the storage retention policy now and remove orphan media files.

    Deletes the pictures of review items decided or skipped more than review.keep_days
    ago (their rows stay) and files under the data folder's media/ that no row needs.
    A running server does this by itself, at start and hourly.

    \b
    Example:
      identify gc --project projects/demo.yaml
    """
    proj, done = collect_garbage(project)
    click.echo(
        f"gc {proj.name}: {done.pictures_expired} expired picture(s), "
        f"{done.orphans} orphan file(s), {done.bytes_freed / 1e6:.1f} MB freed "
        f"(review.keep_days: {proj.config.review.keep_days})"
    )


@click.command()
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every open_clip architecture with pretrained weights (about 115).",
)
@user_errors
def models(every: bool) -> None:
    """List the embedders a project may use: offline ones first, then one line per
    open_clip architecture ("here" when its weights are on this machine, else
    "download").

    \b
    Example:
      identify models
    """
    rows, left_out = list_models(every)
    for m in rows:
        backends = "+".join(m.backends)
        click.echo(
            f"{m.name:<28} {'here' if m.offline else 'download'}  {backends:<9}  {m.description}"
        )
    if left_out:
        click.echo(f"... and {left_out} more open_clip architectures: identify models --all")
