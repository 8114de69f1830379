"""Process control: the pid lock, the status file and `hyp daemon status`, `start` / `stop` / `restart` of a
real detached daemon, and the wizard's daemon action (daemon.md §4.1, §6, §7, §9; acceptance 6, 12, 17, 18)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_daemon_support import Home, now_utc, session_text, stop

from hypaware_tui.cli.app import main
from hypaware_tui.core.daemon import control, service
from hypaware_tui.core.daemon.action import (
    DaemonAction,
    decide,
    perform_daemon_action,
    plan_daemon_action,
)
from hypaware_tui.core.daemon.control import (
    AlreadyRunning,
    PidLock,
    Spawned,
    read_daemon_status,
    start_daemon,
    stop_daemon,
)
from hypaware_tui.core.daemon.service import FakeServiceManager
from hypaware_tui.core.paths import Layout


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    h = Home(tmp_path, capture={"poll_seconds": 0.5, "flush_seconds": 0.5})
    for k, v in h.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HYP_TEST_SERVICE_MANAGER", raising=False)
    fake = FakeServiceManager(h.home / ".config/systemd/user/hypaware.service", available=False)
    service.set_service_manager_factory(lambda: fake)
    yield h
    service.set_service_manager_factory(None)
    report = read_daemon_status(h.layout)
    if report.running and report.pid:
        os.kill(report.pid, signal.SIGKILL)


def _reap() -> None:
    """Collect detached children started in-process (they are ours until this test process exits)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --- pid lock (acceptance 6) ---------------------------------------------------------------------------------


def test_second_instance_exits_1_naming_the_pid(home: Home) -> None:
    lock = PidLock(home.layout)
    lock.acquire()
    try:
        r = home.hyp_cmd("daemon", "run", timeout=60)
        assert r.returncode == 1
        assert f"hyp daemon run: already running (pid {os.getpid()})" in r.stderr
        assert r.stdout == ""
        with pytest.raises(AlreadyRunning) as exc:
            PidLock(home.layout).acquire()
        assert exc.value.pid == os.getpid()
    finally:
        lock.release()
    assert not home.layout.daemon_pid.exists()


def test_stale_pid_file_is_taken_over(home: Home) -> None:
    home.layout.run_dir.mkdir(parents=True)
    home.layout.daemon_pid.write_text("999999\n")
    lock = PidLock(home.layout)
    lock.acquire()
    assert home.layout.daemon_pid.read_text() == f"{os.getpid()}\n"
    assert control.lock_held(home.layout)
    lock.release()
    assert not control.lock_held(home.layout)


# --- status (acceptance 18, cli.md read-only rule) ---------------------------------------------------------------


def test_a_damaged_status_file_is_not_never_started(tmp_path: Path) -> None:
    """A status file cut short (a full disk, an editor): `hyp daemon status` said "never started" after a
    daemon had run. It says the file cannot be read."""
    layout = Layout(tmp_path / "hyp")
    layout.daemon_status.parent.mkdir(parents=True)
    assert read_daemon_status(layout).state == "never started"
    layout.daemon_status.write_text('{"pid": 12, "state": "run')
    report = read_daemon_status(layout)
    assert report.state == "stopped" and not report.running
    assert report.message == f"stopped (its status file {layout.daemon_status} cannot be read)"


def test_status_never_started_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing-here"
    monkeypatch.setenv("HYP_HOME", str(missing))
    service.set_service_manager_factory(lambda: None)
    try:
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert code == 0 and "never started" in out
        code, out, _ = run_cli(capsys, "daemon", "status", "--json")
    finally:
        service.set_service_manager_factory(None)
    doc = json.loads(out)
    assert code == 0 and doc["running"] is False and doc["state"] == "never started"
    assert not missing.exists()


def test_start_and_restart_on_an_invalid_config_say_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """They gave the bare error where every other command names the fix (an audit)."""
    hyp = tmp_path / "hyp"
    hyp.mkdir()
    (hyp / "hypaware-config.json").write_text('{"version": 1, "clients":')
    monkeypatch.setenv("HYP_HOME", str(hyp))
    fake = FakeServiceManager(tmp_path / "unit.service", available=False)
    service.set_service_manager_factory(lambda: fake)
    try:
        # (install is left out: a Python under /tmp, as in a fresh clone's venv, is refused before the config)
        for args in (["start"], ["restart"]):
            code, out, err = run_cli(capsys, "daemon", *args)
            assert (code, out) == (1, ""), args
            assert err.startswith(f"hyp daemon {args[0]}: the config is invalid: ") and err.endswith(
                ". Fix the file, or replace it with hyp init (hyp init --yes --force without a terminal; a "
                "backup is kept).\n"), err
    finally:
        service.set_service_manager_factory(None)


def test_run_on_an_invalid_config_says_the_way_out_and_stores_the_bare_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hyp daemon run` gave the bare error where start names the fix; its status and log keep the daemon's own
    words (cli.md §9: exit 1 on an invalid config)."""
    hyp = tmp_path / "hyp"
    hyp.mkdir()
    (hyp / "hypaware-config.json").write_text('{"version": 1, "clients":')
    monkeypatch.setenv("HYP_HOME", str(hyp))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HYP_DAEMON_MODE", raising=False)
    code, out, err = run_cli(capsys, "daemon", "run")
    assert (code, out) == (1, "")
    bare = (f"the config is invalid: {hyp / 'hypaware-config.json'}: is not valid JSON: it ends early, at line 1, column 26 "
            "(was it cut short?)")
    assert err == f"hyp daemon run: {bare}. Fix the file, or replace it with hyp init (hyp init --yes --force " \
                  "without a terminal; a backup is kept).\n"
    status = json.loads((hyp / "run" / "daemon-status.json").read_text())
    assert (status["state"], status["last_error"]["message"]) == ("stopped", bare)
    assert (hyp / "logs" / "daemon.log").read_text().rstrip("\n").endswith(f" ERROR {bare}")
    # It never watched anything: no watch mode (its status said "Watch polling", found by the daemon audit).
    assert status["watch"] is None
    code, out, _ = run_cli(capsys, "daemon", "status")
    assert code == 0 and "\nWatch           -\n" in out and "polling" not in out


def test_a_config_from_a_newer_hyp_is_not_to_be_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config of version 2 (a newer hyp wrote it) met the advice to replace it with hyp init, which loses its
    settings under the newer hyp (found by the daemon audit): every command now says to upgrade hyp; an older
    or broken version keeps the fix-or-replace advice."""
    hyp = tmp_path / "hyp"
    hyp.mkdir()
    cfg = hyp / "hypaware-config.json"
    monkeypatch.setenv("HYP_HOME", str(hyp))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HYP_DAEMON_MODE", raising=False)
    upgrade = "It was written by a newer hyp: upgrade hyp to use it (replacing it would lose its settings)."
    for version, advice in ((2, upgrade), (0, "Fix the file, or replace it with hyp init")):
        cfg.write_text(json.dumps({"version": version, "clients": {"claude": {"enabled": True}}}))
        for args in (["daemon", "run"], ["daemon", "start"], ["backfill"], ["cache", "prune"]):
            code, _out, err = run_cli(capsys, *args)
            assert code == 1 and f"has version {version};" in err and advice in err, (args, err)
            assert (upgrade in err) == (version == 2), (args, err)
        code, out, _err = run_cli(capsys, "status")
        expected = "Next: it was written by a newer hyp" if version == 2 else "Next: fix "
        assert any(line.startswith(expected) for line in out.splitlines()), out


def test_every_daemon_command_with_hyp_home_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "hyp-is-a-file"
    afile.write_text("not a directory\n")
    monkeypatch.setenv("HYP_HOME", str(afile))
    problem = (f"HYP_HOME is {afile}, which is not a directory. Point HYP_HOME at a directory (or move that file "
               "away) and run it again.")  # the words of init, backfill and status (paths.hyp_home_problem)
    fake = FakeServiceManager(tmp_path / "unit.service", available=False)
    service.set_service_manager_factory(lambda: fake)
    try:
        for args in (["run"], ["run", "--once"], ["start"], ["restart"], ["install", "--dry-run"]):
            code, out, err = run_cli(capsys, "daemon", *args)
            assert (code, out, err) == (1, "", f"hyp daemon {args[0]}: {problem}\n"), args
        code, out, err = run_cli(capsys, "daemon", "status")
        assert code == 0 and f"Warning         {problem}" in out.splitlines(), out
        code, out, _ = run_cli(capsys, "daemon", "status", "--json")
        doc = json.loads(out)
        assert code == 0 and doc["state"] == "never started" and doc["warning"] == problem
        assert run_cli(capsys, "daemon", "stop")[:2] == (0, "not running\n")  # (nothing can run there)
        assert run_cli(capsys, "daemon", "uninstall", "--dry-run")[0] == 0
    finally:
        service.set_service_manager_factory(None)
    assert afile.read_text() == "not a directory\n" and fake.calls == []


def test_status_of_a_dead_daemon_reports_unexpected_end(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    home.layout.run_dir.mkdir(parents=True)
    status = {"pid": dead.pid, "version": "0.1.0", "mode": "detached", "state": "running",
              "started_at": "2026-08-30T10:00:00Z", "updated_at": "2026-08-30T11:00:00Z", "watch": "events",
              "last_import_at": None, "rows_written": 3, "last_error": None, "retention_applied_at": None,
              "rows_pruned": None, "clients": {}}
    home.layout.daemon_status.write_text(json.dumps(status))
    home.layout.daemon_pid.write_text(f"{dead.pid}\n")  # a pid file nobody holds a lock on
    code, out, err = run_cli(capsys, "daemon", "status", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["running"] is False
    assert doc["state"] == "stopped" and doc["ended_unexpectedly"] is True
    assert doc["message"] == "stopped (ended unexpectedly at 2026-08-30T11:00:00Z)"  # (daemon.md §6)
    assert doc["updated_at"] == "2026-08-30T11:00:00Z"
    assert doc["rows_written"] == 3
    code, out, _ = run_cli(capsys, "daemon", "status")
    assert code == 0 and "Capture daemon  stopped (ended unexpectedly at 2026-08-30T11:00:00Z)" in out


def _live_status(home: Home, age_s: float, state: str = "running") -> PidLock:
    """This test process as a running daemon (it holds the lock) whose status was written `age_s` ago."""
    lock = PidLock(home.layout)
    lock.acquire()
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - age_s))
    control.write_status_file(home.layout, {
        "pid": os.getpid(), "version": "0.1.0", "mode": "detached", "state": state, "started_at": at,
        "updated_at": at, "watch": "events", "last_import_at": None, "rows_written": 7, "last_error": None,
        "retention_applied_at": None, "rows_pruned": None, "clients": {}})  # fmt: skip
    return lock


def test_daemon_status_shows_its_times_as_hyp_status_does(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    """`hyp daemon status` printed `2026-11-28T01:05:23Z` where `hyp status` and `hyp cache status` print
    `2026-11-28 01:05 UTC`: the text now uses the one format; --json keeps ISO 8601."""
    lock = _live_status(home, 0)
    try:
        st = json.loads(home.layout.daemon_status.read_text())
        st.update(started_at="2026-11-27T22:10:05Z", last_import_at="2026-11-28T01:05:23Z",
                  last_error={"at": "2026-11-28T00:59:59Z", "message": "claude: file 0123abcd: bad"},
                  retention_applied_at="2026-11-28T00:00:01Z", rows_pruned=4,
                  clients={"claude": {"root_state": "watching", "last_import_at": "2026-11-28T01:05:23Z",
                                      "rows_written": 7, "files_failed": 0}})
        control.write_status_file(home.layout, st)
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert code == 0
        lines = out.splitlines()
        assert "Started         2026-11-27 22:10 UTC" in lines
        assert next(x for x in lines if x.startswith("Updated")).endswith(" UTC")
        assert "Last import     2026-11-28 01:05 UTC" in lines
        assert "  claude   watching      rows 7  last import 2026-11-28 01:05 UTC" in lines
        assert "Last error      2026-11-28 00:59 UTC  claude: file 0123abcd: bad" in lines
        assert "Retention       2026-11-28 00:00 UTC (4 rows pruned)" in lines
        assert not re.search(r"\d\dT\d\d:", out), out
        code, out, _ = run_cli(capsys, "status")
        assert "last error 2026-11-28 00:59 UTC: claude: file 0123abcd: bad" in out, out
        code, out, _ = run_cli(capsys, "daemon", "status", "--json")
        doc = json.loads(out)
        assert (doc["started_at"], doc["last_import_at"]) == ("2026-11-27T22:10:05Z", "2026-11-28T01:05:23Z")
    finally:
        lock.release()


def test_a_running_daemon_whose_status_is_old_is_reported_stale(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    # e.g. the disk is full or run/ became read-only: the daemon lives on, its last status says "running"
    lock = _live_status(home, 7 * 60)
    try:
        code, out, err = run_cli(capsys, "daemon", "status")
        assert code == 0, err
        assert f"running (pid {os.getpid()}, detached), status stale" in out
        warning = next(line for line in out.splitlines() if line.startswith("Warning"))
        assert "status not updated for 7 min (a running daemon writes it every 30 s)" in warning
        assert f"unable to write to {home.layout.run_dir} (disk full? read-only?)" in warning
        assert str(home.layout.daemon_log) in warning and "hyp daemon restart" in warning
        code, out, _ = run_cli(capsys, "daemon", "status", "--json")
        doc = json.loads(out)
        assert code == 0 and doc["running"] is True and doc["state"] == "running"
        assert doc["stale"] is True and 7 * 60 <= doc["status_age_s"] < 8 * 60
        assert doc["warning"].startswith("status not updated for 7 min")
    finally:
        lock.release()


def test_a_status_a_few_heartbeats_old_is_not_stale(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    # one long step (a compaction, a flush waiting for a backfill's batch) delays heartbeats: not a problem yet
    lock = _live_status(home, 4 * control.HEARTBEAT_S)
    try:
        code, out, _ = run_cli(capsys, "daemon", "status", "--json")
        doc = json.loads(out)
        assert doc["stale"] is False and doc["warning"] is None and doc["status_age_s"] >= 120
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert "stale" not in out and "Warning" not in out
    finally:
        lock.release()
    # and a stopped daemon's status is as old as it is: never stale
    report = read_daemon_status(home.layout, now=time.time() + 3600)
    assert not report.running and report.stale is False


CHURN = """
import fcntl, os, sys
os.sched_setaffinity(0, {int(sys.argv[2])})  # (the kernel lists the locks taken on each CPU apart, in order)
held = [os.open(os.path.join(sys.argv[1], f"held{i}"), os.O_RDWR | os.O_CREAT) for i in range(120)]
for fd in held:
    fcntl.flock(fd, fcntl.LOCK_EX)
churn = [os.open(os.path.join(sys.argv[1], f"churn{i}"), os.O_RDWR | os.O_CREAT) for i in range(20)]
print("ready", flush=True)
while True:
    for fd in churn:
        fcntl.flock(fd, fcntl.LOCK_EX)
    for fd in churn:
        fcntl.flock(fd, fcntl.LOCK_UN)
"""


@pytest.mark.skipif(not os.path.exists("/proc/locks") or len(getattr(os, "sched_getaffinity", lambda _: ())(0)) < 2,
                    reason="Linux lock table, two CPUs")
def test_a_running_daemon_is_named_while_other_processes_take_and_drop_many_locks(
    home: Home, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A loaded machine (several test suites, daemons and SQLite databases at once) holds many file locks,
    taken and dropped all the time. The kernel's lock table is read a page at a time, and a line that moved
    between two pages was read twice or not at all: `hyp daemon status` then said "running (pid unknown)" with
    a warning to find the process by hand, for a daemon running well (a test failure under load)."""
    locks = tmp_path / "locks"
    locks.mkdir()
    cpus = os.sched_getaffinity(0)
    churn = subprocess.Popen([sys.executable, "-c", CHURN, str(locks), str(min(cpus))], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert churn.stdout.readline() == "ready\n"
        os.sched_setaffinity(0, {sorted(cpus)[1]})  # (the daemon's lock listed after the others')
        try:
            lock = _live_status(home, 0)
        finally:
            os.sched_setaffinity(0, cpus)
        try:
            want = f"running (pid {os.getpid()}, detached)"
            seen = [read_daemon_status(home.layout) for _ in range(500)]
            wrong = [r.message for r in seen if r.message != want or r.warning is not None]
            assert wrong == [], f"{len(wrong)} of 500: {wrong[0]}"
            code, out, _ = run_cli(capsys, "daemon", "status")
            assert out.splitlines()[0] == f"Capture daemon  {want}" and "Warning" not in out
        finally:
            lock.release()
    finally:
        churn.kill()
        churn.wait()


def test_a_status_older_than_three_heartbeats_says_how_old_it_is(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon frozen (a laptop asleep, SIGSTOP) or unable to write its status (a full disk) was "running"
    with nothing to tell for 5 minutes. Before the stale warning the text says how old the status is; no
    warning, no other state (one long step may delay the heartbeat)."""
    lock = _live_status(home, 4 * control.HEARTBEAT_S)
    try:
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert code == 0
        assert f"Capture daemon  running (pid {os.getpid()}, detached)\n" in out
        updated = next(line for line in out.splitlines() if line.startswith("Updated"))
        assert updated.endswith(", status updated 2 min ago (written every 30 s)")
        assert "Warning" not in out
    finally:
        lock.release()
    lock = _live_status(home, 0)
    try:
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert "status updated" not in out
    finally:
        lock.release()


def test_an_error_in_the_log_newer_than_the_status_is_shown(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk: the daemon logged `ERROR … No space left on device` but could not write its status, and
    `hyp daemon status` said "Last error none". The newest error of this run's log, when newer than the
    status's own, is shown; one from before the run started is not."""
    lock = _live_status(home, 200)
    home.layout.logs_dir.mkdir(parents=True, exist_ok=True)
    before = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(time.time() - 3600))
    after = time.gmtime(time.time() - 60)
    full = ("could not write the status file: [Errno 28] No space left on device; trying again every 30 s")
    home.layout.daemon_log.write_text(
        f"{before} ERROR an error of an earlier run\n"
        f"{time.strftime('%Y-%m-%dT%H:%M:%S+0000', after)} ERROR {full}\n"
        f"{time.strftime('%Y-%m-%dT%H:%M:%S+0000', after)} INFO claude: 3 rows\n")
    try:
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert code == 0
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", after)
        shown = time.strftime("%Y-%m-%d %H:%M UTC", after)
        assert "Last error      none" in out
        assert f"Logged error    {shown}  {full} (in the log, not in the status)" in out
        code, out, _ = run_cli(capsys, "daemon", "status", "--json")
        assert json.loads(out)["log_error"] == {"at": at, "message": full}
        # once the status holds that error (written again), the log line is not repeated
        st = json.loads(home.layout.daemon_status.read_text())
        st["last_error"] = {"at": at, "message": full}
        control.write_status_file(home.layout, st)
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert "Logged error" not in out and f"Last error      {shown}  {full}" in out
    finally:
        lock.release()


def test_a_daemon_that_never_wrote_its_status_is_reported_stale(home: Home) -> None:
    lock = PidLock(home.layout)
    lock.acquire()
    try:
        report = read_daemon_status(home.layout)
        assert (report.state, report.stale) == ("starting", False)
        report = read_daemon_status(home.layout, now=time.time() + control.STALE_AFTER_S + 60)
        assert report.state == "starting" and report.stale is True
        assert report.message == f"starting (pid {os.getpid()}), status stale"
        assert report.warning.startswith("no status written since it started 6 min ago")
    finally:
        lock.release()


# --- start / stop (acceptance 12) ---------------------------------------------------------------------------------


def test_start_twice_then_stop_twice(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "daemon", "start")
    assert code == 0, err + home.log_text()
    report = read_daemon_status(home.layout)
    assert report.running and report.mode == "detached"
    assert out.strip() == f"capture daemon running (pid {report.pid}, detached)"
    st = home.status()
    assert st["state"] == "running" and st["mode"] == "detached"
    # detached: its own session, stdin from the null device, output in logs/daemon.log
    assert os.getsid(report.pid) == report.pid
    assert os.path.realpath(f"/proc/{report.pid}/fd/0") == os.devnull
    assert os.path.realpath(f"/proc/{report.pid}/fd/2") == str(home.layout.daemon_log)
    assert json.loads(home.hyp_cmd("daemon", "status", "--json").stdout)["running"] is True

    code, out, err = run_cli(capsys, "daemon", "start")
    assert code == 1 and f"hyp daemon start: already running (pid {report.pid})" in err

    code, out, err = run_cli(capsys, "daemon", "stop")
    assert code == 0, err
    assert f"capture daemon stopped (pid {report.pid})" in out
    _reap()
    assert not read_daemon_status(home.layout).running
    assert home.status()["state"] == "stopped" and not home.layout.daemon_pid.exists()
    code, out, _ = run_cli(capsys, "daemon", "stop")
    assert (code, out.strip()) == (0, "not running")
    assert "capture daemon started" in home.layout.daemon_log.read_text()


def test_a_stop_behind_another_that_never_finishes_says_so_and_signals_nothing(home: Home) -> None:
    """`hyp daemon stop` waits for a stop under way rather than send a second signal (which ends the daemon at
    once, daemon.md §4.5); one that is not done in time is named, and nothing is signalled."""
    from filelock import FileLock

    daemon = _live_status(home, 0)  # (this process as the daemon: a signal would end the test)
    other = FileLock(str(home.layout.stop_lock))
    other.acquire()
    try:
        res = stop_daemon(home.layout, lock_wait=0.3)
        assert (res.ok, res.exit_code) == (False, 1)
        assert res.message == (f"still running (pid {os.getpid()}): another hyp daemon stop has been stopping "
                               "it for more than 0.3 s. Run hyp daemon stop again once that one has finished")
    finally:
        other.release()
        daemon.release()


def test_restart_says_which_daemon_it_stopped_and_which_it_started(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hyp daemon restart` printed only the new daemon's line: the stop of the old one went unsaid (and the log's
    "capture daemon stopped" named no pid, among the started lines that do)."""
    code, _, err = run_cli(capsys, "daemon", "start")
    assert code == 0, err + home.log_text()
    old = read_daemon_status(home.layout).pid
    code, out, err = run_cli(capsys, "daemon", "restart")
    assert code == 0, err + home.log_text()
    new = read_daemon_status(home.layout).pid
    assert new != old
    assert out.splitlines() == [f"capture daemon stopped (pid {old})", f"capture daemon running (pid {new}, detached)"]
    code, out, err = run_cli(capsys, "daemon", "stop")
    assert (code, out.strip()) == (0, f"capture daemon stopped (pid {new})"), err
    _reap()
    log_text = home.layout.daemon_log.read_text()
    for pid in (old, new):
        assert f"capture daemon stopped (pid {pid})" in log_text, log_text
    # (stopped cleanly: no start says the one before it ended unexpectedly)
    assert "ended unexpectedly" not in log_text, log_text
    # stopped, restart starts it
    code, out, err = run_cli(capsys, "daemon", "restart")
    assert code == 0, err + home.log_text()
    assert out.splitlines() == [f"capture daemon running (pid {read_daemon_status(home.layout).pid}, detached)"]
    code, _, err = run_cli(capsys, "daemon", "stop")
    assert code == 0, err
    _reap()


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL)


def test_a_live_stranger_pid_in_the_pid_file_is_never_signalled(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pid file said another live process (a `sleep`) while the daemon held the lock: `hyp daemon stop` killed
    the sleep, said "stopped", and left the daemon running, which neither stop nor start could reach after. The
    lock's real holder is the daemon, and that is the pid status and stop use."""
    code, _, err = run_cli(capsys, "daemon", "start")
    assert code == 0, err + home.log_text()
    daemon = read_daemon_status(home.layout).pid
    sleeper = _sleeper()
    try:
        home.layout.daemon_pid.write_text(f"{sleeper.pid}\n")
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert code == 0 and out.splitlines()[0] == f"Capture daemon  running (pid {daemon}, detached)"
        code, out, err = run_cli(capsys, "daemon", "start")
        assert code == 1 and err.strip() == f"hyp daemon start: already running (pid {daemon})"
        r = home.hyp_cmd("daemon", "run")
        assert r.returncode == 1 and r.stderr.strip() == f"hyp daemon run: already running (pid {daemon})"
        code, out, err = run_cli(capsys, "daemon", "stop")
        assert (code, out.strip()) == (0, f"capture daemon stopped (pid {daemon})"), err
        _reap()
        assert sleeper.poll() is None  # untouched
        assert not control.pid_alive(daemon)
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert out.splitlines()[0] == "Capture daemon  stopped"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_holder_that_cannot_be_identified_is_not_signalled(
    home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without /proc (macOS: no lock table, no command lines to read), when the pid file names another process
    than the daemon's status file, hyp says it cannot tell which process holds the lock and signals nothing."""
    code, _, err = run_cli(capsys, "daemon", "start")
    assert code == 0, err + home.log_text()
    daemon = read_daemon_status(home.layout).pid
    sleeper = _sleeper()
    monkeypatch.setattr(control, "_flock_holders", lambda st: None, raising=False)
    try:
        home.layout.daemon_pid.write_text(f"{sleeper.pid}\n")
        # no lock table, but /proc: the status file's pid is the one whose command line is a hyp daemon run
        assert read_daemon_status(home.layout).message == f"running (pid {daemon}, detached)"
        monkeypatch.setattr(control, "_has_proc", lambda: False, raising=False)
        unknown = (f"the capture daemon holds its lock but its pid is unknown (the pid in {home.layout.daemon_pid} "
                   "is not that of a hyp daemon, or cannot be checked here), so hyp signals nothing. Find the "
                   "process holding that file (fuser -v "
                   f"{home.layout.daemon_pid}, or lsof {home.layout.daemon_pid}), end it with kill <pid>, then "
                   "hyp daemon start")
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert out.splitlines()[:2] == ["Capture daemon  running (pid unknown)", f"Warning         {unknown}"]
        code, out, err = run_cli(capsys, "daemon", "stop")
        assert (code, out) == (1, "") and err.strip() == f"hyp daemon stop: {unknown}"
        code, out, err = run_cli(capsys, "daemon", "start")
        assert (code, out) == (1, "") and err.strip() == f"hyp daemon start: already running; {unknown}"
        assert sleeper.poll() is None and control.pid_alive(daemon)
        # the daemon's own pid back in its file: known again (the pid file and the status file agree)
        home.layout.daemon_pid.write_text(f"{daemon}\n")
        code, out, err = run_cli(capsys, "daemon", "stop")
        assert (code, out.strip()) == (0, f"capture daemon stopped (pid {daemon})"), err
        _reap()
    finally:
        sleeper.kill()
        sleeper.wait()
        os.kill(daemon, signal.SIGKILL) if control.pid_alive(daemon) else None


def test_concurrent_starts_one_daemon_the_others_say_already_running(home: Home) -> None:
    """Ten `hyp daemon start` at once: one daemon; the nine whose daemon lost the lock said "the capture daemon
    exited while starting". They say `already running (pid N)` (daemon.md §7) with the winner's pid."""
    procs = [subprocess.Popen([sys.executable, "-m", "hypaware_tui", "daemon", "start"], env=home.env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(10)]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    report = read_daemon_status(home.layout)
    assert report.running, home.log_text()
    winners = [r for r in results if r[0] == 0]
    assert [w[1].strip() for w in winners] == [f"capture daemon running (pid {report.pid}, detached)"], results
    losers = [r for r in results if r[0] != 0]
    assert len(losers) == 9
    assert {(code, out, err.strip()) for code, out, err in losers} == {
        (1, "", f"hyp daemon start: already running (pid {report.pid})")}, results


def test_start_without_config_and_with_capture_off(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    home.layout.config.unlink()
    code, out, err = run_cli(capsys, "daemon", "start")
    assert (code, out) == (1, "") and err.strip() == "hyp daemon start: not set up: run hyp init"
    home.write_config(enabled=False)
    assert json.loads(home.layout.config.read_text())["capture"]["enabled"] is False
    pids: list[int] = []

    def spawner(layout: Layout, env: dict[str, str]) -> Spawned:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        pids.append(proc.pid)
        # pretend it came up, as a real daemon would report
        layout.run_dir.mkdir(parents=True, exist_ok=True)
        control.write_status_file(layout, {"pid": proc.pid, "state": "running", "mode": "detached"})
        return Spawned(proc.pid, proc.poll)

    res = start_daemon(home.layout, spawner=spawner, timeout=5)
    try:
        assert res.ok and res.pid == pids[0]
        assert json.loads(home.layout.config.read_text())["capture"]["enabled"] is True
        assert any("turned it on" in n for n in res.notes)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        _reap()


def test_start_that_fails_prints_the_log_tail(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    def spawner(layout: Layout, env: dict[str, str]) -> Spawned:
        fd = control.open_log_append(layout.daemon_log)
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys\nfor i in range(30): print('line', i)\nsys.exit(3)"],
            stdout=fd, stderr=fd)
        os.close(fd)
        return Spawned(proc.pid, proc.poll)

    res = start_daemon(home.layout, spawner=spawner, timeout=20)
    assert not res.ok and res.exit_code == 1
    assert "exited while starting" in res.message and str(home.layout.daemon_log) in res.message
    assert res.log_tail == [f"line {i}" for i in range(10, 30)]


def test_start_with_a_damaged_checkpoint_database_fails_with_its_own_error(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    home.layout.state_dir.mkdir(parents=True)
    home.layout.ingest_db.write_bytes(b"\x8f not sqlite " * 2000)
    home.layout.logs_dir.mkdir(parents=True)
    home.layout.daemon_log.write_text("2026-08-01T10:00:00+0000 ERROR an older run's problem\nTraceback (most "
                                      "recent call last):\n  File \"old.py\"\n")
    code, out, err = run_cli(capsys, "daemon", "start")
    _reap()
    assert code == 1 and out == ""
    problem = f"cannot use the checkpoint database {home.layout.ingest_db}: file is not a database. If it is damaged"
    first, *rest = err.splitlines()
    assert first.startswith(f"hyp daemon start: the capture daemon exited while starting: {problem}")
    assert first.endswith(f"(log: {home.layout.daemon_log})")
    # the log lines of this start only: its error, not an earlier run's traceback
    assert rest[0] == f"last lines of {home.layout.daemon_log}:"
    assert len(rest) == 2 and f"ERROR {problem}" in rest[1], err
    assert home.status()["last_error"]["message"].startswith(problem)


def test_start_and_stop_through_the_service(home: Home) -> None:
    fake = FakeServiceManager(home.home / "unit.service", available=True)
    fake.unit_path.write_text("[Service]\n")
    procs: list[subprocess.Popen[bytes]] = []
    fake.on_start = lambda: procs.append(home.spawn_daemon(extra_env={"HYP_DAEMON_MODE": "service"}))
    fake.on_stop = lambda: [p.send_signal(signal.SIGTERM) for p in procs if p.poll() is None]
    try:
        res = start_daemon(home.layout, service=fake, timeout=30)
        assert res.ok, res.message + home.log_text()
        assert res.message == f"capture daemon running (pid {procs[0].pid}, service)"
        assert read_daemon_status(home.layout).mode == "service"
        res = stop_daemon(home.layout, service=fake)
        assert res.ok and fake.calls == ["start", "stop"]
        assert procs[0].wait(timeout=15) == 0
        # again, with the first run's "stopped" report in the status file: the wait is for the new run (it
        # took that report, before the new daemon wrote anything, for a failure to start)
        assert read_daemon_status(home.layout).state == "stopped"
        res = start_daemon(home.layout, service=fake, timeout=30)
        assert res.ok and res.message == f"capture daemon running (pid {procs[1].pid}, service)", res.message
        assert stop_daemon(home.layout, service=fake).ok and procs[1].wait(timeout=15) == 0
    finally:
        for p in procs:
            stop(p)


def test_start_and_stop_leave_a_unit_for_another_hyp_home_alone(home: Home,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A unit written before HYP_HOME moved runs hyp with the old HYP_HOME: `hyp daemon start` went through it
    (a daemon for the other HYP_HOME), then waited here for one that never came and said it did not start."""
    from hypaware_tui.core.daemon.service import render_systemd_unit, unit_spec

    fake = FakeServiceManager(home.home / "unit.service", available=True)
    fake.unit_path.write_text(render_systemd_unit(unit_spec(sys.executable, "/elsewhere/hyp",
                                                            "/elsewhere/hyp/logs/daemon.log", {})))
    service.set_service_manager_factory(lambda: fake)
    code, out, err = run_cli(capsys, "daemon", "start")
    assert code == 0, err + home.log_text()
    pid = read_daemon_status(home.layout).pid
    assert out.splitlines() == [
        "the installed service unit runs hyp with HYP_HOME=/elsewhere/hyp, not this one; run hyp daemon install "
        "to point it here; starting the daemon detached instead",
        f"capture daemon running (pid {pid}, detached)",
    ]
    assert fake.calls == []
    assert run_cli(capsys, "daemon", "stop")[0] == 0
    _reap()
    # a daemon that the unit started here before it was pointed elsewhere: stopped here, not the other one
    proc = home.spawn_daemon(extra_env={"HYP_DAEMON_MODE": "service"})
    try:
        assert control.wait_until_up(home.layout, timeout=30, pid=proc.pid, proc=proc)[0] == "up"
        assert read_daemon_status(home.layout).mode == "service"
        assert stop_daemon(home.layout, service=fake).ok
        assert proc.wait(timeout=15) == 0 and fake.calls == []
    finally:
        stop(proc)


# --- the wizard's action (acceptance 17) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("capture_on", "running", "changed", "expected"),
    [
        (True, False, False, "start"),
        (True, False, True, "start"),
        (True, True, True, "restart"),
        (True, True, False, "none"),
        (False, True, False, "stop"),
        (False, True, True, "stop"),
        (False, False, True, "none"),
        (False, False, False, "none"),
    ],
)
@pytest.mark.parametrize("service_state", ["installed", "unavailable", "absent"])
def test_action_table(tmp_path: Path, capture_on: bool, running: bool, changed: bool, expected: str,
                      service_state: str) -> None:
    layout = Layout(tmp_path / "hyp")
    fake = FakeServiceManager(tmp_path / "unit", available=service_state != "unavailable")
    if service_state != "absent":
        fake.unit_path.write_text("x")
    table = {layout.home: 4242} if running else {}
    plan = plan_daemon_action(layout, capture_on=capture_on, config_changed=changed,
                              process_table=lambda lay: table.get(lay.home), service=fake)
    assert plan.action == expected
    assert plan.running_pid == (4242 if running else None)
    if expected == "none":
        assert plan.mode is None
    else:
        assert plan.mode == ("service" if service_state == "installed" else "detached")
    assert fake.calls == []  # planning only probes
    assert not layout.home.exists()


def test_action_demo_and_dry_run_and_interrupted(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "hyp")
    fake = FakeServiceManager(tmp_path / "unit")
    demo = plan_daemon_action(layout, capture_on=True, config_changed=True, demo=True,
                              process_table=lambda _l: None, service=fake)
    assert (demo.action, demo.reason) == ("none", "not started (demo)")
    res = perform_daemon_action(layout, demo, service=fake)
    assert (res.status, res.capture_line) == ("skipped", "not started (demo)")
    plan = DaemonAction("start", "detached", "capture on, daemon not running")
    for kwargs in ({"dry_run": True}, {"interrupted": True}):
        res = perform_daemon_action(layout, plan, service=fake,
                                    spawner=lambda *_a: pytest.fail("must not spawn"), **kwargs)
        assert res.status == "skipped"
    declined = plan_daemon_action(layout, capture_on=False, config_changed=True, user_declined=True,
                                  process_table=lambda _l: None, service=fake)
    assert declined.action == "none"
    res = perform_daemon_action(layout, declined, service=fake)
    assert res.capture_line == "not started (you chose not to)"
    assert fake.calls == [] and not layout.home.exists()
    assert decide(True, False, False) == ("start", "capture on, daemon not running")


def test_action_perform_start_restart_stop_real_daemon(home: Home) -> None:
    fake = FakeServiceManager(home.home / "unit", available=True)  # not installed: detached
    plan = plan_daemon_action(home.layout, capture_on=True, config_changed=False, service=fake)
    assert (plan.action, plan.mode) == ("start", "detached")
    res = perform_daemon_action(home.layout, plan, service=fake, timeout=30)
    assert res.status == "ok", res
    first = res.pid
    assert res.capture_line == f"running (pid {first}), new sessions appear within seconds"
    assert res.to_json() == {"action": "start", "status": "ok", "mode": "detached", "pid": first, "error": None}

    plan = plan_daemon_action(home.layout, capture_on=True, config_changed=False, service=fake)
    assert plan.action == "none"
    assert perform_daemon_action(home.layout, plan, service=fake).pid == first

    plan = plan_daemon_action(home.layout, capture_on=True, config_changed=True, service=fake)
    assert plan.action == "restart"
    res = perform_daemon_action(home.layout, plan, service=fake, timeout=30)
    assert res.status == "ok" and res.pid != first
    _reap()
    plan = plan_daemon_action(home.layout, capture_on=False, config_changed=True, service=fake)
    assert plan.action == "stop"
    res = perform_daemon_action(home.layout, plan, service=fake)
    assert (res.status, res.capture_line) == ("ok", "stopped")
    _reap()
    assert not read_daemon_status(home.layout).running
    assert fake.calls == []


def test_action_failure_names_error_and_log(home: Home) -> None:
    def spawner(layout: Layout, env: dict[str, str]) -> Spawned:
        raise OSError(28, "No space left on device")

    plan = DaemonAction("start", "detached", "capture on, daemon not running")
    res = perform_daemon_action(home.layout, plan, service=None, spawner=spawner)
    assert res.status == "failed" and "No space left on device" in (res.error or "")
    assert res.log_path == str(home.layout.daemon_log)
    assert res.capture_line.startswith("failed to start: ") and f"(log: {home.layout.daemon_log})" in res.capture_line


def test_pid_lock_probe_never_blocks_a_starting_daemon(home: Home) -> None:
    """`hyp status` probing the lock while a daemon takes it must not make the daemon think it is a
    second instance (the daemon retries briefly)."""
    home.layout.run_dir.mkdir(parents=True)
    stop_at = time.monotonic() + 1.0
    import threading

    def probe() -> None:
        while time.monotonic() < stop_at:
            control.lock_held(home.layout)

    t = threading.Thread(target=probe)
    t.start()
    try:
        for _ in range(50):
            lock = PidLock(home.layout)
            lock.acquire()
            lock.release()
    finally:
        t.join()


# --- the daemon log ---------------------------------------------------------------------------------------------------


def test_daemon_log_rotates_at_5_mb_keeping_3(tmp_path: Path) -> None:
    import logging

    from hypaware_tui.core.daemon.loop import DaemonLogHandler

    layout = Layout(tmp_path / "hyp")
    layout.logs_dir.mkdir(parents=True)
    log = layout.daemon_log
    handler = DaemonLogHandler(layout, "foreground")
    logger = logging.getLogger("test.daemon.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for generation in range(5):
            log.write_bytes(b"x" * (control.LOG_MAX_BYTES - 10) + f"{generation}\n".encode())
            logger.warning("line after generation %d", generation)
    finally:
        logger.removeHandler(handler)
    names = sorted(p.name for p in layout.logs_dir.iterdir())
    assert names == ["daemon.log", "daemon.log.1", "daemon.log.2", "daemon.log.3"]
    assert "line after generation 4" in log.read_text()
    assert log.stat().st_size < 1000
    assert (layout.logs_dir / "daemon.log.1").read_bytes().endswith(b"4\n")
    assert (layout.logs_dir / "daemon.log.3").read_bytes().endswith(b"2\n")
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_status_text_of_a_running_daemon(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    home.session("s1").write_text("")
    proc = home.spawn_daemon()
    try:
        home.wait_state("running", pid=proc.pid)
        code, out, _ = run_cli(capsys, "daemon", "status")
        assert code == 0
        assert f"running (pid {proc.pid}, foreground)" in out
        assert "  claude   watching" in out and "Last error      none" in out, out
    finally:
        assert stop(proc) == 0


def _lines(out: str) -> list[str]:
    return out.splitlines()


def test_status_after_kill_9_says_nothing_is_watched_and_how_to_start(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `kill -9`, `hyp daemon status` listed the client as `watching` and gave no next step. It says
    that nothing is watched, how to start it and where its log is; the end keeps daemon.md §6's words,
    `ended unexpectedly at <updated_at>` (the daemon's last status update)."""
    home.session("s1").write_text("")
    proc = home.spawn_daemon()
    try:
        st = home.wait_state("running", pid=proc.pid)
        assert st["clients"]["claude"]["root_state"] == "watching"
    finally:
        proc.kill()
        proc.wait()
    st = home.status()
    assert st is not None and st["state"] == "running"  # what a killed daemon leaves behind
    seen = st["updated_at"]
    log = home.layout.daemon_log
    code, out, err = run_cli(capsys, "daemon", "status")
    assert code == 0, err
    lines = _lines(out)
    assert lines[0] == f"Capture daemon  stopped (ended unexpectedly at {seen})", out
    assert lines[1] == f"Next            start it: hyp daemon start; its log may say why it ended: {log}", out
    assert "Watch           -" in lines, out
    assert any(line.startswith("  claude   not watching  rows 0") for line in lines), out
    assert "  claude   watching" not in out, out

    code, out, _ = run_cli(capsys, "daemon", "status", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["running"] is False and doc["state"] == "stopped"
    assert doc["ended_unexpectedly"] is True
    assert doc["message"] == f"stopped (ended unexpectedly at {seen})"
    assert doc["updated_at"] == st["updated_at"]  # (the time itself is kept, under its own name)
    assert doc["watch"] is None and doc["clients"]["claude"]["root_state"] is None
    assert doc["clients"]["claude"]["rows_written"] == 0

    code, out, _ = run_cli(capsys, "status")  # the same words in `hyp status`
    assert f"Daemon    stopped (ended unexpectedly at {seen}) · foreground" in _lines(out), out
    assert ("          warning: capture is on but the daemon is not running (start it: hyp daemon start; "
            f"its log may say why it ended: {log})") in _lines(out), out


def test_status_after_a_clean_stop_is_not_watching_and_says_how_to_start(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a clean stop the clients were still listed as `watching`, and no next step was given."""
    home.session("s1").write_text("")
    proc = home.spawn_daemon()
    try:
        home.wait_state("running", pid=proc.pid)
    finally:
        assert stop(proc) == 0
    assert home.wait_state("stopped", pid=proc.pid)["clients"]["claude"]["root_state"] == "watching"
    code, out, err = run_cli(capsys, "daemon", "status")
    assert code == 0, err
    lines = _lines(out)
    assert lines[:2] == ["Capture daemon  stopped", "Next            start it: hyp daemon start"], out
    assert any(line.startswith("  claude   not watching  rows 0") for line in lines), out
    assert "  claude   watching" not in out and "unexpectedly" not in out, out
    doc = json.loads(run_cli(capsys, "daemon", "status", "--json")[1])
    assert doc["message"] == "stopped" and doc["ended_unexpectedly"] is False
    assert doc["watch"] is None and doc["clients"]["claude"]["root_state"] is None

    home.write_config(enabled=False, capture={"poll_seconds": 0.5})  # capture turned off: start turns it on
    lines = _lines(run_cli(capsys, "daemon", "status")[1])
    assert lines[1] == ("Next            capture is off in the config; hyp daemon start turns it on and starts "
                        "the daemon"), lines
    home.layout.config.unlink()
    assert _lines(run_cli(capsys, "daemon", "status")[1])[1] == "Next            hyp init"


def test_start_with_relative_client_roots_watches_the_folders_meant_here(
    home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`CLAUDE_CONFIG_DIR=claude hyp daemon start`: the backfill read ./claude, but the detached daemon runs in
    `/` and was handed the relative value as it was, so it waited for /claude and captured nothing, saying
    nothing (status running, the clients `waiting`). It gets the roots the importers resolve here."""
    work = home.base / "work"
    (work / "claude" / "projects" / "-p").mkdir(parents=True)
    (work / "codex" / "sessions").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "claude")
    monkeypatch.setenv("CODEX_HOME", "codex")
    home.write_config(capture={"poll_seconds": 0.5, "flush_seconds": 0.5}, clients={"claude": True, "codex": True})
    code, out, err = run_cli(capsys, "daemon", "start")
    assert code == 0, err + home.log_text()
    home.wait_state("running")
    (work / "claude" / "projects" / "-p" / "s1.jsonl").write_text(session_text("s1-relative", 4, now_utc()))

    def status_lines() -> list[str]:
        return _lines(run_cli(capsys, "daemon", "status")[1])

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(ln.startswith("  claude   watching      rows 6  ")
                                                  for ln in status_lines()):
        time.sleep(0.2)
    lines = status_lines()
    assert any(ln.startswith("  claude   watching      rows 6  ") for ln in lines), lines + [home.log_text()]
    assert any(ln.startswith("  codex    watching") for ln in lines), lines
    assert run_cli(capsys, "daemon", "stop")[0] == 0
    _reap()


# --- mutation audit: pid file, start, restart ------------------------------------------------------------------


def test_a_daemon_that_stops_leaves_the_pid_file_of_the_one_that_took_over_alone(home: Home) -> None:
    """run/daemon.pid removed by hand while a daemon runs (a cleanup of run/) lets a second daemon lock a new file.
    The first one, stopping, must not remove that file: the second runs on, and a third start must be refused."""
    first = PidLock(home.layout)
    first.acquire()
    home.layout.daemon_pid.unlink()
    second = PidLock(home.layout)
    second.acquire()
    try:
        first.release()
        assert home.layout.daemon_pid.read_text() == f"{os.getpid()}\n"
        assert control.lock_held(home.layout)
        with pytest.raises(AlreadyRunning) as exc:
            PidLock(home.layout).acquire()
        assert str(exc.value) == f"already running (pid {os.getpid()})"
    finally:
        second.release()
    assert not home.layout.daemon_pid.exists()


def test_a_daemon_that_reports_running_then_dies_is_not_a_successful_start(home: Home) -> None:
    """A daemon that wrote `running` and died right after (no `stopped`: a crash) did not start: exit 1 with the
    log, not `capture daemon running (pid N)` for a process that is gone."""
    def spawner(layout: Layout, env: dict[str, str]) -> Spawned:
        code = ("import json, os, sys\n"
                "st = {'pid': os.getpid(), 'state': 'running', 'mode': 'detached', 'updated_at': sys.argv[2]}\n"
                "open(sys.argv[1], 'w').write(json.dumps(st))\nprint('crashed after running')\n")
        layout.run_dir.mkdir(parents=True, exist_ok=True)
        fd = control.open_log_append(layout.daemon_log)
        proc = subprocess.Popen([sys.executable, "-c", code, str(layout.daemon_status), control.utc_iso()],
                                stdout=fd, stderr=fd)
        os.close(fd)
        proc.wait()  # (it has written `running` and is gone before the starter looks)
        return Spawned(proc.pid, proc.poll)

    res = start_daemon(home.layout, spawner=spawner, timeout=5)
    assert (res.ok, res.exit_code) == (False, 1), res.message
    assert res.message == f"the capture daemon exited while starting (log: {home.layout.daemon_log})"
    assert res.log_tail == ["crashed after running"]


def test_restart_whose_stop_fails_says_so_and_starts_nothing(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon still running 10 s after SIGTERM: `hyp daemon restart` exits 1 with stop's hint (run stop again),
    and starts nothing (else its error was `already running`, and the hint went to stdout as a note)."""
    code = ("import json, os, signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "from hypaware_tui.core.daemon.control import PidLock, utc_iso, write_status_file\n"
            "from hypaware_tui.core.paths import Layout\n"
            "from pathlib import Path\n"
            "layout = Layout(Path(sys.argv[1]))\n"
            "lock = PidLock(layout)\nlock.acquire()\n"
            "write_status_file(layout, {'pid': os.getpid(), 'state': 'running', 'mode': 'detached',\n"
            "                           'started_at': utc_iso(), 'updated_at': utc_iso()})\n"
            "print('ready', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(home.layout.home)], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        spawned_before = home.layout.daemon_log.exists()
        code_, out, err = run_cli(capsys, "daemon", "restart")
        assert code_ == 1
        assert out == ""
        assert err.strip() == (f"hyp daemon restart: still running (pid {proc.pid}) after 10 s; it may be finishing "
                               f"a large batch. Run hyp daemon stop again to end it at once (or kill {proc.pid}): the "
                               "lines of the batch it has not written are read again next time")
        assert proc.poll() is None and home.layout.daemon_log.exists() == spawned_before  # (nothing spawned)
    finally:
        proc.kill()
        proc.wait()


def test_a_detached_daemon_started_with_a_relative_hyp_home_runs_on_it_and_not_in_this_folder(
    home: Home, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`HYP_HOME=hyp hyp daemon start` in some folder: the detached daemon runs in `/` and must be handed the
    absolute HYP_HOME (a relative one named /hyp there); and it keeps no folder busy (this one, say a USB drive
    to unmount): its working directory is `/`."""
    work = home.base / "work"
    work.mkdir()
    (work / "hyp-relative-home").symlink_to(home.layout.home)  # (a name no folder at / has)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HYP_HOME", "hyp-relative-home")
    code, out, err = run_cli(capsys, "daemon", "start")
    try:
        assert code == 0, err + home.log_text()
        pid = home.status()["pid"]
        assert out.strip() == f"capture daemon running (pid {pid}, detached)"
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        assert json.loads(home.hyp_cmd("daemon", "status", "--json").stdout)["pid"] == pid
    finally:
        assert run_cli(capsys, "daemon", "stop")[0] == 0
        _reap()
