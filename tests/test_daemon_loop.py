"""The capture loop in-process, with the real Claude (and Codex) importers on real files and a fake clock
(daemon.md §2-4; acceptance 1-5, 8-11)."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import RESUMED_COPY, RESUMED_ORIGINAL, write_resumed_pair
from test_daemon_support import (
    Home,
    claude_line,
    dataset,
    part_ids,
    rows_by_part,
    session_text,
    wait_for,
)

from hypaware_tui.core.checkpoints import StateDB, path_hash
from hypaware_tui.core.daemon import control
from hypaware_tui.core.daemon import watch as watch_mod
from hypaware_tui.core.daemon.capture import read_capture, record_capture_start
from hypaware_tui.core.daemon.loop import DaemonLoop, FakeClock
from hypaware_tui.core.daemon.watch import PollingWatcher
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.runner import run_backfill
from hypaware_tui.core.storage import Storage, StorageError, _os_error_message
from hypaware_tui.core.timeutil import datetime_to_us
from hypaware_tui.importers.base import Window
from hypaware_tui.importers.claude import ClaudeImporter

FIXTURES = Path(__file__).parent / "fixtures"
S1 = "11111111-1111-4111-8111-111111111111"
S2 = "22222222-2222-4222-8222-222222222222"
T = datetime(2026, 8, 30, 12, 0, 0, tzinfo=UTC)
T_US = datetime_to_us(T)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path, capture={"poll_seconds": 2, "flush_seconds": 1, "flush_rows": 2000})


def once(home: Home, **kw: object) -> int:
    return DaemonLoop(home.layout, env=home.env, **kw).run(once=True)


def backfill_all(home: Home, tmp: Path, since_us: int | None = None) -> dict[str, dict]:
    """A single backfill of the current files over [since, ∞) into an empty HYP_HOME."""
    layout = Layout(tmp / f"fresh-{random.randrange(1 << 30)}")
    res = run_backfill(layout, ["claude", "codex"], window=Window(since_us=since_us), write_checkpoints=True,
                       dry_run=False, env=home.env, retention_days=0)
    assert all(p.status in ("ok", "skipped") for p in res.providers), res.providers
    return rows_by_part(layout)


def assert_same_as_backfill(home: Home, tmp: Path, since_us: int | None = None) -> None:
    ids = part_ids(home.layout)
    assert all(n == 1 for n in ids.values()), [k for k, n in ids.items() if n > 1]
    expected = backfill_all(home, tmp, since_us)
    got = rows_by_part(home.layout)
    assert set(got) == set(expected)
    diffs = {k: {c: (got[k][c], expected[k][c]) for c in got[k] if got[k][c] != expected[k][c]}
             for k in got if got[k] != expected[k]}
    assert diffs == {}  # all 64 columns


def polling_loop(home: Home, clock: FakeClock, **kw: object) -> DaemonLoop:
    loop = DaemonLoop(home.layout, env=home.env, clock=clock, watcher_factory=PollingWatcher, **kw)
    assert loop.start() is None
    return loop


def reload_config(loop: DaemonLoop, home: Home, clock: FakeClock | None, **config: object) -> None:
    """`config` written, then the reload a SIGHUP asks for (its handler sets the flag) at the next step, a
    second later on `clock` when given."""
    home.write_config(**config)
    loop._reload_requested = True
    if clock is not None:
        clock.advance(1)
    loop.step()


# --- acceptance 1: no gap, no overlap ---------------------------------------------------------------------------


def test_no_gap_no_overlap_after_wizard_import(home: Home, tmp_path: Path) -> None:
    f1 = home.session(S1)
    f1.write_text(session_text(S1, 10, T - timedelta(hours=2)))
    # the wizard's Import step: capture start = until = T, then a backfill up to T
    record_capture_start(home.layout, ["claude"], T_US)
    res = run_backfill(home.layout, ["claude"], window=Window(until_us=T_US), write_checkpoints=True,
                       dry_run=False, env=home.env, retention_days=0, now=T_US)
    assert res.providers[0].rows_written > 0
    imported = part_ids(home.layout)
    with f1.open("a") as fh:
        fh.write(claude_line(S1, 10, T + timedelta(seconds=5)))
        fh.write(claude_line(S1, 11, T - timedelta(seconds=30)))  # written late, stamped before T
        fh.write(claude_line(S1, 12, T + timedelta(minutes=3)))
    home.session(S2).write_text(session_text(S2, 4, T + timedelta(minutes=1)))
    assert once(home) == 0
    ids = part_ids(home.layout)
    assert set(imported) < set(ids)
    assert_same_as_backfill(home, tmp_path)
    st = home.status()
    assert st["state"] == "stopped" and st["clients"]["claude"]["rows_written"] == sum(ids.values()) - sum(
        imported.values())


# --- acceptance 2: declined import ---------------------------------------------------------------------------------


def test_declined_import_takes_only_lines_after_capture_start_minus_5_minutes(home: Home) -> None:
    record_capture_start(home.layout, ["claude"], T_US)
    f = home.session(S1)
    stamps = [T - timedelta(minutes=20), T - timedelta(minutes=6), T - timedelta(minutes=4),
              T - timedelta(seconds=10), T + timedelta(minutes=2)]
    f.write_text("".join(claude_line(S1, i * 2, ts, role="user") for i, ts in enumerate(stamps)))
    assert once(home) == 0
    df = dataset(home.layout)
    got = sorted(df["message_created_at"].to_list())
    want = [ts.replace(microsecond=0) for ts in stamps[2:]]
    assert [g.replace(tzinfo=UTC) for g in got] == want


def test_a_damaged_capture_file_is_set_aside_and_capture_starts_from_the_setup(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    """capture.json cut short or garbled: it read as "no entries", and the daemon silently wrote its own start
    time over it, so every line written between the setup and that start in a file the setup had not imported
    was never captured. The file is kept aside, the log and the status say so, and capture starts from the
    earliest time the setup left behind (here the config's, written at setup), not from now."""
    record_capture_start(home.layout, ["claude"], T_US)  # the wizard, import declined
    setup = T_US / 1e6
    os.utime(home.layout.config, (setup, setup))
    home.session(S1).write_text("".join(claude_line(S1, i * 2, T - timedelta(hours=2, minutes=-i), role="user")
                                        for i in range(3)))  # history the user declined
    later = [T + timedelta(hours=1, minutes=i) for i in range(3)]  # written between setup and the damage
    home.session(S2).write_text("".join(claude_line(S2, i * 2, ts, role="user") for i, ts in enumerate(later)))
    home.layout.capture_json.write_text("garbage{")
    damaged_at = setup + 3 * 3600
    os.utime(home.layout.capture_json, (damaged_at, damaged_at))
    caplog.set_level(logging.WARNING, logger="hypaware_tui.daemon")

    assert DaemonLoop(home.layout, env=home.env, clock=FakeClock(damaged_at + 60)).run(once=True) == 0

    got = sorted(ts.replace(tzinfo=UTC) for ts in dataset(home.layout)["message_created_at"].to_list())
    assert got == later
    assert json.loads(home.layout.capture_json.read_text()) == {
        "claude": {"capture_since": "2026-08-30T12:00:00Z", "set_by": "daemon"}}
    kept = home.layout.state_dir / "capture.json.bad-20260830T150100Z"
    assert kept.read_text() == "garbage{"
    said = (f"the capture start file {home.layout.capture_json} is damaged (not valid JSON); kept as {kept}. "
            "Capture starts again from 2026-08-30T12:00:00Z, the earliest time this HYP_HOME records of its "
            "setup, so nothing written since is missed")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [said]
    assert home.status()["last_error"]["message"] == said


def _old_and_new_session(home: Home) -> Path:
    """A session from two hours before the capture start T through two minutes after it."""
    f = home.session(S1)
    f.write_text(session_text(S1, 12, T - timedelta(hours=2), step_s=660))
    return f


def _backfill_claude(home: Home, window: Window | None = None) -> object:
    """`hyp backfill claude` with no floor (retention 0) in this home: its provider result."""
    return run_backfill(home.layout, ["claude"], window=window or Window(), write_checkpoints=True, dry_run=False,
                        env=home.env, retention_days=0).providers[0]


def _bounds(home: Home) -> list[int | None]:
    with StateDB.open(home.layout, create=False) as db:
        return [cp.since_us for cp in db.get_all().values()]


def test_a_backfill_after_the_daemon_imports_the_history_it_skipped(home: Home, tmp_path: Path) -> None:
    """The import declined (or stopped before reaching a file): the daemon's first pass over the file begins
    at the capture start and checkpoints the whole file. A later `hyp backfill` must still import the older
    lines (it read the file as unchanged and imported nothing), and then be a rerun like any other."""
    record_capture_start(home.layout, ["claude"], T_US)
    f = _old_and_new_session(home)
    assert once(home) == 0
    daemon_rows = dataset(home.layout).height
    assert 0 < daemon_rows < 12 and _bounds(home) == [T_US - 5 * 60 * 1_000_000]
    with f.open("a") as fh:
        fh.write(claude_line(S1, 12, T + timedelta(hours=1), role="user"))
    assert once(home) == 0  # the daemon keeps its own bound: the declined history stays out
    daemon_rows += 1
    assert dataset(home.layout).height == daemon_rows
    pr = _backfill_claude(home)
    assert pr.status == "ok" and pr.rows_written > 0 and pr.duplicates_skipped == daemon_rows
    assert pr.files_unchanged == 0 and pr.files_reset == 0
    assert_same_as_backfill(home, tmp_path)
    assert _bounds(home) == [None]  # the backfill's entry (no lower bound) replaced the daemon's
    again = _backfill_claude(home)
    assert (again.rows_written, again.files_unchanged, again.bytes_read) == (0, 1, 0)
    with f.open("a") as fh:  # and capture goes on from the backfill's checkpoint
        fh.write(claude_line(S1, 13, T + timedelta(hours=3)))
    assert once(home) == 0
    assert_same_as_backfill(home, tmp_path)
    assert _bounds(home) == [None]


def test_a_backfill_since_a_time_before_the_capture_start_takes_the_gap_and_writes_no_checkpoint(
    home: Home,
) -> None:
    record_capture_start(home.layout, ["claude"], T_US)
    _old_and_new_session(home)
    assert once(home) == 0
    before = dataset(home.layout).height
    with StateDB.open(home.layout, create=False) as db:
        cps = db.get_all()
    since = T_US - 30 * 60 * 1_000_000
    pr = run_backfill(home.layout, ["claude"], window=Window(since_us=since), write_checkpoints=False,
                      dry_run=False, env=home.env, retention_days=0).providers[0]
    df = dataset(home.layout)
    assert pr.rows_written > 0 and df.height == before + pr.rows_written
    stamps = [datetime_to_us(d.replace(tzinfo=UTC)) for d in df["message_created_at"].to_list()]
    assert min(stamps) >= since and sum(1 for s in stamps if s < T_US - 5 * 60 * 1_000_000) == pr.rows_written
    with StateDB.open(home.layout, create=False) as db:
        assert db.get_all() == cps


def test_a_backfill_that_stops_before_the_daemons_offset_still_hands_its_bound_on(home: Home, tmp_path: Path) -> None:
    """A backfill with an `until` that reads a daemon-owned file again from the start rests before a line
    stamped after `until`, short of the daemon's offset. Its entry (the earlier bound) replaces the daemon's
    even so: kept, the daemon's later bound made every backfill read the whole file again."""
    record_capture_start(home.layout, ["claude"], T_US)
    f = _old_and_new_session(home)
    with f.open("a") as fh:
        fh.write(claude_line(S1, 12, T + timedelta(hours=2), role="user"))
        fh.write(claude_line(S1, 13, T + timedelta(hours=3)))
    assert once(home) == 0
    size = f.stat().st_size

    def backfill() -> object:
        return _backfill_claude(home, Window(until_us=T_US + 60_000_000))

    first = backfill()
    assert first.rows_written > 0 and first.bytes_read == size and _bounds(home) == [None]
    second = backfill()
    assert second.rows_written == 0 and second.bytes_read < size // 2  # resumed where the first one rested
    assert once(home) == 0  # the daemon goes on from there (dedupe absorbs the lines it had)
    assert_same_as_backfill(home, tmp_path)
    assert _bounds(home) == [None]


@pytest.mark.parametrize("how", ["replaced", "retention raised"])
def test_the_daemon_keeps_its_capture_start_when_a_checkpoint_resets(home: Home, how: str) -> None:
    """A file replaced by a copy (a new inode), or every checkpoint reset because retention was raised: the
    daemon's pass from the start still begins at the capture start. It read the whole file from the floor and
    imported the history the user had declined (daemon.md §3.2)."""
    home.write_config(retention_days=30)
    record_capture_start(home.layout, ["claude"], T_US)
    f = _old_and_new_session(home)
    now = T_US + 60 * 1_000_000
    assert DaemonLoop(home.layout, env=home.env, clock=FakeClock(now / 1e6)).run(once=True) == 0
    before = dataset(home.layout).height
    if how == "replaced":
        copy = f.with_suffix(".tmp")
        shutil.copyfile(f, copy)
        os.replace(copy, f)
    else:
        home.write_config(retention_days=60)
    with f.open("a") as fh:
        fh.write(claude_line(S1, 12, T + timedelta(minutes=30), role="user"))
    assert DaemonLoop(home.layout, env=home.env, clock=FakeClock(now / 1e6 + 3600)).run(once=True) == 0
    stamps = sorted(dataset(home.layout)["message_created_at"].to_list())
    assert len(stamps) == before + 1 and stamps[0].replace(tzinfo=UTC) >= T - timedelta(minutes=5)


def test_after_retention_is_raised_the_daemon_imports_the_older_rows_a_backfill_had_left_out(home: Home) -> None:
    """A file imported by the wizard (its checkpoint's bound is that run's import floor), then retention raised:
    every checkpoint resets (storage.md §7.3) and the daemon's pass from the start takes the rows the new floor
    allows. Keeping any later bound across a reset pinned it at the old floor: the rows came only with the next
    `hyp backfill`. Only the daemon's own capture start is kept (the test above)."""
    from hypaware_tui.core.window import resolve_window

    home.write_config(retention_days=30)
    record_capture_start(home.layout, ["claude"], T_US)
    f = home.session(S1)
    f.write_text(session_text(S1, 4, T - timedelta(days=45)) + session_text(S1, 4, T - timedelta(days=10), first=4))
    window, _floor, _write = resolve_window(None, T_US, 30, T_US)
    run_backfill(home.layout, ["claude"], window=window, write_checkpoints=True, dry_run=False, env=home.env,
                 retention_days=30, now=T_US)
    assert dataset(home.layout).height == 6  # (4 lines of 10 days ago: 2 user + 2 assistant, one with 2 parts)
    home.write_config(retention_days=60)
    assert DaemonLoop(home.layout, env=home.env, clock=FakeClock(T_US / 1e6 + 60)).run(once=True) == 0
    assert dataset(home.layout).height == 12


def test_capture_after_a_backfill_read_the_file_again_carries_the_backfill_bound(home: Home, tmp_path: Path) -> None:
    """A running daemon holds the checkpoint of a batch it has not committed yet; once a backfill has read the
    file from an earlier bound to the same line, the daemon goes on from the backfill's entry, not from its
    own (which would put the later bound back and make every later backfill read the file again)."""
    record_capture_start(home.layout, ["claude"], T_US)
    f = _old_and_new_session(home)
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        assert _bounds(home) == [T_US - 5 * 60 * 1_000_000]  # the catch-up pass at start
        with f.open("a") as fh:
            fh.write(claude_line(S1, 12, T + timedelta(hours=3)))
        clock.advance(10)
        loop.step()  # read, not yet committed: the daemon holds the checkpoint of its batch
        assert loop.inflight and _bounds(home) == [T_US - 5 * 60 * 1_000_000]
        _backfill_claude(home)
        assert _bounds(home) == [None]
        with f.open("a") as fh:
            fh.write(claude_line(S1, 13, T + timedelta(hours=4)))
        clock.advance(10)
        loop.step()
        clock.advance(10)
        loop.step()
        loop.flush()
    finally:
        loop.shutdown()
        loop.close()
    assert_same_as_backfill(home, tmp_path)
    assert _bounds(home) == [None]


def _lines_around_the_capture_start() -> list[str]:
    """A new session whose first lines predate the capture start T by days (history the user declined), then
    lines inside the 5-minute grace and after T, and one stamped before the bound but written late."""
    stamps = [T - timedelta(days=3), T - timedelta(days=3, seconds=-7), T - timedelta(hours=2),
              T - timedelta(minutes=4), T + timedelta(minutes=1), T - timedelta(hours=1), T + timedelta(minutes=10)]
    return [claude_line(S1, i, ts) for i, ts in enumerate(stamps)]


@pytest.mark.parametrize("cuts", [(), (1,), (2,), (3,), (4,), (5,), (6,), (1, 2), (1, 2, 3, 4, 5, 6), (2, 5)])
def test_a_new_file_s_lines_before_the_capture_start_stay_out_however_many_passes_saw_it_grow(
    home: Home, tmp_path: Path, cuts: tuple[int, ...]
) -> None:
    """The declined history (daemon.md §3.2) stayed out when the daemon saw a new file whole, but a file it saw
    grow line by line had every old line after the first pass imported: a resumed checkpoint was read from the
    import floor, not from the capture start its first pass began at. The rows are the same for every split
    (storage.md §5.5, daemon.md §3.1 rule 6): the lines stamped from T − 5 min on, and only those."""
    record_capture_start(home.layout, ["claude"], T_US)
    lines = _lines_around_the_capture_start()
    f = home.session(S1)
    for end in (*cuts, len(lines)):
        f.write_text("".join(lines[:end]))
        assert once(home) == 0
    got = dataset(home.layout)
    stamps = sorted(d.replace(tzinfo=UTC) for d in got["message_created_at"].to_list())
    assert stamps == [T - timedelta(minutes=4), T - timedelta(minutes=4), T + timedelta(minutes=1),
                      T + timedelta(minutes=10)]  # (the assistant line at T − 4 min gives a text and a tool call)
    assert_same_as_backfill(home, tmp_path, since_us=T_US - 5 * 60 * 1_000_000)  # one pass, all 64 columns


# --- acceptance 3: split equivalence through the daemon -------------------------------------------------------------


def _fixture_files() -> list[tuple[str, Path]]:
    out = []
    for p in sorted((FIXTURES / "claude" / "home" / ".claude" / "projects").rglob("*")):
        if p.is_file():
            out.append(("claude", p))
    for p in sorted((FIXTURES / "codex").glob("rollout-*.jsonl")):
        out.append(("codex", p))
    return out


def test_daemon_passes_split_at_random_lines_equal_one_backfill(home: Home, tmp_path: Path) -> None:
    home.write_config(clients={"claude": True, "codex": True})
    record_capture_start(home.layout, ["claude", "codex"], 0)  # everything is after capture start
    rng = random.Random(6)
    plans: list[tuple[Path, bytes, list[int]]] = []
    for client, src in _fixture_files():
        if client == "claude":
            rel = src.relative_to(FIXTURES / "claude" / "home" / ".claude")
            dst = home.claude / rel
        else:
            dst = home.home / ".codex" / "sessions" / "2026" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        if src.name.endswith(".meta.json"):
            dst.write_bytes(data)
            continue
        starts = [i + 1 for i, b in enumerate(data) if b == 0x0A and i + 1 < len(data)]
        cuts = sorted(rng.sample(starts, min(3, len(starts))))
        plans.append((dst, data, cuts))
        dst.write_bytes(b"")
    for round_ in range(4):
        for dst, data, cuts in plans:
            end = cuts[round_] if round_ < len(cuts) else len(data)
            dst.write_bytes(data[:end])
        assert once(home) == 0
    assert once(home) == 0  # a rerun on unchanged files writes nothing
    assert_same_as_backfill(home, tmp_path)
    assert {r["client_name"] for r in rows_by_part(home.layout).values()} == {"claude", "codex"}


# --- acceptance 4 and 5: partial lines, truncation, replacement --------------------------------------------------------


def test_a_catch_up_files_a_resumed_session_under_the_original_as_a_backfill_does(home: Home, tmp_path: Path) -> None:
    """A session and its `claude --resume` copy (a new file, the original's lines under their `uuid`s, a name
    that sorts first), both written while the daemon was down: its catch-up read them in path order and filed
    the original conversation's messages under the copy's session. It now reads them as a backfill does, the
    original first (`Importer.reading_order`), and both keep the first copy in the original session."""
    record_capture_start(home.layout, ["claude"], T_US - 24 * 3600 * 1_000_000)
    write_resumed_pair(home.projects, T - timedelta(hours=3))
    assert once(home) == 0
    df = dataset(home.layout)
    by_session = df.group_by("session_id", "conversation_id").len().sort("session_id").rows()
    assert by_session == [(RESUMED_COPY, RESUMED_COPY, 2), (RESUMED_ORIGINAL, RESUMED_ORIGINAL, 6)]
    assert_same_as_backfill(home, tmp_path)


def test_partial_line_waits_for_its_newline(home: Home, tmp_path: Path) -> None:
    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    full = session_text(S1, 3, T)
    last = claude_line(S1, 3, T + timedelta(minutes=1))
    f.write_text(full + last[:40])
    assert once(home) == 0
    before = part_ids(home.layout)
    with f.open("a") as fh:
        fh.write(last[40:-1])  # still no newline
    assert once(home) == 0
    assert part_ids(home.layout) == before
    with f.open("a") as fh:
        fh.write("\n")
    assert once(home) == 0
    assert once(home) == 0
    after = part_ids(home.layout)
    assert len(after) > len(before)
    assert_same_as_backfill(home, tmp_path)


@pytest.mark.parametrize("change", ["truncate", "replace"])
def test_truncated_or_replaced_file_is_reimported_without_duplicates(home: Home, tmp_path: Path,
                                                                     change: str) -> None:
    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text(session_text(S1, 8, T))
    assert once(home) == 0
    first = len(part_ids(home.layout))
    old = StateDB.open(home.layout, create=False).get_all("claude")
    (cp_before,) = old.values()
    if change == "truncate":
        f.write_text(session_text(S1, 3, T))  # shorter than the checkpoint: a reset
    else:
        tmp = f.with_suffix(".new")
        tmp.write_text(session_text(S1, 4, T + timedelta(hours=1), first=100))
        os.replace(tmp, f)  # a new inode and a different head
    assert once(home) == 0
    db = StateDB.open(home.layout, create=False)
    (cp_after,) = db.get_all("claude").values()
    assert cp_after.offset == f.stat().st_size and cp_after.offset != cp_before.offset
    ids = part_ids(home.layout)
    assert all(n == 1 for n in ids.values())
    if change == "replace":
        new = backfill_all(home, tmp_path)
        assert set(new) <= set(ids) and len(ids) == first + len(new)


# --- acceptance 8: polling --------------------------------------------------------------------------------------------


def test_polling_when_watchfiles_cannot_be_imported(home: Home, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setitem(os.sys.modules, "watchfiles", None)  # `import watchfiles` now raises ImportError
    assert watch_mod.watchfiles_available({}) is None
    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock)  # default watcher factory
    try:
        assert loop.start() is None
        loop.step()
        st = home.status()
        assert (st["watch"], st["state"]) == ("polling", "running")
        n0 = len(part_ids(home.layout))
        assert n0 == 3
        with f.open("a") as fh:
            fh.write(claude_line(S1, 2, T + timedelta(minutes=1)))
        poll = 2
        for _ in range(4):  # 2 x poll_seconds of fake time, in half-poll steps
            clock.advance(poll / 2)
            loop.step()
        assert len(part_ids(home.layout)) == n0 + 1
        home.session(S2).write_text(session_text(S2, 2, T))  # a new file in polling mode
        for _ in range(4):
            clock.advance(poll / 2)
            loop.step()
        assert len(part_ids(home.layout)) == n0 + 4
    finally:
        loop.shutdown()
        loop.close()
    assert home.status()["state"] == "stopped"
    assert_same_as_backfill(home, tmp_path)


# --- acceptance 9: reload -----------------------------------------------------------------------------------------------


def test_reload_disables_a_client_and_survives_an_invalid_config(home: Home) -> None:
    home.write_config(clients={"claude": True, "codex": True}, capture={"poll_seconds": 2, "flush_seconds": 1})
    record_capture_start(home.layout, ["claude", "codex"], 0)
    src = next(p for c, p in _fixture_files() if c == "codex" and "019e4a50" in p.name)
    lines = src.read_bytes().splitlines(keepends=True)
    rollout = home.home / ".codex" / "sessions" / "2026" / "05" / src.name
    rollout.parent.mkdir(parents=True)
    rollout.write_bytes(b"".join(lines[: len(lines) // 2]))
    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        def count(client: str) -> int:
            df = dataset(home.layout)
            return 0 if df.height == 0 else df.filter(df["client_name"] == client).height

        codex0, claude0 = count("codex"), count("claude")
        assert codex0 > 0 and claude0 == 3
        reload_config(loop, home, None, clients={"claude": True, "codex": False},
                      capture={"poll_seconds": 2, "flush_seconds": 1})
        assert set(loop.clients) == {"claude"} and set(home.status()["clients"]) == {"claude"}
        rollout.write_bytes(b"".join(lines))
        with f.open("a") as fh:
            fh.write(claude_line(S1, 2, T + timedelta(minutes=1)))
        for _ in range(3):
            clock.advance(1.5)
            loop.step()
        assert count("codex") == codex0 and count("claude") == claude0 + 1
        # an invalid config: keep going with the old one, degraded with last_error
        home.layout.config.write_text("{ not json")
        loop._reload_requested = True
        loop.step()
        st = home.status()
        assert st["state"] == "degraded" and "config reload failed" in st["last_error"]["message"]
        with f.open("a") as fh:
            fh.write(claude_line(S1, 4, T + timedelta(minutes=2)))
        for _ in range(3):
            clock.advance(1.5)
            loop.step()
        assert count("claude") == claude0 + 2
        reload_config(loop, home, None, clients={"claude": True, "codex": True},
                      capture={"poll_seconds": 2, "flush_seconds": 1})
        for _ in range(3):
            clock.advance(1.5)
            loop.step()
        assert home.status()["state"] == "running"
        assert count("codex") > codex0  # re-enabled: catches up from its checkpoint
        assert StateDB.open(home.layout, create=False).count("codex") == 1
    finally:
        loop.shutdown()
        loop.close()
    ids = part_ids(home.layout)
    assert all(n == 1 for n in ids.values())


def test_reload_with_capture_off_stops(home: Home) -> None:
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        reload_config(loop, home, None, enabled=False)
        assert loop._stop_requested
    finally:
        loop.shutdown()
        loop.close()


# --- acceptance 10: retention ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("retention", [120, 0])
def test_daily_retention_pass(home: Home, retention: int) -> None:
    from helpers import make_row

    home.write_config(retention_days=retention, capture={"poll_seconds": 2})
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    ages = [400, 200, 121, 120, 119, 3]
    with Storage(home.layout) as st:
        st.commit([make_row(created=today - timedelta(days=a), message_id=f"m{a}") for a in ages], [])
    cut = (today - timedelta(days=retention)).date().isoformat() if retention else None
    # a checkpoint of a file that has vanished
    record_capture_start(home.layout, ["claude"], 0)
    gone = home.session(S2)
    gone.write_text(session_text(S2, 2, today))
    assert once(home) == 0
    gone.unlink()
    assert StateDB.open(home.layout, create=False).count("claude") == 1
    before = {p.name for p in home.layout.dataset_root.glob("source=claude/date=*")}
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        loop.step()  # no previous pass: it runs now
        st = home.status()
        assert st["retention_applied_at"] is not None
        after = {p.name for p in home.layout.dataset_root.glob("source=claude/date=*")}
        removed = before - after
        if cut is None:
            assert removed == set() and st["rows_pruned"] == 0
        else:
            assert removed == {d for d in before if d[len("date="):] < cut}
            assert removed and all(d[len("date="):] >= cut for d in after)
            assert st["rows_pruned"] == len(removed)
        assert StateDB.open(home.layout, create=False).count("claude") == 0
        first = st["retention_applied_at"]
        clock.advance(3600)
        loop.step()
        assert home.status()["retention_applied_at"] == first  # once a day
    finally:
        loop.shutdown()
        loop.close()
    clock.advance(3600)
    loop = polling_loop(home, clock)  # a restart within the day: the pass waits for its 24 h too
    try:
        loop.step()
        assert home.status()["retention_applied_at"] == first
        assert home.status()["rows_pruned"] == st["rows_pruned"]
    finally:
        loop.shutdown()
        loop.close()


def test_a_daemon_restarted_every_day_still_runs_the_daily_pass(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """daemon.md §4.4: at start when the last pass is more than 24 h old, then every 24 h from it. A daemon
    restarted 23 h after the last pass runs it an hour later, not 24 h after its start (a laptop restarted every
    morning never pruned); one started 25 h after it runs it at once. A pass that fails is tried again an hour
    later, not a day later (mutation audit: no test failed with either of these)."""
    record_capture_start(home.layout, ["claude"], 0)
    home.session(S1).write_text(session_text(S1, 2, T))
    clock = FakeClock()

    def run_daemon(hours: float) -> list[str | None]:
        """Start a daemon, step it once an hour for `hours`: `retention_applied_at` after each step."""
        loop = polling_loop(home, clock)
        seen = []
        try:
            for k in range(int(hours) + 1):
                if k:
                    clock.advance(3600)
                loop.step()
                seen.append(home.status()["retention_applied_at"])
        finally:
            loop.shutdown()
            loop.close()
        return seen

    (first,) = run_daemon(0)
    assert first is not None
    clock.advance(23 * 3600)
    at_23, at_24 = run_daemon(1)
    assert at_23 == first and at_24 not in (None, first)
    clock.advance(25 * 3600)
    (at_49,) = run_daemon(0)
    assert at_49 not in (None, at_24)
    real_prune = Storage.prune
    failing = [True]

    def prune(self, *a, **kw):  # type: ignore[no-untyped-def]
        if failing[0]:
            raise StorageError("could not remove a partition: Permission denied")
        return real_prune(self, *a, **kw)

    monkeypatch.setattr(Storage, "prune", prune)
    clock.advance(25 * 3600)
    loop = polling_loop(home, clock)
    try:
        loop.step()
        st = home.status()
        assert st["retention_applied_at"] == at_49
        assert st["last_error"]["message"] == "the retention pass failed: could not remove a partition: Permission denied"
        failing[0] = False
        clock.advance(3599)
        loop.step()
        assert home.status()["retention_applied_at"] == at_49
        clock.advance(1)
        loop.step()
        assert home.status()["retention_applied_at"] not in (None, at_49)
    finally:
        loop.shutdown()
        loop.close()


def test_a_daemon_on_an_older_config_does_not_bring_back_what_a_prune_under_the_new_one_deleted(home: Home) -> None:
    """The config shortened to 30 days without telling the daemon (still on "forever"), then `hyp cache prune`:
    it deleted the older rows and recorded the new import floor. The daemon's daily pass recorded its own,
    earlier, floor: every checkpoint was reset and the history read again, the pruned rows back (6,584 of
    7,817; audit of destructive paths). Its floor is now never earlier than the config on disk's."""
    home.write_config(retention_days=0, capture={"poll_seconds": 2, "flush_seconds": 1})
    now = datetime.now(UTC).replace(microsecond=0)
    record_capture_start(home.layout, ["claude"], 0)
    old, new = home.session(S1), home.session(S2)
    old.write_text(session_text(S1, 5, now - timedelta(days=200)))
    new.write_text(session_text(S2, 5, now - timedelta(days=3)))
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        loop.step()
        everything = set(part_ids(home.layout))
        kept = {p for p in everything if p.startswith(S2[:8])}
        assert kept and everything - kept and {p[:8] for p in everything} == {S1[:8], S2[:8]}
        home.write_config(retention_days=30, capture={"poll_seconds": 2, "flush_seconds": 1})  # (no SIGHUP)
        r = home.hyp_cmd("cache", "prune")
        assert r.returncode == 0, r.stderr
        assert set(part_ids(home.layout)) == kept
        clock.advance(24 * 3600 + 60)  # the daemon's daily pass, then its polls and rescans
        for _ in range(8):
            loop.step()
            clock.advance(600)
        assert home.status()["retention_applied_at"] is not None
        assert set(part_ids(home.layout)) == kept, "the pruned rows came back"
        (cp,) = [c for c in StateDB.open(home.layout, create=False).get_all("claude").values()
                 if c.path_hash == path_hash(os.path.realpath(new))]
        assert cp.offset == new.stat().st_size  # (not reset: nothing read again)
    finally:
        loop.shutdown()
        loop.close()


def test_a_reload_that_raises_retention_reads_the_older_history_at_once(home: Home) -> None:
    """SIGHUP after the config went from 30 to 60 days: the rows between the two cuts came back only at the next
    daily pass or a restart, up to a day later (the reload did not record the new import floor; retention
    audit). They come back at the reload, once each; a reload that shortens retention reads nothing again."""
    cap = {"poll_seconds": 2, "flush_seconds": 1}
    home.write_config(retention_days=30, capture=cap)
    now = datetime.now(UTC).replace(microsecond=0)
    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text(session_text(S1, 4, now - timedelta(days=45)) + session_text(S1, 4, now - timedelta(days=10), first=4))
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        loop.step()
        recent = set(part_ids(home.layout))
        assert len(recent) == 6  # (4 lines of 10 days ago: 2 user + 2 assistant, one with 2 parts)
        reload_config(loop, home, clock, retention_days=60, capture=cap)
        ids = part_ids(home.layout)
        assert len(ids) == len(set(ids)) == 12 and recent < set(ids)
        reload_config(loop, home, clock, retention_days=30, capture=cap)
        assert sorted(part_ids(home.layout)) == sorted(ids)  # (deleted at the daily pass, not read again)
    finally:
        loop.shutdown()
        loop.close()


def test_an_idle_daemon_writes_its_status_at_the_heartbeat_not_at_every_poll(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing happening: the status file (an atomic write with two fsyncs) was rewritten at every poll, every
    5 s, where daemon.md §6 says at least every 30 s (daemon resources audit: 17,000 writes a day). A change of
    a client's folder is still written at once."""
    home.write_config(capture={"poll_seconds": 5})
    record_capture_start(home.layout, ["claude"], 0)
    home.session(S1).write_text(session_text(S1, 2, T))
    clock = FakeClock()
    loop = polling_loop(home, clock)
    writes: list[float] = []
    real = DaemonLoop.write_status

    def counted(self: DaemonLoop) -> None:
        writes.append(clock.monotonic())
        real(self)

    monkeypatch.setattr(DaemonLoop, "write_status", counted)
    try:
        loop.step()
        writes.clear()
        for _ in range(120):  # two minutes, a poll every 5 s
            clock.advance(1)
            loop.step()
        assert 3 <= len(writes) <= 5, writes  # (the 30 s heartbeat)
        writes.clear()
        os.rename(home.claude, home.claude.with_name("moved"))  # its folder gone: said at the next poll
        for _ in range(6):
            clock.advance(1)
            loop.step()
        assert writes and home.status()["clients"]["claude"]["root_state"] == "waiting"
    finally:
        loop.shutdown()
        loop.close()


def test_a_batch_of_large_lines_is_committed_by_its_size_not_only_its_rows(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch was committed at `flush_rows` rows (2,000) or after `flush_seconds`: 200 MB of tool results of
    ~800 KB each were held whole, 700 MB of memory (daemon resources audit). It is also committed once the
    history read into it reaches `FLUSH_BYTES`; every row arrives, once."""
    from hypaware_tui.core.daemon import loop as loop_mod

    monkeypatch.setattr(loop_mod, "FLUSH_BYTES", 4 * 1024 * 1024, raising=False)
    record_capture_start(home.layout, ["claude"], 0)
    big = "x" * 300_000
    lines = [json.dumps({"type": "user", "sessionId": S1, "uuid": f"u-{i:04d}",
                         "timestamp": (T + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                         "message": {"role": "user", "content": f"{i} {big}"}}) for i in range(80)]
    home.session(S1).write_text("\n".join(lines) + "\n")  # 24 MB, 80 rows: far below flush_rows
    commits: list[int] = []
    loop = DaemonLoop(home.layout, env=home.env, clock=FakeClock(), watcher_factory=PollingWatcher)
    real_open = loop._open_storage

    def open_and_count() -> None:
        real_open()
        commit = loop.storage.commit

        def counted(rows, *a, **kw):  # noqa: ANN001, ANN002, ANN003
            commits.append(len(rows))
            return commit(rows, *a, **kw)

        loop.storage.commit = counted

    monkeypatch.setattr(loop, "_open_storage", open_and_count)
    try:
        assert loop.start() is None
        loop.step()
        loop.flush()
    finally:
        loop.shutdown()
        loop.close()
    assert len([n for n in commits if n]) >= 2 and sum(commits) == 80, commits  # (a file's batches: ~12 MB)
    ids = part_ids(home.layout)
    assert len(ids) == len(set(ids)) == 80


def test_daily_retention_pass_forgets_a_vanished_file_despite_a_link_to_nothing(home: Home) -> None:
    """A transcript link to a drive not mounted is a per-file error: it hides no other file, so the daily pass
    still drops the checkpoints of files that are gone (daemon.md §3.1 rule 7); it kept them all."""
    record_capture_start(home.layout, ["claude"], 0)
    kept, gone = home.session(S1), home.session(S2)
    kept.write_text(session_text(S1, 2, T))
    gone.write_text(session_text(S2, 2, T))
    assert once(home) == 0
    assert StateDB.open(home.layout, create=False).count("claude") == 2
    gone.unlink()
    home.session("33333333-3333-4333-8333-333333333333").symlink_to(home.base / "drive" / "s3.jsonl")
    loop = polling_loop(home, FakeClock())
    try:
        loop.step()
        assert home.status()["retention_applied_at"] is not None
    finally:
        loop.shutdown()
        loop.close()
    assert list(StateDB.open(home.layout, create=False).get_all("claude")) == [path_hash(os.path.realpath(kept))]


@pytest.mark.parametrize("link", ["projects", "root"])
def test_daily_retention_pass_keeps_the_checkpoints_of_a_folder_on_a_drive_not_mounted(home: Home, link: str) -> None:
    """~/.claude/projects (or ~/.claude itself, beside a second root that can be read) a link to a folder on
    a drive that is not mounted: the daemon found an empty, healthy root, and its daily pass forgot every
    checkpoint of that folder, so the next import read it all again once the drive was back (storage.md §7.4:
    "a client whose roots could not all be read keeps its entries"). The folder is now one that cannot be
    read: the client waits for it, says so, and keeps its checkpoints."""
    drive = home.base / "drive"
    if link == "projects":
        (drive / "projects").mkdir(parents=True)
        home.claude.mkdir(parents=True)
        (home.claude / "projects").symlink_to(drive / "projects")
        shown = home.claude / "projects"
    else:
        drive.mkdir()
        home.claude.symlink_to(drive)
        other = home.home / "claude-b"
        (other / "projects").mkdir(parents=True)
        home.env["CLAUDE_CONFIG_DIR"] = f"{home.claude},{other}"
        shown = home.claude
    record_capture_start(home.layout, ["claude"], 0)
    home.session(S1).write_text(session_text(S1, 2, T))
    home.session(S2).write_text(session_text(S2, 2, T))
    assert once(home) == 0
    assert StateDB.open(home.layout, create=False).count("claude") == 2
    drive.rename(home.base / "drive-unmounted")
    loop = polling_loop(home, FakeClock())
    try:
        loop.step()
        st = home.status()
        assert st["retention_applied_at"] is not None
        claude = st["clients"]["claude"]
        assert claude["root_state"] == "waiting" if link == "projects" else claude["root_state"] != "unreadable"
        assert claude["files_failed"] == claude["folders_failed"] == 1
        assert "symbolic link to a folder that does not exist" in claude["last_error"]["message"]
        assert str(shown) not in json.dumps(st)  # (by path hash, as every stored message)
    finally:
        loop.shutdown()
        loop.close()
    assert StateDB.open(home.layout, create=False).count("claude") == 2


def append_and_step(f: Path, i: int, loop, clock: FakeClock, *, seconds: int) -> None:
    """Append Claude line `i` of S1 (10 s apart from T), then run the loop once a second for `seconds`."""
    with f.open("a") as fh:
        fh.write(claude_line(S1, i, T + timedelta(seconds=10 * i)))
    for _ in range(seconds):
        clock.advance(1)
        loop.step()


def test_partitions_the_daemon_keeps_writing_to_are_compacted(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every flush adds a file to today's partition; at COMPACT_AT_FILES files the daemon compacts it, so a
    busy day does not leave thousands of small files for every query to open. The daily pass compacts
    every partition of several files (a backfill's, say), but not in the daemon's first 15 minutes: started
    by `hyp init` right after its import, it compacted that import's partitions one after another for
    seconds, while the Done screen's first look read them (which then failed: a file vanished twice). No row
    is lost or doubled."""
    from hypaware_tui.core.daemon import loop as loop_mod
    from hypaware_tui.core.storage import list_part_files

    monkeypatch.setattr(loop_mod, "COMPACT_AT_FILES", 4)
    record_capture_start(home.layout, ["claude"], 0)
    # a partition left with two files by two commits (a backfill in two batches): the daily pass merges it
    old_day = T - timedelta(days=3)
    home.session(S2).write_text(session_text(S2, 2, old_day))
    assert once(home) == 0
    with home.session(S2).open("a") as fh:
        fh.write(claude_line(S2, 2, old_day + timedelta(minutes=1)))
    assert once(home) == 0
    old_dir = home.layout.dataset_root / f"source=claude/date={old_day.date().isoformat()}"
    assert len(list_part_files(old_dir)) == 2
    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        loop.step()  # the first daily pass: it prunes now, and compacts later
        assert home.status()["retention_applied_at"] is not None and len(list_part_files(old_dir)) == 2
        clock.advance(loop_mod.COMPACT_AFTER_START_S - 5)
        loop.step()
        assert len(list_part_files(old_dir)) == 2
        assert loop._next_deadline() <= clock.monotonic() + 5  # (it wakes up for it)
        clock.advance(5)
        loop.step()
        assert len(list_part_files(old_dir)) == 1
        pdir = home.layout.dataset_root / f"source=claude/date={T.date().isoformat()}"
        counts = [len(list_part_files(pdir))]
        for i in range(2, 9):
            append_and_step(f, i, loop, clock, seconds=8)
            counts.append(len(list_part_files(pdir)))
        assert max(counts) == 3 and 1 in counts[1:]  # never 4: compacted when the 4th was written
        ids = part_ids(home.layout)
        assert all(n == 1 for n in ids.values())
        assert sum(1 for k in ids if S1[:8] in k) == 9 // 2 + 2 * (9 // 2) + 1  # users 1 row, assistants 2
    finally:
        loop.shutdown()
        loop.close()
    events = [json.loads(x) for x in home.layout.events_log.read_text().splitlines()]
    assert sum(1 for e in events if e["event"] == "cache.compact") >= 2


def test_a_failing_compaction_is_not_retried_at_every_flush(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    from hypaware_tui.core.daemon import loop as loop_mod
    from hypaware_tui.core.storage import CompactResult

    monkeypatch.setattr(loop_mod, "COMPACT_AT_FILES", 2)
    monkeypatch.setattr(loop_mod, "COMPACT_AFTER_START_S", 0)
    calls: list[object] = []

    def failing_compact(self, *, only=None, **_kw):
        calls.append(only)
        return CompactResult(dry_run=False, error="injected: verification failed")

    monkeypatch.setattr(Storage, "compact", failing_compact)
    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        loop.step()  # the daily pass: it fails
        for i in range(2, 8):
            append_and_step(f, i, loop, clock, seconds=4)
        assert calls == [None] and home.status()["last_error"] is not None  # 6 flushes, no retry
        clock.advance(3600)
        append_and_step(f, 8, loop, clock, seconds=4)
        assert len(calls) == 2 and calls[1]  # an hour later: the grown partition is tried again
    finally:
        loop.shutdown()
        loop.close()


# --- acceptance 11: the client roots are read-only, no socket ---------------------------------------------------------


def test_roots_untouched_and_no_socket(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    home.write_config(clients={"claude": True, "codex": True})
    shutil.copytree(FIXTURES / "claude" / "home" / ".claude", home.claude, dirs_exist_ok=True)
    codex = home.home / ".codex" / "sessions"
    shutil.copytree(FIXTURES / "codex", codex, ignore=shutil.ignore_patterns("*.py"))
    record_capture_start(home.layout, ["claude", "codex"], 0)

    def snapshot() -> dict[str, tuple[bytes, int]]:
        return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in home.home.rglob("*") if p.is_file()}

    before = snapshot()

    def no_socket(*_a: object, **_k: object) -> None:
        raise AssertionError("the daemon opened a socket")

    monkeypatch.setattr(socket, "socket", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    assert once(home) == 0
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        for _ in range(3):
            clock.advance(2)
            loop.step()
    finally:
        loop.shutdown()
        loop.close()
    assert snapshot() == before
    assert len(part_ids(home.layout)) > 0


# --- flush, write failures, importer errors -------------------------------------------------------------------------------


class FlakyStorage(Storage):
    fail = False
    errno = errno.ENOSPC

    def commit(self, rows, checkpoints, **kw):  # type: ignore[no-untyped-def]
        if FlakyStorage.fail:  # as the storage raises it: a message for a command, the OSError behind
            err = OSError(FlakyStorage.errno, os.strerror(FlakyStorage.errno), "part.tmp")
            raise StorageError(_os_error_message(err, "could not write to the dataset", self.layout)) from err
        return super().commit(rows, checkpoints, **kw)


def _a_session_captured(home: Home) -> tuple[Path, FakeClock]:
    """A Claude session of two lines, captured from the start: the set-up of the write-failure tests below."""
    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    return f, FakeClock()


def _append_and_step(f: Path, clock: FakeClock, loop: DaemonLoop) -> None:
    """A line appended, then two steps of the loop: it is read and its batch committed (or its commit fails)."""
    with f.open("a") as fh:
        fh.write(claude_line(S1, 2, T + timedelta(minutes=1)))
    clock.advance(2)
    loop.step()
    clock.advance(1)
    loop.step()


def test_an_events_log_that_cannot_be_written_is_logged_once(home: Home, caplog: pytest.LogCaptureFixture) -> None:
    """logs/events.jsonl a directory: the daemon dropped every event silently; its log says so once."""
    caplog.set_level(logging.WARNING, logger="hypaware_tui.daemon")
    home.layout.events_log.mkdir(parents=True)
    f, clock = _a_session_captured(home)
    loop = polling_loop(home, clock)
    try:
        for _ in range(3):
            _append_and_step(f, clock, loop)
    finally:
        loop.shutdown()
        loop.close()
    log = home.layout.events_log
    said = [r.getMessage() for r in caplog.records if "events log" in r.getMessage()]
    assert said == [f"cannot write the events log {log}: it is a directory. Move {log} away; until then hyp records "
                    "no events (the history that hyp status and hyp cache status show)."]

def test_a_file_size_limit_is_named_with_what_to_do(
    home: Home, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """EFBIG (the daemon's `ulimit -f`, inherited from what started it): the status said "File too large
    (part.tmp)" and nothing else, and retrying cannot pass a limit of the process: it says to raise it and
    restart the daemon. The log said "...restart the daemon; retrying in 5 s": it says it keeps retrying until
    then."""
    caplog.set_level(logging.ERROR, logger="hypaware_tui.daemon")
    f, clock = _a_session_captured(home)
    FlakyStorage.fail, FlakyStorage.errno = False, errno.EFBIG
    loop = polling_loop(home, clock, storage_factory=lambda lay, ev: FlakyStorage(lay, events=ev))
    try:
        FlakyStorage.fail = True
        _append_and_step(f, clock, loop)
        st = home.status()
        assert st["state"] == "degraded"
        assert st["last_error"]["message"] == (
            "could not write to the dataset: File too large (part.tmp); a limit on the size of the files the daemon "
            "may write (`ulimit -f`, inherited from the shell or service that started it) stopped it: raise it and "
            "restart the daemon"
        )
        logged = [r.getMessage() for r in caplog.records if "could not write" in r.getMessage()]
        assert logged == [st["last_error"]["message"] + "; until then it keeps retrying (next in 5 s)"]
    finally:
        FlakyStorage.fail, FlakyStorage.errno = False, errno.ENOSPC
        loop.shutdown()
        loop.close()


def test_an_io_error_of_the_checkpoint_database_under_a_file_size_limit_names_it(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's "disk I/O error" under a finite `ulimit -f` (EFBIG, which SQLite does not tell apart): the
    daemon names the limit as the likely cause with its own advice (restart the daemon), not the command's
    "run it again"."""
    from hypaware_tui.core.checkpoints import StateDBError

    reason = f"cannot use the checkpoint database {home.layout.ingest_db}: disk I/O error"

    def commit(self, rows, checkpoints, **kw):  # type: ignore[no-untyped-def]
        db = StateDBError(f"{reason}. Run it again.", reason=reason, cause="file_size", limit=64 * 1024)
        raise StorageError(str(db)) from db

    f, clock = _a_session_captured(home)
    loop = polling_loop(home, clock)
    try:
        monkeypatch.setattr(Storage, "commit", commit)
        _append_and_step(f, clock, loop)
        assert home.status()["last_error"]["message"] == (
            f"could not write to the dataset: {reason}; this process may not write files larger than 64 KiB "
            "(`ulimit -f`, inherited from the shell or service that started it), the likely cause: raise it and "
            "restart the daemon"
        )
    finally:
        loop.shutdown()
        loop.close()


def test_write_failure_keeps_the_batch_and_backs_off(home: Home, tmp_path: Path) -> None:
    f, clock = _a_session_captured(home)
    FlakyStorage.fail = False
    loop = polling_loop(home, clock, storage_factory=lambda lay, ev: FlakyStorage(lay, events=ev))
    try:
        n0 = len(part_ids(home.layout))
        FlakyStorage.fail = True
        _append_and_step(f, clock, loop)
        st = home.status()
        assert st["state"] == "degraded"
        # said once, with what to do; not the command's "run it again" (the daemon retries by itself)
        assert st["last_error"]["message"] == "could not write to the dataset: No space left on device (part.tmp); free some disk space"
        assert loop.write_failing and loop.retry_at - clock.monotonic() == pytest.approx(5, abs=0.01)
        held = sum(len(b.rows) for b in loop.batches.values())
        assert held == 1
        with f.open("a") as fh:  # not read while writing fails
            fh.write(claude_line(S1, 4, T + timedelta(minutes=2), role="user"))
        clock.advance(5)
        loop.step()
        assert loop.retry_at - clock.monotonic() == pytest.approx(10, abs=0.01)  # backoff doubles
        assert sum(len(b.rows) for b in loop.batches.values()) == 1
        FlakyStorage.fail = False
        clock.advance(10)
        loop.step()
        clock.advance(2)
        loop.step()
        clock.advance(2)
        loop.step()
        assert home.status()["state"] == "running"
        assert len(part_ids(home.layout)) == n0 + 2
        (cp,) = StateDB.open(home.layout, create=False).get_all("claude").values()
        assert cp.offset == f.stat().st_size
    finally:
        FlakyStorage.fail = False
        loop.shutdown()
        loop.close()
    assert_same_as_backfill(home, tmp_path)


def test_a_long_write_failure_retries_at_least_every_minute_and_a_new_one_starts_again_at_5_s(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    """daemon.md §4.3: retries with backoff from 5 s up to 60 s. After half an hour of a full disk, the rows are
    written within a minute of the space being freed (without the cap the waits doubled to 21 minutes by then);
    and once a flush succeeds, the next failure is retried after 5 s again, as its log line says (mutation audit:
    neither the cap nor the reset failed a test)."""
    f, clock = _a_session_captured(home)
    FlakyStorage.fail = False
    loop = polling_loop(home, clock, storage_factory=lambda lay, ev: FlakyStorage(lay, events=ev))

    def run_for(seconds: float) -> None:  # as `run` does: step, then sleep until the deadline the step gives
        end = clock.monotonic() + seconds
        while clock.monotonic() < end:
            deadline = loop.step()
            clock.advance(min(max(deadline - clock.monotonic(), 0.01), end - clock.monotonic()))

    try:
        n0 = len(part_ids(home.layout))
        FlakyStorage.fail = True
        _append_and_step(f, clock, loop)
        assert home.status()["state"] == "degraded"
        run_for(1800)
        assert len(part_ids(home.layout)) == n0 and home.status()["state"] == "degraded"
        FlakyStorage.fail = False
        run_for(61)
        assert home.status()["state"] == "running" and len(part_ids(home.layout)) == n0 + 1
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="hypaware_tui.daemon"):
            FlakyStorage.fail = True
            with f.open("a") as fh:
                fh.write(claude_line(S1, 4, T + timedelta(minutes=2), role="user"))
            run_for(4)
        said = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
        assert said == ["could not write to the dataset: No space left on device (part.tmp); free some disk space; "
                        "retrying in 5 s"]
    finally:
        FlakyStorage.fail = False
        loop.shutdown()
        loop.close()


def test_rows_written_before_a_failed_checkpoint_commit_are_counted_once(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint database full after the batch's Parquet file was written: the rows are in the dataset
    (the retry finds them as duplicates), but `rows_written`, which hyp status shows, left them out for good."""
    import sqlite3

    from hypaware_tui.core import checkpoints as checkpoints_mod

    real_put_many = StateDB.put_many
    full = [False]

    def put_many(self, entries, meta=None):  # type: ignore[no-untyped-def]
        if full[0]:
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorcode = sqlite3.SQLITE_FULL
            raise checkpoints_mod._db_error(self.path, exc)
        return real_put_many(self, entries, meta)

    monkeypatch.setattr(StateDB, "put_many", put_many)
    f, clock = _a_session_captured(home)
    loop = polling_loop(home, clock)
    try:
        before = len(part_ids(home.layout))
        assert home.status()["rows_written"] == before > 0
        full[0] = True
        _append_and_step(f, clock, loop)
        st = home.status()
        assert st["state"] == "degraded", st
        # (the dataset was written: not "could not write to the dataset"; nor the command's "run it again")
        assert st["last_error"]["message"] == (f"cannot use the checkpoint database {home.layout.ingest_db}: "
                                               "database or disk is full; free some disk space")
        rows = sum(part_ids(home.layout).values())
        assert rows > before  # written, though its checkpoint was not
        assert (st["rows_written"], st["clients"]["claude"]["rows_written"]) == (rows, rows)
        full[0] = False
        clock.advance(5)
        loop.step()  # the retry: the same rows, found as duplicates
        st = home.status()
        assert st["state"] == "running" and sum(part_ids(home.layout).values()) == rows
        assert (st["rows_written"], st["clients"]["claude"]["rows_written"]) == (rows, rows)
    finally:
        full[0] = False
        loop.shutdown()
        loop.close()


def test_a_once_pass_that_cannot_write_ends_stopped_and_the_next_start_does_not_call_it_unexpected(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    """`hyp daemon run --once` whose commit failed (a full disk) exited 1 with its status left `starting`: `hyp
    daemon status` then said it "ended unexpectedly", and so did the log of the next start (review). It ended,
    with its error said: the status says `stopped`, its error kept."""
    record_capture_start(home.layout, ["claude"], 0)
    home.session(S1).write_text(session_text(S1, 2, T))
    FlakyStorage.fail = True
    try:
        code = once(home, clock=FakeClock(T_US / 1e6 + 60),
                    storage_factory=lambda lay, ev: FlakyStorage(lay, events=ev))
    finally:
        FlakyStorage.fail = False
    st = home.status()
    assert code == 1 and st["state"] == "stopped", st
    assert st["last_error"]["message"].startswith("could not write to the dataset: No space left on device"), st
    assert not control.read_daemon_status(home.layout).ended_unexpectedly
    caplog.set_level(logging.WARNING, logger="hypaware_tui.daemon")
    assert once(home, clock=FakeClock(T_US / 1e6 + 120)) == 0
    assert not [r for r in caplog.records if "ended unexpectedly" in r.getMessage()], caplog.records


def test_a_long_catch_up_keeps_the_status_heartbeat(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    # A catch-up over many files can take minutes: the status must not look stale meanwhile (daemon.md §6)
    record_capture_start(home.layout, ["claude"], 0)
    sessions = [f"{i}{S1[1:]}" for i in range(6)]
    for s in sessions:
        home.session(s).write_text(session_text(s, 2, T))
    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock, watcher_factory=PollingWatcher)
    read_file = loop._read_file

    def slow_read(c, f, cp):  # type: ignore[no-untyped-def]
        read_file(c, f, cp)
        clock.advance(20)  # each file takes 20 s

    monkeypatch.setattr(loop, "_read_file", slow_read)
    written: list[tuple[str, str]] = []
    real_write = control.write_status_file
    monkeypatch.setattr(control, "write_status_file",
                        lambda layout, doc: (written.append((doc["state"], doc["updated_at"])), real_write(layout, doc)))
    try:
        assert loop.start() is None
    finally:
        loop.shutdown()
        loop.close()
    # from the first report to `running` 120 s later, never more than a heartbeat plus one file's read between two
    up = [(state, datetime.fromisoformat(at).timestamp()) for state, at in written if state != "stopped"]
    assert [state for state, _ in up] == ["starting"] * (len(up) - 1) + ["running"]
    ats = [at for _, at in up]
    assert ats[-1] - ats[0] == 120
    assert max(b - a for a, b in zip(ats, ats[1:], strict=False)) <= control.HEARTBEAT_S + 20
    assert len(part_ids(home.layout)) == 18  # every file was read (3 parts per user + assistant pair)


def test_each_flush_of_the_catch_up_writes_the_status(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """daemon.md §6: the status is written on every flush. During the catch-up at start it showed `starting`
    and 0 rows until the end (or the next heartbeat), however many flushes had committed rows."""
    home.write_config(capture={"poll_seconds": 2, "flush_seconds": 1, "flush_rows": 3})
    record_capture_start(home.layout, ["claude"], 0)
    for i in range(4):
        s = f"{i}{S1[1:]}"
        home.session(s).write_text(session_text(s, 2, T))
    loop = DaemonLoop(home.layout, env=home.env, clock=FakeClock(), watcher_factory=PollingWatcher)
    written: list[tuple[str, int]] = []
    real_write = control.write_status_file
    monkeypatch.setattr(control, "write_status_file", lambda layout, doc: (
        written.append((doc["state"], doc["rows_written"])), real_write(layout, doc)))
    try:
        assert loop.start() is None
    finally:
        loop.shutdown()
        loop.close()
    during = sorted({n for state, n in written if state == "starting"})
    assert during[0] == 0 and len(during) >= 4 and during[-1] == 12, written  # each flush's rows, as they came


def test_a_status_file_that_cannot_be_written_is_logged_once(home: Home, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    loop = DaemonLoop(home.layout, env=home.env, clock=FakeClock(), watcher_factory=PollingWatcher)
    real_write = control.write_status_file
    full = [True]

    def write(layout: Layout, doc: dict) -> None:
        if full[0]:  # like atomic_write_bytes: a new temporary name at each attempt
            raise OSError(errno.ENOSPC, "No space left on device", str(random.random()))
        real_write(layout, doc)

    monkeypatch.setattr(control, "write_status_file", write)
    try:
        with caplog.at_level("INFO", logger="hypaware_tui.daemon"):
            for _ in range(3):  # three heartbeats
                loop.write_status()
            full[0] = False
            loop.write_status()
    finally:
        loop.close()
    said = [r.getMessage() for r in caplog.records if "status file" in r.getMessage()]
    assert said == [
        f"could not write the status file {home.layout.daemon_status}: No space left on device; trying again "
        "every 30 s",
        "the status file is written again",
    ]
    assert home.status()["state"] == "starting"


def test_a_clean_stop_on_a_full_disk_still_says_stopped(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    """run/ full (a tiny tmpfs, filled): the final `stopped` status could not be written, so `hyp daemon status`
    read the `running` one left behind as "stopped (ended unexpectedly at ...)" after a clean stop. The room the
    daemon kept for it is freed, and the final status written atomically as ever."""
    from hypaware_tui.core import paths

    loop = DaemonLoop(home.layout, env=home.env, clock=FakeClock(), watcher_factory=PollingWatcher)
    real_write_all = paths.write_all
    full: list[int] = []  # once the disk is full: the bytes then used in run/ (only what is freed there is free)

    def used() -> int:
        return sum(p.lstat().st_blocks * 512 for p in home.layout.run_dir.iterdir())

    def write_all(fd: int, data: bytes | memoryview) -> None:
        if full and used() + os.fstat(fd).st_blocks * 512 + len(data) > full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write_all(fd, data)

    monkeypatch.setattr(paths, "write_all", write_all)
    try:
        loop.pid_lock.acquire()
        assert loop.start() is None
        assert control.read_daemon_status(home.layout).message == f"running (pid {os.getpid()}, foreground)"
        full.append(used())  # the disk is full from here on
        loop.write_status()  # a heartbeat: nothing written (the status goes stale, as it says)
        loop.shutdown()
    finally:
        loop.close()
        loop.pid_lock.release()
    report = control.read_daemon_status(home.layout)
    assert (report.message, report.ended_unexpectedly) == ("stopped", False)
    assert sorted(p.name for p in home.layout.run_dir.iterdir() if not p.name.startswith(".")) == [
        "daemon-status.json", "write.lock"]  # (the room kept is not left behind)


def test_an_unexpected_failure_keeps_its_traceback_in_the_log_not_on_the_terminal(
    home: Home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hypaware_tui.core.daemon.loop import run_daemon

    def explode(self: DaemonLoop) -> None:
        raise TypeError("boom (test)")

    monkeypatch.setattr(DaemonLoop, "catch_up", explode)
    monkeypatch.delenv("HYP_DEBUG", raising=False)
    env = {k: v for k, v in home.env.items() if k != "HYP_DAEMON_MODE"}
    assert run_daemon(home.layout, once=True, env=env) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"hyp daemon run: the capture daemon failed: boom (test) (traceback in {home.layout.daemon_log})" in err
    log_text = home.layout.daemon_log.read_text()
    assert "Traceback (most recent call last)" in log_text and "TypeError: boom (test)" in log_text
    assert home.status()["last_error"]["message"] == "the capture daemon failed: TypeError: boom (test)"


def test_an_error_naming_a_source_file_is_logged_and_stored_without_its_path(
    home: Home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OSError's text names its file (`[Errno 13] Permission denied: '/…/projects/p/s.jsonl'`): an unexpected
    one reached the log (its traceback too), the terminal and the status with the raw source path, which none of
    them may hold (storage.md §10). The path becomes `<a path in the claude history folder>`; HYP_HOME's stay."""
    from hypaware_tui.core.daemon.loop import run_daemon

    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    source = str(f)

    def explode(self: DaemonLoop) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", source)

    monkeypatch.setattr(DaemonLoop, "catch_up", explode)
    monkeypatch.delenv("HYP_DEBUG", raising=False)
    env = {k: v for k, v in home.env.items() if k != "HYP_DAEMON_MODE"}
    assert run_daemon(home.layout, once=True, env=env) == 1
    err = capsys.readouterr().err
    said = "the capture daemon failed: [Errno 13] Permission denied: <a path in the claude history folder>"
    assert f"hyp daemon run: {said} (traceback in {home.layout.daemon_log})" in err, err
    log_text = home.layout.daemon_log.read_text()
    assert said in log_text and "Traceback (most recent call last)" in log_text
    assert "PermissionError: [Errno 13] Permission denied: <a path in the claude history folder>" in log_text
    assert home.status()["last_error"]["message"] == (
        "the capture daemon failed: PermissionError: [Errno 13] Permission denied: <a path in the claude history "
        "folder>")
    for text in (err, log_text, home.layout.daemon_status.read_text()):
        assert source not in text and str(home.claude) not in text, text

    # a listing that fails with a path in its text: the status names none either
    monkeypatch.undo()

    def bad_discover(self: ClaudeImporter, roots: list[str]) -> object:
        raise ValueError(f"cannot list {source!r}, nor {home.claude}/projects/x y.jsonl")

    monkeypatch.setattr(ClaudeImporter, "discover", bad_discover)
    loop = DaemonLoop(home.layout, env=home.env, clock=FakeClock(), watcher_factory=PollingWatcher)
    try:
        assert loop.start() is None
        assert home.status()["clients"]["claude"]["last_error"]["message"] == (
            "claude: could not list the history files: ValueError: cannot list <a path in the claude history "
            "folder>, nor <a path in the claude history folder>")
    finally:
        loop.shutdown()
        loop.close()


def test_scrub_paths_takes_a_folder_only_as_a_whole_name() -> None:
    """The folders matched as bare prefixes: `~/.codex-old/x` and `~/.claudette/notes` (under no client root)
    became one `<a path in the claude history folder>` (the wrong client, the rest of the line gone). A folder
    matches now only when a separator, a quote, a delimiter, a space or the end follows it."""
    from hypaware_tui.core.daemon.loop import scrub_paths

    places = {"/home/u/.claude": "claude", "/home/u/.codex": "codex"}
    text = "backup at /home/u/.codex-old/x and /home/u/.claudette/notes"
    assert scrub_paths(text, places) == text
    assert scrub_paths("open /home/u/.codex: no; '/home/u/.claude/p/s.jsonl', /home/u/.codex/a b (c) /home/u/.claude",
                       places) == ("open <a path in the codex history folder>; <a path in the claude history folder>, "
                                   "<a path in the codex history folder> (c) <a path in the claude history folder>")


def test_scrub_paths_never_keeps_a_source_path_along_with_a_hyp_home_path() -> None:
    """A bare HYP_HOME path under a client root ran on into the source path after it, and the whole was kept,
    raw source path and all; a bare path stops where another folder begins now."""
    from hypaware_tui.core.daemon.loop import scrub_paths

    places = {"/home/u/.claude": "claude", "/home/u/.codex": "codex"}
    assert scrub_paths("x /home/u/.claude/hyp/a and /home/u/.claude/projects/b.jsonl secret", places,
                       keep="/home/u/.claude/hyp") == "x /home/u/.claude/hyp/a and <a path in the claude history folder>"


class FaultyClaude(ClaudeImporter):
    bad: set[str] = set()

    def new_parser(self, file, state, window, stats):  # type: ignore[no-untyped-def]
        if file.path_hash in self.bad:
            raise ValueError("parser exploded (test)")
        return super().new_parser(file, state, window, stats)


def test_importer_error_on_one_file_is_reported_and_others_flow(home: Home) -> None:
    record_capture_start(home.layout, ["claude"], 0)
    good, bad = home.session(S1), home.session(S2)
    good.write_text(session_text(S1, 2, T))
    bad.write_text(session_text(S2, 2, T))
    from hypaware_tui.core.checkpoints import path_hash

    imp = FaultyClaude()
    imp.bad = {path_hash(os.path.realpath(bad))}
    clock = FakeClock()
    loop = polling_loop(home, clock, importers={"claude": imp})
    try:
        st = home.status()
        assert st["state"] == "running"  # per-file errors do not degrade
        c = st["clients"]["claude"]
        assert c["files_failed"] == 1
        assert path_hash(os.path.realpath(bad)) in c["last_error"]["message"]
        assert str(bad) not in json.dumps(st)  # no raw path
        assert {r["session_id"] for r in rows_by_part(home.layout).values()} == {S1}
        with good.open("a") as fh:
            fh.write(claude_line(S1, 2, T + timedelta(minutes=1)))
        clock.advance(2)
        loop.step()
        clock.advance(1)
        loop.step()
        assert len(part_ids(home.layout)) == 4
        imp.bad = set()
        with bad.open("a") as fh:  # retried when it changes again
            fh.write(claude_line(S2, 2, T + timedelta(minutes=1)))
        clock.advance(2)
        loop.step()
        clock.advance(1)
        loop.step()
        assert {r["session_id"] for r in rows_by_part(home.layout).values()} == {S1, S2}
        assert home.status()["clients"]["claude"]["files_failed"] == 0
    finally:
        loop.shutdown()
        loop.close()


def test_a_truncated_zst_rollout_is_reported_in_the_status_and_its_rows_before_the_cut_kept(home: Home) -> None:
    """A cut `.jsonl.zst` was read as complete, nothing said. Now the daemon imports the rows before the cut,
    counts the file in `files_failed` with a message that says it is truncated (by path hash, no path), and a
    second pass adds no duplicate."""
    import zstandard
    from test_codex_importer import big_rollout

    from hypaware_tui.core.checkpoints import path_hash

    home.write_config(clients={"codex": True})
    record_capture_start(home.layout, ["codex"], 0)
    day = home.home / ".codex" / "sessions" / "2026" / "01" / "15"
    day.mkdir(parents=True)
    z = zstandard.ZstdCompressor().compress(big_rollout())
    cut = day / "rollout-2026-01-15T10-00-00-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b01.jsonl.zst"
    cut.write_bytes(z[: len(z) * 2 // 3])
    assert once(home) == 0
    st = home.status()
    c = st["clients"]["codex"]
    assert c["files_failed"] == 1
    assert path_hash(str(cut)) in c["last_error"]["message"] and "truncated" in c["last_error"]["message"]
    assert str(home.home) not in json.dumps(st)  # no raw path
    first = part_ids(home.layout)
    assert 0 < len(first) < 1500
    assert once(home) == 0
    assert part_ids(home.layout) == first  # read again (no checkpoint), nothing doubled
    assert home.status()["clients"]["codex"]["files_failed"] == 1


def test_a_changed_zst_rollout_is_read_again_from_the_capture_start(home: Home) -> None:
    """A whole document the daemon owns (a `.jsonl.zst`), changed: it is read again whole, and still only from
    the capture start (the import was declined): the re-read took every line from the floor."""
    import zstandard
    from test_codex_importer import big_rollout

    home.write_config(clients={"codex": True})
    start = datetime(2026, 1, 15, 10, 20, tzinfo=UTC)
    record_capture_start(home.layout, ["codex"], datetime_to_us(start))
    day = home.home / ".codex" / "sessions" / "2026" / "01" / "15"
    day.mkdir(parents=True)
    z = day / "rollout-2026-01-15T10-00-00-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b02.jsonl.zst"
    z.write_bytes(zstandard.ZstdCompressor().compress(big_rollout(1500)))
    assert once(home) == 0
    first = dataset(home.layout).height
    assert 0 < first < 1500
    z.write_bytes(zstandard.ZstdCompressor().compress(big_rollout(1510)))
    assert once(home) == 0
    df = dataset(home.layout)
    assert df.height == first + 10
    assert min(df["message_created_at"].to_list()).replace(tzinfo=UTC) >= start - timedelta(minutes=5)


def test_flush_by_rows_and_by_age(home: Home) -> None:
    home.write_config(capture={"poll_seconds": 1, "flush_seconds": 30, "flush_rows": 5})
    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text("")
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        with f.open("a") as fh:  # two user lines: 2 rows < flush_rows
            fh.write(claude_line(S1, 0, T, role="user") + claude_line(S1, 2, T, role="user"))
        clock.advance(1)
        loop.step()
        assert len(part_ids(home.layout)) == 0 and sum(len(b.rows) for b in loop.batches.values()) == 2
        clock.advance(29.5)
        loop.step()
        assert len(part_ids(home.layout)) == 0
        clock.advance(1)
        loop.step()
        assert len(part_ids(home.layout)) == 2  # the oldest row reached flush_seconds
        with f.open("a") as fh:  # 6 user lines: a batch of flush_rows (its maximum) flushed at once
            fh.write("".join(claude_line(S1, 10 + 2 * k, T, role="user") for k in range(6)))
        clock.advance(1)
        loop.step()
        assert len(part_ids(home.layout)) == 7 and sum(len(b.rows) for b in loop.batches.values()) == 1
        clock.advance(30)  # the sixth waits for flush_seconds, like any batch below flush_rows
        loop.step()
        assert len(part_ids(home.layout)) == 8
    finally:
        loop.shutdown()
        loop.close()


def test_sidecar_wait_for_new_layout_c_files(home: Home) -> None:
    record_capture_start(home.layout, ["claude"], 0)
    sub = home.projects / S1 / "subagents"
    sub.mkdir(parents=True)
    a1, a2 = sub / "agent-a1111111111111111.jsonl", sub / "agent-a2222222222222222.jsonl"
    a1.write_text("".join(claude_line(S1, i, T, agent="a1111111111111111") for i in range(2)))
    a2.write_text("".join(claude_line(S1, i, T, agent="a2222222222222222") for i in range(2)))
    clock = FakeClock()
    loop = polling_loop(home, clock)

    def agents() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for r in rows_by_part(home.layout).values():
            out.setdefault(r["agent_id"], set()).add(json.loads(r["attributes"]).get("claude", {}).get("agent_type"))
        return out

    try:
        assert agents() == {}  # both wait for their sidecar
        (sub / "agent-a1111111111111111.meta.json").write_text(json.dumps({"agentType": "Explore", "toolUseId": "t1"}))
        clock.advance(2)
        loop.step()
        clock.advance(1)
        loop.step()
        assert agents() == {"a1111111111111111": {"Explore"}}
        for _ in range(30):  # the other one is read without a sidecar after 30 s
            clock.advance(1)
            loop.step()
        assert agents() == {"a1111111111111111": {"Explore"}, "a2222222222222222": {None}}
    finally:
        loop.shutdown()
        loop.close()


def test_whole_document_files_wait_until_stable(home: Home) -> None:
    home.write_config(clients={"codex": True}, capture={"poll_seconds": 2, "flush_seconds": 1})
    record_capture_start(home.layout, ["codex"], 0)
    src = next(p for p in (FIXTURES / "codex").glob("rollout-*.json"))
    dst = home.home / ".codex" / "sessions" / "2025" / src.name
    dst.parent.mkdir(parents=True)
    dst.write_bytes(src.read_bytes())
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        assert len(part_ids(home.layout)) == 0  # just written: not stable yet
        clock.advance(2)
        loop.step()
        clock.advance(1)
        loop.step()
        assert len(part_ids(home.layout)) > 0  # same size and mtime over two polls
        (cp,) = StateDB.open(home.layout, create=False).get_all("codex").values()
        assert cp.read_mode == "whole" and cp.offset == dst.stat().st_size
    finally:
        loop.shutdown()
        loop.close()


def test_missing_client_capture_start_is_set_by_the_daemon(home: Home) -> None:
    clock = FakeClock(start=T.timestamp())
    loop = polling_loop(home, clock)
    loop.shutdown()
    loop.close()
    cap = read_capture(home.layout)
    assert cap["claude"].set_by == "daemon" and cap["claude"].capture_since_us == T_US


def test_a_client_enabled_by_hand_captures_from_the_daemon_s_start(home: Home) -> None:
    """daemon.md §3.2: a client enabled without a capture entry gets the daemon's own start time, also when
    the daemon meets it at a reload later on (it got the reload time: what the client wrote in between,
    beyond the 5 min grace, was never captured)."""
    clock = FakeClock(start=T.timestamp())
    loop = polling_loop(home, clock)
    try:
        clock.advance(3600)
        reload_config(loop, home, None, clients={"claude": True, "codex": True})
        assert set(loop.clients) == {"claude", "codex"}
    finally:
        loop.shutdown()
        loop.close()
    cap = read_capture(home.layout)
    assert (cap["codex"].set_by, cap["codex"].capture_since_us) == ("daemon", T_US)


def test_file_events_come_from_every_watched_folder(tmp_path: Path) -> None:
    """The event watcher watches all the folders it is given (Claude's projects and Codex's sessions, say), with
    the real watchfiles: a file written in the last of them is reported as in the first, not left to the
    5-minute safety rescan."""
    import threading
    import time as _time

    from watchfiles import watch as real_watch

    from hypaware_tui.core.daemon.watch import EventWatcher

    dirs = [tmp_path / name for name in ("projects", "sessions", "more")]
    for d in dirs:
        d.mkdir()
    seen: list[str] = []
    got = threading.Event()

    def notify(paths: list[str]) -> None:
        seen.extend(paths)
        got.set()

    watcher = EventWatcher(real_watch)
    watcher.start([str(d) for d in dirs], lambda path: path.endswith(".jsonl"), notify)
    try:
        for d in (dirs[2], dirs[0]):
            _time.sleep(0.3)  # (the watch in place)
            got.clear()
            (d / "s.jsonl").write_text("{}\n")
            deadline = _time.monotonic() + 10
            while str(d / "s.jsonl") not in seen:
                assert got.wait(max(0.0, deadline - _time.monotonic())), f"no event from {d.name}/ in 10 s"
                got.clear()
        assert watcher.error is None
    finally:
        watcher.stop()


def test_after_a_watcher_failure_file_events_are_tried_again(home: Home, caplog) -> None:
    """Polling is the fallback, not a life sentence: at each safety rescan the daemon tries file events
    again (the inotify watches may have been freed). A retry that fails the same way is not logged again; a
    watcher that then runs a whole rescan interval is reported as working."""
    import logging
    import time as _time

    from watchfiles import watch as real_watch

    from hypaware_tui.core.daemon.watch import EventWatcher

    limit = {"reached": True}

    def flaky_watch(*paths: object, **kw: object):
        if limit["reached"]:
            raise OSError(28, "OS file watch limit reached")
        yield from real_watch(*paths, **kw)

    def wait_for(cond, what: str) -> None:
        deadline = _time.monotonic() + 10
        while not cond():
            assert _time.monotonic() < deadline, what
            _time.sleep(0.02)

    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock, watcher_factory=lambda: EventWatcher(flaky_watch))
    caplog.set_level(logging.INFO, logger="hypaware_tui.daemon")
    try:
        assert loop.start() is None
        wait_for(lambda: loop.watcher.error is not None, "the first watcher fails")
        loop.step()
        assert home.status()["watch"] == "polling"
        rescan = loop.settings.rescan_seconds
        clock.advance(rescan)
        loop.step()  # the retry: the limit is still reached
        wait_for(lambda: loop._polling() or loop.watcher.error is not None, "the retried watcher fails")
        loop.step()
        assert home.status()["watch"] == "polling"
        failures = [r for r in caplog.records if "file watching failed" in r.getMessage()]
        assert len(failures) == 1
        limit["reached"] = False  # watches freed
        clock.advance(rescan)
        loop.step()
        assert home.status()["watch"] == "events" and loop.watch_failure is not None
        assert len(part_ids(home.layout)) == 3  # the two lines of the catch-up (the assistant's has 2 parts)
        _time.sleep(0.3)  # the watch is in place
        with f.open("a") as fh:
            fh.write(claude_line(S1, 2, T + timedelta(minutes=1)))

        def imported() -> bool:
            clock.advance(1)
            loop.step()
            return len(part_ids(home.layout)) == 4

        rescan_due = loop.next_rescan
        wait_for(imported, "an appended line arrives through file events")
        assert clock.monotonic() < rescan_due  # not the safety rescan: the event brought it
        clock.advance(rescan)
        loop.step()
        assert loop.watch_failure is None and home.status()["watch"] == "events"
        assert any("file watching works again" in r.getMessage() for r in caplog.records)
    finally:
        loop.shutdown()
        loop.close()


def _event_loop(home: Home) -> tuple[DaemonLoop, FakeClock]:
    """A daemon loop on the real watchfiles, its own timers on a fake clock."""
    from watchfiles import watch as real_watch

    from hypaware_tui.core.daemon.watch import EventWatcher

    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock, watcher_factory=lambda: EventWatcher(real_watch))
    return loop, clock


def _until_imported(home: Home, loop: DaemonLoop, clock: FakeClock, cond, what: str) -> None:
    """Steps the loop (its clock moved half a second at a time, never up to the safety rescan) until `cond()`;
    fails after 10 real seconds: what arrived, arrived through file events (and the daemon still watches for
    them: a watcher that misses the new folder makes it fall back to polling, 'file events would miss
    changes')."""
    import time as _time

    rescan_due, daily_due = loop.next_rescan, loop.next_retention
    assert daily_due is not None and daily_due > rescan_due  # (the daily pass, which looks too, not due)
    deadline = _time.monotonic() + 10
    while not cond():
        assert _time.monotonic() < deadline, f"{what}: not imported in 10 s, before the safety rescan"
        if clock.monotonic() + 0.5 < rescan_due - 1:
            clock.advance(0.5)
        loop.step()
        _time.sleep(0.05)
    assert (loop.next_rescan, loop.next_retention) == (rescan_due, daily_due)  # no rescan brought it
    assert home.status()["watch"] == "events" and loop.watch_failure is None, loop.watch_failure


def _sessions(home: Home, client: str) -> set[str]:
    df = dataset(home.layout)
    return set(df.filter(df["client_name"] == client)["session_id"].to_list()) if df.height else set()


def test_a_new_folder_created_with_its_first_session_is_imported_by_file_events(home: Home) -> None:
    """daemon.md §4.2: a new Claude project folder, or a new Codex day folder (sessions/YYYY/MM/DD/), comes with
    its first session file at once, before the watcher has a watch on the folder (here moved in whole, as a
    restore or a sync does: the file itself gives no event, only the folder): the folder's own event makes the
    daemon look in it, and the session is imported right away, not at the 5-minute safety rescan."""
    import time as _time

    home.write_config(clients={"claude": True, "codex": True}, capture={"poll_seconds": 2, "flush_seconds": 1})
    record_capture_start(home.layout, ["claude", "codex"], 0)
    home.session(S1).write_text(session_text(S1, 2, T))
    codex_sessions = home.home / ".codex" / "sessions"
    codex_sessions.mkdir(parents=True)
    loop, clock = _event_loop(home)
    try:
        assert loop.start() is None
        loop.step()  # (the first daily pass, due at the start: it looks in every folder too)
        assert home.status()["watch"] == "events" and _sessions(home, "claude") == {S1}
        _time.sleep(0.3)  # the watch in place
        staging = home.base / "staging"  # (the same file system: a rename)
        (staging / "other").mkdir(parents=True)
        (staging / "other" / f"{S2}.jsonl").write_text(session_text(S2, 2, T + timedelta(minutes=1)))
        (staging / "other").rename(home.claude / "projects" / "-home-ada-src-other")
        _until_imported(home, loop, clock, lambda: S2 in _sessions(home, "claude"), "a session in a new project folder")
        src = FIXTURES / "codex" / "rollout-2026-01-15T14-02-11-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b01.jsonl"
        day = staging / "2026" / "01" / "15"
        day.mkdir(parents=True)
        (day / src.name).write_bytes(src.read_bytes())
        (staging / "2026").rename(codex_sessions / "2026")
        _until_imported(home, loop, clock, lambda: bool(_sessions(home, "codex")), "a session in a new Codex day folder")
    finally:
        loop.shutdown()
        loop.close()


def test_a_client_folder_that_appears_while_the_daemon_runs_gets_file_events(home: Home) -> None:
    """daemon.md §4.2: Claude and Codex enabled, Codex's folders made after the daemon started (Claude's
    already watched): at the next poll the watcher is restarted with them, and a session written in each is
    imported through file events, not left to the 5-minute safety rescan. The same when ~/.codex/sessions is
    watched already and ~/.codex/archived_sessions appears."""
    import time as _time

    home.write_config(clients={"claude": True, "codex": True}, capture={"poll_seconds": 2, "flush_seconds": 1})
    record_capture_start(home.layout, ["claude", "codex"], 0)
    home.session(S1).write_text(session_text(S1, 2, T))
    codex = home.home / ".codex"
    fixtures = [FIXTURES / "codex" / name for name in (
        "rollout-2025-07-02T18-21-09-5f2c9a7e-3b1d-4e8f-9a6b-2c4d6e8f0a1b.jsonl",
        "rollout-2026-01-15T14-02-11-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b01.jsonl")]
    loop, clock = _event_loop(home)
    try:
        assert loop.start() is None
        loop.step()  # (the first daily pass, due at the start: it looks in every folder too)
        assert home.status()["watch"] == "events" and _sessions(home, "claude") == {S1}
        for sub, src in (("sessions", fixtures[0]), ("archived_sessions", fixtures[1])):
            folder = codex / sub
            folder.mkdir(parents=True)
            clock.advance(loop.settings.poll_seconds)
            loop.step()  # the poll sees the new folder
            _time.sleep(0.3)  # the watch in place
            before = _sessions(home, "codex")
            (folder / src.name).write_bytes(src.read_bytes())
            _until_imported(home, loop, clock, lambda b=before: len(_sessions(home, "codex")) > len(b),
                            f"a session in ~/.codex/{sub}, made after the daemon started")
    finally:
        loop.shutdown()
        loop.close()


def test_capture_start_rules(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "hyp")
    record_capture_start(layout, ["claude"], T_US, previously_enabled=[])
    record_capture_start(layout, ["claude", "codex"], T_US + 1_000_000, previously_enabled=["claude"])
    cap = read_capture(layout)
    assert cap["claude"].capture_since_us == T_US  # kept (Import again / Reconfigure)
    assert cap["codex"].capture_since_us == T_US + 1_000_000 and cap["codex"].set_by == "wizard"
    record_capture_start(layout, ["claude"], T_US + 9_000_000, previously_enabled=[])  # was disabled
    assert read_capture(layout)["claude"].capture_since_us == T_US + 9_000_000
    raw = json.loads(layout.capture_json.read_text())
    assert raw["codex"] == {"capture_since": "2026-08-30T12:00:01Z", "set_by": "wizard"}


def test_a_failing_watcher_falls_back_to_polling(home: Home) -> None:
    from hypaware_tui.core.daemon.watch import EventWatcher

    def broken_watch(*_paths: object, **_kw: object):  # what watchfiles does when inotify is exhausted
        raise OSError(28, "OS file watch limit reached")
        yield  # pragma: no cover

    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock, watcher_factory=lambda: EventWatcher(broken_watch))
    try:
        assert loop.start() is None
        assert loop.watcher is not None and not isinstance(loop.watcher, PollingWatcher)
        import time as _time

        deadline = _time.monotonic() + 10
        while loop.watcher.error is None and _time.monotonic() < deadline:
            _time.sleep(0.01)
        loop.step()
        st = home.status()
        assert (st["watch"], st["state"]) == ("polling", "running")  # polling alone is not degraded
        with f.open("a") as fh:
            fh.write(claude_line(S1, 2, T + timedelta(minutes=1)))
        for _ in range(4):
            clock.advance(1)
            loop.step()
        assert len(part_ids(home.layout)) == 4
    finally:
        loop.shutdown()
        loop.close()


def _many_projects(home: Home, n: int) -> list[tuple[str, Path]]:
    """`n` Claude Code project folders with one session each: n + 1 folders to watch (with `projects`)."""
    out = []
    for i in range(n):
        sid = f"{i + 1:08d}-1111-4111-8111-111111111111"
        d = home.claude / "projects" / f"-home-ada-p{i}"
        d.mkdir(parents=True)
        f = d / f"{sid}.jsonl"
        f.write_text(session_text(sid, 2, T))
        out.append((sid, f))
    return out


def _daemon_status_text(home: Home, loop: DaemonLoop, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> str:
    """`hyp daemon status` as a person sees it, with `loop` as the running daemon (this process holds its lock)."""
    from hypaware_tui.cli.app import main

    for k, v in home.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HYP_TEST_SERVICE_MANAGER", str(home.base / "service-manager.json"))
    if loop.pid_lock.fd is None:
        loop.pid_lock.acquire()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["daemon", "status"])
    return capsys.readouterr().out


def _inotify_watches_now() -> int:
    """The inotify watches this process holds (the `inotify wd:` lines of its inotify descriptors)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                n += Path(f"/proc/self/fdinfo/{fd}").read_text().count("inotify wd:")
        except OSError:
            continue
    return n


def _append_and_poll(loop: DaemonLoop, clock: FakeClock, sid: str, f: Path, poll: float) -> None:
    """A line appended to `f`, then a poll and a flush of the loop."""
    with f.open("a") as fh:
        fh.write(claude_line(sid, 2, T + timedelta(minutes=1)))
    clock.advance(poll)
    loop.step()
    clock.advance(loop.settings.flush_seconds)
    loop.step()


def _deaf_watch(*_paths: object, stop_event: object, **_kw: object):
    """A watcher that runs and reports nothing: notify once the watch limit is reached partway (no error)."""
    stop_event.wait()  # type: ignore[attr-defined]
    return
    yield  # pragma: no cover


def test_a_watch_limit_below_the_folders_to_watch_means_polling_with_the_reason(
    home: Home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """fs.inotify.max_user_watches = 1000 and 3,770 folders to watch: notify stopped adding watches at the limit
    and raised nothing, so the daemon stayed on `events` (`hyp daemon status`: `Watch events`, `Last error
    none`) and missed every change past the limit until the 5-minute rescan. More folders than the limit
    means polling (daemon.md §4.2), the reason in the log and the status, and a change anywhere is read at the
    next poll."""
    record_capture_start(home.layout, ["claude"], 0)
    sessions = _many_projects(home, 8)
    monkeypatch.setattr(watch_mod, "inotify_max_user_watches", lambda: 5, raising=False)
    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock,
                      watcher_factory=lambda: watch_mod.EventWatcher(_deaf_watch))
    try:
        assert loop.start() is None
        loop.step()
        reason = ("the inotify watch limit (fs.inotify.max_user_watches = 5) is below the 9 folders to watch; "
                  "raise it with sysctl to watch for events")
        st = home.status()
        assert (st["watch"], st.get("watch_reason"), st["state"]) == ("polling", reason, "running")
        assert f"Watch           polling: {reason}\n" in _daemon_status_text(home, loop, monkeypatch, capsys)
        assert len(part_ids(home.layout)) == 8 * 3  # the catch-up
        _append_and_poll(loop, clock, *sessions[-1], loop.settings.poll_seconds)  # a folder past the limit
        assert len(part_ids(home.layout)) == 8 * 3 + 1
    finally:
        loop.shutdown()
        loop.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")
def test_a_watcher_that_watches_only_part_of_the_folders_falls_back_to_polling(
    home: Home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Below fs.inotify.max_user_watches, but the watches other programs hold leave too few (or a folder it
    cannot read stops notify's walk): the real inotify watcher holds fewer watches than there are folders, and
    nothing raises. Its own watch count (the `inotify wd:` lines of its descriptor) is compared with the
    folders: short, and not growing, means polling with the reason."""
    from watchfiles import watch as real_watch

    record_capture_start(home.layout, ["claude"], 0)
    sessions = _many_projects(home, 8)
    monkeypatch.setattr(watch_mod, "inotify_max_user_watches", lambda: 8192, raising=False)
    firsts = sorted(str(f.parent) for _sid, f in sessions)[:2]

    def partial_watch(*_paths: object, **kw: object):  # the watches ran out after the first two folders
        yield from real_watch(*firsts, **kw)

    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock,
                      watcher_factory=lambda: watch_mod.EventWatcher(partial_watch))
    before = _inotify_watches_now()
    caplog.set_level(logging.INFO, logger="hypaware_tui.daemon")
    try:
        assert loop.start() is None
        assert wait_for(lambda: _inotify_watches_now() >= before + 2, 10)  # the watcher is set up
        loop.step()
        assert home.status()["watch"] == "events"
        poll = loop.settings.poll_seconds
        clock.advance(poll)
        loop.step()  # the first look: 2 watches for 9 folders (maybe still adding)
        clock.advance(poll)
        loop.step()  # still 2: the watch set is incomplete
        reason = ("file events cover only 2 of the 9 folders to watch: the inotify watches ran out "
                  "(fs.inotify.max_user_watches = 8192, shared by every program of this user); raise it with "
                  "sysctl to watch for events")
        st = home.status()
        assert (st["watch"], st.get("watch_reason"), st["state"]) == ("polling", reason, "running")
        assert f"Watch           polling: {reason}\n" in _daemon_status_text(home, loop, monkeypatch, capsys)
        assert any(f"file events would miss changes: {reason}; polling every" in r.getMessage()
                   for r in caplog.records)
        _append_and_poll(loop, clock, *sessions[-1], poll)  # a folder without a watch
        assert len(part_ids(home.layout)) == 8 * 3 + 1
    finally:
        loop.shutdown()
        loop.close()


def test_a_polars_panic_stops_the_daemon_with_one_line_in_the_status(home: Home) -> None:
    """A Rust panic in Polars (`Too many open files` starting its runtime) is a BaseException: it went past the
    daemon's handler, so the status kept `running` for a daemon that was gone. It stops as for any failure,
    with what to do in `last_error`."""
    import resource

    import polars as pl

    record_capture_start(home.layout, ["claude"], 0)
    loop = DaemonLoop(home.layout, env=home.env, clock=FakeClock(), watcher_factory=PollingWatcher)

    def panic() -> float:
        raise pl.exceptions.PanicException('called `Result::unwrap()` on an `Err` value: Os { code: 24, kind: '
                                           'TooManyOpenFiles, message: "Too many open files" }')

    loop.step = panic  # type: ignore[method-assign]
    assert loop.run() == 1
    st = home.status()
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert st["state"] == "stopped" and st["last_error"]["message"] == (
        "Polars (the data library) stopped: Too many open files. Raise the limit on open files (ulimit -n; "
        f"currently {limit}) and restart the daemon.")


# --- memory after a big pass (daemon.md: < 150 MiB idle) -------------------------------------------------------


@pytest.mark.parametrize("big", [True, False])
def test_a_big_catch_up_forgets_the_memo_and_hands_memory_back(
    home: Home, monkeypatch: pytest.MonkeyPatch, big: bool
) -> None:
    """The catch-up's memo held every part_id of every partition it touched (days of history) for 10 minutes,
    and what it parsed stayed in the C heap, for as long as the daemon then idled."""
    from hypaware_tui.core.daemon import loop as loop_mod
    from hypaware_tui.core.daemon import memory

    released: list[int] = []
    monkeypatch.setattr(memory, "release", lambda: released.append(1) or True)
    if big:
        monkeypatch.setattr(loop_mod, "RELEASE_AFTER_BYTES", 1000, raising=False)  # (these files are small)
    record_capture_start(home.layout, ["claude"], 0)
    home.session(S1).write_text(session_text(S1, 10, T - timedelta(days=2)))
    home.session(S2).write_text(session_text(S2, 10, T))
    loop = polling_loop(home, FakeClock())
    try:
        assert loop.rows_written == 30  # (an assistant line is 2 rows: its text and its tool call)
        assert released == ([1] if big else [])
        # the memo is a cache: nothing left to forget after a big catch-up; a small one keeps its partitions
        assert loop.storage.evict_memo(0) == (0 if big else 2)
    finally:
        loop.shutdown()
        loop.close()


def test_memory_is_handed_back_once_a_big_append_is_committed(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    from hypaware_tui.core.daemon import loop as loop_mod
    from hypaware_tui.core.daemon import memory

    released: list[int] = []
    monkeypatch.setattr(memory, "release", lambda: released.append(1) or True)
    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        assert released == []  # a small catch-up
        monkeypatch.setattr(loop_mod, "RELEASE_AFTER_BYTES", 4000, raising=False)
        with f.open("a") as fh:
            fh.write(session_text(S1, 20, T + timedelta(minutes=1), first=2))  # about 14 KB
        clock.advance(3)
        loop.step()  # read: the rows wait in the batch (flush_seconds), so nothing is released yet
        assert loop.batches and released == []
        clock.advance(2)
        loop.step()  # committed
        assert not loop.batches and released == [1] and len(part_ids(home.layout)) == 33
        assert loop.storage.evict_memo(0) == 1  # today's partition stays in the memo: the next lines go there
        for _ in range(3):  # idle: nothing more to hand back
            clock.advance(3)
            loop.step()
        assert released == [1]
    finally:
        loop.shutdown()
        loop.close()


def run_allocator_code(code: str, tmp_path: Path, conf: str | None = None) -> list[str]:
    """The lines `code` prints, run by a fresh Python (Polars not loaded) with this checkout's package, HYP_HOME
    in `tmp_path` and `_RJEM_MALLOC_CONF` set to `conf` (unset: None)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYP_", "_RJEM_"))}
    env.update({"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HYP_HOME": str(tmp_path / "hyp")})
    if conf is not None:
        env["_RJEM_MALLOC_CONF"] = conf
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def test_hyp_daemon_run_sets_the_allocator_before_polars_loads(tmp_path: Path) -> None:
    """The daemon's jemalloc settings (core.daemon.memory) apply only when set before Polars loads: `hyp daemon
    run` sets them, and neither the CLI nor the loop's module imports Polars before. A value passed on by the
    environment still wins (it comes after); once Polars is loaded nothing is set."""
    code = (
        "import os, sys\n"
        "import hypaware_tui.core.daemon.loop as loop\n"
        "from hypaware_tui.core.daemon.memory import configure_allocator\n"
        "def run_daemon(layout, **kw):\n"
        "    print('polars' in sys.modules, os.environ['_RJEM_MALLOC_CONF'])\n"
        "    import polars\n"
        "    print(configure_allocator())\n"
        "    return 0\n"
        "loop.run_daemon = run_daemon\n"
        "from hypaware_tui.cli import run\n"
        "sys.argv = ['hyp', 'daemon', 'run', '--once']\n"
        "run()\n"
    )
    assert run_allocator_code(code, tmp_path, "narenas:4") == [
        "False background_thread:true,narenas:1,tcache:false,dirty_decay_ms:0,narenas:4", "False"
    ]


@pytest.mark.parametrize("given", ["narenas:4", None])
def test_a_daemon_started_after_polars_loaded_gets_the_allocator_settings_this_process_was_given(
    tmp_path: Path, given: str | None
) -> None:
    """Polars rewrites `_RJEM_MALLOC_CONF` with its defaults when it loads (`hyp init` has loaded it when it
    starts the daemon). Passed on, they came after the daemon's own settings and won over its
    `dirty_decay_ms:0`. The daemon gets the value this process was given instead (none: no variable)."""
    code = (
        "import os, sys\n"
        "import hypaware_tui\n"
        "import polars\n"
        "from hypaware_tui.core.daemon import control\n"
        "from hypaware_tui.core.paths import Layout\n"
        "print(os.environ.get('_RJEM_MALLOC_CONF'))\n"
        "env = control.child_env(Layout.resolve(), os.environ)\n"
        "print(env.get('_RJEM_MALLOC_CONF'))\n"
        "print(control.child_env(Layout.resolve(), dict(os.environ, _RJEM_MALLOC_CONF='mine'))['_RJEM_MALLOC_CONF'])\n"
    )
    polars_set, child, explicit = run_allocator_code(code, tmp_path, given)
    assert "dirty_decay_ms:500" in polars_set  # (what Polars wrote: the case)
    assert child == str(given) and explicit == "mine"


def test_hyp_cache_compact_sets_its_allocator_setting_before_polars_loads(tmp_path: Path) -> None:
    """`hyp cache compact` returns freed pages at once (core.daemon.memory.COMPACT_ALLOCATOR_CONF): set before
    Polars loads, it comes after Polars' own `dirty_decay_ms` in the variable, and wins."""
    from helpers import make_rows

    layout = Layout(tmp_path / "hyp")
    with Storage(layout) as storage:  # (two files of one partition: something to compact)
        storage.commit(make_rows(2), [])
        storage.commit(make_rows(2, prefix="n"), [])
    code = (
        "import atexit, os, sys\n"
        "atexit.register(lambda: print('polars' in sys.modules, 'CONF', os.environ.get('_RJEM_MALLOC_CONF')))\n"
        "from hypaware_tui.cli import run\n"
        "sys.argv = ['hyp', 'cache', 'compact', '--json']\n"
        "run()\n"
    )
    out = run_allocator_code(code, tmp_path)
    assert json.loads("\n".join(out[:-1]))["partitions_compacted"] == 1
    conf = out[-1].removeprefix("True CONF ").split(",")
    decays = [c for c in conf if c.startswith("dirty_decay_ms:")]
    assert decays[-1] == "dirty_decay_ms:0" and len(decays) == 2  # (Polars' own first, then this one)


def test_a_symlinked_session_outside_the_watched_folders_is_captured_at_the_next_poll(home: Home) -> None:
    """A transcript linked from elsewhere (claude.md §1: file symlinks are resolved): its writes go to a folder
    the daemon does not watch, so no file event came and its new lines waited for the 5-minute safety rescan
    (175–285 s in a soak, against 6 s for other sessions). Each poll now stats such files, in event mode too."""
    import time as _time

    record_capture_start(home.layout, ["claude"], 0)
    target = home.base / "elsewhere" / "s1.jsonl"
    target.parent.mkdir(parents=True)
    target.write_text(session_text(S1, 2, T))
    home.session(S1).symlink_to(target)
    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock)
    try:
        assert loop.start() is None
        loop.step()
        assert home.status()["watch"] == "events"
        assert len(part_ids(home.layout)) == 3  # the catch-up (the assistant's line has 2 parts)
        _time.sleep(0.3)  # the watches are in place
        with target.open("a") as fh:
            fh.write(claude_line(S1, 2, T + timedelta(minutes=1)))
        rescan_due = loop.next_rescan
        deadline = _time.monotonic() + 10
        while len(part_ids(home.layout)) < 4:
            assert _time.monotonic() < deadline and clock.monotonic() < rescan_due, "waited for the rescan"
            clock.advance(1)
            loop.step()
            _time.sleep(0.02)
        assert clock.monotonic() < rescan_due
    finally:
        loop.shutdown()
        loop.close()


def test_a_rollout_replaced_by_a_folder_is_skipped_without_an_error(
    home: Home, caplog: pytest.LogCaptureFixture
) -> None:
    """codex.md §1: only regular files are taken. A rollout the daemon had read, now a folder of the same name
    (whose file event names a path the daemon knows), is skipped as discovery (backfill, the wizard) skips it:
    no warning and no error in the status ("cannot read file: Is a directory Run hyp backfill ..." before)."""
    from hypaware_tui.core.daemon.watch import Watcher

    class Events(Watcher):  # file events, sent by the test
        kind = "events"
        notify = None

        def start(self, dirs, accept, notify):  # noqa: ANN001, ANN202
            Events.notify = notify

    home.write_config(clients={"claude": True, "codex": True}, capture={"poll_seconds": 2, "flush_seconds": 1})
    record_capture_start(home.layout, ["claude", "codex"], 0)
    src = next(p for c, p in _fixture_files() if c == "codex" and "019e4a50" in p.name)
    rollout = home.home / ".codex" / "sessions" / "2026" / "05" / src.name
    rollout.parent.mkdir(parents=True)
    rollout.write_bytes(src.read_bytes())
    caplog.set_level(logging.WARNING, logger="hypaware_tui.daemon")
    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock, watcher_factory=Events)
    assert loop.start() is None
    try:
        assert StateDB.open(home.layout, create=False).count("codex") == 1
        while home.status()["retention_applied_at"] is None:  # (its rediscovery would drop the folder first)
            clock.advance(0.6)
            loop.step()
        rollout.unlink()
        rollout.mkdir()
        assert Events.notify is not None
        Events.notify([str(rollout)])
        for _ in range(3):
            clock.advance(0.6)  # (read after the debounce, before the next poll and rescan)
            loop.step()
        st = home.status()
        assert st["last_error"] is None and st["state"] == "running"
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        loop.shutdown()
        loop.close()


def test_a_read_error_and_the_hint_after_it_are_two_sentences(
    home: Home, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The reader's "cannot read file: <reason>" has no full stop: the hint that follows is a new sentence
    ("...: Is a directory Run hyp backfill ..." before)."""
    from hypaware_tui.core import reader

    def denied(self, st):  # noqa: ANN001, ANN202
        raise PermissionError(errno.EACCES, "Permission denied")
        yield  # (a generator, as the method it replaces)

    monkeypatch.setattr(reader.FilePass, "_incremental", denied)
    record_capture_start(home.layout, ["claude"], 0)
    f = home.session(S1)
    f.write_text(session_text(S1, 2, T))
    caplog.set_level(logging.WARNING, logger="hypaware_tui.daemon")
    loop = polling_loop(home, FakeClock())
    try:
        said = f"file {path_hash(os.path.realpath(f))}: cannot read file: Permission denied. " \
               "Run hyp backfill --dry-run to see its path."  # fmt: skip
        assert home.status()["last_error"]["message"] == f"claude: {said}"
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [f"claude: {said}"]
    finally:
        loop.shutdown()
        loop.close()


def test_the_scan_event_counts_each_file_once(home: Home) -> None:
    """`backfill.scan` (storage.md §10) added up every pass until a flush emitted it: a safety rescan found the
    three files unchanged, then one grew and was read, and the event said `files_seen 4, files_unchanged 3` for
    three files. It now counts each file once: 3 seen, 2 of them unchanged (the one read was not)."""
    record_capture_start(home.layout, ["claude"], 0)
    files = [home.session(s) for s in (S1, S2, "33333333-3333-4333-8333-333333333333")]
    for i, f in enumerate(files):
        f.write_text(session_text(f.stem, 4, T + timedelta(minutes=i)))
    clock = FakeClock()
    loop = polling_loop(home, clock)
    try:
        for _ in range(3):
            clock.advance(2)
            loop.step()
        assert len(part_ids(home.layout)) > 0
        clock.advance(300)  # the safety rescan: every file looked at again, each unchanged
        loop.step()
        with files[0].open("a") as fh:
            fh.write(claude_line(S1, 10, T + timedelta(hours=1)))
        for _ in range(3):
            clock.advance(2)
            loop.step()
    finally:
        loop.shutdown()
        loop.close()
    events = [json.loads(x) for x in home.layout.events_log.read_text().splitlines()]
    scans = [(e["files_seen"], e["files_unchanged"]) for e in events if e["event"] == "backfill.scan"]
    assert scans == [(3, 0), (3, 2)]


@pytest.mark.parametrize("raised_to", [365, 0])
def test_the_retention_pass_never_deletes_rows_the_config_on_disk_now_keeps(home: Home, raised_to: int) -> None:
    """The retention was raised in the config (hyp init's Reconfigure) while the daemon ran, and nobody told it
    (its restart skipped by a hang-up): its next daily pass deleted the rows between the old and the new cut,
    which the config keeps. It prunes to the config on disk when that keeps more; a shorter one still waits for
    the reload (daemon.md §4.5)."""
    from helpers import make_row

    home.write_config(retention_days=30, capture={"poll_seconds": 2})
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    with Storage(home.layout) as st:
        st.commit([make_row(created=today - timedelta(days=a), message_id=f"m{a}") for a in (400, 200, 100, 3)], [])
    clock = FakeClock()
    loop = polling_loop(home, clock)  # (loads retention 30; its first step runs the daily pass)
    try:
        home.write_config(retention_days=raised_to, capture={"poll_seconds": 2})  # (no SIGHUP)
        loop.step()
        assert home.status()["retention_applied_at"] is not None
        ages = sorted((today.date() - datetime.fromisoformat(p.name[len("date="):]).date()).days
                      for p in home.layout.dataset_root.glob("source=claude/date=*"))
        assert ages == ([3, 100, 200] if raised_to else [3, 100, 200, 400])
    finally:
        loop.shutdown()
        loop.close()


def test_a_session_whose_file_event_was_missed_is_captured_at_the_safety_rescan(home: Home) -> None:
    """daemon.md §4.2: file events can be lost (an inotify queue overflow, a folder created and filled before its
    watch was added); the rescan every `rescan_seconds` is what finds such a file. A new session in a new project
    folder, with no event for it, is captured at the next rescan (and not before: nothing announced it)."""
    from hypaware_tui.core.daemon.watch import Watcher

    class Deaf(Watcher):  # file events that never come
        kind = "events"

    record_capture_start(home.layout, ["claude"], 0)
    home.session(S1).write_text(session_text(S1, 2, T))
    clock = FakeClock()
    loop = DaemonLoop(home.layout, env=home.env, clock=clock, watcher_factory=Deaf)
    assert loop.start() is None
    try:
        assert sum(part_ids(home.layout).values()) == 3
        for _ in range(3):
            clock.advance(2)
            loop.step()
        newdir = home.projects.parent / "-home-ada-src-new"
        newdir.mkdir()
        (newdir / f"{S2}.jsonl").write_text(session_text(S2, 2, T))
        for _ in range(3):
            clock.advance(2)
            loop.step()
        assert sum(part_ids(home.layout).values()) == 3  # (no event, not yet the rescan)
        clock.advance(loop.settings.rescan_seconds)
        for _ in range(3):
            loop.step()
            clock.advance(1)
        loop.flush()
        assert sum(part_ids(home.layout).values()) == 6
        assert home.status()["clients"]["claude"]["rows_written"] == 6
    finally:
        loop.shutdown()
        loop.close()
