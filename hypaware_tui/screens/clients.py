"""Step 2 (wizard.md §6.2): which assistants hyp reads, with what the inventory found so far."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from hypaware_tui.core.fmt import plural
from hypaware_tui.core.window import local_dates_note
from hypaware_tui.screens.base import StepInfo, WizardScreen
from hypaware_tui.screens.widgets import ActionButton, ChoiceList, KeyBar, Row

NOTHING_FOUND = ("No Claude Code or Codex history was found on this computer. Run hyp init --demo to try hyp "
                 "with sample data.")
PICK_ONE = "Pick at least one assistant."
STILL_LOOKING = "Still looking for history…"


@dataclass(frozen=True)
class ClientView:
    """One client as the inventory knows it right now."""

    client: str
    name: str
    scanning: bool = True
    detected: bool | None = None  # None until detection is known
    reason: str | None = None
    files_scanned: int = 0
    summary: str = ""  # "241 files · 133 sessions · 1.1 GB · 2026-04-30 → 2026-08-29" (local dates)
    dates: tuple[int | None, int | None] = (None, None)  # the oldest and newest record the summary dates show
    empty: bool = False
    currently_off: bool = False  # Reconfigure: detected but disabled in the config

    def detail(self) -> str:
        if self.detected is False:
            return self.reason or "not found"
        if self.scanning:
            return f"scanning… {plural(self.files_scanned, 'file')}" if self.files_scanned else "scanning…"
        text = "no history yet · new sessions will be captured" if self.empty else self.summary
        if self.currently_off:
            text += " · detected, currently off"
        return text


class ClientsScreen(WizardScreen):
    """Returns the checked clients (a tuple, never empty)."""

    NAME = "Clients"
    TITLE = "Which assistants should hyp read?"
    AUTO_FOCUS = "#clients"
    # `a` from anywhere on the screen (the key bar lists it), not only while the list has focus.
    BINDINGS = [Binding("a", "toggle_all", "all", show=False)]

    def __init__(self, step: StepInfo, views: list[ClientView], checked: tuple[str, ...] | None, *,
                 cursor: str | None = None) -> None:
        super().__init__(step)
        self.views = views
        self.cursor = cursor  # the row the cursor was on when the user left this screen (None: the first)
        self.initial = checked  # None = pre-check what detection finds
        self.touched = checked is not None
        self.problem = ""  # the message under the rows (Pick at least one assistant., …)

    def _set_problem(self, text: str) -> None:
        self.problem = text
        self.query_one("#problem", Static).update(text)

    def _rows(self, checked: set[str]) -> list[Row]:
        return [Row(v.client, v.name, v.detail(), checked=v.client in checked and v.detected is not False,
                    disabled=v.detected is False) for v in self.views]

    def _default_checked(self) -> set[str]:
        if self.initial is not None:
            return set(self.initial)
        return {v.client for v in self.views if v.detected}

    def compose_body(self) -> ComposeResult:
        width = max(len(v.name) for v in self.views)
        yield ChoiceList(self._rows(self._default_checked()), label_width=width, cursor=self.cursor, id="clients")
        yield Static("", id="dates")
        yield Static("", id="nothing-found")
        yield Static("", id="problem")

    def compose_buttons(self) -> ComposeResult:
        yield ActionButton("Continue", id="continue")

    def on_mount(self) -> None:
        self._refresh_nothing_found()

    def keys(self) -> list[tuple[str, str]]:
        return [("Enter", "next"), ("Space", "toggle"), ("a", "all"), ("↑↓", "move"), ("Esc", "back"),
                ("q", "quit")]

    def action_toggle_all(self) -> None:
        self.query_one("#clients", ChoiceList).action_toggle_all()

    @property
    def nothing_detected(self) -> bool:
        return all(v.detected is False for v in self.views)

    def _refresh_dates(self) -> None:
        """The zone of the rows' dates, under them (`hyp backfill list` says it under its table): a date alone
        read a day apart from `hyp backfill plan`'s for a session late in the evening."""
        shown = [us for v in self.views if v.detected and not v.scanning and not v.empty and v.summary
                 for us in v.dates]
        dates = self.query_one("#dates", Static)
        dates.update(local_dates_note(*shown) if any(us is not None for us in shown) else "")
        dates.display = any(us is not None for us in shown)

    def _refresh_nothing_found(self) -> None:
        self._refresh_dates()
        nothing = self.nothing_detected
        self.query_one("#nothing-found", Static).update(NOTHING_FOUND if nothing else "")
        self.query_one("#continue").display = not nothing
        self.query_one(KeyBar).set_keys([("Esc", "back"), ("q", "quit")] if nothing else self.keys())

    def update_views(self, views: list[ClientView]) -> None:
        """Attributes down: the inventory reported. Pre-checks newly detected clients unless the user
        already changed the selection."""
        self.views = views
        if not self.is_mounted:
            return
        cl = self.query_one("#clients", ChoiceList)
        checked = set(cl.checked) if self.touched else self._default_checked()
        cl.set_rows(self._rows(checked))
        self._refresh_nothing_found()
        if self.problem == STILL_LOOKING and all(v.detected is not None for v in views):
            self._set_problem("")

    def on_choice_list_changed(self, event: ChoiceList.Changed) -> None:
        self.touched = True
        if event.choice_list.checked and self.problem == PICK_ONE:
            self._set_problem("")

    def current_answer(self):
        return tuple(self.query_one("#clients", ChoiceList).checked)

    def action_next(self) -> None:
        if self.nothing_detected:
            self.app.bell()
            return
        if any(v.detected is None for v in self.views):
            self._set_problem(STILL_LOOKING)
            return
        checked = self.query_one("#clients", ChoiceList).checked
        if not checked:
            self._set_problem(PICK_ONE)
            return
        self.dismiss(tuple(checked))

    def on_action_button_pressed(self, event: ActionButton.Pressed) -> None:
        self.action_next()
