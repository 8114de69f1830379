"""Compaction (storage.md §8), retention prune (§7.4) and stale temp cleanup (§3)."""

from __future__ import annotations

import json
import os
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from helpers import make_row, make_rows

from hypaware_tui.core import storage as storage_mod
from hypaware_tui.core.checkpoints import Checkpoint, StateDB
from hypaware_tui.core.dataset import scan_messages
from hypaware_tui.core.events import EventLog
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.schema import frame_from_rows
from hypaware_tui.core.storage import Storage, cut_date_for, list_part_files

TODAY = date(2026, 8, 30)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "hyp")


@pytest.fixture
def storage(layout: Layout):
    s = Storage(layout, events=EventLog(layout, "RUN", enabled=True))
    yield s
    s.close()


def files_in(layout: Layout, source: str = "claude", d: str = "2026-05-01") -> list[str]:
    return list_part_files(layout.partition_dir(source, d))


def events(layout: Layout, name: str) -> list[dict]:
    if not layout.events_log.exists():
        return []
    return [e for e in map(json.loads, layout.events_log.read_text().splitlines()) if e["event"] == name]


def ten_one_row_files_with_duplicates(storage: Storage, layout: Layout) -> None:
    for row in make_rows(10):
        storage.commit([row], [])
    # Duplicates that dedupe would normally prevent (e.g. two writers on a filesystem without locks):
    # written directly, bypassing the commit's dedupe.
    pdir = layout.partition_dir("claude", "2026-05-01")
    dup = frame_from_rows([make_row(message_id="m3", message_index=3, content_text="later copy")])
    storage._write_part(pdir, dup)
    storage._write_part(pdir, frame_from_rows(make_rows(2)))


# --- compaction ------------------------------------------------------------------------------------------


def test_compaction_keeps_distinct_part_ids_and_removes_duplicates(storage: Storage, layout: Layout) -> None:
    ten_one_row_files_with_duplicates(storage, layout)
    storage.commit([make_row(message_id="single", created="2026-05-02T00:00:00Z")], [])
    assert len(files_in(layout)) == 12
    # a write of the compaction journal that a kill cut short: nothing removed it (audit of destructive paths)
    leftover = layout.compaction_journal.parent / f".{layout.compaction_journal.name}.0123abcd.tmp"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b'{"partit')
    before = scan_messages(layout).collect()
    inputs = pl.concat(
        [pl.read_parquet(layout.partition_dir("claude", "2026-05-01") / f) for f in files_in(layout)]
    )
    assert inputs.height == 13 and inputs["part_id"].n_unique() == 10

    result = storage.compact()
    assert result.error is None
    assert not leftover.exists() and not layout.compaction_journal.exists()
    assert [p.name for p in result.partitions] == ["source=claude/date=2026-05-01"]  # single-file one skipped
    p = result.partitions[0]
    assert (p.files_before, p.rows_before, p.duplicates) == (12, 13, 3)
    names = files_in(layout)
    assert names == [p.file]
    out = pl.read_parquet(layout.partition_dir("claude", "2026-05-01") / names[0])
    assert out.height == 10 and sorted(out["part_id"]) == sorted(inputs["part_id"].unique())
    # First copy (name order) wins, and the file is sorted by the §2 key.
    assert out.filter(pl.col("part_id") == "m3#0")["content_text"][0] == "hello"
    assert out["message_id"].to_list() == [f"m{i}" for i in range(10)]
    after = scan_messages(layout).collect()
    assert after.sort("part_id").equals(before.sort("part_id"))
    ev = events(layout, "cache.compact")[-1]
    assert ev["partitions"] == 1 and ev["files_removed"] == 12 and ev["duplicates_removed"] == 3
    assert ev["bytes_before"] > ev["bytes_after"] > 0
    # storage.md §10: these fields and no others, and no path (HYP_HOME's folder names the user)
    assert set(ev) == {"ts", "event", "dev_run_id", "dataset", "partitions", "files_removed", "duplicates_removed",
                       "bytes_before", "bytes_after"}, ev
    assert str(layout.home) not in layout.events_log.read_text()
    # The memo follows: re-committing the same rows adds nothing.
    assert storage.commit(make_rows(10), []).rows_written == 0
    assert storage.compact().partitions == []  # nothing left to do


def test_compaction_writes_the_bytes_of_unique_then_sort_of_every_input_row(storage: Storage, layout: Layout) -> None:
    """`compact_frames` works the order out on the key columns and moves each column once (for memory): its file
    is byte for byte what `unique(keep="first", maintain_order=True)` of the concatenated files, then
    `encode_part`'s stable sort, gave. The files repeat part_ids with other contents (the first in name order
    wins), interleave sessions and times, and tie on the whole sort key (two part_ids of one message_id and
    part_index: the file order of the tie is kept)."""
    import random

    from hypaware_tui.core.storage import compact_frames, encode_part

    rng = random.Random(3)
    pdir = layout.partition_dir("claude", "2026-05-01")
    pdir.mkdir(parents=True)
    made: list[dict] = []
    for f in range(7):
        batch = []
        for i in range(rng.randint(1, 40)):
            if made and rng.random() < 0.25:  # a part_id an earlier file has, with other content
                batch.append({**rng.choice(made), "content_text": f"copy {f}/{i}"})
                continue
            n = len(made) + len(batch)
            row = make_row(created=f"2026-05-01T{rng.randint(0, 23):02d}:00:0{rng.randint(0, 1)}Z",
                           session_id=f"s{rng.randint(0, 3)}", message_id=f"m{rng.randint(0, 30)}",
                           part_index=rng.randint(0, 1), part_id=f"p{n}", content_text=f"text {n} " * rng.randint(0, 50))
            batch.append(row)
        storage._write_bytes(pdir, storage_mod._encode_sorted(frame_from_rows(batch)))  # (file order as given)
        made.extend(r for r in batch if not r["content_text"].startswith("copy"))
    names = files_in(layout)
    frames = [pl.read_parquet(pdir / n) for n in names]
    merged = pl.concat(frames)
    expected = encode_part(merged.unique(subset="part_id", keep="first", maintain_order=True))
    ties = merged.group_by(list(storage_mod.SORT_KEY)).len().filter(pl.col("len") > 1).height
    assert ties > 0 and merged["part_id"].n_unique() < merged.height  # (the case has both)

    out, rows_before, input_ids = compact_frames([pl.read_parquet(pdir / n) for n in names])
    assert rows_before == merged.height
    assert input_ids.to_list() == sorted(set(merged["part_id"]))
    assert storage_mod._encode_sorted(out) == expected
    result = storage.compact()
    assert result.error is None and result.partitions[0].duplicates == merged.height - out.height
    assert (pdir / files_in(layout)[0]).read_bytes() == expected


def test_compaction_dry_run_changes_nothing(storage: Storage, layout: Layout) -> None:
    ten_one_row_files_with_duplicates(storage, layout)
    storage.commit(make_rows(2, prefix="one", created="2026-05-02T10:00:00Z"), [])  # one file: nothing to do
    snapshot = sorted((p, p.stat().st_mtime_ns) for p in layout.home.rglob("*"))
    result = storage.compact(dry_run=True)
    assert [(p.name, p.files_before, p.rows_before, p.duplicates) for p in result.partitions] == [
        ("source=claude/date=2026-05-01", 12, 13, 3)
    ]
    assert result.bytes_after is None
    assert sorted((p, p.stat().st_mtime_ns) for p in layout.home.rglob("*")) == snapshot
    assert events(layout, "cache.compact") == []


def test_failed_verification_keeps_the_inputs(storage: Storage, layout: Layout) -> None:
    ten_one_row_files_with_duplicates(storage, layout)
    before = files_in(layout)
    seen: list[Path] = []

    def reject(path: Path, frame: pl.DataFrame) -> bool:
        seen.append(path)
        assert frame.height == 10
        return False

    storage.verify_hook = reject
    result = storage.compact()
    assert (
        result.error and "failed verification" in result.error and "original files were kept" in result.error
    )
    assert result.failed_partition == "source=claude/date=2026-05-01" and result.partitions == []
    assert files_in(layout) == before and not seen[0].exists()
    assert not list(layout.dataset_root.rglob("*.tmp"))
    assert scan_messages(layout).collect().height == 10


@pytest.mark.parametrize("fault", ["row_lost", "part_id_changed"])
def test_a_compaction_whose_new_file_lost_a_row_fails_verification_and_keeps_the_inputs(
    storage: Storage, layout: Layout, monkeypatch, fault: str
) -> None:
    """storage.md §8 step 4: the new file is checked against its inputs before any input goes. A merge that
    lost a row, or kept the right number of rows but one under another `part_id`, would have replaced the
    inputs and lost that message for good; it fails verification, the new file deleted, the inputs kept."""
    ten_one_row_files_with_duplicates(storage, layout)
    before = files_in(layout)
    ids = sorted(scan_messages(layout).collect()["part_id"].unique().to_list())
    real = storage_mod.compact_frames

    def broken(frames):
        out, rows_before, input_ids = real(frames)
        if fault == "row_lost":
            return out.head(out.height - 1), rows_before, input_ids
        changed = pl.Series("part_id", ["other#0", *out["part_id"].to_list()[1:]])
        return out.with_columns(changed), rows_before, input_ids

    monkeypatch.setattr(storage_mod, "compact_frames", broken)
    result = storage.compact()
    problem = "9 rows, expected 10" if fault == "row_lost" else "part_id set differs from the inputs"
    assert result.error and f"failed verification ({problem})" in result.error
    assert "original files were kept" in result.error and result.partitions == []
    assert files_in(layout) == before
    assert sorted(scan_messages(layout).collect()["part_id"].unique().to_list()) == ids


def test_compaction_stops_at_an_unreadable_file(storage: Storage, layout: Layout) -> None:
    ten_one_row_files_with_duplicates(storage, layout)
    for row in make_rows(2, prefix="x", created="2026-05-03T00:00:00Z"):
        storage.commit([row], [])
    bad = layout.partition_dir("claude", "2026-05-01") / "part-00000000000000000000000000000000.parquet"
    bad.write_bytes(b"PAR1garbage")
    result = storage.compact()
    assert result.failed_partition == "source=claude/date=2026-05-01"
    assert bad.name in result.error and "Move it into" in result.error
    assert len(files_in(layout)) == 13 and len(files_in(layout, d="2026-05-03")) == 2  # left as they were


# --- prune -----------------------------------------------------------------------------------------------


def dated_dataset(storage: Storage) -> dict[str, int]:
    """Partitions at TODAY minus 200, 121, 120, 119 and 1 days; returns rows per date."""
    counts = {}
    for i, days in enumerate((200, 121, 120, 119, 1)):
        d = TODAY - timedelta(days=days)
        n = i + 1
        storage.commit(make_rows(n, prefix=f"d{days}_", created=f"{d.isoformat()}T12:00:00Z"), [])
        counts[d.isoformat()] = n
    storage.commit(
        make_rows(
            2,
            prefix="cx",
            client_name="codex",
            created=f"{(TODAY - timedelta(days=200)).isoformat()}T01:00:00Z",
        ),
        [],
    )
    return counts


def test_prune_removes_exactly_the_partitions_before_the_cut(storage: Storage, layout: Layout) -> None:
    dated_dataset(storage)
    cut = cut_date_for(120, TODAY)
    assert cut == "2026-05-02"
    dry = storage.prune(120, today=TODAY, dry_run=True)
    expected = [
        "source=claude/date=2026-02-11",
        "source=claude/date=2026-05-01",
        "source=codex/date=2026-02-11",
    ]
    assert sorted(p.name for p in dry.partitions) == expected
    assert dry.rows_removed == 1 + 2 + 2 and dry.files_removed == 3
    assert len(list(layout.dataset_root.glob("**/*.parquet"))) == 6  # dry run changed nothing

    res = storage.prune(120, today=TODAY)
    assert sorted(p.name for p in res.partitions) == expected and res.rows_removed == 5
    left = sorted(
        p.parent.relative_to(layout.dataset_root).as_posix() for p in layout.dataset_root.glob("**/*.parquet")
    )
    assert left == [
        "source=claude/date=2026-05-02",
        "source=claude/date=2026-05-03",
        "source=claude/date=2026-08-29",
    ]
    assert not (layout.dataset_root / "source=codex").exists()  # emptied source dir removed
    assert list(layout.trash.iterdir()) == []  # deleted, not just moved
    ev = events(layout, "cache.prune")[-1]
    assert ev["partitions"] == 3 and ev["rows_removed"] == 5 and ev["bytes_before"] > ev["bytes_after"]
    # storage.md §10: these fields and no others, and no path (HYP_HOME's folder names the user)
    assert set(ev) == {"ts", "event", "dev_run_id", "dataset", "partitions", "files_removed", "rows_removed",
                       "bytes_before", "bytes_after", "cut_date"}, ev
    assert str(layout.home) not in layout.events_log.read_text()
    assert storage.prune(120, today=TODAY).partitions == []


def test_prune_leaves_what_hyp_did_not_write_in_a_partition(storage: Storage, layout: Layout) -> None:
    """A folder of copies and a note put in a partition by hand were deleted with it: the prune renamed the whole
    `date=` folder into the trash and emptied it, though the README says no hyp command deletes such entries
    (audit of destructive paths). Only the Parquet and temp files go now; the rest stays and is named (and a
    partition that is a link keeps what it points to, as before)."""
    import shutil

    from hypaware_tui.core.storage import ignored_paths

    dated_dataset(storage)
    old = layout.dataset_root / "source=claude" / "date=2026-02-11"
    (old / "mybackup").mkdir()
    for f in old.glob("*.parquet"):
        shutil.copy(f, old / "mybackup" / f.name)
    (old / "notes.txt").write_text("mine\n")
    (old / ".DS_Store").write_bytes(b"\0")  # (a file manager's: no one's data, goes with the partition's files)
    assert ignored_paths(layout.dataset_root) == [str(old / "mybackup")]  # (named by hyp status: not read)
    dry = storage.prune(120, today=TODAY, dry_run=True)
    assert dry.kept_foreign == [str(old / "mybackup"), str(old / "notes.txt")]
    res = storage.prune(120, today=TODAY)
    assert res.rows_removed == 5 and res.kept_foreign == dry.kept_foreign
    assert sorted(p.name for p in old.iterdir()) == ["mybackup", "notes.txt"]
    assert (old / "notes.txt").read_text() == "mine\n" and len(list((old / "mybackup").glob("*.parquet"))) == 1
    assert not list(old.glob("*.parquet")) and list(layout.trash.iterdir()) == []
    assert storage.prune(120, today=TODAY).partitions == []  # (what is left holds no rows: nothing to prune)


def test_hyp_cache_prune_names_what_it_left_in_a_partition(tmp_path: Path) -> None:
    """What a person sees of the above: the entries left, by path, after the counts of what went."""
    import subprocess
    import sys

    from hypaware_tui.core.timeutil import now_us, us_to_iso

    layout = Layout(tmp_path / "hyp")
    layout.home.mkdir(mode=0o700)
    layout.config.write_text('{"version": 1, "clients": {"claude": {"enabled": true}}, "retention_days": 30, '
                             '"capture": {"enabled": false}}')
    old_day = us_to_iso(now_us() - 90 * 86_400_000_000)[:10]
    with Storage(layout) as st:
        st.commit(make_rows(3, prefix="old", created=f"{old_day}T12:00:00Z"), [])
    part = layout.dataset_root / "source=claude" / f"date={old_day}"
    (part / "mybackup").mkdir()
    (part / "notes.txt").write_text("mine")
    env = dict(os.environ, HOME=str(tmp_path), HYP_HOME=str(layout.home), CLAUDE_CONFIG_DIR=str(tmp_path / "c"),
               CODEX_HOME=str(tmp_path / "x"))
    for dry, verb in ((True, "Would keep"), (False, "Kept")):
        p = subprocess.run([sys.executable, "-m", "hypaware_tui", "cache", "prune", *(["--dry-run"] if dry else [])],
                           env=env, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        at = lines.index(f"{verb} 2 entries hyp did not write, where they are:")
        shown = f"~/hyp/cache/ai_gateway_messages/source=claude/date={old_day}"  # (HOME is tmp_path)
        assert lines[at + 1 : at + 3] == [f"  {shown}/mybackup", f"  {shown}/notes.txt"], p.stdout
    assert sorted(x.name for x in part.iterdir()) == ["mybackup", "notes.txt"]


def test_prune_records_its_cut_first_and_a_broken_checkpoint_database_stops_it_before_any_removal(
    storage: Storage, layout: Layout
) -> None:
    """storage.md §7.3: the prune records its cut as the import floor (a later, earlier floor then resets the
    checkpoints). That write comes first: with a checkpoint database that cannot be written, the prune used to
    move the partitions to the trash and then fail, saying nothing of them (an audit)."""
    from hypaware_tui.core.storage import META_IMPORT_FLOOR, StorageError

    dated_dataset(storage)
    before = sorted(p.as_posix() for p in layout.dataset_root.glob("**/*.parquet"))
    storage.close()
    layout.ingest_db.parent.mkdir(parents=True, exist_ok=True)
    layout.ingest_db.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    broken = Storage(layout)
    with pytest.raises(StorageError, match="checkpoint database"):
        broken.prune(120, today=TODAY)
    broken.close()
    assert sorted(p.as_posix() for p in layout.dataset_root.glob("**/*.parquet")) == before
    for p in layout.state_dir.glob("ingest.sqlite*"):
        p.unlink()
    fresh = Storage(layout)
    try:
        assert fresh.prune(120, today=TODAY).rows_removed == 5
        db = StateDB.open(layout, create=False)
        try:
            assert db.get_meta(META_IMPORT_FLOOR) == cut_date_for(120, TODAY)
        finally:
            db.close()
    finally:
        fresh.close()



def test_prune_keeps_the_rows_claim_of_a_source_whose_rows_on_the_cut_date_stay(
    storage: Storage, layout: Layout
) -> None:
    """A source left with rows dated on the cut date only still holds rows: its checkpoints keep claiming them
    (`rows_emitted`), so that losing them later is noticed (`dataset_stale`). A source whose every partition
    went claims none, and the next import does not take the dataset for replaced."""
    from hypaware_tui.core.storage import dataset_replaced

    cut = cut_date_for(120, TODAY)
    storage.commit(make_rows(2, created="2026-05-01T12:00:00Z") + make_rows(1, prefix="k", created=f"{cut}T00:00:00Z")
                   + make_rows(2, prefix="x", client_name="codex", created="2026-05-01T12:00:00Z"), [])  # fmt: skip
    with StateDB.open(layout, create=True) as db:
        db.put_many(
            [Checkpoint(h, client, "incremental", 1, 1, 10, 1, 10, 10, "0" * 64, "{}", rows_emitted=3)
             for h, client in (("a" * 16, "claude"), ("c" * 16, "codex"))]
        )  # fmt: skip
    res = storage.prune(120, today=TODAY)
    assert sorted(p.name for p in res.partitions) == ["source=claude/date=2026-05-01", "source=codex/date=2026-05-01"]
    with StateDB.open(layout, create=False) as db:
        assert {h: cp.rows_emitted for h, cp in db.get_all().items()} == {"a" * 16: 3, "c" * 16: 0}
        assert db.clients_claiming_rows() == ["claude"]
    assert not dataset_replaced(layout)



def test_prune_raises_an_earlier_import_floor_to_its_cut_and_never_lowers_one(storage: Storage, layout: Layout) -> None:
    """§7.3: the last import ran with an earlier floor (a longer retention); a prune at a later cut records its
    cut, so that raising the retention again resets the checkpoints and reads those rows back. A prune at an
    earlier cut than the recorded floor leaves it."""
    from hypaware_tui.core.storage import META_IMPORT_FLOOR

    dated_dataset(storage)
    storage.ensure_import_floor("2026-01-01")
    storage.prune(120, today=TODAY)
    with StateDB.open(layout, create=False) as db:
        assert db.get_meta(META_IMPORT_FLOOR) == "2026-05-02"
    assert storage.ensure_import_floor("2026-01-01") is True  # retention raised again: every file read again
    storage.ensure_import_floor("2026-06-01")
    storage.commit(make_rows(1, prefix="late", created="2026-04-01T10:00:00Z"), [])
    assert [p.name for p in storage.prune(120, today=TODAY).partitions] == ["source=claude/date=2026-04-01"]
    with StateDB.open(layout, create=False) as db:
        assert db.get_meta(META_IMPORT_FLOOR) == "2026-06-01"



def test_prune_moves_the_newest_file_record_to_the_newest_file_left(storage: Storage, layout: Layout) -> None:
    """The newest part file recorded for a source is in a partition the prune removes: the record moves to the
    newest file left (creation order), which a later check finds, and not to an older one."""
    storage.ensure_import_floor(None)  # (a checkpoint database: the commits record their newest files there)
    dated_dataset(storage)
    newest_left = f"source=claude/date={(TODAY - timedelta(days=1)).isoformat()}"
    newest_left += "/" + files_in(layout, d=(TODAY - timedelta(days=1)).isoformat())[0]
    storage.commit(make_rows(1, prefix="old", created="2026-02-01T10:00:00Z"), [])  # the newest file, pruned
    with StateDB.open(layout, create=False) as db:
        assert db.newest_files()["claude"].startswith("source=claude/date=2026-02-01/")
    storage.prune(120, today=TODAY)
    with StateDB.open(layout, create=False) as db:
        assert db.newest_files() == {"claude": newest_left}  # (codex kept no file: its record went)


def test_prune_on_a_full_disk_says_nothing_was_lost(storage: Storage, layout: Layout, monkeypatch) -> None:
    """A prune that cannot write (a full disk when it makes the trash directory) says so with its own advice,
    not an import's ("the next run resumes from the last checkpoint": a prune has no checkpoints), and keeps
    the partitions as they were."""
    import errno

    from hypaware_tui.core import storage as storage_mod
    from hypaware_tui.core.storage import StorageError

    dated_dataset(storage)
    before = sorted(p.as_posix() for p in layout.dataset_root.glob("**/*.parquet"))
    real = storage_mod.ensure_dir

    def ensure_dir(path, *args, **kw):
        if Path(path) == layout.trash:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kw)

    monkeypatch.setattr(storage_mod, "ensure_dir", ensure_dir)
    with pytest.raises(StorageError) as info:
        storage.prune(120, today=TODAY)
    assert str(info.value) == (
        f"could not prune the dataset: No space left on device ({layout.trash}). Free some disk space and run it "
        "again. Nothing was lost: the partitions not removed yet are kept as they were."
    )
    assert sorted(p.as_posix() for p in layout.dataset_root.glob("**/*.parquet")) == before


def test_prune_with_retention_zero_removes_nothing(storage: Storage, layout: Layout) -> None:
    dated_dataset(storage)
    assert storage.prune(0, today=TODAY, dry_run=True).partitions == []
    res = storage.prune(0, today=TODAY)
    assert res.partitions == [] and res.cut_date is None
    assert len(list(layout.dataset_root.glob("**/*.parquet"))) == 6


def test_prune_on_a_missing_home_creates_nothing(layout: Layout) -> None:
    Storage(layout).prune(120, today=TODAY)
    assert not layout.home.exists()


def test_prune_deletes_stale_tmp_and_stale_checkpoints(storage: Storage, layout: Layout) -> None:
    dated_dataset(storage)
    pdir = layout.partition_dir("claude", "2026-08-29")
    old_tmp, new_tmp = pdir / ".part-old.parquet.tmp", pdir / ".part-new.parquet.tmp"
    old_tmp.write_bytes(b"x")
    new_tmp.write_bytes(b"x")
    os.utime(old_tmp, (time.time() - 7200, time.time() - 7200))
    with StateDB.open(layout, create=True) as db:
        db.put_many(
            [Checkpoint(h, client, "incremental", 1, 1, 10, 1, 10, 10, "0" * 64, "{}")
             for h, client in (("a" * 16, "claude"), ("b" * 16, "claude"), ("c" * 16, "codex"))]
        )  # fmt: skip
    res = storage.prune(120, today=TODAY, client_roots_hashes={"claude": {"a" * 16}, "codex": None})
    assert res.tmp_removed == 1 and not old_tmp.exists() and new_tmp.exists()
    assert res.checkpoints_removed == 1
    with StateDB.open(layout, create=False) as db:
        assert sorted(db.get_all()) == ["a" * 16, "c" * 16]  # codex roots unreadable: kept


def test_a_prune_dry_run_counts_what_the_real_run_removes(storage: Storage, layout: Layout) -> None:
    """The dry run reported `tmp_removed` 0 (and no checkpoint) while the real run then removed a stale `.tmp`
    (and the checkpoints of vanished files). It counts them now, and writes nothing; a `.tmp` inside a partition
    that goes is removed with it, not counted twice."""
    dated_dataset(storage)
    kept_dir = layout.partition_dir("claude", "2026-08-29")
    gone_dir = layout.partition_dir("claude", (TODAY - timedelta(days=200)).isoformat())
    stale = [kept_dir / ".part-old.parquet.tmp", gone_dir / ".part-old.parquet.tmp"]
    for p in [*stale, kept_dir / ".part-new.parquet.tmp"]:
        p.write_bytes(b"x")
    for p in stale:
        os.utime(p, (time.time() - 7200, time.time() - 7200))
    with StateDB.open(layout, create=True) as db:
        db.put_many([Checkpoint(h, "claude", "incremental", 1, 1, 10, 1, 10, 10, "0" * 64, "{}")
                     for h in ("a" * 16, "b" * 16)])  # fmt: skip
    hashes = {"claude": {"a" * 16}}
    before = sorted((str(p), p.stat().st_mtime_ns) for p in layout.home.rglob("*"))
    dry = storage.prune(120, today=TODAY, dry_run=True, client_roots_hashes=hashes)
    assert sorted((str(p), p.stat().st_mtime_ns) for p in layout.home.rglob("*")) == before
    real = storage.prune(120, today=TODAY, client_roots_hashes=hashes)
    assert (dry.tmp_removed, dry.checkpoints_removed) == (real.tmp_removed, real.checkpoints_removed) == (1, 1)
    assert [p.name for p in dry.partitions] == [p.name for p in real.partitions]


def test_prune_finishes_an_interrupted_trash(storage: Storage, layout: Layout) -> None:
    dated_dataset(storage)
    leftover = layout.trash / "0190abcd"
    (leftover / "x").mkdir(parents=True)
    storage.prune(120, today=TODAY)
    assert list(layout.trash.iterdir()) == []


def test_prune_failing_at_the_checkpoint_database_empties_the_trash_and_says_what_it_removed(
    storage: Storage, layout: Layout, monkeypatch
) -> None:
    """A full disk at the checkpoint database after the old partitions were moved out: they are deleted from
    the trash all the same (they stayed there, on the full disk), the error lists them (`pruned`) and the pass
    is logged; the advice is a prune's, not an import's "the next run resumes from the last checkpoint"."""
    import sqlite3

    from hypaware_tui.core import checkpoints as checkpoints_mod
    from hypaware_tui.core.paths import PRUNE_KEPT
    from hypaware_tui.core.storage import StorageError

    dated_dataset(storage)
    old = [p.name for p in storage.prune(120, today=TODAY, dry_run=True).partitions]
    assert len(old) == 3

    def full(self, hashes):
        exc = sqlite3.OperationalError("database or disk is full")
        exc.sqlite_errorcode = sqlite3.SQLITE_FULL
        raise checkpoints_mod._db_error(self.path, exc)

    monkeypatch.setattr(StateDB, "delete", full)
    with pytest.raises(StorageError) as info:
        storage.prune(120, today=TODAY, client_roots_hashes={"claude": set()})
    message = str(info.value)
    assert "database or disk is full" in message and PRUNE_KEPT in message
    assert "resumes from the last checkpoint" not in message
    assert info.value.pruned is not None
    assert [p.name for p in info.value.pruned.partitions] == old
    assert list(layout.trash.iterdir()) == []
    assert [e["partitions"] for e in events(layout, "cache.prune")] == [3]


def test_cleanup_tmp_keeps_fresh_temp_files(storage: Storage, layout: Layout) -> None:
    storage.commit(make_rows(1), [])
    pdir = layout.partition_dir("claude", "2026-05-01")
    (pdir / ".part-x.parquet.tmp").write_bytes(b"x")
    assert storage.cleanup_tmp() == 0
    assert storage.cleanup_tmp(now=time.time() + 3601) == 1
    assert list_part_files(pdir) and not list(pdir.glob("*.tmp"))


@pytest.mark.parametrize("case", ["mid_unlink", "new_lacks_rows", "journal_garbage"])
def test_an_interrupted_compaction_is_finished_or_undone_by_the_next_writer(tmp_path: Path, case: str) -> None:
    """The compaction journal's decisions: an input already deleted means the new file was verified, so the
    rest go; a new file that lacks rows of an intact input is deleted instead; an unreadable journal is
    dropped and touches nothing."""
    layout = Layout(tmp_path / "hyp")
    rows = make_rows(3)
    with Storage(layout) as s:
        for row in rows:
            s.commit([row], [])
    pdir = next(layout.dataset_root.glob("source=*/date=*"))
    inputs = list_part_files(pdir)
    assert len(inputs) == 3
    with Storage(layout) as s:
        merged = frame_from_rows(rows if case != "new_lacks_rows" else rows[:2])
        new = s._write_part(pdir, merged)
    partition = f"{pdir.parent.name}/{pdir.name}"
    journal = {"partition": partition, "new": new, "inputs": inputs}
    layout.compaction_journal.parent.mkdir(parents=True, exist_ok=True)
    layout.compaction_journal.write_text("{not json" if case == "journal_garbage" else json.dumps(journal))
    if case == "mid_unlink":
        (pdir / inputs[0]).unlink()
    events = EventLog(layout, "r1", enabled=True)
    with Storage(layout, events=events) as s:
        s.ensure_import_floor(None)
    assert not layout.compaction_journal.exists()
    left = list_part_files(pdir)
    if case == "mid_unlink":
        assert left == [new]
    elif case == "new_lacks_rows":
        assert left == inputs
    else:
        assert left == sorted([*inputs, new])  # nothing decided: readers deduplicate, compaction cleans up
    ids = pl.concat([pl.read_parquet(pdir / n) for n in left])["part_id"]
    assert sorted(set(ids.to_list())) == sorted(r["part_id"] for r in rows)  # nothing lost
    recovered = [json.loads(x) for x in layout.events_log.read_text().splitlines()
                 if '"cache.compact_recovered"' in x] if layout.events_log.exists() else []  # fmt: skip
    assert [e["finished"] for e in recovered] == ({"mid_unlink": [True], "new_lacks_rows": [False]}.get(case, []))
