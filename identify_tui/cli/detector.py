"""``identify detector train``: a detector trained on the project's own references."""

from __future__ import annotations

import click

from identify_tui.cli.common import project_option, stage, user_errors
from server.engine.workflows.detector import train_detector
from server.engine.workflows.finetune import finetune_detector


@click.group()
def detector() -> None:
    """Detectors: find several things in one picture.

    \b
    Example:
      identify detector train --project projects/cards.yaml
    """


@detector.command()
@project_option
@click.option(
    "--scenes",
    type=click.IntRange(10, 100_000),
    default=600,
    show_default=True,
    help="Synthetic scenes to make (a fifth held out to measure on).",
)
@click.option("--epochs", type=click.IntRange(1, 1000), default=30, show_default=True)
@click.option(
    "--image-size",
    type=click.IntRange(64, 1280),
    default=320,
    show_default=True,
    help="Training picture side, a multiple of 32 (larger finds smaller things, slower).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@user_errors
def train(project: str, scenes: int, epochs: int, image_size: int, seed: int) -> None:
    """Train a class-agnostic YOLO detector on synthetic scenes of the references.

    Each scene puts 2-5 references on a background (the photos, and as many procedural
    ones), in perspective and partly covering each other; Ultralytics trains a keypoint
    model offline from its yolo11n-pose architecture, whose four keypoints are each
    thing's corners, so every thing it finds is straightened before it is identified.
    The weights go to the project's models folder and the project file's detector block.

    \b
    Example:
      identify detector train --project projects/cards.yaml --scenes 800 --epochs 40
    """
    if image_size % 32:
        raise click.BadParameter("must be a multiple of 32", param_hint="--image-size")
    run = train_detector(project, scenes, epochs, image_size, seed, stage)
    click.echo(
        f"trained a detector for {run.project.name} on {run.scenes} scenes, {run.epochs} "
        f"epochs at {run.image_size} px: mAP50 {run.map50:.3f} on the held-out scenes "
        f"(corners {run.corners_map50:.3f}); weights {run.weights} (and what they are, "
        f"in {run.weights.with_suffix('.json').name})"
    )


@detector.command()
@project_option
@click.option(
    "--from",
    "base",
    type=int,
    default=None,
    help="The registry version to start from (default: the live detector).",
)
@click.option("--epochs", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option(
    "--image-size",
    type=click.IntRange(64, 1280),
    default=None,
    help="Training picture side, a multiple of 32 (default: the base's).",
)
@click.option(
    "--replay/--no-replay",
    default=True,
    show_default=True,
    help="Train on the synthetic scenes too, so that few corrections do not make it forget.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@user_errors
def finetune(
    project: str, base: int | None, epochs: int, image_size: int | None, replay: bool, seed: int
) -> None:
    """Fine-tune the detector on the reviewed boxes (confirmed, corrected, missed; false
    positives as background pictures), held-out pictures kept to measure on.

    The result is a new version in the registry, not live: compare it with
    identify evaluate, then make it live with identify versions use.

    \b
    Example:
      identify detector finetune --project projects/cards.yaml --epochs 20
      identify evaluate --project projects/cards.yaml live 7
      identify versions use 7 --project projects/cards.yaml
    """
    if image_size is not None and image_size % 32:
        raise click.BadParameter("must be a multiple of 32", param_hint="--image-size")
    done = finetune_detector(project, base, epochs, image_size, replay, seed, stage)
    before = "-" if done.base_map50 is None else f"{done.base_map50:.3f}"
    base_recall = "-" if done.base_recall is None else f"{done.base_recall:.3f}"
    click.echo(
        f"fine-tuned {done.base} on {done.pictures['train']} reviewed picture(s), "
        f"{done.epochs} epochs at {done.image_size} px: version {done.version.id} "
        f"({done.version.name})"
    )
    click.echo(
        f"on {done.pictures['val']} held-out reviewed picture(s): mAP50 {done.map50:.3f} "
        f"(base {before}), recall {done.recall:.3f} (base {base_recall})"
    )
    click.echo(
        f"not live yet: identify evaluate --project {project} live {done.version.id}, then "
        f"identify versions use {done.version.id} --project {project}"
    )
