"""JSON paths in `hyp query sql`: json_extract_string / json_extract over the JSON text columns, rewritten to
Polars expressions (core/query.py `rewrite_json_paths`), checked on real Parquet files and against DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_query import claude, commit, fixture_rows

from hypaware_tui.core import query as q
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.schema import COLUMN_NAMES, canonical_json

M = "ai_gateway_messages"

# Attribute bags covering the value kinds: string, int, float, bool, JSON null, object, list, odd keys.
ODD = {
    "gateway": {"identity_source": "fallback", "timestamp_source": "inherited_later"},
    "x": {
        "s": 'say "hi" — é',
        "n": 42,
        "f": 1.5,
        "big": 12345678901234567890,
        "huge": 12345678901234567890123,  # (beyond 64 bits: Polars' path match gave it as a float)
        "t": False,
        "z": None,
        "o": {"k": [1, "two", {"deep": True}]},
        "l": [{"v": 1}, {"v": 2}, {"v": 3}],
        "empty": "",
        "odd key": {"a.b": "dotted"},
        "back\\slash": "bs",  # (canonical JSON escapes the key: `"back\\\\slash":`)
    },
}
PATHS = [
    "$.gateway.identity_source", "$.x.s", "$.x.n", "$.x.f", "$.x.big", "$.x.huge", "$.x.t", "$.x.z", "$.x.o", "$.x.o.k",
    "$.x.o.k[1]", "$.x.o.k[2].deep", "$.x.l[0].v", "$.x.l[#-1].v", "$.x.l[#-3].v", "$.x.l[-2]", "$.x.l[7]",
    "$.x.empty", '$.x."odd key"."a.b"', '$.x."back\\slash"', "$.x.s.nope", "$.nope", "$.claude.api_error",
    "$.codex.thread_source", "$", "gateway",
]  # fmt: skip


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    lay = Layout(tmp_path / "hyp")
    rows = fixture_rows()
    rows.append(claude("odd", "2026-05-09T10:00:00Z", attributes=canonical_json(ODD),
                       tool_args=canonical_json({"command": "ls -la", "timeout": 30})))  # fmt: skip
    commit(lay, rows)
    return lay


def duck(layout: Layout, sql: str) -> list[tuple]:
    """The same SQL run by DuckDB over the files, with `ai_gateway_messages` read from them."""
    duckdb = pytest.importorskip("duckdb")
    glob = str(layout.dataset_root / "**" / "*.parquet")
    con = duckdb.connect()
    con.execute(f"create view {M} as select * from read_parquet('{glob}', hive_partitioning=true, "
                "hive_types_autocast=false)")  # fmt: skip
    return con.execute(sql).fetchall()


@pytest.mark.parametrize("function", ["json_extract_string", "json_extract"])
def test_values_agree_with_duckdb(layout: Layout, function: str) -> None:
    calls = ", ".join(f"{function}(attributes, '{p}') as c{i}" for i, p in enumerate(PATHS))
    ours = q.run_sql(layout, f"select part_id, {calls} from {M} order by part_id")
    # (DuckDB's json_extract is of type JSON: as text for the comparison.)
    as_text = ", ".join(f"cast({function}(attributes, '{p}') as varchar)" for p in PATHS)
    assert ours.rows() == duck(layout, f"select part_id, {as_text} from {M} order by part_id")
    odd = dict(zip(PATHS, ours.filter(ours["part_id"] == "odd#0").row(0)[1:], strict=True))
    if function == "json_extract_string":
        assert odd["$.x.s"] == 'say "hi" — é' and odd["$.x.n"] == "42" and odd["$.x.t"] == "false"
        assert odd["$.x.huge"] == "12345678901234567890123"  # (exact, as json_extract keeps it)
        assert odd["$.x.z"] is None and odd["$.x.o.k"] == '[1,"two",{"deep":true}]'
        assert odd['$.x."odd key"."a.b"'] == "dotted" and odd["$.x.l[#-1].v"] == "3"
        # the first item counted from the end, and a key that canonical JSON writes escaped
        assert odd["$.x.l[#-3].v"] == "1" and odd['$.x."back\\slash"'] == "bs"
    else:
        assert odd["$.x.s"] == '"say \\"hi\\" — é"' and odd["$.x.n"] == "42" and odd["$.x.z"] == "null"
        assert odd["$.x.empty"] == '""'
        assert odd["$.x.l[#-3].v"] == "1" and odd['$.x."back\\slash"'] == '"bs"'
    assert odd["$.nope"] is None and odd["$.x.l[7]"] is None and odd["$.x.s.nope"] is None
    # Keys missing on every other row are null there, not an error.
    assert set(ours["c1"].to_list()) == {None, odd["$.x.s"]}


def test_qualified_and_plain_columns_in_select_where_group_by_and_ctes(layout: Layout) -> None:
    api_error = q.run_sql(
        layout,
        f"select m.message_id from {M} as m where json_extract_string(m.attributes, '$.claude.api_error') = 'true'",
    )
    assert api_error["message_id"].to_list() == ["e1"]
    grouped = f"""select json_extract_string(attributes, '$.gateway.identity_source') as src, count(*) as n
                  from {M} group by json_extract_string(attributes, '$.gateway.identity_source') order by src"""
    assert q.run_sql(layout, grouped).rows() == [("fallback", 1), ("native", 15)] == duck(layout, grouped)
    # Computed inside a CTE, and read from a CTE that selects * (qualified, with the same call twice).
    in_cte = f"""with c as (select source, json_extract_string(tool_args, '$.command') as cmd,
                                    json_extract(attributes, '$.codex') as cx from {M})
                 select source, cmd, cx, count(*) as n from c where cmd is not null or cx is not null
                 group by all order by source, cx"""
    assert (
        q.run_sql(layout, in_cte).rows()
        == [
            ("claude", "ls -la", None, 1),
            ("codex", None, '{"replayed_from_parent":true}', 1),
            ("codex", None, '{"thread_source":"cli"}', 3),
        ]
        == duck(layout, in_cte)
    )
    over_star = f"""with c as (select * from {M} where source = 'codex')
                    select json_extract_string(c.attributes, '$.codex.thread_source') as ts, count(*) as n
                    from c group by json_extract_string(c.attributes, '$.codex.thread_source') order by ts"""
    assert q.run_sql(layout, over_star).rows() == [("cli", 3), (None, 1)] == duck(layout, over_star)


def test_result_columns_are_named_as_duckdb_names_them_and_star_shows_no_helper_column(
    layout: Layout,
) -> None:
    sql = f"""select *, json_extract_string(attributes, '$.x.n'), upper(json_extract_string(m.attributes, '$.x.s'))
              from {M} m where part_id = 'odd#0'"""
    df = q.run_sql(layout, sql)
    named = ["json_extract_string(attributes, '$.x.n')", "upper(json_extract_string(m.attributes, '$.x.s'))"]
    assert df.columns == [*COLUMN_NAMES, "source", *named]
    assert df.row(0)[-2:] == ("42", 'SAY "HI" — É')
    assert [d[0] for d in duck_description(layout, sql)][-2:] == named
    # A join of two stars and a star over a CTE that computed a path: only the user's columns.
    joined = q.run_sql(
        layout,
        f"""with c as (select *, json_extract(attributes, '$.x') as x from {M})
            select * from c join {M} d on c.part_id = d.part_id
            where json_extract_string(d.attributes, '$.x.f') = '1.5'""",
    )
    assert joined.height == 1 and not [c for c in joined.columns if "hyp_json" in c]
    assert joined["x"].to_list() == [canonical_json(ODD["x"])]


def duck_description(layout: Layout, sql: str) -> list[tuple]:
    duckdb = pytest.importorskip("duckdb")
    glob = str(layout.dataset_root / "**" / "*.parquet")
    con = duckdb.connect()
    con.execute(f"create view {M} as select * from read_parquet('{glob}', hive_partitioning=true)")
    return con.execute(sql).description


def test_a_call_in_a_literal_or_comment_is_left_alone(layout: Layout) -> None:
    df = q.run_sql(
        layout,
        f"""select 'json_extract_string(attributes, ''$.x.n'')' as t, -- json_extract(attributes, '$.x')
                   json_extract_string(attributes, '$.x.n') as n /* json_extract_string(attributes, 1) */
            from {M} where part_id = 'odd#0'""",
    )
    assert df.rows() == [("json_extract_string(attributes, '$.x.n')", "42")]
    # Without a real call the statement reaches the engine unchanged.
    assert q.rewrite_json_paths("select 'json_extract(attributes, ''$.a'')' as t") == (
        "select 'json_extract(attributes, ''$.a'')' as t",
        [],
    )


def test_missing_keys_and_json_null(layout: Layout) -> None:
    df = q.run_sql(
        layout,
        f"""select json_extract_string(attributes, '$.claude.nope') as a, json_extract(attributes, '$.x.z') as z,
                   json_extract_string(attributes, '$.x.z') as zs from {M} order by part_id""",
    )
    assert df["a"].null_count() == df.height == 16
    assert df["z"].drop_nulls().to_list() == ["null"] and df["zs"].null_count() == 16


def test_the_spec_usage_filter_runs_and_agrees_with_duckdb_and_the_view(layout: Layout) -> None:
    """schema.md §6.2's carrier filter, copied from the spec's DuckDB form."""
    carriers = f"""select part_id from {M}
        where coalesce(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens) is not null
          and coalesce(json_extract_string(attributes, '$.claude.api_error'), 'false') <> 'true'
        order by part_id"""
    got = [r[0] for r in q.run_sql(layout, carriers).rows()]
    assert got == [r[0] for r in duck(layout, carriers)]
    assert "e1#0" not in got and "a3#0" in got and len(got) == 11
    # Every response of ai_gateway_usage is one of these carriers.
    usage = q.run_sql(layout, "select part_id from ai_gateway_usage")["part_id"].to_list()
    assert set(usage) < set(got)


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (f"select json_extract_string(attributes, 1) from {M}",
         "json_extract_string() takes a column of ai_gateway_messages and a JSON path in single quotes, as in "
         "json_extract_string(attributes, '$.gateway.identity_source')"),
        (f"select json_extract(lower(attributes), '$.a') from {M}", "json_extract() takes a column"),
        (f"select json_extract_string(attributes, '$.x.l[*]') from {M}",
         "json_extract_string(): unsupported JSON path '$.x.l[*]' (wildcards ('[*]') give lists and are not "
         "supported); use a path such as '$.gateway.identity_source'"),
        (f"select json_extract_string(attributes, '$.x.') from {M}", "unsupported JSON path '$.x.'"),
        (f"select json_extract_string(attributes, '/x/n') from {M}", "JSON pointers"),
        (f"select json_extract_string(atributes, '$.x') from {M}",
         "json_extract_string(): atributes is not a text column of ai_gateway_messages or ai_gateway_usage"),
        (f"with c as (select part_id, attributes as a from {M}) select json_extract_string(c.a, '$.x') from c",
         "json_extract_string(): c.a is not a text column"),
        (f"with c as (select part_id from {M}) select json_extract_string(c.attributes, '$.x') from c",
         "json_extract_string(c.attributes, '$.x'): the relation or subquery it reads has no column attributes"),
        ("select json_extract_string(attributes, '$.x') from ai_gateway_usage", "has no column attributes"),
    ],
)  # fmt: skip
def test_unsupported_calls_say_what_is_supported(layout: Layout, statement: str, message: str) -> None:
    with pytest.raises(q.QueryError) as info:
        q.run_sql(layout, statement)
    assert str(info.value).startswith(message) or message in str(info.value)
    assert "__hyp_json" not in str(info.value)


@pytest.mark.parametrize(
    "statement",
    [
        f"with x as (select json_extract_string(attributes, '$.a') as a from {M}) delete from {M}",
        f"select json_extract_string(attributes, '$.a') into t from {M}",
        f"select json_extract_string(attributes, '$.a') from {M}; drop table t",
    ],
)
def test_the_read_only_gate_still_comes_first(layout: Layout, statement: str) -> None:
    with pytest.raises(q.QueryError, match="^only a single SELECT statement is allowed$"):
        q.run_sql(layout, statement)


def test_unaliased_expressions_of_the_outer_select_are_named_by_their_text(layout: Layout) -> None:
    """The engine would call `count(*)` `len`, a sum by the column it reads and a constant `literal`: a header
    that says `input_tokens` over a sum misreads as raw values, also through a CTE or subquery. Column
    references and aliases stay as they are; repeats get `:1`."""
    df = q.run_sql(
        layout,
        f"""select role, count(*), sum(input_tokens) , count( * ) as n, 1, 'a  b', m.session_id,
                   count(*) /* again */, upper(role) as "upper(role)" from {M} m group by role, m.session_id
            order by count(*) desc, role limit 1""",
    )
    assert df.columns == ["role", "count(*)", "sum(input_tokens)", "n", "1", "'a  b'", "session_id", "count(*):1",
                          "upper(role)"]  # fmt: skip
    total = q.run_sql(layout, f"select count(*) from {M}")
    assert total.columns == ["count(*)"] and total.item() == len(duck(layout, f"select * from {M}"))
    # the order by the expression still sorts by it; the CTE's columns and the star over them keep their names
    assert df["count(*)"].item() == df["count(*):1"].item() == df["n"].item() > 0
    cte = q.run_sql(layout, f"with t as (select role, count(*) as k from {M} group by role) select * from t")
    assert cte.columns == ["role", "k"]
    inner = q.run_sql(layout, f"select * from (select role, max(message_index) from {M} group by role) order by 1")
    assert inner.columns == ["role", "max(message_index)"]  # (the engine called it message_index: DuckDB does not)
    assert inner.height == len(duck(layout, f"select distinct role from {M}"))
    # `IS [NOT] DISTINCT FROM` is an expression, not the end of the list (the name was put inside it: a parse
    # error), and `over w` is a window, not an alias
    odd = q.run_sql(layout, f"""select input_tokens is not distinct from output_tokens as same,
                                input_tokens is distinct from output_tokens, count(*),
                                row_number() over w from {M} group by 1, 2 window w as (order by count(*))""")
    assert odd.columns == ["same", "input_tokens is distinct from output_tokens", "count(*)",
                           "row_number() over w"]  # fmt: skip
    # stars, with the engine's EXCLUDE, are left alone; an expression beside one is named
    star = q.run_sql(layout, f"select m.* exclude (content_text), 2*3 from {M} m limit 1")
    assert star.columns == [c for c in COLUMN_NAMES if c != "content_text"] + ["source", "2*3"]
    # a union takes the names of its first select
    union = q.run_sql(layout, f"(select count(*) from {M}) union all (select count(*) from ai_gateway_usage)")
    assert union.columns == ["count(*)"] and union.height == 2


def test_now_is_the_utc_instant_and_json_operators_say_what_to_use(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's now() and current_timestamp are naive local times: a filter on the last 30 days failed (a
    UTC column against a naive value) and `select now()` printed local time with no zone. DuckDB's `->>` gave
    only the path as the message."""
    from datetime import UTC, datetime

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    before = datetime.now(UTC)
    df = q.run_sql(layout, "select now(), current_timestamp, count(*) from ai_gateway_messages "
                           "where message_created_at > now() - interval '100000 days'")  # fmt: skip
    assert df.columns == ["now()", "current_timestamp", "count(*)"]
    stamp = df["now()"].item()
    assert str(df.schema["now()"]) == "Datetime(time_unit='us', time_zone='UTC')"
    assert before <= stamp <= datetime.now(UTC) and df["current_timestamp"].item() == stamp
    assert df["count(*)"].item() == len(duck(layout, f"select * from {M}"))
    # a literal or a quoted name that says now() is left alone
    assert q.run_sql(layout, "select 'now()' as x").item() == "now()"
    with pytest.raises(q.QueryError, match="use json_extract"):
        q.run_sql(layout, "select attributes->>'$.gateway.identity_source' from ai_gateway_messages")


def test_a_time_without_a_zone_is_utc_beside_now_and_the_dataset(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """now() became a UTC timestamp and `now() > timestamp '2020-01-01'` (a zone-less literal) failed with the
    engine's dtype error, as `message_created_at > timestamp '2026-05-09 09:00:00'` always had: TIMESTAMP is
    read as UTC, as the engine reads a plain string and as DuckDB does in a UTC session."""
    duckdb = pytest.importorskip("duckdb")
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # (not the zone the literals are read in)
    row = q.run_sql(layout, "select now() > timestamp '2020-01-01' as a, current_timestamp < timestamp "
                            "'2999-01-01' as b, now() - interval '1 day' < now() as c, now() > '2020-01-01' as d")
    assert row.row(0) == (True, True, True, True)
    every = len(duck(layout, f"select * from {M}"))
    assert q.run_sql(layout, f"select count(*) from {M} where message_created_at < now() "
                             "and message_created_at > now() - interval '100000 days'").item() == every  # fmt: skip

    def count(where: str) -> int:
        return q.run_sql(layout, f"select count(*) from {M} where {where}").item()

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    glob = str(layout.dataset_root / "**" / "*.parquet")
    con.execute(f"create view {M} as select * from read_parquet('{glob}', hive_partitioning=true)")
    after_9 = con.execute(f"select count(*) from {M} where message_created_at > timestamp '2026-05-09 09:00:00'")
    expected = after_9.fetchone()[0]
    assert 0 < expected < every
    # the typed literal, its casts and a plain string agree; an offset in the literal is applied
    for where in ("message_created_at > timestamp '2026-05-09 09:00:00'",
                  "timestamp '2026-05-09 09:00:00' < message_created_at",
                  "message_created_at > cast('2026-05-09 09:00:00' as timestamp)",
                  "message_created_at > '2026-05-09 09:00:00'::timestamp",
                  "message_created_at > datetime '2026-05-09 09:00:00'",
                  "message_created_at > timestamp '2026-05-09 11:00:00+02:00'",
                  "message_created_at > '2026-05-09 09:00:00'"):  # fmt: skip
        assert count(where) == expected, where
    # a naive value of the data made UTC with a cast; a column or alias called timestamp is a name
    assert count("message_created_at >= cast(date as timestamptz)") == every
    df = q.run_sql(layout, "select timestamp '2026-05-01', 1 as timestamp, t.timestamp from (select 2 as timestamp) t")
    assert df.columns == ["timestamp '2026-05-01'", "timestamp", "timestamp:1"]
    # (alone, it is the engine's, as DuckDB's TIMESTAMP: a time without a zone)
    assert df.row(0) == (datetime(2026, 5, 1), 1, 2)


def test_a_time_without_a_zone_against_a_utc_one_says_what_to_write(layout: Layout) -> None:
    """What still mixes them (strptime(), an explicit `timestamp without time zone`) gave only the engine's
    dtype message: it now says what happened and what to write."""
    for sql in (f"select count(*) from {M} where message_created_at > strptime(date, '%Y-%m-%d')",
                f"select message_created_at - timestamp without time zone '2026-05-01' from {M}"):  # fmt: skip
        with pytest.raises(q.QueryError) as info:
            q.run_sql(layout, sql)
        text = str(info.value)
        assert "cannot be compared or combined with one without" in text, text
        assert "cast(… as timestamptz)" in text and "timestamptz '2026-05-01 12:00'" in text
    # the advice works, both ways it gives
    every = len(duck(layout, f"select * from {M}"))
    for fixed in ("message_created_at >= cast(strptime(date, '%Y-%m-%d') as timestamptz)",
                  "message_created_at >= strptime(date, '%Y-%m-%d') at time zone 'Europe/Paris'"):  # fmt: skip
        assert q.run_sql(layout, f"select count(*) from {M} where {fixed}").item() == every, fixed


def test_a_name_without_as_after_a_value_is_an_alias_and_distinct_on_is_not_a_name(layout: Layout) -> None:
    """The result naming took `case … end kind`, `count(*) * 100 pct`, `1 x`, `x is not null has_x` for
    unnamed and put ` AS "…"` after the alias: a parse error on queries that ran before (an audit)."""
    df = q.run_sql(layout, f"""select case when role = 'user' then 'u' else 'o' end kind, count(*) * 100 pct,
                               1 x, -1 y, 1.5 z, null nn, true t, model is not null has_model
                               from {M} group by 1, 8 order by 1, 8""")
    assert df.columns == ["kind", "pct", "x", "y", "z", "nn", "t", "has_model"]
    assert df["pct"].sum() == 100 * len(duck(layout, f"select * from {M}"))
    on = q.run_sql(layout, f"select distinct on (role) upper(role), role from {M} order by role")
    assert on.columns == ["upper(role)", "role"] and on.height == len(duck(layout, f"select distinct role from {M}"))


def test_a_naive_time_at_time_zone_and_a_cast_of_a_column_keep_their_meaning(layout: Layout) -> None:
    """Making every TIMESTAMP a UTC instant turned `timestamp '…' at time zone 'Europe/Paris'` (that wall-clock
    time in Paris) into the UTC instant shown as Paris wall-clock time, so counts were silently wrong; and
    `cast(message_created_at as timestamp)`, which drops the zone to compare with strptime(…), failed (an
    audit). Only a literal written without a zone is read as UTC; the counts are DuckDB's in a UTC session."""
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    glob = str(layout.dataset_root / "**" / "*.parquet")
    con.execute(f"create view {M} as select * from read_parquet('{glob}', hive_partitioning=true)")

    def both(where: str) -> tuple[int, int]:
        sql = f"select count(*) from {M} where {where}"
        return q.run_sql(layout, sql).item(), con.execute(sql).fetchone()[0]

    # 11:00 in Paris (UTC+2 in May) is 09:00 UTC
    expected = both("message_created_at > timestamp '2026-05-09 09:00:00'")[1]
    assert 0 < expected < both("true")[1]
    for where in ("message_created_at > timestamp '2026-05-09 11:00:00' at time zone 'Europe/Paris'",
                  "message_created_at > cast(timestamp '2026-05-09 11:00:00' at time zone 'Europe/Paris' "
                  "as timestamptz)",
                  "message_created_at > cast('2026-05-09 11:00:00' as timestamp) AT TIME ZONE 'Europe/Paris'",
                  "message_created_at > '2026-05-09 11:00:00'::timestamp at time zone 'Europe/Paris'",
                  "message_created_at > timestamp(6) '2026-05-09 11:00:00' at time zone 'Europe/Paris'",
                  "cast(message_created_at as timestamp) > strptime('2026-05-09 09:00:00', '%Y-%m-%d %H:%M:%S')",
                  "message_created_at::timestamp > strptime('2026-05-09 09:00:00', '%Y-%m-%d %H:%M:%S')",
                  "cast(message_created_at as timestamp) at time zone 'Europe/Paris' > "
                  "timestamptz '2026-05-09 07:00:00'"):  # fmt: skip
        assert both(where) == (expected, expected), where
    df = q.run_sql(layout, "select timestamp '2026-11-20 13:47:02' at time zone 'Europe/Paris' as t, "
                           "cast(timestamp '2026-11-20 13:47:02' as timestamp) as u")  # fmt: skip
    assert df.row(0) == (datetime(2026, 11, 20, 12, 47, 2, tzinfo=UTC), datetime(2026, 11, 20, 13, 47, 2))
    # a cast of a column is the engine's: the time without its zone, not an instant
    naive = q.run_sql(layout, f"select cast(message_created_at as timestamp) as t from {M} limit 1")
    assert str(naive.schema["t"]) == "Datetime(time_unit='us', time_zone=None)"


def test_a_dollar_quoted_string_is_a_string_to_every_rewrite(layout: Layout) -> None:
    """The lexer did not know `$$…$$` (the engine does): a TIMESTAMP inside one was rewritten and a `;` in one
    was taken for a second statement."""
    df = q.run_sql(layout, "select $$timestamp '2026-01-01'$$ as s, $t$it's; now()$t$ as u, $$a$$")
    assert df.row(0) == ("timestamp '2026-01-01'", "it's; now()", "a") and df.columns == ["s", "u", "$$a$$"]
    assert q.check_select("select $$;$$;") == "select $$;$$"
    with pytest.raises(q.QueryError, match="only a single SELECT"):
        q.check_select("select $$x$$; drop table t")


def test_a_statement_runs_as_written_and_only_a_refused_one_reads_its_literals_as_utc(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zone-less literals were made UTC before the statement ran: one in parentheses or wrapped before AT TIME
    ZONE gave the UTC instant's wall-clock time (counts silently wrong), and a literal compared with a time
    without a zone (`cast(message_created_at as timestamp)`, strptime(…), `… at time zone …`) failed (an audit).
    The statement now runs as written; only one the engine refuses for mixing zones, without AT TIME ZONE, runs
    with its zone-less literals read as UTC. Values and counts are DuckDB's in a UTC session."""
    duckdb = pytest.importorskip("duckdb")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    glob = str(layout.dataset_root / "**" / "*.parquet")
    con.execute(f"create view {M} as select * from read_parquet('{glob}', hive_partitioning=true)")
    t = "2026-05-09 09:00:00"
    for expr in (f"(timestamp '{t}') at time zone 'America/New_York'",
                 f"(timestamp '{t}' + interval '1 hour') at time zone 'America/New_York'",
                 f"date_trunc('day', timestamp '{t}') at time zone 'America/New_York'",
                 f"('{t}'::timestamp) at time zone 'America/New_York'"):  # fmt: skip
        ours = q.run_sql(layout, f"select {expr} as x").item()
        assert ours == con.execute(f"select {expr}").fetchone()[0] and ours.tzinfo is not None, expr
    assert q.run_sql(layout, f"select (timestamp '{t}') at time zone 'America/New_York' as x").item() == datetime(
        2026, 5, 9, 13, tzinfo=UTC
    )

    def both(where: str) -> tuple[int, int]:
        sql = f"select count(*) from {M} where {where}"
        return q.run_sql(layout, sql).item(), con.execute(sql).fetchone()[0]

    every = both("true")[1]
    for where in (f"cast(message_created_at as timestamp) > timestamp '{t}'",
                  f"strptime('2026-05-09', '%Y-%m-%d') < timestamp '{t}'",
                  f"message_created_at at time zone 'Europe/Paris' > timestamp '{t}'",
                  f"message_created_at > (timestamp '{t}') at time zone 'America/New_York'",
                  f"message_created_at > date_trunc('day', timestamp '{t}') at time zone 'America/New_York'",
                  f"message_created_at > timestamp '{t}'",
                  f"message_created_at > cast($${t}$$ as timestamp)",
                  f"message_created_at > $q${t}$q$::timestamp",
                  f"message_created_at > (select timestamp '{t}')"):  # fmt: skip
        ours, theirs = both(where)
        assert ours == theirs, where
    assert 0 < both(f"message_created_at > timestamp '{t}'")[0] < every
    assert both(f"strptime('2026-05-09', '%Y-%m-%d') < timestamp '{t}'")[0] == every


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """A list that gets a 1 at each call of `core.query.<name>` (which still does its work)."""
    calls: list[int] = []
    real = getattr(q, name)

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(q, name, counting)
    return calls


def test_only_a_statement_with_a_zone_less_time_is_probed_and_the_utc_readings_own_error_is_reported(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe (one row of nulls) computes all that does not read the files, with the data's bounds null: a
    recursive CTE bounded by `coalesce((select max(…) from …), 1000000)` ran past 30 s there and instantly on
    the data (the audit of the probe). Only a statement with a time written without a zone is probed now. When
    its UTC reading passes the probe but fails on the data, that failure is reported, not the mixed times the
    reading mended (the audit: the advice led to the next error)."""
    probes = _count_calls(monkeypatch, "_probe_relations")
    bounded = (f"with recursive t(n) as (select 1 union all select n + 1 from t where n < coalesce((select "
               f"max(length(content_text)) from {M}), 3000)) select max(n) from t")
    assert q.run_sql(layout, bounded).item() == q.run_sql(layout, f"select max(length(content_text)) from {M}").item()
    assert probes == []
    with pytest.raises(q.QueryError) as info:
        q.run_sql(layout, f"select count(*) from {M} where message_created_at > timestamp '2026-05-09' and "
                          "cast(content_text as int) > 0")
    text = str(info.value)
    assert probes and "conversion from `str` to `i32` failed" in text, text
    assert "cannot be compared" not in text and "Hint:" not in text, text
    with pytest.raises(q.QueryError) as info:  # a hint names Polars' Python API: not for a SQL statement
        q.run_sql(layout, f"select count(*) from {M} where message_created_at in (select strptime('2026-11-20', "
                          "'%Y-%m-%d'))")
    assert "replace_time_zone" not in str(info.value) and ".:" not in str(info.value), str(info.value)


def test_a_refused_statement_is_refused_before_the_data_is_read_and_says_what_was_not_written(
    layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine reads the files before it compares, so a refused first run would cost a read: whether it is
    refused is learnt on relations of one row of nulls, and the data is read once (or, refused, not at all; a
    statement with no time written without a zone is not probed: it is refused once it reads).
    With AT TIME ZONE in the statement nothing is guessed, and the advice does not offer what it already has."""
    reads = _count_calls(monkeypatch, "scan_messages")
    assert q.run_sql(layout, f"select count(*) from {M} where message_created_at > timestamp '2026-05-09'").item()
    assert len(reads) == 1
    reads.clear()
    with pytest.raises(q.QueryError) as info:
        q.run_sql(layout, f"select count(*) from {M} where message_created_at > strptime(date, '%Y-%m-%d')")
    assert reads == [1]  # (no time written without a zone: nothing to read as UTC, so no probe; the run refuses)
    text = str(info.value)
    assert "cast(… as timestamptz)" in text and "at time zone 'Europe/Paris'" in text
    # AT TIME ZONE elsewhere: the literal is not read as UTC; the advice does not offer AT TIME ZONE again
    # (it already is in the statement) nor timestamp '…' (what failed)
    for where, used in (("message_created_at > timestamp '2026-05-09' and message_created_at at time zone "
                         "'Europe/Paris' > '2026-05-01'", ("timestamp '2026-05-01 12:00'", "in a zone with")),
                        ("cast(message_created_at as timestamp) > timestamptz '2026-05-09'",
                         ("timestamptz '2026-05-01 12:00'",))):  # fmt: skip
        with pytest.raises(q.QueryError) as info:
            q.run_sql(layout, f"select count(*) from {M} where {where}")
        text = str(info.value)
        assert "cannot be compared or combined with one without" in text and "are UTC" in text, text
        assert "'2026-05-01 12:00' or with an offset" in text and not any(u in text for u in used), text


def test_a_cte_column_that_is_text_in_one_branch_of_a_union_is_text(layout: Layout) -> None:
    sql = f"with c as (select attributes as a from {M} union all select content_text from {M}) select a from c"
    assert q.json_result_columns(sql, q.run_sql(layout, sql)) == {}
    both = f"with c as (select attributes as a from {M} union all select tool_args from {M}) select a from c"
    assert q.json_result_columns(both, q.run_sql(layout, both)) == {"a": True}


def test_current_date_is_the_utc_date_of_the_date_column(layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    """`current_date` was the engine's local date, where `date` (the partition) is the UTC one: `where date =
    current_date` missed today's partition for half of each day west or east of UTC (time zone audit)."""
    import time
    from datetime import UTC, datetime

    # a zone whose date differs from UTC's at this hour: UTC-12 before noon UTC, UTC+14 after 10:00 UTC
    monkeypatch.setenv("TZ", "Etc/GMT+12" if datetime.now(UTC).hour < 12 else "Etc/GMT-14")
    time.tzset()
    try:
        before = datetime.now(UTC).date()
        assert datetime.now().date() != before  # (the local date is another one)
        got = q.run_sql(layout, "select current_date as a, current_date() as b, current_date = current_date as c")
        assert got.row(0)[0] in (before, datetime.now(UTC).date()) and got.row(0)[1] == got.row(0)[0]
        assert got.row(0)[2] is True
    finally:
        monkeypatch.undo()
        time.tzset()
    at = datetime(2026, 11, 28, 23, 30, tzinfo=UTC)
    assert q.utc_now("select current_date, 1 as current_date", at) == "select date '2026-11-28', 1 as current_date"
