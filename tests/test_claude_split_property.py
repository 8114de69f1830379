"""Split equals whole (storage.md §5.5) for the Claude importer, property-tested.

For generated transcripts (held timestamp-less lines, streamed splits, tool calls and results, side chains,
interleaved sessions, compactions, junk lines, CRLF) and for every fixture file: importing the growing
prefixes of the file at random cut points (inside lines too, so passes see partial trailing lines), with
the checkpoint carried between passes, gives exactly the rows of a one-shot import (all 64 columns,
multiset). Resuming from any mid-file batch checkpoint does too."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypaware_tui.core.reader import FilePass
from hypaware_tui.core.schema import frame_from_rows
from hypaware_tui.importers.base import ParseStats, Window
from hypaware_tui.importers.claude import ClaudeImporter

sys.path.insert(0, str(Path(__file__).parent))
from import_helpers import counts, import_file, lines_without_rows, rows_multiset, source_file_for  # noqa: E402

IMP = ClaudeImporter()
FIXTURES = sorted((Path(__file__).parent / "fixtures" / "claude" / "home").rglob("*.jsonl"))
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

BASE_MS = 1_779_271_200_000  # 2026-05-20T10:00:00Z


def _iso(ms: int) -> str:
    from hypaware_tui.core.timeutil import us_to_iso

    text = us_to_iso(ms * 1000)
    assert text is not None
    return text


@st.composite
def transcripts(draw) -> bytes:
    """A realistic Claude Code transcript as bytes."""
    n = draw(st.integers(1, 30))
    sessions = draw(st.sampled_from([["s-1"], ["s-1", "s-2"]]))
    agent = draw(st.sampled_from([None, None, "a0123456789abcdef"]))
    clock = BASE_MS
    tools: list[str] = []
    counter = 0
    lines: list[bytes] = []
    with_ts_from = draw(st.integers(0, 4))  # the first few records may have no timestamp (held)

    def envelope(typ: str, i: int) -> dict:
        nonlocal clock, counter
        counter += 1
        rec: dict = {"type": typ, "sessionId": draw(st.sampled_from(sessions)), "version": "2.1.9" + str(i % 3),
                     "cwd": draw(st.sampled_from(["/r", "/r/sub", "C:\\r"])), "userType": "external"}
        if draw(st.integers(0, 9)) == 0:
            del rec["sessionId"]
        if agent is not None:
            rec["agentId"] = agent
            rec["isSidechain"] = True
        elif draw(st.integers(0, 9)) == 0:
            rec["isSidechain"] = True
        if draw(st.integers(0, 7)) != 0:
            rec["uuid"] = f"u-{counter}"
        if i >= with_ts_from and draw(st.integers(0, 5)) != 0:
            clock += draw(st.integers(0, 5000))
            rec["timestamp"] = clock if draw(st.integers(0, 6)) == 0 else _iso(clock)
        return rec

    def text() -> str:
        return draw(st.sampled_from(["hi", "continue", "a\u2028b", "x\u0085y", "crlf\r\nz", "é✅", "",
                                     "img data:image/png;base64,iVBORw0KGgo= end"]))

    for i in range(n):
        kind = draw(st.sampled_from(
            ["user", "user", "split", "split", "result", "noise", "boundary", "junk", "multi", "meta"]))
        if kind == "user":
            rec = envelope("user", i)
            content = text() if draw(st.booleans()) else [{"type": "text", "text": text()}]
            rec["message"] = {"role": "user", "content": content}
            recs = [rec]
        elif kind == "split":
            recs = []
            msg_id, req = f"msg_{i}", f"req_{i}"
            out = 0
            for _ in range(draw(st.integers(1, 3))):
                rec = envelope("assistant", i)
                out += draw(st.integers(0, 50))
                block_kind = draw(st.sampled_from(["thinking", "text", "tool_use"]))
                if block_kind == "thinking":
                    block = {"type": "thinking", "thinking": text(), "signature": "sig"}
                elif block_kind == "text":
                    block = {"type": "text", "text": text()}
                else:
                    tid = f"toolu_{i}_{len(tools)}"
                    tools.append(tid)
                    block = {"type": "tool_use", "id": tid, "name": draw(st.sampled_from(["Bash", "Read"])),
                             "input": {"command": "ls"}}
                rec["requestId"] = req
                rec["message"] = {"id": msg_id, "role": "assistant", "model": "claude-opus-4-6",
                                  "content": [block], "stop_reason": draw(st.sampled_from([None, "tool_use"])),
                                  "usage": {"input_tokens": 3, "output_tokens": out, "cache_read_input_tokens": 9}}
                recs.append(rec)
        elif kind == "result":
            rec = envelope("user", i)
            tid = draw(st.sampled_from(tools)) if tools else "toolu_unknown"
            rec["message"] = {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tid, "content": text(), "is_error": draw(st.booleans())}]}
            recs = [rec]
        elif kind == "multi":
            rec = envelope("assistant", i)
            tid = f"toolu_m{i}"
            tools.append(tid)
            rec["message"] = {"role": "assistant", "content": [
                {"type": "text", "text": text()}, {"type": "tool_use", "id": tid, "name": "Edit", "input": "{}"}],
                "usage": {"input_tokens": 1, "output_tokens": 2}, "stop_reason": "end_turn"}
            recs = [rec]
        elif kind == "meta":
            rec = envelope("user", i)
            rec["isMeta"] = True
            rec["message"] = {"role": "user", "content": "<command-name>/clear</command-name>"}
            recs = [rec]
        elif kind == "boundary":
            rec = envelope("system", i)
            rec.update(subtype="compact_boundary", content="Conversation compacted", parentUuid=None,
                       compactMetadata={"trigger": "auto", "preTokens": i})
            recs = [rec]
        elif kind == "noise":
            typ = draw(st.sampled_from(["file-history-snapshot", "progress", "permission-mode", "summary",
                                        "system", "queue-operation", "attachment"]))
            rec = envelope(typ, i)
            if typ == "permission-mode":
                rec["permissionMode"] = draw(st.sampled_from(["plan", "default"]))
            if typ == "system":
                rec["subtype"] = "turn_duration"
            if typ == "file-history-snapshot":
                rec.pop("timestamp", None)
            recs = [rec]
        else:  # junk
            lines.append(draw(st.sampled_from([b"", b"   ", b"{not json", b"[1,2]", b"\xff\xfe", b'{"a":NaN}'])))
            continue
        for rec in recs:
            data = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
            if draw(st.integers(0, 9)) == 0:
                data += b"\r"
            lines.append(data)
    body = b"\n".join(lines) + b"\n"
    if draw(st.integers(0, 4)) == 0:
        body += b'{"type":"user","sessionId":"s-1","message":{"role":"user","content":"partial'  # no newline
    return body


def _cuts(draw, data: bytes) -> list[int]:
    line_starts = [i + 1 for i, b in enumerate(data) if b == 0x0A]
    at_lines = draw(st.lists(st.sampled_from(line_starts), max_size=4)) if line_starts else []
    anywhere = draw(st.lists(st.integers(0, len(data)), max_size=4))
    return sorted(set(at_lines + anywhere))


def _write(tmp_path_factory, data: bytes, name: str = "s.jsonl") -> Path:
    p = tmp_path_factory.mktemp("t") / name
    p.write_bytes(data)
    return p


@SETTINGS
@given(data=st.data(), body=transcripts())
def test_generated_transcripts_split_equals_whole(tmp_path_factory, data, body):
    name = data.draw(st.sampled_from(["s.jsonl", "agent-a0123456789abcdef.jsonl"]))
    path = _write(tmp_path_factory, body, name)
    whole, whole_stats = import_file(IMP, path)
    frame_from_rows(whole)
    cuts = _cuts(data.draw, body)
    pieces, piece_stats = import_file(IMP, path, pieces=cuts)
    assert rows_multiset(pieces) == rows_multiset(whole)
    # each line is counted once, in the pass that consumes it (schema.md §3.2 rule 3, §7)
    assert counts(piece_stats) == counts(whole_stats)
    if not whole_stats.rows_held:  # (lines from a held one on are not consumed yet, so not counted)
        assert sum(whole_stats.lines_skipped.values()) == lines_without_rows(body, whole)
    # a window applies identically to pieces and whole
    since = BASE_MS * 1000 + data.draw(st.integers(0, 60_000_000))
    win = Window(since_us=since)
    w_whole, w_whole_stats = import_file(IMP, path, window=win)
    w_pieces, w_piece_stats = import_file(IMP, path, window=win, pieces=cuts)
    assert rows_multiset(w_pieces) == rows_multiset(w_whole)
    assert rows_multiset(w_whole) == rows_multiset([r for r in whole if r["message_created_at"] >= since])
    assert counts(w_piece_stats) == counts(w_whole_stats)
    if not w_whole_stats.rows_held:
        assert sum(w_whole_stats.lines_skipped.values()) == lines_without_rows(body, w_whole)


@SETTINGS
@given(data=st.data(), body=transcripts())
def test_resume_from_any_mid_file_checkpoint(tmp_path_factory, data, body):
    """Batches of one row: stopping after any batch (a crash after its commit) and resuming from its
    checkpoint gives the same rows as one pass (held rows never leak into a checkpoint)."""
    path = _write(tmp_path_factory, body)
    src = source_file_for(IMP, path)
    batches = list(FilePass(IMP, src, None, Window(), ParseStats(), batch_rows=1).batches())
    whole = [r for b in batches for r in b.rows]
    k = data.draw(st.integers(0, len(batches) - 1))
    done = [r for b in batches[: k + 1] for r in b.rows]
    cp = batches[k].update.entry
    rest = [r for b in FilePass(IMP, src, cp, Window(), ParseStats()).batches() for r in b.rows]
    assert rows_multiset(done + rest) == rows_multiset(whole)


@SETTINGS
@given(data=st.data())
def test_every_fixture_file_split_equals_whole(data):
    path = data.draw(st.sampled_from(FIXTURES))
    body = path.read_bytes()
    whole, _ = import_file(IMP, path)
    cuts = _cuts(data.draw, body)
    pieces, _ = import_file(IMP, path, pieces=cuts)
    assert rows_multiset(pieces) == rows_multiset(whole)


def test_every_fixture_file_line_by_line():
    """The extreme split: a pass after every byte-complete line, for every fixture file."""
    for path in FIXTURES:
        body = path.read_bytes()
        cuts = [i + 1 for i, b in enumerate(body) if b == 0x0A]
        whole, _ = import_file(IMP, path)
        pieces, _ = import_file(IMP, path, pieces=cuts)
        assert rows_multiset(pieces) == rows_multiset(whole), path.name
