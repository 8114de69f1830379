"""Watchers for the capture daemon (daemon.md §4.2).

* `EventWatcher`: `watchfiles.watch` in a thread with a stop event; changed paths (already filtered to the
  importers' file patterns) are handed to the loop through `notify(paths)`.
* `PollingWatcher`: no thread; the loop stats files and directories itself every `poll_seconds`.

`make_watcher()` picks events unless `watchfiles` cannot be imported (or `HYP_NO_WATCHFILES=1`).
A watcher whose thread fails sets `error`; the loop then falls back to polling.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger("hypaware_tui.daemon")

NO_WATCHFILES_ENV = "HYP_NO_WATCHFILES"
# How often the watch thread wakes (watchfiles sleeps this long between looks at its stop event and at the
# changes it gathered, taking the GIL each time): 100 ms woke an idle daemon 10 times a second, all day, which a
# laptop pays in battery. At 500 ms it wakes twice a second; a change is handed over once one step passes
# without another (the debounce: 0.5-1 s, under the 5 s a row may wait in the batch anyway), and a stop
# waits 0.25 s on average for the thread.
STEP_MS = 500
DEBOUNCE_MS = 500


# A quoted absolute path in an error's text (Python's repr of one, Rust's Debug of one: the watched folders are
# absolute), and what is left of the path lists notify's errors end with (`... about ["/x"]`, `paths: ["/x"]`)
# once their strings are gone.
_QUOTED = re.compile(r"'/(?:[^'\\\n]|\\.)*'|\"/(?:[^\"\\\n]|\\.)*\"")
_PATH_LIST = re.compile(r",?\s*(?:about|paths:) \[[\x00, ]*\]")


def describe_watch_error(exc: BaseException) -> str:
    """Why the file watcher failed, for the log, without a path (storage.md §10: the daemon's log and status
    name no source file; whatever a watcher error names is under the client roots). An undecodable file name
    made watchfiles say `Unable to decode path "/…/projects/-bad\\xFF dir/sess\\xFF.jsonl" to string`: it is
    `a file name could not be decoded`. An OSError keeps its strerror; other texts lose their quoted paths."""
    name = type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return f"{name}: {exc.strerror}"  # (str(exc) adds the file names)
    text = str(exc)
    if "Unable to decode path" in text:
        return f"{name}: a file name could not be decoded (it is not valid UTF-8)"
    text = _PATH_LIST.sub("", _QUOTED.sub("\x00", text)).replace("\x00", "<a path>")
    return f"{name}: {text}" if text else name


class Watcher:
    kind = "polling"

    def __init__(self) -> None:
        self.error: str | None = None

    def start(self, dirs: Sequence[str], accept: Callable[[str], bool], notify: Callable[[list[str]], None]) -> None:
        """Watch `dirs` recursively; call `notify(paths)` (from another thread) with accepted paths."""

    def stop(self) -> None:
        pass

    @property
    def alive(self) -> bool:
        return True


class PollingWatcher(Watcher):
    kind = "polling"


class EventWatcher(Watcher):
    kind = "events"

    def __init__(self, watch_fn: Callable[..., object]) -> None:
        super().__init__()
        self._watch = watch_fn
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, dirs: Sequence[str], accept: Callable[[str], bool], notify: Callable[[list[str]], None]) -> None:
        self.stop()
        self._stop = threading.Event()
        dirs = list(dirs)
        if not dirs:
            return
        stop = self._stop

        def run() -> None:
            try:
                for changes in self._watch(
                    *dirs,
                    watch_filter=lambda _change, path: accept(path),
                    debounce=DEBOUNCE_MS,
                    step=STEP_MS,
                    stop_event=stop,
                    rust_timeout=60_000,
                    yield_on_timeout=False,
                    raise_interrupt=False,
                    recursive=True,
                    ignore_permission_denied=True,
                ):
                    if stop.is_set():
                        return
                    paths = sorted({p for _c, p in changes})  # type: ignore[misc]
                    if paths:
                        notify(paths)
            except Exception as exc:  # noqa: BLE001 - e.g. inotify limits; the loop falls back to polling
                if not stop.is_set():
                    self.error = describe_watch_error(exc)
                    notify([])

        self._thread = threading.Thread(target=run, name="hyp-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


# --- Linux: is the inotify watch set complete? -----------------------------------------------------------------
# watchfiles (notify) adds one inotify watch per folder. When `inotify_add_watch` fails partway through a recursive
# watch (ENOSPC: fs.inotify.max_user_watches is used up; EACCES: a folder it cannot read), notify stops adding
# watches and watchfiles, told to ignore permission errors, drops the error: the watcher runs, deaf to every
# folder after that point, and nothing raises. So the loop counts (daemon.md §4.2: polling when the watcher fails).

MAX_USER_WATCHES = "/proc/sys/fs/inotify/max_user_watches"
_INOTIFY_LINK = "anon_inode:inotify"


def inotify_max_user_watches() -> int | None:
    """fs.inotify.max_user_watches (a per-user limit, shared by every program of the user); None off Linux or
    when it cannot be read."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open(MAX_USER_WATCHES, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def inotify_fds() -> set[int] | None:
    """This process's open inotify descriptors; None off Linux or when /proc cannot be read."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    out: set[int] = set()
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}") == _INOTIFY_LINK:
                out.add(int(name))
        except (OSError, ValueError):
            continue
    return out


def inotify_watches(fds: set[int]) -> int:
    """The watches held by these inotify descriptors (the `inotify wd:` lines of /proc/self/fdinfo)."""
    n = 0
    for fd in fds:
        try:
            with open(f"/proc/self/fdinfo/{fd}", encoding="ascii", errors="replace") as fh:
                n += sum(1 for line in fh if line.startswith("inotify wd:"))
        except OSError:
            continue
    return n


def count_folders(tops: Sequence[str]) -> tuple[int, int]:
    """(folders under `tops` that can be listed, folders that cannot), `tops` included, symlinks not followed:
    the watches a complete recursive watch needs."""
    seen: set[str] = set()
    readable = unreadable = 0
    stack = list(tops)
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        try:
            with os.scandir(d) as it:
                subs = [e.path for e in it if _is_dir(e)]
        except OSError:
            unreadable += 1
            continue
        readable += 1
        stack.extend(subs)
    return readable, unreadable


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def watch_limit_text(limit: int, folders: int) -> str:
    return (f"the inotify watch limit (fs.inotify.max_user_watches = {limit}) is below the {folders:,} folders to "
            "watch; raise it with sysctl to watch for events")


def incomplete_watch_text(watched: int, folders: int, unreadable: int, limit: int | None) -> str:
    got = f"file events cover only {watched:,} of the {folders:,} folders to watch"
    if unreadable:
        return (f"{got}: watching stops at a folder it cannot read ({unreadable:,} cannot be read); make them "
                "readable to watch for events")
    shared = f"fs.inotify.max_user_watches = {limit}" if limit is not None else "fs.inotify.max_user_watches"
    return f"{got}: the inotify watches ran out ({shared}, shared by every program of this user); raise it with " \
           "sysctl to watch for events"


def watchfiles_available(env: Mapping[str, str] | None = None) -> Callable[..., object] | None:
    env = os.environ if env is None else env
    if env.get(NO_WATCHFILES_ENV) == "1":
        return None
    try:
        from watchfiles import watch
    except Exception:  # noqa: BLE001 - missing or broken binary wheel
        return None
    return watch


def make_watcher(env: Mapping[str, str] | None = None) -> Watcher:
    fn = watchfiles_available(env)
    return EventWatcher(fn) if fn is not None else PollingWatcher()
