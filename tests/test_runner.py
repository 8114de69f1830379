"""The backfill runner (core/runner.py) against real Parquet, SQLite and a fake importer that implements the
importer contract (tests/backfill_fakes.py). The CLI and real-importer runs are in test_backfill_cli.py."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from backfill_fakes import FakeImporter, fakes, write_session

from hypaware_tui.core import storage as storage_mod
from hypaware_tui.core.checkpoints import StateDB, path_hash
from hypaware_tui.core.inventory import build_inventory
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.runner import NullSink, run_backfill
from hypaware_tui.core.timeutil import now_us, parse_iso_us
from hypaware_tui.core.window import resolve_window
from hypaware_tui.importers.base import Window

ALL = Window()


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def times(start: str, n: int, step_s: int = 60) -> list[str]:
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return [iso(t0 + timedelta(seconds=i * step_s)) for i in range(n)]


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    e = {
        "HOME": str(home),
        "FAKE_CLAUDE_ROOT": str(home / "claude"),
        "FAKE_CODEX_ROOT": str(home / "codex"),
    }
    return e


@pytest.fixture
def layout(tmp_path):
    return Layout(tmp_path / "hyp")


def dataset(layout: Layout) -> pl.DataFrame:
    files = sorted(layout.dataset_root.glob("**/*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame({"part_id": []})


def run(layout, env, providers=("claude", "codex"), window=ALL, *, dry_run=False, write_checkpoints=True,
        importers=None, **kw):
    return run_backfill(
        layout,
        list(providers),
        window=window,
        write_checkpoints=write_checkpoints,
        dry_run=dry_run,
        env=env,
        importers=importers if importers is not None else fakes(),
        retention_days=kw.pop("retention_days", 0),
        **kw,
    )


def two_clients(env, *, claude_files=3, msgs=20, noise=2, malformed=1):
    total = 0
    for i in range(claude_files):
        total += write_session(
            os.path.join(env["FAKE_CLAUDE_ROOT"], f"p{i % 2}", f"s{i}.jsonl"), f"c{i}",
            times(f"2026-05-0{i + 1}T10:00:00Z", msgs), noise=noise, malformed=malformed,
        )
    total += write_session(
        os.path.join(env["FAKE_CODEX_ROOT"], "2026", "rollout-1.jsonl"), "x1", times("2026-05-02T09:00:00Z", msgs),
        noise=noise, malformed=malformed,
    )
    return total


# --------------------------------------------------------------------------------------------- basics


def test_import_then_rerun_reads_nothing_and_writes_nothing(layout, env):
    total = two_clients(env)
    first = run(layout, env)
    assert first.exit_code == 0 and first.status == "ok"
    claude, codex = first.providers
    assert [p.provider for p in first.providers] == ["claude", "codex"]
    assert claude.status == codex.status == "ok"
    assert claude.rows_written == 60 and codex.rows_written == 20
    assert claude.files_scanned == 3 and codex.files_scanned == 1
    assert claude.sessions_seen == 3 and codex.sessions_seen == 1
    assert claude.lines_skipped == {"not_a_message": 6, "malformed": 3}
    assert claude.errors == 0 and claude.error is None
    df = dataset(layout)
    assert df.height == total and df["part_id"].n_unique() == total

    second = run(layout, env)
    for p in second.providers:
        assert p.status == "ok"
        assert p.rows_written == 0 and p.duplicates_skipped == 0
        assert p.files_scanned == 0
        # every file skipped as unchanged: not read again, and none of them a file the pass reads
        assert p.files_unchanged == {"claude": 3, "codex": 1}[p.provider] and p.files_total == 0
        assert p.bytes_read == 0
    assert dataset(layout).height == total


def test_touched_file_is_read_once_then_unchanged_again(layout, env):
    """A file whose mtime moved but whose bytes did not (touched, or appended to and cut back) is read from
    its checkpoint once, finds nothing, and its checkpoint takes the new stat: the run after is a pure
    stat again (storage.md §6.3 (c) at an equal offset), instead of re-opening the file on every run."""
    total = two_clients(env)
    run(layout, env)
    touched = os.path.join(env["FAKE_CLAUDE_ROOT"], "p0", "s0.jsonl")
    st = os.stat(touched)
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    second = run(layout, env)
    claude = second.providers[0]
    assert claude.files_scanned == claude.files_total == 1 and claude.files_unchanged == 2
    assert claude.rows_written == 0 and claude.bytes_read == 0  # resumed at the end: no byte to read

    third = run(layout, env)
    for p in third.providers:
        assert p.files_scanned == p.files_total == 0 and p.files_unchanged > 0
    assert dataset(layout).height == total



def test_the_progress_total_of_a_file_appended_to_is_the_bytes_added(layout, env):
    """A transcript appended to since the last import is read from its checkpoint: the progress bar's total
    is the bytes added, not the whole file (a long session grown by one line showed its full size to read)."""
    two_clients(env)
    run(layout, env)
    grown = os.path.join(env["FAKE_CLAUDE_ROOT"], "p0", "s0.jsonl")
    before = os.path.getsize(grown)
    with open(grown, "a") as fh:
        fh.write(json.dumps({"type": "msg", "session": "c0", "id": "late", "ts": "2026-05-01T12:00:00Z"}) + "\n")
    claude = run(layout, env, providers=["claude"]).providers[0]
    added = os.path.getsize(grown) - before
    assert (claude.bytes_total, claude.bytes_read, claude.rows_written) == (added, added, 1)


def test_checkpoints_deleted_rerun_counts_duplicates(layout, env):
    two_clients(env)
    first = run(layout, env)
    layout.ingest_db.unlink()
    for suffix in ("-wal", "-shm"):
        p = layout.ingest_db.with_name(layout.ingest_db.name + suffix)
        if p.exists():
            p.unlink()
    again = run(layout, env)
    assert again.rows_written == 0
    assert again.duplicates_skipped == first.rows_written == 80
    for a, b in zip(first.providers, again.providers, strict=True):
        assert b.duplicates_skipped == a.rows_written
        assert b.sessions_seen == a.sessions_seen  # duplicates still count as seen
    assert dataset(layout).height == 80


def test_dry_run_creates_nothing_and_predicts_the_real_run(layout, env):
    two_clients(env)
    dry = run(layout, env, dry_run=True)
    assert not layout.home.exists()
    real = run(layout, env)
    assert [p.rows_written for p in dry.providers] == [p.rows_written for p in real.providers]
    assert [p.sessions_seen for p in dry.providers] == [p.sessions_seen for p in real.providers]
    assert [p.lines_skipped for p in dry.providers] == [p.lines_skipped for p in real.providers]



def test_dry_run_predicts_the_floor_and_the_duplicates_within_the_run(layout, env):
    """The preview counts as the real run: rows dated on the cut date are kept (those before it dropped), and
    a transcript copied into another folder (the same message ids) counts once as written, then as duplicates."""
    two_clients(env)
    shutil.copy(os.path.join(env["FAKE_CLAUDE_ROOT"], "p1", "s1.jsonl"), os.path.join(env["FAKE_CLAUDE_ROOT"], "p1",
                "s1-copy.jsonl"))  # fmt: skip
    at = {"now": parse_iso_us("2026-05-03T12:00:00Z"), "retention_days": 1}  # cut date: 2026-05-02
    dry = run(layout, env, dry_run=True, **at)
    real = run(layout, env, **at)
    assert real.cut_date == "2026-05-02"
    assert [(p.rows_written, p.duplicates_skipped) for p in real.providers] == [(40, 20), (20, 0)]
    assert [(p.rows_written, p.duplicates_skipped) for p in dry.providers] == [(40, 20), (20, 0)]


def test_dry_run_dedupes_against_the_existing_dataset_read_only(layout, env):
    two_clients(env)
    run(layout, env, providers=["claude"])
    # a new session appears, and the checkpoints are lost: the dry run must not count old rows as new
    write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], "p9", "new.jsonl"), "n1", times("2026-05-09T10:00:00Z", 7))
    layout.ingest_db.unlink()
    before = {p: p.stat().st_mtime_ns for p in layout.home.rglob("*")}
    dry = run(layout, env, providers=["claude"], dry_run=True)
    assert dry.providers[0].rows_written == 7
    assert dry.providers[0].duplicates_skipped == 60
    after = {p: p.stat().st_mtime_ns for p in layout.home.rglob("*")}
    assert after == before  # no file created or touched (no lock, no events, no SQLite)
    real = run(layout, env, providers=["claude"])
    assert real.providers[0].rows_written == 7


def test_skipped_provider_is_not_a_failure(layout, env):
    two_clients(env)
    env = dict(env, FAKE_CODEX_ROOT=os.path.join(env["HOME"], "nope"))
    res = run(layout, env)
    assert res.providers[1].status == "skipped"
    assert res.providers[1].error.startswith("not found: ")
    assert res.exit_code == 0
    # The events log says why without the folder's path (storage.md §10: no raw path is logged).
    log = layout.events_log.read_text()
    assert env["FAKE_CODEX_ROOT"] not in log
    finish = [e for e in map(json.loads, log.splitlines()) if e["event"] == "backfill.provider_finish"]
    assert [(e["provider"], e["status"], e["error"]) for e in finish][1] == ("codex", "skipped", "not detected")


def test_providers_run_in_the_order_named_and_deduplicated(layout, env):
    two_clients(env)
    res = run(layout, env, providers=["codex", "claude", "codex"])
    assert [p.provider for p in res.providers] == ["codex", "claude"]


# --------------------------------------------------------------------------------------------- errors


def test_one_bad_file_is_isolated(layout, env):
    two_clients(env)
    bad = os.path.join(env["FAKE_CLAUDE_ROOT"], "p0", "bad.jsonl")
    write_session(bad, "b1", times("2026-05-07T10:00:00Z", 5), boom_at=3, prefix="bad-")
    res = run(layout, env)
    claude = res.providers[0]
    assert claude.status == "ok" and res.exit_code == 0
    assert claude.errors == 1
    from hypaware_tui.core.checkpoints import path_hash

    h = path_hash(os.path.realpath(bad))
    assert claude.error.startswith(f"file {h}: RuntimeError")
    assert os.path.realpath(bad) not in claude.error  # the raw path never leaks
    assert claude.rows_written == 60  # the other files all imported
    assert res.providers[1].rows_written == 20
    events = [json.loads(x) for x in layout.events_log.read_text().splitlines()]
    assert os.path.realpath(bad) not in layout.events_log.read_text()
    assert any(e["event"] == "backfill.provider_finish" and e["errors"] == 1 for e in events)



def test_the_summary_names_the_first_bad_file_and_counts_the_others(layout, env):
    """cli.md §5.3: a client's first error is shown, with its file, and how many more there were."""
    from hypaware_tui.core.runner import error_notes

    two_clients(env)
    bad = [os.path.join(env["FAKE_CLAUDE_ROOT"], "p0", f"bad{i}.jsonl") for i in (1, 2, 3)]
    for i, path in enumerate(bad):
        write_session(path, f"b{i}", times("2026-05-07T10:00:00Z", 5), boom_at=3, prefix=f"bad{i}-")
    claude = run(layout, env).providers[0]
    first = os.path.realpath(bad[0])
    assert claude.errors == 3 and claude.error.startswith(f"file {path_hash(first)}: RuntimeError")
    assert error_notes("claude", claude.error, claude.error_path, claude.other_errors, env, logged=True) == [
        f"  claude: {claude.error}",
        f"    at ~{first[len(env['HOME']):]}",
        "  claude: and 2 more errors (hyp status shows the latest errors; the events log has each, by path hash; "
        "hyp backfill --dry-run lists their paths).",
    ]
    assert error_notes("claude", claude.error, None, 1, env, logged=False)[-1] == (
        "  claude: and 1 more error (a run without --dry-run logs each one)."
    )
    # a dry run lists the others too, each with its path: the daemon sends a person there for one
    later = [os.path.realpath(p) for p in bad[1:]]
    assert claude.more_places == [(f"file {path_hash(p)}: RuntimeError: cannot parse <file {path_hash(p)}>", p)
                                  for p in later]
    assert error_notes("claude", claude.error, claude.error_path, claude.other_errors, env, logged=False,
                       more_places=claude.more_places) == [
        f"  claude: {claude.error}",
        f"    at ~{first[len(env['HOME']):]}",
        f"  claude: {claude.more_places[0][0]}",
        f"    at ~{later[0][len(env['HOME']):]}",
        f"  claude: {claude.more_places[1][0]}",
        f"    at ~{later[1][len(env['HOME']):]}",
    ]


def test_a_dry_run_lists_at_most_the_kept_errors_and_counts_the_rest(env):
    """`ProviderResult.more_places` is bounded (a home of unreadable files must not grow it without end), and
    the line after the list says how many errors were not listed."""
    from hypaware_tui.core import runner

    pr = runner.ProviderResult("claude")
    home = env["HOME"]
    for i in range(runner.MORE_PLACES_KEPT + 5):
        pr.note_error(f"file {i:016x}: cannot read file: Permission denied", f"{home}/p/{i}.jsonl")
    pr.note_error("claude: cannot list the root", None)
    assert pr.errors == runner.MORE_PLACES_KEPT + 6 and len(pr.more_places) == runner.MORE_PLACES_KEPT
    lines = runner.error_notes("claude", pr.error, pr.error_path, pr.other_errors, env, logged=False,
                               more_places=pr.more_places)
    assert len(lines) == 2 * (runner.MORE_PLACES_KEPT + 1) + 1
    assert lines[-2] == f"    at ~/p/{runner.MORE_PLACES_KEPT}.jsonl"
    assert lines[-1] == (f"  claude: and 5 more errors (only the first {runner.MORE_PLACES_KEPT + 1} are "
                         "listed; a run without --dry-run logs each one).")
    # a fatal error takes the first place: the file error it replaces is listed with the others
    pr.fail("could not write rows: disk full")
    assert pr.more_places[0] == ("file 0000000000000000: cannot read file: Permission denied",
                                 f"{home}/p/0.jsonl")
    assert len(pr.more_places) == runner.MORE_PLACES_KEPT and pr.other_errors == pr.errors


def test_importer_raising_outside_files_fails_only_that_provider(layout, env):
    two_clients(env)
    res = run(layout, env, importers=fakes("codex-raises"))
    claude, codex = res.providers
    assert claude.status == "ok" and claude.rows_written == 60
    assert codex.status == "failed"
    assert "simulated importer crash" in codex.error
    assert res.exit_code == 1
    finish = [e for e in map(json.loads, layout.events_log.read_text().splitlines()) if e["event"] == "backfill.finish"]
    assert [(e["status"], e["error_count"]) for e in finish] == [("failed", 1)]  # (what hyp status counts)


def test_storage_error_fails_the_provider_and_the_next_one_still_runs(layout, env, monkeypatch):
    """A full disk while writing claude's rows (injected ENOSPC under the real commit): claude `failed` with
    storage's message, nothing partial left, codex still imported; the rerun completes claude."""
    import errno

    from hypaware_tui.core import paths as paths_mod

    two_clients(env)
    real_write_all = paths_mod.write_all
    state = {"claude": True}

    def write_all(fd, data):
        if state["claude"] and "source=claude" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_all(fd, data)

    monkeypatch.setattr(paths_mod, "write_all", write_all)
    res = run(layout, env)
    claude, codex = res.providers
    assert claude.status == "failed" and "No space left on device" in claude.error
    assert claude.error.count("could not write") <= 1
    assert codex.status == "ok" and codex.rows_written == 20
    assert res.exit_code == 1
    assert not list(layout.dataset_root.glob("source=claude/**/*.parquet"))
    assert not list(layout.dataset_root.glob("**/*.tmp"))
    state["claude"] = False
    again = run(layout, env)
    assert again.providers[0].rows_written == 60 and again.providers[1].rows_written == 0


def test_a_commit_that_fails_midway_counts_the_rows_it_wrote(layout, env, monkeypatch):
    """A full disk at the second of the three partition files of claude's commit: the first file is in the
    dataset, and the result (the summary of `hyp backfill`, the wizard's, the events) counts its rows instead
    of 0 and their session, with storage's message and what was read (skipped lines). The rerun reads the files again
    (no checkpoint moved) and finds those rows as duplicates."""
    import errno

    from hypaware_tui.core import paths as paths_mod

    two_clients(env)  # claude: 3 files of 20 messages on 3 days -> 3 partition files in one commit
    real_write_all = paths_mod.write_all
    writes = {"claude": 0, "fail": True}

    def write_all(fd, data):
        if writes["fail"] and "source=claude" in os.readlink(f"/proc/self/fd/{fd}"):
            writes["claude"] += 1
            if writes["claude"] > 2:  # (a file is written in two halves)
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_all(fd, data)

    monkeypatch.setattr(paths_mod, "write_all", write_all)
    res = run(layout, env)
    claude, codex = res.providers
    stored = dataset(layout).filter(pl.col("client_name") == "claude").height
    assert stored == 20
    assert claude.status == "failed" and claude.rows_written == stored
    assert claude.error.startswith("could not write to the dataset: No space left on device.")
    assert "Free some disk space and run it again." in claude.error
    # only the session whose rows reached the dataset (cli.md §5.3), with what was read (skipped lines)
    assert claude.sessions_seen == 1 and claude.lines_skipped == {"not_a_message": 6, "malformed": 3}
    assert codex.status == "ok" and codex.rows_written == 20
    assert res.rows_written == 40 and res.exit_code == 1
    events = [json.loads(x) for x in layout.events_log.read_text().splitlines()]
    finish = [e for e in events if e["event"] == "backfill.provider_finish" and e["provider"] == "claude"]
    assert finish[0]["rows_written"] == 20 and finish[0]["status"] == "failed"
    assert sum(e["rows_written"] for e in events if e["event"] == "backfill.write" and e["provider"] == "claude") == 20

    writes["fail"] = False
    again = run(layout, env, providers=["claude"])
    assert again.providers[0].status == "ok"
    assert again.providers[0].rows_written == 40 and again.providers[0].duplicates_skipped == 20
    assert dataset(layout).height == 80


@pytest.mark.parametrize("workers", [1, 2])
def test_sessions_seen_counts_only_the_sessions_of_committed_rows(layout, env, monkeypatch, workers):
    """A commit that fails (a full disk) after two good ones: `sessions_seen` is the number of sessions with a
    row in the dataset (cli.md §5.3: "with at least one row ... written or duplicate"), not of the sessions
    read: a run that failed on its first commit printed `sessions 18  rows 0`. Both in this process and with
    the parse workers (whose units carry the sessions of their rows); the rerun counts the rest."""
    from hypaware_tui.core import runner as runner_mod
    from hypaware_tui.core.storage import Storage, StorageError

    for i in range(6):  # a session per file, a commit per file (batch_rows = its rows)
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}", times("2026-05-01T10:00:00Z", 5))
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)  # (workers=2: the files go to the parse workers)
    real_commit = Storage.commit
    calls = {"n": 0}

    def commit(self, rows, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise StorageError("could not write to the dataset: No space left on device.")
        return real_commit(self, rows, *args, **kw)

    monkeypatch.setattr(Storage, "commit", commit)
    p = run(layout, env, providers=["claude"], workers=workers, batch_rows=5).providers[0]
    stored = dataset(layout)
    assert p.status == "failed" and p.rows_written == stored.height == 10
    assert p.sessions_seen == stored["session_id"].n_unique() == 2

    calls["n"] = -100
    again = run(layout, env, providers=["claude"], workers=workers, batch_rows=5).providers[0]
    assert again.status == "ok" and (again.sessions_seen, again.rows_written, again.duplicates_skipped) == (4, 20, 0)
    assert dataset(layout)["session_id"].n_unique() == 6


@pytest.mark.parametrize("workers", [1, 2])
def test_files_read_count_when_their_commit_fails(layout, env, monkeypatch, workers):
    """cli.md §5.3: `files_scanned` counts the files opened and read. A worker's unit of several files whose
    commit failed (a full disk) counted none of them: `files 0` next to rows written (found by the audit of the
    runner). They were read, as in this process, where a file is counted once read."""
    from hypaware_tui.core import runner as runner_mod
    from hypaware_tui.core.storage import Storage, StorageError

    for i in range(6):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}", times("2026-05-01T10:00:00Z", 5))
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)  # (workers=2: the files go to the parse workers)

    def commit(self, rows, *args, **kw):
        raise StorageError("could not write to the dataset: No space left on device.")

    monkeypatch.setattr(Storage, "commit", commit)
    p = run(layout, env, providers=["claude"], workers=workers).providers[0]
    assert p.status == "failed" and (p.files_scanned, p.sessions_seen, p.rows_written) == (6, 0, 0)


@pytest.mark.parametrize("workers", [1, 2])
def test_sessions_seen_counts_the_duplicates_of_a_commit_failed_at_the_checkpoint_database(
    layout, env, monkeypatch, workers
):
    """A rerun whose rows are all duplicates, failing at the checkpoint database (a full disk, `ulimit -f`):
    its sessions have rows that are duplicates, so they are seen (cli.md §5.3). The summary said
    `sessions_seen 0` beside `duplicates_skipped 6000`."""
    from hypaware_tui.core import runner as runner_mod
    from hypaware_tui.core.checkpoints import StateDBError
    from hypaware_tui.core.storage import Storage

    for i in range(3):
        path = os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl")
        write_session(path, f"s{i}", times(f"2026-05-0{i + 1}T10:00:00Z", 4))
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)  # (workers=2: the files go to the parse workers)
    first = run(layout, env, providers=["claude"], write_checkpoints=False).providers[0]
    assert (first.status, first.rows_written) == ("ok", 12)

    def fail(self, updates, result, meta=None):
        raise StateDBError("cannot write the state database: database or disk is full.")

    monkeypatch.setattr(Storage, "_apply_checkpoints", fail)
    p = run(layout, env, providers=["claude"], workers=workers).providers[0]
    assert p.status == "failed"
    assert (p.sessions_seen, p.rows_written, p.duplicates_skipped) == (3, 0, 12)


# --------------------------------------------------------------------------------------------- windows


def test_window_filters_rows_and_counts_outside_window(layout, env):
    path = os.path.join(env["FAKE_CLAUDE_ROOT"], "p", "s.jsonl")
    write_session(path, "s", ["2026-05-01T10:00:00Z", "2026-05-02T10:00:00Z", "2026-05-03T10:00:00Z"])
    w = Window(since_us=parse_iso_us("2026-05-02T00:00:00Z"), until_us=None)
    res = run(layout, env, providers=["claude"], window=w, write_checkpoints=False)
    p = res.providers[0]
    assert p.rows_written == 2
    assert p.lines_skipped == {"outside_window": 1}
    # a run with a later lower bound than the floor writes no checkpoint (storage.md §7.5)
    db = StateDB.open(layout, create=False)
    try:
        assert db.get_all("claude") == {}
    finally:
        db.close()


def test_until_stops_the_pass_and_the_next_run_takes_the_rest(layout, env):
    path = os.path.join(env["FAKE_CLAUDE_ROOT"], "p", "s.jsonl")
    write_session(path, "s", times("2026-05-01T10:00:00Z", 10, step_s=3600))
    until = parse_iso_us("2026-05-01T14:30:00Z")
    first = run(layout, env, providers=["claude"], window=Window(None, until))
    assert first.providers[0].rows_written == 5
    second = run(layout, env, providers=["claude"])
    # the checkpoint stopped before the first line past `until` (size = offset): the rest is read, once
    assert second.providers[0].rows_written == 5
    assert second.providers[0].duplicates_skipped == 0
    assert dataset(layout).height == 10


def test_a_line_stamped_far_in_the_future_does_not_stop_every_backfill(layout, env):
    """daemon.md §3.1 rule 4 stops a backfill at the first line stamped after `until`. A line stamped 2099 (a
    skewed clock, a corrupt stamp) stopped every backfill there, forever: the lines after it were never
    imported by one, and nothing was counted. More than 24 h after the run's start, it cannot have been
    written since: the pass goes on, and its row is kept, as the daemon would keep it (dropping it moved the
    checkpoint over it for good). A line later than `until` within those 24 h still stops the pass."""
    now = now_us()
    recent = [iso(datetime.now(UTC) - timedelta(hours=5 - i)) for i in range(4)]
    path = os.path.join(env["FAKE_CLAUDE_ROOT"], "p", "s.jsonl")
    write_session(path, "s", [recent[0], recent[1], "2099-01-01T00:00:00Z", recent[2], recent[3]])
    first = run(layout, env, providers=["claude"], window=Window(None, now))
    p = first.providers[0]
    assert p.status == "ok" and p.rows_written == 5
    assert p.lines_skipped == {}
    assert sorted(dataset(layout)["message_id"].to_list()) == ["s-m0", "s-m1", "s-m2", "s-m3", "s-m4"]
    again = run(layout, env, providers=["claude"], window=Window(None, now_us()))
    assert (again.providers[0].rows_written, again.providers[0].duplicates_skipped) == (0, 0)

    # stamped an hour after `until`: it may have been written after the run started, so the pass stops there
    soon = iso(datetime.fromtimestamp(now / 1e6, UTC) + timedelta(hours=1))
    later = os.path.join(env["FAKE_CLAUDE_ROOT"], "p", "t.jsonl")
    write_session(later, "t", [recent[0], soon, recent[1]])
    stopped = run(layout, env, providers=["claude"], window=Window(None, now))
    assert stopped.providers[0].rows_written == 1 and stopped.providers[0].lines_skipped == {}


def test_resolve_window_and_retention_floor(layout, env):
    now = now_us()
    old_day = (datetime.now(UTC) - timedelta(days=200)).replace(hour=12, minute=0, second=0, microsecond=0)
    new_day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=12, minute=0, second=0, microsecond=0)
    path = os.path.join(env["FAKE_CLAUDE_ROOT"], "p", "s.jsonl")
    write_session(path, "s", [iso(old_day), iso(new_day)])
    window, floor, write = resolve_window(None, None, 120, now)
    assert write and floor is not None and window.since_us == floor
    res = run(layout, env, providers=["claude"], window=window, retention_days=120, now=now)
    assert res.providers[0].rows_written == 1
    assert res.providers[0].lines_skipped == {"outside_window": 1}
    # retention raised to forever: the floor moves earlier, checkpoints reset, the old row arrives
    window, floor, write = resolve_window(None, None, 0, now)
    assert floor is None and window.since_us is None
    res = run(layout, env, providers=["claude"], window=window, retention_days=0, now=now)
    assert res.providers[0].rows_written == 1
    assert res.providers[0].duplicates_skipped == 1
    assert dataset(layout).height == 2


def test_after_retention_is_raised_a_dry_run_and_a_since_run_see_the_older_history(layout, env):
    """storage.md §7.3 for the runs that write no checkpoints: a dry run previews what the real run will
    import (it counted nothing: every file looked unchanged), and a `--since` run, which commits rows,
    checks the floor first (it imported nothing of the older history it asked for)."""
    now = now_us()
    day = lambda n: (datetime.now(UTC) - timedelta(days=n)).replace(hour=12, minute=0, second=0, microsecond=0)  # noqa: E731
    write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], "p", "s.jsonl"), "s", [iso(day(200)), iso(day(2))])
    window, _, _ = resolve_window(None, None, 120, now)
    assert run(layout, env, providers=["claude"], window=window, retention_days=120, now=now).providers[0].rows_written == 1

    window, _, write = resolve_window(None, None, 365, now)  # retention raised
    preview = run(layout, env, providers=["claude"], window=window, retention_days=365, now=now, dry_run=True)
    assert (preview.providers[0].rows_written, preview.providers[0].duplicates_skipped) == (1, 1)
    since = parse_iso_us(iso(day(250)))
    window, _, write = resolve_window(since, None, 365, now)
    assert not write  # a lower bound later than the floor: no checkpoints (§7.5)
    res = run(layout, env, providers=["claude"], window=window, write_checkpoints=write, retention_days=365, now=now)
    assert (res.providers[0].rows_written, res.providers[0].duplicates_skipped) == (1, 1)
    assert dataset(layout).height == 2


# --------------------------------------------------------------------------------------------- batching


def test_many_small_files_are_committed_in_few_batches(layout, env):
    for i in range(30):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i:02d}.jsonl"), f"s{i}",
                      times("2026-05-01T10:00:00Z", 3))
    res = run(layout, env, providers=["claude"])
    p = res.providers[0]
    assert p.rows_written == 90 and p.files_scanned == 30
    assert p.commits < 30  # buffered across files
    # and the checkpoints of all 30 files were written
    db = StateDB.open(layout, create=False)
    try:
        assert len(db.get_all("claude")) == 30
    finally:
        db.close()


def test_large_file_is_committed_every_batch_rows(layout, env):
    path = os.path.join(env["FAKE_CLAUDE_ROOT"], "big.jsonl")
    # ~12 MB: three 4 MiB read chunks of ~100 lines each
    write_session(path, "big", times("2026-05-01T00:00:00Z", 300, step_s=1), text="x" * 40_000)
    calls = []
    real_commit = storage_mod.Storage.commit

    def commit(self, rows, checkpoints, **kw):
        calls.append((len(rows), [u.entry.offset for u in checkpoints]))
        return real_commit(self, rows, checkpoints, **kw)

    import unittest.mock as um

    with um.patch.object(storage_mod.Storage, "commit", commit):
        res = run(layout, env, providers=["claude"], batch_rows=100)
    assert res.providers[0].rows_written == 300
    assert all(n < 2 * 100 for n, _ in calls)  # at most a batch plus the rest of one read chunk
    assert len(calls) >= 2
    offsets = [o for _, offs in calls for o in offs]
    assert offsets == sorted(offsets)  # mid-file checkpoints move forward


# --------------------------------------------------------------------------------------------- progress, cancel


class RecordingSink(NullSink):
    def __init__(self, cancel: threading.Event | None = None, after_rows: int | None = None) -> None:
        self.events: list[tuple[float, str, object]] = []
        self.cancel = cancel
        self.after_rows = after_rows

    def on_provider_start(self, provider, bytes_total, files_total):
        self.events.append((time.monotonic(), "start", (provider, bytes_total, files_total)))

    def on_progress(self, progress):
        self.events.append((time.monotonic(), "progress", progress))
        if self.cancel is not None and progress.rows_written + progress.rows_pending >= (self.after_rows or 1):
            self.cancel.set()

    def on_provider_finish(self, result):
        self.events.append((time.monotonic(), "finish", result))



def test_progress_moves_by_the_bytes_each_batch_of_a_file_consumed(layout, env, monkeypatch):
    """The bar of a file read in several batches stands at each batch's checkpoint offset in turn: the bytes
    done grow by what each batch consumed, not by its offset from the file's start again."""
    from hypaware_tui.core import runner as runner_mod

    monkeypatch.setattr(runner_mod._Throttle, "ready", lambda self: True)
    path = os.path.join(env["FAKE_CLAUDE_ROOT"], "big.jsonl")
    write_session(path, "big", times("2026-05-01T00:00:00Z", 300, step_s=1))
    offsets = []
    real_commit = storage_mod.Storage.commit

    def commit(self, rows, checkpoints, **kw):
        offsets.extend(u.entry.offset for u in checkpoints)
        return real_commit(self, rows, checkpoints, **kw)

    monkeypatch.setattr(storage_mod.Storage, "commit", commit)
    sink = RecordingSink()
    res = run(layout, env, providers=["claude"], batch_rows=100, sink=sink)
    assert res.providers[0].rows_written == 300 and len(offsets) >= 3
    done = [e[2].bytes_done for e in sink.events if e[1] == "progress"]
    assert done == sorted(done) and done[-1] == os.path.getsize(path)
    assert set(offsets[:2]) <= set(done), (offsets, done)  # (the first batches: 100 rows each)


@pytest.mark.parametrize("batch_rows", [8, 100_000])
def test_the_last_progress_of_a_failed_commit_shows_the_result(layout, env, monkeypatch, batch_rows):
    """A commit that fails (a full disk), in the reading loop (batch_rows=8: at the second file) or at the last
    flush: the last progress line still showed the sessions parsed (`files 13/42 sessions 13 rows 0`) above a
    summary saying 0 sessions; it is now a final report with the result's figures."""
    from hypaware_tui.core.storage import Storage, StorageError

    for i in range(4):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}", times("2026-05-01T10:00:00Z", 5))

    def commit(self, rows, *args, **kw):
        raise StorageError("could not write to the dataset: No space left on device.")

    monkeypatch.setattr(Storage, "commit", commit)
    sink = RecordingSink()
    p = run(layout, env, providers=["claude"], sink=sink, batch_rows=batch_rows).providers[0]
    assert p.status == "failed" and (p.sessions_seen, p.rows_written) == (0, 0)
    last = [e for _, k, e in sink.events if k == "progress"][-1]
    assert last.final and (last.sessions, last.rows_written, last.rows_pending) == (0, 0, 0)


def test_progress_events_are_throttled_and_complete(layout, env):
    for i in range(40):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i:02d}.jsonl"), f"s{i}",
                      times("2026-05-01T10:00:00Z", 50))
    sink = RecordingSink()
    run(layout, env, providers=["claude"], sink=sink, batch_rows=10)
    kinds = [k for _, k, _ in sink.events]
    assert kinds[0] == "start" and kinds[-1] == "finish"
    start = sink.events[0][2]
    progress = [p for _, k, p in sink.events if k == "progress"]
    span = max(sink.events[-1][0] - sink.events[0][0], 0.1)
    non_final = [p for p in progress if not p.final]
    assert len(non_final) <= 10 * span + 1
    last = progress[-1]
    assert last.final and last.files_done == last.files_total == 40
    assert last.bytes_done == last.bytes_total == start[1]
    assert last.rows_written == 2000 and last.sessions == 40


def slow_sessions(env, n: int, *, nap_s: float) -> None:
    """`n` sessions of two messages each, whose parsing takes `nap_s` more in a parse worker (a `nap` line)."""
    for i in range(n):
        path = os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i:02d}.jsonl")
        write_session(path, f"s{i}", times("2026-05-01T10:00:00Z", 2))
        with open(path, "a") as fh:
            fh.write(json.dumps({"type": "nap", "s": nap_s}) + "\n")


def test_progress_moves_while_the_workers_parse_a_group(layout, env, monkeypatch):
    """Thousands of tiny sessions make a few worker groups of seconds each: progress moved only when one was
    done (0 % for the first 5 s of a 12 s import). The workers now say how far they are: the files read and
    their sessions show before the group's commit, the bytes at half weight, never backwards, and the end is
    exact."""
    from hypaware_tui.core import runner as runner_mod

    slow_sessions(env, 30, nap_s=0.04)
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    sink = RecordingSink()
    res = run(layout, env, providers=["claude"], sink=sink, workers=2, batch_rows=10)  # a group: several units
    assert res.providers[0].status == "ok" and res.rows_written == 60
    progress = [p for _, k, p in sink.events if k == "progress"]
    before_commit = [p for p in progress if not p.final and p.rows_written == 0]
    assert any(0 < p.files_done < 30 for p in before_commit), [(p.files_done, p.rows_written) for p in progress]
    assert any(0 < p.sessions < 30 for p in before_commit)  # (a session per file here)
    assert all(p.bytes_done <= p.bytes_total // 2 + 1 for p in before_commit)  # parsed, not written: half
    shown = [(p.bytes_done, p.files_done, p.sessions) for p in progress if not p.final]
    assert all(x <= y for a, b in zip(shown, shown[1:], strict=False) for x, y in zip(a, b, strict=True))
    last = progress[-1]
    assert last.final and last.files_done == last.files_total == 30 and last.bytes_done == last.bytes_total
    assert last.sessions == 30


def test_live_sessions_count_a_session_in_several_groups_once(layout, env, monkeypatch):
    """The live sessions figure of a parallel import added up each worker group's count: a session whose files
    fell in several groups (a resumed session, subagents), or in a group and in what was committed already,
    counted again for each, so the wizard showed `sessions 61` for a history of 50 (review). The workers now
    send the ids, and each session counts once: never more than there are."""
    from hypaware_tui.core import runner as runner_mod

    for i in range(30):  # 30 files of 3 sessions, each file's parsing slow enough for the workers to say so
        path = os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i:02d}.jsonl")
        write_session(path, f"s{i % 3}", times(f"2026-05-01T10:{i:02d}:00Z", 2), prefix=f"f{i}-m")
        with open(path, "a") as fh:
            fh.write(json.dumps({"type": "nap", "s": 0.04}) + "\n")
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    sink = RecordingSink()
    res = run(layout, env, providers=["claude"], sink=sink, workers=2, batch_rows=10, batch_bytes=2048)
    assert res.providers[0].status == "ok" and res.rows_written == 60 and res.providers[0].sessions_seen == 3
    progress = [p for _, k, p in sink.events if k == "progress"]
    before_commit = [p for p in progress if not p.final and p.rows_written == 0]
    assert any(p.sessions for p in before_commit), [(p.files_done, p.sessions) for p in progress]  # (shown early)
    assert max(p.sessions for p in progress) == 3, [(p.files_done, p.sessions) for p in progress]


def test_cancel_while_the_workers_parse_stops_at_once_then_rerun_completes(layout, env, monkeypatch):
    """Cancel (Ctrl+C, the wizard's Stop) while the workers are in the middle of long groups: the run stops
    without waiting for them (it waited for each group, then committed it: about 5 s in the wizard on
    20,000 sessions), keeps nothing half done, and the next run imports everything exactly once."""
    from hypaware_tui.core import runner as runner_mod

    slow_sessions(env, 40, nap_s=0.25)  # 10 s of parsing in one worker group
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    cancel = threading.Event()

    class CancelOnProgress(RecordingSink):
        def on_progress(self, progress):
            super().on_progress(progress)
            if not progress.final and progress.files_done:
                cancel.set()

    t0 = time.monotonic()
    sink = CancelOnProgress()
    res = run(layout, env, providers=["claude"], sink=sink, cancel=cancel, workers=2)
    took = time.monotonic() - t0
    p = res.providers[0]
    assert p.status == "cancelled" and cancel.is_set() and took < 6, (p.status, took)
    assert (p.rows_written, p.errors) == (0, 0)
    # The files the workers had read ahead were shown, then dropped: the last report (the wizard's panel after
    # the stop) gives the summary's figures, not theirs.
    last = [e for _, k, e in sink.events if k == "progress"][-1]
    assert last.final and (last.files_done, last.sessions, last.bytes_done) == (p.files_scanned, p.sessions_seen, 0)
    again = run(layout, env, providers=["claude"], workers=1)
    assert again.providers[0].status == "ok" and again.rows_written == 80
    assert dataset(layout)["part_id"].n_unique() == dataset(layout).height == 80


def test_a_stop_says_how_many_files_were_read_but_not_saved(layout, env, monkeypatch, capsys):
    """A parallel import stopped while the workers were ahead of the commits (Python 3.13 audit, HYP_WORKERS=2,
    thousands of small sessions): the live progress showed `27% … files 1,893/4,620`, then the final line
    `16% … files 841` with nothing to say why the bar went back. The final figures stay the committed ones (as
    the summary's); the files that were read and dropped are said beside them, on the terminal panel and in the
    plain progress."""
    import io

    from rich.console import Console

    from hypaware_tui.cli import backfill as bf
    from hypaware_tui.core import runner as runner_mod

    slow_sessions(env, 40, nap_s=0.05)  # 2 s of parsing in one worker group: nothing committed for 2 s
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    cancel = threading.Event()
    plain = bf.PlainSink("hyp", dry_run=False, interval=0.0)
    rich = bf.RichSink("hyp", dry_run=False)
    shown: list[int] = []

    class Both:
        def on_provider_start(self, *args):
            plain.on_provider_start(*args)
            rich.on_provider_start(*args)

        def on_progress(self, p):
            if not p.final:
                shown.append(p.files_done)
            plain.on_progress(p)
            rich.on_progress(p)
            if not p.final and p.files_done >= 5:
                cancel.set()

        def on_provider_finish(self, result):
            plain.on_provider_finish(result)
            rich.on_provider_finish(result)

    capsys.readouterr()
    p = run(layout, env, providers=["claude"], sink=Both(), cancel=cancel, workers=2).providers[0]
    err = capsys.readouterr().err.splitlines()
    assert p.status == "cancelled" and p.files_scanned == 0 and max(shown) >= 5
    n = max(shown) - p.files_scanned
    note = f"{n} more files were read but not saved; the next run reads them again"
    assert err[-2].startswith("hyp: claude cancelled 0% 0 B/") and " files 0/40 " in err[-2]
    assert err[-1] == f"hyp: claude: {note}"
    assert not any(line.startswith("hyp: claude importing 0%") for line in err)  # (no final line as "importing")
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(rich._render())
    panel = [line.strip() for line in out.getvalue().splitlines()]
    assert panel[1].startswith("files 0/40 ·") and panel[-1] == note, panel


def test_cancel_mid_run_then_rerun_completes_without_duplicates(layout, env, tmp_path):
    for i in range(12):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i:02d}.jsonl"), f"s{i}",
                      times("2026-05-01T10:00:00Z", 40))
    write_session(os.path.join(env["FAKE_CODEX_ROOT"], "r.jsonl"), "x", times("2026-05-01T10:00:00Z", 10))
    cancel = threading.Event()
    # cancel at the first throttled progress event (after the first batch): a later one may never come when
    # the whole provider takes less than the 0.1 s throttle
    sink = RecordingSink(cancel=cancel, after_rows=1)
    res = run(layout, env, sink=sink, cancel=cancel, batch_rows=30)
    claude, codex = res.providers
    assert claude.status == "cancelled" and codex.status == "cancelled"
    assert res.exit_code == 130
    assert 0 < claude.rows_written < 480
    assert codex.rows_written == 0
    df = dataset(layout)
    assert df.height == claude.rows_written and df["part_id"].n_unique() == df.height
    again = run(layout, env)
    assert again.exit_code == 0
    df = dataset(layout)
    assert df["part_id"].n_unique() == df.height == 490
    # nothing was lost: the union equals a one-shot import into a fresh home
    ref = Layout(tmp_path / "ref")
    run(ref, env)
    assert set(dataset(ref)["part_id"]) == set(df["part_id"])


def test_a_stopped_import_shows_what_was_read_not_the_whole_file(layout, env):
    """A stop in the middle of one file: the last progress shows the bytes read and no file done (it showed
    100 %, every byte and `files 1/1` next to `cancelled`: the file's unread rest was counted as done)."""
    write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], "big.jsonl"), "big", times("2026-05-01T10:00:00Z", 400))
    cancel = threading.Event()
    sink = RecordingSink(cancel=cancel, after_rows=1)
    res = run(layout, env, providers=["claude"], sink=sink, cancel=cancel, batch_rows=30)
    p = res.providers[0]
    assert p.status == "cancelled" and 0 < p.rows_written < 400
    last = [x for _, k, x in sink.events if k == "progress"][-1]
    assert last.final and last.files_done == 0 and last.files_total == 1
    assert 0 < last.bytes_done < last.bytes_total // 2, (last.bytes_done, last.bytes_total)
    assert last.bytes_done <= p.bytes_read


def test_events_are_logged_and_dry_runs_log_nothing(layout, env):
    two_clients(env)
    res = run(layout, env)
    events = [json.loads(x) for x in layout.events_log.read_text().splitlines()]
    names = [e["event"] for e in events]
    for required in ("backfill.start", "backfill.plan", "backfill.provider_start", "backfill.scan",
                     "backfill.materialize", "backfill.write", "backfill.flush", "backfill.provider_finish",
                     "backfill.finish"):
        assert required in names, required
    assert names[0] == "backfill.start" and names[-1] == "backfill.finish"
    assert all(e["dev_run_id"] == (os.environ.get("DEV_RUN_ID") or res.run_id) for e in events)
    scan = next(e for e in events if e["event"] == "backfill.scan" and e["provider"] == "claude")
    assert scan["files_seen"] == 3 and scan["lines_skipped"] == {"malformed": 3, "not_a_message": 6}
    finish = events[-1]
    assert finish["status"] == "ok" and finish["rows_written"] == 80
    size = layout.events_log.stat().st_size
    run(layout, env, dry_run=True)
    assert layout.events_log.stat().st_size == size


def test_inventory_figures_feed_the_plan_event(layout, env):
    two_clients(env)
    inv = build_inventory(["claude", "codex"], env=env, importers=fakes())
    run(layout, env, inventory=inv)
    events = [json.loads(x) for x in layout.events_log.read_text().splitlines()]
    plan = next(e for e in events if e["event"] == "backfill.plan" and e["provider"] == "claude")
    assert plan["files"] == 3 and plan["sessions"] == 3
    assert plan["oldest"] == "2026-05-01T10:00:00Z"


def test_fake_importer_is_a_real_importer(env):
    """Guard: the fake must behave like the contract says (else the tests above prove nothing)."""
    imp = FakeImporter("claude")
    det = imp.detect(None, env)
    assert not det.detected and det.reason.startswith("not found:")


def test_batches_are_bounded_by_source_bytes_too(layout, env):
    """Rows with large contents: a 50 000-row batch would hold the whole file; bytes bound it."""
    path = os.path.join(env["FAKE_CLAUDE_ROOT"], "big.jsonl")
    write_session(path, "big", times("2026-05-01T00:00:00Z", 300, step_s=1), text="x" * 40_000)
    calls = []
    real_commit = storage_mod.Storage.commit

    def commit(self, rows, checkpoints, **kw):
        calls.append(len(rows))
        return real_commit(self, rows, checkpoints, **kw)

    import unittest.mock as um

    with um.patch.object(storage_mod.Storage, "commit", commit):
        res = run(layout, env, providers=["claude"], batch_bytes=1024 * 1024)
    assert res.providers[0].rows_written == 300
    assert len(calls) >= 3 and max(calls) < 150  # one 4 MiB read chunk is ~100 rows here


# --------------------------------------------------------------------------------------------- parallel (issue 8)


def _table(layout):
    df = dataset(layout)
    return df.sort("part_id")


def test_parallel_workers_give_exactly_the_sequential_result(layout, env, tmp_path, monkeypatch):
    from hypaware_tui.core import runner as runner_mod

    for i in range(9):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}",
                      times(f"2026-05-0{i % 3 + 1}T10:00:00Z", 30), noise=1, malformed=1)
    # a large file in the middle, streamed by the committing process while workers parse the rest
    write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], "s4big.jsonl"), "big", times("2026-05-04T00:00:00Z", 400))
    # the same message ids in two files: "first wins" must follow file order in both modes
    write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], "s8dup.jsonl"), "s1", times("2026-05-02T10:00:00Z", 30),
                  prefix="s1-m")
    bad = os.path.join(env["FAKE_CLAUDE_ROOT"], "s6bad.jsonl")
    write_session(bad, "bad", times("2026-05-06T10:00:00Z", 5), boom_at=2)
    big_size = os.path.getsize(os.path.join(env["FAKE_CLAUDE_ROOT"], "s4big.jsonl"))
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    monkeypatch.setattr(runner_mod, "PARALLEL_MAX_FILE", big_size - 1)
    monkeypatch.setattr(runner_mod, "PARALLEL_INFLIGHT_BYTES", 4096)  # exercise the budget
    seq_layout = Layout(tmp_path / "seq")
    seq = run(seq_layout, env, providers=["claude"], workers=1)
    par = run(layout, env, providers=["claude"], workers=2)
    a, b = seq.providers[0], par.providers[0]
    for field in ("status", "files_scanned", "sessions_seen", "rows_written", "duplicates_skipped",
                  "lines_skipped", "errors", "files_unchanged", "bytes_read"):
        assert getattr(a, field) == getattr(b, field), field
    assert b.errors == 1 and "RuntimeError" in b.error
    assert _table(seq_layout).equals(_table(layout))
    db1, db2 = StateDB.open(seq_layout, create=False), StateDB.open(layout, create=False)
    try:
        c1, c2 = db1.get_all("claude"), db2.get_all("claude")
        assert {h: (c.offset, c.parser_state) for h, c in c1.items()} == \
            {h: (c.offset, c.parser_state) for h, c in c2.items()}
    finally:
        db1.close()
        db2.close()
    # the rerun reads nothing, in parallel mode too
    again = run(layout, env, providers=["claude"], workers=2)
    assert again.providers[0].rows_written == 0 and again.providers[0].files_scanned == 1  # the bad file


@pytest.mark.parametrize("prepare_ahead", ["works", "fails", "not_there_yet"])
@pytest.mark.parametrize("budget", [4096, None])
def test_the_next_providers_groups_go_to_the_workers_ahead(layout, env, tmp_path, monkeypatch, prepare_ahead,
                                                             budget):
    """Once Claude's last groups are in the parse workers' hands, Codex is prepared and its first groups are
    handed out too (`_Lookahead`), so the workers parse them while the committer takes Claude's last units,
    instead of waiting for Codex's turn. The dataset, the checkpoints and the figures are those of a sequential
    run, the same message ids in both clients included ("first wins" still follows the providers' order).
    With every Claude group within the byte budget (`budget` None: the default), Codex is still prepared near
    the end of Claude's pass, not at its start (the review found it checked seconds before its turn). A
    preparation ahead that fails (a folder unreadable for a moment), or that did not find Codex's folder, is
    done again in Codex's own turn, which then reads it."""
    from hypaware_tui.core import runner as runner_mod

    for client in ("claude", "codex"):
        for i in range(6):
            write_session(os.path.join(env[f"FAKE_{client.upper()}_ROOT"], f"{client}{i}.jsonl"), f"s{i}",
                          times(f"2026-05-0{i % 3 + 1}T10:00:00Z", 20), noise=1, malformed=1)
    real_prepare = runner_mod._prepare_provider
    real_commit_unit = runner_mod._Committer.commit_unit
    prepared: list[tuple[str, int]] = []  # (provider, Claude's units committed by then)
    units: list[str] = []
    par_run = False

    def prepare(importer, name, **kw):
        prepared.append((name, units.count("claude")))
        early = par_run and name == "codex" and len(prepared) == 2
        if early and prepare_ahead == "fails":
            raise OSError("Permission denied")
        if early and prepare_ahead == "not_there_yet":
            root = env["FAKE_CODEX_ROOT"]
            os.rename(root, root + ".away")
            try:
                return real_prepare(importer, name, **kw)
            finally:
                os.rename(root + ".away", root)
        return real_prepare(importer, name, **kw)

    def commit_unit(self, unit):
        units.append(self.result.provider)
        return real_commit_unit(self, unit)

    monkeypatch.setattr(runner_mod, "_prepare_provider", prepare)
    monkeypatch.setattr(runner_mod._Committer, "commit_unit", commit_unit)
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    if budget is not None:
        monkeypatch.setattr(runner_mod, "PARALLEL_INFLIGHT_BYTES", budget)  # one budget over both providers
    ahead: list[tuple[str, int]] = []
    real_take = runner_mod._Lookahead.take

    def take(self, name):
        prep = real_take(self, name)
        ahead.append((name, len(prep.feed.pending) if prep is not None and prep.feed is not None else -1))
        return prep

    monkeypatch.setattr(runner_mod._Lookahead, "take", take)
    seq_layout = Layout(tmp_path / "seq")
    seq = run(seq_layout, env, workers=1)
    prepared.clear()
    units.clear()
    par_run = True
    par = run(layout, env, workers=2, batch_bytes=2048)
    claude_units = units.count("claude")
    assert claude_units >= 6, units  # (a group of about 2 KB per file: several units, so "near the end" means something)
    names = [n for n, _ in prepared]
    if prepare_ahead == "works":  # (prepared once each: Codex while Claude's last groups were parsed)
        assert names == ["claude", "codex"] and ahead[0] == ("claude", -1), (prepared, ahead)
        assert ahead[1][0] == "codex" and ahead[1][1] >= 1, ahead
    else:
        assert names == ["claude", "codex", "codex"] and ahead == [("claude", -1), ("codex", -1)], (prepared, ahead)
    # (near Claude's end: its last groups, one per worker, were still to be committed; a group is 1-2 units)
    assert claude_units // 2 <= prepared[1][1] < claude_units, (prepared, claude_units)
    assert [(p.status, p.error) for p in seq.providers] == [(p.status, p.error) for p in par.providers]
    assert par.providers[1].rows_written > 0
    _same_as_sequential(seq, par, seq_layout, layout)


def test_a_stop_after_a_files_last_unit_counts_that_file(layout, env, monkeypatch):
    """A worker's file whose last batch filled a unit: its `_FileDone` went into the next unit, so a stop right
    after the commit of its rows and final checkpoint counted it neither read nor done (`files 22` beside 23
    files saved, found by the review), and the rerun read the rest: 65 of 66 files in all. The file now closes
    with the unit of its last batch: the stopped run counts every file it saved, and the two runs add up."""
    from hypaware_tui.core import runner as runner_mod

    paths = []
    for i in range(6):  # 20 rows a file, 20 rows a unit: each file's last batch fills its unit
        paths.append(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"))
        write_session(paths[-1], f"s{i}", times(f"2026-05-0{i % 3 + 1}T10:00:00Z", 20))
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    cancel = threading.Event()
    real = runner_mod._Committer.commit_unit

    def commit_unit(self, unit):
        real(self, unit)
        if unit.rows:
            cancel.set()  # (the stop comes right after the first unit with rows is saved)

    monkeypatch.setattr(runner_mod._Committer, "commit_unit", commit_unit)
    first = run(layout, env, providers=["claude"], workers=2, batch_rows=20, cancel=cancel).providers[0]
    db = StateDB.open(layout, create=False)
    try:
        sizes = {path_hash(os.path.realpath(p)): os.path.getsize(p) for p in paths}
        saved = sum(1 for h, c in db.get_all("claude").items() if c.offset == sizes.get(h))
    finally:
        db.close()
    assert first.status == "cancelled" and first.rows_written == 20 * saved and saved >= 1
    assert first.files_scanned == saved, (first.files_scanned, saved)
    monkeypatch.setattr(runner_mod._Committer, "commit_unit", real)
    again = run(layout, env, providers=["claude"], workers=2, batch_rows=20).providers[0]
    assert again.status == "ok" and first.files_scanned + again.files_scanned == 6
    assert first.rows_written + again.rows_written == 120 and dataset(layout).height == 120


def test_a_stop_after_a_unit_holding_a_files_first_rows_counts_that_file_as_cut_short(layout, env, tmp_path,
                                                                                      monkeypatch):
    """A worker unit closed mid-file (the file's rows filled it) carried the file's rows and checkpoint but none
    of its counts, which went with the file's `_FileDone` in a later unit: a stop right after the commit of the
    first said `files 0`, no skipped line and no byte read beside that file's rows, the rerun started after
    those lines, and no run counted them (a stress test of the parallel path). The stopped run now counts what a
    sequential one stopped there counts, and with the rerun adds up to one import."""
    from hypaware_tui.core import runner as runner_mod

    for i in range(3):  # 70 messages a file, a skipped line after each, 20 rows a unit: units close mid-file
        lines = []
        for k, ts in enumerate(times(f"2026-05-0{i + 1}T10:00:00Z", 70)):
            lines.append(json.dumps({"type": "msg", "session": f"s{i}", "id": f"s{i}-m{k}", "ts": ts, "text": "x"}))
            lines.append(json.dumps({"type": "noise", "ts": ts}))
        path = os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    real = runner_mod._Committer._commit
    got = {}
    for workers in (1, 2):
        lay = Layout(tmp_path / f"hyp{workers}")
        cancel = threading.Event()
        finals = []

        def commit(self, rows, updates, _cancel=cancel):
            real(self, rows, updates)
            _cancel.set()  # (a stop right after the first commit: 20 rows of the first file)

        class Sink(NullSink):
            def on_progress(self, progress, _finals=finals):
                _finals.append(progress)

        monkeypatch.setattr(runner_mod._Committer, "_commit", commit)
        first = run(lay, env, providers=["claude"], workers=workers, batch_rows=20, cancel=cancel,
                    sink=Sink()).providers[0]
        monkeypatch.setattr(runner_mod._Committer, "_commit", real)
        again = run(lay, env, providers=["claude"], workers=workers, batch_rows=20).providers[0]
        got[workers] = (first, again, finals)
    seq, par = got[1][0], got[2][0]
    assert par.status == seq.status == "cancelled" and par.rows_written == seq.rows_written == 20
    for field in ("files_scanned", "lines_skipped", "records_by_type", "bytes_read", "sessions_seen"):
        assert getattr(par, field) == getattr(seq, field), (field, getattr(seq, field), getattr(par, field))
    # (the batch ends with the 20th message: the skipped line after it is the next batch's)
    assert par.files_scanned == 1 and par.lines_skipped == {"not_a_message": 19}
    # Cut short, as in one process: not one of the files "read but not saved" (those the workers had parsed and
    # the live progress showed read: this one, and any other whose rows came in no commit).
    assert got[1][2][-1].files_unsaved == 0
    shown = max([p.files_done for p in got[2][2] if not p.final], default=0)
    assert got[2][2][-1].final and got[2][2][-1].files_unsaved == max(0, shown - 1), (shown, got[2][2][-1])
    for workers in (1, 2):
        first, again, _ = got[workers]
        assert again.status == "ok" and first.rows_written + again.rows_written == 210
        skipped = first.lines_skipped["not_a_message"] + again.lines_skipped["not_a_message"]
        assert skipped == 210, (workers, first.lines_skipped, again.lines_skipped)
        assert dataset(Layout(tmp_path / f"hyp{workers}")).height == 210


def _same_as_sequential(seq, par, seq_layout, layout) -> None:
    """A parallel run `par` gave exactly the sequential run `seq`: figures, dataset and checkpoints."""
    for a, b in zip(seq.providers, par.providers, strict=True):
        for field in ("files_scanned", "sessions_seen", "rows_written", "duplicates_skipped", "lines_skipped",
                      "errors", "bytes_read"):
            assert getattr(a, field) == getattr(b, field), (a.provider, field)
    assert _table(seq_layout).equals(_table(layout))
    db1, db2 = StateDB.open(seq_layout, create=False), StateDB.open(layout, create=False)
    try:
        for client in ("claude", "codex"):
            assert {h: (c.offset, c.parser_state) for h, c in db1.get_all(client).items()} == \
                {h: (c.offset, c.parser_state) for h, c in db2.get_all(client).items()}
    finally:
        db1.close()
        db2.close()


@pytest.mark.parametrize("death", ["die", "die_sending"])
def test_a_killed_parse_worker_costs_nothing(layout, env, tmp_path, monkeypatch, death):
    """A parse worker killed mid-run (the OOM killer, a `kill -9`): its files are parsed again in the committing
    process, the providers after it run there too, and the dataset and checkpoints are exactly those of a
    sequential run. The loss is logged, without a raw path. `die_sending`: killed while sending a large result,
    it left half a message in the result pipe; the executor never noticed the death, and the run waited
    forever for that group."""
    import threading

    from hypaware_tui.core import runner as runner_mod

    for client in ("claude", "codex"):
        for i in range(6):
            write_session(os.path.join(env[f"FAKE_{client.upper()}_ROOT"], f"{client}{i}.jsonl"), f"{client}{i}",
                          times(f"2026-05-0{i % 3 + 1}T10:00:00Z", 20), noise=1, malformed=1)
    victim = os.path.join(env["FAKE_CLAUDE_ROOT"], "claude3.jsonl")
    with open(victim, "a") as fh:  # in a worker, this line kills it (in this process it is noise)
        fh.write(json.dumps({"type": death}) + "\n")
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    seq_layout = Layout(tmp_path / "seq")
    seq = run(seq_layout, env, workers=1)
    notices = []

    class Sink(NullSink):
        def on_notice(self, provider, message):
            notices.append((provider, message))

    done = []
    worker = threading.Thread(target=lambda: done.append(run(layout, env, workers=2, sink=Sink())), daemon=True)
    worker.start()
    worker.join(60)
    assert done, "the run still waits for the dead worker's result after 60 s"
    par = done[0]
    assert [p.status for p in par.providers] == ["ok", "ok"] and par.exit_code == 0
    assert notices == [("claude", runner_mod.WORKER_LOST_NOTICE)]
    assert par.rows_written == 2 * 6 * 20
    _same_as_sequential(seq, par, seq_layout, layout)
    text = layout.events_log.read_text()
    lost = [e for e in map(json.loads, text.splitlines()) if e["event"] == "backfill.worker_lost"]
    assert len(lost) == 1 and lost[0]["provider"] == "claude"
    reason = lost[0]["reason"]
    assert "terminated abruptly" in reason or "SIGKILL" in reason or "died while sending" in reason, reason
    assert env["FAKE_CLAUDE_ROOT"] not in text
    # and the next run (a fresh pool) reads nothing new
    again = run(layout, env, workers=2)
    assert again.rows_written == 0 and [p.status for p in again.providers] == ["ok", "ok"]


UI_CHILD = """
import io, json, sys
from pathlib import Path
import backfill_fakes
from hypaware_tui.core import runner
from hypaware_tui.core.paths import Layout
from hypaware_tui.importers.base import Window


class Capture(io.TextIOBase):  # what Textual puts in sys.stderr while the wizard runs
    def write(self, s):
        return len(s)

    def fileno(self):
        return -1


if __name__ == "__main__":
    runner.PARALLEL_MIN_TOTAL = 0
    if sys.argv[2] == "captured":
        sys.stderr = Capture()
    res = runner.run_backfill(Layout(Path(sys.argv[1])), ["claude"], window=Window(until_us=None),
                              write_checkpoints=True, dry_run=False, env=json.loads(sys.argv[3]),
                              importers={"claude": backfill_fakes.FakeImporter("claude")}, retention_days=0,
                              workers=2)
    p = res.providers[0]
    print(json.dumps({"status": p.status, "rows": p.rows_written, "error": p.error}))
"""


@pytest.mark.parametrize("stderr", ["captured", "terminal"])
def test_parse_workers_start_under_a_full_screen_ui(layout, env, tmp_path, stderr):
    """`hyp init` imports under Textual, whose capture of stderr answers `fileno()` with -1. multiprocessing
    handed that -1 to the resource tracker it starts with the first pool ("bad value(s) in fds_to_keep"), so
    every import big enough for the workers failed in the wizard. The workers start now, and under the UI
    nothing they print reaches the terminal (on a plain stderr it does: the shout is real). Fresh processes:
    the tracker is started once per process."""
    import subprocess
    import sys

    for i in range(6):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}",
                      times(f"2026-05-0{i % 3 + 1}T10:00:00Z", 20))
    with open(os.path.join(env["FAKE_CLAUDE_ROOT"], "s2.jsonl"), "a") as fh:
        fh.write(json.dumps({"type": "shout"}) + "\n")
    script = tmp_path / "child.py"
    script.write_text(UI_CHILD)
    tests = os.path.dirname(os.path.abspath(__file__))
    child_env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, os.path.dirname(tests)]))
    proc = subprocess.run([sys.executable, str(script), str(layout.home), stderr, json.dumps(env)],
                          capture_output=True, text=True, timeout=120, env=child_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"status": "ok", "rows": 120, "error": None}
    events = [json.loads(x) for x in layout.events_log.read_text().splitlines()]
    assert not [e for e in events if e["event"] == "backfill.worker_lost"]  # the workers did the parsing
    assert ("WORKER-SHOUT" in proc.stderr) == (stderr == "terminal")


def test_workers_that_cannot_start_leave_the_import_to_this_process(layout, env, tmp_path, monkeypatch):
    """No process can be started (a process limit, a sandbox): the import runs here, says so once, and gives
    exactly the sequential result."""
    import concurrent.futures

    from hypaware_tui.core import runner as runner_mod

    for i in range(6):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}",
                      times(f"2026-05-0{i % 3 + 1}T10:00:00Z", 20), noise=1)
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    seq_layout = Layout(tmp_path / "seq")
    seq = run(seq_layout, env, providers=["claude"], workers=1)

    def no_processes(*a, **k):
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_processes)
    notices = []

    class Sink(NullSink):
        def on_notice(self, provider, message):
            notices.append((provider, message))

    par = run(layout, env, providers=["claude"], workers=2, sink=Sink())
    assert par.providers[0].status == "ok" and par.rows_written == seq.rows_written == 120
    assert notices == [("claude", runner_mod.WORKER_START_NOTICE.format(
        reason="BlockingIOError: [Errno 11] Resource temporarily unavailable"))]
    assert notices[0][1].startswith("could not start the parse worker processes (BlockingIOError")
    assert _table(seq_layout).equals(_table(layout))
    lost = [e for e in map(json.loads, layout.events_log.read_text().splitlines())
            if e["event"] == "backfill.worker_lost"]
    assert len(lost) == 1 and lost[0]["at_start"] is True


def test_a_rerun_opens_only_the_files_that_changed(layout, env, monkeypatch):
    """With nothing new, a rerun over many transcripts only stats them once, in discovery (the checkpoint
    matches): no file pass is started, no file opened, no full checkpoint read. An appended file is read
    from its offset; a touched one (same size, new mtime) is opened too; only theirs are read in full."""
    from hypaware_tui.core import reader as reader_mod
    from hypaware_tui.core import runner as runner_mod

    paths = []
    for i in range(5):
        paths.append(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"))
        write_session(paths[-1], f"s{i}", times("2026-05-01T10:00:00Z", 3))
    assert run(layout, env, providers=["claude"], workers=1).rows_written == 15
    opened = []
    real_open = open

    def spy(path, *a, **kw):
        opened.append(os.path.basename(path))
        return real_open(path, *a, **kw)

    passes = []

    class CountedPass(reader_mod.FilePass):
        def __init__(self, importer, file, *a, **kw):
            passes.append(os.path.basename(file.path))
            super().__init__(importer, file, *a, **kw)

    stats = []
    real_stat = os.stat

    def stat_spy(path, *a, **kw):
        if str(path).startswith(env["FAKE_CLAUDE_ROOT"]) and str(path).endswith(".jsonl"):
            stats.append(os.path.basename(path))
        return real_stat(path, *a, **kw)

    full_reads = []
    real_get_many = StateDB.get_many

    def get_many_spy(self, hashes):
        hashes = list(hashes)
        full_reads.extend(hashes)
        return real_get_many(self, hashes)

    monkeypatch.setattr(reader_mod, "open", spy, raising=False)
    monkeypatch.setattr(runner_mod, "FilePass", CountedPass)
    monkeypatch.setattr(os, "stat", stat_spy)
    monkeypatch.setattr(StateDB, "get_many", get_many_spy)
    res = run(layout, env, providers=["claude"], workers=1)
    assert (res.rows_written, res.providers[0].files_unchanged, opened, passes) == (0, 5, [], [])
    assert sorted(stats) == [f"s{i}.jsonl" for i in range(5)] and full_reads == []
    with open(paths[1], "a") as fh:
        fh.write(json.dumps({"type": "msg", "session": "s1", "id": "new", "ts": "2026-05-02T10:00:00Z"}) + "\n")
    os.utime(paths[3], ns=(1, real_stat(paths[3]).st_mtime_ns + 5_000_000_000))
    res = run(layout, env, providers=["claude"], workers=1)
    assert res.rows_written == 1 and res.providers[0].files_unchanged == 3
    assert sorted(opened) == sorted(passes) == ["s1.jsonl", "s3.jsonl"]
    by_name = {path_hash(os.path.realpath(p)): os.path.basename(p) for p in paths}
    assert sorted({by_name[h] for h in full_reads}) == ["s1.jsonl", "s3.jsonl"]


def test_a_rerun_notices_each_part_of_the_stat_that_changed(layout, env, monkeypatch):
    """storage.md §5.4 step 2: a file is skipped only when its size, mtime and (device, inode) all equal its
    checkpoint. A file truncated and rewritten with the same size (new mtime), a file replaced by another of
    the same size and mtime (new inode: an editor's save by rename), and a touched file are each opened; the
    first two are read again from the start (new head, new inode), the untouched one is only counted."""
    from hypaware_tui.core import reader as reader_mod

    paths = [os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl") for i in range(4)]
    for i, p in enumerate(paths):
        write_session(p, f"s{i}", times("2026-05-01T10:00:00Z", 3), text="aaaa")
    assert run(layout, env, providers=["claude"], workers=1).rows_written == 12
    before = [os.stat(p) for p in paths]
    # s0: truncated and rewritten in place, same size, new content and mtime
    size = before[0].st_size
    with open(paths[0], "r+b") as fh:
        fh.truncate(0)
        fh.seek(0)
    write_session(paths[0], "s0", times("2026-05-01T10:00:00Z", 3), prefix="s0-n", text="bbbb")
    os.utime(paths[0], ns=(1, before[0].st_mtime_ns + 7_000_000_000))
    # s1: replaced by a new file (new inode) of the same size, its mtime set back to the old one
    tmp = paths[1] + ".new"
    write_session(tmp, "s1", times("2026-05-01T10:00:00Z", 3), prefix="s1-n", text="cccc")
    os.replace(tmp, paths[1])
    os.utime(paths[1], ns=(1, before[1].st_mtime_ns))
    # s2: touched only
    os.utime(paths[2], ns=(1, before[2].st_mtime_ns + 7_000_000_000))
    now = [os.stat(p) for p in paths]
    assert [st.st_size for st in now] == [st.st_size for st in before] and now[0].st_size == size
    assert now[1].st_ino != before[1].st_ino and now[1].st_mtime_ns == before[1].st_mtime_ns
    opened = []
    real_open = open

    def spy(path, *a, **kw):
        opened.append(os.path.basename(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(reader_mod, "open", spy, raising=False)
    p = run(layout, env, providers=["claude"], workers=1).providers[0]
    assert sorted(set(opened)) == ["s0.jsonl", "s1.jsonl", "s2.jsonl"]
    assert (p.files_unchanged, p.files_reset, p.rows_written) == (1, 2, 6)
    assert sorted(dataset(layout)["message_id"].to_list()) == sorted(
        [f"s{i}-m{k}" for i in range(4) for k in range(3)] + [f"s{i}-n{k}" for i in (0, 1) for k in range(3)])
    opened.clear()
    p = run(layout, env, providers=["claude"], workers=1).providers[0]
    assert (opened, p.files_unchanged, p.rows_written) == ([], 4, 0)


def test_a_file_discovery_gave_no_stat_for_keeps_its_checkpoint(layout, env, monkeypatch):
    """An importer may list files without their stat (device None): the runner stats them. One whose stat
    fails there still gets its checkpoint for its pass, which then resumes at its offset rather than reading
    the file again from the start."""
    from hypaware_tui.core import runner as runner_mod

    for i in range(2):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}", times("2026-05-01T10:00:00Z", 4))
    assert run(layout, env, providers=["claude"], workers=1).rows_written == 8
    real_discover = FakeImporter.discover

    def discover(self, roots):
        d = real_discover(self, roots)
        d.files = [type(f)(f.client, f.path, f.path_hash, f.read_mode, f.is_session) for f in d.files]
        return d

    flaky = os.path.realpath(os.path.join(env["FAKE_CLAUDE_ROOT"], "s1.jsonl"))
    real_stat = os.stat

    class FlakyOs:  # the runner's stat of s1 fails once; the pass's own stat (in the reader) succeeds
        failed = False

        def __getattr__(self, name):
            return getattr(os, name)

        def stat(self, path, *a, **kw):
            if path == flaky and not FlakyOs.failed:
                FlakyOs.failed = True
                raise OSError(5, "Input/output error", path)
            return real_stat(path, *a, **kw)

    monkeypatch.setattr(FakeImporter, "discover", discover)
    monkeypatch.setattr(runner_mod, "os", FlakyOs())
    p = run(layout, env, providers=["claude"], workers=1).providers[0]
    assert FlakyOs.failed
    assert (p.rows_written, p.duplicates_skipped, p.bytes_read, p.files_unchanged) == (0, 0, 0, 2)  # s1 by its pass


def test_discovery_pauses_the_cyclic_collector_and_restores_it(layout, env, monkeypatch):
    """The collector is off during discovery and the stat comparison only, and back as it was after: on
    after a run (and after one whose discovery raised), still off after a run made with it off."""
    import gc

    from hypaware_tui.core import runner as runner_mod

    write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], "s0.jsonl"), "s0", times("2026-05-01T10:00:00Z", 2))
    seen = []
    real_discover = FakeImporter.discover

    def discover(self, roots):
        seen.append(gc.isenabled())
        return real_discover(self, roots)

    monkeypatch.setattr(FakeImporter, "discover", discover)
    assert gc.isenabled()
    assert run(layout, env, providers=["claude"], workers=1).rows_written == 2
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        run(layout, env, providers=["claude"], workers=1)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), runner_mod._gc_paused():
        raise RuntimeError("discovery failed")
    assert gc.isenabled()


def test_a_file_deleted_after_listing_is_not_an_error(layout, env, monkeypatch):
    """Claude Code deletes transcripts older than its cleanup period when it starts, possibly while hyp
    reads: a file listed by discovery and gone when its turn comes has nothing to import and is no error.
    A file that cannot be read for another reason still is one."""
    from hypaware_tui.core import reader as reader_mod

    for i in range(3):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}", times("2026-05-01T10:00:00Z", 4))
    doomed = os.path.join(env["FAKE_CLAUDE_ROOT"], "s1.jsonl")
    real_open = open

    def delete_before_open(path, *a, **kw):  # deleted between the pass's stat and its open
        if path == doomed and os.path.exists(doomed):
            os.unlink(doomed)
        return real_open(path, *a, **kw)

    monkeypatch.setattr(reader_mod, "open", delete_before_open, raising=False)
    sink = RecordingSink()
    res = run(layout, env, providers=["claude"], workers=1, sink=sink)
    p = res.providers[0]
    assert (p.status, p.errors, p.error, p.files_failed, res.exit_code) == ("ok", 0, None, 0, 0)
    assert p.rows_written == 8 and p.files_scanned == 2
    last = [e[2] for e in sink.events if e[1] == "progress"][-1]  # the bar ends full: its bytes are done too
    assert (last.bytes_done, last.files_done) == (p.bytes_total, 3) and p.bytes_total > p.bytes_read
    # deleted before the pass's stat too (the next run's discovery may still list it: simulated)
    monkeypatch.undo()
    write_session(doomed, "s1", times("2026-05-01T10:00:00Z", 4))
    gone = os.path.join(env["FAKE_CLAUDE_ROOT"], "s3.jsonl")
    real_discover = FakeImporter.discover

    def discover(self, roots):
        d = real_discover(self, roots)
        d.files.append(type(d.files[0])(client="claude", path=gone, path_hash="0" * 16, read_mode="incremental"))
        return d

    monkeypatch.setattr(FakeImporter, "discover", discover)
    res = run(layout, env, providers=["claude"], workers=1)
    p = res.providers[0]
    assert (p.status, p.errors, p.files_failed, p.rows_written, res.exit_code) == ("ok", 0, 0, 4, 0)
    # a file that cannot be read for another reason is still reported (simulated: the suite may run as root)
    monkeypatch.undo()

    def refuse(path, *a, **kw):
        if path == doomed:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *a, **kw)

    monkeypatch.setattr(reader_mod, "open", refuse, raising=False)
    os.utime(doomed, (1, 1))
    res = run(layout, env, providers=["claude"], workers=1)
    p = res.providers[0]
    assert p.errors == 1 and p.files_failed == 1 and "Permission denied" in p.error and doomed not in p.error


def test_parallel_is_used_for_many_bytes_or_many_files_only():
    from hypaware_tui.core import runner as runner_mod
    from hypaware_tui.importers.base import SourceFile

    f = SourceFile("claude", "/x", "h", "incremental")
    assert not runner_mod._worth_parallel([(f, 1000), (f, 2000)])
    big = runner_mod.PARALLEL_MIN_TOTAL
    third = big // 3 + 1
    assert third < runner_mod.PARALLEL_MAX_FILE
    assert runner_mod._worth_parallel([(f, third)] * 3)
    assert not runner_mod._worth_parallel([(f, runner_mod.PARALLEL_MAX_FILE), (f, 0)])
    many = runner_mod.PARALLEL_MIN_FILES  # many small sessions: the per-file cost is worth two processes
    assert runner_mod._worth_parallel([(f, 1000)] * many)
    assert not runner_mod._worth_parallel([(f, 1000)] * (many - 1))
    assert not runner_mod._worth_parallel([(f, 0)] * many)  # unchanged files are not read at all


def test_waiting_for_the_write_lock_is_reported(layout, env):
    from filelock import FileLock

    two_clients(env, claude_files=1)
    layout.run_dir.mkdir(parents=True)
    held = threading.Event()

    def holder():  # another writer (a thread: filelock refuses a second holder in the same thread)
        with FileLock(str(layout.write_lock)):
            held.set()
            time.sleep(1.0)

    timer = threading.Thread(target=holder)
    timer.start()
    held.wait(5)
    waits: list[str] = []

    class Sink(NullSink):
        def on_lock_wait(self, provider):
            waits.append(provider)

    try:
        t = time.monotonic()
        res = run(layout, env, providers=["claude"], sink=Sink())
    finally:
        timer.join()
    assert res.providers[0].status == "ok", res.providers[0].error
    assert res.providers[0].rows_written == 20
    assert waits and waits[0] == "claude"
    assert time.monotonic() - t >= 0.9


def _stopped_at_a_lock_wait(layout, env, monkeypatch, when, **kw):
    """A run with workers whose commit of the first unit `when` accepts finds the write lock held by another
    writer, and is stopped while it waits (the unit is dropped, its lines read again next time). Returns the
    result of its provider, its final progress and the units it was given."""
    from filelock import FileLock

    from hypaware_tui.core import runner as runner_mod

    held, release = threading.Event(), threading.Event()
    threads, units = [], []

    def holder():  # another writer takes the lock just as that unit is to be committed
        with FileLock(str(layout.write_lock)):
            held.set()
            release.wait(30)

    real = runner_mod._Committer.commit_unit

    def commit_unit(self, unit):
        units.append(unit)
        if not threads and when(unit):
            threads.append(threading.Thread(target=holder))
            threads[0].start()
            held.wait(5)
        return real(self, unit)

    monkeypatch.setattr(runner_mod._Committer, "commit_unit", commit_unit)
    cancel = threading.Event()
    finals = []

    class Sink(NullSink):
        def on_lock_wait(self, provider):
            cancel.set()

        def on_progress(self, progress):
            if progress.final:
                finals.append(progress)

    try:
        p = run(layout, env, providers=["claude"], sink=Sink(), cancel=cancel, workers=2, **kw).providers[0]
    finally:
        release.set()
        for t in threads:
            t.join()
        monkeypatch.setattr(runner_mod._Committer, "commit_unit", real)
    assert threads and finals
    return p, finals[-1], units


def test_files_of_a_worker_unit_dropped_at_a_cancelled_lock_wait_are_not_counted_as_imported(layout, env,
                                                                                            monkeypatch):
    """A stop while another process holds the write lock drops the unit being committed (its lines are read
    again next time). Its files were counted done all the same: the summary said `files 6` next to `rows 0`,
    and the "read but not saved" note left them out (review)."""
    from hypaware_tui.core import runner as runner_mod

    for i in range(6):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}", times("2026-05-01T10:00:00Z", 5))
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    p, final, _ = _stopped_at_a_lock_wait(layout, env, monkeypatch, lambda unit: True)
    assert p.status == "cancelled" and p.rows_written == 0
    assert (p.files_scanned, p.bytes_read) == (0, 0)
    assert final.files_done == 0 and final.files_unsaved == 6, final
    again = run(layout, env, providers=["claude"]).providers[0]
    assert (again.files_scanned, again.rows_written) == (6, 30)


def test_a_dropped_unit_that_ends_a_file_whose_first_rows_were_saved_counts_that_file_once(layout, env,
                                                                                          monkeypatch):
    """The unit dropped at a cancelled lock wait held the end of a file whose first rows earlier units had saved
    (counted read, as a file cut short): the "read but not saved" figure counted it again, `files 1` beside "3
    more files were read but not saved" for a history of 3 files (review)."""
    from hypaware_tui.core import runner as runner_mod

    write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], "s0.jsonl"), "s0", times("2026-05-01T10:00:00Z", 70))
    for i in (1, 2):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}", times("2026-05-02T10:00:00Z", 5))
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    # (the lock is held at the unit that ends s0, s1 and s2: 20 rows a unit, s0 has 70)
    p, final, units = _stopped_at_a_lock_wait(layout, env, monkeypatch, lambda unit: bool(unit.done), batch_rows=20)
    assert [len(u.done) for u in units] == [0, 0, 0, 3], [(u.rows, len(u.done)) for u in units]
    assert p.status == "cancelled" and p.rows_written == 60 and p.files_scanned == 1
    assert final.files_unsaved == 2, final
    assert p.files_scanned + final.files_unsaved == 3
    again = run(layout, env, providers=["claude"], batch_rows=20).providers[0]
    assert (again.files_scanned, again.rows_written) == (3, 20) and dataset(layout).height == 80


def test_after_a_batch_is_dropped_at_a_cancelled_lock_wait_nothing_later_is_committed():
    """A batch not written (the run was interrupted while another process held the lock) must not be
    followed by a later batch of the same run: that one's checkpoints would skip the dropped lines for good."""
    from hypaware_tui.core.runner import ProviderResult, _Committer
    from hypaware_tui.core.storage import LockWaitCancelled

    class Storage:
        def __init__(self) -> None:
            self.calls = 0

        def commit(self, rows, updates, **kw):
            self.calls += 1
            if self.calls == 1:
                raise LockWaitCancelled()
            raise AssertionError("committed after a dropped batch")

    storage = Storage()
    pr = ProviderResult(provider="claude")
    committer = _Committer(storage, None, None, pr, None, batch_rows=1, flush_interval_s=60)
    committer.add([{"part_id": "a"}], None, 10)
    committer.flush()
    committer.add([{"part_id": "b"}], None, 10)
    committer.flush()
    assert storage.calls == 1 and pr.rows_written == 0 and pr.commits == 0


def test_a_stop_that_comes_once_every_file_is_read_leaves_the_provider_complete(layout, env, monkeypatch):
    """The stop confirmed after the provider's last file was read to its end (the user took a second to
    answer "Stop the import?"): nothing was cut short, so the provider is `ok`, not `cancelled` with a
    "finish later with hyp backfill" hint for an import that has nothing left to do."""
    for i in range(3):
        write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], f"s{i}.jsonl"), f"s{i}", times("2026-05-01T10:00:00Z", 5))
    from hypaware_tui.core import runner as runner_mod

    cancel = threading.Event()
    monkeypatch.setattr(runner_mod._Throttle, "ready", lambda self: True)  # every progress event is sent

    class StopAtTheEnd(NullSink):
        def on_progress(self, progress):
            if progress.files_done == progress.files_total:
                cancel.set()

    res = run(layout, env, providers=["claude"], sink=StopAtTheEnd(), cancel=cancel, workers=1)
    (p,) = res.providers
    assert cancel.is_set() and p.status == "ok" and p.rows_written == 15 and res.exit_code == 0
    # a stop in the middle of the last file to read still cancels
    write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], "s3.jsonl"), "s3", times("2026-05-01T10:00:00Z", 10))
    cancel.clear()
    res = run(layout, env, providers=["claude"], sink=RecordingSink(cancel=cancel, after_rows=1), cancel=cancel,
              batch_rows=2, workers=1)
    assert res.providers[0].status == "cancelled" and res.exit_code == 130
    # every file read, but the stop came while the last commit waited for another process's lock: its rows
    # were not written (the audit saw `ok`, exit 0 and "No history in this window." with nothing imported)
    from hypaware_tui.core.storage import LockWaitCancelled, Storage

    def commit(self, rows, updates, **kw):
        cancel.set()
        raise LockWaitCancelled()

    monkeypatch.setattr(Storage, "commit", commit)
    write_session(os.path.join(env["FAKE_CLAUDE_ROOT"], "s4.jsonl"), "s4", times("2026-05-01T10:00:00Z", 3))
    cancel.clear()
    res = run(layout, env, providers=["claude"], cancel=cancel, workers=1)
    assert res.providers[0].status == "cancelled" and res.providers[0].rows_written == 0 and res.exit_code == 130


def test_a_large_value_is_not_held_in_python_while_its_file_is_encoded(layout, env, monkeypatch):
    """A 40 MB message on one line: once the commit has built its frame, the row dicts (and their 40 MB
    string) are let go by the committer, the reader's batch and the run's loop, so that encoding the file,
    which costs several times the value inside Polars, does not also hold it as a Python string. Measured
    with tracemalloc, which sees Python's allocations only, not the frame's."""
    import tracemalloc

    text = "x" * 40_000_000
    path = os.path.join(env["FAKE_CLAUDE_ROOT"], "p", "s.jsonl")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as fh:
        for i, t in enumerate(["before", text, "after"]):
            fh.write(json.dumps({"type": "msg", "session": "s1", "id": f"m{i}", "ts": "2026-05-01T10:00:00Z",
                                 "text": t}) + "\n")
    del text
    held: list[int] = []
    real = storage_mod.encode_part

    def encode_part(df):
        held.append(tracemalloc.get_traced_memory()[0])
        return real(df)

    monkeypatch.setattr(storage_mod, "encode_part", encode_part)
    tracemalloc.start()
    try:
        res = run(layout, env, providers=["claude"], workers=1)
    finally:
        tracemalloc.stop()
    assert res.providers[0].status == "ok" and res.providers[0].rows_written == 3
    assert dataset(layout)["content_text"].str.len_bytes().max() == 40_000_000
    assert held and max(held) < 20_000_000, held  # (the 40 MB string was still held: 40+ MB)


HALF_SENT = '''
import gc, os, struct, time
from multiprocessing.queues import SimpleQueue


def half_sent(flag):
    """In a parse worker: start sending a 1 MB result through the pool's result pipe, write part of it, and stay
    there, as a worker stopped in the middle of sending a large result does."""
    (results,) = [o for o in gc.get_objects() if isinstance(o, SimpleQueue)]
    os.write(results._writer.fileno(), struct.pack("!i", 1 << 20) + b"x" * 4096)
    open(flag, "w").close()
    time.sleep(600)
'''

STOP_CHILD = '''
import json, os, sys, time
import half_sent
from hypaware_tui.core.runner import _Pool

if __name__ == "__main__":
    pool = _Pool(2)
    executor = pool.get()
    executor.submit(half_sent.half_sent, sys.argv[1])
    deadline = time.monotonic() + 60
    while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # (the executor's manager thread is reading the message by now)
    pids = [p.pid for p in executor._processes.values()]
    t0 = time.monotonic()
    pool.close(stop_now=True)
    print(json.dumps({"close_s": time.monotonic() - t0, "pids": pids}), flush=True)
'''


def test_a_stopped_run_stops_workers_caught_sending_a_result(tmp_path):
    """One Ctrl+C can land while a parse worker sends a large result: `_Pool.close(stop_now=True)` terminated the
    workers, then waited for the executor's manager thread, which was reading a message that would never be
    finished: `hyp backfill` hung after one Ctrl+C (both providers `cancelled`, no summary, the cursor hidden).
    Now the stop takes seconds at most, the process exits, no worker is left, and nothing is printed after it
    (multiprocessing's "leaked semaphore objects" warning). In a child process, bounded by a timeout."""
    import subprocess
    import sys

    (tmp_path / "half_sent.py").write_text(HALF_SENT)
    script = tmp_path / "child.py"
    script.write_text(STOP_CHILD)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child_env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), repo]), TMPDIR=str(tmp_path))
    flag = tmp_path / "sending"
    try:
        proc = subprocess.run([sys.executable, str(script), str(flag)], capture_output=True, text=True, timeout=30,
                              env=child_env, cwd=str(tmp_path))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the stop hung: {exc.stdout!r} {exc.stderr!r}")
    assert flag.exists()  # (the worker did start sending)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["close_s"] < 10
    assert out["pids"]
    for pid in out["pids"]:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    assert proc.stderr == ""


def test_an_interrupted_run_exits_130_even_when_another_provider_failed() -> None:
    """cli.md §5.3 and §1, with wizard.md §11's precedence: a Ctrl+C ends the run with 130 whatever else
    happened in it (a script tells an interrupt from a failure by it); a failure alone is 1, else 0."""
    from hypaware_tui.cli.backfill import closing_line
    from hypaware_tui.core.runner import BackfillResult, ProviderResult

    def result(*statuses: str) -> BackfillResult:
        return BackfillResult("r", False, None, None,
                              [ProviderResult(p, status=s) for p, s in zip(("claude", "codex"), statuses, strict=True)])

    both = result("failed", "cancelled")
    assert both.exit_code == 130 and both.to_json()["providers"][1]["status"] == "cancelled"
    assert closing_line(both) == "Nothing was imported: claude failed (the error is above)."
    assert result("cancelled", "failed").exit_code == 130
    assert result("failed", "ok").exit_code == 1
    assert result("ok", "skipped").exit_code == 0


# ------------------------------------------------------------- files rewritten in place (storage.md §5.4)

_ROW_COLUMNS = ("part_id", "session_id", "message_id", "source_offset", "content_text")


def _long_session(env) -> str:
    """A transcript of 40 lines of ~330 bytes (13 KB: lines 13 on lie past the 4 KiB head)."""
    path = os.path.join(env["FAKE_CLAUDE_ROOT"], "p0", "long.jsonl")
    write_session(path, "L", times("2026-05-01T10:00:00Z", 40), text="t" * 250)
    assert os.path.getsize(path) > 3 * 4096
    return path


def _append(path: str, ids: list[str]) -> int:
    data = "".join(
        json.dumps({"type": "msg", "session": "L", "id": i, "ts": "2026-05-01T12:00:00Z", "text": "late"}) + "\n"
        for i in ids
    ).encode()
    with open(path, "ab") as fh:
        fh.write(data)
    return len(data)


def test_a_file_rewritten_in_place_past_its_head_is_read_again_from_its_start(layout, env, tmp_path):
    """A transcript rewritten in place (same inode) that keeps its first 4 KiB and a line start at the
    checkpoint's offset, but whose line 30 (past the head, before the offset) changed, then appended to: the
    next import reads it again from its start (the bytes before the offset no longer hash to the checkpoint's
    tail), so the dataset holds every row a fresh import of the new bytes gives, each part_id once. Resumed at
    the old offset instead, the changed line was never read: its row missing for good."""
    path = _long_session(env)
    run(layout, env, providers=["claude"])
    ino = os.stat(path).st_ino
    data = open(path, "rb").read()
    assert data.index(b'"L-m30"') > 4096
    with open(path, "r+b") as fh:  # in place: same inode, same length, same head
        fh.write(data.replace(b'"L-m30"', b'"L-z30"'))
    _append(path, ["late-1", "late-2"])
    assert os.stat(path).st_ino == ino
    second = run(layout, env, providers=["claude"]).providers[0]
    assert second.status == "ok" and second.bytes_read == os.path.getsize(path)

    fresh_layout = Layout(tmp_path / "fresh")
    run(fresh_layout, env, providers=["claude"])
    fresh = dataset(fresh_layout).select(_ROW_COLUMNS).sort("part_id")
    got = dataset(layout)
    assert got["part_id"].n_unique() == got.height
    mine = got.select(_ROW_COLUMNS).filter(pl.col("part_id").is_in(fresh["part_id"].implode())).sort("part_id")
    assert mine.to_dicts() == fresh.to_dicts()
    assert "L-z30" in set(got["message_id"])


def test_a_long_file_appended_to_is_resumed_reading_only_the_bytes_added(layout, env):
    """The tail check costs no re-read: a transcript longer than the head, only appended to, is resumed at
    its checkpoint and reads the bytes added alone."""
    path = _long_session(env)
    run(layout, env, providers=["claude"])
    added = _append(path, ["late-1"])
    claude = run(layout, env, providers=["claude"]).providers[0]
    assert (claude.bytes_read, claude.rows_written, claude.duplicates_skipped) == (added, 1, 0)
    added = _append(path, ["late-2"])
    claude = run(layout, env, providers=["claude"]).providers[0]
    assert (claude.bytes_read, claude.rows_written, claude.duplicates_skipped) == (added, 1, 0)
