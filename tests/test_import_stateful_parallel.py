"""The model-based import test (tests/test_import_stateful.py: its rules and invariants) over the parallel
import: every backfill of the dataset under test runs with two spawned parse workers (`run_backfill(workers=2)`),
while the fresh import it is checked against stays in one process (`workers=1`), the reference.

Small test imports take the parallel path because the test lowers, inside each backfill only, the module
constants that keep small imports in one process (`PARALLEL_MIN_TOTAL` = 0: any two small changed files of a
client go to the workers), and draws per backfill: the group size (`batch_bytes` of 1 byte, about 1-3 files,
or everything in one group; it also bounds the batches, so units and commits come inside a file), the size
from which a file is streamed by the committing process meanwhile (`PARALLEL_MAX_FILE`: the default, or 2.5 kB,
so that the two paths mix), and the byte budget of groups handed out ahead (`PARALLEL_INFLIGHT_BYTES`: 1 byte,
one group at a time, or the default, several groups, and the next provider's first ones, `_Lookahead`).

One more rule changes a file *during* a parallel backfill, at a point the runner passes through in every run:
right after a provider's discovery and checkpoint comparison (`_prepare_provider`, which for Codex runs ahead,
while Claude's last groups are parsed), or right before the commit of the n-th unit a worker prepared
(`_Committer.commit_unit`: the §6.3 commit-time re-check of a file changed after its group was parsed). Before
the change the test waits for every group handed out to be parsed, so that no worker reads a file while it is
being written: which bytes each group saw is decided by the rule, not by the scheduler (a read torn by a
rewrite in place is a real event, but not one whose rows any model can predict). At those points no file is
half read by the committing process either (a large file is streamed whole between two groups). The rows the
run may have read before the change are those of a fresh import taken just before the run: they join the
values seen (invariants 2 and 3). The run is then followed by a plain parallel backfill, after which the
invariants must hold (a change during a run is the next run's to import: nothing lost, nothing twice).

CI runs 40 examples of 25 steps (about 20 s: each backfill starts two worker processes); `HYP_STATEFUL_PAR_EXAMPLES`
and `HYP_STATEFUL_PAR_STEPS` search longer; `HYP_STATEFUL_SHRINK` and `HYP_STATEFUL_LOG` as in the base test.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import wait
from unittest import mock

from hypothesis import strategies as st
from hypothesis.stateful import initialize, multiple, precondition, rule
from test_import_stateful import PID, ImportMachine, counted, events, machine_settings

from hypaware_tui.core import runner as runner_mod

EXAMPLES = int(os.environ.get("HYP_STATEFUL_PAR_EXAMPLES", "40"))
STEPS = int(os.environ.get("HYP_STATEFUL_PAR_STEPS", "25"))
WORKERS = 2

# per backfill: (group bytes, PARALLEL_MAX_FILE, PARALLEL_INFLIGHT_BYTES)
parallel = st.tuples(
    st.sampled_from([1, 1500, 6000, runner_mod.BATCH_BYTES]),
    st.sampled_from([runner_mod.PARALLEL_MAX_FILE, 2500]),
    st.sampled_from([1, runner_mod.PARALLEL_INFLIGHT_BYTES]),
)

# what may happen to a file during a run (the base machine's rules, called with the drawn arguments)
CHANGES = ["append", "half", "finish", "malformed", "rewrite", "replace", "truncate", "delete", "archive", "new"]


@contextlib.contextmanager
def parallel_path(max_file: int, inflight: int):
    """Small imports go to the parse workers (any two small files of a client), for this run only."""
    with mock.patch.multiple(runner_mod, PARALLEL_MIN_TOTAL=0, PARALLEL_MAX_FILE=max_file,
                             PARALLEL_INFLIGHT_BYTES=inflight):  # fmt: skip
        yield


class ParallelImportMachine(ImportMachine):
    def __init__(self) -> None:
        super().__init__()
        self.par = (runner_mod.BATCH_BYTES, runner_mod.PARALLEL_MAX_FILE, runner_mod.PARALLEL_INFLIGHT_BYTES)

    def _backfill(self, layout, batch_rows: int = 50_000, **options):
        if layout is not self.layout:  # (the fresh import: the reference, in one process)
            return super()._backfill(layout, batch_rows, **options)
        group_bytes, max_file, inflight = self.par
        real_commit_unit = runner_mod._Committer.commit_unit

        def commit_unit(committer, unit):  # (tallied: the search's log shows the parallel path ran)
            self.rules["_units"] += 1
            return real_commit_unit(committer, unit)

        with parallel_path(max_file, inflight), mock.patch.object(runner_mod._Committer, "commit_unit", commit_unit):
            return super()._backfill(layout, batch_rows, workers=WORKERS, batch_bytes=group_bytes, **options)

    # -- rules ---------------------------------------------------------------------------------------
    @initialize(target=ImportMachine.files, claude=st.integers(0, 2), codex=st.integers(0, 2), picks=events)
    def more_sessions(self, claude, codex, picks):
        """More sessions at the start (the parallel path needs two changed files of a client)."""
        return multiple(*(self._new_session(c, picks, False, "after", False)
                          for c, n in (("claude", claude), ("codex", codex)) for _ in range(n)))  # fmt: skip

    @precondition(lambda self: self.live)
    @rule(picks=events)
    @counted
    def append_everywhere(self, picks):
        """Every session grows (a busy machine): the next backfill has two changed files of each client."""
        for src in list(self.live):
            self.append_lines(src, picks, True)

    @rule(twice=st.booleans(), batch_rows=st.sampled_from([50_000, 50_000, 1, 3]), par=parallel)
    def backfill(self, twice, batch_rows, par):
        self.par = par
        ImportMachine.backfill(self, twice, batch_rows)

    @precondition(lambda self: self.live)
    @rule(src=ImportMachine.files, change=st.sampled_from(CHANGES), at=st.integers(0, 5), picks=events,
          mode=st.sampled_from(["new", "edit", "retext"]), frac=st.floats(0.0, 1.0), par=parallel,
          batch_rows=st.sampled_from([50_000, 1, 3]))  # fmt: skip
    @counted
    def backfill_while_changing(self, src, change, at, picks, mode, frac, par, batch_rows):
        """A parallel backfill during which `src` changes, at the `at`-th point the run passes (a provider
        prepared, or a worker's unit about to be committed; after the run when it passes fewer), then a plain
        parallel backfill: the checks follow that one."""
        self.par = par
        for row in self._fresh()[0]:  # (what the run may read before the change)
            self.versions.setdefault(row[PID], set()).add(row)
        done = []

        def apply() -> None:
            done.append(change)
            {
                "append": lambda: self.append_lines(src, picks, True),
                "half": lambda: self.append_half_line(src, picks[0], min(max(frac, 0.05), 0.95)),
                "finish": lambda: self.finish_half_line(src),
                "malformed": lambda: self.append_malformed(src, picks[0] % 3, picks),
                "rewrite": lambda: self.rewrite_in_place(src, mode),
                "replace": lambda: self.replace_file(src, mode),
                "truncate": lambda: self.truncate(src, frac),
                "delete": lambda: self.delete(src),
                "archive": lambda: self.archive(src, ["move", "copy", "zst", "zst_copy"][picks[0] % 4]),
                "new": lambda: self._new_session(src.client, picks, False, "after", False),
            }[change]()

        with during_run(at, apply):
            first = self._backfill(self.layout, batch_rows)
        self.backfills += 1
        if not done:
            apply()
        for p in first.providers:
            self.skips.update(p.lines_skipped)
        then = self._backfill(self.layout)
        self.backfills += 1
        for p in then.providers:
            self.skips.update(p.lines_skipped)
        self.last_was_backfill = True
        self.check_dataset()


@contextlib.contextmanager
def during_run(at: int, apply):
    """Call `apply` at the `at`-th point the run passes where no file is being read: after a provider's
    `_prepare_provider`, or before a worker unit's commit; first waiting for every group handed out."""
    passed = [0]
    feeds: list = []
    real_fill, real_commit_unit, real_prepare = (runner_mod._Feed.fill, runner_mod._Committer.commit_unit,
                                                 runner_mod._prepare_provider)  # fmt: skip

    def point() -> None:
        if passed[0] == at:
            wait([fut for feed in feeds for _, fut, _ in feed.pending])  # (no worker reads while it changes)
            apply()
        passed[0] += 1

    def fill(feed, *, own):
        if feed not in feeds:
            feeds.append(feed)
        return real_fill(feed, own=own)

    def commit_unit(committer, unit):
        point()
        return real_commit_unit(committer, unit)

    def prepare(*args, **kwargs):
        prep = real_prepare(*args, **kwargs)
        point()
        return prep

    with mock.patch.object(runner_mod._Feed, "fill", fill), \
            mock.patch.object(runner_mod._Committer, "commit_unit", commit_unit), \
            mock.patch.object(runner_mod, "_prepare_provider", prepare):  # fmt: skip
        yield


ParallelImportMachine.TestCase.settings = machine_settings(EXAMPLES, STEPS)
TestImportStatefulParallel = ParallelImportMachine.TestCase


def test_the_machines_backfills_take_the_parallel_path():
    """The machine's backfills do go to the parse workers (a unit a worker prepared is committed), and so
    does the one a change interrupts; then the checks pass."""
    m = ParallelImportMachine()
    try:
        m.two_sessions(claude=[0, 2, 3], codex=[0, 1, 3], order="after")
        m.more_sessions(claude=1, codex=1, picks=[0, 2, 3])
        m.backfill(twice=True, batch_rows=3, par=(1500, 2500, 1))
        m.append_everywhere(picks=[1, 4])
        m.backfill_while_changing(src=m.live[0], change="rewrite", at=2, picks=[1], mode="retext", frac=0.5,
                                  par=(1, runner_mod.PARALLEL_MAX_FILE, runner_mod.PARALLEL_INFLIGHT_BYTES),
                                  batch_rows=50_000)  # fmt: skip
        assert m.rules["_units"] >= 4, dict(m.rules)
        assert m.rules["rewrite_in_place"] == 1, dict(m.rules)
    finally:
        m.teardown()
