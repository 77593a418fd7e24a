"""The ``identify`` command line: thin over the engine.

Each command parses its options, calls one engine function, and turns an
``IdentifyError`` into one line on stderr and a non-zero exit code. Headless commands
(index, verify, match, init) never import Textual.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from server.engine.errors import IdentifyError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_ERROR = 2
"""Exit code for a user error (bad input, bad project, missing index...)."""
EXIT_UNFIT = 3
"""Exit code of ``verify`` when the reference set is below ``--min-accuracy``."""


def fail(message: str, code: int = EXIT_ERROR) -> None:
    """Print one line to stderr and exit."""
    click.echo(f"identify: error: {message}", err=True)
    sys.exit(code)


def user_errors(fn: F) -> F:
    """Turn an ``IdentifyError`` into a one-line message and a non-zero exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except IdentifyError as exc:
            fail(exc.message)
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper  # type: ignore[return-value]


@contextmanager
def progress_bar(
    length: int, label: str, *, results_on_stdout: bool = False
) -> Iterator[Callable[[int], None]]:
    """Progress of one stage on stderr: a bar on a terminal; on a pipe or in a log one
    line as the stage starts and one as it ends, so a long run shows it is alive.

    ``results_on_stdout``: the command prints a line per item on stdout; when that is a
    terminal too, those lines are the progress and no bar is drawn over them.
    """
    started = time.perf_counter()
    if not sys.stderr.isatty():
        click.echo(f"identify: {label}: {length} ...", err=True)
        yield lambda n: None
        click.echo(f"identify: {label}: done in {time.perf_counter() - started:.1f}s", err=True)
        return
    if results_on_stdout and sys.stdout.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


def writer_lock(project: Any, holder: str) -> Any:
    """The project's one-writer lock (a running server holds it)."""
    from server.engine.project.lock import ProjectLock

    return ProjectLock(project.data_dir, holder)


project_option = click.option(
    "--project",
    "-p",
    required=True,
    metavar="NAME|FILE",
    help="Project name under ./projects/ or a path to a project YAML file.",
)


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
        ctx.invoke(tui)


@main.command()
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
    from server.engine.project.config import ModelConfig
    from server.engine.project.init import write_new_project
    from server.engine.vision.embedders import check_model, default_model

    if model is None:
        model, why = default_model()
        click.echo(f"identify: model {model}: {why}", err=True)
    else:
        check_model(ModelConfig(name=model))
    path = write_new_project(Path.cwd(), name, refs, model, force=force)
    click.echo(str(path))


@main.command()
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
    from server.engine.project.config import load_project
    from server.engine.project.references import scan_references
    from server.engine.vision.embedders import project_embedder
    from server.engine.workflows.index import build_index, describe_skipped
    from server.engine.workflows.preflight import preflight

    proj = load_project(project)
    preflight(proj, references=True)
    embedder = project_embedder(proj.config)
    files, _ = scan_references(proj.config)
    with writer_lock(proj, "identify index"), progress_bar(len(files), "embedding") as update:
        s = build_index(proj, embedder, progress=update)
    click.echo(
        f"indexed {proj.name}: {s.index_size} references in {s.classes} classes "
        f"({s.embedded} embedded, {s.unchanged} unchanged, {s.retired} removed, "
        f"{len(s.skipped)} skipped) in {s.seconds:.1f}s with {embedder.spec.space_id}"
    )
    if s.rebuilt_index:
        click.echo("the vector index was rebuilt from the database")
    if s.skipped:
        click.echo(f"skipped {len(s.skipped)} file(s):")
        for line in describe_skipped(s.skipped, proj.file.parent):
            click.echo(f"  {line}")


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


@main.command()
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
    from server.engine.decide.decision import resolve_thresholds
    from server.engine.project.config import load_project
    from server.engine.vision.embedders import project_embedder
    from server.engine.workflows.match import match_files
    from server.engine.workflows.preflight import preflight

    proj = load_project(project)
    preflight(proj, indexed=True)
    embedder = project_embedder(proj.config)
    thresholds = resolve_thresholds(proj.config, embedder.spec)
    if not thresholds.calibrated:
        threshold, margin = thresholds.default
        click.echo(
            f"identify: note: {proj.name} is not calibrated for "
            f"{embedder.spec.space_id}; using the model's default threshold "
            f"{threshold:.2f} and margin {margin:.2f} (run identify verify)",
            err=True,
        )
    failures = 0
    lock = writer_lock(proj, "identify match") if not no_record else contextlib.nullcontext()
    with lock, progress_bar(len(images), "identifying", results_on_stdout=True) as update:
        for result in match_files(proj, embedder, list(images), record=not no_record):
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


@main.command()
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
    from server.engine.project.config import load_project
    from server.engine.vision.embedders import project_embedder
    from server.engine.workflows.preflight import preflight
    from server.engine.workflows.verify import format_report, run_verify

    proj = load_project(project)
    preflight(proj, indexed=True)
    embedder = project_embedder(proj.config)
    tested = min(_reference_count(proj), proj.config.verify.max_references)
    with (
        writer_lock(proj, "identify verify"),
        progress_bar(tested, "self-testing references") as update,
    ):
        report = run_verify(
            proj, embedder, queries_per_reference=queries, write=not no_write, progress=update
        )
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else format_report(report))
    if report.predicted_open_set_accuracy < min_accuracy:
        click.echo(
            f"identify: predicted open-set accuracy {report.predicted_open_set_accuracy:.3f} "
            f"is below --min-accuracy {min_accuracy:.3f}",
            err=True,
        )
        sys.exit(EXIT_UNFIT)


@main.command()
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
    from server.engine.project.config import load_project
    from server.engine.vision.embedders import create_embedder, project_embedder
    from server.engine.workflows.preflight import preflight
    from server.engine.workflows.train import adopt, needs_force, train_projection
    from server.engine.workflows.verify import run_verify

    proj = load_project(project)
    preflight(proj, indexed=True)
    current = proj.config.projection.id if proj.config.projection else "the plain model"
    with writer_lock(proj, "identify train"):
        plain = create_embedder(proj.config.model)
        count = _reference_count(proj)
        with progress_bar(count, "rendering views") as update:
            report = train_projection(proj, plain, update, force=force)
        if report.adopted:
            with progress_bar(count, "re-indexing") as update:
                summary = adopt(proj, plain, report, update)
            proj = load_project(project)
            tested = min(count, proj.config.verify.max_references)
            with progress_bar(tested, "re-verifying") as update:
                checked = run_verify(proj, project_embedder(proj.config), progress=update)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(
            f"trained on {report.references} references ({report.classes} classes): "
            f"{report.train_views} views, {report.validation_views} held out, "
            f"{report.seconds:.1f}s\nheld-out top-1: plain {report.validation_top1_plain:.3f}"
            f", with the head {report.validation_top1:.3f}"
        )
        for note in report.notes:
            click.echo(f"  {note}")
    if report.verdict == "worse":
        click.echo(f"kept {current}: the new head did worse on the held-out views", err=as_json)
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
    click.echo(
        f"adopted {report.head_id} ({report.head_file}); re-indexed {summary.index_size} "
        f"references; recalibrated: threshold {checked.threshold}, margin "
        f"{checked.margin_threshold}, predicted open-set accuracy "
        f"{checked.predicted_open_set_accuracy:.3f}",
        err=as_json,
    )
    for note in checked.notes:
        click.echo(f"  {note}", err=as_json)
    if needs_force(proj):
        click.echo(
            "  adopted with --force: the head is not validated on whole pictures "
            "(locate); check it on your own photos",
            err=as_json,
        )


def _reference_count(project: Any) -> int:
    """Active references, for progress bars (0 before the first index)."""
    from server.engine.catalog.store import Store

    if not project.db_path.exists():
        return 0
    store = Store(project.db_path)
    try:
        return len(store.active_references())
    finally:
        store.close()


@main.command()
@project_option
@click.option(
    "--host",
    default=None,
    help="Interface to bind [default: the project's, 127.0.0.1]. Anything else needs --token.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="TCP port [default: the project's, 8765].",
)
@click.option(
    "--token",
    envvar="IDENTIFY_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' (or $IDENTIFY_TOKEN).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Allow a non-loopback --host without a token. Anyone who can reach "
    "the port can then read and change the project.",
)
@click.option(
    "--camera",
    "cameras",
    multiple=True,
    metavar="SRC",
    help="A server-side camera: a device number, a video file (looped) or an "
    "RTSP/HTTP URL. Repeat for several.",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests addressed to this host name (one that points at "
    "this machine). Others are refused, against DNS rebinding. Repeatable.",
)
@user_errors
def serve(
    project: str,
    host: str | None,
    port: int | None,
    token: str | None,
    insecure_no_auth: bool,
    cameras: tuple[str, ...],
    allow_hosts: tuple[str, ...],
) -> None:
    """Run the identification server: HTTP API, live webcam page, review queue.

    Open the printed address in a browser to identify things with a webcam.

    \b
    Example:
      identify serve --project projects/demo.yaml
      identify serve --project cards --host 0.0.0.0 --token "$(openssl rand -hex 16)"
    """
    from server.engine.project.config import CameraConfig, load_project
    from server.engine.workflows.preflight import preflight
    from server.http.config import ServeConfig
    from server.http.serve import run_server

    proj = load_project(project)
    scfg = proj.config.server
    config = ServeConfig(
        project=proj,
        host=host or scfg.host,
        port=scfg.port if port is None else port,
        token=token,
        insecure_no_auth=insecure_no_auth,
        cameras=scfg.cameras + tuple(CameraConfig(source=c) for c in cameras),
        workers=scfg.workers,
        allow_hosts=scfg.allow_hosts + allow_hosts,
    )
    if insecure_no_auth and not token:
        click.echo(
            "identify: WARNING: serving without authentication on "
            f"{config.host}; anyone who can reach it can change this project",
            err=True,
        )
    preflight(proj, indexed=True)
    run_server(config, announce=lambda url: click.echo(f"identify: serving {proj.name} on {url}"))


@main.command()
@click.option(
    "--server",
    default=None,
    metavar="URL",
    help="The server's address [default: the project's host and port, else http://127.0.0.1:8765].",
)
@click.option(
    "--token",
    envvar="IDENTIFY_TOKEN",
    default=None,
    help="The server's token (or $IDENTIFY_TOKEN).",
)
@click.option(
    "--project",
    "-p",
    default=None,
    metavar="NAME|FILE",
    help="Take the server's host and port from this project file.",
)
@user_errors
def tui(server: str | None, token: str | None, project: str | None) -> None:
    """Open the terminal UI: review queue, references, thresholds, live results, stats.

    A client of `identify serve` (it never opens the database itself), so it works the
    same over an SSH tunnel to a remote box. Keys are in the footer; Ctrl+P lists
    every command.

    \b
    Example:
      identify tui --project projects/demo.yaml
      ssh -L 8765:127.0.0.1:8765 gpu-box   # then, locally:
      identify tui --server http://127.0.0.1:8765 --token "$IDENTIFY_TOKEN"
    """
    from identify_tui.app import make_tui
    from identify_tui.client import TuiConfig

    hint = project
    if server is None and project is not None:
        from server.engine.project.config import load_project

        scfg = load_project(project).config.server
        host = "127.0.0.1" if scfg.host in ("0.0.0.0", "::") else scfg.host
        server = f"http://{host}:{scfg.port}"
    make_tui(
        TuiConfig(server=server or "http://127.0.0.1:8765", token=token, project_hint=hint)
    ).run()


@main.command()
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
    from server.engine.catalog.media import Media
    from server.engine.catalog.store import Store
    from server.engine.project.config import load_project

    proj = load_project(project)
    if not proj.db_path.exists():
        fail(f"{proj.name} has no database yet (run identify index first)")
    with writer_lock(proj, "identify gc"):
        store = Store(proj.db_path)
        try:
            done = Media(proj.data_dir, store).collect(proj.config.review.keep_days)
        finally:
            store.close()
    click.echo(
        f"gc {proj.name}: {done.pictures_expired} expired picture(s), "
        f"{done.orphans} orphan file(s), {done.bytes_freed / 1e6:.1f} MB freed "
        f"(review.keep_days: {proj.config.review.keep_days})"
    )


@main.command()
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
    from server.engine.vision.embedders import list_models

    rows, left_out = list_models(every)
    for m in rows:
        click.echo(f"{m.name:<28} {'here' if m.offline else 'download'}  {m.description}")
    if left_out:
        click.echo(f"... and {left_out} more open_clip architectures: identify models --all")


if __name__ == "__main__":  # pragma: no cover
    main()
