"""Fuzzing both importers (issue 8): random bytes, truncated lines, wrong types in every field, deeply nested
and huge values never raise out of the importer, and never cost the valid lines around the bad ones."""

from __future__ import annotations

import copy
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypaware_tui.core.schema import frame_from_rows
from hypaware_tui.importers import get_importer
from hypaware_tui.importers.base import ParseStats, SourceFile, Window

CLAUDE_VALID = [
    {"type": "user", "sessionId": "s1", "uuid": "u1", "timestamp": "2026-05-20T10:00:00.000Z", "cwd": "/r",
     "message": {"role": "user", "content": "list the files"}},
    {"type": "assistant", "sessionId": "s1", "uuid": "a1", "parentUuid": "u1", "requestId": "req_1",
     "timestamp": "2026-05-20T10:00:04.000Z",
     "message": {"id": "msg_1", "role": "assistant", "model": "claude-opus-4-6", "stop_reason": "tool_use",
                 "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}],
                 "usage": {"input_tokens": 3, "output_tokens": 48}}},
    {"type": "user", "sessionId": "s1", "uuid": "r1", "timestamp": "2026-05-20T10:00:06.000Z",
     "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a"}]}},
]
CODEX_VALID = [
    {"timestamp": "2026-05-20T10:00:00.000Z", "type": "session_meta",
     "payload": {"id": "0199a000-0000-7000-8000-000000000001", "timestamp": "2026-05-20T10:00:00.000Z",
                 "cwd": "/r", "originator": "codex_cli_rs", "cli_version": "0.98.0"}},
    {"timestamp": "2026-05-20T10:00:01.000Z", "type": "response_item",
     "payload": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}},
    {"timestamp": "2026-05-20T10:00:02.000Z", "type": "response_item",
     "payload": {"type": "function_call", "name": "shell", "arguments": "{\"command\":[\"ls\"]}",
                 "call_id": "call_1"}},
    {"timestamp": "2026-05-20T10:00:03.000Z", "type": "response_item",
     "payload": {"type": "function_call_output", "call_id": "call_1", "output": "a\nb"}},
    {"timestamp": "2026-05-20T10:00:04.000Z", "type": "response_item",
     "payload": {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]}},
    {"timestamp": "2026-05-20T10:00:05.000Z", "type": "event_msg",
     "payload": {"type": "token_count", "info": {"total_token_usage": {"input_tokens": 10, "output_tokens": 5},
                                                  "last_token_usage": {"input_tokens": 10, "output_tokens": 5}}}},
    {"timestamp": "2026-05-20T10:00:06.000Z", "type": "event_msg",
     "payload": {"type": "task_complete", "turn_id": "t1"}},
]

WEIRD = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _paths(obj, prefix=()):
    """Every key path in a JSON object."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _set(obj, path, value):
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _import(client: str, data: bytes, tmp_path) -> tuple[list[dict], ParseStats]:
    from hypaware_tui.core.reader import FilePass

    importer = get_importer(client)
    name = "s.jsonl" if client == "claude" else "rollout-2026-05-20T10-00-00-x.jsonl"
    path = os.path.join(tmp_path, name)
    with open(path, "wb") as fh:
        fh.write(data)
    real = os.path.realpath(path)
    src = SourceFile(client=client, path=real, path_hash="f" * 16, read_mode="incremental")
    stats = ParseStats()
    rows: list[dict] = []
    for batch in FilePass(importer, src, None, Window(), stats).batches():
        rows += batch.rows
    return rows, stats


def _lines(records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


@pytest.fixture(params=["claude", "codex"])
def client(request):
    pytest.importorskip(f"hypaware_tui.importers.{request.param}")
    return request.param


def _valid(client):
    return CLAUDE_VALID if client == "claude" else CODEX_VALID


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=st.data())
def test_wrong_type_in_any_field_never_raises(client, tmp_path_factory, data):
    records = copy.deepcopy(_valid(client))
    idx = data.draw(st.integers(0, len(records) - 1))
    paths = list(_paths(records[idx]))
    path = data.draw(st.sampled_from(paths))
    _set(records[idx], path, data.draw(WEIRD))
    rows, stats = _import(client, _lines(records), tmp_path_factory.mktemp("f"))
    frame_from_rows(rows)  # every emitted row is still schema-valid


@FUZZ
@given(junk=st.binary(max_size=400), pos=st.integers(0, 10))
def test_random_bytes_between_valid_lines_cost_nothing(client, tmp_path_factory, junk, pos):
    """Garbage (random bytes, invalid UTF-8, truncated JSON) between valid lines: the valid lines still give
    exactly the rows they give alone."""
    tmp = tmp_path_factory.mktemp("g")
    clean = _lines(_valid(client))
    expected, _ = _import(client, clean, tmp)
    lines = clean.split(b"\n")[:-1]
    pos = min(pos, len(lines))
    junk_line = junk.replace(b"\n", b" ")
    # a junk line that happens to be a JSON object could be a real record; keep it non-object
    if junk_line.strip().startswith(b"{"):
        junk_line = b"#" + junk_line
    dirty = b"\n".join(lines[:pos] + [junk_line] + lines[pos:]) + b"\n"
    got, stats = _import(client, dirty, tmp)

    def key(r):
        return (r["part_id"], r.get("content_text"), r.get("tool_name"), r.get("output_tokens"))

    # rows of the valid lines are all there (offsets shift by the junk line, so compare content)
    assert sorted(map(key, got)) == sorted(map(key, expected))
    meaningful = junk_line[3:] if pos == 0 and junk_line.startswith(b"\xef\xbb\xbf") else junk_line
    if meaningful.strip():  # a blank line (or a lone BOM at offset 0) is ignored, not counted
        assert sum(stats.lines_skipped.values()) >= 1


def test_deeply_nested_and_huge_values(client, tmp_path):
    records = copy.deepcopy(_valid(client))
    deep = "__DEEP__"  # replaced below by 5000 nested arrays (too deep for json.dumps and orjson)
    huge = "y" * (8 * 1024 * 1024)
    if client == "claude":
        records[0]["message"]["content"] = huge
        records[1]["message"]["content"][0]["input"] = {"deep": deep}
    else:
        records[1]["payload"]["content"][0]["text"] = huge
        records[2]["payload"]["arguments"] = json.dumps({"deep": "z"}) + "x" * 100
    deep_json = b"[" * 5000 + b'"x"' + b"]" * 5000
    data = _lines(records[:2]).replace(b'"__DEEP__"', deep_json) + b'{"a":' * 200_000 + b"\n" + _lines(records[2:])
    rows, stats = _import(client, data, tmp_path)
    assert stats.lines_skipped["malformed"] >= 1  # the unterminated 200k-deep object
    texts = [r.get("content_text") for r in rows if r.get("content_text")]
    assert any(t == huge for t in texts), "the huge text survives verbatim"
    frame_from_rows(rows)


def test_truncated_lines_everywhere(client, tmp_path):
    """Each line cut at every 7th byte and followed by the full valid file: never raises; the valid copy's
    rows are all there."""
    clean = _lines(_valid(client))
    expected, _ = _import(client, clean, tmp_path)
    checked = 0
    for cut in range(1, len(clean) - 1, 7):
        part = clean[:cut].replace(b"\n", b" ")
        try:
            json.loads(part)
            continue  # the cut happened to leave a complete record: not a truncated line
        except ValueError:
            pass
        rows, stats = _import(client, part + b"\n" + clean, tmp_path)
        assert stats.lines_skipped["malformed"] == 1
        assert sorted(r["part_id"] for r in rows) == sorted(r["part_id"] for r in expected)
        checked += 1
    assert checked > 10
