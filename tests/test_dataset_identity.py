"""The checkpoints against the dataset they describe (state/ingest.sqlite records the dataset root's identity) and
the daemon against a HYP_HOME moved under it. Real files, real SQLite, `hyp` and the daemon as real processes.

- The dataset deleted, or restored from an older copy, with the checkpoints left: every command said there was
  nothing to import, and the rows were lost for good. Now the next import (and the daemon) resets the checkpoints,
  says so in one line, and reads all history again (dedupe keeps it at zero duplicates); `hyp status` says so.
- HYP_HOME moved (`mv`) while the daemon ran: it recreated the old HYP_HOME and wrote its rows there while its
  open SQLite connection advanced the checkpoints in the moved one. Now it stops, writing nothing anywhere.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import timedelta
from pathlib import Path

from test_daemon_support import Home, claude_line, now_utc, part_ids, session_text, stop, wait_for

S1 = "aaaaaaaa-1111-4111-8111-111111111111"
S2 = "bbbbbbbb-2222-4222-8222-222222222222"
FAST = {"poll_seconds": 0.5, "flush_seconds": 0.3, "flush_rows": 2000, "rescan_seconds": 300}
REPLACED = "is not the one hyp imported into (it was deleted, moved or restored from a copy): reading all history again"


def rows_now(home: Home) -> int:
    return sum(part_ids(home.layout).values())


def backfill(home: Home) -> tuple[dict, str]:
    proc = home.hyp_cmd("backfill", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def two_sessions(home: Home) -> None:
    start = now_utc() - timedelta(days=5)
    home.session(S1).write_text(session_text(S1, 4, start))
    home.session(S2).write_text(session_text(S2, 3, start + timedelta(hours=1)))


def reset_events(home: Home) -> list[dict]:
    lines = home.layout.events_log.read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == "checkpoints.reset"]


def test_a_deleted_dataset_is_imported_again_and_a_rerun_then_reads_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    first, _ = backfill(home)
    total = sum(p["rows_written"] for p in first["providers"])
    assert total > 0 and rows_now(home) == total

    shutil.rmtree(home.hyp / "cache")
    status = home.hyp_cmd("status")
    assert "nothing imported yet" not in status.stdout
    assert "is not the one hyp imported into" in status.stdout and "Run hyp backfill" in status.stdout
    assert not (home.hyp / "cache").exists()  # (hyp status wrote nothing)

    again, stderr = backfill(home)
    assert REPLACED in stderr
    assert sum(p["rows_written"] for p in again["providers"]) == total
    assert rows_now(home) == total and max(part_ids(home.layout).values()) == 1
    assert [e["reason"] for e in reset_events(home)] == ["dataset_replaced"]

    rerun = home.hyp_cmd("backfill")
    assert rerun.returncode == 0
    assert "Nothing new to import: no history was added since the last import." in rerun.stdout
    assert "not the one hyp imported into" not in rerun.stderr
    assert "is not the one" not in home.hyp_cmd("status").stdout


def test_a_dataset_restored_from_an_older_copy_gets_back_the_rows_written_since(tmp_path: Path) -> None:
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    backfill(home)
    copy = tmp_path / "cache.old"
    shutil.copytree(home.hyp / "cache", copy)
    with home.session(S1).open("a") as fh:
        for i in range(10, 15):
            fh.write(claude_line(S1, i, now_utc() - timedelta(days=1, minutes=-i)))
    later, _ = backfill(home)
    assert later["providers"][0]["rows_written"] > 0
    expected = set(part_ids(home.layout))

    shutil.rmtree(home.hyp / "cache")
    shutil.copytree(copy, home.hyp / "cache")
    assert set(part_ids(home.layout)) < expected
    _, stderr = backfill(home)
    assert REPLACED in stderr
    assert set(part_ids(home.layout)) == expected and max(part_ids(home.layout).values()) == 1


def test_no_loop_when_retention_leaves_no_row(tmp_path: Path) -> None:
    """History older than the import floor: the dataset is deleted, the reset run writes nothing (every row
    before the floor), and the next run has nothing to do rather than resetting again."""
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    backfill(home)
    home.write_config(retention_days=1, capture={"enabled": False})
    prune = home.hyp_cmd("cache", "prune")
    assert prune.returncode == 0, prune.stderr
    assert rows_now(home) == 0
    shutil.rmtree(home.hyp / "cache")
    first, stderr = backfill(home)
    assert REPLACED in stderr and sum(p["rows_written"] for p in first["providers"]) == 0
    assert rows_now(home) == 0  # (the floor recorded by prune still applies)
    second, stderr = backfill(home)
    assert "not the one hyp imported into" not in stderr
    assert second["providers"][0]["files_scanned"] == 0
    assert "is not the one" not in home.hyp_cmd("status").stdout


def test_the_daemon_imports_everything_again_when_the_dataset_is_deleted_under_it(tmp_path: Path) -> None:
    home = Home(tmp_path, capture=FAST)
    f1 = home.session(S1)
    f1.write_text(session_text(S1, 3, now_utc() - timedelta(minutes=1)))
    proc = home.spawn_daemon()
    try:
        home.wait_state("running", pid=proc.pid)
        assert wait_for(lambda: rows_now(home) > 0, 15), home.log_text()
        time.sleep(0.5)
        before = rows_now(home)
        shutil.rmtree(home.layout.dataset_root)
        with f1.open("a") as fh:
            fh.write(claude_line(S1, 3, now_utc()))
        # not only the new line: the rows before it too, which went with the deleted dataset
        assert wait_for(lambda: rows_now(home) == before + 2, 15), home.log_text()  # (a line: message + usage)
        assert "is not the one hyp imported into" in home.log_text()
    finally:
        assert stop(proc) == 0
    assert max(part_ids(home.layout).values()) == 1
    rerun = home.hyp_cmd("backfill")
    assert "Nothing new to import" in rerun.stdout and "not the one" not in rerun.stderr


def test_a_hyp_home_moved_under_the_daemon_is_not_recreated_and_the_daemon_stops(tmp_path: Path) -> None:
    home = Home(tmp_path, capture=FAST)
    f1 = home.session(S1)
    f1.write_text(session_text(S1, 3, now_utc() - timedelta(minutes=1)))
    proc = home.spawn_daemon()
    try:
        home.wait_state("running", pid=proc.pid)
        assert wait_for(lambda: rows_now(home) > 0, 15), home.log_text()
        time.sleep(0.5)
        before = rows_now(home)
        moved = tmp_path / "hyp-new"
        home.hyp.rename(moved)
        with f1.open("a") as fh:
            fh.write(claude_line(S1, 3, now_utc()))
        proc.wait(timeout=15)
    finally:
        stop(proc)
    assert proc.returncode == 1
    assert not home.hyp.exists()  # nothing recreated the old HYP_HOME
    stderr = (tmp_path / "daemon-stderr.log").read_text()
    assert (f"HYP_HOME {home.hyp} was moved or deleted while the daemon ran" in stderr
            and "start the daemon again with the new HYP_HOME" in stderr)
    # nothing advanced in the moved home: a backfill there imports the line
    home.env["HYP_HOME"] = str(moved)
    home.layout = type(home.layout)(moved)
    assert rows_now(home) == before
    out, _ = backfill(home)
    assert out["providers"][0]["rows_written"] == 2 and rows_now(home) == before + 2  # (message + usage)
