"""A line that is a valid JSON object but carries no message is counted `not_a_message`, never `malformed`
(schema.md §7: malformed is "Not valid JSON, or not a JSON object"; not_a_message "A valid record of a type that
produces no rows"). A Claude `user` line whose `message` is a string, a Codex `item_completed` whose item is a
string, a known Codex envelope whose payload is not an object, and a Codex message without a role were
`malformed`, so the skip counts a person reads in `hyp backfill --json` blamed damaged lines that were not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypaware_tui.importers.claude import ClaudeImporter
from hypaware_tui.importers.codex import CodexImporter

sys.path.insert(0, str(Path(__file__).parent))
from import_helpers import import_file  # noqa: E402

SID = "7003e000-1111-4222-8333-444455556666"
TID = "7004e000-1111-4222-8333-444455556666"


def _write(path: Path, lines: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((x if isinstance(x, str) else json.dumps(x)).encode() + b"\n" for x in lines))
    return path


def test_claude_message_line_whose_message_is_not_an_object_is_not_a_message(tmp_path):
    ts = "2026-11-20T10:00:0%dZ"
    path = _write(tmp_path / "p" / f"{SID}.jsonl", [
        {"type": "user", "sessionId": SID, "uuid": "u1", "timestamp": ts % 1, "message": "string message"},
        {"type": "assistant", "sessionId": SID, "uuid": "a1", "timestamp": ts % 2, "message": ["a", "list"]},
        {"type": "user", "sessionId": SID, "uuid": "u2", "timestamp": ts % 3, "message": 7},
        "[1, 2]",  # not an object: malformed
        "{not json",
        {"type": "user", "sessionId": SID, "uuid": "u3", "timestamp": ts % 4,
         "message": {"role": "user", "content": "kept"}},
    ])  # fmt: skip
    rows, stats = import_file(ClaudeImporter(), path)
    assert [r["content_text"] for r in rows] == ["kept"]
    assert dict(stats.lines_skipped) == {"not_a_message": 3, "malformed": 2}


def test_codex_valid_objects_without_a_message_are_not_malformed(tmp_path):
    def env(sec: int, typ: str, payload: object) -> dict:
        return {"timestamp": f"2026-11-20T10:00:{sec:02d}.000Z", "type": typ, "payload": payload}

    def done(sec: int, item: object) -> dict:
        return env(sec, "event_msg", {"type": "item_completed", "thread_id": TID, "turn_id": "t", "item": item})

    path = _write(tmp_path / f"rollout-2026-11-20T10-00-00-{TID}.jsonl", [
        env(0, "session_meta", {"id": TID}),
        env(1, "response_item", {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}),
        done(2, "notadict"),
        done(3, ["a"]),
        env(4, "response_item", "not an object"),
        env(5, "event_msg", 5),
        env(6, "turn_context", ["x"]),
        env(7, "session_meta", None),
        env(8, "compacted", "text"),
        env(9, "response_item", {"type": "message", "content": [{"type": "input_text", "text": "no role"}]}),
        "[1, 2]",  # not an object: malformed
        "{not json",
    ])  # fmt: skip
    rows, stats = import_file(CodexImporter(), path)
    assert [r["content_text"] for r in rows] == ["hi"]
    assert dict(stats.lines_skipped) == {"not_a_message": 9, "malformed": 2}
