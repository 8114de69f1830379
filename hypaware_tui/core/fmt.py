"""Human formats shared by every front end (the CLI, the wizard and the plan text), so one figure reads the
same everywhere: `plural` (`1 session`, `2 sessions`), `fmt_int` (`1,234`), `utc_minute`
(`2026-11-27 14:00 UTC`), and `printable` for text from the history shown on a terminal.

No Textual or Rich here (the core renders the `hyp init` summary with these).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# C0 controls, DEL and C1 controls: a terminal acts on them (ESC starts a sequence, U+009B is a one-character
# CSI); the invisible characters that change what a line seems to say: the bidi embeddings, overrides and
# isolates (U+202E turns the rest of a line around, so a path can read as another), the zero-width space and
# the BOM (the joiners and the LRM/RLM marks stay: emoji sequences and right-to-left text use them); the line
# and paragraph separators U+2028/U+2029 (a line break in some terminals); and lone surrogates, which no
# terminal's encoding can write (a path's byte that is not UTF-8: see `escape_char`)
_SHOWN = "\x7f-\x9f\u200b\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff"
_CONTROL = re.compile(f"[\x00-\x1f{_SHOWN}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_KEEP_NEWLINES = re.compile(f"[\x00-\x08\x0b-\x1f{_SHOWN}]")  # (a message's line breaks and tabs stay)


def escape_char(char: str) -> str:
    """The escape `printable` writes for one character: `\\n`, `\\r`, `\\t`, else `\\x1b` for a control and
    `\\u202e` for an invisible format character; for
    a lone surrogate, `\\xff` when it is how `os.fsdecode` kept a byte of a path that is not UTF-8
    (U+DC80-U+DCFF: the byte itself, as `os.fsencode(path).decode("utf-8", "backslashreplace")` shows it),
    else `\\ud83d`."""
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0xD800 or code > 0xDFFF:
        return f"\\u{code:04x}"  # (a format character: U+202E as \u202e)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` with its control characters written as escapes (`\\n`, `\\x1b`), for a terminal. Text from the
    history (a cell, a working directory, a model or tool name) is anybody's: a web page a tool fetched can hold
    `ESC ] 0 ; … BEL`, which retitled the terminal from the wizard's first look, or `ESC [ 2 J`, which cleared
    it from `hyp query sql`. JSON and CSV keep the exact text. `newlines`: keep line breaks and tabs (a message,
    a unit file's text).
    A lone surrogate (a path that is not UTF-8, in a message) is written as an escape too: a UTF-8 stream
    that is strict (the usual for a UTF-8 locale other than C.UTF-8) refused it, and the command ended
    there."""
    if text.isprintable():  # (none of them is: the common case, one C-speed pass)
        return text
    pattern = _KEEP_NEWLINES if newlines else _CONTROL
    if pattern.search(text) is None:
        return text
    return pattern.sub(lambda m: escape_char(m.group()), text)


def fmt_int(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


def utc_minute(at: object) -> str:
    """An ISO UTC time (`2026-11-27T14:00:09Z`) as `2026-11-27 14:00 UTC`: the one format of the events and the
    daemon's times in `hyp status`, `hyp daemon status` and `hyp cache status` (their JSON keeps ISO 8601)."""
    return str(at or "?").replace("T", " ")[:16] + " UTC"


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 session`, `0 sessions`, `1,204 sessions` (`words`: an irregular plural)."""
    return f"{fmt_int(n)} {word if n == 1 else (words or word + 's')}"


def files_progress(done: int, total: int, unchanged: int = 0, *, grouped: bool = True) -> str:
    """The files part of a progress line (the wizard's panel, `hyp init --yes` and `hyp backfill` on stderr):
    `files 140/241`, the files read of those the pass reads. A pass with none to read (a rerun that finds
    nothing new) says so, with the files found unchanged since the last import, rather than `files 0/0` next
    to a bar at 100 %. `grouped`: thousands separators (the plain stderr line has none)."""
    n = fmt_int if grouped else str
    if total:
        return f"files {n(done)}/{n(total)}"
    if unchanged:
        return f"nothing to read ({n(unchanged)} {'file' if unchanged == 1 else 'files'} unchanged)"
    return "nothing to read"


def human_size(n: int | float | None) -> str:
    """Decimal units to three significant digits, trailing zeros dropped: `999 B`, `63.4 kB`, `5.51 MB`,
    `612 MB`, `1.05 GB`, `1.1 GB` (wizard.md's figures: `612 MB of 1.05 GB`, `1.1 GB`, `31.2 MB/s`). The one
    format of every size hyp shows, so a file reads the same on the wizard's screens, `hyp status` and
    `hyp backfill`: the wizard showed `5.51 MB` where `hyp status` showed `5.5 MB`."""
    if n is None:
        return "unknown"
    value = float(n)
    if value < 1000:
        return f"{int(value)} B"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        text = f"{value:.2f}" if value < 10 else (f"{value:.1f}" if value < 100 else f"{value:.0f}")
        if float(text) < 1000 or unit == "PB":  # (999.7 kB rounds to 1000: it is 1 MB)
            return f"{text.rstrip('0').rstrip('.') if '.' in text else text} {unit}"
    raise AssertionError("unreachable")


# A hyp command inside a text (`hyp init --yes --force`, `hyp backfill --dry-run`, `hyp daemon start`): its
# subcommands, client names and flags (a flag's value too: a date, a path, a number or an UPPER placeholder).
# A wrapped text keeps each one on one line: a copy of it taken across a line break ran `hyp init` alone.
_WORDS = ("init|status|backfill|list|plan|query|overview|sql|cache|compact|prune|daemon|start|stop|restart|run|"
          "install|uninstall|claude|codex")
_FLAG = r"--?[a-z][\w-]*(?:=\S+)?(?: (?:[\d/~'\"$]\S*|[A-Z][A-Z_]+\b))?"
_COMMAND = re.compile(rf"(?<![\w/.-])(?:hyp|hypaware)(?: (?:(?:{_WORDS})\b|{_FLAG}))+")
_KEEP = "\x00"  # (stands for a space that must not break; `printable` leaves no NUL in a shown text)


def wrap_line(line: str, width: int | None, head: int, indent: int, *, break_long_words: bool = False) -> list[str]:
    """`line` wrapped to `width` between words: its first `head` characters as they are (a label, an indent),
    each further line `indent` columns in. A hyp command in it stays on one line (`_COMMAND`). A word longer
    than the line (a path) stays whole, for the terminal to fold (a copy of it then keeps no break), unless
    `break_long_words` (a screen that would cut it off at its edge). `width` None, or a line that fits: the
    line as it is."""
    import textwrap

    if width is None or len(line) <= width:
        return [line]
    body = _COMMAND.sub(lambda m: m.group().replace(" ", _KEEP), line[head:])
    lines = textwrap.wrap(body, max(width, indent + 10), initial_indent=line[:head], subsequent_indent=" " * indent,
                          break_long_words=break_long_words, break_on_hyphens=False)
    return [text.replace(_KEEP, " ") for text in lines] or [line]


# the part of a note line that its further lines hang under: its indent and a leading `client: ` or `at `
_HANG = re.compile(r" *(?:at |[^ :]+: )?")


def hanging_lines(lines: Sequence[str], width: int | None, *, break_long_words: bool = False,
                  hang: int | None = None) -> list[str]:
    """`lines` (the notes under a summary: `  codex: <error>`, `    at <path>`) wrapped to `width` by
    `wrap_line`, each continued under its own text, past its indent and its `codex: ` or `at ` (or past its
    first `hang` columns: `Look at it:     <command>`)."""
    out: list[str] = []
    for line in lines:
        head = len(_HANG.match(line).group()) if hang is None else hang  # type: ignore[union-attr]
        lead = len(line) - len(line.lstrip(" "))
        if width is not None and head > width // 2:
            head = lead
        elif width is not None and break_long_words and head > lead:
            # a word (a path) that the hang would cut but that fits a line from the line's own indent: on a line
            # of its own, whole (`Demo directory:` / `/var/folders/…/hyp-demo-x1`)
            longest = max((len(word) for word in line[head:].split()), default=0)
            if width - head < longest <= width - lead:
                head = lead
        out.extend(wrap_line(line, width, head, head, break_long_words=break_long_words))
    return out
