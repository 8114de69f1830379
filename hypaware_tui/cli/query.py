"""`hyp query sql | overview | schema` (cli.md §7): read-only queries over the imported history.

Every command here is read-only: nothing creates `HYP_HOME` or a file in it, and a missing dataset reads as
empty relations with the full schema. The work is done by `hypaware_tui.core.query`; this module only parses
flags and renders (Rich tables and bars on stdout; row counts, warnings and errors on stderr).

Exit codes: 0 ok (also for no rows), 1 the dataset could not be read, 2 usage (bad flags, a statement that is
not a single SELECT, an engine error, an unknown relation).
"""

from __future__ import annotations

import csv
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer
from typer._click import exceptions as click_exc
from typer.core import TyperCommand

from hypaware_tui.cli.output import Days, err, fmt_int, out, out_console, plural, print_json, printable

if TYPE_CHECKING:
    from rich.console import Console

    from hypaware_tui.core.query import Overview

app = typer.Typer(
    help="Read-only queries over the imported history: SQL, the overview, the schema.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    add_completion=False,
)

# Longest cell shown in a table on a terminal before it is cut with `…`.
TTY_CELL_MAX = 48
TTY_CELL_MIN = 12
BAR_WIDTH = 40
MAX_DAYS = 36_500  # = core.query.MAX_DAYS (not imported here: polars loads only when a command runs)


@app.callback()
def _query_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        out(ctx.get_help())
        raise typer.Exit(0)


def _prog() -> str:
    from hypaware_tui.cli.app import PROG

    return PROG


def _fail(command: str, message: str, code: int) -> typer.Exit:
    err(f"{_prog()} query {command}: {message}")
    return typer.Exit(code)


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# --- sql -------------------------------------------------------------------------------------------------


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


STATEMENT = "STATEMENT"  # cli.md §7.1: hyp query sql "<statement>"


class _SqlCommand(TyperCommand):
    """`Usage: hyp query sql [OPTIONS] STATEMENT`: Typer writes a required argument as `{STATEMENT}`, which reads
    as a set of literal choices (`{SELECT}` looked like the word to type)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [self.options_metavar or "[OPTIONS]", STATEMENT]


@app.command(
    "sql",
    cls=_SqlCommand,
    help="Run one read-only SELECT over ai_gateway_messages and ai_gateway_usage. Writes nothing. "
    "The SQL is Polars SQL; JSON columns are read with json_extract_string(attributes, "
    "'$.gateway.identity_source') (the value as text) or json_extract(…) (as JSON), as in DuckDB.",
)
def sql_command(
    statement: str = typer.Argument(
        ..., metavar=STATEMENT, help="One SELECT (or WITH … SELECT) statement.", show_default=False
    ),
    fmt: Format = typer.Option(Format.table, "--format", help="table (default), json or csv."),  # noqa: B008
) -> None:
    from hypaware_tui.core.paths import Layout, require_usable_home
    from hypaware_tui.core.query import DatasetReadError, QueryError, run_sql

    layout = Layout.resolve()
    require_usable_home(layout.home)  # (else: no rows, as if nothing had been imported)
    try:
        df = run_sql(layout, statement)
    except QueryError as exc:
        raise _fail("sql", str(exc), 2) from None
    except DatasetReadError as exc:
        raise _fail("sql", str(exc), 1) from None
    if fmt is Format.json:
        from hypaware_tui.cli.output import print_json_array
        from hypaware_tui.core.query import iter_records, json_result_columns

        print_json_array(iter_records(df, json_cols=json_result_columns(statement, df)))
    elif fmt is Format.csv:
        write_csv(df)
    else:
        print_table(df)
        sys.stdout.flush()  # the table first, then the count on stderr
        err(plural(df.height, "row"))


def write_csv(df: Any) -> None:
    """RFC 4180 (CRLF line ends, quotes doubled) with a header row; JSON columns stay JSON text."""
    from hypaware_tui.core.query import cell_text

    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    writer.writerow(df.columns)
    for row in df.iter_rows():
        writer.writerow([cell_text(v) for v in row])
    sys.stdout.flush()


def _table_cell(value: Any) -> str:
    from hypaware_tui.core.query import cell_text

    if value is None:
        return "null"
    return _escaped(cell_text(value))


def _escaped(text: str) -> str:
    """A cell or a column name on one line (a name is the text of its expression: `select 'a<newline>b'`), its
    control characters shown as escapes (`\\n`, `\\x1b`): a cell is text from the history, and an escape
    sequence in it acted on the terminal (`ESC [ 2 J` cleared it)."""
    return printable(text)


def fit_widths(natural: list[int], available: int) -> list[int]:
    """Column widths that fit `available` characters: each capped at TTY_CELL_MAX, then the widest narrowed
    one character at a time down to TTY_CELL_MIN (or its own width when smaller)."""
    widths = [max(1, min(w, TTY_CELL_MAX)) for w in natural]
    floor = [min(w, TTY_CELL_MIN) for w in widths]
    while sum(widths) > available:
        i = max(range(len(widths)), key=lambda k: (widths[k] - floor[k], widths[k]))
        if widths[i] <= floor[i]:
            break  # even the floors do not fit: Rich squeezes the rest
        widths[i] -= 1
    return widths


def print_table(df: Any) -> None:
    """A Rich table. On a terminal long cells are cut with `…` to fit (and columns that cannot fit at all are
    left out, with a note on stderr); redirected output keeps every cell whole on one line."""
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    console = out_console()
    tty = _is_tty(sys.stdout)
    columns = list(df.columns)
    if not tty:
        _print_redirected_table(df)
        return
    rows = [[_table_cell(v) for v in row] for row in df.iter_rows()]
    widths = [cell_len(_escaped(c)) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], cell_len(cell))
    numeric = [dtype.is_numeric() for dtype in df.dtypes]
    shown = len(columns)
    if tty:
        # Keep the columns that fit at their minimum width, then share the rest of the line.
        used = 0
        for i, w in enumerate(widths):
            used += min(w, TTY_CELL_MIN) + (3 if i else 0)
            if used > console.width and i > 0:
                shown = i
                break
        widths = fit_widths(widths[:shown], console.width - 3 * max(0, shown - 1))
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        header_style="bold" if tty else None,
        pad_edge=False,
        collapse_padding=False,
    )
    for name, is_num, width in zip(columns[:shown], numeric[:shown], widths[:shown], strict=True):
        justify = "right" if is_num else "left"
        if tty:
            table.add_column(Text(_escaped(name)), no_wrap=True, overflow="ellipsis", width=width, justify=justify)
        else:
            table.add_column(Text(name), no_wrap=True, justify=justify)
    for row in rows:
        table.add_row(*[Text(c) for c in row[:shown]])
    if not tty:
        console.width = max(20, sum(widths) + 3 * len(widths) + 2)
    console.print(table)
    if shown < len(columns):
        sys.stdout.flush()
        hidden = len(columns) - shown
        err(
            f"{plural(hidden, 'more column')} not shown ({', '.join(columns[shown : shown + 3])}"
            f"{', …' if hidden > 3 else ''}): select fewer columns, or use --format csv or json"
        )


#: a redirected table pads a column to at most this many characters; a longer cell is written whole and
#: only its own line loses the alignment
REDIRECT_PAD_MAX = 120


def _print_redirected_table(df: Any) -> None:
    """The table for a file or a pipe: the terminal's layout (columns three spaces apart, a rule under the
    names), every cell whole on one line, written line by line. Rich padded every line to the widest cell:
    `select content_text` over 3,766 rows wrote 157 MB (lines of 125,394 characters) in 12 s with 728 MB of
    memory, and `| head -1` waited for all of it."""
    from rich.cells import cell_len

    columns = list(df.columns)
    numeric = [dtype.is_numeric() for dtype in df.dtypes]
    widths = [cell_len(_escaped(c)) for c in columns]
    for row in df.iter_rows():
        for i, value in enumerate(row):
            widths[i] = max(widths[i], min(cell_len(_table_cell(value)), REDIRECT_PAD_MAX))

    def line(cells: list[str]) -> str:
        parts = []
        for cell, width, is_num in zip(cells, widths, numeric, strict=True):
            pad = " " * max(0, width - cell_len(cell))
            parts.append(pad + cell if is_num else cell + pad)
        return "   ".join(parts).rstrip()

    write = sys.stdout.write
    write(line([_escaped(c) for c in columns]) + "\n")
    rule = "─" if _encodes("─", getattr(sys.stdout, "encoding", None)) else "-"  # (as the Rich tables of the other commands fall back)
    write(rule * (sum(widths) + 3 * max(0, len(widths) - 1)) + "\n")
    for row in df.iter_rows():
        write(line([_table_cell(v) for v in row]) + "\n")


# --- overview --------------------------------------------------------------------------------------------


@app.command("overview", help="The first look: tokens per model, sessions per day, top repos and tools.")
def overview_command(
    days: int = typer.Option(
        30, "--days", metavar="N", click_type=Days(0, MAX_DAYS),
        help="Local calendar days ending today; 0 = all data."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    from hypaware_tui.core.paths import Layout, require_usable_home
    from hypaware_tui.core.query import DatasetReadError, empty_note, overview

    layout = Layout.resolve()
    require_usable_home(layout.home)  # (else: "Nothing imported yet.")
    try:
        ov = overview(layout, days=days)
    except DatasetReadError as exc:
        failure = _fail("overview", str(exc), 1)
        if json_out:  # (cli.md §1: one document, also on failure; the figures are unknown)
            from hypaware_tui.cli.output import print_json_error

            print_json_error(str(exc))
        raise failure from None
    if json_out:
        print_json(ov.to_json())
        return
    if ov.is_empty:
        out(empty_note(ov, _prog(), layout))
        return
    render_overview(ov, out_console())


def _bar(value: int, top: int, width: int = BAR_WIDTH, *, ascii_only: bool = False) -> str:
    """A horizontal bar in eighths of a character (`█▉▊▋▌▍▎▏`); any non-zero value shows at least `▏`.
    `ascii_only` (a stdout that cannot encode them): whole characters of `#`, at least one."""
    if top <= 0 or value <= 0:
        return ""
    if ascii_only:
        return "#" * max(1, round(value * width / top))
    eighths = max(1, round(value * width * 8 / top))
    full, rest = divmod(eighths, 8)
    return "█" * full + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[rest]


def _encodes(text: str, encoding: str | None) -> bool:
    """Whether an output in `encoding` can write `text` (not under `LC_ALL=C` with `PYTHONUTF8=0`, or
    `PYTHONIOENCODING=latin-1`: there the box-drawing rule and the bars came out as `?????`)."""
    try:
        text.encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


EMPTY_RUN_DAYS = 31  # longer runs of days without a session are one line (never within the default 30 days)


#: wider than any line of the overview: the width its tables are measured at when the output is redirected
_UNBOUNDED = 1 << 30
#: the narrowest the overview's provider column is cut to on a terminal (`ant…`), before any other name column,
#: which keeps at least _MIN_NAME characters (`claude-…`): the numbers come first, then the names that tell
#: rows apart
_MIN_PROVIDER = 4
_MIN_NAME = 8


def render_overview(ov: Overview, console: Console) -> None:
    """The text overview. On a terminal it fits the console's width (a table cuts its long cells with `…`);
    written to a file or a pipe, every line, cell and column name is whole (cli.md §7.1 cuts cells on a TTY
    only, as `hyp query sql`, `hyp status` and `hyp backfill list` do): a table is as wide as its widest
    cells, not the 80 columns Rich assumes without a terminal."""
    from rich import box
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    bold = "bold" if console.is_terminal and not console.no_color else None
    redirected = not _is_tty(console.file)

    def fit(t: Table) -> None:
        """A table wider than the terminal: its name columns (left-aligned: provider, model, repo, tool) cut
        with `…`, the widest first, so that every number keeps its natural width. Left to Rich, every column
        was narrowed alike: a long model name printed `a…  arn:aws:…clau…   1…`, its 1,234,567 input
        tokens cut to one digit and the cached and output columns gone."""
        options = console.options.update_width(_UNBOUNDED)
        excess = Measurement.get(console, options, t).maximum - console.width
        if excess <= 0:
            return
        names = [c for c in t.columns if c.justify == "left"]
        widths = [max(Measurement.get(console, options, x).maximum for x in (c.header, *c.cells)) for c in names]
        # The provider (anthropic, openai) says least: it gives way first; then the widest of the others
        for i, column in enumerate(names):
            if str(column.header) == "provider" and excess > 0:
                cut = min(excess, max(0, widths[i] - _MIN_PROVIDER))
                widths[i] -= cut
                excess -= cut
        others = [i for i, c in enumerate(names) if str(c.header) != "provider"]
        while excess > 0:
            widest = max(others, key=widths.__getitem__, default=None)
            if widest is None or widths[widest] <= _MIN_NAME:
                break  # (a terminal too narrow even for that: Rich narrows the rest)
            widths[widest] -= 1
            excess -= 1
        for column, width in zip(names, widths, strict=True):
            column.max_width = width
            column.overflow = "ellipsis"

    def show(renderable: Any) -> None:
        if not redirected:
            if isinstance(renderable, Table):
                fit(renderable)
            console.print(renderable)
            return
        width = console.width
        if isinstance(renderable, Table):
            natural = Measurement.get(console, console.options.update_width(_UNBOUNDED), renderable).maximum
            console.width = max(width, natural)
        try:
            console.print(renderable, soft_wrap=True)
        finally:
            console.width = width

    def heading(text: str) -> None:
        console.print()
        show(Text(text, style=bold or ""))

    def table(*columns: tuple[str, str]) -> Table:
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style=bold)
        for name, justify in columns:
            t.add_column(Text(name), justify=justify, no_wrap=True)  # type: ignore[arg-type]
        return t

    first = ov.earlier.date if ov.earlier else ov.first_date
    show(
        Text(
            f"{first} → {ov.last_date} ({ov.period.time_zone}) · "
            f"{plural(ov.active_days, 'active day')} · {plural(ov.rows, 'row')}"
        )
    )

    heading("Tokens per model")
    if ov.models:
        t = table(("provider", "left"), ("model", "left"), ("input", "right"), ("cached", "right"),
                  ("output", "right"))  # fmt: skip
        for m in ov.models:
            t.add_row(Text(printable(m.provider or "?")), Text(printable(m.model or "(unknown)")),
                      fmt_int(m.input_tokens), fmt_int(m.cached_tokens), fmt_int(m.output_tokens))  # fmt: skip
        show(t)
    else:
        show("  no token usage in this period")

    heading("Sessions per day")
    top = max((d.sessions for d in ov.days), default=0)
    ascii_bars = not _encodes("█▉▊▋▌▍▎▏", console.encoding)
    count_width = max(len(fmt_int(d.sessions)) for d in ov.days) if ov.days else 1
    days = list(ov.days)
    if ov.earlier:  # (all data older than the last MAX_DAYS: one line, not a line per day since the year 1)
        e = ov.earlier
        show(Text(f"  {e.date} … before {ov.first_date}  {plural(e.sessions, 'session')}, "
                  f"{plural(e.messages, 'message')}"))  # fmt: skip
    i = 0
    while i < len(days):
        d = days[i]
        j = i
        while j < len(days) and days[j].sessions == 0:
            j += 1
        if j - i > EMPTY_RUN_DAYS:  # (--days 0 from a row dated at the epoch: 56 years of empty lines)
            show(Text(f"  {d.date} … {days[j - 1].date}  {plural(j - i, 'day')} without sessions"))
            i = j
            continue
        bar = _bar(d.sessions, top, ascii_only=ascii_bars)
        show(Text(f"  {d.date}  {fmt_int(d.sessions):>{count_width}}  {bar}".rstrip()))
        i += 1

    heading("Top repos")
    if ov.repos:
        t = table(("repo", "left"), ("sessions", "right"), ("messages", "right"))
        for r in ov.repos:
            t.add_row(Text(printable(r.repo)), fmt_int(r.sessions), fmt_int(r.messages))
        show(t)
    else:
        show("  no working directories recorded")

    heading("Top tools")
    if ov.tools:
        t = table(("tool", "left"), ("calls", "right"))
        for tool in ov.tools:
            t.add_row(Text(printable(tool.tool)), fmt_int(tool.calls))
        show(t)
    else:
        show("  no tool calls in this period")


# --- schema ----------------------------------------------------------------------------------------------


@app.command("schema", help="Columns of ai_gateway_messages and ai_gateway_usage, or of NAME only.")
def schema_command(
    name: str | None = typer.Argument(
        None, metavar="[NAME]", help="ai_gateway_messages or ai_gateway_usage."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    from hypaware_tui.core.query import RELATIONS, schema_listing

    if name is not None and name.lower() in RELATIONS:  # (SQL names are case-insensitive: so is this one)
        name = name.lower()
    try:
        cols = schema_listing(name)
    except KeyError:
        # (a bad argument value: the usage line follows, as for any usage error, cli.md §1)
        raise click_exc.UsageError(f"unknown relation {name!r}; known: {', '.join(RELATIONS)}") from None
    relations = [r for r in RELATIONS if name in (None, r)]
    if json_out:
        print_json(
            {
                "relations": [
                    {
                        "name": rel,
                        "columns": [
                            {
                                "name": c.name,
                                "type": c.type,
                                "nullable": c.nullable,
                                "description": c.description,
                            }
                            for c in cols
                            if c.relation == rel
                        ],
                    }
                    for rel in relations
                ]
            }
        )
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console = out_console()
    tty = _is_tty(sys.stdout)
    bold = "bold" if tty and not console.no_color else None
    for i, rel in enumerate(relations):
        if i:
            console.print()
        console.print(Text(rel, style=bold or ""))
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style=bold)
        t.add_column("column", no_wrap=True)
        t.add_column("type", no_wrap=True)
        t.add_column("null", no_wrap=True)
        t.add_column("description", overflow="fold" if tty else "ignore", no_wrap=not tty)
        rows = [c for c in cols if c.relation == rel]
        for c in rows:
            t.add_row(Text(c.name), Text(c.type), "yes" if c.nullable else "no", Text(c.description))
        if not tty:
            widths = [
                max(len(v) for v in col)
                for col in zip(*[(c.name, c.type, "null", c.description) for c in rows], strict=True)
            ]
            console.width = sum(widths) + 2 * len(widths) + 2
        console.print(t)
