"""Read-only queries over the dataset: `hyp query sql`, the overview ("first look") and the schema listing.

Relations (cli.md §7.1, storage.md §9):

- `ai_gateway_messages`: the deduplicated dataset from `core.dataset.scan_messages`, with `source`;
- `ai_gateway_usage`: `schema.usage_view` over it (one row per API response, so token sums are right).

Both are lazy scans of the Parquet files; nothing is copied into another database. A missing or empty dataset
is an empty relation with the full schema. A file that vanishes between listing and reading (compaction,
retention) makes the query retry once.

`overview` returns plain dataclasses whose `to_json()` is exactly the cli.md §7.2 JSON document, so the CLI
prints it and the wizard's Done screen renders it with its own widgets. No UI imports here.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import polars as pl

from hypaware_tui.core.dataset import MESSAGES_SCHEMA, has_parquet_files, scan_messages
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.schema import COLUMNS, JSON_COLUMNS, usage_view
from hypaware_tui.core.storage import dataset_stats
from hypaware_tui.core.timeutil import datetime_to_us, us_to_iso

MESSAGES = "ai_gateway_messages"
USAGE = "ai_gateway_usage"
RELATIONS = (MESSAGES, USAGE)

ONLY_SELECT = "only a single SELECT statement is allowed"

TOP_N = 10
MAX_DAYS = 36_500  # an overview period longer than 100 years is a typo
_T = TypeVar("_T")


class QueryError(Exception):
    """A statement that cannot run: not a single SELECT, or rejected by the engine (exit 2)."""


class DatasetReadError(Exception):
    """The dataset could not be read (exit 1): a file vanished twice, or is unreadable."""


# ---------------------------------------------------------------------------------------------------------
# Relations


def open_relations(layout: Layout) -> pl.SQLContext:
    """A fresh SQL context with `ai_gateway_messages` and `ai_gateway_usage` registered as lazy frames."""
    messages = scan_messages(layout)
    ctx = pl.SQLContext()
    ctx.register(MESSAGES, messages)
    ctx.register(USAGE, usage_view(messages))
    return ctx


def _with_retry(fn: Callable[[], _T]) -> _T:
    """Run `fn` (which must list the dataset afresh) and retry it once if a listed file vanished."""
    for attempt in (1, 2):
        try:
            return fn()
        except FileNotFoundError as exc:
            if attempt == 2:
                raise DatasetReadError(
                    f"a dataset file disappeared while it was being read ({exc}); another hyp command is "
                    "probably compacting or pruning the dataset. Run the query again."
                ) from exc
        except OSError as exc:
            raise DatasetReadError(f"cannot read the dataset: {exc}") from exc
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------------------
# SQL


# Words that make a statement write something. `WITH … DELETE`, `SELECT … INTO` and friends are refused even
# though the first word is fine (each query also runs in a fresh context, so nothing could persist anyway).
_FORBIDDEN_WORDS = frozenset(
    {"insert", "update", "delete", "merge", "upsert", "create", "drop", "alter", "truncate", "copy", "attach",
     "detach", "grant", "revoke", "vacuum", "pragma", "into"}
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _tokens(sql: str) -> list[tuple[str, int]]:
    """A tiny lexer: (token, end offset) for bare words (lower-cased), string literals and quoted identifiers
    (as "lit"), `;`, `(` and other punctuation; comments and whitespace are skipped. Only used to classify a
    statement and to cut trailing semicolons; the engine does the real parsing.

    Quotes are closed by the same quote (doubled quotes are an escape); a backslash is never treated as an
    escape, so a lexer/engine disagreement can only make us see *more* statements, never fewer."""
    out: list[tuple[str, int]] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = min(j + 1, n)
            out.append(("lit", i))
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
                out.append((c, i))
            else:
                i = m.end()
                out.append((m.group(0).lower(), i))
        else:
            i += 1
            out.append((c, i))
    return out


def check_select(statement: str) -> str:
    """Accept exactly one read-only `SELECT …` or `WITH … SELECT …` (a trailing `;` is allowed) and return it
    without the trailing semicolons (and whatever whitespace or comments follow the last real token); raise
    QueryError otherwise."""
    toks = _tokens(statement)
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
        raise QueryError(ONLY_SELECT)
    for i, t in enumerate(words):
        # A statement keyword anywhere (a data-modifying CTE, SELECT … INTO) is refused; the same word as a
        # function (`truncate(x)`), an alias (`AS copy`) or a qualified name (`t.update`) is not a statement.
        if t in _FORBIDDEN_WORDS and not (
            (i + 1 < len(words) and words[i + 1] == "(") or (i and words[i - 1] in ("as", "."))
        ):
            raise QueryError(ONLY_SELECT)
    return statement[: toks[-1][1]]


_DATA_ERROR_HINTS = ("parquet:", "out of specification", "os error", "magic bytes", "footer")


def _is_data_error(exc: BaseException) -> bool:
    """A Polars error caused by a damaged file rather than by the statement."""
    text = str(exc).lower()
    return any(h in text for h in _DATA_ERROR_HINTS)


def _data_error(layout: Layout, exc: BaseException) -> DatasetReadError:
    """Name the damaged file(s) (from the footers, read-only) and say what to do."""
    detail = _engine_message(exc)
    try:
        bad = dataset_stats(layout).unreadable
    except Exception:  # noqa: BLE001 - best effort; the engine message is still reported
        bad = []
    if bad:
        names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        return DatasetReadError(
            f"cannot read the dataset: {names} is damaged or was not written by hyp ({detail}). Move it out "
            f"of {layout.dataset_root} and run the command again."
        )
    return DatasetReadError(f"cannot read the dataset under {layout.dataset_root} ({detail})")


def _engine_message(exc: BaseException) -> str:
    """The engine's own message, without Polars' multi-paragraph plan dump."""
    text = str(exc).strip()
    for marker in ("\n\nResolved plan", "\n\nThis error occurred", "\n\nHint:"):
        pos = text.find(marker)
        if pos >= 0:
            text = text[:pos]
    text = text.strip() or type(exc).__name__
    if "relation" in text and "not found" in text:  # a misspelt table: say which ones there are
        text += f"; the relations are {' and '.join(RELATIONS)}"
    elif "unable to find column" in text:  # (Polars lists every column: the schema command says what they mean)
        text += "; `hyp query schema` describes them"
    return text


def run_sql(layout: Layout, statement: str) -> pl.DataFrame:
    """Run one read-only SELECT over the two relations and return the result.

    Raises QueryError (not a single SELECT, or an engine error: exit 2) or DatasetReadError (exit 1)."""
    sql = check_select(statement)

    def attempt() -> pl.DataFrame:
        ctx = open_relations(layout)
        try:
            lf = ctx.execute(sql)
            return lf.collect()
        except pl.exceptions.PolarsError as exc:
            if _is_data_error(exc):
                raise _data_error(layout, exc) from exc
            raise QueryError(_engine_message(exc)) from exc

    return _with_retry(attempt)


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
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def json_columns(df: pl.DataFrame) -> list[str]:
    """Result columns that hold JSON text (schema.md §2 JSON columns, by name, when still strings)."""
    return [c for c, t in df.schema.items() if c in JSON_COLUMNS and t == pl.String()]


def _parse_json_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def to_records(df: pl.DataFrame, *, nested_json: bool = True) -> list[dict[str, Any]]:
    """Rows as dicts of JSON-ready values. With `nested_json`, JSON-typed columns become nested values."""
    jcols = set(json_columns(df)) if nested_json else set()
    records: list[dict[str, Any]] = []
    for row in df.iter_rows(named=True):
        records.append({k: (_parse_json_text(v) if k in jcols else _plain(v)) for k, v in row.items()})
    return records


def cell_text(value: Any) -> str:
    """A cell as text for CSV and tables: null -> empty, JSON columns stay JSON text, nested -> JSON text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    plain = _plain(value)
    if isinstance(plain, dict | list):
        return orjson.dumps(plain).decode("utf-8")
    if plain is None:
        return ""
    return str(plain)


# ---------------------------------------------------------------------------------------------------------
# Time zone


def local_zone(env: Mapping[str, str] = os.environ) -> tuple[tzinfo, str]:
    """The local time zone and its name (IANA when it can be found: `TZ`, `/etc/localtime`, `/etc/timezone`)."""
    tz_env = (env.get("TZ") or "").strip()
    if tz_env:
        name = tz_env[1:] if tz_env.startswith(":") else tz_env
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError):
            # A POSIX TZ (`JST-9`, `EST5EDT`): not an IANA name, but the process's local time follows it (as
            # `hyp backfill` dates do); /etc/localtime below would be another zone. (Its offset of now: a
            # rule-based DST is not followed across the period.)
            local = datetime.now().astimezone().tzinfo
            if local is not None:
                return local, datetime.now(local).tzname() or name
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
    local = datetime.now().astimezone().tzinfo or UTC
    return local, datetime.now(local).tzname() or "local time"


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
        return asdict(self)


_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
# Everything the overview reads: the message figures plus the inputs of `usage_view`.
# (`client_name` is taken from the partition key `source`, which is equal to it and costs no read.)
_OVERVIEW_COLUMNS = (
    "session_id", "provider", "model", "cwd", "is_sidechain", "message_id", "api_message_id", "request_id",
    "message_created_at", "part_id", "part_index", "part_type", "tool_name", *_TOKENS, "attributes",
)  # fmt: skip


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

    One scan of the dataset, projected to the columns needed: rows in the period, plus the token-carrying
    rows that `ai_gateway_usage` is computed from (so a response's streamed copies collapse exactly as in the
    view; the usage rows are then kept when their chosen row falls in the period)."""
    if not 0 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 0 and {MAX_DAYS}")
    zone, zone_name = _zone(tz)
    now_dt = (now or datetime.now(UTC)).astimezone(UTC)
    until_us = datetime_to_us(now_dt)
    today = now_dt.astimezone(zone).date()
    since_us: int | None = None
    if days > 0:
        since_us = _local_midnight_us(today - timedelta(days=days - 1), zone)
    home_dir = home if home is not None else os.path.expanduser("~")

    def attempt() -> pl.DataFrame:
        try:
            return _overview_base(scan_messages(layout), since_us, until_us).collect()
        except pl.exceptions.PolarsError as exc:
            raise _data_error(layout, exc) from exc

    base = _with_retry(attempt)
    ts = pl.col("message_created_at").cast(pl.Int64)
    msgs = base.filter(pl.col("_in_period"))

    # The local calendar days of the period (every day, zeros included).
    if since_us is None:
        if msgs.height:
            first_local = _us_date(int(msgs.select(ts.min()).item()), zone)
            first_day = min(first_local, today)
        else:
            first_day = None
    else:
        first_day = today - timedelta(days=days - 1)
    day_list: list[date] = []
    if first_day is not None:
        n_days = (today - first_day).days + 1
        day_list = [first_day + timedelta(days=i) for i in range(n_days)]
    if since_us is None and first_day is not None:
        since_us = _local_midnight_us(first_day, zone)

    period = Period(
        since=us_to_iso(since_us) if since_us is not None else None,
        until=us_to_iso(until_us) or "",
        days=len(day_list),
        time_zone=zone_name,
    )
    result = Overview(period=period)
    if not msgs.height:
        result.days = [DayCount(d.isoformat(), 0, 0) for d in day_list]
        return result

    # Days: index of the local day each row falls in, via the UTC instants of the local midnights (this
    # follows DST changes). A message's rows are its parts 0…N-1, so part 0 counts each message once.
    bounds = pl.Series([_local_midnight_us(d, zone) for d in day_list], dtype=pl.Int64)
    day_ix = (pl.lit(bounds).search_sorted(ts, side="right").cast(pl.Int64) - 1).clip(0, len(day_list) - 1)
    messages = (pl.col("part_index") == 0).sum()
    sessions = pl.col("session_id").n_unique()
    m = msgs.lazy()
    usage = usage_view(
        _usage_inputs(base.lazy())
        .with_columns(conversation_id=pl.lit(None, pl.String), agent_id=pl.lit(None, pl.String),
                      date=pl.lit(None, pl.String))
    )  # fmt: skip
    usage_ts = pl.col("message_created_at").cast(pl.Int64)
    usage_filter = usage_ts <= until_us
    if days > 0 and since_us is not None:
        usage_filter &= usage_ts >= since_us
    totals, per_day, repos, tools, models = pl.collect_all(
        [
            m.select(rows=pl.len(), sessions=sessions),
            m.group_by(_day=day_ix).agg(sessions=sessions, messages=messages),
            m.filter(pl.col("cwd").is_not_null() & (pl.col("cwd") != ""))
            .group_by("cwd")
            .agg(sessions=sessions, messages=messages)
            .sort(["sessions", "messages", "cwd"], descending=[True, True, False])
            .head(TOP_N),
            m.filter((pl.col("part_type") == "tool_call") & pl.col("tool_name").is_not_null())
            .group_by("tool_name")
            .agg(calls=pl.len())
            .sort(["calls", "tool_name"], descending=[True, False])
            .head(TOP_N),
            usage.filter(usage_filter)
            .group_by("provider", "model")
            .agg(
                input_tokens=pl.col("input_tokens").sum(),
                cached_tokens=pl.col("cache_read_tokens").sum(),
                output_tokens=pl.col("output_tokens").sum(),
                _total=pl.col("total_tokens").sum(),
            )
            .sort(["_total", "provider", "model"], descending=[True, False, False], nulls_last=True)
            .head(TOP_N),
        ]
    )
    result.rows, result.sessions = (int(v) for v in totals.row(0))
    counts = {int(r[0]): (int(r[1]), int(r[2])) for r in per_day.iter_rows()}
    result.days = [DayCount(d.isoformat(), *counts.get(i, (0, 0))) for i, d in enumerate(day_list)]
    result.repos = [RepoCount(home_as_tilde(c, home_dir), int(s), int(n)) for c, s, n in repos.iter_rows()]
    result.tools = [ToolCount(t, int(c)) for t, c in tools.iter_rows()]
    result.models = [
        ModelTokens(p, m, int(i or 0), int(c or 0), int(o or 0)) for p, m, i, c, o, _ in models.iter_rows()
    ]
    return result


def _usage_inputs(base: pl.LazyFrame) -> pl.LazyFrame:
    """The carriers `ai_gateway_usage` needs to give exactly its in-period rows.

    A carrier outside the period can change the view's in-period rows only through its `api_message_id`
    (a usage key made of it, or the side-chain rule); Codex keys are one row each and a Claude key without an
    api id is one message (one timestamp). So the carriers kept are those in the period plus the Claude ones
    sharing an `api_message_id` with an in-period Claude carrier. With days=0 that is every carrier."""
    carriers = base.filter(pl.col("_carrier"))
    claude = pl.col("client_name") == "claude"
    ids = carriers.filter(pl.col("_in_period") & claude & pl.col("api_message_id").is_not_null()).select(
        "api_message_id"
    )
    related = carriers.filter(~pl.col("_in_period") & claude).join(
        ids.unique(), on="api_message_id", how="semi"
    )
    return pl.concat([carriers.filter(pl.col("_in_period")), related]).drop("_in_period", "_carrier")


def _us_date(us: int, zone: tzinfo) -> date:
    return datetime.fromtimestamp(us / 1_000_000, UTC).astimezone(zone).date()


def _overview_base(messages: pl.LazyFrame, since_us: int | None, until_us: int) -> pl.LazyFrame:
    """The one projected scan: rows of the period, plus the carriers outside it that `ai_gateway_usage` may
    need (Claude, with an api id)."""
    ts = pl.col("message_created_at").cast(pl.Int64)
    in_period = ts <= until_us
    if since_us is not None:
        in_period &= ts >= since_us
    carrier = pl.any_horizontal([pl.col(c).is_not_null() for c in _TOKENS])
    return (
        messages.select(*_OVERVIEW_COLUMNS, client_name=pl.col("source"))
        .with_columns(_in_period=in_period, _carrier=carrier)
        # Outside the period only Claude carriers with an api id can matter (see `_usage_inputs`).
        .filter(
            pl.col("_in_period")
            | (
                pl.col("_carrier")
                & (pl.col("client_name") == "claude")
                & pl.col("api_message_id").is_not_null()
            )
        )
        # `ai_gateway_usage` reads only `$.claude.api_error` from `attributes`. Parsing the JSON of every
        # carrier costs more than the rest of the overview, so keep the text only on carriers that mention
        # `api_error` (attributes are canonical JSON: the key is never escaped) and null elsewhere, which the
        # view reads as "not an API error". Same result, a fraction of the work.
        .with_columns(
            attributes=pl.when(
                pl.col("_carrier") & pl.col("attributes").str.contains("api_error", literal=True)
            ).then(pl.col("attributes"))
        )
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
