"""The overview's figures (core.query.overview), all data and a period, against a plain eager computation over the
deduplicated relation and `ai_gateway_usage`, on datasets with copies of a `part_id` in several files.

The all-data overview adds its figures up batch by batch (`_Tally`) instead of holding every row; these tests
make the batches tiny so that a response, a session and a day are split across them."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from helpers import make_row
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypaware_tui.core import query as q
from hypaware_tui.core.dataset import scan_messages
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.schema import canonical_json, frame_from_rows, usage_view
from hypaware_tui.core.storage import Storage
from hypaware_tui.core.timeutil import datetime_to_us

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
HOME = "/home/me"
START = datetime(2026, 5, 5, 21, 0, tzinfo=UTC)  # the rows span local midnights in both zones below
PLAIN = canonical_json({"gateway": {"identity_source": "native"}})
API_ERROR = canonical_json({"claude": {"api_error": True}, "gateway": {"identity_source": "native"}})


def expected(layout: Layout, ov: q.Overview, zone: str) -> dict:
    """The figures computed the plain way: every row of the relation in memory, days by Python's local dates."""
    until = datetime_to_us(NOW)
    since = datetime_to_us(datetime.fromisoformat(ov.period.since)) if ov.period.since else None
    ts = pl.col("message_created_at").cast(pl.Int64)
    inside = (ts <= until) & (ts >= since) if since is not None else ts <= until
    rows = scan_messages(layout).filter(inside).collect()
    tz = ZoneInfo(zone)
    days: dict[str, tuple[set, int]] = defaultdict(lambda: (set(), 0))
    repos: dict[str, tuple[set, int]] = defaultdict(lambda: (set(), 0))
    tools: dict[str, int] = defaultdict(int)
    for r in rows.iter_rows(named=True):
        day = r["message_created_at"].astimezone(tz).date().isoformat()
        first = r["part_index"] == 0
        days[day] = (days[day][0] | {r["session_id"]}, days[day][1] + first)
        if r["cwd"]:
            repos[r["cwd"]] = (repos[r["cwd"]][0] | {r["session_id"]}, repos[r["cwd"]][1] + first)
        if r["part_type"] == "tool_call" and r["tool_name"] is not None:
            tools[r["tool_name"]] += 1
    usage = usage_view(scan_messages(layout)).filter(inside).collect()
    models: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for u in usage.iter_rows(named=True):
        m = models[(u["provider"], u["model"])]
        for k, col in enumerate(("input_tokens", "cache_read_tokens", "output_tokens", "total_tokens")):
            m[k] += u[col] or 0
    top_models = sorted(models.items(), key=lambda kv: (-kv[1][3], kv[0][0] is None, kv[0][0] or "",
                                                          kv[0][1] is None, kv[0][1] or ""))[: q.TOP_N]  # fmt: skip
    top_repos = sorted(repos.items(), key=lambda kv: (-len(kv[1][0]), -kv[1][1], kv[0]))[: q.TOP_N]
    return {
        "rows": rows.height,
        "sessions": rows["session_id"].n_unique(),
        "days": {d: (len(s), n) for d, (s, n) in days.items()},
        "first_day": min(days) if days else None,
        "repos": [(q.home_as_tilde(c, HOME), len(s), n) for c, (s, n) in top_repos],
        "tools": sorted(tools.items(), key=lambda kv: (-kv[1], kv[0]))[: q.TOP_N],
        "models": [(p, m, i, c, o) for (p, m), (i, c, o, _) in top_models],
    }


def figures(ov: q.Overview) -> dict:
    return {
        "rows": ov.rows,
        "sessions": ov.sessions,
        "days": {d.date: (d.sessions, d.messages) for d in ov.days if d.sessions},
        "first_day": ov.first_date if ov.rows else None,
        "repos": [(r.repo, r.sessions, r.messages) for r in ov.repos],
        "tools": [(t.tool, t.calls) for t in ov.tools],
        "models": [(m.provider, m.model, m.input_tokens, m.cached_tokens, m.output_tokens) for m in ov.models],
    }


def check(layout: Layout, zone: str, days: int) -> q.Overview:
    ov = q.overview(layout, days=days, now=NOW, tz=zone, home=HOME)
    want = expected(layout, ov, zone)
    got = figures(ov)
    if days:
        want["first_day"] = got["first_day"]  # a period's series starts at its first day, rows or not
    assert got == want
    assert sum(d.messages for d in ov.days) == sum(n for _, n in want["days"].values())
    assert ov.earlier is None
    return ov


def write_copy(layout: Layout, rows: list[dict], name: str) -> None:
    """A file of `rows` beside the committed ones (the writer would drop them), named `name`: "part-0…" sorts
    before every committed file, "part-z…" after."""
    frame = frame_from_rows(rows)
    for (client, day), part in frame.group_by("client_name", "date"):
        folder = layout.dataset_root / f"source={client}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        part.write_parquet(folder / f"{name}.parquet")


row_specs = st.fixed_dictionaries(
    {
        "codex": st.booleans(),
        "session": st.integers(0, 3),
        "part_index": st.integers(0, 1),
        "minutes": st.sampled_from([0, 1, 59, 60, 61, 180, 600, 1439, 1440, 2000, 4000, 6000]),
        "api": st.sampled_from([None, "A", "B", "C"]),
        "request": st.sampled_from([None, "r1", "r2"]),
        "side": st.sampled_from([None, False, True]),
        "tokens": st.lists(st.sampled_from([None, 0, 1, 5]), min_size=4, max_size=4),
        "api_error": st.booleans(),
        "tool": st.sampled_from([None, "Bash", "Read"]),
        "cwd": st.sampled_from([None, "", f"{HOME}/a", "/r/b"]),
        "model": st.sampled_from([None, "m1", "m2"]),
    }
)


def spec_row(i: int, s: dict) -> dict:
    client = "codex" if s["codex"] else "claude"
    i_, o, cr, cw = s["tokens"]
    return make_row(
        created=START + timedelta(minutes=s["minutes"]),
        client_name=client,
        session_id=f"s{s['session']}",
        conversation_id=f"s{s['session']}",
        message_id=f"m{i}",
        part_index=s["part_index"],
        role="assistant",
        model=s["model"],
        cwd=s["cwd"],
        is_sidechain=s["side"] if client == "claude" else None,
        api_message_id=s["api"] if client == "claude" else None,
        request_id=s["request"] if client == "claude" else None,
        part_type="tool_call" if s["tool"] else "text",
        tool_name=s["tool"],
        input_tokens=i_, output_tokens=o, cache_read_tokens=cr, cache_write_tokens=cw,
        attributes=API_ERROR if s["api_error"] and client == "claude" else PLAIN,
    )  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    specs=st.lists(row_specs, min_size=1, max_size=25),
    copies=st.lists(st.tuples(st.integers(0, 24), row_specs, st.booleans()), max_size=8),
    batch=st.sampled_from([1, 3, 50_000]),
    zone=st.sampled_from(["UTC", "America/Los_Angeles", "Asia/Kolkata"]),
)
def test_overview_equals_the_eager_figures_with_copies_across_files(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, specs: list[dict],
    copies: list[tuple[int, dict, bool]], batch: int, zone: str,
) -> None:  # fmt: skip
    """Random rows (streamed copies of a response with ties in their usage, side chains, API errors, Codex
    carriers, several sessions, days and repos) in two commits, and copies of some `part_id`s with other values
    in files named before or after them (the relation keeps the copy in the smallest file name): the all-data
    overview and a 3-day one equal the figures computed over the relation in memory, in batches of any size."""
    monkeypatch.setattr(q, "BATCH_ROWS", batch)
    layout = Layout(tmp_path_factory.mktemp("tally") / "hyp")
    rows = [spec_row(i, s) for i, s in enumerate(specs)]
    half = len(rows) // 2
    with Storage(layout) as store:
        store.commit(rows[:half], [])
    with Storage(layout) as store:
        store.commit(rows[half:], [])
    for n, (target, spec, first) in enumerate(copies):
        if target < len(rows):
            copy = spec_row(target, spec)
            copy.update(part_id=rows[target]["part_id"], message_id=rows[target]["message_id"],
                        part_index=rows[target]["part_index"], client_name=rows[target]["client_name"])  # fmt: skip
            write_copy(layout, [copy], f"part-{'0' if first else 'z'}{n:02d}")
    check(layout, zone, 0)
    check(layout, zone, 3)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "hyp")


def test_a_response_split_across_batches_counts_its_chosen_row_once(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streamed response whose lines are read in different batches (the complete one last), a side chain's
    replay of it, and a copy of its complete line in a later file: one usage row, the complete one's tokens."""
    monkeypatch.setattr(q, "BATCH_ROWS", 1)
    base = dict(role="assistant", model="opus", api_message_id="msg_A", request_id="req_A", cwd=f"{HOME}/a")
    lines = [
        make_row(created=START + timedelta(seconds=k), message_id=f"a{k}", input_tokens=10, output_tokens=out,
                 cache_read_tokens=100, **base)
        for k, out in enumerate([1, 7, 42])
    ]  # fmt: skip
    side = make_row(created=START + timedelta(seconds=5), message_id="side", input_tokens=10, output_tokens=42,
                    cache_read_tokens=100, is_sidechain=True, **{**base, "request_id": "req_side"})  # fmt: skip
    with Storage(layout) as store:
        store.commit([*lines, side], [])
    write_copy(layout, [{**lines[2], "output_tokens": 9000}], "part-z")  # loses to the committed copy
    for days in (0, 30):
        ov = check(layout, "UTC", days)
        assert [(m.model, m.input_tokens, m.cached_tokens, m.output_tokens) for m in ov.models] == [
            ("opus", 10, 100, 42)
        ]
        assert (ov.rows, ov.sessions, [(r.repo, r.sessions, r.messages) for r in ov.repos]) == (4, 1, [("~/a", 1, 4)])


def test_all_data_counts_rows_filed_under_a_later_date_on_their_own_day(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The all-data day series must start before the rows are read; a file whose rows are older than its
    partition's date (copied there by hand) still has them on their own day, its first day is theirs, not the
    partition's, and the rows are read once (the series started from the partitions' dates was read again from
    the right day: twice the time on such a dataset)."""
    seen: list[int] = []
    add = q._Tally.add
    monkeypatch.setattr(q._Tally, "add", lambda self, batch: (seen.append(batch.height), add(self, batch))[1])
    with Storage(layout) as store:
        store.commit([make_row(created="2026-05-09T10:00:00Z", message_id="new", cwd="/r")], [])
    old = make_row(created="2026-04-20T10:00:00Z", message_id="old", session_id="s9", cwd="/r")
    folder = layout.dataset_root / "source=claude" / "date=2026-05-09"
    frame_from_rows([old]).write_parquet(folder / "part-zz.parquet")
    ov = check(layout, "Europe/Paris", 0)
    assert ov.days[0].date == "2026-04-20" and ov.period.days == 21
    assert {d.date: d.messages for d in ov.days if d.messages} == {"2026-04-20": 1, "2026-05-09": 1}
    assert sum(seen) == ov.rows == 2


def test_a_file_with_older_rows_written_after_the_oldest_was_read_is_read_again_from_its_day(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The all-data series starts at the oldest row found before the read; rows older than that (a file written
    in between) make a second read from their day, so they are on their own day, not in `earlier`."""
    with Storage(layout) as store:
        store.commit([make_row(created="2026-05-09T10:00:00Z", message_id="new", cwd="/r"),
                      make_row(created="2026-04-20T10:00:00Z", message_id="old", session_id="s9", cwd="/r")], [])
    real = q._relation_rows
    late = datetime_to_us(datetime(2026, 5, 9, 10, tzinfo=UTC))
    monkeypatch.setattr(q, "_relation_rows", lambda lay, until: (*real(lay, until)[:2], late))
    ov = check(layout, "Europe/Paris", 0)
    assert ov.days[0].date == "2026-04-20" and ov.period.days == 21
    assert {d.date: d.messages for d in ov.days if d.messages} == {"2026-04-20": 1, "2026-05-09": 1}


def test_ties_and_side_chain_replays_are_chosen_as_the_view_chooses(layout: Layout) -> None:
    """Two lines of one response with equal tokens and times: the smallest part_id's model has them. A side
    chain's replays of a response under two request ids (no main-thread copy): one response."""
    base = dict(role="assistant", request_id="r1", input_tokens=10, output_tokens=5, cache_read_tokens=1)
    with Storage(layout) as store:
        store.commit([
            make_row(created=START, message_id="tb", model="m-second", api_message_id="T", **base),
            make_row(created=START, message_id="ta", model="m-first", api_message_id="T", **base),
            make_row(created=START, message_id="s1", model="side", api_message_id="S", is_sidechain=True, **base),
            make_row(created=START, message_id="s2", model="side", api_message_id="S", is_sidechain=True,
                     **{**base, "request_id": "r2"}),
        ], [])  # fmt: skip
    for days in (0, 30):
        ov = check(layout, "UTC", days)
        assert [(m.model, m.input_tokens, m.cached_tokens, m.output_tokens) for m in ov.models] == [
            ("m-first", 10, 1, 5), ("side", 10, 1, 5)
        ]


@pytest.mark.parametrize("days", [0, 30])
def test_the_overview_reads_the_rows_in_batches(layout: Layout, monkeypatch: pytest.MonkeyPatch, days: int) -> None:
    """The overview never holds the dataset, nor the period: it adds up batches of at most BATCH_ROWS rows
    (holding every row took 1.1 GB for 1.1M rows of all data; one frame of a 30-day period of 1M rows, 780 MiB)."""
    monkeypatch.setattr(q, "BATCH_ROWS", 4)
    with Storage(layout) as store:
        store.commit([make_row(created=START + timedelta(minutes=k), message_id=f"m{k}") for k in range(30)], [])
    seen: list[int] = []
    add = q._Tally.add
    monkeypatch.setattr(q._Tally, "add", lambda self, batch: (seen.append(batch.height), add(self, batch))[1])
    ov = q.overview(layout, days=days, now=NOW, tz="UTC")
    assert ov.rows == sum(seen) == 30 and len(seen) > 1 and max(seen) <= 4


def test_a_period_in_small_batches_chooses_each_response_as_in_one_batch(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 3-day period (from 2026-05-08 00:00 UTC) read one row at a time, three at a time and in one batch gives
    the same overview, the view's: response A is streamed in three lines inside the period (the complete one,
    42 output tokens, neither first nor last) plus a partial copy before it; response B's most complete line is
    before the period, so B is not the period's usage at all; response C's main-thread line is before the
    period, so its side chain's replay inside is not counted either (the side-chain rule)."""

    def carrier(created: str, mid: str, api: str, out: int, model: str, **kw: object) -> dict:
        return make_row(created=created, message_id=mid, role="assistant", model=model, api_message_id=api,
                        request_id=f"req_{api}", input_tokens=10, output_tokens=out, cache_read_tokens=100,
                        cwd=f"{HOME}/a", **kw)  # fmt: skip

    rows = [
        carrier("2026-05-07T23:59:00Z", "a0", "A", 5, "opus"),  # outside, loses
        carrier("2026-05-08T10:00:00Z", "a1", "A", 1, "opus"),
        carrier("2026-05-08T10:00:01Z", "a2", "A", 42, "opus"),  # the choice
        carrier("2026-05-08T10:00:02Z", "a3", "A", 7, "opus"),
        carrier("2026-05-08T11:00:00Z", "b1", "B", 3, "sonnet"),
        carrier("2026-05-08T11:00:01Z", "b2", "B", 2, "sonnet"),
        carrier("2026-05-07T20:00:00Z", "b0", "B", 50, "sonnet"),  # outside, wins: B is not in the period
        carrier("2026-05-07T21:00:00Z", "c0", "C", 1, "haiku"),  # outside, main thread
        carrier("2026-05-09T09:00:00Z", "c1", "C", 99, "haiku", is_sidechain=True),  # dropped by the rule
        make_row(created="2026-05-09T10:00:00Z", message_id="x1", client_name="codex", session_id="s2",
                 role="assistant", model="gpt-5", input_tokens=3, output_tokens=4, cache_read_tokens=5),
        make_row(created="2026-05-09T10:30:00Z", message_id="u1", cwd=f"{HOME}/a"),
    ]  # fmt: skip
    with Storage(layout) as store:
        store.commit(rows, [])
    results = {}
    for batch in (1, 3, 50_000):
        monkeypatch.setattr(q, "BATCH_ROWS", batch)
        ov = check(layout, "UTC", 3)
        results[batch] = ov
        assert [(m.provider, m.model, m.input_tokens, m.cached_tokens, m.output_tokens) for m in ov.models] == [
            ("anthropic", "opus", 10, 100, 42), ("openai", "gpt-5", 3, 5, 4)
        ]  # fmt: skip
        assert (ov.rows, ov.sessions) == (8, 2)
    assert results[1] == results[3] == results[50_000]
