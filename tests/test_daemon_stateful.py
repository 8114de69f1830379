"""A model-based test of the capture daemon's import (daemon.md §2-4, storage.md §5-§8): the file changes of
`test_import_stateful.ImportMachine` (its rules, its model and its invariants, inherited), with the imports
done by a `DaemonLoop` in polling mode on a fake clock, stepped by the rules, interleaved with the machine's
backfills (`run_backfill`, `workers=1`) and compactions in the same HYP_HOME: the daemon and a backfill share
the dataset and the checkpoints (storage lock, commit-time checks) and must never duplicate nor lose a row.

Rules added: a daemon step after some time (0 s to a day: polls, debounce, flushes by age, the safety rescan,
the daily pass and its compaction); a settle (time enough for every change to be read and flushed); a
restart (shutdown flushes, then a new daemon's catch-up). The daemon captures everything (capture start at
the epoch), flushes by rows (1, 3 or 2000 rows, also inside a file) or by age (1 or 5 s), and compacts a partition it
writes to at `COMPACT_AT_FILES` = 3 files.

Invariants:

- After every daemon step (or start, or shutdown) that committed: within a partition no `part_id` twice, the
  deduplicated relation has each once; every stored row is one a fresh import gave of some state of the
  files the daemon read (the machine runs a fresh import after any step that read files changed since the
  last one); no `part_id` ever stored disappears; the daemon reports no error.
- Once the daemon has caught up (after a settle, a restart's catch-up, and at the end after its shutdown),
  and after every backfill: all of the inherited invariants against a fresh import of the current files
  (every fresh row stored, equal while the model saw one value; B equals F exactly while the history is
  append-only), except the sum of the skip counts (a line is read by the daemon, and again by a backfill
  that reads a file from an earlier bound).

`HYP_STATEFUL_EXAMPLES`, `HYP_STATEFUL_STEPS`, `HYP_STATEFUL_SHRINK`, `HYP_STATEFUL_LOG` as for the import
machine (this one's CI default: fewer examples).
"""

from __future__ import annotations

import os
import sys

import test_import_stateful as base
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule

from hypaware_tui.core.config import build_config_data, render_config
from hypaware_tui.core.daemon import loop as loop_mod
from hypaware_tui.core.daemon.capture import record_capture_start
from hypaware_tui.core.daemon.loop import DaemonLoop, FakeClock
from hypaware_tui.core.daemon.watch import PollingWatcher

EXAMPLES = int(os.environ.get("HYP_STATEFUL_EXAMPLES", "40"))
STEPS = int(os.environ.get("HYP_STATEFUL_STEPS", "30"))
POLL_S = 2.0
COMPACT_AT = 3
SETTLE_STEPS = 8


class WatchedLoop(DaemonLoop):
    """The daemon, telling the machine whether a step read a file, committed a batch, compacted."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.did_read = False
        self.did_commit = False
        self.did_compact = False

    def _read_file(self, c, f, stored) -> None:  # noqa: ANN001
        self.did_read = True
        super()._read_file(c, f, stored)

    def flush(self) -> bool:
        if any(not b.empty for b in self.batches.values()):
            self.did_commit = True
        return super().flush()

    def _compact(self, only) -> None:  # noqa: ANN001
        self.did_compact = True
        super()._compact(only)

    @property
    def idle(self) -> bool:
        """Nothing waits to be read nor to be committed."""
        return not any(self.pending.values()) and not any(not b.empty for b in self.batches.values())


class DaemonMachine(base.ImportMachine):
    SKIP_TOTALS = False

    def __init__(self) -> None:
        super().__init__()
        self.loop: WatchedLoop | None = None
        self.clock = FakeClock(self.mtime_ns / 1e9)
        self.recorded: frozenset | None = None  # the files when a fresh import last recorded their rows' values
        self.compact_at = loop_mod.COMPACT_AT_FILES
        loop_mod.COMPACT_AT_FILES = COMPACT_AT

    def teardown(self) -> None:
        try:
            if self.loop is not None and sys.exc_info()[0] is None:  # (not over a failure already raised)
                self.settle()
                self._stop_daemon()
                self.check_dataset()
        finally:
            if self.loop is not None:
                self.loop.close()
                self.loop = None
            loop_mod.COMPACT_AT_FILES = self.compact_at
            super().teardown()

    # -- the model's clock is the daemon's ----------------------------------------------------------------
    def _files(self) -> frozenset:
        """What the files are now (a fresh import of the same gives the same rows)."""
        out = set()
        for top in (self.claude_root, self.codex_root):
            for d, _dirs, names in os.walk(top):
                for n in names:
                    st_ = os.stat(os.path.join(d, n))
                    out.add((d, n, st_.st_size, st_.st_mtime_ns, st_.st_ino))
        return frozenset(out)

    def _advance(self, seconds: float) -> None:
        """`seconds` pass; the wall clock is never behind the files' mtimes (one second per change)."""
        lag = self.mtime_ns / 1e9 - self.clock.t
        self.clock.advance(max(0.0, lag) + seconds)

    # -- the daemon --------------------------------------------------------------------------------------
    @initialize(flush_rows=st.sampled_from([2000, 2000, 3, 1]), flush_seconds=st.sampled_from([1, 1, 5]))
    def start_daemon(self, flush_rows, flush_seconds):
        """The config (both clients, retention 0) and a capture start at the epoch: the daemon captures all."""
        data = build_config_data(None, clients={"claude": True, "codex": True}, retention_days=0,
                                 capture_enabled=True)  # fmt: skip
        data["capture"].update(poll_seconds=POLL_S, flush_seconds=flush_seconds, flush_rows=flush_rows,
                               rescan_seconds=120)  # fmt: skip
        self.layout.home.mkdir(parents=True, exist_ok=True)
        self.layout.config.write_text(render_config(data))
        record_capture_start(self.layout, ["claude", "codex"], 0)
        self._start_daemon()

    def _start_daemon(self) -> None:
        self._advance(0)
        self.loop = WatchedLoop(self.layout, env=self.env, clock=self.clock, watcher_factory=PollingWatcher)
        assert self.loop.start() is None
        self._after_daemon()

    def _stop_daemon(self) -> None:
        assert self.loop is not None
        self.loop.shutdown()
        self._after_daemon()
        self.loop.close()
        self.loop = None

    def _step(self, seconds: float) -> None:
        assert self.loop is not None
        self._advance(seconds)
        self.loop.step()
        self._after_daemon()

    def _after_daemon(self) -> None:
        loop = self.loop
        assert loop is not None
        assert loop.last_error is None, loop.last_error
        assert loop.state in ("running", "stopped"), (loop.state, loop.degraded)
        if loop.did_read and self._files() != self.recorded:
            # the values of the rows the daemon may commit now or later: a fresh import of what it read
            self.recorded = self._files()
            self.rules["~versions"] += 1
            rows, _skips, _offsets = self._fresh()
            for row in rows:
                self.versions.setdefault(row[base.PID], set()).add(row)
        if loop.did_commit:
            self.rules["~commit_checks"] += 1
            self.check_any_time()
        if loop.did_compact:
            self.rules["~daemon_compactions"] += 1
        loop.did_read = loop.did_commit = loop.did_compact = False

    @rule(seconds=st.sampled_from([0, 0.3, 1, 1, 2, 2, 3]))
    @base.counted
    def daemon_step(self, seconds):
        """A moment passes, and the daemon does what is due (a poll, a read after the debounce, a flush)."""
        self._step(seconds)
        self.last_was_backfill = False

    @rule(seconds=st.sampled_from([6, 30, 130]))
    @base.counted
    def daemon_wait(self, seconds):
        """Longer: flushes by age, a whole document found stable, the safety rescan (every 120 s here)."""
        self._step(seconds)
        self.last_was_backfill = False

    @rule(seconds=st.sampled_from([1000, 86_400]))
    @base.counted
    def daemon_idle(self, seconds):
        """Much longer: the daily pass (its compaction 15 minutes after the start, its retention pass)."""
        self._step(seconds)
        self.last_was_backfill = False

    @rule()
    @base.counted
    def settle(self) -> None:
        """Time enough for every change to be seen, read (a whole document once it is stable) and flushed:
        the daemon has caught up, and the dataset is what a fresh import of the files gives."""
        for _ in range(SETTLE_STEPS):
            self._step(POLL_S + 5)
            if self.loop.idle:
                break
        assert self.loop.idle, ("the daemon did not catch up", self.loop.pending, self.loop.batches)
        self.rules["~caught_up_checks"] += 1
        self.last_was_backfill = False
        self.check_dataset()

    @rule(step_first=st.booleans())
    @base.counted
    def restart(self, step_first) -> None:
        """The daemon stops (its shutdown flushes what it read) and a new one starts (its catch-up reads every
        file from its checkpoint)."""
        if step_first:
            self._step(0)
        self._stop_daemon()
        self._start_daemon()
        self.last_was_backfill = False
        if self.loop.idle:
            self.check_dataset()

    # -- the checks ---------------------------------------------------------------------------------------
    def check_any_time(self) -> None:
        """What holds after any commit, caught up or not."""
        parts = base.raw_partitions(self.layout)
        for part, rows in parts.items():
            ids = base.Counter(r[base.PID] for r in rows)
            dup = [k for k, n in ids.items() if n > 1]
            assert not dup, f"{part}: part_id stored twice: {dup[:3]}"
        view = base.deduped(self.layout)
        by_id = {r[base.PID]: r for r in view}
        assert len(by_id) == len(view), "the deduplicated relation repeats a part_id"
        for row in view:
            assert row in self.versions.get(row[base.PID], ()), f"row no fresh import gave: {row[base.PID]}"
        assert self.written <= set(by_id), f"rows lost: {sorted(self.written - set(by_id))[:3]}"
        self.written |= set(by_id)

    def check_dataset(self) -> None:
        self.recorded = self._files()  # (its fresh import records the values)
        super().check_dataset()


DaemonMachine.TestCase.settings = base.machine_settings(EXAMPLES, STEPS)
TestDaemonStateful = DaemonMachine.TestCase
