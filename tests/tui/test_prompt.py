"""The label prompt: what Tab shows is what Enter saves."""

from __future__ import annotations

from textual.app import App

from identify_tui.screens.prompt import LabelPrompt

CHOICES = ["Ten Of Spades", "Ten Of Hearts", "Joker"]


class PromptApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.answers: list[str | None] = []

    def on_mount(self) -> None:
        self.push_screen(LabelPrompt("Label?", CHOICES), self.answers.append)


async def answer(keys: list[str]) -> str | None:
    app = PromptApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press(*keys)
        await pilot.pause()
    assert len(app.answers) == 1
    return app.answers[0]


async def test_tab_completes_so_enter_saves_the_whole_label() -> None:
    assert await answer([*"Ten Of S", "tab", "enter"]) == "Ten Of Spades"
    assert await answer([*"jok", "tab", "enter"]) == "Joker"


async def test_enter_without_tab_keeps_what_was_typed_and_tab_without_match_changes_nothing() -> (
    None
):
    assert await answer([*"Ten Of S", "enter"]) == "Ten Of S"
    assert await answer([*"Queen", "tab", "enter"]) == "Queen"
