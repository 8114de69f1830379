"""The line reader (core/reader.py) cuts a file into the same lines whatever its chunk size: lines longer than a
chunk (a 200 MB tool result on one line), a chunk boundary on a newline, CRLF, blank lines and a trailing
partial line. Property-tested against a plain split of the bytes, through the fake importer (one row per
message line, `source_offset` = the line's offset)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from backfill_fakes import FakeImporter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypaware_tui.core.checkpoints import Checkpoint, path_hash
from hypaware_tui.core.reader import CHANGED_WHILE_READ, FilePass
from hypaware_tui.importers.base import ParseStats, SourceFile, Window

IMP = FakeImporter("claude")


def _msg(i: int, text: str) -> bytes:
    return json.dumps({"type": "msg", "session": "s", "id": f"m{i}", "ts": "2026-05-01T10:00:00Z", "text": text},
                      ensure_ascii=False).encode()  # fmt: skip


line = st.one_of(
    st.tuples(st.just("msg"), st.text(max_size=40), st.sampled_from([b"\n", b"\r\n"])),
    st.tuples(st.just("long"), st.integers(50, 400), st.just(b"\n")),
    st.tuples(st.just("junk"), st.binary(max_size=30).filter(lambda b: b"\n" not in b).map(lambda b: b"#" + b),
              st.just(b"\n")),
    st.tuples(st.just("blank"), st.sampled_from([b"", b"  ", b"\r"]), st.just(b"\n")),
)


def _build(spec: list[tuple[str, object, bytes]], partial: bytes) -> tuple[bytes, list[tuple[int, str]]]:
    """The file's bytes and the expected (offset, text) of every message row."""
    out = bytearray()
    expected = []
    for i, (kind, arg, end) in enumerate(spec):
        at = len(out)
        if kind in ("msg", "long"):
            text = arg if kind == "msg" else "é" * arg  # multi-byte characters across chunk boundaries
            out += _msg(i, text) + end
            expected.append((at, text))
        else:
            out += arg + end  # type: ignore[operator]
    return bytes(out) + partial, expected


def _read(path: str, size: int, chunk: int) -> tuple[list[tuple[int, str]], int, dict[str, int]]:
    f = SourceFile(client="claude", path=path, path_hash=path_hash(path), read_mode="incremental")
    stats = ParseStats()
    rows, offset = [], None
    for b in FilePass(IMP, f, None, Window(), stats, chunk_size=chunk, batch_rows=3).batches():
        rows += [(r["source_offset"], r["content_text"]) for r in b.rows]
        offset = b.update.entry.offset
    return rows, offset, {k: v for k, v in stats.lines_skipped.items() if v}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spec=st.lists(line, max_size=12),
    partial=st.sampled_from([b"", b'{"type": "msg", "id": "cut', b"x" * 300]),
    chunks=st.lists(st.integers(1, 200), min_size=1, max_size=3),
)
def test_any_chunk_size_reads_the_same_lines(tmp_path, spec, partial, chunks):
    data, expected = _build(spec, partial)
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    complete_end = len(data) - len(partial)
    reference = _read(str(path), len(data), 4 * 1024 * 1024)
    rows, offset, skipped = reference
    assert rows == expected
    assert offset == complete_end  # the partial line is left for the next pass
    assert skipped.get("malformed", 0) == sum(1 for k, _, _ in spec if k == "junk")
    for chunk in chunks:
        assert _read(str(path), len(data), chunk) == reference, chunk


def test_a_line_many_chunks_long_is_read_whole(tmp_path):
    text = "x" * 3_000_000
    data = _msg(0, "before") + b"\n" + _msg(1, text) + b"\n" + _msg(2, "after") + b"\n"
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    rows, offset, _ = _read(str(path), len(data), 4096)  # ~730 chunks for the long line
    assert [t for _, t in rows] == ["before", text, "after"] and offset == len(data)
    assert rows[1][0] == len(_msg(0, "before")) + 1


def test_a_long_line_is_freed_once_parsed(tmp_path, monkeypatch):
    """A 40 MB line: while its rows are built, its bytes are no longer held (by the reader's block, its list
    of lines or the parser), only the parsed object. A 200 MB line peaked at 876 MiB before, 676 MiB after."""
    import tracemalloc

    from backfill_fakes import FakeParser

    text = "x" * 40_000_000
    data = _msg(0, text) + b"\n"
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    held: list[int] = []
    real_handle = FakeParser.handle

    def handle(self, obj, offset):
        held.append(tracemalloc.get_traced_memory()[0])
        return real_handle(self, obj, offset)

    monkeypatch.setattr(FakeParser, "handle", handle)
    tracemalloc.start()
    try:
        rows, _, _ = _read(str(path), len(data), 4 * 1024 * 1024)
    finally:
        tracemalloc.stop()
    assert [t for _, t in rows] == [text]
    assert held and held[0] < 60_000_000, held  # the 40 MB string, without the 40 MB line beside it


def test_a_line_longer_than_a_chunk_is_held_once_while_it_is_read():
    """A 40 MB line read in 4 MiB chunks is grown in one buffer and handed out alone, as it is: the chunks
    kept until its newline and then joined held it twice at the join (and left their memory to the C heap),
    and the split of that block into lines copied it once more."""
    import io
    import tracemalloc

    from hypaware_tui.importers.base import line_blocks, split_lines

    line = _msg(1, "x" * 40_000_000)
    data = _msg(0, "before") + b"\n" + line + b"\n" + _msg(2, "after") + b"\n"
    src = io.BytesIO(data)
    del data
    lines: list[bytes] = []
    tracemalloc.start()
    try:
        for block in line_blocks(src.read, 4 * 1024 * 1024):
            got, _ = split_lines(block)
            del block
            lines += reversed(got)
            del got
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [bytes(x) for x in lines] == [_msg(0, "before"), line, _msg(2, "after")]
    assert peak < 1.5 * len(line), peak  # (one buffer, grown in place, plus a chunk)


def test_batch_rows_is_a_maximum_within_one_block(tmp_path):
    """daemon.md §5 flush_rows is the maximum rows per batch (storage.md §4.3: batches sized for the lock):
    a 4 MiB block holding 5,000 short lines gives batches of at most `batch_rows`, each with a checkpoint
    right after its last line, not one batch of 5,000."""
    data = b"".join(_msg(i, "x") + b"\n" for i in range(5_000))
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    src = SourceFile("claude", str(path), path_hash(str(path)), "incremental", True, len(data), 0)
    batches = list(FilePass(IMP, src, None, Window(), ParseStats(), batch_rows=2_000).batches())
    assert [len(b.rows) for b in batches] == [2_000, 2_000, 1_000]
    for b in batches:  # each checkpoint is the offset after its batch's last row's line
        last = max(r["source_offset"] for r in b.rows)
        assert b.update.entry.offset == data.index(b"\n", last) + 1


def test_checkpoints_count_the_rows_a_file_gave_across_passes(tmp_path):
    """storage.md §5.1 `files.rows_emitted`: the rows the file has given so far, earlier passes included; a
    reset starts again from 0."""
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"".join(_msg(i, "x") + b"\n" for i in range(5)))
    src = SourceFile("claude", str(path), path_hash(str(path)), "incremental", True)

    def one_pass(cp):
        batches = list(FilePass(IMP, src, cp, Window(), ParseStats(), batch_rows=2).batches())
        return [b.update.entry.rows_emitted for b in batches], batches[-1].update.entry

    counts, cp = one_pass(None)
    assert counts == [2, 4, 5]
    with path.open("ab") as fh:
        fh.write(b"".join(_msg(i, "x") + b"\n" for i in range(5, 8)))
    counts, cp = one_pass(cp)
    assert counts == [7, 8]
    path.write_bytes(_msg(0, "rewritten") + b"\n")  # shorter than the checkpoint: a reset
    assert one_pass(cp)[0] == [1]


def read_whole(path: Path, lines: list[bytes]) -> tuple[SourceFile, list, Checkpoint]:
    """`lines` written to `path` and read by a first pass: the file, the pass's batches, and its checkpoint,
    which is at the file's end."""
    path.write_bytes(b"".join(lines))
    src = SourceFile("claude", str(path), path_hash(str(path)), "incremental", True)
    first = list(FilePass(IMP, src, None, Window(), ParseStats()).batches())
    cp = first[-1].update.entry
    assert cp.offset == path.stat().st_size
    return src, first, cp


def test_a_file_truncated_in_place_and_grown_past_its_checkpoint_is_read_again(tmp_path):
    """storage.md §5.4 step 3: a file rewritten in place (same inode, same first 4 KiB) and grown past the old
    offset was read from there, the middle of a line now: its rows were lost and the line counted
    malformed. A checkpoint offset that no longer follows a newline resets the file."""
    path = tmp_path / "f.jsonl"
    lines = [_msg(i, f"line {i} " + "x" * 600) + b"\n" for i in range(18)]
    src, first, cp = read_whole(path, lines)
    assert len(first[-1].rows) == 18
    with path.open("r+b") as fh:  # keep the first 8 lines, then 30 new ones: longer than before
        fh.truncate(sum(map(len, lines[:8])))
        fh.seek(0, os.SEEK_END)
        fh.write(b"".join(_msg(100 + i, "new " + "y" * 700) + b"\n" for i in range(30)))
    assert path.stat().st_size > cp.offset
    fp = FilePass(IMP, src, cp, Window(), ParseStats())
    rows = [r for b in fp.batches() for r in b.rows]
    assert fp.status == "reset"
    assert [r["content_text"][:8] for r in rows] == [f"line {i} x" for i in range(8)] + ["new yyyy"] * 30


def rewritten_after_two_batches(
    tmp_path: Path, old: bytes, new: bytes, *, chunk_size: int
) -> tuple[SourceFile, FilePass, list[str], list[Checkpoint]]:
    """A pass over a file of `old` in batches of 5 rows, the file truncated and rewritten in place with `new`
    (as an editor's save may do) once its second batch is handed out. Returns the file, the pass, the texts it
    handed out and the checkpoints of its batches."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(old)
    f = SourceFile(client="claude", path=str(path), path_hash=path_hash(str(path)), read_mode="incremental")
    fp = FilePass(IMP, f, None, Window(), ParseStats(), chunk_size=chunk_size, batch_rows=5)
    texts: list[str] = []
    updates: list[Checkpoint] = []
    for b in fp.batches():
        texts += [r["content_text"] for r in b.rows]
        updates.append(b.update.entry)
        if len(updates) == 2:
            with open(path, "r+b") as fh:
                fh.truncate(0)
                fh.write(new)
    return f, fp, texts, updates


def test_a_file_rewritten_while_it_is_read_hands_out_no_row_of_the_new_bytes(tmp_path) -> None:
    """A file truncated and rewritten in place during a pass (same inode): the lines after the cut came from
    the new content but were parsed with the old content's state, and were committed (a duplicate message
    under another fallback id, a wrong ordinal). The pass now checks the file before each batch: it stops,
    failed, without those rows; the next pass resets (its head changed) and reads the new content whole."""
    old = b"".join(_msg(i, f"old {i}") + b"\n" for i in range(40))
    new = b"".join(_msg(i, f"new {i}") + b"\n" for i in range(60))
    f, fp, texts, updates = rewritten_after_two_batches(tmp_path, old, new, chunk_size=256)
    assert fp.status == "failed" and "rewritten while it was read" in (fp.error or "")
    assert texts == [f"old {i}" for i in range(10)]  # the two batches checked before the rewrite
    again = FilePass(IMP, f, updates[-1], Window(), ParseStats(), chunk_size=256, batch_rows=5)
    rows = [r["content_text"] for b in again.batches() for r in b.rows]
    assert again.status == "reset" and rows == [f"new {i}" for i in range(60)]


def test_batch_rows_holds_for_lines_of_several_rows(tmp_path):
    """An assistant line gives a row per part (its text and its tool call): sliced by lines alone, the daemon's
    batches of 2,000 rows came out at 3,000 (an audit). The slices now follow the rows per line seen."""
    from test_daemon_support import session_text

    from hypaware_tui.importers.claude import ClaudeImporter

    claude = ClaudeImporter()
    path = tmp_path / "11111111-1111-4111-8111-111111111111.jsonl"
    path.write_text(session_text(path.stem, 3_000, datetime(2026, 5, 1, tzinfo=UTC)))  # 1.5 rows a line
    src = SourceFile("claude", str(path), path_hash(str(path)), "incremental", True)
    batches = [len(b.rows) for b in FilePass(claude, src, None, Window(), ParseStats(), batch_rows=1_000).batches()]
    assert sum(batches) == 4_500
    assert all(1_000 <= n <= 1_001 for n in batches[:-1]), batches  # (give or take the parts of one line)


def test_an_unchanged_file_whose_checkpoint_skipped_older_lines_is_read_again_from_the_start(tmp_path):
    """A checkpoint of the daemon's first pass (bound: the capture start) over a file that has not changed
    since: a backfill with an earlier window (here none) must read the file from the start, not call it
    unchanged (the history before the capture start was never imported). The same window is unchanged."""
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"".join(_msg(i, f"t{i}") + b"\n" for i in range(4)))
    src = SourceFile("claude", str(path), path_hash(str(path)), "incremental", True)
    bound = int(datetime(2026, 5, 2, tzinfo=UTC).timestamp() * 1_000_000)  # after every line's time
    first = list(FilePass(IMP, src, None, Window(since_us=bound), ParseStats()).batches())
    cp = first[-1].update.entry
    assert [r for b in first for r in b.rows] == []
    assert cp.since_us == bound and cp.size == cp.offset == path.stat().st_size
    same = FilePass(IMP, src, cp, Window(since_us=bound), ParseStats())
    assert list(same.batches()) == [] and same.status == "unchanged"
    wider = FilePass(IMP, src, cp, Window(), ParseStats())
    rows = [r["content_text"] for b in wider.batches() for r in b.rows]
    assert wider.status == "read" and rows == ["t0", "t1", "t2", "t3"]
    assert wider.bytes_read == path.stat().st_size


def test_a_resumed_pass_keeps_the_bound_its_lines_were_read_from(tmp_path):
    """A file read whole (no bound), then resumed by a run with a later `since` after lines were appended:
    the lines before the offset were still read from no bound, so the new checkpoint keeps None. Recording
    the later bound made the next run without `--since` read the whole file again."""
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"".join(_msg(i, f"t{i}") + b"\n" for i in range(3)))
    src = SourceFile("claude", str(path), path_hash(str(path)), "incremental", True)
    cp = list(FilePass(IMP, src, None, Window(), ParseStats()).batches())[-1].update.entry
    assert cp.since_us is None
    with path.open("ab") as fh:
        fh.write(_msg(3, "t3") + b"\n")
    later = int(datetime(2026, 4, 1, tzinfo=UTC).timestamp() * 1_000_000)
    resumed = FilePass(IMP, src, cp, Window(since_us=later), ParseStats())
    batches = list(resumed.batches())
    assert resumed.status == "read" and [r["content_text"] for b in batches for r in b.rows] == ["t3"]
    assert batches[-1].update.entry.since_us is None
    again = FilePass(IMP, src, batches[-1].update.entry, Window(), ParseStats())
    assert list(again.batches()) == [] and again.status == "unchanged"


def test_a_file_cut_shorter_while_it_is_read_fails_the_pass(tmp_path) -> None:
    """A file truncated during a pass to a length past its first 4 KiB (the head still the same): the pass
    stops, failed, with the message that says so, rather than calling the file read to its end."""
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"".join(_msg(i, f"old {i} " + "x" * 200) + b"\n" for i in range(200)))
    f = SourceFile(client="claude", path=str(path), path_hash=path_hash(str(path)), read_mode="incremental")
    fp = FilePass(IMP, f, None, Window(), ParseStats(), chunk_size=1024, batch_rows=5)
    texts = []
    for b in fp.batches():
        texts += [r["content_text"] for r in b.rows]
        if len(texts) == 5:
            with open(path, "r+b") as fh:
                fh.truncate(20_000)
    assert fp.status == "failed" and fp.error == CHANGED_WHILE_READ
    assert len(texts) == 5


def test_a_file_replaced_by_another_with_the_same_head_is_read_again_from_its_start(tmp_path) -> None:
    """storage.md §5.4 step 3: a file replaced by another one (a new inode: a restore, a save by rename) is read
    again from its start even when the new one begins with the same 4 KiB, is longer than the checkpoint's
    offset and has a line starting there. Resumed at the old offset instead, the new file's lines before it,
    which differ from the old ones, were never read: their rows lost."""
    path = tmp_path / "f.jsonl"
    old = [_msg(i, f"old {i:02} " + "x" * 600) + b"\n" for i in range(10)]
    src, first, cp = read_whole(path, old)
    assert sum(len(b.rows) for b in first) == 10
    # The first 8 lines (more than the 4 KiB head) kept; lines 8 and 9 differ, of the same lengths; 5 more after.
    new = old[:8] + [_msg(i, f"new {i:02} " + "y" * 600) + b"\n" for i in range(8, 15)]
    assert sum(map(len, new[:10])) == cp.offset and sum(map(len, new[:8])) > 4096
    tmp = tmp_path / "f.jsonl.new"
    tmp.write_bytes(b"".join(new))
    os.replace(tmp, path)
    assert path.stat().st_ino != cp.inode
    fp = FilePass(IMP, src, cp, Window(), ParseStats())
    rows = [r["content_text"][:6] for b in fp.batches() for r in b.rows]
    assert fp.status == "reset"
    assert rows == [f"old {i:02}" for i in range(8)] + [f"new {i:02}" for i in range(8, 15)]


def test_a_file_rewritten_in_place_past_its_head_is_read_again_from_its_start(tmp_path) -> None:
    """The same inode, the same first 4 KiB and a line start at the checkpoint's offset, but line 8 (past the
    head, before the offset) rewritten in place: the bytes before the offset no longer hash to the checkpoint's
    tail, so the pass resets and reads the file from its start. Resumed, the changed line was never read."""
    path = tmp_path / "f.jsonl"
    old = [_msg(i, f"old {i:02} " + "x" * 600) + b"\n" for i in range(10)]
    path.write_bytes(b"".join(old))
    src = SourceFile("claude", str(path), path_hash(str(path)), "incremental", True)
    cp = list(FilePass(IMP, src, None, Window(), ParseStats()).batches())[-1].update.entry
    assert cp.offset == path.stat().st_size
    new = old[:8] + [_msg(8, "new 08 " + "y" * 600) + b"\n", old[9]]
    assert sum(map(len, new)) == cp.offset and sum(map(len, new[:8])) > 4096
    with path.open("r+b") as fh:
        fh.write(b"".join(new))
        fh.write(_msg(10, "new 10") + b"\n")
    assert path.stat().st_ino == cp.inode
    fp = FilePass(IMP, src, cp, Window(), ParseStats())
    rows = [r["content_text"][:6] for b in fp.batches() for r in b.rows]
    assert fp.status == "reset" and fp.bytes_read == path.stat().st_size
    assert rows == [f"old {i:02}" for i in range(8)] + ["new 08", "old 09", "new 10"]


def test_a_file_appended_to_past_its_head_is_resumed_with_its_tail_unchanged(tmp_path) -> None:
    """The tail check on an unchanged file: resumed at the offset, only the bytes added read."""
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"".join(_msg(i, f"old {i:02} " + "x" * 600) + b"\n" for i in range(10)))
    src = SourceFile("claude", str(path), path_hash(str(path)), "incremental", True)
    cp = list(FilePass(IMP, src, None, Window(), ParseStats()).batches())[-1].update.entry
    added = _msg(10, "new 10") + b"\n"
    with path.open("ab") as fh:
        fh.write(added)
    fp = FilePass(IMP, src, cp, Window(), ParseStats())
    rows = [r["content_text"] for b in fp.batches() for r in b.rows]
    assert (fp.status, fp.bytes_read, rows) == ("read", len(added), ["new 10"])


def test_a_file_rewritten_after_the_last_batch_check_hands_out_no_row_of_the_new_bytes(tmp_path) -> None:
    """The check before each batch covers the pass's last batch too: a file rewritten in place after the last
    full batch (its last lines still to read) gave rows of the new content, parsed with the old content's state,
    in the final batch. Now the pass fails there, without them, and the next pass reads the new content whole."""
    old = b"".join(_msg(i, f"old {i:02}") + b"\n" for i in range(12))
    new = b"".join(_msg(i, f"new {i:02}") + b"\n" for i in range(20))  # (lines of the same lengths)
    # (chunks shorter than a line: the lines after a batch are read from the file once it is handed out; the
    # second batch is the last full one, 2 lines are left)
    f, fp, texts, updates = rewritten_after_two_batches(tmp_path, old, new, chunk_size=16)
    assert fp.status == "failed" and "rewritten while it was read" in (fp.error or "")
    assert texts == [f"old {i:02}" for i in range(10)]
    again = FilePass(IMP, f, updates[-1], Window(), ParseStats())
    rows = [r["content_text"] for b in again.batches() for r in b.rows]
    assert again.status == "reset" and rows == [f"new {i:02}" for i in range(20)]
