"""The `ai_gateway_messages` row schema (schema.md §2), canonical JSON (§3.3) and validation.

Rows travel through the importers as plain dicts: column name -> value, a missing key meaning null.
Timestamps (`message_created_at`, `conversation_started_at`) are integers, microseconds since the Unix
epoch in UTC; `frame_from_rows` turns them into `Datetime("us", "UTC")`.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from hypaware_tui.core.fmt import escape_char

if TYPE_CHECKING:
    import polars as pl

SCHEMA_VERSION = 1
DATASET_NAME = "ai_gateway_messages"

# (name, dtype name, nullable, description) in the exact order of schema.md §2. `COLUMNS` holds the Polars
# dtypes (see `__getattr__`).
_SPECS: tuple[tuple[str, str, bool, str], ...] = (
    ("schema_version", "Int32", False, "Always 1."),
    ("session_id", "String", False, "Session container (Claude sessionId; Codex session id or thread id)."),
    ("conversation_id", "String", False, "Thread id."),
    ("user_id", "String", True, "Account id (null from both importers)."),
    ("provider", "String", False, "anthropic or openai."),
    ("model", "String", True, "Model id, on assistant rows only."),
    ("system_text", "String", True, "System prompt (null in v1)."),
    ("tools", "String", True, "Tool declarations, JSON (null in v1)."),
    ("conversation_started_at", "Datetime", False, "Start of the thread."),
    ("conversation_source", "String", True, "claude or codex."),
    ("client_name", "String", False, "claude or codex; equals the partition key source."),
    ("cwd", "String", True, "Working directory, verbatim."),
    ("git_branch", "String", True, "Branch recorded by the client."),
    ("git_remote", "String", True, "Null in v1."),
    ("head_sha", "String", True, "Null in v1."),
    ("repo_root", "String", True, "Null in v1."),
    ("client_version", "String", True, "Client version string, verbatim."),
    ("entrypoint", "String", True, "Launch surface (Claude entrypoint, Codex originator)."),
    ("user_type", "String", True, "Claude userType; Codex thread_source."),
    ("permission_mode", "String", True, "Claude permissionMode; Codex sandbox mode."),
    ("is_sidechain", "Boolean", True, "Subagent or side-chain row."),
    ("agent_id", "String", True, "Claude subagent id."),
    ("parent_thread_id", "String", True, "Codex parent thread (spawn or fork)."),
    ("message_id", "String", False, "Message identity."),
    ("previous_message_id", "String", False, "JSON: [] or [\"<id>\"] of the previous message in the thread."),
    ("provider_uuid", "String", True, "Native record id."),
    ("parent_uuid", "String", True, "Claude parentUuid."),
    ("logical_parent_uuid", "String", True, "Claude logicalParentUuid (across a compaction)."),
    ("source_tool_assistant_uuid", "String", True, "Claude sourceToolAssistantUUID."),
    ("request_id", "String", True, "Claude requestId."),
    ("api_message_id", "String", True, "Claude message.id."),
    ("prompt_id", "String", True, "Claude promptId; Codex turn id."),
    ("message_index", "Int32", False, "Ordinal of the message in its thread."),
    ("message_created_at", "Datetime", False, "Message time (UTC)."),
    ("role", "String", False, "user, assistant, system, developer, tool, or a native role."),
    ("part_id", "String", False, "message_id#part_index; the dedupe key."),
    ("part_index", "Int32", False, "0-based part position."),
    ("part_type", "String", False, "text, reasoning, tool_call, tool_result, image, file, audio, error, compaction, …"),
    ("provider_type", "String", True, "Native record or item type."),
    ("provider_subtype", "String", True, "Native subtype or block type."),
    ("content_text", "String", True, "Text of the part (base64 data URIs omitted)."),
    ("tool_name", "String", True, "Tool name on calls; looked up for results."),
    ("tool_call_id", "String", True, "Call id on calls and results."),
    ("tool_args", "String", True, "Tool input, JSON."),
    ("caller_type", "String", True, "Claude tool_use.caller.type."),
    ("tool_result_for", "String", True, "The call id a result answers."),
    ("thinking_signature", "String", True, "Claude thinking signature."),
    ("attachment_type", "String", True, "Null in v1."),
    ("hook_event", "String", True, "Null in v1."),
    ("is_error", "Boolean", True, "Tool or API error flag."),
    ("is_compact_summary", "Boolean", True, "Claude isCompactSummary."),
    ("compact_metadata", "String", True, "Compaction metadata, JSON."),
    ("finish_reason", "String", True, "Normalized stop reason."),
    ("input_tokens", "Int64", True, "Uncached input tokens (carrier row only)."),
    ("output_tokens", "Int64", True, "Output tokens, reasoning included (carrier row only)."),
    ("cache_read_tokens", "Int64", True, "Input tokens read from the cache (carrier row only)."),
    ("cache_write_tokens", "Int64", True, "Input tokens written to the cache (carrier row only)."),
    ("status", "String", True, "JSON {tool_status, error_code, error_message}."),
    ("attributes", "String", False, "JSON attribute bag; always has gateway.identity_source."),
    ("raw_frame", "String", True, "JSON minimized native frame (ids, types, timestamp; never content)."),
    ("source_path_hash", "String", False, "sha256 of the source file's real path, first 16 hex chars."),
    ("source_offset", "Int64", True, "Byte offset of the source line."),
    ("record_format", "String", False, "claude-jsonl, codex-envelope, codex-early-jsonl, codex-legacy-json."),
    ("date", "String", False, "YYYY-MM-DD, UTC date of message_created_at."),
)

COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _, _, _ in _SPECS)
NON_NULL_COLUMNS: tuple[str, ...] = tuple(name for name, _, nullable, _ in _SPECS if not nullable)
JSON_COLUMNS: frozenset[str] = frozenset(
    {"tools", "previous_message_id", "tool_args", "compact_metadata", "status", "attributes", "raw_frame"}
)
TIMESTAMP_COLUMNS: frozenset[str] = frozenset({"conversation_started_at", "message_created_at"})
_NON_NULL: frozenset[str] = frozenset(NON_NULL_COLUMNS)
# Sort key of every written file (storage.md §2).
SORT_KEY: tuple[str, ...] = ("session_id", "message_created_at", "message_id", "part_index")

assert len(_SPECS) == 64 and len(set(COLUMN_NAMES)) == 64

# The Polars objects of the schema (`COLUMNS` with dtypes, `AI_GATEWAY_MESSAGES_SCHEMA`, `UTC_US`) are made on
# first use (module `__getattr__`), so that the importers, the event log and a rerun that finds nothing new never
# import Polars (~0.3 s of a ~0.5 s `hyp backfill` with nothing to do).


class _PolarsSchema(NamedTuple):
    pl: Any  # the polars module
    COLUMNS: tuple[tuple[str, pl.DataType, bool, str], ...]  # (name, dtype, nullable, description)
    AI_GATEWAY_MESSAGES_SCHEMA: dict[str, pl.DataType]  # name -> dtype, in column order
    UTC_US: pl.Datetime  # Datetime("us", "UTC")


_loaded: list[_PolarsSchema] = []


def import_polars() -> Any:
    """`import polars`, keeping the process's own Ctrl+C handling. On import, Polars installs a SIGINT handler
    of its own that turns a Ctrl+C into a KeyboardInterrupt inside whatever Polars operation is running. Where
    the process has a handler of its own (`hyp backfill`: the first Ctrl+C lets the current batch finish and
    the summary print) or ignores SIGINT (a parse worker), that cut the batch short: exit 130 with no summary,
    in about half the tries of a Ctrl+C 0.8-0.9 s into a small import. Their handler is put back after the
    import. With Python's default handler, Polars' stays, so a Ctrl+C stops a long query at once. (Only the
    main thread can set handlers; Polars imported elsewhere keeps its own.)"""
    module = sys.modules.get("polars")
    if module is not None:
        return module
    keep = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.getsignal(signal.SIGINT)
        if handler is not None and handler is not signal.default_int_handler:
            keep = handler
    import polars

    if keep is not None:
        signal.signal(signal.SIGINT, keep)
    return polars


def _polars() -> _PolarsSchema:
    if not _loaded:
        pl = import_polars()

        utc = pl.Datetime("us", "UTC")
        make = {"Int32": pl.Int32, "Int64": pl.Int64, "String": pl.String, "Boolean": pl.Boolean}
        columns = tuple(
            (name, utc if kind == "Datetime" else make[kind](), nullable, desc) for name, kind, nullable, desc in _SPECS
        )
        _loaded.append(_PolarsSchema(pl, columns, {name: dtype for name, dtype, _, _ in columns}, utc))
    return _loaded[0]


def __getattr__(name: str) -> Any:
    if name in ("COLUMNS", "AI_GATEWAY_MESSAGES_SCHEMA", "UTC_US"):
        value = getattr(_polars(), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SchemaError(ValueError):
    """A batch that does not fit schema_version 1 (a bug in a producer, never silently dropped)."""


def canonical_json(value: Any) -> str:
    """schema.md §3.3: sorted keys, no spaces, UTF-8 (no ASCII escaping).

    Defined as `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`. Values made only
    of dicts, lists, str, int, bool and None (what `orjson.loads` gives, floats aside) are encoded by orjson,
    whose output is the same text for them (string escapes, key order by code point, 64-bit ints; it raises
    on what differs: bigger ints, lone surrogates, non-str keys, deep nesting), several times faster."""
    if plain_json_types(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except (orjson.JSONEncodeError, TypeError):
            pass
    return _stdlib_json(value)


def canonical_json_bytes(value: Any) -> bytes:
    """`canonical_json(value)` as UTF-8 bytes (lone surrogates passed through), for hashing without a
    decode/encode round trip on large payloads."""
    if plain_json_types(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONEncodeError, TypeError):
            pass
    return _stdlib_json(value).encode("utf-8", "surrogatepass")


#: orjson's nesting limit, which the stdlib paths (`stdlib_loads`, `stdlib_dumps`) hold to on every Python: the
#: stdlib's own limit is the interpreter's (about 990 levels on 3.11 at most, less deep in a call stack; over
#: 5,000 on 3.13), so the same line nested 1,000 deep was malformed on 3.11 and imported on 3.13.
JSON_DEPTH = 1024
_depth_lock = threading.RLock()


@contextlib.contextmanager
def json_depth_room(frames_per_level: int = 1) -> Iterator[None]:
    """Room for `JSON_DEPTH` levels of the stdlib's JSON recursion below the current frame (3.11 counts them
    against the Python recursion limit), each taking up to `frames_per_level` frames (the pure-Python encoder
    of `json.dumps(indent=...)` takes several). Serialised: the limit is the process's."""
    with _depth_lock:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(old + frames_per_level * JSON_DEPTH + 100)
        try:
            yield
        finally:
            sys.setrecursionlimit(old)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` arrays and objects (orjson's count: 1,024 `[` pass, 1,025 not)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children = v.values() if v.__class__ is dict else v
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if c.__class__ is dict or c.__class__ is list)
    return False


def stdlib_loads(text: str, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """`text` as the stdlib's `json.loads` reads it (claude.md §2 rule 3: integers of any size exact), refusing
    what orjson refuses for good: NaN and Infinity (not JSON), a float beyond the double range, and nesting
    deeper than `JSON_DEPTH`, on every Python version. The one fallback of the importers and of `hyp query`
    where orjson refuses a text or widens its integers. Raises ValueError. `object_pairs_hook`: as `json.loads`
    takes it (it may raise ValueError to refuse an object)."""
    try:
        with json_depth_room():
            value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                               object_pairs_hook=object_pairs_hook)  # fmt: skip
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    if (value.__class__ is dict or value.__class__ is list) and _deeper_than(value, JSON_DEPTH):
        raise ValueError("nested too deeply")
    return value


def stdlib_dumps(value: Any) -> str:
    """schema.md §3.3's canonical text by the stdlib (`json.dumps`, sorted keys, no spaces, no ASCII escaping),
    with room for `JSON_DEPTH` levels on every Python version."""
    with json_depth_room():
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


#: A surrogate escape (`\ud83d`): orjson refuses a lone one (a string cut mid-emoji), the stdlib keeps it as a
#: code point no UTF-8 output can encode.
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

#: A lone surrogate code point: what `os.fsdecode` makes of each byte of a file name that is not UTF-8
#: (U+DC80-U+DCFF), or what the stdlib's `json.loads` keeps of a lone `\ud83d`. No UTF-8 output can encode it.
SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_text(text: str) -> str:
    """`text` as valid UTF-8 text: each lone surrogate written as an escape, a byte of a file name that is not
    UTF-8 as `\\xff` (what `os.fsencode(name).decode("utf-8", "backslashreplace")` gives), any other as
    `\\ud83d`. `text` itself when it has none (the common case: one regex search)."""
    if SURROGATE.search(text) is None:
        return text
    return SURROGATE.sub(lambda m: escape_char(m.group()), text)


def utf8_json(text: str) -> str:
    """JSON text made by `json.dumps(..., ensure_ascii=False)` as valid UTF-8: a lone surrogate (which can
    only sit in a string there) becomes `utf8_text`'s escape, its backslash escaped for JSON (the string then
    reads `\\xff`). For the files and outputs written from messages that may quote a path (the events log,
    the daemon's status file, `--json`): one that is not UTF-8 crashed their `encode()`."""
    if SURROGATE.search(text) is None:
        return text
    return SURROGATE.sub(lambda m: escape_char(m.group()).replace("\\", "\\\\"), text)


#: Set by `hypaware_tui.importers.base`: `value` with the floats that orjson made of integers beyond 64 bits in
#: the line being parsed put back as those integers (`value` itself when there are none). None: no importer.
exact_numbers: Callable[[Any], Any] | None = None


def _stdlib_json(value: Any) -> str:
    """The stdlib's canonical text, and the way back to exact integers: the importers parse lines with orjson,
    which reads an integer beyond 64 bits (123456789012345678901234567890) as a float, where the stdlib's
    `json.loads` (claude.md §2 rule 3) keeps it. Such a float is 2**63 or more in magnitude, which `repr`
    writes with an exponent: only a text holding "e+" asks `exact_numbers` (a float in a value already costs
    this path; no other value pays anything)."""
    text = stdlib_dumps(value)
    if "e+" in text and exact_numbers is not None:
        exact = exact_numbers(value)
        if exact is not value:
            return stdlib_dumps(exact)
    return text


_MAX_DEPTH = 256  # orjson refuses deeper nesting anyway


def plain_json_types(value: Any, depth: int = 0) -> bool:
    """True when `value` holds only the exact types for which orjson and the stdlib encode alike: dict, list,
    str, int, bool, None (no float: their number formats differ). Bounded in depth, so a cyclic value ends
    (the stdlib then reports it as before). A plain recursive scan: this runs for every JSON column."""
    cls = value.__class__
    if cls is dict:
        children = value.values()
    elif cls is list:
        children = value
    else:
        return cls is str or cls is int or cls is bool or value is None
    if depth >= _MAX_DEPTH:
        return False
    for v in children:
        vc = v.__class__
        if vc is str or vc is int or vc is bool or v is None:
            continue
        if (vc is not dict and vc is not list) or not plain_json_types(v, depth + 1):
            return False
    return True


def empty_frame() -> pl.DataFrame:
    p = _polars()
    return p.pl.DataFrame(schema=p.AI_GATEWAY_MESSAGES_SCHEMA)


def frame_from_rows(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Build a frame in schema order from row dicts (missing keys are null), then validate it."""
    p = _polars()
    pl = p.pl
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return empty_frame()
    # Row-major transposition: each row dict is visited once (a column-major `r.get(name)` per column walks
    # every row 64 times and is ~5x slower on batches that do not fit the CPU cache).
    n = len(rows)
    columns: dict[str, list[Any]] = {name: [None] * n for name in COLUMN_NAMES}
    try:
        # Fast path: every key a column (what the importers emit); a subscript instead of a `get` call per value.
        for i, r in enumerate(rows):
            for k, v in r.items():
                columns[k][i] = v
    except KeyError:
        # A key that is no column is ignored: the general loop, from the start (it writes the same values again).
        get = columns.get
        for i, r in enumerate(rows):
            for k, v in r.items():
                col = get(k)
                if col is not None:
                    col[i] = v
    series = []
    for name, dtype, _, _ in p.COLUMNS:
        values = columns[name]
        if name in TIMESTAMP_COLUMNS:
            s = pl.Series(name, values, dtype=pl.Int64()).cast(p.UTC_US)
        else:
            s = _series(name, values, dtype)
        series.append(s)
    df = pl.DataFrame(series)
    if df.dtypes != list(p.AI_GATEWAY_MESSAGES_SCHEMA.values()):  # (not expected: each Series was made so)
        return validate_frame(df)
    # The columns are the schema's, in its order and dtypes: `validate_frame`'s cast would change nothing, and
    # only its null check is left (each Series knows its null count).
    _check_nulls([s.null_count() for s in series if s.name in _NON_NULL])
    return df


def _series(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    """`pl.Series(..., strict=False)`, the lenient conversion of the original rows, tried through the strict
    constructor first: on columns whose values already have the column's type (every valid batch) that is
    the same Series several times faster (strings: ~4x); where the strict one refuses a value, the lenient
    one decides, as before."""
    pl = _polars().pl
    try:
        return pl.Series(name, values, dtype=dtype, strict=True)
    except (OverflowError, TypeError, ValueError, pl.exceptions.PolarsError):
        try:
            return pl.Series(name, values, dtype=dtype, strict=False)
        except UnicodeEncodeError:
            # A string no UTF-8 column can hold (a lone surrogate: a file name's byte that is not UTF-8, kept
            # by a producer as `os.fsdecode` gives it). The importers write such values as escapes themselves
            # (`importers.base.name_text`); this is the net under any they miss. Failing here failed the whole
            # batch, rows of many files, on every run (the daemon retried forever); the value is repaired
            # instead, the same way each time, so rows stay a function of the bytes (schema.md §3.1).
            fixed = [utf8_text(v) if v.__class__ is str else v for v in values]
            return pl.Series(name, fixed, dtype=dtype, strict=False)


def validate_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Cast to the schema (order and dtypes) and reject nulls in non-null columns (schema.md §2)."""
    p = _polars()
    pl, schema = p.pl, p.AI_GATEWAY_MESSAGES_SCHEMA
    missing = [c for c in COLUMN_NAMES if c not in df.columns]
    extra = [c for c in df.columns if c not in schema]
    if missing or extra:
        raise SchemaError(f"batch columns do not match schema_version 1: missing {missing}, unexpected {extra}")
    try:
        df = df.select([pl.col(c).cast(t, strict=True) for c, t in schema.items()])
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise SchemaError(f"batch does not cast to schema_version 1: {exc}") from exc
    if df.height:
        _check_nulls(df.select([pl.col(c).null_count() for c in NON_NULL_COLUMNS]).row(0))
    return df


def _check_nulls(nulls: Iterable[int]) -> None:
    """Raise SchemaError when a non-null column has nulls: `nulls` are the null counts of `NON_NULL_COLUMNS`."""
    bad = [(c, n) for c, n in zip(NON_NULL_COLUMNS, nulls, strict=True) if n]
    if bad:
        detail = ", ".join(f"{c} ({n} null{'s' if n > 1 else ''})" for c, n in bad)
        raise SchemaError(f"null in a non-null column: {detail}")


def usage_view(messages: pl.LazyFrame) -> pl.LazyFrame:
    """`ai_gateway_usage` (schema.md §6): one row per API response, over the deduplicated messages."""
    pl = _polars().pl
    token_cols = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]
    api_error = pl.col("attributes").str.json_path_match("$.claude.api_error").fill_null("false") == "true"
    carriers = messages.filter(pl.any_horizontal([pl.col(c).is_not_null() for c in token_cols]) & ~api_error)
    total = (
        pl.col("input_tokens").fill_null(0)
        + pl.col("output_tokens").fill_null(0)
        + pl.col("cache_read_tokens").fill_null(0)
        + pl.col("cache_write_tokens").fill_null(0)
    ).cast(pl.Int64)
    out_cols = [
        "usage_key", "key_kind", "client_name", "provider", "model", "session_id", "conversation_id",
        "agent_id", "is_sidechain", "message_id", "part_id", "api_message_id", "request_id",
        "message_created_at", "date", *token_cols, "total_tokens", "rows_collapsed",
    ]  # fmt: skip

    claude = carriers.filter(pl.col("client_name") == "claude")
    side, api, request = pl.col("is_sidechain").fill_null(False), pl.col("api_message_id"), pl.col("request_id")
    main_ids = claude.filter(~side & api.is_not_null()).select("api_message_id").unique()
    claude = (
        claude.join(main_ids.with_columns(_has_main=pl.lit(True)), on="api_message_id", how="left",
                    nulls_equal=False)  # fmt: skip
        .filter(~(side & pl.col("_has_main").fill_null(False)))
        .drop("_has_main")
    )
    # Side-chain carriers of one api_message_id under more than one request id (none on the main thread, or the
    # rule above dropped them) are one response replayed: a side question replays a parent response under its
    # own request id too, and with the side question's file imported first the parent's lines are stored only
    # as its side-chain copies (they are duplicates then). Keyed `api:req` and `api:req_btw`, the response
    # counted twice; claude.md §11 asks for no double count whichever file is imported first. They are keyed by
    # api_message_id alone; every other carrier keeps rule 3's key (schema.md §6.2).
    replayed = side & api.is_not_null() & (request.n_unique().over("api_message_id") > 1)
    has_both = api.is_not_null() & request.is_not_null() & ~replayed
    claude = claude.with_columns(
        usage_key=pl.when(has_both).then(api + ":" + request).otherwise(pl.coalesce("api_message_id", "message_id")),
        key_kind=pl.when(has_both)
        .then(pl.lit("api_message_id+request_id"))
        .when(api.is_not_null())
        .then(pl.lit("api_message_id"))
        .otherwise(pl.lit("message_id")),
    )
    in_cache = (
        pl.col("input_tokens").fill_null(0) + pl.col("cache_read_tokens").fill_null(0)
        + pl.col("cache_write_tokens").fill_null(0)
    )  # fmt: skip
    claude = (
        claude.with_columns(_in=in_cache, rows_collapsed=pl.len().over("usage_key").cast(pl.Int64))
        .sort(
            ["usage_key", "output_tokens", "_in", "message_created_at", "part_id"],
            descending=[False, True, True, True, False],
            nulls_last=True,
        )
        .group_by("usage_key", maintain_order=True)
        .first()
        .with_columns(total_tokens=total)
        .select(out_cols)
    )
    codex = (
        carriers.filter(pl.col("client_name") == "codex")
        .with_columns(
            usage_key=pl.col("part_id"),
            key_kind=pl.lit("part_id"),
            total_tokens=total,
            rows_collapsed=pl.lit(1, dtype=pl.Int64),
        )
        .select(out_cols)
    )
    return pl.concat([claude, codex], how="vertical")
