"""The client-neutral importer contract.

An importer turns the bytes of one client's history files into `ai_gateway_messages` rows. It has three
parts, and every client implements them the same way:

* discovery (`Importer.discover`): the files under the client's roots, as `SourceFile`s, plus what could not
  be read and what was detected but is never parsed;
* a fast inventory (`Importer.inventory_file`): first and last timestamps from a bounded head and tail;
* a `Parser` per file pass: complete lines (or a whole document) in, rows out, with a JSON parser state that
  lets the next pass resume exactly where this one stopped (storage.md §5, the split invariant).

The byte-level reading loop, checkpoints, skip and reset rules are generic and live in
`hypaware_tui.core.reader`; the commit lives in `hypaware_tui.core.storage`. Nothing here imports a UI.

Rows are dicts keyed by column name (missing key = null). While a row is being built, the JSON columns
`attributes`, `status` and `raw_frame` may hold dicts; `Parser.emit` finalizes them to canonical JSON text.
Timestamps are integers (µs since the epoch, UTC).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from hypaware_tui.core import schema
from hypaware_tui.core.checkpoints import path_hash
from hypaware_tui.core.paths import dangling_link_target, is_link_loop, too_many_files_advice, user_home
from hypaware_tui.core.schema import (
    JSON_DEPTH,
    SURROGATE_ESCAPE,
    canonical_json,
    json_depth_room,
    plain_json_types,
    stdlib_dumps,
    stdlib_loads,
)
from hypaware_tui.core.timeutil import DATE_CACHE, US_PER_DAY, us_to_date

Row = dict[str, Any]


def name_text(name: str) -> str:
    """A file name, or a part of one, as the text of a row value (the ids that come from file names, schema.md
    §3.1). The name itself when its bytes are UTF-8 and it holds no backslash (every name a client writes).
    Otherwise (`os.fsdecode` kept each byte that is not UTF-8 as a lone surrogate, which no Parquet column can
    hold: the whole batch failed on it, rows of every file in it) each byte that is not UTF-8 is written as
    `\\xff` and each backslash as `\\x5c`. The mapping is one-to-one: a text without a backslash is a name
    as it is, and a text with one reads back to a single name (every `\\xNN` in it is one byte, and no
    other backslash is left), so two different names never give the same id (`agent-<0xff>.jsonl` and the
    UTF-8 `agent-\\xff.jsonl` are `agent-\\xff` and `agent-\\x5cxff`), and the same bytes always the
    same text (rows are a function of the bytes)."""
    if "\\" not in name and schema.SURROGATE.search(name) is None:
        return name
    return schema.utf8_text(name.replace("\\", "\\x5c"))


# --------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class SourceFile:
    """One history file found by discovery. `path` is the real path; it is never stored anywhere."""

    client: str
    path: str
    path_hash: str
    read_mode: str  # "incremental" | "whole"
    is_session: bool = True  # a top-level session (Claude subagent files are not sessions)
    size: int = 0
    mtime_ns: int = 0
    # the file's identity at discovery (from the same stat as size and mtime), so a run can tell unchanged
    # files without a second stat of each; None where unknown
    device: int | None = None
    inode: int | None = None

    # Written out rather than generated: discovery makes one per file, and the generated frozen `__init__`
    # (an `object.__setattr__` per field) took 3.5 µs of each, 0.14 s of a rerun over 40,000 files. It stores
    # the same fields (tests/test_claude_importer.py checks it against the field list); instances stay frozen.
    def __init__(
        self,
        client: str,
        path: str,
        path_hash: str,
        read_mode: str,
        is_session: bool = True,
        size: int = 0,
        mtime_ns: int = 0,
        device: int | None = None,
        inode: int | None = None,
    ) -> None:
        d = self.__dict__
        d["client"] = client
        d["path"] = path
        d["path_hash"] = path_hash
        d["read_mode"] = read_mode
        d["is_session"] = is_session
        d["size"] = size
        d["mtime_ns"] = mtime_ns
        d["device"] = device
        d["inode"] = inode


@dataclass(frozen=True)
class FileError:
    """A file or directory that could not be read during discovery or a pass. `where` and `message` hold no
    raw path (a path hash or a place relative to the client root): they reach the events log and the daemon's
    status. `path` is the real path, for the terminal only, so a person can find the file; never stored.
    `folder`: a directory could not be listed (reports count it as a folder, not a file)."""

    where: str
    message: str
    path: str | None = field(default=None, compare=False)
    folder: bool = field(default=False, compare=False)


#: what to do about an OSError met listing or opening a client's history, by errno; anything else: permissions
_OS_ERROR_ADVICE = {
    errno.ELOOP: "It is a symbolic link loop (a link that leads back to itself): remove the link or point it at "
    "the real file or folder.",
    # (folders nested past PATH_MAX, or a name past NAME_MAX: permissions have nothing to do with it)
    errno.ENAMETOOLONG: "Its path is longer than the system can open: move or rename its folders to shorten "
    "it.",
}


class DanglingLink(FileNotFoundError):
    """A transcript that is a symbolic link to a file that does not exist (sessions kept on a drive that is not
    mounted). `DirEntry.is_file()` answers False for it, as for a folder, so a walk skipped it without a word
    while a link loop (which raises) was reported: see `check_link`."""


def check_link(entry: os.DirEntry[str]) -> None:
    """For a directory entry with a transcript's name that `is_file()` said is not a file: raise `DanglingLink`
    when it is a symbolic link whose target is missing. Costs a stat for such a symlink only (`is_symlink` is
    answered by the listing), never for the plain files of a rerun."""
    if not entry.is_symlink():
        return
    try:
        os.stat(entry.path)
    except FileNotFoundError as exc:
        raise DanglingLink(exc.errno, exc.strerror) from None
    # (a link to a folder or a FIFO: not a transcript, skipped as before; another error came from is_file)


def link_to_nothing_error(where: str, what: str, path: str) -> FileError | None:
    """The discovery error of a root or history folder (`what`: "the Claude Code folder") that is a symbolic
    link to nothing: the folder on a drive that is not mounted, or moved. It is a folder that could not be
    read, not a folder that is absent: the scan is incomplete (`Discovery.complete`), so the checkpoints of its
    files are kept (storage.md §7.4) rather than forgotten, and the run says so rather than finding an empty
    history. None when `path` is not such a link. (No path in the message: it reaches the events log; the
    terminal shows `path`, and where it points.)"""
    if dangling_link_target(path) is None:
        return None
    return FileError(where, f"cannot read {what}: it is a symbolic link to a folder that does not exist (on a drive "
                            "that is not mounted, or moved or deleted), so none of its history was read. Mount the "
                            "drive or make that folder available again, or remove the link.", path=path, folder=True)  # fmt: skip


def os_error_advice(exc: OSError) -> str:
    """The advice that ends a message about `exc`: a symlink loop or a link to nothing is not fixed by looking
    at permissions."""
    if isinstance(exc, DanglingLink):
        return ("It is a symbolic link to a file that does not exist (on a drive that is not mounted, or moved or "
                "deleted): make that file available again, or remove the link.")
    if exc.errno in (errno.EMFILE, errno.ENFILE):  # (the process's limit, or the system's: not the file's)
        return f"{too_many_files_advice(exc.errno)}."
    return _OS_ERROR_ADVICE.get(exc.errno or 0, "Check its permissions.")


class DamagedFile(Exception):
    """A file whose content cannot be decoded past some point (a truncated or corrupt compressed rollout). An
    importer raises it after handing out the rows of the complete lines before the damage; the pass then
    fails with this message (what happened, for the user; no path)."""


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    failed: list[FileError] = field(default_factory=list)
    detected_sources: list[str] = field(default_factory=list)  # e.g. "<codex home>/history.jsonl"

    @property
    def complete(self) -> bool:
        """Whether the scan saw every file under its roots, as dropping the checkpoints of vanished files needs
        (storage.md §7.4): a directory that could not be listed may hide any number of files; a file that could
        not be read (a link to a drive not mounted, a link loop, permissions), named by its path, hides none."""
        return not any(e.folder or e.path is None for e in self.failed)

    def unread_hashes(self) -> set[str]:
        """The path hashes of the files found but not read (of the path each leads to): their checkpoints are
        kept, for when the drive is back or the permissions are fixed."""
        return {path_hash(os.path.realpath(e.path)) for e in self.failed if e.path and not e.folder}


@dataclass(frozen=True)
class Detection:
    """Whether a client's history is present (wizard.md §5)."""

    detected: bool
    root: str | None  # the first existing, readable root; else the first root looked at
    reason: str | None  # "not found: <root> does not exist" / "not readable: <root> (permission denied)"
    roots: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileInventory:
    """Cheap facts about one file for plans and previews (never a whole read)."""

    file: SourceFile
    size: int
    mtime_ns: int
    first_ts: int | None  # µs, from a bounded head
    last_ts: int | None  # µs, from a bounded tail

    @property
    def newest_us(self) -> int:
        return self.last_ts if self.last_ts is not None else self.mtime_ns // 1000

    @property
    def oldest_us(self) -> int:
        return self.first_ts if self.first_ts is not None else self.mtime_ns // 1000


# --------------------------------------------------------------------------------------------- stats


@dataclass
class ParseStats:
    """Counters of one pass (schema.md §7, storage.md §10 backfill.scan)."""

    records_by_type: Counter = field(default_factory=Counter)
    lines_skipped: Counter = field(default_factory=Counter)
    rows_held: int = 0
    usage_unattached: int = 0
    rows_built: int = 0

    def copy(self) -> ParseStats:
        return ParseStats(Counter(self.records_by_type), Counter(self.lines_skipped), self.rows_held,
                          self.usage_unattached, self.rows_built)  # fmt: skip

    def restore(self, other: ParseStats) -> None:
        """Put back the counts of `other` (a `copy`), in place: the object is shared with the caller."""
        self.records_by_type = Counter(other.records_by_type)
        self.lines_skipped = Counter(other.lines_skipped)
        self.rows_held, self.usage_unattached = other.rows_held, other.usage_unattached
        self.rows_built = other.rows_built

    def merge(self, other: ParseStats) -> None:
        self.records_by_type.update(other.records_by_type)
        self.lines_skipped.update(other.lines_skipped)
        self.rows_held += other.rows_held
        self.usage_unattached += other.usage_unattached
        self.rows_built += other.rows_built


#: a line stamped more than this after a backfill started cannot have been written since (see `Window`)
FUTURE_SKEW_US = 24 * 3600 * 1_000_000


@dataclass(frozen=True)
class Window:
    """The rows a pass may emit: `since_us <= message_created_at <= until_us` (either bound optional).

    `since_us` is already the later of `--since` and the import floor. `until_us` also stops an incremental
    pass before the first line whose *own* timestamp is later (daemon.md §3.1 rule 4); whole-document reads
    ignore it (storage.md §5.3).

    `started_us`: the wall-clock start of a backfill (set by the runner). A line stamped more than
    `FUTURE_SKEW_US` after it (a skewed clock, a corrupt stamp: 2099) cannot have been written after the run
    started, so it does not stop the pass: stopping there stopped every backfill at that line, forever. Its
    rows are kept although later than `until` (`beyond_until`): the line was in the file when the run read it,
    the daemon (no `until`) would have stored them, and a pass that dropped them moved the checkpoint over
    them for good, so the dataset depended on which of the two reached the line first.

    `until_given`: `until` is the user's `--until`, not the default (now). It holds for every line then (cli.md
    §5.2: an inclusive upper bound): a line stamped 2099 stops the pass like any line after it, and a later run
    without `--until` goes on from there. (Kept, its row made a `date=2099-01-01` partition in a run asked for
    nothing after August, found by the reliability audit.)"""

    since_us: int | None = None
    until_us: int | None = None
    started_us: int | None = None
    until_given: bool = False

    @property
    def beyond_until(self) -> int | None:
        """Rows later than this are kept whatever `until` says (see above); None: `until` holds for all."""
        if self.until_us is None or self.started_us is None or self.until_given:
            return None
        return self.started_us + FUTURE_SKEW_US

    def stops_before(self, own_us: int) -> bool:
        """Whether an incremental pass rests before a line whose own timestamp is `own_us` (rule 4)."""
        if self.until_us is None or own_us <= self.until_us:
            return False
        beyond = self.beyond_until
        return beyond is None or own_us <= beyond


# --------------------------------------------------------------------------------------------- helpers

# RFC 2397 `data:` URIs with a base64 payload, wherever they occur in text (schema.md §3.4 rules 2 and 3). The
# pattern is rule 2's, widened to what rule 3's "never stored" needs: `data:` and `;base64,` in any case (URI
# schemes and RFC 2397's `;base64` are case-insensitive), and `\/` for `/` (a data URI inside JSON text whose
# encoder escaped slashes, e.g. PHP's json_encode). It starts at the `:` (a literal, which the regex engine
# scans for quickly) and looks back for `data`; the match proper starts 4 characters earlier. Group 1: the
# media type (with its parameters), group 2: the payload on the first line, group 3: its padding.
# The payload is written unrolled and possessive (`x*+(?:\\/x*+)*+`, not `(?:x|\\/)*`): a repeated alternation
# keeps backtracking state for every character, about 170 bytes each (a 20 MB image took 3 GB and 100x the time).
_B64_RE = re.compile(
    r":(?<=[Dd][Aa][Tt][Aa]:)"
    r"([A-Za-z0-9!#$&^_.+-]+(?:/|\\/)[A-Za-z0-9!#$&^_.+-]+(?:;[A-Za-z0-9!#$&^_.+=-]+)*)?"
    r";[Bb][Aa][Ss][Ee]64,([A-Za-z0-9+/_-]*+(?:\\/[A-Za-z0-9+/_-]*+)*+)(=*)"
)
# One more line of a line-wrapped payload: a line break (or its JSON escape) then a line of nothing but base64
# characters, to the end of that line (unrolled and possessive too). The line may be padding alone (`==`): an
# encoder that wrapped the whole URI, `data:...;base64,` included, can leave only the padding on its last line.
_B64_LINE_RE = re.compile(
    r"(?:\r?\n|\\r\\n|\\n)((?=[A-Za-z0-9+/=]|\\/)[A-Za-z0-9+/]*+(?:\\/[A-Za-z0-9+/]*+)*+)(=*)(?=[\r\n\"]|\\[rn]|\Z)"
)
# The end of the string or of the JSON string value (a closing quote), after at most one line break.
_B64_VALUE_END = re.compile(r"(?:\r?\n|\\r\\n|\\n)?(?:\"|\Z)")
# The widths encoders wrap base64 at, in payload characters: 76 (MIME, `base64`, Python's encodebytes, Perl's
# MIME::Base64), 64 (PEM, `openssl base64`) and 60 (Ruby's Base64.encode64 and pack("m")). A line of such a
# width continues onto the next line; any other constant width of at least `_B64_MIN_WIDTH` continues only
# once two consecutive lines of it agree.
_B64_WRAP_WIDTHS = (76, 64, 60)
_B64_MIN_WIDTH = 60
# Lines that read as text rather than as the end of a payload: a hex digest or id (one case of hex with a
# digit: a git SHA, SHA-256, dash-less UUID, a year) or a word. A payload line shaped so is rare and short, and
# keeping it leaks a few characters, while taking it would delete the user's text.
_B64_TEXTLIKE = re.compile(r"[0-9a-f]*[0-9][0-9a-f]*|[0-9A-F]*[0-9][0-9A-F]*|[A-Z]?[a-z]+")


def _b64_units(run: str) -> int:
    return len(run) - run.count("\\")  # (`\/` is one character of the payload)


def _b64_last_line(body: str, pad: str, total: int) -> bool:
    """Whether a line shorter than the wrap width, after a full-width line, is the payload's last line: it
    makes the whole payload (`total` characters, padding included) a multiple of 4, and it is padded or does
    not read as text."""
    return total % 4 == 0 and (bool(pad) or _B64_TEXTLIKE.fullmatch(body) is None)


def _b64_line_width(text: str, m: re.Match[str]) -> int:
    """The width of the whole line the payload's first line ends, `data:` and what is before it included (in
    a JSON string, from its opening quote or the `\\n` before), or 0 when it is wider than any wrap width.
    Looks back a bounded span only, so that many data URIs on one long line cost no more each."""
    end = m.end()
    lo = max(0, end - 2 * _B64_WRAP_WIDTHS[0] - 2)  # (`\\/` is two characters of one unit)
    start = m.start() - 4
    if start < lo:
        return 0
    cut = max(text.rfind("\n", lo, start) + 1, text.rfind('"', lo, start) + 1)
    esc = text.rfind("\\n", lo, start)
    if esc >= 0:
        cut = max(cut, esc + 2)
    if cut == 0 and lo:
        return 0
    return _b64_units(text[cut:end])


def _b64_confirmed(text: str, line: re.Match[str], units: int, n: int) -> bool:
    """Whether a line of `n` >= `_B64_MIN_WIDTH` characters, after a shorter first line of `units`, starts a
    wrapped payload: padded, it ends one of a whole number of quads; otherwise the line after it has the same
    width, or (for a usual wrap width) is a shorter last line."""
    if line.group(2):
        return (units + n) % 4 == 0
    after = _B64_LINE_RE.match(text, line.end())
    if after is None:
        return False
    body, pad = after.group(1), after.group(2)
    n2 = _b64_units(body) + len(pad)
    if n2 == n:
        return _B64_TEXTLIKE.fullmatch(body) is None
    return n2 < n and n in _B64_WRAP_WIDTHS and _b64_last_line(body, pad, units + n + n2)


def _b64_end(text: str, m: re.Match[str]) -> int:
    """Where the payload matched by `m` ends: after its first line, or after the lines that continue it when it
    is wrapped. The first line is counted from after `;base64,`. The payload is wrapped at its first line's
    width when that is a usual wrap width (`_B64_WRAP_WIDTHS`), or any width >= `_B64_MIN_WIDTH` the second
    line agrees with; the same at the width of the whole first line (`_b64_line_width`: an encoder that folded
    the URI, `data:` included); at the second line's width (>= `_B64_MIN_WIDTH`) when the first is shorter (or
    empty: `;base64,` ends the line) and the third line confirms it (`_b64_confirmed`). Wrapped, each next
    line of that width continues it, and a shorter one ends it when `_b64_last_line`. With `;base64,` at the
    end of its line and no wrapping, one line is the payload when it is `_b64_last_line` and padded, a whole
    wrap width, or the rest of the string (or of the JSON string). A line that reads as text (a hex digest, a
    word) never continues a payload; anything else after a data URI stays."""
    run, pad = m.group(2), m.group(3)
    end = m.end()
    if pad:
        return end
    line = _B64_LINE_RE.match(text, end)
    if line is None:
        return end
    units = _b64_units(run)
    body, pad = line.group(1), line.group(2)
    n = _b64_units(body) + len(pad)
    textlike = _B64_TEXTLIKE.fullmatch(body) is not None
    if (units in _B64_WRAP_WIDTHS and n <= units) or (units >= _B64_MIN_WIDTH and n == units and not textlike):
        width = units  # (the loop below takes the second line, or ends the payload before it)
    elif (phys := _b64_line_width(text, m)) and (
        (phys in _B64_WRAP_WIDTHS and n <= phys) or (phys >= _B64_MIN_WIDTH and n == phys and not textlike)
    ):
        width = phys  # the whole URI was wrapped, `data:` included
    elif n > units and n >= _B64_MIN_WIDTH and not textlike and _b64_confirmed(text, line, units, n):
        width = n
        units += n
        end = line.end()
        if pad:
            return end
    elif (
        not units
        and _b64_last_line(body, pad, n)
        and (bool(pad) or n in _B64_WRAP_WIDTHS or _B64_VALUE_END.match(text, line.end()) is not None)
    ):
        return line.end()
    else:
        return end
    while True:
        line = _B64_LINE_RE.match(text, end)
        if line is None:
            return end
        body, pad = line.group(1), line.group(2)
        n = _b64_units(body) + len(pad)
        if n != width or _B64_TEXTLIKE.fullmatch(body):
            return line.end() if n < width and _b64_last_line(body, pad, units + n) else end
        units += n
        end = line.end()
        if pad:
            return end


def strip_base64(text: str | None) -> str | None:
    """schema.md §3.4 rule 2: inline base64 data URIs -> `data:<mediatype>;base64,<omitted>` (the media type as
    written, else `application/octet-stream`), with the widenings of `_B64_RE` and line-wrapped payloads (rule 3:
    their bytes are never stored). Text without `64,` (every match has it) costs one scan."""
    if text is None or "64," not in text:
        return text
    m = _B64_RE.search(text)
    if m is None:
        return text
    out: list[str] = []
    done = 0
    while m is not None:
        if m.start() - 4 < done:  # `data` was the end of the payload before (the lookbehind sees it)
            m = _B64_RE.search(text, m.start() + 1)
            continue
        end = _b64_end(text, m)
        if end == m.end() and not m.group(2):  # `;base64,` with no payload after it: nothing to omit
            m = _B64_RE.search(text, m.end())
            continue
        out.append(text[done : m.start() - 4])
        out.append(f"data:{m.group(1) or 'application/octet-stream'};base64,<omitted>")
        done = end
        m = _B64_RE.search(text, end)
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


_BINARY_KEY = re.compile(r'"(?:data|blob|file_data)"')  # (one scan: three `in` tests took twice as long)
_JSON_START = re.compile(r"\s*[\[{]")


def binary_free_json(value: Any) -> str:
    """canonical_json of a source value stored in a text column (a tool result that is an object, tool
    arguments), without the bytes of images, audio or documents it may carry (schema.md §3.4 rule 3, see
    `_without_binary`); inline data URIs become `data:<mediatype>;base64,<omitted>` (rule 2). A value with
    none of the keys that carry bytes costs one scan of its text."""
    text = canonical_json(value)
    if '"data"' not in text and '"blob"' not in text and '"file_data"' not in text and "64," not in text:
        return text  # (four scans: a regex alternation of the four was ten times slower)
    clean, changed = _without_binary_deep(value)
    return strip_base64(canonical_json(clean) if changed else text) or text


def binary_free_text(text: str) -> str:
    """A tool output stored as it is (claude.md §5, codex.md §4.1; schema.md §3.4 rule 1), unless it is the
    JSON text of a value that carries file bytes (an MCP result serialised as a string: `{"content": [{"type":
    "image", "data": ...}]}`): then the same text with only those byte strings made `"<omitted>"` (rule 3: never
    stored), every other character as the source wrote it (`_omitted_in_place`). Where that edit cannot be shown
    to leave exactly the value without its bytes (a key written with escapes, a duplicate key), the canonical
    JSON of that value. Any other text is returned unchanged; only one that starts like JSON and names such a
    key is parsed."""
    if '"' not in text or _BINARY_KEY.search(text) is None:  # (a text without `"` names no key: one memchr)
        return text
    if _JSON_START.match(text) is None:  # (`Output:\n{…}`: JSON after some text, not parsed)
        return omit_loose_binary(text)
    exact = False
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = _refused_json(text)
        if value is _NOT_JSON:
            return omit_loose_binary(text)
        exact = True
    if value.__class__ is not dict and value.__class__ is not list:
        return text
    clean, changed = _without_binary_deep(value)
    if not changed:
        return text
    if not exact and not plain_json_types(clean):  # a float, or an integer orjson widened to one: json.loads
        value = _exact_numbers(text, value)
        clean = _without_binary_deep(value)[0]
    kept = _omitted_in_place(text, value, clean)
    return kept if kept is not None else canonical_json(clean)


# A key that may carry file bytes, then the start of its string value (group 1) and a run of base64 (group 2),
# in a text that looks like JSON but does not parse (a tool output cut at a size limit, text after the document,
# nesting past 1,024): the run ends at its first character that base64 has not, wherever the string ends; it
# goes on over a line break followed by more base64 (a payload wrapped at 76 columns).
_LOOSE_BINARY = re.compile(
    r'("(?:data|blob|file_data)"[ \t\n\r]*:[ \t\n\r]*")'
    r"((?:[A-Za-z0-9+/=_-]|\\[/nrt]|\r?\n(?=[A-Za-z0-9+/]))++)"
)
_LOOSE_MIN = 80  # (a 1×1 PNG is 92 characters of base64)
# Without its value's `type`, a run is taken for file bytes when it starts as the base64 of a known file format
# does (PNG, JPEG, GIF, PDF, RIFF: WebP/WAV, MP3 with ID3, Ogg, WebM/Matroska, an MP4/MOV box size) or is long
# enough that no name, path or identifier is (4,096 characters): a long path or identifier after a "data" key
# in an apply_patch input is text, and is kept.
_FILE_MAGIC = ("iVBOR", "/9j/", "R0lGOD", "JVBER", "UklGR", "SUQz", "T2dnUw", "GkXfo", "AAAA")
_LOOSE_LONG = 4096


def omit_loose_binary(text: str) -> str:
    """`text`, which names a key that may carry file bytes but is not JSON, with each such key's string value
    that is a run of base64 starting as a known file format does (`_FILE_MAGIC`, at least `_LOOSE_MIN`
    characters) or of `_LOOSE_LONG` characters made `<omitted>` (schema.md §3.4 rule 3: never stored, whatever
    the text around them; without the value's structure, its `type` cannot be read, so the run itself
    decides). Every other character is kept."""
    if _BINARY_KEY.search(text) is None:
        return text

    def omit(m: re.Match[str]) -> str:
        run = m.group(2)
        if len(run) < _LOOSE_MIN or (len(run) < _LOOSE_LONG and not run.startswith(_FILE_MAGIC)):
            return m.group(0)
        return m.group(1) + "<omitted>"

    return _LOOSE_BINARY.sub(omit, text)


# A key that may carry file bytes and its string value (group 1; unrolled and possessive, as `_B64_RE`: a value
# may be a 20 MB image), with the JSON whitespace allowed around the colon.
_BINARY_MEMBER = re.compile(r'"(?:data|blob|file_data)"[ \t\n\r]*:[ \t\n\r]*("[^"\\]*+(?:\\.[^"\\]*+)*+")')


def _omitted_in_place(text: str, value: Any, clean: Any) -> str | None:
    """`text` (the JSON of `value`) with the string of each `data`, `blob` or `file_data` member that
    `_without_binary` omitted written as `"<omitted>"`, and nothing else changed; None when the result does not
    read back as exactly `clean` with no duplicate key (a key spelt with escapes, `"d\\u0061ta"`, is not
    found; a duplicate could keep the bytes of the member JSON readers drop): the caller then stores
    canonical JSON."""
    omitted: set[str] = set()
    with json_depth_room():
        _collect_omitted(value, clean, omitted, 0)
    out: list[str] = []
    done = 0
    for m in _BINARY_MEMBER.finditer(text):
        if m.start() and text[m.start() - 1] == "\\":  # (the end of a key or string that holds `\"data`)
            continue
        token = m.group(1)
        if "\\" in token:
            try:
                string = orjson.loads(token)
            except orjson.JSONDecodeError:
                continue  # (a lone surrogate escape: left as it is, the check below decides)
        else:
            string = token[1:-1]
        if string in omitted:
            out.append(text[done : m.start(1)])
            out.append('"<omitted>"')
            done = m.end(1)
    out.append(text[done:])
    kept = "".join(out)
    try:
        back = stdlib_loads(kept, object_pairs_hook=_unique_keys)
    except ValueError:
        return None
    try:
        with json_depth_room():
            if SURROGATE_ESCAPE.search(kept):
                back = _clean_surrogates(back)
            same = back == clean
    except RecursionError:  # (`==` recurses: a value nested about 1,000 deep; canonical JSON then, as before)
        return None
    return kept if same else None


def _collect_omitted(value: Any, clean: Any, out: set[str], depth: int) -> None:
    """The strings of `value` that `_without_binary` made `<omitted>` in `clean` (an unchanged part of the value
    is the same object in both)."""
    if value is clean or depth > JSON_DEPTH:
        return
    if value.__class__ is list:
        for v, c in zip(value, clean, strict=False):
            _collect_omitted(v, c, out, depth + 1)
    elif value.__class__ is dict:
        for k, v in value.items():
            c = clean.get(k)
            if c == "<omitted>" and v.__class__ is str and v != c:
                out.add(v)
            else:
                _collect_omitted(v, c, out, depth + 1)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _without_binary_deep(value: Any) -> tuple[Any, bool]:
    """`_without_binary` with room for every level a parsed value can have (`JSON_DEPTH`): an image nested 201
    deep in a tool output was past its old cap of 200 levels and kept its bytes (schema.md §3.4 rule 3: never
    stored, at any depth)."""
    with json_depth_room():
        return _without_binary(value)


def _without_binary(value: Any, depth: int = 0) -> tuple[Any, bool]:
    """`value` with the bytes it carries replaced by `<omitted>`, and whether there were any: the `data` of
    a base64 source (`{"type": "base64", "data": ...}`, Anthropic images and documents), of an MCP `image`
    or `audio` content item and of an OpenAI `input_audio` object; the `blob` of an MCP resource (an object
    with a `uri` or `mimeType`); a `file_data` string. Recursive: call `_without_binary_deep`."""
    if depth > JSON_DEPTH:  # (no parsed value is deeper: both parsers refuse it)
        return value, False
    if value.__class__ is list:
        changed = False
        items = []
        for v in value:
            v, c = _without_binary(v, depth + 1)
            items.append(v)
            changed = changed or c
        return (items, True) if changed else (value, False)
    if value.__class__ is not dict:
        return value, False
    out: dict[str, Any] = {}
    changed = False
    for k, v in value.items():
        v, c = _without_binary(v, depth + 1)
        out[k] = v
        changed = changed or c
    data = value.get("data")
    if data.__class__ is str and data and value.get("type") in ("base64", "image", "audio"):
        out["data"] = "<omitted>"
        changed = True
    audio = out.get("input_audio")
    if audio.__class__ is dict and audio.get("data").__class__ is str and audio["data"] != "<omitted>":
        out["input_audio"] = {**audio, "data": "<omitted>"}
        changed = True
    blob = value.get("blob")
    if blob.__class__ is str and blob and ("uri" in value or "mimeType" in value):
        out["blob"] = "<omitted>"
        changed = True
    file_data = value.get("file_data")
    if file_data.__class__ is str and file_data:
        out["file_data"] = "<omitted>"
        changed = True
    return (out, True) if changed else (value, False)


def args_json(value: object) -> str | None:
    """Tool input as canonical JSON (binary payloads omitted, as above): a string that parses as JSON is
    stored as that JSON, any other string as a JSON string literal (schema.md §3.3 rule 3); absent: null."""
    if value is None:
        return None
    if value.__class__ is str:
        text: str = value  # type: ignore[assignment]
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = _refused_json(text)
            if parsed is not _NOT_JSON:
                value = parsed
            else:  # (stored as a string literal: its file bytes omitted all the same)
                value = omit_loose_binary(text)
        else:
            if not plain_json_types(value):  # a float, or an integer orjson widened to one: json.loads
                value = _exact_numbers(text, value)
    return binary_free_json(value)


_NOT_JSON = object()


def _refused_json(text: str) -> Any:
    """A text orjson refused, read as `parse_json_line` reads a line orjson refused, if it starts like an object
    or array: the stdlib reads an integer of over 308 digits (orjson: "number is infinity") and a lone surrogate
    escape ("\\ud83d", a string cut mid-emoji; made U+FFFD). `_NOT_JSON` when it is not JSON. Plain text (an
    apply_patch input) fails the first test at its first character."""
    if _JSON_START.match(text) is None:
        return _NOT_JSON
    try:
        value = stdlib_loads(text)
    except ValueError:
        return _NOT_JSON
    return clean_surrogates(value) if SURROGATE_ESCAPE.search(text) else value


def _exact_numbers(text: str, parsed: Any) -> Any:
    """`text` through the stdlib (claude.md §2 rule 3 says json.loads): orjson reads an integer beyond 64 bits
    as a float, which would store 1267650600228229401496703205377 as 1.2676506002282294e+30."""
    try:
        return stdlib_loads(text)
    except ValueError:
        return parsed


def expand_root(path: str, env: Mapping[str, str]) -> str:
    """A configured root made absolute, with `~` taken from `env["HOME"]` (so tests and the demo can point
    HOME elsewhere), else the process's home."""
    if path == "~" or path.startswith("~/") or path.startswith("~" + os.sep):
        path = user_home(env) + path[1:]
    else:
        path = os.path.expanduser(path)
    return os.path.abspath(path)


def line_blocks(
    read: Callable[[int], bytes], chunk_size: int, limit: int | None = None
) -> Generator[bytes | bytearray, None, bytes | bytearray]:
    """Read through `read(n)` in chunks of `chunk_size` (at most `limit` bytes in all) and yield blocks of whole
    lines, each ending with `\n`; the generator returns the bytes after the last newline. A line longer than
    a chunk (a chunk with no newline at all) is grown in one `bytearray` and yielded alone, as a block of that
    one line (`split_lines` then takes it as it is): appending to one `bytes` buffer copied it again for every
    chunk (quadratic), and keeping the chunks to join them at its newline held the line twice at the join and
    left the chunks' memory to the C heap afterwards (a 150 MB line: ~300 MB more at the peak, ~150 MB of it
    kept). A bytearray grows in place (for a large one, `realloc` remaps its pages). Lines up to a chunk long,
    across a chunk boundary or not, come in blocks of `bytes` as before."""
    tail: list[bytes] = []
    long: bytearray | None = None  # the line longer than a chunk being read
    got = 0
    while limit is None or got < limit:
        chunk = read(chunk_size if limit is None else min(chunk_size, limit - got))
        if not chunk:
            break
        got += len(chunk)
        if long is not None:
            first_nl = chunk.find(b"\n")
            if first_nl < 0:
                long += chunk
                continue
            long += memoryview(chunk)[: first_nl + 1]
            held, long = [long], None
            yield held.pop()  # (as below: no reference stays in this frame while the line is parsed)
            if first_nl == len(chunk) - 1:
                continue
            chunk = chunk[first_nl + 1 :]
        last_nl = chunk.rfind(b"\n")
        if last_nl < 0:
            if tail or len(chunk) == chunk_size:  # no newline in a whole chunk: a long line, grown in place
                long = bytearray().join(tail)
                tail.clear()
                long += chunk
            else:  # (a short read: the end of the file, or of what a pass reads)
                tail.append(chunk)
            continue
        tail.append(chunk if last_nl == len(chunk) - 1 else chunk[: last_nl + 1])
        rest = chunk[last_nl + 1 :]
        parts, tail = tail, [rest] if rest else []
        yield _joined(parts)  # not bound here: the block is freed as soon as the reader drops it
    if long is not None:
        long += b"".join(tail)
        return long
    return _joined(tail)


def split_lines(data: bytes | bytearray) -> tuple[list[bytes | bytearray], bytes]:
    """The complete lines of `data` (without their `\n`), last first as `feed_lines` takes them, and the
    bytes after the last `\n` (a final line without one, or b""). One C call: a find and a slice per line
    cost about 1 µs more each. A `bytearray` is a block `line_blocks` made of one long line: its newline is cut
    in place and the block itself is the line (a split would copy it)."""
    if data.__class__ is bytearray:
        if data.endswith(b"\n"):
            del data[-1:]
            return [data], b""
        data = bytes(data)
    lines = data.split(b"\n")
    rest = lines.pop()
    lines.reverse()
    return lines, rest


def feed_lines(
    feed: Callable[[bytes, int, int], bool], lines: list[bytes], at: int, limit: int | None = None
) -> tuple[int, bool]:
    """Hand `lines` (from `split_lines`; the first at file offset `at`) to `feed(line, offset, next_offset)`,
    taking each out of the list as it goes: no reference stays here, so the parser frees a long line once it
    has parsed it, before building its rows. At most `limit` lines when given (the rest stay in the list).
    Returns the offset after the last line consumed and whether `feed` stopped (an incremental pass at
    `until`; the list is then emptied)."""
    end = 0 if limit is None else max(0, len(lines) - limit)
    while len(lines) > end:
        after = at + len(lines[-1]) + 1
        if not feed(lines.pop(), at, after):
            lines.clear()
            return at, True
        at = after
    return at, False


def _joined(parts: list[bytes]) -> bytes:
    data = b"".join(parts)
    parts.clear()
    return data


def entry_realpath(real_dir: str, entry: os.DirEntry[str]) -> str:
    """`os.path.realpath(entry.path)` for an entry of the directory whose real path is `real_dir`, without an
    lstat of every component of the path for every file (20,000 transcripts took 2 s that way): a plain entry
    is `real_dir` plus its name; only a symlink is resolved."""
    if entry.is_symlink():
        return os.path.realpath(entry.path)
    return os.path.join(real_dir, entry.name)


_EUID = os.geteuid() if hasattr(os, "geteuid") else None


def readable(path: str, st: os.stat_result) -> bool:
    """`os.access(path, os.R_OK)` for a file just stat'ed, without a second system call per file where the
    mode answers it: a file of this user with its owner-read bit set (the owner's bits decide for the owner,
    ACLs included; root too, even without its capabilities). Anything else asks the system."""
    if _EUID is not None and st.st_uid == _EUID and st.st_mode & stat.S_IRUSR:
        return True
    return os.access(path, os.R_OK)


def nonempty_str(value: object) -> str | None:
    """Optional identifier columns hold null rather than "" (schema.md §3.4 rule 5)."""
    return value if value.__class__ is str and value != "" else None  # exact type: on every field


def id_list_json(message_id: str) -> str:
    """canonical_json([message_id]) (a previous_message_id list of one id), without the encoder for the usual
    plain ids: a printable string without `"` or `\\` is its own JSON text (the control characters JSON
    escapes are not printable; any other non-printable character takes the encoder, which gives the same
    text)."""
    if message_id.isprintable() and '"' not in message_id and "\\" not in message_id:
        return f'["{message_id}"]'
    return canonical_json([message_id])


def compact_dict(d: Mapping[str, Any]) -> dict[str, Any]:
    """Drop keys whose value is None, recursively for nested dicts built by us; empty dicts vanish."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            v = compact_dict(v)
            if not v:
                continue
        if v is None:
            continue
        out[k] = v
    return out


def compact_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """`attributes` without its null keys (schema.md §3.3 rule 2, §5): a namespace (`gateway`, `claude`,
    `codex`) drops its keys whose value is None, and vanishes when that leaves it empty. The values themselves
    are kept as they are: the objects the importers build there hold no null, and `codex.source` is the
    source's own value, verbatim (codex.md §3, schema.md §5), with its own nulls and empty objects (rule 3:
    native values keep their nulls)."""
    out: dict[str, Any] = {}
    for ns, v in attrs.items():
        if v.__class__ is dict:
            v = {k: x for k, x in v.items() if x is not None}
            if not v:
                continue
        elif v is None:
            continue
        out[ns] = v
    return out


def json_or_null(d: Mapping[str, Any] | None) -> str | None:
    """A built object (status, raw_frame) as canonical JSON, or null when it ends up empty (§3.3 rule 2)."""
    if d is None:
        return None
    d = compact_dict(d)
    return canonical_json(d) if d else None


def dumps_state(state: Any) -> str:
    """The parser state as JSON text. A state holding an integer beyond 64 bits (a verbatim value kept exact,
    see `exact_numbers_of_line`), which orjson refuses, is written by the stdlib after one space: the mark
    that tells `loads_state` to read it back with the stdlib too (orjson would make the integer a float)."""
    try:
        return orjson.dumps(state, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # (orjson.JSONEncodeError is TypeError)
        return " " + stdlib_dumps(state)


def loads_state(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    value = stdlib_loads(text[1:]) if text[0] == " " else orjson.loads(text)
    return value if isinstance(value, dict) and value else None


_orjson_loads = orjson.loads


def parse_json_line(raw: bytes) -> Any:
    """Parse one line's bytes. orjson first; on failure (invalid UTF-8 included) decode with replacement and
    try the stdlib, as claude.md §2 rule 3 says. Raises ValueError when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    text = raw.decode("utf-8", errors="replace")
    value = stdlib_loads(text)
    # orjson refuses lone surrogate escapes ("\ud83d" from a string cut mid-emoji); the stdlib keeps them as
    # code points that cannot be encoded as UTF-8. Replace them with U+FFFD.
    return clean_surrogates(value) if SURROGATE_ESCAPE.search(text) else value


# -- integers beyond 64 bits ---------------------------------------------------------------------------
#
# orjson reads an integer outside [-2**63, 2**64) as a float; the stdlib (claude.md §2 rule 3) keeps it exact.
# Finding them on every line would cost a walk of every parsed object, so the line's bytes stay reachable
# while its rows are built, and only a value that reaches the canonical JSON encoder with such a float in it
# (`schema._stdlib_json`: a float of 2**63 or more prints with "e+") has the line parsed again by the stdlib,
# once, and its floats replaced by the integers at the same places (`exact_numbers_of_line`). A line longer
# than `_KEEP_LINE` is not kept (its bytes are freed before its rows are built, see `Parser.feed`): its
# object is searched for such a float instead, at once (a long line is a few long strings: few values).
# Every verbatim value of a line is encoded while that line is handled, or kept exact in the parser state
# (Codex's `session_meta.source`, through `dumps_state`), so no later line needs an earlier one's bytes.

_KEEP_LINE = 8 * 1024 * 1024
_WIDE = float(2**63)  # a float of this magnitude or more may be an integer orjson widened
_MAX_NESTING = 1100  # deeper than either parser reads


class _Line:
    """The line (or whole document) being handled: its bytes (None for a long line), its orjson object,
    and, once asked for, its widened floats: id -> (the float, the stdlib's integer)."""

    __slots__ = ("raw", "obj", "found")

    def __init__(self) -> None:
        self.raw: bytes | None = None
        self.obj: Any = None
        self.found: dict[int, tuple[float, int]] | None = None

    def enter(self, raw: bytes, obj: Any) -> None:
        """`raw` parsed into `obj` is being handled (a line of any length, a whole document)."""
        self.obj = obj
        if len(raw) <= _KEEP_LINE:
            self.raw, self.found = raw, None
        else:
            with json_depth_room():  # (these walks recurse: a line nested 1,024 deep is read on every Python)
                self.raw, self.found = None, (_widened_ints(obj, raw) if _holds_wide_float(obj) else {})

    def leave(self) -> None:
        self.raw = self.obj = self.found = None


@contextmanager
def handling(raw: bytes, obj: Any) -> Iterator[None]:
    """While the objects of a whole document (`raw` parsed into `obj`) are handled one by one (`Parser.feed`
    does the same for each line)."""
    _LINE.enter(raw, obj)
    try:
        yield
    finally:
        _LINE.leave()


# One per process: lines are parsed on one thread at a time (parse workers are processes). Were two threads
# to parse at once, a float would only be missed (left as it is): the table holds its floats, so no other
# value can share their ids.
_LINE = _Line()


def exact_numbers_of_line(value: Any) -> Any:
    """`value` with the floats orjson made of the current line's big integers put back as those integers;
    `value` itself when it holds none (or outside a line). Installed as `schema.exact_numbers`."""
    line = _LINE
    with json_depth_room():  # (the walks below recurse, as deep as the line: 1,024 levels)
        found = line.found
        if found is None:
            raw = line.raw
            # (asked for any text with "e+", a string's too: the line is parsed again only for such a float)
            if raw is None or not _holds_wide_float(value if value.__class__ in (dict, list) else [value]):
                return value
            found = line.found = _widened_ints(line.obj, raw)
        return _put_back(value, found, 0) if found else value


def _holds_wide_float(value: Any, depth: int = 0) -> bool:
    if depth > _MAX_NESTING:
        return False
    for v in value.values() if value.__class__ is dict else value:
        vc = v.__class__
        if vc is float:
            if v >= _WIDE or v <= -_WIDE:
                return True
        elif (vc is dict or vc is list) and _holds_wide_float(v, depth + 1):
            return True
    return False


def _widened_ints(obj: Any, raw: bytes) -> dict[int, tuple[float, int]]:
    """The floats of `obj` (orjson's parse of `raw`) that the stdlib reads from `raw` as integers."""
    text = raw.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):  # (a whole document's byte order mark)
        text = text[1:]
    try:
        exact = stdlib_loads(text)
    except ValueError:
        return {}
    found: dict[int, tuple[float, int]] = {}
    _pair(obj, exact, found, 0)
    return found


def _pair(fast: Any, exact: Any, found: dict[int, tuple[float, int]], depth: int) -> None:
    """Walk the two parses of one text side by side (same keys, same lengths) and note each float of `fast`
    that is an int in `exact`."""
    if depth > _MAX_NESTING:
        return
    if fast.__class__ is dict:
        if exact.__class__ is not dict:
            return
        pairs: Any = ((v, exact.get(k)) for k, v in fast.items())
    elif fast.__class__ is list:
        if exact.__class__ is not list or len(exact) != len(fast):
            return
        pairs = zip(fast, exact, strict=True)
    else:
        return
    for f, e in pairs:
        fc = f.__class__
        if fc is float:
            if e.__class__ is int:
                found[id(f)] = (f, e)
        elif fc is dict or fc is list:
            _pair(f, e, found, depth + 1)


def _put_back(value: Any, found: dict[int, tuple[float, int]], depth: int) -> Any:
    """`value` with each float of `found` replaced by its integer; containers copied only where one changed."""
    cls = value.__class__
    if cls is float:
        hit = found.get(id(value))
        return hit[1] if hit is not None and hit[0] is value else value
    if depth > _MAX_NESTING:
        return value
    if cls is dict or cls is list:
        out = None
        for k, v in value.items() if cls is dict else enumerate(value):
            vc = v.__class__
            if vc is float or vc is dict or vc is list:
                nv = _put_back(v, found, depth + 1)
                if nv is not v:
                    if out is None:
                        out = cls(value)  # (a copy: the parsed object is left as it is)
                    out[k] = nv
        return value if out is None else out
    return value


schema.exact_numbers = exact_numbers_of_line


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate made U+FFFD, with room for every level a parsed value can have: a line
    nested 500 deep that held one ran out of recursion, and the whole file failed."""
    with json_depth_room():
        return _clean_surrogates(value)


def _clean_surrogates(value: Any) -> Any:
    # (loops, not comprehensions: one frame a level on 3.11 too)
    if isinstance(value, str):
        if _SURROGATE.search(value):
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, list):
        items = []
        for v in value:
            items.append(_clean_surrogates(v))
        return items
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out[_clean_surrogates(k)] = _clean_surrogates(v)
        return out
    return value


# --------------------------------------------------------------------------------------------- parser


class Parser(ABC):
    """One pass over one file.

    The reader calls `feed(line, offset, next_offset)` for each complete line (the bytes without the `\\n`)
    in file order, `finish()` at the end of a whole-document read, and `drain()` / `checkpoint()` whenever it
    wants to commit. Subclasses implement `handle(obj, offset)` and `own_timestamp(obj)`; they keep *all*
    resumable state in `self.state` (JSON-able), and hand finished rows to `self.emit(rows)`.

    Timestamp holding (schema.md §3.2 rule 3) is generic: a subclass that builds a row before any timestamp
    is known sets `message_created_at` (and, if unknown, `conversation_started_at`) to None and calls
    `emit`; the parser then holds those rows and every later row until a timestamp arrives through
    `note_timestamp`, and `checkpoint()` points at the first held line with the state from before it.
    """

    #: key in `self.state` holding the last parseable timestamp (µs) seen in the file
    LAST_TS = "last_ts"

    def __init__(
        self,
        file: SourceFile,
        state: dict[str, Any] | None,
        window: Window,
        stats: ParseStats,
        *,
        whole: bool = False,
    ) -> None:
        self.file = file
        self.window = window
        self.stats = stats
        self.whole = whole
        self.state: dict[str, Any] = state if state else self.fresh_state()
        # The window's bounds for a line and a row, as `feed` and `_accept` test them (the window is frozen):
        # `until` does not stop a whole-document read; rows later than `far` are kept whatever it says.
        self._since_us = window.since_us
        self._until_us = None if whole else window.until_us
        self._far_us = None if self._until_us is None else window.beyond_until
        self._ready: list[Row] = []
        self._held: list[Row] = []
        self._hold_snapshot: tuple[int, str] | None = None  # (offset, state JSON) before the first held line
        self._hold_stats: ParseStats | None = None  # the counts from before the first held line
        # The held rows in emission order, in runs of (rows, the line they belong to): a line whose rows were
        # all held is judged (outside_window, schema.md §7) when they are released. A line is [its rows kept
        # so far, whether it awaits that verdict].
        self._held_marks: list[tuple[int, list[Any]]] = []
        self._line_group: list[Any] | None = None
        self._line_held = 0
        self._pre_line_stats: ParseStats | None = None
        self._offset = 0  # end of the last consumed line
        self._line_rows = 0
        self._line_kept = 0
        self._pre_line_state: str | None = None

    # -- to implement -------------------------------------------------------------------------------------

    @abstractmethod
    def fresh_state(self) -> dict[str, Any]:
        """The state of a file read from offset 0."""

    @abstractmethod
    def handle(self, obj: dict[str, Any], offset: int) -> None:
        """Process one parsed JSON object (a line, or an item of a whole document). Count skip reasons for
        lines that yield no row by nature; call `emit` for rows."""

    def own_timestamp(self, obj: dict[str, Any]) -> int | None:
        """The line's own timestamp (µs), used to stop an incremental pass at `until`."""
        return None

    def count_type(self, key: str) -> None:
        self.stats.records_by_type[key] += 1

    def on_release(self, ts: int) -> None:  # noqa: B027 (an optional hook)
        """Called when held rows get their inherited-later timestamp (fix per-thread start times here)."""

    # -- timestamps ---------------------------------------------------------------------------------------

    def note_timestamp(self, ts: int) -> None:
        """Record a parseable timestamp (in file order) and release held rows with it."""
        self.state[self.LAST_TS] = ts
        if self._held:
            self._release(ts)

    def inherited_ts(self) -> tuple[int | None, str | None]:
        """For a record without its own timestamp: (ts, timestamp_source) per schema.md §3.2, or
        (None, "inherited_later") when it must be held."""
        last = self.state.get(self.LAST_TS)
        if last is not None:
            return last, "inherited_earlier"
        return None, "inherited_later"

    # -- rows ---------------------------------------------------------------------------------------------

    def emit(self, rows: list[Row]) -> None:
        """Hand over built rows. Rows with a pending timestamp (None), and everything after them while
        anything is held, wait; the rest is finalized and window-filtered."""
        if not rows:
            return
        self._line_rows += len(rows)
        if not self._held:
            for r in rows:
                if r.get("message_created_at") is None:
                    break
            else:
                self._accept(rows)
                return
        if not self._held and self._hold_snapshot is None:
            self._hold_snapshot = (self._current_offset, self._pre_line_state or dumps_state(self.state))
            self._hold_stats = self._pre_line_stats or self.stats.copy()
        self._held.extend(rows)
        if self._line_group is None:
            self._line_group = [0, True]
        self._held_marks.append((len(rows), self._line_group))
        self._line_held += len(rows)  # the line is judged when these are released

    def _accept(self, rows: list[Row]) -> None:
        since, until = self._since_us, self._until_us
        stats, ready = self.stats, self._ready
        if since is None and until is None:  # everything in the window (a full import)
            for r in rows:  # (every row here has its timestamp: `emit` held the others)
                stats.rows_built += 1
                self._line_kept += 1
                ready.append(finalize_row(r))
            return
        far = self._far_us
        for r in rows:
            ts = r["message_created_at"]
            stats.rows_built += 1
            if (since is not None and ts < since) or (until is not None and until < ts and (far is None or ts <= far)):
                continue
            self._line_kept += 1
            ready.append(finalize_row(r))

    def _release(self, ts: int) -> None:
        self.on_release(ts)
        for r in self._held:
            if r.get("message_created_at") is None:
                r["message_created_at"] = ts
                attrs = r.setdefault("attributes", {})
                attrs.setdefault("gateway", {})["timestamp_source"] = "inherited_later"
            if r.get("conversation_started_at") is None:
                r["conversation_started_at"] = ts
        self._accept_held()

    def _accept_held(self) -> None:
        """Accept the held rows (their timestamps now set) and judge the lines they came from: a line none
        of whose rows is kept counts as outside_window. The line being handled keeps its own count."""
        held, marks = self._held, self._held_marks
        self._held, self._held_marks = [], []
        self._hold_snapshot = self._hold_stats = None
        kept_now = self._line_kept
        ready, at = self._ready, 0
        for n, line in marks:
            before = len(ready)
            self._accept(held[at : at + n])
            at += n
            line[0] += len(ready) - before
        self._line_kept = kept_now
        for line in {id(line): line for _, line in marks}.values():
            if line[1] and not line[0]:
                self.stats.lines_skipped["outside_window"] += 1

    # -- the reader's side --------------------------------------------------------------------------------

    def feed(self, line: bytes, offset: int, next_offset: int) -> bool:
        """Consume one complete line (without its `\\n`). Returns False, consuming nothing, when an
        incremental pass must stop here because the line's own timestamp is later than `until`."""
        if offset == 0 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if line.endswith(b"\r"):
            line = line[:-1]
        self._current_offset = offset
        if not line or line.isspace():  # (not `strip()`: that copied every line)
            self._consumed(next_offset)
            return True
        try:
            obj = _orjson_loads(line)  # (`parse_json_line`'s first try, without its call; it does the rest)
        except orjson.JSONDecodeError:
            try:
                obj = parse_json_line(line)
            except (ValueError, RecursionError):  # (RecursionError: a last guard; the walks have room for 1,024)
                obj = None
        if not isinstance(obj, dict):  # not JSON, or not an object: every line has a records_by_type key
            self.count_type("unknown")
            self.stats.lines_skipped["malformed"] += 1
            self._consumed(next_offset)
            return True
        # The bytes stay where the encoder can parse them again for an integer beyond 64 bits (`_Line`),
        # unless the line is long: with the reader's reference gone too (it hands each line over and keeps
        # none), a long line's bytes are freed here, before its objects are turned into rows.
        cur = _LINE
        if len(line) <= _KEEP_LINE:  # (`_Line.enter` written out: this runs for every line)
            cur.raw, cur.obj, cur.found = line, obj, None
        else:
            cur.enter(line, obj)
        del line
        try:
            until = self._until_us
            if until is not None:
                own = self.own_timestamp(obj)
                # (`own <= until`: `stops_before`'s own first test, without its call for every line)
                if own is not None and own > until and self.window.stops_before(own):
                    return False
            self.handle_object(obj, offset)
        finally:
            cur.raw = cur.obj = cur.found = None
        self._offset = next_offset  # (`_consumed`, written out)
        return True

    def start_at(self, offset: int) -> None:
        """The pass resumes at `offset` (a line start): the checkpoint offset until a line is consumed."""
        self._offset = offset

    def handle_object(self, obj: dict[str, Any], offset: int | None) -> None:
        """Run `handle` with the per-line bookkeeping (outside_window counting, hold snapshot)."""
        self._line_rows = self._line_kept = self._line_held = 0
        self._line_group = None
        self._current_offset = offset if offset is not None else self._offset
        if self.state.get(self.LAST_TS) is None:  # (only then can this line start holding rows)
            self._pre_line_state, self._pre_line_stats = dumps_state(self.state), self.stats.copy()
        self.handle(obj, offset)  # type: ignore[arg-type]
        self.judge_line()
        self._pre_line_state = self._pre_line_stats = None

    def judge_line(self) -> None:
        """The outside_window verdict on the rows emitted since the line counters were zeroed (schema.md
        §7): none kept and none held -> counted now; some held, none kept -> when they are released."""
        if self._line_group is not None:
            self._line_group[1] = not self._line_kept  # rows of it already kept: no verdict pending
            self._line_group = None
        elif self._line_rows and not self._line_kept:
            self.stats.lines_skipped["outside_window"] += 1

    def _consumed(self, next_offset: int) -> None:
        self._offset = next_offset

    def finish(self) -> None:
        """End of a whole-document read: held rows take the epoch (schema.md §3.2 rule 4)."""
        self.flush_pending()
        if self._held:
            for r in self._held:
                if r.get("message_created_at") is None:
                    r["message_created_at"] = 0
                    r.setdefault("attributes", {}).setdefault("gateway", {})["timestamp_source"] = "epoch"
                if r.get("conversation_started_at") is None:
                    r["conversation_started_at"] = 0
            self._accept_held()

    def flush_pending(self) -> None:  # noqa: B027 (an optional hook)
        """Whole-document end hook for importer-held rows (e.g. a Codex candidate). Override."""

    def drain(self) -> list[Row]:
        rows, self._ready = self._ready, []
        return rows

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    def checkpoint(self, *, final: bool = False) -> tuple[int, str]:
        """(offset, parser_state JSON) to resume from: the end of the last consumed line, or the start of
        the first held line with the state from before it. `final`: the pass ends here; while rows are
        held, the lines from the first held one on are not consumed (the next pass reads them again), so
        their counts are taken back (schema.md §3.2 rule 3: counted once, when consumed)."""
        if self._hold_snapshot is not None:
            if final and self._hold_stats is not None:
                self.stats.restore(self._hold_stats)
            self.stats.rows_held = len(self._held)
            return self._hold_snapshot
        self.stats.rows_held = len(self._held)
        return self._offset, dumps_state(self.state)


# The columns that hold source content, stripped of data URIs (schema.md §3.4 rule 3: image bytes are never
# stored): the part's text, the JSON the source wrote (tool input, compaction metadata) or the importer built from
# it (status with an error message, attributes), and the v1-null system prompt and tool declarations.
# Never an identity or naming column: ids (`message_id`, `part_id`, `session_id`, `parent_uuid`,
# `tool_call_id`, `tool_result_for`, ...) are native values kept verbatim (§4.2, §4.4, §4.6), and names, models,
# versions, paths, hashes and dates are not content. Nor `raw_frame`: "ids, types and timestamp only, never
# content" (§3 col 60; claude.md §4.2: uuid, parentUuid, type, subtype, message.id, requestId, timestamp; codex.md:
# timestamp, type and the item's type, role, id, call_id), so its ids stay as the id columns hold them.
_CONTENT_COLUMNS = (
    "system_text", "tools", "content_text", "tool_args", "compact_metadata", "status", "attributes",
)  # fmt: skip


def strip_base64_row(r: Row) -> Row:
    """`r` with the data URIs of its content columns omitted (`strip_base64`), in place: for rows kept in a
    parser state (the Codex candidate), so that no payload is saved there either. (A column still held as a
    dict, the `attributes` of a row not yet finalized, holds header values the state keeps anyway.)"""
    for k in _CONTENT_COLUMNS:
        v = r.get(k)
        if v.__class__ is str and ";" in v and "64," in v:  # (as in `finalize_row`)
            r[k] = strip_base64(v)
    return r


def finalize_row(r: Row) -> Row:
    """Turn a built row into its stored form: JSON columns as canonical text, `date` from the timestamp,
    and no inline base64 in any content column (schema.md §3.4 rule 3: never stored in any column, so not only
    content_text is stripped: an API error's `status.error_message`, tool arguments, attributes, compaction
    metadata are source text too; ids and names are kept verbatim, see `_CONTENT_COLUMNS`)."""
    get = r.get
    attrs = get("attributes")
    if attrs.__class__ is not str and isinstance(attrs, dict):  # (most rows carry pre-serialized text)
        r["attributes"] = canonical_json(compact_attributes(attrs))
    v = get("status")
    if v is not None and v.__class__ is not str and isinstance(v, dict):
        r["status"] = json_or_null(v)
    v = get("raw_frame")
    if v is not None and v.__class__ is not str and isinstance(v, dict):
        r["raw_frame"] = json_or_null(v)
    # (all serialized now; `64,` is strip_base64's own test, without the call. `;` first: every data URI has one
    # before its `base64,`, and a one-character test is a memchr, ~70x faster than the scan for `64,`)
    for k in _CONTENT_COLUMNS:
        v = get(k)
        if v.__class__ is str and ";" in v and "64," in v:
            r[k] = strip_base64(v)
    us = r["message_created_at"]
    r["date"] = DATE_CACHE.get(us // US_PER_DAY) or us_to_date(us)  # (us_to_date's memo, without its call)
    return r


# --------------------------------------------------------------------------------------------- importer


class Importer(ABC):
    """One client. Stateless: everything per file lives in `Parser` state and checkpoints."""

    name: str  # "claude" | "codex"  (= client_name = partition source)
    display_name: str  # "Claude Code" | "Codex"
    provider: str  # "anthropic" | "openai"

    @abstractmethod
    def roots(self, config_root: str | None, env: Mapping[str, str]) -> list[str]:
        """Candidate roots in order (absolute, `~` expanded). Existence is not checked here."""

    def detect(self, config_root: str | None, env: Mapping[str, str]) -> Detection:
        """Detected = at least one root exists and is readable (wizard.md §5)."""
        roots = self.roots(config_root, env)
        first_reason = None
        for root in roots:
            if os.path.isdir(root):
                if os.access(root, os.R_OK | os.X_OK):
                    return Detection(True, root, None, tuple(roots))
                first_reason = first_reason or f"not readable: {root} (permission denied)"
            elif is_link_loop(root):
                first_reason = first_reason or (
                    f"not readable: {root} (a symbolic link loop: remove or fix the link)"
                )
            elif (target := dangling_link_target(root)) is not None:  # (its drive not mounted: not "not found")
                first_reason = first_reason or (
                    f"not readable: {root} (a symbolic link to {target}, which does not exist: mount its drive "
                    "or fix the link)"
                )
            else:
                first_reason = first_reason or f"not found: {root} does not exist"
        if not roots:
            return Detection(False, None, "no root configured", ())
        return Detection(False, roots[0], first_reason, tuple(roots))

    @abstractmethod
    def discover(self, roots: list[str]) -> Discovery:
        """Every history file under the roots, in processing order (deduplicated by real path)."""

    @abstractmethod
    def new_parser(
        self, file: SourceFile, state: dict[str, Any] | None, window: Window, stats: ParseStats
    ) -> Parser:
        """A parser for one incremental pass (state None = from offset 0)."""

    def prepare_fresh_state(self, file: SourceFile) -> dict[str, Any] | None:
        """Called when a pass starts from offset 0 (no checkpoint, or a reset): capture anything that must
        be frozen into the state (the Claude sidecar). Return None for the parser's default fresh state."""
        return None

    def read_whole(self, file: SourceFile, window: Window, stats: ParseStats) -> tuple[Parser, int]:
        """Whole-document files (storage.md §5.3): read and feed the whole document with a fresh state,
        call `finish()`, and return (parser, bytes_read). Only importers with whole-mode files implement it."""
        raise NotImplementedError(f"{self.name} has no whole-document files")

    def read_whole_batches(
        self, file: SourceFile, window: Window, stats: ParseStats, *, batch_bytes: int | None = None
    ) -> Iterator[tuple[list[Row], int]]:
        """`read_whole` as it goes: `(rows ready so far, bytes of the file consumed)`, the last pair after
        `finish()`. The concatenated rows are exactly `read_whole`'s. An importer whose documents can be
        streamed yields about every `batch_bytes` of input, so memory does not grow with the document; this
        default reads the whole document, then yields once."""
        parser, bytes_read = self.read_whole(file, window, stats)
        yield parser.drain(), bytes_read

    @abstractmethod
    def inventory_file(self, file: SourceFile, size: int, mtime_ns: int) -> FileInventory:
        """First/last timestamps from a bounded head and tail of the file (never the whole file)."""

    def last_timestamp(self, file: SourceFile, size: int, mtime_ns: int) -> int | None:
        """The last timestamp of the file as its inventory finds it (`FileInventory.last_ts`: the bounded tail's,
        None when none was found there), for an import that has no inventory (`hyp backfill`) and must tell
        whether a file ends before its window (`runner._run_provider`). The same scan as `inventory_file`; an
        importer whose scan has a cheaper tail-only form overrides this. May raise OSError."""
        return self.inventory_file(file, size, mtime_ns).last_ts

    #: whether `reading_order` may reorder the files a pass reads (callers skip the work for one that does not)
    reorders_reads = False

    def reading_order(
        self, files: list[SourceFile], known: Mapping[str, FileInventory] | None = None
    ) -> list[int] | None:
        """The order in which one pass (a backfill, the setup import, a daemon pass) reads `files`, the files it
        opens, in discovery order: indices into `files`, or None for discovery order. `known`: inventory entries
        by path hash, whose timestamps an importer may reuse for a file whose stat has not changed since. Only
        the files to read are given, so that an importer may look into each (a rerun that finds nothing new
        opens nothing for it). The same files must come back in the same order: the committer keeps the first
        copy of a `part_id` (schema.md §4.6)."""
        return None

    def session_key(self, file: SourceFile) -> str:
        """What counts as one session in inventories (a top-level file by default)."""
        return file.path_hash


# --------------------------------------------------------------------------------------------- inventory

HEAD_TAIL_BYTES = 256 * 1024
#: the most `tail_timestamp(further=True)` reads of a file at once (256 KB, 2 MB, 16 MB)
TAIL_FURTHER_MAX = 32 * 1024 * 1024


def _scan_timestamp(chunk: bytes, line_ts: Callable[[dict[str, Any]], int | None], *, reverse: bool) -> int | None:
    """The first (`reverse`: the last) timestamp of the complete JSON lines of `chunk`."""
    lines = chunk.split(b"\n")
    for raw in reversed(lines) if reverse else lines:
        raw = raw.strip()
        if not raw or raw[:1] != b"{":
            continue
        try:  # (as the import reads it: a line orjson refuses, a lone surrogate escape or invalid UTF-8 in
            # it, is a line of the file all the same; skipped here, an older stamp stood for the file's last)
            obj = parse_json_line(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            ts = line_ts(obj)
            if ts is not None:
                return ts
    return None


def _tail(fh: BinaryIO, size: int, span: int) -> bytes:
    """The complete lines of the last `span` bytes of a file of `size` bytes (all of it when not longer)."""
    if size <= span:
        fh.seek(0)
        return fh.read(size)
    fh.seek(size - span)
    tail = fh.read(span)
    return tail[tail.find(b"\n") + 1 :]


def head_tail_timestamps(
    path: str, size: int, line_ts: Callable[[dict[str, Any]], int | None], *, span: int = HEAD_TAIL_BYTES
) -> tuple[int | None, int | None]:
    """First and last timestamps found in the first and last `span` bytes of a JSONL file.

    Only complete lines inside each window are parsed (the first and last lines of a file often carry no
    timestamp, so several are tried). Never reads more than 2 × span bytes."""
    with open(path, "rb") as fh:
        head = fh.read(min(size, span))
        first = _scan_timestamp(head if size <= span else head[: head.rfind(b"\n") + 1], line_ts, reverse=False)
        last = _scan_timestamp(head if size <= span else _tail(fh, size, span), line_ts, reverse=True)
    return first, last


def tail_timestamp(
    path: str, size: int, line_ts: Callable[[dict[str, Any]], int | None], *, span: int = HEAD_TAIL_BYTES,
    further: bool = False,
) -> int | None:
    """`head_tail_timestamps(...)[1]` without reading the head: the last timestamp of the last `span` bytes.
    `further`: when those hold none (a last line longer than `span`, a long answer or tool result, followed by
    untimestamped records), look 8 times further back, and so on up to the whole file or `TAIL_FURTHER_MAX`
    bytes (memory stays bounded whatever the file's size; past that, None)."""
    with open(path, "rb") as fh:
        while True:
            ts = _scan_timestamp(_tail(fh, size, span), line_ts, reverse=True)
            if ts is not None or not further or span >= size or span * 8 > TAIL_FURTHER_MAX:
                return ts
            span *= 8
