"""The Claude Code importer against the fixture transcripts (claude.md §1-§11, schema.md).

Fixtures: tests/fixtures/claude/home (built by make_fixtures.py there). Every test asserts on rows."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

from hypaware_tui.core.reader import FilePass
from hypaware_tui.core.schema import COLUMN_NAMES, canonical_json, frame_from_rows, usage_view
from hypaware_tui.importers import get_importer
from hypaware_tui.importers.base import ParseStats, Window
from hypaware_tui.importers.claude import TOOL_MAP_CAP, ClaudeImporter

sys.path.insert(0, str(Path(__file__).parent))
from import_helpers import import_file, rows_multiset, source_file_for  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "claude"
HOME = FIX / "home"
PROJ = HOME / ".claude" / "projects"
sys.path.insert(0, str(FIX))
import make_fixtures as mk  # noqa: E402

MAIN = PROJ / "-Users-ada-repo" / f"{mk.S_MAIN}.jsonl"
SUB = PROJ / "-Users-ada-repo" / mk.S_MAIN / "subagents"
WORKED = PROJ / "-Users-ada-repo" / "worked-example.jsonl"
ODD = PROJ / "-Users-ada-odd"
U = mk.U

IMP = ClaudeImporter()


def us(iso: str) -> int:
    from hypaware_tui.core.timeutil import parse_iso_us

    v = parse_iso_us(iso)
    assert v is not None
    return v


def load(path: Path, **kw) -> tuple[list[dict], ParseStats]:
    rows, stats = import_file(IMP, path, **kw)
    frame_from_rows(rows)  # every row validates against the 64-column schema, no null in a non-null column
    return rows, stats


def by_id(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["message_id"], []).append(r)
    for parts in out.values():
        parts.sort(key=lambda r: r["part_index"])
    return out


def line_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    offs, pos = [], 0
    for line in data.split(b"\n")[:-1]:
        offs.append(pos)
        pos += len(line) + 1
    return offs


def attrs(r: dict) -> dict:
    return json.loads(r["attributes"])


def usage_rows(rows: list[dict]) -> pl.DataFrame:
    return usage_view(frame_from_rows(rows).lazy()).collect()


def assert_chain(rows: list[dict]) -> None:
    """Per thread: ordinals 0..n-1 and previous_message_id naming the message of ordinal-1."""
    threads: dict[tuple, dict[int, str]] = {}
    for r in rows:
        scope = (r["conversation_id"], r["agent_id"])
        threads.setdefault(scope, {})[r["message_index"]] = r["message_id"]
    for r in rows:
        ids = threads[(r["conversation_id"], r["agent_id"])]
        assert sorted(ids) == list(range(len(ids)))
        i = r["message_index"]
        assert r["previous_message_id"] == ("[]" if i == 0 else canonical_json([ids[i - 1]]))
        assert r["part_id"] == f"{r['message_id']}#{r['part_index']}"


# --------------------------------------------------------------------------------------------- §10


def test_worked_example_exactly():
    rows, stats = load(WORKED)
    assert [(r["message_id"], r["message_index"], r["part_index"]) for r in rows] == [
        ("u1", 0, 0), ("a1", 1, 0), ("a2", 2, 0), ("r1", 3, 0)]
    started = us("2026-05-20T10:00:00Z")
    for r in rows:
        assert r["session_id"] == r["conversation_id"] == "s1"
        assert (r["cwd"], r["git_branch"], r["client_version"]) == ("/home/ada/repo", "main", "2.1.92")
        assert r["conversation_started_at"] == started and r["date"] == "2026-05-20"
        assert (r["provider"], r["client_name"], r["conversation_source"], r["record_format"]) == (
            "anthropic", "claude", "claude", "claude-jsonl")
        assert r["schema_version"] == 1 and attrs(r) == {"gateway": {"identity_source": "native"}}
        assert r["provider_uuid"] == r["message_id"]
    u1, a1, a2, r1 = rows
    assert (u1["role"], u1["part_type"], u1["content_text"], u1["previous_message_id"]) == (
        "user", "text", "list the files", "[]")
    assert u1.get("api_message_id") is None and u1.get("input_tokens") is None and u1.get("model") is None
    assert (a1["role"], a1["part_type"], a1["content_text"]) == ("assistant", "text", "Running ls.")
    assert (a1["api_message_id"], a1["request_id"], a1["model"]) == ("msg_1", "req_1", "claude-opus-4-6")
    assert (a1["input_tokens"], a1["output_tokens"], a1["cache_read_tokens"], a1["cache_write_tokens"]) == (
        3, 1, 9000, 200)
    assert a1.get("finish_reason") is None and a1["previous_message_id"] == '["u1"]'
    assert (a2["part_type"], a2["tool_name"], a2["tool_call_id"], a2["tool_args"]) == (
        "tool_call", "Bash", "toolu_1", '{"command":"ls"}')
    assert a2.get("content_text") is None
    assert (a2["api_message_id"], a2["request_id"]) == ("msg_1", "req_1")
    assert (a2["input_tokens"], a2["output_tokens"], a2["cache_read_tokens"], a2["cache_write_tokens"]) == (
        3, 48, 9000, 200)
    assert a2["finish_reason"] == "tool_use" and a2["previous_message_id"] == '["a1"]'
    assert (r1["role"], r1["part_type"], r1["content_text"]) == ("user", "tool_result", "README.md\nsrc")
    assert (r1["tool_name"], r1["tool_call_id"], r1["tool_result_for"]) == ("Bash", "toolu_1", "toolu_1")
    assert r1["source_tool_assistant_uuid"] == "a2" and r1["previous_message_id"] == '["a2"]'
    assert json.loads(r1["status"]) == {"tool_status": "success"}
    assert r1.get("input_tokens") is None
    assert stats.lines_skipped == {"not_a_message": 1}
    assert stats.records_by_type == {"user": 2, "assistant": 2, "file-history-snapshot": 1}
    assert [r["source_offset"] for r in rows] == line_offsets(WORKED)[:4]
    assert json.loads(a2["raw_frame"]) == {
        "uuid": "a2", "parentUuid": "a1", "type": "assistant", "message": {"id": "msg_1"}, "requestId": "req_1",
        "timestamp": "2026-05-20T10:00:05.000Z"}
    assert json.loads(u1["raw_frame"]) == {"uuid": "u1", "type": "user", "timestamp": "2026-05-20T10:00:00.000Z"}
    use = usage_rows(rows)
    assert use.height == 1
    u = use.row(0, named=True)
    assert (u["usage_key"], u["output_tokens"], u["message_id"], u["rows_collapsed"]) == ("msg_1:req_1", 48, "a2", 2)


# --------------------------------------------------------------------------------------------- 2.1.x session


@pytest.fixture(scope="module")
def main_rows():
    return load(MAIN)


def test_main_session_messages_and_parts(main_rows):
    rows, stats = main_rows
    m = by_id(rows)
    assert_chain(rows)
    assert len({r["session_id"] for r in rows}) == 1 and all(r["agent_id"] is None for r in rows)
    assert all(r["is_sidechain"] is False for r in rows)
    # message order and ids (non-message lines take no ordinal)
    order = [U(n) for n in (1, 3, 4, 5, 7, 8, 10, 11, 12, 15, 16, 17, 18, 19, 20, 21, 22, 23)]
    assert [mid for mid, _ in sorted(m.items(), key=lambda kv: kv[1][0]["message_index"])] == order
    shape = {mid: [p["part_type"] for p in parts] for mid, parts in m.items()}
    assert shape == {
        U(1): ["text"], U(3): ["reasoning"], U(4): ["text"], U(5): ["tool_call"], U(7): ["tool_result"],
        U(8): ["text"], U(10): ["image", "text"], U(11): ["tool_call", "tool_result", "text"],
        U(12): ["reasoning", "text"], U(15): ["text"], U(16): ["compaction"], U(17): ["text"],
        U(18): ["file", "text"], U(19): ["tool_call"], U(20): ["tool_result"], U(21): ["tool_call"],
        U(22): ["tool_result"], U(23): ["text"]}
    # thinking
    (th,) = m[U(3)]
    assert (th["content_text"], th["thinking_signature"], th["provider_subtype"]) == (
        "The user wants the flaky test.", "EqQBsig==", "thinking")
    # tool result text keeps U+2028 and U+0085; its tool name is looked up
    (res,) = m[U(7)]
    assert res["content_text"] == "1\tdef test_login():\u2028\tassert ok\u0085# end"
    assert (res["tool_name"], res["tool_call_id"], res["tool_result_for"]) == ("Read", "toolu_01Read", "toolu_01Read")
    assert res["source_tool_assistant_uuid"] == U(5)
    # toolUseResult is never stored
    blob = json.dumps(rows)
    assert "numLines" not in blob and "totalTokens" not in blob
    # redacted thinking: no content, and the encrypted data is nowhere
    red, txt = m[U(12)]
    assert red.get("content_text") is None and red["provider_subtype"] == "redacted_thinking"
    assert "ENCRYPTED-SECRET-BYTES" not in blob
    assert (txt["finish_reason"], txt["output_tokens"], red.get("output_tokens")) == ("length", 30, None)
    # image and document bytes are never stored
    img, cap = m[U(10)]
    assert img.get("content_text") is None and img["provider_subtype"] == "image"
    assert mk.B64_PNG not in blob and mk.B64_PDF not in blob
    assert cap["content_text"] == (
        "the failure screenshot: data:image/png;base64,<omitted> and a blob "
        "data:application/octet-stream;base64,<omitted>")
    doc, ask = m[U(18)]
    assert doc["part_type"] == "file" and doc.get("content_text") is None and ask["content_text"] == (
        "and summarize this report")
    # server tool call, its result and the text in one line: tokens on the last part only
    call, sres, stext = m[U(11)]
    assert (call["tool_name"], call["tool_call_id"], call["provider_subtype"]) == (
        "web_search", "srvtoolu_01", "server_tool_use")
    assert call["tool_args"] == '{"query":"pytest flaky auth"}'
    assert (sres["tool_name"], sres["tool_result_for"], sres["provider_subtype"]) == (
        "web_search", "srvtoolu_01", "web_search_tool_result")
    assert sres.get("content_text") is None  # no text items in its content
    assert [r.get("output_tokens") for r in (call, sres, stext)] == [None, None, 40]
    assert stext["finish_reason"] == "stop" and call.get("finish_reason") is None
    # Agent spawn: caller type; a string input that is JSON is stored as that JSON
    (agent_call,) = m[U(19)]
    assert agent_call["caller_type"] == "direct"
    assert json.loads(agent_call["tool_args"])["subagent_type"] == "Explore"
    (bash_call,) = m[U(21)]
    assert bash_call["tool_args"] == '{"command":"pytest -x tests/test_auth.py"}'
    (agent_res,) = m[U(20)]
    assert agent_res["content_text"] == "Found 2 files\nagentId: a1b2c3d4e5f60718"
    assert agent_res["tool_name"] == "Agent"
    (err,) = m[U(22)]
    assert (err["is_error"], err["tool_name"], json.loads(err["status"])) == (True, "Bash", {"tool_status": "error"})
    assert "is_error" not in res or res["is_error"] is None
    # isMeta
    (meta,) = m[U(8)]
    assert attrs(meta) == {"claude": {"is_meta": True}, "gateway": {"identity_source": "native"}}
    assert all("is_meta" not in attrs(r).get("claude", {}) for r in rows if r["message_id"] != U(8))
    # per-line fields that change inside the file
    versions = {mid: parts[0]["client_version"] for mid, parts in m.items()}
    assert versions[U(15)] == "2.1.92" and versions[U(16)] == versions[U(23)] == "2.1.96"
    modes = {mid: parts[0]["permission_mode"] for mid, parts in m.items()}
    assert modes[U(1)] == "plan"  # from the permission-mode record: the line itself has none
    assert modes[U(17)] == "plan" and modes[U(18)] == modes[U(23)] == "acceptEdits"
    assert {r["user_type"] for r in rows if r["role"] != "system"} == {"external"}
    assert m[U(1)][0]["prompt_id"] == "p-0001"
    # models on assistant rows only
    assert {r["model"] for r in rows if r["role"] == "assistant" and r["message_id"] != U(15)} == {"claude-opus-4-6"}
    assert all(r.get("model") is None for r in rows if r["role"] != "assistant")
    # source offsets point at the line starts
    offs = line_offsets(MAIN)
    assert {r["source_offset"] for r in rows} <= set(offs)
    assert m[U(1)][0]["source_offset"] == offs[2]
    # raw_frame: ids, types, timestamp only
    for r in rows:
        frame = json.loads(r["raw_frame"])
        assert set(frame) <= {"uuid", "parentUuid", "type", "subtype", "message", "requestId", "timestamp"}
        assert len(r["raw_frame"]) < 300
    assert json.loads(m[U(16)][0]["raw_frame"]) == {
        "uuid": U(16), "type": "system", "subtype": "compact_boundary", "timestamp": mk.ts(60)}
    assert stats.rows_built == len(rows) == 23


def test_streamed_split_three_messages_one_response(main_rows):
    rows, _ = main_rows
    m = by_id(rows)
    split = [m[U(n)][0] for n in (3, 4, 5)]
    assert [r["message_index"] for r in split] == [1, 2, 3]
    assert {(r["api_message_id"], r["request_id"]) for r in split} == {("msg_01AAA", "req_01AAA")}
    assert [(r["input_tokens"], r["output_tokens"], r["cache_read_tokens"], r["cache_write_tokens"]) for r in split] == [
        (4, 7, 12000, 300), (4, 7, 12000, 300), (4, 121, 12000, 300)]
    assert [r.get("finish_reason") for r in split] == [None, None, "tool_use"]
    use = usage_rows(rows)
    one = use.filter(pl.col("usage_key") == "msg_01AAA:req_01AAA").to_dicts()
    assert len(one) == 1 and one[0]["output_tokens"] == 121 and one[0]["rows_collapsed"] == 3
    assert one[0]["message_id"] == U(5) and one[0]["total_tokens"] == 4 + 121 + 12000 + 300
    # the synthetic API-error line is not usage
    assert "msg_synth_1" not in set(use["api_message_id"].to_list())
    assert sorted(use["api_message_id"].to_list()) == [f"msg_01{c * 3}" for c in "ABCDEF"]


def test_api_error_line(main_rows):
    rows, _ = main_rows
    (e,) = by_id(rows)[U(15)]
    assert e["role"] == "assistant" and e.get("model") is None and e["is_error"] is True
    assert e["finish_reason"] == "error"
    assert attrs(e) == {"claude": {"api_error": True}, "gateway": {"identity_source": "native"}}
    status = json.loads(e["status"])
    assert status["error_code"] == "529" and status["error_message"].startswith("API Error: 529 {")
    assert (e["input_tokens"], e["output_tokens"], e["cache_read_tokens"], e["cache_write_tokens"]) == (0, 0, 0, 0)
    assert e["api_message_id"] == "msg_synth_1" and e.get("request_id") is None


def test_compaction_generation_2(main_rows):
    rows, stats = main_rows
    m = by_id(rows)
    (b,) = m[U(16)]
    assert (b["role"], b["part_type"], b["part_index"], b["content_text"]) == (
        "system", "compaction", 0, "Conversation compacted")
    assert (b["provider_type"], b["provider_subtype"]) == ("system", "compact_boundary")
    assert b["logical_parent_uuid"] == U(15) and b.get("parent_uuid") is None
    assert b["compact_metadata"] == '{"note":null,"preTokens":155123,"trigger":"auto"}'  # native nulls kept
    assert b["previous_message_id"] == canonical_json([U(15)]) and b["message_index"] == 10
    (s,) = m[U(17)]
    assert s["is_compact_summary"] is True and s["role"] == "user" and s["previous_message_id"] == canonical_json([U(16)])
    assert all(r.get("is_compact_summary") is None for r in rows if r["message_id"] != U(17))
    assert stats.records_by_type["system/compact_boundary"] == 1


def test_compaction_generation_1_and_summary_only():
    rows, stats = load(PROJ / "-Users-ada-legacy" / f"{mk.S_OLD}.jsonl")
    assert stats.records_by_type["summary"] == 2 and stats.lines_skipped == {"not_a_message": 2}
    m = by_id(rows)
    (cs,) = m[U(6, "1000")]
    assert cs["is_compact_summary"] is True and cs.get("parent_uuid") is None
    assert all(r["part_type"] != "compaction" for r in rows)
    rows, stats = load(PROJ / "-Users-ada-legacy" / f"{mk.S_SUM}.jsonl")
    assert rows == [] and stats.lines_skipped == {"not_a_message": 2} and stats.records_by_type == {"summary": 2}


def test_several_client_versions_in_one_file():
    rows, _ = load(PROJ / "-Users-ada-legacy" / f"{mk.S_OLD}.jsonl")
    seen = [(r["message_index"], r["client_version"]) for r in rows if r["part_index"] == 0]
    assert seen == [(0, "1.0.34"), (1, "1.0.34"), (2, "1.0.34"), (3, "1.0.34"), (4, "1.0.34"),
                    (5, "1.0.35"), (6, "1.0.35")]
    rows, _ = load(MAIN)
    assert {r["client_version"] for r in rows} == {"2.1.92", "2.1.96"}


def test_legacy_multi_block_line_and_inline_side_chain():
    rows, _ = load(PROJ / "-Users-ada-legacy" / f"{mk.S_OLD}.jsonl")
    m = by_id(rows)
    text, call = m[U(2, "1000")]
    assert (text["part_id"], call["part_id"]) == (f"{U(2, '1000')}#0", f"{U(2, '1000')}#1")
    assert text.get("output_tokens") is None and call["output_tokens"] == 70 and call["input_tokens"] == 12
    assert call.get("cache_read_tokens") == 0 and call["model"] == "claude-sonnet-4-20250514"
    # layout (a): inline side chain, no agentId -> agent_id null, is_sidechain true, the main thread
    side = [r for r in rows if r["is_sidechain"]]
    assert {r["message_id"] for r in side} == {U(3, "1000"), U(4, "1000")}
    assert all(r["agent_id"] is None for r in rows)
    assert [r["message_index"] for r in side] == [2, 3]
    assert_chain(rows)
    (res,) = m[U(5, "1000")]
    assert res["tool_name"] == "Edit" and res["is_sidechain"] is False
    assert all(r.get("git_branch") is None for r in rows)  # 1.0.x lines had no gitBranch


# --------------------------------------------------------------------------------------------- subagents


def test_nested_subagent_with_sidecar():
    rows, stats = load(SUB / f"agent-{mk.AGENT_C}.jsonl")
    assert stats.records_by_type["agent-setting"] == 1 and stats.lines_skipped == {"not_a_message": 1}
    assert len(rows) == 4
    for r in rows:
        assert (r["session_id"], r["conversation_id"], r["agent_id"], r["is_sidechain"]) == (
            mk.S_MAIN, mk.S_MAIN, mk.AGENT_C, True)
        assert attrs(r) == {"claude": {"agent_type": "Explore", "spawned_by_tool_use_id": "toolu_01Agent"},
                            "gateway": {"identity_source": "native"}}
    assert_chain(rows)
    assert [r["model"] for r in rows if r["role"] == "assistant"] == ["claude-haiku-4-5"] * 2
    assert by_id(rows)[U(3, "c0c0")][0]["tool_name"] == "Glob"


def test_compaction_agent_without_sidecar():
    rows, _ = load(SUB / f"agent-{mk.AGENT_COMPACT}.jsonl")
    assert [r["agent_id"] for r in rows] == [mk.AGENT_COMPACT] * 2
    assert all(attrs(r) == {"gateway": {"identity_source": "native"}} for r in rows)


def test_sibling_agent_files_layout_b():
    d = PROJ / "-Users-ada-repo20"
    no_id, _ = load(d / f"agent-{mk.AGENT_B1}.jsonl")
    with_id, _ = load(d / f"agent-{mk.AGENT_B2}.jsonl")
    assert {r["agent_id"] for r in no_id} == {mk.AGENT_B1}  # from the file name
    assert {r["agent_id"] for r in with_id} == {mk.AGENT_B2}
    assert {r["session_id"] for r in no_id + with_id} == {mk.S_20}
    assert all(r["is_sidechain"] is True for r in no_id + with_id)
    main, _ = load(d / f"{mk.S_20}.jsonl")
    assert {r["agent_id"] for r in main} == {None}
    # three threads of one session, each with its own ordinals
    assert [r["message_index"] for r in no_id] == [0, 1] and [r["message_index"] for r in with_id] == [0, 1]


def test_is_sidechain_line_value_wins_and_file_default():
    lines = [
        {"type": "user", "sessionId": "s", "uuid": "x1", "timestamp": "2026-05-20T10:00:00Z", "isSidechain": False,
         "message": {"role": "user", "content": "explicit false"}},
        {"type": "user", "sessionId": "s", "uuid": "x2", "timestamp": "2026-05-20T10:00:01Z", "isSidechain": "yes",
         "message": {"role": "user", "content": "not a boolean"}},
    ]
    rows = _rows_from_lines(lines, "agent-zz9.jsonl")
    assert [(r["is_sidechain"], r["agent_id"]) for r in rows] == [(False, "zz9"), (True, "zz9")]
    rows = _rows_from_lines(lines, "plain.jsonl")
    assert [(r["is_sidechain"], r["agent_id"]) for r in rows] == [(False, None), (None, None)]


def test_sidecar_is_captured_once_per_checkpoint(tmp_path):
    d = tmp_path / "s" / "subagents"
    d.mkdir(parents=True)
    name = f"agent-{mk.AGENT_C}"
    data = (SUB / f"{name}.jsonl").read_bytes()
    shutil.copy(SUB / f"{name}.meta.json", d / f"{name}.meta.json")
    f = d / f"{name}.jsonl"
    cut = line_offsets(SUB / f"{name}.jsonl")[3]
    f.write_bytes(data[:cut])
    src = source_file_for(IMP, f)
    rows1, cp = _pass(src, None)
    assert cp is not None and json.loads(cp.parser_state)["sidecar"] == {
        "agentType": "Explore", "toolUseId": "toolu_01Agent"}
    (d / f"{name}.meta.json").write_text('{"agentType":"Changed","toolUseId":"toolu_other"}')
    with open(f, "ab") as fh:
        fh.write(data[cut:])
    rows2, cp2 = _pass(src, cp)
    assert len(rows1) == 2 and len(rows2) == 2
    assert {r["attributes"] for r in rows1 + rows2} == {
        '{"claude":{"agent_type":"Explore","spawned_by_tool_use_id":"toolu_01Agent"},'
        '"gateway":{"identity_source":"native"}}'}
    # a reset (no checkpoint) captures the sidecar again
    rows3, _ = _pass(src, None)
    assert {attrs(r)["claude"]["agent_type"] for r in rows3} == {"Changed"}
    # a sidecar that is absent, or not JSON, is captured as null
    (d / f"{name}.meta.json").write_text("{not json")
    rows4, cp4 = _pass(src, None)
    assert json.loads(cp4.parser_state)["sidecar"] is None and "claude" not in attrs(rows4[0])


def test_aside_question_replay_never_duplicates_or_double_counts(tmp_path):
    from hypaware_tui.core.dataset import scan_messages
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.storage import Storage

    main, _ = load(MAIN)
    aside, _ = load(SUB / f"agent-{mk.AGENT_ASIDE}.jsonl")
    replayed = {U(1), U(4), U(5)}
    assert {r["message_id"] for r in aside} >= replayed
    results = {}
    for order in ("main-first", "aside-first"):
        layout = Layout(tmp_path / order)
        batches = [main, aside] if order == "main-first" else [aside, main]
        with Storage(layout) as storage:
            written = [storage.commit([dict(r) for r in b], []).rows_written for b in batches]
        df = scan_messages(layout).collect()
        assert df["part_id"].n_unique() == df.height  # no duplicate part_id
        assert df.height == len({r["part_id"] for r in main + aside}) == sum(written)
        use = usage_view(scan_messages(layout)).collect()
        assert use["usage_key"].n_unique() == use.height
        # every API response counts at most once across the two files
        assert use.filter(pl.col("api_message_id") == "msg_01AAA").height == 1
        results[order] = use
    first = results["main-first"].filter(pl.col("api_message_id") == "msg_01AAA").row(0, named=True)
    assert (first["output_tokens"], first["is_sidechain"], first["message_id"]) == (121, False, U(5))
    # the side question's own response counts in both orders
    for use in results.values():
        own = use.filter(pl.col("api_message_id") == "msg_04AAA").to_dicts()
        assert len(own) == 1 and own[0]["output_tokens"] == 6 and own[0]["agent_id"] == mk.AGENT_ASIDE


def test_a_response_replayed_whole_by_a_side_question_counts_once_when_the_side_question_comes_first(tmp_path):
    """When the side question's file replays every line of a parent response (same uuids, the last one under
    its own request id) and is imported first, the parent's lines are duplicates: the response is stored only as
    side-chain copies, under two request ids. It counted twice (`msg:req` and `msg:req_btw`); claude.md §11
    asks for no double-counted tokens whichever file is imported first."""
    from hypaware_tui.core.dataset import scan_messages
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.query import overview
    from hypaware_tui.core.storage import Storage

    main, _ = load(MAIN)
    aside, _ = load(SUB / f"agent-{mk.AGENT_ASIDE}.jsonl")
    main = [r for r in main if r["message_id"] != U(3)]  # the parent's lines of the response: all replayed
    counted = {}
    for order in ("main-first", "aside-first"):
        layout = Layout(tmp_path / order)
        with Storage(layout) as storage:
            for batch in ([main, aside] if order == "main-first" else [aside, main]):
                storage.commit([dict(r) for r in batch], [])
        use = usage_view(scan_messages(layout)).collect().filter(pl.col("api_message_id") == "msg_01AAA")
        assert use.height == 1, (order, use.select("usage_key", "is_sidechain", "output_tokens").rows())
        assert use["output_tokens"].to_list() == [121]
        ov = overview(layout, days=0)
        counted[order] = sum(m.output_tokens or 0 for m in ov.models)
    assert counted["aside-first"] == counted["main-first"], counted


def test_a_subagents_own_response_keeps_the_spec_usage_key(tmp_path):
    """schema.md §6.2 rule 3 keys a response `api_message_id:request_id`. Only a side-chain response stored under
    several request ids (a replay, above) is keyed by its api id alone; a subagent's own response, side-chain
    only, kept rule 3's key before that change and keeps it."""
    from hypaware_tui.core.dataset import scan_messages
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.storage import Storage

    aside, _ = load(SUB / f"agent-{mk.AGENT_ASIDE}.jsonl")
    layout = Layout(tmp_path / "h")
    with Storage(layout) as storage:
        storage.commit([dict(r) for r in aside], [])
    use = usage_view(scan_messages(layout)).collect()
    own = use.filter(pl.col("api_message_id") == "msg_04AAA").to_dicts()
    assert [(u["usage_key"], u["key_kind"]) for u in own] == [("msg_04AAA:req_04AAA", "api_message_id+request_id")]
    replay = use.filter(pl.col("api_message_id") == "msg_01AAA").to_dicts()
    assert [(u["usage_key"], u["key_kind"]) for u in replay] == [("msg_01AAA", "api_message_id")]


# --------------------------------------------------------------------------------------------- record types


def test_non_message_records_are_counted_per_type():
    stats = ParseStats()
    total_rows = 0
    for p in (MAIN, SUB / f"agent-{mk.AGENT_C}.jsonl", ODD / "teleported-only.jsonl"):
        rows, s = load(p)
        stats.merge(s)
        total_rows += len(rows)
        assert all(r["provider_type"] in ("user", "assistant", "system") for r in rows)
    for typ in ("file-history-snapshot", "queue-operation", "progress", "permission-mode", "teleported-from",
                "agent-setting", "attachment", "last-prompt", "ai-title", "custom-title", "pr-link",
                "worktree-state", "tool_use", "tool_result", "brand-new-record-2027", "system/turn_duration",
                "system/api_error"):
        assert stats.records_by_type[typ] == 1, typ
    rows, s = load(MAIN)
    non_msg = 33 - 18  # lines in the file minus message lines
    assert s.lines_skipped == {"not_a_message": non_msg}
    assert sum(s.records_by_type.values()) == 33


def test_message_line_shapes():
    lines = [
        {"sessionId": "s", "uuid": "n1", "timestamp": "2026-05-20T10:00:00Z",
         "message": {"role": "user", "content": "no type field"}},
        {"type": "assistant", "sessionId": "s", "uuid": "n2", "timestamp": "2026-05-20T10:00:01Z",
         "message": {"content": [{"type": "text", "text": "no role: role = type"}]}},
        {"type": "progress", "sessionId": "s", "uuid": "n3", "timestamp": "2026-05-20T10:00:02Z",
         "data": {"message": {"role": "user", "content": "nested message is not a message"}}},
        {"type": "user", "sessionId": "s", "uuid": "n4", "timestamp": "2026-05-20T10:00:03Z",
         "message": {"role": "user", "content": "snake", "id": ""}, "parent_uuid": "n2", "request_id": "r",
         "prompt_id": "p", "logical_parent_uuid": "l", "source_tool_assistant_uuid": "a", "userType": ""},
        {"type": "system", "sessionId": "s", "timestamp": "2026-05-20T10:00:04Z", "content": "plain"},
        {"type": "user", "sessionId": "s", "uuid": "n5", "timestamp": "2026-05-20T10:00:05Z",
         "message": {"role": "tool", "content": [{"type": "mystery_block", "text": "kept", "x": 1},
                                                 {"type": "audio_x"}]}},
    ]
    rows, stats = _rows_from_lines(lines, "shapes.jsonl", stats=True)
    m = by_id(rows)
    assert m["n1"][0]["role"] == "user" and m["n1"][0].get("provider_type") is None
    assert m["n2"][0]["role"] == "assistant" and m["n2"][0]["content_text"] == "no role: role = type"
    assert "n3" not in m
    n4 = m["n4"][0]
    assert (n4["parent_uuid"], n4["request_id"], n4["prompt_id"], n4["logical_parent_uuid"],
            n4["source_tool_assistant_uuid"]) == ("n2", "r", "p", "l", "a")
    assert n4.get("api_message_id") is None and n4.get("user_type") is None
    a, b = m["n5"]
    assert (a["role"], a["part_type"], a["content_text"], a["provider_subtype"]) == (
        "tool", "mystery_block", "kept", "mystery_block")
    assert (b["part_type"], b.get("content_text")) == ("audio_x", None)
    assert stats.records_by_type == {"unknown": 1, "assistant": 1, "progress": 1, "user": 2, "system": 1}
    assert stats.lines_skipped == {"not_a_message": 2}


def test_unknown_shapes_are_counted_and_never_cost_valid_lines():
    rows, stats = load(ODD / "unknown-shapes.jsonl")
    m = by_id(rows)
    assert m[U(1, "9f00")][0]["content_text"] == "valid first"
    assert m[U(11, "9f00")][0]["content_text"] == "valid last"
    # malformed: the lines that are not JSON objects ([1, 2, 3], null, NaN, too deep); a `message` that is a string
    # is a valid object that carries no message (schema.md §7)
    assert stats.lines_skipped == {"malformed": 4, "empty_content": 1, "not_a_message": 3}
    # usage as a list, model as a number, id as a number, stop_reason as an object: the text survives
    (u4,) = m[U(4, "9f00")]
    assert u4["content_text"] == "usage is a list" and u4.get("model") is None and u4.get("api_message_id") is None
    assert u4.get("finish_reason") is None and u4.get("output_tokens") is None
    # a timestamp object is unparseable: inherited from the line before
    (u5,) = m[U(5, "9f00")]
    assert u5["message_created_at"] == us(mk.ts(3)) and attrs(u5)["gateway"]["timestamp_source"] == "inherited_earlier"
    # odd blocks
    assert [(r["part_type"], r.get("content_text")) for r in m[U(6, "9f00")]] == [
        ("unknown", "block without type"), ("unknown", "numeric type"), ("tool_result", '{"a":1}')]
    tr = m[U(6, "9f00")][2]
    assert tr.get("tool_call_id") is None and tr.get("is_error") is None
    call, think = m[U(7, "9f00")]
    assert call["tool_args"] == '"not json {"' and think.get("thinking_signature") is None
    assert (think.get("input_tokens"), think.get("output_tokens"), think.get("cache_read_tokens"),
            think.get("cache_write_tokens")) == (None, None, None, -1)
    # a 300-deep tool input is kept as canonical JSON
    (deep,) = m[U(12, "9f00")]
    assert deep["tool_args"].startswith('{"k":{"k":') and deep["tool_args"].count("{") == 300
    # epoch-ms far out of range is unparseable too
    (u8,) = m[U(8, "9f00")]
    assert attrs(u8)["gateway"]["timestamp_source"] == "inherited_earlier"
    # every line has a key (claude.md §3): the typeless object, and the lines that are not JSON objects
    # ([1, 2, 3], null, the NaN line, the line nested too deep to parse)
    assert stats.records_by_type["unknown"] == 5 and stats.records_by_type["system"] == 1
    assert sum(stats.records_by_type.values()) == len(ODD.joinpath("unknown-shapes.jsonl").read_bytes().splitlines())


def test_odd_files_import_cleanly():
    for name in ("empty.jsonl", "teleported-only.jsonl"):
        rows, stats = load(ODD / name)
        assert rows == [] and sum(stats.lines_skipped.values()) == (0 if name == "empty.jsonl" else 1)
        assert stats.lines_skipped.get("malformed", 0) == 0
    rows, stats = load(ODD / "pretty.jsonl")
    nonblank = [ln for ln in (ODD / "pretty.jsonl").read_bytes().split(b"\n") if ln.strip()]
    assert rows == [] and stats.lines_skipped == {"malformed": len(nonblank)}


def test_no_session_id():
    rows, stats = load(ODD / "no-session.jsonl")
    assert [r["message_id"] for r in rows] == [U(2, "9800"), U(3, "9800")]
    assert rows[1]["session_id"] == mk.S_ODD  # the last one seen earlier in the file
    assert stats.lines_skipped == {"no_session_id": 2, "empty_content": 2}
    assert [r["message_index"] for r in rows] == [0, 1]


def test_a_line_the_parser_fails_on_is_counted_malformed_and_its_neighbours_kept(tmp_path, monkeypatch):
    """schema.md §7: bad input is counted with a reason, never a crash, and never costs the rows around it. A
    line of a shape the parser did not foresee (here: building its raw frame raises) is counted `malformed`;
    the lines before and after it give their rows. Uncounted, the line vanished from the summary."""
    from hypaware_tui.importers import claude as claude_mod

    lines = [
        {"type": "user", "sessionId": mk.S_ODD, "uuid": f"u{i}", "timestamp": f"2026-05-01T10:00:0{i}Z",
         "message": {"role": "user", "content": f"prompt {i}"}}
        for i in range(1, 4)
    ]  # fmt: skip
    path = tmp_path / f"{mk.S_ODD}.jsonl"
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    real = claude_mod._raw_frame

    def fails_on_u2(obj, api_id):
        if obj.get("uuid") == "u2":
            raise KeyError("an unforeseen shape")
        return real(obj, api_id)

    monkeypatch.setattr(claude_mod, "_raw_frame", fails_on_u2)
    rows, stats = load(path)
    assert [(r["provider_uuid"], r["content_text"]) for r in rows] == [("u1", "prompt 1"), ("u3", "prompt 3")]
    assert {k: v for k, v in stats.lines_skipped.items() if v} == {"malformed": 1}


# --------------------------------------------------------------------------------------------- reading


def test_truncated_last_line_waits_then_imports_once(tmp_path):
    src_path = ODD / "truncated.jsonl"
    data = src_path.read_bytes()
    assert not data.endswith(b"\n")
    f = tmp_path / "t.jsonl"
    f.write_bytes(data)
    src = source_file_for(IMP, f)
    rows1, cp = _pass(src, None)
    assert [r["message_id"] for r in rows1] == [U(1, "9a00"), U(2, "9a00")]
    assert cp.offset == data.rfind(b"\n") + 1
    # the rest of the line arrives
    full = mk.dumps(mk.Env(mk.S_ODD, "2.1.92", "/Users/ada/odd").user(
        U(3, "9a00"), U(2, "9a00"), mk.ts(3), "the last line, cut while being written"))
    tail = full[60:]
    with open(f, "ab") as fh:
        fh.write(tail.encode() + b"\n")
    rows2, cp2 = _pass(src, cp)
    assert [r["message_id"] for r in rows2] == [U(3, "9a00")]
    assert rows2[0]["content_text"] == "the last line, cut while being written"
    assert rows2[0]["previous_message_id"] == canonical_json([U(2, "9a00")]) and rows2[0]["message_index"] == 2
    rows3, _ = _pass(src, cp2)
    assert rows3 == []
    whole, _ = _pass(src, None)
    assert rows_multiset(rows1 + rows2) == rows_multiset(whole)


def test_u0085_u2028_are_not_line_ends(main_rows):
    rows, _ = main_rows
    raw = MAIN.read_bytes()
    assert "\u2028".encode() in raw and "\u0085".encode() in raw
    assert any("\u2028" in (r.get("content_text") or "") for r in rows)


def test_invalid_utf8_and_lone_surrogates():
    rows, stats = load(ODD / "invalid-utf8.jsonl")
    assert [r["content_text"] for r in rows] == ["before", "bad bytes: \ufffd\ufffd\ufffd here", "cut emoji: \ufffd",
                                                 "after"]
    assert sum(stats.lines_skipped.values()) == 0
    frame_from_rows(rows).write_parquet(os.devnull)  # encodable as UTF-8


def test_windows_project_dirs_and_cwd():
    up, _ = load(PROJ / "C--Users-ada-repo" / f"{mk.S_WIN1}.jsonl")
    low, _ = load(PROJ / "c--Users-ada-repo" / f"{mk.S_WIN2}.jsonl")
    assert {r["cwd"] for r in up} == {"C:\\Users\\ada\\repo"} and {r["cwd"] for r in low} == {"c:\\Users\\ada\\repo"}
    assert up[0]["content_text"] == low[0]["content_text"] == "run the build\r\nthen the tests"
    assert json.loads(up[1]["tool_args"])["cwd"] == "C:\\Users\\ada\\repo"
    # CRLF line ends and a BOM: the first line starts at 0, the second after "\r\n"
    raw = (PROJ / "C--Users-ada-repo" / f"{mk.S_WIN1}.jsonl").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    assert [r["source_offset"] for r in up] == [0, raw.index(b"\r\n") + 2]
    assert up[0]["source_path_hash"] != low[0]["source_path_hash"]
    assert [r["message_index"] for r in up] == [0, 1]


def test_interleaved_sessions_keep_separate_threads():
    rows, _ = load(ODD / "interleaved.jsonl")
    xs = [r for r in rows if r["session_id"] == mk.S_X]
    ys = [r for r in rows if r["session_id"] == mk.S_Y]
    assert [(r["message_index"], r["previous_message_id"]) for r in xs] == [
        (0, "[]"), (1, canonical_json([U(1, "9c00")])), (2, canonical_json([U(2, "9c00")]))]
    assert [(r["message_index"], r["previous_message_id"]) for r in ys] == [
        (0, "[]"), (1, canonical_json([U(1, "9d00")]))]
    assert {r["conversation_started_at"] for r in xs} == {us(mk.ts(0))}
    assert {r["conversation_started_at"] for r in ys} == {us(mk.ts(1))}
    assert {r["cwd"] for r in ys} == {"/Users/ada/y"} and {r["git_branch"] for r in ys} == {"other"}


def test_timestamps_held_inherited_epoch_ms_and_fallback_ids(tmp_path):
    path = ODD / "held.jsonl"
    rows, stats = load(path)
    later = 1779271230000 * 1000  # the epoch-ms timestamp of the first timestamped line
    c0, c1, a3, u4, u5, u6 = rows
    for r in (c0, c1):
        assert r["message_created_at"] == later and r["conversation_started_at"] == later
        assert attrs(r) == {"gateway": {"identity_source": "fallback", "timestamp_source": "inherited_later"}}
        assert r.get("provider_uuid") is None
    # the fallback id formula of schema.md §4.2; identical messages stay two messages
    for ordinal, r in enumerate((c0, c1)):
        want = hashlib.sha256(f"{mk.S_ODD}:{ordinal}:user:{json.dumps('continue')}".encode()).hexdigest()[:16]
        assert r["message_id"] == want and r["part_id"] == f"{want}#0"
    assert c0["message_id"] != c1["message_id"] and c1["previous_message_id"] == canonical_json([c0["message_id"]])
    assert a3["message_created_at"] == later and "timestamp_source" not in attrs(a3)["gateway"]
    assert a3["date"] == "2026-05-20" and a3["conversation_started_at"] == later
    assert u4["message_created_at"] == later and attrs(u4)["gateway"]["timestamp_source"] == "inherited_earlier"
    assert u5["message_created_at"] == us("2026-05-20T10:00:40.123456Z")  # +02:00, nanoseconds truncated
    assert u6["message_created_at"] == u5["message_created_at"]  # zone-less string is unparseable
    assert attrs(u6)["gateway"]["timestamp_source"] == "inherited_earlier"
    assert {r["conversation_started_at"] for r in rows} == {later}
    assert stats.lines_skipped == {"not_a_message": 2}
    # incremental: the held lines are not consumed until the timestamped line arrives
    offs = line_offsets(path)
    data = path.read_bytes()
    f = tmp_path / "held.jsonl"
    f.write_bytes(data[: offs[4]])  # snapshot, two held lines, last-prompt
    src = source_file_for(IMP, f)
    got1, cp = _pass(src, None)
    assert got1 == [] and cp.offset == offs[1]
    state = json.loads(cp.parser_state)
    assert state["threads"] == {} and state["last"]["session_id"] is None
    f.write_bytes(data)
    got2, _ = _pass(src, cp)
    whole, _ = _pass(src, None)
    assert rows_multiset(got1 + got2) == rows_multiset(whole)
    assert len(whole) == 6


def test_tool_result_in_a_later_piece_gets_tool_name(main_rows):
    offs = line_offsets(MAIN)
    rows, stats = load(MAIN, pieces=[offs[7], offs[8] + 5])  # the Read call before the cut, the result after
    (res,) = by_id(rows)[U(7)]
    assert res["tool_name"] == "Read"
    assert rows_multiset(rows) == rows_multiset(main_rows[0])


def test_tool_map_is_a_bounded_fifo(tmp_path):
    lines = []
    n = TOOL_MAP_CAP + 3
    for i in range(n):
        lines.append({"type": "assistant", "sessionId": "s", "uuid": f"c{i}", "timestamp": "2026-05-20T10:00:00Z",
                      "message": {"role": "assistant", "content": [
                          {"type": "tool_use", "id": f"t{i}", "name": f"Tool{i}", "input": {}}]}})
    # an id seen again moves to the end (most recent last), without growing the map
    lines.append({"type": "assistant", "sessionId": "s", "uuid": "again", "timestamp": "2026-05-20T10:00:00Z",
                  "message": {"role": "assistant", "content": [
                      {"type": "tool_use", "id": "t5", "name": "Renamed", "input": {}}]}})
    for i in (0, 2, 3, 4, 5, n - 1):
        lines.append({"type": "user", "sessionId": "s", "uuid": f"r{i}", "timestamp": "2026-05-20T10:00:01Z",
                      "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}"}]}})
    rows, _ = _rows_from_lines(lines, "tools.jsonl", tmp=tmp_path, stats=True)
    names = {r["message_id"]: r.get("tool_name") for r in rows if r["part_type"] == "tool_result"}
    # 4099 calls: t0..t2 were evicted; re-using t5 moved it to the end and renamed it
    assert names == {"r0": None, "r2": None, "r3": "Tool3", "r4": "Tool4", "r5": "Renamed", f"r{n - 1}": f"Tool{n - 1}"}
    f = tmp_path / "tools.jsonl"
    cp = _pass(source_file_for(IMP, f), None)[1]
    tools = json.loads(cp.parser_state)["tools"]
    assert len(tools) == TOOL_MAP_CAP and tools[-1] == ["t5", "Renamed"] and tools[0] == ["t3", "Tool3"]


def test_parser_state_shape(main_rows):
    rows, cp = _pass(source_file_for(IMP, MAIN), None)
    state = json.loads(cp.parser_state)
    assert set(state) == {"v", "last_ts", "last", "threads", "tools", "sidecar"}
    assert state["v"] == 1 and state["sidecar"] is None
    assert state["last_ts"] == us(mk.ts(99))
    assert state["last"] == {"session_id": mk.S_MAIN, "cwd": "/Users/ada/repo", "git_branch": "main",
                             "version": "2.1.96", "entrypoint": None, "permission_mode": "acceptEdits"}
    assert state["threads"] == {mk.S_MAIN: {"ordinal": 18, "last_message_id": U(23), "started_at": us(mk.ts(0))}}
    assert state["tools"] == [["toolu_01Read", "Read"], ["srvtoolu_01", "web_search"], ["toolu_01Agent", "Agent"],
                              ["toolu_01Bash", "Bash"]]


def test_until_stops_before_the_first_later_line(tmp_path):
    offs = line_offsets(MAIN)
    until = us(mk.ts(10))  # U10 is at ts(10); the next timestamped line (U11) at ts(12)
    src = source_file_for(IMP, MAIN)
    rows, cp = _pass(src, None, window=Window(until_us=until))
    assert max(r["message_created_at"] for r in rows) == until
    assert cp.offset == offs[12] and cp.size == cp.offset  # stopped: size recorded as the offset
    rest, _ = _pass(src, cp)
    whole, _ = _pass(src, None)
    assert rows_multiset(rows + rest) == rows_multiset(whole)


def test_since_window_counts_outside_window():
    since = us(mk.ts(60))
    rows, stats = load(MAIN, window=Window(since_us=since))
    assert min(r["message_created_at"] for r in rows) >= since
    assert stats.lines_skipped["outside_window"] == 10
    whole, _ = load(MAIN)
    assert rows_multiset(rows) == rows_multiset([r for r in whole if r["message_created_at"] >= since])


def test_desktop_entrypoint_and_worktree():
    rows, stats = load(PROJ / "-Users-ada-repo--claude-worktrees-feat-x" / f"{mk.S_WT}.jsonl")
    assert {r["entrypoint"] for r in rows} == {"claude-desktop"}
    assert {r["cwd"] for r in rows} == {"/Users/ada/repo/.claude/worktrees/feat-x"}
    assert stats.records_by_type["teleported-from"] == 1


def test_determinism_and_no_clock(monkeypatch):
    import time

    a, _ = load(MAIN)
    b, _ = load(MAIN)
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)
    monkeypatch.setattr(time, "time_ns", lambda: 4_000_000_000 * 10**9)
    c, _ = load(MAIN)
    assert a == b == c
    held_a, _ = load(ODD / "held.jsonl")
    held_b, _ = load(ODD / "held.jsonl")
    assert held_a == held_b


def test_every_row_has_all_columns_as_the_schema_says():
    for path in sorted(PROJ.rglob("*.jsonl")):
        rows, _ = load(path)
        for r in rows:
            assert set(r) <= set(COLUMN_NAMES)
            assert json.loads(r["attributes"])["gateway"]["identity_source"] in ("native", "fallback")
            for col in ("user_id", "system_text", "tools", "git_remote", "head_sha", "repo_root",
                        "parent_thread_id", "attachment_type", "hook_event"):
                assert r.get(col) is None


# --------------------------------------------------------------------------------------------- discovery


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_fixture_tree_discovery_order_and_layouts():
    roots = IMP.roots(None, {"HOME": str(HOME)})
    assert roots == [str(HOME / ".claude"), str(HOME / ".config" / "claude")]
    disc = IMP.discover(roots)
    assert disc.failed == []
    names = [os.path.basename(f.path) for f in disc.files]
    assert len(names) == len(list(PROJ.rglob("*.jsonl")))
    first_agent = next(i for i, n in enumerate(names) if n.startswith("agent-"))
    assert all(not n.startswith("agent-") for n in names[:first_agent])
    assert all(n.startswith("agent-") for n in names[first_agent:])
    assert [f.path for f in disc.files[:first_agent]] == sorted(f.path for f in disc.files[:first_agent])
    assert all(f.is_session == (not os.path.basename(f.path).startswith("agent-")) for f in disc.files)
    assert all(f.read_mode == "incremental" and f.client == "claude" for f in disc.files)
    assert not any(n.endswith(".meta.json") for n in names)
    for f in disc.files:
        assert f.path_hash == hashlib.sha256(os.fsencode(os.path.realpath(f.path))).hexdigest()[:16]
    # a nested subagent counts toward its parent's session in inventories
    nested = next(f for f in disc.files if os.path.basename(f.path) == f"agent-{mk.AGENT_C}.jsonl")
    parent = next(f for f in disc.files if os.path.basename(f.path) == f"{mk.S_MAIN}.jsonl")
    assert IMP.session_key(nested) == IMP.session_key(parent) == parent.path_hash


def test_roots_config_dir_alone_both_and_symlinked_pair(tmp_path):
    line = (WORKED.read_bytes().split(b"\n")[0]) + b"\n"
    # ~/.config/claude alone
    h1 = tmp_path / "h1"
    _tree(h1, {".config/claude/projects/-r/s.jsonl": line})
    disc = IMP.discover(IMP.roots(None, {"HOME": str(h1)}))
    assert [os.path.basename(f.path) for f in disc.files] == ["s.jsonl"] and disc.failed == []
    assert IMP.detect(None, {"HOME": str(h1)}).root == str(h1 / ".config" / "claude")
    # both roots, different files
    h2 = tmp_path / "h2"
    _tree(h2, {".claude/projects/-r/a.jsonl": line, ".config/claude/projects/-r/b.jsonl": line})
    disc = IMP.discover(IMP.roots(None, {"HOME": str(h2)}))
    assert sorted(os.path.basename(f.path) for f in disc.files) == ["a.jsonl", "b.jsonl"]
    # a symlinked pair is one root
    h3 = tmp_path / "h3"
    _tree(h3, {".claude/projects/-r/a.jsonl": line})
    (h3 / ".config").mkdir()
    os.symlink(h3 / ".claude", h3 / ".config" / "claude")
    roots = IMP.roots(None, {"HOME": str(h3)})
    assert roots == [str(h3 / ".claude")]
    disc = IMP.discover([str(h3 / ".claude"), str(h3 / ".config" / "claude")])  # even when given both
    assert [os.path.basename(f.path) for f in disc.files] == ["a.jsonl"]
    # nothing at all: no files, no error
    assert IMP.discover(IMP.roots(None, {"HOME": str(tmp_path / "nobody")})).files == []
    assert IMP.detect(None, {"HOME": str(tmp_path / "nobody")}).detected is False


def test_roots_claude_config_dir_list_and_config_root(tmp_path):
    env = {"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": " a, ~/b ,, /abs/c ,"}
    roots = IMP.roots(None, env)
    assert roots == [os.path.abspath("a"), str(tmp_path / "b"), "/abs/c"]
    assert IMP.roots("~/only", env) == [str(tmp_path / "only")]  # the config root wins
    assert IMP.roots(None, {"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": "  "}) == [
        str(tmp_path / ".claude"), str(tmp_path / ".config" / "claude")]
    line = WORKED.read_bytes().split(b"\n")[0] + b"\n"
    _tree(tmp_path, {"a/projects/-x/1.jsonl": line, "b/projects/-y/2.jsonl": line})
    env = {"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": f"{tmp_path / 'a'}, ~/b"}
    disc = IMP.discover(IMP.roots(None, env))
    assert sorted(os.path.basename(f.path) for f in disc.files) == ["1.jsonl", "2.jsonl"]


def test_walk_symlinks_other_files_and_errors(tmp_path, monkeypatch):
    line = WORKED.read_bytes().split(b"\n")[0] + b"\n"
    root = tmp_path / ".claude"
    _tree(root, {
        "projects/-r/s.jsonl": line,
        "projects/-r/notes.txt": b"x",
        "projects/-r/sessions-index.json": b"{}",
        "projects/-r/s/subagents/agent-a1.meta.json": b"{}",
        "history.jsonl": line,
        "todos/t.jsonl": line,
    })
    os.symlink(root / "projects" / "-r", root / "projects" / "loop")  # a directory symlink: not followed
    os.symlink(root / "projects" / "-r" / "s.jsonl", root / "projects" / "-r" / "link.jsonl")  # same real file
    os.symlink(root / "history.jsonl", root / "projects" / "-r" / "hist-link.jsonl")  # a file symlink: resolved
    disc = IMP.discover([str(root)])
    assert sorted(f.path for f in disc.files) == sorted([str(root / "history.jsonl"), str(root / "projects/-r/s.jsonl")])
    # paths are real paths when the root and `projects` are reached through symlinks (discovery derives them
    # from the directory's real path instead of resolving every file)
    (tmp_path / "alias").symlink_to(root, target_is_directory=True)
    moved = tmp_path / "moved-projects"
    os.rename(root / "projects", moved)
    os.symlink(moved, root / "projects")
    disc = IMP.discover([str(tmp_path / "alias")])
    assert sorted(f.path for f in disc.files) == sorted([str(root / "history.jsonl"), str(moved / "-r/s.jsonl")])
    assert all(f.path == os.path.realpath(f.path) for f in disc.files)
    os.unlink(root / "projects")
    os.rename(moved, root / "projects")
    # a path-hash collision in one scan: reported, the second file skipped
    import hypaware_tui.importers.claude as claude_mod

    monkeypatch.setattr(claude_mod, "path_hash", lambda real: "0" * 16)
    disc = IMP.discover([str(root)])
    assert len(disc.files) == 1 and len(disc.failed) == 1 and "same path hash" in disc.failed[0].message


def test_discovered_files_carry_their_stat_and_real_name(tmp_path, monkeypatch):
    """Each file's size, mtime and (device, inode) are those of its real file (the rerun compares them with
    the checkpoint and opens nothing when they match), stat'ed in the open directory or by path; a file
    symlink is a session or a subagent by the name of the file it leads to, and sessions come before
    subagents, each in path order."""
    import hypaware_tui.importers.claude as claude_mod

    line = WORKED.read_bytes().split(b"\n")[0] + b"\n"
    root = tmp_path / ".claude"
    _tree(root, {
        "projects/-r/b.jsonl": line * 2,
        "projects/-r/s/subagents/agent-a1.jsonl": line,
        "projects/-q/a.jsonl": line * 3,
        "elsewhere/agent-x.jsonl": line * 4,
        "elsewhere/plain.jsonl": line * 5,
    })
    os.symlink(root / "elsewhere" / "agent-x.jsonl", root / "projects" / "-q" / "c.jsonl")
    os.symlink(root / "elsewhere" / "plain.jsonl", root / "projects" / "-q" / "agent-y.jsonl")
    disc = IMP.discover([str(root)])
    got = [(os.path.relpath(f.path, root), f.is_session) for f in disc.files]
    assert got == [("elsewhere/plain.jsonl", True), ("projects/-q/a.jsonl", True), ("projects/-r/b.jsonl", True),
                   ("elsewhere/agent-x.jsonl", False), ("projects/-r/s/subagents/agent-a1.jsonl", False)]
    for f in disc.files:
        st = os.stat(f.path)
        assert (f.size, f.mtime_ns, f.device, f.inode) == (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
        assert f.path_hash == hashlib.sha256(os.fsencode(f.path)).hexdigest()[:16]
    monkeypatch.setattr(claude_mod, "_STAT_AT", False)  # no dir_fd: by path, the same files and stats
    assert IMP.discover([str(root)]).files == disc.files


def test_source_file_init_stores_every_field():
    """SourceFile's `__init__` is written out (speed); it takes and stores exactly the dataclass's fields, with
    their defaults, so a field added to the class and not to it fails here."""
    import dataclasses
    import inspect

    from hypaware_tui.importers.base import SourceFile

    fields = dataclasses.fields(SourceFile)
    params = list(inspect.signature(SourceFile.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]
    values = ["claude", "/p/x.jsonl", "a" * 16, "whole", False, 7, 8, 9, 10]
    f = SourceFile(*values)
    assert [getattr(f, n.name) for n in fields] == values
    assert f == SourceFile(**dict(zip([n.name for n in fields], values, strict=True)))
    assert hash(f) == hash(SourceFile(*values))
    assert dataclasses.replace(f, size=1).size == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.size = 1  # type: ignore[misc]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_unreadable_directory_and_file_are_reported(tmp_path):
    line = WORKED.read_bytes().split(b"\n")[0] + b"\n"
    root = tmp_path / ".claude"
    _tree(root, {"projects/-ok/a.jsonl": line, "projects/-locked/b.jsonl": line, "projects/-ok/c.jsonl": line})
    os.chmod(root / "projects" / "-locked", 0)
    os.chmod(root / "projects" / "-ok" / "c.jsonl", 0)
    try:
        disc = IMP.discover([str(root)])
    finally:
        os.chmod(root / "projects" / "-locked", 0o755)
        os.chmod(root / "projects" / "-ok" / "c.jsonl", 0o644)
    assert [os.path.basename(f.path) for f in disc.files] == ["a.jsonl"]
    assert len(disc.failed) == 2 and all(str(tmp_path) not in e.where for e in disc.failed)


def test_unreadable_entries_simulated(tmp_path, monkeypatch):
    """Same as above, for runs as root: scandir / access fail."""
    line = WORKED.read_bytes().split(b"\n")[0] + b"\n"
    root = tmp_path / ".claude"
    _tree(root, {"projects/-ok/a.jsonl": line, "projects/-locked/b.jsonl": line, "projects/-ok/c.jsonl": line})
    real_scandir, real_access = os.scandir, os.access

    def scandir(path):
        if str(path).endswith("-locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    # an unreadable file has no read bits, and the system refuses it (which root's access() would not say)
    os.chmod(root / "projects" / "-ok" / "c.jsonl", 0)
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p).endswith("c.jsonl") else real_access(p, m))
    disc = IMP.discover([str(root)])
    assert [os.path.basename(f.path) for f in disc.files] == ["a.jsonl"]
    assert len(disc.failed) == 2
    assert any("directory" in e.message for e in disc.failed) and any("transcript (" in e.message for e in disc.failed)
    assert all("Check its permissions." in e.message and "link" not in e.message for e in disc.failed)


def test_symlink_loops_are_reported_as_loops_not_as_permissions(tmp_path):
    """A link that leads back to itself fails with ELOOP; the advice is to fix the link (its permissions are
    not the problem). A directory link back to its parent is not followed: no error, no endless walk. The
    message names no path (it reaches the events log and the daemon's status); `path` is for the terminal."""
    line = WORKED.read_bytes().split(b"\n")[0] + b"\n"
    root = tmp_path / ".claude"
    _tree(root, {"projects/-ok/a.jsonl": line})
    os.symlink("loop.jsonl", root / "projects" / "-ok" / "loop.jsonl")
    os.symlink("..", root / "projects" / "-ok" / "up")
    looped = tmp_path / "other" / ".claude"
    looped.mkdir(parents=True)
    os.symlink("projects", looped / "projects")
    disc = IMP.discover([str(root), str(looped)])
    assert [os.path.basename(f.path) for f in disc.files] == ["a.jsonl"]
    assert len(disc.failed) == 2
    for e in disc.failed:
        assert "symbolic link loop" in e.message and "remove the link" in e.message, e.message
        assert "permissions" not in e.message and str(tmp_path) not in e.message + e.where
    assert sorted(e.path for e in disc.failed) == [str(root / "projects" / "-ok" / "loop.jsonl"),
                                                   str(looped / "projects")]
    # a root that is itself a loop is not reported as missing
    os.symlink("loop-root", tmp_path / "loop-root")
    det = IMP.detect(str(tmp_path / "loop-root"), {"HOME": str(tmp_path)})
    assert not det.detected and "symbolic link loop" in det.reason and "does not exist" not in det.reason


def test_a_link_to_a_missing_file_is_reported(tmp_path):
    """A transcript that is a symbolic link to a file that does not exist (sessions kept on a drive that is not
    mounted) was skipped without a word (`is_file()` is False for it), while a link loop was reported
    (claude.md §1 rule 7). It is reported too, saying what it is. A link to a folder, named like a transcript,
    is still no transcript and no error."""
    line = WORKED.read_bytes().split(b"\n")[0] + b"\n"
    root = tmp_path / ".claude"
    _tree(root, {"projects/-ok/a.jsonl": line})
    (tmp_path / "folder").mkdir()
    os.symlink(tmp_path / "unmounted" / "s.jsonl", root / "projects" / "-ok" / "gone.jsonl")
    os.symlink(tmp_path / "folder", root / "projects" / "-ok" / "folder.jsonl")
    disc = IMP.discover([str(root)])
    assert [os.path.basename(f.path) for f in disc.files] == ["a.jsonl"]
    (e,) = disc.failed
    assert e.message == (
        "cannot read a Claude Code transcript (No such file or directory); it is skipped. It is a symbolic link to "
        "a file that does not exist (on a drive that is not mounted, or moved or deleted): make that file "
        "available again, or remove the link."
    )
    assert e.path == str(root / "projects" / "-ok" / "gone.jsonl") and str(tmp_path) not in e.where


def test_inventory_head_and_tail():
    src = source_file_for(IMP, MAIN)
    inv = IMP.inventory_file(src, src.size, src.mtime_ns)
    assert (inv.first_ts, inv.last_ts) == (us(mk.ts(0)), us(mk.ts(99)))
    empty = source_file_for(IMP, ODD / "empty.jsonl")
    inv = IMP.inventory_file(empty, 0, empty.mtime_ns)
    assert (inv.first_ts, inv.last_ts) == (None, None)


def test_registry_returns_the_claude_importer():
    imp = get_importer("claude")
    assert isinstance(imp, ClaudeImporter) and imp.name == "claude" and imp.provider == "anthropic"


# --------------------------------------------------------------------------------------------- helpers


def _pass(src, checkpoint, window: Window | None = None):
    window = window or Window()
    stats = ParseStats()
    rows, cp = [], checkpoint
    for batch in FilePass(IMP, src, checkpoint, window, stats).batches():
        rows += batch.rows
        if batch.update is not None:
            cp = batch.update.entry
    return rows, cp


def _rows_from_lines(lines, name, *, tmp: Path | None = None, stats: bool = False):
    import tempfile

    d = Path(tmp) if tmp is not None else Path(tempfile.mkdtemp(prefix="hyp-claude-"))
    p = d / name
    p.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    rows, st = load(p)
    if tmp is None:
        shutil.rmtree(d, ignore_errors=True)
    return (rows, st) if stats else rows


def test_readable_asks_the_system_only_when_the_mode_does_not_answer(tmp_path, monkeypatch):
    """Discovery checks each transcript is readable; for a file of this user with its owner-read bit set the
    mode answers, so 20,000 transcripts cost no second system call each. Other files still ask access()."""
    from hypaware_tui.importers.base import readable

    f = tmp_path / "a.jsonl"
    f.write_text("{}\n")
    asked = []
    monkeypatch.setattr(os, "access", lambda p, m: asked.append(p) or False)
    assert readable(str(f), os.stat(f)) is True and asked == []
    f.chmod(0o244)  # no owner-read bit: the system decides (here: refuses)
    assert readable(str(f), os.stat(f)) is False and asked == [str(f)]
    st = os.stat(f)
    other = os.stat_result((0o100644, st.st_ino, st.st_dev, 1, st.st_uid + 1, st.st_gid, 3, 0, 0, 0))
    assert readable(str(f), other) is False and len(asked) == 2  # another owner: asked too


def test_tool_results_and_inputs_that_are_objects_never_store_file_bytes(tmp_path):
    """schema.md §3.4 rule 3: a `*_tool_result` whose content is an object (a fetched PDF comes back as a
    document with a base64 source) is stored as canonical JSON (claude.md §5), but without the document's
    bytes; the same for a tool input carrying an image, and a data URI in a tool input."""
    pdf = "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K" * 40
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg" * 20
    base = {"sessionId": "s1", "cwd": "/r", "timestamp": "2026-05-20T10:00:04Z"}
    lines = [
        {**base, "type": "assistant", "uuid": "a1", "message": {
            "id": "m1", "role": "assistant", "model": "claude-x", "content": [
                {"type": "server_tool_use", "id": "srv1", "name": "web_fetch", "input": {"url": "https://x/a.pdf"}},
                {"type": "web_fetch_tool_result", "tool_use_id": "srv1", "content": {
                    "type": "web_fetch_result", "url": "https://x/a.pdf", "content": {
                        "type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}}},
                {"type": "tool_use", "id": "t1", "name": "mcp__vision__describe", "input": {
                    "image": {"type": "base64", "media_type": "image/png", "data": png},
                    "also": f"data:image/png;base64,{png}"}},
            ]}},
    ]
    mcp_text = json.dumps({"content": [{"type": "image", "data": png, "mimeType": "image/png"}]})
    plain_json = '{"data": [1, 2], "type": "image"}'
    lines.append({**base, "type": "user", "uuid": "u1", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t1", "content": mcp_text},
        {"type": "tool_result", "tool_use_id": "t1", "content": plain_json}]}})
    rows = _rows_from_lines(lines, "s1.jsonl", tmp=tmp_path)
    blob = json.dumps(rows)
    assert pdf[:64] not in blob and png[:64] not in blob
    call, result, tool, mcp, plain = rows
    assert mcp["content_text"] == '{"content": [{"type": "image", "data": "<omitted>", "mimeType": "image/png"}]}'
    assert plain["content_text"] == plain_json  # no bytes in it: stored as it came
    assert result["part_type"] == "tool_result" and json.loads(result["content_text"]) == {
        "type": "web_fetch_result", "url": "https://x/a.pdf", "content": {
            "type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "<omitted>"}}}
    assert json.loads(tool["tool_args"]) == {
        "image": {"type": "base64", "media_type": "image/png", "data": "<omitted>"},
        "also": "data:image/png;base64,<omitted>"}
    assert call["tool_args"] == '{"url":"https://x/a.pdf"}'


def test_held_lines_are_counted_once_when_consumed_and_judged_when_released(tmp_path):
    """schema.md §3.2 rule 3 and §7: a line held for a later timestamp, and every line after it, is
    consumed (and counted) by the pass that releases the hold, not also by an earlier pass that ended
    holding it; a held line whose rows all fall outside the window, once released, is an outside_window
    line (it was counted under no reason at all)."""
    from hypaware_tui.core.timeutil import parse_iso_us

    def user(uuid, ts=None, **extra):
        line = {"type": "user", "sessionId": "s1", "uuid": uuid, "message": {"role": "user", "content": uuid}}
        return {**line, **({"timestamp": ts} if ts else {}), **extra}

    lines = [json.dumps(x).encode() for x in (
        user("h0"), {"type": "file-history-snapshot", "messageId": "x"}, user("u1", "2026-05-20T10:00:00Z"),
        user("u3", "2026-06-20T10:00:00Z"))] + [b"[1,2]", b"{broken"]
    path = tmp_path / "s1.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    win = Window(since_us=parse_iso_us("2026-06-01T00:00:00Z"))
    rows, stats = import_file(IMP, path, window=win)
    assert [r["message_id"] for r in rows] == ["u3"]
    # h0 takes u1's (old) timestamp when released: it and u1 are outside the window; 5 lines, 5 reasons
    assert dict(stats.lines_skipped) == {"outside_window": 2, "not_a_message": 1, "malformed": 2}
    assert dict(stats.records_by_type) == {"user": 3, "file-history-snapshot": 1, "unknown": 2}
    # the first pass ends holding h0 (no timestamp yet): it counts nothing; the second counts each line once
    cut = len(lines[0]) + len(lines[1]) + 2
    for window in (Window(), win):
        whole_rows, whole = import_file(IMP, path, window=window)
        piece_rows, pieces = import_file(IMP, path, window=window, pieces=[cut])
        assert rows_multiset(piece_rows) == rows_multiset(whole_rows)
        assert (dict(pieces.records_by_type), dict(pieces.lines_skipped)) == (
            dict(whole.records_by_type), dict(whole.lines_skipped))
    path.write_bytes(b"\n".join(lines[:2]) + b"\n")
    held_rows, held = import_file(IMP, path)
    assert held_rows == [] and held.rows_held == 1
    assert (dict(held.records_by_type), dict(held.lines_skipped)) == ({}, {})


def test_an_empty_cwd_branch_or_version_is_that_line_s_value_not_the_last_one(tmp_path):
    """claude.md §4.2: the line's `cwd`, `gitBranch`, `version`; only an absent one takes the last value seen.
    An empty one (Claude Code writes gitBranch "" outside a git repository) is null (schema.md §3.4 rule 5),
    and what later lines without the field inherit."""
    def user(uuid, **fields):
        return {"type": "user", "sessionId": "s1", "uuid": uuid, "timestamp": "2026-05-20T10:00:00Z",
                "message": {"role": "user", "content": uuid}, **fields}

    rows = _rows_from_lines([user("u0", cwd="/r", gitBranch="main", version="2.1.1"),
                             user("u1", cwd="", gitBranch="", version=""), user("u2"),
                             user("u3", cwd="/s", gitBranch="dev", version="2.1.2"), user("u4")], "s1.jsonl", tmp=tmp_path)
    got = [(r["message_id"], r.get("cwd"), r.get("git_branch"), r.get("client_version")) for r in rows]
    assert got == [("u0", "/r", "main", "2.1.1"), ("u1", None, None, None), ("u2", None, None, None),
                   ("u3", "/s", "dev", "2.1.2"), ("u4", "/s", "dev", "2.1.2")]


def _agent_file_named(d: Path, raw_id: bytes) -> Path:
    """The nested subagent fixture, its `agentId` dropped (so the id comes from the file name) and its second
    line without `uuid` (a fallback id, hashed from the scope), saved as `agent-<raw_id>.jsonl` with its
    sidecar: a file name made of bytes, which need not be UTF-8."""
    src = SUB / f"agent-{mk.AGENT_C}.jsonl"
    lines = []
    for i, text in enumerate(src.read_text().splitlines()):
        obj = json.loads(text)
        obj.pop("agentId", None)
        if i == 2:
            obj.pop("uuid", None)
        lines.append(json.dumps(obj).encode() + b"\n")
    stem = os.fsencode(d) + b"/agent-" + raw_id
    with open(stem + b".jsonl", "wb") as fh:
        fh.write(b"".join(lines))
    shutil.copyfile(SUB / f"agent-{mk.AGENT_C}.meta.json", stem + b".meta.json")
    return Path(os.fsdecode(stem + b".jsonl"))


def test_an_agent_file_whose_name_is_not_utf8_gives_an_agent_id_a_row_can_hold(tmp_path):
    """`agent-\\xff\\xfeQ.jsonl` (bytes that are not UTF-8) without `agentId` on its lines: the agent id came
    from the name as `os.fsdecode` gives it, with lone surrogates, and the whole batch it was in (rows of every
    file) failed to become a frame on every run. The id is the name's bytes with those written as escapes, the
    same in one pass or in pieces; the sidecar next to it is still found."""
    d = tmp_path / "s" / "subagents"
    d.mkdir(parents=True)
    path = _agent_file_named(d, b"\xff\xfeQ")
    whole, stats = import_file(IMP, path)
    assert len(whole) == 4 and stats.lines_skipped == {"not_a_message": 1}
    assert {r["agent_id"] for r in whole} == {"\\xff\\xfeQ"}
    assert {attrs(r)["claude"]["agent_type"] for r in whole} == {"Explore"}  # (the sidecar, by the raw name)
    fallback = [r for r in whole if attrs(r)["gateway"]["identity_source"] == "fallback"]
    assert len(fallback) == 1
    assert all(r[c].encode() for r in whole for c in COLUMN_NAMES if isinstance(r[c], str))  # valid UTF-8 all
    pieces, _ = import_file(IMP, path, pieces=line_offsets(path))
    assert rows_multiset(pieces) == rows_multiset(whole)
    df = frame_from_rows(whole)
    assert set(df["agent_id"].to_list()) == {"\\xff\\xfeQ"}


def test_agent_ids_from_different_byte_names_never_read_the_same(tmp_path):
    """Escaping the bytes that are not UTF-8 only would give `\\xff\\xfe` for both `\\xff` + `\\\\xfe` and
    `\\\\xff` + `\\xfe`: a backslash in such a name is written as an escape too."""
    ids = []
    for i, raw in enumerate((b"\\xff\xfe", b"\xff\\xfe", b"\xff\xfe")):
        d = tmp_path / f"s{i}" / "subagents"
        d.mkdir(parents=True)
        rows, _ = import_file(IMP, _agent_file_named(d, raw))
        (agent,) = {r["agent_id"] for r in rows}
        ids.append(agent)
    assert ids == ["\\x5cxff\\xfe", "\\xff\\x5cxfe", "\\xff\\xfe"]
    # a UTF-8 name without a backslash is its own id; one with a backslash has it written `\x5c` (else
    # `agent-\\xff\\xfeQ.jsonl` spelled out in UTF-8 read as the bytes `agent-<ff><fe>Q.jsonl`)
    got = {}
    for i, raw in enumerate(("é-ordinary".encode(), b"\\xff\\xfeQ", b"\xff\xfeQ")):
        d = tmp_path / f"u{i}" / "subagents"
        d.mkdir(parents=True)
        rows, _ = import_file(IMP, _agent_file_named(d, raw))
        (got[raw],) = {r["agent_id"] for r in rows}
    assert got == {"é-ordinary".encode(): "é-ordinary", b"\\xff\\xfeQ": "\\x5cxff\\x5cxfeQ",
                   b"\xff\xfeQ": "\\xff\\xfeQ"}


# --------------------------------------------------------------------------------------------- pinned by mutants


def test_model_error_code_and_subtype_columns_as_claude_md_4_says(tmp_path):
    """claude.md §4: `model` is null for `<synthetic>` (an assistant line that is no API error included) and
    for an API-error line whatever its model; `status.error_code` is the 3-digit code after `API Error: `
    (not the first three of a longer number) taken from the first text part; `provider_subtype` is the line's
    `subtype` when it has one, else the block type."""
    base = {"sessionId": "s", "cwd": "/r", "timestamp": "2026-05-20T10:00:00Z"}
    lines = [
        {**base, "type": "assistant", "uuid": "syn", "message": {
            "role": "assistant", "model": "<synthetic>", "content": [{"type": "text", "text": "No response requested."}]}},
        {**base, "type": "assistant", "uuid": "e1", "isApiErrorMessage": True, "message": {
            "role": "assistant", "model": "claude-opus-4", "content": [
                {"type": "text", "text": "API Error: 529 Overloaded"}, {"type": "text", "text": "API Error: 500 later"}]}},
        {**base, "type": "assistant", "uuid": "e2", "isApiErrorMessage": True, "message": {
            "role": "assistant", "model": "<synthetic>", "content": [{"type": "text", "text": "API Error: 5290 odd"}]}},
        {**base, "type": "user", "uuid": "sub", "subtype": "local_command", "message": {
            "role": "user", "content": [{"type": "text", "text": "/cost"}]}},
        {**base, "type": "assistant", "uuid": "ok", "message": {
            "role": "assistant", "model": "claude-opus-4", "content": [{"type": "text", "text": "fine"}]}},
    ]
    m = by_id(_rows_from_lines(lines, "s.jsonl", tmp=tmp_path))
    assert m["syn"][0].get("model") is None and m["syn"][0].get("is_error") is None
    assert [r.get("model") for r in m["e1"]] == [None, None] and m["ok"][0]["model"] == "claude-opus-4"
    assert [json.loads(r["status"]) for r in m["e1"]] == [
        {"error_code": "529", "error_message": "API Error: 529 Overloaded"}] * 2
    assert json.loads(m["e2"][0]["status"]) == {"error_message": "API Error: 5290 odd"}
    assert m["sub"][0]["provider_subtype"] == "local_command" and m["ok"][0]["provider_subtype"] == "text"


def test_a_long_record_type_is_counted_under_its_first_100_characters(tmp_path):
    """Every line has a `records_by_type` key (claude.md §3); a type of any length (a damaged or hostile line)
    is counted under its first 100 characters, so a file of such lines cannot fill the counts with megabytes."""
    long_type = "x" * 5000
    lines = [{"type": long_type, "sessionId": "s", "timestamp": "2026-05-20T10:00:00Z"}] * 2
    rows, stats = _rows_from_lines(lines, "s.jsonl", tmp=tmp_path, stats=True)
    assert rows == [] and dict(stats.records_by_type) == {"x" * 100: 2}
    assert stats.lines_skipped == {"not_a_message": 2}


def test_ids_with_quotes_and_backslashes_chain_as_json_and_absent_input_is_null(tmp_path):
    """`previous_message_id` is a JSON list (schema.md §4.5) whatever the native uuid holds: a `"` or a `\\` is
    escaped, not pasted between quotes. A tool_use without `input` has `tool_args` null (schema.md §3.3 rule 3:
    absent is null, not the JSON text `null`)."""
    base = {"sessionId": "s", "cwd": "/r", "timestamp": "2026-05-20T10:00:00Z"}
    lines = [
        {**base, "type": "user", "uuid": 'say "hi"', "message": {"role": "user", "content": "one"}},
        {**base, "type": "assistant", "uuid": "back\\slash", "message": {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "Noop"}]}},
        {**base, "type": "user", "uuid": "three", "message": {"role": "user", "content": "three"}},
    ]
    rows = _rows_from_lines(lines, "s.jsonl", tmp=tmp_path)
    assert [json.loads(r["previous_message_id"]) for r in rows] == [[], ['say "hi"'], ["back\\slash"]]
    assert rows[1]["tool_name"] == "Noop" and rows[1]["tool_args"] is None


def test_a_line_stamped_far_ahead_stops_a_pass_only_at_a_given_until(tmp_path):
    """base.Window: a line stamped more than a day after the backfill started (a skewed clock, 2099) does not
    stop a pass at the default `until` (now): its row is kept, as the daemon would keep it. An `--until` the
    user gave holds for every line (cli.md §5.2): the pass stops before that line, nothing of 2099 is stored,
    and the checkpoint rests at it. A line stamped within the day after the start stops the pass either way."""
    t0 = us("2026-05-20T10:00:00Z")
    hour = 3600 * 1_000_000

    def line(uid: str, stamp: str) -> dict:
        return {"type": "user", "sessionId": "s", "uuid": uid, "timestamp": stamp, "message": {
            "role": "user", "content": uid}}

    path = tmp_path / "s.jsonl"
    body = [line("a", "2026-05-20T10:00:00Z"), line("far", "2099-01-01T00:00:00Z"), line("c", "2026-05-20T10:10:00Z")]
    path.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in body))
    src = source_file_for(IMP, path)
    second = len(json.dumps(body[0])) + 1
    for given, want in ((False, ["a", "far", "c"]), (True, ["a"])):
        window = Window(until_us=t0 + hour, started_us=t0 + hour, until_given=given)
        rows, cp = _pass(src, None, window=window)
        assert [r["content_text"] for r in rows] == want, given
        assert cp.offset == (path.stat().st_size if not given else second)
    body[1] = line("soon", "2026-05-20T12:30:00Z")  # 1.5 h after the start: written since, stop there
    path.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in body))
    for given in (False, True):
        rows, cp = _pass(source_file_for(IMP, path), None, window=Window(t0 - hour, t0 + hour, t0 + hour, given))
        assert [r["content_text"] for r in rows] == ["a"] and cp.offset == second


def test_a_compact_boundary_with_snake_case_metadata_keeps_it(tmp_path):
    """claude.md §4.2 accepts snake-case spellings as aliases; a boundary's `compact_metadata` is one: the row
    stores it as canonical JSON, as it stores `compactMetadata`."""
    line = {"type": "system", "subtype": "compact_boundary", "sessionId": "s", "uuid": "b",
            "timestamp": "2026-05-20T10:00:00Z", "content": "Conversation compacted",
            "compact_metadata": {"trigger": "manual", "preTokens": 9}}
    (row,) = _rows_from_lines([line], "s.jsonl", tmp=tmp_path)
    assert (row["part_type"], row["compact_metadata"]) == ("compaction", '{"preTokens":9,"trigger":"manual"}')


def test_an_empty_session_id_is_no_session_id(tmp_path):
    """An empty `sessionId` is absent (schema.md §3.4 rule 5): a line with one before any other is skipped as
    `no_session_id`, and one after a line with a session id belongs to that session, not to a session ""."""
    base = {"type": "user", "timestamp": "2026-05-20T10:00:00Z"}
    lines = [
        {**base, "sessionId": "", "uuid": "u0", "message": {"role": "user", "content": "before any"}},
        {**base, "sessionId": "s", "uuid": "u1", "message": {"role": "user", "content": "one"}},
        {**base, "sessionId": "", "uuid": "u2", "message": {"role": "user", "content": "two"}},
    ]
    rows, stats = _rows_from_lines(lines, "s.jsonl", tmp=tmp_path, stats=True)
    assert [(r["message_id"], r["session_id"], r["message_index"]) for r in rows] == [("u1", "s", 0), ("u2", "s", 1)]
    assert stats.lines_skipped == {"no_session_id": 1}


def test_a_prompt_queued_while_the_agent_was_busy_is_a_user_message(tmp_path):
    """A prompt typed while the agent works and taken into its running turn is written (2.1.x) only as an
    `attachment` record of type `queued_command` (with `queue-operation` bookkeeping around it, and no `user`
    line): it is one user message of its `prompt`, a string or content blocks as a user message's content, in
    the thread like any other, marked `claude.queued_command`. Other attachments stay bookkeeping."""
    base = {"sessionId": "s1", "cwd": "/r", "version": "2.1.150"}

    def at(sec: int) -> str:
        return f"2026-05-20T10:00:{sec:02d}.000Z"

    lines = [
        {**base, "type": "user", "uuid": "u1", "parentUuid": None, "timestamp": at(0),
         "message": {"role": "user", "content": "migrate the config loader"}},
        {**base, "type": "assistant", "uuid": "a1", "parentUuid": "u1", "timestamp": at(1), "message": {
            "id": "m1", "role": "assistant", "model": "claude-x",
            "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}]}},
        {"type": "queue-operation", "operation": "enqueue", "timestamp": at(2), "sessionId": "s1",
         "content": "also add tests"},
        {"type": "queue-operation", "operation": "remove", "timestamp": at(3), "sessionId": "s1",
         "content": "also add tests", "reason": "absorbed_mid_turn"},
        {**base, "type": "attachment", "uuid": "q1", "parentUuid": "a1", "timestamp": at(2), "attachment": {
            "type": "queued_command", "prompt": "also add tests", "commandMode": "prompt",
            "origin": {"kind": "human"}, "timestamp": at(2)}},
        {**base, "type": "attachment", "uuid": "h1", "parentUuid": "q1", "timestamp": at(4),
         "attachment": {"type": "hook_success", "hookName": "PostToolUse", "content": "not a prompt"}},
        {**base, "type": "attachment", "uuid": "q2", "parentUuid": "h1", "timestamp": at(5), "attachment": {
            "type": "queued_command", "commandMode": "prompt", "origin": {"kind": "human"}, "prompt": [
                {"type": "text", "text": "match this"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}},
        {**base, "type": "attachment", "uuid": "q3", "parentUuid": "q2", "timestamp": at(6), "attachment": {
            "type": "queued_command", "commandMode": "prompt", "isMeta": True, "origin": {"kind": "peer"},
            "prompt": "<cross-session-message>merge it</cross-session-message>"}},
        {**base, "type": "attachment", "uuid": "q5", "parentUuid": "q3", "timestamp": at(6), "attachment": {
            "type": "queued_command", "commandMode": "task-notification",
            "origin": {"kind": "task-notification", "producer": "session-task"},
            "prompt": "<task-notification>\n<task-id>b1</task-id>\n<status>completed</status>\n</task-notification>"}},
        {**base, "type": "attachment", "uuid": "q4", "timestamp": at(7),
         "attachment": {"type": "queued_command", "commandMode": "prompt", "prompt": ""}},
        {**base, "type": "attachment", "timestamp": at(8),
         "attachment": {"type": "queued_command", "prompt": "no uuid on this one"}},
    ]
    rows, stats = _rows_from_lines(lines, "s1.jsonl", tmp=tmp_path, stats=True)
    assert_chain(rows)
    m = by_id(rows)
    fallback = hashlib.sha256(f"s1:6:user:{canonical_json('no uuid on this one')}".encode()).hexdigest()[:16]
    assert list(m) == ["u1", "a1", "q1", "q2", "q3", "q5", fallback]
    # the words reach the dataset once: the queue-operation records that repeat them give no row
    assert [r["content_text"] for r in rows if r["role"] == "user"] == [
        "migrate the config loader", "also add tests", "match this", None,
        "<cross-session-message>merge it</cross-session-message>",
        "<task-notification>\n<task-id>b1</task-id>\n<status>completed</status>\n</task-notification>",
        "no uuid on this one"]
    (q1,) = m["q1"]
    assert (q1["role"], q1["part_type"], q1["message_index"], q1["previous_message_id"]) == (
        "user", "text", 2, '["a1"]')
    assert (q1["provider_type"], q1["provider_subtype"], q1["parent_uuid"], q1["provider_uuid"]) == (
        "attachment", "text", "a1", "q1")
    assert q1["message_created_at"] == us(at(2)) and (q1["session_id"], q1["cwd"]) == ("s1", "/r")
    assert attrs(q1) == {"claude": {"queued_command": True}, "gateway": {"identity_source": "native"}}
    assert json.loads(q1["raw_frame"]) == {"uuid": "q1", "parentUuid": "a1", "type": "attachment",
                                           "timestamp": at(2)}
    text, image = m["q2"]
    assert (text["part_type"], image["part_type"], image.get("content_text")) == ("text", "image", None)
    assert "iVBORw0KGgo=" not in json.dumps(rows)
    # not the person's own words (another session's message, a background task's notice): said so
    assert attrs(m["q3"][0]) == {"claude": {"is_meta": True, "queued_command": True, "queued_mode": "peer"},
                                 "gateway": {"identity_source": "native"}}
    assert attrs(m["q5"][0])["claude"] == {"queued_command": True, "queued_mode": "task-notification"}
    assert "queued_mode" not in attrs(m[fallback][0])["claude"]
    assert attrs(m[fallback][0])["gateway"] == {"identity_source": "fallback"}
    assert all("queued_command" not in attrs(r).get("claude", {}) for r in m["u1"] + m["a1"])
    assert stats.records_by_type == {"user": 1, "assistant": 1, "queue-operation": 2, "attachment": 7}
    assert stats.lines_skipped == {"not_a_message": 3, "empty_content": 1}
    # piecewise equals whole (claude.md §9: nothing about the queued line lives outside the checkpoint)
    path = tmp_path / "s1.jsonl"
    assert rows_multiset(load(path, pieces=line_offsets(path))[0]) == rows_multiset(load(path)[0])


def test_a_server_tool_that_failed_is_an_error_result(tmp_path):
    """A server tool (web search, web fetch, code execution) reports a failure not with `is_error` but with
    an error object as the result's `content` (`{"type": "web_search_tool_result_error", "error_code": ...}`):
    its row is an error result (`tool_status` error, `is_error`, the code in `status.error_code`) whose text
    names the error, `<type>: <error_code>` with any `error_message` after it. Successful results do not change."""
    base = {"sessionId": "s1", "timestamp": "2026-05-20T10:00:00Z"}
    lines = [{**base, "type": "assistant", "uuid": "a1", "message": {
        "id": "m1", "role": "assistant", "model": "claude-x", "content": [
            {"type": "server_tool_use", "id": "srv1", "name": "web_search", "input": {"query": "q"}},
            {"type": "web_search_tool_result", "tool_use_id": "srv1",
             "content": {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"}},
            {"type": "server_tool_use", "id": "srv2", "name": "text_editor_code_execution", "input": {}},
            {"type": "text_editor_code_execution_tool_result", "tool_use_id": "srv2", "content": {
                "type": "text_editor_code_execution_tool_result_error", "error_code": "file_not_found",
                "error_message": "no such file: a.py"}},
            {"type": "server_tool_use", "id": "srv3", "name": "web_search", "input": {"query": "r"}},
            {"type": "web_search_tool_result", "tool_use_id": "srv3",
             "content": [{"type": "web_search_result", "title": "T", "url": "https://e.x/a"}]},
        ]}}]
    rows = _rows_from_lines(lines, "s1.jsonl", tmp=tmp_path)
    search, code, ok = (r for r in rows if r["part_type"] == "tool_result")
    assert (search["content_text"], search["is_error"], search["tool_name"]) == (
        "web_search_tool_result_error: max_uses_exceeded", True, "web_search")
    assert json.loads(search["status"]) == {"tool_status": "error", "error_code": "max_uses_exceeded"}
    assert (code["content_text"], code["is_error"]) == (
        "text_editor_code_execution_tool_result_error: file_not_found\nno such file: a.py", True)
    assert json.loads(code["status"]) == {"tool_status": "error", "error_code": "file_not_found"}
    assert (ok.get("content_text"), ok.get("is_error"), json.loads(ok["status"])) == (
        None, None, {"tool_status": "success"})


def test_entrypoint_is_the_line_s_or_the_last_one_seen(tmp_path):
    """claude.md §4.2: `entrypoint` is the line's, else the last value seen earlier in the file: a line
    without one (most lines after the first) keeps the session's `claude-desktop` or `cli`."""
    def user(uuid, **fields):
        return {"type": "user", "sessionId": "s1", "uuid": uuid, "timestamp": "2026-05-20T10:00:00Z",
                "message": {"role": "user", "content": uuid}, **fields}

    rows = _rows_from_lines([user("u0", entrypoint="claude-desktop"), user("u1"), user("u2", entrypoint="cli"),
                             user("u3")], "s1.jsonl", tmp=tmp_path)
    assert [(r["message_id"], r.get("entrypoint")) for r in rows] == [
        ("u0", "claude-desktop"), ("u1", "claude-desktop"), ("u2", "cli"), ("u3", "cli")]


def test_a_false_is_error_or_is_compact_summary_is_stored_false_not_null(tmp_path):
    """claude.md §5: a tool result's `is_error` is the block's when it is a boolean, so `false` (which Claude
    Code writes on most results) is `false`, not null: `is_error = false` finds them; §4.2 likewise for
    `isCompactSummary`. A value that is not a boolean gives null."""
    base = {"sessionId": "s1", "timestamp": "2026-05-20T10:00:00Z"}
    call = {**base, "type": "assistant", "uuid": "a1", "message": {"role": "assistant", "content": [
        {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {}} for i in range(4)]}}
    results = {**base, "type": "user", "uuid": "r1", "isCompactSummary": False, "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t0", "content": "ok", "is_error": False},
        {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True},
        {"type": "tool_result", "tool_use_id": "t2", "content": "no flag"},
        {"type": "tool_result", "tool_use_id": "t3", "content": "odd flag", "is_error": "yes"}]}}
    rows = _rows_from_lines([call, results], "s1.jsonl", tmp=tmp_path)
    res = [r for r in rows if r["message_id"] == "r1"]
    assert [(r["content_text"], r.get("is_error"), json.loads(r["status"])["tool_status"]) for r in res] == [
        ("ok", False, "success"), ("boom", True, "error"), ("no flag", None, "success"), ("odd flag", None, "success")]
    assert [r.get("is_compact_summary") for r in res] == [False] * 4
    assert all(r.get("is_compact_summary") is None for r in rows if r["message_id"] == "a1")


def test_a_line_s_agent_id_wins_over_the_file_and_makes_its_own_thread(tmp_path):
    """claude.md §4.1: `agent_id` is the line's `agentId`, the file name only without one; the thread scope is
    `session:agent`, so the agent's lines in a session file number and chain on their own, and the main
    thread goes on where it stopped."""
    base = {"type": "user", "sessionId": "s1", "timestamp": "2026-05-20T10:00:00Z"}
    lines = [
        {**base, "uuid": "m0", "message": {"role": "user", "content": "main 0"}},
        {**base, "uuid": "g0", "agentId": "a9", "isSidechain": True, "message": {"role": "user", "content": "agent 0"}},
        {**base, "uuid": "g1", "agentId": "a9", "isSidechain": True, "message": {"role": "user", "content": "agent 1"}},
        {**base, "uuid": "m1", "message": {"role": "user", "content": "main 1"}},
    ]
    got = [(r["message_id"], r["agent_id"], r["message_index"], json.loads(r["previous_message_id"]))
           for r in _rows_from_lines(lines, "s1.jsonl", tmp=tmp_path)]
    assert got == [("m0", None, 0, []), ("g0", "a9", 0, []), ("g1", "a9", 1, ["g0"]), ("m1", None, 1, ["m0"])]
    # in an agent file, the line's id too (the file name only for lines without one)
    lines = [{**base, "uuid": "x0", "agentId": "a-line", "message": {"role": "user", "content": "with"}},
             {**base, "uuid": "x1", "message": {"role": "user", "content": "without"}}]
    got = [(r["message_id"], r["agent_id"]) for r in _rows_from_lines(lines, "agent-a-file.jsonl", tmp=tmp_path)]
    assert got == [("x0", "a-line"), ("x1", "a-file")]


def test_an_api_error_keeps_its_whole_message_and_a_boundary_its_is_meta(tmp_path):
    """claude.md §6 rule 4: `status.error_message` is the whole text of the first text part (an API error's
    JSON body runs to hundreds of characters; cut, it loses the reason), beside the `tool_status` of a result
    part of the same line; §4.2: `attributes.claude.is_meta` for any line with `isMeta` true, a compact
    boundary's included."""
    base = {"sessionId": "s1", "timestamp": "2026-05-20T10:00:00Z"}
    body = "API Error: 400 " + json.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                                      "message": "prompt is too long: " + "x" * 300}})
    lines = [
        {**base, "type": "assistant", "uuid": "e1", "isApiErrorMessage": True, "message": {
            "role": "assistant", "model": "<synthetic>", "content": [
                {"type": "text", "text": body}, {"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}},
        {**base, "type": "system", "subtype": "compact_boundary", "uuid": "b1", "isMeta": True,
         "content": "Conversation compacted"},
    ]
    rows = _rows_from_lines(lines, "s1.jsonl", tmp=tmp_path)
    text, result, boundary = rows
    assert json.loads(text["status"]) == {"error_code": "400", "error_message": body}
    assert json.loads(result["status"]) == {"error_code": "400", "error_message": body, "tool_status": "success"}
    assert (boundary["part_type"], attrs(boundary)) == (
        "compaction", {"claude": {"is_meta": True}, "gateway": {"identity_source": "native"}})
