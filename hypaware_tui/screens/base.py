"""The frame every wizard step shares (wizard.md §4): header with badge, dim `Step N of M · Name`, title,
scrolling body, a button row and the footer listing the keys valid on that screen.

A step screen receives immutable data in `__init__` and ends with `dismiss(result)`; `BACK` means "go back
one screen, keeping answers". The App (hypaware_tui/app.py) is the only place that sequences screens, and
the only place that handles quitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from hypaware_tui.screens.widgets import KeyBar, StepHeader


@dataclass(frozen=True)
class Back:
    """The result of a step screen when the user pressed Esc: go back one screen. `answer` is the screen's
    current (unconfirmed) answer, kept so that coming back shows it again."""

    answer: Any = None


BACK = Back()


@dataclass(frozen=True)
class StepInfo:
    """Where a screen sits in the flow and how the header reads."""

    number: int
    total: int
    badge: str | None = None  # "DEMO" / "DRY RUN"


class WizardScreen(Screen[Any]):
    """Base of every step. Subclasses set NAME and TITLE and implement `compose_body`."""

    NAME = ""
    TITLE = ""
    CAN_GO_BACK = True
    QUIT_KIND = "setup"  # setup | import | done
    AUTO_FOCUS: str | None = None  # each step names the widget that has focus when it appears (never the scrolling body)

    BINDINGS = [
        Binding("enter", "next", "next", show=False),
        Binding("escape", "back", "back", show=False),
        Binding("q", "app.request_quit", "quit", show=False),
        Binding("down,j", "app.focus_next", "", show=False),
        Binding("up,k", "app.focus_previous", "", show=False),
    ]

    def __init__(self, step: StepInfo) -> None:
        super().__init__()
        self.step = step

    def compose(self) -> ComposeResult:
        yield StepHeader(self.step.badge)
        total = f" of {self.step.total}" if self.step.total else ""  # unknown until the path is chosen
        yield Static(f"Step {self.step.number}{total} · {self.NAME}", id="step")
        yield Static(self.title_text(), id="title")
        # Not a focus stop: Tab moves between the lists and buttons, each of which shows its focus. A focusable
        # body took focus with no marker, and Enter there ran Next (on Review: the commit) with no button
        # visibly chosen. Scrolling stays with the wheel and each screen's keys.
        with VerticalScroll(id="body", can_focus=False):
            yield from self.compose_body()
        with Horizontal(id="buttons"):
            yield from self.compose_buttons()
        yield KeyBar(self.keys())

    def title_text(self) -> str:
        return self.TITLE

    def compose_body(self) -> ComposeResult:
        yield from ()

    def compose_buttons(self) -> ComposeResult:
        yield from ()

    def keys(self) -> list[tuple[str, str]]:
        keys = [("Enter", "next")]
        if self.CAN_GO_BACK:
            keys.append(("Esc", "back"))
        keys.append(("q", "quit"))
        return keys

    def action_next(self) -> None:
        """Enter on the screen (a focused button handles Enter itself)."""

    def current_answer(self) -> Any:
        """What `dismiss` would return now (kept when going back)."""
        return None

    def action_back(self) -> None:
        if self.CAN_GO_BACK:
            self.dismiss(Back(self.current_answer()))
