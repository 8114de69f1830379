"""Codex rollouts -> `ai_gateway_messages` rows (spec: codex.md; rows: schema.md).

One rollout file is one **thread**. Three generations exist and are classified per line (codex.md §2.2), so
a file may mix them:

* the `{timestamp, type, payload}` envelope (Codex Rust, autumn 2025 on): `session_meta`, `turn_context`,
  `response_item`, `event_msg`, `compacted`, …;
* early JSONL (Codex Rust, mid 2025): a bare `{id, timestamp, instructions, git}` header, bare response items
  and `{"record_type": "state"}` lines;
* legacy JSON (the TypeScript CLI): one `{session, items}` document, read whole.

`rollout-*.jsonl` files are read incrementally; `rollout-*.json` and `rollout-*.jsonl.zst` are whole
documents (`read_whole`). A `CodexParser` keeps *everything* it needs to resume in `self.state` (codex.md
§9): the header, the turn state, the ordinal chain, the tool map, the token bookkeeping (remembered total,
latched event order, pending usage, the held **candidate** — the rows of the last assistant message,
fully built, waiting for its `token_count` — and the **orphan** usage of a `token_count` no message waited for,
which a context compaction's `compacted` record carries next), the fork-replay window and the paginated-history
key set.

Robustness: rollouts of many Codex versions exist. A line whose shape is not understood is counted
(`records_by_type`, `lines_skipped`) and skipped; an unexpected exception while handling one line counts that
line as `malformed` and the pass continues. `handle` never raises.

Skip reasons used (schema.md §7): `malformed` is a line that is not JSON or not an object (and a line on which
handling failed unexpectedly, as in the Claude importer); a valid object that carries no message, whatever its
fields hold (a `response_item` whose payload is not an object, a message without a role, an `item_completed`
whose item is a string), is `not_a_message`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import orjson

from hypaware_tui.core.checkpoints import path_hash
from hypaware_tui.core.paths import user_home
from hypaware_tui.core.schema import canonical_json, canonical_json_bytes, plain_json_types
from hypaware_tui.core.timeutil import parse_iso_us
from hypaware_tui.importers.base import (
    DamagedFile,
    Discovery,
    FileError,
    FileInventory,
    Importer,
    Parser,
    ParseStats,
    Row,
    SourceFile,
    Window,
    args_json,
    binary_free_json,
    binary_free_text,
    check_link,
    entry_realpath,
    exact_numbers_of_line,
    expand_root,
    feed_lines,
    handling,
    head_tail_timestamps,
    id_list_json,
    line_blocks,
    link_to_nothing_error,
    name_text,
    os_error_advice,
    parse_json_line,
    readable,
    split_lines,
    strip_base64_row,
    tail_timestamp,
)
from hypaware_tui.importers.base import (
    nonempty_str as _s,
)

NAME = "codex"
PROVIDER = "openai"
STATE_VERSION = 1
TOOL_MAP_CAP = 4096

FMT_ENVELOPE = "codex-envelope"
FMT_EARLY = "codex-early-jsonl"
FMT_LEGACY = "codex-legacy-json"

# Whole-document reads: decompressed/parsed in chunks of this size.
WHOLE_CHUNK = 4 * 1024 * 1024
# Inventory of whole-mode files: never decompress or parse more than this.
INVENTORY_LIMIT = 4 * 1024 * 1024

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_WIN_DRIVE = re.compile(r"[A-Za-z]:[\\/]")
_URL_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/]*@")
_EXIT_CODE_PREFIX = re.compile(r"Exit code: (-?\d+)")
_PROCESS_EXITED = re.compile(r"^Process exited with code (-?\d+)\s*$")

_TEXT_TYPES = frozenset({"input_text", "output_text", "text"})
_TURN_STARTS = frozenset({"task_started", "turn_started"})
_TURN_ENDS = frozenset({"task_complete", "turn_complete", "turn_aborted"})
_IMAGE_ENTRY_TYPES = frozenset({"image", "Image", "local_image", "LocalImage", "input_image"})
_TEXT_ENTRY_TYPES = frozenset({"text", "Text", "input_text", "output_text"})
_SUMMARY_TYPES = frozenset({"summary_text", "text"})
_CHAT_TEXT_TYPES = frozenset({"text"})
_TYPE_KEYS: dict[tuple[str, str], str] = {}  # ("event_msg", "token_count") -> "event_msg/token_count"
# A row holds the columns this importer sets; the others (Claude's native ids, the v1 nulls) are absent, which
# a frame reads as null (`frame_from_rows`). Every absent key is one less to copy per row and to transpose
# per batch: 30 of the 64 columns are always null here (-40 % of the frame building of Codex rows, measured).


# --------------------------------------------------------------------------------------------- helpers


def _num(value: object) -> int | None:
    """A token count: an int or a finite float (not a bool) that fits Int64, as an int; else None."""
    if value.__class__ is int:
        return value if _I64_MIN <= value <= _I64_MAX else None  # type: ignore[operator,return-value]
    if value.__class__ is float and math.isfinite(value):  # type: ignore[arg-type]
        v = int(value)  # type: ignore[call-overload]
        return v if _I64_MIN <= v <= _I64_MAX else None
    return None


def _ts(value: object) -> int | None:
    try:
        return parse_iso_us(value)
    except (ValueError, OverflowError, TypeError):
        return None


def line_timestamp(obj: Mapping[str, Any]) -> int | None:
    """The timestamp an inventory may show for a line: an envelope's, or an early header's."""
    ts = obj.get("timestamp")
    if "payload" in obj or ("type" not in obj and "id" in obj):
        return _ts(ts)
    return None


def usable_cwd(value: object) -> str | None:
    """codex.md §5: a non-blank string that is absolute on any OS (`/…`, `C:\\…`, `C:/…`, `\\\\server\\…`).
    Returned as written."""
    if value.__class__ is not str or not value.strip():  # type: ignore[union-attr]
        return None
    v: str = value  # type: ignore[assignment]
    if v.startswith("/") or v.startswith("\\\\") or _WIN_DRIVE.match(v):
        return v
    return None


def redact_url(url: str) -> str:
    """Remove `user[:secret]@` from `scheme://` URLs; the scp form `git@host:path` stays as it is."""
    return _URL_USERINFO.sub(r"\1", url)


def _sha16(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def thread_id_from_name(path: str) -> str:
    """The first UUID in the file name, else the file name without its extensions (codex.md §3), as text a
    row can hold (a name that is not UTF-8 has its bytes written as escapes: `base.name_text`)."""
    name = name_text(os.path.basename(path))
    m = _UUID_RE.search(name)
    if m:
        return m.group(0)
    for ext in (".jsonl.zst", ".jsonl", ".json"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def _digest(prefix: str, content: object) -> str:
    """sha256(prefix + canonical_json(content)) hex, first 16 (schema.md §4.2)."""
    h = hashlib.sha256(prefix.encode("utf-8", "surrogatepass"))
    h.update(canonical_json_bytes(content))
    return h.hexdigest()[:16]


# Fast paths to `canonical_json` for values whose leaves are known to be str / int / bool / None (no float):
# for those its own scan always passes and it returns orjson's text, or the stdlib's when orjson raises (a
# lone surrogate, an int beyond 64 bits). The same two steps here, without the scan, give the same text.
_SORT_KEYS = orjson.OPT_SORT_KEYS


def _str_json(value: dict[str, Any]) -> str:
    """canonical_json of a dict built here whose leaves are all str (or int / bool / None)."""
    try:
        return orjson.dumps(value, option=_SORT_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return canonical_json(value)


def _counts_json(value: dict[str, Any]) -> str:
    """canonical_json of a token usage object: flat ints as a rule (anything else takes the full path)."""
    for v in value.values():
        if v.__class__ is not int:
            return canonical_json(value)
    return _str_json(value)


def _entry_texts(entries: object, text_types: frozenset[str] = _TEXT_TYPES) -> list[str]:
    """Texts of the text entries of a content array (bare strings count)."""
    out: list[str] = []
    if entries.__class__ is not list:
        return out
    for e in entries:  # type: ignore[union-attr]
        if e.__class__ is str:
            out.append(e)
        elif e.__class__ is dict:
            t = e.get("text")
            if t.__class__ is str and (e.get("type") in text_types or "type" not in e):
                out.append(t)
    return out


def output_text(output: object) -> str | None:
    """`function_call_output.output` -> content_text (codex.md §4.1): the string (file bytes taken out of an
    MCP result serialised into it, `binary_free_text`); the text entries of an array joined with `\\n`
    (images never stored); else canonical JSON without file bytes."""
    if output is None:
        return None
    if output.__class__ is str:
        return binary_free_text(output)  # type: ignore[arg-type]
    if output.__class__ is list:  # (each text as a string output is: an MCP result serialised into one)
        texts = [binary_free_text(t) for t in _entry_texts(output)]
        return "\n".join(texts) if texts else None
    return binary_free_json(output)


def _exit_from_metadata(obj: object) -> int | None:
    if obj.__class__ is not dict:
        return None
    meta = obj.get("metadata")  # type: ignore[union-attr]
    if meta.__class__ is not dict:
        return None
    code = meta.get("exit_code")
    return code if code.__class__ is int else None


def exit_code(output: object) -> int | None:
    """The exit code a tool output states (codex.md §4.1 SHOULD), else None."""
    if output.__class__ is dict:
        return _exit_from_metadata(output)
    if output.__class__ is not str:
        return None
    text: str = output  # type: ignore[assignment]
    if text.startswith("Exit code: "):
        m = _EXIT_CODE_PREFIX.match(text)
        return int(m.group(1)) if m else None
    if text.find("Process exited with code", 0, 4096) >= 0:  # (in `text[:4096]`, without copying it)
        head = text[:4096]
        cut = head.find("\nOutput:")
        if cut >= 0 or head.startswith("Output:"):
            for line in head[: max(cut, 0)].split("\n"):
                m = _PROCESS_EXITED.match(line.rstrip("\r"))
                if m:
                    return int(m.group(1))
    # A JSON object's "metadata": {"exit_code": n}. Its key is spelled out unless the text escapes characters
    # as \uXXXX, so without either there is nothing to find, and the output (often large) is not parsed.
    # (`rfind`: Codex writes the metadata last, so the search from the end stops within a few bytes.)
    if text[:1] == "{" and (text.rfind('"exit_code"') >= 0 or "\\u" in text):
        try:
            return _exit_from_metadata(orjson.loads(text))
        except orjson.JSONDecodeError:
            return None
    return None


def _uuid7_seconds(value: object) -> int | None:
    """The whole-second Unix time of a UUIDv7 string, else None."""
    if value.__class__ is not str or len(value) != 36 or not _UUID_RE.fullmatch(value):  # type: ignore[arg-type]
        return None
    v: str = value  # type: ignore[assignment]
    if v[14] != "7":
        return None
    return int(v[0:8] + v[9:13], 16) // 1000


def _start_seconds(payload: dict[str, Any]) -> int | None:
    """Start instant of a `task_started` / `turn_started` (codex.md §7 rule 2), whole seconds."""
    started = payload.get("started_at")
    if (started.__class__ is int or started.__class__ is float) and math.isfinite(started):
        return math.floor(started)
    return _uuid7_seconds(payload.get("turn_id"))


def _state_safe(value: object) -> bool:
    """Whether a verbatim value can live in the parser state: depth <= 255 (what orjson writes; an integer
    beyond 64 bits, which it refuses, makes `dumps_state` write the stdlib's text instead)."""
    try:
        orjson.dumps(value)
    except TypeError as exc:  # (orjson.JSONEncodeError is TypeError)
        return str(exc) == "Integer exceeds 64-bit range" and _nesting(value, 0) <= 255
    return True


def _nesting(value: object, depth: int) -> int:
    """How deep `value` nests (0 for a scalar), counted up to a little past 255."""
    if depth > 256 or (value.__class__ is not dict and value.__class__ is not list):
        return depth
    children = value.values() if value.__class__ is dict else value  # type: ignore[union-attr]
    return max((_nesting(v, depth + 1) for v in children), default=depth + 1)


def _loads(text: str | None) -> object:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


# --------------------------------------------------------------------------------------------- parts
#
# A part is a dict of the part-level columns: part_type, provider_subtype, content_text, tool_name,
# tool_call_id, tool_args, tool_result_for, is_error, status, compact_metadata, plus "codex" (part-level
# attributes.codex keys, e.g. tool_namespace).


def _message_parts(content: object) -> list[dict[str, Any]]:
    """`message.content` -> parts (codex.md §4.1)."""
    if content.__class__ is str:
        return [{"part_type": "text", "content_text": content}]
    if content.__class__ is not list:
        return []
    parts: list[dict[str, Any]] = []
    for e in content:  # type: ignore[union-attr]
        if e.__class__ is str:
            parts.append({"part_type": "text", "content_text": e})
            continue
        if e.__class__ is not dict:
            continue
        et = e.get("type")
        text = e.get("text")
        text = text if text.__class__ is str else None
        if et.__class__ is not str or et == "":
            if text is not None:
                parts.append({"part_type": "text", "content_text": text})
            continue
        if et in _TEXT_TYPES:
            parts.append({"part_type": "text", "provider_subtype": et, "content_text": text})
        elif et == "input_image":
            parts.append({"part_type": "image", "provider_subtype": et})
        elif et == "input_audio":
            parts.append({"part_type": "audio", "provider_subtype": et})
        else:
            parts.append({"part_type": et, "provider_subtype": et, "content_text": text})
    return parts


def _text_of(parts: list[dict[str, Any]]) -> str:
    return "\n".join(p["content_text"] for p in parts if p["part_type"] == "text" and p.get("content_text"))


# `status` is built as its canonical text (rows never carry a status dict).
_STATUS_SUCCESS = '{"tool_status":"success"}'
_STATUS_ERROR = '{"tool_status":"error"}'


def _tool_result_part(call_id: str | None, text: str | None, code_error: bool | None) -> dict[str, Any]:
    part: dict[str, Any] = {
        "part_type": "tool_result",
        "content_text": text,
        "tool_call_id": call_id,
        "tool_result_for": call_id,
    }
    if code_error is not None:
        part["is_error"] = code_error
        part["status"] = _STATUS_ERROR if code_error else _STATUS_SUCCESS
    return part


class _Msg:
    """One message to build: role, parts, native id, fallback content, dedupe key (paginated mode)."""

    __slots__ = ("role", "parts", "native_id", "content", "key", "id_override")

    def __init__(
        self,
        role: str,
        parts: list[dict[str, Any]],
        native_id: str | None,
        content: object,
        key: str | None = None,
        id_override: str | None = None,
    ) -> None:
        self.role = role
        self.parts = parts
        self.native_id = native_id
        self.content = content
        self.key = key
        self.id_override = id_override


# --------------------------------------------------------------------------------------------- parser


def fresh_state() -> dict[str, Any]:
    return {
        "v": STATE_VERSION,
        "last_ts": None,
        "thread": None,  # the thread id, fixed at the header or at the first message
        "started_at": None,  # conversation_started_at (µs)
        "header": {
            "seen": False,
            "session_id": None,
            "start_us": None,  # the child's start instant for fork replays (codex.md §7)
            "client_version": None,
            "entrypoint": None,
            "user_type": None,
            "is_sidechain": None,
            "parent_thread_id": None,
            "git_branch": None,
            "cwd": None,
            "model": None,
            "history_mode": None,
            "attrs": {},  # attributes.codex from the header
        },
        "turn": {"id": None, "model": None, "cwd": None, "sandbox": None, "effort": None},
        "ordinal": 0,
        "last_message_id": None,
        "tools": [],  # [call_id, name] pairs, FIFO
        "last_total": None,  # canonical JSON of the last info-bearing total_token_usage
        "order": None,  # None | "after" | "before"
        "pending_usage": None,
        "latched_on_pending": False,  # before order was latched by the token_count now pending (see `_token_count`)
        "candidate": None,  # rows of the held assistant message
        "orphan_usage": None,  # after order: a counted usage no message waited for (a compaction's, codex.md §6.2)
        "usage_record": None,  # the last `token_usage_record` of this thread: {"id": response_id, "usage": …}
        "assistant_seen": False,
        # a copy of the parent's history (codex.md §7): `open_ts` the stamp of the session_meta opening it
        # (a fork's second one); `until` the child's first own ordinal (`subagent_history_start_ordinal`),
        # which alone then ends it; `awaiting_own` from its end to the child's first own message or boundary
        "replay": {"active": False, "open_ts": None, "until": None, "awaiting_own": False},
        "turn_keys": [],
    }


class CodexParser(Parser):
    """One pass over one rollout (incremental JSONL, or a whole document with `whole=True`)."""

    def __init__(
        self,
        file: SourceFile,
        state: dict[str, Any] | None,
        window: Window,
        stats: ParseStats,
        *,
        whole: bool = False,
    ) -> None:
        if state:
            merged = fresh_state()
            merged.update(state)
            state = merged
        super().__init__(file, state, window, stats, whole=whole)
        self._path_hash = file.path_hash
        self._tool_index: dict[str, str] = {k: v for k, v in self.state["tools"]}
        self._key_set: set[str] = set(self.state["turn_keys"])
        self._legacy_index: int | None = None  # set while handling a legacy-JSON item
        self._line_counted = False
        self._ts_text: object = None  # memo of the last envelope timestamp parsed
        self._ts_value: int | None = None
        # the file's constants
        self._row_template: Row = {"schema_version": 1, "provider": PROVIDER, "conversation_source": NAME,
                                   "client_name": NAME, "source_path_hash": file.path_hash}  # fmt: skip

    def fresh_state(self) -> dict[str, Any]:
        return fresh_state()

    def own_timestamp(self, obj: dict[str, Any]) -> int | None:
        if "payload" in obj:
            # (through `_envelope`'s memo: the handler then finds this line's stamp parsed, not parsing it again)
            raw_ts = obj.get("timestamp")
            if raw_ts == self._ts_text and raw_ts.__class__ is str:
                return self._ts_value
            ts = _ts(raw_ts)
            self._ts_text, self._ts_value = raw_ts, ts
            return ts
        return None

    # -- timestamps -----------------------------------------------------------------------------------

    def note_timestamp(self, ts: int) -> None:
        st = self.state
        if ts == st["last_ts"] and not self._held:
            return  # nothing can be waiting for a timestamp already noted
        if st["started_at"] is None and st["ordinal"] > 0:
            st["started_at"] = ts  # the first message had no timestamp: it takes this one
        cand = st["candidate"]
        if cand:
            for r in cand:
                if r.get("message_created_at") is None:
                    r["message_created_at"] = ts
                    r["attributes"].setdefault("gateway", {})["timestamp_source"] = "inherited_later"
                if r.get("conversation_started_at") is None:
                    r["conversation_started_at"] = ts
        super().note_timestamp(ts)

    def emit(self, rows: list[Row]) -> None:
        """Rows that the base will finalize at once get their `attributes` serialized here, with the fast
        canonical JSON (held rows keep their dict: the base still writes their timestamp source)."""
        if not self._held:
            for r in rows:
                if r["message_created_at"] is None:
                    break
            else:
                for r in rows:
                    a = r["attributes"]
                    if a.__class__ is dict:
                        c = a.get("codex")
                        if not c:
                            a = {"gateway": a["gateway"]}
                        # Every leaf built here is a str, int or bool; only `source`, verbatim, may hold a float:
                        # without it or as a string, `_str_json` gives canonical_json's text without its scan.
                        src = c.get("source") if c else None
                        r["attributes"] = _str_json(a) if src is None or src.__class__ is str else canonical_json(a)
        super().emit(rows)

    # -- bookkeeping ------------------------------------------------------------------------------------

    def _skip(self, reason: str) -> None:
        self.stats.lines_skipped[reason] += 1
        self._line_counted = True

    def _emit_deferred(self, rows: list[Row]) -> None:
        """Emit rows built on an earlier line (the candidate): their `outside_window` verdict belongs to that
        line, not to the one being handled."""
        saved = (self._line_rows, self._line_kept, self._line_held, self._line_group)
        self._line_rows = self._line_kept = self._line_held = 0
        self._line_group = None
        self.emit(rows)
        self.judge_line()
        self._line_rows, self._line_kept, self._line_held, self._line_group = saved

    def _emit_candidate(self, usage: dict[str, int] | None) -> None:
        st = self.state
        cand = st["candidate"]
        if not cand:
            return
        st["candidate"] = None
        if usage is not None:
            _attach(cand, usage)
        self._emit_deferred(cand)

    def _remember_tool(self, call_id: str | None, name: str | None) -> None:
        if call_id is None or name is None:
            return
        tools = self.state["tools"]
        index = self._tool_index
        if call_id in index:
            if index[call_id] == name:
                return
            for i, pair in enumerate(tools):
                if pair[0] == call_id:
                    del tools[i]
                    break
        tools.append([call_id, name])
        index[call_id] = name
        while len(tools) > TOOL_MAP_CAP:
            old = tools.pop(0)
            if index.get(old[0]) == old[1]:
                del index[old[0]]

    def _register_key(self, key: str | None) -> bool:
        """Paginated mode: True when the key is new in the turn (and registers it)."""
        if key is None:
            return True
        if key in self._key_set:
            return False
        self._key_set.add(key)
        self.state["turn_keys"].append(key)
        return True

    def _reset_keys(self) -> None:
        if self.state["turn_keys"]:
            self.state["turn_keys"] = []
            self._key_set = set()

    @property
    def _paginated(self) -> bool:
        return self.state["header"]["history_mode"] == "paginated"

    # -- entry point ------------------------------------------------------------------------------------

    def handle(self, obj: dict[str, Any], offset: int) -> None:
        self._line_counted = False
        try:
            if self._legacy_index is not None:
                self._legacy_item(obj)
            elif "payload" in obj and obj.get("type") is not None:  # (`_line`'s first case, without its call)
                self._envelope(obj, obj["type"], offset)
            else:
                self._line(obj, offset)
        except Exception:  # an unforeseen shape: count the line, keep going
            if not self._line_counted and not self._line_rows:
                self._skip("malformed")

    def _line(self, obj: dict[str, Any], offset: int) -> None:
        typ = obj.get("type")
        if "payload" in obj and typ is not None:
            self._envelope(obj, typ, offset)
            return
        if "record_type" in obj:
            rt = obj.get("record_type")
            self.count_type(f"record_type/{rt}" if rt.__class__ is str and rt else "record_type")
            self._skip("not_a_message")
            return
        if typ.__class__ is str and typ != "":
            self.count_type(typ)
            ts, src = self.inherited_ts()
            self._response_item(obj, src="bare", ts=ts, ts_source=src, offset=offset, fmt=FMT_EARLY,
                                raw_frame=_item_frame(obj))  # fmt: skip
            return
        if typ is None and "id" in obj and "timestamp" in obj and not self.state["header"]["seen"]:
            self.count_type("header")
            ts = _ts(obj.get("timestamp"))
            if ts is not None:
                self.note_timestamp(ts)
            self._adopt_header(obj, ts)
            self._skip("not_a_message")
            return
        self.count_type("unknown")
        self._skip("not_a_message")

    # -- envelopes (codex.md §2.3) ------------------------------------------------------------------------

    def _envelope(self, obj: dict[str, Any], typ: object, offset: int) -> None:
        raw_ts = obj.get("timestamp")
        if raw_ts == self._ts_text and raw_ts.__class__ is str:
            ts = self._ts_value
        else:
            ts = _ts(raw_ts)
            self._ts_text, self._ts_value = raw_ts, ts
        if ts is not None:
            self.note_timestamp(ts)
        payload = obj.get("payload")
        ptype = payload.get("type") if payload.__class__ is dict else None
        if typ.__class__ is not str or typ == "":
            self.count_type("unknown")
            self._skip("not_a_message")
            return
        if typ == "response_item" or typ == "event_msg":
            key = _TYPE_KEYS.get((typ, ptype)) if ptype.__class__ is str else None
            if key is None:
                key = f"{typ}/{ptype}" if ptype.__class__ is str and ptype else typ
                if ptype.__class__ is str and len(_TYPE_KEYS) < 512:
                    _TYPE_KEYS[(typ, ptype)] = key  # type: ignore[index]
            self.stats.records_by_type[key] += 1
        else:
            self.stats.records_by_type[typ] += 1

        if self.state["replay"]["active"] and self._replay_ends(obj, ts, typ, ptype, payload):
            # (a replay bounded by an ordinal ends exactly where the child's own records start: nothing of the
            # parent's can follow it, and the child's first token_count, a compaction's say, is its own)
            by_ordinal = self.state["replay"].get("until") is not None
            self.state["replay"] = {"active": False, "open_ts": None, "until": None, "awaiting_own": not by_ordinal}

        if payload.__class__ is not dict:  # (a valid object, of a known type or not: schema.md §7)
            self._skip("not_a_message")
            return

        if typ == "response_item":
            if ts is None:
                ts_, src = self.inherited_ts()
            else:
                ts_, src = ts, None
            self._response_item(payload, src="envelope", ts=ts_, ts_source=src, offset=offset, fmt=FMT_ENVELOPE,
                                raw_frame=_envelope_frame(obj, payload))  # fmt: skip
        elif typ == "event_msg":
            self._event(obj, payload, ptype, ts, offset)
        elif typ == "turn_context":
            self._turn_context(payload)
            self._skip("not_a_message")
        elif typ == "session_meta":
            self._session_meta(payload, ts, obj.get("ordinal"))
            self._skip("not_a_message")
        elif typ == "compacted":
            usage = self._compaction_usage(payload)  # (taken before the boundary would drop it)
            self._boundary()
            self._compacted(obj, payload, ts, offset, usage)
        elif typ == "token_usage_record":
            self._usage_record(payload)
            self._skip("not_a_message")
        else:
            self._skip("not_a_message")

    def _replay_ends(
        self, obj: dict[str, Any], ts: int | None, typ: object, ptype: object, payload: object
    ) -> bool:
        """codex.md §7 rule 2, checked before the record is handled (the ending record is not replayed). A
        replay bounded by an ordinal ends at the first record whose own `ordinal` reaches it, and only there:
        Codex itself skips exactly the records below it (its thread-history projection), whatever their
        stamps."""
        replay = self.state["replay"]
        until = replay.get("until")
        if until is not None:
            o = obj.get("ordinal")
            return o.__class__ is int and o >= until
        open_ts = replay["open_ts"]
        if ts is not None and open_ts is not None and ts // 1_000_000 > open_ts // 1_000_000 + 1:
            return True
        if typ == "event_msg" and ptype in _TURN_STARTS and payload.__class__ is dict:
            start = _start_seconds(payload)  # type: ignore[arg-type]
            child = self.state["header"]["start_us"]
            if start is not None and child is not None and start >= child // 1_000_000:
                return True
        return False

    # -- header (codex.md §3) -----------------------------------------------------------------------------

    def _session_meta(self, p: dict[str, Any], env_ts: int | None, ordinal: object) -> None:
        st = self.state
        hdr = st["header"]
        pid = _s(p.get("id"))
        if not hdr["seen"]:
            self._adopt_header(p, env_ts)
            # A spawned subagent's single session_meta may say where its own history starts: the records
            # before that ordinal are a copy of the parent's (its items and token_counts). Only in a file
            # whose records carry ordinals (paginated history; the header's is the first), and only when the
            # copy is in this file: a later page of the thread starts at or after the ordinal.
            start = p.get("subagent_history_start_ordinal")
            if start.__class__ is int and ordinal.__class__ is int and start > ordinal:  # type: ignore
                st["replay"] = {"active": True, "open_ts": None, "until": start, "awaiting_own": False}
            return
        if st["replay"]["active"]:
            return  # a nested copy inside a replay changes nothing
        if pid is None or pid == st["thread"]:
            # a resumed thread: newer client values for the records that follow
            v = _s(p.get("cli_version"))
            if v is not None:
                hdr["client_version"] = v
            v = _s(p.get("originator"))
            if v is not None:
                hdr["entrypoint"] = v
            v = _s(p.get("model_provider"))
            if v is not None:
                hdr["attrs"] = {**hdr["attrs"], "model_provider": v}
            return
        st["replay"] = {"active": True, "open_ts": env_ts, "until": None, "awaiting_own": False}

    def _adopt_header(self, p: dict[str, Any], env_ts: int | None) -> None:
        st = self.state
        hdr = st["header"]
        hdr["seen"] = True
        if st["thread"] is None:
            st["thread"] = _s(p.get("id")) or thread_id_from_name(self.file.path)
        hdr["session_id"] = _s(p.get("session_id"))
        start = _ts(p.get("timestamp"))
        if start is None:
            start = env_ts
        hdr["start_us"] = start
        if st["started_at"] is None and st["ordinal"] == 0:
            st["started_at"] = start
        hdr["client_version"] = _s(p.get("cli_version"))
        hdr["entrypoint"] = _s(p.get("originator"))
        thread_source = _s(p.get("thread_source"))
        hdr["user_type"] = thread_source
        source = p.get("source")
        spawn = None
        if source.__class__ is dict:
            sub = source.get("subagent")
            if sub.__class__ is dict:
                spawn = sub.get("thread_spawn")
                if spawn.__class__ is not dict:
                    spawn = None
        if (source.__class__ is dict and "subagent" in source) or thread_source == "subagent":
            hdr["is_sidechain"] = True
        elif source is not None or p.get("thread_source") is not None:
            hdr["is_sidechain"] = False
        else:
            hdr["is_sidechain"] = None
        forked = _s(p.get("forked_from_id"))
        hdr["parent_thread_id"] = (
            _s(p.get("parent_thread_id")) or (_s(spawn.get("parent_thread_id")) if spawn else None) or forked
        )
        git = p.get("git")
        git_attrs: dict[str, Any] = {}
        if git.__class__ is dict:
            for k in ("branch", "commit_hash", "repository_url"):
                v = _s(git.get(k))
                if v is not None:
                    git_attrs[k] = redact_url(v) if k == "repository_url" else v
        hdr["git_branch"] = git_attrs.get("branch")
        hdr["cwd"] = usable_cwd(p.get("cwd"))
        hdr["model"] = _s(p.get("model"))
        hm = p.get("history_mode")
        hdr["history_mode"] = hm if hm.__class__ is str else None
        attrs: dict[str, Any] = {}
        if thread_source is not None:
            attrs["thread_source"] = thread_source
        # `source` verbatim (codex.md §3), its nested nulls and empty objects included (schema.md §3.3 rule 3)
        if source.__class__ is dict and not plain_json_types(source):  # a float, maybe an integer orjson widened
            source = exact_numbers_of_line(source)  # (kept exact in the state)
        if (source.__class__ is str and source) or (source.__class__ is dict and _state_safe(source)):
            attrs["source"] = source
        for key in ("model_provider", "forked_from_id"):
            v = _s(p.get(key))
            if v is not None:
                attrs[key] = v
        for key in ("agent_nickname", "agent_role"):
            v = _s(p.get(key)) or (_s(spawn.get(key)) if spawn else None)
            if v is not None:
                attrs[key] = v
        if git_attrs:
            attrs["git"] = git_attrs
        hdr["attrs"] = attrs

    # -- turn state (codex.md §5) -------------------------------------------------------------------------

    def _turn_context(self, p: dict[str, Any]) -> None:
        turn = self.state["turn"]
        v = _s(p.get("turn_id"))
        if v is not None:
            turn["id"] = v
        v = _s(p.get("model"))
        if v is not None:
            turn["model"] = v
        v = usable_cwd(p.get("cwd"))
        if v is not None:
            turn["cwd"] = v
        sandbox = None
        sp = p.get("sandbox_policy")
        if sp.__class__ is dict:
            sandbox = _s(sp.get("type")) or _s(sp.get("mode"))
        elif sp.__class__ is str:
            sandbox = _s(sp)
        if sandbox is None:
            sandbox = _s(p.get("sandbox"))
        if sandbox is not None:
            turn["sandbox"] = sandbox
        if "effort" in p:
            turn["effort"] = _s(p.get("effort"))

    def _boundary(self) -> None:
        """A response boundary (codex.md §5, §6.2)."""
        st = self.state
        if not st["replay"]["active"]:
            self._own_record()
        if st["order"] == "before":
            if st["pending_usage"] is not None:
                st["pending_usage"] = None
                st["latched_on_pending"] = False
                self.stats.usage_unattached += 1
        else:
            self._emit_candidate(None)
            self._drop_orphan()
        st["assistant_seen"] = False

    def _own_record(self) -> None:
        """The child's first own record after a replay: usage counts again (codex.md §6.2 rule 1)."""
        replay = self.state["replay"]
        if replay.get("awaiting_own"):
            self.state["replay"] = {**replay, "awaiting_own": False}

    def _drop_orphan(self) -> None:
        """After order: the held orphan usage did not reach a compaction row (codex.md §6.2)."""
        st = self.state
        if st["orphan_usage"] is not None:
            st["orphan_usage"] = None
            self.stats.usage_unattached += 1

    # -- event_msg ----------------------------------------------------------------------------------------

    def _event(self, obj: dict[str, Any], p: dict[str, Any], et: object, ts: int | None, offset: int) -> None:
        if et == "token_count":
            self._token_count(p)
            self._skip("not_a_message")
        elif et in _TURN_STARTS:
            v = _s(p.get("turn_id"))
            if v is not None:
                self.state["turn"]["id"] = v
            self._boundary()
            self._reset_keys()
            self._skip("not_a_message")
        elif et in _TURN_ENDS:
            self._boundary()
            self._skip("not_a_message")
        elif et == "error":
            self._error(obj, p, ts, offset)
        elif et == "item_completed":
            if self._paginated:
                self._item_completed(obj, p, ts, offset)
            else:
                self._skip("not_a_message")
        else:
            self._skip("not_a_message")

    # -- tokens (codex.md §6) -----------------------------------------------------------------------------

    def _token_count(self, p: dict[str, Any]) -> None:
        info = p.get("info")
        if info.__class__ is not dict:
            return
        st = self.state
        total = info.get("total_token_usage")
        prev = st["last_total"]
        if total.__class__ is dict:
            tj = _counts_json(total)
            if tj == prev:
                return  # a re-emit of an unchanged total
            st["last_total"] = tj
        else:
            st["last_total"] = None
        if st["replay"]["active"]:
            return
        last = info.get("last_token_usage")
        if last.__class__ is dict:
            src = last
        elif total.__class__ is dict:
            src = _delta(total, _loads(prev))
        else:
            return
        usage = _usage(src)
        if usage is None:
            return
        if st["replay"].get("awaiting_own"):
            # Between a replay's end and the child's first own message or boundary, the records are still
            # the parent's: a replay cut short by time (codex.md §7 rule 2b) in the middle of the parent's
            # last response leaves that response's token_count here. It must neither latch the order (its
            # message was replayed, so it would latch `before` and drop every later usage) nor attach.
            self.stats.usage_unattached += 1
            return
        latched = False
        if st["order"] is None:
            st["order"] = "after" if st["assistant_seen"] else "before"
            latched = st["order"] == "before"
        if st["order"] == "after":
            if st["candidate"]:
                self._emit_candidate(usage)
            else:
                # No message waited for it: a context compaction's request, whose summary is never written as
                # a message. Its `compacted` record, the next row, carries it; anything else drops it.
                self._drop_orphan()
                st["orphan_usage"] = usage
        else:
            if st["pending_usage"] is not None:
                self.stats.usage_unattached += 1
            st["pending_usage"] = usage
            # (a compaction's request also comes before its `compacted` record in after order, where no message
            # precedes it: if this one is a compaction's, it says nothing of the order; `_compaction_usage`)
            st["latched_on_pending"] = latched

    def _usage_record(self, p: dict[str, Any]) -> None:
        """A `token_usage_record` (0.154 on): one completed response's usage, `{thread_id, turn_id, response_id,
        usage, turn_token_usage, thread_token_usage, …}`. An ordinary response's usage is counted from its
        `token_count`, so the record only is remembered: a compaction's request is written as a record alone
        (its `token_count` total does not move) and its `compacted` record names it (`compaction_response_id`)."""
        st = self.state
        if st["replay"]["active"]:
            return
        rid = p.get("response_id")
        owner = p.get("thread_id")
        if rid.__class__ is not str or not rid or (owner.__class__ is str and owner != st["thread"]):
            return
        u = p.get("usage")
        usage = _usage(u) if u.__class__ is dict else None
        if usage is not None:
            st["usage_record"] = {"id": rid, "usage": usage}

    def _compaction_usage(self, p: dict[str, Any]) -> dict[str, int] | None:
        """The usage a `compacted` record carries (codex.md §6.2): the compaction request's counted `token_count`
        — the orphan (after order) or the pending usage (before order) — else the `token_usage_record` the
        payload names by `compaction_response_id`. Never both: one request, counted once. A replayed
        compaction carries nothing."""
        st = self.state
        if st["replay"]["active"]:
            return None
        if st["order"] == "before":
            usage, st["pending_usage"] = st["pending_usage"], None
            if st["latched_on_pending"] and usage is not None:
                # The order was latched `before` by this compaction's own token_count, the first counted one of
                # the file: a compaction's request precedes its `compacted` record in either order (no message of
                # it is ever written), so it told nothing. Unlatched: the next response's token_count decides
                # (an after-order file, a resumed or forked thread that compacts first, was read as before order:
                # every later usage shifted one response late and the last dropped).
                st["order"] = None
            st["latched_on_pending"] = False
        else:
            usage, st["orphan_usage"] = st["orphan_usage"], None
        if usage is not None and not any(usage.values()):
            # (all zero: a remote compaction's recount after the totals were reset, no request of its own; a
            # usage row of 0 tokens would count a response that was never made)
            usage = None
        rec = st["usage_record"]
        rid = p.get("compaction_response_id")
        if rec is not None and rid.__class__ is str and rec["id"] == rid:
            st["usage_record"] = None
            if usage is None and any(rec["usage"].values()):
                usage = rec["usage"]
        return usage

    # -- response items (codex.md §4.1) -------------------------------------------------------------------

    def _response_item(
        self,
        p: dict[str, Any],
        *,
        src: str,
        ts: int | None,
        ts_source: str | None,
        offset: int | None,
        fmt: str,
        raw_frame: str | None,
    ) -> None:
        st = self.state
        replayed = src == "envelope" and st["replay"]["active"]
        ptype = p.get("type")
        native = _s(p.get("id"))
        paginated = st["header"]["history_mode"] == "paginated"

        if ptype == "message":
            role = _s(p.get("role"))
            if role is None:
                self._skip("not_a_message")
                return
            parts = _message_parts(p.get("content"))
            key = None
            if paginated:
                text = _text_of(parts)
                key = f"message|{role}|{_sha16(text)}" if text else None
            if role == "user":
                if paginated and key is not None and key in self._key_set:
                    self._skip("duplicate_item")
                    return
                self._boundary()
            msgs = [_Msg(role, parts, native, p, key)] if parts else []
            if not parts:
                if role == "assistant" and not replayed:
                    st["assistant_seen"] = True
                self._skip("empty_content")
                return
        elif ptype == "reasoning":
            if not replayed:
                st["assistant_seen"] = True
            summary = p.get("summary")
            texts = [t for t in _entry_texts(summary, _SUMMARY_TYPES) if t]
            if not texts:
                self._skip("encrypted_only")
                return
            text = "\n".join(texts)
            key = f"reasoning|{_sha16(text)}" if paginated else None
            msgs = [_Msg("assistant", [{"part_type": "reasoning", "content_text": text}], native, p, key)]
        elif ptype == "function_call" or ptype == "custom_tool_call":
            if not replayed:
                st["assistant_seen"] = True
            name = _s(p.get("name"))
            call_id = _s(p.get("call_id")) or _s(p.get("id"))
            part: dict[str, Any] = {
                "part_type": "tool_call",
                "tool_name": name,
                "tool_call_id": call_id,
                "tool_args": args_json(p.get("arguments") if ptype == "function_call" else p.get("input")),
            }
            ns = _s(p.get("namespace"))
            if ns is not None:
                part["codex"] = {"tool_namespace": ns}
            self._remember_tool(call_id, name)
            key = f"call|{call_id}" if paginated and call_id else None
            msgs = [_Msg("assistant", [part], native, p, key)]
        elif ptype == "local_shell_call":
            if not replayed:
                st["assistant_seen"] = True
            call_id = _s(p.get("call_id")) or native
            part = {"part_type": "tool_call", "tool_name": "local_shell", "tool_call_id": call_id,
                    "tool_args": args_json(p.get("action"))}  # fmt: skip
            self._remember_tool(call_id, "local_shell")
            key = f"call|{call_id}" if paginated and call_id else None
            msgs = [_Msg("assistant", [part], native, p, key)]
        elif ptype == "web_search_call":
            if not replayed:
                st["assistant_seen"] = True
            part = {"part_type": "tool_call", "tool_name": "web_search", "tool_call_id": native,
                    "tool_args": args_json(p.get("action"))}  # fmt: skip
            status = _s(p.get("status"))
            if status is not None:
                part["status"] = _str_json({"tool_status": status})
            self._remember_tool(native, "web_search")
            key = f"web_search|{native}" if paginated and native else None
            msgs = [_Msg("assistant", [part], native, p, key)]
        elif ptype == "function_call_output" or ptype == "custom_tool_call_output":
            call_id = _s(p.get("call_id"))
            out = p.get("output")
            code = exit_code(out)
            part = _tool_result_part(call_id, output_text(out), None if code is None else code != 0)
            if call_id is not None:
                name = self._tool_index.get(call_id)
                if name is not None:
                    part["tool_name"] = name
            key = f"output|{call_id}" if paginated and call_id else None
            msgs = [_Msg("tool", [part], native, p, key)]
        else:
            self._skip("not_a_message")
            return

        self._deliver(msgs, src=src, replayed=replayed, ts=ts, ts_source=ts_source, offset=offset, fmt=fmt,
                      provider_type=ptype, raw_frame=raw_frame, subtype_from_parts=True)  # fmt: skip

    # -- item_completed, paginated history (codex.md §4.4) ------------------------------------------------

    def _item_completed(self, obj: dict[str, Any], p: dict[str, Any], ts: int | None, offset: int) -> None:
        item = p.get("item")
        if item.__class__ is not dict:
            self._skip("not_a_message")
            return
        st = self.state
        replayed = st["replay"]["active"]
        itype = item.get("type")
        iid = _s(item.get("id"))
        msgs: list[_Msg] = []
        if itype == "UserMessage" or itype == "AgentMessage":
            role = "user" if itype == "UserMessage" else "assistant"
            parts: list[dict[str, Any]] = []
            content = item.get("content")
            if content.__class__ is list:
                for e in content:
                    if e.__class__ is str:
                        parts.append({"part_type": "text", "content_text": e})
                    elif e.__class__ is dict:
                        et = e.get("type")
                        text = e.get("text")
                        if et in _IMAGE_ENTRY_TYPES:
                            parts.append({"part_type": "image"})
                        elif text.__class__ is str and (et in _TEXT_ENTRY_TYPES or et is None):
                            parts.append({"part_type": "text", "content_text": text})
            text = _text_of(parts)
            key = f"message|{role}|{_sha16(text)}" if text else None
            if parts:
                msgs.append(_Msg(role, parts, iid, item, key))
        elif itype == "Reasoning":
            texts = [t for t in (item.get("summary_text") or []) if t.__class__ is str and t] \
                if item.get("summary_text").__class__ is list else []  # fmt: skip
            if not replayed:
                st["assistant_seen"] = True
            if not texts:
                self._skip("encrypted_only")
                return
            text = "\n".join(texts)
            msgs.append(_Msg("assistant", [{"part_type": "reasoning", "content_text": text}], iid, item,
                             f"reasoning|{_sha16(text)}"))  # fmt: skip
        elif itype == "CommandExecution":
            args = {k: item[k] for k in ("command", "cwd") if item.get(k) is not None}
            # snake_case in newer builds, camelCase (`aggregatedOutput`, `exitCode`) where the item type had
            # `rename_all = "camelCase"` (Codex's protocol items.rs, paginated rollouts of that time)
            agg = _either(item, "aggregated_output", "aggregatedOutput")
            if agg.__class__ is str:
                text = agg
            else:
                outs = [item[k] for k in ("stdout", "stderr") if item.get(k).__class__ is str]
                text = "\n".join(outs) if outs else None
            code = _either(item, "exit_code", "exitCode")
            err = code is not None and not (code.__class__ is int and code == 0)  # exit_code ∉ {0, null}
            msgs += self._call_and_result(item, iid, "shell", args, None, text, err)
        elif itype == "McpToolCall":
            result = item.get("result")
            text = None
            err: bool | None = False  # result.isError, or an error present (codex.md §4.4)
            if result.__class__ is dict:
                texts = _entry_texts(result.get("content"))
                text = "\n".join(texts) if texts else None
                err = result.get("isError") is True
            if item.get("error") is not None:
                err = True
                if text is None:
                    e = item.get("error")
                    text = e.get("message") if e.__class__ is dict and e.get("message").__class__ is str else None
            msgs += self._call_and_result(item, iid, _s(item.get("tool")), item.get("arguments"),
                                          _s(item.get("server")), text, err)  # fmt: skip
        elif itype == "FileChange":
            outs = [item[k] for k in ("stdout", "stderr") if item.get(k).__class__ is str and item.get(k)]
            msgs += self._call_and_result(item, iid, "apply_patch", item.get("changes"), None,
                                          "\n".join(outs) if outs else None, None)  # fmt: skip
        elif itype == "Extension" and _is_search(item.get("action")):
            # Codex's standalone web search is a function tool (`web.run`): its item's id is the call id of the
            # `function_call` response item the rollout also holds, so it is keyed as that call is (one row).
            # (A hosted search's `WebSearch` item repeats its `web_search_call` response item: no row.)
            part = {"part_type": "tool_call", "tool_name": "web_search", "tool_call_id": iid,
                    "tool_args": args_json(item.get("action"))}  # fmt: skip
            if not replayed:
                st["assistant_seen"] = True
            if iid is None or f"call|{iid}" not in self._key_set:
                self._remember_tool(iid, "web_search")
            msgs.append(_Msg("assistant", [part], iid, item, f"call|{iid}" if iid else None))
        else:
            self._skip("not_a_message")
            return
        if not msgs:
            self._skip("empty_content")
            return
        if msgs[0].role == "user":
            if msgs[0].key is not None and msgs[0].key in self._key_set:
                self._skip("duplicate_item")
                return
            self._boundary()
        if ts is None:
            ts_, src = self.inherited_ts()
        else:
            ts_, src = ts, None
        self._deliver(msgs, src="envelope", replayed=replayed, ts=ts_, ts_source=src, offset=offset,
                      fmt=FMT_ENVELOPE, provider_type="item_completed", raw_frame=_item_completed_frame(obj, item),
                      subtype=itype if itype.__class__ is str else None)  # fmt: skip

    def _call_and_result(
        self,
        item: dict[str, Any],
        iid: str | None,
        name: str | None,
        args: object,
        namespace: str | None,
        text: str | None,
        err: bool | None,
    ) -> list[_Msg]:
        if not self.state["replay"]["active"]:
            self.state["assistant_seen"] = True
        call: dict[str, Any] = {"part_type": "tool_call", "tool_name": name, "tool_call_id": iid,
                                "tool_args": args_json(args)}  # fmt: skip
        if namespace is not None:
            call["codex"] = {"tool_namespace": namespace}
        self._remember_tool(iid, name)
        result = _tool_result_part(iid, text, err)
        if name is not None:
            result["tool_name"] = name
        return [
            _Msg("assistant", [call], iid, item, f"call|{iid}" if iid else None, id_override=iid),
            _Msg("tool", [result], iid, item, f"output|{iid}" if iid else None,
                 id_override=f"{iid}:output" if iid else None),
        ]  # fmt: skip

    # -- single-row records (codex.md §4.5) ---------------------------------------------------------------

    def _compacted(
        self, obj: dict[str, Any], p: dict[str, Any], ts: int | None, offset: int, usage: dict[str, int] | None
    ) -> None:
        meta = {k: p[k] for k in ("window_number", "window_id", "first_window_id", "previous_window_id") if k in p}
        msg = p.get("message")
        part = {"part_type": "compaction", "content_text": msg if msg.__class__ is str else None,
                "compact_metadata": canonical_json(meta) if meta else None}  # fmt: skip
        if ts is None:
            ts_, src = self.inherited_ts()
        else:
            ts_, src = ts, None
        self._deliver([_Msg("system", [part], None, p)], src="envelope", replayed=self.state["replay"]["active"],
                      ts=ts_, ts_source=src, offset=offset, fmt=FMT_ENVELOPE, provider_type="compacted",
                      raw_frame=_envelope_frame(obj, p), carry=usage)  # fmt: skip

    def _error(self, obj: dict[str, Any], p: dict[str, Any], ts: int | None, offset: int) -> None:
        msg = p.get("message")
        msg = msg if msg.__class__ is str else None
        part: dict[str, Any] = {"part_type": "error", "content_text": msg, "is_error": True,
                                "status": None if msg is None else _str_json({"error_message": msg})}  # fmt: skip
        if ts is None:
            ts_, src = self.inherited_ts()
        else:
            ts_, src = ts, None
        self._deliver([_Msg("system", [part], None, p)], src="envelope", replayed=self.state["replay"]["active"],
                      ts=ts_, ts_source=src, offset=offset, fmt=FMT_ENVELOPE, provider_type="event_msg",
                      raw_frame=_envelope_frame(obj, p), subtype="error")  # fmt: skip

    # -- legacy JSON (codex.md §2.4, §4.2) ----------------------------------------------------------------

    def feed_legacy(self, doc: dict[str, Any]) -> None:
        """Handle a legacy `{session, items}` document (whole-document mode)."""
        session = doc.get("session")
        session = session if session.__class__ is dict else {}
        ts = _ts(session.get("timestamp"))
        if ts is not None:
            self.note_timestamp(ts)
        self._adopt_header(session, ts)
        items = doc.get("items")
        for i, item in enumerate(items if items.__class__ is list else []):
            if item.__class__ is not dict:
                self.count_type("unknown")
                self.stats.lines_skipped["malformed"] += 1
                continue
            self._legacy_index = i
            try:
                self.handle_object(item, None)
            finally:
                self._legacy_index = None

    def _legacy_item(self, item: dict[str, Any]) -> None:
        typ = item.get("type")
        role = item.get("role")
        ts, src = self.inherited_ts()
        frame = _item_frame(item)
        if typ.__class__ is str and typ:
            self.count_type(f"legacy/{typ}")
            self._response_item(item, src="legacy", ts=ts, ts_source=src, offset=None, fmt=FMT_LEGACY,
                                raw_frame=frame)  # fmt: skip
            return
        if typ is None and role.__class__ is str and role:
            self.count_type(f"legacy/{role}")
            self._chat_item(item, role, ts, src, frame)
            return
        self.count_type("unknown")
        self._skip("not_a_message")

    def _chat_item(self, item: dict[str, Any], role: str, ts: int | None, src: str | None,
                   frame: str | None) -> None:  # fmt: skip
        content = item.get("content")
        parts: list[dict[str, Any]] = []
        if role == "tool":
            call_id = _s(item.get("tool_call_id"))
            if content.__class__ is str:
                text: str | None = binary_free_text(content)  # type: ignore[arg-type]
            else:
                texts = _entry_texts(content, _CHAT_TEXT_TYPES)
                text = "\n".join(texts) if texts else None
            code = exit_code(content)  # (codex.md §4.1 SHOULD, as for a function_call_output)
            part = _tool_result_part(call_id, text, None if code is None else code != 0)
            if call_id is not None and call_id in self._tool_index:
                part["tool_name"] = self._tool_index[call_id]
            parts.append(part)
        else:
            if content.__class__ is str:
                if content:
                    parts.append({"part_type": "text", "content_text": content})
            elif content.__class__ is list:
                for e in content:
                    if e.__class__ is str:
                        if e:
                            parts.append({"part_type": "text", "content_text": e})
                    elif e.__class__ is dict and e.get("type") == "text" and e.get("text").__class__ is str:
                        if e["text"]:
                            parts.append({"part_type": "text", "provider_subtype": "text", "content_text": e["text"]})
            calls = item.get("tool_calls")
            if role == "assistant" and calls.__class__ is list:
                for c in calls:
                    if c.__class__ is not dict:
                        continue
                    fn = c.get("function")
                    fn = fn if fn.__class__ is dict else {}
                    call_id = _s(c.get("id"))
                    name = _s(fn.get("name"))
                    self._remember_tool(call_id, name)
                    parts.append({"part_type": "tool_call", "tool_name": name, "tool_call_id": call_id,
                                  "tool_args": args_json(fn.get("arguments"))})  # fmt: skip
        if role == "user":
            self._boundary()
        if not parts:
            if role == "assistant":
                self.state["assistant_seen"] = True
            self._skip("empty_content")
            return
        self._deliver([_Msg(role, parts, _s(item.get("id")), item)], src="legacy", replayed=False, ts=ts,
                      ts_source=src, offset=None, fmt=FMT_LEGACY, provider_type=None, raw_frame=frame)  # fmt: skip

    # -- building and delivering messages ---------------------------------------------------------------

    def _deliver(
        self,
        msgs: list[_Msg],
        *,
        src: str,
        replayed: bool,
        ts: int | None,
        ts_source: str | None,
        offset: int | None,
        fmt: str,
        provider_type: object,
        raw_frame: str | None,
        subtype: str | None = None,
        subtype_from_parts: bool = False,
        carry: dict[str, int] | None = None,
    ) -> None:
        """Dedupe (paginated mode), build the rows of each message and hand them on per codex.md §6.2. `carry`:
        the usage a compaction row carries (it then takes the turn's model too, so it can be priced)."""
        st = self.state
        paginated = st["header"]["history_mode"] == "paginated"
        built = 0
        dup = 0
        for m in msgs:
            if paginated and not self._register_key(m.key):
                dup += 1
                continue
            if st["orphan_usage"] is not None:  # (`_drop_orphan`, `_own_record`: called only when they act)
                self._drop_orphan()  # a row before the compaction's: the orphan was not a compaction's
            if not replayed and st["replay"].get("awaiting_own"):
                self._own_record()
            rows = self._build(m, replayed=replayed, ts=ts, ts_source=ts_source, offset=offset, fmt=fmt,
                               provider_type=provider_type if provider_type.__class__ is str else None,
                               raw_frame=raw_frame, subtype=subtype, subtype_from_parts=subtype_from_parts)  # fmt: skip
            built += 1
            if carry is not None:
                _attach(rows, carry)
                rows[-1]["model"] = st["turn"]["model"] or st["header"]["model"]
            if m.role == "assistant" and not replayed:
                st["assistant_seen"] = True
                if src == "envelope":
                    if st["order"] == "before":
                        pending = st["pending_usage"]
                        if pending is not None:
                            st["pending_usage"] = None
                            st["latched_on_pending"] = False
                            _attach(rows, pending)
                        self.emit(rows)
                    else:
                        self._emit_candidate(None)
                        # (stripped now: the candidate is saved in the checkpoint's parser state)
                        st["candidate"] = [strip_base64_row(r) for r in rows]
                    continue
                if st["order"] != "before":
                    self._emit_candidate(None)
            self.emit(rows)
        if not built and dup:
            self._skip("duplicate_item")

    def _build(
        self,
        m: _Msg,
        *,
        replayed: bool,
        ts: int | None,
        ts_source: str | None,
        offset: int | None,
        fmt: str,
        provider_type: str | None,
        raw_frame: str | None,
        subtype: str | None,
        subtype_from_parts: bool,
    ) -> list[Row]:
        st = self.state
        if st["thread"] is None:
            st["thread"] = thread_id_from_name(self.file.path)
        thread = st["thread"]
        hdr = st["header"]
        turn = st["turn"]
        role = m.role
        ordinal = st["ordinal"]

        native = None if replayed else (m.id_override or m.native_id)
        if native is not None:
            message_id = native
            identity = "native"
        else:
            message_id = _digest(f"{thread}:{ordinal}:{role}:", m.content)
            identity = "fallback"
        prev = st["last_message_id"]
        st["ordinal"] = ordinal + 1
        st["last_message_id"] = message_id
        if st["started_at"] is None and ordinal == 0:
            st["started_at"] = ts

        gateway: dict[str, Any] = {"identity_source": identity}
        if ts_source is not None:
            gateway["timestamp_source"] = ts_source
        codex: dict[str, Any] = hdr["attrs"].copy()
        is_assistant = role == "assistant"
        if is_assistant and turn["effort"] is not None:
            codex["effort"] = turn["effort"]
        if replayed:
            codex["replayed_from_parent"] = True
            if m.native_id is not None:
                codex["native_item_id"] = m.native_id
        if self._legacy_index is not None:
            codex["item_index"] = self._legacy_index

        base: Row = self._row_template.copy()
        base["session_id"] = hdr["session_id"] or thread
        base["conversation_id"] = thread
        base["model"] = (turn["model"] or hdr["model"]) if is_assistant else None
        base["conversation_started_at"] = st["started_at"]
        base["cwd"] = turn["cwd"] or hdr["cwd"]
        base["git_branch"] = hdr["git_branch"]
        base["client_version"] = hdr["client_version"]
        base["entrypoint"] = hdr["entrypoint"]
        base["user_type"] = hdr["user_type"]
        base["permission_mode"] = turn["sandbox"]
        base["is_sidechain"] = hdr["is_sidechain"]
        base["parent_thread_id"] = hdr["parent_thread_id"]
        base["message_id"] = message_id
        base["previous_message_id"] = "[]" if prev is None else id_list_json(prev)
        base["provider_uuid"] = native
        base["prompt_id"] = turn["id"]
        base["message_index"] = ordinal
        base["message_created_at"] = ts
        base["role"] = role
        base["provider_type"] = provider_type
        base["raw_frame"] = raw_frame
        base["source_offset"] = offset
        base["record_format"] = fmt
        parts = m.parts
        if len(parts) == 1:  # (the loop below for one part: the row is `base` itself, nothing is copied)
            part = parts[0]
            part_codex = part.pop("codex", None)
            base.update(part)
            base["part_index"] = 0
            base["part_id"] = message_id + "#0"
            if not subtype_from_parts:
                base["provider_subtype"] = subtype
            base["attributes"] = {"gateway": gateway, "codex": {**codex, **part_codex} if part_codex else codex}
            return [base]
        rows: list[Row] = []
        last = len(parts) - 1
        for i, part in enumerate(parts):
            row = base if i == last else base.copy()
            part_codex = part.pop("codex", None)
            row.update(part)
            row["part_index"] = i
            row["part_id"] = f"{message_id}#{i}"
            if not subtype_from_parts:
                row["provider_subtype"] = subtype
            if part_codex:
                c = {**codex, **part_codex}
            else:
                c = codex.copy() if i != last else codex
            row["attributes"] = {"gateway": gateway.copy() if i != last else gateway, "codex": c}
            rows.append(row)
        return rows

    # -- end of a whole document ------------------------------------------------------------------------

    def flush_pending(self) -> None:
        self._emit_candidate(None)
        self._drop_orphan()
        if self.state["pending_usage"] is not None:
            self.state["pending_usage"] = None
            self.state["latched_on_pending"] = False
            self.stats.usage_unattached += 1


# --------------------------------------------------------------------------------------------- tokens


def _delta(total: dict[str, Any], prev: object) -> dict[str, Any]:
    """Component-wise growth of `total_token_usage`; the total itself without a previous total or when it
    went down (a restart)."""
    if prev.__class__ is not dict:
        return total
    out: dict[str, Any] = {}
    for k, v in total.items():
        n = _num(v)
        if n is None:
            continue
        pv = _num(prev.get(k))  # type: ignore[union-attr]
        if pv is None:
            out[k] = n
            continue
        if n < pv:
            return total
        out[k] = n - pv
    return out


def _usage(src: dict[str, Any]) -> dict[str, int] | None:
    """codex.md §6.1 rule 4. None when no field is a number."""
    inp = _num(src.get("input_tokens"))
    cached = _num(src.get("cached_input_tokens"))
    cw = _num(src.get("cache_write_input_tokens"))
    out = _num(src.get("output_tokens"))
    reasoning = _num(src.get("reasoning_output_tokens"))
    if inp is None and cached is None and cw is None and out is None and reasoning is None:
        return None
    usage: dict[str, int] = {}
    if inp is not None:
        usage["input_tokens"] = max(0, inp - cached) if cached is not None else inp
    if cached is not None:
        usage["cache_read_tokens"] = cached
    if cw is not None:
        usage["cache_write_tokens"] = cw
    if out is not None:
        usage["output_tokens"] = out
    if reasoning is not None:
        usage["reasoning_output_tokens"] = reasoning
    return usage


def _attach(rows: list[Row], usage: dict[str, int]) -> None:
    """Tokens go on the carrier: the message's last part (schema.md §3.5)."""
    carrier = rows[-1]
    for col in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"):
        if col in usage:
            carrier[col] = usage[col]
    if "reasoning_output_tokens" in usage:
        carrier["attributes"].setdefault("codex", {})["reasoning_output_tokens"] = usage["reasoning_output_tokens"]


# --------------------------------------------------------------------------------------------- frames


#
# A raw frame holds verbatim *string* fields only, so it is serialized at once with `_str_json` (rows carry
# its canonical text, never the dict).


def _pick(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in keys:
        v = d.get(k)
        if v.__class__ is str:
            out[k] = v
    return out


_ITEM_KEYS = ("type", "role", "id", "call_id")
_ENVELOPE_KEYS = ("timestamp", "type")


def _envelope_frame(obj: dict[str, Any], payload: dict[str, Any]) -> str:
    # (`_pick(obj, _ENVELOPE_KEYS)` and `_pick(payload, _ITEM_KEYS)` written out: this runs for most rows)
    frame: dict[str, Any] = {}
    v = obj.get("timestamp")
    if v.__class__ is str:
        frame["timestamp"] = v
    v = obj.get("type")
    if v.__class__ is str:
        frame["type"] = v
    inner: dict[str, Any] = {}
    for k in _ITEM_KEYS:
        v = payload.get(k)
        if v.__class__ is str:
            inner[k] = v
    if inner:
        frame["payload"] = inner
    return _str_json(frame)


def _item_completed_frame(obj: dict[str, Any], item: dict[str, Any]) -> str:
    frame = _pick(obj, _ENVELOPE_KEYS)
    frame["payload"] = {"type": "item_completed", "item": _pick(item, ("type", "id"))}
    return _str_json(frame)


def _item_frame(item: dict[str, Any]) -> str | None:
    frame = _pick(item, _ITEM_KEYS)
    return _str_json(frame) if frame else None


def _either(item: dict[str, Any], snake: str, camel: str) -> object:
    """A field of a TurnItem under its snake_case name, else under its camelCase one."""
    return item[snake] if snake in item else item.get(camel)


def _is_search(action: object) -> bool:
    if action.__class__ is not dict:
        return False
    t = action.get("type")  # type: ignore[union-attr]
    return (t.__class__ is str and "search" in t.lower()) or "query" in action  # type: ignore[operator]


# --------------------------------------------------------------------------------------------- importer


def _is_rollout(name: str) -> bool:
    return name.startswith("rollout-") and (
        name.endswith(".jsonl") or name.endswith(".json") or name.endswith(".jsonl.zst")
    )


# Fixed places that are detected but never opened (codex.md §1 rule 5).
_HOME_SOURCES = (("history.jsonl", False), ("history.json", False), ("log", True))
_DESKTOP_SOURCES = (
    ("Library/Application Support/ChatGPT", "~/Library/Application Support/ChatGPT"),
    ("Library/Application Support/Codex", "~/Library/Application Support/Codex"),
    (".config/ChatGPT", "~/.config/ChatGPT"),
)


class CodexImporter(Importer):
    name = NAME
    display_name = "Codex"
    provider = PROVIDER

    # -- roots and discovery (codex.md §1) --------------------------------------------------------------

    def roots(self, config_root: str | None, env: Mapping[str, str]) -> list[str]:
        if config_root:
            return [expand_root(config_root, env)]
        raw = (env.get("CODEX_HOME") or "").strip()
        if raw:
            return [expand_root(raw, env)]
        return [os.path.abspath(os.path.join(user_home(env), ".codex"))]

    def discover(self, roots: list[str]) -> Discovery:
        disc = Discovery()
        seen_real: set[str] = set()
        by_hash: dict[str, str] = {}
        for home in roots:
            # a home or sessions folder that is a link to nothing (its drive not mounted) cannot be read: said,
            # and its files' checkpoints are kept (a missing one is no error, codex.md §1 rule 1)
            fe = link_to_nothing_error("<codex home>", "the Codex folder", home)
            if fe is not None:
                disc.failed.append(fe)
                continue
            try:
                if not os.path.isdir(home):
                    os.stat(home)  # raises for an unreadable home; a missing one is no error
                    continue
            except FileNotFoundError:
                continue
            except OSError as exc:
                disc.failed.append(FileError("<codex home>", f"cannot read the Codex folder ({exc.strerror or exc}). "
                                             f"{os_error_advice(exc)}", path=home, folder=True))  # fmt: skip
                continue
            for sub in ("sessions", "archived_sessions"):
                top = os.path.join(home, sub)
                if not os.path.isdir(top):
                    fe = link_to_nothing_error(f"<codex home>/{sub}", "a Codex sessions folder", top)
                    if fe is not None:
                        disc.failed.append(fe)
                        continue
                    try:
                        os.stat(top)  # raises for one that is there but cannot be opened (a link loop)
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        disc.failed.append(FileError(f"<codex home>/{sub}", f"cannot read a Codex sessions folder "
                                                     f"({exc.strerror or exc}); its rollouts are skipped. "
                                                     f"{os_error_advice(exc)}", path=top, folder=True))  # fmt: skip
                    continue
                found: dict[str, str] = {}  # path -> real path
                unreadable: dict[str, FileError] = {}  # path -> its error
                self._walk(top, disc, found, unreadable)
                for path, fe in unreadable.items():
                    if not (path.endswith(".jsonl.zst") and path[:-4] in found):  # (it would not be read)
                        disc.failed.append(fe)
                for path in sorted(found):
                    if path.endswith(".jsonl.zst") and path[:-4] in found:
                        continue  # the plain file wins (codex.md §1 rule 3)
                    self._add(path, found[path], disc, seen_real, by_hash)
            for rel, is_dir in _HOME_SOURCES:
                p = os.path.join(home, rel)
                if (os.path.isdir(p) if is_dir else os.path.lexists(p)):
                    label = f"<codex home>/{rel}/" if is_dir else f"<codex home>/{rel}"
                    if label not in disc.detected_sources:
                        disc.detected_sources.append(label)
        home_dir = user_home()
        for rel, label in _DESKTOP_SOURCES:
            if os.path.isdir(os.path.join(home_dir, rel)) and label not in disc.detected_sources:
                disc.detected_sources.append(label)
        return disc

    def _walk(
        self, top: str, disc: Discovery, found: dict[str, str], unreadable: dict[str, FileError]
    ) -> None:
        # (path, real path): directory symlinks below `top` are not followed, so a directory's real path is
        # its parent's plus its name. A rollout that cannot be followed goes to `unreadable`: `discover` reports
        # it unless it is an `X.jsonl.zst` next to an `X.jsonl`, which is never read (codex.md §1 rule 3).
        stack = [(top, os.path.realpath(top))]
        while stack:
            d, real_d = stack.pop()
            try:
                with os.scandir(d) as it:
                    entries = list(it)
            except OSError as exc:
                disc.failed.append(FileError(_where(d), f"cannot read a Codex sessions folder "
                                             f"({exc.strerror or exc}); its rollouts are skipped. "
                                             f"{os_error_advice(exc)}", path=d, folder=True))  # fmt: skip
                continue
            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append((e.path, os.path.join(real_d, e.name)))
                    elif _is_rollout(e.name):
                        if e.is_file():  # file symlinks are followed
                            found[e.path] = entry_realpath(real_d, e)
                        else:
                            check_link(e)  # (a link to nothing: reported, as a loop is)
                except OSError as exc:  # a rollout link that cannot be followed (a loop, no target): said, not dropped
                    unreadable[e.path] = FileError(_where(e.path), f"cannot read a Codex rollout "
                                                   f"({exc.strerror or exc}); it is skipped. {os_error_advice(exc)}",
                                                   path=e.path)  # fmt: skip

    def _add(
        self, path: str, real: str, disc: Discovery, seen_real: set[str], by_hash: dict[str, str]
    ) -> None:
        if real in seen_real:
            return
        seen_real.add(real)
        try:
            st = os.stat(real)
            if not readable(real, st):
                raise PermissionError(13, "permission denied")
        except OSError as exc:
            disc.failed.append(FileError(_where(path), f"cannot read a Codex rollout "
                                         f"({exc.strerror or exc}); it is skipped. {os_error_advice(exc)}",
                                         path=path))  # fmt: skip
            return
        h = path_hash(real)
        if h in by_hash and by_hash[h] != real:
            disc.failed.append(FileError(h, "two rollout files have the same path hash; the second one is skipped"))
            return
        by_hash[h] = real
        disc.files.append(
            SourceFile(
                client=NAME,
                path=real,
                path_hash=h,
                read_mode="incremental" if real.endswith(".jsonl") else "whole",
                is_session=True,
                size=st.st_size,
                mtime_ns=st.st_mtime_ns,
                device=st.st_dev,
                inode=st.st_ino,
            )
        )

    # -- passes -------------------------------------------------------------------------------------------

    def new_parser(
        self, file: SourceFile, state: dict[str, Any] | None, window: Window, stats: ParseStats
    ) -> Parser:
        return CodexParser(file, state, window, stats)

    def read_whole_batches(
        self, file: SourceFile, window: Window, stats: ParseStats, *, batch_bytes: int | None = None
    ) -> Iterator[tuple[list[Row], int]]:
        """A `.jsonl.zst` rollout is decompressed and fed as a stream, its ready rows handed out about every
        `batch_bytes` of decompressed lines (a cold rollout of a long session can hold hundreds of MB: held
        whole, its rows took ~4x that in memory). A legacy `.json` document is one JSON value: read whole."""
        if not file.path.endswith(".zst"):
            yield from super().read_whole_batches(file, window, stats, batch_bytes=batch_bytes)
            return
        parser = CodexParser(file, None, window, stats, whole=True)
        step = batch_bytes or WHOLE_CHUNK
        fed = 0
        consumed = 0
        damage: DamagedFile | None = None
        try:
            for decompressed, consumed in _feed_zst_chunks(parser, file.path):
                if decompressed - fed >= step and parser.ready_count:
                    fed = decompressed
                    yield parser.drain(), consumed
        except DamagedFile as exc:
            damage = exc
        # after damage too: the complete lines before it end as a document does (held rows are let out)
        parser.finish()
        yield parser.drain(), consumed
        if damage is not None:
            raise damage

    def read_whole(self, file: SourceFile, window: Window, stats: ParseStats) -> tuple[Parser, int]:
        parser = CodexParser(file, None, window, stats, whole=True)
        path = file.path
        if path.endswith(".zst"):
            bytes_read = deque(_feed_zst_chunks(parser, path), maxlen=1)[0][1]  # the last (fed, read) pair
        else:
            with open(path, "rb") as fh:
                data = fh.read()
            bytes_read = len(data)
            doc = _parse_document(data)
            if doc.__class__ is dict and doc.get("items").__class__ is list:
                with handling(data, doc):  # (integers beyond 64 bits are looked up in the document's bytes)
                    parser.feed_legacy(doc)
            else:
                lines, rest = split_lines(data)
                _feed_rest(parser, rest, feed_lines(parser.feed, lines, 0)[0])
        parser.finish()
        return parser, bytes_read

    def session_key(self, file: SourceFile) -> str:
        """One thread, wherever its file lies: a rollout in both sessions/ and archived_sessions/ counts once."""
        return thread_id_from_name(file.path)

    # -- inventory ------------------------------------------------------------------------------------------

    def inventory_file(self, file: SourceFile, size: int, mtime_ns: int) -> FileInventory:
        first = last = None
        try:
            if file.path.endswith(".jsonl"):
                first, last = head_tail_timestamps(file.path, size, line_timestamp)
            elif file.path.endswith(".zst"):
                data, complete = _decompress_head(file.path, INVENTORY_LIMIT)
                first, last = _scan_ts(data, complete)
            elif size <= INVENTORY_LIMIT:
                with open(file.path, "rb") as fh:
                    data = fh.read(INVENTORY_LIMIT + 1)
                doc = _parse_document(data)
                if doc.__class__ is dict and doc.get("items").__class__ is list:
                    session = doc.get("session")
                    ts = _ts(session.get("timestamp")) if session.__class__ is dict else None
                    first = last = ts
                else:
                    first, last = _scan_ts(data, True)
        except Exception:  # an inventory is a best effort: fall back to the mtime
            first = last = None
        return FileInventory(file, size, mtime_ns, first, last)

    def last_timestamp(self, file: SourceFile, size: int, mtime_ns: int) -> int | None:
        if file.path.endswith(".jsonl"):  # (as `inventory_file` reads it, without the head)
            return tail_timestamp(file.path, size, line_timestamp)
        return self.inventory_file(file, size, mtime_ns).last_ts


def _where(path: str) -> str:
    """Where a discovery error happened, as the events log and the daemon's status may hold it (storage.md §10:
    no raw source path): the path hash, as Claude's importer names its files. A rollout's name holds its date
    and thread id. (`FileError.path` gives the terminal the path itself.)"""
    return path_hash(os.path.realpath(path))


def _parse_document(data: bytes) -> object:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return parse_json_line(data)
    except (ValueError, RecursionError):
        return None


def _feed_rest(parser: CodexParser, rest: bytes, at: int) -> int:
    """A document's final line, without its newline (none, when `rest` is empty). Returns the offset after it."""
    if rest:
        parser.feed(rest, at, at + len(rest))
    return at + len(rest)


#: compressed bytes handed to the decompressor at a time: its output (a few times larger) is what memory holds, and
#: what is lost before a damaged spot (an error discards the output of the call)
ZST_INPUT_CHUNK = 32 * 1024


def _zstandard() -> Any:
    """The zstandard module. It is one of hyp's dependencies, so without it the installation is incomplete:
    the error says to reinstall (it said only "No module named 'zstandard'")."""
    try:
        import zstandard
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"{exc}: hyp reads .jsonl.zst rollouts with the zstandard package, one of its dependencies, so this "
            "installation is incomplete. Reinstall hyp the way it was installed (for example pip install "
            "--force-reinstall hypaware_tui)", name="zstandard") from exc
    return zstandard


class _ZstReader:
    """The decompressed bytes of a `.jsonl.zst` rollout through `read(n)`, frame after frame (Codex writes one;
    `zstd` and `pzstd` may write several). Reading ends early at damage, and `damage` then says what was wrong:
    zstandard's stream reader simply stops where a cut file stops, so a truncated rollout read as complete, its
    lost rows unreported."""

    def __init__(self, fh: BinaryIO) -> None:
        zstandard = _zstandard()
        self._error = zstandard.ZstdError
        self._dctx = zstandard.ZstdDecompressor()
        self._fh = fh
        self._frame: Any = None  # the decompressor of the frame being read; None between frames
        self._input = b""  # compressed bytes after the end of a frame, not decompressed yet
        self._out = bytearray()
        self._ended = False
        self.decompressed = 0  # bytes returned so far
        self.damage: str | None = None

    def read(self, n: int) -> bytes:
        while len(self._out) < n and not self._ended:
            self._fill()
        out = bytes(self._out[:n])
        del self._out[:n]
        self.decompressed += len(out)
        return out

    def _fill(self) -> None:
        data, self._input = self._input or self._fh.read(ZST_INPUT_CHUNK), b""
        if not data:
            self._ended = True
            if self._frame is not None:
                self.damage = "is truncated: it ends in the middle of its zstd data"
            elif self._fh.tell() == 0:
                self.damage = "is empty (0 bytes, no zstd data)"
            return
        if self._frame is None:
            self._frame = self._dctx.decompressobj()
        try:
            self._out += self._frame.decompress(data)
        except self._error as exc:
            self._ended = True
            self.damage = f"is damaged or not zstd data ({exc})"
            return
        if self._frame.eof:
            self._input, self._frame = self._frame.unused_data, None


def _feed_zst_chunks(parser: CodexParser, path: str) -> Iterator[tuple[int, int]]:
    """Stream-decompress a `.jsonl.zst` rollout and feed its lines (offsets count decompressed bytes), one
    chunk at a time: yields `(decompressed bytes fed, compressed bytes read)` after each, the last pair once
    the final line (even without `\n`) was fed. A damaged or cut file: the complete lines before the damage
    are fed (not the partial one at it), then `DamagedFile` is raised."""
    with open(path, "rb") as fh:
        reader = _ZstReader(fh)
        blocks = line_blocks(reader.read, WHOLE_CHUNK)
        pos = 0
        while True:
            try:
                lines, _ = split_lines(next(blocks))  # (a block ends with its last line's newline)
            except StopIteration as done:  # the rest after the last newline: a document's final line
                if reader.damage is None:
                    pos = _feed_rest(parser, done.value, pos)
                yield pos, fh.tell()
                break
            pos = feed_lines(parser.feed, lines, pos)[0]
            yield pos, fh.tell()
    if reader.damage is not None:
        kept = ("the rows of the lines before the damage were imported, the rest cannot be read from this file "
                "(restore it from a backup to import it whole)" if pos else "nothing could be read from it")
        raise DamagedFile(f"the compressed rollout (.jsonl.zst) {reader.damage}; {kept}.")


def _decompress_head(path: str, limit: int) -> tuple[bytes, bool]:
    dctx = _zstandard().ZstdDecompressor()
    out = bytearray()
    with open(path, "rb") as fh:
        reader = dctx.stream_reader(fh, read_across_frames=True)
        while len(out) <= limit:
            chunk = reader.read(min(1 << 20, limit + 1 - len(out)))
            if not chunk:
                return bytes(out), True
            out += chunk
    return bytes(out), False


def _scan_ts(data: bytes, complete: bool) -> tuple[int | None, int | None]:
    lines = data.split(b"\n")
    if not complete:
        lines = lines[:-1]
    first = last = None
    for raw in lines:
        ts = _line_ts_bytes(raw)
        if ts is not None:
            first = ts
            break
    if complete:
        for raw in reversed(lines):
            ts = _line_ts_bytes(raw)
            if ts is not None:
                last = ts
                break
    return first, last


def _line_ts_bytes(raw: bytes) -> int | None:
    raw = raw.strip()
    if raw[:1] != b"{":
        return None
    try:  # (as the import reads it: a line orjson refuses is a line of the file all the same)
        obj = parse_json_line(raw)
    except (ValueError, RecursionError):
        return None
    return line_timestamp(obj) if obj.__class__ is dict else None
