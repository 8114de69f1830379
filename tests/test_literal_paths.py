"""A HYP_HOME whose path holds glob or Hive characters (`[old]`, `*`, `?`, `{a,b}`, `k=v`) is read as the path it
is, by every command; and a part file hyp cannot open is not called damaged.

Polars read the dataset root as a glob: under `/x/g [old]/hyp` every read matched nothing (`hyp query sql` exit
2 "expanded paths were empty", `hyp status` 0 rows and every part file "damaged or not written by hyp", with
the advice to delete ingest.sqlite), and under `/x/hyp*` it read a sibling `/x/hyp-old` too. It also read a
`k=v` folder above the dataset as a Hive partition: under `/x/k=v/hyp` every read failed ("path contains column
not present in the given Hive schema")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from helpers import make_rows
from test_daemon_support import Home, session_text

from hypaware_tui.core.daemon.loop import DaemonLoop
from hypaware_tui.core.ids import uuid7_hex
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.schema import AI_GATEWAY_MESSAGES_SCHEMA
from hypaware_tui.core.storage import encode_part

S1 = "11111111-1111-4111-8111-111111111111"
S2 = "22222222-2222-4222-8222-222222222222"
S3 = "33333333-3333-4333-8333-333333333333"
HYP = [sys.executable, "-m", "hypaware_tui"]

# (the HYP_HOME's folder, a sibling its path matches as a glob: rows there must never be read)
WEIRD = [
    ("g [old] a*b?{c,d}", "g o aXXbY{c,d}"),
    ("k=v [old]", "k=v o"),
    ("hyp*?", "hyp-old"),  # (matched itself as well: the sibling's rows were counted too)
    ("x=1", None),  # (no glob character: only the Hive reading of the path failed)
]


def _part_file(layout: Layout, day: datetime, n: int, prefix: str) -> Path:
    """A valid part file of `n` Claude rows dated `day`, written as hyp writes one."""
    rows = make_rows(n, prefix=prefix, created=day, client_name="claude")
    pdir = layout.partition_dir("claude", day.strftime("%Y-%m-%d"))
    pdir.mkdir(parents=True, exist_ok=True)
    path = pdir / f"part-{uuid7_hex()}.parquet"
    path.write_bytes(encode_part(pl.DataFrame(rows, schema=AI_GATEWAY_MESSAGES_SCHEMA)))
    return path


def _stored(layout: Layout) -> int:
    """Distinct part_ids on disk, read through open handles (never through a path Polars could interpret)."""
    ids: set[str] = set()
    for dirpath, _dirs, names in os.walk(layout.dataset_root):
        for name in names:
            if name.endswith(".parquet"):
                with open(os.path.join(dirpath, name), "rb") as fh:
                    ids.update(pl.read_parquet(fh, columns=["part_id"])["part_id"].to_list())
    return len(ids)


def _hyp(home: Home, *args: str) -> tuple[int, dict]:
    p = subprocess.run([*HYP, *args], env=home.env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)  # fmt: skip
    assert p.stdout.strip(), (args, p.stderr)
    return p.returncode, json.loads(p.stdout)


def _count(home: Home) -> int:
    code, doc = _hyp(home, "query", "sql", "select count(*) as n from ai_gateway_messages", "--format", "json")
    assert code == 0, doc
    return doc[0]["n"]


@pytest.mark.parametrize(("folder", "decoy"), WEIRD)
def test_every_command_reads_a_hyp_home_with_glob_and_hive_characters(tmp_path: Path, folder: str,
                                                                      decoy: str | None) -> None:
    home = Home(tmp_path)  # (the Claude folder stays plain: CLAUDE_CONFIG_DIR is a comma-separated list)
    hyp = tmp_path / folder / "hyp"
    home.hyp, home.layout, home.env["HYP_HOME"] = hyp, Layout(hyp), str(hyp)
    home.write_config(retention_days=30)
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    if decoy:
        _part_file(Layout(tmp_path / decoy / "hyp"), day, 4, "decoy")  # matched by the root read as a glob

    home.session(S1).write_text(session_text(S1, 6, day))
    code, doc = _hyp(home, "backfill", "claude", "--json")
    (claude,) = doc["providers"]
    assert (code, claude["status"]) == (0, "ok") and claude["rows_written"] > 0
    # a second commit into the same partition reads the first file's part_ids
    home.session(S2).write_text(session_text(S2, 4, day + timedelta(minutes=30)))
    code, doc = _hyp(home, "backfill", "claude", "--json")
    (claude,) = doc["providers"]
    assert (code, claude["status"], claude["error"]) == (0, "ok", None) and claude["rows_written"] > 0
    total = _stored(home.layout)
    assert len(list(home.layout.partition_dir("claude", day.strftime("%Y-%m-%d")).iterdir())) == 2

    assert _count(home) == total
    code, doc = _hyp(home, "query", "overview", "--json")
    assert (code, doc["rows"], doc["sessions"]) == (0, total, 2)
    code, doc = _hyp(home, "status", "--json")
    ds = doc["dataset"]
    assert (ds["total_rows"], ds["files"], ds["error"]) == (total, 2, None)
    code, doc = _hyp(home, "cache", "status", "--json")
    assert (code, doc["total_rows"], doc["unreadable_files"]) == (0, total, [])

    code, doc = _hyp(home, "cache", "compact", "--json")
    assert (code, doc["partitions_compacted"], doc["files_after"], doc["error"]) == (0, 1, 1, None)
    assert _count(home) == total

    _part_file(home.layout, day - timedelta(days=200), 3, "old")  # older than the 30 days kept
    code, doc = _hyp(home, "cache", "prune", "--json")
    assert (code, doc["partitions_removed"], doc["rows_removed"], doc["error"]) == (0, 1, 3, None)
    assert _count(home) == total

    home.session(S3).write_text(session_text(S3, 2, datetime.now(UTC) - timedelta(minutes=5)))
    assert DaemonLoop(home.layout, env=home.env).run(once=True) == 0
    assert _stored(home.layout) > total
    assert _count(home) == _stored(home.layout)


# --- a part file that cannot be opened is not called damaged -------------------------------------------------


def _unprivileged(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    from test_daemon_process import _drop_dac_caps

    kwargs = {"preexec_fn": _drop_dac_caps} if os.geteuid() == 0 else {}
    return subprocess.run([*HYP, *args], env=home.env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]  # fmt: skip


def test_a_part_file_hyp_cannot_open_gets_its_reason_not_the_advice_to_delete_the_checkpoints(
    tmp_path: Path,
) -> None:
    """Every read that failed on a part file called it "damaged or not written by hyp" and advised moving it to
    .trash and deleting ingest.sqlite: for a file that is fine but could not be opened (its permissions), that
    advice loses its rows or imports everything again for nothing. It is said only of a file that was opened and
    is not a hyp part file."""
    home = Home(tmp_path)
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    home.session(S1).write_text(session_text(S1, 6, day))
    assert _hyp(home, "backfill", "claude", "--json")[0] == 0
    (part,) = home.layout.partition_dir("claude", day.strftime("%Y-%m-%d")).iterdir()
    reason = f"{part} cannot be opened (Permission denied)"
    advice = "Check its permissions (hyp makes its files readable and writable by you)."
    part.chmod(0)
    try:
        status = _unprivileged(home, "status")
        cache = _unprivileged(home, "cache", "status", "--json")
        cache_text = _unprivileged(home, "cache", "status")
        query = _unprivileged(home, "query", "sql", "select count(*) from ai_gateway_messages")
        home.session(S2).write_text(session_text(S2, 4, day + timedelta(minutes=30)))
        backfill = _unprivileged(home, "backfill", "claude", "--json")
    finally:
        part.chmod(0o600)
    for p in (status, cache, cache_text, query, backfill):
        assert "ingest.sqlite" not in p.stdout + p.stderr and "damaged" not in p.stdout + p.stderr
    assert status.returncode == 1
    assert f"1 dataset file could not be read: {reason}. {advice}" in " ".join(status.stdout.split())
    doc = json.loads(cache.stdout)
    assert cache.returncode == 1 and doc["unreadable_files"] == []
    assert doc["unopened_files"] == [{"path": str(part), "error": "cannot be opened (Permission denied)"}]
    assert cache_text.returncode == 1
    assert cache_text.stderr == f"hyp cache status: 1 dataset file could not be read: {reason}. {advice}\n"
    assert (query.returncode, query.stdout) == (1, "")
    assert query.stderr == f"hyp query sql: cannot read the dataset: 1 dataset file could not be read: {reason}. " \
        f"{advice}\n"
    (claude,) = json.loads(backfill.stdout)["providers"]
    assert (backfill.returncode, claude["status"]) == (1, "failed")
    assert claude["error"] == f"dataset file {reason}; nothing was written. {advice}"


def test_a_read_failing_on_a_valid_part_file_does_not_call_it_damaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reader failing on the path of a good file (as Polars did on a path with `[…]`) is no damage."""
    from hypaware_tui.cli import main
    from hypaware_tui.core import storage

    layout = Layout(tmp_path / "hyp")
    day = datetime(2026, 5, 1, 12, tzinfo=UTC)
    part = _part_file(layout, day, 3, "m")

    def reader_fails(path: Path) -> int:
        raise pl.exceptions.ComputeError("failed to retrieve first file schema (parquet): expanded paths were "
                                         "empty (glob: true)")  # fmt: skip

    monkeypatch.setattr(storage, "row_counts", lambda paths: None)
    monkeypatch.setattr(storage, "file_row_count", reader_fails)
    monkeypatch.setenv("HYP_HOME", str(layout.home))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NO_COLOR", "1")
    with pytest.raises(SystemExit):
        main(["status", "--json"])
    error = json.loads(capsys.readouterr().out)["dataset"]["error"]
    assert error == (
        f"1 dataset file could not be read: {part} could not be read (failed to retrieve first file schema "
        "(parquet): expanded paths were empty (glob: true)), although it opens as a valid part file. hyp did not "
        "change it: run the command again."
    )


def test_a_part_file_with_a_good_footer_and_damaged_data_is_called_damaged(tmp_path: Path) -> None:
    """A part file whose footer is intact but whose data pages are damaged (bytes changed in the middle) was
    reported as "could not be read …, although it opens as a valid part file … run the command again": every
    commit into its partition then failed for good, and so did every compaction. Read whole, it fails again:
    it gets the advice to set it aside (`damaged_file_advice`), as before."""
    from hypaware_tui.core import storage

    layout = Layout(tmp_path / "hyp")
    day = datetime(2026, 5, 1, 12, tzinfo=UTC)
    part = _part_file(layout, day, 400, "m")
    data = bytearray(part.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    for i in range(4, len(data) - 8 - footer, 7):  # (every page, every 7th byte; the footer as it was)
        data[i] ^= 0x5A
    part.write_bytes(bytes(data))
    assert pl.read_parquet_schema(part) is not None  # the footer still reads
    with pytest.raises(Exception) as info:
        pl.read_parquet(part, glob=False)
    problem = storage.part_file_problem(part, info.value)
    assert problem is not None and problem.damaged, problem
    with storage.Storage(layout) as st, pytest.raises(storage.StorageError) as failed:
        st.commit(make_rows(2, prefix="n", created=day, client_name="claude"), [])
    assert "It is damaged or was not written by hyp" in str(failed.value), failed.value


@pytest.mark.parametrize("kind", ["link loop", "folder"])
def test_a_part_file_that_is_a_link_loop_or_a_folder_is_reported_not_fatal(tmp_path: Path, kind: str) -> None:
    """A `part-….parquet` that is a symbolic link to itself ended `hyp cache status` with "unexpected error:
    OSError: [Errno 40] Too many levels of symbolic links"; a folder of that name was counted as a file. Each is
    reported with its reason and what to do, and the rest of the report stands."""
    layout = Layout(tmp_path / "hyp")
    day = datetime(2026, 5, 1, 12, tzinfo=UTC)
    _part_file(layout, day, 3, "m")
    odd = layout.partition_dir("claude", "2026-05-01") / f"part-{uuid7_hex()}.parquet"
    if kind == "link loop":
        odd.symlink_to(odd)
    else:
        odd.mkdir()
    env = dict(os.environ, HYP_HOME=str(layout.home), HOME=str(tmp_path / "home"), NO_COLOR="1")
    p = subprocess.run([*HYP, "cache", "status", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert "unexpected error" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    assert doc["total_rows"] == 3 and doc["files"] == 1
    (problem,) = doc["unopened_files"]
    assert problem["path"] == str(odd)
    assert ("symbolic link" in problem["error"]) if kind == "link loop" else ("directory" in problem["error"])
    p = subprocess.run([*HYP, "cache", "status"], env=env, capture_output=True, text=True, timeout=60)
    advice = "remove the link" if kind == "link loop" else "It is a folder, not a file"
    assert advice in p.stderr and "unexpected error" not in p.stderr, p.stderr
