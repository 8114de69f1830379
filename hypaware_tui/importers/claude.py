"""Claude Code transcripts -> `ai_gateway_messages` rows (spec: claude.md; rows: schema.md).

Discovery walks `<root>/projects/` for `*.jsonl` (all three subagent layouts are found by the one walk). A
`ClaudeParser` turns each complete transcript line into zero or more rows: one row per content part, with
the thread ordinal, the `previous_message_id` chain, the tool map and the last-seen session fields kept in
a JSON parser state so that any later pass resumes exactly where this one stopped (claude.md §9).

Robustness: transcripts of many client versions exist. Every line shape that is not understood is counted
(`records_by_type`, `lines_skipped`) and skipped; `handle` never raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

import orjson

from hypaware_tui.core.checkpoints import path_hash
from hypaware_tui.core.paths import user_home
from hypaware_tui.core.schema import canonical_json
from hypaware_tui.core.timeutil import MAX_US, MIN_US, parse_claude_ts, parse_iso_us
from hypaware_tui.importers.base import (
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
    expand_root,
    head_tail_timestamps,
    id_list_json,
    link_to_nothing_error,
    name_text,
    os_error_advice,
    readable,
    tail_timestamp,
)
from hypaware_tui.importers.base import (
    nonempty_str as _s,
)

NAME = "claude"
_STAT_AT = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
RECORD_FORMAT = "claude-jsonl"
PROVIDER = "anthropic"
STATE_VERSION = 1
LAST_TS = Parser.LAST_TS
TOOL_MAP_CAP = 4096

# Timestamps outside years 1..9999 cannot be dated; they count as unparseable.
_MIN_US, _MAX_US = MIN_US, MAX_US  # (epoch ms numbers can leave the datable range too)
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_use"}
_API_ERROR_CODE = re.compile(r"API Error: (\d{3})(?!\d)")
# Token columns <- `message.usage` keys.
_USAGE_KEYS = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_input_tokens"),
    ("cache_write_tokens", "cache_creation_input_tokens"),
)
# Line fields the parser state remembers (claude.md §4.2, §9): state key -> line key.
_LAST_FIELDS = (
    ("cwd", "cwd"),
    ("git_branch", "gitBranch"),
    ("version", "version"),
    ("entrypoint", "entrypoint"),
    ("permission_mode", "permissionMode"),
)
# Native id columns with their snake-case aliases (claude.md §4.2).
_ID_FIELDS = (
    ("parent_uuid", "parentUuid", "parent_uuid"),
    ("logical_parent_uuid", "logicalParentUuid", "logical_parent_uuid"),
    ("source_tool_assistant_uuid", "sourceToolAssistantUUID", "source_tool_assistant_uuid"),
    ("request_id", "requestId", "request_id"),
    ("prompt_id", "promptId", "prompt_id"),
)
# The raw_frame keys other than `message`, in canonical order (code point order: orjson then needs no sort).
_RAW_FRAME_KEYS = ("parentUuid", "requestId", "subtype", "timestamp", "type", "uuid")


# --------------------------------------------------------------------------------------------- helpers


def _ts(value: object) -> int | None:
    """A line's own timestamp (ISO with a zone, or epoch ms) in µs, within a datable range."""
    if value is None:
        return None
    try:
        # parse_claude_ts(value), with the usual string case first
        us = parse_iso_us(value) if value.__class__ is str else parse_claude_ts(value)
    except (ValueError, OverflowError, TypeError):
        return None
    if us is None or us < _MIN_US or us > _MAX_US:
        return None
    return us


def line_timestamp(obj: Mapping[str, Any]) -> int | None:
    return _ts(obj.get("timestamp"))


def _int(value: object) -> int | None:
    """A token count: an int (not bool) that fits Int64, else None."""
    if value.__class__ is int and _I64_MIN <= value <= _I64_MAX:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    return None


def _result_text(content: object) -> str | None:
    """tool_result `content`: a string as is (unless it is JSON carrying file bytes, `binary_free_text`); an
    array -> the `text` of its text items joined by `\\n` (null if none); anything else -> canonical JSON,
    without file bytes (claude.md §5, schema.md §3.4 rule 3)."""
    if content is None:
        return None
    if content.__class__ is str:
        return binary_free_text(content)  # type: ignore[arg-type]
    if isinstance(content, list):
        texts = [  # (each as a string result is: an MCP result serialised into a text item carries bytes too)
            binary_free_text(item["text"])
            for item in content
            if isinstance(item, dict) and item.get("type") == "text" and item.get("text").__class__ is str
        ]
        return "\n".join(texts) if texts else None
    return binary_free_json(content)


def _queued_mode(att: dict[str, Any]) -> str | bool:
    """What a queued command is when it is not a prompt the person typed: its `commandMode` when that is not
    `"prompt"` (`"task-notification"`: a background task's notice), else its `origin.kind` when that is not
    `"human"` (`"peer"`: another session's message; `"auto-continuation"`), stored as `claude.queued_mode`
    (Claude Code shows only the others as the person's prompts); True for a typed prompt."""
    mode = att.get("commandMode")
    if mode.__class__ is str and mode and mode != "prompt":
        return mode
    origin = att.get("origin")
    kind = origin.get("kind") if origin.__class__ is dict else None
    if kind.__class__ is str and kind and kind != "human":
        return kind
    return True


def _server_tool_error(content: object) -> tuple[str, str | None] | None:
    """A server tool's failure: a `*_tool_result` whose `content` is an object typed `<tool>_tool_result_error`
    (`{"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}`; web fetch and code execution
    alike), which sets no `is_error`. Returns (content_text `"<type>: <error_code>"`, then the `error_message`
    some carry on the next line; the error code), or None for any other content."""
    if content.__class__ is not dict:
        return None
    get = content.get  # type: ignore[attr-defined]
    ctype = get("type")
    if ctype.__class__ is not str or not ctype.endswith("_tool_result_error"):
        return None
    code = _s(get("error_code"))
    text = ctype if code is None else f"{ctype}: {code}"
    message = _s(get("error_message"))
    if message is not None:
        text = f"{text}\n{binary_free_text(message)}"
    return text, code


_STATUS_SUCCESS = '{"tool_status":"success"}'
_STATUS_ERROR = '{"tool_status":"error"}'


def _raw_frame(obj: Mapping[str, Any], api_id: str | None) -> str | None:
    """claude.md §4.2 raw_frame: uuid, parentUuid, type, subtype, message.id, requestId, timestamp; present
    scalar values only, verbatim. Canonical JSON text, or None when empty."""
    # Keys inserted in canonical order ("message" first), so that orjson's output is already sorted.
    raw: dict[str, Any] = {"message": {"id": api_id}} if api_id is not None else {}
    simple = True
    get = obj.get
    for k in _RAW_FRAME_KEYS:
        v = get(k)
        cls = v.__class__  # (an absent key: NoneType, neither branch)
        if cls is str or cls is int or cls is bool:
            raw[k] = v
        elif cls is float:
            raw[k] = v
            simple = False  # float formatting differs between orjson and json.dumps
    if not raw:
        return None
    if simple:
        try:
            return orjson.dumps(raw).decode()
        except (TypeError, orjson.JSONEncodeError):  # an int beyond 64 bits
            pass
    return canonical_json(raw)


def _copy_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if v.__class__ is dict else v for k, v in attrs.items()}


def _agent_name(path: str) -> str | None:
    """The `<x>` of a file named `agent-<x>.jsonl`, as the file system gives it (for the sidecar's path)."""
    name = os.path.basename(path)
    if name.startswith("agent-") and name.endswith(".jsonl") and len(name) > len("agent-.jsonl"):
        return name[len("agent-") : -len(".jsonl")]
    return None


def _agent_id_from_name(path: str) -> str | None:
    """claude.md §3 `agent_id` from the file name: `<x>` of `agent-<x>.jsonl`, as text a row can hold (a name
    that is not UTF-8 has its bytes written as escapes: `base.name_text`)."""
    agent = _agent_name(path)
    return None if agent is None else name_text(agent)


def read_sidecar(path: str) -> dict[str, Any] | None:
    """The `agent-<id>.meta.json` next to a subagent file, reduced to the fields rows use; None when the
    file is not a subagent file, or the sidecar is absent, unreadable or not a JSON object (claude.md §7.2)."""
    agent = _agent_name(path)
    if agent is None:
        return None
    side = os.path.join(os.path.dirname(path), f"agent-{agent}.meta.json")
    try:
        with open(side, "rb") as fh:
            data = fh.read(1024 * 1024 + 1)
    except OSError:
        return None
    if len(data) > 1024 * 1024:
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("toolUseId", "agentType"):
        v = _s(obj.get(key))
        if v is not None:
            out[key] = v
    return out


# --------------------------------------------------------------------------------------------- parser


class ClaudeParser(Parser):
    """One pass over one Claude Code transcript (claude.md §2-§9)."""

    def __init__(
        self,
        file: SourceFile,
        state: dict[str, Any] | None,
        window: Window,
        stats: ParseStats,
        *,
        whole: bool = False,
    ) -> None:
        super().__init__(file, state, window, stats, whole=whole)
        st = self.state
        st.setdefault("v", STATE_VERSION)
        st.setdefault(self.LAST_TS, None)
        last = st.get("last")
        if not isinstance(last, dict):
            st["last"] = last = {}
        for key in ("session_id", *(k for k, _ in _LAST_FIELDS)):
            last.setdefault(key, None)
        if not isinstance(st.get("threads"), dict):
            st["threads"] = {}
        tools = st.get("tools")
        if not isinstance(tools, list):
            st["tools"] = tools = []
        st.setdefault("sidecar", None)
        self._tool_index: dict[str, str] = {p[0]: p[1] for p in tools}
        self._file_agent = _agent_id_from_name(file.path)
        self._in_agent_file = self._file_agent is not None
        self._path_hash = file.path_hash
        self._attr_cache: dict[tuple, str] = {}
        # Hot-path references to objects of `self.state` / `self.stats` (the same objects, never rebound: the
        # state stays the one JSON document checkpoints serialize).
        self._st: dict[str, Any] = st
        self._own_value: object = None  # the last `own_timestamp` asked for, and its µs (`_ts(None)` is None)
        self._own_us: int | None = None
        self._last: dict[str, Any] = last
        self._threads: dict[str, Any] = st["threads"]
        self._tools: list[list[str]] = tools
        self._by_type = stats.records_by_type
        self._skipped = stats.lines_skipped

    # -- contract -------------------------------------------------------------------------------------

    def fresh_state(self) -> dict[str, Any]:
        return fresh_state(self.file)

    def own_timestamp(self, obj: dict[str, Any]) -> int | None:
        value = obj.get("timestamp")
        self._own_value = value
        self._own_us = us = _ts(value)
        return us

    def on_release(self, ts: int) -> None:
        for thread in self.state["threads"].values():
            if thread.get("started_at") is None:
                thread["started_at"] = ts

    def handle(self, obj: dict[str, Any], offset: int) -> None:
        typ = obj.get("type")
        if typ.__class__ is not str or typ == "":
            key = "unknown"
            typ = None
        elif typ == "system":
            sub = obj.get("subtype")
            key = f"system/{sub}" if sub.__class__ is str and sub != "" else "system"
        else:
            key = typ if len(typ) <= 100 else typ[:100]
        self._by_type[key] += 1
        try:
            reason = self._line(obj, typ, offset)
        except Exception:  # an unforeseen shape: count the line, keep going
            reason = "malformed"
        if reason is not None:
            self._skipped[reason] += 1

    # -- one line -------------------------------------------------------------------------------------

    def _line(self, obj: dict[str, Any], typ: str | None, offset: int) -> str | None:
        """Process one record; returns the skip reason when it yields no row."""
        last = self._last
        get = obj.get

        # State first: every record updates the remembered fields and the last timestamp (claude.md §3).
        sid = get("sessionId")
        if sid.__class__ is str and sid != "":
            last["session_id"] = sid
        for skey, lkey in _LAST_FIELDS:
            v = get(lkey)
            if v.__class__ is str:  # a line's own value, "" (no git branch, say) included, is its value:
                last[skey] = v or None  # stored as null (schema.md §3.4 rule 5); only an absent one inherits
        value = get("timestamp")
        # (the same string `own_timestamp` was just given, for a pass with an `until`: its value, not parsed again)
        ts = self._own_us if value is self._own_value else _ts(value)
        if ts is not None:  # (`note_timestamp(ts)` written out: this runs for every line)
            self._st[LAST_TS] = ts
            if self._held:
                self._release(ts)

        msg = get("message")
        if typ == "system":
            if get("subtype") != "compact_boundary":
                return "not_a_message"
            return self._compaction(obj, ts, offset)
        if msg.__class__ is dict:
            role = msg.get("role")
            if role.__class__ is not str or role == "":  # _s(role) is None
                if typ == "user" or typ == "assistant":
                    role = typ
                else:
                    return "not_a_message"
            return self._message(obj, msg, role, typ, ts, offset)
        if typ == "attachment":
            att = get("attachment")
            if att.__class__ is dict and att.get("type") == "queued_command":
                # A prompt typed while the agent was busy and taken into its running turn: this record is the
                # only copy of the person's words (no `user` line is written for it; one drained at the end of
                # the turn is an ordinary `user` line and has no such record). One user message of its
                # `prompt`, which is content as a user message's is.
                return self._message(obj, {"content": att.get("prompt")}, "user", typ, ts, offset, queued=att)
        # (a `user` line whose `message` is a string, say: a valid object that carries no message, schema.md §7;
        # `malformed` is for a line that is not JSON or not an object)
        return "not_a_message"

    def _base(
        self, obj: dict[str, Any], typ: str | None, role: str, ts: int | None, offset: int
    ) -> tuple[Row, str, str | None] | None:
        """Columns shared by every row of a line, the thread scope and the timestamp source; None when
        there is no session id."""
        last = self._last
        session_id = last["session_id"]
        if session_id is None:
            return None
        get = obj.get
        agent_id = get("agentId")
        if agent_id.__class__ is not str or agent_id == "":
            agent_id = self._file_agent
        side = get("isSidechain")
        if side.__class__ is not bool:
            side = True if self._in_agent_file else None
        scope = session_id if agent_id is None else f"{session_id}:{agent_id}"
        ts_source = None
        if ts is None:
            ts, ts_source = self.inherited_ts()
        user_type = get("userType")
        uuid = get("uuid")
        row: Row = {
            "schema_version": 1,
            "session_id": session_id,
            "conversation_id": session_id,
            "provider": PROVIDER,
            "conversation_source": NAME,
            "client_name": NAME,
            "cwd": last["cwd"],
            "git_branch": last["git_branch"],
            "client_version": last["version"],
            "entrypoint": last["entrypoint"],
            "permission_mode": last["permission_mode"],
            "user_type": user_type if user_type.__class__ is str and user_type != "" else None,
            "is_sidechain": side,
            "agent_id": agent_id,
            "provider_uuid": uuid if uuid.__class__ is str and uuid != "" else None,
            "message_created_at": ts,
            "role": role,
            "provider_type": typ,
            "source_path_hash": self._path_hash,
            "source_offset": offset,
            "record_format": RECORD_FORMAT,
        }
        for col, key, alias in _ID_FIELDS:
            v = get(key)
            if v is None and alias in obj:  # the snake-case aliases are rare: `in` is cheaper than a get
                v = obj[alias]
            if v.__class__ is str and v != "":
                row[col] = v
        return row, scope, ts_source

    def _attributes(
        self, identity: str, ts_source: str | None, held: bool, is_meta: bool, api_error: bool,
        queued: str | bool = False,
    ) -> dict[str, Any] | str:
        """schema.md §5 attributes. Canonical text (cached: few distinct values per file), or a dict for a
        held row, whose timestamp source the base parser fills in on release."""
        key = (identity, ts_source, is_meta, api_error, queued)
        if not held:
            text = self._attr_cache.get(key)
            if text is not None:
                return text
        gateway: dict[str, Any] = {"identity_source": identity}
        if ts_source is not None and not held:
            gateway["timestamp_source"] = ts_source
        attrs: dict[str, Any] = {"gateway": gateway}
        claude: dict[str, Any] = {}
        sidecar = self.state.get("sidecar")
        if sidecar:
            if "toolUseId" in sidecar:
                claude["spawned_by_tool_use_id"] = sidecar["toolUseId"]
            if "agentType" in sidecar:
                claude["agent_type"] = sidecar["agentType"]
        if is_meta:
            claude["is_meta"] = True
        if api_error:
            claude["api_error"] = True
        if queued:
            claude["queued_command"] = True
            if queued.__class__ is str:  # (not a prompt the person typed: a background task's notice, say)
                claude["queued_mode"] = queued
        if claude:
            attrs["claude"] = claude
        if held:
            return attrs
        text = canonical_json(attrs)
        self._attr_cache[key] = text
        return text

    def _next_message(
        self, scope: str, message_id_native: str | None, role: str, content: object, row: Row
    ) -> str:
        """The next message of `scope`: consume the thread ordinal and set the thread columns of `row`
        (`message_id`, `message_index`, `previous_message_id`, `conversation_started_at`; §4.3-§4.5).
        Returns the identity source ("native" or "fallback")."""
        threads = self._threads
        thread = threads.get(scope)
        if message_id_native is not None:
            message_id, identity = message_id_native, "native"
        else:  # (computed before the thread changes: a failure here leaves the state as it was)
            ordinal = thread["ordinal"] if thread is not None else 0
            text = f"{scope}:{ordinal}:{role}:{canonical_json(content)}"
            message_id, identity = hashlib.sha256(text.encode()).hexdigest()[:16], "fallback"
        if thread is None:
            thread = {"ordinal": 0, "last_message_id": None, "started_at": row["message_created_at"]}
            threads[scope] = thread
        ordinal = thread["ordinal"]
        prev = thread["last_message_id"]
        thread["ordinal"] = ordinal + 1
        thread["last_message_id"] = message_id
        row["message_id"] = message_id
        row["message_index"] = ordinal
        row["previous_message_id"] = "[]" if prev is None else id_list_json(prev)
        row["conversation_started_at"] = thread["started_at"]
        return identity

    # -- messages -------------------------------------------------------------------------------------

    def _message(
        self, obj: dict[str, Any], msg: dict[str, Any], role: str, typ: str | None, ts: int | None, offset: int,
        queued: dict[str, Any] | None = None,
    ) -> str | None:
        """One message line, or (`queued`: the `attachment` object) a queued prompt's attachment line, whose
        `msg` is `{"content": prompt}`."""
        based = self._base(obj, typ, role, ts, offset)
        if based is None:
            return "no_session_id"
        row, scope, ts_source = based
        mget = msg.get
        content = mget("content")
        parts = self._parts(content)
        if not parts:
            return "empty_content"

        identity = self._next_message(scope, row["provider_uuid"], role, content, row)
        message_id = row["message_id"]
        api_id = mget("id")
        if api_id.__class__ is str and api_id != "":
            row["api_message_id"] = api_id
        else:
            api_id = None
        row["raw_frame"] = _raw_frame(obj, api_id)
        if role == "assistant":
            model = mget("model")
            if model.__class__ is str and model != "" and model != "<synthetic>":
                row["model"] = model
        get = obj.get
        csum = get("isCompactSummary")
        if csum.__class__ is bool:
            row["is_compact_summary"] = csum
        subtype = get("subtype")
        if subtype.__class__ is not str or subtype == "":  # _s(subtype)
            subtype = None

        api_error = get("isApiErrorMessage") is True
        error_status: dict[str, Any] | None = None
        if api_error:
            row["model"] = None
            row["is_error"] = True
            first_text = next((p[2] for p in parts if p[0] == "text" and p[2] is not None), None)
            error_status = {}
            if first_text is not None:
                error_status["error_message"] = first_text
                m = _API_ERROR_CODE.search(first_text)
                if m:
                    error_status["error_code"] = m.group(1)
        is_meta = get("isMeta") is True
        if queued is not None and queued.get("isMeta") is True:  # (another session's message, say)
            is_meta = True
        mode = False if queued is None else _queued_mode(queued)
        held = row["message_created_at"] is None
        # (`_attributes`' cached text looked up here, without its call: nearly every row)
        attrs = None if held else self._attr_cache.get((identity, ts_source, is_meta, api_error, mode))
        row["attributes"] = attrs if attrs is not None else self._attributes(
            identity, ts_source, held, is_meta, api_error, mode
        )

        rows: list[Row] = []
        n = len(parts)
        tools = self._tool_index
        for i, (ptype, btype, text, extra) in enumerate(parts):
            r = row if n == 1 else dict(row)
            if n > 1 and r["attributes"].__class__ is dict:
                r["attributes"] = _copy_attrs(row["attributes"])
            r["part_index"] = i
            r["part_id"] = message_id + "#0" if i == 0 else f"{message_id}#{i}"  # (no int formatting: ~all)
            r["part_type"] = ptype
            r["provider_subtype"] = subtype if subtype is not None else btype
            if text is not None:
                r["content_text"] = text
            status = None
            tool_code = None
            if extra is not None:
                if ptype == "tool_call":
                    call_id = extra.get("tool_call_id")
                    name = extra.get("tool_name")
                    if call_id is not None and name is not None:
                        self._remember_tool(call_id, name)
                elif ptype == "tool_result":
                    call_id = extra.get("tool_call_id")
                    if call_id is not None:
                        name = tools.get(call_id)
                        if name is not None:
                            r["tool_name"] = name
                    status = _STATUS_ERROR if extra.get("is_error") is True else _STATUS_SUCCESS
                    if "error_code" in extra:
                        tool_code = extra.pop("error_code")
                        status = canonical_json({"error_code": tool_code, "tool_status": "error"})
                r.update(extra)
            if error_status is not None:
                merged = dict(error_status)
                if status is not None:
                    merged["tool_status"] = "success" if status is _STATUS_SUCCESS else "error"
                    if tool_code is not None:
                        merged.setdefault("error_code", tool_code)
                status = canonical_json(merged) if merged else None
            if status is not None:
                r["status"] = status
            rows.append(r)

        carrier = rows[-1]
        usage = mget("usage")
        if usage.__class__ is dict:
            uget = usage.get
            for col, key in _USAGE_KEYS:
                v = uget(key)
                if v.__class__ is int and _I64_MIN <= v <= _I64_MAX:  # _int(v), inline
                    carrier[col] = v
        if api_error:
            carrier["finish_reason"] = "error"
        else:
            stop = mget("stop_reason")
            if stop.__class__ is str and stop != "":
                carrier["finish_reason"] = _FINISH.get(stop, stop)
        self.emit(rows)
        return None

    def _parts(self, content: object) -> list[tuple[str, str | None, str | None, dict[str, Any] | None]]:
        """Content -> [(part_type, block type, content_text, extra columns)] (claude.md §5)."""
        if content.__class__ is str:
            return [("text", "text", content, None)] if content else []  # type: ignore[list-item]
        if content.__class__ is not list:
            return []
        out = []
        for block in content:  # type: ignore[attr-defined]
            cls = block.__class__
            if cls is str:
                if block:
                    out.append(("text", "text", block, None))
                continue
            if cls is not dict:
                continue
            btype = block.get("type")
            if btype.__class__ is not str or btype == "":
                text = block.get("text")
                out.append(("unknown", None, text if text.__class__ is str else None, None))
                continue
            if btype == "text":
                text = block.get("text")
                out.append(("text", btype, text if text.__class__ is str else None, None))
            elif btype == "thinking":
                text = block.get("thinking")
                sig = _s(block.get("signature"))
                out.append(
                    ("reasoning", btype, text if text.__class__ is str else None,
                     {"thinking_signature": sig} if sig is not None else None)
                )  # fmt: skip
            elif btype == "redacted_thinking":
                out.append(("reasoning", btype, None, None))
            elif btype == "tool_use" or btype == "server_tool_use":
                extra: dict[str, Any] = {}
                call_id = _s(block.get("id"))
                if call_id is not None:
                    extra["tool_call_id"] = call_id
                name = _s(block.get("name"))
                if name is not None:
                    extra["tool_name"] = name
                args = args_json(block.get("input"))
                if args is not None:
                    extra["tool_args"] = args
                caller = block.get("caller")
                if caller.__class__ is dict:
                    ctype = _s(caller.get("type"))
                    if ctype is not None:
                        extra["caller_type"] = ctype
                out.append(("tool_call", btype, None, extra))
            elif btype == "tool_result" or btype.endswith("_tool_result"):
                extra = {}
                call_id = _s(block.get("tool_use_id"))
                if call_id is not None:
                    extra["tool_call_id"] = call_id
                    extra["tool_result_for"] = call_id
                is_error = block.get("is_error")
                if is_error.__class__ is bool:
                    extra["is_error"] = is_error
                content = block.get("content")
                failure = _server_tool_error(content) if content.__class__ is dict else None
                if failure is not None:  # a server tool's failure is not flagged by `is_error`
                    extra["is_error"] = True
                    text, code = failure
                    if code is not None:
                        extra["error_code"] = code  # (not a column: goes to `status`)
                else:
                    text = _result_text(content)
                out.append(("tool_result", btype, text, extra))
            elif btype == "image":
                out.append(("image", btype, None, None))
            elif btype == "document":
                out.append(("file", btype, None, None))
            else:
                text = block.get("text")
                out.append((btype, btype, text if text.__class__ is str else None, None))
        return out

    def _remember_tool(self, call_id: str, name: str) -> None:
        """The tool map: most recent last, at most TOOL_MAP_CAP pairs (FIFO), ids unique."""
        tools = self._tools
        index = self._tool_index
        if call_id in index:
            if index[call_id] == name and tools and tools[-1][0] == call_id:
                return
            for i, pair in enumerate(tools):
                if pair[0] == call_id:
                    del tools[i]
                    break
        tools.append([call_id, name])
        index[call_id] = name
        if len(tools) > TOOL_MAP_CAP:
            old = tools.pop(0)
            del index[old[0]]

    # -- compaction -----------------------------------------------------------------------------------

    def _compaction(self, obj: dict[str, Any], ts: int | None, offset: int) -> str | None:
        based = self._base(obj, "system", "system", ts, offset)
        if based is None:
            return "no_session_id"
        row, scope, ts_source = based
        content = obj.get("content")
        identity = self._next_message(scope, row["provider_uuid"], "system", content, row)
        message_id = row["message_id"]
        row["part_index"] = 0
        row["part_id"] = f"{message_id}#0"
        row["part_type"] = "compaction"
        row["provider_type"] = "system"
        row["provider_subtype"] = "compact_boundary"
        if content.__class__ is str:
            row["content_text"] = content
        meta = obj.get("compactMetadata")
        if meta is None:
            meta = obj.get("compact_metadata")
        if meta is not None:
            row["compact_metadata"] = canonical_json(meta)
        row["raw_frame"] = _raw_frame(obj, None)
        row["attributes"] = self._attributes(
            identity, ts_source, row["message_created_at"] is None, obj.get("isMeta") is True, False
        )
        self.emit([row])
        return None


# --------------------------------------------------------------------------------------------- importer


def _written_us(file: SourceFile, known: Mapping[str, FileInventory] | None) -> int:
    """When `file` was last written to, for the reading order (`ClaudeImporter.reading_order`): its last
    timestamp, the inventory's (`known`, when that entry's stat is still the file's and its tail held one), else
    found by a tail scan that goes further back until it finds one (a last message longer than the inventory's
    256 KB tail: the mtime, a day late after Claude Code appended a record, put the original after its copy);
    the mtime only for a file with no timestamp at all. A file that cannot be read sorts by its discovery mtime
    (its pass reports it)."""
    try:
        st = os.stat(file.path)
    except OSError:
        return file.mtime_ns // 1000
    inv = known.get(file.path_hash) if known is not None else None
    if (inv is not None and inv.last_ts is not None and inv.size == st.st_size and inv.mtime_ns == st.st_mtime_ns
            and (inv.file.inode is None or inv.file.inode == st.st_ino)):  # fmt: skip
        return inv.last_ts
    try:
        last = tail_timestamp(file.path, st.st_size, line_timestamp, further=True)
    except Exception:  # noqa: BLE001 - an unreadable tail dates the file by its mtime; its pass reports it
        last = None
    return last if last is not None else st.st_mtime_ns // 1000


def fresh_state(file: SourceFile) -> dict[str, Any]:
    """The state of a file read from offset 0, with the subagent sidecar captured (claude.md §7.2, §9)."""
    return {
        "v": STATE_VERSION,
        "last_ts": None,
        "last": {"session_id": None, **{k: None for k, _ in _LAST_FIELDS}},
        "threads": {},
        "tools": [],
        "sidecar": read_sidecar(file.path),
    }


class ClaudeImporter(Importer):
    name = NAME
    display_name = "Claude Code"
    provider = PROVIDER

    # -- roots and discovery (claude.md §1) ---------------------------------------------------------------

    def roots(self, config_root: str | None, env: Mapping[str, str]) -> list[str]:
        if config_root:
            candidates = [expand_root(config_root, env)]
        else:
            raw = (env.get("CLAUDE_CONFIG_DIR") or "").strip()
            if raw:
                candidates = [expand_root(p.strip(), env) for p in raw.split(",") if p.strip()]
            else:
                home = user_home(env)
                candidates = [
                    os.path.abspath(os.path.join(home, ".claude")),
                    os.path.abspath(os.path.join(home, ".config", "claude")),
                ]
        out: list[str] = []
        seen: set[str] = set()
        for c in candidates:
            real = os.path.realpath(c)
            if real in seen:
                continue
            seen.add(real)
            out.append(c)
        return out

    def discover(self, roots: list[str]) -> Discovery:
        disc = Discovery()
        seen_roots: set[str] = set()
        found: dict[str, tuple[str, os.stat_result]] = {}  # real path -> (name, stat)
        for root in roots:
            real_root = os.path.realpath(root)
            if real_root in seen_roots:
                continue
            seen_roots.add(real_root)
            projects = os.path.join(real_root, "projects")
            # A root or `projects` that is a link to nothing (its drive not mounted) is a folder that cannot be
            # read, not one that is absent (claude.md §1 rule 2): said, and its files' checkpoints are kept
            fe = (link_to_nothing_error(path_hash(real_root), "the Claude Code folder", root)
                  or link_to_nothing_error(path_hash(projects), "the Claude Code projects folder", projects))
            if fe is not None:
                disc.failed.append(fe)
                continue
            try:
                if not os.path.isdir(os.path.realpath(projects)):
                    os.stat(projects)  # raises for an unreadable root; a missing one is no error
                    continue
            except FileNotFoundError:
                continue
            except OSError as exc:
                # (no path in the message: it reaches the events log; the terminal shows `path`)
                disc.failed.append(
                    FileError(
                        path_hash(real_root),
                        f"cannot read the Claude Code folder ({exc.strerror or exc}). {os_error_advice(exc)}",
                        path=projects,
                        folder=True,
                    )
                )
                continue
            self._walk(projects, disc, found)

        # Session files first, then subagent files, each in path order: two plain string sorts (a sort keyed
        # by (is agent, path) built and compared a tuple per file, 0.05 s of a rerun over 40,000 files).
        sessions: list[str] = []
        agents: list[str] = []
        for real, (name, _) in found.items():
            (agents if name.startswith("agent-") else sessions).append(real)
        sessions.sort()
        agents.sort()
        by_hash: dict[str, str] = {}
        files: list[SourceFile] = []
        for real in sessions + agents:
            name, st = found[real]
            h = path_hash(real)
            if h in by_hash and by_hash[h] != real:
                disc.failed.append(
                    FileError(h, "two transcript files have the same path hash; the second one is skipped")
                )
                continue
            by_hash[h] = real
            # (positional: keyword arguments cost a microsecond per file)
            files.append(
                SourceFile(NAME, real, h, "incremental", not name.startswith("agent-"), st.st_size, st.st_mtime_ns,
                           st.st_dev, st.st_ino)  # fmt: skip
            )
        disc.files = files
        return disc

    def _walk(self, top: str, disc: Discovery, found: dict[str, tuple[str, os.stat_result]]) -> None:
        # (path, real path): directory symlinks below `top` are not followed, so a directory's real path is
        # its parent's plus its name
        stack = [(top, os.path.realpath(top))]
        while stack:
            d, real_d = stack.pop()
            try:
                with os.scandir(d) as it:
                    entries = list(it)
            except OSError as exc:
                disc.failed.append(
                    FileError(
                        path_hash(os.path.realpath(d)),
                        f"cannot read a Claude Code transcript directory ({exc.strerror or exc}); "
                        f"its sessions are skipped. {os_error_advice(exc)}",
                        path=d,
                        folder=True,
                    )
                )
                continue
            # Files are stat'ed by name in the open directory: the kernel then resolves one component rather
            # than the whole path (0.03 s over 40,000 files). By path where it cannot be opened so, or there
            # is no `dir_fd`.
            dir_fd = None
            if _STAT_AT:
                with contextlib.suppress(OSError):
                    dir_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            try:
                self._take_entries(entries, real_d, dir_fd, stack, disc, found)
            finally:
                if dir_fd is not None:
                    os.close(dir_fd)

    @staticmethod
    def _take_entries(entries: list[os.DirEntry[str]], real_d: str, dir_fd: int | None,
                      stack: list[tuple[str, str]], disc: Discovery,
                      found: dict[str, tuple[str, os.stat_result]]) -> None:  # fmt: skip
        """The transcripts of one listed directory into `found` (real path -> (real name, stat)), its
        subdirectories onto `stack`."""
        # `os.path.join(real_d, name)` without its call per entry (0.1 s over 40,000 files): a name holds no
        # separator, and only a root directory's real path ends with one
        prefix = real_d if real_d.endswith(os.sep) else real_d + os.sep
        for e in entries:
            try:
                name = e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, prefix + name))
                    continue
                if not name.endswith(".jsonl"):
                    continue
                if not e.is_file():  # file symlinks are followed; one to nothing is reported (claude.md §1 rule 7)
                    check_link(e)
                    continue
                at = dir_fd
                if e.is_symlink():  # (as `entry_realpath`: only a symlink is resolved)
                    real = os.path.realpath(e.path)
                    name = real.rpartition(os.sep)[2]
                    at = None
                else:
                    real = prefix + name
                if real in found:
                    continue
                st = os.stat(real) if at is None else os.stat(name, dir_fd=at)
                if not readable(real, st):
                    raise PermissionError(13, "permission denied")
            except OSError as exc:
                disc.failed.append(
                    FileError(
                        path_hash(os.path.realpath(e.path)),
                        f"cannot read a Claude Code transcript ({exc.strerror or exc}); it is skipped. "
                        f"{os_error_advice(exc)}",
                        path=e.path,
                    )
                )
                continue
            found[real] = (name, st)

    # -- passes -----------------------------------------------------------------------------------------

    def new_parser(
        self, file: SourceFile, state: dict[str, Any] | None, window: Window, stats: ParseStats
    ) -> ClaudeParser:
        return ClaudeParser(file, state, window, stats)

    def prepare_fresh_state(self, file: SourceFile) -> dict[str, Any] | None:
        return fresh_state(file)

    def inventory_file(self, file: SourceFile, size: int, mtime_ns: int) -> FileInventory:
        first, last = head_tail_timestamps(file.path, size, line_timestamp)
        return FileInventory(file=file, size=size, mtime_ns=mtime_ns, first_ts=first, last_ts=last)

    def last_timestamp(self, file: SourceFile, size: int, mtime_ns: int) -> int | None:
        return tail_timestamp(file.path, size, line_timestamp)

    reorders_reads = True

    def reading_order(
        self, files: list[SourceFile], known: Mapping[str, FileInventory] | None = None
    ) -> list[int] | None:
        """Session files first, by the time they were last written to as their own lines tell it (the last
        timestamp of the inventory's tail scan; the mtime when it finds none), then real path; subagent files
        after them, in discovery order (claude.md §1 rule 5).

        `claude --resume` / `--continue` (1.0.x) wrote the conversation again into a new session file, each line
        under its original `uuid` and timestamp: the copy's last line is later than every line of the original,
        so the original is read first and keeps its messages (schema.md §4.6: the first committed copy wins), as
        with the daemon, which saw the original written first. In path order, a copy whose random name sorted
        first took them all, and the original conversation kept no row. Not by mtime alone: Claude Code appends
        untimestamped records (`last-prompt`, `mode`) to closed transcripts long after their last line, and
        copies of a history lose their mtimes. The tail is read only for the files a pass opens."""
        sessions = [i for i, f in enumerate(files) if f.is_session]
        if len(sessions) < 2:
            return None
        keys = {i: _written_us(files[i], known) for i in sessions}
        sessions.sort(key=lambda i: (keys[i], files[i].path))
        return sessions + [i for i, f in enumerate(files) if not f.is_session]

    def session_key(self, file: SourceFile) -> str:
        """A layout-(c) subagent file belongs to its parent's session file
        (`<dir>/<sessionId>/subagents/agent-*.jsonl` -> `<dir>/<sessionId>.jsonl`); any other file is its
        own session."""
        if file.is_session:
            return file.path_hash
        sub = os.path.dirname(file.path)
        if os.path.basename(sub) == "subagents":
            sess_dir = os.path.dirname(sub)
            parent = os.path.join(os.path.dirname(sess_dir), os.path.basename(sess_dir) + ".jsonl")
            return path_hash(os.path.realpath(parent))
        return file.path_hash
