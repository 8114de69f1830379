"""`HYP_HOME` layout (storage.md §1), directory creation and atomic file writes (storage.md §3, §11).

Nothing here touches the disk on import or when a `Layout` is built: read-only commands must never create
`HYP_HOME`. Only `ensure_dir` and `atomic_write_bytes` create anything, and only writers call them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
CONFIG_NAME = "hypaware-config.json"


def user_home(env: Mapping[str, str] = os.environ) -> str:
    """The user's home directory: `$HOME` of `env`, else of the process, else the password database's entry
    (what Python does for an unset HOME). An empty HOME counts as unset: `os.path.expanduser("~")` answers
    "/" for it, which made HYP_HOME `/.hyp` and the client roots `/.claude` and `/.codex`."""
    home = env.get("HOME") or os.environ.get("HOME")
    if home:
        return home
    try:
        import pwd

        home = pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError, AttributeError, OSError):  # (no pwd on Windows; a uid with no entry)
        home = ""
    return home or os.path.expanduser("~")


def resolve_hyp_home(env: Mapping[str, str] = os.environ) -> Path:
    """`$HYP_HOME` (`~` expanded, made absolute), else `~/.hyp`. Never touches the disk."""
    raw = env.get("HYP_HOME") or ""
    home_dir = user_home(env)
    if not raw:
        return Path(os.path.abspath(os.path.join(home_dir, ".hyp")))
    if raw == "~" or raw.startswith("~/"):
        raw = home_dir + raw[1:]
    elif raw.startswith("~"):
        raw = os.path.expanduser(raw)  # ~user/...
    return Path(os.path.abspath(raw))


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path for a message: its bytes as UTF-8, a byte that is not UTF-8 written as `\\xff` (the text of
    `os.fsdecode` holds a lone surrogate there, which no UTF-8 output can encode)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def hyp_home_encoding_problem(home: Path, then: str = "run it again") -> str | None:
    """What is wrong with a HYP_HOME whose path is not valid UTF-8 (`$'/tmp/h\\xffp'`); None when it is.
    Polars opens the dataset's files by a UTF-8 path only: imports wrote there, then every read failed
    (`hyp query`: "Object does not have a .read() method"; `hyp status` called every part file damaged)."""
    fault = _encoding_fault(home)
    return None if fault is None else _sentence(fault, then)


def _encoding_fault(home: Path) -> tuple[str, str] | None:
    try:
        os.fsencode(home).decode("utf-8")
    except UnicodeDecodeError:
        return (f"HYP_HOME is {shown_path(home)}, whose path is not valid UTF-8: the Parquet reader needs "
                "a UTF-8 path, so the dataset could be written there but never read",
                "Choose a HYP_HOME whose path is valid UTF-8 (set HYP_HOME, or rename the folder)")
    return None


def _sentence(fault: tuple[str, str], then: str) -> str:
    what, advice = fault
    return f"{what}. {advice} and {then}."


class HypHomeError(ValueError):
    """A HYP_HOME no command can use, with its message (what, why, what to do); `hyp` reports it and exits 1.
    One whose path is not valid UTF-8 every command refuses up front, from `Layout.resolve`; the commands that
    would read one that is otherwise unusable as empty refuse it with `require_usable_home`."""


def hyp_home_problem(home: Path, then: str = "run it again", *, create: bool = False) -> str | None:
    """What makes HYP_HOME unusable for every command, read-only or not, as what, why and what to do (`then`:
    what to do once it is fixed); None when it is a directory this user can open, or does not exist yet (a
    fresh machine: the writers create it). Unusable: a path that is not valid UTF-8
    (`hyp_home_encoding_problem`), something that is not a directory (a file, /dev/null), a link to nothing, a
    loop of links, a path under a file, a directory this user may not read, or one behind a folder it may not
    open. The commands that would otherwise blame a config or dataset under it (or find "nothing imported yet")
    say this instead.

    `create`: for the commands that create it when it is missing (`hyp init`, `hyp backfill`, `hyp daemon
    start`), and for the advice to run one of them: a HYP_HOME not there yet that cannot be created (the
    nearest folder above it that exists is not writable by this user, or on a read-only file system) is
    unusable too. (It failed only at its first write: `hyp init --yes` printed "Config failed: Permission
    denied" after `hyp status` had said "Next: hyp init".) The read-only commands read it as empty."""
    fault = _home_fault(home, create)
    return None if fault is None else _sentence(fault, then)


def hyp_home_fault(home: Path) -> str | None:
    """`hyp_home_problem`'s what and why alone (`HYP_HOME is …, a directory this user may not read (permission
    denied)`), without what to do: for the parts of a report that the problem keeps from being read, beside
    the one place that gives the whole message."""
    fault = _home_fault(home, False)
    return None if fault is None else fault[0]


def _home_fault(home: Path, create: bool) -> tuple[str, str] | None:
    """(what and why, what to do without `and <then>.`) for `hyp_home_problem`, or None."""
    encoding = _encoding_fault(home)
    if encoding is not None:
        return encoding
    try:
        st = os.stat(home)
    except OSError as exc:
        return _unreachable_home_fault(home, exc, create)
    if not stat.S_ISDIR(st.st_mode):
        return (f"HYP_HOME is {home}, which is not a directory",
                "Point HYP_HOME at a directory (or move that file away)")
    if not os.access(home, os.R_OK | os.X_OK):
        return (f"HYP_HOME is {home}, a directory this user may not read (permission denied)",
                "Check that it belongs to you and is readable and writable (mode 0700), or point HYP_HOME at a "
                "directory of yours,")
    if create and not os.access(home, os.W_OK | os.X_OK):
        # (for the commands that write there: `hyp status` said "Next: hyp init", which then failed at its
        # first write; the read-only commands read such a HYP_HOME as it is)
        why = _why_not_writable(home)
        if why != "permission denied":  # (no owner or mode fixes a file system mounted read-only)
            return (f"HYP_HOME is {home}, a directory this user may not write in ({why})",
                    "Remount it read-write, or point HYP_HOME at a directory on a writable disk,")
        return (f"HYP_HOME is {home}, a directory this user may not write in ({why})",
                "Check that it belongs to you and is readable and writable (mode 0700), or point HYP_HOME at a "
                "directory of yours,")
    return None


def _why_not_writable(folder: Path) -> str:
    with contextlib.suppress(OSError, AttributeError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "its file system is mounted read-only"
    return "permission denied"


def _link_fault(home: Path, link: Path, exc: OSError | None) -> tuple[str, str]:
    """A link on HYP_HOME's way (`link`, HYP_HOME itself or a folder above it) that leads nowhere: to nothing,
    or round in a loop (ELOOP: each link's target exists, so "which does not exist" named one that did)."""
    under = "" if link == home else f"under {link}, "
    target = os.readlink(link)
    if (exc is not None and exc.errno == errno.ELOOP) or is_link_loop(link):
        return (f"HYP_HOME is {home}, {under}a link to {target} that leads into a loop of links "
                f"({os.strerror(errno.ELOOP)})",
                "Point HYP_HOME at a directory (or make the link lead to one)")
    return (f"HYP_HOME is {home}, {under}a link to {target}, which does not exist",
            "Create that folder (or point HYP_HOME elsewhere)")


def is_link_loop(link: str | os.PathLike[str]) -> bool:
    """Whether following `link` goes round a loop of links (ELOOP)."""
    try:
        os.stat(link)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def dangling_link_target(link: str | os.PathLike[str]) -> str | None:
    """Where `link` points, when it is a symbolic link that leads to nothing (a folder on a drive that is not
    mounted, moved or deleted); None for anything else (not a link, a link that leads somewhere, a loop:
    `is_link_loop`). The target as the link names it, made absolute against the link's folder."""
    try:
        target = os.readlink(link)
    except OSError:  # (not a link, or not there at all)
        return None
    try:
        os.stat(link)
    except (FileNotFoundError, NotADirectoryError):
        return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(link)), target))
    except OSError:
        return None
    return None


def _unreachable_home_fault(home: Path, exc: OSError, create: bool) -> tuple[str, str] | None:
    """`_home_fault` for a HYP_HOME that `os.stat` cannot reach (`exc`); None when it simply does not exist
    yet under directories it can be created in (with `create`: that this user may write in)."""
    if os.path.islink(home):  # (a dangling link, or a loop: making the folder failed with "File exists")
        return _link_fault(home, home, exc)
    for above in home.parents:  # the nearest folder above it that is there
        try:
            st = os.stat(above)
        except OSError:
            if os.path.islink(above):  # (a link to nothing, or a loop, on the way: making the folders fails)
                return _link_fault(home, above, None)
            continue  # (missing too, or one it may not open: a folder further up says why)
        if not stat.S_ISDIR(st.st_mode):
            return (f"HYP_HOME is {home}, under {above}, which is not a directory",
                    "Point HYP_HOME at a directory (or move that file away)")
        if not os.access(above, os.X_OK):
            return (f"HYP_HOME is {home}, under {above}, a folder this user may not open (permission denied)",
                    "Point HYP_HOME at a directory of yours")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if create and not os.access(above, os.W_OK | os.X_OK):
                return _not_creatable_fault(home, above)
            return None  # (not there yet: a writer creates it)
        break
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return None
    return (f"HYP_HOME is {home}, which cannot be opened ({exc.strerror or exc})",
            "Point HYP_HOME at a directory of yours")


def _not_creatable_fault(home: Path, above: Path) -> tuple[str, str]:
    """A HYP_HOME not there yet whose nearest existing folder (`above`) this user may not write in."""
    read_only = False
    with contextlib.suppress(OSError, AttributeError):
        read_only = bool(os.statvfs(above).f_flag & os.ST_RDONLY)
    why = "is on a file system mounted read-only" if read_only else \
        "is a folder this user may not write in (permission denied)"
    return (f"HYP_HOME is {home}, which does not exist yet and cannot be created: {above} {why}",
            "Point HYP_HOME at a directory of yours (or create that one, owned by this user)")


def require_usable_home(home: Path, then: str = "run it again") -> None:
    """Raise `HypHomeError` with `hyp_home_problem`'s message for a HYP_HOME no command can use: for the
    commands that would otherwise answer as if there were no data (`hyp query`, `hyp cache compact`), which
    `hyp` then reports like any other refusal (`hyp <command>: <message>`, the `--json` failure document,
    exit 1). A HYP_HOME that does not exist yet passes."""
    problem = hyp_home_problem(home, then)
    if problem is not None:
        raise HypHomeError(problem)


# What to do after a write failed, by cause: the same words wherever HYP_HOME is written (the dataset,
# the checkpoint database, the daemon's files), followed by what the failed operation kept.
IMPORT_KEPT = "Rows already committed are kept, and the next run resumes from the last checkpoint."
# Compaction and prune have no checkpoints to resume from: a partition is rewritten (its inputs unlinked only
# once the new file is verified) or moved out whole, so a failure leaves the dataset as it was.
COMPACT_KEPT = "Nothing was lost: the files being compacted are kept as they were."
PRUNE_KEPT = "Nothing was lost: the partitions not removed yet are kept as they were."
FULL_DISK_HINT = f"Free some disk space and run it again. {IMPORT_KEPT}"
RETRY_HINT = "Nothing already committed was lost; run it again once the problem is fixed."
# EFBIG: Python ignores SIGXFSZ, so a write past the RLIMIT_FSIZE of the process fails with "File too large"
# instead of killing it; the limit is the process's (inherited from the shell or service), not the disk's.
ULIMIT_F = "(`ulimit -f`, inherited from the shell or service that started it)"  # where such a limit comes from


def file_size_cause(who: str = "this process") -> str:
    """An EFBIG named: the limit on the size of the files `who` may write, and where it comes from."""
    return f"a limit on the size of the files {who} may write {ULIMIT_F}"


FILE_SIZE_LIMIT = f"A{file_size_cause()[1:]} stopped the write: raise it (`ulimit -f unlimited`) and run it again."


def file_size_limit() -> int | None:
    """This process's RLIMIT_FSIZE in bytes (`ulimit -f`), or None when there is none (or it cannot be read)."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY or soft < 0 else soft


def likely_file_size_cause(limit: int) -> str:
    """An I/O error without an errno (SQLite's "disk I/O error") under a finite `ulimit -f`: the limit named as
    the likely cause (a write past it fails with EFBIG, which SQLite reports as a plain I/O error), without the
    advice, which differs between a command and the daemon."""
    return (
        f"this process may not write files larger than {limit // 1024} KiB {ULIMIT_F}, the likely cause"
    )


def likely_file_size_hint(limit: int, kept: str = IMPORT_KEPT) -> str:
    cause = likely_file_size_cause(limit)
    return f"{cause[0].upper()}{cause[1:]}: raise it (`ulimit -f unlimited`) and run it again. {kept}"


def full_disk_hint(kept: str = IMPORT_KEPT) -> str:
    return f"Free some disk space and run it again. {kept}"


def file_size_hint(kept: str = IMPORT_KEPT) -> str:
    return f"{FILE_SIZE_LIMIT} {kept}"


def not_writable_hint(home: Path) -> str:
    return (
        f"Check that {home} and everything in it belong to you and are writable (mode 0700), or point HYP_HOME "
        "at a writable directory."
    )


# EROFS: no chmod or chown fixes a file system mounted read-only.
READ_ONLY_FS = "the file system is mounted read-only: point HYP_HOME at a writable place (or remount it read-write)"


def read_only_fs_hint() -> str:
    return f"{READ_ONLY_FS[0].upper()}{READ_ONLY_FS[1:]}."


def open_files_limit() -> int | None:
    """This process's limit on open files (`ulimit -n`, RLIMIT_NOFILE's soft value), or None when unknown."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY or soft < 0 else soft


def too_many_files_advice(err: int | None = errno.EMFILE, then: str = "run it again") -> str:
    """What to do about EMFILE (this process's limit on open files, `ulimit -n`) or ENFILE (the system's table
    of open files is full: no `ulimit` raises that), as a sentence without its full stop."""
    if err == errno.ENFILE:
        return f"The system's table of open files is full (fs.file-max): close some programs and {then}"
    n = open_files_limit()
    now = f"; currently {n}" if n is not None else ""
    return f"Raise the limit on open files (ulimit -n{now}) and {then}"


def too_many_files_hint(err: int | None = errno.EMFILE, kept: str = IMPORT_KEPT) -> str:
    return f"{too_many_files_advice(err)}. {kept}"


class PanicError(RuntimeError):
    """A Rust panic of a native library (Polars), as an ordinary error whose text is `panic_text`'s."""

    @property
    def internal(self) -> bool:
        """No known cause (a bug, not a limit of this machine): worth a traceback."""
        return is_internal_panic_text(str(self))


def is_internal_panic_text(text: str) -> bool:
    return "stopped on an internal error" in text


def is_panic(exc: BaseException) -> bool:
    """PyO3's `pyo3_runtime.PanicException` (a Rust panic in Polars, e.g. `Too many open files` while starting its
    runtime). It derives from BaseException, so an `except Exception` lets it through as a traceback."""
    return any(t.__name__ == "PanicException" for t in type(exc).__mro__)


def panic_text(exc: BaseException, then: str = "run it again") -> str:
    """One line for a Polars panic: what happened and, for a known cause, what to do (then `then`)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else "no message"
    m = re.search(r"\bOs \{ code: (\d+)", text)
    code = int(m.group(1)) if m else None
    if code in (errno.EMFILE, errno.ENFILE) or (code is None and "TooManyOpenFiles" in text):
        code = code or errno.EMFILE
        return f"Polars (the data library) stopped: {os.strerror(code)}. {too_many_files_advice(code, then)}."
    if code is not None:
        return f"Polars (the data library) stopped: {os.strerror(code)} ({first})"
    return f"Polars (the data library) stopped on an internal error: {first}"


@contextlib.contextmanager
def panics_as_errors(then: str = "run it again") -> Iterator[None]:
    """Turn a Polars panic into a `PanicError` (an Exception), for code that handles errors with `except
    Exception` (a thread worker, the daemon's loop)."""
    try:
        yield
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise PanicError(panic_text(exc, then)) from exc


def os_error_hint(exc: OSError, home: Path, kept: str = IMPORT_KEPT) -> str:
    """What to do about an OSError writing under `home`: free space, raise the file-size or open-files limit,
    permissions, a read-only mount, or try again. `kept`: what the operation that failed kept (an import's rows
    and checkpoints by default)."""
    if exc.errno == errno.ENOSPC or exc.errno == getattr(errno, "EDQUOT", -1):
        return full_disk_hint(kept)
    if exc.errno == errno.EFBIG:
        return file_size_hint(kept)
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        return too_many_files_hint(exc.errno, kept)
    if exc.errno == errno.EROFS:
        return read_only_fs_hint()
    if exc.errno in (errno.EACCES, errno.EPERM):
        return not_writable_hint(home)
    return RETRY_HINT


def file_in_the_way(path: str | os.PathLike[str], home: Path, *, itself: bool = False) -> Path | None:
    """The topmost of `path`'s directories under `home` (`home` included, and `path` itself with `itself`)
    that exists and is not a directory: a file where hyp keeps a directory. None when there is none."""
    p = Path(path)
    chain = [p] if itself else []
    chain += [a for a in p.parents if a == home or home in a.parents]
    for a in reversed(chain):
        if not a.exists():
            return None
        if not a.is_dir():
            return a
    return None


def in_the_way_message(where: Path, home: Path) -> str:
    """What `hyp status` says of a file where a directory of HYP_HOME belongs; the writers say the same."""
    if where == home:
        return hyp_home_problem(home) or f"{home} is not a directory (move it away)"
    return f"{where} is not a directory (move it away)"


def directory_in_the_way_message(where: str | os.PathLike[str]) -> str:
    """A directory where hyp keeps a file (`logs/daemon.log`, an EISDIR): no retry helps, moving it does."""
    return f"{os.fsdecode(where)} is a directory, not a file (move it away)"


def os_error_text(exc: OSError, home: Path, kept: str = IMPORT_KEPT) -> str:
    """An OSError writing under `home`, for a person: the reason, the file, and what to do. A file where a
    directory belongs is named itself (the error named the path below it: `Not a directory (…/cache/
    ai_gateway_messages/source=claude/date=…)`, or `File exists (…/state)`)."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and exc.filename:
        where = file_in_the_way(os.fsdecode(exc.filename), home, itself=True)
        if where is not None:
            return in_the_way_message(where, home)
    if exc.errno == errno.EISDIR and exc.filename:
        return directory_in_the_way_message(exc.filename)
    place = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{place}. {os_error_hint(exc, home, kept)}"


@dataclass(frozen=True)
class Layout:
    """Every path of storage.md §1. Building one creates nothing. Each path is a pure function of `home` (the
    layout is immutable), built once per instance (`cached_property`): a commit asked for them hundreds of
    times, two or three `Path` joins each."""

    home: Path

    @classmethod
    def resolve(cls, env: Mapping[str, str] = os.environ) -> Layout:
        """The layout of `$HYP_HOME`. Raises `HypHomeError` for one whose path is not valid UTF-8: every
        command resolves its layout before it reads or writes anything, so each refuses such a HYP_HOME up
        front."""
        home = resolve_hyp_home(env)
        problem = hyp_home_encoding_problem(home)
        if problem is not None:
            raise HypHomeError(problem)
        return cls(home)

    @cached_property
    def config(self) -> Path:
        return self.home / CONFIG_NAME

    @cached_property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @cached_property
    def dataset_root(self) -> Path:
        return self.cache_dir / "ai_gateway_messages"

    @cached_property
    def trash(self) -> Path:
        return self.cache_dir / ".trash"

    @cached_property
    def dataset_marker(self) -> Path:
        """The dataset's marker file (`storage.read_marker`): beside the dataset root, never in it."""
        return self.cache_dir / ".hyp-dataset"

    @cached_property
    def state_dir(self) -> Path:
        return self.home / "state"

    @cached_property
    def ingest_db(self) -> Path:
        return self.state_dir / "ingest.sqlite"

    @cached_property
    def capture_json(self) -> Path:
        return self.state_dir / "capture.json"

    @cached_property
    def compaction_journal(self) -> Path:
        """A compaction in progress (storage.Storage._compact_partition); absent otherwise."""
        return self.state_dir / "compaction.json"

    @cached_property
    def run_dir(self) -> Path:
        return self.home / "run"

    @cached_property
    def write_lock(self) -> Path:
        return self.run_dir / "write.lock"

    @cached_property
    def stop_lock(self) -> Path:
        """Held by `hyp daemon stop` while it stops the daemon: concurrent stops wait for it, not signal again."""
        return self.run_dir / "stop.lock"

    @cached_property
    def daemon_pid(self) -> Path:
        return self.run_dir / "daemon.pid"

    @cached_property
    def daemon_status(self) -> Path:
        return self.run_dir / "daemon-status.json"

    @cached_property
    def daemon_status_reserve(self) -> Path:
        """Room a running daemon keeps for its final status (control.reserve_status_room); absent otherwise."""
        return self.run_dir / "daemon-status.reserve"

    @cached_property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @cached_property
    def events_log(self) -> Path:
        return self.logs_dir / "events.jsonl"

    @cached_property
    def daemon_log(self) -> Path:
        return self.logs_dir / "daemon.log"

    def partition_dir(self, source: str, date: str) -> Path:
        # (kept per layout: a commit asks for each of its partitions several times, two `Path` joins each)
        cache = self.__dict__.setdefault("_partition_dirs", {})
        key = (source, date)
        pdir = cache.get(key)
        if pdir is None:
            pdir = cache[key] = self.dataset_root / f"source={source}" / f"date={date}"
        return pdir


def set_umask() -> int:
    """Writers call this at start (storage.md §11). Returns the previous umask."""
    return os.umask(0o077)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename or create in it is durable; skipped where the platform cannot."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. EINVAL on filesystems that cannot fsync a directory
    finally:
        os.close(fd)


class HomeGone(FileNotFoundError):
    """`ensure_dir(..., below=home)` found `home` missing: it was moved or deleted while a process used it, and
    is not created again (the process's open files, the checkpoint database above all, went with it)."""


def home_moved_message(home: Path, who: str = "hyp", then: str = "run the command again") -> str:
    """What a process says when its HYP_HOME was moved or deleted under it, and what to do."""
    return (f"HYP_HOME {shown_path(home)} was moved or deleted while {who} ran: nothing more is written there "
            f"(it is not created again); {then} with the new HYP_HOME")


def ensure_dir(path: str | os.PathLike[str], *, below: str | os.PathLike[str] | None = None) -> Path:
    """Create `path` and any missing parent with mode 0700, fsyncing each new directory's parent.

    Directories that already exist keep their mode (they may be the user's). With `below` (a HYP_HOME that
    exists, or existed), only directories under it are created: when `below` itself is missing, `HomeGone` is
    raised and nothing is created."""
    if os.path.isdir(path):  # (the common case, one stat: what the loop below finds at its first step)
        return path if isinstance(path, Path) else Path(path)
    p = Path(path)
    stop = Path(below) if below is not None else None
    missing: list[Path] = []
    cur = p
    while not cur.is_dir():
        if stop is not None and cur == stop:
            raise HomeGone(errno.ENOENT, "HYP_HOME was moved or deleted", str(stop))
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            if not d.is_dir():
                raise
            continue
        with contextlib.suppress(OSError):
            os.chmod(d, DIR_MODE)  # in case the umask was looser than 077
        fsync_dir(d.parent)
    return p


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte to `fd` (a short write is retried). Tests patch this to inject ENOSPC."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` (O_CREAT|O_EXCL, `mode`: FileExistsError when something is there), write, fsync; on an
    error the file is removed again."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        try:
            with contextlib.suppress(OSError):
                os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = FILE_MODE) -> Path:
    """storage.md §3: temp file in the target directory (O_CREAT|O_EXCL, `mode`), write, fsync, rename,
    directory fsync. On any error the temp file is removed and the target is left as it was."""
    target = Path(path)
    ensure_dir(target.parent)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    _write_new(tmp, data, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
    return target


def atomic_create_bytes(path: str | os.PathLike[str], data: bytes, mode: int = FILE_MODE) -> Path:
    """`atomic_write_bytes` for a file that must not exist: the complete temp file is hard-linked to the target
    name, which fails (FileExistsError, the target left as it is) when anything is there by then, a dangling
    symlink included. Readers never see a partial file. Where hard links are not supported, the target is
    created with O_EXCL and written in place (still never replacing anything)."""
    target = Path(path)
    ensure_dir(target.parent)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    _write_new(tmp, data, mode)
    try:
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise
        except (OSError, NotImplementedError) as exc:  # no hard links here (EPERM, ENOTSUP, ...)
            if isinstance(exc, OSError) and exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP,
                                                              errno.ENOSYS, errno.EMLINK, errno.EACCES):
                raise
            _write_new(target, data, mode)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_dir(target.parent)
    return target


def read_tail(path: str | os.PathLike[str], max_bytes: int) -> list[bytes]:
    """The complete lines among the last `max_bytes` bytes of a file (read-only; a first line cut by the
    window is dropped). Raises OSError like open()."""
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        start = max(0, size - max_bytes)
        fh.seek(start)
        data = fh.read()
    lines = data.split(b"\n")
    return lines[1:] if start > 0 else lines
