"""What every command shares: one-line errors and exit codes, progress on stderr, and
the ``--project`` option."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from server.engine.errors import IdentifyError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_ERROR = 2
"""Exit code for a user error (bad input, bad project, missing index...)."""
EXIT_UNFIT = 3
"""Exit code of ``verify`` when the reference set is below ``--min-accuracy``."""


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one line to stderr and exit."""
    click.echo(f"identify: error: {message}", err=True)
    sys.exit(code)


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn an ``IdentifyError`` into a one-line message and a non-zero exit code."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except IdentifyError as exc:
            fail(exc.message)
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper


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


def stage(label: str, length: int) -> Any:
    """A workflow's ``Stage``: its progress drawn by ``progress_bar``."""
    return progress_bar(length, label)


def note(message: str) -> None:
    """A workflow's remark, on stderr."""
    click.echo(f"identify: {message}", err=True)


project_option = click.option(
    "--project",
    "-p",
    required=True,
    metavar="NAME|FILE",
    help="Project name under ./projects/ or a path to a project YAML file.",
)

server_token_option = click.option(
    "--token",
    envvar="IDENTIFY_TOKEN",
    default=None,
    help="The server's token, when one holds the project (or $IDENTIFY_TOKEN).",
)
"""For the commands that write: while a server holds the project they go through its
API, with this token when it has one."""
