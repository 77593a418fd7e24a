"""The Textual app: ``make_tui(config)`` builds it for the CLI and for the tests alike."""

from __future__ import annotations

import gc
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from .client import ApiError, TuiConfig, Unreachable
from .connected import ConnectedApp
from .events import follow
from .screens.clusters import ClustersScreen
from .screens.live import LiveScreen
from .screens.references import ReferencesScreen
from .screens.review import ReviewScreen
from .screens.stats import StatsScreen
from .screens.thresholds import ThresholdsScreen
from .widgets.banner import ConnectionBanner
from .widgets.screen_bar import SCREENS
from .wording import outreach_notice

HEALTH_POLL_S = 2.0


class IdentifyApp(ConnectedApp):
    """Review queue, references, thresholds, live results and stats of one server."""

    CSS_PATH = "identify.tcss"
    TITLE = "identify"
    MODES: ClassVar[dict[str, str | Callable[[], Screen]]] = {
        "review": ReviewScreen,
        "references": ReferencesScreen,
        "thresholds": ThresholdsScreen,
        "live": LiveScreen,
        "stats": StatsScreen,
        "clusters": ClustersScreen,
    }
    DEFAULT_MODE = "review"
    # The F-keys and q show in each screen's ScreenBar, not in the footer, so that the
    # footer has room for the screen's own keys at 80 columns; all are in the palette.
    BINDINGS: ClassVar[list[BindingType]] = [
        *[Binding(key, f"switch_mode('{mode}')", name, show=False) for key, mode, name in SCREENS],
        Binding("q", "quit", "Quit", show=False),
        Binding("ctrl+q", "quit", "Quit", show=False),
    ]

    def __init__(self, config: TuiConfig) -> None:
        super().__init__(config)
        self.problem: str | None = None

    def on_mount(self) -> None:
        self.sub_title = self.config.server
        self.follow_events()
        self.poll_health()
        self.set_interval(HEALTH_POLL_S, self.poll_health)
        self.call_after_refresh(self._settle_heap)

    def _settle_heap(self) -> None:
        """Exempt what start-up built (modules, Textual, the first screen) from the
        garbage collector's full runs: they live as long as the app, and walking them
        every few hundred keypresses is what made an occasional keypress take 0.2 s."""
        gc.collect()
        gc.freeze()

    async def on_unmount(self) -> None:
        gc.unfreeze()  # what the app built may be collected again once it has gone
        await self.api.close()

    @work(exclusive=True, group="events")
    async def follow_events(self) -> None:
        await follow(self.api, self.events)

    @work(exclusive=True, group="health")
    async def poll_health(self) -> None:
        try:
            self.health = await self.api.health()
            self.problem = None
        except Unreachable:
            hint = self.config.project_hint or "P"
            self.problem = (
                f"No identify server at {self.config.server}. Start one with: "
                f"identify serve --project {hint}"
            )
        except ApiError as exc:
            self.problem = f"{self.config.server}: {exc.message}"
        # A lost connection first; else the alerts raised and webhooks in trouble.
        notice = self.problem
        if notice is None and self.health is not None:
            notice = outreach_notice(self.health)
        if not self.screen_stack:
            return  # the app is closing: no screen to tell
        for banner in self.screen.query(ConnectionBanner):
            banner.update(notice or "")
            banner.display = notice is not None

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Every key binding of the app and of the current screen, in the palette."""
        yield from super().get_system_commands(screen)
        for binding in [*self.BINDINGS, *getattr(screen, "BINDINGS", [])]:
            if isinstance(binding, Binding) and binding.description:
                yield SystemCommand(
                    f"{binding.description} ({binding.key})",
                    f"same as pressing {binding.key}",
                    _runner(self, screen, binding.action),
                )


def _runner(
    app: App[None], screen: Screen[object], action: str
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        target = app if action.startswith("switch_mode") or action == "quit" else screen
        await target.run_action(action)

    return run


def make_tui(config: TuiConfig) -> IdentifyApp:
    """The app for a server (the one factory, used by the CLI and the tests)."""
    return IdentifyApp(config)
