"""The backfill runner (cli.md §5, storage.md §5-7 and §10): import the existing history of a list of
providers through the generic reader and the single committer.

    result = run_backfill(layout, ["claude", "codex"], window=w, write_checkpoints=True, dry_run=False)

* Providers run in the order given; one failing never stops the others.
* Per-file error isolation: a file that cannot be read, or whose parser raises, is counted in `errors` with
  a message naming its path hash, and the run continues. A failure outside per-file handling (detection,
  discovery, the checkpoint database) or a `StorageError` on commit makes the provider `failed`.
* Rows and checkpoint updates are buffered across files and committed through `Storage.commit` at least
  every `batch_rows` rows and every `flush_interval_s` seconds, and at the end of each provider.
* A dry run takes no lock, logs nothing and creates nothing (not even `HYP_HOME`); it deduplicates against
  the existing dataset read-only, so its `rows_written` equals what a real run would write.
* Progress goes to a `ProgressSink` (at most 10 events per second per provider); a `threading.Event` cancel
  flag is checked between batches: the current batch is committed, the provider becomes `cancelled`, and so
  do the remaining ones. (A group a parse worker is still reading is dropped, not waited for: its files'
  checkpoints did not move, so the next run reads them.)

With `workers > 1` (the default for imports of more than `PARALLEL_MIN_TOTAL` bytes) runs of small files are
parsed and encoded in a process pool, and committed in file order by the single committer in this process
(see `_parallel_file_results`).

No UI imports here: the CLI, the wizard and `hyp init --yes` all drive this through their own sinks.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import itertools
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from hypaware_tui.core import prog
from hypaware_tui.core.checkpoints import Checkpoint, CheckpointUpdate
from hypaware_tui.core.fmt import printable
from hypaware_tui.core.ids import new_run_id
from hypaware_tui.core.inventory import Inventory, before_window, client_figures, config_root
from hypaware_tui.core.paths import Layout, dangling_link_target
from hypaware_tui.core.reader import DEFAULT_BATCH_ROWS, FilePass, must_widen, nothing_read
from hypaware_tui.core.timeutil import now_us, us_to_iso
from hypaware_tui.core.window import DEFAULT_RETENTION_DAYS
from hypaware_tui.core.window import cut_date as compute_cut_date
from hypaware_tui.importers import KNOWN_CLIENTS
from hypaware_tui.importers.base import FileInventory, Importer, ParseStats, Row, SourceFile, Window

FLUSH_INTERVAL_S = 2.0
# Rows of large transcripts carry large contents: batches are also bounded by source bytes, so memory stays
# flat in the size of any one file (a 50 000-row batch of 10 kB tool results would be 500 MB).
BATCH_BYTES = 8 * 1024 * 1024
DEFAULT_WORKERS = 2  # parse processes for large imports (issue 8; see default_workers, _worth_parallel)
PROGRESS_INTERVAL_S = 0.1  # at most 10 progress events per second per provider

STATUSES = ("ok", "failed", "skipped", "cancelled")
#: the later errors with a path a provider's result keeps for a dry run's list (`ProviderResult.more_places`)
MORE_PLACES_KEPT = 200


# --------------------------------------------------------------------------------------------- results


@dataclass
class ProviderResult:
    """One provider's outcome. The first nine fields are exactly the cli.md §5.3 JSON keys."""

    provider: str
    status: str = "ok"
    files_scanned: int = 0
    sessions_seen: int = 0
    rows_written: int = 0
    duplicates_skipped: int = 0
    lines_skipped: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error: str | None = None
    # internal extras (events, progress, tests)
    # the path of the file or folder of the first error, for the terminal only: `error` (like every stored
    # message) names it by path hash, which a person cannot look up (storage.md §5.1, §10); never logged
    error_path: str | None = None
    # the errors after it that name a file or folder, with its path (`MORE_PLACES_KEPT` at most): a dry run
    # lists them, where the daemon's "Run hyp backfill --dry-run to see its path" sends a person whose file
    # was not the first to fail (terminal only, never logged, as `error_path`)
    more_places: list[tuple[str, str]] = field(default_factory=list)
    files_total: int = 0  # the files the pass reads (not those unchanged, nor those before the window)
    files_unchanged: int = 0
    # files not opened because they end before the window (`inventory.before_window`, `_dated_before_window`):
    # every line of theirs is older than `since`, so none of them is an `outside_window` line of the summary either
    files_outside_window: int = 0
    files_reset: int = 0
    files_failed: int = 0
    folders_failed: int = 0  # of `files_failed`: folders that could not be listed (permissions, a link to nothing)
    bytes_read: int = 0
    bytes_total: int = 0
    records_by_type: dict[str, int] = field(default_factory=dict)
    rows_built: int = 0
    rows_held: int = 0
    usage_unattached: int = 0
    detected_sources: list[str] = field(default_factory=list)
    lock_wait_ms: int = 0
    commits: int = 0
    duration_s: float = 0.0

    JSON_KEYS = (
        "provider",
        "status",
        "files_scanned",
        "sessions_seen",
        "rows_written",
        "duplicates_skipped",
        "lines_skipped",
        "errors",
        "error",
    )

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.JSON_KEYS}
        out["lines_skipped"] = dict(sorted(self.lines_skipped.items()))
        return out

    def note_error(self, message: str, path: str | None = None) -> None:
        self.errors += 1
        if self.error is None:
            self.error, self.error_path = message, path
        elif path is not None and len(self.more_places) < MORE_PLACES_KEPT:
            self.more_places.append((message, path))

    def fail(self, message: str) -> None:
        """A fatal error: it replaces an earlier per-file message, since it matters more."""
        if self.error is not None and self.error_path is not None and self.status != "failed":
            self.more_places.insert(0, (self.error, self.error_path))  # (still one of `other_errors`)
            del self.more_places[MORE_PLACES_KEPT:]
        self.status = "failed"
        self.error, self.error_path = message, None

    @property
    def other_errors(self) -> int:
        """Errors besides the one in `error` (a fatal error replaced the first file error: all of them)."""
        return self.errors if self.status == "failed" else max(0, self.errors - 1)


def error_notes(name: str, error: str | None, path: str | None, more: int, env: Mapping[str, str], *,
                logged: bool, more_places: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The lines under a summary table about one client's errors (cli.md §5.3: its first error): the error,
    the path of its file or folder so a person can find it (terminal only: stored messages name it by path
    hash), and how many more there were, and where to see them (`logged`: each is in the events log).

    A dry run (not `logged`) also lists `more_places`, the later errors that name a file or folder, each with
    its path: the daemon names a failing file by path hash and sends a person to `hyp backfill --dry-run` for
    its path, which must be there whichever error it was."""
    if not error:
        return []
    home = (env.get("HOME") or "").rstrip("/")

    def shown(p: str) -> str:
        # (printable: a name that is not UTF-8 shows its bytes as `\\xff`; a strict UTF-8 stdout refused it)
        return printable("~" + p[len(home):] if home and p.startswith(home + "/") else p)

    def note(message: str, where: str | None) -> None:
        # (printable: the error names a root or a file, whose escape sequence acted on the terminal)
        lines.append(f"  {name}: {printable(message)}")
        if where:
            # a link to nothing: where it points too, which names the drive that is not mounted
            target = dangling_link_target(where)
            lines.append(f"    at {shown(where)}" + (f" (a link to {shown(target)})" if target else ""))

    lines: list[str] = []
    note(error, path)
    if not logged:
        for message, where in more_places[:more]:
            note(message, where)
            more -= 1
    if more > 0:
        if logged:
            where = (f"{prog.NAME} status shows the latest errors; the events log has each, by path hash; "
                     f"{prog.NAME} backfill --dry-run lists their paths")
        else:
            where = "a run without --dry-run logs each one"
            if len(more_places) >= MORE_PLACES_KEPT:
                where = f"only the first {MORE_PLACES_KEPT + 1:,} are listed; {where}"
        lines.append(f"  {name}: and {more:,} more {'error' if more == 1 else 'errors'} ({where}).")
    return lines


def unsaved_files_text(n: int) -> str:
    """What the progress says, once an import stopped, of `Progress.files_unsaved`."""
    files = "1 more file was" if n == 1 else f"{n:,} more files were"
    return f"{files} read but not saved; the next run reads {'it' if n == 1 else 'them'} again"


def unread_text(files: int, folders: int) -> str:
    """`1 file`, `2 folders`, `2 files and 1 folder`: what could not be read (`files` counts the folders too)."""
    files = max(files - folders, 0)
    return " and ".join(f"{n:,} {w}{'' if n == 1 else 's'}" for n, w in ((files, "file"), (folders, "folder")) if n)


def nothing_new_text(duplicates: int, files_unchanged: int, files_failed: int = 0,
                     folders_failed: int = 0) -> str | None:
    """cli.md §5.3's closing line for an import that wrote no row but found history it already had; None
    otherwise. When files were also skipped as unchanged, the duplicates are only the rows of the files read:
    "all D rows in this window" would be false (the window holds the unchanged files' rows too), so the line
    names both. `files_failed` (of which `folders_failed` are folders) could not be read: nothing says their
    history is in the dataset (a folder on a drive not mounted may hold any number of new sessions), so the
    line says what it is sure of and what was not read."""
    if (duplicates or files_unchanged) and files_failed:
        unread = unread_text(files_failed, folders_failed)
        return f"Nothing new to import from what could be read: {unread} could not be read (see above)."
    if duplicates and files_unchanged:
        rows = "the 1 row read is" if duplicates == 1 else f"the {duplicates:,} rows read are"
        files = "1 file is" if files_unchanged == 1 else f"{files_unchanged:,} files are"
        return (f"Nothing new to import: {rows} already in the dataset and {files} unchanged since the last "
                "import.")
    if duplicates:
        if duplicates == 1:
            return "Nothing new to import: the 1 row in this window is already in the dataset."
        return f"Nothing new to import: all {duplicates:,} rows in this window are already in the dataset."
    if files_unchanged:
        return "Nothing new to import: no history was added since the last import."
    return None


@dataclass
class BackfillResult:
    run_id: str
    dry_run: bool
    since_us: int | None
    until_us: int | None
    providers: list[ProviderResult]
    retention_days: int | None = None
    cut_date: str | None = None
    write_checkpoints: bool = True
    duration_s: float = 0.0

    @property
    def status(self) -> str:
        statuses = {p.status for p in self.providers}
        if "failed" in statuses:
            return "failed"
        if "cancelled" in statuses:
            return "cancelled"
        return "ok"

    @property
    def cancelled(self) -> bool:
        return any(p.status == "cancelled" for p in self.providers)

    @property
    def exit_code(self) -> int:
        """cli.md §5.3 with the precedence of wizard.md §11: 130 when interrupted, else 1 when a provider
        failed, else 0."""
        if self.cancelled:
            return 130
        if any(p.status == "failed" for p in self.providers):
            return 1
        return 0

    @property
    def rows_written(self) -> int:
        return sum(p.rows_written for p in self.providers)

    @property
    def duplicates_skipped(self) -> int:
        return sum(p.duplicates_skipped for p in self.providers)

    @property
    def files_unchanged(self) -> int:
        return sum(p.files_unchanged for p in self.providers)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "since": us_to_iso(self.since_us),
            "until": us_to_iso(self.until_us),
            "providers": [p.to_json() for p in self.providers],
        }


@dataclass
class Progress:
    provider: str
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    sessions: int
    rows_written: int
    duplicates: int
    lines_skipped: dict[str, int]
    errors: int
    elapsed_s: float
    rows_pending: int = 0  # rows parsed but not committed yet
    final: bool = False
    files_unchanged: int = 0  # files not read because unchanged since their checkpoint (not in files_total)
    # (the final report of a run a stop or a failure ended) files the live progress showed as read whose rows
    # were never committed: the parse workers' results not taken yet, dropped. Not in files_done, as in the
    # result; said beside it (`unsaved_files_text`), else the figures went backwards unexplained at the stop
    # (`27% … files 1,893/4,620`, then `16% … files 841`).
    files_unsaved: int = 0


class ProgressSink(Protocol):
    """What the runner reports to. Implementations must be cheap and thread-safe enough to be called from
    the runner's thread (the wizard forwards them as messages). `on_lock_wait` is optional."""

    def on_provider_start(self, provider: str, bytes_total: int, files_total: int) -> None: ...

    def on_progress(self, progress: Progress) -> None: ...

    def on_provider_finish(self, result: ProviderResult) -> None: ...


class NullSink:
    def on_provider_start(self, provider: str, bytes_total: int, files_total: int) -> None:
        pass

    def on_progress(self, progress: Progress) -> None:
        pass

    def on_provider_finish(self, result: ProviderResult) -> None:
        pass

    def on_lock_wait(self, provider: str) -> None:
        pass


# --------------------------------------------------------------------------------------------- commit


class _DryRunDedupe:
    """storage.md §6.2 steps 2-3 without writing: the part_ids of the touched partitions of the existing
    dataset (read-only, `part_id` column only), plus everything this run already counted."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.memo: dict[tuple[str, str], set[str]] = {}
        # The real run would reset every checkpoint first (storage.md §7.3, the import floor was lowered):
        # the preview reads every file from its start too. Set by `run_backfill`.
        self.fresh = False

    def _partition(self, source: str, date: str) -> set[str]:
        key = (source, date)
        ids = self.memo.get(key)
        if ids is None:
            ids = set()
            pdir = self.layout.partition_dir(source, date)
            if pdir.is_dir():
                from hypaware_tui.core.schema import import_polars

                pl = import_polars()
                for f in sorted(pdir.glob("*.parquet")):
                    try:
                        ids.update(pl.read_parquet(f, columns=["part_id"], glob=False)["part_id"].to_list())
                    except (OSError, pl.exceptions.PolarsError):
                        continue  # vanished (compaction) or unreadable: a real run would say so
            self.memo[key] = ids
        return ids

    def count(self, keys: Iterable[tuple[str, str, str]], cut: str | None) -> tuple[int, int]:
        """`keys` = (client_name, date, part_id) per row, in batch order."""
        written = dups = 0
        for source, date, pid in keys:
            if cut is not None and date < cut:
                continue
            ids = self._partition(source, date)
            if pid in ids:
                dups += 1
            else:
                ids.add(pid)
                written += 1
        return written, dups


class _Committer:
    """Buffers rows and checkpoint updates across files; flushes through `Storage.commit` (or the dry-run
    deduper) and accounts the result on the provider. A session counts in `sessions_seen` once a commit holds
    one of its rows written or duplicate (cli.md §5.3; the storage's `CommitResult.session_ids`), so a run that
    failed at its first commit (a full disk) does not claim the sessions it only read. A dry run, which commits
    nothing, counts the session ids that travel with the buffered rows and the workers' units."""

    def __init__(
        self,
        storage: Any,
        dry: _DryRunDedupe | None,
        cut: str | None,
        result: ProviderResult,
        on_wait: Callable[[], None] | None,
        *,
        batch_rows: int,
        flush_interval_s: float,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.storage = storage
        self.dry = dry
        self.cut = cut
        self.result = result
        self.on_wait = on_wait
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self.batch_bytes = batch_bytes
        self.pending_bytes = 0  # source bytes behind the buffered rows
        self.dropped = False  # a batch was not written (interrupted while waiting for the lock)
        self.rows: list[Row] = []  # rows parsed in this process, in batch order
        self.count = 0
        self.sessions: set[str] = set()  # of the buffered rows
        self.seen: set[str] = set()  # of the rows committed (written or duplicate): the result's sessions_seen
        self.updates: dict[str, CheckpointUpdate] = {}
        self.last_flush = time.monotonic()

    @property
    def pending(self) -> int:
        return self.count

    def add(self, rows: list[Row], update: CheckpointUpdate | None, source_bytes: int = 0,
            sessions: set[str] | None = None) -> None:
        """Buffer a batch of row dicts, the session ids of those rows and its checkpoint update. Order is kept.
        The rows are moved: `rows` is left empty, so that the reader's batch (the same list, held by the
        generators that produced it) does not keep them alive once the commit released them (see
        `Storage.commit`'s `release_rows`)."""
        self.pending_bytes += source_bytes
        if rows:
            self.rows.extend(rows)
            self.count += len(rows)
            rows.clear()
        if sessions:
            self.sessions |= sessions
        if update is not None:
            self.updates[update.entry.path_hash] = update  # a later update of the same file supersedes

    def due(self) -> bool:
        if self.count >= self.batch_rows or (self.count and self.pending_bytes >= self.batch_bytes):
            return True
        return bool(self.count or self.updates) and time.monotonic() - self.last_flush >= self.flush_interval_s

    def flush(self) -> None:
        rows = self.rows
        updates = list(self.updates.values())
        sessions = self.sessions
        self.rows, self.updates, self.count, self.sessions = [], {}, 0, set()
        self.pending_bytes = 0
        self.last_flush = time.monotonic()
        if not rows and not updates:
            return
        if self.dry is not None:
            self._dry_count((r["client_name"], r["date"], r["part_id"]) for r in rows)
            self._seen(sessions)
            return
        try:
            self._commit(rows, updates)
        finally:
            # The interval counts reading time only: counted from the start of a commit, a commit that took
            # most of the interval (history spread over hundreds of days: a file per day touched) left
            # little reading before the next one, and many small commits wrote several times the files.
            self.last_flush = time.monotonic()

    def commit_unit(self, unit: _Unit) -> None:
        """Commit what a parse worker prepared (rows of consecutive files, encoded ahead), after anything
        buffered before it: the commit order is the file order, as in a sequential run."""
        self.flush()
        if unit.payload is None and not unit.updates:
            return
        self.last_flush = time.monotonic()
        if self.dry is not None:
            self._dry_count(unit.payload or ())
            self._seen(unit.sessions)
            return
        self._commit(unit.payload if unit.payload is not None else [], unit.updates)

    def _dry_count(self, keys: Iterable[tuple[str, str, str]]) -> None:
        assert self.dry is not None
        w, d = self.dry.count(keys, self.cut)
        self.result.rows_written += w
        self.result.duplicates_skipped += d

    def _seen(self, sessions: set[str]) -> None:
        if sessions:
            self.seen |= sessions
            self.result.sessions_seen = len(self.seen)

    def _commit(self, rows: Any, updates: list[CheckpointUpdate]) -> None:
        from hypaware_tui.core.storage import LockWaitCancelled, StorageError

        if self.dropped:
            return  # a batch before this one was not written: nothing after it may be (its checkpoints would skip it)
        try:
            res = self.storage.commit(
                rows, updates, cut_date=self.cut, on_wait=self.on_wait, provider=self.result.provider,
                release_rows=True,  # (a failed commit is not retried from these rows: they are not needed after)
            )
        except LockWaitCancelled:
            # Interrupted while another process held the lock: this batch is not written, and its lines are
            # read again next time (its checkpoints were not written either).
            self.dropped = True
            return
        except StorageError as exc:
            # A commit that failed midway (a full disk at its third partition file) kept the files it wrote
            # before the error: their rows are in the dataset, and counted, with the sessions of every partition
            # whose step completed (written, or all duplicates: a commit of duplicates only that failed at the
            # checkpoint database counts their sessions too), so the summary says what the run did.
            if exc.partial is not None:
                self._account(exc.partial)
            raise
        self._account(res)

    def _account(self, res: Any) -> None:
        # (the sessions of the partitions the commit completed, from the storage: those of rows written or
        # duplicate, cli.md §5.3; the buffered `sessions` serve the dry run, which writes nothing)
        self._seen(res.session_ids or set())
        self.result.rows_written += res.rows_written
        self.result.duplicates_skipped += res.duplicates_skipped
        self.result.lock_wait_ms += int(getattr(res, "lock_wait_ms", 0) or 0)
        self.result.commits += 1


class _Throttle:
    def __init__(self, interval: float = PROGRESS_INTERVAL_S) -> None:
        self.interval = interval
        self.last = -1e9

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            return True
        return False


# --------------------------------------------------------------------------------------------- per file


@dataclass
class FileOutcome:
    """What one file pass produced, streamed as `(rows, update, bytes_done)` batches by `iter_file`."""

    status: str = "pending"  # unchanged | read | reset | vanished | failed | error
    bytes_read: int = 0
    error: str | None = None
    path: str | None = None  # the file's path when it failed: for the terminal only, never logged
    stats: ParseStats = field(default_factory=ParseStats)
    cut_short: bool = False  # the pass was cancelled before the end of the file


def _scrub(message: str, file: SourceFile) -> str:
    """Never let a raw source path reach an output or the events log (storage.md §10)."""
    return message.replace(file.path, f"<file {file.path_hash}>")


def iter_file(
    importer: Importer,
    file: SourceFile,
    checkpoint: Checkpoint | None,
    window: Window,
    outcome: FileOutcome,
    *,
    write_checkpoints: bool,
    batch_rows: int,
    cancel: Callable[[], bool],
    batch_bytes: int | None = BATCH_BYTES,
    widen: bool = True,
    capture_us: int | None = None,
) -> Iterator[tuple[list[Row], CheckpointUpdate | None, int]]:
    """One file through `FilePass`, with per-file error isolation: an exception from the importer ends the
    file (outcome.status = "error") instead of the run. Batches already yielded stay valid (their
    checkpoint covers exactly their rows)."""
    fp = FilePass(
        importer,
        file,
        checkpoint,
        window,
        outcome.stats,
        write_checkpoints=write_checkpoints,
        batch_rows=batch_rows,
        cancel=cancel,
        batch_bytes=batch_bytes,
        widen=widen,
        capture_us=capture_us,
    )
    try:
        for batch in fp.batches():
            # (current at each batch: a unit closed mid-file tells the committer what its part of the file counts)
            outcome.status, outcome.bytes_read = fp.status, fp.bytes_read
            yield batch.rows, batch.update, batch.bytes_done
    except Exception as exc:  # parser or decoder bug on this file only
        outcome.status = "error"
        outcome.bytes_read = fp.bytes_read
        outcome.error = _scrub(f"file {file.path_hash}: {type(exc).__name__}: {exc}", file)
        outcome.path = file.path
        return
    outcome.status = fp.status
    outcome.bytes_read = fp.bytes_read
    outcome.cut_short = fp.cut_short
    if fp.status == "failed":
        outcome.error = _scrub(f"file {file.path_hash}: {fp.error}", file)
        outcome.path = file.path


# StateDB.stat_keys: size, mtime_ns, device, inode, offset, since_us
_StatKey = tuple[int, int, int | None, int | None, int, int | None]


def _bytes_to_read(
    file: SourceFile, size: int, dev_ino: tuple[int, int], key: _StatKey, since_us: int | None
) -> int:
    """Estimate of the bytes a pass will read (the progress bar's total) of a file with a checkpoint that
    does not match its stat."""
    offset = key[4]
    if file.read_mode == "whole" or (key[2], key[3]) != dev_ino or size < offset or must_widen(key[5], since_us):
        return size
    return size - offset


# --------------------------------------------------------------------------------------------- the run


def _retention_from_config(config: Any) -> int:
    value = getattr(config, "retention_days", None) if config is not None else None
    if value is None and isinstance(config, Mapping):
        value = config.get("retention_days")
    return int(value) if isinstance(value, int) else DEFAULT_RETENTION_DAYS


def order_providers(names: Iterable[str] | None) -> list[str]:
    """Deduplicated, in the order named; none named = claude then codex."""
    if not names:
        return list(KNOWN_CLIENTS)
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def run_backfill(
    layout: Layout,
    providers: Iterable[str],
    *,
    window: Window,
    write_checkpoints: bool,
    dry_run: bool,
    sink: ProgressSink | None = None,
    cancel: threading.Event | None = None,
    env: Mapping[str, str] = os.environ,
    config: Any = None,
    importers: Mapping[str, Importer] | None = None,
    run_id: str | None = None,
    workers: int | None = None,
    retention_days: int | None = None,
    now: int | None = None,
    inventory: Inventory | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    flush_interval_s: float = FLUSH_INTERVAL_S,
    batch_bytes: int = BATCH_BYTES,
) -> BackfillResult:
    """Import the history of `providers` (in that order) inside `window`.

    `retention_days` defaults to the config's (120 without one) and, with `now` (µs, default: the wall
    clock at the call), gives the cut date used for the import floor (storage.md §7); `window.since_us` is
    expected to already be the later of `--since` and that floor (see `core.window.resolve_window`).
    `inventory`, when the caller has one (the wizard), supplies the `backfill.plan` figures. `workers`: parse
    processes for large imports (None = `default_workers()`; 1 = everything in this process). A window with
    an `until` and no `started_us` gets the wall clock at the call (see `Window.started_us`)."""
    started = time.monotonic()
    if window.until_us is not None and window.started_us is None:
        window = replace(window, started_us=now_us())
    sink = sink or NullSink()
    cancel = cancel or threading.Event()
    run_id = run_id or new_run_id()
    names = order_providers(providers)
    if importers is None:
        from hypaware_tui.importers import get_importer

        importers = _LazyImporters(get_importer)
    retention = retention_days if retention_days is not None else _retention_from_config(config)
    now = now if now is not None else now_us()
    cut = compute_cut_date(retention, now)
    write_cps = write_checkpoints and not dry_run

    result = BackfillResult(
        run_id=run_id,
        dry_run=dry_run,
        since_us=window.since_us,
        until_us=window.until_us,
        providers=[],
        retention_days=retention,
        cut_date=cut,
        write_checkpoints=write_cps,
    )

    events = storage = None
    workers = default_workers() if workers is None else workers
    pool = _Pool(workers) if workers > 1 else None
    dry = _DryRunDedupe(layout) if dry_run else None
    # Every run that commits checks the floor first, one with --since too (it commits rows): after retention
    # was raised, it would otherwise find every file unchanged and import nothing of the older history. A dry
    # run reads it (`_floor_would_be_lowered`) at the same place, so that a checkpoint database it cannot read
    # fails each provider with the real run's error, rather than the whole command.
    floor_ensured = False
    if not dry_run:
        from hypaware_tui.core.events import EventLog

        events = EventLog(layout, run_id, enabled=True)
        events.emit(
            "backfill.start",
            providers=names,
            retention_days=retention,
            cut_date=cut,
            since=us_to_iso(window.since_us),
            until=us_to_iso(window.until_us),
        )

    lookahead: _Lookahead | None = None
    if pool is not None:

        def prepare(n: str) -> _Prepared:
            return _prepare_provider(importers[n], n, layout=layout, window=window, write_checkpoints=write_cps,
                                     dry=dry, env=env, config=config, inventory=inventory)  # fmt: skip

        def make_feed(n: str, prep: _Prepared) -> _Feed:
            return _Feed(pool, importers[n], prep.files, prep.checkpoints, window, write_checkpoints=write_cps,
                         batch_rows=batch_rows, batch_bytes=batch_bytes, cut=cut, dry_run=dry_run)  # fmt: skip

        lookahead = _Lookahead(pool, prepare, make_feed)
    try:
        for index, name in enumerate(names):
            pr = ProviderResult(provider=name)
            result.providers.append(pr)
            if cancel.is_set():
                pr.status = "cancelled"
                _finish_provider(pr, events, sink)
                continue
            t0 = time.monotonic()
            if lookahead is not None:
                lookahead.next_name = names[index + 1] if index + 1 < len(names) else None
            try:
                if not dry_run and storage is None:
                    storage = _open_storage(layout, events, cancel)
                if not floor_ensured:
                    # storage.md §7.3: a floor earlier than the last commit's resets every checkpoint first.
                    # And when the dataset is not the one the checkpoints describe (deleted, restored from a
                    # copy), every checkpoint is reset too, and the run says so.
                    if dry is not None:
                        replaced = _dataset_replaced(layout)
                        dry.fresh = replaced or _floor_would_be_lowered(layout, cut)
                    else:
                        storage.ensure_import_floor(cut, on_wait=lambda n=name: _lock_wait(sink, n))
                        replaced = getattr(storage, "dataset_reset", False)
                    floor_ensured = True
                    if replaced:
                        _notice(sink, name, _dataset_replaced_text(layout, ahead=dry is not None))
                _run_provider(
                    pr,
                    importers[name],
                    layout=layout,
                    window=window,
                    write_checkpoints=write_cps,
                    storage=storage,
                    dry=dry,
                    cut=cut,
                    sink=sink,
                    cancel=cancel,
                    env=env,
                    config=config,
                    events=events,
                    inventory=inventory,
                    batch_rows=batch_rows,
                    batch_bytes=batch_bytes,
                    flush_interval_s=flush_interval_s,
                    pool=pool,
                    prepared=lookahead.take(name) if lookahead is not None else None,
                    lookahead=lookahead,
                )
            except Exception as exc:
                if storage is not None and isinstance(exc, _lock_wait_cancelled()):  # (at the import floor's wait)
                    pr.status = "cancelled"
                else:
                    pr.fail(_fatal_message(exc))
            pr.duration_s = time.monotonic() - t0
            _finish_provider(pr, events, sink)
    finally:
        if pool is not None:
            pool.close(stop_now=cancel.is_set())
    result.duration_s = time.monotonic() - started
    if events is not None:
        events.emit(
            "backfill.finish",
            status=result.status,
            rows_written=result.rows_written,
            duplicates_skipped=result.duplicates_skipped,
            error_count=sum(p.errors for p in result.providers)
            + sum(1 for p in result.providers if p.status == "failed"),
            duration_ms=int(result.duration_s * 1000),
        )
    if storage is not None:
        close = getattr(storage, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass
    return result


class _LazyImporters(Mapping[str, Importer]):
    """The default registry, importing a client's module only when that client runs."""

    def __init__(self, get: Callable[[str], Importer]) -> None:
        self._get = get

    def __getitem__(self, name: str) -> Importer:
        return self._get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(KNOWN_CLIENTS)

    def __len__(self) -> int:
        return len(KNOWN_CLIENTS)


def _open_storage(layout: Layout, events: Any, cancel: threading.Event | None = None) -> Any:
    from hypaware_tui.core.storage import Storage

    storage = Storage(layout, events=events)
    if cancel is not None:
        storage.cancel = cancel.is_set
    return storage


def _fatal_message(exc: BaseException) -> str:
    try:
        from hypaware_tui.core.storage import StorageError
    except ImportError:  # pragma: no cover - storage always exists in a real install
        StorageError = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(exc, StorageError):
        return str(exc)  # storage messages say what happened and what to do; shown as is
    from hypaware_tui.core.checkpoints import StateDBError

    if isinstance(exc, StateDBError):
        return str(exc)
    return f"the importer stopped: {type(exc).__name__}: {exc}"


def _lock_wait(sink: Any, provider: str) -> None:
    fn = getattr(sink, "on_lock_wait", None)
    if fn is not None:
        try:
            fn(provider)
        except Exception:
            pass


def _notice(sink: Any, provider: str, message: str) -> None:
    fn = getattr(sink, "on_notice", None)
    if fn is not None:
        try:
            fn(provider, message)
        except Exception:
            pass


def _finish_provider(pr: ProviderResult, events: Any, sink: ProgressSink) -> None:
    if events is not None:
        events.emit(
            "backfill.provider_finish",
            provider=pr.provider,
            status=pr.status,
            files_scanned=pr.files_scanned,
            rows_written=pr.rows_written,
            duplicates_skipped=pr.duplicates_skipped,
            errors=pr.errors,
            error=pr.error if pr.status != "skipped" else "not detected",
        )
    try:
        sink.on_provider_finish(pr)
    except Exception:
        pass  # a broken sink must not change the result


def _lock_wait_cancelled() -> type[Exception]:
    from hypaware_tui.core.storage import LockWaitCancelled  # (loaded already wherever a Storage exists)

    return LockWaitCancelled


def _floor_would_be_lowered(layout: Layout, cut: str | None) -> bool:
    """Whether `Storage.ensure_import_floor(cut)` would reset every checkpoint (read-only, for a dry run)."""
    from hypaware_tui.core.storage import META_IMPORT_FLOOR, floor_lowered

    if not layout.ingest_db.exists():
        return False
    db = _open_state(layout, dry_run=True)
    try:
        return floor_lowered(db.get_meta(META_IMPORT_FLOOR), cut)
    finally:
        db.close()


def _dataset_replaced(layout: Layout) -> bool:
    from hypaware_tui.core.storage import dataset_replaced

    return dataset_replaced(layout)


def _dataset_replaced_text(layout: Layout, *, ahead: bool) -> str:
    from hypaware_tui.core.storage import dataset_replaced_text

    return dataset_replaced_text(layout, ahead=ahead)


def _open_state(layout: Layout, *, dry_run: bool) -> Any:
    """The state database to read checkpoints from (read-only and empty when there is none yet: opening it
    creates nothing; a dry run never writes)."""
    from hypaware_tui.core.checkpoints import StateDB

    return StateDB.open(layout, create=not dry_run and layout.ingest_db.exists())


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic collector off while discovery and the checkpoint comparison allocate a few objects per file
    of the history and free none of them: its full passes over the growing heap took 0.05 s of a rerun over
    40,000 files. Nothing made there forms a cycle left for it to free. Back on after, unless it was off."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _before_window(
    inventory: Inventory | None, client: str, since_us: int | None
) -> dict[str, FileInventory]:
    """The files of `client` that the inventory found to end before the window (`inventory.before_window`,
    the rule of the in-window figures the Review screen and `hyp backfill plan` show), by path hash: a file
    without a checkpoint among them is not read, if its stat is still the one the inventory saw (a session
    resumed since has grown: it is read, whole), and gets a checkpoint of nothing read (`reader.nothing_read`),
    so that the daemon and the next backfill find it unchanged. Only the files whose last timestamp was found
    count: a file dated by its mtime alone is read. Without an inventory (`hyp backfill`) the same rule dates
    each file by its own tail scan (`_dated_before_window`); the daemon reads every file."""
    ci = inventory.clients.get(client) if inventory is not None and since_us is not None else None
    if ci is None:
        return {}
    # Its last write before `since` too (its mtime): a stamp is the client's word, the mtime the file
    # system's. Stamps out of order (a clock set back), or a tail line the stamps were not read from, must not
    # cost the rows of a file written in the window; a history copied without its mtimes is read (and its
    # lines before the window skipped one by one), slower, nothing lost.
    return {fi.file.path_hash: fi for fi in ci.files
            if fi.last_ts is not None and before_window(fi, since_us) and fi.mtime_ns // 1000 < since_us}


def _dated_before_window(
    importer: Importer, f: SourceFile, size: int, mtime_ns: int, ino: int | None, since_us: int
) -> bool:
    """`_before_window`'s rule for a file no inventory saw (`hyp backfill` has none): its mtime is before
    `since`, and so is its last timestamp, found by the inventory's own tail scan (`Importer.last_timestamp`:
    the same lines parsed the same way, a line with a lone surrogate escape or invalid UTF-8 included). The
    tail is read only for a file whose mtime is already before `since` (a file written in the window, or now,
    is read without one). False (the file is read) when no timestamp is found in the tail, when the file
    cannot be read (its pass reports it), or when its stat changed during the scan (a file being written)."""
    if mtime_ns // 1000 >= since_us:
        return False
    try:
        last = importer.last_timestamp(f, size, mtime_ns)
        if last is None or last >= since_us:
            return False
        st = os.stat(f.path)
    except Exception:  # noqa: BLE001 - a scan that fails dates nothing: the file is read, its pass reports it
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns and (ino is None or st.st_ino == ino)


def _reading_order(
    importer: Importer, name: str, files: list[tuple[SourceFile, int]], inventory: Inventory | None
) -> list[tuple[SourceFile, int]]:
    """The files a pass opens in the importer's reading order (`Importer.reading_order`: a Claude session
    resumed into a new file is read before its copy), the inventory's entries reused where it has one (the
    setup import). Both the sequential and the parallel paths take the files in this order, and the committer
    commits in it."""
    ci = inventory.clients.get(name) if inventory is not None else None
    known = {fi.file.path_hash: fi for fi in ci.files} if ci is not None else None
    order = importer.reading_order([f for f, _ in files], known)
    return files if order is None else [files[i] for i in order]


def _skipped(f: SourceFile, since_us: int | None, size: int, mtime_ns: int, ino: int | None,
             out: list[CheckpointUpdate]) -> bool:
    """Whether a file that ends before the window is still the one that was dated (`size`, `mtime_ns`, inode
    `ino`) as it is opened for its checkpoint of nothing read (`reader.nothing_read`), added to `out`. False (the
    file is read, whole: a pass reports what failed) when it changed meanwhile or cannot be opened."""
    try:
        update = nothing_read(f, since_us)
    except OSError:
        return False
    entry = update.entry
    if (entry.size, entry.mtime_ns) != (size, mtime_ns) or (ino is not None and entry.inode != ino):
        return False
    out.append(update)
    return True


@dataclass
class _Prepared:
    """What a provider's pass starts from (`_prepare_provider`): its detection and discovery, the files to read
    in reading order with an estimate each, their checkpoints, and the figures of the scan. `feed`: its first
    groups of files, already handed to the parse workers while the provider before it finished (`_Lookahead`)."""

    detection: Any
    discovery: Any = None
    files: list[tuple[SourceFile, int]] = field(default_factory=list)
    checkpoints: Mapping[str, Checkpoint] = field(default_factory=dict)
    not_read: list[CheckpointUpdate] = field(default_factory=list)
    files_seen: int = 0
    unchanged: int = 0
    outside: int = 0
    bytes_total: int = 0
    sizes: int = 0
    sessions: int = 0
    newest_mtime: int | None = None
    feed: _Feed | None = None


def _prepare_provider(
    importer: Importer,
    name: str,
    *,
    layout: Layout,
    window: Window,
    write_checkpoints: bool,
    dry: _DryRunDedupe | None,
    env: Mapping[str, str],
    config: Any,
    inventory: Inventory | None,
) -> _Prepared:
    """Detect, discover and compare each file's stat with its checkpoint: the files a pass of `name` opens.
    Reads the file system and the checkpoint database only (no event, no write), so that it can run ahead,
    while the provider before this one finishes."""
    detection = importer.detect(config_root(config, name), env)
    if not detection.detected:
        return _Prepared(detection)
    with _gc_paused():
        discovery = importer.discover(list(detection.roots) or [detection.root])
    before = _before_window(inventory, name, window.since_us)
    # Without an inventory of this client (`hyp backfill`), each file without a checkpoint whose mtime is before
    # the window is dated here by its tail, as the inventory dates it (`_dated_before_window`): two years of
    # history under a 90-day retention were read whole, every line dropped as outside the window, and the dry
    # run counted files `hyp backfill plan` left out.
    dating = window.since_us is not None and (inventory is None or name not in inventory.clients)
    # A file not read because it ends before the window gets a checkpoint of nothing read (`reader.nothing_read`):
    # without one, the daemon's first pass read it whole from its capture start, and the next backfill (whose
    # window starts earlier: `must_widen`) read it whole again. Committed with the run's first batch. None when
    # the run may not write checkpoints (a `--since` after the import floor, storage.md §7.5) or is a dry run:
    # the file is still not read (every line of it is before the window), and is dated again next time.
    write_skipped = (bool(before) or dating) and write_checkpoints and dry is None
    not_read: list[CheckpointUpdate] = []
    db = _open_state(layout, dry_run=dry is not None)
    try:
        # Each file's stat from discovery (a file without one is stat'ed here), against its checkpoint's
        # stat: the plan figures, the progress total, and the files a pass need not open. Full checkpoints
        # are read for the other files only. This runs once per file of the history (40,000 on a rerun that
        # finds nothing new), hence the plain comparisons rather than tuples built per file, and the unchanged
        # files only counted.
        with _gc_paused():
            stored = {} if dry is not None and dry.fresh else db.stat_keys(name)
            files: list[tuple[SourceFile, int]] = []  # the files a pass opens (discovery order), an estimate each
            files_seen = unchanged = outside = 0
            stale: list[str] = []  # path hashes of the files whose checkpoint does not match their stat
            bytes_total = 0
            sizes = 0
            sessions: set[str] = set()
            session_key = importer.session_key
            newest_ns: int | None = None
            since_us = window.since_us
            for f in discovery.files:
                files_seen += 1
                size, mtime_ns, dev, ino = f.size, f.mtime_ns, f.device, f.inode
                if dev is None:
                    try:
                        st = os.stat(f.path)
                    except OSError:  # (its pass reports it)
                        files.append((f, 0))
                        if f.path_hash in stored:
                            stale.append(f.path_hash)
                        continue
                    size, mtime_ns, dev, ino = st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino
                h = f.path_hash
                key = stored.get(h)
                fits = key is not None and (
                    key[0] == size and key[1] == mtime_ns and key[2] == dev and key[3] == ino
                    and (key[5] is None or not must_widen(key[5], since_us))
                )  # fmt: skip
                # A file without a checkpoint, or whose checkpoint read nothing of it (offset 0: one of nothing
                # read whose window was widened, or one reset when the floor moved or the dataset was replaced):
                # it is read from its start, unless it ends before the window. (A checkpoint at offset 0 reset
                # by a raised retention sent two old files to be read whole again, their every line dropped,
                # while the dry run, which has no checkpoints, said they were not read.)
                if (key is None or (key[4] == 0 and not fits)) and (
                    ((old := before.get(h)) is not None and old.size == size and old.mtime_ns == mtime_ns
                     and (old.file.inode is None or old.file.inode == ino))
                    or (dating and _dated_before_window(importer, f, size, mtime_ns, ino, since_us))
                ) and (not write_skipped or _skipped(f, since_us, size, mtime_ns, ino, not_read)):
                    outside += 1  # ends before the window, as the inventory saw it: nothing to read
                elif key is None:
                    files.append((f, size))
                    bytes_total += size
                elif fits:
                    unchanged += 1  # FilePass.unchanged: nothing to read
                else:
                    est = _bytes_to_read(f, size, (dev, ino), key, since_us)
                    files.append((f, est))
                    bytes_total += est
                    stale.append(h)
                sizes += size
                if newest_ns is None or mtime_ns > newest_ns:
                    newest_ns = mtime_ns
                if f.is_session:
                    sessions.add(session_key(f))
            newest_mtime = None if newest_ns is None else newest_ns // 1000
            checkpoints = db.get_many(stale)
    finally:
        db.close()
    if importer.reorders_reads and len(files) > 1:
        files = _reading_order(importer, name, files, inventory)
    return _Prepared(
        detection, discovery, files, checkpoints, not_read, files_seen=files_seen, unchanged=unchanged,
        outside=outside, bytes_total=bytes_total, sizes=sizes, sessions=len(sessions), newest_mtime=newest_mtime,
    )


def _run_provider(
    pr: ProviderResult,
    importer: Importer,
    *,
    layout: Layout,
    window: Window,
    write_checkpoints: bool,
    storage: Any,
    dry: _DryRunDedupe | None,
    cut: str | None,
    sink: ProgressSink,
    cancel: threading.Event,
    env: Mapping[str, str],
    config: Any,
    events: Any,
    inventory: Inventory | None,
    batch_rows: int,
    batch_bytes: int,
    flush_interval_s: float,
    pool: _Pool | None,
    prepared: _Prepared | None = None,
    lookahead: Callable[[], None] | None = None,
) -> None:
    name = pr.provider
    if events is not None:
        events.emit("backfill.provider_start", provider=name)
    prep = prepared or _prepare_provider(
        importer, name, layout=layout, window=window, write_checkpoints=write_checkpoints, dry=dry, env=env,
        config=config, inventory=inventory,
    )
    if not prep.detection.detected:
        pr.status = "skipped"
        pr.error = prep.detection.reason
        return
    discovery = prep.discovery
    pr.detected_sources = list(discovery.detected_sources)

    def file_error(message: str, path: str | None) -> None:
        pr.files_failed += 1
        pr.note_error(message, path)
        if events is not None:  # each one, so that the errors after the first are found too (hyp status)
            events.emit("backfill.file_error", provider=name, error=message)

    for fe in discovery.failed:
        file_error(f"{fe.where}: {fe.message}", fe.path)
        pr.folders_failed += fe.folder
    files, checkpoints, not_read = prep.files, prep.checkpoints, prep.not_read
    files_seen, bytes_total = prep.files_seen, prep.bytes_total
    files_total = pr.files_total = len(files)  # (the progress counts the files it reads, no other)
    pr.files_outside_window = prep.outside
    pr.bytes_total = bytes_total
    if events is not None:
        if inventory is not None and name in inventory.clients:
            fig = client_figures(inventory.clients[name], window.since_us, window.until_us,
                                 beyond_us=window.beyond_until).to_json()
        else:  # without an inventory (no head/tail reads here): totals from the scan, newest from mtimes
            fig = {"files": files_seen, "sessions": prep.sessions, "bytes": prep.sizes, "oldest": None,
                   "newest": us_to_iso(prep.newest_mtime)}
        events.emit("backfill.plan", provider=name, **fig)

    try:
        sink.on_provider_start(name, bytes_total, files_total)
    except Exception:
        pass

    def on_wait() -> None:
        _lock_wait(sink, name)

    committer = _Committer(
        storage, dry, cut, pr, on_wait, batch_rows=batch_rows, flush_interval_s=flush_interval_s,
        batch_bytes=batch_bytes,
    )
    for update in not_read:  # (in the transaction of the first commit, or of the last flush: never one each)
        committer.add([], update)
    not_read.clear()
    stats = ParseStats()
    # Sessions of the rows parsed so far: the live progress shows them (as it shows the files read); the final
    # figure, like the result's, counts only the sessions of rows committed (the committer's `seen`).
    parsed_sessions: set[str] = set()
    throttle = _Throttle()
    t0 = time.monotonic()
    bytes_done = 0
    files_done = 0

    # Parsed by the workers and not taken yet: shown, never counted in the result. Files (and their sessions)
    # count as read (as in a sequential run, where a file is done once read); their bytes count half in the
    # bar and the ETA, the other half of their work being the commit (with thousands of tiny sessions over
    # months, a unit's commit writes hundreds of partition files: counted whole, the bar reached 98 % with
    # 30 % of the time left).
    ahead = _ParsedAhead()
    shown = [0, 0, 0]  # bytes, files and sessions last reported
    unsaved = 0  # files shown as read whose rows a stop (or a failure) dropped before their commit
    dropped_files = 0  # files of worker units parsed but not written (a stop while waiting for the lock)
    # Files whose first rows a worker unit committed, their `_FileDone` not taken yet: the counts taken so far
    parts: dict[str, _FilePart] = {}

    def report(final: bool = False) -> None:
        nonlocal unsaved
        if not final and not throttle.ready():
            return
        lines = dict(stats.lines_skipped)
        if final:
            # (the summary's figures: what was committed. Files shown read ahead and dropped are said apart.)
            # (a file whose first rows were saved is not one of them: it was cut short, as in this process)
            unsaved = max(unsaved, shown[1] - files_done - len(parts), dropped_files)
            shown[:] = [bytes_done, files_done, pr.sessions_seen]
        else:  # (never backwards: a group's results are taken a unit at a time, its estimate dropped at once)
            shown[0] = max(shown[0], bytes_done + ahead.bytes // 2)
            shown[1] = max(shown[1], min(files_done + ahead.files, files_total))
            shown[2] = max(shown[2], ahead.sessions_with(parsed_sessions))
        prog = Progress(
            provider=name,
            bytes_done=min(shown[0], bytes_total) if bytes_total else shown[0],
            bytes_total=bytes_total,
            files_done=shown[1],
            files_total=files_total,
            sessions=shown[2],
            rows_written=pr.rows_written,
            duplicates=pr.duplicates_skipped,
            lines_skipped=lines,
            errors=pr.errors,
            elapsed_s=time.monotonic() - t0,
            rows_pending=committer.pending,
            final=final,
            files_unchanged=pr.files_unchanged,
            files_unsaved=unsaved if final else 0,
        )
        try:
            sink.on_progress(prog)
        except Exception:
            pass

    # Files whose stat matched their checkpoint a moment ago are not opened (a rerun over tens of thousands
    # of transcripts spent a third of its time on their passes); a change since is the next run's. They are
    # not in the progress's files (a rerun showed `files 21/21` next to `rows 0`, and a summary of 0 files).
    pr.files_unchanged = prep.unchanged
    report(final=True)
    cancelled = False
    results = _file_results(
        importer,
        files,
        checkpoints,
        window,
        write_checkpoints=write_checkpoints,
        batch_rows=batch_rows,
        batch_bytes=batch_bytes,
        cancel=cancel,
        pool=pool,
        cut=cut,
        dry_run=dry is not None,
        ahead=ahead,
        feed=prep.feed,
        lookahead=lookahead,
    )

    cut_short = False

    def file_part(part: _FilePart) -> None:
        """What a committed unit holds of a file it does not finish: counted now, as of its last batch, as a
        file a stop cut short is (the file's `_FileDone`, if it comes, counts the rest)."""
        before = parts.get(part.key)
        if before is None:
            stats.merge(part.stats)
            pr.bytes_read += part.bytes_read
            pr.files_scanned += 1
            pr.files_reset += part.status == "reset"
        else:
            stats.merge(_counts_since(part.stats, before.stats))
            pr.bytes_read += part.bytes_read - before.bytes_read
        parts[part.key] = part

    def file_done(item: _FileDone) -> None:
        nonlocal files_done, bytes_done, cut_short
        outcome = item.outcome
        cut_short = cut_short or outcome.cut_short
        # A file a stop cut short is not done, and the rest of it was not read: neither counts in the progress
        # (a stopped import of one large file showed 100 %, every byte and `files 1/1` next to `cancelled`).
        files_done += not outcome.cut_short
        if outcome.status == "unchanged":
            pr.files_unchanged += 1
            return
        before = parts.pop(item.key, None) if item.key is not None else None
        if before is not None:  # (counted as read with its first rows: the rest of its counts)
            stats.merge(_counts_since(outcome.stats, before.stats))
            pr.bytes_read += outcome.bytes_read - before.bytes_read
        else:
            stats.merge(outcome.stats)
            pr.bytes_read += outcome.bytes_read
            if outcome.status in ("read", "reset", "error") or (outcome.status == "failed" and outcome.bytes_read):
                pr.files_scanned += 1  # (a file failed after some of it was read: opened and read, cli.md §5.3)
            if outcome.status == "reset":
                pr.files_reset += 1
        if outcome.status in ("failed", "error"):
            file_error(outcome.error or "file failed", outcome.path)
        if item.bytes_seen < item.estimate and not outcome.cut_short:
            bytes_done += item.estimate - item.bytes_seen  # (the estimate's remainder: the file was shorter)

    try:
        for item in results:
            if item is _TICK:
                report()
                if cancel.is_set():
                    cancelled = True
                    break
                continue
            if isinstance(item, _FileDone):
                file_done(item)
                if committer.due():
                    committer.flush()
                report()
                if cancel.is_set():
                    cancelled = True
                    break
                continue
            if isinstance(item, _Unit):  # consecutive files parsed and encoded by a worker: one commit
                bytes_done += item.source_bytes
                parsed_sessions |= item.sessions
                try:
                    committer.commit_unit(item)
                finally:
                    if committer.dropped:
                        # Not written (a stop while another process held the lock): its files are read again
                        # next time, so they are not counted (the summary said `files 6` next to `rows 0`); the
                        # progress says them "read but not saved".
                        bytes_done -= item.source_bytes
                        # (a file whose first rows were saved is counted read already: cut short, not unsaved)
                        dropped_files += sum(1 for done in item.done if done.key not in parts)
                    else:
                        # Its files were read whether or not their rows could be committed: counted, as in this
                        # process, where a file is counted once read (a run failing at a unit's commit on a full
                        # disk said `files 0` next to the rows of the units before it).
                        for done in item.done:
                            file_done(done)
                        if item.part is not None:
                            file_part(item.part)
                report()
                if cancel.is_set():
                    cancelled = True
                    break
                continue
            rows, update, delta = item
            bytes_done += delta
            # (no loop variable left bound to the last row after this: it would keep its values alive)
            ids = {sid for r in rows if (sid := r.get("session_id")) is not None}
            parsed_sessions |= ids
            committer.add(rows, update, delta, ids)
            if committer.due():
                committer.flush()
            report()
            if cancel.is_set():
                cancelled = True
                # the reader stops after this batch; the batch is committed below
    except Exception:
        report(final=True)  # (see below)
        raise
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
        # What was read, counted here: a commit that fails (in the loop, or the last one below) fails the
        # provider, whose summary still shows the skipped lines next to the rows committed. (`sessions_seen`
        # is the committer's: only the sessions of rows committed count, cli.md §5.3.)
        pr.lines_skipped = {k: v for k, v in stats.lines_skipped.items() if v}
        pr.records_by_type = {k: v for k, v in stats.records_by_type.items() if v}
        pr.rows_built = stats.rows_built
        pr.rows_held = stats.rows_held
        pr.usage_unattached = stats.usage_unattached
    try:
        committer.flush()
    except Exception:
        # A failed commit (a full disk) fails the provider: the last progress line shows the result's figures
        # too (it kept the sessions parsed, `sessions 13 rows 0`, above a summary saying 0 sessions).
        report(final=True)
        raise
    if pool is not None and pool.lost is not None and not pool.lost_reported:
        pool.lost_reported = True
        # Recovered in full, so not an error of the run; said (it explains a slower import) and logged.
        if events is not None:
            events.emit("backfill.worker_lost", provider=name, reason=pool.lost, continued_in="committing process",
                        at_start=pool.start_failed)  # fmt: skip
        _notice(sink, name, WORKER_START_NOTICE.format(reason=pool.lost) if pool.start_failed else WORKER_LOST_NOTICE)
    # A stop that came once every file was read to its end (in the last batch, or while the stop was being
    # confirmed) cut nothing short: the provider is complete, and says so (it said cancelled, with a
    # "finish later" hint, for an import with nothing left to do). One whose last batch was dropped at a lock
    # wait the stop ended did not finish.
    if (cancelled or cancel.is_set()) and (cut_short or files_done < files_total or committer.dropped):
        pr.status = "cancelled"
    if events is not None:
        events.emit(
            "backfill.scan",
            provider=name,
            files_seen=files_seen,
            files_unchanged=pr.files_unchanged,
            files_outside_window=pr.files_outside_window,
            files_reset=pr.files_reset,
            files_failed=pr.files_failed,
            bytes_read=pr.bytes_read,
            records_by_type=dict(sorted(pr.records_by_type.items())),
            lines_skipped=dict(sorted(pr.lines_skipped.items())),
            rows_held=pr.rows_held,
            usage_unattached=pr.usage_unattached,
            detected_sources=pr.detected_sources,
        )
        events.emit("backfill.materialize", provider=name, rows_built=pr.rows_built)
    report(final=True)


@dataclass
class _FileDone:
    outcome: FileOutcome
    estimate: int
    bytes_seen: int
    key: str | None = None  # the file's path hash (a worker's: `_FilePart`)


@dataclass
class _FilePart:
    """A file whose rows a worker unit holds the first ones of, its `_FileDone` coming with a later unit: its
    counts (`stats`, `bytes_read`, `status`) as of the unit's last batch. A stop right after that unit's commit
    counts the file as the sequential path counts a file a stop cut short (a stopped run said `files 0` and
    no skipped line beside the rows of that file, and the rerun, starting after them, never counted those
    lines); else its `_FileDone`'s counts replace these."""

    key: str
    status: str
    stats: ParseStats
    bytes_read: int


def _counts_since(now: ParseStats, before: ParseStats) -> ParseStats:
    """`now - before`, every key kept (a pass that ends with held rows takes counts back: some may be < 0)."""
    records, skipped = Counter(now.records_by_type), Counter(now.lines_skipped)
    records.subtract(before.records_by_type)
    skipped.subtract(before.lines_skipped)
    return ParseStats(records, skipped, now.rows_held - before.rows_held,
                      now.usage_unattached - before.usage_unattached, now.rows_built - before.rows_built)  # fmt: skip


def _file_results(
    importer: Importer,
    files: list[tuple[SourceFile, int]],
    checkpoints: Mapping[str, Checkpoint],
    window: Window,
    *,
    write_checkpoints: bool,
    batch_rows: int,
    batch_bytes: int,
    cancel: threading.Event,
    pool: _Pool | None,
    cut: str | None = None,
    dry_run: bool = False,
    ahead: _ParsedAhead | None = None,
    feed: _Feed | None = None,
    lookahead: Callable[[], None] | None = None,
) -> Iterator[tuple[list[Row], CheckpointUpdate | None, int] | _FileDone | _Unit | _Tick]:
    """Batches `(rows, update, bytes_delta)` of every file in order, each file closed by a `_FileDone`; with a
    pool, runs of small files come as `_Unit`s prepared by the workers instead (see `_parallel_file_results`),
    and `_Tick`s when `ahead` moved. `feed`: the groups of these files already handed to the workers."""
    if pool is not None and pool.usable and (feed is not None or (_worth_parallel(files) and _started(pool))):
        yield from _parallel_file_results(
            importer, files, checkpoints, window, write_checkpoints=write_checkpoints,
            batch_rows=batch_rows, batch_bytes=batch_bytes, cancel=cancel, pool=pool, cut=cut, dry_run=dry_run,
            ahead=ahead, feed=feed, lookahead=lookahead,
        )
        return
    for f, estimate in files:
        if cancel.is_set():
            return
        yield from _one_file(importer, f, estimate, checkpoints, window, write_checkpoints=write_checkpoints,
                             batch_rows=batch_rows, batch_bytes=batch_bytes, cancel=cancel)  # fmt: skip


def _started(pool: _Pool) -> bool:
    """Start the workers if they are not running yet. False when they cannot be (the pool is then lost with
    `start_failed`, said once): the files are parsed in this process, as in a small import."""
    try:
        pool.get()
    except Exception:
        return False
    return True


def _one_file(
    importer: Importer,
    f: SourceFile,
    estimate: int,
    checkpoints: Mapping[str, Checkpoint],
    window: Window,
    *,
    write_checkpoints: bool,
    batch_rows: int,
    batch_bytes: int,
    cancel: threading.Event,
) -> Iterator[tuple[list[Row], CheckpointUpdate | None, int] | _FileDone]:
    """One file read in this process: its batches `(rows, update, bytes_delta)`, then its `_FileDone`."""
    outcome = FileOutcome()
    seen = 0
    for rows, update, done in iter_file(
        importer, f, checkpoints.get(f.path_hash), window, outcome,
        write_checkpoints=write_checkpoints, batch_rows=batch_rows, batch_bytes=batch_bytes, cancel=cancel.is_set,
    ):  # fmt: skip
        delta = max(0, done - seen)
        seen = max(seen, done)
        yield rows, update, delta
    yield _FileDone(outcome, estimate, seen)


# --------------------------------------------------------------------------------------------- parallel parse

#: files at least this large are parsed in the committing process, streamed batch by batch (memory stays flat);
#: runs of smaller ones go to the parse workers
PARALLEL_MAX_FILE = 16 * 1024 * 1024
#: below this many bytes to read in total, starting worker processes costs more than it saves...
PARALLEL_MIN_TOTAL = 32 * 1024 * 1024
#: ...unless there are this many files: each costs ~0.6 ms whatever its size (open, head hash, parser and
#: checkpoint), and 20,000 sessions of 1 KB (19 MB) took 12.7 s in one process, 10.5 s with the workers
PARALLEL_MIN_FILES = 4_000
#: source bytes of files handed to workers and not consumed yet (bounds the parent's memory)
PARALLEL_INFLIGHT_BYTES = 48 * 1024 * 1024
#: how often a parse worker checks that the committing process is still there
PARENT_WATCH_S = 0.5
#: how often a parse worker says how far into its group it is, and the committing process looks (a group of
#: thousands of tiny sessions takes seconds, and progress moved only when it was done)
PARSE_PROGRESS_S = 0.1
#: how long a stopped run waits for each step of stopping its parse workers (their exit after SIGTERM, after
#: SIGKILL, the executor's manager thread)
STOP_WAIT_S = 2.0
#: a parse worker is dead and the group awaited is still not done this long after: the executor, which notices
#: a dead worker at once, is stuck reading the half of a result the worker was sending when it was killed
DEAD_WORKER_GRACE_S = 2.0
#: why the pool was lost then (logged with `backfill.worker_lost`)
WORKER_DIED_SENDING = "a parse worker died while sending a result (the executor did not notice)"
#: said once when a parse worker dies and the run goes on in the committing process (nothing is lost)
WORKER_LOST_NOTICE = (
    "a parse worker process stopped unexpectedly (killed, perhaps for lack of memory); its files were read "
    "again here and the rest of the import runs in this one process, more slowly. Nothing was lost."
)
#: said once when the parse workers cannot be started at all
WORKER_START_NOTICE = "could not start the parse worker processes ({reason}); importing in this one process, more slowly."


def default_workers() -> int:
    """Parse processes for large imports: `HYP_WORKERS` when set, else 2 on a machine with at least 2 CPUs.
    Small imports never start them (`_worth_parallel`)."""
    raw = os.environ.get("HYP_WORKERS", "")
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    return max(1, min(DEFAULT_WORKERS, os.cpu_count() or 1))


class _Pool:
    """One spawned process pool per run (created on first use, shared by the providers). When a worker dies
    (the OOM killer, a `kill -9`), the pool is `lost` and the rest of the run is parsed in the committing
    process: a machine short of memory should not be asked for two new processes."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Any = None
        self.lost: str | None = None  # why the workers were lost, once they were
        self.lost_reported = False
        self.start_failed = False  # lost before any worker ran: they could not be started
        # the workers' queue of (token, group start, files done, bytes done, ids of sessions not sent before)
        self.progress: Any = None
        self.inflight = 0  # source bytes of the groups handed out and not consumed yet (`_Feed`)

    @property
    def usable(self) -> bool:
        return self.lost is None

    def mark_lost(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = f"{type(exc).__name__}: {exc}"
        if self._pool is not None:
            with contextlib.suppress(Exception):
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def get(self) -> Any:
        """The executor, created on first use. Raises when it cannot be (the caller parses here instead)."""
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            quiet = not _stderr_is_a_file()
            try:
                with _real_stderr():
                    ctx = multiprocessing.get_context("spawn")
                    self.progress = ctx.Queue()
                    self._pool = ProcessPoolExecutor(
                        max_workers=self.workers,
                        mp_context=ctx,
                        initializer=_worker_init,
                        initargs=(os.getpid(), quiet, self.progress),
                    )
            except Exception as exc:
                self.start_failed = True
                self.mark_lost(exc)
                raise
        return self._pool

    def close(self, *, stop_now: bool = False) -> None:
        """Shut the workers down. `stop_now` (a cancelled run): their groups in progress are of no use any
        more, so they are stopped instead of waited for (seconds, with thousands of tiny sessions per group);
        a worker writes nothing (only the committing process does), so nothing is left half done."""
        pool, self._pool = self._pool, None
        if pool is not None:
            if stop_now:
                _stop_pool(pool)
            else:
                with contextlib.suppress(Exception):
                    pool.shutdown(wait=True, cancel_futures=True)
        self.progress = None


def _stop_pool(pool: Any) -> None:
    """Stop the workers of `pool` now and reap them, without ever waiting on the executor's manager thread for
    long: a worker stopped while it was sending a result (a unit of a large group is megabytes) leaves half a
    message in the result pipe, and the manager's read of it never ended (`shutdown(wait=True)` hung, and
    with it the summary of a run stopped by one Ctrl+C, in 2 of 24 tries). That read ends at end of file,
    once no process holds the write end of the pipe: the workers are gone, and this process closes its own."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    results = getattr(pool, "_result_queue", None)
    manager = getattr(pool, "_executor_manager_thread", None)
    with contextlib.suppress(Exception):
        pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.terminate()
    deadline = time.monotonic() + STOP_WAIT_S
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():  # (SIGTERM not acted on in time, or the worker was stopped with SIGSTOP)
                proc.kill()
                proc.join(STOP_WAIT_S)
    writer = getattr(results, "_writer", None)
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()
    if manager is not None:
        with contextlib.suppress(Exception):
            manager.join(STOP_WAIT_S)


def abandon_workers() -> None:
    """For a process about to leave with `os._exit` (a second Ctrl+C): kill its parse workers now (they would
    exit on their own only once they noticed, `PARENT_WATCH_S` later) and release multiprocessing's named
    semaphores, as a normal exit does (left to its resource tracker, they were released with a warning, "There
    appear to be 8 leaked semaphore objects", printed after the shell's prompt). Bounded: a lock held by the
    interrupted thread cannot keep the process from exiting."""
    mp = sys.modules.get("multiprocessing")
    if mp is None:  # (no pool was ever started)
        return
    with contextlib.suppress(Exception):
        for proc in mp.active_children():
            proc.kill()
    run_finalizers = getattr(sys.modules.get("multiprocessing.util"), "_run_finalizers", None)
    if run_finalizers is not None:
        with contextlib.suppress(Exception):
            thread = threading.Thread(target=run_finalizers, args=(0,), name="hyp-release", daemon=True)
            thread.start()
            thread.join(1.0)


def _a_worker_died(executor: Any) -> bool:
    """Whether a worker process of `executor` has ended (its sentinel is ready; nothing is reaped here)."""
    from multiprocessing.connection import wait

    try:
        sentinels = [p.sentinel for p in (getattr(executor, "_processes", None) or {}).values()]
        return bool(sentinels) and bool(wait(sentinels, timeout=0))
    except Exception:  # (a process object already closed: the executor saw it end, and breaks the pool itself)
        return False


def _stderr_is_a_file() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.fileno() >= 0
    except Exception:
        return False


@contextlib.contextmanager
def _real_stderr() -> Iterator[None]:
    """multiprocessing passes `sys.stderr.fileno()` to the resource tracker it starts with the first pool. Under
    the wizard, Textual's capture of stderr answers -1, and the start failed ("bad value(s) in fds_to_keep"):
    every import big enough for the workers failed in `hyp init`. The process's own stderr stands in while
    the pool is created."""
    if _stderr_is_a_file() or sys.__stderr__ is None:
        yield
        return
    saved, sys.stderr = sys.stderr, sys.__stderr__
    try:
        yield
    finally:
        sys.stderr = saved


_progress_queue: Any = None  # in a parse worker: the pool's progress queue


def _worker_init(parent: int, quiet: bool = False, progress: Any = None) -> None:
    """In each parse worker: leave Ctrl-C to the committing process, which cancels the run cleanly (the signal
    goes to the whole foreground process group; a worker killed by it would print a traceback); and exit
    when that process is gone (killed with SIGKILL, say), instead of waiting forever on the task queue.
    `quiet` (the committing process draws a full-screen UI): nothing a worker might print reaches the
    terminal, where it would garble the screen; results and errors go back through the pipe anyway."""
    import signal

    global _progress_queue

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _progress_queue = progress
    if progress is not None:
        # A worker's exit must never wait for its last progress messages to reach the pipe (the committing
        # process may have stopped reading): they are a display aid, dropped rather than waited for.
        progress.cancel_join_thread()
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    # One Polars thread per worker (read when Polars starts its pool; nothing here has imported it yet): the
    # workers already keep every CPU busy, and two pools of one thread per CPU each only add switching and
    # idle spinning (~4 % of the CPU of a 250 MB import, measured).
    os.environ.setdefault("POLARS_MAX_THREADS", "1")

    def watch() -> None:
        while os.getppid() == parent:  # (the pid passed in: a parent gone before this started counts too)
            time.sleep(PARENT_WATCH_S)
        os._exit(1)

    threading.Thread(target=watch, name="hyp-parent-watch", daemon=True).start()
    # At the end of the run, skip the interpreter's teardown of a worker (freeing its heap and modules took
    # ~0.2 s that the committing process waited for in `shutdown`). Nothing is lost: results go back through
    # a synchronous pipe before the worker reads its stop sentinel, and it holds no file open for writing.
    atexit.register(_exit_now)


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


def _small(est: int) -> bool:
    return 0 < est < PARALLEL_MAX_FILE


def _worth_parallel(files: list[tuple[SourceFile, int]]) -> bool:
    small = [est for _, est in files if _small(est)]
    return len(small) >= 2 and (sum(small) >= PARALLEL_MIN_TOTAL or len(small) >= PARALLEL_MIN_FILES)


def _groups(files: list[tuple[SourceFile, int]], group_bytes: int) -> dict[int, int]:
    """Runs of consecutive small files, cut after about `group_bytes`: start index -> end index (exclusive)."""
    groups: dict[int, int] = {}
    i = 0
    while i < len(files):
        if not _small(files[i][1]):
            i += 1
            continue
        j, total = i, 0
        while j < len(files) and _small(files[j][1]) and (j == i or total < group_bytes):
            total += files[j][1]
            j += 1
        groups[i] = j
        i = j
    return groups


@dataclass
class _Unit:
    """Rows of consecutive files parsed by a worker, ready for one commit: `payload` is an `EncodedBatch`
    (a real run), the `(client_name, date, part_id)` keys (a dry run), or None (no rows). `done` closes the
    files whose last rows are in this unit; `sessions` are the session ids of its rows (for the live progress,
    and for the result of a dry run; a real commit's come from the storage)."""

    payload: Any
    updates: list[CheckpointUpdate]
    source_bytes: int
    rows: int
    done: list[_FileDone]
    sessions: set[str] = field(default_factory=set)
    part: _FilePart | None = None  # the file whose first rows end this unit, its `_FileDone` in a later one


def _parse_group_task(
    importer: Importer,
    group: list[tuple[SourceFile, Checkpoint | None, int]],
    window: Window,
    write_checkpoints: bool,
    batch_rows: int,
    batch_bytes: int,
    cut: str | None,
    dry_run: bool,
    tag: tuple[int, int] | None = None,
) -> list[_Unit]:
    """In a worker process: the files of a group through `iter_file` (same batches, same checkpoints as in
    the committing process), their rows cut into units at the committer's thresholds, and each unit
    validated, deduplicated within itself and encoded (`storage.encode_batch`), so that the committer only
    checks it against the stored ids and writes the bytes. With a `tag` (run token, group start), how far
    the group is goes to the pool's progress queue every `PARSE_PROGRESS_S`, for the progress display."""
    queue = _progress_queue if tag is not None else None
    last_said = time.monotonic()
    files_parsed = bytes_parsed = 0
    group_sessions: set[str] = set()
    said: set[str] = set()  # of `group_sessions`, the ids sent with the group's progress already
    units: list[_Unit] = []
    rows: list[Row] = []
    updates: list[CheckpointUpdate] = []
    done: list[_FileDone] = []
    sessions: set[str] = set()  # of the unit's rows
    nbytes = 0

    def close(part: _FilePart | None = None) -> None:
        nonlocal rows, updates, done, sessions, nbytes
        payload: Any = None
        if rows:
            if dry_run:
                payload = [(r["client_name"], r["date"], r["part_id"]) for r in rows]
            else:
                from hypaware_tui.core.storage import encode_batch

                payload = encode_batch(rows, cut)
        units.append(_Unit(payload, updates, nbytes, len(rows), done, sessions, part))
        rows, updates, done, sessions, nbytes = [], [], [], set(), 0

    for f, checkpoint, estimate in group:
        outcome = FileOutcome()
        seen = 0
        full = False  # the unit reached a threshold: closed before the file's next rows, or after its end
        part: _FilePart | None = None  # the file's counts when it did
        for batch, update, at in iter_file(
            importer, f, checkpoint, window, outcome, write_checkpoints=write_checkpoints,
            batch_rows=batch_rows, batch_bytes=batch_bytes, cancel=lambda: False,
        ):
            if full and batch:  # (a last batch without rows, only the file's final checkpoint, stays with it)
                close(part)
            nbytes += max(0, at - seen)
            seen = max(seen, at)
            if batch:
                rows.extend(batch)
                # (a file's rows may end in the next unit: the ids go with the unit of their rows)
                ids = {sid for r in batch if (sid := r.get("session_id")) is not None}
                sessions |= ids
                if queue is not None:
                    group_sessions |= ids
            if update is not None:
                updates.append(update)
            full = len(rows) >= batch_rows or bool(rows and nbytes >= batch_bytes)
            if full:
                part = _FilePart(f.path_hash, outcome.status, outcome.stats.copy(), outcome.bytes_read)
        # (with the unit of its last batch: a stop right after that unit's commit counted the file, whose rows
        # and checkpoint were all saved, neither read nor done: `files 22` beside 23 files saved)
        done.append(_FileDone(outcome, estimate, seen, f.path_hash))
        if full:
            close()
        if queue is not None:
            files_parsed += 1
            bytes_parsed += seen
            now = time.monotonic()
            if now - last_said >= PARSE_PROGRESS_S:
                last_said = now
                new = group_sessions - said
                with contextlib.suppress(Exception):  # (a display aid: never a reason to fail the group)
                    queue.put_nowait((*tag, files_parsed, bytes_parsed, list(new)))
                    said |= new
    if rows or updates or done:
        close()
    return units


class _ParsedAhead:
    """Files, source bytes and sessions parsed by the workers in groups whose results the committer has not
    taken yet: shown with the progress (with thousands of tiny sessions, a group is seconds of work), never
    counted in the result. Sessions by id (`sessions_with`): one whose files fall in several groups, or in a
    group and in what was committed, counts once (counted per group, 61 showed for 50)."""

    def __init__(self) -> None:
        self.by_group: dict[int, tuple[int, int, set[str]]] = {}
        self.floor = 0  # groups are taken in file order: a message about one before this came too late
        self.files = 0
        self.bytes = 0

    def set(self, start: int, files: int, nbytes: int, new_sessions: Iterable[str]) -> None:
        """A group's figures so far, with the ids of its sessions not sent before."""
        if start >= self.floor:
            old = self.by_group.get(start)
            ids = old[2] if old is not None else set()
            ids.update(new_sessions)
            self.by_group[start] = (files, nbytes, ids)
            self._sum()

    def sessions_with(self, committed: set[str]) -> int:
        """How many sessions the committed ones and the groups ahead have between them."""
        if not self.by_group:
            return len(committed)
        return len(committed.union(*(ids for _, _, ids in self.by_group.values())))

    def taken(self, start: int, end: int) -> None:
        """The group of files [start, end) was taken (its results committed, or it is parsed here)."""
        self.floor = max(self.floor, end)
        if self.by_group.pop(start, None) is not None:
            self._sum()

    def clear(self) -> None:
        """No more groups from the workers (they were lost): everything left is parsed here."""
        self.floor = 1 << 62
        self.by_group.clear()
        self._sum()

    def _sum(self) -> None:
        self.files = sum(f for f, _, _ in self.by_group.values())
        self.bytes = sum(b for _, b, _ in self.by_group.values())


class _Tick:
    """Yielded by the parallel path while it waits for a worker and `_ParsedAhead` moved: report progress."""


def _read_progress(pool: _Pool, token: int, ahead: _ParsedAhead) -> bool:
    """Take the workers' progress messages of this run into `ahead`; True when any was taken."""
    import queue as queue_mod

    q = pool.progress
    moved = False
    while q is not None:
        try:
            tok, start, files, nbytes, new_sessions = q.get_nowait()
        except queue_mod.Empty:
            break
        except Exception:  # a queue a dead worker left in a bad state: progress is only a display aid
            break
        if tok == token:
            ahead.set(start, files, nbytes, new_sessions)
            moved = True
    return moved


_TICK = _Tick()
_run_tokens = itertools.count(1)


class _Feed:
    """The groups of one provider's files for the parse workers (`_groups`: runs of consecutive small files,
    about `batch_bytes` of source each), handed out in file order while the source bytes handed out and not
    consumed yet, over every feed, stay within `PARALLEL_INFLIGHT_BYTES` (`_Pool.inflight`). The next
    provider's feed is filled once this one's groups are all handed out (`_Lookahead`), so the workers parse
    its first groups while the committer takes the last ones of this provider, instead of waiting."""

    def __init__(
        self,
        pool: _Pool,
        importer: Importer,
        files: list[tuple[SourceFile, int]],
        checkpoints: Mapping[str, Checkpoint],
        window: Window,
        *,
        write_checkpoints: bool,
        batch_rows: int,
        batch_bytes: int,
        cut: str | None,
        dry_run: bool,
    ) -> None:
        from collections import deque

        self.pool = pool
        self.executor = pool.get()
        self.token = next(_run_tokens)  # tells this feed's progress messages from other providers'
        self.files = files
        self.groups = _groups(files, batch_bytes)
        self.starts = list(self.groups)
        self.pending: deque[tuple[int, Any, int]] = deque()  # (start index, future, estimated bytes)
        self.next_group = 0
        self.broken = False  # a worker died, or a task failed: everything not consumed is parsed here
        self._task = (importer, checkpoints, window, write_checkpoints, batch_rows, batch_bytes, cut, dry_run)

    @property
    def handed_out(self) -> bool:
        return self.broken or self.next_group >= len(self.starts)

    def fill(self, *, own: bool) -> None:
        """Hand out the next groups, in order, within the byte budget. `own`: the feed being consumed, which
        always has at least one group in flight (a group larger than the budget is still handed out)."""
        importer, checkpoints, window, write_checkpoints, batch_rows, batch_bytes, cut, dry_run = self._task
        pool = self.pool
        while not self.handed_out and ((own and not self.pending) or pool.inflight < PARALLEL_INFLIGHT_BYTES):
            start = self.starts[self.next_group]
            members = self.files[start : self.groups[start]]
            est = sum(e for _, e in members)
            try:
                fut = self.executor.submit(
                    _parse_group_task, importer, [(f, checkpoints.get(f.path_hash), e) for f, e in members],
                    window, write_checkpoints, batch_rows, batch_bytes, cut, dry_run, (self.token, start),
                )
            except Exception as exc:  # the pool broke between two tasks (BrokenProcessPool)
                self.lose(exc)
                return
            self.next_group += 1
            self.pending.append((start, fut, est))
            pool.inflight += est

    def take(self, start: int) -> tuple[Any, int] | None:
        """The future of the group starting at file `start` (the next one in order), or None when it was
        never handed out (the feed broke): its files are parsed here."""
        if self.pending and self.pending[0][0] == start:
            _, fut, est = self.pending.popleft()
            self.pool.inflight -= est
            return fut, est
        return None

    def lose(self, exc: BaseException | None) -> None:
        """Stop handing out work: every group not consumed yet is parsed here, in order. A dead worker also
        ends the pool for the rest of the run; a task that raised (a bug, or a result that could not be
        pickled) only sends its group here, where the same error is met and reported as in a sequential run."""
        from concurrent.futures import BrokenExecutor

        self.broken = True
        self.cancel()
        if isinstance(exc, BrokenExecutor):
            self.pool.mark_lost(exc)

    def cancel(self) -> None:
        """Cancel the groups handed out and not consumed, and give their bytes back to the budget."""
        for _, fut, est in self.pending:
            fut.cancel()
            self.pool.inflight -= est
        self.pending.clear()


def _parallel_file_results(
    importer: Importer,
    files: list[tuple[SourceFile, int]],
    checkpoints: Mapping[str, Checkpoint],
    window: Window,
    *,
    write_checkpoints: bool,
    batch_rows: int,
    batch_bytes: int,
    cancel: threading.Event,
    pool: _Pool,
    cut: str | None,
    dry_run: bool,
    ahead: _ParsedAhead | None = None,
    feed: _Feed | None = None,
    lookahead: Callable[[], None] | None = None,
) -> Iterator[tuple[list[Row], CheckpointUpdate | None, int] | _FileDone | _Unit | _Tick]:
    """Like the sequential path, with runs of files smaller than `PARALLEL_MAX_FILE` parsed, built into
    frames and encoded ahead in `workers` spawned processes, about `batch_bytes` of source per task (a `_Feed`;
    `feed` when its first groups were handed out ahead). Results are consumed strictly in file order, so the
    committer commits in the same order (and dedupe's "first wins" decides the same) as a sequential run; the
    rows are the same, only the commit boundaries may differ. Large files are streamed here meanwhile. While
    it waits for a group, how far the workers are goes into `ahead`, with a `_Tick` for the progress display.
    Once every group is handed out and no more are pending than there are workers, `lookahead` hands out the
    next provider's first ones."""
    from concurrent.futures.process import BrokenProcessPool

    if feed is None:
        feed = _Feed(
            pool, importer, files, checkpoints, window, write_checkpoints=write_checkpoints, batch_rows=batch_rows,
            batch_bytes=batch_bytes, cut=cut, dry_run=dry_run,
        )
    groups = feed.groups
    token = feed.token
    executor = feed.executor

    def fill() -> None:
        feed.fill(own=True)
        # The next provider is prepared once this one's last groups are in the workers' hands (no more left
        # than there are workers): not at the start of a provider whose groups all fit in the byte budget,
        # seconds before its turn, when its files may still change.
        if feed.handed_out and len(feed.pending) <= pool.workers and lookahead is not None and not cancel.is_set():
            lookahead()

    def lose(exc: BaseException) -> None:
        feed.lose(exc)
        if ahead is not None:
            ahead.clear()

    def here(i: int) -> Iterator[tuple[list[Row], CheckpointUpdate | None, int] | _FileDone]:
        f, estimate = files[i]
        return _one_file(importer, f, estimate, checkpoints, window, write_checkpoints=write_checkpoints,
                         batch_rows=batch_rows, batch_bytes=batch_bytes, cancel=cancel)  # fmt: skip

    try:
        i = 0
        while i < len(files):
            if cancel.is_set():
                return
            fill()
            end = groups.get(i)
            if end is None:  # a large (or unchanged) file: streamed here while the workers parse ahead
                yield from here(i)
                i += 1
                continue
            units: list[_Unit] | None = None
            taken = feed.take(i)
            if taken is not None:
                fut, _ = taken
                dead_since: float | None = None
                while not fut.done():
                    with contextlib.suppress(Exception):
                        fut.exception(timeout=PARSE_PROGRESS_S)
                    if cancel.is_set():  # (not after the group: it may take seconds)
                        return
                    if ahead is not None and _read_progress(pool, token, ahead):
                        yield _TICK
                    if fut.done() or not _a_worker_died(executor):
                        continue
                    dead_since = dead_since if dead_since is not None else time.monotonic()
                    if time.monotonic() - dead_since >= DEAD_WORKER_GRACE_S:
                        _stop_pool(executor)
                        break
                try:
                    if not fut.done():
                        raise BrokenProcessPool(WORKER_DIED_SENDING)
                    units = fut.result()
                except Exception as exc:  # a worker died, or the task raised: this group is parsed here
                    lose(exc)
                if ahead is not None:
                    _read_progress(pool, token, ahead)  # (drained at every group: the pipe never fills up)
                    ahead.taken(i, end)
            if units is not None:
                yield from units
            else:
                for k in range(i, end):
                    if cancel.is_set():
                        return
                    yield from here(k)
            i = end
    finally:
        feed.cancel()


class _Lookahead:
    """Called by a provider's parallel pass once its last groups are handed out: prepares the next provider
    that runs (`_prepare_provider`, once) and, when its pass will be parallel too, hands out its first groups
    (`_Feed`), within the byte budget, each time it is called. A preparation that fails is left to the
    provider's own turn, which prepares again and reports the error."""

    def __init__(
        self, pool: _Pool, prepare: Callable[[str], _Prepared], make_feed: Callable[[str, _Prepared], _Feed]
    ) -> None:
        self._prepare = prepare
        self._pool = pool
        self._make_feed = make_feed
        self.next_name: str | None = None
        self.prepared: dict[str, _Prepared] = {}
        self._tried: set[str] = set()

    def __call__(self) -> None:
        name = self.next_name
        if name is None or not self._pool.usable:
            return
        prep = self.prepared.get(name)
        if prep is None:
            if name in self._tried:
                return
            self._tried.add(name)
            try:
                prep = self._prepare(name)
                if prep.detection.detected and _worth_parallel(prep.files):
                    prep.feed = self._make_feed(name, prep)
            except Exception:  # noqa: BLE001 - prepared again in its turn, where the error is reported
                return
            self.prepared[name] = prep
        if prep.feed is not None:
            prep.feed.fill(own=False)

    def take(self, name: str) -> _Prepared | None:
        """The preparation made ahead for `name`, if it found the client and every folder could be read;
        else None, and the provider is prepared again in its turn (a folder unreadable for a moment, or not
        there yet, must not be reported for a run that could read it then). Its groups handed out are
        dropped then."""
        prep = self.prepared.pop(name, None)
        if prep is None or (prep.detection.detected and not prep.discovery.failed):
            return prep
        if prep.feed is not None:
            prep.feed.cancel()
        return None


__all__ = [
    "BackfillResult",
    "NullSink",
    "Progress",
    "ProgressSink",
    "ProviderResult",
    "order_providers",
    "run_backfill",
    "nothing_new_text",
    "unsaved_files_text",
    "FileOutcome",
    "iter_file",
]
