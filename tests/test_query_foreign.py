"""Foreign files in the dataset (an audit planted them): `hyp query`, `hyp status` and `hyp cache prune` agree on
what the dataset is (the part files of `source=<client>/date=<YYYY-MM-DD>` folders), tolerate what a newer hyp
may write, and name a file they cannot read with what to do (exit 1, not a usage error's 2)."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
import test_query_cli
from test_query_cli import M, call

from hypaware_tui.core.paths import Layout
from hypaware_tui.core.storage import Storage

COUNT = f"select count(*) as n from {M}"
home = test_query_cli.home
filled = test_query_cli.filled


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "3000")  # (status wraps its lines, long tmp paths included)


def _first_partition(home: Path) -> tuple[Path, pl.DataFrame]:
    """A partition of the filled dataset, and five of its rows as new rows (new `part_id`s)."""
    part = sorted(Layout(home).dataset_root.glob("source=claude/date=*/*.parquet"))[0]
    rows = pl.read_parquet(part)
    new = pl.concat([rows] * 5).head(5).with_row_index("_i")
    new = new.with_columns(pl.col("part_id") + "-new-" + pl.col("_i").cast(pl.String)).drop("_i")
    return part.parent, new


def _count(capsys: pytest.CaptureFixture[str]) -> int:
    code, out, err = call(capsys, "query", "sql", COUNT, "--format", "json")
    assert code == 0, err
    return json.loads(out)[0]["n"]


def _status(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, out, err = call(capsys, "status")
    return code, out + err


def test_a_newer_hyps_extra_column_is_ignored_and_status_says_so(filled: Path, capsys) -> None:
    before = _count(capsys)
    pdir, new = _first_partition(filled)
    planted = pdir / "part-ff000000000000000000000000000001.parquet"
    new.with_columns(pl.lit("x").alias("future_col")).write_parquet(planted)

    assert _count(capsys) == before + 5
    code, out, err = call(capsys, "query", "sql", f"select count(model) as n from {M}", "--format", "json")
    assert code == 0, err
    assert call(capsys, "query", "overview", "--days", "0")[0] == 0
    code, text = _status(capsys)
    assert code == 0
    assert f"warning: dataset file {planted} was not written by this version of hyp: it has columns this hyp " \
           "does not know (from a newer hyp?), which queries ignore: future_col. Queries read it." in " ".join(
               text.split())  # fmt: skip


def test_a_missing_nullable_column_reads_as_null(filled: Path, capsys) -> None:
    pdir, new = _first_partition(filled)
    code, out, _ = call(capsys, "query", "sql", f"select count(*) as n, count(model) as m from {M}",
                        "--format", "json")  # fmt: skip
    rows, models = json.loads(out)[0]["n"], json.loads(out)[0]["m"]
    planted = pdir / "part-ff000000000000000000000000000002.parquet"
    new.drop("model").write_parquet(planted)

    code, out, err = call(capsys, "query", "sql", f"select count(*) as n, count(model) as m from {M}",
                          "--format", "json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)[0] == {"n": rows + 5, "m": models}  # the five new rows: model null
    code, out, err = call(capsys, "query", "overview", "--days", "0", "--json")
    assert code == 0, err
    code, text = _status(capsys)
    assert code == 0
    assert f"{planted} was not written by this version of hyp: it has no column model, which queries read as " \
           "null." in " ".join(text.split())  # fmt: skip


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda df: df.with_columns(pl.col("input_tokens").cast(pl.String)), "its column input_tokens is String, not Int64"),
        (lambda df: df.drop("session_id"), "it has no column session_id, which every row must have"),
    ],
    ids=["retyped", "required-missing"],
)
def test_a_file_with_wrong_columns_is_named_with_exit_1(filled: Path, capsys, change, said) -> None:
    pdir, new = _first_partition(filled)
    planted = pdir / "part-ff000000000000000000000000000003.parquet"
    change(new).write_parquet(planted)
    expected = f"dataset file {planted} was not written by this version of hyp: {said}."
    trash = Layout(filled).trash

    for args in (
        ("query", "sql", f"select sum(input_tokens) as t, count(session_id) as s from {M}"),
        ("query", "overview", "--days", "0"),
    ):
        code, out, err = call(capsys, *args)
        text = " ".join(err.split())
        assert code == 1, err
        assert f"hyp query {args[1]}: cannot read the dataset: {expected} Move it into {trash}/" in text
        assert out == ""
    code, text = _status(capsys)
    assert code == 1
    assert f"error: {expected} Queries fail on it. Move it into {trash}/" in " ".join(text.split())


def test_files_outside_the_partitions_are_not_read_and_status_names_them(filled: Path, capsys) -> None:
    before = _count(capsys)
    root = Layout(filled).dataset_root
    pdir, new = _first_partition(filled)
    new.write_parquet(root / "stray.parquet")
    for folder in ("source=claude/date=abc", "source=claude/date=2026-1-2", "source=claude/date=2026-13-45",
                   "source=Claude Code/date=2026-05-01"):  # fmt: skip
        (root / folder).mkdir(parents=True)
        new.write_parquet(root / folder / "part-ff000000000000000000000000000004.parquet")

    assert _count(capsys) == before
    code, out, err = call(capsys, "query", "sql", f"select distinct date from {M} order by date", "--format", "csv")
    assert code == 0, err
    assert "abc" not in out and "2026-13-45" not in out and "2026-1-2\n" not in out
    code, out, err = call(capsys, "query", "overview", "--days", "0", "--json")
    assert code == 0, err
    assert json.loads(out)["rows"] == before
    code, text = _status(capsys)
    text = " ".join(text.split())
    assert code == 0
    assert f"warning: 5 paths under {root} are not part of the dataset (partition folders are " \
           "source=<client>/date=<YYYY-MM-DD>): source=Claude Code, source=claude/date=2026-1-2, " \
           "source=claude/date=2026-13-45, source=claude/date=abc, stray.parquet. No query reads them" in text


def test_prune_never_removes_a_folder_whose_name_is_not_a_date(filled: Path) -> None:
    root = Layout(filled).dataset_root
    pdir, new = _first_partition(filled)
    bad = root / "source=claude" / "date=1999-13-45"
    bad.mkdir()
    new.write_parquet(bad / "part-ff000000000000000000000000000005.parquet")
    shutil.copy(next(pdir.glob("*.parquet")), pdir.parent / "date=2000-01-01.parquet")  # (a file, not a folder)
    with Storage(Layout(filled)) as st:
        result = st.prune(120, today=date.today())
    assert [p.name for p in result.partitions] == []
    assert (bad / "part-ff000000000000000000000000000005.parquet").exists()
