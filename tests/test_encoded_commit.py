"""Batches encoded ahead of the commit (`storage.encode_batch`, used by the parse workers of a parallel
backfill) commit exactly like the rows they come from: same stored rows, same files, same accounting, same
events; and a parallel backfill gives the sequential dataset (issue 8)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from helpers import make_row, make_rows

from hypaware_tui.core.events import EventLog
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.schema import SchemaError
from hypaware_tui.core.storage import Storage, encode_batch


def _stored(layout: Layout) -> list[pl.DataFrame]:
    """Every part file's rows, in (partition, name order) — names differ between runs, contents must not."""
    out = []
    for pdir in sorted({p.parent for p in layout.dataset_root.glob("**/*.parquet")}):
        out += [pl.read_parquet(f) for f in sorted(pdir.glob("*.parquet"))]
    return out


def _events(layout: Layout) -> list[dict]:
    lines = layout.events_log.read_text().splitlines() if layout.events_log.exists() else []
    keep = ("event", "provider", "partition", "rows_written", "duplicates_skipped", "files_written")
    return [{k: v for k, v in json.loads(line).items() if k in keep} for line in lines]


def _batches() -> list[list[dict]]:
    day1, day2, day3 = "2026-05-01T10:00:00Z", "2026-05-02T10:00:00Z", "2026-04-01T10:00:00Z"
    first = make_rows(5, prefix="a", created=day1) + make_rows(3, prefix="b", created=day2)
    # second batch: repeats a stored id (a0), repeats an id of its own batch under another date (c0), rows
    # before the floor (d*), a partition that is entirely duplicates (b0..b2 again)
    second = (
        make_rows(2, prefix="c", created=day1)
        + [make_row(created=day1, message_id="a0", content_text="again")]
        + [make_row(created=day2, message_id="c0", content_text="same id, other day")]
        + make_rows(2, prefix="d", created=day3)
        + make_rows(3, prefix="b", created=day2)
        + make_rows(2, prefix="e", created="2026-05-03T10:00:00Z", client_name="codex")
    )
    third = make_rows(2, prefix="f", created=day1)  # a partition with stored ids, none of them repeated
    return [first, second, third]


@pytest.mark.parametrize("cut", [None, "2026-04-15", "2026-05-01"])  # (the last: rows dated on the cut stay)
def test_encoded_batches_commit_like_their_rows(tmp_path: Path, cut: str | None, monkeypatch) -> None:
    from hypaware_tui.core import storage as storage_mod

    decoded: list[int] = []
    real_decode = storage_mod.decode_part
    monkeypatch.setattr(storage_mod, "decode_part", lambda data: decoded.append(1) or real_decode(data))
    results = {}
    for mode in ("rows", "encoded"):
        layout = Layout(tmp_path / mode)
        storage = Storage(layout, events=EventLog(layout, "01TESTRUN", enabled=True))
        try:
            res = []
            for batch in _batches():
                payload = batch if mode == "rows" else encode_batch(batch, cut)
                r = storage.commit(payload, [], cut_date=cut, provider="claude")
                res.append((r.rows_written, r.duplicates_skipped, r.files_written, r.partitions,
                            r.rows_before_floor))
        finally:
            storage.close()
        results[mode] = (res, _stored(layout), _events(layout))
    (res_a, files_a, ev_a), (res_b, files_b, ev_b) = results["rows"], results["encoded"]
    assert res_a == res_b
    assert res_a[1][1] == 5  # a0, c0, b0..b2 are duplicates in the second batch
    assert res_a[1][4] == (0 if cut is None else 2) and res_a[2][:3] == (2, 0, 1)
    assert len(decoded) == 2  # the two partitions of the second batch holding stored ids; not the third batch
    assert len(files_a) == len(files_b) and all(x.equals(y) for x, y in zip(files_a, files_b, strict=True))
    assert ev_a == ev_b


def test_an_encoded_batch_needs_its_cut_date(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "hyp")
    with Storage(layout) as storage, pytest.raises(ValueError):
        storage.commit(encode_batch(make_rows(2), None), [], cut_date="2026-01-01")
    assert not layout.dataset_root.exists()


def test_encoding_rejects_what_the_commit_rejects() -> None:
    with pytest.raises(SchemaError):
        encode_batch([make_row(session_id=None)])
    with pytest.raises(SchemaError):
        encode_batch([make_row(date="2020-01-01")])


# --------------------------------------------------------------------------------------------- the parallel runner


def _times(start: str, n: int) -> list[str]:
    from datetime import datetime, timedelta

    t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    return [(t0 + timedelta(seconds=60 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z") for i in range(n)]


def test_parallel_dry_run_and_duplicates_match_the_sequential_run(tmp_path: Path, monkeypatch) -> None:
    """Workers encode units ahead; the committer then dedupes them against what is stored (a rerun after the
    checkpoints were lost) and a dry run counts them: every figure as in the sequential run."""
    from backfill_fakes import fakes, write_session

    from hypaware_tui.core import runner as runner_mod
    from hypaware_tui.core.runner import run_backfill
    from hypaware_tui.importers.base import Window

    root = tmp_path / "home" / "claude"
    for i in range(6):
        write_session(str(root / f"s{i}.jsonl"), f"s{i}", _times(f"2026-05-0{i % 3 + 1}T10:00:00Z", 40),
                      noise=1, malformed=1)
    write_session(str(root / "s7dup.jsonl"), "s1", _times("2026-05-02T10:00:00Z", 40), prefix="s1-m")
    monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
    units: list[int] = []
    real_unit = runner_mod._Committer.commit_unit
    monkeypatch.setattr(runner_mod._Committer, "commit_unit", lambda self, u: units.append(u.rows) or real_unit(self, u))
    env = {"HOME": str(tmp_path / "home"), "FAKE_CLAUDE_ROOT": str(root), "FAKE_CODEX_ROOT": str(tmp_path / "x")}

    def run(layout: Layout, workers: int, **kw):
        res = run_backfill(layout, ["claude"], window=Window(), write_checkpoints=True, env=env,
                           importers=fakes(), retention_days=0, workers=workers, batch_bytes=2048, **kw)
        p = res.providers[0]
        return (p.status, p.rows_written, p.duplicates_skipped, p.files_scanned, p.sessions_seen,
                p.lines_skipped, p.errors, p.bytes_read)

    seq, par = Layout(tmp_path / "seq"), Layout(tmp_path / "par")
    assert run(seq, 1, dry_run=True) == run(par, 2, dry_run=True)
    assert not par.home.exists()
    first = run(seq, 1, dry_run=False)
    assert first == run(par, 2, dry_run=False) and first[2] > 0  # s7dup repeats ids of s1: first wins
    for layout in (seq, par):
        layout.ingest_db.unlink()
    again = run(seq, 1, dry_run=False)
    assert again == run(par, 2, dry_run=False) and again[1] == 0 and again[2] == first[1] + first[2]
    a = pl.concat([pl.read_parquet(f) for f in sorted(seq.dataset_root.glob("**/*.parquet"))]).sort("part_id")
    b = pl.concat([pl.read_parquet(f) for f in sorted(par.dataset_root.glob("**/*.parquet"))]).sort("part_id")
    assert a.equals(b)
    assert len(units) >= 8 and sum(units) == 3 * (first[1] + first[2])  # every row came through worker units


# --------------------------------------------------------------------------------------------- killed parent

LAUNCHER = """\
import sys
from hypaware_tui.core import runner
runner.PARALLEL_MIN_TOTAL = 0  # the small test corpus goes to the parse workers too
if __name__ == "__main__":  # (workers are spawned: they import this module, and must not run the command)
    from hypaware_tui.cli import main
    sys.argv[0] = "hyp"
    main()
"""


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_parse_workers_exit_when_the_committer_is_killed(tmp_path: Path) -> None:
    """SIGKILL of `hyp backfill` while its parse workers run: they exit by themselves (they would otherwise
    wait on their task queue forever), and a rerun completes the dataset."""
    import signal
    import subprocess
    import sys
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from gen_corpus import generate

    generate(str(tmp_path / "corpus"), 12, seed=5)
    home = tmp_path / "corpus" / "home"
    launcher = tmp_path / "hyp_launcher.py"
    launcher.write_text(LAUNCHER)

    def env(hyp_home: Path, workers: str) -> dict[str, str]:
        hyp_home.mkdir(mode=0o700, parents=True, exist_ok=True)
        (hyp_home / "hypaware-config.json").write_text(json.dumps(
            {"version": 1, "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
             "retention_days": 0, "capture": {"enabled": False}}))
        e = dict(os.environ, HOME=str(home), HYP_HOME=str(hyp_home), CLAUDE_CONFIG_DIR=str(home / ".claude"),
                 CODEX_HOME=str(home / ".codex"), NO_COLOR="1", HYP_WORKERS=workers)
        e.pop("HYP_FAULT", None)
        return e

    cmd = [sys.executable, str(launcher), "backfill", "--json"]
    hyp = tmp_path / "hyp"
    proc = subprocess.Popen(cmd, env=env(hyp, "2"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while not workers and time.monotonic() < deadline and proc.poll() is None:
        workers = [c for c in _children(proc.pid)
                   if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        time.sleep(0.01)
    assert workers, "no parse worker started"  # (started on demand: one per pending task, up to 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
        time.sleep(0.05)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}")]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    assert not alive, "parse workers outlived the killed committer"

    again = subprocess.run(cmd, env=env(hyp, "2"), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    ref = tmp_path / "ref"
    one = subprocess.run(cmd, env=env(ref, "1"), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr

    def rows(h: Path) -> pl.DataFrame:
        files = sorted(h.glob("cache/**/*.parquet"))
        return pl.concat([pl.read_parquet(f) for f in files]).unique("part_id", keep="first").sort("part_id")

    assert rows(hyp).equals(rows(ref))


@pytest.mark.parametrize("mode", ["rows", "encoded"])
def test_a_failed_commit_reports_the_sessions_of_every_partition_done(
    tmp_path: Path, mode: str, monkeypatch
) -> None:
    """A commit that fails at the checkpoint database after its Parquet step: `partial.session_ids` holds the
    sessions of every partition done, written or all duplicates (an in-batch duplicate under another date
    too), so that `sessions_seen` counts them (cli.md §5.3). They were read back from the files written only:
    a commit of duplicates only reported none (`sessions_seen 0`, `duplicates_skipped 6000`)."""
    from hypaware_tui.core import storage as storage_mod
    from hypaware_tui.core.checkpoints import StateDBError
    from hypaware_tui.core.storage import StorageError

    day1, day2, day3 = "2026-05-01T10:00:00Z", "2026-05-02T10:00:00Z", "2026-05-03T10:00:00Z"
    layout = Layout(tmp_path / "hyp")
    with Storage(layout) as st:
        st.commit(make_rows(3, prefix="a", created=day1, session_id="s-a"), [])
        batch = (
            make_rows(3, prefix="a", created=day1, session_id="s-a")  # all stored: a partition of duplicates
            + make_rows(2, prefix="b", created=day2, session_id="s-b")  # written
            + [make_row(created=day3, message_id="b0", session_id="s-c")]  # b0 again under another date
        )
        real_fault = storage_mod._fault

        def fault(point: str) -> None:
            if point == "before_checkpoints":
                raise StateDBError("cannot write the state database: database or disk is full.")
            real_fault(point)

        monkeypatch.setattr(storage_mod, "_fault", fault)
        with pytest.raises(StorageError) as info:
            st.commit(encode_batch(batch) if mode == "encoded" else batch, [])
    partial = info.value.partial
    assert partial is not None
    assert (partial.rows_written, partial.duplicates_skipped) == (2, 4)
    assert partial.session_ids == {"s-a", "s-b", "s-c"}
