"""Daemon process control (daemon.md §4.1, §6, §7): the single-instance pid lock, the status file, the
daemon log, and `start` / `stop` / `restart` of a detached or service-managed daemon.

`read_daemon_status(layout)` is read-only: it never creates `HYP_HOME` or anything in it (cli.md §1), so
`hyp status` and `hyp daemon status` can call it anywhere.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypaware_tui.core import prog
from hypaware_tui.core.paths import (
    FILE_MODE,
    Layout,
    atomic_write_bytes,
    ensure_dir,
    hyp_home_problem,
    read_tail,
)
from hypaware_tui.core.timeutil import parse_iso_us

STATES = ("starting", "running", "degraded", "stopped")
MODES = ("service", "detached", "foreground")
MODE_ENV = "HYP_DAEMON_MODE"
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_KEEP = 3
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# How long a `hyp daemon stop` waits for another one to finish: that one may wait for the service manager (its
# call times out at 30 s) and then `STOP_TIMEOUT_S` for the daemon to end.
STOP_LOCK_WAIT_S = 60.0
LOCK_ATTEMPTS = 6  # a status probe holds the lock for microseconds; retry briefly before "already running"
LOCK_RETRY_S = 0.05
PROBE_WAIT_S = 5.0  # how long status probes alone may keep a starting daemon from its lock
LOG_TAIL_LINES = 20
HEARTBEAT_S = 30.0  # a live daemon rewrites its status file at least this often (daemon.md §6)
# A live daemon whose status is older than this is reported stale. Not 2-3 heartbeats: one step of the loop may
# legitimately run for minutes without a heartbeat (the daily compaction of every partition, a prune, a flush
# waiting for the write lock behind a large backfill batch), and a false "stale" would send people hunting
# for a problem that is not there. Ten heartbeats still tell within minutes that nobody is updating it, which
# is mostly a daemon that cannot write to HYP_HOME (a full disk, a read-only run/ directory) or one that hangs.
STALE_AFTER_S = 10 * HEARTBEAT_S
# Older than this (not yet stale), `hyp daemon status` says how old the status is: no warning, only the fact.
LAGGING_AFTER_S = 3 * HEARTBEAT_S


def utc_iso(ts: float | None = None) -> str:
    """UTC ISO 8601 with seconds and `Z` (status file timestamps)."""
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


def daemon_mode(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    mode = env.get(MODE_ENV, "foreground")
    return mode if mode in MODES else "foreground"


# --------------------------------------------------------------------------------------------- pid lock


class AlreadyRunning(RuntimeError):
    def __init__(self, pid: int | None) -> None:
        super().__init__(f"already running (pid {pid})" if pid else "already running (pid unknown)")
        self.pid = pid


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    try:
        pid = int(text.split()[0]) if text else None
    except ValueError:
        return None
    return pid if pid and pid > 0 else None


class PidLock:
    """An exclusive `flock` on `run/daemon.pid`, held for the life of the process, with the pid inside.

    A stale pid file (no lock) is simply taken over. `release()` removes the file, then drops the lock."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.path = layout.daemon_pid
        self.fd: int | None = None

    def acquire(self, pid: int | None = None) -> None:
        ensure_dir(self.path.parent)
        pid = os.getpid() if pid is None else pid
        attempts = 0
        probe_deadline = time.monotonic() + PROBE_WAIT_S
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                # Only a daemon holds the lock exclusively; status probes (`lock_held`) hold it shared for
                # microseconds. A shared lock we can take too means probes only: wait them out (up to a
                # deadline), without counting the attempt, however often they come.
                probes_only = _try_shared(fd)
                os.close(fd)
                if probes_only and time.monotonic() < probe_deadline:
                    time.sleep(LOCK_RETRY_S / 10)
                    continue
                attempts += 1
                if attempts >= LOCK_ATTEMPTS:
                    raise AlreadyRunning(lock_holder(self.layout)) from None
                time.sleep(LOCK_RETRY_S)
                continue
            # The file may have been unlinked by a stopping daemon between our open and our lock: then we
            # hold a lock on an orphan inode, and must start over on the current file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{pid}\n".encode(), 0)
            with contextlib.suppress(OSError):
                os.fsync(fd)
            self.fd = fd
            return

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def _try_shared(fd: int) -> bool:
    """Whether a shared lock on `fd` can be had now (then released): no process holds it exclusively."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def lock_held(layout: Layout) -> bool:
    """Whether some process holds the daemon lock. Read-only: opens the pid file without creating it and
    takes (then drops) a shared lock only to probe."""
    try:
        fd = os.open(layout.daemon_pid, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def lock_holder(layout: Layout) -> int | None:
    """The pid of the process holding the daemon lock exclusively, identified for real, or None when no process
    holds it or it cannot be told which one does. Never the pid file's word alone: that file is only text (a
    daemon writes it just after taking the lock, and anyone can overwrite it), and its pid, alive, may be any
    process (one that reused a dead daemon's pid, a `sleep`): signalling it would hit that process and leave the
    daemon running. Read-only.

    In order: the kernel's lock table (`/proc/locks`, Linux: the pid that holds a `flock` on the pid file's
    inode); else, for the pid in the pid file or in the status file, its command line (`/proc/<pid>/cmdline`)
    must be a `hyp daemon run`; without `/proc` (macOS) the pid file and the status file must name the same live
    process. Otherwise None."""
    try:
        st = os.stat(layout.daemon_pid)
    except OSError:
        return None
    holders = _flock_holders(st)
    if holders is not None and len(holders) == 1:
        return holders[0]
    file_pid = _read_pid(layout.daemon_pid)
    status = read_status_file(layout) or {}
    status_pid = status.get("pid") if isinstance(status.get("pid"), int) else None
    if _has_proc():
        for pid in (file_pid, status_pid):
            if pid and pid_alive(pid) and _is_daemon_run(pid):
                return pid
        return None
    if file_pid and file_pid == status_pid and pid_alive(file_pid):
        return file_pid
    return None


def _has_proc() -> bool:
    return os.path.exists("/proc/self/cmdline")


# How often `/proc/locks` is read again when it names no single holder (see `_flock_holders`).
LOCKS_READS = 5


def _flock_holders(st: os.stat_result) -> list[int] | None:
    """The pids holding an exclusive `flock` on the file `st` according to `/proc/locks` (None when it cannot
    be read). A line: `1: FLOCK  ADVISORY  WRITE 26759 fe:00:2500849 0 EOF` (device in hex); a waiter's has
    `->` after the number and is skipped. A pid of 0 or less (a holder in another pid namespace) is no answer.

    The kernel hands `/proc/locks` out a page (4 KiB, some 70 locks) per read, each page resuming at a line
    number: a lock taken or dropped by another process in between shifts the lines, and one is read twice or
    not at all. On a machine holding many locks (several test suites, daemons and SQLite databases at once)
    the running daemon was then missed ("running (pid unknown)", with a warning) in 2 to 20 % of the reads.
    Only one process can hold the lock exclusively, so an answer other than one pid is read again, a few
    times; a line read twice counts once."""
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids: list[int] = []
    for _ in range(LOCKS_READS):
        try:
            text = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
        except OSError:
            return None
        pids = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 6 or parts[1] == "->" or parts[1] != "FLOCK" or parts[3] != "WRITE":
                continue
            if parts[5] == want:
                with contextlib.suppress(ValueError):
                    pid = int(parts[4])
                    if pid > 0 and pid not in pids:
                        pids.append(pid)
        if len(pids) == 1 or len(text) < 4096:  # (one page was read whole: nothing shifted under it)
            return pids
    return pids


def _is_daemon_run(pid: int) -> bool:
    """Whether process `pid`'s command line is a `hyp daemon run` (`python -m hypaware_tui daemon run`, or the
    `hyp` script's `… hyp daemon run`). Linux only (`/proc`)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    for i, arg in enumerate(argv[:-2]):
        if argv[i + 1:i + 3] == ["daemon", "run"] and (arg == "hypaware_tui" or os.path.basename(arg) in ("hyp", "hypaware")):
            return True
    return False


def process_stopped(pid: int | None) -> bool:
    """Whether process `pid` is stopped (SIGSTOP, SIGTSTP, a debugger): state `T` or `t` in `/proc/<pid>/stat`.
    Linux only: False where that cannot be read."""
    if not pid or pid <= 0:
        return False
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    fields = text.rpartition(")")[2].split()  # (the command name, in parentheses, may hold spaces)
    return bool(fields) and fields[0] in ("T", "t")


def stopped_warning(pid: int, mode: str | None = None) -> str:
    """What a daemon stopped by a signal means and what to do (`hyp daemon status`, `hyp status`)."""
    fg = ", or fg in its terminal" if mode == "foreground" else ""
    return (f"stopped by a signal (SIGSTOP): it captures nothing until it is continued (kill -CONT {pid}{fg})")


def write_lock_waiting_notice(layout: Layout) -> str | None:
    """The waiting notice of a writer blocked on `run/write.lock` (cli.md §1) when the capture daemon is the
    one holding it, or None when the holder is another process or cannot be told (without `/proc/locks`):
    the generic notice then. A daemon stopped by a signal never releases it: the notice says so."""
    try:
        st = os.stat(layout.write_lock)
    except OSError:
        return None
    holders = _flock_holders(st)
    if not holders or len(holders) != 1 or not lock_held(layout):
        return None
    pid = holders[0]
    if lock_holder(layout) != pid:
        return None
    if process_stopped(pid):
        return (f"waiting for the capture daemon (pid {pid}) to finish its batch, but it is stopped by a signal "
                f"(SIGSTOP): continue it with kill -CONT {pid}, or stop it with {prog.NAME} daemon stop")
    return f"waiting for the capture daemon (pid {pid}) to finish its batch…"


def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------------------------- status file


def write_status_file(layout: Layout, status: Mapping[str, Any]) -> None:
    from hypaware_tui.core.schema import utf8_json

    data = utf8_json(json.dumps(status, indent=2, sort_keys=False, ensure_ascii=False)).encode() + b"\n"
    atomic_write_bytes(layout.daemon_status, data)


# Room kept beside the status file for the daemon's final status, freed for it when the disk is full (a clean stop
# on a full run/ left the `running` status, read as "ended unexpectedly"): the temporary file of a status (some
# KiB, more with long error messages), in pages or blocks of up to 4 KiB.
STATUS_RESERVE_BYTES = 16 * 1024
DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def reserve_status_room(layout: Layout) -> bool:
    """Keep `STATUS_RESERVE_BYTES` allocated in run/ (`layout.daemon_status_reserve`) for the daemon's final
    status, which the daemon frees (`drop_status_reserve`) when the disk is full. Best effort: False when it
    cannot be had (the disk already full), and nothing is left behind then."""
    path = layout.daemon_status_reserve
    try:
        if path.lstat().st_size >= STATUS_RESERVE_BYTES and path.is_file():
            return True  # (left by a daemon that was killed)
    except OSError:
        pass
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    except OSError:
        return False
    try:
        try:
            os.posix_fallocate(fd, 0, STATUS_RESERVE_BYTES)
        except (OSError, AttributeError) as exc:  # not supported here (or not on this platform): real bytes
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                raise
            os.ftruncate(fd, 0)
            view = memoryview(bytes(STATUS_RESERVE_BYTES))
            while view:
                view = view[os.write(fd, view):]
    except OSError:
        os.close(fd)
        drop_status_reserve(layout)
        return False
    os.close(fd)
    return True


def drop_status_reserve(layout: Layout) -> bool:
    """Remove the room `reserve_status_room` kept. True when there was one to free."""
    try:
        os.unlink(layout.daemon_status_reserve)
    except OSError:
        return False
    return True


def read_status_file(layout: Layout) -> dict[str, Any] | None:
    """The status file as written, or None when missing or unreadable (read-only)."""
    try:
        data = json.loads(layout.daemon_status.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class DaemonStatusReport:
    """What `hyp daemon status` and `hyp status` show (daemon.md §6)."""

    running: bool
    state: str  # "never started" | one of STATES
    pid: int | None
    mode: str | None
    message: str
    ended_unexpectedly: bool = False
    status: dict[str, Any] | None = None
    stale: bool = False  # running, but its status has not been updated for STALE_AFTER_S
    stopped_by_signal: bool = False  # running, but the process is stopped (SIGSTOP): it does nothing
    status_age_s: int | None = None  # seconds since the status was last written (a running daemon's)
    warning: str | None = None  # what a stale status means and what to do

    def to_json(self) -> dict[str, Any]:
        s = dict(self.status or {})
        out: dict[str, Any] = {
            "running": self.running,
            "state": self.state,
            "message": self.message,
            "ended_unexpectedly": self.ended_unexpectedly,
            "stale": self.stale,
            "stopped_by_signal": self.stopped_by_signal,
            "status_age_s": self.status_age_s,
            "warning": self.warning,
            "pid": self.pid,
            "mode": self.mode,
        }
        for key in ("version", "started_at", "updated_at", "watch", "watch_reason", "last_import_at", "rows_written",
                    "last_error", "retention_applied_at", "rows_pruned", "clients", "config_digest"):
            out[key] = s.get(key)
        if not self.running:
            # What it watched (`watch`, each client's `root_state`) is what it did while it ran: with no daemon
            # nothing is watched, and a killed one's last status still said `watching`. The figures stay.
            out["watch"] = out["watch_reason"] = None
            if isinstance(out["clients"], dict):
                out["clients"] = {name: dict(c, root_state=None) if isinstance(c, dict) else c
                                  for name, c in out["clients"].items()}
        return out


def read_daemon_status(layout: Layout, *, now: float | None = None) -> DaemonStatusReport:
    """Combine the status file with the process table and the lock. Never creates anything. A running daemon
    whose status file is older than `STALE_AFTER_S` (at `now`, epoch seconds) is reported `stale`, with a
    warning: its state is only what it last managed to write."""
    now = time.time() if now is None else now
    status = read_status_file(layout)
    held = lock_held(layout)
    lock_pid = lock_holder(layout) if held else None
    if held and lock_pid is None:
        return _holder_unknown(layout)
    if status is None:
        if held:
            return _starting(layout, lock_pid, None, now)
        if layout.daemon_status.exists():  # (there, but not a status: damaged, or not ours)
            return DaemonStatusReport(False, "stopped", None, None,
                                      f"stopped (its status file {layout.daemon_status} cannot be read)")
        return DaemonStatusReport(False, "never started", None, None, "never started")
    pid = status.get("pid") if isinstance(status.get("pid"), int) else None
    mode = status.get("mode") if isinstance(status.get("mode"), str) else None
    state = status.get("state") if status.get("state") in STATES else "stopped"
    running = held and pid == lock_pid
    if held and not running:
        # A new daemon holds the lock but has not written its status yet.
        return _starting(layout, lock_pid, status, now)
    if running:
        where = f"pid {pid}, {mode}" if mode else f"pid {pid}"
        report = DaemonStatusReport(True, state, pid, mode, f"{state} ({where})", status=status)
        updated = parse_iso_us(status.get("updated_at"))
        if updated is not None:
            report.status_age_s = max(0, int(now - updated / 1_000_000))
            if state != "stopped" and report.status_age_s > STALE_AFTER_S:
                report.stale = True
                report.message += ", status stale"
                report.warning = stale_warning(layout, report.status_age_s)
        if pid is not None and process_stopped(pid):
            # (its status is as old as the stop: what it says is the cause, not a disk that cannot be written)
            report.stopped_by_signal = True
            report.message += ", stopped by a signal (SIGSTOP)"
            report.warning = stopped_warning(pid, mode)
        return report
    if state != "stopped":
        return DaemonStatusReport(False, "stopped", pid, mode, f"stopped ({ended_unexpectedly_text(status)})",
                                  ended_unexpectedly=True, status=status)
    return DaemonStatusReport(False, "stopped", pid, mode, "stopped", status=status)


def holder_unknown_text(layout: Layout) -> str:
    """What to do when a process holds the daemon lock but cannot be identified (`lock_holder` is None)."""
    return (f"the capture daemon holds its lock but its pid is unknown (the pid in {layout.daemon_pid} is not "
            f"that of a hyp daemon, or cannot be checked here), so hyp signals nothing. Find the process holding that file (fuser -v "
            f"{layout.daemon_pid}, or lsof {layout.daemon_pid}), end it with kill <pid>, then {prog.NAME} daemon start")


def _holder_unknown(layout: Layout) -> DaemonStatusReport:
    # (its status file may be another run's: not shown)
    return DaemonStatusReport(True, "running", None, None, "running (pid unknown)", warning=holder_unknown_text(layout))


def ended_unexpectedly_text(status: Mapping[str, Any]) -> str:
    """`ended unexpectedly at <updated_at>` (daemon.md §6's words) for a daemon that died without writing
    `stopped` (killed, a crash, a power cut): the time is its last status update, written at least every
    HEARTBEAT_S while it ran; the Next step that `hyp daemon status` and `hyp status` add says where its log is."""
    at = status.get("updated_at")
    return f"ended unexpectedly at {at if isinstance(at, str) and at else 'an unknown time'}"


def _starting(layout: Layout, pid: int | None, status: dict[str, Any] | None, now: float) -> DaemonStatusReport:
    """A daemon that holds the lock but has written no status of its own: `starting`, or stale when it took
    the lock (the pid file's mtime) longer than `STALE_AFTER_S` ago, since its first act is to write one."""
    report = DaemonStatusReport(True, "starting", pid, None, f"starting (pid {pid})", status=status)
    try:
        age = max(0, int(now - layout.daemon_pid.stat().st_mtime))
    except OSError:
        return report
    if age > STALE_AFTER_S:
        report.stale = True
        report.message += ", status stale"
        report.warning = stale_warning(layout, age, never=True)
    return report


def fmt_age(seconds: float) -> str:
    """`45 s`, `7 min`, `2 h 5 min`, `3 d 4 h`."""
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def stale_warning(layout: Layout, age_s: float, *, never: bool = False) -> str:
    """What a running daemon's old status means and what to do (`hyp daemon status`, `hyp status`)."""
    what = f"no status written since it started {fmt_age(age_s)} ago" if never else \
        f"status not updated for {fmt_age(age_s)}"
    return (f"{what} (a running daemon writes it every {HEARTBEAT_S:g} s): the daemon may be unable to write to "
            f"{layout.run_dir} (disk full? read-only?), or be stuck, so the figures shown may be old. "
            f"Check the free space and permissions there and the log {layout.daemon_log}; then "
            f"{prog.NAME} daemon restart")


# --------------------------------------------------------------------------------------------- log


def rotate_log(path: Path, *, max_bytes: int = LOG_MAX_BYTES, keep: int = LOG_KEEP, incoming: int = 0) -> bool:
    """Rotate `path` to `.1` … `.keep` when it would exceed `max_bytes`. Returns True when rotated."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size == 0 or size + incoming <= max_bytes:
        return False
    for i in range(keep - 1, 0, -1):
        src = path.with_name(f"{path.name}.{i}")
        if src.exists():
            with contextlib.suppress(OSError):
                os.replace(src, path.with_name(f"{path.name}.{i + 1}"))
    with contextlib.suppress(OSError):
        os.replace(path, path.with_name(f"{path.name}.1"))
    return True


def open_log_append(path: Path) -> int:
    ensure_dir(path.parent)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)


def log_mark(layout: Layout) -> tuple[int, int] | None:
    """Where the daemon log ends now, (inode, size), so that `log_tail` can show only what comes after."""
    try:
        st = layout.daemon_log.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size


def log_tail(layout: Layout, lines: int = LOG_TAIL_LINES, *, since: tuple[int, int] | None = None) -> list[str]:
    """The last `lines` lines of the daemon log (read-only); with `since` (a `log_mark`), only the lines
    written after it: a failed start shows its own error, not a traceback an earlier run left there. A log
    rotated since (another inode) is read whole."""
    window = 64 * 1024
    try:
        if since is None:
            raw = read_tail(layout.daemon_log, window)
        else:
            with open(layout.daemon_log, "rb") as fh:
                st = os.fstat(fh.fileno())
                start = since[1] if st.st_ino == since[0] and st.st_size >= since[1] else 0
                fh.seek(max(start, st.st_size - window))
                raw = fh.read().split(b"\n")
            if start < st.st_size - window:
                raw = raw[1:]  # (a first line cut by the window)
    except OSError:
        return []
    text = [line.decode("utf-8", errors="replace") for line in raw]
    while text and not text[-1]:
        text.pop()
    return text[-lines:]


# --------------------------------------------------------------------------------------------- spawning


class Spawned:
    """A started daemon process as the starter sees it."""

    def __init__(self, pid: int, poll: Callable[[], int | None]) -> None:
        self.pid = pid
        self.poll = poll


Spawner = Callable[[Layout, Mapping[str, str]], Spawned]


def daemon_argv(python: str | None = None) -> list[str]:
    return [python or sys.executable, "-m", "hypaware_tui", "daemon", "run"]


# The variables that name client roots, and the importer that reads each (claude.md §1, codex.md §1).
CLIENT_ROOT_ENV = {"CLAUDE_CONFIG_DIR": "claude", "CODEX_HOME": "codex"}


def client_root_env(env: Mapping[str, str]) -> dict[str, str]:
    """`CLAUDE_CONFIG_DIR` / `CODEX_HOME`, those set to something, as the importers resolve them here and now:
    each entry `~`-expanded and made absolute against this process's working directory, by the importer's own
    `roots()` (a comma-separated list stays one, de-duplicated as the importer does). For a daemon that runs
    elsewhere: the detached one runs in `/` and a service wherever its manager puts it, so a relative value
    (`CLAUDE_CONFIG_DIR=claude`) passed on as it is named another folder, and the daemon waited for it
    silently while the backfill had read the right one. A value that names no root (`,`) is kept as it is."""
    from hypaware_tui.importers import get_importer

    out: dict[str, str] = {}
    for var, client in CLIENT_ROOT_ENV.items():
        raw = env.get(var)
        if not raw or not raw.strip():  # (unset, for the importers: their defaults apply)
            continue
        roots = get_importer(client).roots(None, env)
        out[var] = ",".join(roots) if roots else raw
    return out


def child_env(layout: Layout, env: Mapping[str, str], mode: str = "detached") -> dict[str, str]:
    """The environment of a detached daemon: `env` with HYP_HOME and the client roots made absolute (it runs
    in `/`, not here), its mode, and the allocator settings this process was given (`child_allocator_env`)."""
    from hypaware_tui.core.daemon.memory import child_allocator_env

    out = dict(env)
    child_allocator_env(out)
    out.update(client_root_env(env))
    out["HYP_HOME"] = str(layout.home)
    out[MODE_ENV] = mode
    return out


def spawn_detached(layout: Layout, env: Mapping[str, str]) -> Spawned:
    """`<python> -m hypaware_tui daemon run` in a new session, stdin from the null device, stdout and
    stderr appended to `logs/daemon.log`, HYP_HOME passed explicitly."""
    ensure_dir(layout.logs_dir)
    rotate_log(layout.daemon_log)
    fd = open_log_append(layout.daemon_log)
    try:
        proc = subprocess.Popen(
            daemon_argv(),
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            env=child_env(layout, env),
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)
    return Spawned(proc.pid, proc.poll)


# --------------------------------------------------------------------------------------------- start / stop


@dataclass
class ControlResult:
    """The outcome of start / stop / restart. `exit_code` follows cli.md §9."""

    ok: bool
    exit_code: int
    message: str  # stdout line on success, error text (without the `hyp daemon:` prefix) on failure
    pid: int | None = None
    mode: str | None = None
    notes: list[str] = field(default_factory=list)  # extra stdout lines (e.g. capture turned on)
    log_tail: list[str] = field(default_factory=list)  # printed on stderr when a start failed
    error: str | None = None


def _wait_for(pred: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def status_identity(layout: Layout) -> tuple[Any, Any] | None:
    """Which daemon run the status file is about: (pid, started_at), or None when there is no file. Taken
    before a service manager is asked to start the daemon, so that the wait ignores the previous run's
    `stopped` report (and its last error) until the new daemon has written its own."""
    st = read_status_file(layout)
    return None if st is None else _run_of(st)


def _run_of(status: Mapping[str, Any]) -> tuple[Any, Any]:
    return status.get("pid"), status.get("started_at")


def wait_until_up(
    layout: Layout,
    *,
    timeout: float,
    pid: int | None,
    proc: Spawned | None,
    not_run: tuple[Any, Any] | None = None,
) -> tuple[str, int | None]:
    """Wait for a daemon to report `running` / `degraded`. Returns (outcome, pid) with outcome one of
    `up`, `exited` (the process ended first), `stopped` (it reported stopped) or `timeout`. With `pid`
    None (a daemon started by the service manager), a status file of the run `not_run` (its
    `status_identity` from before the start) is not an answer."""
    deadline = time.monotonic() + timeout
    while True:
        st = read_status_file(layout)
        if st is not None and pid is None and not_run is not None and _run_of(st) == not_run:
            st = None  # still the previous run's report
        if st is not None and (pid is None or st.get("pid") == pid):
            state = st.get("state")
            if state in ("running", "degraded") and pid_alive(st.get("pid")):
                return "up", st.get("pid")
            if state == "stopped" and (pid is not None or not lock_held(layout)):
                return "stopped", st.get("pid")
        if proc is not None and proc.poll() is not None:
            return "exited", pid
        if time.monotonic() >= deadline:
            return "timeout", pid
        time.sleep(0.1)


def _start_failure(layout: Layout, why: str, pid: int | None, mode: str,
                   mark: tuple[int, int] | None = None) -> ControlResult:
    tail = log_tail(layout, since=mark)
    st = read_status_file(layout)
    err = (st or {}).get("last_error") if st and (pid is None or st.get("pid") == pid) else None
    detail = err.get("message") if isinstance(err, dict) else None
    msg = f"the capture daemon {why}" + (f": {detail}" if detail else "") + f" (log: {layout.daemon_log})"
    return ControlResult(False, 1, msg, pid=pid, mode=mode, log_tail=tail, error=detail or why)


def start_daemon(
    layout: Layout,
    *,
    env: Mapping[str, str] | None = None,
    service: Any = None,
    spawner: Spawner | None = None,
    timeout: float = START_TIMEOUT_S,
    ensure_capture_on: bool = True,
) -> ControlResult:
    """daemon.md §7 `start`. `service` is a ServiceManager or None (no service support here)."""
    from hypaware_tui.core.daemon import settings

    env = os.environ if env is None else env
    notes: list[str] = []
    # (else: "the config is invalid: …/hypaware-config.json: … Not a directory"; or, for one that cannot be created,
    # "not configured: run hyp init", which fails on it)
    problem = hyp_home_problem(layout.home, create=True)
    if problem is not None:
        return ControlResult(False, 1, problem, error=problem)
    cfg = settings.load(layout)
    if cfg.error is not None:
        return ControlResult(False, 1, cfg.error, error=cfg.error)
    if not cfg.capture_enabled:
        if not ensure_capture_on:
            return ControlResult(False, 1, "capture is off in the config", error="capture is off in the config")
        try:
            settings.set_capture_enabled(layout, True)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            return ControlResult(False, 1, f"could not turn capture on in {layout.config}: {exc}", error=str(exc))
        notes.append(f"capture was off; turned it on in {layout.config}")
    report = read_daemon_status(layout)
    if report.running:
        return _already_running(report, notes)
    use_service = _service_usable(service)
    other = _unit_other_home(service, layout) if use_service else None
    if other is not None:  # (through the unit, the daemon would run on the other HYP_HOME)
        from hypaware_tui.core.daemon.service import other_home_warning

        notes.append(f"{other_home_warning(other)}; starting the daemon detached instead")
        use_service = False
    if use_service:
        before = status_identity(layout)
        mark = log_mark(layout)
        try:
            service.start()
        except Exception as exc:  # noqa: BLE001
            return ControlResult(False, 1, f"the service manager could not start the daemon: {exc}",
                                 mode="service", notes=notes, error=str(exc))
        outcome, pid = wait_until_up(layout, timeout=timeout, pid=None, proc=None, not_run=before)
        if outcome == "up":
            return ControlResult(True, 0, f"capture daemon running (pid {pid}, service)", pid=pid,
                                 mode="service", notes=notes)
        res = _start_failure(layout, "did not start", pid, "service", mark)
        res.notes = notes
        return res
    spawner = spawner or spawn_detached
    mark = log_mark(layout)
    try:
        proc = spawner(layout, env)
    except OSError as exc:  # e.g. logs/ is not writable (its log is the daemon's output)
        from hypaware_tui.core.storage import _os_error_message

        msg = _os_error_message(exc, "could not start the capture daemon", layout)
        return ControlResult(False, 1, msg, mode="detached", notes=notes, error=msg)
    outcome, pid = wait_until_up(layout, timeout=timeout, pid=proc.pid, proc=proc)
    if outcome == "up":
        return ControlResult(True, 0, f"capture daemon running (pid {proc.pid}, detached)", pid=proc.pid,
                             mode="detached", notes=notes)
    if outcome == "timeout" and proc.poll() is None:
        # Still catching up after a long pause: it is alive and will report running when done. Unless it says
        # what holds it up (a locked checkpoint database it keeps trying): then that is the news.
        st = read_status_file(layout) or {}
        err = st.get("last_error") if st.get("pid") == proc.pid else None
        why = err.get("message") if isinstance(err, dict) and isinstance(err.get("message"), str) else None
        what = f"not capturing yet: {why}" if why else "it is still catching up"
        return ControlResult(True, 0, f"capture daemon starting (pid {proc.pid}, detached); {what}; see "
                             f"{prog.NAME} daemon status", pid=proc.pid, mode="detached", notes=notes)
    if outcome == "exited":
        # Another start won the race for the lock (`hyp daemon start` twice at once): ours found it held and
        # ended; that one runs, as if it had been running before this start.
        other = read_daemon_status(layout)
        if other.running and other.pid != proc.pid:
            return _already_running(other, notes)
    why = "exited while starting" if outcome in ("exited", "stopped") else "did not start"
    res = _start_failure(layout, why, proc.pid, "detached", mark)
    res.notes = notes
    return res


def _already_running(report: DaemonStatusReport, notes: list[str]) -> ControlResult:
    msg = f"already running (pid {report.pid})" if report.pid else f"already running; {report.warning}"
    return ControlResult(False, 1, msg, pid=report.pid, mode=report.mode, notes=notes, error="already running")


def _service_usable(service: Any) -> bool:
    if service is None:
        return False
    try:
        return bool(service.installed() and service.available())
    except Exception:  # noqa: BLE001 - a broken manager means: do it detached
        return False


def _unit_other_home(service: Any, layout: Layout) -> str | None:
    from hypaware_tui.core.daemon.service import unit_other_home

    return unit_other_home(service, layout.home)


def stop_daemon(layout: Layout, *, service: Any = None, timeout: float = STOP_TIMEOUT_S,
                lock_wait: float = STOP_LOCK_WAIT_S) -> ControlResult:
    """daemon.md §7 `stop`: through the manager for a service daemon, else SIGTERM; wait up to 10 s.

    Stops are serialised on `run/stop.lock`: a second signal during the shutdown makes the daemon exit at once
    (§4.5, for a person who presses Ctrl+C twice), so `hyp daemon stop` run twice at once (teardown scripts)
    cut the clean stop short. A stop that finds another under way waits for it, then says what it saw."""
    first = read_daemon_status(layout)
    if not first.running:
        return ControlResult(True, 0, "not running")
    if first.pid is None:  # (never a guess: the pid file's pid may be any process)
        return ControlResult(False, 1, first.warning or holder_unknown_text(layout), error="pid unknown")
    with _stop_lock(layout, lock_wait) as held:
        if not held:
            return ControlResult(
                False, 1,
                f"still running (pid {first.pid}): another {prog.NAME} daemon stop has been stopping it for "
                f"more than {lock_wait:g} s. Run {prog.NAME} daemon stop again once that one has finished",
                pid=first.pid, mode=first.mode, error="still running",
            )
        report = read_daemon_status(layout)  # (another stop may have ended it meanwhile)
        if not report.running:
            return ControlResult(True, 0, f"capture daemon stopped (pid {first.pid})", pid=first.pid,
                                 mode=first.mode)
        if report.pid is None:
            return ControlResult(False, 1, report.warning or holder_unknown_text(layout), error="pid unknown")
        return _stop_locked(layout, report, service, timeout)


@contextlib.contextmanager
def _stop_lock(layout: Layout, wait: float) -> Iterator[bool]:
    """Hold `run/stop.lock`, waiting up to `wait` s for another stop. Yields False when it stayed held; True
    also when the lock cannot be made here (a read-only run/: the stop goes ahead as before the lock)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(layout.stop_lock), mode=FILE_MODE, preserve_lock_file=True)
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        yield False
        return
    except OSError:
        yield True
        return
    try:
        yield True
    finally:
        lock.release()


def _stop_locked(layout: Layout, report: DaemonStatusReport, service: Any, timeout: float) -> ControlResult:
    pid = report.pid
    used_service = False
    # (a unit that now names another HYP_HOME stops that one's daemon: this one gets the signal)
    if report.mode == "service" and _service_usable(service) and _unit_other_home(service, layout) is None:
        try:
            service.stop()
            used_service = True
        except Exception:  # noqa: BLE001 - fall back to a signal
            used_service = False
    if not used_service and pid:
        try:
            os.kill(pid, signal.SIGTERM)
            # A daemon stopped by a signal (SIGSTOP) handles the SIGTERM only once continued (as systemd does
            # on stop): else it stayed frozen and this waited 10 s for nothing.
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            return ControlResult(False, 1, f"cannot signal pid {pid}: {exc.strerror}", pid=pid, error=str(exc))
    if _wait_for(lambda: not read_daemon_status(layout).running, timeout):
        return ControlResult(True, 0, f"capture daemon stopped (pid {pid})", pid=pid, mode=report.mode)
    # (a second signal while it stops ends it at once, daemon.md §4.5: its batch's checkpoints did not move)
    return ControlResult(
        False, 1,
        f"still running (pid {pid}) after {timeout:g} s; it may be finishing a large batch. Run {prog.NAME} "
        f"daemon stop again to end it at once (or kill {pid}): the lines of the batch it has not written are read "
        f"again next time",
        pid=pid, mode=report.mode, error="still running",
    )


def restart_daemon(layout: Layout, *, env: Mapping[str, str] | None = None, service: Any = None,
                   spawner: Spawner | None = None, timeout: float = START_TIMEOUT_S) -> ControlResult:
    """`stop`, then `start` (through the service manager's restart when it manages the daemon)."""
    stopped = stop_daemon(layout, service=service)
    if not stopped.ok:
        return stopped
    started = start_daemon(layout, env=env, service=service, spawner=spawner, timeout=timeout)
    if stopped.pid is not None:  # (the line `stop` says, before what `start` says: one restart, two processes)
        started.notes.insert(0, stopped.message)
    return started
