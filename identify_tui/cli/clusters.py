"""``identify clusters``: groups of pending unknowns, shown, grouped again, named as a
new class or merged into a known one, members dropped, dismissed."""

from __future__ import annotations

import json
from typing import Any

import click

from identify_tui.cli import remote
from identify_tui.cli.common import note, project_option, server_token_option, user_errors
from server.engine.errors import IdentifyError
from server.engine.workflows.clusters import group as run_group
from server.engine.workflows.clusters import show as run_show
from server.engine.workflows.common import serving_url


@click.group()
def clusters() -> None:
    """Clusters: pending unknowns that look alike, to be named once.

    \b
    Example:
      identify clusters group --project projects/demo.yaml
      identify clusters name --project projects/demo.yaml 3 "Dark Magician"
    """


def _print(body: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(body))
        return
    run = body["run"]
    if run is not None:
        click.echo(
            f"grouping {run['id']} ({run['created_at']}): {run['items']} pending unknown(s), "
            f"{run['clusters']} cluster(s), {run['noise']} in none, {run['seconds']:.1f} s"
        )
    if body["message"]:
        click.echo(body["message"])
    for c in body["clusters"]:
        nearest = (
            "no known class"
            if c["nearest_label"] is None
            else f"nearest {c['nearest_label']} ({c['nearest_score']:.2f})"
        )
        members = " ".join(str(m) for m in c["members"][:12])
        more = " ..." if len(c["members"]) > 12 else ""
        click.echo(
            f"  cluster {c['id']}: {c['size']} item(s), alike {c['mean_similarity']:.2f}, "
            f"{nearest}; medoid item {c['medoid_item_id']}; items {members}{more}"
        )


@clusters.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@server_token_option
@user_errors
def show(project: str, as_json: bool, token: str | None) -> None:
    """The newest grouping's open clusters: size, how alike, the nearest known class."""
    url = serving_url(project)
    body = remote.call(url, token, "GET", "/api/clusters?members=all") if url else run_show(project)
    _print(body, as_json)


@clusters.command()
@project_option
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@server_token_option
@user_errors
def group(project: str, as_json: bool, token: str | None) -> None:
    """Group the pending unknowns now (HDBSCAN); the clusters found."""
    url = serving_url(project)
    if url is not None:
        note(f"a server holds the project: grouping through {url}")
        body = remote.call(url, token, "POST", "/api/clusters/regroup", {})
    else:
        body = run_group(project)
    _print(body, as_json)


def _server(project: str, what: str) -> str:
    url = serving_url(project)
    if url is None:
        raise IdentifyError(
            f"{what} goes through a running server (its review desk labels the members): "
            f"start identify serve --project {project}"
        )
    return url


@clusters.command()
@project_option
@click.argument("cluster_id", type=int)
@click.argument("label")
@server_token_option
@user_errors
def name(project: str, cluster_id: int, label: str, token: str | None) -> None:
    """Make a cluster a new class LABEL: each member labelled (a reference each in a
    unified taxonomy), out of the queue."""
    _label(project, cluster_id, label, token, "name")


@clusters.command()
@project_option
@click.argument("cluster_id", type=int)
@click.argument("label")
@server_token_option
@user_errors
def merge(project: str, cluster_id: int, label: str, token: str | None) -> None:
    """Label a cluster's members as the known class LABEL."""
    _label(project, cluster_id, label, token, "merge")


def _label(project: str, cluster_id: int, label: str, token: str | None, verb: str) -> None:
    url = _server(project, f"identify clusters {verb}")
    job = remote.run_job(url, token, f"/api/clusters/{cluster_id}/{verb}", {"label": label}, verb)
    results = job["results"]
    cluster = next(r["cluster"] for r in results if "cluster" in r)
    failed = [r for r in results if "cluster" not in r and not r["ok"]]
    done = sum(1 for r in results if "cluster" not in r and r["ok"])
    click.echo(f"cluster {cluster_id} {cluster['status']} {label}: {done} item(s) labelled")
    for r in failed:
        click.echo(f"  item {r['id']}: {r['error']['message']}", err=True)


@clusters.command()
@project_option
@click.argument("cluster_id", type=int)
@click.argument("items", type=int, nargs=-1, required=True)
@server_token_option
@user_errors
def drop(project: str, cluster_id: int, items: tuple[int, ...], token: str | None) -> None:
    """Take ITEMS (review item ids) out of a cluster; they stay in the queue."""
    url = _server(project, "identify clusters drop")
    body = remote.call(
        url, token, "POST", f"/api/clusters/{cluster_id}/drop", {"items": list(items)}
    )
    click.echo(f"cluster {cluster_id}: {body['size']} item(s) left")


@clusters.command()
@project_option
@click.argument("cluster_id", type=int)
@server_token_option
@user_errors
def dismiss(project: str, cluster_id: int, token: str | None) -> None:
    """Hide a cluster; its members stay in the queue."""
    url = _server(project, "identify clusters dismiss")
    remote.call(url, token, "POST", f"/api/clusters/{cluster_id}/dismiss", {})
    click.echo(f"cluster {cluster_id} dismissed")
