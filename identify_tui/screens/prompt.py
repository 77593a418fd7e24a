"""A one-line question in a modal, with completion over known labels."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label


class LabelPrompt(ModalScreen[str | None]):
    """Ask for a label (or any text); Enter answers, Escape cancels. Suggestions come
    from ``choices`` (Tab or the right arrow accepts one)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "complete", "Complete", priority=True),
    ]

    def __init__(self, question: str, choices: list[str] | None = None, value: str = "") -> None:
        super().__init__()
        self.question = question
        self.choices = choices or []
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Label(self.question)
            yield Input(
                value=self.value,
                id="answer",
                suggester=SuggestFromList(self.choices, case_sensitive=False),
            )
            yield Label("Enter to accept, Tab to complete, Esc to cancel", classes="muted")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.dismiss(text or None)

    def action_complete(self) -> None:
        """Take the suggestion shown (what Tab promises), so Enter answers with it and
        not with the half-typed text."""
        answer = self.query_one("#answer", Input)
        answer.cursor_position = len(answer.value)
        answer.action_cursor_right()  # at the end, this accepts the suggestion

    def action_cancel(self) -> None:
        self.dismiss(None)
