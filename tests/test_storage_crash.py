"""Crash safety and concurrency with real processes (storage.md §6.2 crash table, §12).

A child process commits a two-partition batch with `HYP_FAULT=<point>` and SIGKILLs itself at that point.
Afterwards: no partial `*.parquet`, no duplicate `part_id`, readers work, and re-committing the same batch
ends with exactly the batch's rows once and a correct checkpoint. Two processes committing overlapping
batches at the same time end with exactly the union."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from helpers import make_rows

from hypaware_tui.core.checkpoints import Checkpoint, CheckpointUpdate, StateDB, head_digest, path_hash
from hypaware_tui.core.dataset import scan_messages
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.storage import Storage

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent

CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from helpers import make_rows
    from hypaware_tui.core.checkpoints import Checkpoint, CheckpointUpdate, head_digest, path_hash
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.storage import Storage

    def batch(src, days=0):
        if days:  # history spread over `days` dates: the partitions are written on several threads
            rows = [r for d in range(days) for r in make_rows(3, prefix=f"d{{d}}-",
                                                              created=f"2026-03-{{d + 1:02d}}T12:00:00Z")]
        else:
            rows = make_rows(6, prefix="a") + make_rows(4, prefix="b", client_name="codex",
                                                        created="2026-05-02T00:00:00Z")
        real = os.path.realpath(src)
        st = os.stat(real)
        hl, hs = head_digest(real, st.st_size)
        cp = Checkpoint(path_hash(real), "claude", "incremental", st.st_dev, st.st_ino, st.st_size,
                        st.st_mtime_ns, st.st_size, hl, hs, '{{"done":1}}')
        return rows, [CheckpointUpdate(cp, real)]

    if __name__ == "__main__":
        home, src, days = sys.argv[1], sys.argv[2], int(sys.argv[3])
        rows, cps = batch(src, days)
        Storage(Layout(Path(home))).commit(rows, cps)
        print("committed")
    """
).format(tests=str(TESTS_DIR))


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.pop("HYP_FAULT", None)
    env.update(extra)
    return env


def run_child(
    tmp_path: Path, home: Path, src: Path, fault: str | None, days: int = 0
) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = child_env(**({"HYP_FAULT": fault} if fault else {}))
    return subprocess.run(
        [sys.executable, str(script), str(home), str(src), str(days)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def the_batch(src: Path) -> tuple[list[dict], list[CheckpointUpdate]]:
    rows = make_rows(6, prefix="a") + make_rows(
        4, prefix="b", client_name="codex", created="2026-05-02T00:00:00Z"
    )
    real = os.path.realpath(src)
    st = os.stat(real)
    hl, hs = head_digest(real, st.st_size)
    cp = Checkpoint(
        path_hash(real), "claude", "incremental", st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
        st.st_size, hl, hs, '{"done":1}',
    )  # fmt: skip
    return rows, [CheckpointUpdate(cp, real)]


def assert_consistent(layout: Layout) -> pl.DataFrame:
    """Every *.parquet is complete and readable; no part_id is stored twice; both engines read it."""
    files = sorted(layout.dataset_root.glob("**/*.parquet"))
    frames = [pl.read_parquet(f) for f in files]  # raises on a partial file
    stored = pl.concat(frames) if frames else pl.DataFrame({"part_id": []}, schema={"part_id": pl.String})
    assert stored["part_id"].is_duplicated().sum() == 0
    assert scan_messages(layout).collect().height == stored.height
    if files:
        glob = os.path.join(layout.dataset_root, "**", "*.parquet")
        n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true)").fetchall()[0][
            0
        ]
        assert n == stored.height
    return stored


# (fault point, partitions committed by the killed process, checkpoint written)
POINTS = [
    ("mid_write", 0, False),
    ("before_rename", 0, False),
    ("after_rename", 1, False),
    ("before_checkpoints", 2, False),
    ("before_release", 2, True),
]


@pytest.mark.parametrize(("fault", "files_before", "checkpoint_before"), POINTS)
def test_sigkill_at_each_commit_point(
    tmp_path: Path, fault: str, files_before: int, checkpoint_before: bool
) -> None:
    home = tmp_path / "hyp"
    layout = Layout(home)
    src = tmp_path / "session.jsonl"
    src.write_bytes(b'{"line":1}\n' * 50)
    proc = run_child(tmp_path, home, src, fault)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "committed" not in proc.stdout

    stored = assert_consistent(layout)
    files = sorted(layout.dataset_root.glob("**/*.parquet"))
    assert len(files) == files_before
    tmps = list(layout.dataset_root.glob("**/.part-*.parquet.tmp"))
    assert len(tmps) == (1 if fault in ("mid_write", "before_rename") else 0)
    rows, cps = the_batch(src)
    with StateDB.open(layout, create=False) as db:
        assert (db.get(cps[0].entry.path_hash) is not None) == checkpoint_before

    # The lock died with the process; the replay (the lines are re-read) adds exactly what is missing.
    with Storage(layout) as s:
        res = s.commit(rows, cps)
        assert res.rows_written + res.duplicates_skipped == len(rows)
        assert res.rows_written == len(rows) - stored.height
        again = s.commit(rows, cps)
        assert (again.rows_written, again.duplicates_skipped) == (0, len(rows))
        # Maintenance removes the orphan temp file once it is stale.
        assert s.cleanup_tmp(now=time.time() + 3601) == len(tmps)
    final = assert_consistent(layout)
    assert final.height == len(rows)
    assert sorted(final["part_id"]) == sorted(r["part_id"] for r in rows)
    with StateDB.open(layout, create=False) as db:
        assert db.get(cps[0].entry.path_hash) == cps[0].entry
    assert not list(layout.dataset_root.glob("**/*.tmp"))


@pytest.mark.parametrize("fault", ["mid_write", "after_rename", "before_checkpoints"])
def test_sigkill_while_many_partitions_are_written_at_once(tmp_path: Path, fault: str) -> None:
    """A commit over 12 partitions writes several files at a time: killed while they are written, the
    dataset holds whole files only, no checkpoint, and the replay adds exactly the missing rows."""
    home = tmp_path / "hyp"
    layout = Layout(home)
    src = tmp_path / "session.jsonl"
    src.write_bytes(b'{"line":1}\n' * 50)
    proc = run_child(tmp_path, home, src, fault, days=12)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    stored = assert_consistent(layout)  # whole files only, each part_id once
    files = list(layout.dataset_root.glob("**/*.parquet"))
    assert len(files) <= 12
    if fault == "after_rename":  # killed right after the first rename: the others may or may not be there
        assert len(files) >= 1
    if fault == "before_checkpoints":
        assert len(files) == 12
    rows = [r for d in range(12) for r in make_rows(3, prefix=f"d{d}-", created=f"2026-03-{d + 1:02d}T12:00:00Z")]
    _, cps = the_batch(src)
    with StateDB.open(layout, create=False) as db:
        assert db.get(cps[0].entry.path_hash) is None
    with Storage(layout) as s:
        res = s.commit(rows, cps)
        assert (res.rows_written, res.duplicates_skipped) == (len(rows) - stored.height, stored.height)
        s.cleanup_tmp(now=time.time() + 3601)
    final = assert_consistent(layout)
    assert sorted(final["part_id"]) == sorted(r["part_id"] for r in rows)
    assert not list(layout.dataset_root.glob("**/*.tmp"))


def test_no_fault_child_commits_everything(tmp_path: Path) -> None:
    home = tmp_path / "hyp"
    src = tmp_path / "session.jsonl"
    src.write_bytes(b'{"line":1}\n')
    proc = run_child(tmp_path, home, src, None)
    assert proc.returncode == 0 and "committed" in proc.stdout, proc.stderr
    assert assert_consistent(Layout(home)).height == 10


WRITER = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from helpers import make_rows
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.storage import Storage

    home, start, stop, step, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    rows = make_rows(400)[start:stop]
    if step < 0:
        rows = rows[::-1]
    s = Storage(Layout(Path(home)))
    open(go + "." + str(start), "w").close()  # ready
    while not os.path.exists(go):
        time.sleep(0.005)
    written = dupes = 0
    for i in range(0, len(rows), 25):
        r = s.commit(rows[i:i + 25], [])
        written += r.rows_written
        dupes += r.duplicates_skipped
    print(written, dupes)
    """
).format(tests=str(TESTS_DIR))


def test_two_processes_committing_overlapping_batches_end_with_the_union(tmp_path: Path) -> None:
    home = tmp_path / "hyp"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    env = child_env()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(home), a, b, step, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for a, b, step in (("0", "300", "1"), ("100", "400", "-1"))
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{go}.{a}").exists() for a in ("0", "100")):  # both ready at the barrier
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.write_text("go")
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_out, errout) in zip(procs, outs, strict=True):
        assert p.returncode == 0, errout
    written = sum(int(o.split()[0]) for o, _ in outs)
    dupes = sum(int(o.split()[1]) for o, _ in outs)
    stored = assert_consistent(Layout(home))
    assert stored.height == 400 and written == 400
    assert dupes == 200  # the overlap (rows 100-299) was offered twice and stored once
    assert sorted(stored["part_id"]) == sorted(r["part_id"] for r in make_rows(400))


COMPACT_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.storage import Storage
    Storage(Layout(Path(sys.argv[1]))).compact()
    """
)


@pytest.mark.parametrize(
    ("fault", "files_after_crash"),
    [
        ("compact_after_journal", 10),  # journal written, no new file yet: undone
        ("before_rename", 10),  # the new file's bytes are in a temp file: undone
        ("compact_before_unlink", 11),  # renamed and verified, inputs not deleted yet: finished
    ],
)
def test_sigkill_during_compaction_loses_and_doubles_nothing(tmp_path: Path, fault: str, files_after_crash: int) -> None:
    """A compaction killed at any point: readers' deduplicated view never changes, and the next holder of
    the write lock (any writer: a backfill, the daemon, `cache compact`) finishes or undoes it from its
    journal, so no row stays twice on disk and none is lost."""
    layout = Layout(tmp_path / "hyp")
    with Storage(layout) as s:
        for row in make_rows(10):
            s.commit([row], [])
    script = tmp_path / "compact.py"
    script.write_text(COMPACT_CHILD)
    proc = subprocess.run(
        [sys.executable, str(script), str(layout.home)],
        env=child_env(HYP_FAULT=fault), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(sorted(layout.dataset_root.glob("**/*.parquet"))) == files_after_crash
    assert layout.compaction_journal.exists()
    assert scan_messages(layout).collect().height == 10  # readers' deduplicated view is unchanged
    with Storage(layout) as s:
        assert s.ensure_import_floor(None) is False  # any write takes the lock, and the lock recovers
    assert not layout.compaction_journal.exists()
    files = sorted(layout.dataset_root.glob("**/*.parquet"))
    assert len(files) == (1 if files_after_crash == 11 else 10)
    assert pl.concat([pl.read_parquet(f) for f in files]).height == 10  # on disk: no row twice
    with Storage(layout) as s:
        result = s.compact()
    assert result.error is None and result.duplicates_removed == 0
    assert len(sorted(layout.dataset_root.glob("**/*.parquet"))) == 1
    assert assert_consistent(layout).height == 10
