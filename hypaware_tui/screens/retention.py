"""Step 3 (wizard.md §6.3): how long hyp keeps history, with a live preview from the inventory in memory."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.widgets import Static

from hypaware_tui.core.fmt import plural
from hypaware_tui.screens.base import StepInfo, WizardScreen
from hypaware_tui.screens.widgets import ActionButton, ChoiceList, Row

HELP = "Rows older than this are deleted from hyp's dataset once a day. The assistants' own files are never touched."
HELP_FOREVER = "hyp keeps every row it imports. The assistants' own files are never touched."


def help_text(days: int) -> str:
    """wizard.md §6.3's help, of the option under the cursor (with Keep forever, nothing is deleted)."""
    return HELP_FOREVER if days == 0 else HELP


def option_label(days: int, *, current: int | None = None, recommended: int = 120) -> str:
    """`120 days (recommended)`, `60 days (current)`, `Keep forever`."""
    text = "Keep forever" if days == 0 else plural(days, "day")
    tags = [t for t, on in (("recommended", days == recommended), ("current", days == current)) if on]
    return f"{text} ({', '.join(tags)})" if tags else text


class RetentionScreen(WizardScreen):
    """Returns the chosen number of days (0 = forever)."""

    NAME = "Retention"
    TITLE = "How much history should hyp keep?"
    AUTO_FOCUS = "#retention"

    def __init__(self, step: StepInfo, options: list[int], selected: int, *, current: int | None,
                 preview: Callable[[int], str], warning: Callable[[int], str | None]) -> None:
        super().__init__(step)
        self.options = options
        self.selected = selected
        self.current = current
        self.preview = preview  # computed from the inventory in memory, never a rescan
        self.warning = warning

    def compose_body(self) -> ComposeResult:
        rows = [Row(str(d), option_label(d, current=self.current), checked=(d == self.selected))
                for d in self.options]
        yield ChoiceList(rows, multi=False, id="retention")
        yield Static(self.preview(self.selected), id="preview")
        warning = self.warning(self.selected)
        yield Static(warning or "", id="warning", classes="" if warning else "-empty")
        yield Static(help_text(self.selected), id="help")

    def compose_buttons(self) -> ComposeResult:
        yield ActionButton("Continue", id="continue")


    def keys(self) -> list[tuple[str, str]]:
        return [("Enter", "next"), ("↑↓", "choose"), ("Esc", "back"), ("q", "quit")]

    def on_choice_list_changed(self, event: ChoiceList.Changed) -> None:
        days = int(event.choice_list.checked[0])
        self.selected = days
        self.query_one("#preview", Static).update(self.preview(days))
        warning = self.warning(days)
        box = self.query_one("#warning", Static)
        box.update(warning or "")
        box.set_class(not warning, "-empty")
        self.query_one("#help", Static).update(help_text(days))

    def current_answer(self):
        # From the list itself: `Changed` reaches this screen as a message, and a key typed right after an
        # arrow (Up then Enter, quickly) is handled before it; the remembered choice was then the old one.
        checked = self.query_one("#retention", ChoiceList).checked
        return int(checked[0]) if checked else self.selected

    def action_next(self) -> None:
        self.dismiss(self.current_answer())

    def on_action_button_pressed(self, event: ActionButton.Pressed) -> None:
        self.action_next()
