"""Split equals whole (storage.md §5.5) for the Codex importer, property-tested.

Generated rollouts of each incremental generation — envelope in *after* order, envelope in *before* order
(both with re-emits, rate-limit-only events, aborted turns, forks with a replay, subagents whose copy of the
parent's history ends at an ordinal, paginated item_completed,
timestamp-less leading lines that must be held, junk lines, CRLF) and early JSONL — are imported in one pass
and as growing prefixes cut at random byte offsets (so passes see partial trailing lines), with the
checkpoint carried between passes: the rows are identical (all 64 columns, multiset). Cuts land where a
candidate is held (after order), where a usage is pending (before order) and where a compaction's usage waits
for its `compacted` line (the orphan); a dedicated test checks that such states really were crossed. Legacy JSON is a whole document: re-importing gives the same rows. Every
fixture is also cut at random points, and at every line boundary."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypaware_tui.core.checkpoints import Checkpoint
from hypaware_tui.core.reader import FilePass
from hypaware_tui.core.schema import frame_from_rows
from hypaware_tui.core.timeutil import us_to_iso
from hypaware_tui.importers.base import ParseStats, Window, loads_state
from hypaware_tui.importers.codex import CodexImporter

sys.path.insert(0, str(Path(__file__).parent))
from import_helpers import counts, import_file, lines_without_rows, rows_multiset, source_file_for  # noqa: E402
from test_codex_importer import slow_fork_replay, subagent_with_start_ordinal  # noqa: E402

IMP = CodexImporter()
FIX = Path(__file__).parent / "fixtures" / "codex"
JSONL_FIXTURES = sorted(FIX.glob("rollout-*.jsonl"))
ALL_FIXTURES = sorted(FIX.glob("rollout-*"))
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
T0 = 1_779_271_200_000_000  # 2026-05-20T10:00:00Z in µs


# --------------------------------------------------------------------------------------------- generators


class Clock:
    def __init__(self) -> None:
        self.us = T0

    def tick(self, ms: int = 700) -> str:
        self.us += ms * 1000
        return us_to_iso(self.us)  # type: ignore[return-value]


TEXTS = st.sampled_from(["continue", "fix it", "run the tests", "ok", "why?", "ls", "Done.", "ça marche\u0085"])


def _env(ts: str | None, typ: str, payload: object) -> dict:
    rec = {"type": typ, "payload": payload}
    if ts is not None:
        rec = {"timestamp": ts, **rec}
    return rec


def _usage(draw) -> dict:
    return {"input_tokens": draw(st.integers(100, 9000)), "cached_input_tokens": draw(st.integers(0, 100)),
            "output_tokens": draw(st.integers(1, 900)), "reasoning_output_tokens": draw(st.integers(0, 50))}  # fmt: skip


def _add(a: dict | None, b: dict) -> dict:
    return dict(b) if a is None else {k: a[k] + b[k] for k in b}


@st.composite
def assistant_items(draw, n_call: list[int], native: bool) -> list[tuple[dict, dict | None]]:
    """One response's items: (item, its tool output to write after the token event, or None)."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["msg", "reasoning", "enc", "call", "custom", "shell", "search"]))
        n_call[0] += 1
        cid = f"call_{n_call[0]}"
        extra = {"id": f"x_{n_call[0]}"} if native and draw(st.booleans()) else {}
        if kind == "msg":
            out.append(({"type": "message", "role": "assistant",
                         "content": [{"type": "output_text", "text": draw(TEXTS)}], **extra}, None))  # fmt: skip
        elif kind == "reasoning":
            out.append(({"type": "reasoning", "summary": [{"type": "summary_text", "text": draw(TEXTS)}],
                         "encrypted_content": "enc", **extra}, None))  # fmt: skip
        elif kind == "enc":
            out.append(({"type": "reasoning", "summary": [], "encrypted_content": "enc"}, None))
        elif kind == "call":
            code = draw(st.sampled_from([0, 1]))
            out.append(({"type": "function_call", "name": "shell", "arguments": '{"command":["ls"]}', "call_id": cid, **extra},
                        {"type": "function_call_output", "call_id": cid,
                         "output": json.dumps({"output": "a\n", "metadata": {"exit_code": code}})}))  # fmt: skip
        elif kind == "custom":
            out.append(({"type": "custom_tool_call", "name": "apply_patch", "input": "*** Begin Patch", "call_id": cid},
                        {"type": "custom_tool_call_output", "call_id": cid, "output": "Exit code: 0\nOutput:\n"}))  # fmt: skip
        elif kind == "shell":
            out.append(({"type": "local_shell_call", "call_id": cid, "status": "completed",
                         "action": {"type": "exec", "command": ["pwd"]}},
                        {"type": "function_call_output", "call_id": cid, "output": [{"type": "input_text", "text": "/r"}]}))  # fmt: skip
        else:
            out.append(({"type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "q"}}, None))
    return out


@st.composite
def envelope_rollout(draw, order: str) -> bytes:
    clock = Clock()
    lines: list[dict | bytes] = []
    tid = "019e0000-0000-7000-8000-00000000000" + draw(st.sampled_from("abc"))
    paginated = draw(st.integers(0, 4)) == 0
    untimed = draw(st.integers(0, 3)) == 0  # header and first records without timestamps: rows are held
    meta = {"id": tid, "cwd": draw(st.sampled_from(["/r", "C:\\r", "rel"])), "originator": "codex_cli_rs",
            "cli_version": "0.0.0", "source": draw(st.sampled_from(["cli", {"subagent": "review"}]))}  # fmt: skip
    if paginated:
        meta["history_mode"] = "paginated"
    if not untimed:
        meta["timestamp"] = clock.tick()
    lines.append(_env(None if untimed else clock.tick(0), "session_meta", meta))
    if untimed:
        for _ in range(draw(st.integers(1, 2))):
            lines.append({"type": "response_item", "payload": {"type": "message", "role": "user", "content": draw(TEXTS)}})
    total = None
    copy = draw(st.sampled_from(["none", "none", "none", "fork", "subagent"]))
    if copy == "fork":  # a fork: the parent's session_meta and a replay of its history
        lines.append(_env(clock.tick(10), "session_meta", {"id": "parent-thread", "timestamp": "2026-05-19T00:00:00Z"}))
        fork_ts = clock.tick(20)
        pu = {"input_tokens": 50, "cached_input_tokens": 0, "output_tokens": 7, "reasoning_output_tokens": 0}
        total = pu
        lines += [
            _env(fork_ts, "response_item", {"type": "message", "role": "user", "content": "parent q", "id": "msg_p"}),
            _env(fork_ts, "response_item", {"type": "message", "role": "assistant", "content": "parent a", "id": "msg_pa"}),
            _env(fork_ts, "event_msg", {"type": "token_count", "info": {"total_token_usage": total, "last_token_usage": pu}}),
        ]
        clock.tick(3000)
    elif copy == "subagent":  # a spawned subagent: the parent's history copied below its own start ordinal
        if draw(st.booleans()):
            lines.append(_env(clock.tick(10), "session_meta", {"id": "parent-thread"}))
        pu = {"input_tokens": 50, "cached_input_tokens": 0, "output_tokens": 7, "reasoning_output_tokens": 0}
        total = pu
        lines += [  # (stamped over more than a second: the ordinal alone ends the copy)
            _env(clock.tick(600), "response_item", {"type": "message", "role": "user", "content": "parent q"}),
            _env(clock.tick(600), "response_item", {"type": "message", "role": "assistant", "content": "parent a",
                                                    "id": "msg_pa"}),
            _env(clock.tick(600), "event_msg", {"type": "token_count", "info": {"total_token_usage": total,
                                                                                "last_token_usage": pu}}),
        ]  # fmt: skip
    own_from = len(lines)
    n_call = [0]
    for turn in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            lines.append(_env(clock.tick(), "event_msg", {"type": "task_started", "turn_id": f"t{turn}"}))
        if draw(st.booleans()):
            lines.append(_env(clock.tick(), "turn_context", {"turn_id": f"t{turn}", "cwd": "/r/sub", "model": f"m{turn}",
                                                             "sandbox_policy": {"type": "read-only"}, "effort": "low"}))  # fmt: skip
        user_text = draw(TEXTS)
        lines.append(_env(clock.tick(), "response_item", {"type": "message", "role": "user",
                                                          "content": [{"type": "input_text", "text": user_text}]}))  # fmt: skip
        if paginated and draw(st.booleans()):
            lines.append(_env(clock.tick(), "event_msg", {"type": "item_completed", "item": {
                "type": "UserMessage", "id": f"u{turn}", "content": [{"type": "text", "text": user_text}]}}))
        for _ in range(draw(st.integers(1, 3))):
            items = draw(assistant_items(n_call, native=draw(st.booleans())))
            u = _usage(draw)
            total = _add(total, u)
            tc = {"type": "token_count", "info": {"total_token_usage": total}}
            if draw(st.integers(0, 4)) > 0:
                tc["info"]["last_token_usage"] = u
            if draw(st.integers(0, 3)) == 0:
                lines.append(_env(clock.tick(), "event_msg", {"type": "token_count", "info": None}))
            if order == "before":
                lines.append(_env(clock.tick(), "event_msg", tc))
            for item, _out in items:
                lines.append(_env(clock.tick(), "response_item", item))
                if paginated and item.get("type") == "message" and draw(st.booleans()):
                    lines.append(_env(clock.tick(), "event_msg", {"type": "item_completed", "item": {
                        "type": "AgentMessage", "id": "a", "content": [{"type": "Text", "text": item["content"][0]["text"]}]}}))
            if order == "after":
                lines.append(_env(clock.tick(), "event_msg", tc))
            for _item, out in items:
                if out is not None:
                    lines.append(_env(clock.tick(), "response_item", out))
                    if draw(st.booleans()):
                        lines.append(_env(clock.tick(), "event_msg", {**tc}))  # re-emit after a tool output
            extra = draw(st.integers(0, 12))
            if extra == 0:
                lines.append(b"{not json")
            elif extra == 1:
                lines.append(b"")
            elif extra == 2:
                lines.append(_env(clock.tick(), "event_msg", {"type": "error", "message": "boom"}))
            elif extra == 3:
                lines.append(_env(clock.tick(), "world_state", {"x": 1}))
            elif extra == 4 and order == "after":
                # an assistant message with no token_count after it: released by the next boundary
                lines.append(_env(clock.tick(), "response_item", {"type": "message", "role": "assistant", "content": "tail"}))
        end = draw(st.sampled_from(["complete", "aborted", "none", "compacted"]))
        if end == "complete":
            lines.append(_env(clock.tick(), "event_msg", {"type": "task_complete", "turn_id": f"t{turn}"}))
        elif end == "aborted":
            lines.append(_env(clock.tick(), "event_msg", {"type": "turn_aborted", "reason": "interrupted"}))
        elif end == "compacted":
            if draw(st.booleans()):  # the compaction's own request (codex.md §6.2): its usage goes on the row
                cu = _usage(draw)
                total = _add(total, cu)
                if order == "after" and draw(st.booleans()):
                    lines.append(_env(clock.tick(), "turn_context", {"turn_id": f"t{turn}", "model": f"c{turn}"}))
                lines.append(_env(clock.tick(), "event_msg", {"type": "token_count",
                                                              "info": {"total_token_usage": total, "last_token_usage": cu}}))
            reemit = _env(clock.tick(), "event_msg", {"type": "token_count", "info": {"total_token_usage": total}})
            where = draw(st.sampled_from(["none", "before", "after"]))  # the recompute re-emit, if any
            lines += [reemit] if where == "before" else []
            lines.append(_env(clock.tick(), "compacted", {"message": "summary", "window_number": turn}))
            lines += [reemit] if where == "after" else []
    if copy == "subagent":  # paginated history: every record carries its ordinal
        for n, rec in enumerate(r for r in lines if isinstance(r, dict)):
            rec["ordinal"] = n
        meta["subagent_history_start_ordinal"] = lines[own_from]["ordinal"]  # type: ignore[index]
    crlf = draw(st.booleans())
    out = bytearray()
    for rec in lines:
        raw = rec if isinstance(rec, bytes) else json.dumps(rec, ensure_ascii=False).encode()
        out += raw + (b"\r\n" if crlf and raw else b"\n")
    return bytes(out)


@st.composite
def early_rollout(draw) -> bytes:
    lines: list[dict] = []
    if draw(st.integers(0, 4)) > 0:
        lines.append({"id": "early-thread", "timestamp": "2025-07-01T10:00:00.000Z", "instructions": None,
                      "git": {"branch": "main", "repository_url": "https://u:p@h/x.git"}})  # fmt: skip
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["state", "user", "assistant", "reasoning", "call", "output"]))
        ident = draw(st.sampled_from([None, "", f"msg_{i}"]))
        if kind == "state":
            lines.append({"record_type": "state"})
        elif kind in ("user", "assistant"):
            lines.append({"type": "message", "id": ident, "role": kind, "content": [{"type": "input_text", "text": draw(TEXTS)}]})
        elif kind == "reasoning":
            lines.append({"type": "reasoning", "id": ident, "summary": [{"type": "summary_text", "text": draw(TEXTS)}]})
        elif kind == "call":
            lines.append({"type": "function_call", "id": ident, "name": "shell", "arguments": "{}", "call_id": f"c{i}"})
        else:
            lines.append({"type": "function_call_output", "call_id": f"c{i - 1}", "output": "ok"})
        if draw(st.integers(0, 6)) == 0:  # a later header with a timestamp, releasing any held rows
            lines.append({"id": "late", "timestamp": "2025-07-01T10:05:00Z"})
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


@st.composite
def legacy_document(draw) -> bytes:
    items = []
    for i in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["resp", "chat_user", "chat_tools", "tool", "junk"]))
        if kind == "resp":
            items.append({"type": "message", "role": draw(st.sampled_from(["user", "assistant"])), "content": draw(TEXTS)})
        elif kind == "chat_user":
            items.append({"role": "user", "content": draw(TEXTS)})
        elif kind == "chat_tools":
            items.append({"role": "assistant", "content": draw(TEXTS),
                          "tool_calls": [{"id": f"c{i}", "function": {"name": "shell", "arguments": "{}"}}]})  # fmt: skip
        elif kind == "tool":
            items.append({"role": "tool", "tool_call_id": f"c{i - 1}", "content": "ok"})
        else:
            items.append(draw(st.sampled_from([1, "x", {"no": "type"}])))
    session = {"id": "legacy", "model": "o4-mini"}
    if draw(st.booleans()):
        session["timestamp"] = "2025-04-01T00:00:00Z"
    return json.dumps({"session": session, "items": items}, indent=draw(st.sampled_from([None, 2]))).encode()


# --------------------------------------------------------------------------------------------- checks


def _write(tmp, data: bytes, name: str = "rollout-2026-05-20T10-00-00-gen.jsonl") -> Path:
    path = Path(tmp) / name
    path.write_bytes(data)
    return path


def _line_starts(data: bytes) -> list[int]:
    return [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A]


def _check_split(path: Path, cuts: list[int]) -> None:
    whole, whole_stats = import_file(IMP, path)
    pieces, piece_stats = import_file(IMP, path, pieces=cuts)
    assert rows_multiset(pieces) == rows_multiset(whole)
    # each line is counted once, in the pass that consumes it (schema.md §3.2 rule 3, §7)
    assert counts(piece_stats) == counts(whole_stats)
    # every row-less line has exactly one reason, but for lines whose rows are not out yet: held for a
    # timestamp, or the last message, a candidate that waits for its token count in the parser state
    last = list(FilePass(IMP, source_file_for(IMP, path), None, Window(), ParseStats()).batches())[-1]
    pending = (loads_state(last.update.entry.parser_state) or {}).get("candidate") if last.update else None
    if not whole_stats.rows_held and not pending:
        assert sum(whole_stats.lines_skipped.values()) == lines_without_rows(path.read_bytes(), whole)
    frame_from_rows(whole)


def _cuts(draw, data: bytes) -> list[int]:
    anywhere = draw(st.lists(st.integers(0, len(data)), max_size=5))
    at_lines = draw(st.lists(st.sampled_from(_line_starts(data)), max_size=5))
    return anywhere + at_lines


@SETTINGS
@given(data=st.data())
def test_envelope_after_order_split_equals_whole(tmp_path_factory, data):
    raw = data.draw(envelope_rollout("after"))
    _check_split(_write(tmp_path_factory.mktemp("a"), raw), _cuts(data.draw, raw))


@SETTINGS
@given(data=st.data())
def test_envelope_before_order_split_equals_whole(tmp_path_factory, data):
    raw = data.draw(envelope_rollout("before"))
    _check_split(_write(tmp_path_factory.mktemp("b"), raw), _cuts(data.draw, raw))


@SETTINGS
@given(data=st.data())
def test_early_jsonl_split_equals_whole(tmp_path_factory, data):
    raw = data.draw(early_rollout())
    _check_split(_write(tmp_path_factory.mktemp("e"), raw), _cuts(data.draw, raw))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=legacy_document())
def test_legacy_json_reimport_gives_the_same_rows(tmp_path_factory, doc):
    path = _write(tmp_path_factory.mktemp("l"), doc, "rollout-2025-04-01-legacy.json")
    first, _ = import_file(IMP, path)
    again, _ = import_file(IMP, path)
    assert rows_multiset(first) == rows_multiset(again)
    frame_from_rows(first)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_fixture_at_random_cut_points(tmp_path_factory, data):
    path = data.draw(st.sampled_from(ALL_FIXTURES))
    if path.name.endswith((".json", ".zst")):
        first, _ = import_file(IMP, path)
        again, _ = import_file(IMP, path)
        assert rows_multiset(first) == rows_multiset(again)
        return
    _check_split(path, _cuts(data.draw, path.read_bytes()))


def _passes_at_every_line(path: Path) -> tuple[list[dict], list[dict]]:
    """Grow a copy line by line (one pass per line, checkpoint carried); return the rows and every state."""
    import shutil
    import tempfile

    data = path.read_bytes()
    tmp = Path(tempfile.mkdtemp(prefix="hyp-codex-lines-"))
    try:
        copy = tmp / path.name
        copy.write_bytes(b"")
        src = source_file_for(IMP, path)
        file = source_file_for(IMP, copy, path_hash=src.path_hash)
        rows: list[dict] = []
        states: list[dict] = []
        cp: Checkpoint | None = None
        for cut in _line_starts(data)[1:] + ([len(data)] if not data.endswith(b"\n") else []):
            copy.write_bytes(data[:cut])
            for b in FilePass(IMP, file, cp, Window(), ParseStats()).batches():
                rows += b.rows
                if b.update is not None:
                    cp = b.update.entry
                    states.append(loads_state(cp.parser_state) or {})
        return rows, states
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_every_fixture_split_at_every_line_boundary_crosses_candidates_and_pending_usage():
    crossed = {"candidate": 0, "pending_usage": 0, "orphan_usage": 0, "replay": 0, "held": 0}
    for path in JSONL_FIXTURES:
        rows, states = _passes_at_every_line(path)
        whole, _ = import_file(IMP, path)
        assert rows_multiset(rows) == rows_multiset(whole), path.name
        for s in states:
            crossed["candidate"] += bool(s.get("candidate"))
            crossed["pending_usage"] += s.get("pending_usage") is not None
            crossed["orphan_usage"] += s.get("orphan_usage") is not None
            crossed["replay"] += bool(s.get("replay", {}).get("active"))
    assert all(crossed[k] > 0 for k in ("candidate", "pending_usage", "orphan_usage", "replay")), crossed


def test_a_copy_bounded_by_an_ordinal_and_a_replay_cut_short_split_at_every_line(tmp_path):
    """The ordinal that ends a subagent's copy of its parent's history, and the wait for the child's first own
    record after a replay cut short by time, live in the parser state: a pass per line gives the rows of one
    pass, with the parent's usage counted nowhere and the child's on its own message."""
    cases = (("rollout-s.jsonl", subagent_with_start_ordinal(copied_meta=True), "until", {"logs say X": 30}),
             ("rollout-f.jsonl", slow_fork_replay(), "awaiting_own", {"forty lines": 40}))  # fmt: skip
    for name, recs, key, usage in cases:
        path = _write(tmp_path, b"".join(json.dumps(r).encode() + b"\n" for r in recs), name)
        rows, states = _passes_at_every_line(path)
        whole, _ = import_file(IMP, path)
        assert rows_multiset(rows) == rows_multiset(whole), name
        assert {r["content_text"]: r.get("output_tokens") for r in rows if r.get("output_tokens") is not None} == usage
        assert any(s.get("replay", {}).get(key) for s in states), (name, key)  # a cut fell inside that state


def test_timestampless_first_lines_are_held_across_passes(tmp_path):
    lines = [{"type": "session_meta", "payload": {"id": "t"}},
             {"type": "response_item", "payload": {"type": "message", "role": "user", "content": "first"}},
             {"type": "response_item", "payload": {"type": "message", "role": "assistant", "content": "a"}},
             {"timestamp": "2026-05-20T10:00:05Z", "type": "event_msg", "payload": {"type": "task_complete"}}]  # fmt: skip
    data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    path = _write(tmp_path, data)
    rows, states = _passes_at_every_line(path)
    whole, _ = import_file(IMP, path)
    assert rows_multiset(rows) == rows_multiset(whole) and len(whole) == 2
    assert {r["message_created_at"] for r in whole} == {T0 + 5_000_000}
    assert {r["conversation_started_at"] for r in whole} == {T0 + 5_000_000}


@SETTINGS
@given(data=st.data())
def test_resuming_from_any_mid_file_batch_checkpoint(tmp_path_factory, data):
    """A crash after any committed batch (batch_rows=1): the rows committed so far plus a pass from that
    batch's checkpoint are exactly the one-shot rows."""
    raw = data.draw(envelope_rollout(data.draw(st.sampled_from(["after", "before"]))))
    path = _write(tmp_path_factory.mktemp("r"), raw)
    whole, _ = import_file(IMP, path)
    file = source_file_for(IMP, path)
    batches = list(FilePass(IMP, file, None, Window(), ParseStats(), batch_rows=1, chunk_size=64).batches())
    k = data.draw(st.integers(0, len(batches) - 1))
    done = [r for b in batches[: k + 1] for r in b.rows]
    cp = batches[k].update.entry
    rest = [r for b in FilePass(IMP, file, cp, Window(), ParseStats()).batches() for r in b.rows]
    assert rows_multiset(done + rest) == rows_multiset(whole)
