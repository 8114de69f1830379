"""Handing memory back to the system after a big pass of the capture daemon (daemon.md: < 150 MiB idle).

The daemon lives for weeks, mostly idle. A pass that reads a lot of history (the catch-up at start after days
off, a client added by a reload) leaves its peak behind: CPython hands objects larger than 512 bytes (the lines
read, a tool result's text, the rows built from them, the memo's sets) to glibc's malloc, whose freed chunks
stay in the process's heap, fragmented between the few blocks still in use, and are not returned to the system
on their own. `malloc_trim(0)` returns every free page of every glibc arena (it is a `madvise`, not a copy:
milliseconds for the daemon's heap). Measured in the daemon after it caught up one 12 MB transcript with large
tool results: 109 -> 88 MiB resident.

Polars' own allocator (jemalloc, linked into its Linux wheel) purges freed pages by itself, from a background
thread, within a second or so (`background_thread:true`, `dirty_decay_ms:500`). What it keeps is per thread: an
arena for each of up to 4 x CPUs threads and a cache in each of Polars' threads (one per CPU). A backfill wants
that; the daemon commits small batches and idles, so `configure_allocator()` gives it one arena and no thread
caches (measured: about 10 MiB less idle after a 100 MB catch-up on 2 CPUs, the catch-up no slower; more is
saved with more CPUs).

Elsewhere (macOS, Windows, musl) there is no `malloc_trim` and `release()` only collects cyclic garbage.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
from collections.abc import Callable

_UNSET: object = object()
_trim: Callable[[int], int] | None | object = _UNSET


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, looked up once; None where the C library has none."""
    global _trim
    if _trim is _UNSET:
        _trim = None
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None).malloc_trim  # the C library already loaded by this process
            except (OSError, AttributeError):  # musl: no such function
                pass
            else:
                fn.argtypes = [ctypes.c_size_t]
                fn.restype = ctypes.c_int
                _trim = fn
    return _trim  # type: ignore[return-value]


def release() -> bool:
    """Free cyclic garbage, then return the C heap's free pages to the system where the C library can
    (glibc). Returns whether pages were handed back (`malloc_trim` returned 1)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    try:
        return bool(trim(0))
    except Exception:  # noqa: BLE001 - memory is an optimisation, never a reason for the daemon to fail
        return False


#: jemalloc's settings for the daemon: read from this variable when Polars loads (its wheel builds jemalloc with
#: the `_rjem_` prefix); `background_thread:true` is the wheel's own (kept: it is what purges freed pages);
#: `dirty_decay_ms:0` as for a compaction (below), which the daemon runs every 64 flushes.
ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"
DAEMON_ALLOCATOR_CONF = "background_thread:true,narenas:1,tcache:false,dirty_decay_ms:0"
#: for `hyp cache compact`: freed pages go back at once (Polars' own setting keeps them 500 ms). A compaction
#: frees each input column while it builds the next and then encodes the file, all within that time; the pages
#: kept were not reused, and the peak was the sum of every step's (benchmarks/bench_compact.py, 64 files of
#: 60,000 rows of 2 KB: 719 -> 411 MiB, with storage.compact_frames). Not for a backfill: about 10 % more CPU.
COMPACT_ALLOCATOR_CONF = "dirty_decay_ms:0"


def configure_allocator(conf: str = DAEMON_ALLOCATOR_CONF) -> bool:
    """Set jemalloc settings (the daemon's by default) for this process, before Polars loads (later they would
    not apply, so nothing is set then). Returns whether they were set.

    They go first: jemalloc applies the pairs in order, so a value already in the variable still wins, whether
    the user's or the one a parent process passed on (Polars writes its own defaults into the variable when it
    loads, and `hyp init`, which starts the daemon after its import, has loaded it)."""
    if "polars" in sys.modules:
        return False
    inherited = os.environ.get(ALLOCATOR_ENV)
    os.environ[ALLOCATOR_ENV] = conf + (f",{inherited}" if inherited else "")
    return True


def child_allocator_env(env: dict[str, str]) -> None:
    """Give a daemon started from this process the allocator settings this process was given, not Polars'
    rewrite of them: Polars, once loaded here (`hyp init` has), wrote its defaults into the variable, and they
    would come after the daemon's own and win over them (its `dirty_decay_ms`)."""
    import hypaware_tui

    given = hypaware_tui._ALLOCATOR_CONF_GIVEN
    if given is None or env.get(ALLOCATOR_ENV) != os.environ.get(ALLOCATOR_ENV):
        return  # (not known; or a variable the caller set for the child itself)
    if given:
        env[ALLOCATOR_ENV] = given
    else:
        env.pop(ALLOCATOR_ENV, None)


__all__ = ["child_allocator_env", "configure_allocator", "release"]

