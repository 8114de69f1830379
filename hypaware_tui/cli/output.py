"""Shared output helpers for every command (cli.md §1 "Streams", "--json", "Colour").

* stdout carries results only; progress, notices, warnings and errors go to stderr (`err`).
* `print_json(obj)`: exactly one JSON document, 2-space indent, UTF-8, trailing newline; `print_json_error`
  the document of a command that failed (exit 1) with `--json`.
* `out_console()` / `err_console()`: Rich consoles that colour only on a TTY and never with NO_COLOR.
* Human formats: `human_size`, `fmt_int`, `plural` and `utc_minute` (from core.fmt, shared with the wizard),
  `short_path` (home shown as `~`).
* `Days`: the value type of `--days` and `--retention-days`.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from typer._click import types as click_types

from hypaware_tui.core.fmt import fmt_int as fmt_int  # re-exported: the CLI takes its formats from here
from hypaware_tui.core.fmt import human_size as human_size
from hypaware_tui.core.fmt import plural as plural
from hypaware_tui.core.fmt import printable as printable
from hypaware_tui.core.fmt import utc_minute as utc_minute

if TYPE_CHECKING:
    from rich.console import Console

    from hypaware_tui.core.paths import Layout


class Days(click_types.IntRange):
    """A whole number of days in a range: a bad value says `'x' is not a whole number of days` (click's
    range type said `'x' is not a valid int range`, and its metavar was `<int range>`)."""

    name = "days"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, int):
            try:
                int(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a whole number of days.", param, ctx)
        return super().convert(value, param, ctx)


WAITING_NOTICE = "waiting for another import to finish its batch…"


def replace_config_advice(prog: str) -> str:
    """How to replace an invalid config with a command that works: the wizard in a terminal, and without one
    `--yes --force` (headless `hyp init --yes` stops on any existing config, and `hyp init --force` alone asks
    for a terminal)."""
    return f"replace it with {prog} init ({prog} init --yes --force without a terminal; a backup is kept)"


_NEWER_CONFIG = re.compile(r"has version (\d+); this hyp understands version (\d+) only")


def config_advice(error: str, prog: str, fix: str = "Fix the file, or ") -> str:
    """What to do about an invalid config, from its error: a config written by a newer hyp is not to be
    replaced (that loses its settings, and the newer hyp's daemon may be using it): hyp is to be upgraded. Any
    other: fix it, or replace it (`fix` + `replace_config_advice`)."""
    m = _NEWER_CONFIG.search(error)
    if m is not None and int(m.group(1)) > int(m.group(2)):
        return "It was written by a newer hyp: upgrade hyp to use it (replacing it would lose its settings)."
    if "cannot be read: Permission denied" in error:  # (a replacement must read it too, for its backup)
        return "Check that it belongs to you and is readable (chmod 600 on it), then run it again."
    if "is a symbolic link to" in error:
        return "Fix or remove the link, then run it again."
    return f"{fix}{replace_config_advice(prog)}."


def color_enabled(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _console(stream: Any) -> Console:
    from rich.console import Console

    color = color_enabled(stream)
    return Console(
        file=stream,
        no_color=not color,
        color_system="auto" if color else None,
        force_terminal=color or None,
        highlight=False,
        emoji=False,
        soft_wrap=not color,  # redirected output: never wrap long lines (paths) at 80 columns
    )


def out_console() -> Console:
    return _console(sys.stdout)


def err_console() -> Console:
    return _console(sys.stderr)


class OutputError(Exception):
    """stdout cannot be written: closed (`hyp status >&-`), a full disk (`> /dev/full`), an I/O error. The
    command stops with `cannot write the output: <why>`, exit 1 (not an unexpected error). A reader that went
    away (`| head`) stays a BrokenPipeError: it ends the command quietly."""


class _ClosedStream(io.TextIOBase):
    """The stream of a closed file descriptor (Python makes it None): every write fails, as a closed one's."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, f"{self._name} is closed")


class _GuardedStdout:
    """sys.stdout while a command runs: what cannot be written raises OutputError (main reports it in one
    line); everything else is the stream's own."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.written = False  # whether the command wrote anything (main adds a failure's JSON document only if not)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._stream, method)(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.strerror or str(exc)) from exc

    def write(self, text: str) -> int:
        if text:
            self.written = True
        if len(text) < _LARGE_WRITE:
            return self._call("write", text)
        try:
            return _write_whole(self._stream, text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.strerror or str(exc)) from exc

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._call("flush")


_LARGE_WRITE = 4096  # (characters: at most 16 KB of UTF-8, more than the buffered layer's buffer on a pipe)
_SLICE = 1024  # (characters: at most 4 KB of UTF-8, what that buffer always takes whole)


def _write_whole(stream: Any, text: str) -> int:
    """Write a large `text` so that a reader gone mid-write (`| head`) is a BrokenPipeError, as it is for the
    commands that write line by line (main: quiet, exit 1). CPython's buffered writer, handed more than its
    buffer at once, returns after a partial write to a pipe whose reader has left, and the text layer ignores
    the count: the rest was dropped with no error, so a command whose output was one large write (a --json
    document) exited 0. Here the bytes go to the buffered layer until each one is taken; where the text layer
    must translate line ends (or has no buffer), in slices that its buffer takes whole, each flushed."""
    buffer = getattr(stream, "buffer", None)
    if not isinstance(stream, io.TextIOWrapper) or buffer is None or os.linesep != "\n":
        for i in range(0, len(text), _SLICE):
            stream.write(text[i:i + _SLICE])
            stream.flush()
        return len(text)
    stream.flush()  # (what the text layer holds goes first)
    view = memoryview(text.encode(stream.encoding, stream.errors or "strict"))
    while view:
        n = buffer.write(view)
        if not n:  # (nothing taken: a non-blocking stdout that would block)
            raise BlockingIOError(errno.EAGAIN, "the output would block")
        view = view[n:]
    return len(text)


class _QuietStderr(_GuardedStdout):
    """sys.stderr while a command runs: a closed or failing stderr (`2>&-`, `2>/dev/full`) loses what was
    written there and nothing else; the command goes on, and exits with its own code."""

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._stream, method)(*args)
        except (OSError, ValueError):  # (ValueError: a closed file object)
            return len(args[0]) if method == "write" else None


def _occupy_closed_descriptors() -> None:
    """A standard descriptor closed at start (`>&-`) gets /dev/null, so no file opened later lands on it (and
    receives what a library writes to "stdout" or "stderr")."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def guard_streams() -> tuple[Any, Any]:
    """Install `_GuardedStdout` and `_QuietStderr` (over a closed stream's stand-in when Python found the
    descriptor closed). Returns the streams to put back."""
    saved = sys.stdout, sys.stderr
    if sys.stdout is None or sys.stderr is None:
        _occupy_closed_descriptors()
    sys.stdout = _GuardedStdout(sys.stdout if sys.stdout is not None else _ClosedStream("stdout"))
    sys.stderr = _QuietStderr(sys.stderr if sys.stderr is not None else _ClosedStream("stderr"))
    return saved


def out(text: str = "") -> None:
    """One plain line of results on stdout. Control characters other than line breaks are shown as escapes
    (`printable`): a line may carry a path or a message from the history, never an escape sequence of ours."""
    sys.stdout.write(printable(text, newlines=True) + "\n")


def terminal_width(stream: Any) -> int | None:
    """The width of the terminal `stream` is, or None when it is not one (redirected output is never wrapped)."""
    try:
        if not stream.isatty():
            return None
        return os.get_terminal_size(stream.fileno()).columns or None
    except (OSError, ValueError, AttributeError):
        return None


def wrap_for_terminal(text: str, width: int | None, label_width: int = 0, indent: int = 0) -> list[str]:
    """`text` (printable already) as the lines a terminal `width` wide shows well: each of its lines wrapped
    between words (`core.fmt.wrap_line`), where the terminal would fold it at column 1 mid-word, further lines
    `indent` columns in (an indented line's own indent, if more). Its first `label_width` columns
    (`Label     `) stay as they are."""
    from hypaware_tui.core.fmt import wrap_line

    out: list[str] = []
    for line in text.split("\n"):
        head = label_width
        if line[:head].strip(" ") and (not line[:head].endswith(" ") or line[head:head + 1] == " "):
            head = 0  # (a label wider than its column: wrapped as one text)
        lead = len(line) - head - len(line[head:].lstrip(" "))  # (an indented line keeps its indent)
        as_is = width is None or width < indent + 20  # (not a terminal, or one too narrow to wrap for)
        out.extend([line] if as_is else wrap_line(line, width, head + lead, max(indent, lead)))
    return out


def out_labelled(text: str, label_width: int, indent: int | None = None) -> None:
    """`out` of a report's line (`Label     text`, its text from column `label_width`): at a terminal, wrapped
    between words to its width (`wrap_for_terminal`), every further line `indent` columns in (default: under
    the text)."""
    lines = wrap_for_terminal(printable(text, newlines=True), terminal_width(sys.stdout), label_width,
                              label_width if indent is None else indent)
    sys.stdout.write("\n".join(lines) + "\n")


def err(text: str) -> None:
    """One plain line on stderr (notices, warnings, errors), its control characters shown as `out`'s are. At a
    terminal, wrapped between words (`wrap_for_terminal`): the terminal folded a long error at column 1,
    mid-word (`… from the history on this compute` / `r: stop the daemon …`)."""
    lines = wrap_for_terminal(printable(text, newlines=True), terminal_width(sys.stderr))
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def print_json(obj: Any) -> None:
    from hypaware_tui.core.schema import json_depth_room, utf8_json

    with json_depth_room(frames_per_level=4):  # (a query's JSON column may nest 1,024 deep; indent= recurses)
        text = json.dumps(obj, indent=2, ensure_ascii=False)
    # (utf8_json: a path that is not UTF-8, in a message, as `\\xff`: cli.md §1, the document is UTF-8)
    sys.stdout.write(utf8_json(text) + "\n")
    sys.stdout.flush()


def print_json_array(items: Iterable[Any]) -> None:
    """`print_json` of a list, written an item at a time: the same text (`json.dumps(items, indent=2)`), without
    the list or the whole document in memory (`hyp query sql --format json` of a large result held both: 5 GB for
    a 450 MB document)."""
    from hypaware_tui.core.schema import json_depth_room, utf8_json

    write = sys.stdout.write
    first = True
    for item in items:
        with json_depth_room(frames_per_level=4):
            text = json.dumps(item, indent=2, ensure_ascii=False)
        # (the item one level down: each of its lines indented by two more spaces; a newline inside a string
        # is written `\n` by the encoder, so every one in `text` is a line break of the layout)
        write(("[\n  " if first else ",\n  ") + utf8_json(text).replace("\n", "\n  "))
        first = False
    write("[]\n" if first else "\n]\n")
    sys.stdout.flush()


def print_json_error(error: str, **known: Any) -> None:
    """cli.md §1: with `--json`, a command that fails (exit 1) still prints exactly one document: the keys of its
    own document that are known at that point (`known`), and `error`, the message also printed on stderr
    without its `hyp <command>: ` prefix (as `hyp cache compact --json` does)."""
    print_json({**known, "error": error})


def stdout_written() -> bool:
    """Whether this command has written anything on stdout (see `_GuardedStdout`)."""
    return bool(getattr(sys.stdout, "written", False))


def waiting_notice(prog: str = "hyp", layout: Layout | None = None) -> Callable[[], None]:
    """The `on_wait` callback of storage operations: prints the lock-waiting notice once, on stderr (naming the
    capture daemon when it is the holder, `control.write_lock_waiting_notice`)."""
    shown = False

    def notice() -> None:
        nonlocal shown
        if not shown:
            shown = True
            from hypaware_tui.core.daemon.control import write_lock_waiting_notice

            err((write_lock_waiting_notice(layout) if layout is not None else None) or WAITING_NOTICE)

    return notice


def short_path(path: str | os.PathLike[str]) -> str:
    """The path with the user's home directory shown as `~`."""
    p = os.fspath(path)
    from hypaware_tui.core.paths import user_home

    home = user_home()
    if home and home != "/" and (p == home or p.startswith(home.rstrip(os.sep) + os.sep)):
        return "~" + p[len(home.rstrip(os.sep)) :]
    return p
