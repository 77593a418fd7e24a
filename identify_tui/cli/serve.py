"""``identify serve`` and ``identify tui``: the server, and the terminal UI that is its
client (imported only when asked for, so headless commands never load Textual)."""

from __future__ import annotations

import click

from identify_tui.cli.common import project_option, user_errors
from server.engine.workflows.serve import ready_to_serve, serve_plan, server_url


@click.command()
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
    from server.http.config import ServeConfig
    from server.http.serve import run_server

    plan = serve_plan(project, host, port, cameras, allow_hosts)
    config = ServeConfig(
        project=plan.project,
        host=plan.host,
        port=plan.port,
        token=token,
        insecure_no_auth=insecure_no_auth,
        cameras=plan.cameras,
        workers=plan.workers,
        allow_hosts=plan.allow_hosts,
    )
    if insecure_no_auth and not token:
        click.echo(
            "identify: WARNING: serving without authentication on "
            f"{config.host}; anyone who can reach it can change this project",
            err=True,
        )
    ready_to_serve(plan)
    name = plan.project.name
    run_server(config, announce=lambda url: click.echo(f"identify: serving {name} on {url}"))


@click.command()
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

    if server is None and project is not None:
        server = server_url(project)
    make_tui(
        TuiConfig(server=server or "http://127.0.0.1:8765", token=token, project_hint=project)
    ).run()
