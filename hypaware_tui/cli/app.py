"""The `hyp` command frame (cli.md §1): root app, command registration and error handling.

Exit codes: 0 ok, 1 failure, 2 usage (unknown flag/command, bad value: `hyp <command>: <problem>` plus the
usage line on stderr, nothing on stdout), 130 interrupted. Unexpected errors print one line on stderr
(the traceback with HYP_DEBUG=1) and exit 1.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import traceback
from collections.abc import Sequence

import typer
from typer import _click as click
from typer._click import exceptions as click_exc
from typer.core import TyperGroup

from hypaware_tui import __version__
from hypaware_tui.cli import backfill, cache, daemon, init, query, status
from hypaware_tui.cli.output import OutputError, guard_streams, out, print_json_error, stdout_written
from hypaware_tui.core import prog

# The name the program was invoked as (`hyp` or `hypaware`); messages use it (cli.md §1 "Names").
PROG = "hyp"

HELP = "Keep your Claude Code and Codex history as one queryable local Parquet dataset."
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="hyp",
    help=HELP,
    add_completion=False,
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
)


def _version_callback(value: bool) -> None:
    if value:
        out(f"{PROG} {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if ctx.invoked_subcommand is None:
        out(ctx.get_help())
        out()
        out(state_hint())
        raise typer.Exit(0)


def state_hint() -> str:
    """The one state hint of `hyp` with no arguments (cli.md §1). Read-only, creates nothing."""
    from hypaware_tui.cli.status import daemon_running
    from hypaware_tui.core.paths import Layout, hyp_home_problem, resolve_hyp_home

    layout = Layout(resolve_hyp_home())  # (not `Layout.resolve`, which refuses a HYP_HOME that is not UTF-8)
    problem = hyp_home_problem(layout.home, then=f"run {PROG} init", create=True)  # (hyp init fails on it)
    if problem is not None:
        return f"Not set up: {problem}"
    if not layout.config.exists():
        return f"Not set up yet: run {PROG} init, or {PROG} init --demo to try it."
    if daemon_running(layout):
        return f"Capture is running; see {PROG} status."
    return f"Capture is not running; see {PROG} status."


# --- Command registration ----------------------------------------------------------------------------------
# One line per command module, in the order of `hyp --help`. Each module owns its commands:
#   * a single command:   `<module>.register(app)`            (defines `@app.command("<name>")`)
#   * a command group:    `app.add_typer(<module>.app, name="<name>")`
# Register a command only when it works (no placeholders). Later issues add, e.g.:
#   init.register(app) · app.add_typer(backfill.app, name="backfill") · app.add_typer(query.app, name="query")
#   · app.add_typer(daemon.app, name="daemon")
init.register(app)
status.register(app)
app.add_typer(backfill.app, name="backfill")
app.add_typer(query.app, name="query")
app.add_typer(cache.app, name="cache")
app.add_typer(daemon.app, name="daemon")
# -----------------------------------------------------------------------------------------------------------


def _invoked_name(argv0: str) -> str:
    name = os.path.basename(argv0)
    return name if name in ("hyp", "hypaware") else "hyp"


def _context_for(root: click.Command, args: Sequence[str]) -> click.Context:
    """A context for the (sub)command `args` names (`cache compact --json` -> `hyp cache compact`): it gives
    the command path and usage line for errors that click raises without one."""
    ctx = click.Context(root, info_name=PROG)
    cmd = root
    for arg in args:
        if arg.startswith("-"):
            continue
        sub = cmd.commands.get(arg) if isinstance(cmd, TyperGroup) else None
        if sub is None:
            break
        ctx = click.Context(sub, info_name=arg, parent=ctx)
        cmd = sub
    return ctx


def _command_path(root: click.Command, args: Sequence[str]) -> str:
    return _context_for(root, args).command_path


def _problem_text(message: str) -> str:
    """Click's message, with a lower-case first letter (`No such option` -> `no such option`)."""
    message = message.strip()
    if len(message) > 1 and message[0].isupper() and not message[1].isupper():
        message = message[0].lower() + message[1:]
    return message


def _one_line(text: str, limit: int | None = None) -> str:
    """`text` cut at its first line break (and at `limit` characters), with `…` where something was cut."""
    lines = text.splitlines() or [""]
    shown = lines[0] if limit is None else lines[0][:limit]
    return shown + ("…" if len(lines) > 1 or shown != lines[0] else "")


def _usage_message(exc: click_exc.UsageError) -> str:
    """Click's message; an unknown option is shown on one line (`no such option: -- weekly…`): click wrote
    a statement read as an option with its line breaks as `\\x0a`."""
    if isinstance(exc, click_exc.NoSuchOption) and exc.message.startswith("No such option: "):
        from typer._click.utils import _escape_control_characters

        shown = _escape_control_characters(_one_line(exc.option_name, 60))
        message = f"No such option: {shown}"
        if exc.possibilities:
            message += f" (Possible options: {', '.join(sorted(exc.possibilities))})"
        return message
    return exc.format_message()


# `hyp query sql`'s options: `--format` takes a value (the statement is the one positional argument).
_SQL_VALUE_OPTIONS = ("--format",)
_SQL_FLAGS = ("-h", "--help")


def _sql_hint(path: str, args: Sequence[str]) -> str | None:
    """The way out of two `hyp query sql` mistakes, as the command to run (its options first, then `--`, then
    the statement):
      * a statement that opens with a `--` comment, without `--` before it, is read as an option;
      * after `--` everything is the statement, so options there (`-- "select 1" --format csv`) are extra
        arguments."""
    if not path.endswith("query sql"):
        return None
    at = next((i + 2 for i in range(len(args) - 1) if args[i] == "query" and args[i + 1] == "sql"), None)
    if at is None:
        return None
    rest = list(args[at:])
    if "--" in rest:
        k = rest.index("--")
        before, after = rest[:k], rest[k + 1 :]
        # Only hyp query sql's own options, on both sides, and none given twice: else the command shown would
        # fail too (`-- "select 1" "-- second"`, `-- "select 1" -1`) or keep both (`--format=csv … --format json`)
        given, moved = _sql_options(before), _sql_options(after[1:])
        if given is None or moved is None or not moved or set(given) & set(moved):
            return None
        command = _sql_command(path, [*before, *after[1:]], after[0])
        return f"Everything after -- is the statement: put the options before --, {command}"
    i = next((i for i, a in enumerate(rest) if a.startswith("--") and (a[2:3].isspace() or "\n" in a)), None)
    if i is None:
        return None
    command = _sql_command(path, rest[:i] + rest[i + 1 :], rest[i])
    return f"A statement that starts with -- is read as an option: put -- before it, {command}"


def _sql_options(args: Sequence[str]) -> list[str] | None:
    """The names of the options `args` holds (`--format`), or None when it holds anything else."""
    names: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in _SQL_VALUE_OPTIONS and i + 1 < len(args):
            names.append(a)
            i += 2
        elif a in _SQL_FLAGS:
            names.append(a)
            i += 1
        elif (eq := next((o for o in _SQL_VALUE_OPTIONS if a.startswith(f"{o}=")), None)) is not None:
            names.append(eq)
            i += 1
        else:
            return None
    return names


def _sql_command(path: str, options: Sequence[str], statement: str) -> str:
    """`hyp query sql --format csv -- '-- weekly…'`: the statement's first line, as a reminder of which one,
    quoted for a shell as the options are (a statement with `"` or `$` pasted as `"…"` broke)."""
    import shlex

    from typer._click.utils import _escape_control_characters

    shown = [_escape_control_characters(shlex.quote(a)) for a in (*options, "--", _one_line(statement, 40))]
    return " ".join([path, *shown])


def _tolerate_narrow_encodings(args: Sequence[str]) -> None:
    """A stdout or stderr that cannot encode every character (`LANG=en_US.ISO-8859-1`,
    `PYTHONIOENCODING=ascii`): text for people shows `?` for what it cannot encode (the arrows and dots:
    `hyp backfill list` died there with UnicodeEncodeError); JSON and CSV are written in UTF-8 whatever the
    locale (cli.md §1: `--json` is UTF-8), never with `?` in the data. (The C and POSIX locales are UTF-8
    already: Python coerces them.)"""
    machine = "--json" in args or any(
        a in ("--format=json", "--format=csv") or (a == "--format" and b in ("json", "csv"))
        for a, b in zip(args, [*args[1:], ""], strict=False)
    )
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
        if encoding not in ("utf-8", "utf8") and hasattr(stream, "reconfigure"):
            with contextlib.suppress(Exception):
                if machine and stream is sys.stdout:
                    stream.reconfigure(encoding="utf-8")
                else:
                    stream.reconfigure(errors="replace")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `hyp`, `hypaware` and `python -m hypaware_tui`. Never returns: exits with the code."""
    global PROG
    PROG = _invoked_name(sys.argv[0] if sys.argv else "hyp")
    prog.set_name(PROG)  # (the commands that texts of the core name)
    args = list(sys.argv[1:] if argv is None else argv)
    _tolerate_narrow_encodings(args)
    saved = guard_streams()
    try:
        _main(args)
    finally:
        sys.stdout, sys.stderr = saved


def _main(args: list[str]) -> None:
    command = typer.main.get_command(app)
    try:
        rc = command.main(args=args, prog_name=PROG, standalone_mode=False)
        sys.stdout.flush()  # (here: a full disk found at the last write is this command's failure)
    except click_exc.UsageError as exc:
        ctx = exc.ctx if exc.ctx is not None else _context_for(command, args)
        path = ctx.command_path
        lines = [
            f"{path}: {_problem_text(_usage_message(exc))}",
            ctx.get_usage(),
            f"Try '{path} --help' for help.",
        ]
        hint = _sql_hint(path, args)
        if hint is not None:
            lines.insert(1, hint)
        sys.stderr.write("\n".join(lines) + "\n")
        sys.exit(2)
    except typer.Abort:
        sys.stderr.write("\n")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        sys.exit(130)
    except click_exc.ClickException as exc:
        sys.stderr.write(f"{_command_path(command, args)}: {_problem_text(exc.format_message())}\n")
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        # The reader went away (`hyp status | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except OutputError as exc:
        sys.stderr.write(f"{_command_path(command, args)}: cannot write the output: {exc}\n")
        if os.environ.get("HYP_DEBUG") == "1":
            traceback.print_exc()
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the one place that turns any error into one line
        from hypaware_tui.core.checkpoints import StateDBError
        from hypaware_tui.core.config import ConfigError
        from hypaware_tui.core.paths import HypHomeError, PanicError
        from hypaware_tui.core.storage import StorageError

        where = _command_path(command, args)
        debug = os.environ.get("HYP_DEBUG") == "1"
        if isinstance(exc, PanicError):  # (a panic some worker turned into an error)
            _panic_exit(where, exc, str(exc), args)
        known = isinstance(exc, StorageError | ConfigError | StateDBError | HypHomeError)
        message = str(exc) if known else f"unexpected error: {type(exc).__name__}: {exc}"
        sys.stderr.write(f"{where}: {message}\n")
        if not known and not debug:
            sys.stderr.write("Run it again with HYP_DEBUG=1 to see the traceback.\n")
        if debug:
            traceback.print_exc()
        _json_failure(args, message)
        sys.exit(1)
    except BaseException as exc:
        # A Rust panic in Polars (`pyo3_runtime.PanicException`, e.g. `Too many open files` while it starts its
        # runtime) derives from BaseException: it went past the line above as a traceback.
        from hypaware_tui.core.paths import is_panic, panic_text

        if not is_panic(exc):
            raise
        _panic_exit(_command_path(command, args), exc, panic_text(exc), args)
    sys.exit(rc if isinstance(rc, int) else 0)


def _json_requested(args: Sequence[str]) -> bool:
    """`--json` among the options (not after `--`, where `hyp query sql` reads its statement). A command without
    the flag never gets this far: click refused it (exit 2)."""
    return "--json" in (args[: list(args).index("--")] if "--" in args else args)


def _json_failure(args: Sequence[str], message: str) -> None:
    """cli.md §1: `--json` gets exactly one document, also from a command stopped by an error (exit 1) before
    it printed its own: `{"error": <the message on stderr>}`. Never a second one after the command's."""
    if _json_requested(args) and not stdout_written():
        with contextlib.suppress(Exception):  # (stdout itself failing: the message on stderr is what is left)
            print_json_error(message)


def _panic_exit(where: str, exc: BaseException, text: str, args: Sequence[str] = ()) -> None:
    """One line for a Polars panic; the traceback with HYP_DEBUG=1 only (exit 1)."""
    from hypaware_tui.core.paths import is_internal_panic_text

    debug = os.environ.get("HYP_DEBUG") == "1"
    sys.stderr.write(f"{where}: {text}\n")
    if is_internal_panic_text(text) and not debug:
        sys.stderr.write("Run it again with HYP_DEBUG=1 to see the traceback.\n")
    if debug:
        traceback.print_exception(exc)
    _json_failure(args, text)
    sys.exit(1)


def run() -> None:
    """Console-script entry point (`hyp`, `hypaware`, `python -m hypaware_tui`): `main`, then a quick exit.

    Once a command is done, the interpreter's own teardown (freeing every module and object; with Polars
    loaded ~0.2 s, a third of an incremental import) changes nothing on disk: files, the lock and the SQLite
    state are closed by then. So the atexit handlers run and the streams are flushed as in a normal exit,
    and the process then ends with `os._exit` and the same exit code. A non-daemon thread still running (none
    of ours) gets the normal exit, which waits for it. Tests call `main` itself."""
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if any(t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate()):
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:  # sys.exit("message") prints the message and exits with 1
        with contextlib.suppress(Exception):
            sys.stderr.write(f"{code}\n")
        status = 1
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is None:
        sys.exit(code)
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # the reader went away: what it did not read is lost either way
            status = status or 1
        except Exception:  # noqa: BLE001 - a closed or detached stream: nothing left to flush
            pass
    os._exit(status)
