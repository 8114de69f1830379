"""The checkpoints against the dataset they describe (state/ingest.sqlite records the id and generation of the
dataset's marker file, `.hyp-dataset`) and the daemon against a HYP_HOME moved under it. Real files, real SQLite,
`hyp` and the daemon as real processes.

- The dataset deleted, or restored from an older copy, with the checkpoints left: every command said there was
  nothing to import, and the rows were lost for good. Now the next import (and the daemon) resets the checkpoints,
  says so in one line, and reads all history again (dedupe keeps it at zero duplicates); `hyp status` says so.
- HYP_HOME moved (`mv`) while the daemon ran: it recreated the old HYP_HOME and wrote its rows there while its
  open SQLite connection advanced the checkpoints in the moved one. Now it stops, writing nothing anywhere.
- The dataset folder's own metadata changed (a `.DS_Store`, `touch`, `chmod`) or its file system remounted with
  another device number, or the whole HYP_HOME moved: the checkpoints, which recorded the folder's change time,
  device and inode, took each for a replaced dataset and read all history again. Now nothing happens (a copy of
  the whole HYP_HOME, whose folders have new inode numbers, is read again once; no row is duplicated).
- The marker lived inside the dataset root, where storage.md §1 allows nothing but part files
  (`pl.scan_parquet(<root>)` failed on it), and a `rm -rf <root>/*` (the shell glob skips dotfiles) or a
  `source=` folder removed left it in place: nothing was noticed and the rows were lost for good. Now it lives
  in `cache/`, beside the root, and records the root's inode number; a client whose checkpoints claim rows while
  its `source=` folder has no part file is a deleted dataset too.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from test_daemon_support import REPO, Home, claude_line, now_utc, part_ids, session_text, stop, wait_for

S1 = "aaaaaaaa-1111-4111-8111-111111111111"
S2 = "bbbbbbbb-2222-4222-8222-222222222222"
FAST = {"poll_seconds": 0.5, "flush_seconds": 0.3, "flush_rows": 2000, "rescan_seconds": 300}
NOTHING_NEW = "Nothing new to import: no history was added since the last import."
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
    # (a prune that removed every partition leaves the dataset the checkpoints describe)
    assert (home.hyp / "cache" / ".hyp-dataset").is_file()
    assert_nothing_new(home)
    shutil.rmtree(home.hyp / "cache")
    first, stderr = backfill(home)
    assert REPLACED in stderr and sum(p["rows_written"] for p in first["providers"]) == 0
    assert rows_now(home) == 0  # (the floor recorded by prune still applies)
    second, stderr = backfill(home)
    assert "not the one hyp imported into" not in stderr
    assert second["providers"][0]["files_scanned"] == 0
    assert "is not the one" not in home.hyp_cmd("status").stdout


def _daemon_with_rows(tmp_path: Path) -> tuple[Home, Path, subprocess.Popen]:
    """A running daemon (a real process) that has imported a session of 3 lines: (home, the session, process)."""
    home = Home(tmp_path, capture=FAST)
    f1 = home.session(S1)
    f1.write_text(session_text(S1, 3, now_utc() - timedelta(minutes=1)))
    proc = home.spawn_daemon()
    try:
        home.wait_state("running", pid=proc.pid)
        assert wait_for(lambda: rows_now(home) > 0, 15), home.log_text()
        time.sleep(0.5)
    except BaseException:
        stop(proc)
        raise
    return home, f1, proc


def test_the_daemon_imports_everything_again_when_the_dataset_is_deleted_under_it(tmp_path: Path) -> None:
    home, f1, proc = _daemon_with_rows(tmp_path)
    try:
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
    home, f1, proc = _daemon_with_rows(tmp_path)
    try:
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


def assert_nothing_new(home: Home) -> None:
    proc = home.hyp_cmd("backfill")
    assert proc.returncode == 0, proc.stderr
    assert NOTHING_NEW in proc.stdout and "not the one hyp imported into" not in proc.stderr
    assert "is not the one" not in home.hyp_cmd("status").stdout


def test_changes_to_the_dataset_folders_metadata_are_not_a_replaced_dataset(tmp_path: Path) -> None:
    """What Finder, `touch` or a `chmod -R` do to the dataset folder moves its change time: not a new dataset."""
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    backfill(home)
    root = home.layout.dataset_root
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # (macOS Finder)
    assert_nothing_new(home)
    status = home.hyp_cmd("status").stdout
    assert ".DS_Store" not in status and ".hyp-dataset" not in status  # (neither is a stray file)
    (root / ".DS_Store").unlink()
    assert_nothing_new(home)
    os.utime(root)  # touch
    assert_nothing_new(home)
    for d, dirs, files in os.walk(home.hyp):  # chmod -R go-rwx $HYP_HOME (no mode changes)
        for name in [*dirs, *files]:
            p = os.path.join(d, name)
            os.chmod(p, os.stat(p).st_mode & 0o700)
    assert_nothing_new(home)
    assert home.hyp_cmd("cache", "compact").returncode == 0
    assert_nothing_new(home)
    assert reset_events(home) == []


def test_a_whole_hyp_home_moved_or_copied_reads_nothing_again(tmp_path: Path) -> None:
    """`mv` of HYP_HOME, and `cp -a` of it (a new laptop: new inode numbers everywhere): the marker, the part
    files and the checkpoints travel together, so nothing is read again. (Comparing the root's inode number made
    a copy read all history once more, and the benchmark's append run, which restores a copied HYP_HOME, read
    everything: 3.2 s against 0.22 s.)"""
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    backfill(home)
    rows = rows_now(home)
    assert rows > 0
    moved = tmp_path / "moved" / "hyp"
    moved.parent.mkdir()
    home.hyp.rename(moved)
    home.env["HYP_HOME"] = str(moved)
    home.layout = type(home.layout)(moved)
    assert_nothing_new(home)
    assert rows_now(home) == rows and reset_events(home) == []

    copy = tmp_path / "elsewhere" / "hyp"
    copy.parent.mkdir()
    subprocess.run(["cp", "-a", str(moved), str(copy)], check=True)
    shutil.rmtree(moved)
    home.env["HYP_HOME"] = str(copy)
    home.layout = type(home.layout)(copy)
    assert "is not the one hyp imported into" not in home.hyp_cmd("status").stdout
    assert_nothing_new(home)
    assert rows_now(home) == rows and reset_events(home) == []


def marker_and_meta(home: Home) -> tuple[dict, dict]:
    marker = json.loads((home.hyp / "cache" / ".hyp-dataset").read_text())
    with sqlite3.connect(home.layout.ingest_db) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta WHERE key LIKE 'dataset_%'").fetchall())
    return marker, meta


def test_the_markers_generation_follows_the_commits_that_write_rows(tmp_path: Path) -> None:
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    backfill(home)
    first, meta = marker_and_meta(home)
    assert len(first["id"]) == 32 and first["generation"] >= 2  # (1 when made, +1 per commit that wrote files)
    assert (meta["dataset_id"], int(meta["dataset_generation"])) == (first["id"], first["generation"])
    for n in range(3):
        with home.session(S1).open("a") as fh:
            fh.write(claude_line(S1, 20 + n, now_utc() - timedelta(hours=1, minutes=-n)))
        out, _ = backfill(home)
        assert out["providers"][0]["rows_written"] > 0
    marker, meta = marker_and_meta(home)
    assert marker == {"id": first["id"], "generation": first["generation"] + 3}
    assert (meta["dataset_id"], int(meta["dataset_generation"])) == (marker["id"], marker["generation"])
    assert_nothing_new(home)
    assert marker_and_meta(home)[0] == marker  # (a run that writes nothing leaves it)


def _overlay_backfill(home: Home, lower: Path, upper: Path, work: Path, mnt: Path, shift: Path | None) -> str:
    """`hyp backfill` with HYP_HOME on an overlay mount, in a mount namespace of its own; `shift`: a tmpfs
    mounted first, so that the overlay gets another device number (a container restarted)."""
    pre = f"mount -t tmpfs t {shift} && " if shift else ""
    script = (f"{pre}mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {mnt} && "
              f"stat -c 'dev=%d' {mnt}/hyp && {sys.executable} -m hypaware_tui backfill 2>&1")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], env=home.env, capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    if proc.returncode != 0 and "dev=" not in proc.stdout:
        pytest.skip(f"no overlay mount in a user namespace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_a_remount_with_another_device_number_is_not_a_replaced_dataset(tmp_path: Path) -> None:
    """The same folders after a remount (an overlayfs container restarted, btrfs, a USB disk): st_dev differs."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    lower, upper, work, mnt, shift = (tmp_path / n for n in ("lower", "upper", "work", "m", "t"))
    for d in (lower, upper, work, mnt, shift):
        d.mkdir()
    home.hyp.rename(upper / "hyp")  # (its config)
    home.env["HYP_HOME"] = str(mnt / "hyp")
    first = _overlay_backfill(home, lower, upper, work, mnt, None)
    assert "rows" in first and NOTHING_NEW not in first
    second = _overlay_backfill(home, lower, upper, work, mnt, shift)
    dev = [line for line in (first + second).splitlines() if line.startswith("dev=")]
    assert len(set(dev)) == 2, dev  # (the remount did change the device number)
    assert NOTHING_NEW in second and "not the one hyp imported into" not in second


def test_a_database_from_before_markers_adopts_the_dataset_without_reading_it_again(tmp_path: Path) -> None:
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    backfill(home)
    (home.hyp / "cache" / ".hyp-dataset").unlink()
    with sqlite3.connect(home.layout.ingest_db) as conn:  # (as the previous version left it)
        conn.execute("DELETE FROM meta WHERE key LIKE 'dataset_%'")
        conn.execute("INSERT INTO meta(key, value) VALUES ('dataset_root', '2049:1234:1700000000000000000')")
    assert_nothing_new(home)
    marker, meta = marker_and_meta(home)
    assert marker["generation"] == 1 and meta["dataset_id"] == marker["id"]
    shutil.rmtree(home.hyp / "cache")
    _, stderr = backfill(home)
    assert REPLACED in stderr


def _assert_imported_again(home: Home, total: int) -> None:
    status = home.hyp_cmd("status")
    assert "is not the one hyp imported into" in status.stdout and "Run hyp backfill" in status.stdout
    again, stderr = backfill(home)
    assert REPLACED in stderr
    assert sum(p["rows_written"] for p in again["providers"]) == total
    assert rows_now(home) == total and max(part_ids(home.layout).values()) == 1
    assert_nothing_new(home)


def _assert_restored(home: Home, expected: set[str]) -> None:
    """An older copy in place: status says so, the backfill reads everything again and brings back exactly the
    `expected` part ids, once each; then nothing is new."""
    assert "is not the one hyp imported into" in home.hyp_cmd("status").stdout
    _, stderr = backfill(home)
    assert REPLACED in stderr
    assert set(part_ids(home.layout)) == expected and max(part_ids(home.layout).values()) == 1
    assert_nothing_new(home)


@pytest.mark.parametrize("how", ["rm -rf root/*", "rm -rf root/source=claude"])
def test_the_datasets_rows_deleted_inside_its_root_are_imported_again(tmp_path: Path, how: str) -> None:
    """`rm -rf <root>/*` (the shell glob skips dotfiles: a marker inside the root stayed) or one `source=` folder
    removed: 'Nothing new to import', and the rows were gone for good."""
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    first, _ = backfill(home)
    total = sum(p["rows_written"] for p in first["providers"])
    root = home.layout.dataset_root
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # (a dotfile the glob leaves too)
    if how.endswith("*"):
        subprocess.run(f"rm -rf {root}/*", shell=True, check=True)
    else:
        shutil.rmtree(root / "source=claude")
    assert root.is_dir() and rows_now(home) == 0
    _assert_imported_again(home, total)


@pytest.mark.parametrize("how", ["mv", "cp -a"])
def test_a_dataset_root_replaced_by_an_older_copy_of_itself_gets_back_the_rows_written_since(
    tmp_path: Path, how: str
) -> None:
    """Only the dataset folder restored (the marker beside it is the current one): the newest part file recorded
    for the source, which the older copy lacks, tells it, whatever the root's inode number (after `rm -rf root`,
    the copy can get the freed one back: ext4 and overlayfs reuse them; CI saw it with `cp -a`)."""
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    backfill(home)
    root = home.layout.dataset_root
    copy = tmp_path / "backup"
    subprocess.run(["cp", "-a", str(root), str(copy)], check=True)
    with home.session(S1).open("a") as fh:
        fh.write(claude_line(S1, 10, now_utc() - timedelta(days=1)))
    backfill(home)
    expected = set(part_ids(home.layout))
    shutil.rmtree(root)
    if how == "mv":
        copy.rename(root)
    else:
        subprocess.run(["cp", "-a", str(copy), str(root)], check=True)
    assert set(part_ids(home.layout)) < expected
    _assert_restored(home, expected)


def test_the_marker_lives_beside_the_dataset_root_which_holds_only_parquet_files(tmp_path: Path) -> None:
    """storage.md §1: nothing but part files under the dataset root, so Polars can be given the bare folder."""
    import polars as pl

    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    first, _ = backfill(home)
    total = sum(p["rows_written"] for p in first["providers"])
    root = home.layout.dataset_root
    stray = [os.path.join(d, n) for d, _, names in os.walk(root) for n in names if not n.endswith(".parquet")]
    assert stray == []
    marker = json.loads((home.hyp / "cache" / ".hyp-dataset").read_text())
    assert set(marker) == {"id", "generation"}
    assert pl.scan_parquet(root).select(pl.len()).collect().item() == total


def test_retention_emptying_a_source_is_not_a_deleted_dataset(tmp_path: Path) -> None:
    """Every row of `source=claude` older than retention: the prune removes the source's last partition, and
    the next import has nothing to read (its checkpoints no longer claim rows), then imports what comes next."""
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    backfill(home)
    home.write_config(retention_days=2, capture={"enabled": False})
    prune = home.hyp_cmd("cache", "prune")
    assert prune.returncode == 0, prune.stderr
    assert rows_now(home) == 0 and not (home.layout.dataset_root / "source=claude").exists()
    assert_nothing_new(home)
    with home.session(S1).open("a") as fh:
        fh.write(claude_line(S1, 10, now_utc() - timedelta(hours=1)))
    out, stderr = backfill(home)
    assert "not the one hyp imported into" not in stderr
    written = out["providers"][0]["rows_written"]
    assert written > 0 and rows_now(home) == written
    assert_nothing_new(home)
    assert reset_events(home) == []


def _append(home: Home, first: int, n: int, when: timedelta) -> None:
    with home.session(S1).open("a") as fh:
        for i in range(first, first + n):
            fh.write(claude_line(S1, i, now_utc() - when + timedelta(seconds=i)))


def test_the_newest_files_deleted_from_a_root_that_keeps_its_inode_are_imported_again(tmp_path: Path) -> None:
    """An older copy synced into the same root (`rsync -a --delete copy/ root/`), or the newest part files
    deleted by hand: the root keeps its inode number and every source keeps a part file, and the import said
    "Nothing new to import" while the rows written since were gone."""
    home = Home(tmp_path, capture={"enabled": False})
    two_sessions(home)
    backfill(home)
    root = home.layout.dataset_root
    before = {p.relative_to(root) for p in root.glob("source=*/date=*/part-*.parquet")}
    ino = root.stat().st_ino
    _append(home, 10, 3, timedelta(days=1))
    backfill(home)
    expected = set(part_ids(home.layout))
    for p in root.glob("source=*/date=*/part-*.parquet"):
        if p.relative_to(root) not in before:
            p.unlink()  # (what `rsync -a --delete` of the older copy does)
    assert root.stat().st_ino == ino and set(part_ids(home.layout)) < expected
    _assert_restored(home, expected)


def _two_files_in_one_partition(home: Home) -> Path:
    """Two backfills writing to yesterday's partition: returns it (two part files, the newest the second)."""
    _append(home, 0, 3, timedelta(days=1))
    backfill(home)
    _append(home, 3, 3, timedelta(days=1) - timedelta(seconds=30))
    backfill(home)
    (pdir,) = {p.parent for p in home.layout.dataset_root.glob("source=claude/date=*/part-*.parquet")}
    assert len(list(pdir.glob("part-*.parquet"))) == 2
    return pdir


def test_a_compaction_of_the_partition_holding_the_newest_file_is_not_a_replaced_dataset(tmp_path: Path) -> None:
    home = Home(tmp_path, capture={"enabled": False})
    pdir = _two_files_in_one_partition(home)
    assert home.hyp_cmd("cache", "compact").returncode == 0
    assert len(list(pdir.glob("part-*.parquet"))) == 1
    assert_nothing_new(home)
    assert reset_events(home) == []


@pytest.mark.parametrize("outcome", ["finished", "undone"])
def test_a_compaction_killed_before_it_deleted_its_inputs_is_not_a_replaced_dataset(
    tmp_path: Path, outcome: str
) -> None:
    """Killed after the new file is written and recorded as the newest, before the inputs go: the next holder of
    the lock finishes the compaction, or undoes it when the new file is damaged (and deletes it)."""
    home = Home(tmp_path, capture={"enabled": False})
    pdir = _two_files_in_one_partition(home)
    rows = rows_now(home)
    killed = home.hyp_cmd("cache", "compact", extra_env={"HYP_FAULT": "compact_before_unlink"})
    assert killed.returncode != 0 and len(list(pdir.glob("part-*.parquet"))) == 3
    if outcome == "undone":
        newest = max(pdir.glob("part-*.parquet"))
        newest.write_bytes(b"PAR1 torn")
    assert_nothing_new(home)
    assert len(list(pdir.glob("part-*.parquet"))) == (1 if outcome == "finished" else 2)
    assert rows_now(home) == rows and reset_events(home) == []


def test_a_prune_of_the_partition_holding_the_newest_file_is_not_a_replaced_dataset(tmp_path: Path) -> None:
    """The newest part file is in an old partition (old history found late); retention removes that partition
    while newer partitions of the source remain."""
    home = Home(tmp_path, capture={"enabled": False})
    _append(home, 0, 3, timedelta(hours=2))
    backfill(home)
    recent = rows_now(home)
    _append(home, 3, 3, timedelta(days=6))
    backfill(home)
    home.write_config(retention_days=3, capture={"enabled": False})
    prune = home.hyp_cmd("cache", "prune")
    assert prune.returncode == 0, prune.stderr
    assert rows_now(home) == recent > 0
    assert_nothing_new(home)
    assert reset_events(home) == []


class _ClaimsThenNot:
    """A checkpoint database read while a prune empties claude: the first query sees claude claiming rows, the
    next sees them zeroed (the prune's transaction came in between). `still`: claude still claims them."""

    def __init__(self, still: bool) -> None:
        self.still, self.calls = still, 0

    def get_meta(self, key: str) -> None:
        return None

    def newest_files(self) -> dict[str, str]:
        return {}

    def clients_claiming_rows(self) -> list[str]:
        self.calls += 1
        return ["claude"] if self.calls == 1 or self.still else []


@pytest.mark.parametrize("still", [False, True])
def test_a_prune_between_the_reads_of_a_status_is_no_replaced_dataset(tmp_path: Path, still: bool) -> None:
    """`hyp status` checks without the lock. A prune that zeroed claude's rows_emitted and removed its last
    partition between the status's query and its listing made it say "not the one hyp imported into" (review
    audit: reproduced with a pause between the two); asked again, claude claims nothing, so nothing was lost."""
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.storage import dataset_stale

    layout = Layout(tmp_path / "hyp")
    (layout.dataset_root / "source=codex" / "date=2026-11-01").mkdir(parents=True)
    db = _ClaimsThenNot(still)
    assert dataset_stale(db, layout)[0] is still  # type: ignore[arg-type]
    assert db.calls == 2
