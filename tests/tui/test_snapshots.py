"""A few SVG snapshots at a pinned 80x24, animations settled. To accept a deliberate
change of look: ``IDENTIFY_UPDATE_SNAPSHOTS=1 pytest tests/tui/test_snapshots.py`` and
review the SVG diff."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from identify_tui.app import make_tui
from identify_tui.client import TuiConfig
from identify_tui.screens.references import ReferencesScreen
from identify_tui.screens.thresholds import ThresholdsScreen
from identify_tui.widgets.banner import ConnectionBanner

from .conftest import Server, tui, until

SNAPSHOTS = Path(__file__).parent / "snapshots"


async def assert_snapshot(app: Any, pilot: Any, name: str) -> None:
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    svg = app.export_screenshot(title=name)
    path = SNAPSHOTS / f"{name}.svg"
    if os.environ.get("IDENTIFY_UPDATE_SNAPSHOTS") == "1":
        path.write_text(svg, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with IDENTIFY_UPDATE_SNAPSHOTS=1"
    assert svg == path.read_text(encoding="utf-8"), f"{name} looks different: see {path}"


async def test_snapshot_no_server() -> None:
    app = make_tui(TuiConfig(server="http://127.0.0.1:9", project_hint="projects/demo.yaml"))
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.screen.query_one(ConnectionBanner)
        await until(pilot, lambda: banner.display)
        await assert_snapshot(app, pilot, "no_server")


async def test_snapshot_rename_prompt(server: Server) -> None:
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        app.sub_title = "test server"
        await pilot.press("f2")
        await until(
            pilot, lambda: isinstance(app.screen, ReferencesScreen) and app.screen.class_rows
        )
        refs = app.screen
        await until(pilot, lambda: "#" in str(refs.query_one("#ref-info").render()))
        await pilot.press("n")
        await until(pilot, lambda: app.screen.__class__.__name__ == "LabelPrompt")
        await assert_snapshot(app, pilot, "rename_prompt")


async def test_snapshot_thresholds(server: Server) -> None:
    app = tui(server)
    async with app.run_test(size=(80, 24)) as pilot:
        app.sub_title = "test server"
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(app.screen, ThresholdsScreen) and app.screen.curve)
        await pilot.press("plus")
        await assert_snapshot(app, pilot, "thresholds")
