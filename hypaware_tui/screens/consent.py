"""Step 4 (wizard.md §6.4): the normative consent text and the two choices."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from hypaware_tui.core.fmt import plural, printable
from hypaware_tui.screens.base import StepInfo, WizardScreen
from hypaware_tui.screens.widgets import ActionButton, ChoiceList, Row, plain


def consent_text(clients: str, retention_days: int, hyp_home: str) -> str:
    """The normative text; `clients` are the checked names joined with "and" ("keeps" for one)."""
    back = "as far back as it goes" if retention_days == 0 else f"going back up to {plural(retention_days, 'day')}"
    keep = "keep" if " and " in clients else "keeps"
    return (
        f"hyp will read the session history that {clients} {keep} on this computer, {back}: your prompts, the "
        "assistants' replies, tool calls and their results, token counts, model names, and the working "
        "directory of each session.\n\n"
        f"The copy is stored only on this computer, in {hyp_home}. Nothing is uploaded and nothing leaves this "
        "machine. Image contents are never stored, only the fact that an image was there. The location of each "
        "history file is stored as a one-way hash, not as a path.\n\n"
        '"Up to" because the assistants delete old history themselves, so you may have less.'
    )


class ConsentScreen(WizardScreen):
    """Returns (import_history, capture)."""

    NAME = "Consent"
    TITLE = "Import the history already on this computer?"
    AUTO_FOCUS = "#consent"
    BINDINGS = [Binding("a", "toggle_all", "all", show=False)]  # (also with the button focused, as on Clients)

    def __init__(self, step: StepInfo, clients: str, retention_days: int, hyp_home: str, *,
                 import_history: bool, capture: bool, demo: bool = False, cursor: str | None = None) -> None:
        super().__init__(step)
        self.clients = clients
        self.retention_days = retention_days
        self.hyp_home = hyp_home
        self.import_history = import_history
        self.capture = capture
        self.demo = demo
        self.cursor = cursor  # the row the cursor was on when the user left this screen (None: the first)

    def compose_body(self) -> ComposeResult:
        text = consent_text(self.clients, self.retention_days, printable(self.hyp_home))
        yield Static(plain(text, newlines=True), id="consent-text")
        span = "everything" if self.retention_days == 0 else f"up to {plural(self.retention_days, 'day')}"
        rows = [
            Row("import", f"Import existing history ({span})", checked=self.import_history),
            # A demo never starts the daemon and writes capture off (core.plan.new_config_data): the row says
            # so, rather than offer a choice that Review's config would then contradict.
            Row("capture", "Keep capturing new sessions after setup", checked=self.capture and not self.demo,
                disabled=self.demo,
                note=("Off in this demo: it does not start the hyp capture daemon."
                      if self.demo else
                      f"Runs the hyp capture daemon in the background. It reads the same history files and "
                      f"changes nothing in {self.clients}.")),
        ]
        yield ChoiceList(rows, cursor=self.cursor, id="consent")

    def compose_buttons(self) -> ComposeResult:
        yield ActionButton("Continue", id="continue")

    def keys(self) -> list[tuple[str, str]]:
        return [("Enter", "next"), ("Space", "toggle"), ("a", "all"), ("↑↓", "move"), ("Esc", "back"),
                ("q", "quit")]

    def action_toggle_all(self) -> None:
        self.query_one("#consent", ChoiceList).action_toggle_all()

    def current_answer(self):
        cl = self.query_one("#consent", ChoiceList)
        return (cl.is_checked("import"), cl.is_checked("capture"))

    def action_next(self) -> None:
        cl = self.query_one("#consent", ChoiceList)
        self.dismiss((cl.is_checked("import"), cl.is_checked("capture")))

    def on_action_button_pressed(self, event: ActionButton.Pressed) -> None:
        self.action_next()
