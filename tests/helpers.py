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


#: A session resumed by `claude --resume` (1.0.x) into a new file whose random name sorts before the original's
RESUMED_ORIGINAL = "ffffffff-1111-4111-8111-111111111111"
RESUMED_COPY = "00000000-2222-4222-8222-222222222222"


def write_resumed_pair(project_dir, start: datetime, *, long_last: bool = False) -> None:
    """The original transcript (3 turns from `start`, 6 rows) and its `--resume` copy in `project_dir`: a
    summary, the original's message lines under the copy's session id with their `uuid`s and timestamps kept,
    then a turn of its own an hour later (2 rows). The copy's name sorts first, and its mtime is the earlier
    one: Claude Code later appended an untimestamped `last-prompt` record to the original (#90954).
    `long_last`: the original's last message is 300 KB long (a long answer, a large tool result), longer than
    the tail a timestamp scan reads first."""
    import os
    from pathlib import Path

    d = Path(project_dir)
    d.mkdir(parents=True, exist_ok=True)
    orig = claude_session_lines(RESUMED_ORIGINAL, start, 3, timedelta(minutes=2))
    if long_last:
        i = max(k for k, line in enumerate(orig) if json.loads(line).get("type") == "assistant")
        last = json.loads(orig[i])
        last["message"]["content"] = [{"type": "text", "text": "x" * 300_000}]
        orig[i] = json.dumps(last)
    copy = [json.dumps({"type": "summary", "summary": "work", "leafUuid": f"{RESUMED_ORIGINAL}-a2"})]
    for line in orig:
        obj = json.loads(line)
        if obj["type"] in ("user", "assistant"):
            copy.append(json.dumps(dict(obj, sessionId=RESUMED_COPY)))
    copy += claude_session_lines(RESUMED_COPY, start + timedelta(hours=1), 1, timedelta(minutes=2))
    orig.append(json.dumps({"type": "last-prompt", "lastPrompt": "question 2", "sessionId": RESUMED_ORIGINAL}))
    (d / f"{RESUMED_COPY}.jsonl").write_text("\n".join(copy) + "\n")
    (d / f"{RESUMED_ORIGINAL}.jsonl").write_text("\n".join(orig) + "\n")
    t = (start + timedelta(hours=2)).timestamp()
    os.utime(d / f"{RESUMED_COPY}.jsonl", (t, t))
    os.utime(d / f"{RESUMED_ORIGINAL}.jsonl", (t + 86400, t + 86400))


def resumed_pair_sessions_csv() -> list[str]:
    """The lines `hyp query sql --format csv` shows of `write_resumed_pair`'s rows by session once the original
    keeps its messages: 6 rows for the original conversation, 2 (its own turn) for the copy."""
    return [
        "session_id,conversation_id,rows",
        f"{RESUMED_COPY},{RESUMED_COPY},2",
        f"{RESUMED_ORIGINAL},{RESUMED_ORIGINAL},6",
    ]
