"""Shared test helpers: valid finalized rows for the storage engine (others reuse these; keep them stable).

`make_row(**overrides)` returns one finalized row dict (JSON columns as text, timestamps as int µs UTC,
`date` derived from `message_created_at`). Pass `created="2026-05-01T10:00:00Z"` (or an int µs) to set the
message time (and date); any column can be overridden by name.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypaware_tui.core.schema import canonical_json

_DEFAULT_CREATED = "2026-05-01T10:00:00Z"


def to_us(value: str | int | datetime) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(value.timestamp() * 1_000_000)


def make_row(*, created: str | int | datetime = _DEFAULT_CREATED, **overrides: Any) -> dict[str, Any]:
    """One valid finalized row. Defaults: a Claude user text part 0 of message `m1` in session `s1`."""
    created_us = to_us(created)
    message_id = overrides.get("message_id", "m1")
    part_index = overrides.get("part_index", 0)
    client = overrides.get("client_name", "claude")
    row: dict[str, Any] = {
        "schema_version": 1,
        "session_id": "s1",
        "conversation_id": "s1",
        "provider": "anthropic" if client == "claude" else "openai",
        "conversation_started_at": created_us,
        "conversation_source": client,
        "client_name": client,
        "message_id": message_id,
        "previous_message_id": "[]",
        "message_index": 0,
        "message_created_at": created_us,
        "role": "user",
        "part_id": f"{message_id}#{part_index}",
        "part_index": part_index,
        "part_type": "text",
        "content_text": "hello",
        "attributes": canonical_json({"gateway": {"identity_source": "native"}}),
        "source_path_hash": "0123456789abcdef",
        "source_offset": 0,
        "record_format": "claude-jsonl" if client == "claude" else "codex-envelope",
        "date": datetime.fromtimestamp(created_us / 1_000_000, UTC).strftime("%Y-%m-%d"),
    }
    row.update(overrides)
    if "part_id" not in overrides:
        row["part_id"] = f"{row['message_id']}#{row['part_index']}"
    return row


def make_rows(
    n: int, *, prefix: str = "m", created: str | int | datetime = _DEFAULT_CREATED, **overrides: Any
) -> list[dict[str, Any]]:
    """`n` distinct rows (message ids `<prefix>0` … `<prefix>{n-1}`), one second apart."""
    base = to_us(created)
    return [
        make_row(created=base + i * 1_000_000, message_id=f"{prefix}{i}", message_index=i, **overrides)
        for i in range(n)
    ]


def iso_ms(dt: datetime) -> str:
    """A Claude Code timestamp: `2026-11-28T10:00:00.000Z` (a UTC datetime)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def claude_session_lines(sid: str, start: datetime, turns: int, step: timedelta, *, first: int = 0) -> list[str]:
    """Claude Code lines: `turns` user+assistant pairs from `start`, `step` apart (one row each), then a
    file-history snapshot (no timestamp, as at the end of real transcripts). `first`: the number of the first
    turn, to continue a session."""
    lines = []
    prev = None if first == 0 else f"{sid}-a{first - 1}"
    for i in range(first, first + turns):
        t = start + step * (i - first)
        u, a = f"{sid}-u{i}", f"{sid}-a{i}"
        lines.append(json.dumps({
            "type": "user", "sessionId": sid, "uuid": u, "parentUuid": prev, "timestamp": iso_ms(t),
            "cwd": "/home/ada/repo", "version": "2.0.1", "message": {"role": "user", "content": f"question {i}"},
        }))
        lines.append(json.dumps({
            "type": "assistant", "sessionId": sid, "uuid": a, "parentUuid": u, "requestId": f"req-{sid}-{i}",
            "timestamp": iso_ms(t + timedelta(seconds=30)), "cwd": "/home/ada/repo", "version": "2.0.1",
            "message": {"id": f"msg-{sid}-{i}", "role": "assistant", "model": "claude-sonnet-4-5",
                        "content": [{"type": "text", "text": f"answer {i}"}],
                        "usage": {"input_tokens": 10, "output_tokens": 5}},
        }))
        prev = a
    lines.append(json.dumps({"type": "file-history-snapshot", "messageId": prev, "snapshot": {}}))
    return lines
