"""Modal dialogs (wizard.md §8) and the resize notice (§4).

`ConfirmDialog` returns True (quit / stop) or False (keep going). `y` confirms, `n` or Esc keeps going; the
App routes a second Ctrl+C to `confirm`. The safe choice is focused.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from hypaware_tui.screens.widgets import ActionButton, KeyBar


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question whose default (focused) answer is "keep going"."""

    BINDINGS = [
        Binding("y", "confirm", "confirm", show=False),
        Binding("n,escape", "cancel", "keep going", show=False),
        Binding("q", "confirm", "confirm", show=False),
        Binding("tab,right,l,down,j", "app.focus_next", "", show=False),
        Binding("shift+tab,left,h,up,k", "app.focus_previous", "", show=False),
    ]

    def __init__(self, message: str, keep_label: str, confirm_label: str) -> None:
        super().__init__()
        self.message = message
        self.keep_label = keep_label
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.message, id="dialog-message")
            with Horizontal(id="dialog-buttons"):
                yield ActionButton(self.keep_label, id="keep")
                yield ActionButton(self.confirm_label, id="confirm")
            yield KeyBar([("y", self.confirm_label.lower()), ("n", self.keep_label.lower())], id="dialog-keys")

    def on_mount(self) -> None:
        self.query_one("#keep").focus()

    def on_action_button_pressed(self, event: ActionButton.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class QuitSetupDialog(ConfirmDialog):
    def __init__(self) -> None:
        super().__init__("Quit setup? Nothing has been written.", "Keep going", "Quit")


STOP_QUESTION = ("Stop the import? The current batch finishes and rows already written are kept. Finish later "
                 "with hyp backfill.")


class TooSmallScreen(ModalScreen[None]):
    """Shown while the terminal is smaller than 80×24; swallows keys, keeps the screen below as it was. Over a
    question waiting beneath it (Ctrl+C pressed while the terminal was small: the quit dialog, or the Import
    screen's stop question), it names the question and its keys, which answer it from here; the question itself
    is drawn only once there is room for it. The App says what is pending (`set_pending`)."""

    BINDINGS = [
        Binding("q", "app.request_quit", "quit", show=False),
        Binding("c", "app.stop_key", "stop import", show=False),  # (Import only; `q`'s twin there, §4)
        Binding("y", "app.answer_pending(True)", "confirm", show=False),
        Binding("n,escape", "app.answer_pending(False)", "keep going", show=False),
    ]

    def __init__(self, pending: str | None = None) -> None:
        super().__init__()
        self.pending = pending

    def compose(self) -> ComposeResult:
        yield Static("Make the terminal at least 80×24", id="too-small")
        yield Static(self._size_text(), id="too-small-size")
        if self.pending is not None:
            yield Static(self.pending, id="too-small-pending")

    def _size_text(self) -> str:
        """The size it is now, and the way out (the notice alone left a user who cannot resize, in tmux with a
        status bar 80×23, say, without a visible exit)."""
        size = self.app.size
        return f"It is {size.width}×{size.height} now. q quits."

    def on_resize(self) -> None:
        for shown in self.query("#too-small-size"):
            shown.update(self._size_text())  # type: ignore[attr-defined]

    def set_pending(self, pending: str | None) -> None:
        """What waits under the notice changed (the stop question opened or was answered)."""
        if pending == self.pending:
            return
        self.pending = pending
        shown = self.query("#too-small-pending")
        if pending is None:
            shown.remove()
        elif shown:
            shown.first(Static).update(pending)
        else:
            self.mount(Static(pending, id="too-small-pending"))


def pending_text(message: str, confirm_label: str, keep_label: str) -> str:
    """A question waiting under the resize notice, with the keys that answer it (as in the dialog, §8)."""
    return f"{message}\ny or Ctrl+C again: {confirm_label.lower()} · n: {keep_label.lower()}."
