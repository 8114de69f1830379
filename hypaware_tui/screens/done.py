"""Step 7 (wizard.md §6.7): summary, capture, a first look at the user's own data, next commands.

The first look runs in a thread worker that only posts `FirstLookReady`; on error, or when it is not ready
after `FIRST_LOOK_TIMEOUT_S`, it becomes a one-line note. It never fails setup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Static

from hypaware_tui.core.fmt import plural, printable
from hypaware_tui.core.paths import panics_as_errors
from hypaware_tui.core.plan import (
    InitResult,
    capture_line,
    capture_runs,
    client_rows,
    error_notes_of,
    next_commands,
    nothing_new_note,
)
from hypaware_tui.screens.base import StepInfo, WizardScreen
from hypaware_tui.screens.widgets import HangingLines, LabelledLine, plain

FIRST_LOOK_TIMEOUT_S = 5.0
LABEL_WIDTH = 9  # "Capture  ": where the text of the Capture and Next lines starts
DEMO_LABEL_WIDTH = 16  # "Look at it:     ": where the demo's commands start (core.demo.DemoDir.next_commands)
SPARK = "▁▂▃▄▅▆▇█"
NOTHING_YET = "Nothing imported yet. New sessions will show up in hyp query overview."
# No daemon captures: nothing shows up by itself, and the sentence above said it would. With the import declined,
# `hyp backfill` is how the history comes in; after an import that found nothing in the window, it would find
# nothing again.
NOTHING_YET_NO_CAPTURE = "Nothing imported yet, and nothing is captured: hyp daemon start captures new sessions."
NOTHING_YET_DECLINED_NO_CAPTURE = ("Nothing imported yet, and nothing is captured: hyp backfill imports your "
                                   "history, hyp daemon start captures new sessions.")


def nothing_yet(result: InitResult) -> str:
    """wizard.md §6.7 item 3's sentence, when a daemon captures (or in the demo, which captures nothing)."""
    if result.plan.demo_dir is not None or capture_runs(result):
        return NOTHING_YET
    return NOTHING_YET_NO_CAPTURE if result.plan.choices.import_history else NOTHING_YET_DECLINED_NO_CAPTURE


def done_title(result: InitResult) -> str:
    statuses = {getattr(r, "status", "") for r in result.clients.values()}
    if result.interrupted or "cancelled" in statuses:
        return "Setup finished, import stopped"
    if result.exit_code != 0:
        return "Setup complete, with errors"
    return "Setup complete"


def fit_days(values: list[int], room: int) -> tuple[list[int], int]:
    """At most `room` marks for a day series: each mark the busiest day of `k` consecutive days (the newest
    day always in the last mark), and `k`. One mark a day when they fit: a first look over all history (its
    last 30 days were empty) had 107 days, and at 80 columns the newest 30 were cut off with `…`."""
    room = max(1, room)
    if len(values) <= room:
        return values, 1
    k = -(-len(values) // room)
    head = len(values) % k
    marks = [max(values[:head])] if head else []
    return marks + [max(values[i : i + k]) for i in range(head, len(values), k)], k


def sparkline(values: list[int]) -> str:
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


def compact_number(n: int) -> str:
    """A token count in three or four characters: `999`, `1.5k`, `12.3k`, `100k`, `1.0M`, `1.2B`. Rounded first,
    then the unit picked (as `human_size`): 999,600 rounds to 1,000k, which is `1.0M`, and 99,960 to `100k`."""
    if abs(n) < 1000:
        return str(n)
    for unit, size in (("k", 1000), ("M", 1_000_000), ("B", 1_000_000_000)):
        value = n / size
        text = f"{value:.1f}"
        if abs(float(text)) >= 100:
            text = f"{value:.0f}"
        if abs(float(text)) < 1000 or unit == "B":
            return text + unit
    raise AssertionError("unreachable")


def summary_table(result: InitResult) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for name, justify in (("Client", "left"), ("Status", "left"), ("Files", "right"), ("Sessions", "right"),
                          ("Rows written", "right"), ("Duplicates", "right"), ("Errors", "right")):
        table.add_column(name, justify=justify, no_wrap=True)
    for row in client_rows(result):
        table.add_row(row["name"], row["status"], f"{row['files']:,}", f"{row['sessions']:,}",
                      f"{row['rows']:,}", f"{row['duplicates']:,}", f"{row['errors']:,}")
    return table


def error_lines(result: InitResult, env: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for row in client_rows(result):
        if row["error"]:
            out.extend(error_notes_of(row, env))
        elif row["note"] and row["status"] == "skipped":
            out.append(f"  {row['client']}: {row['note']}")
    return out


class FirstLookReady(Message):
    def __init__(self, overview: Any = None, error: str | None = None, unreadable: bool = False) -> None:
        super().__init__()
        self.overview = overview
        self.error = error
        self.unreadable = unreadable  # (the dataset cannot be read: `error` says so, and what to do)


class DoneScreen(WizardScreen):
    """Enter or `q` exits (returns None)."""

    NAME = "Done"
    CAN_GO_BACK = False
    QUIT_KIND = "done"
    BINDINGS = [
        Binding("down,j", "scroll_body(1)", "", show=False),
        Binding("up,k", "scroll_body(-1)", "", show=False),
        Binding("pagedown,space", "scroll_body(10)", "", show=False),
        Binding("pageup", "scroll_body(-10)", "", show=False),
    ]

    def __init__(self, step: StepInfo, result: InitResult, env: Mapping[str, str],
                 first_look: Callable[[], Any] | None) -> None:
        super().__init__(step)
        self.result = result
        self.env = env
        self.first_look = first_look
        self.first_look_done = False

    def title_text(self) -> str:
        return done_title(self.result)

    def compose_body(self) -> ComposeResult:
        yield Static(summary_table(self.result), id="summary")
        errors = error_lines(self.result, self.env)
        if errors:
            yield HangingLines(errors, id="errors")
        nothing_new = nothing_new_note(self.result)
        if nothing_new is not None:
            yield Static(nothing_new, id="nothing-new")
        yield LabelledLine("Capture", LABEL_WIDTH, text=capture_line(self.result), id="capture")
        if self.result.plan.demo_dir is not None:
            from hypaware_tui.core.demo import DemoDir

            # (the demo's folder is in the system temp area, TMPDIR: `[old]` in it vanished as markup, and the
            # `rm -rf` to copy deleted the parent folder)
            # (at 80 columns a long TMPDIR wrapped `… hyp query` / `overview` back to column 1: under the command)
            yield HangingLines(DemoDir(self.result.plan.demo_dir).next_commands(), hang=DEMO_LABEL_WIDTH, id="demo")
        yield Static(Text("First look", style="bold"), id="first-look-title")
        yield Static("Loading…", id="first-look")
        with Horizontal(id="first-look-side"):
            yield Static("", id="first-look-repos")
            yield Static("", id="first-look-tools")
        # Wrapped between commands, continued under the first: at 80 columns a Static broke `hyp daemon install`
        # in two and went on at column 1.
        yield LabelledLine("Next", LABEL_WIDTH, items=next_commands(self.result), id="next")

    def keys(self) -> list[tuple[str, str]]:
        return [("Enter", "exit"), ("q", "exit"), ("↑↓", "scroll")]

    def on_mount(self) -> None:
        # Asked of the dataset, not of this run: "Import again" with nothing new writes no row, and its first
        # look is the history imported before ("Nothing imported yet" only when the dataset is empty).
        if self.first_look is not None:
            self.set_timer(FIRST_LOOK_TIMEOUT_S, self._first_look_timeout)
            self._first_look_worker()
        else:
            self._show_note(nothing_yet(self.result))

    @work(thread=True, exit_on_error=False, group="first-look", description="first look")
    def _first_look_worker(self) -> None:
        try:
            with panics_as_errors():  # (a Polars panic is a BaseException)
                ov = self.first_look()
        except Exception as exc:  # noqa: BLE001 - never fails setup
            from hypaware_tui.core.query import DatasetReadError

            if isinstance(exc, DatasetReadError):  # (its message is for the user: no class name before it)
                self.post_message(FirstLookReady(error=str(exc), unreadable=True))
            else:
                self.post_message(FirstLookReady(error=f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(FirstLookReady(overview=ov))

    def _first_look_timeout(self) -> None:
        if not self.first_look_done:
            self._show_note("The first look is taking longer than 5 s; run hyp query overview to see it.")

    def _show_note(self, text: str) -> None:
        self.first_look_done = True
        self.query_one("#first-look", Static).update(plain(text))  # (it may quote an error naming a path)
        self.query_one("#first-look-side").display = False

    def on_first_look_ready(self, message: FirstLookReady) -> None:
        if self.first_look_done:
            return
        if message.error is not None:
            # (hyp query overview fails alike on a dataset that cannot be read: the error's own advice instead)
            self._show_note(f"The first look is not available: {message.error}" if message.unreadable else
                            f"The first look is not available ({message.error}); try hyp query overview.")
            return
        ov = message.overview
        if ov is None or getattr(ov, "is_empty", True):
            if getattr(ov, "rows_after", 0) or getattr(ov, "rows_before", 0):  # (rows exist, none up to now)
                from hypaware_tui.core.query import empty_note  # (loaded already: the overview ran)

                self._show_note(empty_note(ov))
            else:
                self._show_note(nothing_yet(self.result))
            return
        self.first_look_done = True
        self.query_one("#first-look", Static).update(self._overview_main(ov, self.app.size.width - 4))
        self.query_one("#first-look-repos", Static).update(self._top_table("Top repos", "sessions",
                                                                           [(r.repo, r.sessions) for r in ov.repos]))
        self.query_one("#first-look-tools", Static).update(self._top_table("Top tools", "calls",
                                                                           [(t.tool, t.calls) for t in ov.tools]))

    @staticmethod
    def _overview_main(ov: Any, width: int = 80) -> Table:
        outer = Table.grid(padding=(0, 0))
        outer.add_column()
        period = ov.period
        earlier = getattr(ov, "earlier", None)  # (all data older than the day series: its first date)
        first = (earlier.date if earlier else ov.first_date) or "—"
        last = ov.last_date or "—"
        outer.add_row(Text(f"{first} → {last} ({printable(period.time_zone)}) · {plural(ov.active_days, 'active day')} · "
                           f"{plural(ov.rows, 'row')}", style="dim"))
        models = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0), header_style="bold")
        for name, justify in (("Tokens per model", "left"), ("Input", "right"), ("Cached", "right"), ("Output", "right")):
            models.add_column(name, justify=justify, no_wrap=True)
        for m in ov.models[:5]:
            # (a Text, not a str: a model name from a transcript is neither Rich markup nor terminal control codes)
            name = Text(printable(m.model or f"({m.provider or 'unknown'})"))
            models.add_row(name, compact_number(m.input_tokens), compact_number(m.cached_tokens),
                           compact_number(m.output_tokens))
        outer.add_row(models)
        counts = [d.sessions for d in ov.days]
        label = "Sessions per day  "
        stats = f"  min {min(counts)} · max {max(counts)}" if counts else ""
        marks, k = fit_days(counts, width - len(label) - len(stats))
        if k > 1:  # (room for the note too: it takes from the marks, and k may grow by a digit)
            marks, k = fit_days(counts, width - len(label) - len(stats) - len(f" ({k} days/mark)") - 1)
            stats = f" ({k} days/mark)" + stats
        spark = Text()
        spark.append(label, style="bold")
        spark.append(sparkline(marks))
        if stats:
            spark.append(stats, style="dim")
        outer.add_row(spark)
        return outer

    @staticmethod
    def _top_table(title: str, unit: str, items: list[tuple[str, int]]) -> Table:
        table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0), header_style="bold")
        # When the half screen is narrower than the table, the names give way (cut with an ellipsis), never
        # the figures: Rich only narrows a column that may wrap, so the column may and each name may not. No
        # other limit: a wider terminal shows longer names (cut at 28 columns, 45 stayed blank at 160).
        table.add_column(title, overflow="ellipsis")
        table.add_column(unit, justify="right", no_wrap=True)
        for name, n in items[:5]:
            table.add_row(Text(printable(name), no_wrap=True, overflow="ellipsis"), f"{n:,}")
        return table

    def action_scroll_body(self, lines: int) -> None:
        self.query_one("#body").scroll_relative(y=lines, animate=False)

    def action_next(self) -> None:
        self.dismiss(None)
