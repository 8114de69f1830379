"""Small widgets shared by the wizard's screens.

* `ChoiceList`: checkbox or radio rows drawn as text (`> [x] Claude Code   241 files · …`), keyboard first
  (↑ ↓ k j, Space, `a`), clickable, disabled rows marked in words and skipped by `a`.
* `ActionButton`: a one-line `[ Label ]` button; focus is reverse video plus a `>` marker, so it reads the
  same without colour.
* `StepHeader`, `KeyBar`: the header line with its badge and the footer listing the keys of a screen.
* `LabelledLine`: `Label    text` wrapped to the widget's width, continued under the text; a list of commands
  wraps between commands, never inside one.
* `plain`: text that is not hyp's own (a path, a root, an error message) as a `Text`, shown exactly as it is.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from hypaware_tui.core.fmt import hanging_lines, printable


def plain(text: str, *, newlines: bool = False) -> Text:
    """`text` to show exactly as it is: a `Text`, never read as Textual or Rich markup, and its control characters
    written as escapes (`printable`; `newlines`: keep its line breaks, for a message that spans lines). A path is
    anybody's: HYP_HOME `/tmp/x/[/]x` crashed the Welcome screen (MarkupError), `[@click=app.quit]x` made a link
    that quit the wizard, `[old]` vanished from a `rm -rf` to copy, and `ESC ] 0 ; … BEL` retitled the terminal."""
    return Text(printable(text, newlines=newlines))


@dataclass(frozen=True)
class Row:
    """One row of a ChoiceList."""

    value: str
    label: str
    detail: str = ""
    checked: bool = False
    disabled: bool = False
    note: str = ""  # a dim second line (e.g. what the capture daemon does)


class ChoiceList(Widget, can_focus=True):
    """Checkbox rows (`multi=True`) or a single choice (`multi=False`, the checked row is the choice)."""

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "move", show=False),
        Binding("down,j", "cursor(1)", "move", show=False),
        Binding("space", "toggle", "toggle", show=False),
        Binding("a", "toggle_all", "all", show=False),
    ]

    cursor: reactive[int] = reactive(0)

    class Changed(Message):
        """The checked set changed (checkbox mode) or the choice changed (radio mode)."""

        def __init__(self, choice_list: ChoiceList) -> None:
            super().__init__()
            self.choice_list = choice_list

        @property
        def control(self) -> ChoiceList:
            return self.choice_list

    class Highlighted(Message):
        """The cursor moved to another row."""

        def __init__(self, choice_list: ChoiceList, value: str) -> None:
            super().__init__()
            self.choice_list = choice_list
            self.value = value

        @property
        def control(self) -> ChoiceList:
            return self.choice_list

    def __init__(self, rows: list[Row], *, multi: bool = True, label_width: int | None = None,
                 cursor: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        """`cursor`: the value of the row the cursor was on when the user left this screen (the App remembers
        it from `Highlighted`), so that coming back with Esc puts it there again: starting on the first checked
        row instead moved it, and Space then toggled a row the user had not chosen. Checkbox lists otherwise
        start on the first row; a single choice always starts on its choice (there the cursor is the choice)."""
        super().__init__(id=id, classes=classes)
        self.rows: list[Row] = list(rows)
        self.multi = multi
        self.label_width = label_width or max((len(r.label) for r in rows), default=0)
        enabled = [i for i, r in enumerate(self.rows) if not r.disabled]
        if multi:
            start = next((i for i in enabled if self.rows[i].value == cursor), None)
        else:
            start = next((i for i in enabled if self.rows[i].checked), None)
        if start is None:
            start = enabled[0] if enabled else 0
        self.set_reactive(ChoiceList.cursor, start)

    # -- values --------------------------------------------------------------------------------------

    @property
    def checked(self) -> tuple[str, ...]:
        return tuple(r.value for r in self.rows if r.checked)

    @property
    def highlighted(self) -> str | None:
        return self.rows[self.cursor].value if self.rows else None

    def set_rows(self, rows: list[Row]) -> None:
        """Replace the rows (e.g. when the inventory reports), keeping the cursor."""
        self.rows = list(rows)
        self.label_width = max(self.label_width, *(len(r.label) for r in rows)) if rows else self.label_width
        if self.cursor >= len(self.rows):
            self.cursor = max(0, len(self.rows) - 1)
        self.refresh(layout=True)

    def is_checked(self, value: str) -> bool:
        return any(r.value == value and r.checked for r in self.rows)

    # -- actions -------------------------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        if not self.rows:
            return
        n = len(self.rows)
        i = self.cursor
        for _ in range(n):
            i = (i + delta) % n
            if not self.rows[i].disabled or not self.multi:
                break
        if self.rows[i].disabled and not self.multi:
            return
        self.cursor = i
        if not self.multi:
            self._choose(i)

    def watch_cursor(self, value: int) -> None:
        if self.rows:
            self.post_message(self.Highlighted(self, self.rows[value].value))

    def _choose(self, index: int) -> None:
        changed = not self.rows[index].checked
        self.rows = [replace(r, checked=(i == index)) for i, r in enumerate(self.rows)]
        self.refresh()
        if changed:
            self.post_message(self.Changed(self))

    def action_toggle(self) -> None:
        if not self.rows:
            return
        row = self.rows[self.cursor]
        if row.disabled:
            self.app.bell()
            return
        if not self.multi:
            self._choose(self.cursor)
            return
        self.rows[self.cursor] = replace(row, checked=not row.checked)
        self.refresh()
        self.post_message(self.Changed(self))

    def action_toggle_all(self) -> None:
        if not self.multi:
            return
        enabled = [r for r in self.rows if not r.disabled]
        if not enabled:
            return
        target = any(not r.checked for r in enabled)
        self.rows = [r if r.disabled else replace(r, checked=target) for r in self.rows]
        self.refresh()
        self.post_message(self.Changed(self))

    async def _on_click(self, event: events.Click) -> None:
        line = event.y
        index = 0
        width = self.content_size.width or 80
        for i, row in enumerate(self.rows):
            height = self._row_height(row, width)
            if line < height:
                index = i
                break
            line -= height
        else:
            return
        if self.rows[index].disabled:
            return
        self.cursor = index
        self.focus()
        self.action_toggle()

    # -- rendering -----------------------------------------------------------------------------------

    PREFIX = 6  # "> [x] "

    def _lines(self, row: Row, width: int) -> tuple[list[str], list[str]]:
        """The row's detail (after the label) and note, wrapped to `width`."""
        import textwrap

        detail_width = max(10, width - self.PREFIX - self.label_width - 3)
        # (printable: a detail may be a reason naming a root, whose escape sequence acted on the terminal)
        detail = textwrap.wrap(printable(row.detail), detail_width) if row.detail else []
        note = textwrap.wrap(printable(row.note), max(10, width - self.PREFIX)) if row.note else []
        return detail, note

    def _row_height(self, row: Row, width: int) -> int:
        detail, note = self._lines(row, width)
        return max(1, len(detail)) + len(note)

    def get_content_height(self, container, viewport, width: int) -> int:
        return sum(self._row_height(r, width) for r in self.rows)

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis")
        focused = self.has_focus
        width = self.content_size.width or 80
        for i, row in enumerate(self.rows):
            at = i == self.cursor
            marker = ">" if at and focused else " "
            if self.multi:
                box = "[-]" if row.disabled else ("[x]" if row.checked else "[ ]")
            else:
                box = "(•)" if row.checked else "( )"
            line = Text()
            line.append(f"{marker} ", style="bold" if at and focused else "")
            line.append(f"{box} ", style="dim" if row.disabled else "")
            label_style = "dim" if row.disabled else ("reverse" if at and focused else "bold" if row.checked else "")
            line.append(printable(row.label).ljust(self.label_width), style=label_style)
            detail, note = self._lines(row, width)
            indent = " " * (self.PREFIX + self.label_width + 3)
            for k, chunk in enumerate(detail):
                if k:
                    line.append("\n" + indent)
                else:
                    line.append("   ")
                line.append(chunk, style="dim" if row.disabled else "")
            if i:
                out.append("\n")
            out.append_text(line)
            for chunk in note:
                out.append("\n")
                out.append(" " * self.PREFIX + chunk, style="dim")
        return out

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


class ActionButton(Widget, can_focus=True):
    """`[ Label ]`, one line. Enter, Space or a click presses it."""

    BINDINGS = [Binding("enter,space", "press", "press", show=False)]

    class Pressed(Message):
        def __init__(self, button: ActionButton) -> None:
            super().__init__()
            self.button = button

        @property
        def control(self) -> ActionButton:
            return self.button

    def __init__(self, label: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.label = label

    def render(self) -> Text:
        marker = "> " if self.has_focus else "  "
        return Text(f"{marker}[ {self.label} ]")

    def get_content_width(self, container, viewport) -> int:
        return len(self.label) + 6

    def get_content_height(self, container, viewport, width: int) -> int:
        return 1

    def action_press(self) -> None:
        self.post_message(self.Pressed(self))

    async def _on_click(self, event: events.Click) -> None:
        event.stop()
        self.focus()
        self.action_press()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


class StepHeader(Static):
    """`hyp init` and a DEMO / DRY RUN badge."""

    def __init__(self, badge: str | None) -> None:
        text = Text("hyp init", style="bold")
        if badge:
            text.append("  ")
            text.append(f" {badge} ", style="reverse bold")
        super().__init__(text, id="header")


class KeyBar(Static):
    """The footer: the keys valid on this screen, as words."""

    def __init__(self, keys: list[tuple[str, str]], id: str = "keys") -> None:
        super().__init__(self._text(keys), id=id)

    @staticmethod
    def _text(keys: list[tuple[str, str]]) -> Text:
        out = Text()
        for i, (key, label) in enumerate(keys):
            if i:
                out.append("  ")
            out.append(key, style="bold reverse")
            out.append(f" {label}")
        return out

    def set_keys(self, keys: list[tuple[str, str]]) -> None:
        self.update(self._text(keys))


class LabelledLine(Widget):
    """`Label    text`, wrapped to the widget's width with every further line under the text (a Static wraps
    back to column 1). With `items` (commands to copy) it wraps between items, never inside one, as the
    plain-text summary does (core.plan.wrap_items)."""

    DEFAULT_CSS = "LabelledLine { height: auto; }"

    def __init__(self, label: str, label_width: int, *, text: str = "", items: Sequence[str] | None = None,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label.ljust(label_width)
        self.text = printable(text)  # (a capture line may quote a daemon's error, naming a path)
        self.items = [printable(item) for item in items] if items is not None else None

    def lines(self, width: int | None) -> list[str]:
        from hypaware_tui.core.plan import wrap_items

        if self.items is not None:
            return wrap_items(self.label, self.items, width)
        if width is None or len(self.label) + len(self.text) <= width:
            return [self.label + self.text]
        indent = " " * len(self.label)
        # A word wider than the line (a log path) is cut across lines rather than cut off at the edge.
        return textwrap.wrap(self.text, max(len(self.label) + 10, width), initial_indent=self.label,
                             subsequent_indent=indent, break_on_hyphens=False) or [self.label]

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.lines(width or None))

    def render(self) -> Text:
        lines = self.lines(self.content_size.width or None)
        out = Text()
        out.append(self.label, style="bold")
        out.append("\n".join(lines)[len(self.label):])
        return out


class HangingLines(Widget):
    """Lines of notes (an import's errors) or of labelled commands, each wrapped to the widget's width under its
    own text (`core.fmt.hanging_lines`; `hang`: past that many columns): a Static wraps back to column 1, which
    at 80 columns split a file's path across the left edge, and went on with a command under its label."""

    DEFAULT_CSS = "HangingLines { height: auto; }"

    def __init__(self, lines: Sequence[str], *, hang: int | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.note_lines = [printable(line) for line in lines]  # (an error names a path)
        self.hang = hang

    def wrapped(self, width: int | None) -> list[str]:
        return hanging_lines(self.note_lines, width, break_long_words=True, hang=self.hang)

    def get_content_height(self, container, viewport, width: int) -> int:
        return len(self.wrapped(width or None))

    def render(self) -> Text:
        return Text("\n".join(self.wrapped(self.content_size.width or None)))
