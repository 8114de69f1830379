"""Storage engine: commit protocol, dedupe and memo, checkpoint rules (§6.3), import floor, modes, bad input
(stray/truncated Parquet, full disk, unwritable HYP_HOME), and reads by Polars and DuckDB (storage.md)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from backfill_fakes import FakeImporter
from helpers import make_row, make_rows

from hypaware_tui.core import paths as paths_mod
from hypaware_tui.core.checkpoints import Checkpoint, CheckpointUpdate, StateDB, head_digest, path_hash
from hypaware_tui.core.dataset import MESSAGES_SCHEMA, scan_messages
from hypaware_tui.core.events import EventLog
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.reader import FilePass
from hypaware_tui.core.schema import AI_GATEWAY_MESSAGES_SCHEMA, SchemaError
from hypaware_tui.core.storage import (
    Storage,
    StorageError,
    damaged_file_advice,
    dataset_stats,
    list_part_files,
)
from hypaware_tui.importers.base import ParseStats, SourceFile, Window


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "hyp")


@pytest.fixture
def storage(layout: Layout):
    s = Storage(layout, events=EventLog(layout, "01TESTRUN", enabled=True))
    yield s
    s.close()


def all_parquet(layout: Layout) -> list[Path]:
    return sorted(layout.dataset_root.glob("**/*.parquet"))


def stored(layout: Layout) -> pl.DataFrame:
    """Every stored row (no dedupe), read file by file."""
    files = all_parquet(layout)
    if not files:
        return pl.DataFrame(schema=AI_GATEWAY_MESSAGES_SCHEMA)
    return pl.concat([pl.read_parquet(f) for f in files])


def source_file(tmp_path: Path, name: str = "session.jsonl", data: bytes = b'{"a":1}\n{"b":2}\n') -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def checkpoint_for(
    path: Path, *, offset: int | None = None, state: str = '{"n":1}', **over
) -> CheckpointUpdate:
    real = os.path.realpath(path)
    st = os.stat(real)
    head_len, head_sha = head_digest(real, st.st_size)
    entry = Checkpoint(
        path_hash=path_hash(real),
        client_name="claude",
        read_mode="incremental",
        device=st.st_dev,
        inode=st.st_ino,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        offset=st.st_size if offset is None else offset,
        head_len=head_len,
        head_sha256=head_sha,
        parser_state=state,
    )
    if over:
        entry = Checkpoint(**{**entry.__dict__, **over})
    return CheckpointUpdate(entry=entry, path=real)


# --- commit and dedupe ----------------------------------------------------------------------------------


def test_commit_writes_one_sorted_file_per_partition_with_footer(storage: Storage, layout: Layout) -> None:
    rows = make_rows(3, prefix="b") + make_rows(
        2, prefix="c", client_name="codex", created="2026-05-02T08:00:00Z"
    )
    rows += [make_row(message_id="a0", session_id="s0")]  # sorts first
    res = storage.commit(rows, [])
    assert (res.rows_written, res.files_written, res.duplicates_skipped) == (6, 2, 0)
    assert res.partitions == ["source=claude/date=2026-05-01", "source=codex/date=2026-05-02"]
    files = all_parquet(layout)
    assert [f.parent.relative_to(layout.dataset_root).as_posix() for f in files] == res.partitions
    for f in files:
        assert f.name.startswith("part-") and len(f.name) == len("part-") + 32 + len(".parquet")
        assert pl.read_parquet_metadata(f)["hyp.dataset"] == "ai_gateway_messages"
        assert pl.read_parquet_metadata(f)["hyp.schema_version"] == "1"
        assert list(pl.read_parquet_schema(f).items()) == list(AI_GATEWAY_MESSAGES_SCHEMA.items())
    claude = pl.read_parquet(files[0])
    assert claude["message_id"].to_list() == ["a0", "b0", "b1", "b2"]  # sorted by session_id, time, id


def test_recommit_adds_nothing_and_counts_duplicates(storage: Storage, layout: Layout) -> None:
    rows = make_rows(5)
    assert storage.commit(rows, []).rows_written == 5
    again = storage.commit(rows + make_rows(2, prefix="new"), [])
    assert (again.rows_written, again.duplicates_skipped, again.files_written) == (2, 5, 1)
    assert stored(layout)["part_id"].is_duplicated().sum() == 0


def test_duplicates_within_a_batch_first_wins(storage: Storage, layout: Layout) -> None:
    first = make_row(message_id="x", content_text="first")
    second = make_row(message_id="x", content_text="second")
    res = storage.commit([first, second], [])
    assert (res.rows_written, res.duplicates_skipped) == (1, 1)
    assert stored(layout)["content_text"].to_list() == ["first"]


def test_a_fresh_process_memo_sees_files_written_by_another(layout: Layout) -> None:
    a, b = Storage(layout), Storage(layout)  # two memos, as in two processes
    assert a.commit(make_rows(3, prefix="a"), []).rows_written == 3
    res = b.commit(make_rows(3, prefix="a") + make_rows(3, prefix="b"), [])
    assert (res.rows_written, res.duplicates_skipped) == (3, 3)
    # `a` loaded its memo before `b` wrote: the refresh must pick up b's file.
    res = a.commit(make_rows(3, prefix="b"), [])
    assert (res.rows_written, res.duplicates_skipped) == (0, 3)
    assert stored(layout).height == 6


def test_memo_is_rebuilt_when_a_file_it_read_is_gone(storage: Storage, layout: Layout) -> None:
    storage.commit(make_rows(2), [])
    for f in all_parquet(layout):
        f.unlink()  # e.g. removed by a retention pass of another process
    assert storage.commit(make_rows(2), []).rows_written == 2


def test_cut_date_safety_net_drops_older_rows(storage: Storage, layout: Layout) -> None:
    rows = [make_row(message_id="old", created="2026-04-30T23:59:59Z"), make_row(message_id="new")]
    res = storage.commit(rows, [], cut_date="2026-05-01")
    assert (res.rows_written, res.rows_before_floor) == (1, 1)
    assert stored(layout)["message_id"].to_list() == ["new"]


def test_empty_batch_without_checkpoints_creates_nothing(storage: Storage, layout: Layout) -> None:
    res = storage.commit([], [])
    assert res.rows_written == 0
    assert not layout.home.exists()


def test_schema_violations_are_rejected_before_anything_is_written(storage: Storage, layout: Layout) -> None:
    with pytest.raises(SchemaError, match="session_id"):
        storage.commit([make_row(session_id=None)], [])
    with pytest.raises(SchemaError, match="client_name"):
        storage.commit([make_row(client_name="../x")], [])
    with pytest.raises(SchemaError, match="UTC date"):
        storage.commit([make_row(date="2026-05-02")], [])
    assert not layout.home.exists()


def test_a_value_no_utf8_column_can_hold_never_fails_the_batch(storage: Storage, layout: Layout) -> None:
    """A lone surrogate in one row (a file name's byte that is not UTF-8, kept as `os.fsdecode` gives it, by
    a producer that did not escape it) failed the frame of the whole batch, rows of many files, on every run.
    The value is written with that byte as an escape, the same every time; the other rows commit as they are."""
    rows = make_rows(3, prefix="a") + [make_row(message_id="b0", agent_id=os.fsdecode(b"x\xff"),
                                                cwd="/h/\ud83d", content_text="ok")]
    res = storage.commit(rows, [])
    assert res.rows_written == 4
    got = stored(layout).sort("part_id")
    assert got["agent_id"].to_list() == [None, None, None, "x\\xff"]
    assert got["cwd"].to_list()[-1] == "/h/\\ud83d" and got["content_text"].to_list() == ["hello"] * 3 + ["ok"]


def test_commit_accepts_a_frame(storage: Storage, layout: Layout) -> None:
    from hypaware_tui.core.schema import frame_from_rows

    assert storage.commit(frame_from_rows(make_rows(4)), []).rows_written == 4


def test_events_write_and_flush(storage: Storage, layout: Layout) -> None:
    import json

    storage.commit(make_rows(2), [])
    storage.commit(make_rows(2), [])
    events = [json.loads(line) for line in layout.events_log.read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names == ["backfill.write", "backfill.flush", "backfill.write", "backfill.flush"]
    w = events[0]
    assert w["partition"] == "source=claude/date=2026-05-01" and w["rows_written"] == 2
    assert w["file"].startswith("part-") and w["dataset"] == "ai_gateway_messages" and w["dev_run_id"]
    assert events[2]["duplicates_skipped"] == 2 and events[2]["file"] is None
    assert events[1]["files_written"] == 1 and "lock_wait_ms" in events[1]
    for e in events:
        assert "content_text" not in e and "hello" not in json.dumps(e)


# --- checkpoints (§6.3) ----------------------------------------------------------------------------------


def test_rows_then_checkpoint_in_one_call(storage: Storage, layout: Layout, tmp_path: Path) -> None:
    src = source_file(tmp_path)
    upd = checkpoint_for(src)
    res = storage.commit(make_rows(2), [upd])
    assert res.checkpoints_updated == 1
    with StateDB.open(layout, create=False) as db:
        assert db.get(upd.entry.path_hash) == upd.entry


def test_empty_batch_still_updates_checkpoints(storage: Storage, layout: Layout, tmp_path: Path) -> None:
    upd = checkpoint_for(source_file(tmp_path))
    res = storage.commit([], [upd])
    assert (res.rows_written, res.checkpoints_updated) == (0, 1)
    assert not all_parquet(layout)


def test_checkpoints_only_move_forward(storage: Storage, layout: Layout, tmp_path: Path) -> None:
    src = source_file(tmp_path)
    far = checkpoint_for(src, offset=16, state='{"far":1}')
    near = checkpoint_for(src, offset=8, state='{"near":1}')
    storage.commit([], [far])
    res = storage.commit([], [near])
    assert (res.checkpoints_updated, res.checkpoints_kept) == (0, 1)
    with StateDB.open(layout, create=False) as db:
        assert db.get(far.entry.path_hash).parser_state == '{"far":1}'
    # Within one batch, too: the later, smaller entry does not win.
    other = source_file(tmp_path, "b.jsonl")
    res = storage.commit([], [checkpoint_for(other, offset=16), checkpoint_for(other, offset=8)])
    assert res.checkpoints_updated == 1
    with StateDB.open(layout, create=False) as db:
        assert db.get(path_hash(os.path.realpath(other))).offset == 16


def test_a_batch_further_ahead_replaces_the_stored_entry(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    src = source_file(tmp_path)
    storage.commit([], [checkpoint_for(src, offset=8)])
    res = storage.commit([], [checkpoint_for(src, offset=16)])
    assert res.checkpoints_updated == 1
    with StateDB.open(layout, create=False) as db:
        assert db.get(path_hash(os.path.realpath(src))).offset == 16



def test_a_batch_at_the_same_offset_with_a_newer_stat_replaces_the_stored_entry(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    """A file touched (or appended to and cut back) since its entry: a pass reads nothing new and ends at the
    same offset with the file's new mtime. That entry replaces the stored one; kept, the old stat made every
    later run open the file again to find nothing."""
    src = source_file(tmp_path)
    storage.commit([], [checkpoint_for(src)])
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    res = storage.commit([], [checkpoint_for(src)])
    assert (res.checkpoints_updated, res.checkpoints_kept) == (1, 0)
    with StateDB.open(layout, create=False) as db:
        got = db.get(path_hash(os.path.realpath(src)))
    assert (got.offset, got.mtime_ns) == (st.st_size, st.st_mtime_ns + 5_000_000_000)


def test_a_stored_entry_read_from_an_earlier_bound_is_kept_against_one_further_ahead(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    """§6.3 with the passes' lower bounds: the stored entry's lines were read from no bound (a backfill), the
    batch's from the daemon's capture start (it skipped older lines). The stored entry stays, even behind the
    batch's offset: replaced, its later bound made the next backfill read the whole file again. The other
    way round, the batch with the earlier bound wins, even behind the stored offset."""
    src = source_file(tmp_path)
    storage.commit([], [checkpoint_for(src, offset=8, state='{"backfill":1}')])
    res = storage.commit([], [checkpoint_for(src, offset=16, since_us=1_000, state='{"daemon":1}')])
    assert (res.checkpoints_updated, res.checkpoints_kept) == (0, 1)
    with StateDB.open(layout, create=False) as db:
        got = db.get(path_hash(os.path.realpath(src)))
    assert (got.offset, got.since_us, got.parser_state) == (8, None, '{"backfill":1}')
    other = source_file(tmp_path, "b.jsonl")
    storage.commit([], [checkpoint_for(other, offset=16, since_us=1_000)])
    res = storage.commit([], [checkpoint_for(other, offset=8)])
    assert (res.checkpoints_updated, res.checkpoints_kept) == (1, 0)
    with StateDB.open(layout, create=False) as db:
        got = db.get(path_hash(os.path.realpath(other)))
    assert (got.offset, got.since_us) == (8, None)


def rows_kept_checkpoint_dropped(storage: Storage, layout: Layout, upd: CheckpointUpdate) -> None:
    """A commit of two rows with `upd`, whose file no longer matches it: the rows are written, the checkpoint is
    counted mismatched and not stored (§6.3)."""
    res = storage.commit(make_rows(2), [upd])
    assert (res.rows_written, res.checkpoints_updated, res.checkpoints_mismatched) == (2, 0, 1)
    with StateDB.open(layout, create=False) as db:
        assert db.get(upd.entry.path_hash) is None


def test_identity_mismatch_keeps_rows_but_not_the_checkpoint(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    src = source_file(tmp_path)
    upd = checkpoint_for(src)
    src.write_bytes(b'{"rewritten":true}\n')  # head changed after the batch was parsed
    rows_kept_checkpoint_dropped(storage, layout, upd)


def test_replaced_inode_and_deleted_file_are_mismatches(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    src = source_file(tmp_path)
    upd = checkpoint_for(src)
    replacement = source_file(tmp_path, "new.jsonl", src.read_bytes())
    os.replace(replacement, src)  # same bytes, new inode
    assert storage.commit([], [upd]).checkpoints_mismatched == 1
    gone = source_file(tmp_path, "gone.jsonl")
    upd = checkpoint_for(gone)
    gone.unlink()
    assert storage.commit([], [upd]).checkpoints_mismatched == 1


def test_a_file_cut_below_the_batch_offset_keeps_the_rows_but_not_the_checkpoint(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    """storage.md §6.3: a file truncated after its batch was read, its first 4 KiB unchanged, no longer holds
    the lines up to the batch's offset: the rows are written, the checkpoint is not (stored, a file grown back
    past it would resume there, after lines it never read)."""
    src = source_file(tmp_path, data=b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * 90) for i in range(60)))
    upd = checkpoint_for(src, offset=src.stat().st_size)
    with src.open("r+b") as fh:
        fh.truncate(5000)
    assert upd.entry.head_len == 4096 and upd.entry.offset > 5000
    rows_kept_checkpoint_dropped(storage, layout, upd)


def test_a_file_rewritten_in_place_past_its_head_before_the_commit_keeps_the_rows_but_not_the_checkpoint(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    """§6.3's re-check under the lock compares the bytes before the batch's offset too (its tail hash): a file
    rewritten in place after its batch was read, same inode, same first 4 KiB, same length (a line start at
    the offset), but a line past the head changed. Stored, the checkpoint made the next pass resume after the
    changed line, which it never read."""
    data = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * 90) for i in range(60))
    src = source_file(tmp_path, data=data)
    real = os.path.realpath(src)
    fp = FilePass(FakeImporter("claude"), SourceFile("claude", real, path_hash(real), "incremental"), None,
                  Window(), ParseStats())  # fmt: skip
    upd = [b.update for b in fp.batches()][-1]
    assert upd.entry.offset == len(data)
    at = data.index(b'"n":50,')
    assert at > 4096
    with src.open("r+b") as fh:
        fh.seek(at)
        fh.write(b'"n":99,')
    rows_kept_checkpoint_dropped(storage, layout, upd)


def test_stored_entry_that_no_longer_matches_is_replaced_even_if_further(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    src = source_file(tmp_path, data=b"x" * 100 + b"\n")
    storage.commit([], [checkpoint_for(src, offset=101)])
    src.write_bytes(b"y\n")  # truncated and rewritten: the stored entry describes another file now
    res = storage.commit([], [checkpoint_for(src, offset=2)])
    assert res.checkpoints_updated == 1
    with StateDB.open(layout, create=False) as db:
        assert db.get(path_hash(os.path.realpath(src))).offset == 2



def test_a_marker_of_an_earlier_generation_means_the_dataset_was_restored(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    """storage.md: a marker of a lower generation than the checkpoints record is `cache/` restored from an
    older copy: the next import resets every checkpoint (and says so), whatever else still matches."""
    from hypaware_tui.core.storage import dataset_replaced, read_marker

    src = source_file(tmp_path)
    storage.commit(make_rows(2), [checkpoint_for(src, rows_emitted=2)])
    older = layout.dataset_marker.read_bytes()
    storage.commit(make_rows(2, prefix="n", created="2026-05-01T11:00:00Z"), [checkpoint_for(src, rows_emitted=4)])
    assert not dataset_replaced(layout)
    gen = read_marker(layout).generation
    layout.dataset_marker.write_bytes(older)
    assert read_marker(layout).generation == gen - 1
    assert dataset_replaced(layout)
    fresh = Storage(layout)
    try:
        assert fresh.ensure_import_floor(None) is True and fresh.dataset_reset
        with StateDB.open(layout, create=False) as db:
            assert db.get(path_hash(os.path.realpath(src))).offset == 0
    finally:
        fresh.close()



def test_a_writer_whose_checkpoints_another_process_reset_commits_nothing_more(
    layout: Layout, tmp_path: Path
) -> None:
    """Two writers (a backfill and the daemon): the dataset is deleted, and the other one notices first and
    resets every checkpoint. This one read its checkpoints before that reset: its next commit (rows, and
    checkpoints past lines whose rows are gone) is refused, with what happened and what to do."""
    import shutil

    from hypaware_tui.core.storage import DatasetReplaced

    src = source_file(tmp_path)
    a, b = Storage(layout), Storage(layout)
    try:
        a.ensure_import_floor(None)
        a.commit(make_rows(2), [checkpoint_for(src, rows_emitted=2)])
        shutil.rmtree(layout.dataset_root)
        assert b.ensure_import_floor(None) is True and b.dataset_reset
        with pytest.raises(DatasetReplaced) as info:
            a.commit(make_rows(2, prefix="late"), [checkpoint_for(src, rows_emitted=4)])
        assert "was deleted or replaced while this import ran: nothing more was written" in str(info.value)
        assert all_parquet(layout) == []
        with StateDB.open(layout, create=False) as db:
            assert db.get(path_hash(os.path.realpath(src))).offset == 0
    finally:
        a.close()
        b.close()


# --- import floor (§7.3) ---------------------------------------------------------------------------------


def test_import_floor_lowered_resets_checkpoints(storage: Storage, layout: Layout, tmp_path: Path) -> None:
    src = source_file(tmp_path)
    assert storage.ensure_import_floor("2026-05-01") is False  # first floor: nothing to reset
    storage.commit([], [checkpoint_for(src)])
    assert storage.ensure_import_floor("2026-05-10") is False  # later floor (retention lowered)
    with StateDB.open(layout, create=False) as db:
        assert db.get(path_hash(os.path.realpath(src))).offset > 0
        assert db.get_meta("import_floor_date") == "2026-05-10"
    assert storage.ensure_import_floor("2026-04-01") is True  # retention raised
    with StateDB.open(layout, create=False) as db:
        cp = db.get(path_hash(os.path.realpath(src)))
        assert (cp.offset, cp.parser_state, cp.head_sha256, cp.size) == (0, "{}", "", 0)
        assert db.get_meta("import_floor_date") == "2026-04-01"
    storage.commit([], [checkpoint_for(src)])
    assert storage.ensure_import_floor(None) is True  # retention 0: no floor at all is lower still
    assert storage.ensure_import_floor(None) is False
    assert storage.ensure_import_floor("2026-06-01") is False


# --- locking ---------------------------------------------------------------------------------------------


def _lock_held_for(layout: Layout, seconds: float) -> threading.Thread:
    """Another process's commit: the write lock held from now for `seconds` (join the thread after)."""
    held = threading.Event()

    def hold() -> None:
        with Storage(layout).locked():
            held.set()
            time.sleep(seconds)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    return t


def test_waiting_for_the_lock_calls_on_wait_once(layout: Layout) -> None:
    holder = _lock_held_for(layout, 0.6)
    calls: list[float] = []
    res = Storage(layout).commit(make_rows(1), [], on_wait=lambda: calls.append(time.monotonic()))
    holder.join()
    assert len(calls) == 1
    assert res.lock_wait_ms >= 400 and res.rows_written == 1


def test_a_wait_for_the_import_floor_check_is_reported_with_the_next_commit(layout: Layout) -> None:
    """A run's first wait for the lock may be the import-floor check (storage.md §7.3), not a commit: it
    is part of the lock_wait_ms of the run's first commit (it was reported nowhere)."""
    holder = _lock_held_for(layout, 0.6)
    waiter = Storage(layout)
    waiter.ensure_import_floor(None)
    holder.join()
    first = waiter.commit(make_rows(1), [])
    second = waiter.commit(make_rows(1, prefix="b"), [])
    assert first.lock_wait_ms >= 400 and second.lock_wait_ms < 400


def test_lock_timeout_is_a_clear_error(layout: Layout) -> None:
    holder = Storage(layout)
    with holder.locked():
        waiter = Storage(layout, lock_timeout=0.3)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                waiter.commit(make_rows(1), [])
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        th = threading.Thread(target=run)
        th.start()
        th.join(5)
    assert errors and isinstance(errors[0], StorageError)
    assert "write.lock" in str(errors[0]) and "try again" in str(errors[0])


# --- modes -----------------------------------------------------------------------------------------------


def test_modes_dirs_0700_files_0600_with_a_loose_umask(layout: Layout, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        s = Storage(layout, events=EventLog(layout, "RUN", enabled=True))
        s.commit(make_rows(2), [checkpoint_for(source_file(tmp_path))])
        s.ensure_import_floor("2026-01-01")
        # Keep the database open so that -wal and -shm exist while we look.
        seen = {p.name for p in layout.home.rglob("*")}
        assert {
            "ingest.sqlite",
            "ingest.sqlite-wal",
            "ingest.sqlite-shm",
            "write.lock",
            "events.jsonl",
        } <= seen
        for p in [layout.home, *layout.home.rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
        s.close()
    finally:
        os.umask(old)


# --- bad input ---------------------------------------------------------------------------------------------


def test_stray_file_stops_commits_to_its_partition_with_a_clear_error(
    storage: Storage, layout: Layout, tmp_path: Path
) -> None:
    storage.commit(make_rows(2), [])
    pdir = layout.partition_dir("claude", "2026-05-01")
    stray = pdir / "notes.parquet"
    stray.write_bytes(b"this is not parquet")
    before = sorted(p.name for p in pdir.iterdir())
    src = source_file(tmp_path)
    fresh = Storage(layout)  # a new process: must read the stray file's part_ids
    with pytest.raises(StorageError) as info:
        fresh.commit(make_rows(3, prefix="z"), [checkpoint_for(src)])
    msg = str(info.value)
    assert "notes.parquet" in msg and "nothing was written" in msg
    assert msg.endswith(damaged_file_advice(layout))  # (what to do, in the words the readers use too)
    assert f"delete {layout.ingest_db}, run hyp backfill" in msg
    assert sorted(p.name for p in pdir.iterdir()) == before  # nothing written, no temp left
    assert StateDB.open(layout, create=False).get(path_hash(os.path.realpath(src))) is None
    # Other partitions are unaffected.
    assert fresh.commit([make_row(message_id="q", created="2026-05-03T00:00:00Z")], []).rows_written == 1
    # The reader-side report names it too, and moving it away lets the commit through.
    assert dataset_stats(layout).unreadable == [str(stray)]
    stray.rename(tmp_path / "notes.parquet")
    assert fresh.commit(make_rows(3, prefix="z"), []).rows_written == 3


def test_hidden_files_named_like_part_files_are_not_part_of_the_dataset(storage: Storage, layout: Layout) -> None:
    """A dataset copied through a macOS volume gets an AppleDouble `._<name>` beside each file (and a hidden
    `.<name>.parquet` is no file hyp writes): not Parquet, and not the dataset's. Listed as part files, they
    stopped every commit to their partition ("cannot be read") and every query."""
    storage.commit(make_rows(2), [])
    pdir = layout.partition_dir("claude", "2026-05-01")
    (good,) = list_part_files(pdir)
    (pdir / f"._{good}").write_bytes(b"\x00\x05\x16\x07 AppleDouble resource fork")
    (pdir / ".hidden.parquet").write_bytes(b"not parquet either")
    assert list_part_files(pdir) == [good]
    res = Storage(layout).commit(make_rows(3), [])  # a new process reads the partition's part_ids
    assert (res.rows_written, res.duplicates_skipped) == (1, 2)
    assert sorted(scan_messages(layout).collect()["message_id"].to_list()) == ["m0", "m1", "m2"]


def test_truncated_and_foreign_parquet_are_reported(storage: Storage, layout: Layout) -> None:
    storage.commit(make_rows(2), [])
    pdir = layout.partition_dir("claude", "2026-05-01")
    good = list_part_files(pdir)[0]
    data = (pdir / good).read_bytes()
    (pdir / "part-ffffffffffffffffffffffffffffffff.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(StorageError, match="part-ffff.*cannot be read"):
        Storage(layout).commit(make_rows(1, prefix="n"), [])
    (pdir / "part-ffffffffffffffffffffffffffffffff.parquet").unlink()
    pl.DataFrame({"part_id": ["m0#0"], "x": [1]}).write_parquet(pdir / "part-foreign.parquet")
    with pytest.raises(StorageError, match="columns are not those of schema_version 1"):
        Storage(layout).commit(make_rows(1, prefix="n"), [])


def test_full_disk_is_a_clear_error_and_keeps_what_was_committed(
    storage: Storage, layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = make_rows(2) + make_rows(2, prefix="c", client_name="codex")
    src = source_file(tmp_path)
    real_write_all = paths_mod.write_all
    calls = {"n": 0}

    def failing_write_all(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] >= 3:  # the first partition (two halves) succeeds, the second hits a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write_all(fd, data)

    monkeypatch.setattr(paths_mod, "write_all", failing_write_all)
    with pytest.raises(StorageError) as info:
        storage.commit(rows, [checkpoint_for(src)])
    assert "No space left on device" in str(info.value) and "Free some disk space" in str(info.value)
    assert not list(layout.dataset_root.rglob("*.tmp"))  # temp file removed
    assert [f.parent.parent.name for f in all_parquet(layout)] == ["source=claude"]  # first one kept
    assert StateDB.open(layout, create=False).get(path_hash(os.path.realpath(src))) is None
    monkeypatch.setattr(paths_mod, "write_all", real_write_all)
    res = storage.commit(rows, [checkpoint_for(src)])
    assert (res.rows_written, res.duplicates_skipped, res.checkpoints_updated) == (2, 2, 1)
    assert stored(layout).height == 4


def _spread_rows(days: int, per_day: int = 3) -> list[dict]:
    """Rows of one client over `days` consecutive dates: a commit touching `days` partitions."""
    rows: list[dict] = []
    for d in range(days):
        rows += make_rows(per_day, prefix=f"d{d}-", created=f"2026-03-{d + 1:02d}T12:00:00Z")
    return rows


def test_a_commit_over_many_partitions_writes_them_on_several_threads(
    storage: Storage, layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History spread over months: one commit touches many partitions, written up to WRITE_THREADS at a time.
    The files, the result and the events are those of writing them one at a time."""
    rows = _spread_rows(12)
    names: list[str] = []
    real = Storage._write_bytes

    def spy(self, pdir, data, file_id=None):
        names.append(threading.current_thread().name)
        return real(self, pdir, data, file_id)

    monkeypatch.setattr(Storage, "_write_bytes", spy)
    res = storage.commit(rows, [])
    assert (res.rows_written, res.files_written) == (36, 12)
    assert res.partitions == [f"source=claude/date=2026-03-{d + 1:02d}" for d in range(12)]  # partition order
    assert len(names) == 12 and all(n.startswith("hyp-write") for n in names)
    assert not [t for t in threading.enumerate() if t.name.startswith("hyp-write")]  # none outlives the commit

    import hypaware_tui.core.storage as storage_mod

    one_by_one = Layout(layout.home.parent / "one")
    monkeypatch.setattr(storage_mod, "PARALLEL_WRITES_FROM", 10_000)
    with Storage(one_by_one) as s:
        assert s.commit(rows, []).partitions == res.partitions
    assert stored(layout).sort("part_id").equals(stored(one_by_one).sort("part_id"))
    assert storage.commit(rows, []).duplicates_skipped == 36  # the memo has every file written


def test_a_full_disk_during_a_parallel_commit_keeps_a_consistent_dataset(
    storage: Storage, layout: Layout, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC on one of many partitions written at once: a clear error once no write is running, no temp
    file, no checkpoint; the files that were written are whole, and the replay adds exactly the rest."""
    rows = _spread_rows(12)
    src = source_file(tmp_path)
    real_write_all = paths_mod.write_all
    lock = threading.Lock()
    calls = {"n": 0}

    def failing_write_all(fd: int, data: bytes) -> None:
        with lock:
            calls["n"] += 1
            n = calls["n"]
        if n == 9:  # a few partitions in
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write_all(fd, data)

    monkeypatch.setattr(paths_mod, "write_all", failing_write_all)
    with pytest.raises(StorageError) as info:
        storage.commit(rows, [checkpoint_for(src)])
    assert "No space left on device" in str(info.value)
    assert not [t for t in threading.enumerate() if t.name.startswith("hyp-write")]
    assert not list(layout.dataset_root.rglob("*.tmp"))
    written = stored(layout)  # every file present reads whole
    assert 0 < written.height < len(rows) and written["part_id"].is_unique().all()
    assert StateDB.open(layout, create=False).get(path_hash(os.path.realpath(src))) is None
    monkeypatch.setattr(paths_mod, "write_all", real_write_all)
    res = storage.commit(rows, [checkpoint_for(src)])
    assert (res.rows_written, res.duplicates_skipped) == (len(rows) - written.height, written.height)
    assert res.checkpoints_updated == 1
    final = stored(layout)
    assert final.height == len(rows) and final["part_id"].is_unique().all()


def test_unwritable_hyp_home_is_a_clear_error(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    layout.home.mkdir(mode=0o700)
    if os.geteuid() != 0:
        layout.home.chmod(0o500)
    else:  # root ignores modes: inject the EACCES mkdir would raise

        def deny(path, mode=0o777, *a, **k):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        monkeypatch.setattr(os, "mkdir", deny)
    try:
        with pytest.raises(StorageError) as info:
            Storage(layout).commit(make_rows(1), [])
    finally:
        layout.home.chmod(0o700)
    msg = str(info.value)
    assert "Permission denied" in msg and str(layout.home) in msg and "HYP_HOME" in msg


def _commit_with_mkdir_failing(layout: Layout, monkeypatch: pytest.MonkeyPatch, err: int) -> str:
    layout.home.mkdir(mode=0o700, exist_ok=True)

    def fail(path, mode=0o777, *a, **k):
        raise OSError(err, os.strerror(err), str(path))

    monkeypatch.setattr(os, "mkdir", fail)
    with pytest.raises(StorageError) as info:
        Storage(layout).commit(make_rows(1), [])
    monkeypatch.undo()
    return str(info.value)


def test_a_read_only_mount_says_so_not_to_check_permissions(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """HYP_HOME on a read-only mount: "Check that … belong to you and are writable (mode 0700)": no chmod
    fixes EROFS."""
    msg = _commit_with_mkdir_failing(layout, monkeypatch, errno.EROFS)
    assert msg == (f"cannot create the run directory: Read-only file system ({layout.run_dir}). The file system "
                   "is mounted read-only: point HYP_HOME at a writable place (or remount it read-write).")


def test_too_many_open_files_says_to_raise_ulimit_n(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ulimit -n 28; hyp backfill`: "Too many open files (…). Nothing already committed was lost; run it again
    once the problem is fixed.": no word of the limit. ENFILE is the system's table, which no ulimit raises."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    msg = _commit_with_mkdir_failing(layout, monkeypatch, errno.EMFILE)
    assert msg == (f"cannot create the run directory: Too many open files ({layout.run_dir}). Raise the limit on "
                   f"open files (ulimit -n; currently {limit}) and run it again. {paths_mod.IMPORT_KEPT}")
    msg = _commit_with_mkdir_failing(layout, monkeypatch, errno.ENFILE)
    assert msg == (f"cannot create the run directory: Too many open files in system ({layout.run_dir}). The "
                   "system's table of open files is full (fs.file-max): close some programs and run it again. "
                   f"{paths_mod.IMPORT_KEPT}")


def test_reading_history_with_too_many_open_files_says_to_raise_ulimit_n() -> None:
    """The read side said "Check its permissions." of a file it could not open for want of file descriptors."""
    import resource

    from hypaware_tui.importers.base import os_error_advice

    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert os_error_advice(OSError(errno.EMFILE, "Too many open files")) == (
        f"Raise the limit on open files (ulimit -n; currently {limit}) and run it again.")
    assert os_error_advice(OSError(errno.EACCES, "Permission denied")) == "Check its permissions."


# --- reading ---------------------------------------------------------------------------------------------


def _mixed_dataset(storage: Storage) -> None:
    storage.commit(make_rows(4, created="2026-05-01T22:00:00Z"), [])
    storage.commit(make_rows(3, prefix="c", client_name="codex", created="2026-05-02T01:00:00Z"), [])
    storage.commit(make_rows(2, prefix="d", created="2026-05-03T00:00:00Z"), [])
    # The same part_id in two partitions (a replayed line with another time): dedupe is partition-local,
    # the reader removes it.
    storage.commit([make_row(message_id="c0", client_name="codex", created="2026-05-04T00:00:00Z")], [])


def test_polars_and_duckdb_read_the_same_dataset(storage: Storage, layout: Layout) -> None:
    _mixed_dataset(storage)
    (layout.partition_dir("claude", "2026-05-01") / ".part-0000.parquet.tmp").write_bytes(b"partial")
    glob = os.path.join(layout.dataset_root, "**", "*.parquet")
    # The storage.md §9 Polars snippet.
    lf = pl.scan_parquet(glob, hive_partitioning=True)
    p_rows = lf.select("part_id", "source", "date", "content_text", "message_created_at").collect()
    assert p_rows.schema["date"] == pl.String and p_rows.schema["source"] == pl.String
    d_rows = duckdb.sql(
        f"SELECT part_id, source, date, content_text, epoch_us(message_created_at) AS t "
        f"FROM read_parquet('{glob}', hive_partitioning=true, hive_types_autocast=false)"
    ).fetchall()
    p_set = sorted((r[0], r[1], r[2], r[3], int(r[4].timestamp() * 1_000_000)) for r in p_rows.iter_rows())
    assert p_set == sorted(d_rows) and len(d_rows) == 10
    # The §9 DuckDB snippet (date typed DATE there) gives the same counts per partition.
    counts = duckdb.sql(
        f"SELECT source, date, count(*) AS rows FROM read_parquet('{glob}', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY date, source"
    ).fetchall()
    p_counts = lf.group_by("source", "date").len().sort("date", "source").collect().rows()
    assert [(s, d.isoformat(), n) for s, d, n in counts] == [(s, d, n) for s, d, n in p_counts]
    # Deduplicated relation: hyp's scan and the DuckDB QUALIFY form agree on the distinct count.
    msgs = scan_messages(layout).collect()
    assert msgs.height == 9 and msgs["part_id"].n_unique() == 9
    n = duckdb.sql(
        f"SELECT count(*) FROM (SELECT * FROM read_parquet('{glob}', hive_partitioning=true, "
        "hive_types_autocast=false, filename=true) "
        "QUALIFY row_number() OVER (PARTITION BY part_id ORDER BY filename) = 1)"
    ).fetchall()[0][0]
    assert n == 9


def test_scan_messages_keeps_the_oldest_copy_and_the_full_schema(storage: Storage, layout: Layout) -> None:
    _mixed_dataset(storage)
    lf = scan_messages(layout)
    assert lf.collect_schema() == pl.Schema(MESSAGES_SCHEMA)
    c0 = lf.filter(pl.col("part_id") == "c0#0").collect()
    assert c0.height == 1 and c0["date"][0] == "2026-05-02"  # from the first (smallest) file name


def test_scan_messages_of_a_missing_or_empty_dataset(layout: Layout) -> None:
    lf = scan_messages(layout)
    assert lf.collect().height == 0 and lf.collect_schema() == pl.Schema(MESSAGES_SCHEMA)
    layout.dataset_root.mkdir(parents=True)
    assert scan_messages(layout).collect().height == 0
    assert not layout.run_dir.exists()


def test_dataset_stats(storage: Storage, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row counts of every file from one scan (`hyp status` on 1,080 files: 1.0 s file by file, 0.2 s so);
    file by file only when that scan fails, to name the unreadable file (see the stray file test)."""
    from hypaware_tui.core import storage as storage_mod

    _mixed_dataset(storage)
    storage.commit(make_rows(1, prefix="e", created="2026-05-01T23:00:00Z"), [])
    monkeypatch.setattr(storage_mod, "file_row_count", lambda p: pytest.fail("counted file by file"))
    s = dataset_stats(layout)
    assert s.files == 5 and s.rows == {"claude": 7, "codex": 4} and s.total_rows == 11
    assert (s.oldest, s.newest) == ("2026-05-01", "2026-05-04")
    assert (s.small_file_partitions, s.small_files) == (1, 2)
    assert s.bytes == sum(f.stat().st_size for f in all_parquet(layout))


def test_head_digest_and_path_hash(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"a" * 5000)
    assert head_digest(p, 5000) == (4096, hashlib.sha256(b"a" * 4096).hexdigest())
    assert head_digest(p, 10) == (10, hashlib.sha256(b"a" * 10).hexdigest())
    assert path_hash("/x/y") == hashlib.sha256(b"/x/y").hexdigest()[:16]


def test_a_cancelled_run_stops_waiting_for_the_lock(layout: Layout) -> None:
    """A Ctrl+C of `hyp backfill` sets its cancel event; a commit waiting for another process's lock stops
    waiting (it waited until the lock came free) and writes nothing."""
    from hypaware_tui.core.storage import LockWaitCancelled

    holder = _lock_held_for(layout, 3.0)
    waiter = Storage(layout)
    cancelled_at = time.monotonic() + 0.5
    waiter.cancel = lambda: time.monotonic() >= cancelled_at
    notices: list[float] = []
    with pytest.raises(LockWaitCancelled):
        waiter.commit(make_rows(2), [], on_wait=lambda: notices.append(time.monotonic()))
    stopped = time.monotonic()
    assert stopped - cancelled_at < 1.0 and len(notices) == 1
    holder.join()
    assert not list(layout.dataset_root.rglob("*.parquet"))
    # once cancelled, a later commit that would have to wait does not print the notice again
    holder = _lock_held_for(layout, 1.0)
    with pytest.raises(LockWaitCancelled):
        waiter.commit(make_rows(2), [], on_wait=lambda: notices.append(time.monotonic()))
    holder.join()
    assert len(notices) == 1


def test_two_writers_two_sources_and_a_compaction_keep_the_newest_file_records_true(
    layout: Layout, tmp_path: Path
) -> None:
    """A backfill and the daemon (two instances, each under the write lock) committing in turn to two sources,
    with a compaction between: the newest part file recorded for each source is always there, so no commit and
    no status takes the dataset for a replaced one."""
    from hypaware_tui.core.storage import dataset_replaced

    daemon, backfill = Storage(layout), Storage(layout)
    try:
        for i in range(6):
            writer = (daemon, backfill)[i % 2]
            client = ("claude", "codex")[(i // 2) % 2]
            src = source_file(tmp_path, f"{client}-{i}.jsonl")
            writer.ensure_import_floor(None)
            assert not writer.dataset_reset
            writer.commit(make_rows(2, prefix=f"w{i}-", client_name=client),
                          [checkpoint_for(src, client_name=client)])
            assert not dataset_replaced(layout)
            if i == 3:
                assert daemon.compact().error is None
                assert not dataset_replaced(layout)
        with StateDB.open(layout, create=False) as db:
            newest = db.newest_files()
        root = layout.dataset_root
        assert set(newest) == {"claude", "codex"}
        for client, rel in newest.items():
            assert rel == f"source={client}/" + max(p.relative_to(root / f"source={client}").as_posix()
                                                     for p in (root / f"source={client}").glob("*/part-*.parquet"))
    finally:
        daemon.close()
        backfill.close()
