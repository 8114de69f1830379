"""The Codex importer (codex.md) over hand-made rollouts of every generation (tests/fixtures/codex, written by
make_fixtures.py there): discovery, the three read modes, items -> rows, identity, turn state, tokens and
their carriers, forks with replays, item_completed in both history modes, and bad input.

Every fixture is read through the real reader (`FilePass`) via `import_helpers.import_file`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
import zstandard

from hypaware_tui.core.checkpoints import path_hash
from hypaware_tui.core.reader import FilePass
from hypaware_tui.core.schema import canonical_json, frame_from_rows
from hypaware_tui.core.timeutil import parse_iso_us, us_to_iso
from hypaware_tui.importers import get_importer
from hypaware_tui.importers.base import ParseStats, SourceFile, Window, compact_dict
from hypaware_tui.importers.codex import (
    TOOL_MAP_CAP,
    CodexImporter,
    CodexParser,
    exit_code,
    redact_url,
    thread_id_from_name,
    usable_cwd,
)

sys.path.insert(0, str(Path(__file__).parent))
from import_helpers import import_file, rows_multiset, source_file_for  # noqa: E402

IMP = CodexImporter()
FIX = Path(__file__).parent / "fixtures" / "codex"
ALL_FIXTURES = sorted(p for p in FIX.glob("rollout-*"))
TOKEN_COLS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def fx(tag: str) -> Path:
    hits = [p for p in ALL_FIXTURES if tag in p.name]
    assert len(hits) == 1, (tag, hits)
    return hits[0]


_CACHE: dict[str, tuple[list[dict], ParseStats]] = {}


def run(tag: str) -> tuple[list[dict], ParseStats]:
    if tag not in _CACHE:
        _CACHE[tag] = import_file(IMP, fx(tag))
    return _CACHE[tag]


def attrs(row: dict) -> dict:
    return json.loads(row["attributes"])


def by_text(rows: list[dict], text: str) -> dict:
    hits = [r for r in rows if r["content_text"] and text in r["content_text"]]
    assert len(hits) == 1, (text, len(hits))
    return hits[0]


def by_call(rows: list[dict], call_id: str, part_type: str = "tool_call") -> dict:
    hits = [r for r in rows if r["tool_call_id"] == call_id and r["part_type"] == part_type]
    assert len(hits) == 1, (call_id, part_type, len(hits))
    return hits[0]


def carriers(rows: list[dict]) -> list[dict]:
    return [r for r in rows if any(r[c] is not None for c in TOKEN_COLS)]


def tokens(row: dict) -> tuple:
    return tuple(row[c] for c in TOKEN_COLS)


def source_lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data.split(b"\n")


def envelopes(path: Path) -> list[dict]:
    out = []
    for raw in source_lines(path):
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict) and "payload" in obj:
            out.append(obj)
    return out


# --------------------------------------------------------------------------------------------- every fixture


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name[8:40])
def test_every_fixture_validates_and_counts_every_line_once(path):
    rows, stats = import_file(IMP, path)
    frame_from_rows(rows)  # schema-valid, no null in a non-null column
    assert all(r["provider"] == "openai" and r["client_name"] == "codex" == r["conversation_source"] for r in rows)
    assert len({r["part_id"] for r in rows}) == len(rows)
    # every complete non-blank line (legacy: every item) yields rows or is counted under exactly one reason
    if path.name.endswith(".json") and path.read_bytes().lstrip().startswith(b"{\n"):
        units = len(json.loads(path.read_bytes())["items"])
        producing = {attrs(r)["codex"]["item_index"] for r in rows}
    else:
        lines = source_lines(path)
        complete = lines if path.name.endswith((".json", ".zst")) else lines[:-1]
        units = sum(1 for ln in complete if ln.strip())
        producing = {r["source_offset"] for r in rows}
    assert units == sum(stats.lines_skipped.values()) + len(producing)
    assert sum(stats.records_by_type.values()) == units
    # JSON columns are canonical (the importer's fast path writes exactly canonical_json)
    for r in rows:
        for col in ("attributes", "raw_frame", "status", "tool_args", "compact_metadata", "previous_message_id"):
            if r[col] is not None:
                value = json.loads(r[col])
                assert r[col] == canonical_json(compact_dict(value) if col in ("attributes", "raw_frame", "status") else value)
    # message_index / previous_message_id chain
    msgs = sorted({(r["message_index"], r["message_id"], r["previous_message_id"]) for r in rows})
    assert [m[0] for m in msgs] == list(range(len(msgs)))
    for i, (_, _, prev) in enumerate(msgs):
        assert json.loads(prev) == ([] if i == 0 else [msgs[i - 1][1]])


def _expected_output_tokens(path: Path) -> tuple[int, int | None]:
    """Independently of the importer: the sum of the output deltas of the counted token_count events (info
    objects whose total changed, outside a fork replay = records within 1 s after a second session_meta),
    and the growth of total_token_usage outside the replay."""
    first_id = None
    replay_open = None
    prev_total = None
    replay_total = None
    out = 0
    for obj in envelopes(path):
        ts = parse_iso_us(obj["timestamp"]) // 1_000_000
        p = obj["payload"]
        if replay_open is not None and ts > replay_open + 1:
            replay_open = None
        if obj["type"] == "session_meta":
            if first_id is None:
                first_id = p["id"]
            elif p["id"] != first_id:
                replay_open = ts
        if obj["type"] == "event_msg" and p.get("type") == "token_count" and isinstance(p.get("info"), dict):
            total = p["info"]["total_token_usage"]
            if total == prev_total:
                continue
            before, prev_total = prev_total, total
            if replay_open is not None:
                replay_total = total
                continue
            last = p["info"].get("last_token_usage")
            out += last["output_tokens"] if last else total["output_tokens"] - (before or {}).get("output_tokens", 0)
    growth = None if prev_total is None else prev_total["output_tokens"] - (replay_total or {}).get("output_tokens", 0)
    return out, growth


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name[8:40])
def test_token_sum_equals_counted_deltas(path):
    rows, stats = import_file(IMP, path)
    expected, growth = _expected_output_tokens(path)
    assert sum(r["output_tokens"] or 0 for r in rows) == expected
    if growth is not None:
        assert expected == growth  # totals never reset in the fixtures: deltas add up to the growth
    assert stats.usage_unattached == 0
    for r in carriers(rows):  # the carrier is the last part of its message: an assistant row or a compaction
        assert r["role"] == "assistant" or (r["role"] == "system" and r["part_type"] == "compaction")
        assert not any(o["message_id"] == r["message_id"] and o["part_index"] > r["part_index"] for o in rows)
        assert "replayed_from_parent" not in attrs(r).get("codex", {})


# --------------------------------------------------------------------------------------------- lines


def test_u0085_in_a_string_stays_one_line():
    path = fx("085a")
    data = path.read_bytes()
    assert "\u0085".encode() in data and "\u2028".encode() in data
    rows, stats = run("085a")
    assert sum(stats.records_by_type.values()) == data.count(b"\n") == 6
    text = "line one\u0085line two\u2028line three\r\nline four"
    assert [r["content_text"] for r in rows if r["role"] == "user"] == [text]
    assert [r for r in rows if r["role"] == "assistant"][0]["content_text"] == "Echo:\u0085" + text
    offsets = [0]
    for ln in data.split(b"\n")[:-1]:
        offsets.append(offsets[-1] + len(ln) + 1)
    assert {r["source_offset"] for r in rows} <= set(offsets)
    assert {r["client_version"] for r in rows} == {"0.118.0-alpha.2"}
    assert {r["entrypoint"] for r in rows} == {"Codex Desktop"}


def test_truncated_final_line_waits_and_abandoned_sessions_import_cleanly():
    path = fx("0000000000cc")
    st = ParseStats()
    fp = FilePass(IMP, source_file_for(IMP, path), None, Window(), st)
    rows, update = [], None
    for b in fp.batches():
        rows += b.rows
        update = b.update or update
    data = path.read_bytes()
    assert not data.endswith(b"\n")
    assert update.entry.offset == data.rfind(b"\n") + 1  # stops before the partial line
    assert "malformed" not in st.lines_skipped
    assert [r["role"] for r in rows] == ["user", "assistant"]
    assert rows[1]["output_tokens"] == 42

    one, s1 = run("0000000000c1")
    assert one == [] and s1.lines_skipped == Counter({"not_a_message": 1})
    two, s2 = run("0000000000c2")
    assert [(r["role"], r["content_text"]) for r in two] == [("user", "hello?")]
    frame_from_rows(two)


# --------------------------------------------------------------------------------------------- legacy JSON


def test_legacy_json_responses_and_chat_completions_items():
    rows, stats = run("4e5f.json")
    session_ts = parse_iso_us("2025-04-18T10:12:33.215Z")
    assert {r["record_format"] for r in rows} == {"codex-legacy-json"}
    assert {r["source_offset"] for r in rows} == {None}
    assert {r["message_created_at"] for r in rows} == {session_ts}
    assert {r["conversation_started_at"] for r in rows} == {session_ts}
    assert all(attrs(r)["gateway"]["timestamp_source"] == "inherited_earlier" for r in rows)
    assert {r["conversation_id"] for r in rows} == {"4c1d2e3f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"}
    idx = [attrs(r)["codex"]["item_index"] for r in rows]
    assert idx == sorted(idx) and set(idx) == set(range(10))
    # Responses-style items with native ids
    assert by_text(rows, "what's in package.json")["message_id"] == "msg_68023a1"
    assert by_text(rows, "Reading package.json")["part_type"] == "reasoning"
    fc = by_call(rows, "call_pkg")
    assert fc["message_id"] == "fc_68023a3" and json.loads(fc["tool_args"]) == {"command": ["cat", "package.json"]}
    res = by_call(rows, "call_pkg", "tool_result")
    assert res["tool_name"] == "shell" and res["is_error"] is False
    # chat-completions items
    mixed = [r for r in rows if attrs(r)["codex"]["item_index"] == 6]
    assert [(r["part_index"], r["part_type"]) for r in mixed] == [(0, "text"), (1, "tool_call")]
    assert mixed[0]["content_text"] == "Let me check."
    assert mixed[1]["tool_name"] == "shell" and mixed[1]["tool_call_id"] == "call_es"
    assert mixed[1]["tool_args"] == canonical_json({"command": ["ls", ".eslintrc*"]})
    tool = by_call(rows, "call_es", "tool_result")
    assert tool["role"] == "tool" and tool["tool_name"] == "shell" and tool["tool_result_for"] == "call_es"
    assert by_text(rows, "No ESLint config.")["role"] == "assistant"
    assert by_text(rows, "context window 80% full")["role"] == "system"
    assert {r["model"] for r in rows if r["role"] == "assistant"} == {"o4-mini"}
    assert not any("never stored" in str(v) for r in rows for v in r.values())
    assert stats.lines_skipped == Counter({"malformed": 1, "not_a_message": 1})
    assert stats.records_by_type["legacy/tool"] == 1 and stats.records_by_type["legacy/message"] == 2


def test_json_that_is_not_legacy_is_read_as_jsonl_whole():
    rows, _ = run("05a2.json")
    assert [(r["role"], r["content_text"]) for r in rows] == [("user", "ping"), ("assistant", "pong")]
    assert {r["record_format"] for r in rows} == {"codex-envelope"}
    assert rows[1]["source_offset"] == fx("05a2.json").read_bytes().rfind(b"\n") + 1  # last line, no newline


# --------------------------------------------------------------------------------------------- early JSONL


def test_early_jsonl_header_state_lines_and_bare_items():
    rows, stats = run("2c4d6e8f0a1b")
    tid = "5f2c9a7e-3b1d-4e8f-9a6b-2c4d6e8f0a1b"
    header_ts = parse_iso_us("2025-07-02T18:21:09.481Z")
    assert {r["conversation_id"] for r in rows} == {tid} == {r["session_id"] for r in rows}
    assert {r["record_format"] for r in rows} == {"codex-early-jsonl"}
    assert {r["message_created_at"] for r in rows} == {header_ts} == {r["conversation_started_at"] for r in rows}
    assert all(attrs(r)["gateway"]["timestamp_source"] == "inherited_earlier" for r in rows)
    assert stats.records_by_type["record_type/state"] == 4 and stats.records_by_type["header"] == 1
    assert stats.lines_skipped == Counter({"not_a_message": 5})
    # ids: null and "" -> fallback (hand-computed), native ids kept
    first_item = json.loads(source_lines(fx("2c4d6e8f0a1b"))[2])
    expect = hashlib.sha256(f"{tid}:0:user:{canonical_json(first_item)}".encode()).hexdigest()[:16]
    assert rows[0]["message_id"] == expect and attrs(rows[0])["gateway"]["identity_source"] == "fallback"
    empty_id = by_text(rows, "wired it to")
    assert attrs(empty_id)["gateway"]["identity_source"] == "fallback" and empty_id["provider_uuid"] is None
    assert by_text(rows, "Finding the exporter")["message_id"] == "rs_6865fa9e0c7c8191a7"
    assert by_call(rows, "call_x9ZkQ")["message_id"] == "fc_6865fa9f2a3481919b"
    done = by_text(rows, "Done.")
    assert done["message_id"] == done["provider_uuid"] == "msg_6865fab3d2f88191"
    assert attrs(done)["gateway"]["identity_source"] == "native"
    assert by_call(rows, "call_x9ZkQ", "tool_result")["tool_name"] == "shell"
    assert {r["git_branch"] for r in rows} == {"feature/export"}
    git = attrs(rows[0])["codex"]["git"]
    assert git["repository_url"] == "https://gitlab.com/ada/exporter.git"
    assert not any("glpat" in str(v) for r in rows for v in r.values())
    # bare items carry no tokens and are never held
    assert carriers(rows) == []

    meta_rows, meta_stats = run("0e1f2a3b4c5d")
    assert meta_rows == [] and meta_stats.lines_skipped == Counter({"not_a_message": 1})


def test_bare_item_before_any_timestamp_is_held_then_inherits_later(tmp_path):
    path = tmp_path / "rollout-2025-07-01T00-00-00-early.jsonl"
    item = {"type": "message", "id": None, "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    path.write_text(json.dumps(item) + "\n")
    rows, stats = import_file(IMP, path)
    assert rows == [] and stats.rows_held == 1
    header = {"id": "h1", "timestamp": "2025-07-01T00:00:05Z"}
    path.write_text(json.dumps(item) + "\n" + json.dumps({"record_type": "state"}) + "\n" + json.dumps(header) + "\n")
    rows, _ = import_file(IMP, path)
    ts = parse_iso_us("2025-07-01T00:00:05Z")
    assert len(rows) == 1 and rows[0]["message_created_at"] == ts == rows[0]["conversation_started_at"]
    # (no header before it: no attributes.codex, not an empty object, as for a row that was never held)
    assert attrs(rows[0]) == {"gateway": {"identity_source": "fallback", "timestamp_source": "inherited_later"}}
    assert rows[0]["conversation_id"] == "rollout-2025-07-01T00-00-00-early"  # fixed at the first message


def test_a_legacy_document_without_any_timestamp_takes_the_epoch(tmp_path):
    """schema.md §3.2 rule 4: in a whole-document read, records with no timestamp of their own and none before
    or after them take the Unix epoch, marked `timestamp_source: "epoch"` (not `inherited_later`: nothing was
    inherited), and so does the conversation's start."""
    path = tmp_path / "rollout-2025-04-18-notime.json"
    path.write_text(json.dumps({"session": {"id": "notime"}, "items": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}))
    rows, _ = import_file(IMP, path)
    assert [(r["role"], r["message_created_at"], r["conversation_started_at"], r["date"]) for r in rows] == [
        ("user", 0, 0, "1970-01-01"), ("assistant", 0, 0, "1970-01-01")]
    assert {attrs(r)["gateway"]["timestamp_source"] for r in rows} == {"epoch"}


# --------------------------------------------------------------------------------------------- envelope, tokens


def test_after_order_098_carriers_and_columns():
    rows, stats = run("3c5e2f4a6b01")
    # T1 after reasoning + call_Rg1 -> the call; re-emits ignored; T2 -> apply_patch; T3 -> call_Test1;
    # T4 -> the final message; turn 2: T5 -> local_shell_call, T6 -> the last message
    expected = {
        by_call(rows, "call_Rg1")["part_id"]: (9120 - 6144, 412, 6144, None),
        by_call(rows, "call_Patch1")["part_id"]: (10240 - 9088, 187, 9088, None),
        by_call(rows, "call_Test1")["part_id"]: (11020 - 10112, 95, 10112, None),
        by_text(rows, "clamp it at 0")["part_id"]: (14210 - 11008, 233, 11008, None),
        by_call(rows, "call_Shell9")["part_id"]: (15010 - 14080, 51, 14080, None),
        by_text(rows, "never stack")["part_id"]: (16800 - 15104, 140, 15104, None),
    }
    assert {r["part_id"]: tokens(r) for r in carriers(rows)} == expected
    assert attrs(by_call(rows, "call_Rg1"))["codex"]["reasoning_output_tokens"] == 256
    # reasoning: encrypted-only gives no row, a summary gives one; ciphertext never stored
    assert stats.lines_skipped["encrypted_only"] == 1
    r = by_text(rows, "Locating the cart total")
    assert r["part_type"] == "reasoning" and r["content_text"] == "**Locating the cart total**\nLooking at how coupons are applied."
    assert not any("ENCRYPTED" in str(v) for row in rows for v in row.values())
    # injected context rows keep their roles
    assert by_text(rows, "<permissions instructions>")["role"] == "developer"
    assert by_text(rows, "<environment_context>")["role"] == "user"
    assert by_text(rows, "AGENTS.md instructions")["role"] == "user"
    # header and turn state
    first = rows[0]
    assert first["conversation_id"] == first["session_id"] == "019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b01"
    assert first["entrypoint"] == "codex_vscode" and first["client_version"] == "0.98.0"
    assert first["git_branch"] == "fix/cart-total" and first["is_sidechain"] is False
    assert first["git_remote"] is None and first["head_sha"] is None
    a = attrs(first)["codex"]
    assert a["source"] == "vscode" and a["model_provider"] == "openai"
    assert a["git"] == {"branch": "fix/cart-total", "commit_hash": "4e1c0d9a7b2f3e6d5c4b3a29180716f5e4d3c2b1",
                        "repository_url": "https://github.com/ada/shop.git"}  # fmt: skip
    assert not any("ghp_" in str(v) for row in rows for v in row.values())
    assert first["conversation_started_at"] == parse_iso_us("2026-01-15T14:02:10.600Z")
    call1 = by_call(rows, "call_Rg1")
    assert call1["model"] == "gpt-5.1-codex" and call1["permission_mode"] == "workspace-write"
    assert attrs(call1)["codex"]["effort"] == "medium" and call1["cwd"] == "/home/ada/src/shop"
    assert call1["prompt_id"] == by_text(rows, "cart total is wrong")["prompt_id"] is not None
    assert by_text(rows, "cart total is wrong")["model"] is None  # model on assistant rows only
    assert "effort" not in attrs(by_text(rows, "cart total is wrong"))["codex"]
    last = by_text(rows, "never stack")
    assert last["model"] == "gpt-5.1-codex-max" and last["permission_mode"] == "read-only"
    assert last["cwd"] == "/home/ada/src/shop/web" and attrs(last)["codex"]["effort"] == "high"
    assert last["prompt_id"] != call1["prompt_id"]
    # tool calls and results
    assert json.loads(call1["tool_args"]) == {"command": ["rg", "-n", "coupon", "src"], "workdir": "/home/ada/src/shop"}
    assert call1["content_text"] is None and call1["provider_type"] == "function_call"
    patch = by_call(rows, "call_Patch1")
    assert patch["tool_name"] == "apply_patch" and json.loads(patch["tool_args"]).startswith("*** Begin Patch")
    ok = by_call(rows, "call_Patch1", "tool_result")
    assert ok["tool_name"] == "apply_patch" and ok["is_error"] is False and json.loads(ok["status"]) == {"tool_status": "success"}
    fail = by_call(rows, "call_Test1", "tool_result")
    assert fail["is_error"] is True and json.loads(fail["status"]) == {"tool_status": "error"}
    assert by_call(rows, "call_Rg1", "tool_result")["is_error"] is False
    shell = by_call(rows, "call_Shell9")
    assert shell["tool_name"] == "local_shell" and json.loads(shell["tool_args"])["command"] == ["ls", "docs"]
    assert by_call(rows, "call_Shell9", "tool_result")["tool_name"] == "local_shell"
    ws = [r for r in rows if r["tool_name"] == "web_search"]
    assert len(ws) == 1 and ws[0]["tool_call_id"] is None and json.loads(ws[0]["status"]) == {"tool_status": "completed"}
    assert json.loads(ws[0]["tool_args"]) == {"type": "search", "query": "coupon stacking rules shop docs"}
    # compaction row
    comp = [r for r in rows if r["part_type"] == "compaction"]
    assert len(comp) == 1 and comp[0]["role"] == "system" and comp[0]["provider_type"] == "compacted"
    assert comp[0]["content_text"].startswith("Summary: fixed") and comp[0]["compact_metadata"] is None
    # raw_frame: ids, types, timestamp only
    assert json.loads(call1["raw_frame"]) == {"timestamp": "2026-01-15T14:02:17.500Z", "type": "response_item",
                                              "payload": {"type": "function_call", "call_id": "call_Rg1"}}  # fmt: skip
    assert by_text(rows, "cart total is wrong")["provider_subtype"] == "input_text"


def test_function_call_output_array_with_image_data_uri_stores_only_text():
    rows, _ = run("3c5e2f4a6b01")
    res = by_call(rows, "call_View1", "tool_result")
    assert res["content_text"] == "Image: /home/ada/shot.png" and res["tool_name"] == "view_image"
    assert not any("iVBOR" in str(v) for r in rows for v in r.values())


def test_before_order_034_usage_lands_on_the_first_assistant_message_after_the_event():
    rows, stats = run("5e4d3c2b1a09")
    expected = {
        by_text(rows, "Inspecting the health route")["part_id"]: (5012, 318, 0, None),
        by_call(rows, "call_h2")["part_id"]: (6120 - 4992, 96, 4992, None),
        by_text(rows, "calls `db.ping()`")["part_id"]: (6410 - 6016, 151, 6016, None),
    }
    assert {r["part_id"]: tokens(r) for r in carriers(rows)} == expected
    assert by_call(rows, "call_h1")["output_tokens"] is None
    # no turn_context in 0.34: no model, sandbox or turn id; the header cwd
    assert {r["model"] for r in rows} == {None} and {r["permission_mode"] for r in rows} == {None}
    assert {r["cwd"] for r in rows} == {"/Users/ada/work/api"} and {r["prompt_id"] for r in rows} == {None}
    assert by_call(rows, "call_h1", "tool_result")["is_error"] is True  # metadata.exit_code 7
    # scp-style remote stays as written
    assert attrs(rows[0])["codex"]["git"]["repository_url"] == "git@github.com:ada/api.git"
    assert rows[0]["is_sidechain"] is None  # no source, no thread_source


def test_before_order_057_two_turns_model_switch_and_sandbox_shapes():
    rows, _ = run("c3d4e5f60718")
    expected = {
        by_text(rows, "Planning the flag")["part_id"]: (8200 - 3200, 240, 3200, None),
        by_text(rows, "Added `--json`")["part_id"]: (9100 - 8192, 88, 8192, None),
        by_text(rows, "Documented the flag")["part_id"]: (9800 - 9088, 410, 9088, None),
    }
    assert {r["part_id"]: tokens(r) for r in carriers(rows)} == expected
    assert by_text(rows, "Planning the flag")["permission_mode"] == "workspace-write"  # sandbox_policy.mode
    doc = by_text(rows, "Documented the flag")
    assert doc["permission_mode"] == "danger-full-access" and doc["model"] == "gpt-5"  # string sandbox_policy
    assert doc["prompt_id"] == "1f0b8c2e-0000-4000-8000-00000000a002"
    assert by_text(rows, "Added `--json`")["model"] == "gpt-5-codex"


def test_compactions_after_order_carry_their_request_usage_and_the_turn_model():
    """codex.md §6.2: a context compaction is a model request of its own (the whole window as input) whose
    summary is never written as a message: its token_count finds no assistant message waiting, and the
    `compacted` record that follows carries it, priced with the turn's model. Nothing is left unattached."""
    rows, stats = run("019cd8b0-0000-7000-8000-0000000c0a9e")
    comp = [r for r in rows if r["part_type"] == "compaction"]
    assert [(r["content_text"][:40], r["model"], *tokens(r)) for r in comp] == [
        ("Summary: the cart reads prices per SKU; ", "gpt-5.1-codex", 212300, 2410, 0, None),
        ("Summary: cart prices are batched through", "gpt-5.1-codex-max", 18650 - 14080, 1180, 14080, None)]
    assert [attrs(r)["codex"]["reasoning_output_tokens"] for r in comp] == [640, 256]
    assert stats.usage_unattached == 0
    # the responses around them keep their own usage (the recompute re-emits add nothing)
    assert tokens(by_text(rows, "I will batch them")) == (196020 - 180224, 95, 180224, None)
    assert tokens(by_text(rows, "Batched: `price_many()`")) == (14200, 160, 0, None)
    assert tokens(by_text(rows, "Only the changelog entry")) == (9400, 70, 0, None)
    # every usage of the file is counted once: the rows add up to the last total_token_usage
    last = [e["payload"]["info"]["total_token_usage"] for e in envelopes(fx("019cd8b0-0000-7000-8000-0000000c0a9e"))
            if e["payload"].get("type") == "token_count"][-1]
    assert sum((r["input_tokens"] or 0) + (r["cache_read_tokens"] or 0) for r in rows) == last["input_tokens"]
    assert sum(r["output_tokens"] or 0 for r in rows) == last["output_tokens"]


def test_compaction_before_order_carries_the_pending_usage():
    """codex.md §6.2, before order (0.34–0.58): the compaction request's token_count is pending when the
    `compacted` record comes; the compaction row carries it instead of it being dropped at that boundary."""
    rows, stats = run("019a00c0-0000-7000-8000-000000000b50")
    assert [(r["role"], r["part_type"], r["model"], *tokens(r)) for r in carriers(rows)] == [
        ("assistant", "reasoning", "gpt-5-codex", 150200 - 142336, 205, 142336, None),  # the first after its event
        ("system", "compaction", "gpt-5-codex", 158900, 1870, 0, None),
        ("assistant", "text", "gpt-5-codex", 6400, 120, 0, None)]
    assert by_text(rows, "Summary: migrating")["output_tokens"] == 1870
    assert stats.usage_unattached == 0


def test_ai_gateway_usage_counts_a_compaction_once_under_its_model():
    """schema.md §6: a Codex carrier is its own response (usage_key = part_id), so the compaction row is one
    row of ai_gateway_usage, with the turn's model, and the per-model sums hold every token of the file."""
    import polars as pl

    from hypaware_tui.core.schema import usage_view

    rows, _ = run("019cd8b0-0000-7000-8000-0000000c0a9e")
    usage = usage_view(frame_from_rows(rows).lazy()).collect()
    assert usage.height == len(carriers(rows)) == 6
    comp_ids = {r["part_id"] for r in rows if r["part_type"] == "compaction"}
    assert set(usage.filter(usage["usage_key"].is_in(list(comp_ids)))["model"].to_list()) == {"gpt-5.1-codex",
                                                                                             "gpt-5.1-codex-max"}
    per_model = {m: (i, o) for m, i, o in usage.group_by("model").agg(
        (pl.col("input_tokens") + pl.col("cache_read_tokens")).sum(), pl.col("output_tokens").sum()).rows()}
    assert per_model == {"gpt-5.1-codex": (180400 + 196020 + 212300 + 14200, 310 + 95 + 2410 + 160),
                         "gpt-5.1-codex-max": (18650 + 9400, 1180 + 70)}


def test_a_stop_between_the_compaction_token_count_and_its_compacted_line_gives_the_whole_file_rows(tmp_path):
    """storage.md §5.5 with codex.md §9: the compaction's usage waits in the parser state (the orphan) across an
    incremental stop right after its token_count (and after the recompute re-emit); the next pass puts it on
    the compaction row, exactly as one pass does."""
    for tag in ("019cd8b0-0000-7000-8000-0000000c0a9e", "019a00c0-0000-7000-8000-000000000b50"):
        path = fx(tag)
        data = path.read_bytes()
        starts = [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A]
        cuts = [starts[i] for i, ln in enumerate(source_lines(path)[:-1]) if b'"type":"compacted"' in ln]
        cuts += [starts[i - 1] for i, ln in enumerate(source_lines(path)[:-1]) if b'"type":"compacted"' in ln]
        whole, whole_stats = import_file(IMP, path)
        for cut in cuts:
            pieces, piece_stats = import_file(IMP, path, pieces=[cut])
            assert rows_multiset(pieces) == rows_multiset(whole), (tag, cut)
            assert piece_stats.usage_unattached == whole_stats.usage_unattached == 0
        assert all(r["output_tokens"] for r in whole if r["part_type"] == "compaction")


def test_a_reemit_after_the_compacted_record_adds_nothing(tmp_path):
    """codex.md §6.1 rule 2: the recompute token_count some versions write after `compacted` repeats the total
    (`last` all zero): it is ignored, whether it comes before or after the `compacted` line."""
    def tc(total: dict, last: dict) -> dict:
        return {"type": "token_count", "info": {"total_token_usage": total, "last_token_usage": last}}

    u1 = {"input_tokens": 1000, "cached_input_tokens": 800, "output_tokens": 50}
    c1 = {"input_tokens": 201000, "cached_input_tokens": 0, "output_tokens": 2500}
    t2 = {"input_tokens": 202000, "cached_input_tokens": 800, "output_tokens": 2550}
    zero = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "total_tokens": 4000}
    u3 = {"input_tokens": 5000, "cached_input_tokens": 0, "output_tokens": 40}
    t3 = {"input_tokens": 207000, "cached_input_tokens": 800, "output_tokens": 2590}
    for reemit_first in (False, True):
        recs = [_e("00", "session_meta", {"id": "t", "timestamp": "2026-01-01T00:00:00Z"}),
                _e("01", "turn_context", {"model": "gpt-5.2-codex", "cwd": "/r"}),
                _e("02", "response_item", {"type": "message", "role": "user", "content": "go"}),
                _e("03", "response_item", {"type": "message", "role": "assistant", "content": "working"}),
                _e("04", "event_msg", tc(u1, u1)),
                _e("05", "turn_context", {"model": "gpt-5.2-codex", "cwd": "/r"}),
                _e("06", "event_msg", tc(t2, c1))]
        compacted = [_e("07", "compacted", {"message": "SUMMARY", "replacement_history": None}),
                     _e("07", "event_msg", tc(t2, zero))]
        recs += compacted[::-1] if reemit_first else compacted
        recs += [_e("08", "event_msg", {"type": "context_compacted"}),
                 _e("09", "response_item", {"type": "message", "role": "assistant", "content": "after"}),
                 _e("10", "event_msg", tc(t3, u3)),
                 _e("11", "event_msg", {"type": "turn_aborted", "reason": "interrupted"})]
        rows, stats = import_file(IMP, _lines_file(tmp_path, recs))
        assert [(r["content_text"], r["model"], *tokens(r)) for r in carriers(rows)] == [
            ("working", "gpt-5.2-codex", 200, 50, 800, None), ("SUMMARY", "gpt-5.2-codex", 201000, 2500, 0, None),
            ("after", "gpt-5.2-codex", 5000, 40, 0, None)], reemit_first
        assert stats.usage_unattached == 0
        assert sum((r["input_tokens"] or 0) + (r["cache_read_tokens"] or 0) for r in rows) == t3["input_tokens"]


def test_cache_writes_are_stored_and_net_input_never_goes_below_zero(tmp_path):
    """codex.md §6.1 rule 4: `cache_write_tokens = cache_write_input_tokens`, and `input_tokens = max(0, input -
    cached)`. A response reporting more cached tokens than input stored -24 input tokens, which `hyp query
    overview` summed into its input column; a cache write was stored as null (mutation audit: no test failed
    with either)."""
    def tc(last: dict) -> dict:
        return {"type": "token_count", "info": {"last_token_usage": last}}

    recs = [_e("00", "session_meta", {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "cli_version": "0.120.0"}),
            _e("01", "turn_context", {"model": "gpt-5.2-codex", "cwd": "/r"}),
            _e("02", "response_item", {"type": "message", "role": "user", "content": "go"}),
            _e("03", "response_item", {"type": "message", "role": "assistant", "content": "first"}),
            _e("04", "event_msg", tc({"input_tokens": 1200, "cached_input_tokens": 1000,
                                      "cache_write_input_tokens": 150, "output_tokens": 30})),
            _e("05", "response_item", {"type": "message", "role": "assistant", "content": "second"}),
            _e("06", "event_msg", tc({"input_tokens": 40, "cached_input_tokens": 64, "output_tokens": 5})),
            _e("07", "event_msg", {"type": "task_complete"})]
    rows, stats = import_file(IMP, _lines_file(tmp_path, recs))
    # (input, output, cache read, cache write)
    assert [(r["content_text"], *tokens(r)) for r in carriers(rows)] == [
        ("first", 200, 30, 1000, 150), ("second", 0, 5, 64, None)]
    assert stats.usage_unattached == 0


def test_usage_with_no_message_waiting_is_not_put_on_a_compaction_after_other_rows(tmp_path):
    """codex.md §6.2: only a `compacted` record that is the next row carries the orphan usage. A tool output, a
    user message or a new assistant message in between drops it (`usage_unattached`), and that compaction
    carries nothing."""
    t1 = {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 3}
    t2 = {"input_tokens": 25, "cached_input_tokens": 0, "output_tokens": 7}
    between = [
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u2"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a2"}]},
        {"type": "task_complete"},
    ]
    for item in between:
        path = _rollout(tmp_path, [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u1"}]},
            {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "c1"},
            {"type": "token_count", "info": {"last_token_usage": t1, "total_token_usage": t1}},
            {"type": "token_count", "info": {"total_token_usage": t2}},
            item])
        lines = path.read_text().splitlines()
        lines.append(json.dumps({"timestamp": "2026-01-01T00:10:00Z", "type": "compacted", "payload": {"message": "S"}}))
        path.write_text("\n".join(lines) + "\n")
        rows, stats = import_file(IMP, path)
        assert [r["content_text"] for r in carriers(rows)] == [None], item  # the call only
        assert by_text(rows, "S")["output_tokens"] is None and by_text(rows, "S")["model"] is None
        assert stats.usage_unattached == 1


def test_fork_replayed_compaction_carries_nothing_and_the_child_compaction_carries_its_usage(tmp_path):
    """codex.md §7 rule 3: a replayed compaction, its token_count included, is the parent's: no tokens, no
    model. The child's own compaction after the replay carries its request's usage as usual."""
    def tc(total: dict, last: dict) -> dict:
        return {"type": "token_count", "info": {"total_token_usage": total, "last_token_usage": last}}

    pu = {"input_tokens": 100, "cached_input_tokens": 0, "output_tokens": 5}
    pc = {"input_tokens": 9000, "cached_input_tokens": 0, "output_tokens": 700}
    ptot = {"input_tokens": 9100, "cached_input_tokens": 0, "output_tokens": 705}
    cu = {"input_tokens": 300, "cached_input_tokens": 0, "output_tokens": 9}
    ctot = {"input_tokens": 9400, "cached_input_tokens": 0, "output_tokens": 714}
    cc = {"input_tokens": 12000, "cached_input_tokens": 0, "output_tokens": 800}
    ctot2 = {"input_tokens": 21400, "cached_input_tokens": 0, "output_tokens": 1514}
    recs = [
        {"timestamp": "2026-01-01T00:00:10Z", "type": "session_meta", "payload": {"id": "child", "timestamp": "2026-01-01T00:00:10Z"}},
        {"timestamp": "2026-01-01T00:00:10Z", "type": "session_meta", "payload": {"id": "parent", "timestamp": "2026-01-01T00:00:00Z"}},
        {"timestamp": "2026-01-01T00:00:10Z", "type": "turn_context", "payload": {"model": "gpt-parent", "cwd": "/r"}},
        {"timestamp": "2026-01-01T00:00:10Z", "type": "response_item", "payload": {"type": "message", "role": "user", "content": "q"}},
        {"timestamp": "2026-01-01T00:00:10Z", "type": "response_item", "payload": {"type": "message", "role": "assistant", "content": "pa"}},
        {"timestamp": "2026-01-01T00:00:10Z", "type": "event_msg", "payload": tc(pu, pu)},
        {"timestamp": "2026-01-01T00:00:10Z", "type": "event_msg", "payload": tc(ptot, pc)},
        {"timestamp": "2026-01-01T00:00:10Z", "type": "compacted", "payload": {"message": "parent summary"}},
        {"timestamp": "2026-01-01T00:00:15Z", "type": "turn_context", "payload": {"model": "gpt-child", "cwd": "/r"}},
        {"timestamp": "2026-01-01T00:00:15Z", "type": "event_msg", "payload": tc(ptot, pc)},  # the child's re-emit
        {"timestamp": "2026-01-01T00:00:16Z", "type": "response_item", "payload": {"type": "message", "role": "user", "content": "go on"}},
        {"timestamp": "2026-01-01T00:00:17Z", "type": "response_item", "payload": {"type": "message", "role": "assistant", "content": "ca"}},
        {"timestamp": "2026-01-01T00:00:17Z", "type": "event_msg", "payload": tc(ctot, cu)},
        {"timestamp": "2026-01-01T00:00:20Z", "type": "event_msg", "payload": tc(ctot2, cc)},
        {"timestamp": "2026-01-01T00:00:20Z", "type": "compacted", "payload": {"message": "child summary"}},
    ]
    rows, stats = import_file(IMP, _lines_file(tmp_path, recs, "rollout-2026-01-01T00-00-10-child.jsonl"))
    parent = by_text(rows, "parent summary")
    assert attrs(parent)["codex"]["replayed_from_parent"] is True
    assert tokens(parent) == (None, None, None, None) and parent["model"] is None
    assert [(r["content_text"], r["model"], *tokens(r)) for r in carriers(rows)] == [
        ("ca", "gpt-child", 300, 9, 0, None), ("child summary", "gpt-child", 12000, 800, 0, None)]
    assert stats.usage_unattached == 0


def _usage_record(rid: str, u: dict, thread: str = "t") -> dict:
    return {"thread_id": thread, "turn_id": "turn1", "session_id": thread, "root_turn_id": "turn1",
            "response_id": rid, "usage": u, "turn_token_usage": u, "thread_token_usage": u}


def test_a_compaction_recorded_only_as_a_token_usage_record_is_counted_once(tmp_path):
    """0.154 on (openai/codex#47003): a compaction's request is written as a `token_usage_record` only, the
    token_count totals do not move, and the `compacted` record names it by `compaction_response_id`. The
    compaction row carries that record's usage; every other record is counted only (its response's
    token_count carries it), and `latest_token_usage_record` (a snapshot) is never counted."""
    def tc(total: dict, last: dict) -> dict:
        return {"type": "token_count", "info": {"total_token_usage": total, "last_token_usage": last}}

    u1 = {"input_tokens": 100000, "cached_input_tokens": 90000, "output_tokens": 300, "reasoning_output_tokens": 20}
    c1 = {"input_tokens": 120000, "cached_input_tokens": 0, "output_tokens": 2000, "reasoning_output_tokens": 500}
    u2 = {"input_tokens": 8000, "cached_input_tokens": 0, "output_tokens": 40, "reasoning_output_tokens": 0}
    t2 = {k: u1[k] + u2[k] for k in u1}
    compacted = {"message": "", "window_number": 1, "compaction_response_id": "resp_c",
                 "latest_token_usage_record": _usage_record("resp_c", c1)}

    def file(extra_growth: bool, record_id: str = "resp_c", thread: str = "t") -> Path:
        tot1 = {k: u1[k] + c1[k] for k in u1} if extra_growth else u1
        recs = [_e("00", "session_meta", {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "cli_version": "0.154.0"}),
                _e("01", "turn_context", {"model": "gpt-5.6-sol", "cwd": "/r"}),
                _e("02", "response_item", {"type": "message", "role": "user", "content": "go"}),
                _e("03", "response_item", {"type": "message", "role": "assistant", "content": "a1"}),
                _e("04", "token_usage_record", _usage_record("resp_1", u1)),
                _e("04", "event_msg", tc(u1, u1)),
                _e("05", "token_usage_record", _usage_record(record_id, c1, thread))]
        if extra_growth:  # a build whose token_count carries the compaction too: still counted once
            recs.append(_e("05", "event_msg", tc(tot1, c1)))
        recs += [_e("06", "compacted", compacted),
                 _e("06", "event_msg", tc(tot1, u1)),  # the totals did not move (a re-emit)
                 _e("07", "response_item", {"type": "message", "role": "assistant", "content": "a2"}),
                 _e("08", "token_usage_record", _usage_record("resp_2", u2)),
                 _e("08", "event_msg", tc({k: tot1[k] + u2[k] for k in u1} if extra_growth else t2, u2)),
                 _e("09", "event_msg", {"type": "task_complete"})]
        return _lines_file(tmp_path, recs)

    expected = [("a1", 10000, 300, 90000, None), ("", 120000, 2000, 0, None), ("a2", 8000, 40, 0, None)]
    for extra_growth in (False, True):
        rows, stats = import_file(IMP, file(extra_growth))
        assert [(r["content_text"], *tokens(r)) for r in carriers(rows)] == expected, extra_growth
        comp = [r for r in rows if r["part_type"] == "compaction"][0]
        assert comp["model"] == "gpt-5.6-sol" and attrs(comp)["codex"]["reasoning_output_tokens"] == 500
        assert stats.usage_unattached == 0
    # a record that is not the one the compaction names, or another thread's, is not counted
    for rid, thread in (("resp_other", "t"), ("resp_c", "another-thread")):
        rows, _ = import_file(IMP, file(False, rid, thread))
        assert [r["content_text"] for r in carriers(rows)] == ["a1", "a2"], (rid, thread)


def test_a_compaction_whose_usage_is_all_zero_carries_nothing(tmp_path):
    """A remote compaction makes no request of its own; after the totals were reset, its recount event is a
    counted token_count of all zeros. The compaction row does not carry it: a usage row of 0 tokens, priced
    under a model, would count a response that was never made (review)."""
    zero = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "reasoning_output_tokens": 0}
    u1 = {"input_tokens": 500, "cached_input_tokens": 0, "output_tokens": 30, "reasoning_output_tokens": 0}
    recs = [_e("00", "session_meta", {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "cli_version": "0.94.0"}),
            _e("01", "turn_context", {"model": "gpt-5.1-codex", "cwd": "/r"}),
            _e("02", "response_item", {"type": "message", "role": "user", "content": "go"}),
            _e("03", "response_item", {"type": "message", "role": "assistant", "content": "a1"}),
            _e("04", "event_msg", {"type": "token_count", "info": {"total_token_usage": u1, "last_token_usage": u1}}),
            _e("05", "event_msg", {"type": "token_count", "info": {"total_token_usage": zero, "last_token_usage": zero}}),
            _e("06", "compacted", {"message": "summary"}),
            _e("07", "event_msg", {"type": "task_complete"})]
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    assert [(r["content_text"], *tokens(r)) for r in carriers(rows)] == [("a1", 500, 30, 0, None)]
    (comp,) = [r for r in rows if r["part_type"] == "compaction"]
    assert (comp["model"], comp["input_tokens"], comp["output_tokens"]) == (None, None, None)


def test_a_compaction_first_in_an_after_order_file_does_not_latch_it_before(tmp_path):
    """A thread that compacts before its first response (a resumed or forked session whose context is full): the
    compaction's token_count is the first counted one, with no message before it, and latched the file `before`
    (codex.md §6.2 rule 1); every later usage then went on the next response and the last was dropped (review).
    A compaction's request says nothing of the order: the next response's token_count decides. A true
    before-order file that compacts first keeps its order."""
    def tc(total: dict, last: dict) -> dict:
        return {"type": "token_count", "info": {"total_token_usage": total, "last_token_usage": last}}

    def u(i: int, o: int) -> dict:
        return {"input_tokens": i, "cached_input_tokens": 0, "output_tokens": o, "reasoning_output_tokens": 0}

    c1, u1, u2 = u(90000, 900), u(1000, 10), u(2000, 20)
    t1 = c1
    t2 = {k: t1[k] + u1[k] for k in t1}
    t3 = {k: t2[k] + u2[k] for k in t1}
    head = [_e("00", "session_meta", {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "cli_version": "0.94.0"}),
            _e("01", "turn_context", {"model": "gpt-5.1-codex", "cwd": "/r"}),
            _e("02", "event_msg", tc(t1, c1)),
            _e("03", "compacted", {"message": "summary"}),
            _e("04", "event_msg", {"type": "task_started", "turn_id": "x"}),
            _e("05", "response_item", {"type": "message", "role": "user", "content": "go"})]
    after = head + [_e("06", "response_item", {"type": "message", "role": "assistant", "content": "a1"}),
                    _e("07", "event_msg", tc(t2, u1)),
                    _e("08", "response_item", {"type": "message", "role": "assistant", "content": "a2"}),
                    _e("09", "event_msg", tc(t3, u2)),
                    _e("10", "event_msg", {"type": "task_complete"})]
    path = _lines_file(tmp_path, after)
    rows, stats = import_file(IMP, path)
    assert [(r["content_text"], *tokens(r)) for r in carriers(rows)] == [
        ("summary", 90000, 900, 0, None), ("a1", 1000, 10, 0, None), ("a2", 2000, 20, 0, None)]
    assert stats.usage_unattached == 0
    data = path.read_bytes()
    for cut in (i + 1 for i, c in enumerate(data) if c == 0x0A):  # (the latch undone across a stop too)
        pieces, _ = import_file(IMP, path, pieces=[cut])
        assert rows_multiset(pieces) == rows_multiset(rows), cut
    before = head + [_e("06", "event_msg", tc(t2, u1)),
                     _e("07", "response_item", {"type": "message", "role": "assistant", "content": "a1"}),
                     _e("08", "event_msg", tc(t3, u2)),
                     _e("09", "response_item", {"type": "message", "role": "assistant", "content": "a2"}),
                     _e("10", "event_msg", {"type": "task_complete"})]
    rows, stats = import_file(IMP, _lines_file(tmp_path, before, "rollout-2026-01-01T00-00-00-b.jsonl"))
    assert [(r["content_text"], *tokens(r)) for r in carriers(rows)] == [
        ("summary", 90000, 900, 0, None), ("a1", 1000, 10, 0, None), ("a2", 2000, 20, 0, None)]


def _prefix_rows(path: Path, n_lines: int, tmp_path: Path) -> list[dict]:
    data = path.read_bytes()
    cut = 0
    for _ in range(n_lines):
        cut = data.index(b"\n", cut) + 1
    copy = tmp_path / path.name
    copy.write_bytes(data[:cut])
    rows, _ = import_file(IMP, copy)
    return rows


def test_reemits_and_rate_limit_only_events_add_nothing(tmp_path):
    rows, _ = run("3c5e2f4a6b01")
    evs = [e for e in envelopes(fx("3c5e2f4a6b01")) if e["payload"].get("type") == "token_count"]
    totals = [e["payload"]["info"]["total_token_usage"] for e in evs if e["payload"]["info"]]
    assert any(e["payload"]["info"] is None for e in evs) and len(totals) > len({json.dumps(t) for t in totals})
    # per turn, the usage on the rows equals the change of total_token_usage over the turn
    turn1 = [r for r in rows if r["message_created_at"] < parse_iso_us("2026-01-15T14:03:00Z")]
    assert sum(r["output_tokens"] or 0 for r in turn1) == 412 + 187 + 95 + 233
    assert sum((r["input_tokens"] or 0) + (r["cache_read_tokens"] or 0) for r in turn1) == 9120 + 10240 + 11020 + 14210


def test_after_order_candidate_waits_for_its_token_count(tmp_path):
    path = fx("3c5e2f4a6b01")
    lines = source_lines(path)
    i_call = next(i for i, ln in enumerate(lines) if b"call_Rg1" in ln)
    held = _prefix_rows(path, i_call + 1, tmp_path)
    assert not any(r["tool_call_id"] == "call_Rg1" for r in held)  # the candidate is in the state
    released = _prefix_rows(path, i_call + 2, tmp_path)
    assert by_call(released, "call_Rg1")["output_tokens"] == 412


def test_ollama_session_rows_released_at_task_complete_with_null_tokens(tmp_path):
    rows, stats = run("0000000011aa")
    haiku = by_text(rows, "Borrowed for a while")
    assert tokens(haiku) == (None, None, None, None) and haiku["model"] == "qwen3.5:cloud"
    assert attrs(haiku)["codex"]["model_provider"] == "ollama-launch"
    assert {r["client_version"] for r in rows} == {"0.0.0"}
    err = [r for r in rows if r["part_type"] == "error"]
    assert len(err) == 1
    e = err[0]
    assert e["role"] == "system" and e["is_error"] is True and e["model"] is None
    assert e["provider_type"] == "event_msg" and e["provider_subtype"] == "error"
    assert json.loads(e["status"]) == {"error_message": e["content_text"]} and "not found" in e["content_text"]
    assert stats.usage_unattached == 0 and carriers(rows) == []
    path = fx("0000000011aa")
    lines = source_lines(path)
    i_done = next(i for i, ln in enumerate(lines) if b"task_complete" in ln)
    assert not any("Borrowed" in (r["content_text"] or "") for r in _prefix_rows(path, i_done, tmp_path))
    assert any("Borrowed" in (r["content_text"] or "") for r in _prefix_rows(path, i_done + 1, tmp_path))


def test_aborted_turn_emits_the_candidate_without_tokens_and_does_not_shift_usage():
    rows, _ = run("00000000ab00")
    assert tokens(by_text(rows, "still running")) == (None, None, None, None)
    assert tokens(by_call(rows, "call_Mig")) == (5000 - 2048, 120, 2048, None)
    assert tokens(by_text(rows, "Pending: 0042")) == (6200 - 5120, 45, 5120, None)
    assert by_text(rows, "<turn_aborted>")["role"] == "user"
    assert {r["client_version"] for r in rows} == {"0.0.0-test"}


@pytest.mark.parametrize("tag, version", [("0000000011aa", "0.0.0"), ("00000000085a", "0.118.0-alpha.2"),
                                          ("00000000ab00", "0.0.0-test")])  # fmt: skip
def test_cli_version_is_verbatim_and_changes_no_behaviour(tag, version, tmp_path):
    src = fx(tag)
    rows, _ = import_file(IMP, src)
    other = tmp_path / src.name
    data = src.read_bytes().replace(f'"cli_version":"{version}"'.encode(), b'"cli_version":"9.99.0"')
    assert data != src.read_bytes()
    other.write_bytes(data)
    shifted = len(b"9.99.0") - len(version.encode())
    rows2, _ = import_file(IMP, other, file=source_file_for(IMP, other, path_hash=rows[0]["source_path_hash"]))
    assert {r["client_version"] for r in rows} == {version} and {r["client_version"] for r in rows2} == {"9.99.0"}

    def strip(rs):
        return [{k: v for k, v in r.items() if k not in ("client_version", "source_offset")} for r in rs]

    assert strip(rows) == strip(rows2)
    assert [r["source_offset"] - shifted for r in rows2 if r["source_offset"]] == [r["source_offset"] for r in rows if r["source_offset"]]


def test_windows_cwd_is_usable_and_crlf_lines_parse():
    rows, stats = run("000000000c0c")
    assert "malformed" not in stats.lines_skipped
    assert by_text(rows, "where is main")["cwd"] == "C:\\Users\\ada\\src\\app"  # relative turn cwd ignored
    assert by_text(rows, "cmd\\main.go")["cwd"] == "C:\\Users\\ada\\src\\app\\cmd"
    assert usable_cwd("C:\\Users\\x") and usable_cwd("d:/work") and usable_cwd("\\\\server\\share")
    assert usable_cwd("/home/x") == "/home/x"
    for bad in ("", "   ", "src", "../x", "C:relative", None, 5, ["/x"]):
        assert usable_cwd(bad) is None


# --------------------------------------------------------------------------------------------- forks


def test_fork_replay_is_flagged_without_tokens_and_child_usage_attaches():
    rows, _ = run("00000000c0de")
    replayed = [r for r in rows if attrs(r)["codex"].get("replayed_from_parent")]
    own = [r for r in rows if not attrs(r)["codex"].get("replayed_from_parent")]
    assert [r["content_text"] for r in own] == ["now make the coupon optional",
                                                 "`coupon` now defaults to None and is skipped when absent."]  # fmt: skip
    assert len(replayed) == 6 and all(tokens(r) == (None, None, None, None) for r in replayed)
    native = {attrs(r)["codex"].get("native_item_id") for r in replayed} - {None}
    assert native == {"msg_parent_user_1", "rs_parent_1", "fc_parent_1", "msg_parent_asst_1"}
    for r in replayed:
        assert attrs(r)["gateway"]["identity_source"] == "fallback" and not r["message_id"].startswith(("msg_", "rs_", "fc_"))
        assert r["provider_uuid"] is None
    # the child's header is the first session_meta; the copy changes nothing
    assert {r["conversation_id"] for r in rows} == {"019cae10-0000-7c00-8000-00000000c0de"}
    assert {r["client_version"] for r in rows} == {"0.121.0"}
    assert {r["parent_thread_id"] for r in rows} == {"019cad00-0000-7a00-8000-0000000000aa"}
    assert attrs(rows[0])["codex"]["forked_from_id"] == "019cad00-0000-7a00-8000-0000000000aa"
    # the child's first own token_count re-emits the replayed total: ignored; its later usage attaches
    assert {r["part_id"]: tokens(r) for r in carriers(rows)} == {own[1]["part_id"]: (9500 - 8064, 222, 8064, None)}
    # replayed tool results still find their tool names
    assert by_call(rows, "call_P1", "tool_result")["tool_name"] == "shell"


def test_spawned_subagent_replay_ends_by_time_and_uses_total_deltas():
    rows, _ = run("444455556666")
    parent = "019e4a40-aaaa-7bbb-8ccc-ddddeeeeffff"
    assert {r["is_sidechain"] for r in rows} == {True}
    assert {r["parent_thread_id"] for r in rows} == {parent} == {r["session_id"] for r in rows}
    a = attrs(rows[0])["codex"]
    assert a["source"]["subagent"]["thread_spawn"]["agent_nickname"] == "Kepler"
    assert a["agent_nickname"] == "Kepler" and a["agent_role"] == "explorer"
    replayed = [r["content_text"] for r in rows if attrs(r)["codex"].get("replayed_from_parent")]
    assert replayed == ["find every caller of total()", "I'll spawn an explorer."]
    assert {r["part_id"]: tokens(r) for r in carriers(rows)} == {
        by_call(rows, "call_S1")["part_id"]: (3000 - 2944, 75, 2944, None),
        by_text(rows, "Two callers")["part_id"]: (3600 - 3456, 60, 3456, None),
    }
    assert attrs(by_text(rows, "Two callers"))["codex"]["effort"] == "low"


def test_subagent_with_a_single_session_meta_has_no_replay():
    rows, _ = run("555566667777")
    assert {r["is_sidechain"] for r in rows} == {True} and {r["user_type"] for r in rows} == {"subagent"}
    assert {r["parent_thread_id"] for r in rows} == {"019e89ff-0000-7000-8000-000000000001"}
    assert {r["session_id"] for r in rows} == {"019e89ff-0000-7000-8000-000000000001"}
    assert {r["conversation_id"] for r in rows} == {"019e8a00-2222-7333-8444-555566667777"}
    assert not any("replayed_from_parent" in attrs(r)["codex"] for r in rows)
    assert by_text(rows, "No secrets")["permission_mode"] == "read-only"  # a string turn_context.sandbox
    assert by_text(rows, "No secrets")["output_tokens"] == 90


def test_source_string_object_and_absent_drive_is_sidechain():
    def header(**kw):
        return {"timestamp": "2026-01-01T00:00:00Z", "type": "session_meta", "payload": {"id": "t", **kw}}

    cases = [({"source": "cli"}, False, None), ({"source": {"subagent": "review"}}, True, None),
             ({"source": {"subagent": {"other": "guardian"}}}, True, None), ({"thread_source": "guardian_review"}, False, None),
             ({}, None, None), ({"forked_from_id": "p1"}, None, "p1"),
             ({"parent_thread_id": "p2", "forked_from_id": "p1"}, None, "p2")]  # fmt: skip
    for kw, side, parent in cases:
        p = CodexParser(SourceFile("codex", "/x/rollout-a.jsonl", "h" * 16, "incremental"), None, Window(), ParseStats())
        p.feed(json.dumps(header(**kw)).encode(), 0, 1)
        p.feed(json.dumps({"timestamp": "2026-01-01T00:00:01Z", "type": "response_item",
                           "payload": {"type": "message", "role": "user", "content": "x"}}).encode(), 1, 2)  # fmt: skip
        row = p.drain()[0]
        assert (row["is_sidechain"], row["parent_thread_id"]) == (side, parent), kw


# --------------------------------------------------------------------------------------------- item_completed


def test_item_completed_in_legacy_history_mode_adds_no_rows():
    for tag in ("000000000117", "000000000146"):
        rows, stats = run(tag)
        assert [r["provider_type"] for r in rows] == ["message", "message"], tag
        assert stats.records_by_type["event_msg/item_completed"] >= 1
        assert "duplicate_item" not in stats.lines_skipped
        assert sum(r["output_tokens"] or 0 for r in rows) == (50 if tag.endswith("117") else 70)


def test_item_completed_in_paginated_mode_maps_items_and_dedupes_per_turn():
    rows, stats = run("000000000149")
    assert stats.lines_skipped["duplicate_item"] == 4
    u1 = [r for r in rows if r["message_id"] == "item_U1"]
    assert [(r["part_type"], r["content_text"]) for r in u1] == [("text", "what does `make lint` run?"), ("image", None)]
    assert {r["provider_type"] for r in u1} == {"item_completed"} and {r["provider_subtype"] for r in u1} == {"UserMessage"}
    assert json.loads(u1[0]["raw_frame"])["payload"] == {"type": "item_completed", "item": {"type": "UserMessage", "id": "item_U1"}}
    # AgentMessage repeating the response item (response first): one row, from the response item
    lint = [r for r in rows if r["content_text"] == "`make lint` runs ruff and mypy."]
    assert len(lint) == 1 and lint[0]["provider_type"] == "message"
    # turn 2: the response-item user message comes first; the item_completed copy is dropped
    assert [r["provider_type"] for r in rows if r["content_text"] == "run it and fix what it finds"] == ["message"]
    assert [r["provider_type"] for r in rows if r["content_text"] == "**Running the linters**"] == ["item_completed"]
    # AgentMessage first, response item second: the item_completed row wins
    fin = [r for r in rows if r["content_text"] == "Removed the unused import; lint is clean."]
    assert len(fin) == 1 and fin[0]["message_id"] == "item_A2" and fin[0]["output_tokens"] == 66
    # CommandExecution: call + output with ids item.id and item.id:output; exit code 1 is an error
    call = by_call(rows, "call_Lint1")
    out = by_call(rows, "call_Lint1", "tool_result")
    assert call["message_id"] == "call_Lint1" and out["message_id"] == "call_Lint1:output"
    assert call["tool_name"] == "shell" and json.loads(call["tool_args"]) == {"command": ["make", "lint"], "cwd": "/home/ada/src/shop"}
    assert out["is_error"] is True and "F401" in out["content_text"] and out["role"] == "tool"
    assert tokens(call) == (4200 - 3072, 140, 3072, None)
    mcp = by_call(rows, "call_Mcp1")
    assert mcp["tool_name"] == "create_issue" and attrs(mcp)["codex"]["tool_namespace"] == "github"
    mres = by_call(rows, "call_Mcp1", "tool_result")
    assert mres["content_text"] == "Created issue #42" and mres["is_error"] is False
    fc = by_call(rows, "call_Fix1")
    assert fc["tool_name"] == "apply_patch" and "src/cart.py" in json.loads(fc["tool_args"])
    assert by_call(rows, "call_Fix1", "tool_result")["content_text"].startswith("Success.")
    ws = by_call(rows, "ws_1")
    assert ws["tool_name"] == "web_search" and json.loads(ws["tool_args"])["query"] == "ruff F401"


# --------------------------------------------------------------------------------------------- discovery


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "codex"
    (home / "sessions" / "2026" / "01" / "15").mkdir(parents=True)
    (home / "archived_sessions").mkdir()
    return home


def test_discovery_order_zst_sibling_symlinks_and_detected_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    (tmp_path / "user" / "Library" / "Application Support" / "ChatGPT").mkdir(parents=True)
    (tmp_path / "user" / ".config" / "ChatGPT").mkdir(parents=True)
    home = _home(tmp_path)
    day = home / "sessions" / "2026" / "01" / "15"
    after = fx("3c5e2f4a6b01")
    shutil.copy(after, day / after.name)
    shutil.copy(after, home / "archived_sessions" / after.name)
    zst = fx(".zst")
    shutil.copy(zst, day / zst.name)  # alone: read
    plain = day / "rollout-2026-01-15T15-00-00-019bc2a1-0000-7000-8000-0000000000ff.jsonl"
    plain.write_bytes(fx("c0c").read_bytes())
    (day / (plain.name + ".zst")).write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))  # skipped
    shutil.copy(fx("4e5f.json"), home / "sessions" / fx("4e5f.json").name)
    (day / "notes.jsonl").write_text("{}\n")  # not a rollout name
    (day / "rollout-dir.jsonl").mkdir()  # a directory with a rollout name
    outside = tmp_path / "elsewhere" / "2026"
    outside.mkdir(parents=True)
    shutil.copy(fx("555566667777"), outside / fx("555566667777").name)
    (home / "sessions" / "linked").symlink_to(outside, target_is_directory=True)  # not followed
    (day / "rollout-link.jsonl").symlink_to(day / after.name)  # a file symlink: deduplicated by real path
    (home / "history.jsonl").write_text('{"session_id":"x","ts":1,"text":"hi"}\n')
    (home / "log").mkdir()
    (home / "session_index.jsonl").write_text("{}\n")
    (home / "state_5.sqlite").write_bytes(b"")

    disc = IMP.discover([str(home)])
    names = [os.path.relpath(f.path, home) for f in disc.files]
    assert names == [
        f"sessions/2026/01/15/{zst.name}",
        f"sessions/2026/01/15/{after.name}",
        f"sessions/2026/01/15/{plain.name}",
        f"sessions/{fx('4e5f.json').name}",
        f"archived_sessions/{after.name}",
    ]
    # through a symlinked home, the paths are the same real paths
    (tmp_path / "alias").symlink_to(home, target_is_directory=True)
    assert [f.path for f in IMP.discover([str(tmp_path / "alias")]).files] == [f.path for f in disc.files]
    assert all(f.path == os.path.realpath(f.path) for f in disc.files)
    modes = {os.path.basename(f.path): f.read_mode for f in disc.files}
    assert modes[after.name] == "incremental" and modes[zst.name] == "whole" and modes[fx("4e5f.json").name] == "whole"
    for f in disc.files:
        assert f.path_hash == hashlib.sha256(os.fsencode(os.path.realpath(f.path))).hexdigest()[:16]
        assert f.client == "codex" and f.is_session and f.size == os.path.getsize(f.path)
    assert disc.detected_sources == ["<codex home>/history.jsonl", "<codex home>/log/",
                                     "~/Library/Application Support/ChatGPT", "~/.config/ChatGPT"]  # fmt: skip
    assert disc.failed == []

    # the same thread in sessions/ and archived_sessions/ is stored once: identical part_ids
    a = [f for f in disc.files if os.path.basename(f.path) == after.name]
    rows_a, _ = import_file(IMP, a[0].path, file=a[0])
    rows_b, _ = import_file(IMP, a[1].path, file=a[1])
    assert {r["part_id"] for r in rows_a} == {r["part_id"] for r in rows_b}
    assert len({r["part_id"] for r in rows_a + rows_b}) == len(rows_a)
    assert {r["source_path_hash"] for r in rows_a} != {r["source_path_hash"] for r in rows_b}


def test_zst_rollout_is_read_whole(tmp_path):
    f = source_file_for(IMP, fx(".zst"))
    assert f.read_mode == "whole"
    rows, stats = import_file(IMP, fx(".zst"), file=f)
    assert [r["role"] for r in rows] == ["user", "assistant", "tool", "assistant"]
    plain = zstandard.ZstdDecompressor().decompressobj().decompress(fx(".zst").read_bytes())
    # source_offset counts decompressed bytes
    offs = [0] + [i + 1 for i, b in enumerate(plain) if b == 0x0A]
    assert all(r["source_offset"] in offs for r in rows)
    assert rows[-1]["source_offset"] == plain.rstrip(b"\n").rfind(b"\n") + 1
    # the last assistant message (no token_count follows) is emitted at the end of the document
    assert rows[-1]["content_text"] == "Bumped to 1.2.4." and tokens(rows[-1]) == (None, None, None, None)
    assert by_call(rows, "call_v")["output_tokens"] == 64
    # a damaged .zst fails the file, not the run
    bad = tmp_path / "rollout-bad.jsonl.zst"
    bad.write_bytes(fx(".zst").read_bytes()[:-20] + b"garbage-garbage-garb")
    fp = FilePass(IMP, source_file_for(IMP, bad), None, Window(), ParseStats())
    list(fp.batches())
    assert fp.status == "failed" and "damaged" in fp.error


def test_a_zst_rollout_without_zstandard_says_to_reinstall(monkeypatch):
    """zstandard missing (a broken installation): the file failed with "No module named 'zstandard'" and
    nothing else. The error now says why it is needed and what to do."""
    monkeypatch.setitem(sys.modules, "zstandard", None)  # (what `import zstandard` does where it is missing)
    fp = FilePass(IMP, source_file_for(IMP, fx(".zst")), None, Window(), ParseStats())
    with pytest.raises(ModuleNotFoundError) as info:  # (the runner reports it as the file's error)
        list(fp.batches())
    assert str(info.value).endswith(": hyp reads .jsonl.zst rollouts with the zstandard package, one of its "
                                    "dependencies, so this installation is incomplete. Reinstall hyp the way it "
                                    "was installed (for example pip install --force-reinstall hypaware_tui)")


def big_rollout(n: int = 1500, seed: int = 7) -> bytes:
    """A rollout of `n` distinct user messages whose text compresses badly: its .zst spans several zstd blocks
    (at most 128 KiB each), so a cut file still holds whole blocks, and complete lines, before the cut."""
    import random

    rnd = random.Random(seed)
    lines = [fx("3c5e2f4a6b01").read_bytes().split(b"\n")[0]]  # its session_meta
    for i in range(n):
        text = f"message {i} {rnd.randbytes(240).hex()}"
        lines.append(json.dumps({"timestamp": f"2026-01-15T{10 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
                                 "type": "response_item", "payload": {"type": "message", "role": "user",
                                 "content": [{"type": "input_text", "text": text}]}}).encode())  # fmt: skip
    return b"\n".join(lines) + b"\n"


def _pass(path: Path) -> tuple[FilePass, list[dict]]:
    fp = FilePass(IMP, source_file_for(IMP, path), None, Window(), ParseStats(), batch_rows=100, batch_bytes=1)
    return fp, [r for b in fp.batches() for r in b.rows]


def test_a_truncated_or_damaged_zst_imports_the_lines_before_the_damage_and_is_reported(tmp_path):
    """zstandard's stream reader stops where a cut file stops: a truncated rollout was read as complete, its
    lost rows unreported. Now the rows of the complete lines before the cut are handed out and the pass fails
    with a message that says so; no checkpoint is written, so the next run reads (and reports) it again."""
    plain = big_rollout()
    z = zstandard.ZstdCompressor().compress(plain)
    full = tmp_path / "rollout-full.jsonl.zst"
    full.write_bytes(z)
    fp, all_rows = _pass(full)
    assert fp.status == "read" and fp.error is None and len(all_rows) == 1500
    assert len(plain) > 4 * 128 * 1024  # several blocks (each decompresses to at most 128 KiB)

    cut = tmp_path / "rollout-2026-01-15T10-00-00-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b01.jsonl.zst"
    cut.write_bytes(z[: len(z) * 2 // 3])
    fp, rows = _pass(cut)
    assert fp.status == "failed"
    assert "truncated" in fp.error and "the lines before the damage were imported" in fp.error
    assert str(tmp_path) not in fp.error
    assert 0 < len(rows) < len(all_rows)
    assert [r["content_text"] for r in rows] == [r["content_text"] for r in all_rows[: len(rows)]]
    # only complete lines: each row's line ends inside the decompressed bytes that could be read
    assert all(plain[r["source_offset"] :].startswith(b'{"timestamp"') for r in rows)
    batches = list(FilePass(IMP, source_file_for(IMP, cut), None, Window(), ParseStats()).batches())
    assert all(b.update is None for b in batches)  # no checkpoint: read and reported again next time

    # a .zst whose middle is damaged: the same, with the decompressor's reason
    bad = tmp_path / "rollout-bad.jsonl.zst"
    mid = len(z) // 2
    bad.write_bytes(z[:mid] + bytes(b ^ 0xFF for b in z[mid : mid + 64]) + z[mid + 64 :])
    fp, rows = _pass(bad)
    assert fp.status == "failed" and "damaged" in fp.error and 0 < len(rows) < len(all_rows)

    # not zstd at all, and empty: failed, nothing read, said so
    for name, data, words in (("random", os.urandom(4096), "not zstd"), ("empty", b"", "empty")):
        f = tmp_path / f"rollout-{name}.jsonl.zst"
        f.write_bytes(data)
        fp, rows = _pass(f)
        assert fp.status == "failed" and words in fp.error and "nothing could be read" in fp.error, fp.error
        assert rows == []

    # a file of two frames (zstd -B, pzstd) is read whole; cut inside the second, the first frame's rows stay
    two = zstandard.ZstdCompressor().compress(plain[: plain.index(b"\n", len(plain) // 2) + 1])
    two += zstandard.ZstdCompressor().compress(plain[plain.index(b"\n", len(plain) // 2) + 1 :])
    multi = tmp_path / "rollout-multi.jsonl.zst"
    multi.write_bytes(two)
    fp, rows = _pass(multi)
    assert fp.status == "read" and [r["part_id"] for r in rows] == [r["part_id"] for r in _pass(full)[1]]
    multi.write_bytes(two[:-10])
    fp, rows = _pass(multi)
    assert fp.status == "failed" and "truncated" in fp.error and len(rows) >= 750


def test_a_zst_cut_right_after_a_line_without_its_newline_does_not_import_that_line(tmp_path):
    """A rollout compressed in two frames, the second cut before any of it decodes: the decompressed bytes end
    with a whole JSON line whose newline was in the lost frame. Only complete lines are imported before damage
    (storage.md §5.3): that last line is not, though it parses (the file may continue it)."""
    def user(ts: str, text: str) -> bytes:
        return json.dumps(_e(ts, "response_item", {"type": "message", "role": "user", "content": text})).encode()

    first = b"\n".join([json.dumps(_e("00", "session_meta", {"id": "t"})).encode(), user("01", "kept"),
                        user("02", "at the cut")])
    second = b"\n" + user("03", "lost") + b"\n"
    cut = tmp_path / "rollout-2026-01-01T00-00-00-t.jsonl.zst"
    cut.write_bytes(zstandard.ZstdCompressor().compress(first) + zstandard.ZstdCompressor().compress(second)[:6])
    fp, rows = _pass(cut)
    assert fp.status == "failed" and "truncated" in fp.error
    assert [r["content_text"] for r in rows] == ["kept"]

@pytest.mark.parametrize("chunk", [16, 100, 4096])
def test_a_zst_rollout_streams_in_batches_with_the_rows_of_a_whole_read(tmp_path, monkeypatch, chunk):
    """Memory must not grow with one compressed rollout: its rows are handed out as it is decompressed.
    Every rollout fixture, compressed, read in small decompressed chunks and batches, gives exactly the rows
    (and order) of a read of the whole document; through FilePass only the last batch carries the checkpoint."""
    import hypaware_tui.importers.codex as codex_mod

    streamed_somewhere = False
    for src in sorted(FIX.glob("rollout-*.jsonl")):
        zst = tmp_path / (src.name + ".zst")
        zst.write_bytes(zstandard.ZstdCompressor().compress(src.read_bytes()))
        f = source_file_for(IMP, zst)
        whole, n = IMP.read_whole(f, Window(), ParseStats())
        expected = whole.drain()
        monkeypatch.setattr(codex_mod, "WHOLE_CHUNK", chunk)
        pieces = list(IMP.read_whole_batches(f, Window(), ParseStats(), batch_bytes=1))
        monkeypatch.undo()
        assert [r for rows, _ in pieces for r in rows] == expected, src.name
        assert pieces[-1][1] == n == zst.stat().st_size
        streamed_somewhere |= sum(1 for rows, _ in pieces if rows) > 1
        monkeypatch.setattr(codex_mod, "WHOLE_CHUNK", chunk)
        batches = list(FilePass(IMP, f, None, Window(), ParseStats(), batch_bytes=1).batches())
        monkeypatch.undo()
        assert [r for b in batches for r in b.rows] == expected, src.name
        assert all(b.update is None for b in batches[:-1]) and batches[-1].update.entry.offset == zst.stat().st_size
    assert streamed_somewhere



def test_a_whole_document_split_into_batches_carries_its_checkpoint_on_the_last_only(tmp_path):
    """A whole document's rows beyond `batch_rows` are handed out in several batches: only the last carries
    the checkpoint (offset = the file's size). On every batch, a commit of the first (the committer flushes at
    `batch_rows`) recorded the file as read before its other rows were stored: a crash or a full disk then
    lost them for good, the file looking unchanged to every later run."""
    src = FIX / "rollout-2025-04-18-4c1d2e3f-5a6b-4c7d-8e9f-0a1b2c3d4e5f.json"
    doc = tmp_path / src.name
    shutil.copy(src, doc)
    f = source_file_for(IMP, doc)
    assert f.read_mode == "whole"
    expected = IMP.read_whole(f, Window(), ParseStats())[0].drain()
    assert len(expected) > 4
    batches = list(FilePass(IMP, f, None, Window(), ParseStats(), batch_rows=2).batches())
    assert [r for b in batches for r in b.rows] == expected
    assert [len(b.rows) for b in batches[:-1]] == [2] * (len(batches) - 1)
    assert [b.update is None for b in batches] == [True] * (len(batches) - 1) + [False]
    assert batches[-1].update.entry.offset == doc.stat().st_size and batches[-1].final


def test_a_stop_while_a_compressed_rollout_streams_leaves_it_cut_short(tmp_path, monkeypatch):
    """A stop between two streamed batches of a `.jsonl.zst` rollout ends its pass there, without a checkpoint,
    and says the file was cut short (the run is then `cancelled`, not complete)."""
    import hypaware_tui.importers.codex as codex_mod

    src = max(FIX.glob("rollout-*.jsonl"), key=lambda p: p.stat().st_size)
    zst = tmp_path / (src.name + ".zst")
    zst.write_bytes(zstandard.ZstdCompressor().compress(src.read_bytes()))
    f = source_file_for(IMP, zst)
    monkeypatch.setattr(codex_mod, "WHOLE_CHUNK", 16)
    fp = FilePass(IMP, f, None, Window(), ParseStats(), batch_bytes=1, cancel=lambda: True)
    batches = list(fp.batches())
    assert batches and all(b.update is None for b in batches)
    assert fp.cut_short and fp.status == "read"


def test_roots():
    env = {"HOME": "/home/ada"}
    assert IMP.roots(None, env) == ["/home/ada/.codex"]
    assert IMP.roots(None, {**env, "CODEX_HOME": "~/codex-alt"}) == ["/home/ada/codex-alt"]
    assert IMP.roots(None, {**env, "CODEX_HOME": "~"}) == ["/home/ada"]  # (a bare `~` is HOME's too)
    assert IMP.roots(None, {**env, "CODEX_HOME": "  "}) == ["/home/ada/.codex"]
    assert IMP.roots("~/cfg-root", {**env, "CODEX_HOME": "/other"}) == ["/home/ada/cfg-root"]
    assert IMP.roots(None, {**env, "CODEX_HOME": "rel/dir"}) == [os.path.abspath("rel/dir")]
    assert get_importer("codex").name == "codex"


def test_missing_home_is_no_error(tmp_path):
    disc = IMP.discover([str(tmp_path / "nope")])
    assert disc.files == [] and disc.failed == []


def test_unreadable_directory_and_file_are_reported(tmp_path, monkeypatch):
    home = _home(tmp_path)
    day = home / "sessions" / "2026" / "01" / "15"
    good = day / fx("3c5e2f4a6b01").name
    shutil.copy(fx("3c5e2f4a6b01"), good)
    secret = day / "rollout-2026-01-15T00-00-00-secret.jsonl"
    secret.write_text("{}\n")
    locked = home / "sessions" / "2025"
    locked.mkdir()
    if os.geteuid() == 0:  # root reads everything: simulate the permission errors
        real_scandir, real_access = os.scandir, os.access

        def scandir(path):
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied")
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
        # the file has no read bits (below), and the system refuses it, which root's access() would not say
        monkeypatch.setattr(os, "access", lambda p, mode: p != str(secret) and real_access(p, mode))
        secret.chmod(0)
    else:
        secret.chmod(0)
        locked.chmod(0)
    try:
        disc = IMP.discover([str(home)])
    finally:
        locked.chmod(0o755)
        secret.chmod(0o644)
    assert [f.path for f in disc.files] == [str(good)]
    # (by path hash, never the rollout's name: it holds a date and a thread id, and reaches the events log)
    assert sorted(e.where for e in disc.failed) == sorted(
        path_hash(os.path.realpath(p)) for p in (home / "sessions" / "2025", secret))
    assert all(str(tmp_path) not in e.where and str(tmp_path) not in e.message for e in disc.failed)
    assert all("ermission" in e.message and "Check its permissions." in e.message for e in disc.failed)


def test_symlink_loops_are_reported_as_loops_not_as_permissions(tmp_path):
    """A rollout link or a sessions folder that leads back to itself (ELOOP) is reported, with advice about the
    link rather than permissions (a looped rollout was dropped without a word); a directory link back to its
    parent is not followed. Messages hold no path; `path` is for the terminal."""
    home = _home(tmp_path)
    day = home / "sessions" / "2026" / "01" / "15"
    good = day / fx("3c5e2f4a6b01").name
    shutil.copy(fx("3c5e2f4a6b01"), good)
    os.symlink("rollout-loop.jsonl", day / "rollout-loop.jsonl")
    os.symlink("..", day / "up")
    os.rmdir(home / "archived_sessions")
    os.symlink("archived_sessions", home / "archived_sessions")
    disc = IMP.discover([str(home)])
    assert [f.path for f in disc.files] == [str(good)]
    assert sorted(e.where for e in disc.failed) == sorted(
        ["<codex home>/archived_sessions", path_hash(os.path.realpath(day / "rollout-loop.jsonl"))])
    assert sorted(e.path for e in disc.failed) == [str(home / "archived_sessions"), str(day / "rollout-loop.jsonl")]
    for e in disc.failed:
        assert "symbolic link loop" in e.message and "remove the link" in e.message, e.message
        assert "permissions" not in e.message and str(tmp_path) not in e.message + e.where
    os.symlink("loop-home", tmp_path / "loop-home")
    disc = IMP.discover([str(tmp_path / "loop-home")])
    assert [e.where for e in disc.failed] == ["<codex home>"] and "symbolic link loop" in disc.failed[0].message
    det = IMP.detect(str(tmp_path / "loop-home"), {"HOME": str(tmp_path)})
    assert not det.detected and "symbolic link loop" in det.reason and "does not exist" not in det.reason


def test_a_rollout_link_to_a_missing_file_is_reported(tmp_path):
    """A rollout that is a symbolic link to a file that does not exist (a drive that is not mounted) was
    skipped without a word, while a link loop was reported: it is reported too, saying what it is."""
    home = _home(tmp_path)
    day = home / "sessions" / "2026" / "01" / "15"
    good = day / fx("3c5e2f4a6b01").name
    shutil.copy(fx("3c5e2f4a6b01"), good)
    gone = day / "rollout-2026-01-15T10-00-00-0000.jsonl"
    os.symlink(tmp_path / "unmounted" / "rollout.jsonl", gone)
    disc = IMP.discover([str(home)])
    assert [f.path for f in disc.files] == [str(good)]
    (e,) = disc.failed
    assert e.message == (
        "cannot read a Codex rollout (No such file or directory); it is skipped. It is a symbolic link to a file "
        "that does not exist (on a drive that is not mounted, or moved or deleted): make that file available "
        "again, or remove the link."
    )
    assert e.path == str(gone) and str(tmp_path) not in e.where


def test_a_zst_link_to_nothing_beside_its_plain_rollout_is_not_reported(tmp_path):
    """codex.md §1 rule 3: `X.jsonl.zst` is skipped when `X.jsonl` exists, so a link by that name that leads
    nowhere (or loops) would never be read: it was reported as an error all the same. One that would be read is."""
    home = _home(tmp_path)
    day = home / "sessions" / "2026" / "01" / "15"
    good = day / fx("3c5e2f4a6b01").name
    shutil.copy(fx("3c5e2f4a6b01"), good)
    os.symlink(tmp_path / "unmounted" / "r.jsonl.zst", f"{good}.zst")
    loop = day / "rollout-2026-01-15T11-00-00-0000.jsonl"
    loop.write_text("")
    os.symlink(f"{loop}.zst", f"{loop}.zst")
    disc = IMP.discover([str(home)])
    assert (sorted(f.path for f in disc.files), disc.failed) == (sorted([str(good), str(loop)]), [])
    alone = day / "rollout-2026-01-15T12-00-00-0000.jsonl.zst"
    os.symlink(tmp_path / "unmounted" / "r.jsonl.zst", alone)
    assert [e.path for e in IMP.discover([str(home)]).failed] == [str(alone)]


def test_inventory_file_head_tail_and_whole_modes(tmp_path):
    for tag, first, last in [
        ("3c5e2f4a6b01", "2026-01-15T14:02:11.000Z", "2026-01-15T14:05:31.100Z"),
        (".zst", "2025-12-01T09:00:00.000Z", "2025-12-01T09:00:03.000Z"),
        ("4e5f.json", "2025-04-18T10:12:33.215Z", "2025-04-18T10:12:33.215Z"),
        ("05a2.json", "2025-12-01T09:10:00.000Z", "2025-12-01T09:10:02.000Z"),
        ("2c4d6e8f0a1b", "2025-07-02T18:21:09.481Z", "2025-07-02T18:21:09.481Z"),
    ]:
        f = source_file_for(IMP, fx(tag))
        inv = IMP.inventory_file(f, f.size, f.mtime_ns)
        assert (inv.first_ts, inv.last_ts) == (parse_iso_us(first), parse_iso_us(last)), tag
    bad = tmp_path / "rollout-x.jsonl.zst"
    bad.write_bytes(b"not zstd")
    f = source_file_for(IMP, bad)
    inv = IMP.inventory_file(f, f.size, f.mtime_ns)
    assert inv.first_ts is None and inv.newest_us == f.mtime_ns // 1000


# --------------------------------------------------------------------------------------------- units


def test_canonical_json_matches_the_stdlib_on_awkward_values():
    values = ["é\u0085\u2028\x00\x1f\x7f\"\\/", 0, -(2**63), 2**64 - 1, 2**70, 1.5, 1e-05, 1e16, -0.0, True, None,
              {"b": [1, {"z": None, "é": "x", "\U0001f600": 2, "\uffff": 3}], "a": {}}, [[[]]], "\ud83d"]
    deep: object = "x"
    for _ in range(300):
        deep = [deep]
    for v in [*values, deep, {"k": values}]:
        assert canonical_json(v) == json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_helpers():
    assert redact_url("https://ada:ghp_x@github.com/a/b.git") == "https://github.com/a/b.git"
    assert redact_url("HTTPS://tok@host/x") == "HTTPS://host/x"
    assert redact_url("ssh://git@host:22/x") == "ssh://host:22/x"
    assert redact_url("git@github.com:a/b.git") == "git@github.com:a/b.git"
    assert thread_id_from_name("/x/rollout-2025-01-01T00-00-00-5f2c9a7e-3b1d-4e8f-9a6b-2c4d6e8f0a1b.jsonl.zst") == \
        "5f2c9a7e-3b1d-4e8f-9a6b-2c4d6e8f0a1b"  # fmt: skip
    assert thread_id_from_name("/x/rollout-abc.jsonl.zst") == "rollout-abc"
    assert thread_id_from_name("/x/rollout-abc.json") == "rollout-abc"
    assert exit_code("Exit code: 3\nWall time: 1s\nOutput:\nx") == 3
    assert exit_code("Chunk ID: a\nProcess exited with code 0\nOutput:\nProcess exited with code 9\n") == 0
    assert exit_code("Output:\nProcess exited with code 9\n") is None  # after Output: it is output
    assert exit_code("build log\nProcess exited with code 9\n") is None  # no Output: line, no header lines
    assert exit_code('{"output":"x","metadata":{"exit_code":1}}') == 1
    assert exit_code({"output": "x", "metadata": {"exit_code": 0}}) == 0
    assert exit_code('{"metadata":{"exit_code":"1"}}') is None
    # the key escaped (\\u0065 is "e"): still found, though a large output without the key is not parsed
    assert exit_code('{"output":"x","metadata":{"\\u0065xit_code":4}}') == 4
    assert exit_code('{"output":"' + "y" * 100_000 + '","metadata":{}}') is None
    assert exit_code("all good") is None and exit_code(None) is None and exit_code(["Exit code: 1"]) is None


T0 = parse_iso_us("2026-01-01T00:00:00Z")


def _rollout(tmp_path: Path, payloads: list, name: str = "rollout-2026-01-01T00-00-00-t.jsonl") -> Path:
    lines = [{"timestamp": "2026-01-01T00:00:00Z", "type": "session_meta", "payload": {"id": "t", "timestamp": "2026-01-01T00:00:00Z"}}]
    for i, p in enumerate(payloads):
        typ = "event_msg" if p.get("type") in ("token_count", "task_started", "task_complete", "error") else "response_item"
        lines.append({"timestamp": us_to_iso(T0 + (i + 1) * 500_000), "type": typ, "payload": p})
    path = tmp_path / name
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_identical_user_messages_are_two_messages(tmp_path):
    msg = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "continue"}]}
    rows, _ = import_file(IMP, _rollout(tmp_path, [msg, msg]))
    assert len(rows) == 2 and rows[0]["message_id"] != rows[1]["message_id"]
    assert [r["message_index"] for r in rows] == [0, 1]
    assert rows[1]["previous_message_id"] == canonical_json([rows[0]["message_id"]])
    expect = hashlib.sha256(f"t:1:user:{canonical_json(msg)}".encode()).hexdigest()[:16]
    assert rows[1]["message_id"] == expect


def test_tool_map_is_a_fifo_of_4096(tmp_path):
    calls = [{"type": "function_call", "name": f"tool{i}", "arguments": "{}", "call_id": f"c{i}"}
             for i in range(TOOL_MAP_CAP + 2)]  # fmt: skip
    outs = [{"type": "function_call_output", "call_id": c, "output": "ok"} for c in ("c0", "c1", "c2", f"c{TOOL_MAP_CAP + 1}")]
    rows, _ = import_file(IMP, _rollout(tmp_path, calls + outs))
    names = {r["tool_call_id"]: r["tool_name"] for r in rows if r["part_type"] == "tool_result"}
    assert names == {"c0": None, "c1": None, "c2": "tool2", f"c{TOOL_MAP_CAP + 1}": f"tool{TOOL_MAP_CAP + 1}"}


def test_wrong_types_and_unknown_shapes_are_counted_never_raised(tmp_path):
    weird = [
        {"type": "message", "role": 5, "content": "x"},
        {"type": "message", "role": "user", "content": 7},
        {"type": "message", "role": "assistant", "content": [None, 3, {"type": 9}, {"text": "bare dict text"}]},
        {"type": "reasoning", "summary": "not a list"},
        {"type": "function_call", "name": ["x"], "arguments": {"already": "object"}, "call_id": 12},
        {"type": "function_call_output", "call_id": None, "output": {"weird": [1, 2]}},
        {"type": "local_shell_call", "action": None},
        {"type": "web_search_call", "id": {"x": 1}, "action": "search"},
        {"type": "ghost_snapshot", "ghost_commit": {}},
        {"type": "token_count", "info": {"total_token_usage": "lots", "last_token_usage": {"input_tokens": "9"}}},
        {"type": "token_count", "info": {"total_token_usage": {"prompt": 5, "completion": 2}}},
        {"type": "task_started", "turn_id": ["x"], "started_at": "soon"},
        {"type": "error", "message": {"code": 1}},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "still fine"}]},
    ]
    path = _rollout(tmp_path, weird)
    with open(path, "a") as fh:
        for line in ['{"timestamp": 5, "type": "response_item", "payload": "str"}',
                     '{"timestamp": "bad", "type": ["x"], "payload": {}}', '{"type": "event_msg", "payload": []}',
                     '{"timestamp": "2026-01-01T00:01:00Z", "type": "session_meta", "payload": {"id": 3}}',
                     '{"timestamp": "2026-01-01T00:01:00Z", "type": "compacted", "payload": {"message": 3, "window_number": 2}}',
                     '{"timestamp": "2026-01-01T00:01:00Z", "type": "turn_context", "payload": {"cwd": 4, "model": {}, "sandbox_policy": []}}',
                     '{"timestamp": "2026-01-01T00:01:00Z", "type": "event_msg", "payload": {"type": "item_completed", "item": "x"}}',
                     "[1,2]", "not json", '{"timestamp":"2026-01-01T00:01:01Z","type":"response_item","payload":{"type":"message","role":"user","content":"last"}}']:  # fmt: skip
            fh.write(line + "\n")
    rows, stats = import_file(IMP, path)
    frame_from_rows(rows)
    texts = [r["content_text"] for r in rows]
    assert "still fine" in texts and "last" in texts and "bare dict text" in texts
    comp = [r for r in rows if r["part_type"] == "compaction"]
    assert comp and comp[0]["compact_metadata"] == '{"window_number":2}' and comp[0]["content_text"] is None
    lines = path.read_bytes().count(b"\n")
    assert sum(stats.lines_skipped.values()) + len({r["source_offset"] for r in rows}) == lines


def test_an_unexpected_exception_costs_only_its_line(tmp_path, monkeypatch):
    path = _rollout(tmp_path, [{"type": "message", "role": "user", "content": "a"},
                               {"type": "function_call", "name": "boom", "arguments": "{}", "call_id": "c"},
                               {"type": "message", "role": "user", "content": "b"}])  # fmt: skip
    real = CodexParser._remember_tool

    def explode(self, call_id, name):
        if name == "boom":
            raise RuntimeError("unexpected")
        return real(self, call_id, name)

    monkeypatch.setattr(CodexParser, "_remember_tool", explode)
    rows, stats = import_file(IMP, path)
    assert [r["content_text"] for r in rows] == ["a", "b"]
    assert stats.lines_skipped["malformed"] == 1


def test_window_drops_rows_and_counts_the_message_line_once():
    path = fx("3c5e2f4a6b01")
    since = parse_iso_us("2026-01-15T14:04:00Z")
    rows, stats = import_file(IMP, path, Window(since_us=since))
    full, full_stats = run("3c5e2f4a6b01")
    kept = [r for r in full if r["message_created_at"] >= since]
    assert sorted(r["part_id"] for r in rows) == sorted(r["part_id"] for r in kept)
    dropped_lines = {r["source_offset"] for r in full} - {r["source_offset"] for r in kept}
    assert stats.lines_skipped["outside_window"] == len(dropped_lines)
    assert sum(stats.lines_skipped.values()) == sum(full_stats.lines_skipped.values()) + len(dropped_lines)


def _lines_file(tmp_path: Path, records: list[dict], name: str = "rollout-2026-01-01T00-00-00-t.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _e(ts: str, typ: str, payload: dict) -> dict:
    return {"timestamp": f"2026-01-01T00:00:{ts}Z", "type": typ, "payload": payload}


def test_resumed_session_meta_with_the_same_id_updates_client_fields(tmp_path):
    meta = {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "cli_version": "0.90.0", "originator": "codex_cli_rs",
            "model_provider": "openai", "cwd": "/a"}
    recs = [_e("00", "session_meta", meta), _e("01", "response_item", {"type": "message", "role": "user", "content": "one"}),
            _e("30", "session_meta", {**meta, "cli_version": "0.99.0", "originator": "codex_vscode", "model_provider": "azure",
                                      "cwd": "/b"}),
            _e("31", "response_item", {"type": "message", "role": "user", "content": "two"})]  # fmt: skip
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    one, two = rows
    assert (one["client_version"], one["entrypoint"], attrs(one)["codex"]["model_provider"]) == ("0.90.0", "codex_cli_rs", "openai")
    assert (two["client_version"], two["entrypoint"], attrs(two)["codex"]["model_provider"]) == ("0.99.0", "codex_vscode", "azure")
    assert two["cwd"] == "/a" and two["conversation_started_at"] == one["conversation_started_at"]
    assert not any(attrs(r)["codex"].get("replayed_from_parent") for r in rows)


def test_replay_ends_at_a_turn_start_of_the_child_even_within_the_same_second(tmp_path):
    child_start = "2026-01-01T00:00:10.000Z"
    child_s = parse_iso_us(child_start) // 1_000_000
    old_turn = "0194a000-0000-7000-8000-000000000001"  # UUIDv7 of 2025-01: a replayed parent turn
    ms = f"{child_s * 1000:012x}"
    new_turn = f"{ms[:8]}-{ms[8:]}-7000-8000-000000000002"
    recs = [_e("10.000", "session_meta", {"id": "child", "timestamp": child_start}),
            _e("10.100", "session_meta", {"id": "parent"}),
            _e("10.200", "event_msg", {"type": "task_started", "turn_id": old_turn}),
            _e("10.200", "event_msg", {"type": "task_started", "turn_id": "not-a-uuid"}),
            {"type": "response_item", "payload": {"type": "message", "role": "user", "content": "untimed replayed"}},
            _e("10.300", "response_item", {"type": "message", "role": "user", "content": "replayed", "id": "msg_1"}),
            _e("10.400", "event_msg", {"type": "task_started", "turn_id": new_turn}),
            _e("10.500", "response_item", {"type": "message", "role": "user", "content": "own", "id": "msg_2"})]  # fmt: skip
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    flags = {r["content_text"]: attrs(r).get("codex", {}).get("replayed_from_parent", False) for r in rows}
    assert flags == {"untimed replayed": True, "replayed": True, "own": False}
    exact = {r["content_text"]: r for r in rows}
    assert exact["own"]["message_id"] == "msg_2" and exact["replayed"]["message_id"] != "msg_1"
    # a start given as started_at (Unix seconds) ends it too; an older one does not
    recs2 = recs[:2] + [_e("10.200", "event_msg", {"type": "turn_started", "started_at": child_s - 5}),
                        _e("10.300", "response_item", {"type": "message", "role": "user", "content": "replayed"}),
                        _e("10.400", "event_msg", {"type": "turn_started", "started_at": child_s + 0.4}),
                        _e("10.500", "response_item", {"type": "message", "role": "user", "content": "own"})]  # fmt: skip
    rows2, _ = import_file(IMP, _lines_file(tmp_path, recs2))
    assert {r["content_text"]: attrs(r).get("codex", {}).get("replayed_from_parent", False) for r in rows2} == {"replayed": True, "own": False}


def test_replay_ends_more_than_a_second_after_it_opened_and_not_at_a_uuid_that_is_not_v7(tmp_path):
    """codex.md §7 rule 2: by time, the replay ends at a record stamped *more than* 1 s after the session_meta that
    opened it, at whole seconds (one in the next second is still replayed); a turn id is a start instant only
    when it is a UUIDv7 (a v4 whose first bits read as a later time ends nothing)."""
    child_start = "2026-01-01T00:00:10.000Z"
    ms = f"{(parse_iso_us(child_start) // 1_000_000 + 1) * 1000:012x}"
    v4_turn = f"{ms[:8]}-{ms[8:]}-4000-8000-000000000003"  # (as a v7 it would be a start after the child's)
    recs = [_e("10.000", "session_meta", {"id": "child", "timestamp": child_start}),
            _e("10.100", "session_meta", {"id": "parent"}),
            _e("10.200", "event_msg", {"type": "task_started", "turn_id": v4_turn}),
            _e("10.300", "response_item", {"type": "message", "role": "user", "content": "after v4"}),
            _e("11.900", "response_item", {"type": "message", "role": "user", "content": "next second"}),
            _e("12.000", "response_item", {"type": "message", "role": "user", "content": "two seconds on"})]  # fmt: skip
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    flags = {r["content_text"]: attrs(r).get("codex", {}).get("replayed_from_parent", False) for r in rows}
    assert flags == {"after v4": True, "next second": True, "two seconds on": False}


SUB_PARENT = "019a0000-0000-7000-8000-0000000000b1"
SUB_CHILD = "019a0000-0000-7000-8000-0000000000b2"


def _u(i: int, c: int, o: int) -> dict:
    return {"input_tokens": i, "cached_input_tokens": c, "output_tokens": o, "reasoning_output_tokens": 0}


def _msg(role: str, text: str, **kw) -> dict:
    kind = "input_text" if role == "user" else "output_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}], **kw}


def _count(total: dict, last: dict | None = None) -> dict:
    return {"type": "token_count", "info": {"total_token_usage": total, "last_token_usage": last or total}}


def subagent_with_start_ordinal(copied_meta: bool = False, late_copy: bool = False) -> list[dict]:
    """A spawned subagent's rollout in paginated history, every record carrying its `ordinal`: ONE session_meta,
    naming where the child's own history starts (`subagent_history_start_ordinal`); the records before it are a
    copy of the parent's history, the parent's token_count included. `copied_meta`: the copy opens with the
    parent's session_meta; `late_copy`: a copied record stamped 2.5 s after the child started."""
    copy = [("10.000", "event_msg", {"type": "task_started", "turn_id": "pt1"}),
            ("10.000", "response_item", _msg("user", "investigate the bug with a subagent")),
            ("12.500" if late_copy else "10.000", "response_item", _msg("assistant", "spawning", id="msg_parent_1")),
            ("12.500" if late_copy else "10.000", "event_msg", _count(_u(5000, 4000, 100)))]  # fmt: skip
    if copied_meta:
        copy.insert(0, ("10.000", "session_meta", {"id": SUB_PARENT, "timestamp": "2026-01-01T00:00:00.000Z"}))
    header = ("10.000", "session_meta", {
        "id": SUB_CHILD, "session_id": SUB_PARENT, "timestamp": "2026-01-01T00:00:10.000Z", "cwd": "/repo",
        "cli_version": "0.152.0", "parent_thread_id": SUB_PARENT, "thread_source": "subagent",
        "history_mode": "paginated", "subagent_history_start_ordinal": len(copy) + 1,
        "source": {"subagent": {"thread_spawn": {"parent_thread_id": SUB_PARENT, "depth": 1}}}})  # fmt: skip
    own = [("12.900" if late_copy else "11.000", "event_msg", {"type": "task_started", "turn_id": "ct1"}),
           ("12.900" if late_copy else "11.000", "response_item", _msg("user", "child task: read the logs")),
           ("13.000", "response_item", _msg("assistant", "logs say X", id="msg_child_1")),
           ("13.000", "event_msg", _count(_u(6000, 4500, 130), _u(1000, 500, 30))),
           ("13.100", "event_msg", {"type": "task_complete", "turn_id": "ct1"})]  # fmt: skip
    return [{"timestamp": f"2026-01-01T00:00:{ts}Z", "ordinal": i, "type": typ, "payload": p}
            for i, (ts, typ, p) in enumerate([header, *copy, *own])]  # fmt: skip


def slow_fork_replay() -> list[dict]:
    """A fork (two session_meta lines) whose replay burst is written over 2.9 s, each record under a second after
    the one before: rule 2(b) ends the replay between the parent's last assistant message and its token_count."""
    t1 = _u(1000, 800, 50)  # the parent's first response (before the fork; not in the file)
    t2 = {k: t1[k] + v for k, v in _u(1200, 1000, 70).items()}
    t3 = {k: t2[k] + v for k, v in _u(1500, 1200, 40).items()}
    recs = [_e("10.000", "session_meta", {"id": "child", "timestamp": "2026-01-01T00:00:10.000Z", "forked_from_id": "p"}),
            _e("10.000", "session_meta", {"id": "p", "timestamp": "2026-01-01T00:00:00.000Z"}),
            _e("10.600", "event_msg", {"type": "task_started", "turn_id": "pt1"}),
            _e("11.200", "response_item", _msg("user", "list files")),
            _e("11.900", "response_item", _msg("assistant", "two files")),  # second 11: still replayed
            _e("12.500", "event_msg", _count(t2, _u(1200, 1000, 70))),  # second 12: ends the replay
            _e("12.900", "event_msg", {"type": "task_complete", "turn_id": "pt1"}),
            # the child's own turn
            _e("20.000", "event_msg", {"type": "task_started", "turn_id": "ct1"}),
            _e("20.100", "response_item", _msg("user", "now count lines")),
            _e("20.200", "event_msg", _count(t2, _u(1200, 1000, 70))),  # a re-emit of the replayed total
            _e("22.000", "response_item", _msg("assistant", "forty lines")),
            _e("22.100", "event_msg", _count(t3, _u(1500, 1200, 40))),
            _e("22.200", "event_msg", {"type": "task_complete", "turn_id": "ct1"})]  # fmt: skip
    return recs


def _replay_flags(rows: list[dict]) -> dict:
    return {r["content_text"]: attrs(r).get("codex", {}).get("replayed_from_parent", False) for r in rows}


def test_subagent_history_before_its_start_ordinal_is_a_replay(tmp_path):
    """codex.md §7: a spawned subagent with ONE session_meta carrying `subagent_history_start_ordinal` N copies the
    parent's history into its own file (records with `ordinal` < N, the parent's token_count included). Those
    rows are the parent's: flagged, fallback ids, no tokens; the child's usage is its own response's only."""
    rows, stats = import_file(IMP, _lines_file(tmp_path, subagent_with_start_ordinal(), f"rollout-x-{SUB_CHILD}.jsonl"))
    assert _replay_flags(rows) == {"investigate the bug with a subagent": True, "spawning": True,
                                   "child task: read the logs": False, "logs say X": False}  # fmt: skip
    copied = by_text(rows, "spawning")
    assert copied["message_id"] != "msg_parent_1" and copied["provider_uuid"] is None
    assert attrs(copied)["codex"]["native_item_id"] == "msg_parent_1" and tokens(copied) == (None, None, None, None)
    assert by_text(rows, "logs say X")["message_id"] == "msg_child_1"
    # the parent's 5000-token request is not counted again: only the child's own response carries usage
    assert {r["content_text"]: tokens(r) for r in carriers(rows)} == {"logs say X": (500, 30, 500, None)}
    assert stats.usage_unattached == 0
    assert {(r["is_sidechain"], r["parent_thread_id"], r["conversation_id"]) for r in rows} == {(True, SUB_PARENT, SUB_CHILD)}


def test_a_start_ordinal_alone_bounds_the_copy_whatever_the_stamps(tmp_path):
    """The ordinal is exact (Codex itself skips the records below it): a copy that opens with the parent's
    session_meta and has a record stamped 2.5 s after the child started is still the copy up to the ordinal. A
    file whose records carry no ordinal, or a later page that starts at or after it, copies nothing."""
    recs = subagent_with_start_ordinal(copied_meta=True, late_copy=True)
    rows, stats = import_file(IMP, _lines_file(tmp_path, recs, f"rollout-x-{SUB_CHILD}.jsonl"))
    assert _replay_flags(rows) == {"investigate the bug with a subagent": True, "spawning": True,
                                   "child task: read the logs": False, "logs say X": False}  # fmt: skip
    assert {r["content_text"]: tokens(r) for r in carriers(rows)} == {"logs say X": (500, 30, 500, None)}
    no_ordinals = [{k: v for k, v in r.items() if k != "ordinal"} for r in subagent_with_start_ordinal()]
    rows, _ = import_file(IMP, _lines_file(tmp_path, no_ordinals, "rollout-y.jsonl"))
    assert not any(_replay_flags(rows).values())
    page = [r for r in subagent_with_start_ordinal() if r["ordinal"] == 0 or r["ordinal"] >= 5]
    later_page = [{**r, "ordinal": 5 + i} for i, r in enumerate(page)]  # its header's ordinal: the previous end
    rows, _ = import_file(IMP, _lines_file(tmp_path, later_page, "rollout-z.jsonl"))
    assert _replay_flags(rows) == {"child task: read the logs": False, "logs say X": False}
    assert {r["content_text"]: tokens(r) for r in carriers(rows)} == {"logs say X": (500, 30, 500, None)}


def test_a_subagent_whose_own_records_open_with_a_compaction_counts_its_usage(tmp_path):
    """A replay bounded by an ordinal ends exactly where the child's own records start, so the child's first
    counted token_count is its own: a compaction's request there was dropped as the parent's (review)."""
    def tc(total: dict, last: dict) -> dict:
        return {"type": "token_count", "info": {"total_token_usage": total, "last_token_usage": last}}

    def u(i: int, c: int, o: int) -> dict:
        return {"input_tokens": i, "cached_input_tokens": c, "output_tokens": o, "reasoning_output_tokens": 0}

    meta = {"id": SUB_CHILD, "timestamp": "2026-01-01T00:00:10Z", "cli_version": "0.120.0",
            "source": {"subagent": {"thread_spawn": {"parent_thread_id": SUB_PARENT, "depth": 1}}},
            "subagent_history_start_ordinal": 6}
    recs = [("session_meta", meta),
            ("session_meta", {"id": SUB_PARENT, "timestamp": "2026-01-01T00:00:00Z", "cli_version": "0.120.0"}),
            ("event_msg", {"type": "task_started", "turn_id": "pt"}),
            ("response_item", {"type": "message", "role": "user", "content": "parent prompt"}),
            ("response_item", {"type": "message", "role": "assistant", "content": "parent answer", "id": "msg_p1"}),
            ("event_msg", tc(u(5_000_000, 4_900_000, 10_000), u(70_000, 69_000, 100))),
            ("turn_context", {"turn_id": "ct", "model": "gpt-c", "cwd": "/r"}),
            ("event_msg", tc(u(5_090_000, 4_900_000, 10_900), u(90_000, 0, 900))),
            ("compacted", {"message": "summary"}),
            ("event_msg", {"type": "task_started", "turn_id": "ct"}),
            ("response_item", {"type": "message", "role": "user", "content": "child task"}),
            ("response_item", {"type": "message", "role": "assistant", "content": "child answer", "id": "msg_c1"}),
            ("event_msg", tc(u(5_120_000, 4_929_000, 11_000), u(30_000, 29_000, 100))),
            ("event_msg", {"type": "task_complete", "turn_id": "ct"})]
    out = [{"timestamp": f"2026-01-01T00:00:{10 + i * 0.4:06.3f}Z", "ordinal": i, "type": t, "payload": p}
           for i, (t, p) in enumerate(recs)]
    rows, stats = import_file(IMP, _lines_file(tmp_path, out, f"rollout-x-{SUB_CHILD}.jsonl"))
    assert {r["content_text"]: tokens(r) for r in carriers(rows)} == {
        "summary": (90000, 900, 0, None), "child answer": (1000, 100, 29000, None)}
    assert stats.usage_unattached == 0


def test_a_parent_token_count_left_past_a_replay_cut_short_by_time_does_not_latch(tmp_path):
    """codex.md §6.2 rule 1: a fork whose replay burst lasts more than a second is cut by §7 rule 2(b) between
    the parent's last assistant message (replayed) and its token_count. That token_count is still the parent's:
    it is counted unattached and decides nothing, so the order latches on the child's own response and the
    child's usage lands on its own message (it used to latch `before` and drop every later usage)."""
    rows, stats = import_file(IMP, _lines_file(tmp_path, slow_fork_replay()))
    assert _replay_flags(rows) == {"list files": True, "two files": True, "now count lines": False, "forty lines": False}
    assert {r["content_text"]: tokens(r) for r in carriers(rows)} == {"forty lines": (300, 40, 1200, None)}
    assert stats.usage_unattached == 1


# A user message of a paginated turn, and its item_completed copy (codex.md §4.4)
_CONTINUE = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "continue"}]}
_CONTINUE_ITEM = {"type": "item_completed",
                  "item": {"type": "UserMessage", "id": "item_1", "content": [{"type": "text", "text": "continue"}]}}


def test_paginated_dedupe_keys_last_one_turn(tmp_path):
    """codex.md §4.4: in paginated history an item_completed copy of an item of the same turn is a duplicate, but
    the keys are forgotten at the next turn start: the same words typed again in a new turn are a new message."""
    user, copy = _CONTINUE, _CONTINUE_ITEM
    recs = [_e("00", "session_meta", {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "history_mode": "paginated"}),
            _e("01", "event_msg", {"type": "task_started", "turn_id": "turn-1"}),
            _e("02", "response_item", user), _e("03", "event_msg", copy),
            _e("04", "event_msg", {"type": "task_complete"}),
            _e("05", "event_msg", {"type": "task_started", "turn_id": "turn-2"}),
            _e("06", "response_item", user)]  # fmt: skip
    rows, stats = import_file(IMP, _lines_file(tmp_path, recs))
    assert [(r["content_text"], r["prompt_id"], r["message_index"]) for r in rows] == [
        ("continue", "turn-1", 0), ("continue", "turn-2", 1)]
    assert stats.lines_skipped["duplicate_item"] == 1


def test_paginated_user_message_copy_after_its_item_completed_is_a_duplicate_item(tmp_path):
    """codex.md §4.4 and its checklist ("in either order"): a paginated turn whose `item_completed` UserMessage
    comes before the response item of the same words gives one row, from the item, and the response item is
    counted as `duplicate_item`: the reason the summary shows, not `not_a_message`."""
    user, item = _CONTINUE, _CONTINUE_ITEM
    recs = [_e("00", "session_meta", {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "history_mode": "paginated"}),
            _e("01", "event_msg", {"type": "task_started", "turn_id": "turn-1"}),
            _e("02", "event_msg", item), _e("03", "response_item", user),
            _e("04", "event_msg", {"type": "task_complete"})]  # fmt: skip
    rows, stats = import_file(IMP, _lines_file(tmp_path, recs))
    assert [(r["content_text"], r["message_id"], r["provider_type"]) for r in rows] == [
        ("continue", "item_1", "item_completed")]
    # (the session_meta and the two turn events carry no message)
    assert {k: v for k, v in stats.lines_skipped.items() if v} == {"duplicate_item": 1, "not_a_message": 3}


def test_a_negative_exit_code_is_an_error(tmp_path):
    """codex.md §4.1: a tool result is an error when the exit code it states is non-zero, a negative one too
    (a process killed by a signal is reported as -1 or -9)."""
    path = _rollout(tmp_path, [
        {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "c1"},
        {"type": "function_call_output", "call_id": "c1", "output": "Exit code: -9\nWall time: 1s\nOutput:\nKilled"},
        {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "c2"},
        {"type": "function_call_output", "call_id": "c2", "output": "Exit code: 0\nOutput:\nok"}])
    rows, _ = import_file(IMP, path)
    got = [(r["tool_call_id"], r["is_error"], json.loads(r["status"])) for r in rows if r["part_type"] == "tool_result"]
    assert got == [("c1", True, {"tool_status": "error"}), ("c2", False, {"tool_status": "success"})]


def test_an_early_header_is_taken_once(tmp_path):
    """codex.md §2.2: the bare `{id, timestamp, ...}` header of an early rollout is its first such line; a later
    line of that shape is an unknown record and changes nothing (not the session, cwd or git of later rows)."""
    path = tmp_path / "rollout-2025-07-01T00-00-00-early.jsonl"
    recs = [{"id": "first", "timestamp": "2025-07-01T00:00:00Z", "git": {"branch": "main"}},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one"}]},
            {"id": "second", "timestamp": "2025-07-01T00:05:00Z", "git": {"branch": "other"}},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two"}]}]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    rows, stats = import_file(IMP, path)
    assert [(r["content_text"], r["conversation_id"], r["git_branch"]) for r in rows] == [
        ("one", "first", "main"), ("two", "first", "main")]
    assert (stats.records_by_type["header"], stats.records_by_type["unknown"]) == (1, 1)
    assert stats.lines_skipped == Counter({"not_a_message": 2})

def test_effort_follows_each_turn_context_on_assistant_rows(tmp_path):
    """codex.md §5: `attributes.codex.effort` is the latest `turn_context.effort`, on assistant rows only: a turn
    context that says `effort: null` clears it; one that does not mention it leaves it as it was."""
    def ctx(**kw: object) -> dict:
        return _e("00", "turn_context", {"model": "gpt-5", **kw})

    def say(role: str, text: str) -> dict:
        kind = "input_text" if role == "user" else "output_text"
        return _e("01", "response_item", {"type": "message", "role": role, "content": [{"type": kind, "text": text}]})

    recs = [_e("00", "session_meta", {"id": "t", "timestamp": "2026-01-01T00:00:00Z"}),
            ctx(effort="high"), say("user", "u1"), say("assistant", "a1"),
            ctx(), say("assistant", "a2"),
            ctx(effort=None), say("assistant", "a3"), say("user", "u2")]  # fmt: skip
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    assert {r["content_text"]: attrs(r).get("codex", {}).get("effort") for r in rows} == {
        "u1": None, "a1": "high", "a2": "high", "a3": None, "u2": None}

def test_an_output_array_keeps_untyped_text_entries(tmp_path):
    """codex.md §4.1: an output given as an array stores the text of its text entries joined with `\\n`: a bare
    string and an entry with a `text` but no `type` are text too; an image entry is not."""
    path = _rollout(tmp_path, [
        {"type": "function_call", "name": "view", "arguments": "{}", "call_id": "c1"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"text": "untyped"}, "bare", {"type": "input_text", "text": "typed"},
            {"type": "input_image", "image_url": "https://x/a.png", "text": "not text"}]}])
    rows, _ = import_file(IMP, path)
    assert [r["content_text"] for r in rows if r["part_type"] == "tool_result"] == ["untyped\nbare\ntyped"]

def test_before_order_usage_cut_off_by_a_boundary_is_counted_unattached(tmp_path):
    """codex.md §6.2: in the before order a token_count waits for the next assistant message; a response boundary
    (a user message) in between drops it, counted in `usage_unattached`, and the later message gets none."""
    usage = {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 3}
    path = _rollout(tmp_path, [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u1"}]},
        {"type": "token_count", "info": {"last_token_usage": usage, "total_token_usage": usage}},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u2"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]}])
    rows, stats = import_file(IMP, path)
    assert [r["content_text"] for r in rows] == ["u1", "u2", "a"] and carriers(rows) == []
    assert stats.usage_unattached == 1

def test_after_order_usage_with_no_message_waiting_is_counted_unattached(tmp_path):
    """codex.md §6.2: in the after order a token_count attaches to the assistant message waiting for it; a second
    one with a grown total and no message waiting waits for a `compacted` record (a compaction's request); a
    turn end comes first, so it attaches nowhere and is counted in `usage_unattached`."""
    t1 = {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 3}
    t2 = {"input_tokens": 25, "cached_input_tokens": 0, "output_tokens": 7}
    path = _rollout(tmp_path, [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u1"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a1"}]},
        {"type": "token_count", "info": {"last_token_usage": t1, "total_token_usage": t1}},
        {"type": "token_count", "info": {"total_token_usage": t2}},
        {"type": "task_complete"}])
    rows, stats = import_file(IMP, path)
    assert [(r["content_text"], *tokens(r)) for r in rows] == [("u1", None, None, None, None), ("a1", 10, 3, 0, None)]
    assert stats.usage_unattached == 1

def test_usage_from_totals_restarts_when_a_total_goes_down_and_lands_on_the_last_part(tmp_path):
    """codex.md §6.1: without `last_token_usage` the usage is the growth of `total_token_usage`, or the total
    itself when it went down (a restart: never a negative count); schema.md §3.5: the tokens go on the message's
    last part."""
    def reply(*texts: str) -> dict:
        return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": t} for t in texts]}

    path = _rollout(tmp_path, [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u1"}]},
        reply("a1", "a1 more"),
        {"type": "token_count", "info": {"total_token_usage": {"input_tokens": 100, "output_tokens": 10}}},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u2"}]},
        reply("a2"),
        {"type": "token_count", "info": {"total_token_usage": {"input_tokens": 30, "output_tokens": 4}}}])
    rows, stats = import_file(IMP, path)
    assert [(r["content_text"], r["part_index"], *tokens(r)) for r in rows] == [
        ("u1", 0, None, None, None, None), ("a1", 0, None, None, None, None), ("a1 more", 1, 100, 10, None, None),
        ("u2", 0, None, None, None, None), ("a2", 0, 30, 4, None, None)]
    assert stats.usage_unattached == 0

def test_empty_summary_texts_are_no_reasoning_text(tmp_path):
    """codex.md §4.1: a reasoning item's row holds its non-empty summary texts joined with `\\n`; one whose
    summaries are all empty carries only encrypted content (`encrypted_only`, no row)."""
    def reasoning(*texts: str) -> dict:
        return {"type": "reasoning", "summary": [{"type": "summary_text", "text": t} for t in texts],
                "encrypted_content": "gAAAA"}

    path = _rollout(tmp_path, [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u1"}]},
        reasoning("", ""), reasoning("plan", "", "act"),
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u2"}]}])
    rows, stats = import_file(IMP, path)
    assert [(r["part_type"], r["content_text"]) for r in rows] == [
        ("text", "u1"), ("reasoning", "plan\nact"), ("text", "u2")]
    assert stats.lines_skipped["encrypted_only"] == 1

def test_less_common_item_shapes(tmp_path):
    recs = [_e("00", "session_meta", {"id": "t"}),
            _e("01", "response_item", {"type": "message", "role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "input_file", "text": "notes.txt contents", "file_id": "f1"},
                "bare string entry", {"type": "input_image", "image_url": "https://example.com/x.png"}]}),
            _e("02", "response_item", {"type": "message", "role": "system", "content": "a plain string content"}),
            _e("03", "response_item", {"type": "function_call", "name": "query", "namespace": "mcp__db", "arguments": "not json",
                                       "id": "fc_1"}),
            _e("04", "response_item", {"type": "function_call_output", "call_id": "fc_1", "output": {"rows": 3, "ok": True}}),
            _e("05", "response_item", {"type": "image_generation_call", "result": "iVBORw0KGgo="}),
            _e("06", "response_item", {"type": "tool_search_call", "arguments": {}}),
            _e("07", "inter_agent_communication", {"from": "a"}),
            _e("08", "event_msg", {"type": "exec_command_end", "exit_code": 1}),
            _e("09", "event_msg", {"type": "task_complete"})]  # fmt: skip (the boundary releases the held call)
    rows, stats = import_file(IMP, _lines_file(tmp_path, recs))
    parts = [(r["part_type"], r["provider_subtype"], r["content_text"]) for r in rows if r["role"] == "user"]
    assert parts == [("audio", "input_audio", None), ("input_file", "input_file", "notes.txt contents"),
                     ("text", None, "bare string entry"), ("image", "input_image", None)]  # fmt: skip
    assert by_text(rows, "plain string content")["role"] == "system"
    call = by_call(rows, "fc_1")  # call_id falls back to the item id
    assert call["message_id"] == "fc_1" and call["tool_args"] == '"not json"'
    assert attrs(call)["codex"]["tool_namespace"] == "mcp__db"
    out = by_call(rows, "fc_1", "tool_result")
    assert out["content_text"] == '{"ok":true,"rows":3}' and out["tool_name"] == "query" and out["is_error"] is None
    assert not any("UklGRg" in str(v) or "iVBOR" in str(v) or "example.com" in str(v) for r in rows for v in r.values())
    assert stats.records_by_type["inter_agent_communication"] == 1
    assert stats.lines_skipped["not_a_message"] == 6  # meta, image_generation, tool_search, inter_agent, exec_end, complete


def test_session_key_is_the_thread():
    a = SourceFile("codex", "/h/sessions/2026/01/15/rollout-2026-01-15T14-02-11-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b01.jsonl", "a" * 16, "incremental")
    b = SourceFile("codex", "/h/archived_sessions/rollout-2026-01-15T14-02-11-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b01.jsonl", "b" * 16, "incremental")
    assert IMP.session_key(a) == IMP.session_key(b) == "019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b01"


def test_object_outputs_and_arguments_never_store_file_bytes():
    """schema.md §3.4 rule 3: an output that is an object is canonical JSON (codex.md §4.1) without audio,
    file or image bytes; tool arguments likewise (a data URI becomes `<omitted>`, as in content_text)."""
    import orjson

    from hypaware_tui.importers.base import args_json
    from hypaware_tui.importers.codex import output_text

    wav, pdf = "UklGRiQAAABXQVZFZm10IBAAAAABAAEA" * 50, "JVBERi0xLjQKJcfsj6IKNSAwIG9iago8" * 50
    out = output_text({"content": [{"type": "input_audio", "input_audio": {"data": wav, "format": "wav"}},
                                   {"type": "input_file", "filename": "a.pdf", "file_data": pdf}], "ok": True})
    assert out is not None and wav[:40] not in out and pdf[:40] not in out
    assert orjson.loads(out) == {"content": [
        {"type": "input_audio", "input_audio": {"data": "<omitted>", "format": "wav"}},
        {"type": "input_file", "filename": "a.pdf", "file_data": "<omitted>"}], "ok": True}
    # arguments are a JSON string: an integer beyond 64 bits stays exact (orjson alone made it a float)
    assert args_json('{"n": 1267650600228229401496703205377, "neg": -9223372036854775809, "f": 1.5}') == (
        '{"f":1.5,"n":1267650600228229401496703205377,"neg":-9223372036854775809}')
    args = args_json(orjson.dumps({"path": "x.png", "image_url": f"data:image/png;base64,{pdf}"}).decode())
    assert args == '{"image_url":"data:image/png;base64,<omitted>","path":"x.png"}'
    assert output_text({"output": "plain", "metadata": {"exit_code": 0}}) == (
        '{"metadata":{"exit_code":0},"output":"plain"}')  # nothing to omit: the text as before
    # older Codex serialised an MCP CallToolResult into the output string: a screenshot's base64 with it
    mcp = json.dumps({"content": [{"type": "text", "text": "screenshot taken"},
                                  {"type": "image", "data": wav, "mimeType": "image/png"},
                                  {"type": "resource", "resource": {"uri": "file:///a.pdf", "blob": pdf}},
                                  {"type": "audio", "data": wav, "mimeType": "audio/wav"},  # MCP audio content
                                  {"type": "resource", "resource": {"mimeType": "application/pdf", "blob": pdf}}],
                      "isError": False})
    out = output_text(mcp)
    assert out is not None and wav[:40] not in out and pdf[:40] not in out
    assert orjson.loads(out) == {"content": [
        {"type": "text", "text": "screenshot taken"},
        {"type": "image", "data": "<omitted>", "mimeType": "image/png"},
        {"type": "resource", "resource": {"uri": "file:///a.pdf", "blob": "<omitted>"}},
        {"type": "audio", "data": "<omitted>", "mimeType": "audio/wav"},
        {"type": "resource", "resource": {"mimeType": "application/pdf", "blob": "<omitted>"}}], "isError": False}
    # JSON text without file bytes is kept exactly as it came, spacing included
    for text in ('{"data": {"rows": [1, 2]}, "type": "image"}', ' [{"blob": "x"}]', '{"data": "abc"', "plain"):
        assert output_text(text) == text


def test_is_error_of_paginated_items_and_of_legacy_chat_tool_results(tmp_path):
    """codex.md §4.4: a CommandExecution's result is an error when exit_code ∉ {0, null} (a declined
    command, exit code null, is not one), an McpToolCall's when result.isError or an error is present: both
    always true or false, never null. §4.1 SHOULD: a legacy chat `role: tool` result states its exit code
    like a function_call_output does."""
    meta = {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "history_mode": "paginated"}
    done = [{"type": "CommandExecution", "id": "ce1", "command": ["rm", "x"], "exit_code": None, "status": "declined"},
            {"type": "CommandExecution", "id": "ce2", "command": ["false"], "exit_code": 1},
            {"type": "McpToolCall", "id": "mc1", "server": "s", "tool": "t", "result": {"content": [{"type": "text", "text": "ok"}]}},
            {"type": "McpToolCall", "id": "mc2", "server": "s", "tool": "t", "error": {"message": "boom"}}]  # fmt: skip
    recs = [_e("00", "session_meta", meta), _e("01", "response_item", {"type": "message", "role": "user", "content": "go"})]
    recs += [_e(f"0{2 + i}", "event_msg", {"type": "item_completed", "item": item}) for i, item in enumerate(done)]
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    results = {r["message_id"]: r for r in rows if r["part_type"] == "tool_result"}
    verdicts = {k: (r["is_error"], json.loads(r["status"])["tool_status"]) for k, r in results.items()}
    assert verdicts == {"ce1:output": (False, "success"), "ce2:output": (True, "error"),
                        "mc1:output": (False, "success"), "mc2:output": (True, "error")}  # fmt: skip

    out = json.dumps({"output": "ls: cannot access x\n", "metadata": {"exit_code": 2}})
    doc = {"session": {"id": "legacy", "timestamp": "2025-04-01T10:00:00Z"}, "items": [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": '{"command": ["ls", "x"]}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": out},
        {"type": "function_call_output", "call_id": "c1", "output": out}]}
    path = tmp_path / "rollout-2025-04-01-legacy.json"
    path.write_text(json.dumps(doc))
    rows, _ = import_file(IMP, path, file=source_file_for(IMP, path))
    assert [r["is_error"] for r in rows if r["part_type"] == "tool_result"] == [True, True]


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+05:30", "9999-12-31T23:59:59-05:00"])
def test_a_stamp_outside_years_1_to_9999_in_utc_is_unparseable_not_stored(stamp, tmp_path):
    """`0001-01-01T00:00:00+05:30` is in year 0 in UTC: stored as it was, every `hyp query sql` that showed the
    row died (year 0 is out of range). It is unparseable (schema.md §3.2 rule 1), as Claude's importer has it."""
    path = tmp_path / "rollout-2026-01-01T00-00-00-range.jsonl"
    lines = [
        {"timestamp": stamp, "type": "session_meta", "payload": {"id": "r1", "timestamp": stamp, "cwd": "/w"}},
        {"timestamp": "2026-01-01T00:00:01Z", "type": "response_item",
         "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}},
        {"timestamp": stamp, "type": "response_item",
         "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "late"}]}},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    rows, _ = import_file(IMP, path)
    ok = parse_iso_us("2026-01-01T00:00:01Z")
    assert [r["content_text"] for r in rows] == ["hi", "late"]
    assert all(r["message_created_at"] == ok == r["conversation_started_at"] for r in rows)
    frame_from_rows(rows).rows()  # every value converts to Python (the query's table did this and raised)


def test_a_rollout_without_session_meta_whose_name_is_not_utf8(tmp_path):
    """A rollout without `session_meta` takes its thread id from the file name; a name with bytes that are not
    UTF-8 kept them as lone surrogates (`os.fsdecode`), and the whole batch (rows of every file) failed to
    become a frame, on every run. The thread id is the name's bytes with those written as escapes, the same in
    one pass or in pieces."""
    from import_helpers import rows_multiset

    src = fx("2026-01-15T14-02-11")
    body = b"".join(line for line in src.read_bytes().splitlines(keepends=True) if b'"session_meta"' not in line)
    raw = os.fsencode(tmp_path) + b"/rollout-2026-11-27T10-00-00-\xff\xfe.jsonl"
    with open(raw, "wb") as fh:
        fh.write(body)
    path = Path(os.fsdecode(raw))
    whole, _ = import_file(IMP, path)
    assert whole and {r["conversation_id"] for r in whole} == {"rollout-2026-11-27T10-00-00-\\xff\\xfe"}
    assert all(r[c].encode() for r in whole for c in r if isinstance(r[c], str))  # every value valid UTF-8
    offsets = [i for i in range(len(body)) if body[i - 1 : i] == b"\n"]
    pieces, _ = import_file(IMP, path, pieces=offsets[::3])
    assert rows_multiset(pieces) == rows_multiset(whole)
    assert thread_id_from_name(os.fsdecode(b"/x/rollout-a\\b\xff.jsonl")) == "rollout-a\\x5cb\\xff"
    # a UTF-8 name that spells the escapes out is not read as the bytes; an ordinary name is itself
    assert thread_id_from_name("/x/rollout-2026-11-20T11-00-00-\\xff\\xfe.jsonl") == (
        "rollout-2026-11-20T11-00-00-\\x5cxff\\x5cxfe")
    assert thread_id_from_name(os.fsdecode(b"/x/rollout-2026-11-20T11-00-00-\xff\xfe.jsonl")) == (
        "rollout-2026-11-20T11-00-00-\\xff\\xfe")
    assert thread_id_from_name("/x/rollout-2026-11-20T11-00-00-é.jsonl") == "rollout-2026-11-20T11-00-00-é"


def _every_line(path: Path) -> list[int]:
    """The byte offset after each line of a file: split points for the split-equals-whole invariant."""
    offsets, at = [], 0
    for line in path.read_bytes().splitlines(keepends=True):
        at += len(line)
        offsets.append(at)
    return offsets


def test_a_camel_case_command_execution_keeps_its_output_and_exit_code(tmp_path):
    """codex.md §4.4: Codex's protocol items.rs declared `CommandExecutionItem` with `rename_all = "camelCase"`
    while paginated rollouts already stored every TurnItem, so a command's output and exit code may be spelled
    `aggregatedOutput` / `exitCode` (`processId`, `parsedCmd`, ...): they are read as the snake_case names are."""
    meta = {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "history_mode": "paginated"}
    item = {"type": "CommandExecution", "id": "ce1", "processId": "p7", "command": ["make", "test"], "cwd": "/repo",
            "parsedCmd": [], "source": "agent", "status": "failed", "aggregatedOutput": "2 failed, 9 passed\n",
            "exitCode": 2}  # fmt: skip
    recs = [_e("00", "session_meta", meta), _e("01", "event_msg", {"type": "task_started", "turn_id": "u1"}),
            _e("02", "response_item", {"type": "message", "role": "user", "content": "run the tests"}),
            _e("03", "event_msg", {"type": "item_completed", "item": item}),
            _e("04", "event_msg", {"type": "task_complete", "turn_id": "u1"})]  # fmt: skip
    path = _lines_file(tmp_path, recs)
    rows, _ = import_file(IMP, path)
    out = by_call(rows, "ce1", "tool_result")
    assert (out["content_text"], out["is_error"], json.loads(out["status"])) == (
        "2 failed, 9 passed\n", True, {"tool_status": "error"})
    assert json.loads(by_call(rows, "ce1")["tool_args"]) == {"command": ["make", "test"], "cwd": "/repo"}
    pieces, _ = import_file(IMP, path, pieces=_every_line(path))
    assert rows_multiset(pieces) == rows_multiset(rows)


def test_a_standalone_web_search_is_one_tool_call_and_a_hosted_one_too(tmp_path):
    """codex.md §4.4: Codex's standalone web search is the function tool `web.run` (ext/web-search); its
    `Extension` item (`kind: "web.search"`) has the call id as its id, and the rollout holds the
    `function_call` response item too: one call, one tool_call row. A hosted search's `WebSearch` item is
    derived from its `web_search_call` response item (core event_mapping.rs): it adds no row either."""
    meta = {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "history_mode": "paginated"}
    ext = {"type": "Extension", "kind": "web.search", "id": "call_W1", "query": "ruff F401",
           "action": {"type": "search", "query": "ruff F401"}}  # fmt: skip
    hosted = {"type": "WebSearch", "id": "ws_2", "query": "mypy strict", "action": {"type": "search", "query": "mypy strict"}}
    recs = [_e("00", "session_meta", meta), _e("01", "event_msg", {"type": "task_started", "turn_id": "u1"}),
            _e("02", "response_item", {"type": "message", "role": "user", "content": "look it up"}),
            _e("03", "response_item", {"type": "function_call", "name": "run", "namespace": "web", "call_id": "call_W1",
                                       "arguments": '{"search_query": [{"q": "ruff F401"}]}'}),
            _e("04", "event_msg", {"type": "item_completed", "item": ext}),
            _e("05", "response_item", {"type": "function_call_output", "call_id": "call_W1", "output": "F401 (https://x.dev)"}),
            _e("06", "response_item", {"type": "web_search_call", "id": "ws_2", "status": "completed",
                                       "action": {"type": "search", "query": "mypy strict"}}),
            _e("07", "event_msg", {"type": "item_completed", "item": hosted}),
            _e("08", "event_msg", {"type": "task_complete", "turn_id": "u1"})]  # fmt: skip
    path = _lines_file(tmp_path, recs)
    rows, stats = import_file(IMP, path)
    calls = [(r["tool_call_id"], r["tool_name"], r["provider_type"]) for r in rows if r["part_type"] == "tool_call"]
    assert calls == [("call_W1", "run", "function_call"), ("ws_2", "web_search", "web_search_call")]
    assert by_call(rows, "call_W1", "tool_result")["tool_name"] == "run"
    assert stats.lines_skipped["duplicate_item"] == 1
    pieces, _ = import_file(IMP, path, pieces=_every_line(path))
    assert rows_multiset(pieces) == rows_multiset(rows)


def test_paginated_command_file_change_and_mcp_results_keep_their_text_and_verdict(tmp_path):
    """codex.md §4.4: a CommandExecution without `aggregated_output` shows its stdout and stderr joined with a
    newline, a FileChange its stdout and stderr too, and an McpToolCall whose `result.isError` is true is an
    error (without any `error` field)."""
    meta = {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "history_mode": "paginated"}
    done = [{"type": "CommandExecution", "id": "ce1", "command": ["make"], "cwd": "/repo", "stdout": "built 3 targets",
             "stderr": "warning: unused x", "exit_code": 0},
            {"type": "FileChange", "id": "fc1", "changes": {"a.py": {"type": "add", "content": "x"}},
             "stdout": "Success. Updated a.py", "stderr": "warning: CRLF line endings"},
            {"type": "McpToolCall", "id": "mc1", "server": "db", "tool": "query", "arguments": {"sql": "select 1"},
             "result": {"content": [{"type": "text", "text": "no such table: t"}], "isError": True}}]  # fmt: skip
    recs = [_e("00", "session_meta", meta), _e("01", "response_item", {"type": "message", "role": "user", "content": "go"})]
    recs += [_e(f"0{2 + i}", "event_msg", {"type": "item_completed", "item": item}) for i, item in enumerate(done)]
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    got = {r["message_id"]: (r["tool_name"], r["content_text"], r["is_error"], r["status"])
           for r in rows if r["part_type"] == "tool_result"}  # fmt: skip
    assert got == {"ce1:output": ("shell", "built 3 targets\nwarning: unused x", False, '{"tool_status":"success"}'),
                   "fc1:output": ("apply_patch", "Success. Updated a.py\nwarning: CRLF line endings", None, None),
                   "mc1:output": ("query", "no such table: t", True, '{"tool_status":"error"}')}  # fmt: skip


def test_a_local_shell_call_is_keyed_by_its_call_id_and_empty_messages_are_empty_content(tmp_path):
    """codex.md §4.1: a `local_shell_call` carries an item id (`lsh_…`, its message_id) and a `call_id`; the
    call id is what its output names, so the call's tool_call_id is the call id and the output is paired with
    it (tool_name `local_shell`). A message with no content parts gives no row and is counted `empty_content`."""
    path = _rollout(tmp_path, [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list it"}]},
        {"type": "local_shell_call", "id": "lsh_1", "call_id": "call_L1", "status": "completed",
         "action": {"type": "exec", "command": ["ls"]}},
        {"type": "function_call_output", "call_id": "call_L1", "output": "Exit code: 0\nOutput:\na.py"},
        {"type": "message", "role": "assistant", "content": []},
        {"type": "message", "role": "user", "content": []},
        {"type": "task_complete"}])  # fmt: skip
    rows, stats = import_file(IMP, path)
    call, out = by_call(rows, "call_L1"), by_call(rows, "call_L1", "tool_result")
    assert (call["message_id"], call["tool_name"], json.loads(call["tool_args"])["command"]) == ("lsh_1", "local_shell", ["ls"])
    assert (out["tool_result_for"], out["tool_name"], out["is_error"], out["content_text"]) == (
        "call_L1", "local_shell", False, "Exit code: 0\nOutput:\na.py")
    assert len(rows) == 3
    assert dict(stats.lines_skipped) == {"not_a_message": 2, "empty_content": 2}  # (session_meta, task_complete)


def test_a_repeated_web_search_call_in_a_paginated_turn_is_one_row(tmp_path):
    """codex.md §4.4 rule 3: a `web_search_call` registers ("web_search", id) in the turn; the same search again in
    that turn is a `duplicate_item`, in the next turn it is a row again."""
    meta = {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "history_mode": "paginated"}
    search = {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search", "query": "q"}}
    recs = [_e("00", "session_meta", meta), _e("01", "event_msg", {"type": "task_started", "turn_id": "u1"}),
            _e("02", "response_item", {"type": "message", "role": "user", "content": "look it up"}),
            _e("03", "response_item", search), _e("04", "response_item", search),
            _e("05", "event_msg", {"type": "task_started", "turn_id": "u2"}), _e("06", "response_item", search),
            _e("07", "event_msg", {"type": "task_complete", "turn_id": "u2"})]  # fmt: skip
    rows, stats = import_file(IMP, _lines_file(tmp_path, recs))
    assert [(r["tool_call_id"], r["prompt_id"]) for r in rows if r["part_type"] == "tool_call"] == [
        ("ws_1", "u1"), ("ws_1", "u2")]
    assert stats.lines_skipped["duplicate_item"] == 1


def test_a_compaction_row_keeps_its_four_window_fields_and_never_the_replacement_history(tmp_path):
    """codex.md §4.5: compact_metadata = window_number, window_id, first_window_id and previous_window_id."""
    comp = {"message": "Summary: done", "window_number": 3, "window_id": "w3", "first_window_id": "w1",
            "previous_window_id": "w2", "replacement_history": [{"type": "message", "role": "user", "content": "SECRET"}]}
    rows, _ = import_file(IMP, _lines_file(tmp_path, [_e("00", "session_meta", {"id": "t"}), _e("01", "compacted", comp)]))
    assert [(r["role"], r["part_type"], r["content_text"], r["compact_metadata"]) for r in rows] == [
        ("system", "compaction", "Summary: done",
         '{"first_window_id":"w1","previous_window_id":"w2","window_id":"w3","window_number":3}')]
    assert not any("SECRET" in str(v) for v in rows[0].values())


def test_a_spawned_subagent_names_its_nickname_and_role_from_its_thread_spawn(tmp_path):
    """codex.md §3: `agent_nickname` and `agent_role` in attributes.codex; a spawned subagent's header may hold
    them only in `source.subagent.thread_spawn`."""
    spawn = {"parent_thread_id": "p1", "depth": 1, "agent_nickname": "Kepler", "agent_role": "explorer"}
    recs = [_e("00", "session_meta", {"id": "t", "source": {"subagent": {"thread_spawn": spawn}}}),
            _e("01", "response_item", {"type": "message", "role": "user", "content": "map the repo"})]
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    a = attrs(rows[0])["codex"]
    assert (a["agent_nickname"], a["agent_role"], rows[0]["parent_thread_id"], rows[0]["is_sidechain"]) == (
        "Kepler", "explorer", "p1", True)


def test_a_later_session_meta_without_an_id_is_a_resume_not_a_fork(tmp_path):
    """codex.md §3, §7: only a session_meta with a *different* id opens a fork replay; one without an id is the
    thread resumed: the rows after it are the thread's own (native ids, tokens, not flagged) and take its
    newer client version and originator."""
    recs = [_e("00", "session_meta", {"id": "t", "cli_version": "0.98.0", "originator": "codex_cli_rs"}),
            _e("01", "response_item", {"type": "message", "role": "user", "content": "first"}),
            _e("02", "session_meta", {"cli_version": "0.99.0", "originator": "codex_vscode"}),
            _e("03", "response_item", {"type": "message", "role": "user", "content": "again"}),
            _e("04", "response_item", {"type": "message", "role": "assistant", "id": "msg_9", "content": [
                {"type": "output_text", "text": "done"}]}),
            _e("05", "event_msg", {"type": "token_count", "info": {"last_token_usage": {"input_tokens": 40, "output_tokens": 5}}})]  # fmt: skip
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    got = [(r["content_text"], r["client_version"], r["entrypoint"], r["provider_uuid"], r["output_tokens"],
            "replayed_from_parent" in attrs(r).get("codex", {})) for r in rows]  # fmt: skip
    assert got == [("first", "0.98.0", "codex_cli_rs", None, None, False),
                   ("again", "0.99.0", "codex_vscode", None, None, False),
                   ("done", "0.99.0", "codex_vscode", "msg_9", 5, False)]  # fmt: skip


def test_a_header_cwd_that_is_not_absolute_is_not_stored_and_a_turn_cwd_takes_over(tmp_path):
    """codex.md §5: a cwd is used only when it is absolute on some OS; the header's `~/proj` is not, so rows
    before the first usable turn_context cwd have none, and each later turn_context cwd applies from there on."""
    recs = [_e("00", "session_meta", {"id": "t", "cwd": "~/proj"}),
            _e("01", "response_item", {"type": "message", "role": "user", "content": "one"}),
            _e("02", "turn_context", {"cwd": "/home/ada/proj", "model": "gpt-5"}),
            _e("03", "response_item", {"type": "message", "role": "user", "content": "two"}),
            _e("04", "turn_context", {"cwd": "/home/ada/other", "model": "gpt-5"}),
            _e("05", "response_item", {"type": "message", "role": "user", "content": "three"})]  # fmt: skip
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    assert [(r["content_text"], r["cwd"]) for r in rows] == [
        ("one", None), ("two", "/home/ada/proj"), ("three", "/home/ada/other")]


def test_a_paginated_reasoning_item_joins_its_summary_texts_with_newlines(tmp_path):
    """codex.md §4.4: a `Reasoning` item's text is its `summary_text[]` joined with `\\n`."""
    meta = {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "history_mode": "paginated"}
    item = {"type": "Reasoning", "id": "rs_1", "summary_text": ["**Plan**", "Read the config first."], "raw_content": []}
    recs = [_e("00", "session_meta", meta), _e("01", "response_item", {"type": "message", "role": "user", "content": "go"}),
            _e("02", "event_msg", {"type": "item_completed", "item": item}),
            _e("03", "event_msg", {"type": "task_complete"})]  # fmt: skip
    rows, _ = import_file(IMP, _lines_file(tmp_path, recs))
    assert [(r["part_type"], r["content_text"]) for r in rows[1:]] == [("reasoning", "**Plan**\nRead the config first.")]


def test_a_paginated_user_message_known_only_from_item_completed_is_a_response_boundary(tmp_path):
    """codex.md §5: a user-role message is a response boundary, also when it comes from an `item_completed`
    (its response item then is a duplicate_item). The assistant reply held before it, whose token_count never
    came, is let out without tokens; the compaction request's usage that follows goes on the `compacted` row,
    not on that earlier reply."""
    meta = {"id": "t", "timestamp": "2026-01-01T00:00:00Z", "history_mode": "paginated"}
    user2 = {"type": "UserMessage", "id": "um2", "content": [{"type": "text", "text": "summarise and go on"}]}
    recs = [_e("00", "session_meta", meta),
            _e("01", "response_item", {"type": "message", "role": "user", "content": "start"}),
            _e("02", "response_item", {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "reply A"}]}),
            _e("03", "event_msg", {"type": "item_completed", "item": user2}),
            _e("04", "event_msg", {"type": "token_count", "info": {"last_token_usage": {"input_tokens": 900, "output_tokens": 60}}}),
            _e("05", "compacted", {"message": "Summary: A"})]  # fmt: skip
    rows, stats = import_file(IMP, _lines_file(tmp_path, recs))
    assert [(r["content_text"], r["input_tokens"], r["output_tokens"]) for r in rows] == [
        ("start", None, None), ("reply A", None, None), ("summarise and go on", None, None), ("Summary: A", 900, 60)]
    assert stats.usage_unattached == 0
