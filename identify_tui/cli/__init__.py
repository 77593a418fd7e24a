"""The ``identify`` command line: thin over the engine.

Each command parses its options, calls one workflow function (``server.engine.workflows``,
the only part of the engine it may import), and turns an ``IdentifyError`` into one line
on stderr and a non-zero exit code. Headless commands (index, verify, match, init) never
import Textual.
"""

from __future__ import annotations

import os

import click

from identify_tui.cli import clusters as _clusters
from identify_tui.cli import detector as _detector
from identify_tui.cli import evaluate as _evaluate
from identify_tui.cli import export as _export
from identify_tui.cli import label as _label
from identify_tui.cli import match as _match
from identify_tui.cli import project as _project
from identify_tui.cli import promote as _promote
from identify_tui.cli import reapply as _reapply
from identify_tui.cli import serve as _serve
from identify_tui.cli import stats as _stats
from identify_tui.cli import verify as _verify
from identify_tui.cli import versions as _versions
from identify_tui.cli import webhooks as _webhooks


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, invoke_without_command=True)
@click.version_option(package_name="identify")
@click.pass_context
def main(ctx: click.Context) -> None:
    """identify: tell which known thing a photo shows, or say "unknown".

    With no command, opens the terminal UI (identify tui) on the local server.

    \b
    Example, the offline demo:
      identify index  --project projects/demo.yaml
      identify verify --project projects/demo.yaml
      identify match  --project projects/demo.yaml examples/demo/queries/*.jpg
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if ctx.invoked_subcommand is None:
        ctx.invoke(_serve.tui)


for command in (
    _project.init,
    _project.index,
    _verify.verify,
    _match.match,
    _label.label,
    _verify.train,
    _detector.detector,
    _export.export,
    _evaluate.evaluate,
    _serve.serve,
    _serve.tui,
    _stats.stats,
    _promote.promote,
    _reapply.reapply,
    _webhooks.webhooks,
    _clusters.clusters,
    _project.gc,
    _project.models,
    _versions.versions,
):
    main.add_command(command)
