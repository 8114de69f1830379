"""The capture daemon as a real process (`python -m hypaware_tui daemon run`) on real Claude Code transcripts:
live appends (partial lines included), new sessions, polling, a missing root, an unreadable file, a
concurrent backfill, kill -9 mid-flush, SIGTERM with buffered rows and SIGHUP (daemon.md §4; acceptance 7, 9).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from filelock import FileLock
from test_daemon_support import (
    Home,
    claude_line,
    now_utc,
    part_ids,
    rows_by_part,
    session_text,
    stop,
    wait_for,
)

from hypaware_tui.core.checkpoints import StateDB, path_hash, roots_hash
from hypaware_tui.core.daemon import control
from hypaware_tui.core.daemon.capture import record_capture_start
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.runner import run_backfill
from hypaware_tui.importers.base import Window

S1 = "aaaaaaaa-1111-4111-8111-111111111111"
S2 = "bbbbbbbb-2222-4222-8222-222222222222"
S3 = "cccccccc-3333-4333-8333-333333333333"
FAST = {"poll_seconds": 0.5, "flush_seconds": 0.3, "flush_rows": 2000, "rescan_seconds": 300}


def backfill_rows(home: Home, tmp: Path) -> dict[str, dict]:
    """A one-shot backfill of the final files into an empty HYP_HOME (the reference)."""
    layout = Layout(tmp / f"reference-{random.randrange(1 << 30)}")
    res = run_backfill(layout, ["claude"], window=Window(), write_checkpoints=True, dry_run=False,
                       env=home.env, retention_days=0)
    assert res.providers[0].status == "ok", res.providers[0]
    return rows_by_part(layout)


def assert_matches_backfill(home: Home, tmp: Path) -> None:
    ids = part_ids(home.layout)
    dupes = [k for k, n in ids.items() if n > 1]
    assert dupes == []
    expected = backfill_rows(home, tmp)
    got = rows_by_part(home.layout)
    assert sorted(got) == sorted(expected)
    assert got == expected  # every column of every row


def rows_now(home: Home) -> int:
    return sum(part_ids(home.layout).values())


def append(path: Path, text: str) -> None:
    with path.open("a") as fh:
        fh.write(text)
        fh.flush()


@pytest.mark.parametrize("mode", ["events", "polling"])
def test_live_appends_partial_line_and_new_session(tmp_path: Path, mode: str) -> None:
    home = Home(tmp_path, capture=FAST)
    extra = {"HYP_NO_WATCHFILES": "1"} if mode == "polling" else {}
    start = now_utc()
    f1 = home.session(S1)
    f1.write_text(session_text(S1, 2, start - timedelta(minutes=1)))
    # a root missing at start: the Claude folder appears while the daemon runs
    moved = tmp_path / "later"
    os.rename(home.claude, moved)
    proc = home.spawn_daemon(extra_env=extra)
    try:
        st = home.wait_state("running", pid=proc.pid)
        assert st["watch"] == mode
        assert st["clients"]["claude"]["root_state"] == "waiting" and rows_now(home) == 0
        # (where it waits, as a hash: `hyp status` compares it with where the shell looks)
        assert st["clients"]["claude"]["roots_hash"] == roots_hash([str(home.claude)])
        os.rename(moved, home.claude)
        assert wait_for(lambda: (home.status() or {}).get("clients", {}).get("claude", {}).get(
            "root_state") == "watching", 15), home.log_text()
        assert wait_for(lambda: rows_now(home) == 3, 15), home.log_text()
        # line by line, while it runs
        latencies = []
        for i in range(2, 5):
            t_append = time.monotonic()
            append(f1, claude_line(S1, i, now_utc()))
            assert wait_for(lambda n=i: rows_now(home) >= 3 + (n - 1) * 3 // 2, 15), home.log_text()
            latencies.append(time.monotonic() - t_append)
        print(f"{mode}: append-to-dataset latency {', '.join(f'{x:.2f}s' for x in latencies)}")
        n = rows_now(home)
        last = claude_line(S1, 6, now_utc())
        append(f1, last[:50])  # a partial line is never consumed ...
        time.sleep(1.0)
        assert rows_now(home) == n
        append(f1, last[50:])  # ... until its newline arrives, then exactly once
        assert wait_for(lambda: rows_now(home) == n + 1, 15), home.log_text()
        # a brand-new session file, in a project folder created just now
        newdir = home.claude / "projects" / "-home-ada-src-new"
        newdir.mkdir()
        (newdir / f"{S2}.jsonl").write_text(session_text(S2, 3, now_utc()))
        assert wait_for(lambda: rows_now(home) == n + 1 + 4, 15), home.log_text()
        # the status file follows each flush (written right after the commit)
        assert wait_for(lambda: home.status()["clients"]["claude"]["rows_written"] == rows_now(home), 10)
        st = home.status()
        assert st["state"] == "running" and st["last_error"] is None and st["rows_written"] == rows_now(home)
    finally:
        assert stop(proc) == 0
    assert home.status()["state"] == "stopped"
    assert not home.layout.daemon_pid.exists()
    assert_matches_backfill(home, tmp_path)


def _voluntary_switches(pid: int) -> dict[int, int]:
    """Each thread of `pid` (but the main one): how many times it went to sleep (Linux /proc)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        if int(task.name) == pid:
            continue
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    out[int(task.name)] = int(line.split()[1])
    return out


def test_an_idle_daemon_watching_for_events_wakes_at_most_twice_a_second(tmp_path: Path) -> None:
    """The watch thread woke every 100 ms to look at its stop event (10 wakeups a second, all day, on a laptop's
    battery): now every 500 ms. Counted from the kernel's tally of each thread's sleeps, over 4 s of idling;
    none of the daemon's other threads wakes more often."""
    home = Home(tmp_path, capture=FAST)
    home.session(S1).write_text(session_text(S1, 2, now_utc()))
    proc = home.spawn_daemon()
    try:
        assert home.wait_state("running", pid=proc.pid)["watch"] == "events"
        assert wait_for(lambda: rows_now(home) == 3, 15), home.log_text()
        time.sleep(1.0)  # (the flush and status write after the catch-up are over)
        before = _voluntary_switches(proc.pid)
        time.sleep(4.0)
        after = _voluntary_switches(proc.pid)
        rates = {tid: (after[tid] - n) / 4.0 for tid, n in before.items() if tid in after}
        assert rates and max(rates.values()) <= 2.5, rates
    finally:
        assert stop(proc) == 0


def test_sigterm_flushes_buffered_rows_and_sighup_reload(tmp_path: Path) -> None:
    home = Home(tmp_path, capture=dict(FAST, flush_seconds=120))
    f1 = home.session(S1)
    f1.write_text(session_text(S1, 2, now_utc()))
    proc = home.spawn_daemon()
    try:
        home.wait_state("running", pid=proc.pid)
        assert rows_now(home) == 3  # the catch-up pass is committed at once
        # SIGHUP with an invalid config: keeps the old one, degraded with last_error
        home.layout.config.write_text("{ broken")
        proc.send_signal(signal.SIGHUP)
        st = home.wait_state("degraded", pid=proc.pid)
        assert "config reload failed" in st["last_error"]["message"]
        append(f1, claude_line(S1, 2, now_utc()) + claude_line(S1, 3, now_utc()))
        time.sleep(2.0)  # read and buffered (flush_seconds is 120)
        assert rows_now(home) == 3
        home.write_config(capture=dict(FAST, flush_seconds=120))
        proc.send_signal(signal.SIGHUP)
        home.wait_state("running", pid=proc.pid)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        elapsed = time.monotonic() - t0
    finally:
        stop(proc)
    assert rows_now(home) == 6, home.log_text()
    st = home.status()
    assert st["state"] == "stopped" and not home.layout.daemon_pid.exists()
    (cp,) = StateDB.open(home.layout, create=False).get_all("claude").values()
    assert cp.offset == f1.stat().st_size  # the checkpoints cover exactly the committed lines
    assert "config reloaded" in home.layout.daemon_log.read_text()
    print(f"SIGTERM to exit: {elapsed:.2f}s")


def test_backfill_and_daemon_at_the_same_time(tmp_path: Path) -> None:
    home = Home(tmp_path, capture=dict(FAST, flush_rows=50))
    files = [home.session(s) for s in (S1, S2, S3)]
    for s, f in zip((S1, S2, S3), files, strict=True):
        f.write_text(session_text(s, 200, now_utc() - timedelta(minutes=2), step_s=0.1))
    proc = home.spawn_daemon()
    stop_writing = threading.Event()

    def writer() -> None:
        i = 1000
        while not stop_writing.is_set():
            for s, f in zip((S1, S2, S3), files, strict=True):
                append(f, claude_line(s, i, now_utc()))
            i += 1
            time.sleep(0.01)

    t = threading.Thread(target=writer)
    try:
        home.wait_state("running", "starting", pid=proc.pid)
        t.start()
        for _ in range(2):  # two backfills from this process while the daemon and the writer run
            res = run_backfill(home.layout, ["claude"], window=Window(until_us=None), write_checkpoints=True,
                               dry_run=False, env=home.env, retention_days=0, flush_interval_s=0.2,
                               batch_rows=100)
            assert res.providers[0].status == "ok"
        stop_writing.set()
        t.join()
        final = {f: f.stat().st_size for f in files}
        db = StateDB.open(home.layout, create=False)

        def caught_up() -> bool:
            cps = db.get_all("claude")
            return all(cps.get(path_hash(os.path.realpath(f))) and
                       cps[path_hash(os.path.realpath(f))].offset == size for f, size in final.items())

        assert wait_for(caught_up, 30), home.log_text()
        db.close()
    finally:
        stop_writing.set()
        if t.is_alive():
            t.join()
        assert stop(proc) == 0
    assert_matches_backfill(home, tmp_path)


def test_kill_9_mid_flush_then_restart(tmp_path: Path) -> None:
    home = Home(tmp_path, capture=dict(FAST, flush_rows=200))
    record_capture_start(home.layout, ["claude"], 0)  # an old capture start: the whole history is the daemon's
    big = home.session(S1)
    big.write_text(session_text(S1, 1500, now_utc() - timedelta(hours=1), step_s=1.0))
    home.session(S2).write_text(session_text(S2, 50, now_utc() - timedelta(minutes=30)))
    # 1. killed by SIGKILL between the Parquet rename and the checkpoint update of its first flush
    proc = home.spawn_daemon(extra_env={"HYP_FAULT": "before_checkpoints"})
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert rows_now(home) > 0
    assert StateDB.open(home.layout, create=False).count("claude") == 0
    killed = [proc.pid]
    # 2. restarted, then killed at a random moment of its catch-up
    proc = home.spawn_daemon()
    try:
        assert wait_for(lambda: StateDB.open(home.layout, create=False).count("claude") > 0, 60), home.log_text()
        time.sleep(random.uniform(0.0, 0.4))
        proc.kill()
        proc.wait(timeout=10)
        last = home.status()["updated_at"]  # (its last report, as the next start reads it)
    finally:
        stop(proc)
    killed.append(proc.pid)
    # 3. a --once pass finishes the job: nothing lost, nothing doubled
    r = home.hyp_cmd("daemon", "run", "--once", timeout=120)
    assert r.returncode == 0, r.stderr
    assert_matches_backfill(home, tmp_path)
    assert home.status()["state"] == "stopped"
    # Each start after a kill says so in the log (the status file that said it is replaced by the new one's).
    log_text = home.layout.daemon_log.read_text()
    said = [line.split(" WARNING ", 1)[-1] for line in log_text.splitlines() if "ended unexpectedly" in line]
    assert len(said) == 2 and all(f"(pid {pid})" in s for pid, s in zip(killed, said, strict=True)), log_text
    assert said[1] == (f"the previous capture daemon (pid {killed[1]}) ended unexpectedly at {last}; the lines it "
                       "had not saved are read again from its checkpoints"), log_text


def _drop_dac_caps() -> None:
    """In the child: give up root's permission to read any file, so chmod 000 really blocks reads."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_file_and_root_are_reported_and_others_keep_flowing(tmp_path: Path) -> None:
    home = Home(tmp_path, capture=FAST)
    good, bad = home.session(S1), home.session(S2)
    good.write_text(session_text(S1, 2, now_utc()))
    bad.write_text(session_text(S2, 2, now_utc()))
    bad.chmod(0)
    # a second Claude folder (CLAUDE_CONFIG_DIR takes a list) whose projects folder cannot be read
    other = tmp_path / "other-claude"
    (other / "projects" / "p").mkdir(parents=True)
    (other / "projects" / "p" / f"{S3}.jsonl").write_text(session_text(S3, 2, now_utc()))
    (other / "projects").chmod(0)
    kwargs = {"preexec_fn": _drop_dac_caps} if os.geteuid() == 0 else {}
    proc = home.spawn_daemon(extra_env={"CLAUDE_CONFIG_DIR": f"{home.claude},{other}"}, **kwargs)
    bad_hash = path_hash(os.path.realpath(bad))
    try:
        st = home.wait_state("running", "degraded", pid=proc.pid)
        c = st["clients"]["claude"]
        assert st["state"] == "degraded" and c["root_state"] == "unreadable", st
        assert c["files_failed"] >= 1
        assert bad_hash in home.layout.daemon_log.read_text()
        assert str(bad) not in home.layout.daemon_status.read_text()
        assert rows_now(home) == 3
        append(good, claude_line(S1, 2, now_utc()))
        assert wait_for(lambda: rows_now(home) == 4, 15), home.log_text()
        # the folder becomes readable: watching again, no longer degraded, its session imported
        (other / "projects").chmod(0o755)
        assert wait_for(lambda: home.status()["state"] == "running", 15), home.status()
        assert wait_for(lambda: rows_now(home) == 7, 15), home.log_text()
        st = home.status()
        assert st["clients"]["claude"]["root_state"] == "watching"
        assert st["clients"]["claude"]["files_failed"] == 1  # the unreadable file, still unreadable
        assert bad_hash in st["clients"]["claude"]["last_error"]["message"] or \
            bad_hash in home.layout.daemon_log.read_text()
        bad.chmod(0o644)  # readable again: picked up, and no longer failing
        assert wait_for(lambda: rows_now(home) == 10, 15), home.log_text()
        assert wait_for(lambda: home.status()["clients"]["claude"]["files_failed"] == 0, 10)
    finally:
        bad.chmod(0o644)
        (other / "projects").chmod(0o755)
        assert stop(proc) == 0
    home.env["CLAUDE_CONFIG_DIR"] = f"{home.claude},{other}"
    assert_matches_backfill(home, tmp_path)


def test_a_file_that_fails_under_a_folder_that_cannot_be_read_is_counted_as_that_folder(tmp_path: Path) -> None:
    """The Claude folder made mode 000 while the daemon runs, and a session under it written to: its read fails
    (Permission denied), then its folder is found unreadable. `hyp daemon status` said "failed: 1 file and
    1 folder" (files_failed 2, folders_failed 1) for the one folder: the file fails because of its folder, and
    is counted as that folder's."""
    home = Home(tmp_path, capture=dict(FAST, poll_seconds=3))
    session = home.session(S1)
    session.write_text(session_text(S1, 2, now_utc()))
    root = home.claude / "projects"
    kwargs = {"preexec_fn": _drop_dac_caps} if os.geteuid() == 0 else {}
    proc = home.spawn_daemon(**kwargs)
    try:
        home.wait_state("running", pid=proc.pid)
        assert wait_for(lambda: rows_now(home) > 0, 15), home.log_text()
        root.chmod(0)
        append(session, claude_line(S1, 2, now_utc()))
        file_failed = f"claude: file {path_hash(os.path.realpath(session))}: cannot read file: Permission denied"
        assert wait_for(lambda: file_failed in home.layout.daemon_log.read_text(), 15), home.log_text()
        assert wait_for(lambda: home.status()["clients"]["claude"]["root_state"] == "unreadable", 15), \
            home.log_text()
        c = home.status()["clients"]["claude"]
        assert (c["files_failed"], c["folders_failed"]) == (1, 1), c
        p = home.hyp_cmd("daemon", "status")
        line = next(ln for ln in p.stdout.splitlines() if ln.startswith("  claude"))
        assert line.endswith("  failed: 1 folder"), p.stdout
        root.chmod(0o755)  # readable again: nothing failing
        assert wait_for(lambda: home.status()["clients"]["claude"]["files_failed"] == 0, 15), home.log_text()
        assert "failed:" not in home.hyp_cmd("daemon", "status").stdout
    finally:
        root.chmod(0o755)
        assert stop(proc) == 0


def test_a_second_signal_while_stopping_exits_130(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys, time\nfrom pathlib import Path\n"
        "from hypaware_tui.core.daemon.loop import DaemonLoop\n"
        "from hypaware_tui.core.paths import Layout\n"
        f"loop = DaemonLoop(Layout(Path({str(tmp_path / 'hyp')!r})))\n"
        "loop._install_signals()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "assert loop._stop_requested, 'first signal: a graceful stop is requested'\n"
        "loop._stopping = True  # now flushing\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(10)\n"
        "sys.exit(0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, r.stderr


@contextlib.contextmanager
def _daemon_flushing_behind_the_write_lock(
    tmp_path: Path,
) -> Iterator[tuple[Home, subprocess.Popen[bytes], FileLock, int]]:
    """A detached daemon whose flush of one buffered line waits for the write lock this holds: (its home, the
    process, the lock, the rows written before). A stop takes as long as the lock is held, as a daemon finishing
    a large batch does. At the end the lock is released and the daemon stopped, whatever the test did."""
    home = Home(tmp_path, capture=FAST)
    home.session(S1).write_text(session_text(S1, 2, now_utc()))
    proc = home.spawn_daemon(extra_env={"HYP_DAEMON_MODE": "detached"})
    lock = FileLock(str(home.layout.write_lock))
    try:
        home.wait_state("running", pid=proc.pid)
        assert wait_for(lambda: rows_now(home) > 0, 15), home.log_text()
        before = rows_now(home)
        lock.acquire(timeout=10)
        append(home.session(S1), claude_line(S1, 2, now_utc()))
        time.sleep(2)  # read (events, or the 0.5 s poll) and its flush (after 0.3 s) waiting for the lock
        assert proc.poll() is None and rows_now(home) == before
        yield home, proc, lock, before
    finally:
        while lock.is_locked:
            lock.release()
        stop(proc)


def test_hyp_daemon_stop_three_times_at_once_stops_it_cleanly(tmp_path: Path) -> None:
    """Teardown scripts that run `hyp daemon stop` two or three times at once: each sent SIGTERM, and the second
    one during the shutdown ended the daemon at once (exit 130, daemon.md §4.5): no "stopped" line in the log,
    `hyp daemon status` said "ended unexpectedly" while every stop had said it stopped. Stops now wait for
    the one under way: one signal, a clean stop, and every one says it stopped (exit 0, acceptance 12)."""
    with _daemon_flushing_behind_the_write_lock(tmp_path) as (home, proc, lock, before):
        try:
            stops = [subprocess.Popen([sys.executable, "-m", "hypaware_tui", "daemon", "stop"], env=home.env,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for _ in range(3)]
            time.sleep(3)  # (each stop has read the status and signalled, or waits for the first)
        finally:
            lock.release()
        said = [p.communicate(timeout=60) + (p.returncode,) for p in stops]
        for out, err, code in said:
            assert (code, err) == (0, ""), said
            assert out in (f"capture daemon stopped (pid {proc.pid})\n", "not running\n"), said
        assert proc.wait(timeout=15) == 0, home.log_text()
    assert f"capture daemon stopped (pid {proc.pid})" in home.layout.daemon_log.read_text()
    assert rows_now(home) > before  # the buffered line, written at the stop
    p = home.hyp_cmd("daemon", "status")
    assert p.stdout.splitlines()[0] == "Capture daemon  stopped", p.stdout


def test_a_stop_that_times_out_says_a_second_one_ends_it_at_once_and_the_batch_is_read_again(
        tmp_path: Path) -> None:
    """The hint of a stop still waiting after its time said "Try hyp daemon stop again, or end it with kill".
    It says what the second stop does (ends it at once) and what becomes of the unwritten batch, as it is."""
    with _daemon_flushing_behind_the_write_lock(tmp_path) as (home, proc, _lock, before):
        res = control.stop_daemon(home.layout, timeout=1)
        assert (res.ok, res.exit_code) == (False, 1)
        assert res.message == (
            f"still running (pid {proc.pid}) after 1 s; it may be finishing a large batch. Run hyp daemon "
            f"stop again to end it at once (or kill {proc.pid}): the lines of the batch it has not written "
            "are read again next time")
        p = home.hyp_cmd("daemon", "stop")
        assert (p.returncode, p.stdout) == (0, f"capture daemon stopped (pid {proc.pid})\n"), p.stderr
        assert proc.wait(timeout=5) == 130
    assert rows_now(home) == before
    again = home.spawn_daemon()
    try:
        assert wait_for(lambda: rows_now(home) > before, 20), home.log_text()
    finally:
        assert stop(again) == 0
    assert_matches_backfill(home, tmp_path)


def test_foreground_once_without_config_or_with_capture_off(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.write_config(enabled=False)
    r = home.hyp_cmd("daemon", "run", "--once")
    assert r.returncode == 0 and "capture is off in the config" in r.stderr
    assert home.status()["state"] == "stopped"
    home.layout.config.write_text("[1, 2]")
    r = home.hyp_cmd("daemon", "run")
    assert r.returncode == 1 and "hyp daemon run: the config is invalid: " in r.stderr
    st = home.status()
    assert st["state"] == "stopped" and "must be a JSON object" in st["last_error"]["message"]
    assert not home.layout.daemon_pid.exists()


def test_a_damaged_checkpoint_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.session(S1).write_text(session_text(S1, 2, now_utc()))
    home.layout.state_dir.mkdir(parents=True)
    home.layout.ingest_db.write_bytes(random.Random(7).randbytes(20000))
    expected = (f"cannot use the checkpoint database {home.layout.ingest_db}: file is not a database. If it is "
                "damaged, move it away: the next import re-reads every file and dedupe drops the rows already "
                "stored.")
    for args in (("daemon", "run", "--once"), ("daemon", "run")):
        r = home.hyp_cmd(*args, timeout=30)
        assert r.returncode == 1  # cli.md §9: a fatal start error
        assert r.stderr == f"hyp daemon run: {expected}\n"
        st = home.status()
        assert st["state"] == "stopped" and st["last_error"]["message"] == expected
        assert not home.layout.daemon_pid.exists()
    assert "Traceback" not in home.layout.daemon_log.read_text()


def test_a_locked_checkpoint_database_is_waited_for_not_a_fatal_error(tmp_path: Path) -> None:
    """Another process holding the checkpoint database in a long transaction: `hyp daemon start` said it was
    "still catching up", and the daemon died 30 s later on "database is locked". It keeps trying with backoff,
    start and the status say why it is not capturing, and it captures once the database is free."""
    import sqlite3

    home = Home(tmp_path, capture=FAST)
    home.session(S1).write_text(session_text(S1, 2, now_utc()))
    StateDB.open(home.layout, create=True).close()
    other = sqlite3.connect(home.layout.ingest_db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    said = (f"cannot use the checkpoint database {home.layout.ingest_db}: database is locked (another process "
            "holds it: a backfill, or a program that opened it); trying again in ")
    try:
        r = home.hyp_cmd("daemon", "start")
        first = r.stdout.strip()
        assert r.returncode == 0 and first.startswith("capture daemon starting (pid "), r.stdout + r.stderr
        pid = int(first.split("(pid ")[1].split(",")[0])
        assert f"detached); not capturing yet: {said}" in first and first.endswith("; see hyp daemon status")
        assert control.pid_alive(pid) and home.status()["state"] == "starting"
        r = home.hyp_cmd("daemon", "status")
        assert f"Capture daemon  starting (pid {pid}, detached)" in r.stdout and said in r.stdout, r.stdout
        assert f"WARNING {said}5 s, and nothing is captured until then" in home.layout.daemon_log.read_text()
        other.execute("ROLLBACK")
        other.close()
        home.wait_state("running", pid=pid, timeout=40)
        assert wait_for(lambda: rows_now(home) == 3, 15), home.log_text()
        assert "the checkpoint database is free again" in home.layout.daemon_log.read_text()
    finally:
        with contextlib.suppress(sqlite3.Error):
            other.close()
        r = home.hyp_cmd("daemon", "stop")
        assert r.returncode == 0, r.stderr


def _hyp_unprivileged(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    """`hyp` in `home` as a user that read-only directories stop (root gives up its permission to write any)."""
    kwargs = {"preexec_fn": _drop_dac_caps} if os.geteuid() == 0 else {}
    return subprocess.run([sys.executable, "-m", "hypaware_tui", *args], env=home.env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, **kwargs)


def test_an_unreadable_history_folder_is_called_a_folder_and_its_path_can_be_found(tmp_path: Path) -> None:
    """A Codex sessions folder the daemon cannot list: the log, `hyp status` and `hyp daemon status` said only
    "<path hash>: cannot read a Codex sessions folder… Check its permissions." (no path, storage.md §10) and
    counted it as "1 file unreadable" / "files failed 1". They name the command that shows the path, and that
    command does show it."""
    home = Home(tmp_path, clients={"claude": True, "codex": True})
    home.session(S1).write_text(session_text(S1, 2, now_utc()))
    blocked = home.home / ".codex" / "sessions" / "2026" / "11"
    blocked.mkdir(parents=True)
    blocked.chmod(0)
    try:
        r = _hyp_unprivileged(home, "daemon", "run", "--once")
        assert r.returncode == 0, r.stderr
        log = home.layout.daemon_log.read_text()
        lines = [ln for ln in log.splitlines() if "cannot read a Codex sessions folder" in ln]
        assert len(lines) == 1 and lines[0].endswith(
            "its rollouts are skipped. Check its permissions. Run hyp backfill --dry-run to see its path."), log
        assert str(blocked) not in log and str(blocked) not in home.layout.daemon_status.read_text()

        daemon = _hyp_unprivileged(home, "daemon", "status")
        codex = next(ln for ln in daemon.stdout.splitlines() if ln.strip().startswith("codex"))
        assert codex.endswith("failed: 1 folder") and "Run hyp backfill --dry-run to see its path." in daemon.stdout
        status = _hyp_unprivileged(home, "status")
        codex = next(ln for ln in status.stdout.splitlines() if "Codex:" in ln)
        assert "1 folder unreadable" in codex and "file" not in codex.replace("files ·", ""), codex
        assert "Run hyp backfill --dry-run to see its path." in status.stdout

        dry = _hyp_unprivileged(home, "backfill", "--dry-run")
        assert "cannot read a Codex sessions folder" in dry.stdout and "at ~/.codex/sessions/2026/11" in dry.stdout
    finally:
        blocked.chmod(0o755)


def test_every_file_the_daemon_names_by_hash_has_its_path_in_the_dry_run(tmp_path: Path) -> None:
    """The daemon names a file it cannot read by path hash and says "Run hyp backfill --dry-run to see its
    path"; the dry run showed the path of each client's first error only, so a file that failed after another
    could not be found. It lists every one now: whichever file the daemon names, its path is there."""
    home = Home(tmp_path, clients={"claude": True, "codex": True})
    home.session(S1).write_text(session_text(S1, 2, now_utc()))
    day = home.home / ".codex" / "sessions" / "2026" / "11" / "20"
    day.mkdir(parents=True)
    damaged = [day / f"rollout-2026-11-20T1{i}-00-00-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b0{i}.jsonl.zst"
               for i in range(3)]
    for i, p in enumerate(damaged):
        p.write_bytes(b"not zstd " * (i + 1))
    r = _hyp_unprivileged(home, "daemon", "run", "--once")
    assert r.returncode == 0, r.stderr
    log = home.layout.daemon_log.read_text()
    named = set(re.findall(r"codex: file ([0-9a-f]{16}): the compressed rollout .*Run hyp backfill --dry-run to "
                           r"see its path\.", log))
    assert named == {path_hash(os.path.realpath(p)) for p in damaged}, log

    dry = _hyp_unprivileged(home, "backfill", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    for hash_ in named:
        at = next(i for i, ln in enumerate(lines) if ln.startswith(f"  codex: file {hash_}: "))
        path = next(p for p in damaged if path_hash(os.path.realpath(p)) == hash_)
        assert lines[at + 1] == f"    at ~/{path.relative_to(home.home)}", dry.stdout
    assert "more error" not in dry.stdout


def test_daemon_commands_in_a_read_only_place_say_what_to_do(tmp_path: Path) -> None:
    home = Home(tmp_path)
    # HYP_HOME in a read-only directory: nothing can be created there (said up front, as by init and backfill:
    # it was "cannot take the daemon lock: Permission denied (…/hyp). Check that …/hyp and everything in it
    # belong to you", of a folder that does not exist)
    ro = tmp_path / "read-only"
    ro.mkdir(mode=0o555)
    home.env["HYP_HOME"] = str(ro / "hyp")
    try:
        for args in (("daemon", "run", "--once"), ("daemon", "run")):
            r = _hyp_unprivileged(home, *args)
            assert r.returncode == 1
            assert r.stderr == (
                f"hyp daemon run: HYP_HOME is {ro / 'hyp'}, which does not exist yet and cannot be created: {ro} is "
                "a folder this user may not write in (permission denied). Point HYP_HOME at a directory of yours (or "
                "create that one, owned by this user) and run it again.\n")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)
    # a set-up HYP_HOME whose logs/ directory is read-only: start cannot open the daemon's output
    home.env["HYP_HOME"] = str(home.hyp)
    home.session(S1).write_text(session_text(S1, 2, now_utc()))
    home.layout.logs_dir.mkdir(mode=0o555)
    try:
        r = _hyp_unprivileged(home, "daemon", "start")
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr == (
            f"hyp daemon start: could not start the capture daemon: Permission denied ({home.layout.daemon_log}). Check "
            f"that {home.hyp} and everything in it belong to you and are writable (mode 0700), or point HYP_HOME "
            "at a writable directory.\n")
        # the foreground daemon runs on, and says once that it cannot log (not a traceback per message)
        r = _hyp_unprivileged(home, "daemon", "run", "--once")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr and "Logging error" not in r.stderr
        lines = r.stderr.splitlines()
        assert lines.count(f"hyp daemon run: cannot write to the log {home.layout.daemon_log}: Permission denied") == 1
        assert len(part_ids(home.layout)) == 3
    finally:
        home.layout.logs_dir.chmod(0o755)


def test_a_daemon_log_that_is_a_directory_is_named_with_what_to_do(tmp_path: Path) -> None:
    """logs/daemon.log a directory: start said "Is a directory (…/daemon.log). Nothing already committed was
    lost; run it again once the problem is fixed" (no run helps), and the foreground daemon "cannot write to
    the log …: Is a directory". Both say what is wrong and what to do."""
    home = Home(tmp_path)
    home.session(S1).write_text(session_text(S1, 2, now_utc()))
    home.layout.daemon_log.mkdir(parents=True)
    r = home.hyp_cmd("daemon", "start")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f"hyp daemon start: could not start the capture daemon: {home.layout.daemon_log} is a "
                        "directory, not a file (move it away)\n")
    r = home.hyp_cmd("daemon", "run", "--once")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines.count(f"hyp daemon run: cannot write to the log: {home.layout.daemon_log} is a directory, not a "
                       "file (move it away)") == 1
    assert len(part_ids(home.layout)) == 3


def test_declined_import_then_daemon_then_backfill_imports_the_older_history(tmp_path: Path) -> None:
    """What a user does: `hyp init --yes --no-backfill` (the import declined), the daemon captures, and a
    later `hyp backfill` imports the history before the capture start. It said "Nothing new to import":
    the daemon's checkpoint of the whole file hid the lines it had skipped."""
    home = Home(tmp_path)
    f = home.session(S1)
    now = now_utc()
    f.write_text(session_text(S1, 6, now - timedelta(days=3), step_s=600))
    r = home.hyp_cmd("init", "--yes", "--no-backfill", "--no-daemon", "--force")
    assert r.returncode == 0, r.stderr
    home.write_config()  # capture on (--no-daemon turned it off), the daemon run here in the foreground
    append(f, claude_line(S1, 6, now_utc(), role="user"))
    r = home.hyp_cmd("daemon", "run", "--once")
    assert r.returncode == 0, r.stderr
    assert rows_now(home) == 1
    r = home.hyp_cmd("backfill")
    assert r.returncode == 0, r.stderr
    assert "Nothing new" not in r.stdout + r.stderr
    assert_matches_backfill(home, tmp_path)
    r = home.hyp_cmd("backfill")
    assert r.returncode == 0 and "Nothing new to import" in r.stdout, r.stdout + r.stderr


def test_an_undecodable_file_name_puts_no_path_in_the_log_and_capture_goes_on(tmp_path: Path) -> None:
    """A file name that is not UTF-8 under projects/ stops watchfiles with `Unable to decode path
    "/…/projects/-bad\\xFF\\xFE dir\\nnl/sess\\xFF.jsonl" to string`. The daemon polls instead (fine), but logged
    that text, a raw source path (storage.md §10: the log and status hold none). It says what happened."""
    home = Home(tmp_path, capture=FAST)
    f1 = home.session(S1)
    f1.write_text(session_text(S1, 2, now_utc()))
    proc = home.spawn_daemon()
    try:
        assert home.wait_state("running", pid=proc.pid)["watch"] == "events"
        bad_dir = os.path.join(os.fsencode(home.claude / "projects"), b"-bad\xff\xfe dir\nnl")
        os.mkdir(bad_dir)
        with open(os.path.join(bad_dir, b"sess\xff.jsonl"), "wb") as fh:
            fh.write(session_text(S2, 2, now_utc()).encode())
        assert wait_for(lambda: (home.status() or {}).get("watch") == "polling", 15), home.log_text()
        append(f1, claude_line(S1, 2, now_utc()))
        assert wait_for(lambda: rows_now(home) == 3 + 3 + 1, 15), home.log_text()  # both sessions, and the append
    finally:
        assert stop(proc) == 0
    log = home.layout.daemon_log.read_text(errors="replace")
    terminal = (tmp_path / "daemon-stderr.log").read_text(errors="replace")
    said = ("file watching failed (WatchfilesRustInternalError: a file name could not be decoded (it is not valid "
            "UTF-8)); polling every 0.5 s instead")
    assert said in log and said in terminal, log
    for text in (log, terminal, home.layout.daemon_status.read_text()):
        assert str(home.claude) not in text and "-bad" not in text and "sess" not in text, text


def _stopped(pid: int) -> bool:
    """Whether `pid` is in state T (stopped) per /proc (the signal is delivered asynchronously)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in ("T", "t")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the process state is read from /proc")
def test_a_daemon_stopped_by_a_signal_is_reported_so_and_hyp_daemon_stop_still_ends_it(tmp_path: Path) -> None:
    """SIGSTOP (or a laptop asleep, for a while): `hyp daemon status` said a healthy `running` for 5 minutes.
    It says the daemon is stopped and how to continue it; and `hyp daemon stop` ends it (its SIGTERM stayed
    pending in the stopped process: "still running after 10 s")."""
    home = Home(tmp_path, capture=FAST)
    proc = home.spawn_daemon(extra_env={"HYP_DAEMON_MODE": "detached"})
    try:
        home.wait_state("running", pid=proc.pid)
        os.kill(proc.pid, signal.SIGSTOP)
        assert wait_for(lambda: _stopped(proc.pid), timeout=5)
        said = (f"stopped by a signal (SIGSTOP): it captures nothing until it is continued "
                f"(kill -CONT {proc.pid})")
        p = home.hyp_cmd("daemon", "status")
        assert p.returncode == 0, p.stderr
        assert f"Capture daemon  running (pid {proc.pid}, detached), stopped by a signal (SIGSTOP)\n" in p.stdout
        assert f"Warning         {said}\n" in p.stdout
        doc = json.loads(home.hyp_cmd("daemon", "status", "--json").stdout)
        assert (doc["running"], doc["state"], doc["stopped_by_signal"], doc["warning"]) == (
            True, "running", True, said)
        p = home.hyp_cmd("daemon", "stop", timeout=30)
        assert p.returncode == 0 and p.stdout.strip() == f"capture daemon stopped (pid {proc.pid})", p.stdout + p.stderr
        assert proc.wait(timeout=5) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        stop(proc)


_HOLDER = """
import sys, time
from hypaware_tui.core.daemon.control import PidLock
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.storage import Storage
layout = Layout.resolve()
PidLock(layout).acquire()
with Storage(layout) as storage, storage.locked():
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="the lock holder is read from /proc/locks")
def test_a_backfill_waiting_for_the_capture_daemon_names_it_and_says_when_it_is_stopped(tmp_path: Path) -> None:
    """A backfill blocked on the write lock said only "waiting for another import…", also behind a capture
    daemon that was stopped by a signal mid-commit and so would never let go. It names the daemon, and says
    what to do when it is stopped."""
    home = Home(tmp_path, capture=FAST)
    home.session(S1).write_text(session_text(S1, 2, now_utc()))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER], env=home.env, stdout=subprocess.PIPE, text=True)

    def first_notice() -> str:
        p = subprocess.Popen([sys.executable, "-m", "hypaware_tui", "backfill", "--json"], env=home.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            return p.stderr.readline().strip()
        finally:
            p.kill()
            p.communicate()

    try:
        assert holder.stdout.readline().strip() == "held"
        assert first_notice() == f"waiting for the capture daemon (pid {holder.pid}) to finish its batch…"
        os.kill(holder.pid, signal.SIGSTOP)
        assert wait_for(lambda: _stopped(holder.pid), timeout=5)
        assert first_notice() == (
            f"waiting for the capture daemon (pid {holder.pid}) to finish its batch, but it is stopped by a "
            f"signal (SIGSTOP): continue it with kill -CONT {holder.pid}, or stop it with hyp daemon stop")
    finally:
        holder.kill()
        holder.wait()


def test_status_says_when_the_running_daemon_has_an_older_config(tmp_path: Path) -> None:
    """`hyp init` (Reconfigure) changed the config, and its daemon action was skipped (a hang-up during the
    import): the daemon went on with the config it loaded, capturing with capture now off, or about to prune
    at its daily pass rows the new retention keeps, while `hyp status` said `capture off` over `running` and no
    warning. The daemon's status now names the settings it runs with, and both status commands say what to do."""
    home = Home(tmp_path, retention_days=90, capture=FAST)
    proc = home.spawn_daemon(extra_env={"HYP_DAEMON_MODE": "detached"})
    older = "the daemon runs with an older config: hyp daemon restart"
    off = "capture is off in the config but the daemon is running: hyp daemon stop"
    try:
        home.wait_state("running", pid=proc.pid)
        loaded = home.status()["config_digest"]
        assert loaded

        def warnings() -> tuple[list[str], str | None, list[str], str | None]:
            status = home.hyp_cmd("status")
            daemon = home.hyp_cmd("daemon", "status")
            assert status.returncode == 0 and daemon.returncode == 0, status.stderr + daemon.stderr
            return ([line.strip() for line in status.stdout.splitlines() if "warning: " in line],
                    json.loads(home.hyp_cmd("status", "--json").stdout)["daemon"]["config_warning"],
                    [line for line in daemon.stdout.splitlines() if line.startswith("Warning")],
                    json.loads(home.hyp_cmd("daemon", "status", "--json").stdout)["config_warning"])

        assert warnings() == ([], None, [], None)
        # the same settings, written another way (an unknown key added): nothing to restart for
        data = json.loads(home.layout.config.read_text())
        home.layout.config.write_text(json.dumps(dict(data, note="mine"), indent=4))
        assert warnings() == ([], None, [], None)

        home.write_config(retention_days=30, capture=FAST)  # (as hyp init writes it; the daemon not told)
        assert warnings() == ([f"warning: {older}"], older, [f"Warning         {older}"], older)
        proc.send_signal(signal.SIGHUP)  # (what a restart also does: the config is read again)
        assert wait_for(lambda: home.status()["config_digest"] != loaded, 15), home.log_text()
        assert warnings() == ([], None, [], None)

        home.write_config(retention_days=30, capture=FAST, enabled=False)
        status = home.hyp_cmd("status").stdout
        assert "retention 30 days · clients claude · capture off" in status
        assert f"warning: {off}" in status and older not in status
        assert warnings() == ([f"warning: {off}"], off, [f"Warning         {off}"], off)
        p = home.hyp_cmd("daemon", "stop", timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
        assert proc.wait(timeout=5) == 0
        assert warnings() == ([], None, [], None)
    finally:
        stop(proc)
