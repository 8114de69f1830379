"""`hyp daemon run`: the capture daemon's foreground loop (daemon.md §4).

New complete lines go through exactly the code a backfill uses: `Importer.discover`, the generic reader
(`core.runner.iter_file` over `core.reader.FilePass`, with the stored checkpoint) and `Storage.commit`
(rows, then checkpoints). A line therefore yields the same rows (same `part_id`) whichever path imports it.

Window per file (daemon.md §2): with a checkpoint, everything after it not before the import floor; without
one, lines newer than `capture_since(client) - 5 min` and not before the floor. No `until`.

The loop is a sequence of `step()` calls, each doing whatever is due (events, polls, rescans, file reads,
flushes, status heartbeat, retention) and returning the next deadline, so tests drive it deterministically
with a fake clock; `run()` adds the pid lock, signals and the waiting between steps.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import select
import signal
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypaware_tui import __version__
from hypaware_tui.core.checkpoints import (
    Checkpoint,
    CheckpointUpdate,
    StateDB,
    StateDBError,
    dir_identity,
    earlier_bound,
    roots_hash,
)
from hypaware_tui.core.daemon import capture as capture_mod
from hypaware_tui.core.daemon import control, memory, settings
from hypaware_tui.core.daemon import watch as watch_mod
from hypaware_tui.core.daemon.settings import DaemonSettings
from hypaware_tui.core.daemon.watch import PollingWatcher, Watcher, describe_watch_error, make_watcher
from hypaware_tui.core.paths import (
    READ_ONLY_FS,
    Layout,
    PanicError,
    directory_in_the_way_message,
    file_size_cause,
    home_moved_message,
    likely_file_size_cause,
    panics_as_errors,
    set_umask,
    too_many_files_advice,
)
from hypaware_tui.core.schema import SchemaError
from hypaware_tui.core.timeutil import parse_iso_us
from hypaware_tui.core.window import cut_date, import_floor_us
from hypaware_tui.importers.base import Importer, ParseStats, Row, SourceFile, Window

log = logging.getLogger("hypaware_tui.daemon")

HEARTBEAT_S = control.HEARTBEAT_S
# A batch is also committed once the history its rows came from reaches this (besides `flush_rows` rows): 2,000
# rows of tool results of ~800 KB held 700 MB before a flush (daemon resources audit). As a backfill's batches
# (`runner.BATCH_BYTES`), a few of them.
FLUSH_BYTES = 32 * 1024 * 1024
DEBOUNCE_S = 0.5
BACKOFF_START_S = 5.0
BACKOFF_MAX_S = 60.0
DB_OPEN_WAIT_S = 2.0  # one try at the locked checkpoint database; then a wait that a stop can interrupt
RETENTION_EVERY_S = 24 * 3600.0
SIDECAR_WAIT_S = 30.0
MEMO_EVICT_EVERY_S = 60.0
# A pass that read this much history (the catch-up at start, a client added by a reload, a burst of appends) is
# followed, once its rows are committed, by `memory.release()`: what it parsed stays in the C heap otherwise, and
# the daemon then idles for weeks at its peak. (The release costs a few ms, nothing next to parsing 4 MiB.)
RELEASE_AFTER_BYTES = 4 * 1024 * 1024
#: ends a message about a file or folder named by its path hash (the log and status hold no path, storage.md §10):
#: the command that shows the path, run as the daemon's user (it lists the same history)
FIND_PATH = " Run hyp backfill --dry-run to see its path."


def with_find_path(message: str) -> str:
    """`message` ended as a sentence, then `FIND_PATH` (a reader error such as "cannot read file: Permission
    denied" has no full stop of its own)."""
    message = message.rstrip()
    return message + ("" if message.endswith((".", "!", "?")) else ".") + FIND_PATH
# A partition the daemon keeps writing to (today's, while a session runs) gets a new file at every flush, up
# to one per `flush_seconds`: a busy day would leave thousands of small files that every query must open.
# Once a partition it wrote to has this many files, it is compacted (storage.md §8); the daily pass compacts
# every partition with more than one.
COMPACT_AT_FILES = 64
# The daily pass's compaction of every partition waits this long after the daemon started. `hyp init` starts
# the daemon right after its import, whose files the first pass would compact at once, one partition after
# another for seconds: just when the Done screen's first look and the user's first `hyp query` read the
# dataset, and a file vanishing under a query twice makes it fail (it retries once, storage.md §9).
COMPACT_AFTER_START_S = 15 * 60.0
MAX_WAIT_S = 30.0

# Where each client's history files live under a root, and which file names matter (claude.md §1,
# codex.md §1). An importer may override both with `watch_subdirs` / `watch_accept`.
WATCH_SUBDIRS: dict[str, tuple[str, ...]] = {
    "claude": ("projects",),
    "codex": ("sessions", "archived_sessions"),
}


def _accept_claude(name: str) -> bool:
    return name.endswith(".jsonl") or name.endswith(".meta.json")


def _accept_codex(name: str) -> bool:
    return name.startswith("rollout-") and (
        name.endswith(".jsonl") or name.endswith(".json") or name.endswith(".jsonl.zst")
    )


WATCH_ACCEPT: dict[str, Callable[[str], bool]] = {"claude": _accept_claude, "codex": _accept_codex}


# --------------------------------------------------------------------------------------------- clock


class SystemClock:
    """Wall time (for timestamps and windows) and a monotonic clock (for intervals)."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock the tests move by hand."""

    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start
        self.m = 1000.0

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.m

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.m += seconds


# --------------------------------------------------------------------------------------------- state


@dataclass
class _Pending:
    """A file waiting to be read: due at `due` (monotonic); `first` is when it was first marked."""

    due: float
    first: float


@dataclass
class _Batch:
    rows: list[Row] = field(default_factory=list)
    updates: dict[str, CheckpointUpdate] = field(default_factory=dict)
    since: float | None = None  # monotonic time of the oldest buffered row or update
    bytes: int = 0  # of the history its rows were read from (`FLUSH_BYTES`)

    @property
    def empty(self) -> bool:
        return not self.rows and not self.updates


@dataclass
class _Scan:
    """What the `backfill.scan` event the daemon logs with its flushes reports: the files looked at since the
    last one, each once however many passes saw it (a file unchanged at a rescan and read when it grew is one
    file seen, not unchanged; its size and mtime were counted twice, `files_seen` above the number of files);
    the bytes and lines of every read."""

    seen: set[str] = field(default_factory=set)  # real paths
    read: set[str] = field(default_factory=set)  # read at least once (the others were all unchanged)
    reset: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)  # its last read failed
    bytes_read: int = 0
    stats: ParseStats = field(default_factory=ParseStats)

    @property
    def files_seen(self) -> int:
        return len(self.seen)

    @property
    def files_unchanged(self) -> int:
        return len(self.seen - self.read)


class ClientState:
    def __init__(self, name: str, importer: Importer, config_root: str | None, env: Mapping[str, str]) -> None:
        self.name = name
        self.importer = importer
        self.config_root = config_root
        self.roots: list[str] = list(importer.roots(config_root, env))
        self.root_places: set[str] = {p for r in self.roots for p in (r, os.path.realpath(r))}
        subdirs = getattr(importer, "watch_subdirs", None)
        self.subdirs: tuple[str, ...] = tuple(subdirs) if subdirs is not None else WATCH_SUBDIRS.get(name, ("",))
        accept = getattr(importer, "watch_accept", None) or WATCH_ACCEPT.get(name)
        self.accept_name: Callable[[str], bool] = accept or (lambda _n: True)
        self.files: dict[str, SourceFile] = {}  # real path -> file (discovery order = dict order)
        self.order: dict[str, int] = {}
        self.by_hash: dict[str, str] = {}  # path_hash -> real path
        self.dirs: dict[str, int] = {}  # directory -> mtime_ns (polling)
        self.stats: dict[str, tuple[int, int]] = {}  # real path -> (size, mtime_ns) (polling)
        # Files outside the watched folders (a symlinked transcript whose target is elsewhere): no file event
        # comes for their writes, so each poll stats them, in event mode too (else the 5-minute rescan did)
        self.outside: list[str] = []
        self.watch_dirs: list[str] = []  # existing, readable directories being watched (real paths)
        self.root_state = "waiting"
        self.noted_root_state: str | None = None  # (the one the status last said: `DaemonLoop._note_root_state`)
        self.need_discover = True
        self.discovered_ok = False  # last discovery complete (for dropping vanished checkpoints)
        self.unread_hashes: set[str] = set()  # files it found but could not read: their checkpoints are kept
        self.last_import_at: str | None = None
        self.rows_written = 0
        self.failing: dict[str, str] = {}  # path hash (or place) -> message
        self.failing_folders: set[str] = set()  # the keys of `failing` that are folders that cannot be listed
        # where they are (real paths, in memory only): a file that fails under one fails because of it
        self.failing_places: dict[str, str] = {}  # key of `failing` (a folder, or a file's hash) -> real path
        self.last_error: dict[str, str] | None = None
        self.scan = _Scan()
        self.whole_seen: dict[str, tuple[int, int, float]] = {}  # path -> (size, mtime_ns, seen at)
        self.sidecar_first: dict[str, float] = {}
        self.detected_sources: list[str] = []

    # -- roots --------------------------------------------------------------------------------------------
    def candidate_dirs(self) -> list[str]:
        out: list[str] = []
        seen: set[str] = set()
        for root in self.roots:
            for sub in self.subdirs:
                d = os.path.join(root, sub) if sub else root
                real = os.path.realpath(d)
                if real not in seen:
                    seen.add(real)
                    out.append(real)
        return out

    def check_roots(self) -> tuple[bool, bool]:
        """Refresh `watch_dirs` and `root_state`. Returns (changed, unreadable)."""
        watch: list[str] = []
        unreadable = False
        for root in self.roots:
            if os.path.isdir(root) and not os.access(root, os.R_OK | os.X_OK):
                unreadable = True
        for d in self.candidate_dirs():
            if not os.path.isdir(d):
                continue
            if not os.access(d, os.R_OK | os.X_OK):
                unreadable = True
                continue
            watch.append(d)
        changed = watch != self.watch_dirs
        self.watch_dirs = watch
        self.root_state = "unreadable" if unreadable else ("watching" if watch else "waiting")
        return changed, unreadable

    def accepts(self, path: str) -> bool:
        return self.accept_name(os.path.basename(path))

    def places(self) -> set[str]:
        """Its roots as given and as real paths, and the folders it watches: a path under one is a source path."""
        return self.root_places | set(self.watch_dirs)

    def owns(self, path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in self.watch_dirs)

    def _files_failed(self) -> int:
        """What cannot be read, files and folders: a file under a folder that cannot be listed is one of that
        folder's (it failed because of it: a root made mode 000 counted "1 file and 1 folder")."""
        folders = self.failing_folders & self.failing.keys()
        under = [self.failing_places[k].rstrip(os.sep) + os.sep for k in folders if k in self.failing_places]
        files = sum(1 for k in self.failing if k not in folders
                    and not self.failing_places.get(k, "\0").startswith(tuple(under)))
        return files + len(folders)

    def status(self) -> dict[str, Any]:
        return {
            "root_state": self.root_state,
            # (which folders it looks in, as a one-way hash: its environment's, maybe not the shell's that reads
            # this, `hyp status`; the status file names no path of the history)
            "roots_hash": roots_hash(self.roots),
            "last_import_at": self.last_import_at,
            "rows_written": self.rows_written,
            "files_failed": self._files_failed(),  # files and folders (claude.md 7); the folders among them:
            "folders_failed": len(self.failing_folders & self.failing.keys()),
            "last_error": self.last_error,
        }


def _walk_dirs(top: str) -> dict[str, int]:
    """Every directory under `top` (symlinks not followed) with its mtime_ns."""
    out: dict[str, int] = {}
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            out[d] = os.stat(d).st_mtime_ns
            with os.scandir(d) as it:
                for e in it:
                    with contextlib.suppress(OSError):
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
        except OSError:
            continue
    return out


def scrub_paths(text: str, places: Mapping[str, str], keep: str | None = None) -> str:
    """`text` with every path under one of `places` (a folder -> its client's name) replaced by `<a path in the
    NAME history folder>`: the daemon's log and status hold no raw source path (storage.md §10). A folder
    matches only as a whole name: followed by a path separator, a quote, a delimiter (`,;:()[]{}<>`), a space
    or the end (`~/.codex-old`, `~/.claudette` are not under `~/.codex`, `~/.claude`). A quoted path (Python's
    repr, Rust's Debug: they start at the root) goes whole, quotes and all; a bare one up to a quote, a bracket,
    a comma, a semicolon, the end of the line or the start of another such folder (spaces included: a path may
    hold them, and a few words too many gone are better than part of a path left). A path under `keep`
    (HYP_HOME, when a client root holds it) stays: it is not a source, and, ending where a folder begins, it
    never carries a source path after it along."""
    names = {p.rstrip(os.sep): name for p, name in places.items() if p.rstrip(os.sep)}
    roots = sorted(names, key=len, reverse=True)
    if not text or not roots:
        return text
    alt = "|".join(re.escape(r) for r in roots)
    end = rf"(?=[{re.escape(os.sep)}'\"\s,;:()\[\]{{}}<>]|\Z)"
    pattern = re.compile(rf"'(?P<q1>{alt}){end}(?:[^'\\\n]|\\.)*'"
                         rf"|\"(?P<q2>{alt}){end}(?:[^\"\\\n]|\\.)*\""
                         rf"|(?P<bare>{alt}){end}(?:(?!{alt})[^'\"\n,;()\[\]{{}}<>])*")

    def replace(m: re.Match[str]) -> str:
        found = m.group()
        bare = found[1:-1] if found[0] in "'\"" else found
        if keep and (bare == keep or bare.startswith(keep.rstrip(os.sep) + os.sep)):
            return found
        name = names[m.group("q1") or m.group("q2") or m.group("bare")]
        return f"<a path in the {name} history folder>" + found[len(found.rstrip()):]  # (a bare one's spaces)

    return pattern.sub(replace, text)


# --------------------------------------------------------------------------------------------- the loop


class DaemonLoop:
    """The capture loop for one HYP_HOME. Construct, then `run(once=...)`; tests may call `start()`,
    `step()` and `shutdown()` themselves with a `FakeClock`."""

    def __init__(
        self,
        layout: Layout,
        *,
        env: Mapping[str, str] | None = None,
        clock: Any = None,
        importers: Mapping[str, Importer] | None = None,
        watcher_factory: Callable[[], Watcher] | None = None,
        storage_factory: Callable[[Layout, Any], Any] | None = None,
        mode: str | None = None,
    ) -> None:
        self.layout = layout
        self.env = dict(os.environ if env is None else env)
        self.clock = clock or SystemClock()
        self._importers = importers
        self._watcher_factory = watcher_factory or (lambda: make_watcher(self.env))
        self._storage_factory = storage_factory
        self.mode = mode or control.daemon_mode(self.env)
        self.pid = os.getpid()
        self.settings: DaemonSettings | None = None
        self.clients: dict[str, ClientState] = {}
        self.captures: dict[str, capture_mod.CaptureStart] = {}
        self.pending: dict[str, dict[str, _Pending]] = {}  # client -> real path -> pending
        self.batches: dict[str, _Batch] = {}
        self.inflight: dict[str, Checkpoint] = {}  # path_hash -> checkpoint of uncommitted batches
        self.state = "starting"
        self.watcher: Watcher | None = None
        # "events" or "polling" once watching starts; null before (a daemon that stops at its config never watched)
        self.watch_kind: str | None = None
        self.watch_failure: str | None = None  # why file events failed; polling until they work again
        self.watch_reason: str | None = None  # that, for a person (the status's `watch_reason` while polling)
        # Linux: whether the inotify watch set is complete is checked at the next polls after the watcher starts,
        # after a safety rescan and after a new folder (daemon.md §4.2; see `watch.py`).
        self._watch_check_due = False
        self._watch_check_tries = 0
        self._watch_sample: int | None = None  # the watch count seen at the last check (still growing?)
        self._inotify_before: set[int] | None = None  # this process's inotify fds before the watcher started
        self.started_us = int(self.clock.time() * 1_000_000)
        self.started_at = control.utc_iso(self.started_us / 1_000_000)
        self.rows_written = 0
        self.last_import_at: str | None = None
        self.last_error: dict[str, str] | None = None
        self.retention_applied_at: str | None = None
        self.rows_pruned: int | None = None
        self.degraded: dict[str, str] = {}  # reason key -> message
        self.touched: set[str] = set()  # partitions written since the last compaction check
        self.compact_retry_at = 0.0  # after a failed compaction, grown partitions wait for this (monotonic)
        self.write_failing = False
        self.status_failure: str | None = None  # why the status file could not be written, while it cannot
        self.status_reserved = False  # room kept in run/ for the final status (control.reserve_status_room)
        self.backoff = BACKOFF_START_S
        self.retry_at = 0.0
        self.once = False
        self.storage: Any = None
        self.events: Any = None
        self.db: StateDB | None = None
        self._events_in: deque[list[str]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop_requested = False
        self._stopping = False
        self._reload_requested = False
        self._status_dirty = True
        now = self.clock.monotonic()
        self.next_poll = now
        self.next_rescan = now
        self.next_status = now
        self.next_retention: float | None = None
        self.next_compact: float | None = None  # the daily pass's compaction of every partition, when due
        self.started = now
        self.next_evict = now + MEMO_EVICT_EVERY_S
        self.read_since_release = 0  # bytes of history read since memory was last handed back
        self.pid_lock = control.PidLock(layout)
        # HYP_HOME's identity (`checkpoints.dir_identity`) at the start: a home moved or deleted since (`mv`) is
        # never written into again, nor created again; the daemon stops (`home_lost` says why).
        self.home_id: str | None = None
        self.home_lost: str | None = None
        # The dataset was found deleted or replaced at a commit: the batches were dropped, and the next step
        # checks the checkpoints again (resetting them) and catches up, as at the start.
        self.resync_due = False
        self.said_reset = False  # (the check that set `resync_due` has reset the checkpoints, and said so)

    # ------------------------------------------------------------------------------------------ helpers
    def importer(self, name: str) -> Importer:
        if self._importers is not None:
            return self._importers[name]
        from hypaware_tui.importers import get_importer

        return get_importer(name)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _on_paths(self, paths: list[str]) -> None:  # watcher thread
        self._events_in.append(paths)
        self.wake()

    def _now_iso(self) -> str:
        return control.utc_iso(self.clock.time())

    def scrub(self, text: str) -> str:
        """`text` without a raw source path (storage.md §10), for the status and the log (`scrub_paths`)."""
        places = {p: c.name for c in self.clients.values() for p in c.places()}
        return scrub_paths(text, places, keep=str(self.layout.home))

    def _error(self, message: str, client: ClientState | None = None) -> None:
        err = {"at": self._now_iso(), "message": self.scrub(message)}
        self.last_error = err
        if client is not None:
            client.last_error = err
        self._status_dirty = True

    def _floor_us(self) -> int | None:
        assert self.settings is not None
        return import_floor_us(self.settings.retention_days, int(self.clock.time() * 1_000_000))

    def _cut(self) -> str | None:
        assert self.settings is not None
        return cut_date(self.settings.retention_days, int(self.clock.time() * 1_000_000))

    def _floor_cut(self) -> str | None:
        """The import floor this daemon records (storage.md §7.3): the loaded retention's cut, unless the config
        on disk now keeps less. A floor earlier than the recorded one resets every checkpoint and reads the
        history again: a daemon nobody told of a shorter retention (still on "forever") brought back, at its
        daily pass, the 6,584 rows `hyp cache prune` had just deleted under the new one. The other way round
        (the config keeps more), its rows come back from the next SIGHUP or start (daemon.md §4.5), as
        `_prune_days` keeps them meanwhile."""
        assert self.settings is not None
        cut = self._cut()
        disk = settings.load(self.layout)
        if disk.error is not None or disk.retention_days == self.settings.retention_days:
            return cut
        later = cut_date(disk.retention_days, int(self.clock.time() * 1_000_000))
        if later is not None and (cut is None or later > cut):
            return later
        return cut

    # ------------------------------------------------------------------------------------------ status
    def status_doc(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "version": __version__,
            "mode": self.mode,
            "state": self.state,
            "started_at": self.started_at,
            "updated_at": self._now_iso(),
            "watch": self.watch_kind,
            "watch_reason": self.watch_reason if self.watch_kind == "polling" else None,
            "last_import_at": self.last_import_at,
            "rows_written": self.rows_written,
            "last_error": self.last_error,
            "retention_applied_at": self.retention_applied_at,
            "rows_pruned": self.rows_pruned,
            "clients": {name: c.status() for name, c in self.clients.items()},
            # the settings it runs with (loaded at the start or the last SIGHUP): `hyp status` says when the
            # config has changed since
            "config_digest": settings.settings_digest(self.settings),
        }

    def write_status(self) -> None:
        if not self.home_ok():
            return  # (writing it would create the old HYP_HOME again)
        try:
            self._write_status_file()
        except OSError as exc:
            # said once, not at every heartbeat; meanwhile `hyp daemon status` reports the status stale
            why = exc.strerror or str(exc)  # (not the exception itself: it names a new temporary file each time)
            if self.status_failure != why:
                log.warning("could not write the status file %s: %s; trying again every %g s",
                            self.layout.daemon_status, why, HEARTBEAT_S)
            self.status_failure = why
        else:
            if self.status_failure is not None:
                log.info("the status file is written again")
            self.status_failure = None
        self._status_dirty = False
        self.next_status = self.clock.monotonic() + HEARTBEAT_S

    def _write_status_file(self) -> None:
        doc = self.status_doc()
        try:
            control.write_status_file(self.layout, doc)
        except OSError as exc:
            # The final `stopped` frees the room kept for it on a full disk: left saying `running`, the status
            # read "ended unexpectedly" after a clean stop. (Still written atomically: a temporary file renamed.)
            if not (self.state == "stopped" and exc.errno in control.DISK_FULL and self.status_reserved):
                raise
            self.status_reserved = False
            if not control.drop_status_reserve(self.layout):
                raise
            control.write_status_file(self.layout, doc)

    def home_ok(self) -> bool:
        """Whether HYP_HOME is still the directory the daemon started in. When it is not (moved with `mv`,
        deleted, or replaced by another directory), says so once and stops the daemon: its checkpoint
        database went with the old one, and writing there would create a new HYP_HOME that nothing reads."""
        if self.home_lost is not None:
            return False
        if self.home_id is None:
            return True
        try:
            now = dir_identity(self.layout.home, changed=False)
        except OSError:
            return True  # (not readable: whatever writes next says why)
        if now == self.home_id:
            return True
        self._lose_home()
        return False

    def _lose_home(self) -> None:
        if self.home_lost is not None:
            return
        self.home_lost = home_moved_message(self.layout.home, "the daemon", "start the daemon again")
        log.error("%s", self.home_lost)
        self._stop_requested = True
        self.wake()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._status_dirty = True

    def _refresh_state(self) -> None:
        if self.state in ("starting", "stopped"):
            return
        self._set_state("degraded" if self.degraded else "running")

    # ------------------------------------------------------------------------------------------ startup
    def start(self, *, once: bool = False) -> int | None:
        """Steps 2-5 of daemon.md §4.1 after the lock: status `starting`, config, catch-up, watching.
        Returns an exit code when the daemon must end now (config missing/invalid, capture off, --once)."""
        self.once = once
        # The previous run's report, read before this run writes its own over it: when the daily pass last
        # ran (reading it later found this run's `starting` report, so every start pruned), and whether that
        # run ended without saying so (the report this run writes replaces the one `hyp daemon status` read it
        # from: the log keeps it).
        prev = control.read_status_file(self.layout)
        self._note_previous_end(prev)
        self._schedule_retention(prev)
        self.write_status()
        if self.home_ok() and not self.status_reserved:
            self.status_reserved = control.reserve_status_room(self.layout)
        with contextlib.suppress(OSError):
            self.home_id = dir_identity(self.layout.home, changed=False)
        cfg = settings.load(self.layout)
        if cfg.error is not None:
            msg = cfg.error
            log.error("%s", msg)
            self._error(msg)
            self._set_state("stopped")
            self.write_status()
            return 1
        self.settings = cfg
        if not cfg.capture_enabled:
            log.info("capture is off in the config")
            self._set_state("stopped")
            self.write_status()
            return 0
        self._open_storage()
        if self.db is None:  # (stopped while the checkpoint database was locked)
            self._set_state("stopped")
            self.write_status()
            return 0
        self._setup_clients(cfg.clients)
        log.info("capture daemon started (pid %s, %s; clients: %s)", self.pid, self.mode,
                 ", ".join(self.clients) or "none")
        if not once:
            # Watch before the catch-up pass, so nothing appended during it is missed (the events wait in
            # the queue until the first step).
            self.start_watching()
        self.catch_up()
        if once:
            return 0 if not self.write_failing and self.flush() else 1
        now = self.clock.monotonic()
        self.next_poll = now + self._poll_s()
        self.next_rescan = now + cfg.rescan_seconds
        self._set_state("running")
        self._refresh_state()
        self.write_status()
        return None

    def _open_storage(self) -> None:
        from hypaware_tui.core.events import EventLog
        from hypaware_tui.core.ids import new_run_id

        if self.storage is not None:
            return
        self.events = EventLog(self.layout, new_run_id(), enabled=True, report=log.warning)  # (once)
        if self._storage_factory is not None:
            self.storage = self._storage_factory(self.layout, self.events)
        else:
            from hypaware_tui.core.storage import Storage

            self.storage = Storage(self.layout, events=self.events)
        if self.home_id is not None and hasattr(self.storage, "home_id"):
            self.storage.home_id = self.home_id
        self.db = self._open_db()
        if self.db is None:
            return
        try:
            self.storage.ensure_import_floor(self._floor_cut())
        except Exception as exc:  # noqa: BLE001 - retried at the next flush / retention pass
            self._error(f"could not record the import floor: {exc}")
        else:
            self._said_dataset_reset()

    def _said_dataset_reset(self) -> None:
        """The one line of a check that reset every checkpoint because the dataset was replaced."""
        if getattr(self.storage, "dataset_reset", False):
            from hypaware_tui.core.storage import dataset_replaced_text

            log.warning("%s", dataset_replaced_text(self.layout))

    def _dataset_replaced(self) -> None:
        """A commit found the dataset deleted or replaced (or the checkpoints reset by another process for that
        reason): nothing of it was written. What was read since is dropped, read again by `_resync`."""
        self.batches.clear()
        self.inflight.clear()
        self.resync_due = True

    def _resync(self) -> None:
        """After `_dataset_replaced`: check the checkpoints against the dataset again (resetting them when it
        is still not the one they describe), then catch up as at the start."""
        if not self.said_reset:
            try:
                self.storage.ensure_import_floor(self._floor_cut())
            except Exception as exc:  # noqa: BLE001 - tried again at the next step
                self._error(f"could not check the dataset: {exc}")
                return
            if getattr(self.storage, "dataset_reset", False):
                self._said_dataset_reset()
            else:  # (another hyp process found it so first, and reset the checkpoints)
                log.warning("the dataset at %s was replaced and the checkpoints reset by another hyp process: "
                            "reading the history again from them", self.layout.dataset_root)
        self.resync_due = self.said_reset = False
        self.catch_up()

    def _open_db(self) -> StateDB | None:
        """The checkpoint database. While another process holds it locked (a long transaction), wait and try
        again with backoff (5 s up to 60 s), said in the log and the status, rather than end on "database is
        locked" after SQLite's 30 s. None when a stop came meanwhile."""
        delay = BACKOFF_START_S
        while True:
            try:
                db = StateDB.open(self.layout, create=True, wait_s=DB_OPEN_WAIT_S)
            except StateDBError as exc:
                if exc.cause != "busy":
                    raise
                msg = (f"{exc.reason} (another process holds it: a backfill, or a program that opened it); "
                       f"trying again in {delay:g} s, and nothing is captured until then")
                log.warning("%s", msg)
                self._error(msg)
                self.degraded["db"] = msg
                self.write_status()
                self.wait_until(self.clock.monotonic() + delay)
                if self._stop_requested:
                    return None
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if self.degraded.pop("db", None) is not None:
                log.info("the checkpoint database is free again")
            return db

    def _setup_clients(self, wanted: Mapping[str, str | None]) -> None:
        for name in list(self.clients):
            if name not in wanted:
                self._drop_client(name)
        added = []
        for name, root in wanted.items():
            existing = self.clients.get(name)
            if existing is not None and existing.config_root == root:
                continue
            if existing is not None:
                self._drop_client(name)
            try:
                importer = self.importer(name)
            except Exception as exc:  # noqa: BLE001
                self._error(f"{name}: no importer ({exc})")
                continue
            self.clients[name] = ClientState(name, importer, root, self.env)
            self.pending[name] = {}
            added.append(name)
        if added:
            # daemon.md §3.2: a client enabled without a capture entry (by hand, seen at start or at a reload)
            # captures from the daemon's own start time (unless a damaged capture.json lost every entry)
            now_us = self._recover_capture_file(self.started_us) or self.started_us
            try:
                self.captures = capture_mod.ensure_capture_start(self.layout, added, now_us)
            except OSError as exc:
                self._error(f"could not write {self.layout.capture_json}: {exc}")
                self.captures = capture_mod.read_capture(self.layout)
                for name in added:
                    self.captures.setdefault(name, capture_mod.CaptureStart(now_us, "daemon"))
        for name in added:
            c = self.clients[name]
            c.check_roots()
            self._note_root_state(c)
        self._status_dirty = True

    def _recover_capture_file(self, now_us: int) -> int | None:
        """A capture.json that cannot be read lost every client's capture start, not one never made: set it
        aside (kept for a person to read) and give the clients the earliest time the setup left behind, so
        that no line written since the setup is missed (`capture.recovered_since_us`). Said in the log and
        as the last error. Returns that time, or None when the file is fine."""
        problem = capture_mod.capture_problem(self.layout)
        if problem is None:
            return None
        oldest = None
        if self.db is not None:
            with contextlib.suppress(Exception):
                oldest = parse_iso_us(self.db.oldest_update())
        since_us = capture_mod.recovered_since_us(self.layout, oldest, now_us)
        path = self.layout.capture_json
        try:
            kept = f"kept as {capture_mod.set_aside(self.layout, self.clock.time())}"
        except OSError as exc:
            kept = f"could not be set aside ({exc.strerror or exc}), replaced"
        msg = (f"the capture start file {path} is damaged ({problem}); {kept}. Capture starts again from "
               f"{control.utc_iso(since_us / 1_000_000)}, the earliest time this HYP_HOME records of its setup, "
               "so nothing written since is missed")
        log.warning("%s", msg)
        self._error(msg)
        return since_us

    def _drop_client(self, name: str) -> None:
        self.clients.pop(name, None)
        self.pending.pop(name, None)
        self.degraded.pop(f"root:{name}", None)

    @staticmethod
    def _note_previous_end(prev: Mapping[str, Any] | None) -> None:
        """Log that the previous daemon ended unexpectedly (killed, a crash, a power cut: its last report is not
        `stopped`), as `hyp daemon status` said until now; what it had read and not saved is read again."""
        if not prev or prev.get("state") not in control.STATES or prev.get("state") == "stopped":
            return
        pid = prev.get("pid")
        who = f" (pid {pid})" if pid.__class__ is int else ""
        log.warning("the previous capture daemon%s %s; the lines it had not saved are read again from its "
                    "checkpoints", who, control.ended_unexpectedly_text(prev))

    def _schedule_retention(self, prev: Mapping[str, Any] | None) -> None:
        last = prev.get("retention_applied_at") if prev else None
        self.retention_applied_at = last if isinstance(last, str) else None
        if prev and isinstance(prev.get("rows_pruned"), int):
            self.rows_pruned = prev["rows_pruned"]
        last_us = parse_iso_us(last) if isinstance(last, str) else None
        now = self.clock.monotonic()
        if last_us is None:
            self.next_retention = now
        else:
            age = self.clock.time() - last_us / 1_000_000
            self.next_retention = now + max(0.0, RETENTION_EVERY_S - age)

    # ------------------------------------------------------------------------------------------ catch-up
    def catch_up(self) -> None:
        """Every enabled client: discover, then read every file from its checkpoint (§4.1 step 4)."""
        for c in self.clients.values():
            self._discover(c, mark_all=True)
        self._process_due(force=True)
        if not self._stop_requested:
            self.flush()  # caught up: commit it now rather than after flush_seconds
        if not self.once and self.read_since_release >= RELEASE_AFTER_BYTES:
            # The memo now holds the part_id of every row in every partition the catch-up touched (days of
            # history, the rows a backfill wrote included), kept for 10 minutes; the lines that come next belong
            # to today's partition, whose ids its first flush reads again. (`--once` exits instead.)
            self._release_memory(forget_memo=True)

    # ------------------------------------------------------------------------------------------ watching
    def start_watching(self) -> None:
        if self.watcher is None:
            try:
                self.watcher = self._watcher_factory()
            except Exception as exc:  # noqa: BLE001
                log.warning("file watching is unavailable (%s); polling instead", describe_watch_error(exc))
                self.watcher = PollingWatcher()
            if self._polling():
                for c in self.clients.values():
                    c.need_discover = True
        self._restart_watcher()

    def _restart_watcher(self) -> None:
        w = self.watcher
        if w is None:
            return
        self.watch_kind = w.kind
        if isinstance(w, PollingWatcher):
            self._status_dirty = True
            return
        dirs = [d for c in self.clients.values() for d in c.watch_dirs]
        # The watch thread filters with a frozen copy (the clients may change on reload meanwhile).
        specs = [(tuple(d.rstrip(os.sep) + os.sep for d in c.watch_dirs), c.accept_name)
                 for c in self.clients.values()]

        def accept(path: str) -> bool:
            for prefixes, accept_name in specs:
                if path.startswith(prefixes):
                    # new directories too: a file created in one right away may beat its inotify watch
                    return accept_name(os.path.basename(path)) or os.path.isdir(path)
            return False

        limit = watch_mod.inotify_max_user_watches()
        if limit is not None and dirs:
            folders, _ = watch_mod.count_folders(dirs)
            if folders > limit:  # (a watcher started anyway would take the watches other programs need)
                self._fallback_to_polling(watch_mod.watch_limit_text(limit, folders), incomplete=True)
                return
        try:
            w.stop()  # (its inotify descriptor closed first: the one it opens next is told apart by number)
            self._inotify_before = watch_mod.inotify_fds()
            w.start(dirs, accept, self._on_paths)
        except Exception as exc:  # noqa: BLE001
            self._fallback_to_polling(describe_watch_error(exc))
            return
        self._due_watch_check()
        self._status_dirty = True

    def _due_watch_check(self) -> None:
        self._watch_check_due = True
        self._watch_check_tries = 0
        self._watch_sample = None

    def _check_watch_set(self) -> None:
        """Linux, file events: whether inotify watches every folder under the watched roots. notify stops adding
        watches at the first folder it cannot watch (the watch limit reached, a folder it cannot read) and
        watchfiles raises nothing: the watcher then misses every change below the folders it skipped. Counts
        the folders and this watcher's watches (the `inotify wd:` lines of its descriptors); incomplete (and
        not growing since the last check): polling, with the reason."""
        dirs = [d for c in self.clients.values() for d in c.watch_dirs]
        limit = watch_mod.inotify_max_user_watches()
        if limit is None or not dirs:
            self._watch_check_due = False  # (not Linux: unchanged)
            return
        folders, unreadable = watch_mod.count_folders(dirs)
        if folders > limit:
            self._fallback_to_polling(watch_mod.watch_limit_text(limit, folders), incomplete=True)
            return
        now_fds = watch_mod.inotify_fds()
        before = self._inotify_before
        fds = now_fds - before if now_fds is not None and before is not None else set()
        if not fds:
            # no inotify descriptor of its own (another backend), or not opened yet: a few more looks
            self._watch_check_tries += 1
            if self._watch_check_tries >= 3:
                self._watch_check_due = False
            return
        watched = watch_mod.inotify_watches(fds)
        if watched >= folders:
            self._watch_check_due = False
            return
        if watched != self._watch_sample:  # a first look, or still adding watches (a big tree)
            self._watch_sample = watched
            return
        self._fallback_to_polling(watch_mod.incomplete_watch_text(watched, folders, unreadable, limit),
                                  incomplete=True)

    def _fallback_to_polling(self, why: str, *, incomplete: bool = False) -> None:
        """`incomplete`: the watcher runs but misses changes; `why` says so (and what to do) in full."""
        if why != self.watch_failure:  # a retry that fails the same way is not news
            if incomplete:
                log.warning("file events would miss changes: %s; polling every %s s instead, and trying file events "
                            "again every %s s", why, self._poll_s(), self._rescan_s())  # fmt: skip
            else:
                log.warning("file watching failed (%s); polling every %s s instead, and trying file events again "
                            "every %s s", why, self._poll_s(), self._rescan_s())  # fmt: skip
        self.watch_failure = why
        self.watch_reason = why if incomplete else f"file watching failed ({why})"
        self._watch_check_due = False
        if self.watcher is not None:
            with contextlib.suppress(Exception):
                self.watcher.stop()
        self.watcher = PollingWatcher()
        self.watch_kind = "polling"
        for c in self.clients.values():
            c.need_discover = True  # rebuild the directory list polling needs
        self._status_dirty = True

    def _retry_events(self) -> None:
        """Polling after a watcher failure (inotify watches exhausted, say): try file events again, since the
        watches may have been freed. Runs with the safety rescan, which looks at every file meanwhile. A
        watcher that fails again at start, or later from its thread, falls back to polling as before."""
        try:
            w = self._watcher_factory()
        except Exception:  # noqa: BLE001
            return
        if isinstance(w, PollingWatcher):
            return
        self.watcher = w
        self._restart_watcher()

    def _rescan_s(self) -> float:
        return self.settings.rescan_seconds if self.settings else 300.0

    def _polling(self) -> bool:
        return self.watcher is None or isinstance(self.watcher, PollingWatcher)

    def _poll_s(self) -> float:
        return self.settings.poll_seconds if self.settings else 5.0

    # ------------------------------------------------------------------------------------------ discovery
    def _note_root_state(self, c: ClientState) -> None:
        key = f"root:{c.name}"
        if c.root_state == "unreadable":
            if key not in self.degraded:
                msg = f"{c.name}: a history folder exists but cannot be read; check its permissions"
                log.warning("%s", msg)
                self.degraded[key] = msg
                self._error(msg, c)
        elif self.degraded.pop(key, None) is not None:
            log.info("%s: its history folders can be read again", c.name)
        if c.root_state != c.noted_root_state:  # (every poll came here: an idle daemon rewrote and fsynced its
            c.noted_root_state = c.root_state  # status every 5 s, not every 30 s as daemon.md §6 says)
            self._status_dirty = True

    def _discover(self, c: ClientState, *, mark_all: bool) -> None:
        c.need_discover = False
        # (a root that is a link to nothing too: its discovery reports it, and is incomplete, so that the daily
        # pass keeps its files' checkpoints whatever another root holds)
        roots = [r for r in c.roots if os.path.isdir(r) or os.path.islink(r)]
        try:
            disc = c.importer.discover(roots) if roots else None
        except Exception as exc:  # noqa: BLE001
            c.discovered_ok = False
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc  # (not its file names)
            self._error(f"{c.name}: could not list the history files: {type(exc).__name__}: {why}", c)
            return
        now = self.clock.monotonic()
        new_files: dict[str, SourceFile] = {}
        if disc is not None:
            for f in disc.files:
                new_files[f.path] = f
        pend = self.pending.setdefault(c.name, {})
        for path in new_files:
            if mark_all or path not in c.files:
                pend.setdefault(path, _Pending(now, now))
        for path in list(c.files):
            if path not in new_files:
                pend.pop(path, None)
                c.stats.pop(path, None)
                c.whole_seen.pop(path, None)
                c.sidecar_first.pop(path, None)
        c.files = new_files
        c.detected_sources = list(disc.detected_sources) if disc is not None else []
        c.order = {p: i for i, p in enumerate(new_files)}
        c.by_hash = {f.path_hash: p for p, f in new_files.items()}
        for f in new_files.values():
            c.stats.setdefault(f.path, (f.size, f.mtime_ns))
        c.outside = [p for p in new_files if not c.owns(p)]
        # discovery failures (unreadable files or directories) are per-file errors
        failed_now = {fe.where: fe for fe in (disc.failed if disc else [])}
        for key in [k for k in c.failing if k.startswith("discover:")]:
            if key[len("discover:"):] not in failed_now:
                del c.failing[key]
                c.failing_folders.discard(key)
                c.failing_places.pop(key, None)
        for where, fe in failed_now.items():
            key = f"discover:{where}"
            if key not in c.failing:
                message = fe.message
                if fe.path is not None and not where.startswith("<"):
                    message = with_find_path(message)  # (named by path hash only: storage.md §10)
                c.failing[key] = message
                if fe.folder:
                    c.failing_folders.add(key)
                    if fe.path is not None:
                        c.failing_places[key] = os.path.realpath(fe.path)
                log.warning("%s: %s: %s", c.name, where, message)
                self._error(f"{c.name}: {where}: {message}", c)
        c.discovered_ok = disc is not None and disc.complete and c.root_state != "unreadable"
        c.unread_hashes = disc.unread_hashes() if disc is not None else set()
        if self._polling():
            dirs: dict[str, int] = {}
            for d in c.watch_dirs:
                dirs.update(_walk_dirs(d))
            c.dirs = dirs
        self._status_dirty = True

    # ------------------------------------------------------------------------------------------ the step
    def step(self) -> float:
        """Do everything that is due now. Returns the monotonic time of the next deadline."""
        if not self.home_ok():
            return self.clock.monotonic()
        if self.resync_due and not self.write_failing:
            self._resync()
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
            if self._stop_requested:
                return self.clock.monotonic()
        now = self.clock.monotonic()
        if self.watcher is not None and self.watcher.error:
            self._fallback_to_polling(self.watcher.error)
        self._drain_wake()
        self._take_events(now)
        if now >= self.next_poll:
            self._poll(now)
            self.next_poll = now + self._poll_s()
        if self.settings and now >= self.next_rescan:
            if self.watch_failure is not None:
                if self._polling():
                    self._retry_events()
                else:  # the retried watcher has run a whole interval: said once (failures again are not)
                    log.info("file watching works again (it had failed: %s)", self.watch_failure)
                    self.watch_failure = None
            if not self._polling():
                self._due_watch_check()  # (new folders since: watched, or not)
            # the safety rescan: rediscover, and look at every file again (unchanged ones cost a stat)
            for c in self.clients.values():
                c.need_discover = True
                for path in c.files:
                    self.pending[c.name].setdefault(path, _Pending(now, now))
            self.next_rescan = now + self.settings.rescan_seconds
        for c in self.clients.values():
            if c.need_discover:
                self._discover(c, mark_all=False)
        if self.write_failing and now >= self.retry_at:
            self.flush()
        if not self.write_failing:
            self._process_due()
        if self._flush_due(self.clock.monotonic()):
            self.flush()
        if not self.write_failing:
            self.compact_grown()
        if self.read_since_release >= RELEASE_AFTER_BYTES and self._oldest_batch() is None:
            self._release_memory()  # a big pass is committed (its batch no longer holds its rows)
        now = self.clock.monotonic()
        if self.next_retention is not None and now >= self.next_retention and not self.write_failing:
            self.retention_pass()
        if self.next_compact is not None and now >= self.next_compact and not self.write_failing:
            self.next_compact = None
            self._compact(None)  # every partition of several files (storage.md §8: MAY run in the daily pass)
        if now >= self.next_evict:
            self.next_evict = now + MEMO_EVICT_EVERY_S
            evict = getattr(self.storage, "evict_memo", None)
            if evict is not None:
                with contextlib.suppress(Exception):
                    if evict():
                        self._release_memory()  # the evicted ids' memory, back to the system
        self._refresh_state()
        if self._status_dirty or now >= self.next_status:
            self.write_status()
        return self._next_deadline()

    def _next_deadline(self) -> float:
        cands = [self.next_poll, self.next_status, self.next_evict]
        if self.settings:
            cands.append(self.next_rescan)
        if self.next_retention is not None:
            cands.append(self.next_retention)
        if self.next_compact is not None:
            cands.append(self.next_compact)
        if self.write_failing:
            cands.append(self.retry_at)
        else:
            for pend in self.pending.values():
                for p in pend.values():
                    cands.append(p.due)
        oldest = self._oldest_batch()
        if oldest is not None and self.settings:
            cands.append(oldest + self.settings.flush_seconds)
        return min(cands)

    def _release_memory(self, *, forget_memo: bool = False) -> None:
        """After a big pass: drop the storage's `part_id` memo when asked (a cache: a partition's ids are read
        again at its next commit), then hand the freed memory back to the system (`memory.release`)."""
        self.read_since_release = 0
        if forget_memo:
            evict = getattr(self.storage, "evict_memo", None)
            if evict is not None:
                with contextlib.suppress(Exception):
                    evict(0)
        memory.release()

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _take_events(self, now: float) -> None:
        while self._events_in:
            paths = self._events_in.popleft()
            for path in paths:
                self._on_changed(path, now)

    def _on_changed(self, path: str, now: float) -> None:
        for c in self.clients.values():
            if not c.owns(path):
                continue
            if not c.accepts(path):
                if os.path.isdir(path):
                    c.need_discover = True
                    if not self._watch_check_due and not self._polling():
                        self._due_watch_check()  # (its watch may not have been added: the limit reached)
                return
            real = os.path.realpath(path)
            if path.endswith(".meta.json"):
                # a sidecar appeared: its agent file may be waiting for it
                agent = real[: -len(".meta.json")] + ".jsonl"
                if agent in c.files and agent in c.sidecar_first:
                    self.pending[c.name][agent] = _Pending(now, now)
                elif agent not in c.files:
                    c.need_discover = True
                return
            if real in c.files:
                pend = self.pending[c.name]
                if real not in pend:
                    pend[real] = _Pending(now + DEBOUNCE_S, now)
            elif os.path.exists(real) or path in c.files:
                c.need_discover = True  # a new file (or a vanished one)
            return

    def _poll(self, now: float) -> None:
        """Every poll: missing roots, and in polling mode the stat of known directories and files."""
        root_changed = False
        for c in self.clients.values():
            changed, _ = c.check_roots()
            self._note_root_state(c)
            if changed:
                root_changed = True
                c.need_discover = True
                # events may have been missed while the folder set changed: look at every file once
                for path in c.files:
                    self.pending[c.name].setdefault(path, _Pending(now, now))
                if c.watch_dirs:
                    log.info("%s: watching %d folder(s)", c.name, len(c.watch_dirs))
        if root_changed and self.watcher is not None and not isinstance(self.watcher, PollingWatcher):
            self._restart_watcher()
        if not self._polling() and self._watch_check_due:
            self._check_watch_set()
        if not self._polling():
            for c in self.clients.values():
                self._stat_files(c, c.outside, now)
            return
        for c in self.clients.values():
            for d, mtime in c.dirs.items():
                try:
                    if os.stat(d).st_mtime_ns != mtime:
                        c.need_discover = True
                        break
                except OSError:
                    c.need_discover = True
                    break
            self._stat_files(c, c.files, now)

    def _stat_files(self, c: ClientState, paths: Iterable[str], now: float) -> None:
        """A file whose size or mtime changed since the last look is due; a vanished one asks for discovery."""
        pend = self.pending[c.name]
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                c.need_discover = True
                continue
            sig = (st.st_size, st.st_mtime_ns)
            if c.stats.get(path) != sig:
                c.stats[path] = sig
                pend.setdefault(path, _Pending(now, now))

    # ------------------------------------------------------------------------------------------ reading
    def _due_files(self, force: bool) -> list[tuple[ClientState, SourceFile]]:
        now = self.clock.monotonic()
        out: list[tuple[ClientState, SourceFile]] = []
        for c in self.clients.values():
            pend = self.pending.get(c.name, {})
            due = [p for p, pd in pend.items() if force or pd.due <= now]
            due.sort(key=lambda p: c.order.get(p, 1 << 30))
            for p in due:
                f = c.files.get(p)
                if f is None:
                    pend.pop(p, None)
                    continue
                out.append((c, f))
        return out

    def _process_due(self, *, force: bool = False) -> None:
        items = self._due_files(force)
        if not items:
            return
        by_client: dict[str, dict[str, Checkpoint]] = {}
        counts: dict[str, int] = {}
        for c, _f in items:
            counts[c.name] = counts.get(c.name, 0) + 1
        for name, n in counts.items():
            if n > 20 and self.db is not None:
                by_client[name] = self.db.get_many(f.path_hash for c2, f in items if c2.name == name)
        items = self._in_reading_order(items, by_client)
        for c, f in items:
            if self._stop_requested or self.write_failing or self.resync_due:
                return
            cached = by_client.get(c.name)
            cp = cached.get(f.path_hash) if cached is not None else (self.db.get(f.path_hash) if self.db else None)
            self._read_file(c, f, cp)
            if self.clock.monotonic() >= self.next_status:
                # the heartbeat, also while a long catch-up reads thousands of files: a status left unwritten
                # for minutes is reported stale (control.STALE_AFTER_S)
                self.write_status()

    def _in_reading_order(
        self, items: list[tuple[ClientState, SourceFile]], by_client: dict[str, dict[str, Checkpoint]]
    ) -> list[tuple[ClientState, SourceFile]]:
        """The due files of each client whose importer orders its reads (`Importer.reading_order`, as a backfill
        and the setup import read them: `runner._reading_order`), so that a catch-up files a resumed Claude
        conversation under the original session as they do: first the files whose checkpoint matches their
        last seen stat (not read: nothing to order, and no tail read for each of them after a rescan), then
        the others in the importer's order. `items` come grouped by client (`_due_files`)."""
        out: list[tuple[ClientState, SourceFile]] = []
        i = 0
        while i < len(items):
            c = items[i][0]
            j = i
            while j < len(items) and items[j][0] is c:
                j += 1
            files = [f for _c, f in items[i:j]]
            i = j
            if not c.importer.reorders_reads or len(files) < 2:
                out.extend((c, f) for f in files)
                continue
            cached = by_client.get(c.name)
            same: list[SourceFile] = []
            read: list[SourceFile] = []
            for f in files:
                stored = cached.get(f.path_hash) if cached is not None else (
                    self.db.get(f.path_hash) if self.db is not None else None)  # fmt: skip
                cp = self._checkpoint_to_use(f, stored)
                unchanged = cp is not None and c.stats.get(f.path) == (cp.size, cp.mtime_ns)
                (same if unchanged else read).append(f)
            order = c.importer.reading_order(read) if len(read) > 1 else None
            if order is not None:
                read = [read[k] for k in order]
            out.extend((c, f) for f in same)
            out.extend((c, f) for f in read)
        return out

    def _checkpoint_to_use(self, f: SourceFile, stored: Checkpoint | None) -> Checkpoint | None:
        """The stored checkpoint (re-read: a backfill may have advanced it), or this process's own
        uncommitted one when that is further along on the same file."""
        mine = self.inflight.get(f.path_hash)
        if mine is None:
            return stored
        if stored is None:
            return mine
        same = (mine.device, mine.inode, mine.head_sha256) == (stored.device, stored.inode, stored.head_sha256)
        if same and (stored.offset > mine.offset or earlier_bound(stored, mine)):
            return stored  # (a backfill read it again from an earlier bound: carry that one on, as storage keeps it)
        return mine

    def _read_file(self, c: ClientState, f: SourceFile, stored: Checkpoint | None) -> None:
        from hypaware_tui.core.runner import FileOutcome, iter_file

        assert self.settings is not None
        pend = self.pending[c.name]
        now = self.clock.monotonic()
        cp = self._checkpoint_to_use(f, stored)
        try:
            st = os.stat(f.path)
        except FileNotFoundError:
            # gone (e.g. Codex compressed it): its entry stays until the daily retention pass
            pend.pop(f.path, None)
            c.need_discover = True
            return
        except OSError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            # no longer a regular file (a folder or a FIFO now has its name): skipped as discovery skips it
            # (codex.md §1, as a backfill and the wizard do); rediscovery drops it, its entry stays until the
            # daily retention pass, as for a file that is gone
            pend.pop(f.path, None)
            c.need_discover = True
            return
        if st is not None and cp is not None and (cp.size, cp.mtime_ns, cp.device, cp.inode) == (
            st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino
        ):
            pend.pop(f.path, None)
            c.stats[f.path] = (st.st_size, st.st_mtime_ns)
            c.scan.seen.add(f.path)
            return
        if st is not None and not self.once:
            wait = self._must_wait(c, f, cp, st, now)
            if wait is not None:
                pend[f.path] = _Pending(wait, pend[f.path].first if f.path in pend else now)
                return
        pend.pop(f.path, None)
        if st is not None:
            c.stats[f.path] = (st.st_size, st.st_mtime_ns)
        floor = self._floor_us()
        capture_us = capture_mod.capture_bound_us(self.captures.get(c.name))
        if cp is None:
            since = capture_mod.daemon_since_us(self.captures.get(c.name), floor)
        elif cp.since_us is not None and cp.since_us == capture_us:
            # The lines before the checkpoint were read from the capture start: the lines after it are read
            # from there too, or a file would give other rows depending on how many passes saw it grow (its
            # old lines dropped in one pass, taken in the next: daemon.md §3.1 rule 6, storage.md §5.5), and
            # the history the user declined would come in after all (daemon.md §3.2).
            since = cp.since_us if floor is None else max(floor, cp.since_us)
        else:
            since = floor
        window = Window(since_us=since, until_us=None)
        outcome = FileOutcome()
        batch = self.batches.setdefault(c.name, _Batch())
        gen = iter_file(
            c.importer, f, cp, window, outcome,
            write_checkpoints=True,
            batch_rows=self.settings.flush_rows,
            cancel=lambda: self._stop_requested,
            widen=False,  # the capture start is this daemon's own bound (daemon.md §2); a backfill widens
            capture_us=capture_us,
        )
        read = outcome.bytes_read
        try:
            for rows, update, _done in gen:
                if rows or update is not None:
                    if batch.since is None:
                        batch.since = self.clock.monotonic()
                    batch.rows.extend(rows)
                    if update is not None:
                        batch.updates[f.path_hash] = update
                        self.inflight[f.path_hash] = update.entry
                batch.bytes += outcome.bytes_read - read
                read = outcome.bytes_read
                if self._total_rows() >= self.settings.flush_rows or self._total_bytes() >= FLUSH_BYTES:
                    self.flush()
                    if self.write_failing or self.resync_due or self.home_lost is not None:
                        # stop reading: the rest of the file is read again after a successful flush (or the
                        # whole file, from its checkpoint, after a resync)
                        pend[f.path] = _Pending(self.retry_at if self.write_failing else now, now)
                        return
                    batch = self.batches.setdefault(c.name, _Batch())
        finally:
            gen.close()
        c.scan.seen.add(f.path)
        c.scan.read.add(f.path)
        c.scan.bytes_read += outcome.bytes_read
        self.read_since_release += outcome.bytes_read
        c.scan.stats.merge(outcome.stats)
        if outcome.status == "reset":
            c.scan.reset.add(f.path)
        if outcome.status in ("failed", "error"):
            c.scan.failed.add(f.path)
            msg = with_find_path(outcome.error or f"file {f.path_hash}: could not be read")
            if c.failing.get(f.path_hash) != msg:
                log.warning("%s: %s", c.name, msg)
            c.failing[f.path_hash] = msg
            c.failing_places[f.path_hash] = os.path.realpath(f.path)
            self._error(f"{c.name}: {msg}", c)
        else:
            c.scan.failed.discard(f.path)  # (read since it failed: not a failed file)
            if f.path_hash in c.failing:
                del c.failing[f.path_hash]
                c.failing_places.pop(f.path_hash, None)
                self._status_dirty = True
        c.sidecar_first.pop(f.path, None)
        c.whole_seen.pop(f.path, None)

    def _must_wait(self, c: ClientState, f: SourceFile, cp: Checkpoint | None, st: os.stat_result,
                   now: float) -> float | None:
        """When a file must not be read yet, the monotonic time to look again."""
        wall = self.clock.time()
        if f.read_mode == "whole":
            # storage.md §5.3: imported once size and mtime are unchanged over two polls
            poll = self._poll_s()
            sig = (st.st_size, st.st_mtime_ns)
            seen = c.whole_seen.get(f.path)
            settled_on_disk = wall - st.st_mtime_ns / 1e9 >= 2 * poll
            if settled_on_disk or (seen is not None and seen[:2] == sig and now - seen[2] >= poll):
                return None
            if seen is None or seen[:2] != sig:
                c.whole_seen[f.path] = (sig[0], sig[1], now)
            return now + poll
        if cp is None and c.name == "claude" and self._sidecar_missing(f):
            # claude.md §7.2 (SHOULD): wait for the sidecar of a new layout-(c) file, at most 30 s
            first = c.sidecar_first.setdefault(f.path, now)
            age = max(now - first, wall - st.st_mtime_ns / 1e9)
            if age < SIDECAR_WAIT_S:
                return min(now + 1.0, first + SIDECAR_WAIT_S)
        return None

    @staticmethod
    def _sidecar_missing(f: SourceFile) -> bool:
        d, name = os.path.split(f.path)
        if os.path.basename(d) != "subagents" or not name.startswith("agent-") or not name.endswith(".jsonl"):
            return False
        return not os.path.exists(os.path.join(d, name[: -len(".jsonl")] + ".meta.json"))

    # ------------------------------------------------------------------------------------------ flushing
    def _total_rows(self) -> int:
        return sum(len(b.rows) for b in self.batches.values())

    def _total_bytes(self) -> int:
        return sum(b.bytes for b in self.batches.values())

    def _oldest_batch(self) -> float | None:
        times = [b.since for b in self.batches.values() if b.since is not None and not b.empty]
        return min(times) if times else None

    def _flush_due(self, now: float) -> bool:
        if self.write_failing or self.settings is None:
            return False
        if self._total_rows() >= self.settings.flush_rows or self._total_bytes() >= FLUSH_BYTES:
            return True
        oldest = self._oldest_batch()
        return oldest is not None and now - oldest >= self.settings.flush_seconds

    def flush(self) -> bool:
        """Commit every client's batch: rows first, then checkpoints (Storage.commit). On failure the batch
        is kept and retried with backoff; the state is degraded until a flush succeeds."""
        if self.storage is None:
            return True
        cut = self._cut() if self.settings else None
        for name in list(self.batches):
            batch = self.batches[name]
            if batch.empty:
                del self.batches[name]
                continue
            try:
                res = self.storage.commit(batch.rows, list(batch.updates.values()), cut_date=cut, provider=name)
            except SchemaError:
                # A row that does not fit the schema is an importer bug on one file: retrying the batch
                # would never succeed, so commit file by file and set the offending file(s) aside.
                if not self._commit_per_file(name, batch, cut):
                    return False
                continue
            except Exception as exc:  # noqa: BLE001 - StorageError and anything else: keep the batch
                self._account_partial(name, exc)
                if self._not_written(exc):
                    return False
                self._write_failed(exc)
                return False
            del self.batches[name]
            for h in batch.updates:
                self.inflight.pop(h, None)
            self._account(name, res)
        if self.write_failing:
            self.write_failing = False
            self.backoff = BACKOFF_START_S
            self.degraded.pop("write", None)
            log.info("writing works again")
            self._status_dirty = True
        if self._status_dirty:
            # daemon.md §6: written on every flush, also during the catch-up at start, which showed `starting`
            # and 0 rows until its end (or the next heartbeat) however much it had imported
            self.write_status()
        return True

    def _commit_per_file(self, name: str, batch: _Batch, cut: str | None) -> bool:
        groups: dict[str, list[Row]] = {}
        for r in batch.rows:
            groups.setdefault(r.get("source_path_hash") or "", []).append(r)
        for h in batch.updates:
            groups.setdefault(h, [])
        c = self.clients.get(name)
        for h in list(groups):
            rows = groups[h]
            upd = batch.updates.get(h)
            try:
                res = self.storage.commit(rows, [upd] if upd else [], cut_date=cut, provider=name)
            except SchemaError as exc:
                msg = f"file {h}: the importer produced a row that does not fit the schema ({exc}); " \
                      "this file is skipped until it changes"
                log.error("%s: %s", name, msg)
                if c is not None:
                    c.failing[h] = msg
                self._error(f"{name}: {msg}", c)
            except Exception as exc:  # noqa: BLE001 - a write failure: keep what is left
                self._account_partial(name, exc)
                if self._not_written(exc):
                    return False
                batch.rows = [r for g in groups.values() for r in g]
                batch.updates = {k: v for k, v in batch.updates.items() if k in groups}
                self._write_failed(exc)
                return False
            else:
                self._account(name, res)
            del groups[h]
            batch.updates.pop(h, None)
            self.inflight.pop(h, None)
        self.batches.pop(name, None)
        return True

    def _not_written(self, exc: BaseException) -> bool:
        """A commit refused because HYP_HOME was moved (the daemon stops) or the dataset replaced (a resync):
        handled here, not retried as a write failure."""
        from hypaware_tui.core.storage import DatasetReplaced, HomeMoved

        if isinstance(exc, HomeMoved):
            self._lose_home()
            return True
        if isinstance(exc, DatasetReplaced):
            self._dataset_replaced()
            return True
        return False

    def _account_partial(self, name: str, exc: BaseException) -> None:
        """A commit that failed after writing part files (the checkpoint database full or locked after the
        Parquet files were renamed into place, or a full disk at a later partition): their rows are in the
        dataset, so they count. The batch is kept; its retry finds them as duplicates, which do not count."""
        partial = getattr(exc, "partial", None)
        if partial is not None and (partial.rows_written or partial.partitions):
            self._account(name, partial, note=", but not their checkpoints: their lines are read again and these "
                          "rows found as duplicates")

    def _account(self, name: str, res: Any, *, note: str = "") -> None:
        c = self.clients.get(name)
        written = int(getattr(res, "rows_written", 0) or 0)
        self.rows_written += written
        if written:
            now = self._now_iso()
            self.last_import_at = now
            if c is not None:
                c.last_import_at = now
            log.info("%s: imported %d row(s)%s", name, written, note)
        if c is not None:
            c.rows_written += written
            if not note:  # (a partial commit's scan is reported with the commit that ends it)
                self._emit_scan(c)
        self.touched.update(getattr(res, "partitions", None) or ())
        self._status_dirty = True

    def compact_grown(self) -> None:
        """Compact the partitions written since the last check that have reached `COMPACT_AT_FILES` files.
        After a failure, not before an hour has passed (it would fail again at every flush)."""
        if not self.touched or self.clock.monotonic() < self.compact_retry_at:
            return
        from hypaware_tui.core.storage import list_part_files

        names, self.touched = self.touched, set()
        root = self.layout.dataset_root
        try:
            grown = [n for n in sorted(names) if len(list_part_files(root / n)) >= COMPACT_AT_FILES]
        except OSError:  # an unreadable partition: the next flush or the daily pass tries again
            return
        if grown:
            self._compact(grown)

    def _compact(self, only: list[str] | None) -> None:
        compact = getattr(self.storage, "compact", None)
        if compact is None:
            return
        try:
            res = compact(only=only)
        except Exception as exc:  # noqa: BLE001 - the data is intact; tried again later
            res = None
            error = str(exc)
        else:
            error = res.error
        if error:
            log.error("compaction failed (the files were kept; nothing was lost): %s", error)
            self._error(f"compaction failed: {error}")
            self.compact_retry_at = self.clock.monotonic() + 3600.0
        if res is not None and res.partitions:
            log.info("compacted %d partition(s): %d files into %d", len(res.partitions),
                     sum(p.files_before for p in res.partitions), len(res.partitions))  # fmt: skip

    def _emit_scan(self, c: ClientState) -> None:
        s = c.scan
        if self.events is None or s.files_seen == 0 or s.files_seen == s.files_unchanged:
            c.scan = _Scan()
            return
        self.events.emit(
            "backfill.scan",
            provider=c.name,
            files_seen=s.files_seen,
            files_unchanged=s.files_unchanged,
            files_reset=len(s.reset),
            files_failed=len(s.failed),
            bytes_read=s.bytes_read,
            records_by_type=dict(sorted((k, v) for k, v in s.stats.records_by_type.items() if v)),
            lines_skipped=dict(sorted((k, v) for k, v in s.stats.lines_skipped.items() if v)),
            rows_held=s.stats.rows_held,
            usage_unattached=s.stats.usage_unattached,
            detected_sources=c.detected_sources,
        )
        c.scan = _Scan()

    def _write_failed(self, exc: BaseException) -> None:
        now = self.clock.monotonic()
        msg = self._write_failure_text(exc)
        if not self.write_failing:
            if msg.endswith(_RESTART):  # (a retry cannot pass the process's limit, but costs nothing: it goes on)
                log.error("%s; until then it keeps retrying (next in %g s)", msg, self.backoff)
            else:
                log.error("%s; retrying in %g s", msg, self.backoff)
        self.write_failing = True
        self.retry_at = now + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX_S)
        self.degraded["write"] = msg
        self._error(msg)
        self._refresh_state()

    def _write_failure_text(self, exc: BaseException) -> str:
        """What failed, and what to do, for the status and the log: the storage's own messages end with
        advice for a command ("run it again"), and the daemon retries by itself."""
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        if isinstance(cause, OSError):
            where = f" ({cause.filename})" if cause.filename else ""
            text = f"could not write to the dataset: {cause.strerror or cause}{where}"
            if cause.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
                text += "; free some disk space"
            elif cause.errno == errno.EFBIG:  # (the limit is the process's, set when it started: a retry cannot pass it)
                text += f"; {file_size_cause('the daemon')} stopped it: {_RESTART}"
            elif cause.errno in (errno.EMFILE, errno.ENFILE):  # (the daemon's own limit: set when it started)
                then = "restart the daemon" if cause.errno == errno.EMFILE else "the daemon tries again by itself"
                advice = too_many_files_advice(cause.errno, then)
                text += f"; {advice[0].lower()}{advice[1:]}"
            elif cause.errno == errno.EROFS:
                text += f"; {READ_ONLY_FS}"
            elif cause.errno in (errno.EACCES, errno.EPERM):
                text += f"; check that {self.layout.home} and everything in it are yours and writable"
            return text
        db = exc if isinstance(exc, StateDBError) else cause
        if isinstance(db, StateDBError) and db.cause == "file_size" and db.limit is not None and db.reason:
            # (SQLite's "disk I/O error" under a finite `ulimit -f`: the command's advice says "run it again")
            return f"could not write to the dataset: {db.reason}; {likely_file_size_cause(db.limit)}: {_RESTART}"
        if isinstance(db, StateDBError) and db.cause == "full" and db.reason:
            # (not "could not write to the dataset", which may have been written, nor the command's "run it
            # again": the daemon retries by itself)
            return f"{db.reason}; free some disk space"
        text = str(exc)
        return text if text.startswith("could not") else f"could not write to the dataset: {text}"

    # ------------------------------------------------------------------------------------------ retention
    def retention_pass(self) -> None:
        """daemon.md §4.4: prune partitions before the cut date and drop checkpoints of vanished files."""
        assert self.settings is not None
        self.next_retention = self.clock.monotonic() + RETENTION_EVERY_S
        hashes: dict[str, set[str] | None] = {}
        for c in self.clients.values():
            self._discover(c, mark_all=False)
            any_root = any(os.path.isdir(r) for r in c.roots)
            ok = c.discovered_ok and any_root
            hashes[c.name] = {f.path_hash for f in c.files.values()} | c.unread_hashes if ok else None
        try:
            self.storage.ensure_import_floor(self._floor_cut())
            if getattr(self.storage, "dataset_reset", False):
                # (the dataset was replaced since the last commit: what was read meanwhile goes, and is read
                # again from the reset checkpoints once the pass is done)
                self._said_dataset_reset()
                self._dataset_replaced()
                self.said_reset = True
            res = self.storage.prune(self._prune_days(), client_roots_hashes=hashes)
        except Exception as exc:  # noqa: BLE001
            self._error(f"the retention pass failed: {exc}")
            log.error("the retention pass failed: %s", exc)
            self.next_retention = self.clock.monotonic() + 3600.0
            return
        self.retention_applied_at = self._now_iso()
        self.rows_pruned = int(getattr(res, "rows_removed", 0) or 0)
        self.next_compact = max(self.clock.monotonic(), self.started + COMPACT_AFTER_START_S)
        kept = list(getattr(res, "kept_foreign", None) or [])
        if kept:  # (the partitions' entries hyp did not write stay where they are)
            log.info("retention: kept %d entr%s hyp did not write in the partitions it removed: %s", len(kept),
                     "y" if len(kept) == 1 else "ies", ", ".join(kept))
        removed = int(getattr(res, "checkpoints_removed", 0) or 0)
        if self.rows_pruned or removed:
            log.info("retention: removed %d row(s) before %s, %d checkpoint(s) of files gone or no longer "
                     "under the clients' folders",
                     self.rows_pruned, getattr(res, "cut_date", None), removed)
        self._status_dirty = True

    def _prune_days(self) -> int:
        """The retention the daily pass prunes to: the loaded one (a new one is used from the next SIGHUP or
        start, daemon.md §4.5), unless the config on disk now keeps more (a longer retention, or forever): a
        daemon nobody told of the change (hyp init's daemon action skipped by a hang-up) never deletes rows
        the config keeps. (`hyp status` says it runs with an older config.)"""
        assert self.settings is not None
        days = self.settings.retention_days
        disk = settings.load(self.layout)
        if disk.error is not None or disk.retention_days == days:
            return days
        if disk.retention_days == 0 or (days != 0 and disk.retention_days > days):
            log.info("retention: the config now keeps %s (this daemon loaded %s): nothing it keeps is deleted; "
                     "hyp daemon restart applies the new config",
                     _days_text(disk.retention_days), _days_text(days))
            return disk.retention_days
        return days

    # ------------------------------------------------------------------------------------------ reload
    def reload(self) -> None:
        """SIGHUP (daemon.md §4.5)."""
        new = settings.load(self.layout)
        if new.error is not None:
            msg = f"config reload failed, keeping the previous config: {new.error}"
            log.error(msg)
            self.degraded["reload"] = msg
            self._error(msg)
            self._refresh_state()
            return
        self.degraded.pop("reload", None)
        if not new.capture_enabled:
            log.info("capture is off in the config; stopping")
            self.settings = new
            self._stop_requested = True
            return
        # flush what was read under the old config before clients go away
        self.flush()
        old_days = self.settings.retention_days if self.settings is not None else None
        self.settings = new
        before = set(self.clients)
        self._setup_clients(new.clients)
        for name in set(self.clients) - before:
            self._discover(self.clients[name], mark_all=True)
        self._restart_watcher()
        log.info("config reloaded")
        if new.retention_days != old_days:
            self._floor_after_reload()
        self._refresh_state()
        self._status_dirty = True

    def _floor_after_reload(self) -> None:
        """A new retention from a reload: its import floor is recorded now, as at a start (storage.md §7.3). A
        longer one (or forever) resets the checkpoints, and the older history it keeps is read at once: it was
        read back only at the next daily pass or restart, up to a day after the reload. (A shorter one deletes
        at the daily pass, daemon.md §4.5.)"""
        try:
            lowered = self.storage.ensure_import_floor(self._floor_cut())
        except Exception as exc:  # noqa: BLE001 - tried again at the next retention pass
            self._error(f"could not record the import floor: {exc}")
            return
        if getattr(self.storage, "dataset_reset", False):
            self._said_dataset_reset()
            self._dataset_replaced()
            self.said_reset = True  # (`_resync` catches up at the next step)
        elif lowered:
            assert self.settings is not None
            log.info("retention: the config now keeps %s: reading the older history it keeps",
                     _days_text(self.settings.retention_days))
            self.catch_up()

    # ------------------------------------------------------------------------------------------ stopping
    def shutdown(self) -> None:
        """Stop watching, flush, write checkpoints (part of the commit), status `stopped`."""
        self._stopping = True
        if self.watcher is not None:
            with contextlib.suppress(Exception):
                self.watcher.stop()
        if self.home_lost is not None:
            return  # (nothing is written into a HYP_HOME that was moved away, nor a new one created)
        if self.storage is not None and not self.flush():
            log.error("stopping with unwritten rows; their lines are read again next time")
        self._set_state("stopped")
        self.write_status()

    def close(self) -> None:
        if self.watcher is not None:
            with contextlib.suppress(Exception):
                self.watcher.stop()
        for closer in (getattr(self.storage, "close", None), getattr(self.db, "close", None)):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.status_reserved and self.home_lost is None:  # (not in a HYP_HOME that took the old one's place)
            control.drop_status_reserve(self.layout)
        self.status_reserved = False

    # ------------------------------------------------------------------------------------------ run
    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old: dict[int, Any] = {}

        def on_stop(signum: int, _frame: Any) -> None:
            if self._stopping or self._stop_requested:
                os._exit(130)
            self._stop_requested = True
            self.wake()

        def on_hup(_signum: int, _frame: Any) -> None:
            self._reload_requested = True
            self.wake()

        for sig, fn in ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup)):
            old[sig] = signal.signal(sig, fn)
        return old

    def wait_until(self, deadline: float) -> None:
        timeout = min(MAX_WAIT_S, max(0.0, deadline - self.clock.monotonic()))
        if self._stop_requested or self._reload_requested or self._events_in:
            return
        with contextlib.suppress(InterruptedError, OSError, ValueError):
            select.select([self._wake_r], [], [], timeout)

    def run(self, *, once: bool = False) -> int:
        """The whole foreground life. Returns the exit code (0, 1; 130 is an immediate `os._exit`)."""
        old_umask = set_umask()
        try:
            return self._run(once)
        finally:
            os.umask(old_umask)

    def _run(self, once: bool) -> int:
        if self.pid_lock.fd is None:
            try:
                self.pid_lock.acquire()
            except control.AlreadyRunning as exc:
                log.error("%s", exc)
                return 1
        old = self._install_signals()
        try:
            with panics_as_errors("restart the daemon"):  # (a Polars panic is a BaseException: see below)
                code = self.start(once=once)
                if code is not None:
                    # (a pass that ended with an error ended too: left `starting`, the next start logged that it
                    # "ended unexpectedly"; not where HYP_HOME is gone, see `_home_here`)
                    if once and self.home_lost is None:
                        self._set_state("stopped")
                        self.write_status()
                    return code
                while not self._stop_requested:
                    deadline = self.step()
                    self.wait_until(deadline)
                self.shutdown()
            if self.home_lost is not None:
                return 1
            log.info("capture daemon stopped (pid %s)", self.pid)
            return 0
        except Exception as exc:
            known = _known_failure(exc)
            if known is not None:  # (a damaged checkpoint database, an unwritable dataset: nothing to debug)
                log.error("%s", known)
                self._error(known)
            else:
                log.exception("the capture daemon failed: %s", exc)
                self._error(f"the capture daemon failed: {type(exc).__name__}: {exc}")
            self._stopping = True
            with contextlib.suppress(Exception):
                if self.home_lost is None:
                    self.flush()
            self._set_state("stopped")
            with contextlib.suppress(Exception):
                self.write_status()
            return 1
        finally:
            for sig, handler in old.items():
                with contextlib.suppress(Exception):
                    signal.signal(sig, handler)
            self.close()
            self.pid_lock.release()


_RESTART = "raise it and restart the daemon"


def _days_text(days: int) -> str:
    return "everything" if days == 0 else f"{days} day{'s' if days != 1 else ''}"


def _known_failure(exc: BaseException) -> str | None:
    """The message of an error whose text already says what happened and what to do (the checkpoint
    database's, the storage's, the config's), shown as is without a traceback; None for anything else."""
    from hypaware_tui.core.config import ConfigError
    from hypaware_tui.core.storage import StorageError

    if isinstance(exc, PanicError):
        return None if exc.internal else str(exc)
    return str(exc) if isinstance(exc, StateDBError | StorageError | ConfigError) else None


# --------------------------------------------------------------------------------------------- logging


class NoSourcePaths(logging.Filter):
    """Rewrites a record's text and traceback with `scrub` (the loop's): no raw source path reaches the log or the
    terminal (storage.md §10), whatever an exception's text held (an OSError's file name, say)."""

    def __init__(self, scrub: Callable[[str], str]) -> None:
        super().__init__()
        self.scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
            clean = self.scrub(text)
            if clean != text:
                record.msg, record.args = clean, None
            if record.exc_info and not record.exc_text:
                record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
        except Exception:  # noqa: BLE001 - a record is still better logged than lost
            pass
        return True


class DaemonLogHandler(logging.Handler):
    """Appends to `logs/daemon.log`, rotating at 5 MB (3 kept). In detached/service mode stdout and
    stderr are that same file; after a rotation they are pointed at the new file, so a crash's traceback
    lands in the current log."""

    def __init__(self, layout: Layout, mode: str) -> None:
        super().__init__()
        self.layout = layout
        self.mode = mode
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
        self.failure: str | None = None  # why the log cannot be written, while it cannot
        # False once HYP_HOME was moved away (`DaemonLoop.home_ok`): the log is not opened by its path, which
        # would create the old HYP_HOME again. Detached, stderr is the moved log itself: the record goes there.
        self.home_ok: Callable[[], bool] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", errors="replace")
            if self.home_ok is not None and not self.home_ok():
                if self.mode != "foreground":  # (in the foreground, the terminal's handler shows it)
                    with contextlib.suppress(OSError):
                        os.write(2, data)
                return
            path = self.layout.daemon_log
            rotated = control.rotate_log(path, incoming=len(data))
            fd = control.open_log_append(path)
            try:
                os.write(fd, data)
                if rotated and self.mode != "foreground":
                    for std in (1, 2):
                        with contextlib.suppress(OSError):
                            os.dup2(fd, std)
            finally:
                os.close(fd)
        except OSError as exc:
            # a full disk, a read-only logs/ directory: one line on stderr (the terminal in the foreground),
            # not logging's traceback for every record; the daemon itself goes on
            if exc.errno == errno.EISDIR:
                why = f"cannot write to the log: {directory_in_the_way_message(self.layout.daemon_log)}"
            else:
                why = f"cannot write to the log {self.layout.daemon_log}: {exc.strerror or exc}"
            if why != self.failure:
                with contextlib.suppress(Exception):
                    sys.stderr.write(f"hyp daemon run: {why}\n")
                    sys.stderr.flush()
            self.failure = why
        except Exception:  # noqa: BLE001
            self.handleError(record)
        else:
            self.failure = None


class _TerminalFormatter(logging.Formatter):
    """The terminal's lines (`hyp daemon run` in the foreground): an unexpected error's traceback goes to the
    log file only, unless `HYP_DEBUG=1` (cli.md §1); the terminal says where it is. `explain`, when given, may
    add what to do to a message (the CLI's advice for an invalid config); the log file and the status keep the
    daemon's own words."""

    def __init__(self, fmt: str, log_path: os.PathLike[str] | str,
                 explain: Callable[[str], str] | None = None) -> None:
        super().__init__(fmt)
        self.log_path = log_path
        self.explain = explain

    def format(self, record: logging.LogRecord) -> str:
        if self.explain is not None:
            text = record.getMessage()
            said = self.explain(text)
            if said != text:
                record = logging.makeLogRecord({**record.__dict__, "msg": said, "args": None})
        if record.exc_info and os.environ.get("HYP_DEBUG") != "1":
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None, "args": None,
                                            "msg": f"{record.getMessage()} (traceback in {self.log_path})"})
        return super().format(record)


def configure_logging(layout: Layout, mode: str,
                      explain: Callable[[str], str] | None = None) -> list[logging.Handler]:
    logger = logging.getLogger("hypaware_tui.daemon")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handlers: list[logging.Handler] = [DaemonLogHandler(layout, mode)]
    if mode == "foreground":
        h = logging.StreamHandler()
        h.setFormatter(_TerminalFormatter("hyp daemon run: %(message)s", layout.daemon_log, explain))
        handlers.append(h)
    for h in handlers:
        logger.addHandler(h)
    return handlers


def run_daemon(layout: Layout, *, once: bool = False, env: Mapping[str, str] | None = None,
               importers: Mapping[str, Importer] | None = None, lock: control.PidLock | None = None,
               explain: Callable[[str], str] | None = None) -> int:
    """Entry point of `hyp daemon run`. `lock`: the pid lock, when the caller already holds it. `explain`: adds
    what to do to a message shown on the terminal (foreground only, see `_TerminalFormatter`)."""
    env = os.environ if env is None else env
    mode = control.daemon_mode(env)
    logger = logging.getLogger("hypaware_tui.daemon")
    before = (logger.level, logger.propagate)
    handlers = configure_logging(layout, mode, explain)
    try:
        loop = DaemonLoop(layout, env=env, importers=importers, mode=mode)
        for h in handlers:
            h.addFilter(NoSourcePaths(loop.scrub))
            if isinstance(h, DaemonLogHandler):
                h.home_ok = lambda: loop.home_lost is None
        if lock is not None:
            loop.pid_lock = lock
        return loop.run(once=once)
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(before[0])  # as it was, for an in-process caller (a test's log capture)
        logger.propagate = before[1]


__all__ = ["DaemonLoop", "FakeClock", "SystemClock", "run_daemon", "configure_logging"]
