"""`attributes.codex.source` is `session_meta.source` verbatim (codex.md §3, schema.md §5): a native value, so it
keeps its own nulls and empty objects (schema.md §3.3 rule 3), as `tool_args` does. Only the keys of the objects
the importer builds are dropped when null (rule 2). A null inside `source.subagent.thread_spawn` was removed, and
a source of `{"exec": {}}` was not stored at all."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypaware_tui.importers.codex import CodexImporter

sys.path.insert(0, str(Path(__file__).parent))
from import_helpers import import_file, rows_multiset  # noqa: E402

TID = "7005e000-1111-4222-8333-444455556666"
SPAWN = {"subagent": {"thread_spawn": {"parent_thread_id": "par-1", "depth": 1, "agent_nickname": None,
                                       "extra": {}}}}  # fmt: skip


def _rollout(tmp_path: Path, source: object, *, first_ts: str | None) -> Path:
    def env(ts: str | None, typ: str, payload: dict) -> dict:
        return {"type": typ, "payload": payload, **({"timestamp": ts} if ts else {})}

    lines = [
        env(first_ts, "session_meta", {"id": TID, "source": source, "thread_source": "subagent"}),
        env(first_ts, "response_item", {"type": "message", "role": "user", "content": "hi"}),
        env("2026-11-20T10:00:02.000Z", "response_item", {"type": "message", "role": "assistant", "content": "a"}),
        env("2026-11-20T10:00:03.000Z", "event_msg", {"type": "task_complete"}),  # (the reply waits for it)
    ]
    path = tmp_path / f"rollout-2026-11-20T10-00-00-{TID}.jsonl"
    path.write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    return path


def _sources(rows: list[dict]) -> list[str]:
    return [json.dumps(json.loads(r["attributes"])["codex"].get("source"), separators=(",", ":")) for r in rows]


def test_codex_source_keeps_its_nested_nulls_and_empty_objects(tmp_path):
    want = '{"subagent":{"thread_spawn":{"agent_nickname":null,"depth":1,"extra":{},"parent_thread_id":"par-1"}}}'
    # rows written at once, and a first row held for a timestamp (finalized by the base parser)
    for first_ts in ("2026-11-20T10:00:01.000Z", None):
        path = _rollout(tmp_path, SPAWN, first_ts=first_ts)
        rows, _ = import_file(CodexImporter(), path)
        assert [r["content_text"] for r in rows] == ["hi", "a"]
        assert [json.dumps(json.loads(s), sort_keys=True, separators=(",", ":")) for s in _sources(rows)] == [want] * 2
        assert all('"agent_nickname":null' in r["attributes"] for r in rows)
        assert all(r["parent_thread_id"] == "par-1" and r["is_sidechain"] for r in rows)
        # the same rows read in pieces (the header lives in the parser state between passes)
        again, _ = import_file(CodexImporter(), path, pieces=range(0, path.stat().st_size, 37))
        assert rows_multiset(again) == rows_multiset(rows)


def test_codex_source_object_with_only_empty_members_is_stored(tmp_path):
    rows, _ = import_file(CodexImporter(), _rollout(tmp_path, {"exec": {}}, first_ts="2026-11-20T10:00:01.000Z"))
    assert _sources(rows) == ['{"exec":{}}'] * 2
