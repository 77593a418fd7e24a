"""``identify versions``: the model registry (embedders, heads, detectors)."""

from __future__ import annotations

import json

import click

from identify_tui.cli.common import project_option, stage, user_errors
from server.engine.workflows.versions import (
    KINDS,
    Switched,
    list_versions,
    roll_back,
    show_version,
    use_version,
)

kind_option = click.option("--kind", type=click.Choice(KINDS), default=None, help="Only this kind.")


@click.group()
def versions() -> None:
    """Versions of the project's models: each embedder, projection head and detector it
    made or used, with its content hash, parent, training data and metrics.

    \b
    Example:
      identify versions list --project projects/cards.yaml
      identify versions use 4 --project projects/cards.yaml
      identify versions rollback --kind detector --project projects/cards.yaml
    """


def _metrics(values: dict[str, object]) -> str:
    shown = [
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
        for k, v in values.items()
        if v is not None
    ]
    return ", ".join(shown) or "-"


@versions.command("list")
@project_option
@kind_option
@user_errors
def list_(project: str, kind: str | None) -> None:
    """List every version, oldest first; * marks the live one of each kind."""
    proj, rows = list_versions(project, kind)
    click.echo(f"{proj.name}: {len(rows)} version(s)")
    for row in rows:
        mark = "*" if row.live else " "
        if row.version is None:
            click.echo(f"{mark} {'-':>4}  {row.kind:<8}  {row.name}  (live, not registered yet)")
            continue
        v = row.version
        parent = f"  from {v.parent_id}" if v.parent_id else ""
        click.echo(
            f"{mark} {v.id:>4}  {v.kind:<8}  {v.name}  {v.created_at}{parent}  "
            f"{_metrics(v.metrics)}"
        )


@versions.command()
@project_option
@click.argument("version_id", type=int)
@user_errors
def show(project: str, version_id: int) -> None:
    """Everything about one version, as JSON."""
    _, v, live, switches = show_version(project, version_id)
    doc = {
        "id": v.id,
        "kind": v.kind,
        "name": v.name,
        "path": v.path,
        "content_hash": v.content_hash,
        "parent_id": v.parent_id,
        "created_at": v.created_at,
        "live": live,
        "training": v.training,
        "metrics": v.metrics,
        "switches": [{"version_id": i, "at": at, "reason": why} for i, at, why in switches],
    }
    click.echo(json.dumps(doc, indent=2))


def _said(done: Switched) -> None:
    was = "?" if done.before is None else f"{done.before.id} ({done.before.name})"
    click.echo(f"{done.project.name}: {done.kind} {was} -> {done.after.id} ({done.after.name})")
    if done.summary is not None:
        click.echo(
            f"re-indexed in the new space: {done.summary.embedded} embedded, "
            f"{done.summary.unchanged} unchanged"
        )
    if done.checked is not None:
        c = done.checked
        click.echo(
            f"recalibrated: threshold {c.threshold}, margin {c.margin_threshold}, "
            f"predicted open-set accuracy {c.predicted_open_set_accuracy:.3f}"
        )
    if done.kind == "detector":
        click.echo("a running server takes it at its next start")


@versions.command()
@project_option
@click.argument("version_id", type=int)
@user_errors
def use(project: str, version_id: int) -> None:
    """Make a version live (a head or an embedder: re-index and recalibrate)."""
    _said(use_version(project, version_id, stage))


@versions.command()
@project_option
@click.option("--kind", type=click.Choice(KINDS), required=True)
@user_errors
def rollback(project: str, kind: str) -> None:
    """Go back to the version of KIND that was live before the live one."""
    _said(roll_back(project, kind, stage))
