"""The pieces under the storage engine: HYP_HOME layout and atomic writes, ids, the events log and the
SQLite state database (storage.md §1, §3, §5.1, §10, §11)."""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
import stat
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hypaware_tui.core import paths as paths_mod
from hypaware_tui.core.checkpoints import Checkpoint, StateDB, StateDBError
from hypaware_tui.core.events import EventLog, iter_events_reversed, last_event_times
from hypaware_tui.core.ids import new_run_id, uuid7_hex
from hypaware_tui.core.paths import Layout, atomic_write_bytes, ensure_dir, resolve_hyp_home


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


# --- paths -----------------------------------------------------------------------------------------------


def test_resolve_hyp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_hyp_home({"HOME": "/home/ada"}) == Path("/home/ada/.hyp")
    assert resolve_hyp_home({"HOME": "/home/ada", "HYP_HOME": "~/data/hyp"}) == Path("/home/ada/data/hyp")
    assert resolve_hyp_home({"HOME": "/home/ada", "HYP_HOME": "/srv/hyp/"}) == Path("/srv/hyp")
    monkeypatch.chdir(tmp_path)
    assert resolve_hyp_home({"HYP_HOME": "rel/hyp"}) == tmp_path / "rel" / "hyp"
    assert resolve_hyp_home({"HOME": "/h", "HYP_HOME": ""}) == Path("/h/.hyp")


def test_layout_paths_and_no_disk_access(tmp_path: Path) -> None:
    lay = Layout.resolve({"HYP_HOME": str(tmp_path / "h")})
    rel = {k: getattr(lay, k).relative_to(lay.home).as_posix() for k in (
        "config", "cache_dir", "dataset_root", "trash", "state_dir", "ingest_db", "capture_json", "run_dir",
        "write_lock", "daemon_pid", "daemon_status", "logs_dir", "events_log", "daemon_log")}  # fmt: skip
    assert rel == {
        "config": "hypaware-config.json",
        "cache_dir": "cache",
        "dataset_root": "cache/ai_gateway_messages",
        "trash": "cache/.trash",
        "state_dir": "state",
        "ingest_db": "state/ingest.sqlite",
        "capture_json": "state/capture.json",
        "run_dir": "run",
        "write_lock": "run/write.lock",
        "daemon_pid": "run/daemon.pid",
        "daemon_status": "run/daemon-status.json",
        "logs_dir": "logs",
        "events_log": "logs/events.jsonl",
        "daemon_log": "logs/daemon.log",
    }
    assert not lay.home.exists()


def test_ensure_dir_creates_0700_chain(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ensure_dir(tmp_path / "a" / "b" / "c")
    finally:
        os.umask(old)
    for p in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert mode(p) == 0o700
    (tmp_path / "mine").mkdir(mode=0o755)
    os.chmod(tmp_path / "mine", 0o755)
    ensure_dir(tmp_path / "mine")
    assert mode(tmp_path / "mine") == 0o755  # an existing directory keeps its mode


def test_atomic_write_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "d" / "f.json"
    atomic_write_bytes(target, b"one")
    assert target.read_bytes() == b"one" and mode(target) == 0o600 and mode(target.parent) == 0o700
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"

    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paths_mod, "write_all", full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"three")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]  # temp removed


def test_atomic_write_bytes_fsyncs_the_whole_file_then_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """storage.md §3: write, fsync, rename, directory fsync. Without the file's fsync a power cut after the rename
    can leave the config or the checkpoints' side files empty under their real name; no test failed without it."""
    target = tmp_path / "d" / "f.json"
    target.parent.mkdir()
    synced: list[tuple[int, int, bool]] = []  # (inode, size, is a directory) at each fsync
    real = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((st.st_ino, st.st_size, stat.S_ISDIR(st.st_mode)))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_bytes(target, b"complete")
    file_ino, dir_ino = target.stat().st_ino, target.parent.stat().st_ino
    assert (file_ino, len(b"complete"), False) in synced, synced
    assert (synced[-1][0], synced[-1][2]) == (dir_ino, True), synced  # (the last one: after the rename)


def test_atomic_write_bytes_removes_its_temp_file_when_the_rename_fails(tmp_path: Path) -> None:
    """The rename refused (a directory where the file belongs): the error is raised and no `.tmp` is left beside
    it (one was left at every attempt, and no test failed)."""
    target = tmp_path / "d" / "f.json"
    (target / "inside").mkdir(parents=True)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"data")
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]
    assert target.is_dir() and [p.name for p in target.iterdir()] == ["inside"]


# --- ids -------------------------------------------------------------------------------------------------


def test_run_ids_are_time_sortable_ulids() -> None:
    a = new_run_id()
    time.sleep(0.002)
    b = new_run_id()
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", a) and a < b


def test_uuid7_hex_is_ordered_within_a_process() -> None:
    ids = [uuid7_hex() for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert all(i[12] == "7" and i[16] in "89ab" for i in ids)  # version 7, RFC 4122 variant
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    ms = int(ids[0][:12], 16)
    assert abs(ms - time.time() * 1000) < 5000


# --- events ----------------------------------------------------------------------------------------------


def test_events_fields_mode_and_disabled_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lay = Layout(tmp_path / "h")
    EventLog(lay, "RUN1", enabled=False).emit("backfill.start", providers=["claude"])
    assert not lay.home.exists()  # a dry run writes nothing, creates nothing
    monkeypatch.delenv("DEV_RUN_ID", raising=False)
    log = EventLog(lay, "RUN1", enabled=True)
    log.emit("backfill.start", providers=["claude"])
    log.emit("backfill.plan", provider="codex", files=3)
    monkeypatch.setenv("DEV_RUN_ID", "dev-42")
    EventLog(lay, "RUN2", enabled=True).emit("backfill.finish", status="ok")
    lines = [json.loads(x) for x in lay.events_log.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["backfill.start", "backfill.plan", "backfill.finish"]
    assert lines[0]["dev_run_id"] == "RUN1" and lines[2]["dev_run_id"] == "dev-42"
    assert lines[1]["provider"] == "codex" and "provider" not in lines[0]
    assert all(e["dataset"] == "ai_gateway_messages" for e in lines)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", lines[0]["ts"])
    assert mode(lay.events_log) == 0o600 and mode(lay.logs_dir) == 0o700


def test_an_event_quoting_a_path_that_is_not_utf8_is_written(tmp_path: Path) -> None:
    """A message holding a path with bytes that are not UTF-8 (`os.fsdecode` keeps them as lone surrogates)
    crashed `emit` ("surrogates not allowed"), and the command with it. The line is written, valid UTF-8 JSON,
    the bytes shown as `\\xff` escapes."""
    lay = Layout(tmp_path / "h")
    log = EventLog(lay, "R", enabled=True)
    where = os.fsdecode(b"/tmp/h\xffp")
    log.emit("backfill.provider_finish", provider="claude", status="failed",
             error=f"could not write {where}: disk full", more={"k\udcfe": ["\ud83d"]})
    (event,) = [json.loads(x) for x in lay.events_log.read_bytes().decode("utf-8").splitlines()]
    assert event["error"] == "could not write /tmp/h\\xffp: disk full"
    assert event["more"] == {"k\\xfe": ["\\ud83d"]}
    assert next(iter_events_reversed(lay))["error"] == "could not write /tmp/h\\xffp: disk full"


def test_events_rotate_keeping_three(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    log = EventLog(lay, "R", enabled=True, max_bytes=2000)
    for i in range(200):
        log.emit("backfill.write", n=i, pad="x" * 50)
    names = sorted(p.name for p in lay.logs_dir.iterdir())
    assert names == ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"]
    for p in lay.logs_dir.iterdir():
        assert p.stat().st_size <= 2000 and mode(p) == 0o600
    newest = next(iter_events_reversed(lay))
    assert newest["n"] == 199
    seen = [e["n"] for e in iter_events_reversed(lay)]
    assert seen == sorted(seen, reverse=True) and seen[0] == 199


def test_last_event_times(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    assert last_event_times(lay, ["cache.prune"]) == {"cache.prune": None}
    log = EventLog(lay, "R", enabled=True)
    log.emit("cache.prune", partitions=1)
    log.emit("cache.compact", partitions=1)
    first = last_event_times(lay, ["cache.prune", "cache.compact"])
    time.sleep(0.01)
    log.emit("cache.prune", partitions=2)
    again = last_event_times(lay, ["cache.prune", "cache.compact"])
    assert again["cache.compact"] == first["cache.compact"] and again["cache.prune"] > first["cache.prune"]
    # weeks of imports later, the compaction sits in a rotated log, under more than the 4 MiB tail that
    # iter_events_reversed reads; an event whose fields quote the name does not count
    small = EventLog(lay, "R", enabled=True, max_bytes=3 * 1024 * 1024)
    for i in range(2_800):
        small.emit("backfill.flush", n=i, pad="x" * 2_000, note='"event":"cache.compact"')
    assert (lay.logs_dir / "events.jsonl.1").exists()
    assert all(e["event"] != "cache.compact" for e in iter_events_reversed(lay))
    assert last_event_times(lay, ["cache.prune", "cache.compact", "nope"]) == {**again, "nope": None}


# --- state database ------------------------------------------------------------------------------------------


def cp(h: str, client: str = "claude", offset: int = 10, **kw) -> Checkpoint:
    base = dict(path_hash=h, client_name=client, read_mode="incremental", device=1, inode=2, size=100,
                mtime_ns=123, offset=offset, head_len=50, head_sha256="ab" * 32, parser_state='{"k":1}')  # fmt: skip
    base.update(kw)
    return Checkpoint(**base)


def test_statedb_read_only_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=False) as db:
        assert db.get("x") is None and db.get_all() == {} and db.get_meta("import_floor_date") is None
        with pytest.raises(StateDBError, match="read-only"):
            db.put_many([cp("a" * 16)])
    assert not lay.home.exists()


def test_a_database_from_before_since_us_is_read_and_then_extended(tmp_path: Path) -> None:
    """A state database written before checkpoints kept their pass's lower bound: read-only opens read its
    entries with no bound, the first writable open adds the column, and nothing is lost."""
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        db.put(cp("a" * 16))
    conn = sqlite3.connect(lay.ingest_db)
    conn.execute("ALTER TABLE files DROP COLUMN since_us")
    conn.commit()
    conn.close()
    with StateDB.open(lay, create=False) as db:
        got = db.get("a" * 16)
        assert got is not None and got.since_us is None and got.offset == cp("a" * 16).offset
        assert db.stat_keys(got.client_name)["a" * 16][5] is None
    with StateDB.open(lay, create=True) as db:
        assert db.get("a" * 16) == got
        db.put(replace(got, since_us=123))
        assert db.get("a" * 16).since_us == 123
        db.reset_all()  # (the bound stays: the daemon's pass from the start keeps it)
        assert db.get("a" * 16).since_us == 123 and db.get("a" * 16).offset == 0


def test_a_database_from_before_tail_hashes_is_read_migrated_and_resumed(tmp_path: Path) -> None:
    """A state database written before checkpoints kept a hash of the bytes before their offset: read-only
    opens read its entries with no tail, the first writable open adds the columns, and its entries resume
    with their head check alone (no reset, only the bytes added read)."""
    from backfill_fakes import FakeImporter

    from hypaware_tui.core.checkpoints import path_hash
    from hypaware_tui.core.reader import FilePass
    from hypaware_tui.importers.base import ParseStats, SourceFile, Window

    src_path = tmp_path / "s.jsonl"
    msg = lambda i: json.dumps({"type": "msg", "session": "s", "id": f"m{i}", "ts": "2026-05-01T10:00:00Z",  # noqa: E731
                                "text": "x" * 500}).encode() + b"\n"  # fmt: skip
    src_path.write_bytes(b"".join(msg(i) for i in range(20)))
    src = SourceFile("claude", str(src_path), path_hash(str(src_path)), "incremental", True)
    imp = FakeImporter("claude")
    entry = list(FilePass(imp, src, None, Window(), ParseStats()).batches())[-1].update.entry
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        db.put(entry)
    conn = sqlite3.connect(lay.ingest_db)
    conn.execute("ALTER TABLE files DROP COLUMN tail_len")
    conn.execute("ALTER TABLE files DROP COLUMN tail_sha256")
    conn.commit()
    conn.close()
    old = replace(entry, tail_len=None, tail_sha256=None)
    with StateDB.open(lay, create=False) as db:
        assert db.get(entry.path_hash) == old and db.get_all() == {entry.path_hash: old}
    with StateDB.open(lay, create=True) as db:
        assert db.get(entry.path_hash) == old
        db.put(entry)
        assert db.get(entry.path_hash) == entry
        db.put(old)
    with sqlite3.connect(lay.ingest_db) as conn:
        assert [r[1] for r in conn.execute("PRAGMA table_info(files)")][-2:] == ["tail_len", "tail_sha256"]
    with src_path.open("ab") as fh:
        fh.write(msg(20))
    with StateDB.open(lay, create=False) as db:
        got = db.get(entry.path_hash)
    fp = FilePass(imp, src, got, Window(), ParseStats())
    rows = [r["message_id"] for b in fp.batches() for r in b.rows]
    assert (fp.status, fp.bytes_read, rows) == ("read", len(msg(20)), ["m20"])


def test_an_old_database_gives_a_clients_entries_its_capture_start_as_their_bound(tmp_path: Path) -> None:
    """Entries written before the bound existed may be the daemon's, whose first pass over a file began at the
    capture start: with no bound, a backfill would never read the history it skipped. They get the capture
    start less the grace, so the next backfill reads those files again once; a client without a capture
    start keeps none."""
    from hypaware_tui.core.daemon.capture import CaptureStart, write_capture

    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        db.put_many([cp("a" * 16), cp("b" * 16, client="codex")])
    conn = sqlite3.connect(lay.ingest_db)
    conn.execute("ALTER TABLE files DROP COLUMN since_us")
    conn.commit()
    conn.close()
    write_capture(lay, {"claude": CaptureStart(10_000_000_000, "wizard")})
    want = {"a" * 16: 10_000_000_000 - 300_000_000, "b" * 16: None}
    with StateDB.open(lay, create=False) as db:  # read-only: as the migration will make it
        assert {h: e.since_us for h, e in db.get_all().items()} == want
        assert db.stat_keys("claude")["a" * 16][5] == want["a" * 16]
    with StateDB.open(lay, create=True) as db:
        assert {h: e.since_us for h, e in db.get_all().items()} == want
    write_capture(lay, {})  # migrated once: the stored values stay
    with StateDB.open(lay, create=True) as db:
        assert {h: e.since_us for h, e in db.get_all().items()} == want


def test_statedb_schema_pragmas_and_modes(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    old = os.umask(0o022)
    try:
        db = StateDB.open(lay, create=True)
        db.put(cp("a" * 16))
    finally:
        os.umask(old)
    conn = sqlite3.connect(lay.ingest_db)
    cols = [(r[1], r[2], r[3], r[5]) for r in conn.execute("PRAGMA table_info(files)")]
    assert cols == [
        ("path_hash", "TEXT", 0, 1), ("client_name", "TEXT", 1, 0), ("read_mode", "TEXT", 1, 0),
        ("device", "INTEGER", 0, 0), ("inode", "INTEGER", 0, 0), ("size", "INTEGER", 1, 0),
        ("mtime_ns", "INTEGER", 1, 0), ("offset", "INTEGER", 1, 0), ("head_len", "INTEGER", 1, 0),
        ("head_sha256", "TEXT", 1, 0), ("parser_state", "TEXT", 1, 0), ("rows_emitted", "INTEGER", 1, 0),
        ("updated_at", "TEXT", 1, 0), ("since_us", "INTEGER", 0, 0), ("tail_len", "INTEGER", 0, 0),
        ("tail_sha256", "TEXT", 0, 0),
    ]  # fmt: skip
    assert [(r[1], r[2], r[3], r[5]) for r in conn.execute("PRAGMA table_info(meta)")] == [
        ("key", "TEXT", 0, 1),
        ("value", "TEXT", 1, 0),
    ]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT value FROM meta WHERE key='state_version'").fetchone()[0] == "1"
    conn.close()
    assert db._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    for suffix in ("", "-wal", "-shm"):
        assert mode(Path(f"{lay.ingest_db}{suffix}")) == 0o600, suffix
    assert mode(lay.state_dir) == 0o700
    db.close()


def test_statedb_api(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        assert db.put_many([cp("a" * 16), cp("b" * 16, "codex"), cp("c" * 16, offset=99)]) == 3
        assert db.get("a" * 16) == cp("a" * 16)
        assert set(db.get_all()) == {"a" * 16, "b" * 16, "c" * 16}
        assert set(db.get_all("codex")) == {"b" * 16}
        db.put(cp("a" * 16, offset=50, parser_state='{"k":2}'))
        assert db.get("a" * 16).offset == 50
        assert db.delete(["b" * 16, "zz"]) == 1 and db.get("b" * 16) is None
        db.set_meta("import_floor_date", "2026-05-01")
        assert db.get_meta("import_floor_date") == "2026-05-01"
        assert db.reset_all() == 2
        for c in db.get_all().values():
            assert (c.offset, c.parser_state, c.head_len, c.head_sha256, c.size, c.mtime_ns) == (
                0,
                "{}",
                0,
                "",
                0,
                0,
            )
            assert c.inode == 2  # entries are kept
        row = db._conn.execute("SELECT updated_at FROM files LIMIT 1").fetchone()[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row)


def test_statedb_get_many_reads_present_entries_across_query_chunks(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        keys = [f"{i:016x}" for i in range(1203)]  # more than two IN (...) chunks
        db.put_many(cp(k, offset=i) for i, k in enumerate(keys))
        asked = keys[::-1] + ["f" * 16, keys[5]]  # reversed, an absent one, a repeat
        got = db.get_many(asked)
        assert set(got) == set(keys)
        assert all(got[k] == db.get(k) for k in keys) and got[keys[1202]].offset == 1202
        assert db.get_many([]) == {}


def test_statedb_stat_keys_are_the_stat_fields_of_one_clients_entries(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        db.put_many([cp("a" * 16, offset=7), cp("b" * 16, client_name="codex"),
                     cp("c" * 16, device=None, since_us=5)])  # fmt: skip
        keys = db.stat_keys("claude")
        assert set(keys) == {"a" * 16, "c" * 16}
        for h, key in keys.items():
            full = db.get(h)
            assert key == (full.size, full.mtime_ns, full.device, full.inode, full.offset, full.since_us)
        assert keys["c" * 16][5] == 5
        assert keys["a" * 16][4] == 7 and keys["c" * 16][2] is None


def test_put_many_is_one_transaction(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        db.put(cp("a" * 16))
        bad = cp("b" * 16, client_name=None)  # NOT NULL violation in the middle of the batch
        with pytest.raises(sqlite3.IntegrityError):
            db.put_many([cp("c" * 16), bad, cp("d" * 16)])
        assert set(db.get_all()) == {"a" * 16}


def test_statedb_read_only_open_of_an_existing_database_creates_no_files(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        db.put(cp("a" * 16))
    before = sorted(p.name for p in lay.state_dir.iterdir())
    assert before == ["ingest.sqlite"]  # the last writer checkpointed and removed -wal/-shm
    with StateDB.open(lay, create=False) as ro:
        assert ro.get("a" * 16) == cp("a" * 16)
    assert sorted(p.name for p in lay.state_dir.iterdir()) == before
    # With a writer active (WAL present), a reader sees committed data.
    writer = StateDB.open(lay, create=True)
    writer.put(cp("b" * 16))
    with StateDB.open(lay, create=False) as ro:
        assert set(ro.get_all()) == {"a" * 16, "b" * 16}
    writer.close()


def test_statedb_unusable_file_is_a_clear_error(tmp_path: Path) -> None:
    lay = Layout(tmp_path / "h")
    lay.state_dir.mkdir(parents=True)
    lay.ingest_db.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateDBError) as info:
        StateDB.open(lay, create=True)
    assert str(lay.ingest_db) in str(info.value) and "move it away" in str(info.value)


def test_statedb_reads_and_writes_of_a_damaged_database_are_clear_errors(tmp_path: Path) -> None:
    """Opened fine (header and schema intact), malformed further on: every entry point raises StateDBError,
    which each caller reports, never sqlite3's own (a dry run ended as an "unexpected error")."""
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        db.put_many(cp(f"{i:016x}") for i in range(200))
        db.set_meta("import_floor_date", "2026-01-01")

    def damage(first_page: int) -> None:
        page = int.from_bytes(lay.ingest_db.read_bytes()[16:18], "big")
        with open(lay.ingest_db, "r+b") as fh:
            fh.seek((first_page - 1) * page)
            fh.write(b"\xa5" * (lay.ingest_db.stat().st_size - (first_page - 1) * page))

    def raises(db: StateDB, name: str, call) -> None:
        with pytest.raises(StateDBError) as info:
            call(db)
        assert str(info.value).startswith(f"cannot use the checkpoint database {lay.ingest_db}: database disk "
                                          "image is malformed. "), name

    # Pages 1-5 (the schema, the meta table and its index, the first pages of the files table) are intact:
    # both opens work, and the reads of the files table fail.
    damage(6)
    for create in (False, True):
        with StateDB.open(lay, create=create) as db:
            assert db.get_meta("import_floor_date") == "2026-01-01"
            raises(db, "stat_keys", lambda db: db.stat_keys("claude"))
            raises(db, "get_many", lambda db: db.get_many(f"{i:016x}" for i in range(200)))
            raises(db, "get_all", lambda db: db.get_all())
            raises(db, "count", lambda db: db.count("claude"))
            raises(db, "get", lambda db: db.get(f"{199:016x}"))
            if create:
                raises(db, "delete", lambda db: db.delete([f"{i:016x}" for i in range(200)]))
                raises(db, "reset_all", lambda db: db.reset_all())
    # From page 3 on (the meta table's index): a dry run's read of the import floor fails too.
    damage(3)
    with StateDB.open(lay, create=False) as db:
        raises(db, "get_meta", lambda db: db.get_meta("import_floor_date"))


_FILES_WITH_A_NOTE = (
    "DROP TABLE files; CREATE TABLE files (path_hash TEXT PRIMARY KEY, client_name TEXT NOT NULL, read_mode TEXT "
    "NOT NULL, device INTEGER, inode INTEGER, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, offset INTEGER NOT "
    "NULL, head_len INTEGER NOT NULL, head_sha256 TEXT NOT NULL, parser_state TEXT NOT NULL, rows_emitted INTEGER "
    "NOT NULL DEFAULT 0, updated_at TEXT NOT NULL, since_us INTEGER, note TEXT NOT NULL)"
)


@pytest.mark.parametrize(("sql", "problem"), [
    ("ALTER TABLE files DROP COLUMN head_sha256", "its files table has no column head_sha256"),
    (_FILES_WITH_A_NOTE, "its files table has a column this hyp does not write: note"),
    ("DROP TABLE meta; CREATE TABLE meta (key TEXT PRIMARY KEY, val TEXT)", "its meta table has no column value"),
])
def test_statedb_whose_tables_are_not_this_hyps_is_damaged(tmp_path: Path, sql: str, problem: str) -> None:
    """A table without a column this hyp uses failed every write with "no such column: …" and the advice to
    run it again: the open checks the columns and says to move the database away, writable or read-only."""
    lay = Layout(tmp_path / "h")
    with StateDB.open(lay, create=True) as db:
        db.put(cp("a" * 16))
    conn = sqlite3.connect(lay.ingest_db)
    conn.executescript(sql)
    conn.close()
    for create in (True, False):
        with pytest.raises(StateDBError) as info:
            StateDB.open(lay, create=create)
        assert str(info.value) == (f"cannot use the checkpoint database {lay.ingest_db}: {problem}. If it is "
                                   "damaged, move it away: the next import re-reads every file and dedupe drops "
                                   "the rows already stored.")


def test_statedb_read_only_view_of_a_database_without_tables_is_empty(tmp_path: Path) -> None:
    """(A writer creates the file, then its tables: a reader in between sees an empty database, not a
    damaged one.)"""
    lay = Layout(tmp_path / "h")
    lay.state_dir.mkdir(parents=True)
    lay.ingest_db.touch()
    with StateDB.open(lay, create=False) as db:
        assert db.get_all() == {} and db.get_meta("import_floor_date") is None
    with StateDB.open(lay, create=True) as db:
        db.put(cp("a" * 16))
        assert set(db.get_all()) == {"a" * 16}

def test_statedb_errors_say_what_to_do_by_their_cause(tmp_path: Path) -> None:
    """Every SQLite error said "If it is damaged, move it away". A full database says to free space (here: the
    page limit SQLite reports as a full disk); a damaged one still says to move it away."""
    lay = Layout(tmp_path / "h")
    db = StateDB.open(lay, create=True)
    db.put(cp("a" * 16))
    pages = db._conn.execute("PRAGMA page_count").fetchone()[0]
    db._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StateDBError) as info:
        db.put_many(cp(f"{i:016x}", parser_state="x" * 2000) for i in range(100))
    assert str(info.value) == (f"cannot use the checkpoint database {lay.ingest_db}: database or disk is full. "
                               f"{paths_mod.FULL_DISK_HINT}")
    assert set(db.get_all()) == {"a" * 16}  # (rolled back)
    db.close()
    # another writer holds it (past the wait, here none): not damaged either
    with StateDB.open(lay, create=True) as db, StateDB.open(lay, create=True) as other:
        other._conn.execute("BEGIN IMMEDIATE")
        db._conn.execute("PRAGMA busy_timeout = 0")
        with pytest.raises(StateDBError) as info:
            db.put(cp("b" * 16))
        other._conn.execute("ROLLBACK")
    assert str(info.value) == (f"cannot use the checkpoint database {lay.ingest_db}: database is locked. Another "
                               "hyp process (a backfill or the daemon) holds it; run it again once that one is done.")
    lay.ingest_db.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateDBError) as info:
        StateDB.open(lay, create=True)
    assert str(info.value).endswith(": file is not a database. If it is damaged, move it away: the next import "
                                    "re-reads every file and dedupe drops the rows already stored.")


_FULL_DISK_CHILD = r"""
import os, sys
from pathlib import Path
from hypaware_tui.core.checkpoints import Checkpoint, StateDB, StateDBError
from hypaware_tui.core.paths import Layout
mnt = Path(sys.argv[1])
lay = Layout(mnt / "h")
def cp(i):
    return Checkpoint(path_hash=f"{i:016x}", client_name="claude", read_mode="incremental", device=1, inode=2,
                      size=100, mtime_ns=123, offset=10, head_len=50, head_sha256="ab" * 32, parser_state="x" * 3000)
with StateDB.open(lay, create=True) as db:
    db.put(cp(0))
fill = mnt / "fill"
fd = os.open(fill, os.O_WRONLY | os.O_CREAT, 0o600)  # the disk fills up
try:
    while True:
        os.write(fd, b"\0" * 4096)
except OSError:
    os.close(fd)
for step in ("open", "write"):
    try:
        with StateDB.open(lay, create=True) as db:
            db.put_many(cp(i) for i in range(1, 50))
        print(step, "ok")
    except StateDBError as exc:
        print(step, exc)
    os.truncate(fill, max(0, fill.stat().st_size - 120_000))  # some room: the open works, the write does not
os.unlink(fill)  # done as it says: space freed, run again
with StateDB.open(lay, create=True) as db:
    db.put_many(cp(i) for i in range(1, 50))
    print("after", db.count())
"""


def test_statedb_on_a_full_disk_says_to_free_space(tmp_path: Path) -> None:
    """A real full disk (a small tmpfs in a private mount namespace): SQLite says "disk I/O error" (it cannot
    size its -shm file) when opening, "database or disk is full" when writing; both said to move the
    database away. Both say to free space, and after that it works."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    repo = str(Path(__file__).parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]))
    script = f'mount -t tmpfs -o size=400k tmpfs "$1" || exit 77; exec "{sys.executable}" -c "$2" "$1"'
    p = subprocess.run(["unshare", "-Urm", "sh", "-c", script, "sh", str(mnt), _FULL_DISK_CHILD], env=env,
                       capture_output=True, text=True, timeout=60)
    if p.returncode == 77 or "unshare:" in p.stderr:
        pytest.skip(f"no private mount namespace here: {p.stderr.strip()}")
    assert p.returncode == 0, p.stderr
    db = mnt / "h" / "state" / "ingest.sqlite"
    lines = p.stdout.splitlines()
    assert lines[0].startswith(f"open cannot use the checkpoint database {db}: disk I/O error. "), lines
    assert lines[1].startswith(f"write cannot use the checkpoint database {db}: database or disk is full. "), lines
    assert all(line.endswith(paths_mod.FULL_DISK_HINT) for line in lines[:2]), lines
    assert lines[2] == "after 50"


_UNDER_A_FILE_SIZE_LIMIT = """
import resource, sys
from pathlib import Path
from hypaware_tui.core.checkpoints import Checkpoint, StateDB, StateDBError
from hypaware_tui.core.paths import PRUNE_KEPT, Layout
db = StateDB.open(Layout(Path(sys.argv[1])), create=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
try:
    for i in range(200):
        db.put_many([Checkpoint(f"{i:04d}{j:012d}", "claude", "incremental", 1, 1, 10, 1, 10, 10, "0" * 64,
                                "{}" + "x" * 200) for j in range(50)])
except StateDBError as exc:
    print(exc)
    print(exc.text(PRUNE_KEPT))
"""


@pytest.mark.skipif(not hasattr(os, "fork") or os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
def test_an_io_error_under_a_file_size_limit_names_the_limit(tmp_path: Path) -> None:
    """`ulimit -f`: a write of the checkpoint database past it fails with EFBIG, which SQLite reports as "disk
    I/O error"; the advice was "run it again once the problem is fixed", and every rerun failed the same way.
    Under a finite limit, the message names it as the likely cause and says how to raise it (an import's
    advice, and a prune's with `text(PRUNE_KEPT)`)."""
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    p = subprocess.run([sys.executable, "-c", _UNDER_A_FILE_SIZE_LIMIT, str(tmp_path / "hyp")], env=env,
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and len(lines) == 2, p.stdout + p.stderr
    limit = "This process may not write files larger than 64 KiB (`ulimit -f`"
    for line in lines:
        assert "disk I/O error" in line and limit in line and "raise it (`ulimit -f unlimited`)" in line
        assert "once the problem is fixed" not in line
    assert lines[0].endswith(paths_mod.IMPORT_KEPT) and lines[1].endswith(paths_mod.PRUNE_KEPT)
