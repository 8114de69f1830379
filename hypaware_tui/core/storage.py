"""The storage engine: the only module that writes the `ai_gateway_messages` dataset (storage.md).

`Storage.commit(rows, checkpoints)` runs the whole commit protocol of storage.md §6.2 in one call, so no
importer can get the order wrong:

1. (no lock) validate the batch against the schema and drop rows dated before the import floor;
2. take `run/write.lock`; refresh the per-process `part_id` memo of each touched `(source, date)` partition
   by reading only the `part_id` column of part files not read yet;
3. drop rows whose `part_id` is already stored, or appeared earlier in the batch (first wins);
4. write one file per partition (temp file in the partition directory, fsync, rename, directory fsync);
5. update the checkpoints in one SQLite transaction with the forward-only / identity rules of §6.3;
6. release the lock, then log `backfill.write` per partition and `backfill.flush`.

Crash safety: a process killed anywhere leaves at most an orphan `.part-<id>.parquet.tmp` (never matched by
readers, removed after an hour by `cleanup_tmp`), and rows whose checkpoint did not move: the next pass
re-reads those lines and step 3 drops what was already stored.

Fault injection for the crash tests: with `HYP_FAULT=<point>` in the environment, the process SIGKILLs
itself at that point (`mid_write`, `before_rename`, `after_rename`, `before_checkpoints`, `before_release`,
`compact_before_unlink`); `HYP_FAULT=compact_verify_fail` makes compaction's verification fail.

A part file that cannot be read (truncated, foreign, wrong schema) stops a commit or compaction touching
its partition with a `StorageError` naming the file and what to do; nothing is written in that case, so
nothing already committed is lost and the batch is imported again once the file is moved away (the file's own
rows only once the checkpoints are reset too: `damaged_file_advice`). That advice is given only for a file
that was opened and is not a hyp part file: one that cannot be opened (permissions, a folder of that name) is
reported with its reason (`part_file_problem`).

Every read of a part file takes its path literally (`glob=False`; see `core.dataset` for the dataset scan).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

from hypaware_tui.core import paths as _paths
from hypaware_tui.core import prog
from hypaware_tui.core import schema as _schema
from hypaware_tui.core.checkpoints import (
    HEAD_MAX,
    META_DATASET_GENERATION,
    META_DATASET_ID,
    META_DATASET_RESETS,
    META_NEWEST_FILE,
    Checkpoint,
    CheckpointUpdate,
    StateDB,
    StateDBError,
    dir_identity,
    earlier_bound,
    tail_ok,
)
from hypaware_tui.core.events import EventLog
from hypaware_tui.core.ids import uuid7_hex
from hypaware_tui.core.paths import FILE_MODE, Layout, ensure_dir, fsync_dir
from hypaware_tui.core.schema import (
    COLUMN_NAMES,
    DATASET_NAME,
    SCHEMA_VERSION,
    SORT_KEY,
    SchemaError,
    frame_from_rows,
    validate_frame,
)

if TYPE_CHECKING:
    import polars as pl
else:

    class _LazyPolars:
        """`polars`, imported on first use: opening the state database (`ensure_import_floor` of a rerun that
        finds nothing new) needs no Polars, which costs ~0.3 s to import."""

        def __getattr__(self, name: str) -> Any:
            polars = _schema.import_polars()
            globals()["pl"] = polars
            return getattr(polars, name)

    pl = _LazyPolars()

FAULT_ENV = "HYP_FAULT"
LOCK_NOTICE_AFTER_S = 0.2
STALE_TMP_SECONDS = 3600
MEMO_IDLE_SECONDS = 600
ROW_GROUP_SIZE = 100_000
WRITE_THREADS = 8  # partition files of one commit encoded and written at a time (`Storage._write_planned`)
PARALLEL_WRITES_FROM = 4  # fewer files (the daemon's commits, most backfill commits) are written in turn
FOOTER_METADATA = {"hyp.dataset": DATASET_NAME, "hyp.schema_version": str(SCHEMA_VERSION)}

CLIENT_NAME_RE = re.compile(r"^[a-z0-9_-]+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PART_NAME_RE = re.compile(r"^part-[0-9a-f]{32}\.parquet$")
_PLAIN_PARQUET_RE = re.compile(r"^[^./\\][^/\\]*\.parquet$")  # what list_part_files may list: a name, no path
META_IMPORT_FLOOR = "import_floor_date"
NO_FLOOR = ""  # meta value when retention is 0 (no floor)


class StorageError(RuntimeError):
    """A dataset operation failed. The message says what happened and what to do; it is shown as is.

    `partial`, set by `Storage.commit`: what the failed commit did write before the error (the partition
    files renamed into place stay: they are whole, and their rows are in the dataset), so that a caller can
    count them."""

    partial: CommitResult | None = None
    # Set by `Storage.prune`: what a prune that failed midway removed before the error (partitions moved out
    # and deleted), so that the command still lists them.
    pruned: PruneResult | None = None


class DatasetReplaced(StorageError):
    """The dataset root is not the one the checkpoints' rows went into (deleted, moved, or restored from a copy),
    or another process found it so and reset the checkpoints meanwhile: nothing of the batch was written. The
    caller re-checks (`Storage.ensure_import_floor` resets the checkpoints) and reads its files again."""


class HomeMoved(StorageError):
    """HYP_HOME was moved or deleted (or replaced by another directory) while this process used it: nothing was
    written, and HYP_HOME is not created again."""


def dataset_replaced_text(layout: Layout, *, ahead: bool = False) -> str:
    """The one line said when the checkpoints no longer describe the dataset (a backfill, the daemon), with
    what hyp does about it; `ahead`: what the next import will do (hyp status, a plan, a dry run)."""
    does = ("the next import reads all history again" if ahead else "reading all history again")
    return (f"The dataset at {_paths.shown_path(layout.dataset_root)} is not the one hyp imported into (it was "
            f"deleted, moved or restored from a copy): {does}; rows already there are skipped.")


# The dataset's marker file, `<HYP_HOME>/cache/.hyp-dataset` (`Layout.dataset_marker`): `{"id": "<uuid4 hex>",
# "generation": N}`, written by hyp under the write lock. Beside the dataset root, not in it:
# nothing but part files (and in-flight temp files) lives under the root (storage.md §1), so that
# `pl.scan_parquet(<root>)` and any reader of the folder work, and a `rm -rf <root>/*` (which a shell glob would
# not extend to a dotfile) takes the rows without leaving a marker that says they are there. The id is made once
# per dataset; the generation goes up by one at each commit that writes part files, after they are written and
# before the checkpoints, which record both in their transaction. So a copy restored from before some commit has
# a lower generation than the checkpoints, and a new dataset another id (or no marker). No inode number is
# compared: every copy of a whole HYP_HOME (a new computer, a backup restored whole) has new ones and describes
# its dataset as well as the original, and a root restored alone from an older copy, even one that got the freed
# inode back, lacks the newest part file the checkpoints record (`_newest_file_missing`).
DATASET_MARKER = ".hyp-dataset"
_MARKER_TMP = ".hyp-dataset.tmp"
_MARKER_ID_RE = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class DatasetMarker:
    id: str
    generation: int

    def meta(self) -> dict[str, str]:
        """The checkpoint database's meta values recording this marker."""
        return {META_DATASET_ID: self.id, META_DATASET_GENERATION: str(self.generation)}


def new_marker() -> DatasetMarker:
    import uuid

    return DatasetMarker(uuid.uuid4().hex, 1)


def _parse_marker(path: Path) -> DatasetMarker | None:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        doc = json.loads(data)
    except ValueError:  # (UnicodeDecodeError included)
        return None
    if not isinstance(doc, dict):
        return None
    mid, gen = doc.get("id"), doc.get("generation")
    if not isinstance(mid, str) or _MARKER_ID_RE.fullmatch(mid) is None:
        return None
    if not isinstance(gen, int) or isinstance(gen, bool) or gen < 1:
        return None
    return DatasetMarker(mid, gen)


def read_marker(layout: Layout) -> DatasetMarker | None:
    """The dataset's marker, or None when it is missing or is not one hyp wrote (unreadable, not JSON, no id or
    generation). Other errors (permissions) raise OSError."""
    return _parse_marker(layout.dataset_marker)


def write_marker(layout: Layout, marker: DatasetMarker) -> DatasetMarker:
    """Replace the dataset's marker atomically and durably (a temp file fsynced, renamed over it, `cache/`
    fsynced); returns it. About
    0.3 ms, once per commit that writes part files. So after a power cut the marker is never behind the
    checkpoints that recorded it, which would read as an older copy restored and cost a full re-read of the
    history."""
    cache = layout.cache_dir
    tmp = cache / _MARKER_TMP
    doc = {"id": marker.id, "generation": marker.generation}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        os.write(fd, json.dumps(doc).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, layout.dataset_marker)
    fsync_dir(cache)
    return marker


def _source_has_part_file(source_dir: Path) -> bool:
    """Whether a partition of `source_dir` holds a part file (the partitions a query reads, `_date_dirs`); stops
    at the first one found. Asked before every commit: the folder is scanned in directory order, and only the
    entries looked at are checked and listed (`_date_dirs` sorts and checks them all first, one `Path` each)."""
    try:
        with os.scandir(source_dir) as it:
            entries = list(it)
    except OSError:
        return False
    for d in entries:
        if _is_date_dir(d):
            with contextlib.suppress(OSError):  # (a partition that cannot be listed proves nothing either way)
                if list_part_files(d.path):
                    return True
    return False


_NEWEST_RE = re.compile(r"source=[a-z0-9_-]+/date=\d{4}-\d{2}-\d{2}/part-[0-9a-f]{32}\.parquet")


def _part_file_there(root: Path, rel: str) -> bool:
    """Whether the part file `rel` (`source=…/date=…/part-….parquet`, as `META_NEWEST_FILE` records it) is in the
    dataset: one stat. A value hyp would not have written counts as there (it proves nothing)."""
    if _NEWEST_RE.fullmatch(rel) is None:
        return True
    try:
        os.stat(root / rel)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def newest_part_file(
    root: Path, source: str, *, skip_files: Collection[str] = (), skip_dates: Collection[str] = ()
) -> str | None:
    """The newest part file of `source` (hyp's names are UUIDv7s: name order is creation order) as
    `source=…/date=…/part-….parquet`, leaving out the files in `skip_files` (same form) and the partitions of
    `skip_dates`; None when none is left. A listing of the source's partitions."""
    best: tuple[str, str] | None = None
    for d, pdir in _date_dirs(root / f"source={source}"):
        if d in skip_dates:
            continue
        for name in list_part_files(pdir):
            rel = f"source={source}/date={d}/{name}"
            if PART_NAME_RE.match(name) and rel not in skip_files and (best is None or name > best[0]):
                best = (name, rel)
    return None if best is None else best[1]


def _newest_file_missing(db: StateDB, root: Path) -> bool:
    """Whether the newest part file recorded for some source (`META_NEWEST_FILE`) is not in the dataset. A
    compaction or a prune moves the record before it deletes the file: a reader without the lock that read the
    record before the move reads it once more before it concludes."""
    for source, rel in db.newest_files().items():
        if _part_file_there(root, rel):
            continue
        again = db.get_meta(META_NEWEST_FILE + source)
        if again is None or (again != rel and _part_file_there(root, again)):
            continue
        return True
    return False


def dataset_stale(db: StateDB, layout: Layout) -> tuple[bool, DatasetMarker | None, DatasetMarker | None]:
    """Whether the checkpoints in `db` no longer describe the dataset: the rows they say were stored may be
    missing. Returns (stale, the marker the checkpoints recorded or None, the marker found or None).

    Stale when some client's checkpoints claim rows (`rows_emitted > 0`) while its `source=` folder holds no part
    file (its rows were deleted: `rm -rf <root>/*`, `source=<client>` removed, the root deleted; retention that
    removes a source's last partition zeroes its `rows_emitted`, `Storage.prune`); or when the database records
    a marker and the one found is missing, unreadable, of another id (the dataset deleted, or replaced by
    another) or of a lower generation (`cache/` restored from an older copy); or when the newest part file
    recorded for some source (`META_NEWEST_FILE`, set by the commits that write files, moved by compaction and
    prune before they delete it) is not there: rows hyp wrote are gone (the root alone restored from an older
    copy, whatever its inode number; or files deleted by hand). A database that records no marker (written
    before markers, or no commit yet) is not stale by the marker. The root's inode number is not compared: a
    whole HYP_HOME copied (a new computer) has new ones and is the same dataset. Costs two small queries, a
    listing up to the first part file of each source that claims rows, and a stat per source with a recorded
    file.
    The meta is read before the marker and the part files: a commit writes those before the meta,
    and retention zeroes `rows_emitted` before it removes the part files, so a reader without the lock never sees
    the meta ahead of the dataset."""
    mid = db.get_meta(META_DATASET_ID)
    gen = db.get_meta(META_DATASET_GENERATION)
    recorded = DatasetMarker(mid, int(gen)) if mid is not None and gen is not None and gen.isdigit() else None
    root = layout.dataset_root
    clients = db.clients_claiming_rows()
    found = read_marker(layout)
    stale = False
    if recorded is not None:
        stale = found is None or found.id != recorded.id or found.generation < recorded.generation
    if not stale:
        empty = [c for c in clients if not _source_has_part_file(root / f"source={c}")]
        if empty:
            # (a reader without the lock: a prune may have zeroed the client's rows_emitted and then removed its
            # last partition between the query and the listing; asked again, such a client claims nothing)
            again = set(db.clients_claiming_rows())
            stale = any(c in again for c in empty)
    if not stale:
        stale = _newest_file_missing(db, root)
    return stale, recorded, found


def dataset_replaced(layout: Layout) -> bool:
    """Read-only: whether the next import would reset every checkpoint because the dataset is not the one they
    were recorded against (`hyp status`, `hyp backfill plan`, a dry run). Creates nothing."""
    if not layout.ingest_db.exists():
        return False
    try:
        with StateDB.open(layout, create=False) as db:
            return dataset_stale(db, layout)[0]
    except (OSError, StateDBError):
        return False  # (a database that cannot be read is reported by whoever reads it)


@dataclass(frozen=True)
class HistoryRead:
    """What the checkpoints say of an import before (`history_read`): how many files hyp has read some bytes
    of, and the import floor recorded by the last import or cleanup (None: none, or retention 0)."""

    files: int
    floor: str | None


def history_read(layout: Layout) -> HistoryRead | None:
    """Read-only: the history hyp has read, for an empty dataset's text (`empty_dataset_text`); None when the
    checkpoints record no file read (or cannot be read: whoever reads them reports that)."""
    if not layout.ingest_db.exists():
        return None
    try:
        with StateDB.open(layout, create=False) as db:
            files = db.files_read()
            floor = db.get_meta(META_IMPORT_FLOOR) if files else None
    except (OSError, StateDBError):
        return None
    return HistoryRead(files, floor or None) if files else None


def empty_dataset_text(read: HistoryRead) -> str:
    """Why the dataset has no row although hyp has read history (a `hyp status` line and the `hyp query
    overview` note): every message was older than the retention window (not imported, or deleted by a
    cleanup since), or (no floor) the files held none. Not "nothing imported yet"."""
    if read.files == 1:
        text = "the file hyp has read has no message"
    else:
        text = f"none of the {read.files:,} files hyp has read has a message"
    if read.floor is not None:
        text += f" from {read.floor} on (the retention window: older messages are not kept)"
    return text


class LockWaitCancelled(StorageError):
    """The run was interrupted while it waited for another process's lock: nothing of the batch was written
    (its lines are read again next time)."""

    def __init__(self) -> None:
        super().__init__("interrupted while waiting for another import to finish its batch")


def _fault(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def partition_name(source: str, date_: str) -> str:
    return f"source={source}/date={date_}"


def floor_lowered(recorded: str | None, cut_date: str | None) -> bool:
    """storage.md §7.3: whether a run with `cut_date` has an earlier import floor than the one `recorded` in
    the state database (retention was raised, or set to 0), so that every checkpoint must be reset."""
    new = cut_date or NO_FLOOR
    return recorded is not None and recorded != NO_FLOOR and (new == NO_FLOOR or new < recorded)


def cut_date_for(retention_days: int, today: date | None = None) -> str | None:
    """storage.md §7.2: UTC today minus `retention_days`, or None when retention is 0 (keep forever)."""
    if retention_days <= 0:
        return None
    today = today or datetime.now(UTC).date()
    return (today - timedelta(days=retention_days)).isoformat()


def _os_error_message(exc: OSError, what: str, layout: Layout, kept: str = _paths.IMPORT_KEPT) -> str:
    """`what` failed, why, and what to do; `kept`: what the operation kept (see `paths.os_error_hint`)."""
    return f"{what}: {_paths.os_error_text(exc, layout.home, kept)}"


# --- results ------------------------------------------------------------------------------------------------


@dataclass
class CommitResult:
    rows_written: int = 0
    duplicates_skipped: int = 0
    files_written: int = 0
    checkpoints_updated: int = 0
    lock_wait_ms: int = 0
    partitions: list[str] = field(default_factory=list)
    rows_before_floor: int = 0  # dropped by the cut_date safety net (step 1)
    checkpoints_kept: int = 0  # §6.3 (b): the stored entry was already as far
    checkpoints_mismatched: int = 0  # §6.3 (a): the file changed since the batch read it
    # The part files this commit renamed into place.
    files: list[Path] = field(default_factory=list)
    # The sessions of the partitions whose step completed: a file written, or every row a duplicate (with their
    # in-batch duplicates). For a commit that failed midway (`StorageError.partial`, a full disk at a later
    # partition or at the checkpoint database), so that a caller counts the sessions with a row written or
    # duplicate (cli.md §5.3), not only those of the files written. None when no partition was reached.
    session_ids: set[str] | None = None


@dataclass
class PartitionInfo:
    source: str
    date: str
    files: int = 0
    bytes: int = 0
    rows: int = 0

    @property
    def name(self) -> str:
        return partition_name(self.source, self.date)


@dataclass
class DatasetStats:
    path: str
    exists: bool
    bytes: int = 0
    files: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # stored rows per source (before cross-file dedupe)
    oldest: str | None = None
    newest: str | None = None
    partitions: list[PartitionInfo] = field(default_factory=list)
    small_file_partitions: int = 0  # partitions made of more than one file (compaction candidates)
    small_files: int = 0  # files in those partitions
    tmp_files: int = 0
    unreadable: list[str] = field(default_factory=list)  # part files opened, whose footer is not a hyp one
    # part files this process could not read, though they may be fine (`PartFileProblem.damaged` False)
    unopened: list[PartFileProblem] = field(default_factory=list)
    # part files whose columns are not those of schema_version 1 (`schema_mismatch`)
    mismatched: list[SchemaMismatch] = field(default_factory=list)
    # what may hold rows under the dataset root outside its partitions, which no reader reads (`ignored_paths`)
    ignored: list[str] = field(default_factory=list)

    @property
    def unreadable_mismatches(self) -> list[SchemaMismatch]:
        return [m for m in self.mismatched if not m.readable]

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass
class PruneResult:
    retention_days: int
    cut_date: str | None
    dry_run: bool
    partitions: list[PartitionInfo] = field(default_factory=list)
    tmp_removed: int = 0
    checkpoints_removed: int = 0
    # entries hyp did not write found in the partitions pruned (a folder, a note): left where they were
    kept_foreign: list[str] = field(default_factory=list)

    @property
    def files_removed(self) -> int:
        return sum(p.files for p in self.partitions)

    @property
    def rows_removed(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def bytes_removed(self) -> int:
        return sum(p.bytes for p in self.partitions)


@dataclass
class CompactPartition:
    source: str
    date: str
    files_before: int
    rows_before: int
    duplicates: int
    bytes_before: int
    bytes_after: int | None = None  # None in a dry run
    file: str | None = None  # the new file (None in a dry run)

    @property
    def name(self) -> str:
        return partition_name(self.source, self.date)


@dataclass
class CompactResult:
    dry_run: bool
    partitions: list[CompactPartition] = field(default_factory=list)
    error: str | None = None  # the first failure; compaction stops there (cli.md §8)
    failed_partition: str | None = None

    @property
    def files_before(self) -> int:
        return sum(p.files_before for p in self.partitions)

    @property
    def files_after(self) -> int:
        return len(self.partitions)

    @property
    def duplicates_removed(self) -> int:
        return sum(p.duplicates for p in self.partitions)

    @property
    def bytes_before(self) -> int:
        return sum(p.bytes_before for p in self.partitions)

    @property
    def bytes_after(self) -> int | None:
        if any(p.bytes_after is None for p in self.partitions):
            return None
        return sum(p.bytes_after or 0 for p in self.partitions)


@dataclass
class _Memo:
    ids: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    touched: float = 0.0


# --- read-only helpers ----------------------------------------------------------------------------------


def _own_entry(entry: os.DirEntry[str]) -> bool:
    """A partition's entry that hyp writes there, or reads as the dataset's, or that is no one's data: a Parquet
    file (or a link named so: its rows are read), a temp file (`*.tmp`), a hidden file (a file manager's
    `.DS_Store`: kept, it alone would keep an emptied partition and be named at every prune). Not a folder."""
    if entry.is_dir(follow_symlinks=False):
        return False
    return entry.name.endswith((".parquet", ".tmp")) or entry.name.startswith(".")


def _split_entries(partition_dir: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """A partition's entries as (hyp's, the others: a folder of copies, a note, which a prune leaves). A partition
    that is a link to a folder elsewhere has none of its own: the link goes, what it points to stays."""
    if os.path.islink(partition_dir):
        return [], []
    try:
        with os.scandir(partition_dir) as it:
            entries = list(it)
    except FileNotFoundError:
        return [], []
    own = sorted(e.name for e in entries if _own_entry(e))
    return own, sorted(e.name for e in entries if not _own_entry(e))


def _prunable(split: tuple[list[str], list[str]]) -> bool:
    """An old partition a prune removes (from): not one left holding only what hyp did not write (a prune before
    took its files), which would be "removed" again by every prune, with nothing in it."""
    own, foreign = split
    return bool(own) or not foreign


def list_part_files(partition_dir: str | os.PathLike[str]) -> list[str]:
    """Committed part file names of a partition, in name (= creation) order. Temp files never match."""
    try:
        with os.scandir(partition_dir) as it:
            names = [e.name for e in it if e.name.endswith(".parquet") and not e.name.startswith(".")]
    except FileNotFoundError:
        return []
    return sorted(names)


def valid_date(text: str) -> bool:
    """`YYYY-MM-DD` naming a real calendar day (`2026-13-45` and `2026-1-2` do not)."""
    if DATE_RE.match(text) is None or not text.isascii():
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def iter_partitions(root: Path) -> Iterator[tuple[str, str, Path]]:
    """(source, date, dir) of every `source=<client_name>/date=<YYYY-MM-DD>` directory with a valid client name
    and a real date, sorted: the partitions of the dataset, which every reader, status, compaction and retention
    work on. Other names are not part of the dataset (`ignored_paths` lists them)."""
    for s in _source_dirs(root):
        source = s.name[len("source=") :]
        if CLIENT_NAME_RE.match(source) is None:
            continue
        for date_, pdir in _date_dirs(Path(s.path)):
            yield source, date_, pdir


def _date_dirs(source_dir: Path) -> list[tuple[str, Path]]:
    """(date, dir) of the `date=<YYYY-MM-DD>` partitions of one `source=` folder with a real date, sorted
    (none when the folder cannot be listed)."""
    try:
        entries = sorted(os.scandir(source_dir), key=lambda e: e.name)
    except OSError:
        return []
    return [(d.name[5:], Path(d.path)) for d in entries if _is_date_dir(d)]


def _is_date_dir(entry: os.DirEntry[str]) -> bool:
    """A `date=<YYYY-MM-DD>` partition folder with a real date (not a link)."""
    return entry.name.startswith("date=") and entry.is_dir(follow_symlinks=False) and valid_date(entry.name[5:])


def _source_dirs(root: Path) -> list[os.DirEntry[str]]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [s for s in entries if s.is_dir(follow_symlinks=False) and s.name.startswith("source=")]


def part_file_paths(root: Path) -> list[tuple[str, Path]]:
    """(source, path) of every part file of the dataset (`iter_partitions`, `list_part_files`), in partition
    then name order: exactly the files a query reads and status counts."""
    return [(source, pdir / name) for source, _, pdir in iter_partitions(root) for name in list_part_files(pdir)]


def ignored_paths(root: Path) -> list[str]:
    """What holds or may hold rows under the dataset root without being part of the dataset, so that no reader
    reads it: `*.parquet` files outside a partition folder, and `source=` / `date=` folders whose names are not
    a client name and a real date (`source=Claude Code`, `date=2026-13-45`, `date=abc`). Other stray entries
    (`.DS_Store`, temp files) are not listed."""
    found: list[str] = []
    try:
        top = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for e in top:
        if e.name.startswith("."):
            continue
        if e.name.startswith("source=") and e.is_dir(follow_symlinks=False):
            if CLIENT_NAME_RE.match(e.name[len("source=") :]) is None:
                found.append(e.path)
                continue
            try:
                inner = sorted(os.scandir(e.path), key=lambda x: x.name)
            except OSError:
                continue
            for d in inner:
                if d.name.startswith("."):
                    continue
                if d.name.startswith("date=") and d.is_dir(follow_symlinks=False):
                    if not valid_date(d.name[5:]):
                        found.append(d.path)
                    else:  # (a folder in a partition, a copy of its files say: no reader reads it, no prune deletes it)
                        with contextlib.suppress(OSError), os.scandir(d.path) as it:
                            found.extend(sorted(x.path for x in it
                                                if not x.name.startswith(".") and x.is_dir(follow_symlinks=False)))
                elif d.name.endswith(".parquet"):
                    found.append(d.path)
        elif e.name.endswith(".parquet"):
            found.append(e.path)
    return found


def file_row_count(path: Path) -> int:
    """Row count from the Parquet footer (no data pages are read)."""
    return int(pl.scan_parquet(path, glob=False).select(pl.len()).collect().item())


def row_counts(paths: list[Path]) -> dict[Path, int] | None:
    """`file_row_count` of many files in one scan (1,080 files: 0.2 s instead of 1.0 s one by one). None when
    the scan fails (an unreadable file, a file gone meanwhile): ask file by file to tell which."""
    if not paths:
        return {}
    by_name = {str(p): p for p in paths}
    try:
        df = (
            pl.scan_parquet(list(by_name), glob=False, include_file_paths="_file", hive_partitioning=False)
            .group_by("_file")
            .len()
            .collect()
        )
    except Exception:  # noqa: BLE001 - the caller falls back to one file at a time
        return None
    counts = {by_name[f]: int(n) for f, n in zip(df["_file"].to_list(), df["len"].to_list(), strict=True)}
    for p in paths:
        counts.setdefault(p, 0)  # (a file of no rows has no group)
    return counts


def damaged_file_advice(layout: Layout, n: int = 1) -> str:
    """What to do about `n` damaged or foreign part files, in the same words wherever one is reported (a commit,
    compaction, `hyp query`, `hyp status`, `hyp cache status`). Moving a file away alone loses its rows for good:
    the checkpoints say its history was read, so the next backfill has nothing new to import. Without the
    checkpoint database a backfill reads every file again and dedupe drops the rows still stored. The daemon is
    stopped meanwhile: it keeps the old database (and its -wal) open and would write into the new one's."""
    it, its = ("it", "its") if n == 1 else ("them", "their")
    return (
        f"Move {it} into {layout.trash}/ (make that directory if there is none). Then, to import {its} rows again "
        f"from the history on this computer: stop the daemon if it runs ({prog.NAME} daemon stop), delete "
        f"{layout.ingest_db}, run {prog.NAME} backfill (it reads every file again and skips the rows already "
        "stored), and start the daemon again if you stopped it."
    )


def _unreadable_message(path: Path, layout: Layout, detail: str) -> str:
    return (
        f"dataset file {path} cannot be read as a hyp Parquet file ({detail}). It is damaged or was not "
        f"written by hyp; nothing was written. {damaged_file_advice(layout)}"
    )


@dataclass(frozen=True)
class PartFileProblem:
    """Why a part file cannot be read. `damaged`: it was opened, and is not a Parquet file with the columns of
    schema_version 1 (`damaged_file_advice` applies). Otherwise this process could not open it (`advice` says
    what to do), or a read failed on a file that reads well: the file may be fine, and setting it aside and
    deleting the checkpoints, as for a damaged file, would lose its rows or import them again for nothing."""

    path: str
    reason: str  # the parser's complaint when damaged; else "cannot be opened (Permission denied)", …
    damaged: bool
    advice: str = ""


def _footer_problem(fh: Any) -> str | None:
    """What is wrong with the part file open as `fh` (its footer's column list only), or None."""
    try:
        schema = pl.read_parquet_schema(fh)
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - polars raises ComputeError variants for damaged footers
        return _short(exc)
    return _schema_problem(schema)


def _schema_problem(schema: Mapping[str, Any]) -> str | None:
    if list(schema.items()) != list(_schema.AI_GATEWAY_MESSAGES_SCHEMA.items()):
        if list(schema)[: len(COLUMN_NAMES)] == list(COLUMN_NAMES):
            return "its column types are not those of schema_version 1"
        return "its columns are not those of schema_version 1"
    return None


@dataclass(frozen=True)
class SchemaMismatch:
    """A part file whose columns (names and types, from its footer) are not those of schema_version 1.
    `readable`: a query still reads it (columns it does not know, from a newer hyp, are ignored; a missing
    nullable column reads as null); otherwise a query that reads it fails, and `damaged_file_advice` applies."""

    path: str
    detail: str
    readable: bool


def _names(cols: list[str]) -> str:
    return ", ".join(cols[:5]) + (f" and {len(cols) - 5} more" if len(cols) > 5 else "")


def schema_mismatch(path: Path | str, schema: Mapping[str, Any]) -> SchemaMismatch | None:
    """How the footer schema `schema` of the part file at `path` differs from schema_version 1 (names and types;
    the order does not matter to a reader), or None."""
    expected = _schema.AI_GATEWAY_MESSAGES_SCHEMA
    retyped = [c for c, t in schema.items() if c in expected and t != expected[c]]
    missing = [c for c in expected if c not in schema]
    required = [c for c in missing if c in _schema.NON_NULL_COLUMNS]
    extra = [c for c in schema if c not in expected]
    said: list[str] = []
    if retyped:
        said.append("; ".join(f"its column {c} is {schema[c]}, not {expected[c]}" for c in retyped[:3]))
    if required:
        said.append(f"it has no column {_names(required)}, which every row must have")
    if missing and not required:
        said.append(f"it has no column {_names(missing)}, which queries read as null")
    if extra:
        said.append(f"it has columns this hyp does not know (from a newer hyp?), which queries ignore: {_names(extra)}")
    if not said:
        return None
    return SchemaMismatch(str(path), "; ".join(said), not (retyped or required))


def mismatch_text(mismatches: list[SchemaMismatch]) -> str:
    """The part files whose columns are not those of schema_version 1, each with what differs (one sentence)."""
    n = len(mismatches)
    if n == 1:
        return f"dataset file {mismatches[0].path} was not written by this version of hyp: {mismatches[0].detail}."
    shown = "; ".join(f"{m.path} ({m.detail})" for m in mismatches[:3]) + (f"; and {n - 3} more" if n > 3 else "")
    return f"{n} dataset files were not written by this version of hyp: {shown}."


def _open_advice(exc: OSError) -> str:
    if exc.errno == errno.EISDIR:
        return "It is a folder, not a file: move it out of the dataset."
    if exc.errno == errno.ELOOP:
        return "It is a symbolic link loop: remove the link."
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "Check its permissions (hyp makes its files readable and writable by you)."
    return "hyp did not change it: run the command again, and check the drive if it happens again."


def _diagnose(path: Path) -> PartFileProblem | None:
    """`path` opened with `open()` (the path is never interpreted), its footer parsed from the handle and then
    the whole file read from it: None when it is a valid part file that reads. The footer alone is not enough:
    a page whose zstd frame does not match its size fails only when read, and a "run it again" for such a file
    left every commit into its partition failing for good. FileNotFoundError when it is gone."""
    try:
        with open(path, "rb") as fh:
            problem = _footer_problem(fh)
            if problem is None:
                fh.seek(0)
                try:
                    pl.read_parquet(fh)
                except OSError:
                    raise
                except Exception as exc:  # noqa: BLE001 - polars raises ComputeError variants for bad pages
                    problem = _short(exc)
    except FileNotFoundError:
        raise
    except OSError as exc:
        return PartFileProblem(str(path), f"cannot be opened ({exc.strerror or exc})", False, _open_advice(exc))
    return None if problem is None else PartFileProblem(str(path), problem, True)


def part_file_problem(path: Path, failure: BaseException) -> PartFileProblem | None:
    """Why the part file at `path` could not be read by a reader that failed with `failure`: found again without
    that reader (`_diagnose`). None when it is gone (compaction or retention removed it meanwhile)."""
    try:
        problem = _diagnose(path)
    except FileNotFoundError:
        return None
    if problem is not None:
        return problem
    return PartFileProblem(
        str(path),
        f"could not be read ({_short(failure)}), although it opens as a valid part file",
        False,
        "hyp did not change it: run the command again.",
    )


def unopened_text(problems: list[PartFileProblem]) -> str:
    """The part files this process could not read (`DatasetStats.unopened`), each with its reason, then what to
    do. No advice to set them aside: they may be fine."""
    n = len(problems)
    shown = "; ".join(f"{p.path} {p.reason}" for p in problems[:3]) + (f"; and {n - 3} more" if n > 3 else "")
    advice = " ".join(dict.fromkeys(p.advice for p in problems))
    return f"{n} dataset file{'s' if n != 1 else ''} could not be read: {shown}. {advice}"


def _problem_message(path: Path, layout: Layout, problem: PartFileProblem) -> str:
    if problem.damaged:
        return _unreadable_message(path, layout, problem.reason)
    return f"dataset file {path} {problem.reason}; nothing was written. {problem.advice}"


def _read_failed(path: Path, layout: Layout, failure: BaseException) -> BaseException:
    """What to raise after a read of `path` failed with `failure`: a StorageError saying why, or
    FileNotFoundError when the file is gone."""
    problem = part_file_problem(path, failure)
    if problem is None:
        return FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
    return StorageError(_problem_message(path, layout, problem))


def _check_schema(path: Path, layout: Layout) -> None:
    """Raise a StorageError unless `path` is a part file with the columns of schema_version 1;
    FileNotFoundError when it is gone."""
    try:
        schema = pl.scan_parquet(path, glob=False, hive_partitioning=False).collect_schema()
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - polars raises ComputeError / OSError variants
        raise _read_failed(path, layout, exc) from exc
    detail = _schema_problem(schema)
    if detail is not None:
        raise StorageError(_unreadable_message(path, layout, detail))


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --- encoding ahead of the lock ---------------------------------------------------------------------------


def _first_per_part_id(df: pl.DataFrame) -> pl.DataFrame:
    """The first row of each `part_id`, in order. A batch rarely repeats one: checking the id column alone
    first spares the copy of every column (the content text above all) that `unique` makes."""
    if df["part_id"].is_unique().all():
        return df
    return df.unique(subset="part_id", keep="first", maintain_order=True)


def compact_frames(frames: list[pl.DataFrame]) -> tuple[pl.DataFrame, int, pl.Series]:
    """storage.md §8 step 2 on a partition's files read in name order: the first row of each `part_id`
    (name order, then row order), sorted by the sort key (stable), as `unique(keep="first",
    maintain_order=True)` then `encode_part`'s sort give them. Also returns the number of input rows and the
    sorted distinct input `part_id`s (for step 4). Empties `frames`.

    The row order is worked out on the key columns alone, then each column is moved into the result, its input
    dropped as it goes, where a frame-wide concat, unique and sort copied every text three times. With freed
    pages handed back at once (core.daemon.memory.COMPACT_ALLOCATOR_CONF), the peak of `hyp cache compact` on
    64 files of 60,000 rows of 2 KB went from 719 to 411 MiB (benchmarks/bench_compact.py); neither change
    alone lowered it much."""
    merged = pl.concat(frames, how="vertical", rechunk=False)  # (the files' buffers, not copied)
    frames.clear()
    rows_before = merged.height
    keys = merged.select("part_id", *SORT_KEY).with_row_index("__row")
    input_ids = keys.select(pl.col("part_id").unique().sort())["part_id"]
    order = (
        keys.unique(subset="part_id", keep="first", maintain_order=True)
        .sort(list(SORT_KEY), maintain_order=True)["__row"]
    )
    del keys
    columns = []
    for name in merged.columns:
        column = merged.drop_in_place(name)
        columns.append(column.gather(order))
        del column
    return pl.DataFrame(columns), rows_before, input_ids


def encode_part(df: pl.DataFrame) -> bytes:
    """storage.md §2-3: the bytes of one part file (sorted by the sort key, stable; zstd level 3)."""
    return _encode_sorted(df.sort(list(SORT_KEY), maintain_order=True))


def _encode_sorted(df: pl.DataFrame) -> bytes:
    """`encode_part` of a frame already in file order."""
    buf = io.BytesIO()
    df.write_parquet(
        buf,
        compression="zstd",
        compression_level=3,
        statistics=True,
        row_group_size=ROW_GROUP_SIZE,
        metadata=FOOTER_METADATA,
    )
    return buf.getvalue()


def decode_part(data: bytes) -> pl.DataFrame:
    return validate_frame(pl.read_parquet(io.BytesIO(data)))


@dataclass
class EncodedPartition:
    source: str
    date: str
    batch_rows: int  # rows of the batch in this partition, in-batch duplicates included
    rows: int  # rows in `data` (after the in-batch dedupe)
    part_ids: list[str]  # their part_ids (in file order)
    data: bytes | None  # the part file as `_write_part` would write it; None when `rows` is 0
    sessions: frozenset[str] = frozenset()  # of the `batch_rows` (a row dropped as an in-batch duplicate too)


@dataclass
class EncodedBatch:
    """A batch validated, floor-filtered, deduplicated within itself, partitioned and encoded ahead of the
    commit by `encode_batch` (a pure function: a parse worker can run it). `Storage.commit` then only checks
    it against the memo under the lock and writes the bytes, with the same result and accounting as for the
    rows it came from."""

    partitions: list[EncodedPartition]
    height: int  # rows after the floor filter
    rows_before_floor: int
    cut_date: str | None


def encode_batch(rows: list[dict[str, Any]] | pl.DataFrame, cut_date: str | None = None) -> EncodedBatch:
    """Steps 1 and 3-4 of §6.2 that need no lock: validate, drop rows before `cut_date`, drop repeated
    `part_id`s (first wins, across dates too), split by partition and encode each partition's file. Raises
    SchemaError like `Storage.commit`."""
    df = Storage._prepare(rows)
    before_floor = 0
    if cut_date is not None and df.height:
        before = df.height
        df = df.filter(pl.col("date") >= cut_date)
        before_floor = before - df.height
    partitions: list[EncodedPartition] = []
    if df.height:
        parts = _sorted_partitions(_first_per_part_id(df))
        for (source, date_), (batch_rows, sessions) in Storage._count_by_partition(df).items():
            part = parts.get((source, date_))
            if part is None:
                partitions.append(EncodedPartition(source, date_, batch_rows, 0, [], None, sessions))
                continue
            partitions.append(
                EncodedPartition(
                    source, date_, batch_rows, part.height, part["part_id"].to_list(), _encode_sorted(part), sessions
                )
            )
    return EncodedBatch(partitions, df.height, before_floor, cut_date)


def _sorted_partitions(df: pl.DataFrame) -> dict[tuple[str, str], pl.DataFrame]:
    """(client_name, date) -> that partition's rows of `df` in file order (`encode_part`'s stable sort by
    `SORT_KEY`). One stable sort of the whole batch with the partition first, then a slice per partition (no
    copy): the same rows in the same order as `partition_by` (which copies every column) then a sort per
    partition (which copies them again), and the same file bytes."""
    df = df.sort(["client_name", "date", *SORT_KEY], maintain_order=True)
    parts: dict[tuple[str, str], pl.DataFrame] = {}
    offset = 0
    for source, date_, n in df.group_by(["client_name", "date"], maintain_order=True).len().iter_rows():
        parts[(source, date_)] = df.slice(offset, n)
        offset += n
    return parts


@dataclass
class _PartWrite:
    """One partition of a commit: what to write (a frame to encode, or bytes encoded ahead; neither when every
    row was a duplicate), then the outcome of writing it."""

    source: str
    date: str
    memo: _Memo
    dupes: int
    frame: pl.DataFrame | None = None
    data: bytes | None = None
    part_ids: list[str] | None = None
    sessions: frozenset[str] = frozenset()  # of the partition's rows in the batch (written or duplicate)
    name: str | None = None  # the file written
    error: BaseException | None = None

    def run(self, storage: Storage) -> None:
        try:
            pdir = storage.layout.partition_dir(self.source, self.date)
            if self.frame is not None:
                self.part_ids = self.frame["part_id"].to_list()
                self.name = storage._write_part(pdir, self.frame)
            else:
                assert self.data is not None
                ensure_dir(pdir, below=storage.layout.home)
                self.name = storage._write_bytes(pdir, self.data)
            self.frame = self.data = None
            _fault("after_rename")
        except BaseException as exc:  # raised by `_write_planned` once no write of the commit is running
            self.error = exc


# --- the engine -----------------------------------------------------------------------------------------


def _stale_checkpoints(db: StateDB, client_roots_hashes: Mapping[str, set[str] | None]) -> list[str]:
    """The path hashes of the checkpoints whose file a complete scan of its client's roots no longer found; a
    client mapped to None (some root could not be read) keeps its entries."""
    stale: list[str] = []
    for client, hashes in client_roots_hashes.items():
        if hashes is not None:
            stale.extend(h for h in db.get_all(client) if h not in hashes)
    return stale


class Storage:
    """Writes, prunes and compacts the dataset under `layout`. One instance per process (it holds the memo).

    Nothing is created until a write is attempted. `events=None` logs nothing."""

    def __init__(
        self,
        layout: Layout,
        *,
        events: EventLog | None = None,
        lock_timeout: float | None = None,
    ) -> None:
        self.layout = layout
        self.events = events
        self.lock_timeout = lock_timeout
        self._memo: dict[tuple[str, str], _Memo] = {}
        self._lock: FileLock | None = None
        # Asked while waiting for another process's lock: a Ctrl+C of `hyp backfill` then stops the wait
        # (it was ignored until the lock came free). None: wait as long as `lock_timeout`.
        self.cancel: Callable[[], bool] | None = None
        self._unreported_wait_ms = 0  # a lock wait outside a commit (the import-floor check)
        self._db: StateDB | None = None
        # The identity (`paths.dir_identity`) of HYP_HOME this instance writes into: set by the daemon at its
        # start, else recorded at the first lock. A HYP_HOME moved or deleted since is never created again
        # (`HomeMoved`): the open checkpoint database went with it.
        self.home_id: str | None = None
        # `meta.dataset_resets` as this instance last checked it ("0" when none was recorded yet; None before its
        # first check). A missing value is "0", not None: as None, a writer that checked before any reset never
        # noticed the first one, made by another process, and committed checkpoints read against the old ones.
        self._resets_seen: str | None = None
        # Whether the last `ensure_import_floor` reset every checkpoint because the dataset was replaced.
        self.dataset_reset = False
        # Test hook: called with the new compacted file's path and its re-read frame; returning False (or
        # raising) makes the verification fail.
        self.verify_hook: Callable[[Path, pl.DataFrame], bool] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _state(self, on_wait: Callable[[], None] | None = None) -> StateDB:
        """The checkpoint database, opened at first use; `on_wait` is called when another process holds it
        (`StateDB.open`)."""
        if self._db is None:
            self._db = StateDB.open(self.layout, create=True, on_wait=on_wait)
        return self._db

    def _state_if_any(self) -> StateDB | None:
        """The checkpoint database when there is one (a commit of rows alone does not create it)."""
        if self._db is None and not self.layout.ingest_db.exists():
            return None
        return self._state()

    def _emit(self, event: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(event, **fields)

    def _emit_many(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """`_emit` of each `(event, fields)` in turn, in one append to the log (`EventLog.emit_many`)."""
        if self.events is not None and events:
            self.events.emit_many(events)

    # -- locking ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, on_wait: Callable[[], None] | None = None, kept: str = _paths.IMPORT_KEPT) -> Iterator[int]:
        """Hold `run/write.lock` (storage.md §4). Yields the wait in ms. `on_wait` is called once when the
        lock is not free within 0.2 s (the CLI prints its waiting notice). `kept`: what the operation keeps
        when it fails, for the advice of an error (see `paths.os_error_hint`)."""
        self._check_home()
        try:
            ensure_dir(self.layout.run_dir, below=self.layout.home if self.home_id is not None else None)
        except _paths.HomeGone as exc:
            raise HomeMoved(_paths.home_moved_message(self.layout.home)) from exc
        except OSError as exc:
            raise StorageError(
                _os_error_message(exc, "cannot create the run directory", self.layout, kept)
            ) from exc
        if self._lock is None:
            self._lock = FileLock(
                str(self.layout.write_lock),
                mode=FILE_MODE,
                fallback_to_soft=False,
                preserve_lock_file=True,
            )
        lock = self._lock
        start = time.monotonic()
        try:
            try:
                lock.acquire(timeout=LOCK_NOTICE_AFTER_S)
            except Timeout:
                if self.cancel is not None and self.cancel():
                    raise LockWaitCancelled() from None
                if on_wait is not None:
                    on_wait()
                self._acquire_waiting(lock)
        except Timeout as exc:
            raise StorageError(
                f"another hyp process has held {self.layout.write_lock} for more than "
                f"{self.lock_timeout:g} s; try again when it has finished (see {prog.NAME} status)"
            ) from exc
        except OSError as exc:
            raise StorageError(_os_error_message(exc, "cannot take the write lock", self.layout, kept)) from exc
        wait_ms = int((time.monotonic() - start) * 1000)
        try:
            if self.home_id is None:
                with contextlib.suppress(OSError):
                    self.home_id = dir_identity(self.layout.home, changed=False)
            else:
                self._check_home()  # (moved while this process waited for the lock)
            if self.layout.compaction_journal.exists():
                self._recover_compaction()
            yield wait_ms
        finally:
            lock.release()

    def _check_home(self) -> None:
        """Raise `HomeMoved` when HYP_HOME is not the directory this instance has been writing into."""
        if self.home_id is None:
            return
        try:
            now = dir_identity(self.layout.home, changed=False)
        except OSError:
            return  # (not readable: the write that follows says why)
        if now != self.home_id:
            raise HomeMoved(_paths.home_moved_message(self.layout.home))

    def _acquire_waiting(self, lock: FileLock) -> None:
        """The wait after the notice: up to `lock_timeout`, in short tries when the run can be cancelled."""
        cancel = self.cancel
        if cancel is None:
            lock.acquire(timeout=-1 if self.lock_timeout is None else self.lock_timeout)
            return
        deadline = None if self.lock_timeout is None else time.monotonic() + self.lock_timeout
        while not cancel():
            try:
                lock.acquire(timeout=0.2)
                return
            except Timeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
        raise LockWaitCancelled()

    # -- memo ------------------------------------------------------------------------------------------
    def _refresh_memo(self, source: str, date_: str) -> _Memo:
        """storage.md §6.4: read the `part_id` column of every part file not read yet in this process. When
        a file that was read has gone (compaction, retention in another process) the memo is rebuilt."""
        key = (source, date_)
        pdir = self.layout.partition_dir(source, date_)
        names = list_part_files(pdir)
        memo = self._memo.get(key)
        if memo is None or not memo.files.issubset(names):
            memo = _Memo()
        for name in names:
            if name in memo.files:
                continue
            ids = self._read_part_ids(pdir / name)
            if ids is None:
                continue  # vanished between listing and reading
            memo.ids.update(ids)
            memo.files.add(name)
        memo.touched = time.monotonic()
        self._memo[key] = memo
        return memo

    def _read_part_ids(self, path: Path) -> list[str] | None:
        try:
            _check_schema(path, self.layout)
            return pl.read_parquet(path, columns=["part_id"], glob=False)["part_id"].to_list()
        except FileNotFoundError:
            return None
        except StorageError:
            raise
        except Exception as exc:
            failed = _read_failed(path, self.layout, exc)
            if isinstance(failed, FileNotFoundError):
                return None
            raise failed from exc

    def evict_memo(self, idle_seconds: float = MEMO_IDLE_SECONDS) -> int:
        """Forget partitions not touched for `idle_seconds` (the daemon calls this). Returns how many."""
        cutoff = time.monotonic() - idle_seconds
        stale = [k for k, m in self._memo.items() if m.touched < cutoff]
        for k in stale:
            del self._memo[k]
        return len(stale)

    # -- commit ----------------------------------------------------------------------------------------
    def commit(
        self,
        rows: list[dict[str, Any]] | pl.DataFrame | EncodedBatch,
        checkpoints: list[CheckpointUpdate],
        *,
        cut_date: str | None = None,
        on_wait: Callable[[], None] | None = None,
        provider: str | None = None,
        release_rows: bool = False,
    ) -> CommitResult:
        """Commit a batch: rows first, then the checkpoints of the files that produced them (§6.2).

        `rows` are finalized row dicts (JSON columns as text, timestamps as int µs UTC, `date` set) in batch
        order, or a frame of the schema, or an `EncodedBatch` made by `encode_batch` with the same `cut_date`
        (steps 1 and 3-4 done ahead, possibly in a parse worker). Rows dated before `cut_date` are dropped.
        A batch with no rows still updates its checkpoints. Raises SchemaError for a batch that does not fit the schema (a bug) and
        StorageError when the dataset or the state database cannot be written. With `release_rows`, a list of
        row dicts is emptied once its frame is built (the caller hands the rows over and keeps no other
        reference to them): a large value (a 150 MB tool output) is then not held both as a Python string and
        in the frame while the file is encoded, which costs several times the value."""
        encoded: EncodedBatch | None = None
        if isinstance(rows, EncodedBatch):
            encoded = rows
            if encoded.cut_date != cut_date:
                raise ValueError("an encoded batch must be committed with the cut date it was encoded with")
            df = None
            height = encoded.height
        elif isinstance(rows, list) and not rows:  # checkpoints only: no frame (nor Polars import) needed
            df = None
            height = 0
        else:
            df = self._prepare(rows)
            height = df.height
            if release_rows and isinstance(rows, list):
                rows.clear()
        self._check_updates(checkpoints)
        result = CommitResult()
        if encoded is not None:
            result.rows_before_floor = encoded.rows_before_floor
        elif cut_date is not None and height:
            before = height
            df = df.filter(pl.col("date") >= cut_date)
            height = df.height
            result.rows_before_floor = before - height
        if height == 0 and not checkpoints:
            return result

        writes: list[dict[str, Any]] = []
        try:
            with self.locked(on_wait) as wait_ms:
                # (with the wait for the import-floor check before the run's first commit, if any)
                result.lock_wait_ms, self._unreported_wait_ms = wait_ms + self._unreported_wait_ms, 0
                marker, meta = self._check_dataset()
                if encoded is not None:
                    self._write_encoded(encoded, result, writes)
                elif height:
                    self._write_rows(df, result, writes)
                if result.files_written:
                    # The next generation, on disk before the checkpoints that record it (one transaction): a
                    # crash between the two leaves the marker ahead, which is not stale (the lines are read
                    # again, and deduplicated); a copy of the dataset from before these files is behind.
                    _fault("before_marker")
                    marker = write_marker(self.layout, DatasetMarker(marker.id, marker.generation + 1))
                    meta = {**marker.meta(), **self._newest_written(result.files)}
                _fault("before_checkpoints")
                if checkpoints:
                    self._apply_checkpoints(checkpoints, result, meta)
                elif meta and (db := self._state_if_any()) is not None:
                    db.put_many((), meta)
                _fault("before_release")
        except (OSError, StateDBError) as exc:
            # Files written before the error stay in the dataset (their checkpoints do not move: the next run
            # reads those lines again and finds them as duplicates). Said, and logged, for what they are.
            if isinstance(exc, _paths.HomeGone):
                error: StorageError = HomeMoved(_paths.home_moved_message(self.layout.home))
            elif isinstance(exc, OSError):
                error = StorageError(_os_error_message(exc, "could not write to the dataset", self.layout))
            else:
                error = StorageError(str(exc))
            error.partial = result
            self._emit_many([("backfill.write", ev) for ev in writes])
            raise error from exc

        events = [("backfill.write", ev) for ev in writes]
        if result.rows_written or result.duplicates_skipped or result.checkpoints_updated:
            events.append((
                "backfill.flush",
                {
                    "provider": provider,
                    "files_written": result.files_written,
                    "rows_written": result.rows_written,
                    "checkpoints_updated": result.checkpoints_updated,
                    "lock_wait_ms": result.lock_wait_ms,
                },
            ))
        self._emit_many(events)
        return result

    def _newest_written(self, files: list[Path]) -> dict[str, str | None]:
        """The `META_NEWEST_FILE` values after a commit that wrote `files`: per source, the newest of them (by
        name: creation order), or the one recorded when it is newer (it was checked to be there, under the
        lock, before the commit wrote anything)."""
        db = self._state_if_any()
        recorded = db.newest_files() if db is not None else {}
        newest: dict[str, str] = {}
        for path in files:
            source = path.parent.parent.name.removeprefix("source=")
            rel = f"{path.parent.parent.name}/{path.parent.name}/{path.name}"
            best = newest.get(source) or recorded.get(source)
            if best is None or path.name > best.rsplit("/", 1)[-1]:
                newest[source] = rel
        return {META_NEWEST_FILE + source: rel for source, rel in newest.items()}

    def _move_newest_record(self, source: str, files: Collection[str]) -> None:
        """Before a compaction (or its recovery) deletes `files` of `source`: the newest-file record moved off
        them, in its own transaction (`_newest_moved`). Nothing without a checkpoint database."""
        db = self._state_if_any()
        moved = {} if db is None else self._newest_moved(db, source, files=files)
        if moved:
            assert db is not None
            db.put_many((), moved)

    def _newest_moved(
        self, db: StateDB, source: str, *, files: Collection[str] = (), dates: Collection[str] = ()
    ) -> dict[str, str | None]:
        """Under the lock, before a compaction or a prune deletes `files` (`source=…/date=…/part-….parquet`) or the
        partitions of `dates` of `source`: when the newest part file recorded for the source is among them, the
        meta value that records instead the newest file left (None: the source is left without a part file, and
        the record goes). Else nothing to change."""
        key = META_NEWEST_FILE + source
        rel = db.get_meta(key)
        if rel is None or _NEWEST_RE.fullmatch(rel) is None:
            return {}
        if not (rel in files or rel.split("/")[1].removeprefix("date=") in dates):
            return {}
        return {key: newest_part_file(self.layout.dataset_root, source, skip_files=files, skip_dates=dates)}

    def _write_rows(self, df: pl.DataFrame, result: CommitResult, writes: list[dict[str, Any]]) -> None:
        """Steps 2-4 under the lock: refresh the memo, dedupe, write one file per partition."""
        # Batch order, first wins; a part_id repeated under another date of the same batch counts too.
        unique = _first_per_part_id(df)
        parts = unique.partition_by(["client_name", "date"], as_dict=True, maintain_order=True)
        plan: list[_PartWrite] = []
        for (source, date_), (batch_rows, sessions) in self._count_by_partition(df).items():
            part = parts.get((source, date_))
            dupes = batch_rows - (part.height if part is not None else 0)
            memo = self._refresh_memo(source, date_)
            fresh = part
            if part is not None and memo.ids:
                ids = memo.ids
                fresh = part.filter(pl.Series([pid not in ids for pid in part["part_id"].to_list()]))
                dupes += part.height - fresh.height
            if fresh is None or fresh.height == 0:
                plan.append(_PartWrite(source, date_, memo, dupes, sessions=sessions))
                continue
            plan.append(_PartWrite(source, date_, memo, dupes, frame=fresh, sessions=sessions))
        self._write_planned(plan, result, writes)

    def _write_encoded(self, batch: EncodedBatch, result: CommitResult, writes: list[dict[str, Any]]) -> None:
        """`_write_rows` for a batch encoded ahead: the same memo, dedupe and accounting. A partition none of
        whose ids is stored yet is written from its encoded bytes; otherwise it is decoded, filtered and
        written as `_write_rows` would (the bytes are sorted already, and the sort is stable: same file)."""
        plan: list[_PartWrite] = []
        for ep in batch.partitions:
            dupes = ep.batch_rows - ep.rows
            memo = self._refresh_memo(ep.source, ep.date)
            if ep.data is None:
                plan.append(_PartWrite(ep.source, ep.date, memo, dupes, sessions=ep.sessions))
                continue
            ids = memo.ids
            if ids and not ids.isdisjoint(ep.part_ids):
                part = decode_part(ep.data)
                fresh = part.filter(pl.Series([pid not in ids for pid in part["part_id"].to_list()]))
                dupes += part.height - fresh.height
                if fresh.height == 0:
                    plan.append(_PartWrite(ep.source, ep.date, memo, dupes, sessions=ep.sessions))
                    continue
                plan.append(_PartWrite(ep.source, ep.date, memo, dupes, frame=fresh, sessions=ep.sessions))
            else:
                plan.append(
                    _PartWrite(
                        ep.source, ep.date, memo, dupes, data=ep.data, part_ids=ep.part_ids, sessions=ep.sessions
                    )
                )
        self._write_planned(plan, result, writes)

    def _write_planned(self, plan: list[_PartWrite], result: CommitResult, writes: list[dict[str, Any]]) -> None:
        """Step 4 for the partitions of one commit: each file encoded (when it is a frame) and written (§3),
        up to `WRITE_THREADS` at a time. Encoding and fsync release the GIL, and a commit of history spread
        over months touches hundreds of partitions (20,000 small sessions: 3 commits of ~270 files each),
        which one at a time kept the lock for seconds. The memo, the result and the events then follow in
        partition order, as before. When a write fails, the writes running finish first (none may outlive
        the lock); the files written join the memo, and the first error is raised."""
        todo = [w for w in plan if w.frame is not None or w.data is not None]
        if len(todo) < PARALLEL_WRITES_FROM:
            for w in todo:  # one at a time, stopping at the first failure
                w.run(self)
                if w.error is not None:
                    break
        else:
            from concurrent.futures import ThreadPoolExecutor

            failed = threading.Event()

            def run(w: _PartWrite) -> None:
                if not failed.is_set():  # after a failure (a full disk), start no other write
                    w.run(self)
                    if w.error is not None:
                        failed.set()

            with ThreadPoolExecutor(min(WRITE_THREADS, len(todo)), thread_name_prefix="hyp-write") as pool:
                for _ in pool.map(run, todo):
                    pass
        error: BaseException | None = None
        # The sessions of the partitions done (for a commit that fails later: `CommitResult.session_ids`); a
        # set per partition, nothing per row.
        done = result.session_ids = set() if result.session_ids is None else result.session_ids
        for w in plan:
            if w.error is not None:
                error = error or w.error
                continue
            if w.name is None:
                if w.frame is None and w.data is None:  # nothing to write: every row was a duplicate
                    result.duplicates_skipped += w.dupes
                    done |= w.sessions
                    writes.append(self._write_event(w.source, w.date, None, 0, w.dupes))
                continue  # (else not written: an earlier write failed)
            done |= w.sessions
            # Only after a successful rename do the ids and the file name join the memo (§6.2 step 4).
            w.memo.ids.update(w.part_ids or ())
            w.memo.files.add(w.name)
            result.duplicates_skipped += w.dupes
            result.rows_written += len(w.part_ids or ())
            result.files_written += 1
            result.partitions.append(partition_name(w.source, w.date))
            result.files.append(self.layout.partition_dir(w.source, w.date) / w.name)
            writes.append(self._write_event(w.source, w.date, w.name, len(w.part_ids or ()), w.dupes))
        if error is not None:
            raise error

    @staticmethod
    def _count_by_partition(df: pl.DataFrame) -> dict[tuple[str, str], tuple[int, frozenset[str]]]:
        """Per partition of `df`: its rows and the session ids of those rows (one pass, by Polars)."""
        counts = df.group_by(["client_name", "date"], maintain_order=True).agg(
            pl.len(), pl.col("session_id").drop_nulls().unique()
        )
        return {(r[0], r[1]): (r[2], frozenset(r[3])) for r in counts.iter_rows()}

    @staticmethod
    def _write_event(source: str, date_: str, name: str | None, written: int, dupes: int) -> dict[str, Any]:
        return {
            "provider": source,
            "partition": partition_name(source, date_),
            "file": name,
            "rows_written": written,
            "duplicates_skipped": dupes,
        }

    @staticmethod
    def _prepare(rows: list[dict[str, Any]] | pl.DataFrame) -> pl.DataFrame:
        df = validate_frame(rows) if isinstance(rows, pl.DataFrame) else frame_from_rows(rows)
        if df.height == 0:
            return df
        bad_clients = [c for c in df["client_name"].unique().to_list() if not CLIENT_NAME_RE.match(c)]
        if bad_clients:
            raise SchemaError(f"client_name must match [a-z0-9_-]+: {bad_clients[:5]}")
        bad_dates = [d for d in df["date"].unique().to_list() if not DATE_RE.match(d)]
        if bad_dates:
            raise SchemaError(f"date must be YYYY-MM-DD: {bad_dates[:5]}")
        wrong = df.filter(pl.col("message_created_at").dt.strftime("%Y-%m-%d") != pl.col("date"))
        if wrong.height:
            example = wrong.row(0, named=True)
            raise SchemaError(
                f"date must be the UTC date of message_created_at ({wrong.height} rows differ, e.g. part_id "
                f"{example['part_id']!r}: date {example['date']} for {example['message_created_at']})"
            )
        return df

    @staticmethod
    def _check_updates(updates: list[CheckpointUpdate]) -> None:
        for upd in updates:
            if not isinstance(upd, CheckpointUpdate):
                raise TypeError(f"checkpoints must be CheckpointUpdate objects, got {type(upd).__name__}")

    def _write_part(self, pdir: Path, df: pl.DataFrame, file_id: str | None = None) -> str:
        """storage.md §2-3: one sorted, zstd-compressed Parquet file written atomically. Returns its name."""
        ensure_dir(pdir, below=self.layout.home)
        return self._write_bytes(pdir, encode_part(df), file_id)

    def _write_bytes(self, pdir: Path, data: bytes, file_id: str | None = None) -> str:
        """Steps 4 of §6.2 for one encoded file: temp file, fsync, rename, directory fsync. Returns its name."""
        file_id = file_id or uuid7_hex()
        name = f"part-{file_id}.parquet"
        # (str paths, joined by hand: `os.open` and `os.replace` take them as they are, without two `Path`
        # joins per file; the same paths, `Path` always spells a directory without a trailing "/")
        tmp = f"{os.fspath(pdir)}/.{name}.tmp"
        final = f"{os.fspath(pdir)}/{name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        try:
            try:
                with contextlib.suppress(OSError):
                    os.fchmod(fd, FILE_MODE)
                half = len(data) // 2
                view = memoryview(data)  # (halves without copying the bytes)
                _paths.write_all(fd, view[:half])
                _fault("mid_write")
                _paths.write_all(fd, view[half:])
                os.fsync(fd)
            finally:
                os.close(fd)
            _fault("before_rename")
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(pdir)
        return name

    # -- checkpoints (§6.3) -----------------------------------------------------------------------------
    def _check_dataset(self) -> tuple[DatasetMarker, dict[str, str] | None]:
        """Under the lock, before a commit writes anything: raise `DatasetReplaced` when the checkpoints no longer
        describe the dataset (`dataset_stale`), or when another process found it so since this instance last
        checked and reset the checkpoints (this process's unwritten checkpoints were read against the old ones).
        Returns the dataset's marker (made now, with the root, when there was none and the checkpoints record
        none: a first commit, or a database from before markers), and the meta to record with the checkpoints
        when they do not record it yet (else None)."""
        root = self.layout.dataset_root
        db = self._state_if_any()
        if db is None:  # (no checkpoint yet: nothing to contradict)
            recorded, found = None, read_marker(self.layout)
        else:
            stale, recorded, found = dataset_stale(db, self.layout)
            resets = db.get_meta(META_DATASET_RESETS) or "0"
            if stale or (self._resets_seen is not None and resets != self._resets_seen):
                raise DatasetReplaced(
                    f"the dataset at {_paths.shown_path(root)} was deleted or replaced while this import ran: "
                    "nothing more was written. Run the import again: it reads all history again and skips the "
                    "rows already there."
                )
        if found is None:  # (and none recorded: not stale)
            ensure_dir(root, below=self.layout.home)
            found = write_marker(self.layout, new_marker())
        return found, (found.meta() if db is not None and recorded != found else None)

    def _apply_checkpoints(
        self, updates: list[CheckpointUpdate], result: CommitResult, meta: Mapping[str, str] | None = None
    ) -> None:
        db = self._state()
        pending: dict[str, Checkpoint] = {}
        heads: dict[str, tuple[os.stat_result, bytes] | None] = {}
        stored = db.get_many(upd.entry.path_hash for upd in updates)
        for upd in updates:
            entry = upd.entry
            if upd.path not in heads:
                heads[upd.path] = _probe(upd.path)
            now = heads[upd.path]
            if now is None or not _matches(now, entry, upd.path):
                result.checkpoints_mismatched += 1  # (a) the file changed since the batch read it
                continue
            current = pending.get(entry.path_hash) or stored.get(entry.path_hash)
            if current is not None and _matches(now, current, upd.path) and (
                earlier_bound(current, entry)
                or (
                    not earlier_bound(entry, current)
                    and (
                        current.offset > entry.offset
                        or (
                            current.offset == entry.offset
                            and (current.size, current.mtime_ns) == (entry.size, entry.mtime_ns)
                        )
                    )
                )
            ):
                result.checkpoints_kept += 1  # (b) forward only
                continue
            # (c) Also when the batch's pass began at an earlier bound, even at an earlier offset: a backfill
            # read again what the daemon's first pass skipped (`reader.must_widen`). Kept, the stored bound
            # made every later backfill read the whole file again; replaced, the lines after the batch's
            # offset are read again once, and dedupe absorbs them. (A stored entry of another identity never
            # wins: `_matches` above.) And when only the file's size or mtime moved (a file touched, or
            # appended to and cut back): both parses resumed from consistent checkpoints to the same offset,
            # so the entries are equivalent, and keeping the old stat would make every later run re-open the
            # file to find nothing new.
            pending[entry.path_hash] = entry  # (c)
        if pending or meta:
            db.put_many(pending.values(), meta)
        result.checkpoints_updated = len(pending)

    def ensure_import_floor(self, cut_date: str | None, *, on_wait: Callable[[], None] | None = None) -> bool:
        """storage.md §7.3: record the import floor; when it is earlier than the recorded one (retention was
        raised, or set to 0), reset every checkpoint first. Returns True when checkpoints were reset.

        Also, before every import: when the checkpoints no longer describe the dataset (`dataset_stale`: it was
        deleted, emptied, or restored from an older copy), the rows they say were stored may be missing: every checkpoint
        is reset (the recorded import floor stays), and a new marker is written and recorded, in one transaction;
        `dataset_reset` is then True, and a `checkpoints.reset` event with reason `dataset_replaced` is logged.
        A small read (the marker), a stat, two meta reads and one small query when nothing changed."""
        new = cut_date or NO_FLOOR
        replaced = False
        try:
            with self.locked(on_wait) as wait_ms:
                self._unreported_wait_ms += wait_ms  # reported with the next commit's lock_wait_ms
                db = self._state(on_wait)
                root = self.layout.dataset_root
                replaced, recorded, seen = dataset_stale(db, self.layout)
                resets = db.get_meta(META_DATASET_RESETS)
                if replaced:
                    # A new marker (with the root, when it was deleted), recorded with the reset: the next check
                    # finds what this one recorded, even when no row is written meanwhile.
                    ensure_dir(root, below=self.layout.home)
                    marker = write_marker(self.layout, new_marker())
                    resets = str(int(resets or 0) + 1)
                    # (the newest files recorded go too: they describe the dataset that was replaced)
                    forget: dict[str, str | None] = {META_NEWEST_FILE + c: None for c in db.newest_files()}
                    db.reset_all({**marker.meta(), META_DATASET_RESETS: resets, **forget})
                else:
                    if seen is None and recorded is None and root.is_dir():
                        # A dataset from before markers, adopted now rather than at the next commit that writes
                        # (a first import makes the root and its marker when it has rows to write).
                        seen = write_marker(self.layout, new_marker())
                    if seen is not None and recorded != seen:
                        # (a database from before markers; or the marker one generation ahead, after a crash
                        # before the checkpoints)
                        db.put_many((), seen.meta())
                self._resets_seen = resets or "0"
                old = db.get_meta(META_IMPORT_FLOOR)
                lowered = floor_lowered(old, cut_date)
                if lowered and not replaced:
                    db.reset_all()
                if old != new:
                    db.set_meta(META_IMPORT_FLOOR, new)
        except _paths.HomeGone as exc:
            raise HomeMoved(_paths.home_moved_message(self.layout.home)) from exc
        except StateDBError as exc:
            raise StorageError(str(exc)) from exc
        except OSError as exc:  # (the dataset's marker could not be read or written)
            raise StorageError(_os_error_message(exc, "could not check the dataset", self.layout)) from exc
        self.dataset_reset = replaced
        if replaced:
            self._emit(
                "checkpoints.reset",
                reason="dataset_replaced",
                dataset_was=None if recorded is None else {"id": recorded.id, "generation": recorded.generation},
                dataset_found=None if seen is None else {"id": seen.id, "generation": seen.generation},
            )
        if lowered:
            self._emit("checkpoints.reset", reason="import_floor_lowered", old_floor=old, new_floor=cut_date)
        return lowered or replaced

    def _raise_import_floor(
        self, cut_date: str, emptied: Collection[str] = (), newest: Mapping[str, str | None] | None = None
    ) -> None:
        """Under the lock: record `cut_date` as the import floor unless a later one is recorded, and, in the same
        transaction, set `rows_emitted` to 0 in the checkpoints of the clients in `emptied` (retention removes
        every part file of theirs: their checkpoints must not claim rows that `dataset_stale` would then miss)
        and record the `newest` part files given (`_newest_moved`)."""
        db = self._state()
        old = db.get_meta(META_IMPORT_FLOOR)
        meta: dict[str, str | None] = dict(newest or {})
        if old is None or old == NO_FLOOR or old < cut_date:
            meta[META_IMPORT_FLOOR] = cut_date
        db.forget_rows(emptied, meta)

    # -- maintenance -----------------------------------------------------------------------------------
    def cleanup_tmp(
        self,
        *,
        max_age_s: float = STALE_TMP_SECONDS,
        now: float | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> int:
        """Delete `.tmp` files under the dataset root older than `max_age_s` (1 h), under the lock."""
        if not self.layout.dataset_root.is_dir():
            return 0
        with self.locked(on_wait):
            return self._cleanup_tmp_locked(max_age_s, now)

    def _cleanup_tmp_locked(self, max_age_s: float, now: float | None) -> int:
        removed = 0
        for p in self._stale_tmp_files(max_age_s, now):
            try:
                os.unlink(p)
                removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _stale_tmp_files(self, max_age_s: float, now: float | None, skip: Collection[Path] = ()) -> list[str]:
        """The `.tmp` files under the dataset root older than `max_age_s`, outside the folders `skip` (the
        partitions a prune removes whole: their files go with them)."""
        now = time.time() if now is None else now
        skipped = {os.path.normpath(p) for p in skip}
        found = []
        for dirpath, dirs, files in os.walk(self.layout.dataset_root):
            if os.path.normpath(dirpath) in skipped:
                dirs.clear()
                continue
            for name in files:
                if not name.endswith(".tmp"):
                    continue
                p = os.path.join(dirpath, name)
                try:
                    if now - os.stat(p).st_mtime > max_age_s:
                        found.append(p)
                except FileNotFoundError:
                    continue
        return found

    def prune(
        self,
        retention_days: int,
        *,
        today: date | None = None,
        dry_run: bool = False,
        client_roots_hashes: Mapping[str, set[str] | None] | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> PruneResult:
        """storage.md §7.4. Removes each `date=` partition older than the cut date (none when retention is
        0), then empty `source=` directories, stale `.tmp` files and (when `client_roots_hashes` maps a
        client to the path hashes of a complete scan of its roots) the checkpoints of files that no longer
        exist; a client mapped to None keeps its entries. A dry run only reports, and writes nothing."""
        if retention_days < 0:
            raise ValueError("retention_days must be >= 0")
        cut = cut_date_for(retention_days, today)
        result = PruneResult(retention_days=retention_days, cut_date=cut, dry_run=dry_run)
        root = self.layout.dataset_root
        if dry_run:  # (what the real run removes: the old partitions, the stale .tmp files left outside them, the
            # checkpoints of vanished files; read-only, the checkpoint database too)
            parts = list(iter_partitions(root)) if cut is not None else []
            split = {p: _split_entries(p) for _, d, p in parts if d < cut}
            old = [(s, d, p) for s, d, p in parts if p in split and _prunable(split[p])]
            result.partitions = [self._partition_info(s, d, p) for s, d, p in old]
            result.kept_foreign = [os.path.join(p, name) for *_, p in old for name in split[p][1]]
            if root.is_dir():
                result.tmp_removed = len(self._stale_tmp_files(STALE_TMP_SECONDS, None, skip=[p for *_, p in old]))
            if client_roots_hashes and self.layout.ingest_db.exists():
                with StateDB.open(self.layout, create=False) as db:
                    result.checkpoints_removed = len(_stale_checkpoints(db, client_roots_hashes))
            return result
        if not self.layout.home.is_dir():
            return result  # nothing was ever written; do not create HYP_HOME for a no-op
        bytes_before = self._dataset_bytes() if root.is_dir() else 0
        trash_dirs: list[Path] = []
        failure: StorageError | None = None
        cause: BaseException | None = None
        try:
            with self.locked(on_wait, _paths.PRUNE_KEPT):
                if cut is not None:
                    parts = list(iter_partitions(root))
                    split = {pdir: _split_entries(pdir) for _, d, pdir in parts if d < cut}
                    old = [(source, d, pdir) for source, d, pdir in parts if pdir in split and _prunable(split[pdir])]
                    if old:
                        # The rows before the cut go, whatever floor the last import ran with: record the cut
                        # as the import floor (§7.3), so that a later import with an earlier floor (retention
                        # raised again) resets the checkpoints and reads those rows back. Without it, a floor
                        # recorded before retention was lowered stayed, and the rows of files still on disk
                        # never came back. First, so that a checkpoint database that cannot be written stops
                        # the prune before anything is removed. With it, the sources left without a part file
                        # stop claiming rows (else the next import took them for deleted and read all history
                        # again, each time); before the removal, so that no reader sees the claim without rows.
                        kept = {source for source, d, pdir in parts if d >= cut and list_part_files(pdir)}
                        # And the newest part file recorded for a source whose partition goes: the newest one left
                        # instead (none: the record goes), in the same transaction, before anything is removed.
                        db = self._state()
                        moved: dict[str, str | None] = {}
                        for source in {source for source, _, _ in old}:
                            dates = {d for s, d, _ in old if s == source}
                            moved.update(self._newest_moved(db, source, dates=dates))
                        self._raise_import_floor(cut, {source for source, _, _ in old} - kept, moved)
                    for source, d, pdir in old:
                        info = self._partition_info(source, d, pdir)
                        ensure_dir(self.layout.trash, below=self.layout.home)
                        dest = self.layout.trash / uuid7_hex()
                        own, foreign = split[pdir]
                        if not foreign:
                            os.rename(pdir, dest)  # (atomic: readers see the partition whole, or not at all)
                        else:
                            # Something hyp did not write (a folder, a note): it stays where it was, and only the
                            # Parquet and temp files go. The whole folder went to the trash, and was deleted with
                            # them (the README says no hyp command deletes such entries).
                            dest.mkdir()
                            for name in own:
                                os.rename(os.path.join(pdir, name), dest / name)
                            fsync_dir(pdir)
                            result.kept_foreign.extend(os.path.join(pdir, name) for name in foreign)
                        trash_dirs.append(dest)
                        self._memo.pop((source, d), None)
                        result.partitions.append(info)
                    if trash_dirs:
                        fsync_dir(self.layout.trash)
                    self._remove_empty_source_dirs()
                result.tmp_removed = self._cleanup_tmp_locked(STALE_TMP_SECONDS, None) if root.is_dir() else 0
                if client_roots_hashes:
                    result.checkpoints_removed = self._remove_stale_checkpoints(client_roots_hashes)
        except OSError as exc:
            failure, cause = StorageError(
                _os_error_message(exc, "could not prune the dataset", self.layout, _paths.PRUNE_KEPT)
            ), exc
        except StateDBError as exc:
            # (with a prune's advice: an import's "the next run resumes from the last checkpoint" is not for it)
            failure, cause = StorageError(exc.text(_paths.PRUNE_KEPT)), exc
        # The renamed partitions are outside the dataset root: delete them after releasing the lock, along
        # with anything an earlier, interrupted prune left in the trash. Also when a later step failed (the
        # checkpoint database, on a full disk): the partitions moved out are gone from the dataset either
        # way, and their bytes are what a full disk needs back.
        self._empty_trash()
        if failure is None or result.partitions:
            self._emit(  # (also when nothing was old enough: `hyp cache status` shows when a pass last ran)
                "cache.prune",
                partitions=len(result.partitions),
                files_removed=result.files_removed,
                rows_removed=result.rows_removed,
                bytes_before=bytes_before,
                bytes_after=self._dataset_bytes() if root.is_dir() else 0,
                cut_date=cut,
            )
        if failure is not None:
            failure.pruned = result
            raise failure from cause
        return result

    def _empty_trash(self) -> None:  # (what is in the trash is hyp's: the others stay in the dataset, `_split_entries`)
        trash = self.layout.trash
        if not trash.is_dir():
            return
        for entry in trash.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()

    def _remove_empty_source_dirs(self) -> None:
        """Remove the `source=` folders left empty (the root stays)."""
        root = self.layout.dataset_root
        if not root.is_dir():
            return
        for s in root.iterdir():
            if s.is_dir() and s.name.startswith("source="):
                with contextlib.suppress(OSError):
                    s.rmdir()  # only succeeds when empty
        fsync_dir(root)

    def _remove_stale_checkpoints(self, client_roots_hashes: Mapping[str, set[str] | None]) -> int:
        db = self._state()
        return db.delete(_stale_checkpoints(db, client_roots_hashes))

    def _partition_info(self, source: str, date_: str, pdir: Path) -> PartitionInfo:
        info = PartitionInfo(source, date_)
        for name in list_part_files(pdir):
            p = pdir / name
            try:
                info.bytes += p.stat().st_size
                info.files += 1
                info.rows += file_row_count(p)
            except FileNotFoundError:
                continue
            except Exception:  # noqa: BLE001 - an unreadable file still counts as a file; rows unknown
                continue
        return info

    def _dataset_bytes(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.layout.dataset_root):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(dirpath, name)).st_size
        return total

    # -- compaction (§8) --------------------------------------------------------------------------------
    def compact(
        self,
        *,
        dry_run: bool = False,
        on_wait: Callable[[], None] | None = None,
        only: Collection[str] | None = None,
    ) -> CompactResult:
        """Rewrite every partition made of several files into one file without duplicate `part_id`s, with
        the lock held per partition. Each new file is verified (schema, row count = distinct input
        part_ids, same part_id set) before its inputs are unlinked; a failure deletes the new file, keeps
        the inputs and stops (the result carries the error). A dry run reads only `part_id` columns.
        `only`: just these partitions (`source=…/date=…` names)."""
        result = CompactResult(dry_run=dry_run)
        root = self.layout.dataset_root
        candidates = [
            (s, d, p)
            for s, d, p in iter_partitions(root)
            if (only is None or partition_name(s, d) in only) and len(list_part_files(p)) > 1
        ]
        for source, d, pdir in candidates:
            try:
                if dry_run:
                    result.partitions.append(self._compact_plan(source, d, pdir))
                    continue
                with self.locked(on_wait, _paths.COMPACT_KEPT):
                    done = self._compact_partition(source, d, pdir)
                if done is not None:
                    result.partitions.append(done)
            except StorageError as exc:
                result.error = str(exc)
                result.failed_partition = partition_name(source, d)
                break
            except OSError as exc:
                result.error = _os_error_message(
                    exc, f"could not compact {partition_name(source, d)}", self.layout, _paths.COMPACT_KEPT
                )
                result.failed_partition = partition_name(source, d)
                break
        if not dry_run and self.layout.home.is_dir() and (result.partitions or result.error is None):
            self._emit(  # (also when no partition had several files: `hyp cache status` shows the last pass)
                "cache.compact",
                partitions=len(result.partitions),
                files_removed=result.files_before,
                duplicates_removed=result.duplicates_removed,
                bytes_before=result.bytes_before,
                bytes_after=result.bytes_after,
            )
        return result

    def _compact_plan(self, source: str, d: str, pdir: Path) -> CompactPartition:
        names = list_part_files(pdir)
        ids: list[str] = []
        size = 0
        for name in names:
            got = self._read_part_ids(pdir / name)
            if got is not None:
                ids.extend(got)
                size += (pdir / name).stat().st_size
        distinct = len(set(ids))
        return CompactPartition(source, d, len(names), len(ids), len(ids) - distinct, size)

    def _compact_partition(self, source: str, d: str, pdir: Path) -> CompactPartition | None:
        names = list_part_files(pdir)  # again, under the lock
        if len(names) < 2:
            return None
        frames = []
        size = 0
        for name in names:
            p = pdir / name
            _check_schema(p, self.layout)
            try:
                frames.append(pl.read_parquet(p, glob=False))
            except Exception as exc:
                raise _read_failed(p, self.layout, exc) from exc
            size += p.stat().st_size
        out, rows_before, input_ids = compact_frames(frames)
        # The journal names the new file and its inputs before the new file exists: a crash from here to the
        # last unlink leaves it, and the next holder of the lock finishes or undoes the compaction
        # (`_recover_compaction`). Without it a crash left every row twice on disk until a compaction ran.
        file_id = uuid7_hex()
        new_name = f"part-{file_id}.parquet"
        journal = self.layout.compaction_journal
        for stale in journal.parent.glob(f".{journal.name}.*.tmp"):  # (a write of it a kill cut short: under
            with contextlib.suppress(OSError):  # the lock, no other process's; nothing else ever removed it)
                stale.unlink()
        _paths.atomic_write_bytes(
            journal, json.dumps({"partition": partition_name(source, d), "new": new_name, "inputs": names}).encode()
        )
        _fault("compact_after_journal")
        rows_after = out.height
        try:
            ensure_dir(pdir, below=self.layout.home)
            data = _encode_sorted(out)  # (in file order already)
            del out  # (the rows, decoded: only the encoded file is left in memory while it is written)
            self._write_bytes(pdir, data, file_id)
        except BaseException:
            journal.unlink(missing_ok=True)
            raise
        del data
        new_path = pdir / new_name
        problem = self._verify(new_path, input_ids)
        if problem is not None:
            with contextlib.suppress(OSError):
                new_path.unlink()
            fsync_dir(pdir)
            journal.unlink(missing_ok=True)
            raise StorageError(
                f"compaction of {partition_name(source, d)} failed verification ({problem}); the new file was "
                "deleted and the original files were kept. Nothing was lost; please report this."
            )
        # The newest part file recorded for the source, when it is an input: the new file instead (the newest of
        # the source now), recorded before any input goes, so that no crash leaves the record naming a deleted
        # file (and `_recover_compaction`, which may delete the new file, moves it back first).
        try:
            self._move_newest_record(source, {f"{partition_name(source, d)}/{n}" for n in names})
        except StateDBError as exc:
            with contextlib.suppress(OSError):
                new_path.unlink()
            fsync_dir(pdir)
            journal.unlink(missing_ok=True)
            raise StorageError(exc.text(_paths.COMPACT_KEPT)) from exc
        _fault("compact_before_unlink")
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (pdir / name).unlink()
        fsync_dir(pdir)
        journal.unlink(missing_ok=True)
        memo = self._memo.get((source, d))
        if memo is not None:
            memo.files = {new_name}
            memo.ids = set(input_ids.to_list())
        return CompactPartition(
            source,
            d,
            files_before=len(names),
            rows_before=rows_before,
            duplicates=rows_before - rows_after,
            bytes_before=size,
            bytes_after=new_path.stat().st_size,
            file=new_name,
        )

    def _recover_compaction(self) -> None:
        """Under the lock: a compaction interrupted by a crash left its journal; finish it (delete the inputs
        left) or undo it (delete the new file), as `_compaction_finishable` decides. Best effort: what cannot
        be done now stays for the next holder, and readers deduplicate by `part_id` meanwhile (§8)."""
        journal = self.layout.compaction_journal
        try:
            entry = json.loads(journal.read_bytes())
            partition, new, inputs = entry["partition"], entry["new"], list(entry["inputs"])
            source, _, day = partition.removeprefix("source=").partition("/date=")
            valid = (
                partition == partition_name(source, day)
                and CLIENT_NAME_RE.match(source) is not None
                and DATE_RE.match(day) is not None
                and all(_PLAIN_PARQUET_RE.match(n) for n in [new, *inputs])
            )
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError, OSError):
            valid = False
        try:
            if valid:
                pdir = self.layout.dataset_root / partition
                finished = self._compaction_finishable(pdir, new, inputs)
                removed = inputs if finished else [new]
                # (the newest part file recorded for the source, when it is one of those: the newest one left)
                self._move_newest_record(source, {f"{partition}/{n}" for n in removed})
                for name in removed:
                    with contextlib.suppress(FileNotFoundError):
                        (pdir / name).unlink()
                fsync_dir(pdir)
                self._memo.pop((source, day), None)
                self._emit("cache.compact_recovered", partition=partition, finished=finished)
            journal.unlink(missing_ok=True)
            fsync_dir(journal.parent)
        except (OSError, StorageError, StateDBError):
            return

    def _compaction_finishable(self, pdir: Path, new: str, inputs: list[str]) -> bool:
        """Whether an interrupted compaction must be finished (True) or undone (False). No new file: undone.
        An input already deleted: the new file was verified first, so it is finished. All inputs there: it
        is finished only when the new file holds every one of their `part_id`s, else undone (the inputs are
        intact, so undoing loses nothing)."""
        if not (pdir / new).exists():
            return False
        if not all((pdir / name).exists() for name in inputs):
            return True
        try:
            have = set(self._read_part_ids(pdir / new) or ())
            return all(have.issuperset(self._read_part_ids(pdir / name) or ()) for name in inputs) and bool(have)
        except StorageError:
            return False

    def _verify(self, path: Path, input_ids: pl.Series) -> str | None:
        try:
            back = pl.read_parquet(path, glob=False)
        except Exception as exc:  # noqa: BLE001
            return f"cannot re-open the new file: {_short(exc)}"
        if list(back.schema.items()) != list(_schema.AI_GATEWAY_MESSAGES_SCHEMA.items()):
            return "schema differs from schema_version 1"
        if back.height != input_ids.len():
            return f"{back.height} rows, expected {input_ids.len()}"
        if not back["part_id"].sort().equals(input_ids):
            return "part_id set differs from the inputs"
        if os.environ.get(FAULT_ENV) == "compact_verify_fail":
            return "injected verification failure (HYP_FAULT)"
        if self.verify_hook is not None:
            try:
                if not self.verify_hook(path, back):
                    return "rejected by the verification hook"
            except Exception as exc:  # noqa: BLE001
                return f"verification hook raised: {exc}"
        return None

    # -- statistics (read-only) -------------------------------------------------------------------------
    def dataset_stats(self) -> DatasetStats:
        return dataset_stats(self.layout)


def dataset_stats(layout: Layout) -> DatasetStats:
    """Sizes, files, stored rows per source (from Parquet footers), date range, compaction candidates and
    unreadable files. Read-only: creates nothing and reads no data pages."""
    root = layout.dataset_root
    stats = DatasetStats(path=str(root), exists=root.is_dir())
    if not stats.exists:
        return stats
    listed: list[tuple[PartitionInfo, list[Path]]] = []
    for source, d, pdir in iter_partitions(root):
        info = PartitionInfo(source, d)
        try:
            entries = list(os.scandir(pdir))
        except OSError:
            continue
        names = sorted(e.name for e in entries if e.name.endswith(".parquet") and not e.name.startswith("."))
        stats.tmp_files += sum(1 for e in entries if e.name.endswith(".tmp"))
        paths: list[Path] = []
        for name in names:
            p = pdir / name
            try:
                st = p.stat()
                if not stat_mod.S_ISREG(st.st_mode):  # (a folder of that name: opening it says so)
                    raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(p))
            except FileNotFoundError:
                continue
            except OSError as exc:  # a link loop, a folder: reported with its reason, never the end of the report
                problem = part_file_problem(p, exc)
                if problem is not None and problem.damaged:
                    stats.unreadable.append(str(p))
                elif problem is not None:
                    stats.unopened.append(problem)
                continue
            size = st.st_size
            info.files += 1
            info.bytes += size
            paths.append(p)
        listed.append((info, paths))
    counts = row_counts([p for _, paths in listed for p in paths])
    for info, paths in listed:
        for p in paths:
            if counts is not None:
                info.rows += counts[p]
                _check_footer_schema(p, stats)
                continue
            try:
                info.rows += file_row_count(p)
                _check_footer_schema(p, stats)
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - reported, never fatal for a read-only report
                problem = part_file_problem(p, exc)
                if problem is None:
                    continue  # gone meanwhile
                if problem.damaged:
                    stats.unreadable.append(str(p))
                else:
                    stats.unopened.append(problem)
        if info.files == 0:
            continue
        stats.partitions.append(info)
        stats.files += info.files
        stats.bytes += info.bytes
        stats.rows[info.source] = stats.rows.get(info.source, 0) + info.rows
        if info.files > 1:
            stats.small_file_partitions += 1
            stats.small_files += info.files
    dates = [p.date for p in stats.partitions]
    if dates:
        stats.oldest, stats.newest = min(dates), max(dates)
    stats.ignored = ignored_paths(root)
    return stats


def _check_footer_schema(path: Path, stats: DatasetStats) -> None:
    """Add `path` to `stats.mismatched` when its footer's columns are not those of schema_version 1 (the footer
    was just read for its row count: this second read of it comes from the page cache, ~0.1 ms a file; a file
    handle would make Polars read the whole file)."""
    try:
        schema = pl.scan_parquet(path, glob=False, hive_partitioning=False).collect_schema()
    except Exception:  # noqa: BLE001 - its row count was read: a failure here is reported by the next reader
        return
    mismatch = schema_mismatch(path, schema)
    if mismatch is not None:
        stats.mismatched.append(mismatch)


def _probe(path: str) -> tuple[os.stat_result, bytes] | None:
    """Re-stat the file and read its first 4 KiB (under the lock, §6.3). None when it is gone."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(HEAD_MAX)
        return st, head
    except OSError:
        return None


def _matches(now: tuple[os.stat_result, bytes], cp: Checkpoint, path: str) -> bool:
    """Does checkpoint `cp` still describe the file at `path` as it is now (same inode, long enough, same head,
    same bytes before its offset: `tail_ok`)?"""
    st, head = now
    if cp.inode is not None and cp.device is not None and (st.st_dev, st.st_ino) != (cp.device, cp.inode):
        return False
    if st.st_size < cp.offset or st.st_size < cp.head_len or len(head) < cp.head_len:
        return False
    if hashlib.sha256(head[: cp.head_len]).hexdigest() != cp.head_sha256:
        return False
    if cp.tail_len is None or cp.offset <= len(head):
        return tail_ok(-1, head, cp)  # (no tail, or one within the head: no read)
    try:  # the bytes before the offset, as the reader checks them on resume (one pread)
        with open(path, "rb") as f:
            return tail_ok(f.fileno(), head, cp)
    except OSError:
        return False
