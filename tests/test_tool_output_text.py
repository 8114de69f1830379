"""A tool output that is JSON text is stored as the source wrote it (claude.md §5 "string content as is", codex.md
§4.1 "output when it is a string", schema.md §3.4 rule 1 "content_text keeps the source text exactly"); only
the file bytes in it are omitted (rule 3: an MCP image or audio item's `data`, a base64 source's `data`, a
resource `blob`, a `file_data`), each written `"<omitted>"` where it stood. It was re-encoded as canonical JSON:
keys re-sorted, the spacing and line breaks of a pretty-printed result gone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hypaware_tui.importers.base import binary_free_text
from hypaware_tui.importers.claude import ClaudeImporter
from hypaware_tui.importers.codex import CodexImporter

sys.path.insert(0, str(Path(__file__).parent))
from import_helpers import import_file  # noqa: E402

SID = "7001e000-1111-4222-8333-444455556666"
TID = "7002e000-1111-4222-8333-444455556666"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PRETTY = '{\n  "type": "image",\n  "data": "not base64 at all, just words",\n  "zeta": 1,\n  "alpha": 2\n}'
LIST = '[{"file_data": "hello world", "name": "x"}]'


def _write(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in records))
    return path


def _claude_results(tmp_path: Path, *contents: object) -> list[str | None]:
    ts = "2026-11-20T10:00:0%dZ"
    call = {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": c} for c in contents]}
    path = _write(tmp_path / "p" / f"{SID}.jsonl", [
        {"type": "assistant", "sessionId": SID, "uuid": "a1", "timestamp": ts % 1, "message": call},
        {"type": "user", "sessionId": SID, "uuid": "u1", "timestamp": ts % 2, "message": result}])  # fmt: skip
    rows, _ = import_file(ClaudeImporter(), path)
    return [r["content_text"] for r in rows if r["part_type"] == "tool_result"]


def test_claude_tool_result_json_text_is_kept_as_written(tmp_path):
    mcp = json.dumps({"content": [{"type": "text", "text": "a screenshot"},
                                  {"type": "image", "data": PNG, "mimeType": "image/png"}]}, indent=1)  # fmt: skip
    assert _claude_results(tmp_path, PRETTY, LIST, mcp) == [
        '{\n  "type": "image",\n  "data": "<omitted>",\n  "zeta": 1,\n  "alpha": 2\n}',
        '[{"file_data": "<omitted>", "name": "x"}]',
        mcp.replace(PNG, "<omitted>"),
    ]


def test_codex_function_call_output_json_text_is_kept_as_written(tmp_path):
    def env(sec: int, typ: str, payload: dict) -> dict:
        return {"timestamp": f"2026-11-20T10:00:0{sec}.000Z", "type": typ, "payload": payload}

    out = '{\n  "type": "audio",\n  "data": "just some words",\n  "b": 1\n}'
    path = _write(tmp_path / f"rollout-2026-11-20T10-00-00-{TID}.jsonl", [
        env(0, "session_meta", {"id": TID}),
        env(1, "response_item", {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "c"}),
        env(2, "response_item", {"type": "function_call_output", "call_id": "c", "output": out}),
        env(3, "response_item", {"type": "function_call_output", "call_id": "c", "output": LIST})])  # fmt: skip
    rows, _ = import_file(CodexImporter(), path)
    assert [r["content_text"] for r in rows if r["part_type"] == "tool_result"] == [
        '{\n  "type": "audio",\n  "data": "<omitted>",\n  "b": 1\n}',
        '[{"file_data": "<omitted>", "name": "x"}]',
    ]


@pytest.mark.parametrize("text, stored", [
    # only the omitted members change: a `data` that carries no file (a text item's) stays, escapes and all
    ('{"type": "text", "data": "kept"}', '{"type": "text", "data": "kept"}'),
    ('[ {"type" : "image" , "data" : "A\\/B=" } , {"t": "\\"data\\": \\"x\\""} ]',
     '[ {"type" : "image" , "data" : "<omitted>" } , {"t": "\\"data\\": \\"x\\""} ]'),
    ('{"k\\"data": "v", "type": "audio", "data": "zz"}', '{"k\\"data": "v", "type": "audio", "data": "<omitted>"}'),
    ('{"resource": {"uri": "file:///a.pdf", "blob": "JVBERi0x"}, "input_audio": {"data": "UklG", "format": "wav"}}',
     '{"resource": {"uri": "file:///a.pdf", "blob": "<omitted>"}, "input_audio": {"data": "<omitted>", '
     '"format": "wav"}}'),
    # an integer beyond 64 bits and a float stay as written
    ('{"type": "image", "data": "QUJD", "n": 123456789012345678901234567890, "f": 1.50}',
     '{"type": "image", "data": "<omitted>", "n": 123456789012345678901234567890, "f": 1.50}'),
])  # fmt: skip
def test_only_the_file_bytes_of_a_json_tool_output_change(text, stored):
    assert binary_free_text(text) == stored


@pytest.mark.parametrize("text, stored", [
    # a duplicate key: a reader keeps the last, so the first one's bytes could have stayed in the text
    ('{"type": "image", "data": "AAAA", "data": "BBBB"}', '{"data":"<omitted>","type":"image"}'),
    # a key written with escapes is not found by the text edit: its bytes would have stayed
    ('[{"type": "image", "data": "AAAA"}, {"type": "image", "d\\u0061ta": "BBBB"}]',
     '[{"data":"<omitted>","type":"image"},{"data":"<omitted>","type":"image"}]'),
    # the same string as a text item's data (kept) and an image's (omitted)
    ('[{"type": "text", "data": "AAAA"}, {"type": "image", "data": "AAAA"}]',
     '[{"data":"AAAA","type":"text"},{"data":"<omitted>","type":"image"}]'),
])  # fmt: skip
def test_json_tool_output_that_cannot_be_edited_in_place_is_stored_as_canonical_json(text, stored):
    assert binary_free_text(text) == stored
    assert "BBBB" not in binary_free_text(text)


def test_a_tool_output_nested_about_a_thousand_deep_keeps_its_row() -> None:
    """The check that the in-place edit reads back as the value without its bytes compared two values nested
    ~1,000 deep with `==`, which recurses: RecursionError, and the tool-result line was counted malformed, its
    row lost (the canonical JSON before kept it). Whatever the depth the stack allows, the text comes back
    without the bytes."""
    image = '{"type":"image","data":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"}'
    for depth in range(880, 1024, 4):
        text = '{"content":[' + image + '],"x":' + "[" * depth + "]" * depth + "}"
        out = binary_free_text(text)
        assert "iVBORw0KGgo" not in out and '"data":"<omitted>"' in out, depth


@pytest.mark.parametrize("depth", [201, 600, 1000])
def test_image_bytes_nested_deep_in_a_tool_output_are_never_stored(tmp_path, depth):
    """The walk that finds file bytes stopped at 200 levels: an image nested 201 deep kept its base64 in
    content_text (schema.md §3.4 rule 3: never stored, in any column)."""
    image = json.dumps({"type": "image", "data": PNG, "mimeType": "image/png"})
    text = '{"content":' + "[" * depth + image + "]" * depth + "}"
    deep: object = {"type": "image", "data": PNG}
    for _ in range(min(depth, 250)):
        deep = [deep]
    got = _claude_results(tmp_path, text, {"result": deep})
    assert len(got) == 2 and all(PNG not in t and "<omitted>" in t for t in got)


def test_a_line_nested_deep_with_a_lone_surrogate_keeps_its_rows(tmp_path):
    """A lone surrogate escape (a string cut mid-emoji) in a line nested 600 deep: making it U+FFFD recursed two
    frames a level, the RecursionError failed the whole file (every row lost, at every later pass)."""
    def line(uuid: str, sec: int, text: str, extra: str = "") -> bytes:
        return (f'{{"type":"user","sessionId":"{SID}","uuid":"{uuid}","timestamp":"2026-11-20T10:00:0{sec}Z",'
                f'"message":{{"role":"user","content":"{text}"}}{extra}}}\n').encode()

    path = tmp_path / "p" / f"{SID}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(line("u1", 1, "before") + line("u2", 2, "caf\\ud83d", ',"deep":' + "[" * 600 + "]" * 600)
                     + line("u3", 3, "after"))
    rows, stats = import_file(ClaudeImporter(), path)
    assert [r["content_text"] for r in rows] == ["before", "caf\ufffd", "after"]
    assert not stats.lines_skipped


def test_the_codex_tail_scan_reads_a_line_orjson_refuses():
    """A `.jsonl.zst` rollout is dated by its lines as the import reads them: a last line holding a lone
    surrogate escape was skipped by the scan (orjson alone), an older stamp dated the file."""
    from hypaware_tui.importers.codex import _line_ts_bytes

    raw = b'{"timestamp":"2026-11-26T10:00:00.000Z","type":"event_msg","payload":{"type":"x","t":"caf\\ud83d"}}'
    assert _line_ts_bytes(raw) == _line_ts_bytes(raw.replace(b"caf\\ud83d", b"cafe")) is not None


def test_file_bytes_in_a_tool_output_that_is_not_json_are_never_stored(tmp_path):
    """A tool output that names a `data` key but does not parse (cut at a size limit, text after the document,
    a NaN, nesting past 1,024) was stored as it was, its base64 with it (schema.md §3.4 rule 3). The run of
    base64 after such a key is omitted; every other character is kept."""
    image = '{"content":[{"type":"image","mimeType":"image/png","data":"'
    cases = [
        image + (PNG * 3)[:200] + "\n[output truncated]",
        image + PNG + '"}]}\n(1 image)',
        image + PNG + '"}],"score":NaN}',
        '{"content":[' + "[" * 1030 + image + PNG + '"}]' + "]" * 1030 + "}",
    ]
    got = _claude_results(tmp_path, *cases)
    assert len(got) == len(cases) and all(PNG[:40] not in t and '"data":"<omitted>' in t for t in got)
    assert got[0].endswith('"data":"<omitted>\n[output truncated]') and got[1].endswith('"}]}\n(1 image)')
    digest = '{"data":"' + "ab12" * 16 + '", "x": NaN}'  # (a hex digest is no file: kept)
    assert _claude_results(tmp_path, digest) == [digest]


def test_file_bytes_in_tool_arguments_that_are_not_json_are_never_stored():
    from hypaware_tui.importers.base import args_json

    text = '{"content":[{"type":"image","data":"' + PNG + '"}]'  # (cut: not JSON, stored as a JSON string)
    assert json.loads(args_json(text)) == '{"content":[{"type":"image","data":"<omitted>"}]'


def test_the_loose_rule_takes_file_bytes_and_keeps_text(tmp_path):
    """Without a value's structure the run itself decides (review of e64d8c4): bytes after text, wrapped at 76
    columns or in a text item are omitted; a long path or identifier after a `data` key (an apply_patch input
    editing a JSON file) is text, and was erased."""
    from hypaware_tui.importers.base import args_json

    wrapped = "\n".join((PNG * 4)[i:i + 76] for i in range(0, 300, 76))
    image = '{"content":[{"type":"image","data":"'
    path = "/var/lib/docker/overlay2/" + "3f4e9a" * 12 + "/merged"
    got = _claude_results(tmp_path, "Output:\n" + image + PNG + '"}]}', image + wrapped + "\n[cut]",
                          [{"type": "text", "text": image + PNG + '"}]}'}], '{"data":"' + path + '"} (cut)')
    assert got[0] == "Output:\n" + image + '<omitted>"}]}'
    assert got[1] == image + "<omitted>\n[cut]"
    assert got[2] == image + '<omitted>"}]}'
    assert got[3] == '{"data":"' + path + '"} (cut)'
    patch = '*** Update File: a.json\n-  "data": "' + "customer-exports" * 6 + '",\n+  "data": "x"'
    assert json.loads(args_json(patch)) == patch
