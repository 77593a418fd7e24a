"""``identify clusters``: the queue grouped and shown from the command line with no
server; naming a cluster says it needs one."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import write_project
from tests.server.test_clusters import variants

from .test_label_cli import run

EVERYTHING_A_MISS = (
    "taxonomies:\n  - name: default\n    threshold: 1.5\n    margin: 0.05\n"
    "clusters:\n  min_cluster_size: 4\n"
)


def test_clusters_are_grouped_and_shown_without_a_server(tmp_path: Path, small_refs: Path) -> None:
    project = write_project(tmp_path, small_refs, EVERYTHING_A_MISS)
    assert run("index", "--project", str(project))[0] == 0
    code, out, _ = run("clusters", "show", "--project", str(project))
    assert code == 0 and "never grouped" in out
    photos = tmp_path / "photos"
    photos.mkdir()
    for n, data in enumerate(
        variants("unknown-germany.jpg", 6) + variants("unknown-orange.jpg", 6)
    ):
        (photos / f"p{n}.jpg").write_bytes(data)
    assert run("label", "--project", str(project), str(photos))[0] == 0
    code, out, _ = run("clusters", "group", "--project", str(project), "--json")
    body = json.loads(out)
    assert code == 0 and body["run"]["items"] == 12 and len(body["clusters"]) == 2
    code, out, _ = run("clusters", "show", "--project", str(project))
    assert "2 cluster(s)" in out and out.count("  cluster ") == 2
    code, _, err = run("clusters", "name", "--project", str(project), "1", "Germany")
    assert code != 0 and "goes through a running server" in err
