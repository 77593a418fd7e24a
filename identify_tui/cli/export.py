"""``identify export``: the reviewed data as a detection dataset (YOLO or COCO)."""

from __future__ import annotations

from pathlib import Path

import click

from identify_tui.cli.common import project_option, stage, user_errors
from server.engine.workflows.export import TYPES, export_dataset


@click.command()
@project_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yolo", "coco"]),
    required=True,
    help="yolo: images/, labels/, data.yaml; coco: images/, annotations/instances_*.json.",
)
@click.option(
    "--types",
    default=",".join(TYPES),
    show_default=True,
    help="Annotation types, comma-separated (false_positive: pictures as hard negatives).",
)
@click.option("--taxonomy", default=None, help="Only this taxonomy's annotations.")
@click.option("--since", default=None, help="Annotations made at or after (ISO date or time).")
@click.option("--until", default=None, help="Annotations made before (ISO date or time).")
@click.option(
    "--val-share",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of pictures (whole live tracks) held out as val.",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in OUT.")
@click.argument("out", type=click.Path(path_type=Path, file_okay=False))
@user_errors
def export(
    project: str,
    fmt: str,
    types: str,
    taxonomy: str | None,
    since: str | None,
    until: str | None,
    val_share: float,
    overwrite: bool,
    out: Path,
) -> None:
    """Export confirmed, corrected and missed boxes (false positives as background
    pictures) for training a detector elsewhere, split into train and val by picture
    (a live track's pictures stay together; a picture keeps its side in later exports).

    \b
    Example:
      identify export --project projects/cards.yaml --format yolo exports/cards-yolo
      yolo detect train data=exports/cards-yolo/data.yaml
    """
    wanted = [t.strip() for t in types.split(",") if t.strip()]
    proj, done = export_dataset(
        project,
        out,
        "yolo" if fmt == "yolo" else "coco",
        wanted,
        taxonomy,
        since,
        until,
        val_share,
        overwrite,
        stage,
    )
    click.echo(
        f"exported {proj.name} as {fmt} to {done.out}: "
        f"{done.pictures['train']} train / {done.pictures['val']} val picture(s), "
        f"{done.objects['train']} / {done.objects['val']} object(s), "
        f"{done.backgrounds['train']} / {done.backgrounds['val']} background(s), "
        f"{len(done.classes)} class(es)"
    )
    if not done.pictures["val"]:
        click.echo(
            "  the val side is empty (one picture or live track, or --val-share 0): "
            "Ultralytics and pycocotools evaluations need val pictures"
        )
    for why, count in sorted(done.skipped.items()):
        click.echo(f"  left out {count} annotation(s): {why}")
