"""Step 1 on a first run (wizard.md §6.1)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from hypaware_tui.core.fmt import printable
from hypaware_tui.screens.base import StepInfo, WizardScreen
from hypaware_tui.screens.widgets import ActionButton, plain

LOOKING = "Looking for Claude Code and Codex history…"


class WelcomeScreen(WizardScreen):
    """What hyp does and where the data stays. Returns "next"."""

    NAME = "Welcome"
    TITLE = "Keep a private record of your AI coding sessions"
    AUTO_FOCUS = "#start"
    CAN_GO_BACK = False

    def __init__(self, step: StepInfo, hyp_home: str, scan_status: str = LOOKING, *, demo: bool = False) -> None:
        super().__init__(step)
        self.hyp_home = hyp_home
        self.scan_status = scan_status
        self.demo = demo

    def compose_body(self) -> ComposeResult:
        yield Static(plain(
            "Claude Code and Codex keep a history of your sessions on this computer, but they delete it after "
            "a while. hyp copies it into a local dataset you can query: tokens by model, sessions per day, the "
            "repos and tools you use most. It can keep capturing new sessions in the background.\n\n"
            f"Everything stays on this computer, in {printable(self.hyp_home)}.", newlines=True,
        ), id="welcome-text")
        if self.demo:
            yield Static("This is a demo: sample history in a temporary folder. Your real history, settings and "
                         "hyp data are not touched, and no background process is started.", id="demo-note")
        yield Static(self.scan_status, id="scan-status")

    def compose_buttons(self) -> ComposeResult:
        yield ActionButton("Get started", id="start")


    def keys(self) -> list[tuple[str, str]]:
        return [("Enter", "get started"), ("q", "quit")]

    def set_scan_status(self, text: str) -> None:
        """Attributes down: the App reports the inventory's progress."""
        self.scan_status = text
        if self.is_mounted:
            self.query_one("#scan-status", Static).update(text)

    def action_next(self) -> None:
        self.dismiss("next")

    def on_action_button_pressed(self, event: ActionButton.Pressed) -> None:
        self.dismiss("next")
