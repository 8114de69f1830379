"""The events log, `<HYP_HOME>/logs/events.jsonl` (storage.md §10).

One JSON object per line, appended with O_APPEND (one `write` per event, so concurrent writers never
interleave within a line), mode 0600, rotated at 10 MiB into `events.jsonl.1` … `.3`. A disabled log
(dry runs) writes nothing and creates nothing. Events never carry message content or raw source paths.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypaware_tui.core import prog
from hypaware_tui.core.paths import (
    FILE_MODE,
    Layout,
    ensure_dir,
    file_in_the_way,
    not_writable_hint,
    read_only_fs_hint,
    read_tail,
)
from hypaware_tui.core.schema import DATASET_NAME, utf8_json

MAX_BYTES = 10 * 1024 * 1024
KEEP = 3


def utc_now_iso_ms() -> str:
    """UTC ISO-8601 with milliseconds and `Z`."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class EventLog:
    """Appends events for one run. `dev_run_id` is `$DEV_RUN_ID`, else `run_id`."""

    def __init__(self, layout: Layout, run_id: str, *, enabled: bool, max_bytes: int = MAX_BYTES,
                 report: Callable[[str], None] | None = None) -> None:
        self.layout = layout
        self.run_id = run_id
        self.enabled = enabled
        self.max_bytes = max_bytes
        self.dev_run_id = os.environ.get("DEV_RUN_ID") or run_id
        self.last_error: OSError | None = None  # logging never fails the operation; the error is kept here
        # Where a log that cannot be written is said, once per process and log (`unwritable_log_message`):
        # a command's stderr by default; the daemon passes its log.
        self.report = report

    @property
    def path(self) -> Path:
        return self.layout.events_log

    def emit(self, event: str, *, provider: str | None = None, **fields: Any) -> dict[str, Any] | None:
        """Append one event. Returns the record (None when disabled)."""
        if not self.enabled:
            return None
        record = self._record(event, provider, fields)
        self._append(self._line(record))
        return record

    def emit_many(self, events: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]] | None:
        """Append several events, each `(event, the keyword arguments of emit)`, in order: the same lines as
        one `emit` each, in one write (the lines of a commit: a partition's `backfill.write` each, then its
        `backfill.flush`, without an open, stats and a close per line). Returns the records (None when
        disabled)."""
        if not self.enabled:
            return None
        records: list[dict[str, Any]] = []
        for event, fields in events:
            rest = dict(fields)
            records.append(self._record(event, rest.pop("provider", None), rest))
        if records:
            self._append(b"".join(self._line(r) for r in records))
        return records

    def _record(self, event: str, provider: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "ts": utc_now_iso_ms(),
            "event": event,
            "dev_run_id": self.dev_run_id,
            "dataset": DATASET_NAME,
        }
        if provider is not None:
            record["provider"] = provider
        record.update(fields)
        return record

    @staticmethod
    def _line(record: dict[str, Any]) -> bytes:
        # (utf8_json: a message quoting a path that is not UTF-8 crashed the encode, and the command with it)
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        return (utf8_json(text) + "\n").encode()

    def _append(self, line: bytes) -> None:
        """Append whole lines in one `write` (never interleaved with another writer's within a line)."""
        try:
            ensure_dir(self.path.parent)
            self._rotate_if_needed(len(line))
            flags = os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
            try:
                fd, readable = os.open(self.path, os.O_RDWR | flags, FILE_MODE), True
            except PermissionError:  # (a log made write-only by hand: appended to, unchecked, as before)
                fd, readable = os.open(self.path, os.O_WRONLY | flags, FILE_MODE), False
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise OSError(errno.EINVAL, "it is not a regular file", str(self.path))
                # A last line cut by a crash mid-write ends without "\n": this event would be appended to it,
                # and both lost to every reader. It starts a line of its own (one write: never interleaved).
                if readable and st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
                    line = b"\n" + line
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            self.last_error = exc
            self._report(exc)

    def _report(self, exc: OSError) -> None:
        """Say once per process (and log file) that events cannot be recorded: every writer dropped every
        event silently, and `hyp status`, `hyp cache status` went on showing the last ones that were."""
        key = str(self.path)
        with _reported_lock:
            if key in _reported:
                return
            _reported.add(key)
        message = unwritable_log_message(self.path, self.layout.home, exc)
        with contextlib.suppress(Exception):
            if self.report is not None:
                self.report(message)
            else:
                sys.stderr.write(f"hyp: {message}\n")
                sys.stderr.flush()

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + incoming <= self.max_bytes:
            return
        for i in range(KEEP - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        with contextlib.suppress(FileNotFoundError):  # another process may have rotated it just now
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))


_reported: set[str] = set()
_reported_lock = threading.Lock()


def unwritable_log_message(path: Path, home: Path, exc: OSError) -> str:
    """One line: the events log cannot be written, why, and what to do."""
    if os.path.isdir(path):
        why, todo = "it is a directory", f"Move {path} away"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST) and (where := file_in_the_way(path.parent, home, itself=True)):
        why, todo = f"{where} is not a directory", f"Move {where} away"
    elif exc.errno == errno.EINVAL and exc.strerror == "it is not a regular file":
        why, todo = exc.strerror, f"Move {path} away"
    elif exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        why, todo = exc.strerror or str(exc), "Free some disk space"
    elif exc.errno == errno.EROFS:
        why, todo = exc.strerror or str(exc), read_only_fs_hint().rstrip(".")
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why, todo = exc.strerror or str(exc), not_writable_hint(home).rstrip(".")
    else:
        why, todo = exc.strerror or str(exc), "Until that is fixed"
    then = "; until then" if todo != "Until that is fixed" else ""
    return (f"cannot write the events log {path}: {why}. {todo}{then} hyp records no events (the history that "
            f"{prog.NAME} status and {prog.NAME} cache status show).")


def _log_files(layout: Layout) -> list[Path]:
    """Newest first: events.jsonl, .1, .2, .3."""
    base = layout.events_log
    return [base] + [base.with_name(f"{base.name}.{i}") for i in range(1, KEEP + 1)]


def iter_events_reversed(layout: Layout, *, max_bytes: int = 4 * 1024 * 1024) -> Iterator[dict[str, Any]]:
    """Events newest first, reading at most `max_bytes` in total from the end of the logs. Read-only;
    unparseable lines are skipped."""
    budget = max_bytes
    for path in _log_files(layout):
        if budget <= 0:
            return
        try:
            lines = read_tail(path, budget)
        except OSError:
            continue
        budget -= sum(len(line) + 1 for line in lines)
        for raw in reversed(lines):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj


def last_event_times(layout: Layout, names: Iterable[str]) -> dict[str, str | None]:
    """The `ts` of the most recent event of each name (None when not found), searched through every log,
    rotated ones included: a pass that ran weeks ago may sit under 10 MiB of later imports. Each log is read
    whole (at most 10 MiB) and searched from its end for the name's key, without parsing the other lines."""
    found: dict[str, str | None] = dict.fromkeys(names)
    for path in _log_files(layout):
        missing = [n for n, ts in found.items() if ts is None]
        if not missing:
            break
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for name in missing:
            found[name] = _last_ts_of(data, name)
    return found


def _last_ts_of(data: bytes, name: str) -> str | None:
    key = b'"event":' + json.dumps(name).encode()
    end = len(data)
    while (at := data.rfind(key, 0, end)) >= 0:
        start = data.rfind(b"\n", 0, at) + 1
        stop = data.find(b"\n", at)
        try:
            obj = json.loads(data[start : stop if stop >= 0 else len(data)])
        except ValueError:
            obj = None
        if isinstance(obj, dict) and obj.get("event") == name and isinstance(obj.get("ts"), str):
            return obj["ts"]
        end = start
    return None
