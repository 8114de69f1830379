"""core/query.py: relations, the read-only SQL gate, the overview and the schema listing.

Data is committed through the real storage engine (real Parquet files under a temp HYP_HOME)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from helpers import make_row

from hypaware_tui.core import query as q
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.schema import COLUMN_NAMES, canonical_json
from hypaware_tui.core.storage import Storage

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
HOME = "/home/me"


def attrs(**extra: object) -> str:
    bag: dict[str, object] = {"gateway": {"identity_source": "native"}}
    for key, value in extra.items():
        ns, name = key.split("__", 1)
        bag.setdefault(ns, {})[name] = value  # type: ignore[index]
    return canonical_json(bag)


def claude(mid: str, created: str, **kw: object) -> dict:
    base = dict(
        message_id=mid,
        role="assistant",
        model="claude-opus-4",
        cwd=f"{HOME}/src/app",
        session_id="s1",
        conversation_id="s1",
        attributes=attrs(),
        previous_message_id="[]",
    )
    base.update(kw)
    return make_row(created=created, **base)


def codex(mid: str, created: str, **kw: object) -> dict:
    base = dict(
        message_id=mid,
        client_name="codex",
        provider="openai",
        role="assistant",
        model="gpt-5",
        cwd="/work/other",
        session_id="cx1",
        conversation_id="cx1",
        attributes=attrs(codex__thread_source="cli"),
        record_format="codex-envelope",
    )
    base.update(kw)
    return make_row(created=created, **base)


def tokens(i: int | None, cr: int | None, cw: int | None, o: int | None) -> dict:
    return dict(input_tokens=i, cache_read_tokens=cr, cache_write_tokens=cw, output_tokens=o)


def fixture_rows() -> list[dict]:
    """Claude streamed split lines, an API-error line, side-chain replays, a real subagent response, Codex
    carriers and replays, a user prompt, tool calls, and rows on both sides of the period boundary."""
    t = "2026-05-09T09:00:0{}Z"
    rows = [
        claude("u1", "2026-05-09T08:59:00Z", role="user", model=None, content_text="fix the bug"),
        # Response A streamed as three lines: output grows 1 -> 7 -> 42; counted once with 42.
        claude("a1", t.format(1), part_type="reasoning", api_message_id="msg_A", request_id="req_A",
               **tokens(10, 100, 5, 1)),
        claude("a2", t.format(2), part_type="text", api_message_id="msg_A", request_id="req_A",
               **tokens(10, 100, 5, 7)),
        claude("a3", t.format(3), part_type="tool_call", tool_name="Bash", api_message_id="msg_A",
               request_id="req_A", finish_reason="tool_use", **tokens(10, 100, 5, 42)),
        # Response B, single line.
        claude("b1", t.format(5), part_type="tool_call", tool_name="Read", api_message_id="msg_B",
               request_id="req_B", **tokens(3, 200, 0, 20)),
        # Side question replaying response B with another request id: dropped from usage.
        claude("sb1", t.format(7), is_sidechain=True, api_message_id="msg_B", request_id="req_B2",
               part_type="tool_call", tool_name="Read", **tokens(3, 200, 0, 20)),
        # A real subagent response (its own api id): counted.
        claude("sa1", t.format(8), is_sidechain=True, agent_id="ag1", model="claude-haiku-4",
               api_message_id="msg_S", request_id="req_S", **tokens(50, None, None, 5)),
        # API-error line: all-zero usage stored, model null, excluded from usage.
        claude("e1", t.format(9), model=None, is_error=True, finish_reason="error", api_message_id="msg_E",
               request_id="req_E", attributes=attrs(claude__api_error=True), **tokens(0, 0, 0, 0)),
        # Late evening UTC = next local day in Europe/Paris (UTC+2).
        claude("late", "2026-05-09T22:30:00Z", session_id="s2", conversation_id="s2", part_type="tool_call",
               tool_name="Bash", api_message_id="msg_L", request_id="req_L", **tokens(1, 2, 3, 4)),
        # Just inside the 30-day period (local 2026-04-11 00:30) and just outside (local 2026-04-10 23:00).
        claude("in_edge", "2026-04-10T22:30:00Z", session_id="s3", conversation_id="s3",
               api_message_id="msg_IN", request_id="req_IN", **tokens(1, 0, 0, 1)),
        claude("out_edge", "2026-04-10T21:00:00Z", session_id="s4", conversation_id="s4",
               api_message_id="msg_OUT", request_id="req_OUT", **tokens(7000, 7000, 7000, 7000)),
        # Codex: every carrier is its own response; replayed rows never carry tokens.
        codex("c0", "2026-05-08T10:00:00Z", role="user", model=None, content_text="hi"),
        codex("c1", "2026-05-08T10:00:01Z", part_type="tool_call", tool_name="shell", **tokens(1000, 500, None, 300)),
        codex("c2", "2026-05-08T10:00:05Z", **tokens(200, 0, None, 50)),
        codex("c3", "2026-05-08T10:00:06Z", session_id="cx2", conversation_id="cx2", part_type="tool_call",
              tool_name="shell", attributes=attrs(codex__replayed_from_parent=True)),
    ]  # fmt: skip
    return rows


EXPECTED_MODELS = [
    # provider, model, input, cached (cache_read), output
    ("openai", "gpt-5", 1200, 500, 350),
    ("anthropic", "claude-opus-4", 10 + 3 + 1 + 1, 100 + 200 + 2 + 0, 42 + 20 + 4 + 1),
    ("anthropic", "claude-haiku-4", 50, 0, 5),
]


def commit(layout: Layout, rows: list[dict]) -> None:
    with Storage(layout) as st:
        st.commit(rows, [])


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "hyp")


@pytest.fixture
def filled(layout: Layout) -> Layout:
    rows = fixture_rows()
    # Two commits, so the relation spans several files per partition.
    commit(layout, rows[:6])
    commit(layout, rows[6:])
    return layout


# --- relations and SQL ---------------------------------------------------------------------------------


def test_missing_dataset_is_empty_relations_with_full_schema(layout: Layout) -> None:
    df = q.run_sql(layout, "select * from ai_gateway_messages")
    assert df.height == 0
    assert df.columns == [*COLUMN_NAMES, "source"]
    usage = q.run_sql(layout, "select * from ai_gateway_usage")
    assert usage.height == 0 and "usage_key" in usage.columns
    assert q.run_sql(layout, "select count(*) as n from ai_gateway_messages").item() == 0
    assert not layout.home.exists()


def test_sql_counts_and_source(filled: Layout) -> None:
    df = q.run_sql(
        filled, "select source, count(*) as n from ai_gateway_messages group by source order by source"
    )
    assert df.rows() == [("claude", 11), ("codex", 4)]
    # Trailing semicolon and a semicolon inside a literal are fine.
    assert (
        q.run_sql(filled, "select count(*) as n from ai_gateway_messages where content_text <> ';';").item()
        == 15
    )


def test_usage_view_counts_streamed_split_once(filled: Layout) -> None:
    df = q.run_sql(
        filled,
        "select usage_key, output_tokens, rows_collapsed from ai_gateway_usage where client_name = 'claude' "
        "order by usage_key",
    )
    got = {k: (o, n) for k, o, n in df.rows()}
    assert got["msg_A:req_A"] == (42, 3)
    assert "msg_B:req_B2" not in got  # the side-chain replay
    assert "msg_E:req_E" not in got  # the API error


@pytest.mark.parametrize(
    "statement",
    [
        "delete from ai_gateway_messages",
        "drop table ai_gateway_messages",
        "create table x as select 1",
        "select 1; select 2",
        "select 1;; select 2",
        "with x as (select 1) delete from ai_gateway_messages",
        "select * into t2 from ai_gateway_messages",
        "with x as (delete from ai_gateway_messages) select 1",
        "select 1 as x from ai_gateway_messages where merge = 1",
        "insert into ai_gateway_messages values (1)",
        "update ai_gateway_messages set model = 'x'",
        "truncate ai_gateway_messages",
        "show tables",
        "explain select 1",
        "",
        "  ;  ",
        "-- just a comment",
    ],
)
def test_only_a_single_select(layout: Layout, statement: str) -> None:
    with pytest.raises(q.QueryError, match="only a single SELECT statement is allowed"):
        q.run_sql(layout, statement)


@pytest.mark.parametrize(
    "statement",
    [
        "select * from read_csv('{f}')",
        "select * from READ_CSV ('{f}')",
        'select * from "read_csv"(\'{f}\')',
        "select * from `read_csv`('{f}')",
        "select * from read_csv/* c */('{f}')",
        "select a from (select * from read_parquet('{f}')) t",
        "select * from ai_gateway_messages m join read_json('{f}') j on true",
        "select * from read_ipc('{f}')",
        "select * from read_ndjson('http://127.0.0.1:9/x')",
    ],
)
def test_table_functions_are_refused(layout: Layout, tmp_path: Path, statement: str) -> None:
    """Polars' SQL engine reads any file or URL through its table functions: `read_csv('/etc/…')` returned the
    file's rows, and a URL opened a connection (cli.md §1: no command opens one; §7.1: the two relations)."""
    f = tmp_path / "x.csv"
    f.write_text("a\n1\n")
    with pytest.raises(q.QueryError, match=r"read_\w+\(…\) is not allowed: hyp query sql reads only"):
        q.run_sql(layout, statement.format(f=f))


@pytest.mark.parametrize(
    "statement",
    [
        "select 1 as x",
        "SELECT 1 AS x;",
        "select 1 as x ;  -- trailing comment",
        "(select 1 as x)",
        "with t as (select 1 as x) select x from t",
        "select ';' as x",
        "select 'a''; drop table t; --' as x",
        'select 1 as "delete;"',
        "select 1 as x /* ; delete */",
        # the words of other statements as a function, an alias or a qualified name (they were refused)
        "select truncate(2.7) as x",
        "select 1 as copy",
        "with t as (select 1 as x) select t.x as x from t",
        "with t as (select 1 as update) select t.update as x from t",
        "select 1 as current_timestamp",  # (an alias, not the function now() stands for)
        "select 'read_csv(x)' as read_csv",  # the name in a string, or as an alias, reads nothing
    ],
)
def test_select_variants_accepted(layout: Layout, statement: str) -> None:
    df = q.run_sql(layout, statement)
    assert df.height == 1


def test_engine_errors_are_query_errors_with_the_engine_message(filled: Layout) -> None:
    with pytest.raises(q.QueryError) as info:
        q.run_sql(filled, "select no_such_column from ai_gateway_messages")
    assert "no_such_column" in str(info.value)
    assert "Resolved plan" not in str(info.value)
    assert str(info.value).endswith("`hyp query schema` describes them")
    with pytest.raises(q.QueryError, match="nope") as info:
        q.run_sql(filled, "select * from nope")
    # A misspelt table names the two there are.
    assert str(info.value).endswith("the relations are ai_gateway_messages and ai_gateway_usage")
    with pytest.raises(q.QueryError):
        q.run_sql(filled, "selec 1")


def _vanished_scan(layout: Layout, **_: bool) -> pl.LazyFrame:
    """A scan whose file list was taken before one of its files was removed (compaction, retention)."""
    files = sorted(str(p) for p in layout.dataset_root.rglob("*.parquet"))
    gone = files[0].replace("part-", "part-0")  # listed, but no longer there
    return pl.scan_parquet([gone, *files[1:]], hive_partitioning=True).select(list(q.MESSAGES_SCHEMA))


def test_query_retries_once_when_a_file_vanishes(filled: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    real_scan = q.scan_messages
    calls: list[int] = []

    def flaky(layout: Layout, **kw: bool) -> pl.LazyFrame:
        calls.append(1)
        return _vanished_scan(layout) if len(calls) == 1 else real_scan(layout, **kw)

    monkeypatch.setattr(q, "scan_messages", flaky)
    assert q.run_sql(filled, "select count(*) as n from ai_gateway_messages").item() == 15
    assert len(calls) == 2
    calls.clear()
    ov = q.overview(filled, days=30, now=NOW, tz="Europe/Paris", home=HOME)
    assert ov.rows == 14 and len(calls) == 2


def test_a_file_that_keeps_vanishing_gives_a_dataset_error_within_2_s(filled: Layout,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(q, "_sleep", pauses.append, raising=False)
    monkeypatch.setattr(q, "scan_messages", _vanished_scan)
    with pytest.raises(q.DatasetReadError, match="Run the query again"):
        q.run_sql(filled, "select count(*) from ai_gateway_messages")
    assert len(pauses) >= 3 and sum(pauses) <= 2.0


def test_a_query_during_a_long_compaction_waits_for_it(filled: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compaction replaces a partition's files one partition after another: each reading found another file
    gone, and one retry (storage.md §9) lost to it (2 of 25 queries during a long `hyp cache compact` failed with
    "Run the query again"). The query is read again, pausing a little longer each time, within about 2 s."""
    real_scan = q.scan_messages
    pauses: list[float] = []
    monkeypatch.setattr(q, "_sleep", pauses.append, raising=False)
    calls: list[int] = []

    def compacting(layout: Layout, **kw: bool) -> pl.LazyFrame:
        """The file list, then a compaction step that replaces one listed file by a new one (the same rows)."""
        calls.append(1)
        lf = real_scan(layout, **kw)
        if len(calls) <= 4:
            files = sorted(layout.dataset_root.rglob("part-*.parquet"))
            files[0].rename(files[0].with_name(f"part-z{len(calls)}.parquet"))
        return lf

    monkeypatch.setattr(q, "scan_messages", compacting)
    assert q.run_sql(filled, "select count(*) as n from ai_gateway_messages").item() == 15
    assert len(calls) == 5 and pauses == [0.05, 0.1, 0.2]


def test_to_records_nested_json_and_iso_timestamps(filled: Layout) -> None:
    df = q.run_sql(
        filled,
        "select message_created_at, previous_message_id, attributes, tool_args, is_error "
        "from ai_gateway_messages where message_id = 'e1'",
    )
    (rec,) = q.to_records(df)
    assert rec["message_created_at"] == "2026-05-09T09:00:09Z"
    assert rec["previous_message_id"] == []
    assert rec["attributes"]["claude"]["api_error"] is True
    assert rec["tool_args"] is None
    assert rec["is_error"] is True
    json.dumps(rec)  # JSON-ready
    assert q.cell_text(df["attributes"][0]).startswith("{")


def test_computed_values_as_json_and_as_text(layout: Layout) -> None:
    """NaN and infinity are no JSON (null), a decimal without a scale is an integer, and a boolean cell (CSV,
    tables) is `true` / `false` as in the JSON."""
    df = q.run_sql(
        layout,
        "select cast('nan' as double) as nan, cast('inf' as double) as inf, cast(5 as decimal(10,0)) as five, "
        "1.50 as dec, true as t, false as f",
    )
    (rec,) = q.to_records(df)
    assert json.dumps(rec) == '{"nan": null, "inf": null, "five": 5, "dec": 1.5, "t": true, "f": false}'
    assert [q.cell_text(v) for v in df.row(0)] == ["nan", "inf", "5", "1.5", "true", "false"]  # (not a null)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"v":18446744073709551616}', {"v": 2**64}),  # orjson: 1.8446744073709552e+19
        ('[-9223372036854775809,1.5,"1234567890123456789012"]', [-(2**63) - 1, 1.5, "1234567890123456789012"]),
        ("[-9223372036854775809]", [-(2**63) - 1]),  # 19 digits, below the 64-bit range: orjson gives a float
        ('{"v":1' + "0" * 400 + "}", {"v": 10**400}),  # orjson: "number is infinity"
        ('{"v":NaN}', '{"v":NaN}'),  # what orjson refuses for good stays text, as before
        ("[1e400]", "[1e400]"),
        ('["\\ud83d"]', '["\\ud83d"]'),
        ("not json", "not json"),
    ],
)
def test_json_text_is_read_with_exact_integers(text: str, value: object) -> None:
    got = q._parse_json_text(text)
    assert got == value and json.dumps(got) == json.dumps(value)  # (2**64 == float(2**64): the text tells)


# --- overview --------------------------------------------------------------------------------------------


def test_overview_tokens_per_model_hand_computed(filled: Layout) -> None:
    ov = q.overview(filled, days=30, now=NOW, tz="Europe/Paris", home=HOME)
    got = [(m.provider, m.model, m.input_tokens, m.cached_tokens, m.output_tokens) for m in ov.models]
    assert got == EXPECTED_MODELS


def test_overview_period_days_repos_tools(filled: Layout) -> None:
    ov = q.overview(filled, days=30, now=NOW, tz="Europe/Paris", home=HOME)
    assert ov.period.time_zone == "Europe/Paris"
    assert ov.period.since == "2026-04-10T22:00:00Z"  # local midnight of 2026-04-11 in Paris
    assert ov.period.until == "2026-05-10T12:00:00Z"
    assert ov.period.days == 30 and len(ov.days) == 30
    assert ov.days[0].date == "2026-04-11" and ov.days[-1].date == "2026-05-10"
    # Every row but `out_edge` is in the period.
    assert ov.rows == 14
    assert ov.sessions == 5  # s1, s2, s3, cx1, cx2
    by_day = {d.date: (d.sessions, d.messages) for d in ov.days}
    assert by_day["2026-04-11"] == (1, 1)  # in_edge, local date
    assert by_day["2026-05-08"] == (2, 4)  # cx1 (c0, c1, c2) and cx2 (c3)
    assert by_day["2026-05-09"] == (1, 8)  # s1 only (late is the next local day)
    assert by_day["2026-05-10"] == (1, 1)  # late
    assert sum(1 for d in ov.days if d.messages) == ov.active_days == 4
    assert sum(d.messages for d in ov.days) == 14
    repos = [(r.repo, r.sessions, r.messages) for r in ov.repos]
    assert repos == [("~/src/app", 3, 10), ("/work/other", 2, 4)]
    tools = [(t.tool, t.calls) for t in ov.tools]
    assert tools == [("Bash", 2), ("Read", 2), ("shell", 2)]


def test_overview_rows_equal_select_count_over_the_same_period(filled: Layout) -> None:
    ov = q.overview(filled, days=30, now=NOW, tz="Europe/Paris", home=HOME)
    n = q.run_sql(
        filled,
        "select count(*) from ai_gateway_messages where message_created_at >= "
        f"'{ov.period.since}'::timestamptz and message_created_at <= '{ov.period.until}'::timestamptz",
    ).item()
    assert ov.rows == n == 14


def test_overview_all_days_and_json_shape(filled: Layout) -> None:
    ov = q.overview(filled, days=0, now=NOW, tz="UTC", home=HOME)
    assert ov.rows == 15
    assert ov.days[0].date == "2026-04-10" and ov.days[-1].date == "2026-05-10"
    assert ov.period.since == "2026-04-10T00:00:00Z"
    doc = ov.to_json()
    assert set(doc) == {"period", "rows", "sessions", "models", "days", "repos", "tools"}
    assert set(doc["period"]) == {"since", "until", "days", "time_zone"}
    assert set(doc["models"][0]) == {"provider", "model", "input_tokens", "cached_tokens", "output_tokens"}
    assert set(doc["days"][0]) == {"date", "sessions", "messages"}
    assert set(doc["repos"][0]) == {"repo", "sessions", "messages"}
    assert set(doc["tools"][0]) == {"tool", "calls"}
    json.dumps(doc)
    # The out-of-period response now counts.
    opus = next(m for m in ov.models if m.model == "claude-opus-4")
    assert opus.input_tokens == 15 + 7000


def test_overview_empty(layout: Layout) -> None:
    ov = q.overview(layout, days=7, now=NOW, tz="UTC")
    assert ov.is_empty and ov.rows == 0 and ov.models == [] and ov.repos == [] and ov.tools == []
    assert [d.messages for d in ov.days] == [0] * 7
    ov0 = q.overview(layout, days=0, now=NOW, tz="UTC")
    assert ov0.is_empty and ov0.days == [] and ov0.period.since is None
    assert not layout.home.exists()


def test_first_look_of_a_history_that_ended_months_ago_shows_all_of_it(filled: Layout, layout: Layout) -> None:
    """The wizard's first look is the overview's default 30 days; for history older than that (the fixture's
    is from May) it said "Nothing imported yet" under a summary of thousands of rows written. It now shows
    all the data, and says which dates in its period line."""
    from hypaware_tui.app import _default_first_look

    assert q.overview(filled, days=30).is_empty  # (the default period, ending today, has nothing)
    ov = _default_first_look(filled, {"HOME": "/home/x"})
    every = q.overview(filled, days=0)
    assert not ov.is_empty and ov.period.since == every.period.since and ov.rows == every.rows > 0
    assert _default_first_look(Layout(layout.home.parent / "empty"), {}).is_empty


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Pacific/Kiritimati", "Asia/Kolkata"])
def test_overview_of_all_data_from_the_year_1_is_bounded_and_counts_every_row(layout: Layout, zone: str) -> None:
    """A row stamped 0001-01-01T00:00Z: `overview --days 0` crashed west of UTC (the year 0 in local time), and
    in UTC its JSON had a day for each of 739,947 days (60 MB, 22 s). The day series is now the last MAX_DAYS
    days; the older row counts in the totals and in `earlier`, not in the first day of the series."""
    commit(layout, [claude("old", "0001-01-01T00:00:00Z", date="0001-01-01", session_id="s0", conversation_id="s0"),
                    claude("new", "2026-05-09T10:00:00Z")])
    ov = q.overview(layout, days=0, now=NOW, tz=zone)
    assert (ov.rows, ov.sessions) == (2, 2)
    assert len(ov.days) == ov.period.days == q.MAX_DAYS and ov.days[-1].date in ("2026-05-10", "2026-05-11")
    new_day = "2026-05-10" if zone == "Pacific/Kiritimati" else "2026-05-09"  # (10:00Z is 00:00 there, UTC+14)
    assert [d.date for d in ov.days if d.messages] == [new_day] and sum(d.messages for d in ov.days) == 1
    assert ov.earlier == q.DayCount("0001-01-01", 1, 1)
    assert ov.period.since == "0001-01-01T00:00:00Z"
    doc = ov.to_json()
    assert set(doc) == {"period", "rows", "sessions", "models", "days", "repos", "tools"}
    assert len(json.dumps(doc)) < 5_000_000
    # with nothing older than the series, nothing is `earlier`
    assert q.overview(layout, days=30, now=NOW, tz=zone).earlier is None


def test_overview_top_ten(layout: Layout) -> None:
    rows = []
    for i in range(12):
        for k in range(i + 1):
            rows.append(
                claude(f"t{i}_{k}", "2026-05-09T10:00:00Z", part_type="tool_call", tool_name=f"tool{i:02d}",
                       session_id=f"s{i}_{k}", conversation_id=f"s{i}_{k}", cwd=f"/r/{i:02d}",
                       model=f"model{i:02d}", api_message_id=f"x{i}_{k}", request_id="r", **tokens(i, 0, 0, 1))
            )  # fmt: skip
    commit(layout, rows)
    ov = q.overview(layout, days=30, now=NOW, tz="UTC", home=HOME)
    assert [t.tool for t in ov.tools] == [f"tool{i:02d}" for i in range(11, 1, -1)]
    assert [r.repo for r in ov.repos] == [f"/r/{i:02d}" for i in range(11, 1, -1)]
    assert len(ov.models) == 10 and ov.models[0].model == "model11"


def test_top_repos_rank_by_sessions_then_messages(layout: Layout) -> None:
    """A repo of two short sessions comes before one long session: the ranking is by sessions, then messages
    (mutation audit: every test had repos whose sessions and messages ranked alike)."""
    rows = [claude(f"long{k}", f"2026-05-09T10:0{k}:00Z", session_id="s_long", cwd="/r/long") for k in range(5)]
    rows += [claude(f"short{k}", "2026-05-09T11:00:00Z", session_id=f"s_short{k}", cwd="/r/short") for k in range(2)]
    commit(layout, rows)
    ov = q.overview(layout, days=30, now=NOW, tz="UTC", home=HOME)
    assert [(r.repo, r.sessions, r.messages) for r in ov.repos] == [("/r/short", 2, 2), ("/r/long", 1, 5)]


def test_all_data_leaves_out_the_tokens_of_codex_rows_dated_after_now(layout: Layout) -> None:
    """`--days 0` ends now, as its rows do: a Codex response dated after now (a clock set back) is neither a row
    nor tokens of the report (mutation audit: its tokens were counted with the period test removed)."""
    commit(layout, [codex("c1", "2026-05-09T10:00:00Z", **tokens(100, 20, None, 10)),
                    codex("later", "2026-05-11T10:00:00Z", **tokens(5000, 0, None, 500))])
    ov = q.overview(layout, days=0, now=NOW, tz="UTC", home=HOME)
    assert ov.rows == 1
    assert [(m.provider, m.model, m.input_tokens, m.cached_tokens, m.output_tokens) for m in ov.models] == [
        ("openai", "gpt-5", 100, 20, 10)]


def test_a_streamed_copy_without_output_tokens_is_not_the_response_chosen(layout: Layout) -> None:
    """A response's copy that lacks `output_tokens` (a line written before its usage was complete) sorts after
    the copy that has them, nulls last as in `schema.usage_view`: the overview counts the complete copy's output,
    the same as the view, also when both are in one batch and the incomplete copy is the later line."""
    commit(layout, [
        claude("full", "2026-05-09T09:00:01Z", api_message_id="msg_A", request_id="req_A", **tokens(10, 100, 5, 42)),
        claude("part", "2026-05-09T09:00:02Z", api_message_id="msg_A", request_id="req_A", **tokens(10, 100, 5, None)),
    ])  # fmt: skip
    ov = q.overview(layout, days=30, now=NOW, tz="UTC", home=HOME)
    assert [(m.model, m.input_tokens, m.cached_tokens, m.output_tokens) for m in ov.models] == [
        ("claude-opus-4", 10, 100, 42)
    ]
    view = q.run_sql(layout, "select output_tokens, rows_collapsed from ai_gateway_usage").rows()
    assert view == [(42, 2)]


def test_overview_edges_of_the_period_and_what_counts(layout: Layout) -> None:
    """A row at the first instant of the period and one at `now` are in it; a message of two parts is one
    message; a tool result naming its tool is no call; an empty cwd is no repo; ties are in name order."""
    commit(layout, [
        claude("since", "2026-05-09T00:00:00Z", session_id="sa", cwd="/r/b", part_type="tool_call", tool_name="Zed"),
        claude("now", "2026-05-10T12:00:00Z", session_id="sb", cwd="/r/a", part_type="tool_call", tool_name="Alpha"),
        claude("two", "2026-05-09T10:00:00Z", session_id="sc", cwd="/r/c"),
        claude("two", "2026-05-09T10:00:00Z", session_id="sc", cwd="/r/c", part_index=1, part_type="tool_result",
               tool_name="Zed"),
        claude("nocwd", "2026-05-10T01:00:00Z", session_id="sd", cwd=""),
    ])  # fmt: skip
    ov = q.overview(layout, days=2, now=NOW, tz="UTC", home=HOME)
    assert (ov.period.since, ov.period.until) == ("2026-05-09T00:00:00Z", "2026-05-10T12:00:00Z")
    assert (ov.rows, ov.sessions) == (5, 4)
    assert [(d.date, d.sessions, d.messages) for d in ov.days] == [("2026-05-09", 2, 2), ("2026-05-10", 2, 2)]
    assert [(r.repo, r.sessions, r.messages) for r in ov.repos] == [("/r/a", 1, 1), ("/r/b", 1, 1), ("/r/c", 1, 1)]
    assert [(t.tool, t.calls) for t in ov.tools] == [("Alpha", 1), ("Zed", 1)]
    # the longest period there is, and one day more
    assert len(q.overview(layout, days=q.MAX_DAYS, now=NOW, tz="UTC").days) == q.MAX_DAYS
    with pytest.raises(ValueError, match="days must be between 0 and 36500"):
        q.overview(layout, days=q.MAX_DAYS + 1, now=NOW, tz="UTC")


def test_an_empty_period_over_one_row_dated_after_now_says_so_in_the_singular(layout: Layout) -> None:
    commit(layout, [claude("future", "2026-05-11T08:30:00Z")])
    ov = q.overview(layout, days=7, now=NOW, tz="UTC")
    assert ov.is_empty and q.empty_note(ov) == (
        "No messages up to now: the 1 row in the dataset is dated after now, from 2026-05-11 08:30 UTC (is the "
        "system clock behind?). They count here once that time comes; hyp query sql reads them now."
    )


def test_a_tz_with_a_leading_colon_names_its_zone() -> None:
    from zoneinfo import ZoneInfo

    assert q.local_zone({"TZ": ":Europe/Paris"}) == (ZoneInfo("Europe/Paris"), "Europe/Paris")


def test_home_as_tilde() -> None:
    assert q.home_as_tilde("/home/me", "/home/me") == "~"
    assert q.home_as_tilde("/home/me/x", "/home/me/") == "~/x"
    assert q.home_as_tilde("/home/meow/x", "/home/me") == "/home/meow/x"
    assert q.home_as_tilde("C:\\Users\\me\\x", "C:\\Users\\me") == "~\\x"


# --- schema ---------------------------------------------------------------------------------------------


def test_schema_listing() -> None:
    cols = q.schema_listing()
    msgs = [c for c in cols if c.relation == "ai_gateway_messages"]
    usage = [c for c in cols if c.relation == "ai_gateway_usage"]
    assert [c.name for c in msgs] == [*COLUMN_NAMES, "source"]
    assert next(c for c in msgs if c.name == "message_created_at").type == "Datetime(us, UTC)"
    assert next(c for c in msgs if c.name == "model").nullable is True
    assert next(c for c in msgs if c.name == "part_id").nullable is False
    assert all(c.description for c in cols)
    assert "total_tokens" in [c.name for c in usage]
    # the view's own columns are never null
    assert {"usage_key", "key_kind", "total_tokens", "rows_collapsed"} <= {c.name for c in usage if not c.nullable}
    assert [c.name for c in q.schema_listing("ai_gateway_usage")] == [c.name for c in usage]
    with pytest.raises(KeyError):
        q.schema_listing("nope")


def test_core_query_imports_no_ui() -> None:
    import subprocess
    import sys

    code = "import sys, hypaware_tui.core.query, hypaware_tui.core.status; print('textual' in sys.modules, 'rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_damaged_file_is_a_dataset_error_naming_the_file(filled: Layout) -> None:
    victim = sorted(filled.dataset_root.rglob("*.parquet"))[1]
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(q.DatasetReadError) as info:
        q.run_sql(filled, "select count(*) from ai_gateway_messages")
    assert str(victim) in str(info.value) and "Move it into" in str(info.value)
    with pytest.raises(q.DatasetReadError, match=victim.name):
        q.overview(filled, days=30, now=NOW, tz="UTC")


def test_five_damaged_files_name_three_and_count_the_others(filled: Layout) -> None:
    folder = filled.dataset_root / "source=claude" / "date=2026-05-09"
    bad = [folder / f"part-z{i}.parquet" for i in range(5)]
    for p in bad:
        p.write_bytes(b"not parquet")
    with pytest.raises(q.DatasetReadError) as info:
        q.run_sql(filled, "select count(*) from ai_gateway_messages")
    assert f"{bad[0]}, {bad[1]}, {bad[2]} and 2 more are damaged or not written by hyp (" in str(info.value)
    assert str(bad[3]) not in str(info.value)


def test_relation_matches_duckdb_reference_dedupe(layout: Layout) -> None:
    """ai_gateway_messages = every file, deduplicated by part_id keeping the smallest file name (storage.md §9),
    checked against DuckDB's documented equivalent on the same files."""
    duckdb = pytest.importorskip("duckdb")
    first = [claude(f"m{i}", f"2026-05-0{1 + i % 3}T10:00:00Z") for i in range(30)]
    commit(layout, first)
    # The same parts again under another date (another partition, so the writer cannot see them), plus new ones.
    again = [claude(f"m{i}", "2026-05-07T10:00:00Z", content_text="later copy") for i in range(0, 30, 4)]
    commit(layout, again + [claude(f"n{i}", "2026-05-07T11:00:00Z") for i in range(5)])
    ours = q.run_sql(layout, "select part_id, date, content_text from ai_gateway_messages order by part_id")
    glob = str(layout.dataset_root / "**" / "*.parquet")
    ref = duckdb.sql(
        f"select part_id, date, content_text from read_parquet('{glob}', hive_partitioning=true, "
        "hive_types_autocast=false, filename=true) "
        "qualify row_number() over (partition by part_id order by regexp_extract(filename, '[^/]+$')) = 1 "
        "order by part_id"
    ).fetchall()
    assert ours.rows() == ref
    assert ours.height == 35 and "later copy" not in ours["content_text"].to_list()


def test_overview_models_equal_the_usage_view_at_the_period_edge(filled: Layout) -> None:
    """Carriers outside the period still decide the view's rows inside it: a side question in the period that
    replays an older response is dropped, and a streamed response whose complete copy lies before the period
    is not counted in it. The overview must agree with `ai_gateway_usage` filtered to the period."""
    edge = [
        # Parent response 40 days earlier; its side-chain replay inside the period.
        claude("p_old", "2026-03-30T10:00:00Z", api_message_id="msg_P", request_id="req_P",
               **tokens(100, 0, 0, 100)),
        claude("p_side", "2026-05-09T12:00:00Z", is_sidechain=True, api_message_id="msg_P", request_id="req_P2",
               **tokens(100, 0, 0, 100)),
        # A streamed response across the period start: the complete copy (output 500) is just before it.
        claude("q_full", "2026-04-10T21:59:59Z", api_message_id="msg_Q", request_id="req_Q",
               **tokens(9, 0, 0, 500)),
        claude("q_part", "2026-04-10T22:00:01Z", api_message_id="msg_Q", request_id="req_Q",
               **tokens(9, 0, 0, 1)),
    ]  # fmt: skip
    commit(filled, edge)
    ov = q.overview(filled, days=30, now=NOW, tz="Europe/Paris", home=HOME)
    view = q.run_sql(
        filled,
        "select provider, model, sum(input_tokens) as i, sum(cache_read_tokens) as c, sum(output_tokens) as o "
        f"from ai_gateway_usage where message_created_at >= '{ov.period.since}'::timestamptz "
        f"and message_created_at <= '{ov.period.until}'::timestamptz group by provider, model",
    )
    expected = {(p, m): (i or 0, c or 0, o or 0) for p, m, i, c, o in view.rows()}
    got = {(m.provider, m.model): (m.input_tokens, m.cached_tokens, m.output_tokens) for m in ov.models}
    assert got == expected
    # Unchanged from the hand-computed figures: neither edge response counts in this period.
    assert [(m.provider, m.model, m.input_tokens, m.cached_tokens, m.output_tokens) for m in ov.models] == (
        EXPECTED_MODELS
    )


def test_the_overview_reads_only_the_period_and_the_carriers_that_share_its_ids(
    filled: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its memory follows the period, not the dataset: a 30-day overview of 1.1M rows held every Claude
    carrier of all time (741 MiB). Unrelated carriers outside the period are not read; those sharing an id
    with a carrier inside are. A compaction's second copy of a file counts once."""
    commit(filled, [claude("p_old", "2026-03-30T10:00:00Z", api_message_id="msg_P", request_id="req_P",
                           **tokens(100, 0, 0, 100)),
                    claude("p_side", "2026-05-09T12:00:00Z", is_sidechain=True, api_message_id="msg_P",
                           request_id="req_P2", **tokens(100, 0, 0, 100))])  # fmt: skip
    read: list[pl.DataFrame] = []
    add = q._Tally.add
    monkeypatch.setattr(q._Tally, "add", lambda self, batch: (read.append(batch), add(self, batch))[1])
    q.overview(filled, days=30, now=NOW, tz="Europe/Paris", home=HOME)
    frame = pl.concat(read)
    ids = set(frame["api_message_id"].drop_nulls())
    assert "msg_OUT" not in ids and "msg_P" in ids  # out_edge is unrelated; p_old shares p_side's id
    assert frame.filter(~pl.col("_period"))["message_id"].to_list() == ["p_old"]
    monkeypatch.setattr(q._Tally, "add", add)
    before = q.overview(filled, days=30, now=NOW, tz="Europe/Paris", home=HOME)
    part = next(filled.dataset_root.glob("source=claude/date=2026-05-09/*.parquet"))
    (part.parent / ("part-z" + part.name[5:])).write_bytes(part.read_bytes())  # a compaction's copy
    after = q.overview(filled, days=30, now=NOW, tz="Europe/Paris", home=HOME)
    assert (after.rows, after.sessions, after.models, after.tools) == (
        before.rows, before.sessions, before.models, before.tools) and before.rows > 0
    # A copy whose values differ (a line imported again after a fix to its stamp), in a smaller file name: the
    # relation keeps that copy, dated before the period, and so must the overview (it counted the other one).
    moved = pl.read_parquet(part).with_columns(message_created_at=pl.lit(datetime(2026, 1, 5, tzinfo=UTC)))
    moved.write_parquet(part.parent / ("part-0" + part.name[5:]))
    period = f"'{before.period.since}'::timestamptz and '{before.period.until}'::timestamptz"
    want = q.run_sql(filled, f"select count(*) as n from ai_gateway_messages where message_created_at between {period}")
    again = q.overview(filled, days=30, now=NOW, tz="Europe/Paris", home=HOME)
    assert again.rows == want.item() == before.rows - moved.height


def test_usage_view_of_a_response_with_equal_tokens_keeps_its_latest_row(layout: Layout) -> None:
    """schema.md §6: among a response's carriers with the same output and input tokens, the latest one is the
    response's row (its time, its message). Mutation audit: no test failed when the earliest was kept."""
    same = dict(api_message_id="msg_1", request_id="req_1", input_tokens=5, output_tokens=7)
    commit(layout, [claude("early", "2026-05-09T10:00:00Z", **same), claude("late", "2026-05-09T10:00:05Z", **same)])
    got = q.run_sql(layout, "select message_id, rows_collapsed from ai_gateway_usage")
    assert got.rows() == [("late", 2)]
