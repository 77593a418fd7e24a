"""``identify evaluate``: two versions side by side on reviewed data neither trained on."""

from __future__ import annotations

import json

import click

from identify_tui.cli import common
from identify_tui.cli.common import project_option, user_errors
from server.engine.training.evaluate import Scored
from server.engine.workflows.evaluate import evaluate_versions


@click.command()
@project_option
@click.argument("a")
@click.argument("b")
@click.option(
    "--since",
    default=None,
    help="Every picture reviewed since then (ISO date or time) instead of the held-out side.",
)
@click.option("--json", "as_json", is_flag=True, help="The numbers as one JSON object.")
@user_errors
def evaluate(project: str, a: str, b: str, since: str | None, as_json: bool) -> None:
    """Compare versions A and B (registry ids, or live) on reviewed data neither trained
    on. Detectors, on the held-out reviewed pictures: mAP50 and recall at IoU 0.5,
    recall per class, false positives per picture, and open-set accuracy of
    identification through each. Heads or embedders, on the held-out reviewed crops,
    each indexed and calibrated in its own space: top-1, known things accepted right,
    unknown things and false positives rejected, open-set accuracy, per class. Changes
    nothing.

    \b
    Example:
      identify evaluate --project projects/cards.yaml live 7
    """
    done = evaluate_versions(project, a, b, since, common.stage)
    if as_json:
        click.echo(json.dumps(done.to_json()))
        return
    sa, sb = done.a.scored, done.b.scored
    what = (
        f"{sa.pictures} reviewed picture(s) ({done.data}), {sa.objects} object(s)"
        if isinstance(sa, Scored)
        else f"{sa.objects} reviewed crop(s) ({done.data}), {sa.known} of indexed classes"
    )
    unreadable = f"; {done.unreadable} unreadable" if done.unreadable else ""
    click.echo(f"{done.project.name}: {what}{unreadable}")
    click.echo(f"{'':<28} {'A ' + done.a.name[:24]:>26} {'B ' + done.b.name[:24]:>26} {'B - A':>8}")
    diff = done.difference()
    for key in sa.NUMBERS:
        click.echo(
            f"{WORDS[key]:<28} {getattr(sa, key):>26.3f} {getattr(sb, key):>26.3f} "
            f"{diff[key]:>+8.3f}"
        )
    for note in done.notes:
        click.echo(f"note: {note}")
    per = "recall" if isinstance(sa, Scored) else "right"
    for label in sorted(set(sa.per_class_recall) | set(sb.per_class_recall)):
        ra, rb = sa.per_class_recall.get(label, 0.0), sb.per_class_recall.get(label, 0.0)
        click.echo(f"{'  ' + per + ' ' + label[:19]:<28} {ra:>26.3f} {rb:>26.3f} {rb - ra:>+8.3f}")


WORDS = {
    "map50": "mAP50",
    "recall": "recall (IoU 0.5)",
    "false_positives_per_picture": "false positives / picture",
    "open_set_accuracy": "open-set accuracy",
    "top1": "top-1 (indexed classes)",
    "known_accepted_right": "known, accepted right",
    "unknown_rejected": "unknown & FP rejected",
}
