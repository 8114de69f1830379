"""`hyp status` data (core/status.py) and its clients / daemon / recent-errors sections (cli.md §6).

The config and dataset sections are covered in test_cli_frame.py; this file covers what gather_status adds."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hypaware_tui.cli import main
from hypaware_tui.core.daemon.control import PidLock, write_status_file
from hypaware_tui.core.events import EventLog
from hypaware_tui.core.paths import Layout, ensure_dir
from hypaware_tui.core.status import (
    dataset_section,
    gather_status,
    newer_log_error,
    parse_ts,
    recent_errors,
    status_exit_code,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NOW = datetime.now(UTC).replace(microsecond=0)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    claude = tmp_path / "claude-home"
    shutil.copytree(FIXTURES / "claude" / "home" / ".claude", claude)
    return {
        "HOME": str(tmp_path / "user"),
        "CLAUDE_CONFIG_DIR": str(claude),
        "CODEX_HOME": str(tmp_path / "no-codex"),
    }


def write_config(layout: Layout, **over: object) -> None:
    ensure_dir(layout.home)
    data = {"version": 1, "clients": {"claude": {"enabled": True}}, "retention_days": 30,
            "capture": {"enabled": True}}  # fmt: skip
    data.update(over)
    layout.config.write_text(json.dumps(data))


def test_gather_status_of_a_missing_home_creates_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    layout = Layout(tmp_path / "missing" / "hyp")
    report = gather_status(layout, env)
    assert set(report) == {"hyp_home", "version", "config", "clients", "dataset", "daemon", "recent_errors"}
    assert report["config"]["state"] == "missing" and report["daemon"]["state"] == "never started"
    assert report["recent_errors"] == [] and status_exit_code(report) == 0
    assert not layout.home.exists() and not layout.home.parent.exists()


def test_clients_section(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Files, size and sessions per client, from listing and stat'ing the files: none is opened (the head
    and tail reads of `hyp backfill list` took 1-2 s for 20,000 transcripts)."""
    from hypaware_tui.importers.claude import ClaudeImporter

    def no_reads(self, *a, **kw):
        raise AssertionError("status opened a transcript")

    monkeypatch.setattr(ClaudeImporter, "inventory_file", no_reads)
    layout = Layout(tmp_path / "hyp")
    write_config(layout)
    clients = {c["client"]: c for c in gather_status(layout, env)["clients"]}
    assert list(clients) == ["claude", "codex"]
    claude = clients["claude"]
    jsonl = sorted(Path(env["CLAUDE_CONFIG_DIR"]).rglob("*.jsonl"))
    assert claude["detected"] is True and claude["enabled"] is True
    assert claude["root"] == env["CLAUDE_CONFIG_DIR"]
    assert claude["files"] == len(jsonl) and claude["bytes"] == sum(p.stat().st_size for p in jsonl)
    # a session is a transcript: subagent files (`agent-*.jsonl`, under `subagents/` or beside their session)
    # are files of their parent's session, not sessions of their own
    sessions = [p for p in jsonl if "subagents" not in p.parts and not p.name.startswith("agent-")]
    assert claude["sessions"] == len(sessions) < claude["files"]
    assert "oldest" not in claude  # the date range is `hyp backfill list`'s
    assert claude["files_failed"] == 0 and claude["error"] is None
    codex = clients["codex"]
    assert codex["detected"] is False and codex["enabled"] is False
    assert env["CODEX_HOME"] in codex["reason"] and codex["files"] is None
    assert set(claude) == set(codex)
    # Without a config, `enabled` is unknown (null).
    assert {c["enabled"] for c in gather_status(Layout(tmp_path / "other"), env)["clients"]} == {None}


def test_daemon_section_uses_pid_and_lock(tmp_path: Path, env: dict[str, str]) -> None:
    layout = Layout(tmp_path / "hyp")
    write_config(layout)
    lock = PidLock(layout)
    lock.acquire()
    try:
        write_status_file(layout, {"pid": os.getpid(), "state": "running", "mode": "detached",
                                   "last_import_at": iso(NOW), "rows_written": 42,
                                   "updated_at": iso(NOW)})  # fmt: skip
        d = gather_status(layout, env, include_clients=False)["daemon"]
        assert (d["running"], d["state"], d["pid"], d["mode"], d["rows_written"]) == (
            True, "running", os.getpid(), "detached", 42
        )  # fmt: skip
    finally:
        lock.release()
    d = gather_status(layout, env, include_clients=False)["daemon"]
    assert d["running"] is False and d["state"] == "stopped" and d["ended_unexpectedly"] is True


def test_recent_errors_newest_first_from_every_source(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "hyp")
    daemon = {
        "last_error": {"at": iso(NOW - timedelta(hours=1)), "message": "flush failed: disk full"},
        "clients": {
            "codex": {"last_error": {"at": iso(NOW - timedelta(hours=2)), "message": "root unreadable"}},
            "claude": {"last_error": None},
        },
    }
    log = EventLog(layout, "R", enabled=True)
    log.emit("backfill.provider_finish", provider="claude", status="failed", error="could not parse a file")
    log.emit("backfill.provider_finish", provider="codex", status="ok", error=None)
    # a client that was not found is skipped, not an error (cli.md §5.1): not listed for a week
    log.emit("backfill.provider_finish", provider="codex", status="skipped", error="not detected")
    ensure_dir(layout.logs_dir)
    old = (NOW - timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    recent = (NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    layout.daemon_log.write_text(
        f"{old} ERROR too old to show\n"
        f"{recent} INFO claude: imported 3 row(s)\n"
        f"{recent} ERROR the retention pass failed: permission denied\n"
    )
    errors = recent_errors(layout, daemon, now=NOW)
    assert [(e["source"], e["message"]) for e in errors] == [
        ("claude", "could not parse a file"),
        ("daemon", "flush failed: disk full"),
        ("daemon codex", "root unreadable"),
        ("daemon log", "the retention pass failed: permission denied"),
    ]
    assert all(e["at"].endswith("Z") for e in errors)
    assert len(recent_errors(layout, daemon, now=NOW, limit=2)) == 2
    # Eight days later everything is older than the 7-day window.
    assert recent_errors(layout, daemon, now=NOW + timedelta(days=8)) == []


def test_recent_errors_are_deduplicated_and_capped(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "hyp")
    log = EventLog(layout, "R", enabled=True)
    for i in range(8):
        log.emit("backfill.provider_finish", provider="codex", status="failed", error=f"failure {i}")
    at = iso(NOW - timedelta(minutes=5))
    daemon = {"last_error": {"at": at, "message": "same"}, "clients": {"claude": {"last_error": {"at": at,
              "message": "same"}}}}  # fmt: skip
    errors = recent_errors(layout, daemon, now=NOW + timedelta(seconds=1))
    assert len(errors) == 5
    assert [e["message"] for e in errors[:5]] == [
        "failure 7",
        "failure 6",
        "failure 5",
        "failure 4",
        "failure 3",
    ]
    only_daemon = recent_errors(Layout(tmp_path / "other"), daemon, now=NOW)
    assert [e["message"] for e in only_daemon] == ["same"]


def test_two_clients_that_failed_alike_in_the_same_second_are_both_listed(tmp_path: Path) -> None:
    """A full disk failed both clients' imports with the same text in the same second: Recent errors listed
    codex only (the same-second rule took them for one error said twice; message audit). Both are listed; a
    daemon's client error no longer says its client twice ("daemon claude: claude: …")."""
    layout = Layout(tmp_path / "hyp")
    log = EventLog(layout, "R", enabled=True)
    disk = "could not write to the dataset: No space left on device"
    log.emit("backfill.provider_finish", provider="claude", status="failed", error=disk)
    log.emit("backfill.provider_finish", provider="codex", status="failed", error=disk)
    at = iso(NOW - timedelta(minutes=5))
    daemon = {"clients": {"claude": {"last_error": {"at": at, "message": "claude: a folder cannot be read"}}}}
    errors = recent_errors(layout, daemon, now=NOW + timedelta(seconds=1))
    assert sorted((e["source"], e["message"]) for e in errors) == [
        ("claude", disk), ("codex", disk), ("daemon claude", "a folder cannot be read")]


def test_a_backfill_file_error_is_listed_once(tmp_path: Path) -> None:
    """A file error was listed twice: its `backfill.file_error` event, and the provider's finish, which repeats
    its first error when the run ends (a later second, so the same-second rule did not catch it)."""
    layout = Layout(tmp_path / "hyp")
    ensure_dir(layout.logs_dir)
    msg = "f000fdc72a831030: cannot read a Codex sessions folder (Permission denied); its rollouts are skipped."

    def ev(at: datetime, event: str, run: str, **fields: object) -> str:
        return json.dumps({"ts": iso(at), "event": event, "dev_run_id": run, "provider": "codex", **fields})

    t1, t2 = NOW - timedelta(hours=2), NOW - timedelta(hours=1)
    layout.events_log.write_text("\n".join([
        ev(t1, "backfill.file_error", "R1", error=msg),
        ev(t1 + timedelta(seconds=40), "backfill.provider_finish", "R1", status="ok", errors=1, error=msg),
        ev(t2, "backfill.file_error", "R2", error=msg),  # the next run meets it again: listed again
        ev(t2 + timedelta(seconds=3), "backfill.provider_finish", "R2", status="ok", errors=1, error=msg),
        ev(t2 + timedelta(seconds=4), "backfill.provider_finish", "R3", status="failed", error="disk full"),
    ]) + "\n")
    errors = recent_errors(layout, {}, now=NOW)
    assert [(e["at"], e["source"], e["message"]) for e in errors] == [
        (iso(t2 + timedelta(seconds=4)), "codex", "disk full"),
        (iso(t2), "codex", msg),
        (iso(t1), "codex", msg),
    ]


def _log_line(at: datetime, level: str, message: str) -> str:
    return f"{at.strftime('%Y-%m-%dT%H:%M:%S+0000')} {level} {message}\n"


def test_recent_errors_read_the_rotated_log_and_critical_lines(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "hyp")
    ensure_dir(layout.logs_dir)
    t = NOW - timedelta(hours=2)
    layout.daemon_log.write_text(_log_line(t, "ERROR", "a flush failed"))
    layout.daemon_log.with_name("daemon.log.1").write_text(_log_line(t - timedelta(hours=1), "CRITICAL", "it died"))
    assert [(e["source"], e["message"]) for e in recent_errors(layout, {}, now=NOW)] == [
        ("daemon log", "a flush failed"), ("daemon log", "it died")
    ]


def test_newer_log_error_skips_the_status_own_error_and_takes_the_last_line(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "hyp")
    ensure_dir(layout.logs_dir)
    t0, t1 = NOW - timedelta(hours=1), NOW - timedelta(minutes=10)
    daemon = {"started_at": iso(t0), "last_error": {"at": iso(t1), "message": "disk full"}}
    # another line of the status error's own second, and the status's error logged a second later: not newer
    layout.daemon_log.write_text(_log_line(t1, "ERROR", "other") + _log_line(t1 + timedelta(seconds=1), "ERROR",
                                                                             "disk full"))  # fmt: skip
    assert newer_log_error(layout, daemon) is None
    # two errors in one second: the later line
    t2 = t1 + timedelta(minutes=1)
    layout.daemon_log.write_text(_log_line(t2, "ERROR", "first") + _log_line(t2, "ERROR", "second"))
    assert newer_log_error(layout, daemon) == {"at": iso(t2), "message": "second"}


def test_one_unreadable_dataset_file_is_named_in_the_singular(tmp_path: Path) -> None:
    from helpers import make_row

    from hypaware_tui.core.storage import Storage

    layout = Layout(tmp_path / "hyp")
    with Storage(layout) as store:
        store.commit([make_row(created="2026-05-09T10:00:00Z")], [])
    bad = layout.dataset_root / "source=claude" / "date=2026-05-09" / "part-zz.parquet"
    bad.write_bytes(b"not parquet")
    assert dataset_section(layout)["error"].startswith(f"1 unreadable file: {bad} (damaged or not written by hyp). ")


def test_the_last_import_with_a_rows_count_that_is_no_number(tmp_path: Path) -> None:
    from hypaware_tui.core.status import last_import

    layout = Layout(tmp_path / "hyp")
    EventLog(layout, "R", enabled=True).emit("backfill.finish", status="ok", rows_written="3")
    assert last_import(layout) == {"at": last_import(layout)["at"], "status": "ok", "rows_written": None}


def test_more_than_ten_ignored_paths_name_ten_and_count_the_others(tmp_path: Path) -> None:
    from hypaware_tui.core.status import ignored_text

    layout = Layout(tmp_path / "hyp")
    paths = [str(layout.dataset_root / f"x{i:02d}.parquet") for i in range(12)]
    text = ignored_text(paths, layout)
    assert text.startswith(f"12 paths under {layout.dataset_root} are not part of the dataset")
    assert "x09.parquet and 2 more. No query reads them" in text and "x10" not in text


def _configured_home(tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Layout:
    """A configured HYP_HOME, with this process's environment pointing at it."""
    layout = Layout(tmp_path / "hyp")
    write_config(layout)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HYP_HOME", str(layout.home))
    return layout


@pytest.mark.parametrize("state", ["running", "degraded"])
def test_a_running_daemon_with_an_old_status_is_stale_in_hyp_status(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    state: str,
) -> None:
    """A live daemon whose status file stopped being updated, running or degraded (a degraded one that then hangs
    is as stale: its "degraded" is only what it last wrote)."""
    layout = _configured_home(tmp_path, env, monkeypatch)
    lock = PidLock(layout)
    lock.acquire()
    try:
        old = iso(datetime.now(UTC) - timedelta(minutes=12, seconds=20))  # (not NOW: taken at collection)
        write_status_file(layout, {"pid": os.getpid(), "state": state, "mode": "detached",
                                   "started_at": old, "updated_at": old, "rows_written": 3,
                                   "last_import_at": "2026-11-27T14:21:01.250Z"})  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main(["status"])
        out = capsys.readouterr().out
        assert info.value.code == 0
        assert f"{state} (status stale) · pid {os.getpid()} · detached" in out
        # the same time format as the Dataset section's last backfill
        assert "last import 2026-11-27 14:21 UTC · 3 rows written since start" in out
        flat = " ".join(out.split())  # (the block wraps at the terminal's width, which a long tmp path reaches)
        assert "warning: status not updated for 12 min (a running daemon writes it every 30 s): the daemon may " \
               f"be unable to write to {layout.run_dir} (disk full? read-only?)" in flat
        with pytest.raises(SystemExit) as info:
            main(["status", "--json"])
        d = json.loads(capsys.readouterr().out)["daemon"]
        assert (d["running"], d["state"], d["stale"]) == (True, state, True)
        assert d["warning"].startswith("status not updated for 12 min")
    finally:
        lock.release()


def test_a_daemon_still_starting_is_not_said_to_run_an_older_config(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon that holds the lock but has not written its status yet (`starting`, a restart after `hyp init`
    changed the config): the status file is still the previous run's, with that run's settings digest. The new
    daemon reads the config on disk, so "runs with an older config: hyp daemon restart" would be false."""
    layout = _configured_home(tmp_path, env, monkeypatch)
    lock = PidLock(layout)
    lock.acquire()
    try:
        old = iso(datetime.now(UTC) - timedelta(seconds=5))
        write_status_file(layout, {"pid": os.getpid() + 1, "state": "stopped", "mode": "detached",
                                   "started_at": old, "updated_at": old, "config_digest": "0ld"})  # fmt: skip
        with pytest.raises(SystemExit) as info:
            main(["status", "--json"])
        d = json.loads(capsys.readouterr().out)["daemon"]
        assert info.value.code == 0
        assert (d["running"], d["state"], d["config_digest"]) == (True, "starting", "0ld")
        assert d["config_warning"] is None
        with pytest.raises(SystemExit):
            main(["status"])
        out = capsys.readouterr().out
        assert f"Daemon    starting · pid {os.getpid()}\n" in out and "older config" not in out and "warning" not in out
    finally:
        lock.release()


def test_a_daemon_running_though_capture_is_off_is_flagged_in_both_status_commands(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Capture turned off in the config (hyp init's Reconfigure, its daemon stop skipped) while the daemon runs:
    `hyp status` said `capture off` and `running` with no word about it. A daemon that does not name the
    settings it runs with (an older version's status file) is never said to run with an older config."""
    layout = _configured_home(tmp_path, env, monkeypatch)
    write_config(layout, capture={"enabled": False}, retention_days=365)
    lock = PidLock(layout)
    lock.acquire()
    try:
        write_status_file(layout, {"pid": os.getpid(), "state": "running", "mode": "detached",
                                   "updated_at": iso(datetime.now(UTC))})
        warning = "capture is off in the config but the daemon is running: hyp daemon stop"
        with pytest.raises(SystemExit):
            main(["status"])
        out = capsys.readouterr().out
        assert "capture off" in out and f"warning: {warning}" in out
        with pytest.raises(SystemExit):
            main(["daemon", "status"])
        assert f"Warning         {warning}\n" in capsys.readouterr().out
        with pytest.raises(SystemExit):
            main(["daemon", "status", "--json"])
        assert json.loads(capsys.readouterr().out)["config_warning"] == warning

        write_config(layout, retention_days=365)  # capture on again; the daemon's settings unknown
        with pytest.raises(SystemExit):
            main(["status", "--json"])
        assert json.loads(capsys.readouterr().out)["daemon"]["config_warning"] is None
    finally:
        lock.release()


def test_a_running_daemon_that_captures_nothing_of_a_client_found_here_is_flagged(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon started with CLAUDE_CONFIG_DIR at A; A moved to B, and the shell now says B: the daemon waits
    for A (`waiting`) and captures nothing, while `hyp status` said `running` and no more (client lifecycle
    audit). It says so, and that this shell looks elsewhere (the daemon's status names no path: a hash)."""
    from hypaware_tui.core.checkpoints import roots_hash

    layout = _configured_home(tmp_path, env, monkeypatch)
    lock = PidLock(layout)
    lock.acquire()
    try:
        clients = {"claude": {"root_state": "waiting", "roots_hash": roots_hash([str(tmp_path / "moved-away")]),
                              "rows_written": 0}}
        write_status_file(layout, {"pid": os.getpid(), "state": "running", "mode": "detached",
                                   "updated_at": iso(datetime.now(UTC)), "clients": clients})
        warning = ("Claude Code: the daemon's folder for it does not exist: none of it is captured (it looks "
                   f"elsewhere than this shell, which finds it in {env['CLAUDE_CONFIG_DIR']}: was CLAUDE_CONFIG_DIR "
                   "changed since it started? hyp daemon restart from here watches that)")
        with pytest.raises(SystemExit):
            main(["status"])
        assert f"warning: {warning}" in capsys.readouterr().out
        with pytest.raises(SystemExit):
            main(["status", "--json"])
        assert json.loads(capsys.readouterr().out)["daemon"]["client_warnings"] == [warning]
        # unreadable where it looks, which is where this shell looks; and a client that is not found here
        # either is the Clients section's to say
        clients = {"claude": {"root_state": "unreadable", "roots_hash": roots_hash([env["CLAUDE_CONFIG_DIR"]])},
                   "codex": {"root_state": "waiting", "roots_hash": roots_hash([env["CODEX_HOME"]])}}
        write_status_file(layout, {"pid": os.getpid(), "state": "degraded", "mode": "detached",
                                   "updated_at": iso(datetime.now(UTC)), "clients": clients})
        with pytest.raises(SystemExit):
            main(["status", "--json"])
        assert json.loads(capsys.readouterr().out)["daemon"]["client_warnings"] == [
            "Claude Code: the daemon cannot read its folder for it: none of it is captured"]
        # a watching daemon: nothing to say
        clients = {"claude": {"root_state": "watching", "roots_hash": roots_hash([env["CLAUDE_CONFIG_DIR"]])}}
        write_status_file(layout, {"pid": os.getpid(), "state": "running", "mode": "detached",
                                   "updated_at": iso(datetime.now(UTC)), "clients": clients})
        with pytest.raises(SystemExit):
            main(["status", "--json"])
        assert json.loads(capsys.readouterr().out)["daemon"]["client_warnings"] == []
    finally:
        lock.release()


def test_parse_ts() -> None:
    assert parse_ts("2026-05-01T10:00:00Z") == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert parse_ts("2026-05-01T12:00:00+0200") == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert parse_ts("2026-05-01T10:00:00") == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert parse_ts("yesterday") is None and parse_ts(None) is None


def test_status_text_and_json(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = _configured_home(tmp_path, env, monkeypatch)
    monkeypatch.delenv("NO_COLOR", raising=False)
    EventLog(layout, "R", enabled=True).emit("backfill.provider_finish", provider="codex", error="boom")

    with pytest.raises(SystemExit) as info:
        main(["status"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    lines = out.splitlines()
    clients = [line for line in lines if "Claude Code:" in line or "Codex:" in line]
    assert (
        clients[0].startswith("Clients") and "Claude Code: detected" in clients[0] and "enabled" in clients[0]
    )
    assert "Codex: not found" in clients[1] and "disabled" in clients[1]
    assert any(line.startswith("Daemon") and "never started" in line for line in lines)
    assert "warning: capture is on but the daemon is not running" in out
    i = lines.index("Recent errors")  # cli.md §6's section name, heading its entries
    assert "codex: boom" in lines[i + 1] and lines[i + 1].startswith(" " * 10)
    # (the report's one format of times, as in its Daemon and Dataset lines; the JSON keeps ISO 8601)
    assert re.fullmatch(r" {10}\d{4}-\d\d-\d\d \d\d:\d\d UTC codex: boom", lines[i + 1]), lines[i + 1]
    assert "\x1b[" not in out

    with pytest.raises(SystemExit) as info:
        main(["status", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert info.value.code == 0
    assert [c["client"] for c in doc["clients"]] == ["claude", "codex"]
    assert doc["recent_errors"][0]["message"] == "boom"
    assert {"running", "state", "pid", "mode", "last_import_at", "rows_written", "last_error"} <= set(
        doc["daemon"]
    )
    # every recent error is listed (the first one alone was shown and no test failed)
    EventLog(layout, "R", enabled=True).emit("backfill.provider_finish", provider="claude", error="disk full")
    with pytest.raises(SystemExit):
        main(["status"])
    lines = capsys.readouterr().out.splitlines()
    i = lines.index("Recent errors")
    assert sorted(line[31:] for line in lines[i + 1 : i + 3]) == ["claude: disk full", "codex: boom"], lines[i:]


def test_status_shows_every_claude_root(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `CLAUDE_CONFIG_DIR="a, b"` the Clients line counted the files of both roots next to the first one
    only."""
    other = tmp_path / "user" / "claude-b"
    shutil.copytree(env["CLAUDE_CONFIG_DIR"], other)
    env = dict(env, CLAUDE_CONFIG_DIR=f"{env['CLAUDE_CONFIG_DIR']}, ~/claude-b")
    _configured_home(tmp_path, env, monkeypatch)
    with pytest.raises(SystemExit):
        main(["status"])
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "Claude Code:" in ln)
    assert f"Claude Code: detected · {tmp_path / 'claude-home'}, ~/claude-b · " in line, line
    with pytest.raises(SystemExit):
        main(["status", "--json"])
    claude = json.loads(capsys.readouterr().out)["clients"][0]
    assert claude["root"] == str(tmp_path / "claude-home")
    assert claude["roots"] == [str(tmp_path / "claude-home"), str(other)]


def test_a_dataset_path_that_is_a_file_is_unreadable_not_empty(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """cli.md §6: exit 1 when the dataset is unreadable. A file where the dataset directory belongs (every
    import there fails with "Not a directory") was reported as "empty: nothing imported yet", exit 0."""
    layout = Layout(tmp_path / "hyp")
    write_config(layout)
    layout.dataset_root.parent.mkdir(parents=True)
    layout.dataset_root.write_text("not a dataset")
    report = gather_status(layout, env)
    assert "is not a directory" in report["dataset"]["error"] and status_exit_code(report) == 1
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("HYP_HOME", str(layout.home))
    with pytest.raises(SystemExit) as info:
        main(["status"])
    out = capsys.readouterr().out
    assert info.value.code == 1
    assert "error: cannot read the dataset" in out and "nothing imported yet" not in out


@pytest.mark.parametrize("file_at", ["cache", "home"])
def test_a_file_above_the_dataset_makes_it_unreadable_too(tmp_path: Path, env: dict[str, str], file_at: str) -> None:
    """The same when the file is higher up: `cache/` is a file, or HYP_HOME itself is one (HYP_HOME=/dev/null
    said "empty: nothing imported yet")."""
    layout = Layout(tmp_path / "hyp")
    if file_at == "cache":
        write_config(layout)
        layout.cache_dir.write_text("not a directory")
        expected = f"cannot read the dataset: {layout.cache_dir} is not a directory (move it away)"
    else:
        layout.home.write_text("not a directory")
        expected = (f"cannot read the dataset: HYP_HOME is {layout.home}, which is not a directory. Point HYP_HOME "
                    "at a directory (or move that file away) and run it again.")  # (the words of init and backfill)
    report = gather_status(layout, env)
    assert report["dataset"]["error"] == expected and status_exit_code(report) == 1
    assert gather_status(Layout(tmp_path / "fresh"), env)["dataset"]["error"] is None  # nothing yet: no error


def test_the_last_import_and_whether_it_ended(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A killed `hyp init --yes` (or backfill) left nothing in `hyp status` to say the import was incomplete
    (an audit). The Dataset section now names the last import and how it ended, from the events log."""
    layout = _configured_home(tmp_path, env, monkeypatch)

    def shown() -> tuple[str, dict]:
        with pytest.raises(SystemExit):
            main(["status"])
        text = capsys.readouterr().out
        with pytest.raises(SystemExit):
            main(["status", "--json"])
        return text, json.loads(capsys.readouterr().out)["dataset"]["last_import"]

    text, doc = shown()
    assert doc is None and "last backfill" not in text
    log = EventLog(layout, "R1", enabled=True)
    log.emit("backfill.start", providers=["claude"])
    log.emit("backfill.write", provider="claude", rows=3)
    text, doc = shown()
    assert doc["status"] == "unfinished"
    assert "recorded no end (still running, or interrupted); hyp backfill finishes it" in " ".join(text.split())
    log.emit("backfill.finish", status="cancelled", rows_written=3)
    text, doc = shown()
    assert doc["status"] == "cancelled" and "stopped before the end; hyp backfill finishes it" in text
    EventLog(layout, "R2", enabled=True).emit("backfill.start", providers=["claude"])
    EventLog(layout, "R2", enabled=True).emit("backfill.finish", status="ok", rows_written=1)
    text, doc = shown()
    assert doc == {"at": doc["at"], "status": "ok", "rows_written": 1}
    line = next(x for x in text.splitlines() if "last backfill" in x)
    assert line.endswith(f"last backfill {doc['at'][:10]} {doc['at'][11:16]} UTC: ok, 1 new row")


def test_at_a_terminal_a_long_line_goes_on_under_its_text(tmp_path: Path, env: dict[str, str]) -> None:
    """At an 80-column terminal `hyp status` and `hyp daemon status` let the terminal fold their long lines at
    column 1, mid-word ("… · e" / "nabled"). A line now wraps between words and goes on under its text (two
    columns in for `hyp status`, whose block lines are items each); a path longer than the line stays whole.
    Redirected, nothing is wrapped (the other tests here)."""
    import sys

    pexpect = pytest.importorskip("pexpect")
    layout = Layout(tmp_path / "hyp")
    write_config(layout, capture={"enabled": False})  # (the daemon's Next line says how to turn it on: long)
    message = ("file 36a271989c645a5d: the compressed rollout (.jsonl.zst) is damaged or not zstd data (zstd "
               "decompressor error: Unknown frame descriptor); nothing could be read from it.")
    EventLog(layout, "R", enabled=True).emit("backfill.file_error", provider="codex", error=message)
    run_env = dict(os.environ, **env, HYP_HOME=str(layout.home), TERM="xterm-256color", COLUMNS="80")

    def at_terminal(*args: str) -> list[str]:
        child = pexpect.spawn(sys.executable, ["-m", "hypaware_tui", *args], env=run_env, dimensions=(50, 80),
                              encoding="utf-8", timeout=30)
        try:
            child.expect(pexpect.EOF)
            return [line.rstrip() for line in child.before.replace("\r\n", "\n").split("\n")]
        finally:
            child.close()

    lines = at_terminal("status")
    at = next(i for i, line in enumerate(lines) if "codex: file 36a271989c645a5d:" in line)
    said = [lines[at]] + [line for line in lines[at + 1:at + 4] if line.startswith(" " * 12) and line[12] != " "]
    assert len(said) > 1 and all(len(line) <= 80 for line in said), lines
    assert " ".join(line.strip() for line in said).endswith(message), lines
    assert lines[0].startswith("Config    /") and lines[1] == "            ok", lines  # (a path: whole)

    def fits(line: str) -> bool:  # (or is one word after its label: a path, for the terminal to fold)
        return len(line) <= 80 or len(line[16:].split()) == 1

    assert all(map(fits, lines)), lines

    lines = at_terminal("daemon", "status")
    at = next(i for i, line in enumerate(lines) if line.startswith("Next            "))
    assert lines[at + 1].startswith(" " * 16) and lines[at + 1][16] != " ", lines
    assert all(map(fits, lines)), lines
