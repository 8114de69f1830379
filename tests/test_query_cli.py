"""`hyp query sql | overview | schema` end to end (cli.md §7, §10 checks 13-16 and 20).

Most checks call `main()` in-process; colour, redirection and blocked sockets run the real program in a
subprocess or a pseudo-terminal."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_query import HOME, claude, fixture_rows

from hypaware_tui.cli import main
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.schema import COLUMN_NAMES, canonical_json
from hypaware_tui.core.storage import Storage

REPO = Path(__file__).resolve().parent.parent
M = "ai_gateway_messages"
ANSI = "\x1b["
# The fixture's newest row (`late`) is 2026-05-09T22:30Z; move everything so it falls 2 hours before now, but
# on today's UTC date (just after midnight, halfway between midnight and now): the 30-day overview counts
# calendar days, and its boundary rows (29 days before the newest) must not slip out of the period at 00:30.
_NEWEST = datetime(2026, 5, 9, 22, 30, tzinfo=UTC)


def shifted_rows() -> list[dict]:
    now = datetime.now(UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    newest = now - min(timedelta(hours=2), (now - midnight) // 2)
    delta = newest - _NEWEST
    delta_us = (delta.days * 86_400 + delta.seconds) * 1_000_000
    out = []
    for r in fixture_rows():
        r = dict(r)
        for col in ("message_created_at", "conversation_started_at"):
            r[col] += delta_us
        r["date"] = datetime.fromtimestamp(r["message_created_at"] / 1e6, UTC).strftime("%Y-%m-%d")
        out.append(r)
    return out


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "hyp"
    monkeypatch.setenv("HYP_HOME", str(h))
    monkeypatch.setenv("HOME", HOME)  # the fixture's cwd is under /home/me: shown as `~`
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("HYP_DEBUG", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return h


@pytest.fixture
def filled(home: Path) -> Path:
    rows = shifted_rows()
    with Storage(Layout(home)) as st:
        st.commit(rows[:6], [])
        st.commit(rows[6:], [])
    return home


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err



def on_a_terminal(home: Path, *args: str, cols: int = 80, color: bool = False) -> str:
    """What `hyp ARGS` writes to a pseudo-terminal of `cols` columns (NO_COLOR unless `color`)."""
    pexpect = pytest.importorskip("pexpect")
    env = dict(os.environ, HYP_HOME=str(home), HOME=HOME, TZ="UTC", TERM="xterm-256color", NO_COLOR="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    if color:
        env.pop("NO_COLOR")
    child = pexpect.spawn(sys.executable, ["-m", "hypaware_tui", *args], env=env, dimensions=(60, cols),
                          encoding="utf-8", timeout=60)  # fmt: skip
    child.expect(pexpect.EOF)
    return child.before

def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, HYP_HOME=str(home), HOME=HOME, TZ="UTC")
    full.update(env)
    full["PYTHONPATH"] = os.pathsep.join([str(REPO), full.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "hypaware_tui", *args], env=full, capture_output=True, text=True, timeout=120
    )


# --- sql --------------------------------------------------------------------------------------------------


def test_count_as_json(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(
        capsys, "query", "sql", "select count(*) as n from ai_gateway_messages", "--format", "json"
    )
    assert code == 0 and err == ""
    assert json.loads(out) == [{"n": 15}]


def test_decimal_results_are_json_numbers(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A decimal literal makes a Decimal column (`1.5`, `x * 1.0`): it came out as the JSON string "1.5"."""
    code, out, _ = call(capsys, "query", "sql", "select 1.5 as f, 3 * 1.0 as g, sum(input_tokens) * 1.0 / 4 as h "
                        "from ai_gateway_messages", "--format", "json")  # fmt: skip
    assert code == 0
    (row,) = json.loads(out)
    assert row["f"] == 1.5 and row["g"] == 3 and isinstance(row["h"], int | float)


def test_json_round_trips_with_nested_json_columns(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(
        capsys, "query", "sql",
        "select message_id, previous_message_id, attributes, tool_args, status, is_sidechain, "
        "message_created_at, input_tokens from ai_gateway_messages where message_id in ('e1', 'a3', 'c3') "
        "order by message_id",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    rows = json.loads(out)
    assert [r["message_id"] for r in rows] == ["a3", "c3", "e1"]
    a3, c3, e1 = rows
    assert a3["previous_message_id"] == [] and isinstance(a3["attributes"], dict)
    assert e1["attributes"]["claude"]["api_error"] is True
    assert c3["attributes"]["codex"]["replayed_from_parent"] is True
    assert a3["tool_args"] is None and a3["status"] is None
    assert a3["input_tokens"] == 10 and e1["is_sidechain"] is None
    assert all(r["message_created_at"].endswith("Z") for r in rows)
    datetime.fromisoformat(a3["message_created_at"].replace("Z", "+00:00"))


@pytest.fixture
def with_json_like_text(home: Path) -> Path:
    """The fixture plus `j1`, whose text is itself valid JSON (`42`), as a message or a command output can be."""
    row = claude("j1", "2026-05-09T10:00:00Z", content_text="42", tool_args=canonical_json({"command": "ls"}))
    with Storage(Layout(home)) as st:
        st.commit([*shifted_rows(), row], [])
    return home


def sql_json(capsys: pytest.CaptureFixture[str], statement: str) -> list[dict]:
    code, out, err = call(capsys, "query", "sql", statement, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_json_output_nests_a_json_column_under_any_name(
    with_json_like_text: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON column came out nested only under its own name: `attributes as a`, a join's `attributes:b` or a
    CTE's column were strings of JSON text. What decides is the select item: a JSON column, aliased or
    qualified, through a CTE or a star, or json_extract(…) (JSON by definition) is nested."""
    (row,) = sql_json(capsys, f"""select attributes as a, m.tool_args t, m.attributes,
                                  json_extract(attributes, '$.gateway') as g,
                                  json_extract_string(attributes, '$.gateway.identity_source') src
                                  from {M} m where message_id = 'j1'""")
    assert row == {"a": {"gateway": {"identity_source": "native"}}, "t": {"command": "ls"},
                   "attributes": {"gateway": {"identity_source": "native"}},
                   "g": {"identity_source": "native"}, "src": "native"}  # fmt: skip
    (row,) = sql_json(capsys, f"""with x as (select message_id, tool_args as args from {M})
                                  select y.args as first, y.* exclude (message_id) from x y
                                  where message_id = 'j1'""")
    assert row == {"first": {"command": "ls"}, "args": {"command": "ls"}}
    (row,) = sql_json(capsys, f"select * from {M} a join {M} b using (part_id) where a.message_id = 'j1'")
    assert row["attributes"] == row["attributes:b"] == {"gateway": {"identity_source": "native"}}
    assert row["tool_args:b"] == {"command": "ls"} and row["content_text:b"] == "42"


def test_json_output_keeps_text_named_like_a_json_column_as_text(
    with_json_like_text: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`content_text as attributes` was parsed as JSON because of its name: the text `42` came out as the
    number 42 (and `null` would have been null). An expression is text whatever it is called: through a
    subquery's star and in a UNION whose other branch is a JSON column too."""
    (row,) = sql_json(capsys, f"""select content_text as attributes, upper(tool_args) as tool_args, '[1]' status
                                  from {M} where message_id = 'j1'""")
    assert row == {"attributes": "42", "tool_args": '{"COMMAND":"LS"}', "status": "[1]"}
    (row,) = sql_json(capsys, f"""select * from (select content_text as attributes, tool_args from {M}
                                  where message_id = 'j1') t""")
    assert row == {"attributes": "42", "tool_args": {"command": "ls"}}
    rows = sql_json(capsys, f"""(select tool_args from {M} where message_id = 'j1')
                                union all (select content_text from {M} where message_id = 'j1')""")
    assert sorted(r["tool_args"] for r in rows) == ["42", '{"command":"ls"}']


G = {"gateway": {"identity_source": "native"}}  # j1's attributes


def test_json_output_nests_json_passed_through_an_expression(
    with_json_like_text: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON passed through an aggregate, a window, coalesce, case, parentheses, a scalar subquery or an EXCEPT
    came out as a string, where the old rule (by name) nested it (an audit). What cannot be followed is judged by
    its name again, but then only an object or array is nested: `42` named like a JSON column stays text."""
    (row,) = sql_json(capsys, f"""select message_id, first(attributes) as attributes, min(tool_args) tool_args
                                  from {M} where message_id = 'j1' group by message_id""")
    assert row == {"message_id": "j1", "attributes": G, "tool_args": {"command": "ls"}}
    (row,) = sql_json(capsys, f"""select coalesce(tool_args, '{{}}') as tool_args, (attributes) as attributes,
                                  case when true then attributes end as status,
                                  first_value(attributes) over (partition by message_id) as raw_frame,
                                  (select tool_args from {M} where message_id = 'j1' limit 1) as tools,
                                  coalesce(content_text, '') as compact_metadata, (content_text) as
                                  previous_message_id from {M} where message_id = 'j1'""")
    assert row == {"tool_args": {"command": "ls"}, "attributes": G, "status": G, "raw_frame": G,
                   "tools": {"command": "ls"}, "compact_metadata": "42", "previous_message_id": "42"}  # fmt: skip
    # the rows of EXCEPT and INTERSECT are the first branch's: the other one does not decide
    for op, other in (("except", "'{}'"), ("intersect", """'{"command":"ls"}'""")):
        (row,) = sql_json(capsys, f"select tool_args from {M} where message_id = 'j1' {op} select {other}")
        assert row == {"tool_args": {"command": "ls"}}, op


def test_json_output_judges_a_joined_star_column_by_its_own_side(
    with_json_like_text: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A star over a join merged what its FROM items hold, JSON first: the right side's text `attributes:b`
    ('42') came out as the number 42. A `name:alias` column is judged by the FROM item `alias`."""
    (row,) = sql_json(capsys, f"""select * from {M} a join (select part_id, '42' as attributes, tool_args,
                                  content_text as status from {M}) b on a.part_id = b.part_id
                                  where a.message_id = 'j1'""")
    assert row["attributes"] == G and row["attributes:b"] == "42" and row["status:b"] == "42"
    assert row["tool_args:b"] == row["tool_args"] == {"command": "ls"}


def test_json_output_follows_renamed_replaced_and_mixed_case_star_columns(
    with_json_like_text: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CTE's column in capitals (the lexer lower-cased it), a star's RENAME and REPLACE and a parenthesized
    UNION branch were missed: JSON came out as a string, text '42' as the number 42."""
    (row,) = sql_json(capsys, f"""with x as (select attributes as Foo, content_text from {M}
                                  where message_id = 'j1') select * from x""")
    assert row == {"Foo": G, "content_text": "42"}
    (row,) = sql_json(capsys, f"""select * replace ('42' as tool_args) rename (attributes as a)
                                  from {M} where message_id = 'j1'""")
    assert row["a"] == G and row["tool_args"] == "42" and "attributes" not in row
    rows = sql_json(capsys, f"select tool_args from {M} where message_id = 'j1' union all (select '42')")
    assert sorted(r["tool_args"] for r in rows) == ["42", '{"command":"ls"}']


def test_empty_result_and_missing_dataset(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "query", "sql", "select * from ai_gateway_messages", "--format", "json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = call(capsys, "query", "sql", "select * from ai_gateway_usage", "--format", "csv")
    assert code == 0 and next(csv.reader(io.StringIO(out)))[0] == "usage_key"
    assert not home.exists()


def test_csv_round_trips_with_the_selected_columns(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(
        capsys, "query", "sql",
        "select message_id, content_text, attributes, model, message_created_at from ai_gateway_messages "
        "order by message_id",
        "--format", "csv",
    )  # fmt: skip
    assert code == 0 and "\r\n" in out  # RFC 4180 line ends
    rows = list(csv.reader(io.StringIO(out, newline="")))
    assert rows[0] == ["message_id", "content_text", "attributes", "model", "message_created_at"]
    body = {r[0]: r for r in rows[1:]}
    assert len(body) == 15
    assert json.loads(body["e1"][2])["claude"]["api_error"] is True  # JSON columns stay JSON text
    assert body["u1"][3] == ""  # null model
    assert body["u1"][1] == "fix the bug"
    assert body["a1"][4].endswith("Z")


def test_csv_quotes_commas_quotes_and_newlines(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "query", "sql", "select 'a,\"b\"\nc' as x, 1 as y", "--format", "csv")
    assert code == 0
    assert list(csv.reader(io.StringIO(out, newline=""))) == [["x", "y"], ['a,"b"\nc', "1"]]


def test_a_computed_list_is_json_text_in_csv(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """cli.md §7.1: nested values are JSON text in CSV, not Python's `['a', 'b']`, which no JSON reader takes
    (mutation audit: no test had a list in a CSV result)."""
    code, out, _ = call(capsys, "query", "sql", "select string_to_array('a,\"b', ',') as l", "--format", "csv")
    assert code == 0
    assert list(csv.reader(io.StringIO(out, newline=""))) == [["l"], ['["a","\\"b"]']]


@pytest.mark.parametrize(
    "statement",
    [
        "delete from ai_gateway_messages",
        "drop table ai_gateway_messages",
        "select 1; select 2",
        "insert into ai_gateway_messages select * from ai_gateway_messages",
        "create table t as select 1",
        "with x as (select 1) update ai_gateway_messages set model = 'x'",
    ],
)
def test_ddl_dml_and_two_statements_exit_2(
    filled: Path, capsys: pytest.CaptureFixture[str], statement: str
) -> None:
    code, out, err = call(capsys, "query", "sql", statement)
    assert (code, out) == (2, "")
    assert err == "hyp query sql: only a single SELECT statement is allowed\n"
    # Nothing was changed.
    assert json.loads(call(capsys, "query", "sql", "select count(*) as n from ai_gateway_messages",
                           "--format", "json")[1]) == [{"n": 15}]  # fmt: skip


def test_engine_errors_exit_2_with_the_engine_message(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = call(capsys, "query", "sql", "select no_such_col from ai_gateway_messages")
    assert (code, out) == (2, "")
    assert err.startswith("hyp query sql: ") and "no_such_col" in err
    code, out, err = call(capsys, "query", "sql", "select * form ai_gateway_messages")
    assert (code, out) == (2, "") and err.startswith("hyp query sql: ")


def test_json_paths_as_in_duckdb(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The spec's DuckDB SQL runs as written: `json_extract_string` on a JSON column, named as DuckDB names it."""
    statement = (
        "select json_extract_string(m.attributes, '$.claude.api_error'), count(*) as n from ai_gateway_messages m "
        "where source = 'claude' group by 1 order by 2"
    )
    code, out, err = call(capsys, "query", "sql", statement, "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == [
        {"json_extract_string(m.attributes, '$.claude.api_error')": "true", "n": 1},
        {"json_extract_string(m.attributes, '$.claude.api_error')": None, "n": 10},
    ]
    code, out, err = call(
        capsys, "query", "sql", "select json_extract(attributes, '$.a[*]') from ai_gateway_messages"
    )
    assert (code, out) == (2, "")
    assert err.startswith("hyp query sql: json_extract(): unsupported JSON path '$.a[*]' (wildcards")
    code, out, err = call(
        capsys, "query", "sql", "select json_extract(attributes, model) from ai_gateway_messages"
    )
    assert (code, out) == (2, "")
    assert err == (
        "hyp query sql: json_extract() takes a column of ai_gateway_messages and a JSON path in single quotes, "
        "as in json_extract(attributes, '$.gateway.identity_source')\n"
    )


BIG = 123456789012345678901234567890


def test_json_output_keeps_integers_beyond_64_bits_exact(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The stored JSON holds such integers exactly; orjson read them back as floats (`1.2345678901234568e+29`)
    and refused one of over 308 digits (the whole column then came out as a string)."""
    args = {"v": BIG, "neg": -(2**64) - 1, "u64": 2**64 - 1, "f": 1.5, "id": "12345678901234567890123"}
    rows = [
        claude("b1", "2026-05-09T10:00:00Z", tool_args=canonical_json(args)),
        claude("b2", "2026-05-09T10:00:01Z", tool_args=canonical_json({"v": 10**400 + 7})),
    ]
    with Storage(Layout(home)) as st:
        st.commit(rows, [])
    code, out, err = call(
        capsys, "query", "sql",
        "select tool_args, json_extract(tool_args, '$.v') as v from ai_gateway_messages order by message_id",
        "--format", "json",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert json.loads(out) == [{"tool_args": args, "v": BIG}, {"tool_args": {"v": 10**400 + 7}, "v": 10**400 + 7}]
    assert '"v": 123456789012345678901234567890' in out and "e+" not in out
    code, out, _ = call(capsys, "query", "sql", "select tool_args from ai_gateway_messages order by message_id",
                        "--format", "csv")  # fmt: skip
    assert code == 0 and list(csv.reader(io.StringIO(out)))[1] == [canonical_json(args)]


def test_usage_errors_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "query", "sql")
    assert (code, out) == (2, "") and err.startswith("hyp query sql: ")
    code, out, err = call(capsys, "query", "sql", "select 1", "--format", "xml")
    assert (code, out) == (2, "") and "--format" in err
    code, out, err = call(capsys, "query", "overview", "--days", "-1")
    assert (code, out) == (2, "") and "--days" in err
    assert not home.exists()


def test_damaged_file_exits_1_naming_it(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = sorted(Layout(filled).dataset_root.rglob("*.parquet"))[0]
    victim.write_bytes(b"junk")
    code, out, err = call(capsys, "query", "sql", "select count(*) from ai_gateway_messages")
    assert (code, out) == (1, "") and victim.name in err
    code, out, err = call(capsys, "query", "overview", "--json")  # (with --json, one document: the error)
    assert code == 1 and victim.name in err and victim.name in json.loads(out)["error"]


def test_table_redirected_keeps_cells_whole_and_counts_on_stderr(filled: Path) -> None:
    p = run(filled, "query", "sql", "select message_id, content_text, attributes from ai_gateway_messages "
            "where message_id = 'e1'")  # fmt: skip
    assert p.returncode == 0
    assert p.stderr == "1 row\n"
    assert '{"claude":{"api_error":true},"gateway":{"identity_source":"native"}}' in p.stdout
    assert "…" not in p.stdout and ANSI not in p.stdout


def test_a_redirected_table_pads_no_line_to_a_long_cell(filled: Path) -> None:
    """Rich padded every line of a redirected table to the widest cell: `select content_text` over 3,766 rows
    wrote 157 MB of lines of 125,394 characters (an audit). Columns are aligned up to REDIRECT_PAD_MAX; a
    longer cell is written whole on its own line."""
    long = "y" * 2000
    p = run(filled, "query", "sql", "select role, case when role = 'user' then lpad('y', 2000, 'y') else role "
            "end as t, count(*) as n from ai_gateway_messages group by role order by role")  # fmt: skip
    assert p.returncode == 0 and p.stderr.endswith(" rows\n"), p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["role", "t", "n"] and set(lines[1]) == {"─"}
    body = {line.split()[0]: line for line in lines[2:]}
    assert long in body["user"] and len(body["user"]) < 2000 + 40
    assert all(len(line) < 160 for role, line in body.items() if role != "user")
    # the other columns line up, the numbers to the right
    ends = {len(line) for role, line in body.items() if role != "user"}
    assert len(ends) == 1 and ends == {len(lines[0])}


def test_table_on_a_terminal_cuts_long_cells(filled: Path) -> None:
    statement = "select message_id, attributes, attributes as a2, attributes as a3 from ai_gateway_messages"
    text = on_a_terminal(filled, "query", "sql", statement, color=True)
    assert "…" in text and "15 rows" in text
    assert ANSI in text  # colour (bold headers) on a terminal…
    text = on_a_terminal(filled, "query", "sql", statement)
    assert "…" in text and ANSI not in text  # …but none with NO_COLOR
    assert max(len(line) for line in text.splitlines()) <= 80


# --- overview --------------------------------------------------------------------------------------------


def test_overview_json_rows_equal_select_count_over_the_period(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = call(capsys, "query", "overview", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert set(doc) == {"period", "rows", "sessions", "models", "days", "repos", "tools"}
    assert doc["period"]["days"] == 30 and doc["period"]["time_zone"] == "UTC"
    since, until = doc["period"]["since"], doc["period"]["until"]
    code, out, _ = call(
        capsys, "query", "sql",
        "select count(*) as n from ai_gateway_messages where message_created_at >= "
        f"'{since}'::timestamptz and message_created_at <= '{until}'::timestamptz",
        "--format", "json",
    )  # fmt: skip
    assert json.loads(out) == [{"n": doc["rows"]}]
    # …and equals the fixture rows in the period, counted by hand.
    since_us = int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() * 1e6)
    until_us = int(datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() * 1e6)
    rows = shifted_rows()
    assert doc["rows"] == sum(1 for r in rows if since_us <= r["message_created_at"] <= until_us) >= 14
    assert doc["models"] and doc["days"] and doc["repos"] and doc["tools"]
    assert doc["repos"][0]["repo"] == "~/src/app"
    # Token totals as hand-computed in test_query (streamed split once, API error and replay excluded).
    # (`out_edge`, 7000 of each, falls inside or outside the period depending on the time of day.)
    out_edge = next(r for r in rows if r["message_id"] == "out_edge")
    extra = 7000 if since_us <= out_edge["message_created_at"] else 0
    opus = next(m for m in doc["models"] if m["model"] == "claude-opus-4")
    assert (opus["input_tokens"], opus["cached_tokens"], opus["output_tokens"]) == (
        15 + extra,
        302 + extra,
        67 + extra,
    )


def test_overview_text(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "query", "overview", "--days", "7")
    assert code == 0 and err == ""
    lines = out.splitlines()
    today = datetime.now(UTC).date()
    assert lines[0].startswith(f"{today - timedelta(days=6)} → {today} (UTC) · ")
    assert lines[0].endswith(" rows") and "active day" in lines[0]
    for heading in ("Tokens per model", "Sessions per day", "Top repos", "Top tools"):
        assert heading in lines
    assert "claude-opus-4" in out and "~/src/app" in out and "Bash" in out
    day_lines = lines[lines.index("Sessions per day") + 1 : lines.index("Top repos") - 1]
    assert len(day_lines) == 7 and any("█" in line for line in day_lines)
    assert ANSI not in out


def test_overview_redirected_keeps_long_paths_and_headers_whole(home: Path) -> None:
    """cli.md §7.1 cuts cells on a TTY only. `hyp query overview > ov.txt` laid its tables out for 80 columns:
    a long working directory came out as `/tmp/…/home/code/ml-pipeli…` and the headers as `sessi…`."""
    long_repo = "/srv/builds/" + "/".join(["a-rather-long-directory-name"] * 4) + "/ml-pipeline"
    rows = [dict(r, cwd=long_repo) if r["cwd"] == "/work/other" else r for r in shifted_rows()]
    with Storage(Layout(home)) as st:
        st.commit(rows, [])
    # (--days 40: the fixture spans 30 days and a bit; with the default 30, its oldest session fell outside the
    # window in runs soon after midnight UTC, when `shifted_rows` puts its newest row just past 00:00)
    p = run(home, "query", "overview", "--days", "40")  # stdout is a pipe
    assert p.returncode == 0 and p.stderr == ""
    lines = p.stdout.splitlines()
    assert "…" not in p.stdout and ANSI not in p.stdout
    headers = {
        "Tokens per model": ["provider", "model", "input", "cached", "output"],
        "Top repos": ["repo", "sessions", "messages"],
        "Top tools": ["tool", "calls"],
    }
    for heading, names in headers.items():
        assert lines[lines.index(heading) + 1].split() == names
        assert set(lines[lines.index(heading) + 2]) == {"─"}
    repos = lines[lines.index("Top repos") + 3 :]
    repos = repos[: repos.index("")]
    assert [line.split() for line in repos] == [["~/src/app", "4", "11"], [long_repo, "2", "4"]]
    assert len(repos[1]) > 80
    # A terminal keeps its layout: the table fits its 80 columns, the long path cut with `…`.
    text = on_a_terminal(home, "query", "overview", "--days", "40")
    shown = text.splitlines()
    assert max(len(line) for line in shown) <= 80 and long_repo not in text
    assert any(line.startswith("/srv/builds/a-rather-long") and "…" in line for line in shown)


def test_overview_on_a_terminal_cuts_a_long_model_name_not_its_token_counts(home: Path) -> None:
    """Every column of the overview's tables was no_wrap with no cap: on a terminal of 100 columns a Bedrock
    inference-profile ARN as the model printed `a…  arn:aws:…clau…   1…`, its 1,234,567 input tokens cut to one
    digit and the cached and output columns gone. The names are cut now; the numbers keep their width."""
    arn = ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/"
           "us.anthropic.claude-sonnet-4-20250514-v1:0")  # fmt: skip
    rows = [dict(r, model=arn, input_tokens=1_234_567) if r["model"] == "claude-haiku-4" else r
            for r in shifted_rows()]  # fmt: skip
    with Storage(Layout(home)) as st:
        st.commit(rows, [])
    shown = on_a_terminal(home, "query", "overview", cols=100).splitlines()
    table = shown[shown.index("Tokens per model") + 1 :][:5]
    # (the provider gives way first, down to `ant…`: the model tells the rows apart)
    assert table[0].split() == ["pro…", "model", "input", "cached", "output"]
    (line,) = [x for x in table if "arn:" in x]
    assert len(line) <= 100 and arn not in line
    assert line.startswith("ant…   arn:aws:bedrock:us-east-1:123456789012:application-inference-p…")
    assert line.split()[2:] == ["1,234,567", "0", "5"] and line.split()[1].endswith("…")
    assert max(len(x) for x in shown) <= 100
    # 50 columns: the provider gives way before the models (the demo's were all `claude-…` next to a whole
    # `anthropic`)
    narrow = on_a_terminal(home, "query", "overview", cols=50).splitlines()
    models = [x.split()[1] for x in narrow[narrow.index("Tokens per model") + 3 :][:4] if x.strip()]
    assert "claude-opus-4" in models and len(set(models)) == len(models), narrow
    # redirected, the name stays whole
    p = run(home, "query", "overview")
    assert p.returncode == 0 and f"anthropic   {arn}   1,234,567        0        5" in p.stdout


def test_overview_nothing_imported(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "query", "overview")
    assert (code, out, err) == (0, "Nothing imported yet.\n", "")
    code, out, _ = call(capsys, "query", "overview", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["rows"] == 0 and doc["models"] == [] and len(doc["days"]) == 30
    assert not home.exists()


def test_overview_with_only_older_data_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import make_row

    with Storage(Layout(home)) as st:
        st.commit([make_row(created="2020-01-01T00:00:00Z")], [])
    code, out, _ = call(capsys, "query", "overview", "--days", "3")
    assert code == 0 and out.startswith("No messages from ") and "--days 0" in out
    code, out, _ = call(capsys, "query", "overview", "--days", "0", "--json")
    assert json.loads(out)["rows"] == 1


# --- schema ----------------------------------------------------------------------------------------------


def test_schema(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(capsys, "query", "schema")
    assert code == 0 and "ai_gateway_messages" in out and "ai_gateway_usage" in out
    assert "message_created_at" in out and "Datetime(us, UTC)" in out
    code, out, _ = call(capsys, "query", "schema", "ai_gateway_messages", "--json")
    doc = json.loads(out)
    assert [r["name"] for r in doc["relations"]] == ["ai_gateway_messages"]
    cols = doc["relations"][0]["columns"]
    assert [c["name"] for c in cols] == [*COLUMN_NAMES, "source"]
    assert set(cols[0]) == {"name", "type", "nullable", "description"}
    code, out, err = call(capsys, "query", "schema", "nope")
    assert (code, out) == (2, "") and "unknown relation 'nope'" in err
    # a usage error: its usage line follows (cli.md §1), as for a bad flag value
    assert err.splitlines()[1:] == ["Usage: hyp query schema [OPTIONS] [NAME]", "Try 'hyp query schema --help' for help."]
    assert not home.exists()


# --- read-only, colour, network ---------------------------------------------------------------------------


def test_no_query_command_creates_hyp_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "missing" / "hyp"
    monkeypatch.setenv("HYP_HOME", str(home))
    for args in (
        ["query", "sql", "select 1"],
        ["query", "sql", "select count(*) from ai_gateway_usage", "--format", "json"],
        ["query", "sql", "select * from ai_gateway_messages", "--format", "csv"],
        ["query", "overview"],
        ["query", "overview", "--json", "--days", "0"],
        ["query", "schema"],
        ["query", "schema", "--json"],
        ["status"],
        ["status", "--json"],
    ):
        code, _, err = call(capsys, *args)
        assert code == 0, (args, err)
    p = run(home, "query", "overview", "--json")  # and the real program
    assert p.returncode == 0 and json.loads(p.stdout)["rows"] == 0
    assert not home.exists() and not home.parent.exists()


def test_redirected_output_and_no_color_have_no_escape_codes(filled: Path) -> None:
    for env, args in (
        ({}, ["query", "sql", "select message_id, model from ai_gateway_messages"]),
        ({}, ["query", "overview"]),
        ({"NO_COLOR": "1"}, ["query", "schema"]),
    ):
        p = run(filled, *args, **env)
        assert p.returncode == 0 and p.stdout
        assert ANSI not in p.stdout and ANSI not in p.stderr


def test_overview_on_a_terminal_without_color(filled: Path) -> None:
    text = on_a_terminal(filled, "query", "overview", cols=100)
    assert "Tokens per model" in text and ANSI not in text


_NO_SOCKETS = """
import json, socket, sys
def _blocked(*a, **k):
    raise OSError("network access blocked by the test")
socket.socket = _blocked
socket.create_connection = _blocked
socket.socketpair = _blocked
from hypaware_tui.cli import main
for args in json.loads(sys.argv[1]):
    try:
        main(args)
    except SystemExit as exc:
        sys.stderr.write(f"EXIT {exc.code}\\n")
"""


def test_commands_complete_with_sockets_blocked(filled: Path) -> None:
    env = dict(os.environ, HYP_HOME=str(filled), HOME=HOME, TZ="UTC")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    commands = [
        ["query", "sql", "select count(*) as n from ai_gateway_messages", "--format", "json"],
        ["query", "overview", "--json"],
        ["query", "schema", "--json"],
        ["status", "--json"],
    ]
    p = subprocess.run([sys.executable, "-c", _NO_SOCKETS, json.dumps(commands)], env=env, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert [line for line in p.stderr.splitlines() if line.startswith("EXIT")] == ["EXIT 0"] * 4, p.stderr
    decoder = json.JSONDecoder()
    docs, pos, text = [], 0, p.stdout
    while pos < len(text.rstrip()):
        doc, end = decoder.raw_decode(text, pos)
        docs.append(doc)
        pos = end + 1
    assert docs[0] == [{"n": 15}] and docs[1]["rows"] >= 14 and len(docs) == 4
    # The wrapper really blocks sockets.
    p = subprocess.run([sys.executable, "-c", "import socket\n" + _NO_SOCKETS.split("from hypaware_tui")[0]
                        + "socket.socket()"], env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode != 0 and "network access blocked" in p.stderr


def test_overview_days_follow_a_posix_tz_like_backfill_dates(filled: Path) -> None:
    """cli.md §7.2: days are local calendar days. With a POSIX TZ (`JST-9`, not an IANA name) the overview
    fell back to /etc/localtime (UTC here) while `hyp backfill` read dates in JST."""
    p = run(filled, "query", "overview", "--days", "2", "--json", TZ="JST-9")
    assert p.returncode == 0, p.stderr
    period = json.loads(p.stdout)["period"]
    assert period["time_zone"] == "JST, UTC+09:00" and period["since"].endswith("T15:00:00Z"), period  # midnight


def _last_fall_back_before_today() -> date:
    """The last Sunday of October (clocks go back in Berlin) before today, UTC."""
    today = datetime.now(UTC).date()
    year = today.year if today > date(today.year, 10, 31) else today.year - 1
    last = date(year, 10, 31)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def test_overview_days_follow_the_dst_rules_of_a_posix_tz(home: Path) -> None:
    """cli.md §7.2: days are local calendar days. Under `TZ=CET-1CEST,M3.5.0,M10.5.0/3` (Berlin's rules
    without an IANA name) the overview took now's offset for the whole period: a row at 00:30 CEST on the day
    clocks go back was counted on the day before, and the period started an hour late. The day list, the period
    and the counts are now those of `TZ=Europe/Berlin`; the header names the zone by its abbreviations and
    offsets over the period (`hyp backfill list` names it so), as does the JSON's `time_zone`."""
    from helpers import make_row

    sunday = _last_fall_back_before_today()
    saturday_late = datetime.combine(sunday, datetime.min.time(), UTC) - timedelta(hours=1, minutes=30)
    with Storage(Layout(home)) as st:  # 22:30Z on Saturday: 00:30 CEST on Sunday
        st.commit([make_row(created=saturday_late, date=saturday_late.date().isoformat())], [])
    days = str((datetime.now(UTC).date() - sunday).days + 8)  # (a week of summer time in the period)
    runs = [run(home, "query", "overview", "--days", days, "--json", TZ=tz)
            for tz in ("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Berlin")]
    assert [p.returncode for p in runs] == [0, 0], runs
    posix, berlin = (json.loads(p.stdout) for p in runs)
    assert [d for d in posix["days"] if d["messages"]] == [{"date": sunday.isoformat(), "sessions": 1,
                                                             "messages": 1}]  # fmt: skip
    assert posix["days"] == berlin["days"]
    assert posix["period"]["since"] == berlin["period"]["since"]
    assert posix["period"]["since"].endswith("T22:00:00Z")  # midnight CEST
    assert posix["period"]["time_zone"] == "CET/CEST, UTC+01:00/+02:00"
    text = run(home, "query", "overview", "--days", days, TZ="CET-1CEST,M3.5.0,M10.5.0/3")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].startswith(
        f"{posix['days'][0]['date']} → {posix['days'][-1]['date']} (CET/CEST, UTC+01:00/+02:00) · 1 active day"
    ), text.stdout


def test_overview_names_a_posix_tz_by_its_utc_offset(filled: Path) -> None:
    """`TZ=UTC+3` is UTC−03:00 (POSIX counts west): the days were computed at −03:00 but the header said
    `(UTC)`; an unknown name (`Mars/Olympus`: glibc keeps UTC, calling it `Mars`) was printed as `(Mars)`."""
    zones = [("UTC+3", "UTC-03:00")] + [("Mars/Olympus", "Mars, UTC")] * sys.platform.startswith("linux")
    for tz, name in zones:
        p = run(filled, "query", "overview", "--days", "3", TZ=tz)
        assert p.returncode == 0, p.stderr
        assert f"({name}) · " in p.stdout.splitlines()[0], p.stdout
        assert json.loads(run(filled, "query", "overview", "--json", TZ=tz).stdout)["period"]["time_zone"] == name


def test_overview_of_everything_with_an_epoch_dated_row_stays_readable(home: Path, capsys) -> None:
    """A legacy Codex document without any timestamp has rows at the epoch (schema.md §3.2 rule 4); with
    retention 0 they are stored, and `overview --days 0` printed one line per day since 1970: ~20,800 lines.
    Long runs of days without a session are one line; the JSON keeps every day."""
    rows = shifted_rows()
    epoch = dict(rows[0], part_id="epoch#0", message_id="epoch", message_created_at=0, conversation_started_at=0,
                 date="1970-01-01")
    with Storage(Layout(home)) as st:
        st.commit(rows + [epoch], [])
    code, out, err = call(capsys, "query", "overview", "--days", "0")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) < 100
    assert any(line.startswith("  1970-01-02 … ") and "days without sessions" in line for line in lines), out
    code, out, _ = call(capsys, "query", "overview", "--days", "0", "--json")
    days = json.loads(out)["days"]
    assert days[0]["date"] == "1970-01-01" and len(days) > 20_000


def test_overview_of_a_row_of_the_year_1_west_of_utc(home: Path, capsys, monkeypatch) -> None:
    """`hyp query overview --days 0` exited 1 in Los Angeles with a row of 0001-01-01T00:00Z (OverflowError:
    the year 0 in local time). The rows older than the last 100 years are one line of the day series."""
    from helpers import make_row

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    with Storage(Layout(home)) as st:
        st.commit(shifted_rows() + [make_row(created="0001-01-01T00:00:00Z", date="0001-01-01", message_id="old",
                                             session_id="old", conversation_id="old")], [])
    code, out, err = call(capsys, "query", "overview", "--days", "0")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("0001-01-01 → ") and "(America/Los_Angeles)" in lines[0] and "16 rows" in lines[0]
    first = (datetime.now(ZoneInfo("America/Los_Angeles")).date() - timedelta(days=36_499)).isoformat()
    assert f"  0001-01-01 … before {first}  1 session, 1 message" in lines
    assert len(lines) < 100


def test_a_statement_opening_with_a_comment_and_a_relation_name_in_capitals(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hyp query sql "-- top sources…"` read as an option with no word on the way out; `hyp query schema
    AI_GATEWAY_USAGE` said unknown relation, while SQL names are case-insensitive (an audit)."""
    statement = "-- rows\nselect count(*) as n from ai_gateway_messages"
    code, out, err = call(capsys, "query", "sql", statement)
    assert (code, out) == (2, "")
    assert "put -- before it, hyp query sql -- '-- rows…'" in err
    code, out, err = call(capsys, "query", "sql", "--format", "json", "--", statement)
    assert code == 0 and json.loads(out) == [{"n": 15}], err
    code, out, err = call(capsys, "query", "schema", "AI_GATEWAY_USAGE", "--json")
    assert code == 0 and [r["name"] for r in json.loads(out)["relations"]] == ["ai_gateway_usage"], err


def test_json_and_csv_stay_whole_under_a_narrow_encoding_and_names_stay_on_their_line(filled: Path) -> None:
    """With PYTHONIOENCODING=ascii the tolerance meant for tables wrote `?` into JSON and CSV data (exit 0);
    they are UTF-8 whatever the locale (cli.md §1). A name made of a literal with a newline broke the header
    of a redirected table."""
    statement = "select '漢字é' as k"
    p = run(filled, "query", "sql", statement, "--format", "json", PYTHONIOENCODING="ascii")
    assert p.returncode == 0 and json.loads(p.stdout.encode("utf-8", "surrogateescape")) == [{"k": "漢字é"}]
    raw = subprocess.run([sys.executable, "-m", "hypaware_tui", "query", "sql", statement, "--format=csv"],
                         env=dict(os.environ, HYP_HOME=str(filled), HOME=HOME, PYTHONIOENCODING="latin-1",
                                  PYTHONPATH=str(REPO)), capture_output=True, timeout=60)  # fmt: skip
    assert raw.returncode == 0 and raw.stdout.decode("utf-8").splitlines() == ["k", "漢字é"]
    p = run(filled, "query", "sql", "select 'a\nb', 1 as n")
    assert p.stdout.splitlines()[0].split() == ["'a\\nb'", "n"]


def test_json_output_counts_the_branch_after_except_and_judges_by_name_what_is_not_paired(
    with_json_like_text: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`a EXCEPT b UNION ALL c` returns c's rows, but every branch after an EXCEPT or INTERSECT was ignored: c's
    text '[1]' came out as the list [1]. Columns `"A"` (JSON) and `"a"` (text) were one name, JSON winning; a
    UNION BY NAME was paired by position. A column is nested only if JSON in every branch whose rows it holds:
    text in one makes it text (as a UNION of a JSON column and a literal)."""
    rows = sql_json(capsys, f"""select tool_args as x from {M} where message_id = 'j1' except select tool_args
                                from {M} where 1 = 0 union all select '[1]' as x from {M} where message_id = 'j1'""")
    assert sorted(r["x"] for r in rows) == ["[1]", '{"command":"ls"}']
    rows = sql_json(capsys, f"""select * from (select 'x' as attributes from {M} intersect select 'x' as
                                attributes from {M} union all select attributes from {M} where message_id = 'j1')
                                t order by attributes""")
    assert [r["attributes"] for r in rows] == ["x", '{"gateway":{"identity_source":"native"}}']
    rows = sql_json(capsys, f"""select "a" from (select tool_args as "A", '[1]' as "a" from {M}
                                where message_id = 'j1') t""")
    assert rows == [{"a": "[1]"}]
    rows = sql_json(capsys, f"""select * from (select tool_args as a, tool_args as b from {M} where message_id
                                = 'j1' union all by name select tool_args as b, '[2]' as a from {M}
                                where message_id = 'j1') t order by a""")
    assert [r["a"] for r in rows] == ["[2]", '{"command":"ls"}']


def test_sql_usage_names_the_statement_and_days_errors_read_as_days(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`Usage: hyp query sql [OPTIONS] {SELECT}` read as the literal word to type; `--days <int range>` said
    `'x' is not a valid int range` (an audit). cli.md §7.1-7.2: `"<statement>"`, `--days N`."""
    code, out, _ = call(capsys, "query", "sql", "--help")
    assert code == 0 and out.startswith("Usage: hyp query sql [OPTIONS] STATEMENT\n")
    assert "  STATEMENT  One SELECT (or WITH … SELECT) statement." in out
    code, out, _ = call(capsys, "query", "overview", "--help")
    assert code == 0 and "  --days N " in out and "int range" not in out
    code, out, err = call(capsys, "query", "overview", "--days", "x")
    assert (code, out) == (2, "")
    assert err.splitlines()[0] == "hyp query overview: invalid value for '--days': 'x' is not a whole number of days."
    code, out, err = call(capsys, "query", "overview", "--days", "-1")
    assert err.splitlines()[0] == "hyp query overview: invalid value for '--days': -1 is not in the range 0<=x<=36500."


def test_options_after_double_dash_get_the_command_that_works(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hyp query sql -- "-- weekly…" --format csv` (an audit): the hint said to put -- before the statement,
    which the user had done; the fix is the options before `--`. Without `--`, the statement read as an option
    was shown with its line break as a literal `\\x0a`."""
    statement = "-- weekly\nselect 1 as x"
    code, out, err = call(capsys, "query", "sql", "--", statement, "--format", "csv")
    assert (code, out) == (2, "")
    assert err.splitlines()[:3] == [
        "hyp query sql: got unexpected extra argument(s) (--format csv)",
        "Everything after -- is the statement: put the options before --, hyp query sql --format csv -- "
        "'-- weekly…'",
        "Usage: hyp query sql [OPTIONS] STATEMENT",
    ]
    code, out, err = call(capsys, "query", "sql", "--format", "csv", "--", statement)
    assert (code, out) == (0, "x\r\n1\r\n"), err
    code, out, err = call(capsys, "query", "sql", statement, "--format", "csv")
    assert (code, out) == (2, "")
    assert err.splitlines()[:2] == [
        "hyp query sql: no such option: -- weekly…",
        "A statement that starts with -- is read as an option: put -- before it, hyp query sql --format csv -- "
        "'-- weekly…'",
    ]
    # a short one-line statement is shown whole (no `…`); other usage errors get no hint
    code, out, err = call(capsys, "query", "sql", "-- x", "--format", "json")
    assert err.splitlines()[:2] == [
        "hyp query sql: no such option: -- x",
        "A statement that starts with -- is read as an option: put -- before it, hyp query sql --format json -- "
        "'-- x'",
    ]
    code, out, err = call(capsys, "query", "sql", "--", "select 1", "select 2")
    assert code == 2 and err.splitlines()[1].startswith("Usage: ")
    # no hint that would fail too (an argument that is no option of hyp query sql, an option given twice),
    # and the statement quoted for a shell (a review audit)
    for args in (["--", "select 1", "-- second"], ["--", "select 1", "-1"],
                 ["--format=csv", "--", "select 1", "--format", "json"]):
        code, out, err = call(capsys, "query", "sql", *args)
        assert code == 2 and err.splitlines()[1].startswith("Usage: "), (args, err)
    code, out, err = call(capsys, "query", "sql", "--", 'select "x" from $t', "--format", "csv")
    assert err.splitlines()[1].endswith("""hyp query sql --format csv -- 'select "x" from $t'"""), err


@pytest.mark.parametrize(
    ("statement", "word"),
    [("selec 1", "selec"), ("SELCT * from ai_gateway_messages", "SELCT"), ("(selct 1)", "selct"),
     ("wiht x as (select 1) select * from x", "wiht"), ("créer 1", "créer")],
)  # fmt: skip
def test_a_typo_in_the_first_word_is_not_read_as_a_refusal(
    home: Path, capsys: pytest.CaptureFixture[str], statement: str, word: str
) -> None:
    """`hyp query sql "selec 1"` said `only a single SELECT statement is allowed`: a typo read as a policy
    refusal (cli.md §7.1: a parse error gets exit 2 and a helpful message). Real statements of another kind
    keep the spec's message (test_ddl_dml_and_two_statements_exit_2)."""
    code, out, err = call(capsys, "query", "sql", statement)
    assert (code, out) == (2, "")
    assert err == f'hyp query sql: "{word}" is not SELECT or WITH: only one read-only SELECT statement can be run\n'


EVIL = "\x1b]0;PWNED\x07x\x1b[2J\x9b31m"  # retitle the terminal, clear the screen, a one-character CSI


def _evil_rows() -> list[dict]:
    rows = []
    for r in shifted_rows():
        r = dict(r)
        if r["cwd"] == "/work/other":
            r["cwd"] = "/work/" + EVIL
        if r.get("model"):
            r["model"] = "m" + EVIL
        if r.get("tool_name"):
            r["tool_name"] = "t" + EVIL
        if r.get("content_text"):
            r["content_text"] = "c" + EVIL
        rows.append(r)
    return rows


def test_control_characters_from_the_history_never_reach_the_terminal(home: Path) -> None:
    """A working directory, model, tool name or text in a transcript is anybody's (a web page a tool fetched):
    its escape sequences went to the terminal raw from `hyp query sql` and `hyp query overview` (the title
    changed, the screen cleared). Tables and the overview show them as escapes, on a terminal and redirected;
    JSON and CSV keep the exact text."""
    with Storage(Layout(home)) as st:
        st.commit(_evil_rows(), [])
    shown = "\\x1b]0;PWNED\\x07x\\x1b[2J\\x9b31m"
    sql = "select cwd, model, tool_name, content_text from ai_gateway_messages where content_text is not null"
    for args in (("query", "sql", sql), ("query", "overview")):
        p = run(home, *args)  # redirected
        assert p.returncode == 0, p.stderr
        assert "\x1b" not in p.stdout and "\x9b" not in p.stdout and "\x07" not in p.stdout, args
        assert shown in p.stdout, (args, p.stdout)
    p = run(home, "query", "sql", "--format", "json", sql)
    assert any(EVIL in v for row in json.loads(p.stdout) for v in row.values() if isinstance(v, str))
    for args in (["query", "sql", "select cwd, model from ai_gateway_messages where model is not null"],
                 ["query", "overview"]):
        text = on_a_terminal(home, *args, cols=200)
        assert "PWNED\x07" not in text and "\x1b[2J" not in text, args
        assert "\\x1b]0;PWNED" in text, (args, text)


def test_the_wizards_first_look_shows_control_characters_and_markup_as_text(home: Path) -> None:
    """The Done screen's first look put a model name from a transcript into a Rich table as a string (read as
    markup) and repos as raw text: `ESC ] 0 ; … BEL` in a working directory retitled the terminal."""
    from rich.console import Console

    from hypaware_tui.core.query import overview
    from hypaware_tui.screens.done import DoneScreen

    rows = _evil_rows()
    for r in rows:
        if r.get("model"):
            r["model"] = "[link=https://example.com]m[/link]" + EVIL
    with Storage(Layout(home)) as st:
        st.commit(rows, [])
    ov = overview(Layout(home), days=0)
    console = Console(width=200, record=True, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(DoneScreen._overview_main(ov, 200))
    console.print(DoneScreen._top_table("Top repos", "sessions", [(r.repo, r.sessions) for r in ov.repos]))
    raw = console.file.getvalue()
    assert "PWNED\x07" not in raw and "\x1b[2J" not in raw and "\x9b" not in raw and "\x1b]8;" not in raw
    text = console.export_text()
    assert "[link=https://example.com]m[/link]\\x1b]0;PWNED\\x07x\\x1b[2J\\x9b31m" in text, text
    assert "/work/\\x1b]0;PWNED" in text, text


def test_invisible_characters_that_change_how_a_line_reads_are_shown(home: Path) -> None:
    """U+202E in a working directory turned the rest of the overview's line around on a terminal that does
    bidi (a repo read as another); a zero-width space or a line separator hid in it too. They are shown as
    escapes; emoji sequences (zero-width joiner) and right-to-left text (its marks) stay as they are."""
    from hypaware_tui.core.fmt import printable

    assert printable("a\u202eb\u2066c\u200bd\u2028e\ufefff") == "a\\u202eb\\u2066c\\u200bd\\u2028e\\ufefff"
    assert printable("👨\u200d👩 \u200fשלום é") == "👨\u200d👩 \u200fשלום é"
    # a plain output line (`out`, `err`) keeps its tabs: a launchd plist printed by `hyp daemon install
    # --dry-run` is indented with them, and showed `\t` for each
    assert printable("<dict>\n\t<key>Label</key>", newlines=True) == "<dict>\n\t<key>Label</key>"
    rows = [dict(r, cwd="/work/\u202etxt.exe") if r["cwd"] == "/work/other" else r for r in shifted_rows()]
    with Storage(Layout(home)) as st:
        st.commit(rows, [])
    p = run(home, "query", "overview")
    assert p.returncode == 0 and "\u202e" not in p.stdout and "/work/\\u202etxt.exe" in p.stdout


def test_the_all_data_overview_reads_its_rows_from_the_listing_it_deduplicated(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hyp query overview --days 0` looked for `part_id`s stored twice in one listing of the files, found none,
    then streamed the rows from a second listing. A compaction that wrote its merged file between the two (its
    inputs not yet removed) made every row of the partition count twice (9,054 rows for 7,816)."""
    import shutil

    from hypaware_tui.core import dataset, query
    from hypaware_tui.core.ids import uuid7_hex

    layout = Layout(home)
    with Storage(layout) as st:
        st.commit(shifted_rows(), [])
    expected = query.overview(layout, days=0).rows
    real = dataset.relation_copies

    def compaction_meanwhile(raw, hashes=None):
        found = real(raw, hashes)
        for part in list(layout.dataset_root.rglob("part-*.parquet")):  # the "merged" copies, written now
            shutil.copy(part, part.with_name(f"part-{uuid7_hex()}.parquet"))
        return found

    monkeypatch.setattr(query, "relation_copies", compaction_meanwhile)
    assert query.overview(layout, days=0).rows == expected


def test_a_json_column_nested_a_thousand_deep_is_queried_and_printed(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stored value may nest 1,024 deep (the importers keep it). `json_extract_string` gave null for every
    path of such a row (Polars' parser stops at 128 levels), and on 3.11 `json_extract` and `--format json`
    died with a RecursionError ("unexpected error")."""
    deep = '{"depth":1000,"x":' + "[" * 1000 + "]" * 1000 + "}"
    row = claude("deep", "2026-05-09T10:00:00Z", content_text="deep", tool_args=deep)
    with Storage(Layout(home)) as st:
        st.commit([*shifted_rows(), row], [])
    code, out, err = call(capsys, "query", "sql", "select json_extract_string(tool_args, '$.depth') as s, "
                          "json_extract(tool_args, '$.x') as e, tool_args from ai_gateway_messages "
                          "where message_id = 'deep'", "--format", "json")
    assert code == 0, err
    assert '"s": "1000"' in out and out.count("[") >= 2000 and out.count("]") >= 2000


def test_json_extract_string_of_an_index_before_the_first_is_null(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`[#-4]` of a list of three is no element (DuckDB: null); Polars' path matching gave the first one."""
    row = claude("neg", "2026-05-09T10:00:00Z", content_text="neg", tool_args='{"a":{"b":[1,2,3]}}')
    with Storage(Layout(home)) as st:
        st.commit([*shifted_rows(), row], [])
    got = sql_json(capsys, "select json_extract_string(tool_args, '$.a.b[#-4]') as s, "
                   "json_extract_string(tool_args, '$.a.b[#-1]') as t from ai_gateway_messages "
                   "where message_id = 'neg'")
    assert got == [{"s": None, "t": "3"}]


def test_an_output_that_cannot_encode_the_rule_and_bars_gets_ascii_ones(filled: Path) -> None:
    """Under `LC_ALL=C` with `PYTHONUTF8=0` (or PYTHONIOENCODING=latin-1), `query sql`'s table rule came out
    as `?????…` and the overview's bars as `????`, where the Rich tables of the other commands switch to ASCII
    (scripting audit). Dashes and `#` bars now; the data is written as before."""
    p = run(filled, "query", "sql", "select provider, count(*) as n from ai_gateway_messages group by provider "
                                    "order by provider", PYTHONIOENCODING="ascii")  # fmt: skip
    assert p.returncode == 0, p.stderr
    header, rule, *rows = p.stdout.splitlines()
    assert header.split() == ["provider", "n"] and set(rule) == {"-"}
    assert rows and "?" not in p.stdout
    p = run(filled, "query", "overview", PYTHONIOENCODING="ascii")
    assert p.returncode == 0, p.stderr
    bars = [line.split()[-1] for line in p.stdout.splitlines() if line.startswith("  20") and line.split()[-1][0] in "#?"]
    assert bars and all(set(b) == {"#"} for b in bars), p.stdout
    utf8 = run(filled, "query", "overview")  # (a UTF-8 output keeps its blocks)
    assert "█" in utf8.stdout


def test_infinite_and_nan_results_are_said_in_csv_and_tables_and_null_in_json(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cast(1 as double)/0` is inf: JSON has no such number (null), but CSV wrote an empty field, which is a
    null there, and a table a blank cell (query audit). They say inf, -inf and nan; a real null stays empty."""
    sql = ("select cast(1 as double)/0 as a, cast(-1 as double)/0 as b, cast(0 as double)/0 as c, "
           "cast(null as double) as d")
    code, out, _ = call(capsys, "query", "sql", sql, "--format", "csv")
    assert code == 0 and out.splitlines() == ["a,b,c,d", "inf,-inf,nan,"], out
    code, out, _ = call(capsys, "query", "sql", sql, "--format", "json")
    assert json.loads(out) == [{"a": None, "b": None, "c": None, "d": None}]
    code, out, _ = call(capsys, "query", "sql", sql)
    assert out.splitlines()[-1].split() == ["inf", "-inf", "nan", "null"], out


def test_a_json_result_is_written_row_by_row_as_the_same_document(filled: Path) -> None:
    """`--format json` built the list of every row, then the whole document as one string: 5 GB of memory for a
    450 MB document, and `| head` waited for all of it (query audit). It is written a row at a time, the same
    text as `json.dumps(rows, indent=2)`; a reader that leaves early stops it."""
    statement = "select * from ai_gateway_messages order by part_id"
    p = run(filled, "query", "sql", statement, "--format", "json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert len(rows) == 15 and p.stdout == json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    empty = run(filled, "query", "sql", "select part_id from ai_gateway_messages where false", "--format", "json")
    assert empty.stdout == "[]\n"
    # a large result (every row 3,375 times: ~95 MB of JSON) read by `head -c`: it ends early, and small
    big = ("select m.* from ai_gateway_messages m cross join (select part_id as k1 from ai_gateway_messages) a "
           "cross join (select part_id as k2 from ai_gateway_messages) b cross join (select part_id as k3 from "
           "ai_gateway_messages) c")
    env = dict(os.environ, HYP_HOME=str(filled), HOME=HOME, TZ="UTC")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    # (started by a small Python: a child's peak RSS as wait4 tells it starts from its parent's size at the fork,
    # and this test process may have grown past the limit itself)
    launcher = ("import os, subprocess, sys\n"
                "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)\n"
                "head = p.stdout.read(4096)\n"
                "p.stdout.close()\n"
                "ru = os.wait4(p.pid, 0)[2]\n"
                "sys.stdout.buffer.write(b'%d ' % ru.ru_maxrss + head)\n")
    got = subprocess.run([sys.executable, "-c", launcher, sys.executable, "-m", "hypaware_tui", "query", "sql", big,
                          "--format", "json"], env=env, capture_output=True, timeout=120)
    maxrss, _, head = got.stdout.partition(b" ")
    assert head.startswith(b"[\n  {\n"), got
    assert int(maxrss) < 600 * 1024, maxrss  # KiB: ~120 MB; the whole document took 840 MB


def test_a_table_lines_up_wide_characters_by_the_columns_they_take(filled: Path) -> None:
    """A CJK character or an emoji takes two columns of a terminal: the table is padded by the columns a cell
    takes, not by its number of characters, whether written to a pipe or to a terminal (mutation audit: padded
    by len(), every line after a wide cell was pushed right; on a terminal the cell was cut with `…`)."""
    statement = ("select case when role = 'user' then '日本語のテキスト' else role end as t, count(*) as n "
                 "from ai_gateway_messages group by role order by role")
    p = run(filled, "query", "sql", statement)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "t                   n",
        "─────────────────────",
        "assistant          13",
        "日本語のテキスト    2",
    ], p.stdout
    text = on_a_terminal(filled, "query", "sql", statement)
    assert "日本語のテキスト    2" in text and "…" not in text, text


def test_times_are_printed_in_utc_with_z_whatever_the_local_zone(home: Path) -> None:
    """Every format writes a stored time as UTC with `Z` (cli.md §7.1), also where the local zone is far from
    UTC (mutation audit: a time written in local wall-clock time with `Z` went unnoticed, every test ran in
    UTC)."""
    with Storage(Layout(home)) as st:
        st.commit([claude("u1", "2026-05-09T22:30:00Z")], [])
    statement = "select message_id, message_created_at from ai_gateway_messages"
    for zone in ("Asia/Tokyo", "America/Los_Angeles"):
        table = run(home, "query", "sql", statement, TZ=zone)
        assert table.stdout.splitlines()[2].split() == ["u1", "2026-05-09T22:30:00Z"], (zone, table.stdout)
        as_csv = run(home, "query", "sql", statement, "--format", "csv", TZ=zone)
        assert as_csv.stdout.splitlines() == ["message_id,message_created_at", "u1,2026-05-09T22:30:00Z"], zone
        as_json = run(home, "query", "sql", statement, "--format", "json", TZ=zone)
        assert json.loads(as_json.stdout) == [{"message_id": "u1", "message_created_at": "2026-05-09T22:30:00Z"}]

