"""``identify verify`` and ``identify train``: self-test the reference set, and fit a
projection head to it."""

from __future__ import annotations

import json
import sys

import click

from identify_tui.cli.common import EXIT_UNFIT, project_option, stage, user_errors
from server.engine.workflows.reviewed_crops import MIN_HELD_OUT
from server.engine.workflows.train import train_project
from server.engine.workflows.verify import verify_project
from server.engine.workflows.verify_report import format_report


@click.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option(
    "--min-accuracy",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Exit with code 3 when predicted open-set accuracy is below this.",
)
@click.option(
    "--queries",
    type=click.IntRange(1, 100),
    default=None,
    help="Synthetic queries per reference (default: the project's verify setting).",
)
@click.option("--no-write", is_flag=True, help="Do not write the thresholds to the project.")
@user_errors
def verify(
    project: str, as_json: bool, min_accuracy: float, queries: int | None, no_write: bool
) -> None:
    """Self-test the reference set with synthetic camera-like queries.

    Reports top-1 accuracy, margins, the most confusable pairs and an estimate of how
    unknown things score; recommends thresholds and writes them into the project.

    \b
    Example:
      identify verify --project projects/demo.yaml --min-accuracy 0.9
    """
    report = verify_project(project, queries, write=not no_write, stage=stage)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else format_report(report))
    if report.predicted_open_set_accuracy < min_accuracy:
        click.echo(
            f"identify: predicted open-set accuracy {report.predicted_open_set_accuracy:.3f} "
            f"is below --min-accuracy {min_accuracy:.3f}",
            err=True,
        )
        sys.exit(EXIT_UNFIT)


@click.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print the training report as JSON.")
@click.option(
    "--force",
    is_flag=True,
    help="Adopt a supcon head even though the project locates things in whole "
    "pictures (locate.enabled), where it is not validated.",
)
@user_errors
def train(project: str, as_json: bool, force: bool) -> None:
    """Fit a projection head to the project's references, then re-index and re-verify.

    The head is fitted to synthetic camera views of every reference (train.method:
    whiten, a linear map in closed form, by default; supcon, the seed's trained MLP); a
    quarter of the views is held out, and the head is adopted only if it identifies them
    at least as well as the plain model. Those views are crops: a supcon head in a
    project that locates things in whole pictures (locate.enabled, the default) needs
    --force. To go back, delete the project's `projection:` block, then run identify
    index and identify verify.

    \b
    Example:
      identify train --project projects/cards.yaml
    """
    run = train_project(project, force=force, stage=stage)
    report, current = run.report, run.before
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(
            f"trained on {report.references} references ({report.classes} classes): "
            f"{report.train_views} views, {report.validation_views} held out, "
            f"{report.seconds:.1f}s\nheld-out top-1: plain {report.validation_top1_plain:.3f}"
            f", with the head {report.validation_top1:.3f}"
        )
        real = report.real
        if real.get("trained_on") or real.get("held_out"):
            line = (
                f"reviewed crops: {real['trained_on']} trained on, {real['held_out']} held out "
                "(the newest pictures)"
            )
            if "top1" in real:
                line += f"; held-out top-1: plain {real['top1_plain']:.3f}, with the head {real['top1']:.3f}"
            if "auc" in real:
                line += (
                    f"; false positives told apart (AUC, {real['negatives_held_out']}): "
                    f"plain {real['auc_plain']:.3f}, with the head {real['auc']:.3f}"
                )
            click.echo(line)
            if real["held_out"] < MIN_HELD_OUT:
                click.echo(
                    f"  fewer than {MIN_HELD_OUT} reviewed crops held out: judged on the "
                    "synthetic views"
                )
        for note in report.notes:
            click.echo(f"  {note}")
    if report.verdict == "worse":
        judged = "reviewed crops" if report.real.get("held_out", 0) >= MIN_HELD_OUT else "views"
        click.echo(f"kept {current}: the new head did worse on the held-out {judged}", err=as_json)
        return
    if report.verdict == "locate":
        click.echo(
            f"kept {current}: this project locates things in whole pictures "
            "(locate.enabled), where a supcon head let more unknown things through on "
            "the benchmark; use train.method: whiten, set locate.enabled: false if your "
            "pictures are crops of one thing, or pass --force to adopt it anyway",
            err=as_json,
        )
        return
    summary, checked = run.summary, run.checked
    assert summary is not None and checked is not None  # adopted: re-indexed, re-verified
    click.echo(
        f"adopted {report.head_id} ({report.head_file}); re-indexed {summary.index_size} "
        f"references; recalibrated: threshold {checked.threshold}, margin "
        f"{checked.margin_threshold}, predicted open-set accuracy "
        f"{checked.predicted_open_set_accuracy:.3f}",
        err=as_json,
    )
    for note in checked.notes:
        click.echo(f"  {note}", err=as_json)
    if run.forced:
        click.echo(
            "  adopted with --force: the head is not validated on whole pictures "
            "(locate); check it on your own photos",
            err=as_json,
        )
