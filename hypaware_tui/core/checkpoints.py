"""Per-file checkpoints (storage.md §5): the `Checkpoint` record and the SQLite `StateDB` (§5.1)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from dataclasses import fields as _dc_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from hypaware_tui.core.paths import (
    FILE_MODE,
    IMPORT_KEPT,
    RETRY_HINT,
    Layout,
    ensure_dir,
    file_size_limit,
    full_disk_hint,
    likely_file_size_hint,
    not_writable_hint,
    os_error_text,
    read_only_fs_hint,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Checkpoint:
    """One row of the `files` table. `parser_state` is importer-owned JSON text."""

    path_hash: str
    client_name: str
    read_mode: str  # "incremental" | "whole"
    device: int | None
    inode: int | None
    size: int
    mtime_ns: int
    offset: int
    head_len: int
    head_sha256: str
    parser_state: str
    rows_emitted: int = 0
    # The lower bound (µs) of the window of the pass that read the file from its start, carried by the passes
    # that resume from this entry; None when that pass had none. The lines before `offset` older than this
    # were skipped, not imported: a backfill whose window starts earlier reads the file again from the start
    # (`reader.must_widen`). The daemon's first pass over a file begins at its capture start (daemon.md §2).
    since_us: int | None = None
    # The last `tail_len` bytes before `offset` (min(offset, 4096)) as the pass that wrote this entry read them,
    # and their sha256: a file rewritten in place (same inode) that keeps its head and a line start at the
    # offset, but changed between the two, is read again from its start (`tail_ok`). None: an entry
    # written before the columns existed (or by an older hyp), checked by its head alone.
    tail_len: int | None = None
    tail_sha256: str | None = None


def earlier_bound(a: Checkpoint, b: Checkpoint) -> bool:
    """Whether `a`'s lines were read from an earlier bound than `b`'s (None, no bound, is the earliest)."""
    if a.since_us is None:
        return b.since_us is not None
    return b.since_us is not None and a.since_us < b.since_us


@dataclass(frozen=True)
class CheckpointUpdate:
    """A checkpoint a batch wants to write, with the file's real path so storage can re-stat it under the
    lock (storage.md §6.3). The path is never stored."""

    entry: Checkpoint
    path: str


# --- State database (storage.md §5.1) --------------------------------------------------------------------

HEAD_MAX = 4096
STATE_VERSION = "1"
FRESH_PARSER_STATE = "{}"
# meta keys: the id and the generation of the dataset's marker file (`<HYP_HOME>/cache/.hyp-dataset`, beside the
# dataset root: `storage.read_marker`) as the last commit that wrote part files left it, written in the
# transaction of that commit's checkpoints. A marker missing, of another id, or of a lower generation (an older
# copy restored) means the checkpoints no longer describe the dataset (`storage.dataset_stale`).
META_DATASET_ID = "dataset_id"
META_DATASET_GENERATION = "dataset_generation"
# meta key: how many times the checkpoints were reset because the dataset was replaced. A process that read
# checkpoints before such a reset by another process (the daemon, while a backfill resets them) must not commit
# what it read against the old ones (`Storage._check_dataset`).
META_DATASET_RESETS = "dataset_resets"
# meta keys `newest_file:<client_name>`: the newest part file (`source=<c>/date=<d>/part-<uuid7>.parquet`, names in
# creation order) hyp knows to be in the dataset for that source. Set by each commit that writes files for it (in
# the transaction of its checkpoints); moved to the newest file left (or removed) by a compaction or a prune
# before it deletes the one recorded. Missing, the dataset lost rows behind hyp's back, or is an older copy
# restored into the same root (`storage.dataset_stale`).
META_NEWEST_FILE = "newest_file:"


def dir_identity(path: str | os.PathLike[str], *, changed: bool = True) -> str:
    """`<st_dev>:<st_ino>` (`changed=False`, HYP_HOME's moved check) or `<st_dev>:<st_ino>:<st_ctime_ns>` of the
    directory at `path`, or "absent" when there is none. Other errors (permissions) raise OSError. Not for the
    dataset: any change of a folder's metadata (a `.DS_Store`, `touch`, `chmod`) moves its change time, and a
    remount its device number (the dataset's marker file tells its identity instead)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "absent"
    return f"{st.st_dev}:{st.st_ino}:{st.st_ctime_ns}" if changed else f"{st.st_dev}:{st.st_ino}"


_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta  (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
  path_hash    TEXT PRIMARY KEY,
  client_name  TEXT NOT NULL,
  read_mode    TEXT NOT NULL,
  device       INTEGER, inode INTEGER,
  size         INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
  offset       INTEGER NOT NULL,
  head_len     INTEGER NOT NULL,
  head_sha256  TEXT NOT NULL,
  parser_state TEXT NOT NULL,
  rows_emitted INTEGER NOT NULL DEFAULT 0,
  updated_at   TEXT NOT NULL,
  since_us     INTEGER,
  tail_len     INTEGER,
  tail_sha256  TEXT
);
"""

_CP_FIELDS = tuple(f.name for f in _dc_fields(Checkpoint))
_IN_CHUNK = 500  # host parameters per IN (...) query: under SQLite's oldest limit of 999
_SELECT = "SELECT " + ", ".join(_CP_FIELDS) + " FROM files"
# Columns added after the first release (nullable): a database written before them is read with NULL in their
# place (read-only: `_legacy_bounds` fills `since_us` in); the first writable open adds them. An older hyp
# ignores them, and its REPLACE of an entry leaves them NULL (no tail check for that entry).
_ADDED_COLUMNS = {"since_us": "INTEGER", "tail_len": "INTEGER", "tail_sha256": "TEXT"}


def _select_for(have: set[str]) -> str:
    return "SELECT " + ", ".join(f if f in have or f not in _ADDED_COLUMNS else "NULL" for f in _CP_FIELDS) + (
        " FROM files"
    )


_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def path_hash(realpath: str | os.PathLike[str]) -> str:
    """storage.md §5.1: sha256 of the real path's bytes, first 16 hex digits. (A str is encoded as
    `os.fsencode` does, without its call: once per file of every run.)"""
    data = realpath.encode(_FS_ENCODING, _FS_ERRORS) if realpath.__class__ is str else os.fsencode(realpath)
    return hashlib.sha256(data).hexdigest()[:16]


def roots_hash(roots: list[str]) -> str:
    """One client's root folders, as a one-way hash (`path_hash` of them, in order): what the daemon's status
    says of where it looks, for `hyp status` to compare with where the shell looks (no path in the file)."""
    return path_hash("\0".join(roots))


def head_digest(path: str | os.PathLike[str], size: int) -> tuple[int, str]:
    """(head_len, head_sha256) of the first min(size, 4096) bytes as read now (storage.md §5.4 step 5).
    If the file is shorter than expected, the bytes actually read are hashed and counted."""
    want = max(0, min(int(size), HEAD_MAX))
    with open(path, "rb") as f:
        data = f.read(want)
    return len(data), hashlib.sha256(data).hexdigest()


def tail_bytes(fd: int, head: bytes, offset: int) -> bytes:
    """The last min(offset, 4096) bytes before `offset`: taken from `head` (the file's first bytes) when they
    hold them, else one pread."""
    if offset <= len(head):
        return head[:offset]
    n = min(offset, HEAD_MAX)
    return os.pread(fd, n, offset - n)


def tail_ok(fd: int, head: bytes, cp: Checkpoint) -> bool:
    """Whether the bytes before `cp.offset` still hash to the checkpoint's tail (storage.md §5.4: a file
    rewritten in place that kept its head and a line start at the offset but changed between the two must be
    read again from its start, or the rows of its changed lines would never be). An entry without a tail (an
    older hyp's) or with one that does not fit its offset (an older hyp's reset of it) is not checked."""
    n = cp.tail_len
    if n is None or cp.tail_sha256 is None or n != min(cp.offset, HEAD_MAX):
        return True
    return hashlib.sha256(tail_bytes(fd, head, cp.offset)).hexdigest() == cp.tail_sha256


class StateDBError(RuntimeError):
    """The state database could not be opened, read or written; the message says which file and what to do
    (for an import: its advice ends with what an import keeps).

    `cause`: "full" (a full disk), "file_size" (an I/O error under a finite `ulimit -f`: `limit` bytes),
    or None; `reason`: the message without its advice. `text(kept)`: the message with the advice of the
    operation that failed (prune, compaction: `paths.PRUNE_KEPT`...), not an import's."""

    def __init__(self, message: str, *, reason: str | None = None, cause: str | None = None,
                 limit: int | None = None, render: Callable[[str], str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.cause = cause
        self.limit = limit
        self._render = render

    def text(self, kept: str = IMPORT_KEPT) -> str:
        return self._render(kept) if self._render is not None else str(self)


DAMAGED_HINT = (
    "If it is damaged, move it away: the next import re-reads every file and dedupe drops the rows already stored."
)
BUSY_WAIT_S = 30.0  # how long a writer waits for the database another process holds
NOTICE_AFTER_S = 1.0  # after this much of that wait, `StateDB.open`'s `on_wait` is called
BUSY_HINT = "Another hyp process (a backfill or the daemon) holds it; run it again once that one is done."
_LOW_SPACE = 4 << 20  # bytes free under which a disk I/O error is taken for a full disk


def _damaged(path: Path, problem: str, hint: str = DAMAGED_HINT) -> StateDBError:
    """A checkpoint database that is not one this hyp can use as it is (a table or column missing, a directory
    in its place): "run it again" can never work; moving it away does."""
    reason = f"cannot use the checkpoint database {path}: {problem}"
    return StateDBError(f"{reason}. {hint}", reason=reason, cause="damaged", render=lambda _kept: f"{reason}. {hint}")


def _not_a_file(path: Path) -> StateDBError | None:
    """The error for something at `path` that is not a regular file (a directory: SQLite said "unable to open
    database file" and the advice was to check permissions), or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # (missing, or unreadable: SQLite's own error says which)
    if stat.S_ISREG(mode):
        return None
    what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
    return _damaged(path, f"it is {what}, not a database",
                    "Move it away: the next import re-reads every file and dedupe drops the rows already stored.")


#: The columns this hyp reads and writes, per table. A table that lacks one (a hand edit, a database of some
#: other tool) failed every run with "no such column: …" and the advice to run it again.
_TABLES = {"meta": ("key", "value"), "files": (*_CP_FIELDS, "updated_at")}


def _schema_problem(conn: sqlite3.Connection, *, read_only: bool) -> str | None:
    """What keeps this database's tables from being the ones this hyp writes, or None. (PRAGMA table_info:
    two cheap queries per open.) A read-only view takes a missing table for an empty one (what the first
    writable open creates) and an older database's missing `since_us` (and tail columns) as that open will add
    them."""
    for table, wanted in _TABLES.items():
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        if not info:
            if read_only:
                continue
            return f"it has no {table} table"
        have = {r[1] for r in info}
        missing = [c for c in wanted if c not in have and not (read_only and c in _ADDED_COLUMNS)]
        if missing:
            return f"its {table} table has no column {', '.join(missing)}"
        # (a column this hyp does not know that must be given a value: every write would fail)
        required = [r[1] for r in info if r[1] not in wanted and r[3] and r[4] is None and not r[5]]
        if required:
            return f"its {table} table has a column this hyp does not write: {', '.join(required)}"
    return None


def _db_cause(path: Path, exc: BaseException) -> tuple[str, int | None]:
    """The likely cause, by SQLite's primary result code: moving the file away (a reset of every checkpoint)
    is for a damaged file only. A read-only file or directory, or a full disk, said so too, and the move then
    failed or cost a full re-read for nothing. Returns (cause, the `ulimit -f` in bytes for "file_size")."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return "damaged", None
    if primary == sqlite3.SQLITE_FULL:
        return "full", None
    if primary in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_AUTH):
        with contextlib.suppress(OSError, AttributeError):  # (no chmod fixes a read-only mount)
            if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
                return "read_only", None
        return "not_writable", None
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return "busy", None
    if primary == sqlite3.SQLITE_ERROR and str(exc).startswith(("no such table", "no such column")):
        return "damaged", None  # (a table changed under a running process: the open checks them)
    if primary == sqlite3.SQLITE_IOERR:
        # (a full disk shows as an I/O error where SQLite sizes its -shm file: SQLITE_IOERR_SHMSIZE)
        try:
            st = os.statvfs(path.parent)
            if st.f_bavail * st.f_frsize < _LOW_SPACE:
                return "full", None
        except OSError:
            pass
        # A write past the process's file-size limit fails with EFBIG, which SQLite reports as a plain I/O
        # error: "run it again" then failed the same way, forever. A finite limit is named as the likely cause.
        limit = file_size_limit()
        if limit is not None:
            return "file_size", limit
    return "retry", None


def _db_hint(path: Path, cause: str, limit: int | None, kept: str = IMPORT_KEPT) -> str:
    if cause == "damaged":
        return DAMAGED_HINT
    if cause == "full":
        return full_disk_hint(kept)
    if cause == "not_writable":
        return not_writable_hint(path.parent.parent)
    if cause == "read_only":
        return read_only_fs_hint()
    if cause == "busy":
        return BUSY_HINT
    if cause == "file_size" and limit is not None:
        return likely_file_size_hint(limit, kept)
    return RETRY_HINT


def _db_error(path: Path, exc: BaseException) -> StateDBError:
    """The one message for an SQLite error on the checkpoint database, wherever it happens (opening it, a read
    of a dry run, a write under the lock): which file, SQLite's reason, and what to do."""
    reason = f"cannot use the checkpoint database {path}: {exc}"
    cause, limit = _db_cause(path, exc)
    return StateDBError(
        f"{reason}. {_db_hint(path, cause, limit)}", reason=reason, cause=cause, limit=limit,
        render=lambda kept: f"{reason}. {_db_hint(path, cause, limit, kept)}",
    )


# Errors of a statement, not of the file (a constraint, a misuse): bugs, reported as such.
_STATEMENT_ERRORS = (
    sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.NotSupportedError,
    sqlite3.DataError,
)


def _reported(method: Callable[..., T]) -> Callable[..., T]:
    """A StateDB method whose SQLite errors are `StateDBError`s, which every caller reports as such: a page
    found damaged by a read (the header and schema read fine when it was opened) ended a dry run with
    "unexpected error: DatabaseError: database disk image is malformed"."""

    @functools.wraps(method)
    def wrapper(self: StateDB, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except _STATEMENT_ERRORS:
            raise
        except sqlite3.Error as exc:
            raise _db_error(self.path, exc) from exc

    return wrapper


def _legacy_bounds(layout: Layout) -> dict[str, int]:
    """For a database written before checkpoints kept their pass's lower bound: per client with a capture
    start, that start less the daemon's grace. Any of its entries may be the daemon's, whose first pass over a
    file began there (an import declined, or stopped before the file), so a backfill reads each file again
    once (`reader.must_widen`; dedupe absorbs what was stored) rather than miss that history for good."""
    from hypaware_tui.core.daemon.capture import capture_bound_us, read_capture

    bounds = {c: capture_bound_us(start) for c, start in read_capture(layout).items()}
    return {c: b for c, b in bounds.items() if b is not None}


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {r[1] for r in conn.execute("PRAGMA table_info(files)")}


def _write_meta(conn: sqlite3.Connection, meta: Mapping[str, str | None] | None) -> None:
    """Set the `meta` values given; a value None removes its key."""
    if not meta:
        return
    conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                     [(k, v) for k, v in meta.items() if v is not None])
    conn.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k, v in meta.items() if v is None])


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StateDB:
    """Per-file checkpoints and meta values in `<HYP_HOME>/state/ingest.sqlite`.

    `StateDB.open(layout, create=False)` never creates anything: with no database file it is an empty,
    read-only view (every read returns nothing, every write raises). Writers open with `create=True`.
    Writes are only made under the commit lock (storage.md §4), which `Storage` holds.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection | None, *, writable: bool) -> None:
        self.path = path
        self._conn = conn
        self.writable = writable
        self._select = _SELECT
        self._legacy: dict[str, int] | None = None
        self._has_meta = True
        if conn is not None and not writable:
            have = _columns(conn)
            if any(c not in have for c in _ADDED_COLUMNS):
                self._select = _select_for(have)
            if "since_us" not in have:
                self._legacy = _legacy_bounds(Layout(path.parent.parent))

    # -- opening -----------------------------------------------------------------------------------------
    @classmethod
    def open(cls, layout: Layout, *, create: bool, on_wait: Callable[[], None] | None = None,
             wait_s: float = BUSY_WAIT_S) -> StateDB:
        """`on_wait` (writers): called once when another process holds the database and this open has waited
        `NOTICE_AFTER_S` for it, so that a run can say it is waiting rather than seem hung. `wait_s`: how long
        a writer waits for it in all before the "locked" error (the daemon waits briefly and retries)."""
        path = layout.ingest_db
        in_the_way = _not_a_file(path)
        if in_the_way is not None:
            raise in_the_way
        if not create:
            if not path.exists():
                return cls(path, None, writable=False)
            conn = cls._connect_readonly(path)
            try:
                problem = _schema_problem(conn, read_only=True)
                if problem is not None:
                    raise _damaged(path, problem)
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                if "files" not in tables:  # (e.g. just created by a writer that has not made them yet)
                    conn.close()
                    return cls(path, None, writable=False)
                db = cls(path, conn, writable=False)
                db._has_meta = "meta" in tables
                return db
            except sqlite3.Error as exc:
                conn.close()
                raise _db_error(path, exc) from exc
            except StateDBError:
                conn.close()
                raise
        try:
            ensure_dir(path.parent)
            if not path.exists():
                # Create the file ourselves with 0600: SQLite gives -wal/-shm the main file's mode.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
                os.close(fd)
            for suffix in ("-wal", "-shm"):
                # (a run that found the main file read-only left them with its mode, 0400: making the main
                # file writable again, as the error says, must be enough)
                with contextlib.suppress(OSError):
                    os.chmod(f"{path}{suffix}", FILE_MODE)
            first = min(wait_s, NOTICE_AFTER_S) if on_wait is not None else wait_s
            conn = sqlite3.connect(path, timeout=first, isolation_level=None, check_same_thread=False)
        except OSError as exc:
            reason = f"cannot open the checkpoint database {path}"
            raise StateDBError(
                f"{reason}: {os_error_text(exc, layout.home)}", reason=reason,
                render=lambda kept, exc=exc: f"{reason}: {os_error_text(exc, layout.home, kept)}",
            ) from exc
        except sqlite3.Error as exc:
            raise _db_error(path, exc) from exc
        deadline = time.monotonic() + wait_s
        while True:
            try:
                version = cls._prepare(conn, layout)
                break
            except StateDBError:  # (tables this hyp cannot use: `_schema_problem`)
                conn.close()
                raise
            except sqlite3.OperationalError as exc:
                left = deadline - time.monotonic()
                if on_wait is None or _db_cause(path, exc)[0] != "busy" or left <= 0:
                    conn.close()
                    raise _db_error(path, exc) from exc
                with contextlib.suppress(Exception):
                    on_wait()
                on_wait = None
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                conn.execute(f"PRAGMA busy_timeout={int(left * 1000)}")
            except sqlite3.Error as exc:
                conn.close()
                raise _db_error(path, exc) from exc
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_WAIT_S * 1000)}")
        if version != STATE_VERSION:
            conn.close()
            raise StateDBError(
                f"{path} has state_version {version!r}; this hyp understands {STATE_VERSION!r}"
            )
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(f"{path}{suffix}", FILE_MODE)
        return cls(path, conn, writable=True)

    @staticmethod
    def _prepare(conn: sqlite3.Connection, layout: Layout) -> str:
        """WAL, the schema (and its migration), the state version: idempotent, so a try that found the database
        locked can be made again. Returns the stored state version."""
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA_SQL + "COMMIT;")
        if any(c not in _columns(conn) for c in _ADDED_COLUMNS):
            conn.execute("BEGIN IMMEDIATE")
            try:
                have = _columns(conn)  # (another process may have added them meanwhile)
                for col, kind in _ADDED_COLUMNS.items():
                    if col not in have:
                        conn.execute(f"ALTER TABLE files ADD COLUMN {col} {kind}")
                if "since_us" not in have:  # (the bounds the older database's passes had)
                    conn.executemany(
                        "UPDATE files SET since_us = ? WHERE client_name = ?",
                        [(b, c) for c, b in _legacy_bounds(layout).items()],
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        problem = _schema_problem(conn, read_only=False)
        if problem is not None:
            raise _damaged(layout.ingest_db, problem)
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('state_version', ?)", (STATE_VERSION,)
        )
        return conn.execute("SELECT value FROM meta WHERE key='state_version'").fetchone()[0]

    @staticmethod
    def _connect_readonly(path: Path) -> sqlite3.Connection:
        """A read-only connection that creates no file. With a -wal present a writer is (or was) active and
        SQLite reads through it; without one the database is fully checkpointed and is opened immutable,
        which needs no -wal/-shm at all."""
        uri_path = path.resolve().as_posix()
        wal = Path(f"{path}-wal")
        attempts = ["mode=ro"] if wal.exists() else []
        attempts.append("immutable=1")
        last: sqlite3.Error | None = None
        for q in attempts:
            try:
                conn = sqlite3.connect(f"file:{uri_path}?{q}", uri=True, timeout=30.0, isolation_level=None)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.Error as exc:
                last = exc
        raise _db_error(path, last or sqlite3.Error("cannot be opened"))

    # -- lifecycle --------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_writable(self) -> sqlite3.Connection:
        if self._conn is None or not self.writable:
            raise StateDBError(f"{self.path} was opened read-only")
        return self._conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._require_writable()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            # (SQLite may have rolled back already, after a full disk: that error is the one to report)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- reads --------------------------------------------------------------------------------------------
    def _row(self, row: tuple) -> Checkpoint:
        cp = Checkpoint(*row)
        if self._legacy is not None:  # (read-only, before the migration: as the migration will make it)
            cp = replace(cp, since_us=self._legacy.get(cp.client_name))
        return cp

    @_reported
    def get(self, path_hash: str) -> Checkpoint | None:
        if self._conn is None:
            return None
        row = self._conn.execute(self._select + " WHERE path_hash = ?", (path_hash,)).fetchone()
        return self._row(row) if row else None

    @_reported
    def get_many(self, path_hashes: Iterable[str]) -> dict[str, Checkpoint]:
        """The stored entries of these files (absent ones left out), in a few queries rather than one per file
        (a commit of 20,000 small files spent 0.4 s in single lookups)."""
        if self._conn is None:
            return {}
        keys = list(dict.fromkeys(path_hashes))
        out: dict[str, Checkpoint] = {}
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i : i + _IN_CHUNK]
            sql = self._select + f" WHERE path_hash IN ({','.join('?' * len(chunk))})"
            for r in self._conn.execute(sql, chunk):
                out[r[0]] = self._row(r)
        return out

    @_reported
    def stat_keys(self, client_name: str) -> dict[str, tuple[int, int, int | None, int | None, int, int | None]]:
        """`path_hash -> (size, mtime_ns, device, inode, offset, since_us)` of one client's entries: what a run needs to
        tell the unchanged files and estimate the bytes to read, without building full entries (a rerun over
        20,000 files spent 0.2 s on parser states it never used). Full entries: `get_many`."""
        if self._conn is None:
            return {}
        if self._legacy is not None:
            sql = "SELECT path_hash, size, mtime_ns, device, inode, offset FROM files WHERE client_name = ?"
            bound = self._legacy.get(client_name)
            return {r[0]: (*r[1:], bound) for r in self._conn.execute(sql, (client_name,))}
        sql = "SELECT path_hash, size, mtime_ns, device, inode, offset, since_us FROM files WHERE client_name = ?"
        return {r[0]: r[1:] for r in self._conn.execute(sql, (client_name,))}

    @_reported
    def get_all(self, client_name: str | None = None) -> dict[str, Checkpoint]:
        if self._conn is None:
            return {}
        if client_name is None:
            rows = self._conn.execute(self._select).fetchall()
        else:
            rows = self._conn.execute(self._select + " WHERE client_name = ?", (client_name,)).fetchall()
        return {r[0]: self._row(r) for r in rows}

    @_reported
    def count(self, client_name: str | None = None) -> int:
        if self._conn is None:
            return 0
        if client_name is None:
            return self._conn.execute("SELECT count(*) FROM files").fetchone()[0]
        return self._conn.execute(
            "SELECT count(*) FROM files WHERE client_name = ?", (client_name,)
        ).fetchone()[0]

    @_reported
    def files_read(self) -> int:
        """How many files a checkpoint says hyp has read some bytes of (`offset > 0`)."""
        if self._conn is None:
            return 0
        return self._conn.execute("SELECT count(*) FROM files WHERE offset > 0").fetchone()[0]

    @_reported
    def oldest_update(self) -> str | None:
        """The `updated_at` of the checkpoint updated longest ago (None with none)."""
        if self._conn is None:
            return None
        return self._conn.execute("SELECT MIN(updated_at) FROM files").fetchone()[0]

    @_reported
    def clients_claiming_rows(self) -> list[str]:
        """The clients some checkpoint of which says its file gave rows (`rows_emitted > 0`): each must have a
        part file under `source=<client>` (`storage.dataset_stale`)."""
        if self._conn is None:
            return []
        cur = self._conn.execute("SELECT DISTINCT client_name FROM files WHERE rows_emitted > 0")
        return sorted(row[0] for row in cur.fetchall())

    @_reported
    def newest_files(self) -> dict[str, str]:
        """{client_name: the newest part file recorded for it} (`META_NEWEST_FILE`)."""
        if self._conn is None or not self._has_meta:
            return {}
        cur = self._conn.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
                                 (len(META_NEWEST_FILE), META_NEWEST_FILE))
        return {k[len(META_NEWEST_FILE):]: v for k, v in cur.fetchall()}

    @_reported
    def get_meta(self, key: str) -> str | None:
        if self._conn is None or not self._has_meta:
            return None
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    # -- writes (under the commit lock) -------------------------------------------------------------------
    @_reported
    def put_many(self, checkpoints: Iterable[Checkpoint], meta: Mapping[str, str | None] | None = None) -> int:
        """Insert or replace entries in one transaction, with the `meta` values given (the dataset marker's id
        and generation: a crash cannot separate them). Returns how many entries were written."""
        now = _utc_now()
        rows = [tuple(getattr(cp, f) for f in _CP_FIELDS) + (now,) for cp in checkpoints]
        if not rows and not meta:
            return 0
        placeholders = ", ".join("?" * (len(_CP_FIELDS) + 1))
        sql = f"INSERT OR REPLACE INTO files ({', '.join(_CP_FIELDS)}, updated_at) VALUES ({placeholders})"
        with self._transaction() as conn:
            if rows:
                conn.executemany(sql, rows)
            _write_meta(conn, meta)
        return len(rows)

    def put(self, checkpoint: Checkpoint) -> None:
        self.put_many([checkpoint])

    @_reported
    def delete(self, path_hashes: Iterable[str]) -> int:
        keys = [(h,) for h in path_hashes]
        if not keys:
            return 0
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany("DELETE FROM files WHERE path_hash = ?", keys)
            return conn.total_changes - before

    @_reported
    def reset_all(self, meta: Mapping[str, str | None] | None = None) -> int:
        """Reset every entry (storage.md §7.3): kept, at offset 0 with a fresh parser state, and with the
        size, mtime and head cleared so that the next pass neither skips the file nor trusts its head. The
        lower bound stays: a daemon's pass from the start keeps it (`FilePass.keep_bound`). `meta`: values set
        in the same transaction."""
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE files SET offset = 0, parser_state = ?, size = 0, mtime_ns = 0, head_len = 0, "
                "head_sha256 = '', rows_emitted = 0, tail_len = NULL, tail_sha256 = NULL, updated_at = ?",
                (FRESH_PARSER_STATE, _utc_now()),
            )
            _write_meta(conn, meta)
            return cur.rowcount

    @_reported
    def forget_rows(self, clients: Iterable[str], meta: Mapping[str, str | None] | None = None) -> int:
        """Set `rows_emitted` to 0 in every checkpoint of `clients` (retention removed all their rows: they no
        longer claim rows the dataset should hold), with the `meta` values given, in one transaction. The rest
        of each checkpoint stays: nothing is read again. Returns how many entries changed."""
        keys = sorted(set(clients))
        if not keys and not meta:
            return 0
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "UPDATE files SET rows_emitted = 0 WHERE client_name = ? AND rows_emitted > 0", [(k,) for k in keys]
            )
            changed = conn.total_changes - before
            _write_meta(conn, meta)
        return changed

    @_reported
    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, str(value)))
