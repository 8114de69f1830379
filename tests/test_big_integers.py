"""Integers beyond 64 bits in the JSON values of a line are stored exactly, as the stdlib's `json.loads` reads
them (claude.md §2 rule 3, schema.md §3.3). The importers parse with orjson, which reads such an integer as a
float: 123456789012345678901234567890 was stored as 1.2345678901234568e+29. Real floats stay as before."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from hypaware_tui.importers import base
from hypaware_tui.importers.base import binary_free_text, dumps_state, loads_state
from hypaware_tui.importers.claude import ClaudeImporter
from hypaware_tui.importers.codex import CodexImporter

sys.path.insert(0, str(Path(__file__).parent))
from import_helpers import import_file, rows_multiset  # noqa: E402

BIG = 123456789012345678901234567890
NEG = -9223372036854775809  # one below the smallest Int64
U64 = 18446744073709551616  # one above the largest unsigned 64-bit integer
NUMBERS = {"n": BIG, "neg": NEG, "u": U64, "f": 1.5, "g": 1e300}
# what the stdlib writes for them (1e300 is a float in the line: "1e+300", as before)
EXACT = '"f":1.5,"g":1e+300,"n":123456789012345678901234567890,"neg":-9223372036854775809,"u":18446744073709551616'


def _line(**record: object) -> str:
    return json.dumps(record)  # (the stdlib writes the integers out in full)


SID = "5a1e0000-1111-4222-8333-444455556666"
_C = {"sessionId": SID, "cwd": "/home/ada/x", "version": "2.0.1", "gitBranch": "main"}


def _tool_use(uuid: str, ts: str | None, call_id: str, tool_input: object, **extra: object) -> str:
    msg = {"id": f"m-{uuid}", "role": "assistant", "model": "m",
           "content": [{"type": "tool_use", "id": call_id, "name": "Calc", "input": tool_input}]}  # fmt: skip
    return _line(type="assistant", **_C, uuid=uuid, **({"timestamp": ts} if ts else {}), message=msg, **extra)


CLAUDE_LINES = [
    _tool_use("a0", None, "t0", {"held": BIG}),  # before any timestamp: held until the next line's
    _line(type="user", **_C, uuid="u1", timestamp="2026-01-01T10:00:00.000Z", message={"role": "user", "content": "hi"}),
    _tool_use("a1", "2026-01-01T10:00:01.000Z", "t1", NUMBERS, requestId=BIG),  # raw_frame: requestId verbatim
    _line(type="system", **_C, subtype="compact_boundary", uuid="c1", timestamp="2026-01-01T10:00:02.000Z",
          content="Conversation compacted", compactMetadata={"trigger": "auto", "preTokens": NEG, "ratio": 0.5}),
    # no uuid: the message id is the hash of the content as the stdlib parses it (claude.md §4.3)
    _line(type="user", **_C, timestamp="2026-01-01T10:00:03.000Z",
          message={"role": "user", "content": [{"type": "text", "text": "n"}, {"type": "other", "value": U64}]}),
    # floats written with a fraction or an exponent stay floats, however large; 64-bit integers stay as they are
    _tool_use("a2", "2026-01-01T10:00:04.000Z", "t2",
              {"a": 1.5, "b": 1e300, "c": -1e19, "d": 1.0e20, "e": 2**64 - 1, "f": -(2**63)}),
]  # fmt: skip

TID = "019b0000-0000-7000-8000-00000000b16e"
CODEX_LINES = [
    _line(timestamp="2026-01-01T11:00:00.000Z", type="session_meta",
          payload={"id": TID, "timestamp": "2026-01-01T11:00:00.000Z", "cwd": "/home/ada/x",
                   "originator": "codex_cli_rs", "cli_version": "0.98.0", "source": {"exec": {"run": BIG, "f": 1.5}}}),
    _line(timestamp="2026-01-01T11:00:01.000Z", type="response_item",
          payload={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}),
    _line(timestamp="2026-01-01T11:00:02.000Z", type="response_item",
          payload={"type": "web_search_call", "id": "ws1", "status": "completed",
                   "action": {"type": "search", "query": "x", **NUMBERS}}),
    _line(timestamp="2026-01-01T11:00:03.000Z", type="event_msg",
          payload={"type": "token_count", "info": {"total_token_usage": {"input_tokens": 5, "output_tokens": 3}}}),
]  # fmt: skip


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _claude_file(tmp_path: Path) -> Path:
    return _write(tmp_path / ".claude" / "projects" / "-home-ada-x" / f"{SID}.jsonl", CLAUDE_LINES)


def _codex_file(tmp_path: Path) -> Path:
    return _write(tmp_path / ".codex" / "sessions" / f"rollout-2026-01-01T11-00-00-{TID}.jsonl", CODEX_LINES)


def _cuts(path: Path) -> range:
    return range(0, path.stat().st_size, 53)  # mid-line cuts, about two per line


def _check_claude(rows: list[dict]) -> None:
    calls = {r["tool_call_id"]: r for r in rows if r["part_type"] == "tool_call"}
    assert calls["t1"]["tool_args"] == "{" + EXACT + "}"
    assert calls["t0"]["tool_args"] == '{"held":123456789012345678901234567890}'
    assert calls["t2"]["tool_args"] == (
        '{"a":1.5,"b":1e+300,"c":-1e+19,"d":1e+20,"e":18446744073709551615,"f":-9223372036854775808}')
    assert calls["t0"]["message_created_at"] == calls["t0"]["conversation_started_at"]  # it was held
    assert '"requestId":123456789012345678901234567890' in calls["t1"]["raw_frame"]
    (compaction,) = [r for r in rows if r["part_type"] == "compaction"]
    assert compaction["compact_metadata"] == '{"preTokens":-9223372036854775809,"ratio":0.5,"trigger":"auto"}'
    content = json.loads(CLAUDE_LINES[4])["message"]["content"]  # the stdlib's parse: exact
    ordinal = max(r["message_index"] for r in rows) - 1
    text = f"{SID}:{ordinal}:user:{json.dumps(content, sort_keys=True, separators=(',', ':'), ensure_ascii=False)}"
    last = [r for r in rows if r["message_index"] == ordinal]
    assert {r["message_id"] for r in last} == {hashlib.sha256(text.encode()).hexdigest()[:16]}


def _check_codex(rows: list[dict]) -> None:
    assert rows and all('"source":{"exec":{"f":1.5,"run":123456789012345678901234567890}}' in r["attributes"]
                        for r in rows)  # fmt: skip
    (call,) = [r for r in rows if r["part_type"] == "tool_call"]
    exact = json.loads("{" + EXACT + "}")
    assert json.loads(call["tool_args"]) == {**exact, "type": "search", "query": "x"}
    assert "123456789012345678901234567890" in call["tool_args"] and "1e+300" in call["tool_args"]


@pytest.mark.parametrize("importer, make, check", [
    (ClaudeImporter, _claude_file, _check_claude),
    # `session_meta.source` is kept in the parser state, so its integer crosses checkpoints exactly
    (CodexImporter, _codex_file, _check_codex),
], ids=["claude", "codex"])  # fmt: skip
def test_big_integers_are_exact_whole_and_in_pieces(tmp_path, importer, make, check):
    path = make(tmp_path)
    rows, _ = import_file(importer(), path)
    check(rows)
    pieces, _ = import_file(importer(), path, pieces=_cuts(path))
    assert rows_multiset(pieces) == rows_multiset(rows)


@pytest.mark.parametrize("client", ["claude", "codex"])
def test_long_lines_are_searched_at_once(tmp_path, monkeypatch, client):
    """A line longer than `_KEEP_LINE` is not kept while its rows are built: its floats are looked up at once."""
    monkeypatch.setattr(base, "_KEEP_LINE", 16, raising=False)  # every line is long
    if client == "claude":
        rows, _ = import_file(ClaudeImporter(), _claude_file(tmp_path))
        _check_claude(rows)
    else:
        rows, _ = import_file(CodexImporter(), _codex_file(tmp_path))
        _check_codex(rows)


def test_codex_legacy_document_big_integers(tmp_path):
    doc = _line(session={"id": TID, "timestamp": "2025-04-18T10:12:33.215Z"}, items=[
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
        {"type": "local_shell_call", "call_id": "c1", "status": "completed", "action": {"type": "exec", **NUMBERS}}])
    path = tmp_path / f"rollout-2025-04-18-{TID}.json"
    path.write_bytes(b"\xef\xbb\xbf" + doc.encode())  # with a byte order mark
    rows, _ = import_file(CodexImporter(), path)
    (call,) = [r for r in rows if r["part_type"] == "tool_call"]
    assert call["tool_args"] == "{" + EXACT.replace(',"u"', ',"type":"exec","u"') + "}"


def test_a_json_tool_output_with_file_bytes_keeps_its_big_integers():
    text = json.dumps({"content": [{"type": "image", "data": "QUJD" * 40, "mimeType": "image/png"}], "id": BIG})
    assert binary_free_text(text) == (  # the text as written, the bytes omitted (schema.md §3.4 rules 1, 3)
        '{"content": [{"type": "image", "data": "<omitted>", "mimeType": "image/png"}], '
        '"id": 123456789012345678901234567890}')
    # stored as canonical JSON (a duplicate key: the text cannot be kept), the integer is still exact
    text = '{"content": [{"type": "image", "data": "x", "data": "' + "QUJD" * 40 + '"}], "id": ' + str(BIG) + "}"
    assert binary_free_text(text) == '{"content":[{"data":"<omitted>","type":"image"}],"id":' + str(BIG) + "}"


def test_state_with_a_big_integer_round_trips():
    state = {"header": {"attrs": {"source": {"n": BIG, "f": 1.5}}}, "last_ts": 1}
    assert loads_state(dumps_state(state)) == state
    assert dumps_state({"a": 1}) == '{"a":1}'  # orjson's text, as before


def test_only_a_line_with_a_wide_float_is_parsed_again(tmp_path, monkeypatch):
    """Floats of ordinary size, and "e+" in a string, cost no second parse of their line."""
    calls: list[int] = []
    real = base._widened_ints
    monkeypatch.setattr(base, "_widened_ints", lambda obj, raw: calls.append(len(raw)) or real(obj, raw))
    plain = [_tool_use("a1", "2026-01-01T10:00:01.000Z", "t1", {"timeout": 1.5, "code": "x = 2e+5 + 1e-3"}),
             _tool_use("a2", "2026-01-01T10:00:02.000Z", "t2", {"n": 2**64 - 1, "ratio": 0.25})]  # fmt: skip
    rows, _ = import_file(ClaudeImporter(), _write(tmp_path / "p" / f"{SID}.jsonl", plain))
    assert [r["tool_args"] for r in rows] == ['{"code":"x = 2e+5 + 1e-3","timeout":1.5}',
                                              '{"n":18446744073709551615,"ratio":0.25}']  # fmt: skip
    assert calls == []
    rows, _ = import_file(ClaudeImporter(), _claude_file(tmp_path))
    _check_claude(rows)
    assert len(calls) == 5  # the five lines with an integer beyond 64 bits (or 1e300), once each


# A tool input or result given as JSON text that orjson refuses but the stdlib reads (claude.md §2 rule 3): an
# integer of over 308 digits (orjson: "number is infinity"), a lone surrogate escape (a string cut mid-emoji). It
# was stored as a JSON string literal (schema.md §3.3 rule 3) and kept its image bytes (schema.md §3.4 rule 3).
HUGE = 10**400 + 7
IMAGE = {"type": "image", "data": "QUJD" * 40, "mimeType": "image/png"}


@pytest.mark.parametrize("given, stored", [
    (json.dumps({"v": HUGE, "cmd": "ls"}), '{"cmd":"ls","v":' + str(HUGE) + "}"),
    (json.dumps([{"s": "cut \ud83d", "v": BIG}]), '[{"s":"cut \ufffd","v":123456789012345678901234567890}]'),
    # what neither reads stays a string, as before: plain text (an apply_patch input), NaN, a float beyond range
    ("*** Begin Patch\n*** End Patch", json.dumps("*** Begin Patch\n*** End Patch")),
    ('{"v": NaN}', json.dumps('{"v": NaN}')),
    ("[1e400]", '"[1e400]"'),
])  # fmt: skip
def test_tool_input_text_that_only_the_stdlib_reads_is_stored_as_json(given, stored):
    assert base.args_json(given) == stored


@pytest.mark.parametrize("extra, stored_extra", [
    ({"id": HUGE}, ',"id":' + str(HUGE)),
    ({"note": "\ud83d"}, ',"note":"\ufffd"'),
])  # fmt: skip
def test_tool_output_json_that_only_the_stdlib_reads_loses_its_file_bytes(extra, stored_extra):
    text = json.dumps({"content": [IMAGE], **extra})
    assert binary_free_text(text) == text.replace(IMAGE["data"], "<omitted>")  # as written, without the bytes
    text = text.replace('"type": "image"', '"type": "image", "data": "x"')  # a duplicate key: canonical JSON
    assert binary_free_text(text) == (
        '{"content":[{"data":"<omitted>","mimeType":"image/png","type":"image"}]' + stored_extra + "}")


def test_codex_call_with_a_huge_integer_in_its_arguments_and_output(tmp_path):
    lines = [
        CODEX_LINES[0],
        _line(timestamp="2026-01-01T11:00:01.000Z", type="response_item",
              payload={"type": "function_call", "name": "shell", "call_id": "c1",
                       "arguments": json.dumps({"n": HUGE, "cmd": "ls"})}),
        _line(timestamp="2026-01-01T11:00:02.000Z", type="response_item",
              payload={"type": "function_call_output", "call_id": "c1",
                       "output": json.dumps({"content": [IMAGE], "id": HUGE})}),
        _line(timestamp="2026-01-01T11:00:03.000Z", type="response_item",  # (the call's row waits for the next)
              payload={"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]}),
    ]  # fmt: skip
    rows, _ = import_file(CodexImporter(), _write(tmp_path / f"rollout-2026-01-01T11-00-00-{TID}.jsonl", lines))
    (call,) = [r for r in rows if r["part_type"] == "tool_call"]
    (result,) = [r for r in rows if r["part_type"] == "tool_result"]
    assert call["tool_args"] == '{"cmd":"ls","n":' + str(HUGE) + "}"
    assert "QUJD" not in result["content_text"] and json.loads(result["content_text"])["id"] == HUGE


# --- nesting: the same answer on every Python version ---------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _deep_in_the_stack(frames: int, fn):
    """`fn()` called `frames` Python frames down (an importer runs deep in a worker, the wizard or the daemon)."""
    return fn() if frames == 0 else _deep_in_the_stack(frames - 1, fn)


def test_the_stdlib_fallback_nests_as_deep_as_orjson_on_every_python():
    """orjson reads 1,024 levels. The stdlib's limit is the interpreter's: about 990 levels on 3.11 (fewer deeper
    in a call stack), thousands on 3.13. A line nested 1,000 deep was malformed on 3.11 and imported on 3.13,
    and one of 2,000 (which orjson refuses) the other way round: rows depended on the Python version."""
    from hypaware_tui.core.schema import canonical_json, stdlib_loads

    assert _deep_in_the_stack(300, lambda: stdlib_loads(_nested(1024))) is not None
    for depth in (1025, 2000, 50_000):
        with pytest.raises(ValueError, match="nested too deeply"):
            _deep_in_the_stack(300, lambda depth=depth: stdlib_loads(_nested(depth)))
    value = json.loads(_nested(900))
    assert _deep_in_the_stack(300, lambda: canonical_json({"a": value})) == '{"a":' + _nested(900) + "}"


def _session_with_tool_input(tmp_path: Path, tool_input: str) -> Path:
    """A Claude session: a user line, an assistant tool call whose input is `{"a": tool_input}` (JSON text), and
    a user line after it."""
    lines = [
        {"type": "user", "sessionId": "s1", "uuid": "u1", "timestamp": "2026-11-27T10:00:00Z",
         "message": {"role": "user", "content": "hi"}},
        {"type": "assistant", "sessionId": "s1", "uuid": "u2", "timestamp": "2026-11-27T10:00:01Z",
         "message": {"id": "m1", "role": "assistant", "model": "x", "usage": {"input_tokens": 1, "output_tokens": 2},
                     "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {"a": "NESTED"}}]}},
        {"type": "user", "sessionId": "s1", "uuid": "u3", "timestamp": "2026-11-27T10:00:02Z",
         "message": {"role": "user", "content": "after"}},
    ]
    path = tmp_path / "11111111-1111-4111-8111-111111111111.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines).replace('"NESTED"', tool_input))
    return path


@pytest.mark.parametrize("inner", ["1", "123456789012345678901234567890"])
def test_a_tool_input_nested_a_thousand_deep_is_imported(tmp_path: Path, inner: str):
    """Deep in a stack, a line nested about 1,000 deep is imported, with an integer beyond 64 bits in it too:
    the walks that put such integers back recursed outside the stdlib fallback's room (the line was malformed,
    RecursionError, while the same line without the integer imported)."""
    nested = "[" * 1000 + inner + "]" * 1000
    path = _session_with_tool_input(tmp_path, nested)
    rows, stats = _deep_in_the_stack(200, lambda: import_file(ClaudeImporter(), path))
    assert [r["message_id"] for r in rows] == ["u1", "u2", "u3"], stats.lines_skipped
    assert rows[1]["tool_args"] == '{"a":' + nested + "}"
