"""Step 1 when a config exists (wizard.md §7): what is set up, then Reconfigure / Import again / Quit."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from hypaware_tui.core.fmt import printable
from hypaware_tui.screens.base import StepInfo, WizardScreen
from hypaware_tui.screens.widgets import ChoiceList, Row, plain


class WelcomeBackScreen(WizardScreen):
    """Returns "reconfigure", "import_again" or "quit"."""

    NAME = "Welcome back"
    TITLE = "hyp is already set up on this computer"
    AUTO_FOCUS = "#choices"
    CAN_GO_BACK = False

    def __init__(self, step: StepInfo, facts: list[tuple[str, str]], error: str | None = None,
                 default: str = "quit") -> None:
        super().__init__(step)
        self.facts = facts
        self.error = error
        self.default = default

    def title_text(self) -> str:
        return "Your hyp config cannot be read" if self.error else self.TITLE

    def compose_body(self) -> ComposeResult:
        # (the config's path and its error, which quotes the file's values: shown as they are, never as markup)
        width = max((len(k) for k, _ in self.facts), default=0)
        yield Static(plain("\n".join(f"{k.ljust(width)}  {printable(v)}" for k, v in self.facts), newlines=True),
                     id="facts")
        if self.error:
            yield Static(plain(f"{printable(self.error)}\n\nReconfigure starts from the defaults; the broken file "
                               "is kept as a backup.", newlines=True), id="config-error")
        rows = [Row("reconfigure", "Reconfigure", "change clients, retention or capture")]
        if not self.error:
            rows.append(Row("import_again", "Import again", "import the enabled clients' history again (safe)"))
        rows.append(Row("quit", "Quit", "change nothing"))
        rows = [Row(r.value, r.label, r.detail, checked=(r.value == self.default)) for r in rows]
        yield ChoiceList(rows, multi=False, id="choices")


    def keys(self) -> list[tuple[str, str]]:
        return [("Enter", "choose"), ("↑↓", "move"), ("q", "quit")]

    def action_next(self) -> None:
        choice = self.query_one("#choices", ChoiceList).checked
        self.dismiss(choice[0] if choice else "quit")
