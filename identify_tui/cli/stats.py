"""``identify stats``: the rates to watch, drift, and accuracy as reviewers found it."""

from __future__ import annotations

import json

import click

from identify_tui.cli.common import project_option, user_errors
from identify_tui.wording import threshold_advice
from server import contract
from server.engine.workflows.stats import review_stats


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def describe(stats: contract.Stats) -> list[str]:
    """The lines ``identify stats`` prints."""
    real, drift = stats["reality"], stats["drift"]
    lines = [
        (
            f"annotations {stats['annotations']} (last 7 days {drift['this_week']['total']}, "
            f"7 days before {drift['last_week']['total']}); queue {stats['queue']['pending']} "
            f"pending; coverage {_pct(stats['coverage'])}"
        )
    ]
    for watch in stats["watch"]:
        kind = watch["type"]
        lines.append(
            f"  {kind.replace('_', ' '):<15} {_pct(watch['rate']):>5} "
            f"(before {_pct(drift['last_week']['rates'][kind]):>5})  "
            f"{(watch['status'] or '').upper():<6} {watch['meaning']}"
        )
    predicted = "-" if real["predicted"] is None else f"{real['predicted']:.2f}"
    if real["reviewed"] is None:
        waiting = ", ".join(real["waiting_for"]) or "any review"
        lines.append(
            f"open-set accuracy: verify predicted {predicted}; reviewed: not yet "
            f"({real['reviews']} reviews; waiting for {waiting})"
        )
    else:
        lines.append(
            f"open-set accuracy: verify predicted {predicted}; reviewed {real['reviewed']:.2f} "
            f"(95 % {real['low']:.2f}-{real['high']:.2f}, {real['reviews']} reviews)"
        )
    advice = threshold_advice(real["recommended"])
    if advice is not None:
        lines.append(advice)
    if real["warning"]:
        lines.append(f"WARNING: {real['warning']}")
    return lines


@click.command()
@project_option
@click.option("--label", default=None, help="Keep one class, or a level of its path.")
@click.option("--json", "as_json", is_flag=True, help="Print GET /api/stats's JSON.")
@user_errors
def stats(project: str, label: str | None, as_json: bool) -> None:
    """What the annotations say: the rates to watch (this week and the one before),
    and open-set accuracy as reviewers found it beside verify's prediction.

    \b
    Example:
      identify stats --project projects/demo.yaml
    """
    _, found = review_stats(project, label)
    if as_json:
        click.echo(json.dumps(found))
        return
    for line in describe(found):
        click.echo(line)
