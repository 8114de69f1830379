"""`hyp backfill [PROVIDER...]`, `hyp backfill list`, `hyp backfill plan` (cli.md §5).

`list` and `plan` are subcommands next to positional provider names: `BackfillGroup` dispatches the first
positional word `list` / `plan` to its subcommand and sends everything else to the hidden import command,
so `hyp backfill claude`, `hyp backfill --json codex claude` and `hyp backfill plan --json` all work, and
`list` / `plan` can never be provider names.

Registered on the root app with `app.add_typer(backfill_app, name="backfill")` (see `register`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperCommand, TyperGroup

from hypaware_tui.cli.output import (
    WAITING_NOTICE,
    config_advice,
    err,
    err_console,
    fmt_int,
    human_size,
    out,
    out_console,
    plural,
    print_json,
    printable,
)
from hypaware_tui.core.fmt import files_progress
from hypaware_tui.core.timeutil import us_to_iso

if TYPE_CHECKING:
    from collections.abc import Callable

    from hypaware_tui.core.paths import Layout

COMMAND = "backfill"
RUN = "__import__"  # the hidden default command; never reachable by name (see BackfillGroup.parse_args)
SUBCOMMANDS = ("list", "plan")
_VALUE_OPTIONS = ("--since", "--until")

USAGE_PIECES = "[PROVIDER]... [--since DATE] [--until DATE] [--dry-run] [--json]"


def _prog(ctx: typer.Context | None) -> str:
    """The invoked program name (`hyp` or `hypaware`), for messages."""
    if ctx is not None:
        root = ctx.find_root()
        name = root.info_name or ""
        if name in ("hyp", "hypaware"):
            return name
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return base if base in ("hyp", "hypaware") else "hyp"


def _first_positional(args: list[str]) -> int | None:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return i + 1 if i + 1 < len(args) else None
        if a.startswith("-") and len(a) > 1:
            if a in _VALUE_OPTIONS:
                i += 2
                continue
            i += 1
            continue
        return i
    return None


class BackfillGroup(TyperGroup):
    """Treat the first positional word as a subcommand only when it is `list` or `plan`; otherwise every
    argument goes to the hidden import command (provider names included)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = list(args)
        idx = _first_positional(args)
        if idx is not None and args[idx] in SUBCOMMANDS:
            name = args.pop(idx)
            args.insert(0, name)
        elif idx is None and args and all(a in ("-h", "--help") for a in args):
            pass  # `hyp backfill --help`: the group's help (it documents the import form too)
        else:  # (`hyp backfill --dry-run --help` too: the import's help, not "no such option: --dry-run")
            args.insert(0, RUN)
        return super().parse_args(ctx, args)

    def format_options(self, ctx: Any, formatter: Any) -> None:
        """The import's own arguments and options, then the subcommands: `hyp backfill --help` listed only -h,
        while --since, --until, --dry-run and --json are what most readers look for. Arguments and options are
        two sections, as in every command's help (`[PROVIDER]...` was listed under Options)."""
        run = self.commands.get(RUN)
        if run is not None:
            for title, kind in (("Arguments", "argument"), ("Options", "option")):
                rows = [r for p in run.get_params(ctx) if p.param_type_name == kind
                        for r in [p.get_help_record(ctx)] if r is not None]  # fmt: skip
                if rows:
                    with formatter.section(title):
                        formatter.write_dl(rows)
        else:
            super().format_options(ctx, formatter)
            return
        self.format_commands(ctx, formatter)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [
            USAGE_PIECES,
            "|",
            "list [--json]",
            "|",
            "plan [PROVIDER]... [--since DATE] [--until DATE] [--json]",
        ]


class _ImportContext(typer.Context):
    @property
    def command_path(self) -> str:  # `hyp backfill`, not the hidden command's internal name
        return self.parent.command_path if self.parent is not None else COMMAND


class ImportCommand(TyperCommand):
    """The hidden import command: its usage and messages read `hyp backfill`."""

    context_class = _ImportContext

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [USAGE_PIECES]


backfill_app = typer.Typer(
    cls=BackfillGroup,
    name=COMMAND,
    help="Import the history already on this computer (Claude Code, Codex) into the dataset.",
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


app = backfill_app  # registered by cli/app.py: app.add_typer(backfill.app, name="backfill")


# --------------------------------------------------------------------------------------------- helpers


class UsageProblem(Exception):
    """A bad flag value: exit 2 with `hyp backfill: <message>` and the usage line."""


def _usage_exit(ctx: typer.Context, message: str, sub: str | None = None) -> None:
    prog = _prog(ctx)
    where = f"{prog} {COMMAND}" + (f" {sub}" if sub else "")
    err(f"{where}: {message}")
    usage = f"Usage: {where} " + (USAGE_PIECES if sub is None else _SUB_USAGE[sub])
    err(usage)
    raise typer.Exit(2)


_SUB_USAGE = {
    "list": "[--json]",
    "plan": "[PROVIDER]... [--since DATE] [--until DATE] [--json]",
}


def _fail(ctx: typer.Context, message: str, sub: str | None = None) -> None:
    """Exit 1 before anything ran, the message on stderr; with --json, also the command's document (cli.md §1):
    no provider ran (`providers: []`), `error` says why, and the import's says whether it was a dry run."""
    where = f"{_prog(ctx)} {COMMAND}" + (f" {sub}" if sub else "")
    err(f"{where}: {message}")
    if ctx.params.get("as_json"):
        from hypaware_tui.cli.output import print_json_error

        known: dict[str, Any] = {} if sub else {"dry_run": bool(ctx.params.get("dry_run"))}
        print_json_error(message, **known, providers=[])
    raise typer.Exit(1)


def _check_providers(ctx: typer.Context, names: list[str] | None, sub: str | None = None) -> list[str]:
    from hypaware_tui.importers import KNOWN_CLIENTS

    names = list(names or [])
    unknown = [n for n in dict.fromkeys(names) if n not in KNOWN_CLIENTS]
    if unknown:
        quoted = ", ".join(f'"{n}"' for n in unknown)
        word = "provider" if len(unknown) == 1 else "providers"
        _fail(ctx, f"unknown {word} {quoted} (known: {', '.join(KNOWN_CLIENTS)})", sub)
    return list(dict.fromkeys(names))


def _window_args(ctx: typer.Context, since: str | None, until: str | None, sub: str | None = None):
    from hypaware_tui.core.window import WindowError, parse_range

    try:
        return parse_range(since, until)
    except WindowError as exc:
        _usage_exit(ctx, str(exc), sub)


def _check_window(ctx: typer.Context, window: Any, since: str | None, until: str | None, retention: int,
                  sub: str | None = None) -> None:
    from hypaware_tui.core.window import WindowError, check_window

    try:
        check_window(window, since, until, retention)
    except WindowError as exc:
        _usage_exit(ctx, str(exc), sub)


_INVALID = object()  # `_load(report=True)`'s config when the file is invalid


def _load(ctx: typer.Context, sub: str | None = None, *, report: bool = False, create: bool = False):
    """(layout, config); config None without a file. An invalid config fails the command, except for a report
    (`report`: `backfill list`, which cli.md §5.4 has exit 0): it warns and gets `_INVALID`. `create`: the
    command creates HYP_HOME when it is missing (an import): one that cannot be created fails it up front."""
    from hypaware_tui.core.config import ConfigError, load_config
    from hypaware_tui.core.paths import Layout, hyp_home_problem

    layout = Layout.resolve(os.environ)
    problem = hyp_home_problem(layout.home, create=create)  # (else: "the config is invalid: …: Not a directory")
    if problem is not None:
        _fail(ctx, problem, sub)
    try:
        config = load_config(layout)
    except ConfigError as exc:
        advice = config_advice(str(exc), _prog(ctx))
        if not report:
            _fail(ctx, f"the config is invalid: {exc}. {advice}", sub)
        where = f"{_prog(ctx)} {COMMAND}" + (f" {sub}" if sub else "")
        err(f"{where}: warning: the config is invalid: {exc}. Whether a provider is enabled is unknown, and roots "
            f"set in the config are not used. {advice}")
        return layout, _INVALID
    return layout, config


def _retention(config: Any) -> int:
    from hypaware_tui.core.config import DEFAULT_RETENTION_DAYS

    return config.retention_days if config is not None else DEFAULT_RETENTION_DAYS


def _enabled_text(config: Any, client: str) -> str:
    if config is None:
        return "no config"
    if config is _INVALID:
        return "config invalid"
    return "yes" if config.client_enabled(client) else "no"


def _range_text(oldest: int | None, newest: int | None) -> str:
    from hypaware_tui.core.window import local_date_range

    return local_date_range(oldest, newest)


def _duration(seconds: float) -> str:
    s = int(max(0, seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _console():
    """stdout console; when redirected, tables are never squeezed to 80 columns (no truncated cells)."""
    console = out_console()
    if not console.is_terminal:
        console.width = 400
    return console


def _table(headers: list[str], rows: list[list[str]], right: set[int]):
    """Every cell shown as it is: a root, a reason or a status is a `Text` (a `str` cell is read as markup, and
    a root `claude[/]old` ended `hyp backfill list` with a MarkupError), its control characters as escapes."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for i, h in enumerate(headers):
        t.add_column(
            h, justify="right" if i in right else "left", no_wrap=i not in right and i != len(headers) - 1
        )
    for r in rows:
        t.add_row(*(Text(printable(cell)) for cell in r))
    return t


# --------------------------------------------------------------------------------------------- progress


class _Rate:
    """Bytes per second over the last 5 s."""

    def __init__(self, span: float = 5.0) -> None:
        self.span = span
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, t: float, done: int) -> float:
        self.samples.append((t, done))
        while len(self.samples) > 2 and t - self.samples[0][0] > self.span:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        return (done - d0) / (t - t0) if t > t0 else 0.0


def progress_line(prog: str, p: Any, state: str, rate: float) -> str:
    """wizard.md §9 step 5: `hyp: claude importing 34% 412 MB/1.2 GB files 88/240 sessions 120 rows 45210
    duplicates 0 skipped 12 12.1 MB/s elapsed 0:42 eta 1:10`."""
    pct = (
        100
        if p.bytes_total <= 0 and state != "importing"
        else (min(100, int(100 * p.bytes_done / p.bytes_total)) if p.bytes_total > 0 else 0)
    )
    if rate > 0 and p.elapsed_s >= 3 and p.bytes_total > p.bytes_done:
        eta = _duration((p.bytes_total - p.bytes_done) / rate)
    elif state != "importing":
        eta = "0:00"
    else:
        eta = "—"
    skipped = sum(p.lines_skipped.values())
    return (
        f"{prog}: {p.provider} {state} {pct}% {human_size(p.bytes_done)}/{human_size(p.bytes_total)} "
        f"{files_progress(p.files_done, p.files_total, p.files_unchanged, grouped=False)} "
        f"sessions {p.sessions} rows {p.rows_written} "
        f"duplicates {p.duplicates} skipped {skipped} {human_size(int(rate))}/s "
        f"elapsed {_duration(p.elapsed_s)} eta {eta}"
    )


def waiting_text(layout: Layout | None) -> str:
    """The notice of a run waiting for the write lock (cli.md §1): naming the capture daemon when it holds it
    (and saying so when that daemon is stopped by a signal and so never lets go), else the generic one."""
    from hypaware_tui.core.daemon.control import write_lock_waiting_notice

    return (write_lock_waiting_notice(layout) if layout is not None else None) or WAITING_NOTICE


class PlainSink:
    """Non-TTY stderr: one line per running provider every `interval` seconds and at its end."""

    def __init__(self, prog: str, *, dry_run: bool, interval: float = 5.0, layout: Layout | None = None) -> None:
        self.prog = prog
        self.layout = layout
        self.interval = interval
        self.verb = "counting" if dry_run else "importing"
        self.last: dict[str, Any] = {}
        self.printed: dict[str, float] = {}
        self.rates: dict[str, _Rate] = {}
        self.rate: dict[str, float] = {}
        self.waited = False

    def on_provider_start(self, provider: str, bytes_total: int, files_total: int) -> None:
        self.printed[provider] = time.monotonic()
        self.rates[provider] = _Rate()

    def on_progress(self, p: Any) -> None:
        now = time.monotonic()
        self.last[p.provider] = p
        rate = self.rates.setdefault(p.provider, _Rate()).add(now, p.bytes_done)
        self.rate[p.provider] = rate
        # (a final report is printed by on_provider_finish, with the provider's status: printed here too, the
        # end of a stopped import read "importing 0% … files 0/400", then "cancelled 0% … files 0/400")
        if not p.final and now - self.printed.get(p.provider, now) >= self.interval:
            self.printed[p.provider] = now
            err(progress_line(self.prog, p, self.verb, rate))

    def on_provider_finish(self, result: Any) -> None:
        p = self.last.get(result.provider)
        if p is None:
            if result.status == "skipped":
                err(f"{self.prog}: {result.provider} skipped ({result.error})")
            else:
                err(f"{self.prog}: {result.provider} {result.status}")
            return
        p.rows_written, p.duplicates, p.errors = result.rows_written, result.duplicates_skipped, result.errors
        avg = p.bytes_done / p.elapsed_s if p.elapsed_s > 0 else 0.0
        err(progress_line(self.prog, p, result.status, avg))
        if getattr(p, "files_unsaved", 0):  # (why the files figure is below the last one shown)
            from hypaware_tui.core.runner import unsaved_files_text

            err(f"{self.prog}: {result.provider}: {unsaved_files_text(p.files_unsaved)}")

    def on_lock_wait(self, provider: str) -> None:
        if not self.waited:
            self.waited = True
            err(waiting_text(self.layout))

    def on_notice(self, provider: str, message: str) -> None:
        err(f"{self.prog}: {provider}: {message}")


class RichSink:
    """TTY stderr: a live panel per provider (fits 80 columns), like the wizard's Import step:

        Claude Code  importing  ━━━━━━━━━━━━━━━━━━━━━━━━   58%  612 MB/1.05 GB
                     files 140/241 · sessions 133 · rows 48,210 · duplicates 0 · skipped 12
                     31.2 MB/s · elapsed 0:20 · ETA 0:14
    """

    def __init__(self, prog: str, *, dry_run: bool, layout: Layout | None = None) -> None:
        self.layout = layout
        from rich.live import Live

        self.prog = prog
        self.verb = "counting" if dry_run else "importing"
        self.console = err_console()
        self.state: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.notice: str | None = None
        self.live = Live(console=self.console, refresh_per_second=8, transient=False, auto_refresh=True,
                         get_renderable=self._render)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self.live.refresh()
        self.live.stop()

    def say(self, text: str) -> None:
        """A line above the live panels, where it stays (the panels are drawn again below it)."""
        self.console.print(printable(text), markup=False, highlight=False)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        from hypaware_tui.importers import DISPLAY_NAMES

        rows: list[Any] = []
        for name in self.order:
            st = self.state[name]
            p = st.get("progress")
            total = max(st["bytes_total"], 1)
            done = min(p.bytes_done, total) if p is not None else 0
            if st["status"] in ("ok",):
                done = total
            if st["status"] == "skipped" and p is None:
                # (the reason names a root: an escape sequence in it retitled the terminal)
                rows.append(Text.assemble((f"{DISPLAY_NAMES.get(name, name):<12}", "bold"), " skipped    ",
                                          printable(st.get("error") or "")))
                continue
            grid = Table.grid(padding=(0, 1))
            grid.add_column(width=12, no_wrap=True)
            grid.add_column(width=10, no_wrap=True)
            grid.add_column(width=24, no_wrap=True)
            grid.add_column(justify="right", width=4, no_wrap=True)
            grid.add_column(no_wrap=True)
            pct = int(100 * done / total)
            grid.add_row(
                Text(DISPLAY_NAMES.get(name, name), style="bold"),
                Text(st["status"]),
                ProgressBar(total=total, completed=done, width=24),
                f"{pct}%",
                f"{human_size(min(done, st['bytes_total']))}/{human_size(st['bytes_total'])}",  # (not 1 B/0 B)
            )
            rows.append(grid)
            if p is not None:
                rows.append(Text(" " * 13 + RichSink._counts(p), no_wrap=True, overflow="ellipsis"))
                rows.append(Text(" " * 13 + st["timing"], style="dim", no_wrap=True, overflow="ellipsis"))
            if st.get("unsaved"):
                rows.append(Text(" " * 13 + st["unsaved"]))
            if st.get("error"):
                rows.append(Text(" " * 13 + printable(st["error"]), no_wrap=True, overflow="ellipsis"))
        if self.notice:
            rows.append(Text(printable(self.notice)))
        return Group(*rows)

    @staticmethod
    def _counts(p: Any) -> str:
        skipped = sum(p.lines_skipped.values())
        text = (
            f"{files_progress(p.files_done, p.files_total, p.files_unchanged)} · "
            f"sessions {fmt_int(p.sessions)} · rows {fmt_int(p.rows_written)} · "
            f"duplicates {fmt_int(p.duplicates)} · skipped {fmt_int(skipped)}"
        )
        if p.errors:
            text += f" · errors {p.errors}"
        return text

    def on_provider_start(self, provider: str, bytes_total: int, files_total: int) -> None:
        self.order.append(provider)
        self.state[provider] = {"status": self.verb, "bytes_total": bytes_total, "progress": None,
                                "rate": _Rate(), "timing": ""}

    def on_progress(self, p: Any) -> None:
        st = self.state.get(p.provider)
        if st is None:
            return
        st["progress"] = p
        rate = st["rate"].add(time.monotonic(), p.bytes_done)
        if rate > 0 and p.elapsed_s >= 3 and p.bytes_total > p.bytes_done:
            eta = _duration((p.bytes_total - p.bytes_done) / rate)
        else:
            eta = "—"
        st["timing"] = f"{human_size(int(rate))}/s · elapsed {_duration(p.elapsed_s)} · ETA {eta}"

    def on_provider_finish(self, result: Any) -> None:
        st = self.state.get(result.provider)
        if st is None:
            self.order.append(result.provider)
            st = self.state[result.provider] = {"status": result.status, "bytes_total": 0, "progress": None,
                                                "rate": _Rate(), "timing": ""}
        st["status"] = result.status
        p = st.get("progress")
        if p is not None:
            p.rows_written, p.duplicates, p.errors = result.rows_written, result.duplicates_skipped, result.errors
            avg = p.bytes_done / p.elapsed_s if p.elapsed_s > 0 else 0.0
            st["timing"] = f"{human_size(int(avg))}/s · elapsed {_duration(p.elapsed_s)}"
            if getattr(p, "files_unsaved", 0):  # (why the bar and the files figure went back at the stop)
                from hypaware_tui.core.runner import unsaved_files_text

                st["unsaved"] = unsaved_files_text(p.files_unsaved)
        if result.error and result.status == "failed":
            st["error"] = result.error
        elif result.status == "skipped":
            st["error"] = result.error

    def on_lock_wait(self, provider: str) -> None:
        self.notice = waiting_text(self.layout)

    def on_notice(self, provider: str, message: str) -> None:
        self.notice = f"{provider}: {message}"


class _Interrupts:
    """SIGINT/SIGTERM: the first sets the cancel flag (the batch finishes, the summary prints, exit 130); a
    second one exits at once with 130 (committed data stays consistent). `say` prints the notice of the first
    (the live panels' console: written past them, it was erased by their next repaint)."""

    def __init__(self, prog: str, cancel: threading.Event, say: Callable[[str], None] | None = None) -> None:
        self.prog = prog
        self.cancel = cancel
        self.say = say
        self.old: dict[int, Any] = {}
        self.quitting = False

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.cancel.is_set():
            self._quit_now()
        self.cancel.set()
        # (a SIGTERM comes from a script, a service manager or a cron timeout: "press Ctrl+C" meant nothing there)
        again = "press Ctrl+C again" if signum == signal.SIGINT else "send the signal again"
        text = f"{self.prog}: stopping after the current batch ({again} to quit at once)"
        if self.say is not None:
            try:
                self.say(text)
                return
            except Exception:
                pass
        with contextlib.suppress(OSError):
            os.write(2, f"\n{text}\n".encode())

    def _quit_now(self) -> None:
        """Exit 130 at once: the parse workers are killed, and on a terminal the cursor the live panels hid is
        shown again, on a line of its own. Straight to the file descriptor: under the panels `sys.stderr` is
        Rich's proxy, which holds a line until its end and drops control codes, and `os._exit` discards it
        (the cursor stayed hidden, the shell prompt was glued to the last panel line)."""
        if self.quitting:  # (a third Ctrl+C while the second one's exit is under way)
            os._exit(130)
        self.quitting = True
        try:
            from hypaware_tui.core.runner import abandon_workers

            abandon_workers()
            if os.isatty(2):
                os.write(2, b"\x1b[?25h\n")
        finally:
            os._exit(130)

    def __exit__(self, *exc: object) -> None:
        if self.cancel.is_set():
            # Interrupted: the process is on its way out (summary, exit 130). Restoring the default handlers
            # here let a second Ctrl+C that landed after the run but before the exit kill the process with a
            # KeyboardInterrupt (status -2 instead of 130); it still means "quit at once". The interpreter's
            # own teardown resets the handlers it installed to the default too, and with Polars loaded that
            # teardown is long enough for a second Ctrl+C to land in it (status -2 in 77 of 80 tries): from
            # the start of the teardown, the signals are ignored, and the exit status stays 130.
            if self.old:
                atexit.register(_ignore_interrupts)
            return
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def _ignore_interrupts() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, signal.SIG_IGN)


# --------------------------------------------------------------------------------------------- import


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def closing_line(result: Any) -> str:
    """Exactly one of the cli.md §5.3 closing lines. A run that wrote nothing because a provider failed, was
    interrupted, or could not read its files says so: "No history in this window." (or "Nothing new") would
    tell the user there was nothing to import, when the error printed above is what they need to act on."""
    written = result.rows_written
    dups = result.duplicates_skipped
    if written:
        return f"{'Would import' if result.dry_run else 'Imported'} {plural(written, 'new row')}."
    from hypaware_tui.core.runner import nothing_new_text

    failed = [p.provider for p in result.providers if p.status == "failed"]
    if failed:
        return f"Nothing was imported: {_names(failed)} failed (the error is above)."
    if any(p.status == "cancelled" for p in result.providers):
        return "Nothing was imported: the import was interrupted. Run it again to import this window."
    # what could not be read: files and folders, and the roots of a client skipped as not readable (a link to
    # a drive not mounted, permissions), each a folder
    unreadable = [p.provider for p in result.providers
                  if p.status == "skipped" and (p.error or "").startswith("not readable:")]
    folders = sum(p.folders_failed for p in result.providers) + len(unreadable)
    text = nothing_new_text(dups, result.files_unchanged, sum(p.files_failed for p in result.providers)
                            + len(unreadable), folders)
    if text is not None:
        return text
    erred = [p.provider for p in result.providers if p.errors or p.provider in unreadable]
    if erred:  # (files that could not be read: nothing says the window is empty)
        return f"Nothing was imported: history of {_names(erred)} could not be read (the error is above)."
    return "No history in this window."


def _summary_text(prog: str, result: Any) -> None:
    from hypaware_tui.core.window import describe_window
    from hypaware_tui.importers.base import Window

    heading = f"Backfill {describe_window(Window(result.since_us, result.until_us))} · run {result.run_id}"
    if result.dry_run:
        heading = "Dry run: nothing written · " + heading
    console = _console()
    console.print(heading, markup=False)
    rows = []
    for p in result.providers:
        rows.append(
            [
                p.provider,
                p.status,
                fmt_int(p.files_scanned),
                fmt_int(p.sessions_seen),
                fmt_int(p.rows_written),
                fmt_int(p.duplicates_skipped),
                fmt_int(sum(p.lines_skipped.values())),
                fmt_int(p.errors),
            ]
        )
    if rows:
        console.print(
            _table(
                [
                    "provider",
                    "status",
                    "files",
                    "sessions",
                    "rows written",
                    "duplicates",
                    "lines skipped",
                    "errors",
                ],
                rows,
                right={2, 3, 4, 5, 6, 7},
            )
        )
    from hypaware_tui.core.fmt import hanging_lines
    from hypaware_tui.core.runner import error_notes

    notes = [line for p in result.providers
             for line in error_notes(p.provider, p.error, p.error_path, p.other_errors, os.environ,
                                     logged=not result.dry_run, more_places=p.more_places)]
    # (at a terminal, each continued under its text, a path whole: Rich wrapped them back to column 1, and cut
    # a path in two; redirected output is never wrapped)
    for line in hanging_lines(notes, None if console.soft_wrap else console.width):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(closing_line(result), markup=False)


def _empty_selection(ctx: typer.Context, config: Any, as_json: bool, dry_run: bool, window: Any) -> None:
    from hypaware_tui.core.ids import new_run_id

    if as_json:
        print_json(
            {
                "run_id": new_run_id(),
                "dry_run": dry_run,
                "since": us_to_iso(window.since_us),
                "until": us_to_iso(window.until_us),
                "providers": [],
            }
        )
    elif config is not None:
        out(
            "Nothing to import: no client is enabled in the config. Name one (hyp backfill claude) or run "
            "hyp init."
        )
    else:
        # A client whose folder is there but cannot be read (a link to a drive not mounted, permissions) is not
        # detected either: "no history found" would hide it, so the line says so and each reason follows
        unreadable = [(c, r) for c, r in _detections(config) if (r or "").startswith("not readable:")]
        if not unreadable:
            out("Nothing to import: no Claude Code or Codex history found.")
        else:
            out("Nothing to import: no Claude Code or Codex history could be read.")
            for c, reason in unreadable:
                out(f"  {c}: {printable(reason or '')}")
    raise typer.Exit(0)


def _detections(config: Any) -> list[tuple[str, str | None]]:
    """Each known client whose detection did not fail, with None when detected, else the reason."""
    from hypaware_tui.core.inventory import config_root
    from hypaware_tui.importers import KNOWN_CLIENTS, get_importer

    out: list[tuple[str, str | None]] = []
    for c in KNOWN_CLIENTS:
        try:
            d = get_importer(c).detect(config_root(config, c), os.environ)
        except Exception:
            continue
        out.append((c, None if d.detected else (d.reason or "not detected")))
    return out


def _detected_clients(config: Any) -> list[str]:
    return [c for c, reason in _detections(config) if reason is None]


def _workers() -> int:
    """`HYP_WORKERS`, else 2 parse processes on a machine with 2+ CPUs (used only for large imports)."""
    from hypaware_tui.core.runner import default_workers

    return default_workers()


_PROVIDERS = typer.Argument(None, metavar="[PROVIDER]...", show_default=False,
                            help="claude or codex (default: the clients enabled in the config, or every detected "
                                 "client when there is no config).")
# (plan shows every client without a config, detected or not: why one is missing is part of the preview)
_PLAN_PROVIDERS = typer.Argument(None, metavar="[PROVIDER]...", show_default=False,
                                 help="claude or codex (default: the clients enabled in the config, or both "
                                      "when there is no config).")


@backfill_app.command(RUN, cls=ImportCommand, hidden=True, help="Import existing history.")
def import_command(
    ctx: typer.Context,
    providers: list[str] | None = _PROVIDERS,
    since: str | None = typer.Option(None, "--since", metavar="DATE", help="Lower bound (inclusive)."),
    until: str | None = typer.Option(None, "--until", metavar="DATE", help="Upper bound (inclusive)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be written; write nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    from hypaware_tui.core.paths import set_umask
    from hypaware_tui.core.runner import run_backfill
    from hypaware_tui.core.timeutil import now_us
    from hypaware_tui.core.window import resolve_window

    prog = _prog(ctx)
    since_us, until_us = _window_args(ctx, since, until)
    names = _check_providers(ctx, providers)
    layout, config = _load(ctx, create=not dry_run)
    now = now_us()
    retention = _retention(config)
    window, _floor, write_checkpoints = resolve_window(since_us, until_us, retention, now)
    _check_window(ctx, window, since, until, retention)

    if not names:
        names = config.enabled_clients if config is not None else _detected_clients(config)
        if not names:
            _empty_selection(ctx, config, as_json, dry_run, window)

    if not dry_run:
        set_umask()
    cancel = threading.Event()
    use_rich = sys.stderr.isatty()
    sink: Any = (RichSink(prog, dry_run=dry_run, layout=layout) if use_rich
                 else PlainSink(prog, dry_run=dry_run, layout=layout))
    with _Interrupts(prog, cancel, sink.say if use_rich else None):
        if use_rich:
            sink.start()
        try:
            result = run_backfill(
                layout,
                names,
                window=window,
                write_checkpoints=write_checkpoints,
                dry_run=dry_run,
                sink=sink,
                cancel=cancel,
                config=config,
                retention_days=retention,
                now=now,
                workers=_workers(),
            )
        finally:
            if use_rich:
                sink.stop()
        # (still under the handler: a Ctrl+C that lands as the run ends does not cut the summary short)
        if as_json:
            print_json(result.to_json())
        else:
            _summary_text(prog, result)
    raise typer.Exit(result.exit_code)


# --------------------------------------------------------------------------------------------- list


@backfill_app.command(
    "list", help="Providers, whether their history was found, and whether they are enabled."
)
def list_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    from hypaware_tui.core.inventory import build_inventory, client_figures
    from hypaware_tui.importers import KNOWN_CLIENTS

    _layout, config = _load(ctx, "list", report=True)
    invalid = config is _INVALID
    inv = build_inventory(KNOWN_CLIENTS, config=None if invalid else config, env=os.environ)
    entries = []
    for ci in inv:
        fig = client_figures(ci)
        entries.append(
            {
                "provider": ci.client,
                "name": ci.name,
                "detected": ci.detected,
                "reason": ci.reason,
                "enabled": None if config is None or invalid else config.client_enabled(ci.client),
                "root": ci.root,
                "roots": ci.roots,  # (every root the files come from: root is the first)
                "files": fig.files,
                "sessions": fig.sessions,
                "bytes": fig.bytes,
                "oldest": us_to_iso(fig.oldest_us),
                "newest": us_to_iso(fig.newest_us),
                "_fig": fig,
            }
        )
    if as_json:
        print_json({"providers": [{k: v for k, v in e.items() if k != "_fig"} for e in entries]})
        raise typer.Exit(0)
    from hypaware_tui.cli.output import short_path

    rows = []
    for e in entries:
        fig = e["_fig"]
        rows.append(
            [
                e["provider"],
                e["name"],
                "yes" if e["detected"] else (e["reason"] or "no"),
                _enabled_text(config, e["provider"]),
                ", ".join(short_path(r) for r in e["roots"]) or "—",
                fmt_int(fig.files),
                human_size(fig.bytes),
                _range_text(fig.oldest_us, fig.newest_us),
            ]
        )
    console = _console()
    console.print(
        _table(
            ["provider", "name", "detected", "enabled", "root", "files", "size", "history range"],
            rows,
            right={5, 6},
        )
    )
    from hypaware_tui.core.window import local_dates_note

    shown = [us for e in entries if e["detected"] for us in (e["_fig"].oldest_us, e["_fig"].newest_us)]
    console.print(local_dates_note(*shown), markup=False)
    # A folder of a detected client that could not be read (its `projects` a link to a drive not mounted): its
    # figures leave out whatever that folder holds, which "yes … 0 files" would not say
    from hypaware_tui.core.fmt import hanging_lines
    from hypaware_tui.core.runner import error_notes

    notes = [line for ci in inv for fe in ci.failed if fe.folder
             for line in error_notes(ci.client, fe.message, fe.path, 0, os.environ, logged=False)]
    for line in hanging_lines(notes, None if console.soft_wrap else console.width):  # (as under a summary)
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(0)


# --------------------------------------------------------------------------------------------- plan


@backfill_app.command("plan", help="Estimate what an import would read (upper bounds); writes nothing.")
def plan_command(
    ctx: typer.Context,
    providers: list[str] | None = _PLAN_PROVIDERS,
    since: str | None = typer.Option(None, "--since", metavar="DATE", help="Lower bound (inclusive)."),
    until: str | None = typer.Option(None, "--until", metavar="DATE", help="Upper bound (inclusive)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    from hypaware_tui.core.inventory import build_inventory, client_figures
    from hypaware_tui.core.timeutil import now_us
    from hypaware_tui.core.window import describe_window, local_dates_note, resolve_window
    from hypaware_tui.importers import KNOWN_CLIENTS
    from hypaware_tui.importers.base import FUTURE_SKEW_US

    since_us, until_us = _window_args(ctx, since, until, "plan")
    names = _check_providers(ctx, providers, "plan")
    _layout, config = _load(ctx, "plan")
    now = now_us()
    window, _floor, _write = resolve_window(since_us, until_us, _retention(config), now)
    _check_window(ctx, window, since, until, _retention(config), "plan")
    # Without --until, the import keeps the rows stamped later than this whatever `until` (now) says (Window)
    beyond = None if window.until_given else now + FUTURE_SKEW_US
    if not names:
        # The same selection as the import, except that without a config every client is shown, detected
        # or not (a plan is a preview: the reason a client is missing is useful).
        names = config.enabled_clients if config is not None else list(KNOWN_CLIENTS)
    inv = build_inventory(names, config=config, env=os.environ)
    entries = []
    for ci in inv:
        fig = client_figures(ci, window.since_us, window.until_us, beyond_us=beyond)
        entries.append((ci, fig))
    if as_json:
        print_json(
            {
                "since": us_to_iso(window.since_us),
                "until": us_to_iso(window.until_us),
                "providers": [
                    {"provider": ci.client, "detected": ci.detected, "reason": ci.reason, **fig.to_json()}
                    for ci, fig in entries
                ],
            }
        )
        raise typer.Exit(0)
    console = _console()
    console.print(f"Plan {describe_window(window)} · upper-bound estimates", markup=False)
    if not entries:
        console.print(
            "No client is enabled in the config. Name one (hyp backfill plan claude).", markup=False
        )
        raise typer.Exit(0)
    rows = []
    for ci, fig in entries:
        if not ci.detected:
            rows.append([ci.client, ci.reason or "not detected", "—", "—", "—", "—"])
            continue
        rows.append(
            [
                ci.client,
                "yes",
                fmt_int(fig.files),
                fmt_int(fig.sessions),
                human_size(fig.bytes),
                _range_text(fig.oldest_us, fig.newest_us),
            ]
        )
    console.print(
        _table(
            ["provider", "detected", "files (up to)", "sessions (up to)", "size (up to)", "in window"],
            rows,
            right={2, 3, 4},
        )
    )
    console.print(
        "Upper bounds from each file's first and last timestamps; hyp backfill --dry-run counts exact rows.",
        markup=False,
    )
    shown = [window.since_us, window.until_us, now]
    shown += [us for ci, fig in entries if ci.detected for us in (fig.oldest_us, fig.newest_us)]
    console.print(local_dates_note(*shown), markup=False)  # (as Review's and hyp init --dry-run's: the same figures)
    raise typer.Exit(0)
