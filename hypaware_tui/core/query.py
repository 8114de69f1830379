"""Read-only queries over the dataset: `hyp query sql`, the overview ("first look") and the schema listing.

Relations (cli.md §7.1, storage.md §9):

- `ai_gateway_messages`: the deduplicated dataset from `core.dataset.scan_messages`, with `source`;
- `ai_gateway_usage`: `schema.usage_view` over it (one row per API response, so token sums are right).

Both are lazy scans of the Parquet files; nothing is copied into another database. A missing or empty dataset
is an empty relation with the full schema. A file that vanishes between listing and reading (compaction,
retention) makes the query read again, a few times within about 2 s (`_with_retry`).

`overview` returns plain dataclasses whose `to_json()` is exactly the cli.md §7.2 JSON document, so the CLI
prints it and the wizard's Done screen renders it with its own widgets. No UI imports here.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import re
import time as _time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import polars as pl

from hypaware_tui.core import prog
from hypaware_tui.core.dataset import (
    FILE_NAME,
    MESSAGES_SCHEMA,
    has_parquet_files,
    keep_relation_copies,
    missing_as_null,
    missing_columns_as_null,
    part_id_hashes,
    relation_copies,
    scan_messages,
)
from hypaware_tui.core.paths import Layout, user_home
from hypaware_tui.core.schema import (
    COLUMNS,
    JSON_COLUMNS,
    SURROGATE_ESCAPE,
    json_depth_room,
    stdlib_loads,
    usage_view,
)
from hypaware_tui.core.storage import damaged_file_advice, dataset_stats, mismatch_text, unopened_text
from hypaware_tui.core.timeutil import (
    MIN_US,
    US_PER_DAY,
    datetime_to_us,
    us_to_datetime,
    us_to_iso,
    us_to_local,
)

MESSAGES = "ai_gateway_messages"
USAGE = "ai_gateway_usage"
RELATIONS = (MESSAGES, USAGE)

ONLY_SELECT = "only a single SELECT statement is allowed"
# A first word that is no SQL statement at all (a typo: `selec 1`) is not refused as a statement of another
# kind: the message says what was read (cli.md §7.1: a parse error gets the engine's or a helpful message).
NOT_SELECT = '"{word}" is not SELECT or WITH: only one read-only SELECT statement can be run'
NO_TABLE_FUNCTIONS = (
    "{name}(…) is not allowed: hyp query sql reads only ai_gateway_messages and ai_gateway_usage (a table "
    "function would read other files, or open a network connection)"
)

TOP_N = 10
MAX_DAYS = 36_500  # an overview period longer than 100 years is a typo
_T = TypeVar("_T")


class QueryError(Exception):
    """A statement that cannot run: not a single SELECT, or rejected by the engine (exit 2)."""


class DatasetReadError(Exception):
    """The dataset could not be read (exit 1): a file vanished twice, or is unreadable."""


# ---------------------------------------------------------------------------------------------------------
# Relations


def open_relations(layout: Layout, json_calls: Sequence[JsonCall] = ()) -> pl.SQLContext:
    """A fresh SQL context with `ai_gateway_messages` and `ai_gateway_usage` registered as lazy frames, each with
    the synthetic columns of the JSON path calls on its columns (`rewrite_json_paths`)."""
    return _relations(scan_messages(layout), json_calls)


def _probe_relations(json_calls: Sequence[JsonCall] = ()) -> pl.SQLContext:
    """The same relations with one row of nulls and no file: whether the engine accepts a statement's types is
    learnt without reading the data (without a row, it skips some expressions: a sort's limit, a scalar
    subquery)."""
    return _relations(pl.LazyFrame(schema=MESSAGES_SCHEMA), json_calls, rows=1)


def _relations(messages: pl.LazyFrame, json_calls: Sequence[JsonCall], rows: int | None = None) -> pl.SQLContext:
    ctx = pl.SQLContext()
    for name, lf in ((MESSAGES, messages), (USAGE, usage_view(messages))):
        if json_calls:
            schema = lf.collect_schema()
            extra = [json_call_expr(c) for c in json_calls if schema.get(c.column) == pl.String()]
            if extra:
                lf = lf.with_columns(extra)
        ctx.register(name, lf if rows is None else lf.clear(rows))
    return ctx


class _MissingColumns(Exception):
    """A read failed on a part file without a column, and every such file lacks only nullable ones: read again
    with those columns as null (`_with_retry`)."""


#: A listed file gone when read (a compaction or a prune replaced it): the query is read again at once, then
#: after these pauses (seconds) while the whole wait stays within VANISHED_WAIT_S. One retry (storage.md §9) lost
#: to a long compaction, which removes a partition's old files one partition after another: 2 of 25 queries
#: during one failed with "Run the query again".
VANISHED_PAUSES_S = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
VANISHED_WAIT_S = 2.0
_sleep = _time.sleep  # (tests record the pauses instead)


def _with_retry(fn: Callable[[], _T], layout: Layout) -> _T:
    """Run `fn` (which must list the dataset afresh) and read again, pausing a little longer each time
    (`VANISHED_PAUSES_S`, within `VANISHED_WAIT_S` in all), while a listed file vanished; or once with missing
    nullable columns read as null (`_MissingColumns`). Another OSError (a part file that cannot be opened)
    names the file and its reason (`_data_error`)."""
    pauses = iter(VANISHED_PAUSES_S)
    waited = 0.0
    while True:
        try:
            if missing_as_null():
                return fn()
            try:
                return fn()
            except _MissingColumns:
                with missing_columns_as_null():
                    return _with_retry(fn, layout)
        except FileNotFoundError as exc:
            pause = next(pauses, None)
            if pause is None or waited + pause > VANISHED_WAIT_S:
                raise DatasetReadError(
                    f"a dataset file disappeared while it was being read ({exc}); another hyp command is "
                    "probably compacting or pruning the dataset. Run the query again."
                ) from exc
            if pause:
                _sleep(pause)
                waited += pause
        except OSError as exc:
            raise _data_error(layout, exc) from exc


# ---------------------------------------------------------------------------------------------------------
# SQL


# Words that make a statement write something. `WITH … DELETE`, `SELECT … INTO` and friends are refused even
# though the first word is fine (each query also runs in a fresh context, so nothing could persist anyway).
_FORBIDDEN_WORDS = frozenset(
    {"insert", "update", "delete", "merge", "upsert", "create", "drop", "alter", "truncate", "copy", "attach",
     "detach", "grant", "revoke", "vacuum", "pragma", "into"}
)  # fmt: skip
# The first words of SQL statements other than SELECT and WITH (in Polars, DuckDB, PostgreSQL, SQLite, MySQL and
# Spark SQL): these get ONLY_SELECT; any other first word is read as a typo (NOT_SELECT).
_STATEMENT_WORDS = _FORBIDDEN_WORDS | frozenset(
    {"show", "explain", "describe", "desc", "set", "reset", "use", "begin", "start", "commit", "end", "rollback",
     "abort", "savepoint", "release", "call", "execute", "exec", "prepare", "deallocate", "values", "table",
     "from", "analyze", "analyse", "load", "install", "export", "import", "checkpoint", "summarize", "replace",
     "rename", "lock", "unlock", "comment", "refresh", "optimize", "cache", "uncache", "declare", "fetch",
     "close", "move", "listen", "notify", "unlisten", "discard", "reindex", "cluster", "do", "kill", "handler",
     "flush", "pivot", "unpivot", "security", "reassign", "msck", "add", "list", "get", "put", "remove"}
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_DOLLAR_QUOTE = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


def _lex(sql: str) -> list[tuple[str, int, int]]:
    """A tiny lexer: (token, start, end offsets) for bare words (lower-cased), string literals and quoted
    identifiers (as "lit"; `sql[start]` tells which quote, `$` for a dollar-quoted string), `;`, `(` and other punctuation; comments and
    whitespace are skipped. Only used to classify a statement, to cut trailing semicolons and to find the JSON
    path calls (`rewrite_json_paths`); the engine does the real parsing.

    Quotes are closed by the same quote (doubled quotes are an escape); a backslash is never treated as an
    escape, so a lexer/engine disagreement can only make us see *more* statements, never fewer."""
    out: list[tuple[str, int, int]] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        start = i
        if c == "$" and (m := _DOLLAR_QUOTE.match(sql, i)) is not None:
            # a dollar-quoted string (`$$…$$`, `$tag$…$tag$`), which the engine reads as a string literal
            j = sql.find(m.group(0), m.end())
            i = n if j < 0 else j + len(m.group(0))
            out.append(("lit", start, i))
        elif c in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = min(j + 1, n)
            out.append(("lit", start, i))
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c.isspace():
            i += 1
        elif c == "_" or c.isalpha():
            m = _WORD.match(sql, i)
            if m is None:  # a non-ASCII letter
                i += 1
                out.append((c, start, i))
            else:
                i = m.end()
                out.append((m.group(0).lower(), start, i))
        else:
            i += 1
            out.append((c, start, i))
    return out


def _tokens(sql: str) -> list[tuple[str, int]]:
    """`_lex` as (token, end offset)."""
    return [(t, end) for t, _, end in _lex(sql)]


def check_select(statement: str) -> str:
    """Accept exactly one read-only `SELECT …` or `WITH … SELECT …` (a trailing `;` is allowed) and return it
    without the trailing semicolons (and whatever whitespace or comments follow the last real token); raise
    QueryError otherwise."""
    lexed = _lex(statement)
    for i, (t, start, end) in enumerate(lexed):
        # The engine's table functions (read_csv('…'), "read_parquet"('http://…')) read any file or URL: cli.md
        # §1, no command opens a network connection; §7.1, the two relations only.
        name = t if t != "lit" else statement[start + 1 : end - 1].lower() if statement[start] in '"`' else ""
        if name.startswith("read_") and i + 1 < len(lexed) and lexed[i + 1][0] == "(":
            raise QueryError(NO_TABLE_FUNCTIONS.format(name=name))
    toks = [(t, end) for t, _, end in lexed]
    # Drop trailing semicolons; any other semicolon separates statements.
    while toks and toks[-1][0] == ";":
        toks.pop()
    words = [t for t, _ in toks]
    if not words or ";" in words:
        raise QueryError(ONLY_SELECT)
    k = 0
    while k < len(words) and words[k] == "(":
        k += 1
    if k >= len(words) or words[k] not in ("select", "with"):
        if k < len(words) and words[k] not in _STATEMENT_WORDS:
            _, start, end = lexed[k]  # (toks is lexed without its trailing semicolons)
            if _WORD.fullmatch(statement[start:end]):  # a bare word, not a literal or a quoted name
                while end < len(statement) and (statement[end].isalnum() or statement[end] == "_"):
                    end += 1  # (the whole word: the lexer's words are ASCII, `créer` quoted as "cr")
                raise QueryError(NOT_SELECT.format(word=statement[start:end]))
        raise QueryError(ONLY_SELECT)
    for i, t in enumerate(words):
        # A statement keyword anywhere (a data-modifying CTE, SELECT … INTO) is refused; the same word as a
        # function (`truncate(x)`), an alias (`AS copy`) or a qualified name (`t.update`) is not a statement.
        if t in _FORBIDDEN_WORDS and not (
            (i + 1 < len(words) and words[i + 1] == "(") or (i and words[i - 1] in ("as", "."))
        ):
            raise QueryError(ONLY_SELECT)
    return statement[: toks[-1][1]]


# ---------------------------------------------------------------------------------------------------------
# JSON paths in SQL
#
# Polars SQL has no JSON functions, but the spec's and DuckDB's SQL read the JSON columns with
# `json_extract_string(attributes, '$.claude.api_error')`. Before the statement goes to the engine, each such
# call on a relation's column with a literal path is replaced by a synthetic column (`m.attributes` ->
# `m.__hyp_json_1`) that the relations then compute with Polars expressions. A `SELECT *` passes the synthetic
# columns through (so a CTE over `SELECT *` can still use them); they are dropped from the final result.

JSON_FUNCTIONS = ("json_extract_string", "json_extract")
_SYNTHETIC = "__hyp_json_"
# A synthetic column in a result (Polars suffixes the right side of a join: `__hyp_json_1:b`).
_SYNTHETIC_RESULT = re.compile(r"^__hyp_json_\d+(:.*)?$")
_SYNTHETIC_NAME = re.compile(r"__hyp_json_\d+")
_JSON_EXAMPLE = "'$.gateway.identity_source', '$.\"key.with.dots\"', '$.list[0]' or '$.list[#-1]'"
# Where a select item's list ends (at its own parenthesis depth).
_SELECT_LIST_END = frozenset(
    {"from", "where", "group", "having", "order", "limit", "offset", "union", "except", "intersect", "window",
     "qualify", "into", "fetch", ";"}
)  # fmt: skip
# Words after which a trailing name is part of the expression, not an alias (`x is null`, `a and b`).
_NOT_BEFORE_ALIAS = frozenset(
    {"and", "or", "not", "is", "in", "like", "ilike", "between", "then", "else", "when", "case", "select",
     "distinct", "all", "on", "by", "as", "interval", "collate", "escape", "similar", "to", "glob", "regexp",
     "rlike", "end", "null", "true", "false", "from", "over"}
)  # fmt: skip

Segment = str | int  # an object key, or an array index (negative: from the end)


@dataclass(frozen=True)
class JsonCall:
    """One distinct `json_extract[_string](column, 'path')`, computed as the synthetic column `name`."""

    function: str
    column: str
    path: tuple[Segment, ...]
    name: str
    text: str  # as DuckDB names it: json_extract_string(m.attributes, '$.a')


def parse_json_path(path: str) -> tuple[Segment, ...]:
    """A DuckDB JSON path: `$`, `.key`, `."quoted key"`, `[n]`, `[#-n]` / `[-n]` (from the end), or a bare key
    (`'model'` = `'$.model'`). Raises ValueError for what DuckDB reads as a list (`*`, `..`), JSON pointers
    (`/a/b`) and malformed paths."""
    if not path:
        raise ValueError("an empty path")
    if not path.startswith("$"):
        if path.startswith("/"):
            raise ValueError("JSON pointers ('/a/b') are not supported")
        return (path,)
    out: list[Segment] = []
    i, n = 1, len(path)
    while i < n:
        c = path[i]
        if c == ".":
            i += 1
            if i < n and path[i] == '"':
                j = path.find('"', i + 1)
                if j < 0:
                    raise ValueError("a quoted key is not closed")
                out.append(path[i + 1 : j])
                i = j + 1
            elif i < n and path[i] in "*.":
                raise ValueError("wildcards ('*', '..') give lists and are not supported")
            else:
                j = i
                while j < n and path[j] not in ".[":
                    j += 1
                if j == i:
                    raise ValueError("a key is missing after '.'")
                out.append(path[i:j])
                i = j
        elif c == "[":
            j = path.find("]", i)
            inner = path[i + 1 : j] if j > 0 else ""
            m = re.fullmatch(r"(#?-)?(\d+)", inner)
            if m is None:
                raise ValueError("an index must be [n], [#-n] or [-n]" if inner != "*" else
                                 "wildcards ('[*]') give lists and are not supported")  # fmt: skip
            index = int(m.group(2))
            if m.group(1):
                if index == 0:
                    raise ValueError("[#-0] is past the end of a list")
                index = -index
            out.append(index)
            i = j + 1
        else:
            raise ValueError(f"unexpected {c!r} at position {i + 1}")
    return tuple(out)


def _polars_json_path(path: tuple[Segment, ...]) -> str:
    """The same path for `Expr.str.json_path_match` (every key bracketed, so dots and spaces are plain)."""
    parts = ["$"]
    for seg in path:
        if isinstance(seg, int):
            parts.append(f"[{seg}]")
        else:
            parts.append("['" + seg.replace("\\", "\\\\").replace("'", "\\'") + "']")
    return "".join(parts)


# The stored JSON keeps integers beyond 64 bits exact (schema.md §3.3), but orjson reads one as a float
# (123456789012345678901234567890 -> 1.2345678901234568e+29) and refuses one of over 308 digits ("number is
# infinity"). An integer it widens has 19 digits or more, so a text holding such a run of digits, or one orjson
# refused, is read again by the stdlib; any other text costs one scan.
_LONG_DIGITS = re.compile(r"\d{19}")


def _loads_exact(text: str) -> Any:
    """JSON text as its value, with its integers exact (see above). Raises ValueError when it is not JSON."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        if SURROGATE_ESCAPE.search(text):  # a lone surrogate escape: a string no output could encode
            raise
        return stdlib_loads(text)
    if _LONG_DIGITS.search(text) is None:
        return value
    try:
        return stdlib_loads(text)
    except ValueError:  # (deeper than the stdlib reads: orjson's value)
        return value


_MISSING = object()


def _value_at(text: str | None, path: tuple[Segment, ...]) -> Any:
    """The JSON value at `path` in `text`, or _MISSING (no such path, or not JSON)."""
    if text is None:
        return _MISSING
    try:
        value = _loads_exact(text)
    except ValueError:
        return _MISSING
    for seg in path:
        if isinstance(seg, int):
            if not isinstance(value, list) or not -len(value) <= seg < len(value):
                return _MISSING
        elif not isinstance(value, dict) or seg not in value:
            return _MISSING
        value = value[seg]
    return value


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits, or nesting deeper than orjson writes (255)
        with json_depth_room():  # (a stored value may nest 1,024 deep: 3.11 ran out of recursion)
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _walk_json(text: str | None, path: tuple[Segment, ...]) -> str | None:
    """`json_extract`: the JSON text at `path` (a JSON null is `null`; missing or malformed -> None)."""
    value = _value_at(text, path)
    return None if value is _MISSING else _json_text(value)


def _walk_json_string(text: str | None, path: tuple[Segment, ...]) -> str | None:
    """`json_extract_string`: a string at `path` unquoted, another value as JSON text, a JSON null as None."""
    value = _value_at(text, path)
    if value is _MISSING or value is None:
        return None
    return value if isinstance(value, str) else _json_text(value)


def json_call_expr(call: JsonCall) -> pl.Expr:
    """The synthetic column of one call, as DuckDB computes it (missing path -> null)."""
    src = pl.col(call.column)
    # Canonical JSON (schema.md §3.3) writes a plain key as `"key":` verbatim, so rows without that text cannot
    # hold the path: null them first and the JSON is parsed only where it can match (the path of the usage
    # filter, `$.claude.api_error`, is in one row of a hundred).
    keys = [s for s in call.path if isinstance(s, str)]
    if call.column in JSON_COLUMNS and keys and not re.search(r'["\\\x00-\x1f]', keys[-1]):
        src = pl.when(src.str.contains(f'"{keys[-1]}":', literal=True)).then(src)
    path = call.path
    negative = any(isinstance(seg, int) and seg < 0 for seg in call.path)  # (Polars clamps `[#-9]` to the first)
    if call.function == "json_extract_string" and not negative and not any("\\" in k for k in keys):
        # Strings unquoted; numbers, booleans, objects and lists as JSON text; a JSON null is null (as DuckDB).
        # (Polars' path matching finds no key with a backslash, however it is escaped: walked below.) Its
        # parser gives null for a whole document nesting 128 levels or more, whatever the path: such a row's
        # null is walked again in Python (a row whose null is a real one costs one parse).
        # And an integer beyond 64 bits: Polars gives it as a float (`1.2345678901234568e+22`): walked again
        # too, exact, when the document holds such digits (as `json_extract` keeps it).
        fast = src.str.json_path_match(_polars_json_path(call.path))

        def exact(t: str | None, f: str | None) -> str | None:
            if f is None:
                return None if t is None else _walk_json_string(t, path)
            if ("e" in f or "." in f) and t is not None and _LONG_DIGITS.search(t) is not None:
                return _walk_json_string(t, path)
            return f

        return pl.struct(src.alias("s"), fast.alias("f")).map_batches(
            lambda b: pl.Series([exact(t, f) for t, f in zip(b.struct.field("s").to_list(),
                                                             b.struct.field("f").to_list(), strict=True)],
                                dtype=pl.String),
            return_dtype=pl.String,
            is_elementwise=True,
        ).alias(call.name)
    walk = _walk_json if call.function == "json_extract" else _walk_json_string
    return src.map_batches(
        lambda s: pl.Series([walk(v, path) for v in s.to_list()], dtype=pl.String),
        return_dtype=pl.String,
        is_elementwise=True,
    ).alias(call.name)


@functools.cache
@functools.cache
def _relation_schemas() -> dict[str, pl.Schema]:
    """Each relation's columns and their types (from the schema: no file is read)."""
    messages = pl.LazyFrame(schema=MESSAGES_SCHEMA)
    return {rel: lf.collect_schema() for rel, lf in ((MESSAGES, messages), (USAGE, usage_view(messages)))}


def _relation_text_columns() -> dict[str, frozenset[str]]:
    """The String columns of each relation (the columns a JSON path can read)."""
    return {rel: frozenset(c for c, t in schema.items() if t == pl.String()) for rel, schema in
            _relation_schemas().items()}  # fmt: skip


def _usage(function: str) -> str:
    return (
        f"{function}() takes a column of {MESSAGES} and a JSON path in single quotes, as in "
        f"{function}(attributes, '$.gateway.identity_source')"
    )


def _ident(sql: str, tok: tuple[str, int, int]) -> str | None:
    """The name of a bare word or double-quoted identifier token, else None."""
    t, s, e = tok
    if t == "lit":
        return (
            sql[s + 1 : e - 1].replace('""', '"')
            if sql[s] == '"' and e - s >= 2 and sql[e - 1] == '"'
            else None
        )
    return sql[s:e] if _WORD.fullmatch(t) else None


def _parse_call(sql: str, toks: list[tuple[str, int, int]], i: int) -> tuple[int, str, str, str, str]:
    """The call starting at token i (`json_extract…`, `(`, [qualifier `.`] column, `,`, 'path', `)`):
    (index of its `)`, column, column as written, qualifier as written or "", path). Raises QueryError."""
    function = toks[i][0]
    k = i + 2
    args = toks[k : k + 3]
    qualifier = ""
    if len(args) >= 3 and args[1][0] == "." and _ident(sql, args[0]) is not None:
        qualifier = sql[args[0][1] : args[0][2]]
        k += 2
    col_tok = toks[k] if k < len(toks) else None
    column = _ident(sql, col_tok) if col_tok else None
    rest = toks[k + 1 : k + 4]
    if (
        column is None
        or len(rest) < 3
        or rest[0][0] != ","
        or rest[1][0] != "lit"
        or sql[rest[1][1]] != "'"
        or rest[1][2] - rest[1][1] < 2
        or sql[rest[1][2] - 1] != "'"
        or rest[2][0] != ")"
    ):
        raise QueryError(_usage(function))
    assert col_tok is not None
    path = sql[rest[1][1] + 1 : rest[1][2] - 1].replace("''", "'")
    return k + 3, column, sql[col_tok[1] : col_tok[2]], qualifier, path


def _has_alias(sql: str, toks: list[tuple[str, int, int]], depth: list[int], d: int) -> bool:
    """Whether a select item (its tokens, at depth `d`) ends with an alias (`… AS x` or `… x`)."""
    if any(t == "as" and depth_ == d for (t, _, _), depth_ in zip(toks, depth, strict=True)):
        return True
    if len(toks) < 2 or toks[-1][0] in _NOT_BEFORE_ALIAS or _ident(sql, toks[-1]) is None:
        return False
    prev = toks[-2]
    # After a value (`)`, a literal, a number, a column, `END`, `NULL`, `TRUE`, `FALSE`) a name is an alias:
    # `case … end kind`, `count(*) * 100 pct`, `x is not null has_x` (the lexer gives a number digit by digit)
    return (
        prev[0] in (")", "lit")
        or prev[0].isdigit()
        or prev[0] in _VALUE_END_WORDS
        or (_WORD.fullmatch(prev[0]) is not None and prev[0] not in _NOT_BEFORE_ALIAS)
    )


# Words that end a value: a name after one of them is an alias.
_VALUE_END_WORDS = frozenset({"end", "null", "true", "false"})


def rewrite_json_paths(sql: str) -> tuple[str, list[JsonCall]]:
    """Replace each `json_extract_string(col, 'path')` / `json_extract(col, 'path')` in a statement (not in a
    literal or comment) with a synthetic column, and name an unaliased select item that holds one the way
    DuckDB would (else it would take the synthetic name). Returns the statement for the engine and the calls
    to compute. Raises QueryError for a call that is not a column and a literal path."""
    toks = _lex(sql)
    calls: dict[tuple[str, str, tuple[Segment, ...]], JsonCall] = {}
    found: dict[int, tuple[int, JsonCall]] = {}  # token index of a call -> (index of its `)`, call)
    edits: list[tuple[int, int, str]] = []
    text_columns = _relation_text_columns()
    for i, (t, s, _) in enumerate(toks):
        if (
            t not in JSON_FUNCTIONS
            or i + 1 >= len(toks)
            or toks[i + 1][0] != "("
            or (i and toks[i - 1][0] == ".")
        ):
            continue
        end, column, col_text, qualifier, path_text = _parse_call(sql, toks, i)
        try:
            path = parse_json_path(path_text)
        except ValueError as exc:
            raise QueryError(f"{t}(): unsupported JSON path '{path_text}' ({exc}); use a path such as "
                             f"{_JSON_EXAMPLE}") from None  # fmt: skip
        written = f"{qualifier}.{col_text}" if qualifier else col_text
        if not any(column in cols for cols in text_columns.values()):
            raise QueryError(
                f"{t}(): {written} is not a text column of {MESSAGES} or {USAGE}; JSON paths read their "
                "columns (attributes, status, raw_frame, tool_args) directly, not columns computed in the query"
            )
        key = (t, column, path)
        if key not in calls:
            text = f"{t}({written}, '{path_text.replace(chr(39), chr(39) * 2)}')"
            calls[key] = JsonCall(t, column, path, f"{_SYNTHETIC}{len(calls) + 1}", text)
        call = calls[key]
        edits.append((s, toks[end][2], f"{qualifier}.{call.name}" if qualifier else call.name))
        found[i] = (end, call)
    if not calls:
        return sql, []
    edits.extend(_select_item_aliases(sql, toks, found))
    for start, end, text in sorted(edits, key=lambda e: e[0], reverse=True):
        sql = sql[:start] + text + sql[end:]
    return sql, list(calls.values())


def _select_item_aliases(
    sql: str, toks: list[tuple[str, int, int]], found: dict[int, tuple[int, JsonCall]]
) -> list[tuple[int, int, str]]:
    """Insertions of ` AS "<item>"` after each unaliased select item that holds a JSON call: a bare call is
    named as DuckDB names it, another expression by its text."""
    depth = _depths(toks)
    edits: list[tuple[int, int, str]] = []
    for i, (t, _, _) in enumerate(toks):
        if t != "select":
            continue
        d = depth[i]
        for item in _select_items(toks, depth, i):
            if any(j in found for j in item) and not _has_alias(
                sql, [toks[j] for j in item], [depth[j] for j in item], d
            ):
                first, last = item[0], item[-1]
                if first in found and found[first][0] == last:
                    name = found[first][1].text
                else:
                    name = " ".join(sql[toks[first][1] : toks[last][2]].split())
                pos = toks[last][2]
                edits.append((pos, pos, ' AS "' + name.replace('"', '""') + '"'))
    return edits


def _depths(toks: list[tuple[str, int, int]]) -> list[int]:
    """The parenthesis depth of each token (a `(` and its `)` at the outer depth)."""
    depth: list[int] = []
    d = 0
    for t, _, _ in toks:
        if t == ")":
            d -= 1
        depth.append(d)
        if t == "(":
            d += 1
    return depth


def _select_items(toks: list[tuple[str, int, int]], depth: list[int], i: int) -> list[list[int]]:
    """The items of the select list that starts at token `i` (`select`), as lists of token indexes."""
    d = depth[i]
    k = i + 1
    while k < len(toks) and toks[k][0] in ("distinct", "all"):
        k += 1
        if k + 1 < len(toks) and toks[k][0] == "on" and toks[k + 1][0] == "(":  # DISTINCT ON (…)
            k += 1
            while k < len(toks) and not (toks[k][0] == ")" and depth[k] == d):
                k += 1
            k += 1
    items: list[list[int]] = []
    item: list[int] = []
    while True:
        at_end = k >= len(toks) or depth[k] < d or (
            depth[k] == d
            and toks[k][0] in _SELECT_LIST_END
            and not (toks[k][0] == "from" and toks[k - 1][0] == "distinct")  # (`a IS [NOT] DISTINCT FROM b`)
        )
        if at_end or (depth[k] == d and toks[k][0] == ","):
            if item:
                items.append(item)
            item = []
            if at_end:
                return items
        else:
            item.append(k)
        k += 1


def _item_text(sql: str, toks: list[tuple[str, int, int]]) -> str:
    """A select item as written, with each run of whitespace or comments between its tokens as one space."""
    out = [sql[toks[0][1] : toks[0][2]]]
    for prev, tok in zip(toks, toks[1:], strict=False):
        if tok[1] > prev[2]:
            out.append(" ")
        out.append(sql[tok[1] : tok[2]])
    return "".join(out)


# Bare words that are values, not columns: named by their text like any expression.
_VALUE_WORDS = frozenset(
    {"null", "true", "false", "current_timestamp", "current_date", "current_time", "localtimestamp", "localtime"}
)


def _is_column_ref(sql: str, toks: list[tuple[str, int, int]]) -> bool:
    """`*`, `t.*` (with any `EXCLUDE (…)`, `RENAME (…)`), `col`, `t.col`, `"col"`: items the engine already
    names as a reader expects."""
    stars = [n for n, tok in enumerate(toks) if tok[0] == "*"]
    if stars and (
        stars[0] == 0
        or (
            stars[0] >= 2
            and toks[stars[0] - 1][0] == "."
            and all(toks[n][0] == "." if n % 2 else _ident(sql, toks[n]) is not None for n in range(stars[0]))
        )
    ):
        return True
    for n, tok in enumerate(toks):
        if n % 2:
            if tok[0] != ".":
                return False
        elif _ident(sql, tok) is None or tok[0] in _VALUE_WORDS:
            return False
    return len(toks) % 2 == 1


def name_result_columns(sql: str) -> str:
    """Name each unaliased expression of every select list by its text, as SQLite and DuckDB do (`count(*)`,
    `sum(input_tokens)`, `1`), with ` AS "<text>"`: the engine would call them `len`, `input_tokens` (the
    column an aggregate reads, so a sum looked like a raw value, also through a CTE's `select *`) and
    `literal`. Column references, stars and aliased items are left alone. A repeated name in one list gets
    `:1`, `:2`, as the engine suffixes repeats."""
    toks = _lex(sql)
    depth = _depths(toks)
    edits: list[tuple[int, str]] = []
    for i, (t, _, _) in enumerate(toks):
        if t != "select":
            continue
        taken: set[str] = set()
        plan: list[tuple[int, str]] = []
        for item in _select_items(toks, depth, i):
            its = [toks[j] for j in item]
            if _has_alias(sql, its, [depth[j] for j in item], depth[i]) or _is_column_ref(sql, its):
                if its[-1][0] != "*":
                    taken.add(_ident(sql, its[-1]) or "")
                continue
            plan.append((its[-1][2], _item_text(sql, its)))
        for pos, name in plan:
            unique, n = name, 0
            while unique in taken:
                n += 1
                unique = f"{name}:{n}"
            taken.add(unique)
            edits.append((pos, ' AS "' + unique.replace('"', '""') + '"'))
    for pos, text in sorted(edits, reverse=True):
        sql = sql[:pos] + text + sql[pos:]
    return sql


# Type names that give a timestamp without a time zone, and the calls whose `AS` is followed by a type.
_NAIVE_TIME_TYPES = frozenset({"timestamp", "datetime"})
_CAST_CALLS = frozenset({"cast", "try_cast", "safe_cast"})


def _is_naive_time_type(toks: list[tuple[str, int, int]], depth: list[int], sql: str, i: int) -> bool:
    """Whether token i (`timestamp` or `datetime`) is the type of a time written without a zone: a typed literal
    (`timestamp '2026-05-01'`, `timestamp(3) '…'`) or a cast of a string literal (`'…'::timestamp`,
    `cast('…' AS timestamp)`, also with a dollar-quoted string `$$…$$`); not a column or an alias called so,
    nor an explicit `timestamp with[out] time zone`. A cast of anything else keeps the engine's meaning:
    `cast(message_created_at as timestamp)` drops the zone (a UTC wall-clock time, comparable with
    strptime(…))."""

    def quoted(k: int) -> bool:
        return 0 <= k < len(toks) and toks[k][0] == "lit" and sql[toks[k][1]] in "'$"

    nxt = [t for t, _, _ in toks[i + 1 : i + 5]]
    if nxt[:1] in (["with"], ["without"]):
        return False
    if quoted(i + 1) or (nxt[:1] == ["("] and len(nxt) == 4 and nxt[1].isdigit() and nxt[2] == ")" and quoted(i + 4)):
        return True
    if i >= 3 and toks[i - 1][0] == ":" and toks[i - 2][0] == ":" and quoted(i - 3):
        return True
    if i and toks[i - 1][0] == "as":
        # the `AS` of a cast is inside the call's parentheses: find the `(` that opens them
        k = i - 1
        while k >= 0 and not (toks[k][0] == "(" and depth[k] == depth[i] - 1):
            k -= 1
        return k >= 1 and toks[k - 1][0] in _CAST_CALLS and quoted(k + 1) and k + 2 == i - 1
    return False


def _has_at_time_zone(toks: list[tuple[str, int, int]]) -> bool:
    return any([t for t, _, _ in toks[i : i + 3]] == ["at", "time", "zone"] for i in range(len(toks)))


def utc_now(sql: str, now: datetime | None = None) -> str:
    """`now()` and `current_timestamp` as the UTC instant the query starts (`timestamptz '…'`), and `current_date`
    as its UTC date (the `date` column's): the engine's are local, naive wall-clock times, so
    `message_created_at > now() - interval '30 days'` failed (a UTC timestamp against a naive one) and `select
    now()` printed local time without a zone. The JSON operators
    `->` / `->>` are refused here with what to use instead (the engine's own message named only the path)."""
    toks = _lex(sql)
    at = (now or datetime.now(UTC)).astimezone(UTC)
    stamp = f"timestamptz '{at.isoformat()}'"
    day = at.date().isoformat()
    edits: list[tuple[int, int, str]] = []
    for i, (t, start, end) in enumerate(toks):
        if t == "-" and i + 1 < len(toks) and toks[i + 1][0] == ">" and toks[i + 1][1] == end:
            raise QueryError(
                "the JSON operators -> and ->> are not supported; use json_extract(column, '$.path') or "
                "json_extract_string(column, '$.path')"
            )
        if i and toks[i - 1][0] in (".", "as"):  # (a qualified name, or a column called so)
            continue
        if t == "now" and toks[i + 1 : i + 3] and [x[0] for x in toks[i + 1 : i + 3]] == ["(", ")"]:
            edits.append((start, toks[i + 2][2], stamp))
        elif t == "current_timestamp" and not (i + 1 < len(toks) and toks[i + 1][0] == "("):
            edits.append((start, end, stamp))
        elif t == "current_date":
            # (the local date, where the dataset's `date` is the UTC one: `where date = current_date` missed
            # today's partition for half the day, west or east of UTC)
            call = [x[0] for x in toks[i + 1 : i + 3]] == ["(", ")"]
            edits.append((start, toks[i + 2][2] if call else end, f"date '{day}'"))
    for start, end, text in reversed(edits):
        sql = sql[:start] + text + sql[end:]
    return sql


def utc_literals(sql: str) -> str | None:
    """The statement with each time written without a zone read as a UTC instant (`timestamp '2026-05-01'`,
    `'…'::timestamp`, `cast('…' as timestamp)`, DATETIME alike, become `timestamptz`), or None when there is
    none, or when the statement uses AT TIME ZONE anywhere.

    `run_sql` runs this only after the statement as written failed because it mixes a time with a zone (the
    dataset's, now()) and one without: the engine's literals are naive, so `message_created_at > timestamp
    '2026-05-01'` fails, while every time hyp stores and prints is UTC and the engine already reads a plain
    string (`message_created_at > '2026-05-01'`) as UTC. A statement that runs as written keeps the engine's
    meaning (as DuckDB's in a UTC session): `cast(message_created_at as timestamp) > timestamp '…'` compares two
    UTC wall-clock times, and `(timestamp '…') at time zone 'America/New_York'` is that wall-clock time in New
    York. With AT TIME ZONE in the statement, which literal means what cannot be told, so nothing is guessed.
    An offset in such a literal is applied (`timestamp '2026-05-01 12:00+02:00'` is 10:00 UTC, where DuckDB's
    TIMESTAMP drops it)."""
    toks = _lex(sql)
    if _has_at_time_zone(toks):
        return None
    depth = _depths(toks)
    edits = [
        (start, end)
        for i, (t, start, end) in enumerate(toks)
        if t in _NAIVE_TIME_TYPES and not (i and toks[i - 1][0] == ".") and _is_naive_time_type(toks, depth, sql, i)
    ]
    for start, end in reversed(edits):
        sql = sql[:start] + "timestamptz" + sql[end:]
    return sql if edits else None


_DATA_ERROR_HINTS = ("parquet:", "out of specification", "os error", "magic bytes", "footer")
# How the scan says that a part file's columns are not the schema's (a file not written by this version of hyp).
_SCHEMA_ERROR_HINTS = ("did not find column", "data type mismatch for column", "extra column in file")


def _is_data_error(exc: BaseException) -> bool:
    """A Polars error caused by a damaged file rather than by the statement."""
    text = str(exc).lower()
    return any(h in text for h in _DATA_ERROR_HINTS)


def _is_schema_error(exc: BaseException) -> bool:
    """A Polars error that may come from a part file with other columns than the schema's (`_data_error` tells
    from the footers)."""
    text = str(exc).lower()
    return any(h in text for h in _SCHEMA_ERROR_HINTS)


def _data_error(layout: Layout, exc: BaseException, fallback: Exception | None = None) -> Exception:
    """Name the damaged file(s) (from the footers, read-only) and say what to do. A file this process could not
    open (permissions, a folder of that name) is named with its reason, without the advice to set it aside. A
    file whose columns are not those hyp writes is named with what differs. When the only such files lack
    nullable columns, and the read failed on a missing column, `_MissingColumns` (read them as null). When no
    file is found at fault: `fallback`, else a DatasetReadError with the engine's message."""
    detail = _engine_message(exc)
    try:
        stats = dataset_stats(layout)
    except Exception:  # noqa: BLE001 - best effort; the engine message is still reported
        stats = None
    said = []
    if stats is not None and stats.unopened:
        said.append(unopened_text(stats.unopened))
    bad = stats.unreadable if stats is not None else []
    if bad:
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        verb = "is" if len(bad) == 1 else "are"
        said.append(
            f"{names} {verb} damaged or not written by hyp ({detail}). {damaged_file_advice(layout, len(bad))}"
        )
    wrong = stats.unreadable_mismatches if stats is not None else []
    if wrong:
        said.append(f"{mismatch_text(wrong)} {damaged_file_advice(layout, len(wrong))}")
    if said:
        return DatasetReadError("cannot read the dataset: " + " ".join(said))
    if (
        stats is not None and stats.mismatched and not missing_as_null()
        and "did not find column" in detail.lower()
    ):  # fmt: skip
        return _MissingColumns(detail)
    if fallback is not None:
        return fallback
    return DatasetReadError(f"cannot read the dataset under {layout.dataset_root} ({detail})")


def _engine_message(exc: BaseException) -> str:
    """The engine's own message, without Polars' multi-paragraph plan dump."""
    text = str(exc).strip()
    # (a hint names Polars' Python API, which a SQL statement cannot use)
    for marker in ("\n\nResolved plan", "\n\nThis error occurred", "\n\nHint:", "\nHint:"):
        pos = text.find(marker)
        if pos >= 0:
            text = text[:pos]
    text = text.strip() or type(exc).__name__
    if "relation" in text and "not found" in text:  # a misspelt table: say which ones there are
        text += f"; the relations are {' and '.join(RELATIONS)}"
    elif "unable to find column" in text:  # (Polars lists every column: the schema command says what they mean)
        text += f"; `{prog.NAME} query schema` describes them"
    return text


# How the engine names a datetime type with a time zone (`Datetime('μs', 'UTC')`, `datetime[μs, UTC]`) and
# without (`Datetime('μs')`, `datetime[μs]`) in its messages.
_ZONED_TIME = re.compile(r"Datetime\('[^',]*', '[^']*'\)|datetime\[[^\],]*, [^\]]*\]", re.IGNORECASE)
_NAIVE_TIME = re.compile(r"Datetime\('[^',]*'\)|datetime\[[^\],]*\]", re.IGNORECASE)


def _mixes_times(text: str) -> bool:
    """Whether an engine message says a time with a zone met one without."""
    return bool(_ZONED_TIME.search(text) and _NAIVE_TIME.search(text))


def _mixed_times_advice(statement: str) -> str:
    """What to write instead when `statement` mixes a time with a zone and one without, in its own terms: a way
    the statement already uses is not offered again (it did not help)."""
    toks = _lex(statement)
    depth = _depths(toks)
    at_zone = _has_at_time_zone(toks)

    def after(k: int, *words: str) -> bool:
        return k >= len(words) and [t for t, _, _ in toks[k - len(words) : k]] == list(words)

    literal = computed = zoned_literal = zoned_cast = False
    for i, (t, _, _) in enumerate(toks):
        if t in _NAIVE_TIME_TYPES and not after(i, "."):
            if _is_naive_time_type(toks, depth, statement, i):
                literal = True
            elif after(i, "as") or after(i, ":", ":") or toks[i + 1 : i + 2] and toks[i + 1][0] == "without":
                computed = True
        elif t == "strptime":
            computed = True
        elif t == "timestamptz":
            if i + 1 < len(toks) and toks[i + 1][0] == "lit":
                zoned_literal = True
            elif after(i, "as") or after(i, ":", ":"):
                zoned_cast = True
    if not literal and not computed:
        computed = True  # (not told by the statement)
    values = (["timestamptz '2026-05-01 12:00'"] if not zoned_literal else []) + [
        "'2026-05-01 12:00'", "with an offset ('2026-05-01 14:00+02:00')"
    ]
    says = [
        "a time with a time zone cannot be compared or combined with one without",
        "The dataset's times (message_created_at), now() and current_timestamp are UTC: write a time compared "
        "with them as " + ", as ".join(values[:-1]) + " or " + values[-1],
    ]
    if literal and at_zone:  # (then utc_literals does not read timestamp '…' as UTC)
        says[-1] += " (in a statement with AT TIME ZONE, timestamp '…' is a time without a zone)"
    if computed:
        ways = [] if zoned_cast else ["as UTC with cast(… as timestamptz)"]
        if not at_zone:
            ways.append("in a zone with … at time zone 'Europe/Paris'")
        if ways:
            says.append("Read a time computed without a zone (strptime(…), cast(… as timestamp)) " + ", or ".join(ways))
    if at_zone:
        says.append(
            "Note: … at time zone 'Europe/Paris' makes a UTC time a wall-clock time without a zone, and a time "
            "without a zone a UTC one"
        )
    return ". ".join(says)


def run_sql(layout: Layout, statement: str) -> pl.DataFrame:
    """Run one read-only SELECT over the two relations and return the result.

    The statement runs as written (now() and current_timestamp made UTC, `utc_now`), so it means what it means
    to the engine. Only one that the engine refuses because it mixes a time with a zone and one without, and
    that has times written without a zone (`utc_literals`), runs with those read as UTC instead. For such a
    statement, whether it is refused is learnt on relations of one row of nulls (with the data, the engine reads
    the files before it compares: the refusal came after 2.6 s of reading at 350k rows, where the whole query
    takes 1.9 s). If the UTC reading is refused too, the statement's own error is reported, with advice that
    fits it (also when the engine refuses it only once it reads rows); if it fails on the data for another
    reason, that error is.

    Raises QueryError (not a single SELECT, or an engine error: exit 2) or DatasetReadError (exit 1)."""
    sql, json_calls = rewrite_json_paths(check_select(statement))
    sql = utc_now(name_result_columns(sql))

    def refusal(text: str) -> str | None:
        """The engine's message if it refuses `text` on relations of one row of nulls, else None."""
        try:
            _probe_relations(json_calls).execute(text).collect()
        except pl.exceptions.PolarsError as exc:
            return _json_engine_message(_engine_message(exc), json_calls)
        return None

    def attempt(text: str) -> pl.DataFrame:
        ctx = open_relations(layout, json_calls)
        try:
            lf = ctx.execute(text)
            df = lf.collect()
        except pl.exceptions.PolarsError as exc:
            error = QueryError(_json_engine_message(_engine_message(exc), json_calls))
            if _is_data_error(exc):
                raise _data_error(layout, exc) from exc
            if _is_schema_error(exc):  # (a file with other columns, or a statement's own mismatch)
                raise _data_error(layout, exc, error) from exc
            raise error from exc
        # A `SELECT *` brings the synthetic columns along: they are not part of the answer.
        return df.drop([c for c in df.columns if _SYNTHETIC_RESULT.match(c)]) if json_calls else df

    def utc_instead() -> pl.DataFrame | None:
        """The result with the zone-less literals read as UTC, if the engine accepts that (else None). Accepted
        on the probe, its own error with the data is the one to report (a cast of a text column, say): the
        mixed times were mended, that one was not."""
        if utc is None or refusal(utc) is not None:
            return None
        return _with_retry(lambda: attempt(utc), layout)

    # Only a statement with a time written without a zone is probed: no reading of its literals can help any
    # other. (The probe computes everything that does not read the files, and bounds taken from the data are
    # null there: a recursive CTE or a range() up to one ran far longer on the probe than with the data.)
    utc = utc_literals(sql)
    first = None if utc is None else refusal(sql)
    if first is None or not _mixes_times(first):
        try:
            return _with_retry(lambda: attempt(sql), layout)
        except QueryError as exc:
            # (in case a shape is refused only with the data)
            if not _mixes_times(str(exc)):
                raise
            first = str(exc)
    df = utc_instead()
    if df is None:
        raise QueryError(f"{first}: {_mixed_times_advice(statement)}")
    return df


def _json_engine_message(text: str, json_calls: Sequence[JsonCall]) -> str:
    """An engine message that mentions a synthetic column, in the user's terms."""
    if not json_calls or _SYNTHETIC not in text:
        return text
    by_name = {c.name: c for c in json_calls}
    missing = re.search(r"""(?:unable to find column "|no column named ')(__hyp_json_\d+)""", text)
    if missing and missing.group(1) in by_name:
        call = by_name[missing.group(1)]
        return (
            f"{call.text}: the relation or subquery it reads has no column {call.column}. A JSON path reads a "
            f"column of {MESSAGES} (or {USAGE}) directly, or through a subquery or CTE that selects * from it; "
            "compute it inside a CTE that lists its columns"
        )
    return _SYNTHETIC_NAME.sub(
        lambda m: by_name[m.group(0)].text if m.group(0) in by_name else m.group(0), text
    )


# ---------------------------------------------------------------------------------------------------------
# Result conversion (shared by the JSON and CSV writers)


def _iso_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        return value.isoformat()
    return us_to_iso(datetime_to_us(value)) or ""


def _plain(value: Any) -> Any:
    """A Python value from a frame cell as a JSON-ready value (timestamps ISO 8601 UTC with `Z`)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return _iso_datetime(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):  # (a decimal literal makes the column Decimal: `1.5`, `x * 1.0`)
        if not value.is_finite():
            return None
        return int(value) if value.as_tuple().exponent >= 0 else float(value)  # type: ignore[operator]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


# Which result columns of a statement hold JSON. The engine gives plain strings, so this follows each select
# item back to where its value comes from: a JSON column of a relation (`attributes`, `m.attributes AS a`,
# `(attributes)`, a CTE's or subquery's column that is one, `*`) or `json_extract(…)` is JSON; a literal, a
# column that is not JSON and a function that gives text (`json_extract_string(…)`, `upper(…)`, `||`) are text,
# whatever their name (`content_text AS attributes`). Anything else (`first(attributes)`, `coalesce(…)`, a
# window, `case`, a FROM item it does not know) is judged by its name, as before, but then only a JSON object
# or array is nested: text named like a JSON column that reads as `42`, `null` or `true` stays text.

# Functions whose result is text, whatever they are given.
_TEXT_FUNCTIONS = frozenset(
    {"json_extract_string", "upper", "lower", "ucase", "lcase", "concat", "concat_ws", "substr", "substring",
     "replace", "trim", "ltrim", "rtrim", "btrim", "lpad", "rpad", "left", "right", "reverse", "regexp_replace",
     "regexp_extract", "split_part", "initcap", "strftime", "format", "printf", "md5", "sha256", "repeat",
     "to_char", "string_agg", "group_concat", "listagg", "chr", "translate"}
)  # fmt: skip


@dataclass(frozen=True)
class _Columns:
    """What a FROM item is known to give: its columns that hold JSON and those that do not (lower-cased: the
    lexer lower-cases bare names, the engine keeps their case). A name in both (`"A"` JSON, `"a"` text) is not
    known."""

    json: frozenset[str] = frozenset()
    text: frozenset[str] = frozenset()

    def is_json(self, name: str) -> bool | None:
        name = name.lower()
        if name in self.json:
            return None if name in self.text else True
        return False if name in self.text else None

    @property
    def known(self) -> bool:
        return bool(self.json or self.text)

    def with_column(self, name: str, json: bool | None) -> _Columns:
        """The same with `name` holding JSON (True), text (False) or not known (None)."""
        name = name.lower()
        return _Columns(
            self.json - {name} | ({name} if json else set()),
            self.text - {name} | ({name} if json is False else set()),
        )


@dataclass(frozen=True)
class _Item:
    """A select item: a column reference or another expression (`json`: True JSON, False text, None not known),
    or a star (`star`: what it brings from each FROM item, by alias, in FROM order)."""

    kind: str  # "column", "star" or "expression"
    json: bool | None = False
    name: str = ""  # the output name (alias, or the column's own name); "" for an unnamed expression
    star: tuple[tuple[str, _Columns], ...] = ()


_FROM_END = _SELECT_LIST_END - {"from"}
_NOT_AN_ALIAS = frozenset(
    {"join", "inner", "left", "right", "full", "outer", "cross", "natural", "semi", "anti", "on", "using",
     "lateral", "as", ",", "(", ")"}
)  # fmt: skip
_SET_OPERATIONS = frozenset({"union", "except", "intersect"})


def _relation_columns() -> dict[str, _Columns]:
    """Each relation's columns, JSON or text."""
    return {rel: _Columns(json=frozenset(schema) & JSON_COLUMNS, text=frozenset(schema) - JSON_COLUMNS) for rel,
            schema in _relation_schemas().items()}  # fmt: skip


def _name(sql: str, tok: tuple[str, int, int]) -> str | None:
    """A bare word (as the lexer lower-cases it) or a quoted identifier (as written)."""
    return tok[0] if tok[0] != "lit" else _ident(sql, tok)


def _closing(toks: list[tuple[str, int, int]], depth: list[int], k: int) -> int:
    """The index of the `)` that closes the `(` at k (or the end)."""
    j = k + 1
    while j < len(toks) and not (toks[j][0] == ")" and depth[j] == depth[k]):
        j += 1
    return j


def _query_branches(
    sql: str, toks: list[tuple[str, int, int]], depth: list[int], start: int, end: int, env: dict[str, _Columns]
) -> list[list[_Item]]:
    """The select items of each branch of the query in tokens [start, end) whose rows make the result (a UNION
    has several; the right side of an EXCEPT or INTERSECT gives none), after its WITH clause (whose CTEs are
    added to a copy of `env`). A parenthesized branch is followed into (`… union all (select …)`). None is
    known (an empty list) for a UNION BY NAME, whose columns are not paired by position."""
    env = dict(env)
    k = start
    if k < end and toks[k][0] == "with":
        k += 1
        if k < end and toks[k][0] == "recursive":
            k += 1
        while k < end:
            name = _name(sql, toks[k]) if toks[k][0] != "(" else None
            k += 1
            renamed: list[str] | None = None
            if k < end and toks[k][0] == "(":  # a column list: `x(a, b) AS (…)`
                close = _closing(toks, depth, k)
                renamed = [n for j in range(k + 1, close) if toks[j][0] != "," and (n := _name(sql, toks[j]))]
                k = close + 1
            while k < end and toks[k][0] in ("as", "not", "materialized"):
                k += 1
            if k >= end or toks[k][0] != "(" or name is None:
                return []
            close = _closing(toks, depth, k)
            branches = _query_branches(sql, toks, depth, k + 1, close, env)
            env[name.lower()] = _output_columns(branches, renamed)
            k = close + 1
            if k < end and toks[k][0] == ",":
                k += 1
                continue
            break
    out: list[list[_Item]] = []
    keep, expect = True, True  # (keep: not the right side of EXCEPT / INTERSECT; expect: a branch comes next)
    base = depth[k] if k < end else 0
    while k < end:
        t = toks[k][0]
        if depth[k] != base:
            k += 1
        elif expect and t == "(":
            close = _closing(toks, depth, k)
            if keep:
                out += _query_branches(sql, toks, depth, k + 1, close, env)
            k, expect = close + 1, False
        elif expect and t == "select":
            if keep:
                out.append(_select_shape(sql, toks, depth, k, env))
            k, expect = k + 1, False
        elif t in _SET_OPERATIONS:
            # `a EXCEPT b UNION ALL c` is `(a EXCEPT b) UNION ALL c`: c's rows are in the result, b's are not
            keep, expect = t == "union", True
            k += 1
            while k < end and toks[k][0] in ("all", "distinct"):
                k += 1
            if [x[0] for x in toks[k : k + 2]] == ["by", "name"]:  # (`UNION BY NAME` pairs columns by name)
                return []
        elif expect:  # a branch this does not know (VALUES, FROM-first)
            return []
        else:
            k += 1
    return out


def _output_columns(branches: list[list[_Item]], renamed: list[str] | None = None) -> _Columns:
    """The columns a CTE or subquery gives, from its first branch (JSON only if so in every branch)."""
    if not branches:
        return _Columns()
    json: set[str] = set()
    text: set[str] = set()
    items = branches[0]
    if renamed is not None:
        if any(it.kind == "star" for it in items) or len(renamed) != len(items):
            return _Columns()
        items = [_Item(it.kind, it.json, new) for it, new in zip(items, renamed, strict=True)]
    for n, it in enumerate(items):
        if it.kind == "star":
            for _, cols in it.star:
                json |= cols.json - text
                text |= cols.text - json
            continue
        if not it.name:
            continue
        name = it.name.lower()
        same = [b[n] for b in branches[1:] if len(b) == len(branches[0]) and b[n].kind != "star"]
        if it.json and all(o.json for o in same):
            json.add(name)
        elif it.json is False or any(o.json is False for o in same):
            text.add(name)
    return _Columns(frozenset(json), frozenset(text))


def _from_items(
    sql: str, toks: list[tuple[str, int, int]], depth: list[int], i: int, env: dict[str, _Columns]
) -> dict[str, _Columns]:
    """The FROM items of the select at token i, in order, by alias or name (a subquery without an alias: ""),
    with what each is known to give (nothing for a FROM item that is neither a relation, a CTE nor a
    subquery)."""
    d, n = depth[i], len(toks)
    k = i + 1
    while k < n and depth[k] >= d and not (
        depth[k] == d and toks[k][0] in _SELECT_LIST_END and not (toks[k][0] == "from" and toks[k - 1][0] == "distinct")
    ):
        k += 1
    out: dict[str, _Columns] = {}
    if k >= n or toks[k][0] != "from" or depth[k] != d:
        return out
    expect = True  # after FROM, `,` or JOIN: a table comes next
    k += 1
    while k < n and depth[k] >= d and not (depth[k] == d and toks[k][0] in _FROM_END):
        t = toks[k][0]
        if depth[k] > d or not expect or t == "lateral":
            expect = depth[k] == d and t in (",", "join")
            k += 1
            continue
        expect = False
        if t == "(":
            close = _closing(toks, depth, k)
            first = toks[k + 1][0] if k + 1 < n else ""
            subquery = first in ("select", "with", "(")
            cols = _output_columns(_query_branches(sql, toks, depth, k + 1, close, env)) if subquery else _Columns()
            key = ""
            k = close + 1
        else:
            name = _name(sql, toks[k])
            k += 1
            if name is None:
                out[f"({k})"] = _Columns()  # (not known: it may hold any column)
                continue
            key = name.lower()
            cols = env.get(key) or _relation_columns().get(key) or _Columns()
        if k < n and toks[k][0] == "as":
            k += 1
        if k < n and depth[k] == d and toks[k][0] not in _NOT_AN_ALIAS and toks[k][0] not in _FROM_END:
            alias = _name(sql, toks[k])
            if alias is not None:
                key = alias.lower()
                k += 1
        out[key] = cols
    return out


def _star_changes(
    sql: str, toks: list[tuple[str, int, int]], depth: list[int], a: int, b: int, sources: dict[str, _Columns],
    env: dict[str, _Columns],
) -> list[tuple[str, str | None, bool | None]]:
    """The RENAME (old AS new) and REPLACE (expr AS name) of a star in tokens [a, b), in order, as (name, the
    old name it takes the value of or None, whether a replacing value is JSON)."""
    out: list[tuple[str, str | None, bool | None]] = []
    k = a
    while k < b:
        word = toks[k][0]
        if word in ("rename", "replace") and k + 1 < b and toks[k + 1][0] == "(" and depth[k] == depth[a]:
            close = _closing(toks, depth, k + 1)
            part = k + 2
            for j in range(k + 2, close + 1):
                if j == close or (toks[j][0] == "," and depth[j] == depth[k] + 1):
                    if j - part >= 3 and toks[j - 2][0] == "as":
                        new = _name(sql, toks[j - 1]) or ""
                        if word == "rename":
                            out.append((new, _name(sql, toks[j - 3]) or "", None))
                        else:
                            out.append((new, None, _expr_json(sql, toks, depth, part, j - 2, sources, env)))
                    part = j + 1
            k = close + 1
        else:
            k += 1
    return out


def _expr_json(
    sql: str, toks: list[tuple[str, int, int]], depth: list[int], a: int, b: int, sources: dict[str, _Columns],
    env: dict[str, _Columns],
) -> bool | None:
    """Whether the expression in tokens [a, b) (not a star) gives JSON (True), text (False) or cannot be told
    (None)."""
    while b - a >= 2 and toks[a][0] == "(" and _closing(toks, depth, a) == b - 1:  # `(attributes)`
        a, b = a + 1, b - 1
    if a >= b:
        return None
    first = toks[a][0]
    if first in ("select", "with"):  # a scalar subquery: its one column
        answers = [
            br[0].json if len(br) == 1 and br[0].kind != "star" else None
            for br in _query_branches(sql, toks, depth, a, b, env)
        ]
        return False if False in answers else True if answers and all(answers) else None
    expr = toks[a:b]
    if _is_column_ref(sql, expr):
        column = _name(sql, expr[-1]) or ""
        if len(expr) >= 3:
            known = sources.get((_name(sql, expr[-3]) or "").lower())
            return known.is_json(column) if known else None
        for cols in sources.values():  # (the first FROM item that has the column gives it)
            if not cols.known:
                return None
            if (answer := cols.is_json(column)) is not None:
                return answer
        return None
    if b - a == 1 and first == "lit" and sql[toks[a][1]] in "'$":
        return False
    if b - a >= 3 and _WORD.fullmatch(first) and toks[a + 1][0] == "(" and _closing(toks, depth, a + 1) == b - 1:
        # `json_extract(col, 'path')` gives JSON text (DuckDB's JSON type); `json_extract_string` gives text
        return True if first == "json_extract" else False if first in _TEXT_FUNCTIONS else None
    if any(
        toks[j][0] == "|" and toks[j + 1][0] == "|" and toks[j + 1][1] == toks[j][2] and depth[j] == depth[a]
        for j in range(a, b - 1)
    ):
        return False  # (`x || y` is text)
    return None


def _select_shape(
    sql: str, toks: list[tuple[str, int, int]], depth: list[int], i: int, env: dict[str, _Columns]
) -> list[_Item]:
    """The items of the select at token i."""
    sources = _from_items(sql, toks, depth, i, env)
    d = depth[i]
    shape: list[_Item] = []
    for item in _select_items(toks, depth, i):
        its = [toks[j] for j in item]
        alias = ""
        a, b = item[0], item[-1] + 1
        if _has_alias(sql, its, [depth[j] for j in item], d):
            alias = _name(sql, its[-1]) or ""
            b -= 2 if len(its) >= 3 and its[-2][0] == "as" else 1
        expr = toks[a:b]
        words = [t for t, _, _ in expr]
        if "*" in words and _is_column_ref(sql, expr):
            qualifier = (_name(sql, expr[0]) or "").lower() if len(expr) >= 3 and words[1] == "." else None
            picked = [(qualifier, sources.get(qualifier, _Columns()))] if qualifier else list(sources.items())
            for new, old, json in _star_changes(sql, toks, depth, a, b, sources, env):
                changed = []
                for key, cols in picked:
                    if old is not None:  # RENAME: the old column's verdict under the new name
                        json = cols.is_json(old)
                        cols = cols.with_column(old, None) if old.lower() != new.lower() else cols
                    changed.append((key, cols.with_column(new, json)))
                picked = changed
            shape.append(_Item("star", star=tuple(picked)))
        elif expr and _is_column_ref(sql, expr):
            column = _name(sql, expr[-1]) or ""
            shape.append(_Item("column", _expr_json(sql, toks, depth, a, b, sources, env), alias or column))
        else:
            shape.append(_Item("expression", _expr_json(sql, toks, depth, a, b, sources, env), alias))
    return shape


def _by_name(name: str) -> bool:
    """The old rule, for what cannot be followed: a JSON column's own name (a join's `attributes:b` too)."""
    return name.split(":", 1)[0].lower() in JSON_COLUMNS


# A result column's verdict: any JSON is nested, only an object or array is (judged by its name), or text.
_JSON, _OBJECT, _TEXT = "json", "object", "text"


def json_result_columns(statement: str, df: pl.DataFrame) -> dict[str, bool]:
    """The result columns of `statement` (as run by `run_sql`, giving `df`) that hold JSON text: True when any
    JSON value of the column is to be nested (a JSON column or json_extract(…), followed to its source), False
    when only an object or an array is (a column judged by its name alone)."""
    strings = [c for c, t in df.schema.items() if t == pl.String()]
    try:
        toks = [tok for tok in _lex(statement) if tok[0] != ";"]
        branches = _query_branches(statement, toks, _depths(toks), 0, len(toks), {})
    except (IndexError, ValueError):
        branches = []
    verdicts = [_align(items, df.columns) for items in branches]
    if not verdicts or any(v is None for v in verdicts):
        return {c: False for c in strings if _by_name(c)}
    out: dict[str, bool] = {}
    for n, c in enumerate(df.columns):
        said = {v[n] for v in verdicts if v}
        if c in strings and _TEXT not in said:
            out[c] = said == {_JSON}
    return out


def _verdict(json: bool | None, column: str) -> str:
    if json is None:
        return _OBJECT if _by_name(column) else _TEXT
    return _JSON if json else _TEXT


def _align(items: list[_Item], columns: list[str]) -> list[str] | None:
    """Each result column's verdict, from the items of one branch: the items before the first star are the
    first columns, those after the last star the last ones, the stars' columns are between (judged by what the
    stars' FROM items are known to hold: `name:alias`, a join's column of the FROM item `alias`, by that one).
    None when the counts do not match."""
    stars = [n for n, it in enumerate(items) if it.kind == "star"]
    if not stars:
        if len(items) != len(columns):
            return None
        return [_verdict(it.json, c) for it, c in zip(items, columns, strict=True)]
    head, tail = items[: stars[0]], items[stars[-1] + 1 :]
    middle = len(columns) - len(head) - len(tail)
    if middle < 0 or stars != list(range(stars[0], stars[-1] + 1)):  # (an item between two stars: no place)
        return None
    sources = [src for it in items if it.kind == "star" for src in it.star]
    out = _align(head, columns[: len(head)]) or []
    for c in columns[len(head) : len(head) + middle]:
        out.append(_verdict(_star_column(sources, c), c))
    out += _align(tail, columns[len(head) + middle :]) or []
    return out


def _star_column(sources: list[tuple[str, _Columns]], column: str) -> bool | None:
    """Whether a star's result column holds JSON: a column the engine suffixed with `:alias` (the second of two
    with one name, in a join) is judged by the FROM item `alias`; another by the first FROM item that has it.
    None when not known."""
    for _, cols in sources:
        if not cols.known:
            break
        if (answer := cols.is_json(column)) is not None:
            return answer
    base, _, alias = column.rpartition(":")
    if base:
        for key, cols in sources:
            if key == alias.lower():
                return cols.is_json(base)
    return None


def json_columns(df: pl.DataFrame) -> list[str]:
    """Result columns that hold JSON text (schema.md §2 JSON columns, by name, when still strings)."""
    return [c for c, t in df.schema.items() if c in JSON_COLUMNS and t == pl.String()]


def _parse_json_text(text: str | None, *, structured: bool = False) -> Any:
    """JSON text as its value (text that is not JSON as it is); with `structured`, only an object or array."""
    if text is None:
        return None
    try:
        value = _loads_exact(text)
    except ValueError:
        return text
    return text if structured and not isinstance(value, dict | list) else value


def to_records(
    df: pl.DataFrame, *, nested_json: bool = True, json_cols: Mapping[str, bool] | Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Rows as dicts of JSON-ready values. With `nested_json`, JSON-typed columns become nested values: those
    named in `json_cols` (`json_result_columns` of the statement: a False value nests only objects and arrays),
    else those with a JSON column's name."""
    return list(iter_records(df, nested_json=nested_json, json_cols=json_cols))


def iter_records(
    df: pl.DataFrame, *, nested_json: bool = True, json_cols: Mapping[str, bool] | Collection[str] | None = None
) -> Iterator[dict[str, Any]]:
    """`to_records`, one row at a time (`hyp query sql --format json` writes each as it comes: the list of every
    row, then the whole document as one string, took 14 times the output's size in memory)."""
    if not nested_json:
        jcols: dict[str, bool] = {}
    elif json_cols is None:
        jcols = dict.fromkeys(json_columns(df), True)
    else:
        jcols = dict(json_cols) if isinstance(json_cols, Mapping) else dict.fromkeys(json_cols, True)
    for row in df.iter_rows(named=True):
        yield {k: (_parse_json_text(v, structured=not jcols[k]) if k in jcols else _plain(v)) for k, v in row.items()}


def cell_text(value: Any) -> str:
    """A cell as text for CSV and tables: null -> empty, JSON columns stay JSON text, nested -> JSON text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        # (JSON has no such number, and says null; CSV and tables say what it is: an empty cell is a null)
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    plain = _plain(value)
    if isinstance(plain, dict | list):
        return orjson.dumps(plain).decode("utf-8")
    if plain is None:
        return ""
    return str(plain)


# ---------------------------------------------------------------------------------------------------------
# Time zone


def local_zone(env: Mapping[str, str] = os.environ) -> tuple[tzinfo, str]:
    """The local time zone and its name (IANA when it can be found: `TZ`, `/etc/localtime`, `/etc/timezone`).
    Without an IANA key (a POSIX `TZ` such as `CET-1CEST,M3.5.0,M10.5.0/3` or `UTC+3`), the process's local
    time as the C library keeps it (`CLocalTime`: its DST rules are followed across the period, as `hyp backfill`
    dates follow them), named by its abbreviation and UTC offset now (`zone_label`; the overview names it by the
    offsets of its period)."""
    tz_env = (env.get("TZ") or "").strip()
    if tz_env:
        name = tz_env[1:] if tz_env.startswith(":") else tz_env
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            # Not an IANA name, but the process's local time follows it; /etc/localtime below would be another zone.
            return _c_local_zone()
    try:
        target = os.path.realpath("/etc/localtime")
        marker = "zoneinfo" + os.sep
        if marker in target:
            name = target.split(marker, 1)[1]
            return ZoneInfo(name), name
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        if name:
            return ZoneInfo(name), name
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    return _c_local_zone()


def _c_local_zone() -> tuple[tzinfo, str]:
    from hypaware_tui.core.window import CLocalTime, zone_label

    return CLocalTime(), zone_label()


def _zone(tz: tzinfo | str | None) -> tuple[tzinfo, str]:
    if tz is None:
        return local_zone()
    if isinstance(tz, str):
        return ZoneInfo(tz), tz
    key = getattr(tz, "key", None)
    return tz, key or datetime.now(tz).tzname() or str(tz)


def _local_midnight_us(d: date, zone: tzinfo) -> int:
    return datetime_to_us(datetime.combine(d, time(0), tzinfo=zone))


# ---------------------------------------------------------------------------------------------------------
# Overview


@dataclass
class Period:
    since: str | None  # ISO 8601 UTC (start of the first local day); None when the dataset is empty (days=0)
    until: str  # ISO 8601 UTC: now
    days: int  # number of local calendar days covered
    time_zone: str


@dataclass
class ModelTokens:
    provider: str | None
    model: str | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int


@dataclass
class DayCount:
    date: str  # local YYYY-MM-DD
    sessions: int
    messages: int


@dataclass
class RepoCount:
    repo: str  # working directory, home shown as `~`
    sessions: int
    messages: int


@dataclass
class ToolCount:
    tool: str
    calls: int


@dataclass
class Overview:
    """cli.md §7.2, field for field."""

    period: Period
    rows: int = 0
    sessions: int = 0
    models: list[ModelTokens] = field(default_factory=list)
    days: list[DayCount] = field(default_factory=list)
    repos: list[RepoCount] = field(default_factory=list)
    tools: list[ToolCount] = field(default_factory=list)
    # All data (days=0) older than the day series (`overview`): `date` is the local date of the oldest row,
    # the counts are those of the rows before the first day. Text only: not a key of cli.md §7.2's JSON.
    earlier: DayCount | None = None
    # When the period has no row: the dataset's rows before it and after it (dated after now: a clock set
    # back), and the first of the latter (ISO UTC), so an empty report does not say "nothing imported" over
    # rows that exist (`empty_note`). Text only, like `earlier`.
    rows_before: int = 0
    rows_after: int = 0
    first_after: str | None = None

    @property
    def is_empty(self) -> bool:
        return self.rows == 0

    @property
    def active_days(self) -> int:
        return sum(1 for d in self.days if d.messages)

    @property
    def first_date(self) -> str | None:
        return self.days[0].date if self.days else None

    @property
    def last_date(self) -> str | None:
        return self.days[-1].date if self.days else None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("earlier", "rows_before", "rows_after", "first_after"):
            del doc[key]
        return doc


_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def home_as_tilde(path: str, home: str) -> str:
    """`/home/me/src/x` -> `~/src/x` (only on a path-component boundary)."""
    home = home.rstrip("/\\")
    if not home:
        return path
    if path == home:
        return "~"
    for sep in ("/", "\\"):
        if path.startswith(home + sep):
            return "~" + sep + path[len(home) + 1 :]
    return path


def overview(
    layout: Layout,
    days: int = 30,
    now: datetime | None = None,
    tz: tzinfo | str | None = None,
    *,
    home: str | None = None,
) -> Overview:
    """The "first look" over the last `days` local calendar days ending now (`days=0`: all data).

    With `days=0` the totals (rows, sessions, models, repos, tools) count every row up to now and
    `period.since` is the start of the oldest row's local day, but the day series (`days`, `period.days`)
    covers at most the last MAX_DAYS (100 years) ending today: a single row stamped 0001 made 739,947 days
    (60 MB of JSON). The rows before the series are in `earlier` (shown by the text report), in no day.

    The figures are aggregated while the dataset streams through (`_overview_figures`): memory follows the
    number of sessions, repos, tools and responses, not the number of rows. Tokens are those of
    `ai_gateway_usage` (a response's streamed copies collapse exactly as in the view), kept when the view's row
    falls in the period."""
    if not 0 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 0 and {MAX_DAYS}")
    zone, zone_name = _zone(tz)
    now_dt = (now or datetime.now(UTC)).astimezone(UTC)
    until_us = datetime_to_us(now_dt)
    today = now_dt.astimezone(zone).date()
    since_us: int | None = None
    if days > 0:
        since_us = _local_midnight_us(today - timedelta(days=days - 1), zone)
    home_dir = home or user_home()  # (an empty HOME is an unset one)

    def attempt() -> _Figures:
        try:
            return _overview_figures(layout, days, since_us, until_us, today, zone)
        except pl.exceptions.PolarsError as exc:
            raise _data_error(layout, exc) from exc

    fig = _with_retry(attempt, layout)
    day_list = fig.day_list
    oldest_day: date | None = None
    if since_us is None and fig.rows:
        oldest_day = min(_us_date(fig.oldest_us, zone), today)
        # (0001-01-01 00:00 east of UTC is in the year 0 in UTC: the period starts at the first instant there is;
        # west of UTC, a row of 0001-01-01T00:00Z is dated by its UTC day, whose local midnight is after it)
        since_us = max(MIN_US, min(fig.oldest_us, _local_midnight_us(oldest_day, zone)))

    from hypaware_tui.core.window import CLocalTime, zone_label

    if isinstance(zone, CLocalTime):
        # (no IANA name: the abbreviations and offsets in force over the days shown, e.g. `CET/CEST,
        # UTC+01:00/+02:00`, as `hyp backfill list` names the zone of its dates; one probe a day)
        start = _local_midnight_us(day_list[0], zone) if day_list else until_us
        zone_name = zone_label(since_us, *range(start, until_us, US_PER_DAY), until_us)
    period = Period(
        since=us_to_iso(since_us) if since_us is not None else None,
        until=us_to_iso(until_us) or "",
        days=len(day_list),
        time_zone=zone_name,
    )
    result = Overview(period=period)
    if not fig.rows:
        result.days = [DayCount(d.isoformat(), 0, 0) for d in day_list]
        _rows_outside(layout, result, since_us, until_us)
        return result

    result.rows, result.sessions = fig.rows, fig.sessions
    result.days = [DayCount(d.isoformat(), *fig.per_day.get(i, (0, 0))) for i, d in enumerate(day_list)]
    if -1 in fig.per_day and oldest_day is not None:
        result.earlier = DayCount(oldest_day.isoformat(), *fig.per_day[-1])
    result.repos = [RepoCount(home_as_tilde(c, home_dir), int(s), int(n)) for c, s, n in fig.repos.iter_rows()]
    result.tools = [ToolCount(t, int(c)) for t, c in fig.tools.iter_rows()]
    result.models = [
        ModelTokens(p, m, int(i or 0), int(c or 0), int(o or 0)) for p, m, i, c, o, _ in fig.models.iter_rows()
    ]
    return result


def _rows_outside(layout: Layout, result: Overview, since_us: int | None, until_us: int) -> None:
    """An empty period: count the dataset's rows before it and after it (one read of one column)."""
    if not dataset_has_rows(layout):
        return
    ts = pl.col("message_created_at").cast(pl.Int64)
    before = (ts < since_us).sum() if since_us is not None else pl.lit(0)

    def attempt() -> tuple:
        try:
            frame = scan_messages(layout).select(before=before, after=(ts > until_us).sum(),
                                                 first_after=ts.filter(ts > until_us).min()).collect()
        except pl.exceptions.PolarsError as exc:
            raise _data_error(layout, exc) from exc
        return frame.row(0)

    before_n, after_n, first_after = _with_retry(attempt, layout)
    result.rows_before, result.rows_after = int(before_n or 0), int(after_n or 0)
    result.first_after = us_to_iso(int(first_after)) if first_after is not None else None


def empty_note(ov: Overview, prog: str = "hyp", layout: Layout | None = None) -> str:
    """What an overview without a row in its period says (cli.md §7.2: `Nothing imported yet.` only when the
    dataset has no row; and, given the `layout`, not when hyp has imported into a dataset that is gone, or has
    read history none of which the retention window keeps)."""
    if ov.rows_before:
        return (f"No messages from {ov.first_date} to {ov.last_date} ({ov.period.time_zone}). "
                f"Try {prog} query overview --days 0 for all data.")
    if ov.rows_after:
        first = ov.first_after or ""
        verb = "is" if ov.rows_after == 1 else "are"
        return (f"No messages up to now: the {ov.rows_after:,} {'row' if ov.rows_after == 1 else 'rows'} in the "
                f"dataset {verb} dated after now, from {first[:10]} {first[11:16]} UTC (is the system clock "
                f"behind?). They count here once that time comes; {prog} query sql reads them now.")
    if layout is not None:
        from hypaware_tui.core.storage import (
            dataset_replaced,
            dataset_replaced_text,
            empty_dataset_text,
            history_read,
        )

        if dataset_replaced(layout):
            return f"No messages. {dataset_replaced_text(layout, ahead=True)} Run {prog} backfill to import it now."
        read = history_read(layout)
        if read is not None:
            return f"No messages: {empty_dataset_text(read)}."
    return "Nothing imported yet."


def _us_date(us: int, zone: tzinfo) -> date:
    """The local date of an instant; its UTC date when the local one is outside years 1-9999 (a row of
    0001-01-01T00:00Z west of UTC is in the year 0 there)."""
    local = us_to_local(us, zone)
    return (local or us_to_datetime(us)).date()


def _add_period(tally: _Tally, layout: Layout) -> None:
    """Add to `tally`, batch by batch, the rows of its period and the Claude carriers outside it that share an
    `api_message_id` with a carrier inside it (all `ai_gateway_usage` may need: `_usage_inputs`; the tally's
    choice per response is made across batches), deduplicated by `part_id` as in the relation.

    No step holds the period: one frame of a 30-day period of 1M rows took 780 MiB. The period's rows are read
    first, with the predicate pushed into the scan (the relation's dedupe is a window over every `part_id` of
    the dataset, which read every row before any filter: 741 MiB for a 30-day overview of 1.1M rows), collecting
    the ids of their carriers; then the carriers outside it, by their ids, found on the few columns that say so
    (a period that holds most of the data leaves few or none: no second read of its rows). The dedupe is the
    relation's (storage.md §9: the copy in the smallest file name): the `part_id`s found twice in the dataset are
    looked up first, on their hashes alone (almost always none), and a copy of one of them that is not the
    relation's is dropped from each batch, so that a copy whose values differ (a line imported again after a fix
    to its timestamp) is counted where the relation has it."""
    raw = scan_messages(layout, dedupe=False, file_names=True)
    winners = relation_copies(raw)
    # Without copies, the file names are not needed (projected away: the scan takes them from each row's path).
    # One listing of the files serves both reads, so the dedupe's winners are those of the files read.
    rows = (raw if winners is not None else raw.drop(FILE_NAME)).with_columns(
        client_name=pl.col("source")  # the partition key, equal to it: no read
    )
    in_period = tally.in_period(pl.col("message_created_at").cast(pl.Int64))
    carrier = pl.any_horizontal([pl.col(c).is_not_null() for c in _TOKENS])  # API errors too, as the view's inputs
    claude_with_id = (pl.col("client_name") == "claude") & pl.col("api_message_id").is_not_null()

    def add(where: pl.Expr) -> list[pl.Series]:
        """Add the rows `where` holds; the ids of the Claude carriers among them."""
        ids = []
        batches = tally.prepared(rows.filter(where)).collect_batches(chunk_size=BATCH_ROWS, maintain_order=False)
        for batch in batches:
            batch = batch if winners is None else keep_relation_copies(batch, winners)
            tally.add(batch)
            ids.append(batch.filter(carrier & claude_with_id)["api_message_id"].unique())
        return ids

    inside = add(in_period)
    if not inside:
        return
    ids = pl.concat(inside).unique()
    if ids.is_empty():
        return
    wanted = ~in_period & claude_with_id & carrier & pl.col("api_message_id").is_in(ids.implode())
    found = rows.select("part_id", "message_created_at", "api_message_id", "client_name", *_TOKENS)
    part_ids = found.filter(wanted).select("part_id").collect(engine="streaming")["part_id"]
    if not part_ids.is_empty():
        add(pl.col("part_id").is_in(part_ids.implode()) & wanted)


@dataclass
class _Figures:
    """The overview's figures (`_overview_figures`)."""

    day_list: list[date]  # the local days of the series
    rows: int
    sessions: int
    oldest_us: int  # the oldest row of the period (0 when it has none)
    per_day: dict[int, tuple[int, int]]  # index in day_list (-1: before its first day) -> (sessions, messages)
    repos: pl.DataFrame  # cwd, sessions, messages: the top TOP_N
    tools: pl.DataFrame  # tool_name, calls: the top TOP_N
    models: pl.DataFrame  # provider, model, input, cached, output tokens, total: the top TOP_N


BATCH_ROWS = 50_000  # rows per batch of the overview: ~25 MB of its columns


def _overview_figures(
    layout: Layout, days: int, since_us: int | None, until_us: int, today: date, zone: tzinfo
) -> _Figures:
    """The overview's figures, added up batch by batch (`_Tally`).

    A period (days > 0) streams through in batches of BATCH_ROWS: its rows, then the carriers `ai_gateway_usage`
    needs outside it (`_add_period`). So does all data (days = 0), so that no step holds every row: holding the
    period took 1.1 GB for 1.1M rows. The day series must be known before the rows are read: its first day is
    the local day of the oldest row in the files (`_relation_rows`, read along with the `part_id` hashes: the
    partition names are not enough, a file's rows can be older than its date) and checked against the oldest row
    counted; a file written in between with older rows makes a second read from the right day."""
    if days > 0:
        first_day = today - timedelta(days=days - 1)
        tally = _Tally(first_day, today, zone, since_us, until_us)
        _add_period(tally, layout)
        return tally.figures(first_day)
    rel, winners, oldest_us = _relation_rows(layout, until_us)
    rel = rel.with_columns(client_name=pl.col("source"))
    earliest = today - timedelta(days=MAX_DAYS - 1)
    guess = today if oldest_us is None else max(min(_us_date(oldest_us, zone), today), earliest)
    while True:
        tally = _Tally(guess, today, zone, since_us, until_us)
        for batch in tally.prepared(rel).collect_batches(chunk_size=BATCH_ROWS, maintain_order=False):
            # The copies the relation drops are dropped here, batch by batch: a join (or a lookup) in the streamed
            # plan cost as much as the rest of the overview, or copied its table for each part of the scan.
            tally.add(batch if winners is None else keep_relation_copies(batch, winners))
        if not tally.rows:
            return tally.figures(None)
        first_day = max(min(_us_date(tally.oldest_us, zone), today), earliest)
        if first_day >= guess:
            return tally.figures(first_day)
        guess = first_day


class _Tally:
    """The overview's figures over batches of rows (`add`), finished by `figures`.

    Each batch leaves only what can be added to the next ones: counts, sums, the minimum time, the distinct
    sessions, the sessions of each day and of each repo, and for `ai_gateway_usage` the one row per response
    that the view would choose within the batch (`_usage_choices`). Memory follows the number of sessions and of
    responses, not of rows."""

    def __init__(self, first: date, today: date, zone: tzinfo, since_us: int | None, until_us: int) -> None:
        self.first = first
        self.today = today
        n_days = (today - first).days + 1
        self.bounds = pl.Series([_local_midnight_us(first + timedelta(days=i), zone) for i in range(n_days)],
                                dtype=pl.Int64)  # fmt: skip
        self.since_us, self.until_us = since_us, until_us
        self.rows = 0
        self.oldest_us = 0
        self.parts: dict[str, list[pl.DataFrame]] = {k: [] for k in ("sessions", "days", "repos", "tools", "codex",
                                                                     "claude")}  # fmt: skip

    def in_period(self, ts: pl.Expr) -> pl.Expr:
        inside = ts <= self.until_us
        return inside if self.since_us is None else inside & (ts >= self.since_us)

    def prepared(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        """The columns the overview reads, and per row: its time, in the period, a carrier the view counts."""
        ts = pl.col("message_created_at").cast(pl.Int64)
        carrier = pl.any_horizontal([pl.col(c).is_not_null() for c in _TOKENS])
        # `ai_gateway_usage` reads only `$.claude.api_error` from `attributes`. Parsing the JSON of every carrier
        # costs more than the rest of the overview, so parse only the texts that mention `api_error` (attributes
        # are canonical JSON: the key is never escaped); a null reads as "not an API error", as in the view.
        attrs = pl.when(pl.col("attributes").str.contains("api_error", literal=True)).then(pl.col("attributes"))
        api_error = attrs.str.json_path_match("$.claude.api_error").fill_null("false") == "true"
        file_name = [FILE_NAME] if FILE_NAME in rows.collect_schema() else []  # to drop the copies of a part_id
        return rows.select(
            *_TALLY_COLUMNS,
            *file_name,
            _ts=ts,
            _period=self.in_period(ts),
            _usage=carrier & ~api_error,
        )

    def add(self, batch: pl.DataFrame) -> None:
        """Add a batch of `prepared` rows (without the copies the relation drops)."""
        # The day of a row, through the UTC instants of the local midnights (this follows DST changes); -1 is
        # before the first day. (Computed here: a literal Series in the streaming plan was copied for each batch.)
        day = self.bounds.search_sorted(batch["_ts"], side="right").cast(pl.Int64) - 1
        b = batch.lazy().with_columns(_day=day.clip(-1, len(self.bounds) - 1))
        m = b.filter("_period")
        messages = (pl.col("part_index") == 0).sum()
        usage = b.filter("_usage")
        totals, *parts = pl.collect_all(
            [
                m.select(rows=pl.len(), oldest=pl.col("_ts").min()),
                m.select(pl.col("session_id").unique()),
                m.group_by("_day", "session_id").agg(messages=messages),
                m.filter(pl.col("cwd").is_not_null() & (pl.col("cwd") != "")).group_by("cwd", "session_id")
                .agg(messages=messages),
                m.filter((pl.col("part_type") == "tool_call") & pl.col("tool_name").is_not_null())
                .group_by("tool_name").agg(calls=pl.len()),
                usage.filter((pl.col("client_name") == "codex") & pl.col("_period"))
                .group_by("provider", "model").agg(**_USAGE_SUMS),
                _usage_choices(usage.filter(pl.col("client_name") == "claude")),
            ]
        )  # fmt: skip
        rows, oldest = totals.row(0)
        if rows:
            self.oldest_us = int(oldest) if not self.rows else min(self.oldest_us, int(oldest))
            self.rows += int(rows)
        for key, part in zip(self.parts, parts, strict=True):
            if part.height:
                self.parts[key].append(part)

    def _all(self, key: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        parts = self.parts[key]
        return pl.concat(parts) if parts else pl.DataFrame(schema=schema)

    def figures(self, first_day: date | None) -> _Figures:
        """The figures, with the day series from `first_day` (on or after the tally's first day; None: no
        series) to today: the days before it are counted as one, -1 (`earlier`)."""
        shift = (first_day - self.first).days if first_day is not None else 0
        n_unique = pl.col("session_id").n_unique()
        s, i = pl.String(), pl.Int64()
        days = (
            self._all("days", {"_day": i, "session_id": s, "messages": pl.UInt32()})
            .group_by(_day=pl.when(pl.col("_day") < shift).then(-1).otherwise(pl.col("_day") - shift))
            .agg(sessions=n_unique, messages=pl.col("messages").sum())
        )
        repos = (
            self._all("repos", {"cwd": s, "session_id": s, "messages": pl.UInt32()})
            .group_by("cwd")
            .agg(sessions=n_unique, messages=pl.col("messages").sum())
            .sort(["sessions", "messages", "cwd"], descending=[True, True, False])
            .head(TOP_N)
        )
        tools = (
            self._all("tools", {"tool_name": s, "calls": pl.UInt32()})
            .group_by("tool_name")
            .agg(pl.col("calls").sum())
            .sort(["calls", "tool_name"], descending=[True, False])
            .head(TOP_N)
        )
        sums = {"provider": s, "model": s, "input_tokens": i, "cached_tokens": i, "output_tokens": i, "_total": i}
        claude = self._all("claude", dict(_CHOICE_SCHEMA))
        day_list = []
        if first_day is not None:
            day_list = [first_day + timedelta(days=k) for k in range((self.today - first_day).days + 1)]
        return _Figures(
            day_list=day_list,
            rows=self.rows,
            sessions=self._all("sessions", {"session_id": s})["session_id"].n_unique(),
            oldest_us=self.oldest_us,
            per_day={int(k): (int(n), int(c)) for k, n, c in days.iter_rows()},
            repos=repos,
            tools=tools,
            models=_models(self._all("codex", sums), claude, self.in_period(pl.col("_ts"))),
        )


def _relation_rows(layout: Layout, until_us: int) -> tuple[pl.LazyFrame, pl.DataFrame | None, int | None]:
    """`ai_gateway_messages` to stream through, with FILE_NAME when some `part_id` is found twice; the copies the
    relation keeps of those (`relation_copies`: None when there are none), for `keep_relation_copies` on each
    batch; and the oldest time up to `until_us` in the files (None: no such row), which is at most the relation's
    oldest (a copy it drops may be older).

    The relation's dedupe (storage.md §9: a `part_id` found twice counts once, the copy in the smallest file
    name) without its window over every `part_id`, which holds the whole dataset before any filter. The
    `part_id`s found twice are looked up first, on their hashes alone (almost always none: the scan is then the
    files as they are), in the same read of the files as the oldest time."""
    raw = scan_messages(layout, dedupe=False, file_names=True)
    ts = pl.col("message_created_at").cast(pl.Int64)
    hashes, oldest = pl.collect_all([part_id_hashes(raw), raw.select(ts.filter(ts <= until_us).min())],
                                    engine="streaming")  # fmt: skip
    oldest_us = oldest.item()
    winners = relation_copies(raw, hashes.drop_in_place("h"))  # (the frame lets go of them: 8 bytes a row)
    # The rows come from the same scan, and so from the same listing of the files (a scan lists them once): a
    # second scan, listed while a compaction had written its merged file and not yet removed its inputs, saw
    # every row of them twice where the first had seen none (9,054 rows for 7,816).
    return (raw.drop(FILE_NAME) if winners is None else raw), winners, oldest_us


# What `_Tally` reads (with `message_created_at` and `attributes`, which it reads through expressions). In the
# all-data scan `client_name` is the partition key `source`, which is equal to it and costs no read.
_TALLY_COLUMNS = (
    "session_id", "provider", "model", "cwd", "is_sidechain", "message_id", "api_message_id", "request_id",
    "part_id", "part_index", "part_type", "tool_name", *_TOKENS, "client_name",
)  # fmt: skip
_USAGE_SUMS = {
    "input_tokens": pl.col("input_tokens").sum(),
    "cached_tokens": pl.col("cache_read_tokens").sum(),
    "output_tokens": pl.col("output_tokens").sum(),
    "_total": pl.sum_horizontal([pl.col(c).fill_null(0) for c in _TOKENS]).cast(pl.Int64).sum(),
}
_CHOICE_KEYS = ("api_message_id", "request_id", "_mid", "_side")
_CHOICE_SCHEMA = {
    "api_message_id": pl.String(), "request_id": pl.String(), "_mid": pl.String(), "_side": pl.Boolean(),
    "provider": pl.String(), "model": pl.String(), **{c: pl.Int64() for c in _TOKENS}, "_ts": pl.Int64(),
    "part_id": pl.String(),
}  # fmt: skip
# `schema.usage_view`'s choice of a response's row: the most output, then input and cache, then the latest, all
# descending with nulls last; then the smallest `part_id`.
_CHOICE_ORDER = (["output_tokens", "_cache", "_ts", "part_id"], [True, True, True, False])


def _in_cache() -> pl.Expr:
    return (
        pl.col("input_tokens").fill_null(0) + pl.col("cache_read_tokens").fill_null(0)
        + pl.col("cache_write_tokens").fill_null(0)
    )  # fmt: skip


def _usage_choices(claude: pl.LazyFrame) -> pl.LazyFrame:
    """Claude carriers of a batch, reduced to the row `ai_gateway_usage` would choose for each response among
    them, per `api_message_id` + `request_id` (or `message_id` without an api id; the usage key is made of
    these) and per side of the side-chain rule (main thread or side chain), so that `_models` can apply the
    rule and make the choice across batches exactly as the view does over all rows."""
    by, descending = _CHOICE_ORDER
    return (
        claude.with_columns(
            _mid=pl.when(pl.col("api_message_id").is_null()).then(pl.col("message_id")),
            _side=pl.col("is_sidechain").fill_null(False),
            _cache=_in_cache(),
        )
        .sort(by, descending=descending, nulls_last=True)
        .group_by(_CHOICE_KEYS, maintain_order=True)
        .first()
        .select(*_CHOICE_SCHEMA)
    )


def _models(codex: pl.DataFrame, claude: pl.DataFrame, in_period: pl.Expr) -> pl.DataFrame:
    """Tokens per provider and model over `ai_gateway_usage` in the period, top TOP_N: the Codex sums, plus the
    Claude choices of every batch (`_usage_choices`) after the side-chain rule (a side chain's copy of a
    response the main thread has is dropped), the first per usage key in the view's order, kept when it falls in
    the period (`in_period`, on `_ts`)."""
    side, api, request = pl.col("_side"), pl.col("api_message_id"), pl.col("request_id")
    main = claude.filter(~side & api.is_not_null())["api_message_id"].unique()
    # (a response replayed in a side chain under several request ids by its api id alone, as in
    # `schema.usage_view`)
    replayed = side & api.is_not_null() & (request.n_unique().over("api_message_id") > 1)
    usage_key = (
        pl.when(api.is_not_null() & request.is_not_null() & ~replayed).then(api + ":" + request)
        .otherwise(pl.coalesce(api, "_mid"))
    )  # fmt: skip
    by, descending = _CHOICE_ORDER
    chosen = (
        claude.filter(~(side & api.is_in(main.implode()).fill_null(False)))
        .with_columns(usage_key=usage_key)
        .with_columns(_cache=_in_cache())
        .sort(by, descending=descending, nulls_last=True)
        .group_by("usage_key", maintain_order=True)
        .first()
        .filter(in_period)
        .group_by("provider", "model")
        .agg(**_USAGE_SUMS)
    )
    return (
        pl.concat([chosen, codex])
        .group_by("provider", "model")
        .agg(pl.col("input_tokens", "cached_tokens", "output_tokens", "_total").sum())
        .sort(["_total", "provider", "model"], descending=[True, False, False], nulls_last=True)
        .head(TOP_N)
    )


def dataset_has_rows(layout: Layout) -> bool:
    """True when the dataset holds at least one Parquet file (cheap; reads no file)."""
    root = layout.dataset_root
    return root.is_dir() and has_parquet_files(root)


# ---------------------------------------------------------------------------------------------------------
# Schema listing

_USAGE_DESCRIPTIONS: dict[str, str] = {
    "usage_key": "Group key: api_message_id:request_id, api_message_id or message_id (Claude); part_id (Codex).",
    "key_kind": "api_message_id+request_id, api_message_id, message_id (Claude) or part_id (Codex).",
    "client_name": "claude or codex (chosen row).",
    "provider": "anthropic or openai (chosen row).",
    "model": "Model id (chosen row).",
    "session_id": "Session container (chosen row).",
    "conversation_id": "Thread id (chosen row).",
    "agent_id": "Claude subagent id (chosen row).",
    "is_sidechain": "Subagent or side-chain response (chosen row).",
    "message_id": "Message identity of the carrier row, for audit.",
    "part_id": "Part id of the carrier row, for audit.",
    "api_message_id": "Claude message.id of the carrier row.",
    "request_id": "Claude requestId of the carrier row.",
    "message_created_at": "Time of the carrier row (UTC).",
    "date": "YYYY-MM-DD, UTC date of the carrier row.",
    "input_tokens": "Uncached input tokens, as stored.",
    "output_tokens": "Output tokens (reasoning included), as stored.",
    "cache_read_tokens": "Input tokens read from the cache, as stored.",
    "cache_write_tokens": "Input tokens written to the cache, as stored.",
    "total_tokens": "Sum of the four token columns, nulls as 0.",
    "rows_collapsed": "Carrier rows that fell into this response (Codex: 1).",
}
_USAGE_NON_NULL = frozenset({"usage_key", "key_kind", "total_tokens", "rows_collapsed"})


def type_name(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return (
            f"Datetime({dtype.time_unit}, {dtype.time_zone})"
            if dtype.time_zone
            else f"Datetime({dtype.time_unit})"
        )
    return str(dtype)


@dataclass
class ColumnInfo:
    relation: str
    name: str
    type: str
    nullable: bool
    description: str


def schema_listing(name: str | None = None) -> list[ColumnInfo]:
    """Columns of `ai_gateway_messages` then `ai_gateway_usage` (or of the relation `name` only).

    Raises KeyError for an unknown relation name."""
    if name is not None and name not in RELATIONS:
        raise KeyError(name)
    out: list[ColumnInfo] = []
    msg_nullable = {c: nullable for c, _, nullable, _ in COLUMNS}
    if name in (None, MESSAGES):
        for col, dtype, nullable, desc in COLUMNS:
            out.append(ColumnInfo(MESSAGES, col, type_name(dtype), nullable, desc))
        out.append(
            ColumnInfo(MESSAGES, "source", type_name(MESSAGES_SCHEMA["source"]), False,
                       "Partition key (claude or codex), from the file path.")
        )  # fmt: skip
    if name in (None, USAGE):
        schema = usage_view(pl.LazyFrame(schema=MESSAGES_SCHEMA)).collect_schema()
        for col, dtype in schema.items():
            nullable = col not in _USAGE_NON_NULL and msg_nullable.get(col, True)
            out.append(ColumnInfo(USAGE, col, type_name(dtype), nullable, _USAGE_DESCRIPTIONS.get(col, "")))
    return out
