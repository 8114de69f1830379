"""One pass over one file (storage.md §5.4): stat, skip, reset, read complete lines in bounded chunks, feed
the importer's parser, and hand out batches of rows with the checkpoint that covers them.

Used identically by `hyp backfill`, the wizard's import and the capture daemon, so a line produces the same
rows whichever path reads it. Nothing here writes: batches go to `Storage.commit`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from hypaware_tui.core.checkpoints import (
    FRESH_PARSER_STATE,
    Checkpoint,
    CheckpointUpdate,
    tail_bytes,
    tail_ok,
)
from hypaware_tui.importers.base import (
    DamagedFile,
    Importer,
    Parser,
    ParseStats,
    Row,
    SourceFile,
    Window,
    feed_lines,
    line_blocks,
    loads_state,
    split_lines,
)

CHUNK_SIZE = 4 * 1024 * 1024
HEAD_LEN = 4096
DEFAULT_BATCH_ROWS = 50_000
FIRST_SLICE_LINES = 64  # lines fed before the rows per line are known (see `_incremental`)


@dataclass
class Batch:
    rows: list[Row]
    update: CheckpointUpdate | None  # None when the run may not write checkpoints
    bytes_done: int  # bytes of the file consumed so far in this pass
    final: bool = False


def must_widen(cp_since_us: int | None, since_us: int | None) -> bool:
    """Whether a checkpoint whose first pass began at `cp_since_us` leaves out lines a window starting at
    `since_us` takes: the daemon's first pass over a file begins at the capture start (daemon.md §2), so a later
    backfill of the older history (an import declined, or stopped before reaching the file) must read the file
    again from the start, dedupe absorbing what the daemon stored. None is no bound: the earliest."""
    return cp_since_us is not None and (since_us is None or since_us < cp_since_us)


def _checkpoint(file: SourceFile, st: os.stat_result, offset: int, state: str, head: bytes, *, size: int,
                rows_emitted: int, since_us: int | None, tail: bytes | None = None) -> CheckpointUpdate:
    """The checkpoint of `file` consumed up to `offset` with parser state `state`, at stat `st` (its size
    recorded as `size`), the `head` read at that stat and the `tail` before the offset (`_tail`; None: not
    recorded, as for a whole document, which is read again whenever it changes)."""
    entry = Checkpoint(
        path_hash=file.path_hash,
        client_name=file.client,
        read_mode=file.read_mode,
        device=st.st_dev,
        inode=st.st_ino,
        size=size,
        mtime_ns=st.st_mtime_ns,
        offset=offset,
        head_len=len(head),
        head_sha256=hashlib.sha256(head).hexdigest(),
        parser_state=state,
        rows_emitted=rows_emitted,
        since_us=since_us,
        tail_len=None if tail is None else len(tail),
        tail_sha256=None if tail is None else hashlib.sha256(tail).hexdigest(),
    )
    return CheckpointUpdate(entry=entry, path=file.path)


def nothing_read(file: SourceFile, since_us: int | None) -> CheckpointUpdate:
    """The checkpoint of a file a run did not read because it ends before its window (`runner._before_window`):
    nothing consumed, at the file's stat and head as read now. Offset 0, no row and the fresh parser state
    (`FRESH_PARSER_STATE`, with which `_incremental` starts as without a checkpoint: the importer's
    `prepare_fresh_state` then, and the bound of that pass's window); its bound is `since_us`, the window's.
    Every later pass, the daemon's too, finds the file unchanged while its stat is this one; appended to, it is
    read from its start as a new file; a window starting before `since_us` (retention raised) reads it
    (`must_widen`). Raises OSError when the file cannot be opened."""
    with open(file.path, "rb") as fh:
        st = os.fstat(fh.fileno())
        head = fh.read(min(st.st_size, HEAD_LEN))
    return _checkpoint(file, st, 0, FRESH_PARSER_STATE, head, size=st.st_size, rows_emitted=0, since_us=since_us,
                       tail=b"")


class _ChangedWhileRead(Exception):
    """The file was truncated or rewritten while this pass read it."""


CHANGED_WHILE_READ = (
    "the file was truncated or rewritten while it was read: the lines read since the last check were "
    "dropped, and it is read again next time"
)


def _check_still_there(fh: BinaryIO, head: bytes, end: int) -> None:
    """Raise `_ChangedWhileRead` unless the open file still holds what this pass is reading: at least the `end`
    bytes it had at the stat (a transcript only grows), starting with the same `head`. Checked before each
    batch is handed out, so lines of new content are never parsed on with the old content's state (which
    gave rows with a wrong ordinal, or a duplicate message under another fallback id) and committed."""
    fd = fh.fileno()
    if os.fstat(fd).st_size < end or (head and os.pread(fd, len(head), 0) != head):
        raise _ChangedWhileRead


def _at_line_start(fh: BinaryIO, offset: int) -> bool:
    """Whether `offset` still follows a newline, as every checkpoint offset did when it was written (storage.md
    §5.4 step 3, one more reason to reset): a file truncated in place and grown past its old offset, or
    edited before it, would otherwise be read from the middle of a line, its rows lost. One byte read."""
    if offset <= 0:
        return True
    fh.seek(offset - 1)
    return fh.read(1) == b"\n"


class FilePass:
    """Reads one file once. Iterate `batches()`; afterwards `status` is one of `unchanged`, `read`, `reset`,
    `failed`, `vanished` (deleted since it was listed: the client's own cleanup; nothing to read, not an
    error), and `bytes_read`, `error` describe the pass."""

    def __init__(
        self,
        importer: Importer,
        file: SourceFile,
        checkpoint: Checkpoint | None,
        window: Window,
        stats: ParseStats,
        *,
        write_checkpoints: bool = True,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        chunk_size: int = CHUNK_SIZE,
        cancel: Callable[[], bool] | None = None,
        batch_bytes: int | None = None,
        widen: bool = True,
        capture_us: int | None = None,
    ) -> None:
        self.importer = importer
        self.file = file
        self.checkpoint = checkpoint
        self.window = window
        self.stats = stats
        self.write_checkpoints = write_checkpoints
        self.batch_rows = batch_rows
        self.chunk_size = chunk_size
        # Also hand out a batch once this many source bytes were consumed since the last one (rows with large
        # contents: memory stays bounded by bytes, not only by a row count).
        self.batch_bytes = batch_bytes
        self.cancel = cancel or (lambda: False)
        # The checkpoint's first pass began later than this window: it skipped lines this window takes.
        later = checkpoint is not None and must_widen(checkpoint.since_us, window.since_us)
        # A backfill reads such a file again from the start (`must_widen`). The daemon passes widen=False: its
        # capture start (`capture_us`, less the grace, for this client) is a bound it keeps, across a reset too
        # (a file replaced, the floor lowered), so a pass from the start does not import the history before it
        # that the user declined (daemon.md §3.2). A bound that is an old import floor does not hold: after
        # retention was raised, those older rows are wanted.
        self.widen = widen and later
        self.keep_bound = (
            not widen and later and checkpoint is not None and checkpoint.since_us == capture_us
        )
        self.pass_since_us: int | None = window.since_us  # the bound of the next checkpoint (see `_incremental`)
        self.status = "pending"
        self.bytes_read = 0
        self.error: str | None = None
        self.stopped_at_until = False
        self.cut_short = False  # stopped by `cancel` before the end of what it had to read
        self.size = 0
        self.rows_emitted = 0  # rows this file has given up to the next checkpoint, earlier passes included

    # ------------------------------------------------------------------------------------------------

    def unchanged(self, st: os.stat_result) -> bool:
        cp = self.checkpoint
        return (
            cp is not None
            and not self.widen
            and cp.size == st.st_size
            and cp.mtime_ns == st.st_mtime_ns
            and (cp.device, cp.inode) == (st.st_dev, st.st_ino)
        )

    def batches(self) -> Iterator[Batch]:
        try:
            st = os.stat(self.file.path)
        except FileNotFoundError:
            self.status = "vanished"
            return
        except OSError as exc:
            self.status, self.error = "failed", f"cannot read file: {exc.strerror or exc}"
            return
        self.size = st.st_size
        if self.unchanged(st):
            self.status = "unchanged"
            return
        try:
            if self.file.read_mode == "whole":
                yield from self._whole(st)
            else:
                yield from self._incremental(st)
        except _ChangedWhileRead:
            self.status, self.error = "failed", CHANGED_WHILE_READ
        except FileNotFoundError:  # deleted between the stat and the open
            if self.status == "pending":
                self.status = "vanished"
            else:
                self.status, self.error = "failed", "cannot read file: it was deleted while being read"
        except OSError as exc:
            self.status, self.error = "failed", f"cannot read file: {exc.strerror or exc}"
        except DamagedFile as exc:  # the rows before the damage were handed out
            self.status, self.error = "failed", str(exc)

    # ------------------------------------------------------------------------------------------------

    def _take(self, parser: Parser) -> list[Row]:
        """The parser's ready rows, counted into `rows_emitted` (the next checkpoint's count)."""
        rows = parser.drain()
        self.rows_emitted += len(rows)
        return rows

    def _update(self, st: os.stat_result, offset: int, state: str, head: bytes, *, size: int,
                fh: BinaryIO | None = None) -> CheckpointUpdate | None:
        """The checkpoint at `offset`; with `fh` (an incremental pass), its tail read back from the open file
        (one pread past the head, after `_check_still_there` found it holding what this pass read)."""
        if not self.write_checkpoints:
            return None
        tail = None if fh is None else tail_bytes(fh.fileno(), head, offset)
        return _checkpoint(self.file, st, offset, state, head, size=size, rows_emitted=self.rows_emitted,
                           since_us=self.pass_since_us, tail=tail)

    def _incremental(self, st: os.stat_result) -> Iterator[Batch]:
        cp = self.checkpoint
        with open(self.file.path, "rb") as fh:
            head = fh.read(min(st.st_size, HEAD_LEN))
            start, state = 0, None
            reset = False
            if cp is not None and not self.widen:
                same_identity = (cp.device, cp.inode) == (st.st_dev, st.st_ino)
                head_ok = cp.head_len <= len(head) and (
                    hashlib.sha256(head[: cp.head_len]).hexdigest() == cp.head_sha256
                )
                if (
                    st.st_size < cp.offset
                    or not same_identity
                    or not head_ok
                    or not _at_line_start(fh, cp.offset)
                    or not tail_ok(fh.fileno(), head, cp)
                ):
                    reset = True
                else:
                    start, state = cp.offset, loads_state(cp.parser_state)
                    self.rows_emitted = cp.rows_emitted
                    if state is not None:  # resumed: the lines before the offset were read from its bound
                        self.pass_since_us = cp.since_us
            window = self.window
            if state is None:
                self.rows_emitted = 0
                start = 0
                state = self.importer.prepare_fresh_state(self.file)
                if self.keep_bound:
                    assert cp is not None
                    window = replace(window, since_us=cp.since_us)
                    self.pass_since_us = cp.since_us
            self.status = "reset" if reset else "read"
            parser = self.importer.new_parser(self.file, state, window, self.stats)
            parser.start_at(start)  # a pass that consumes no line must not rewind the checkpoint to 0
            end = st.st_size  # read what was there at stat time; later bytes are the next pass's
            fh.seek(start)
            pos = start  # offset of the first byte of the next block
            stopped = False
            batch_pos = start
            lines_fed = rows_made = 0  # this pass's, for the rows a line gives (the batch's room in lines)

            def read(n: int) -> bytes:
                chunk = fh.read(n)
                self.bytes_read += len(chunk)
                return chunk

            for complete in line_blocks(read, self.chunk_size, end - start):
                lines, _ = split_lines(complete)  # (a block ends with its last line's newline)
                complete = b""  # not held while its lines are parsed, nor while the next long line is read
                while lines and not stopped:
                    # At most as many lines as the batch has room for rows: a block of short lines holds
                    # tens of thousands, and `batch_rows` is a maximum (daemon.md §5 flush_rows), give or
                    # take the parts of the last line. A line gives several rows (an assistant's text and
                    # tool calls): the room is divided by the rows per line seen so far in this pass, after a
                    # first slice of a few lines to measure it (sliced by lines alone, batches of 2,000 rows
                    # came out at 3,000).
                    room = self.batch_rows - parser.ready_count
                    if lines_fed:
                        room = int(room * lines_fed / max(lines_fed, rows_made + parser.ready_count))
                    else:
                        room = min(room, FIRST_SLICE_LINES)
                    before = len(lines)
                    pos, stopped = feed_lines(parser.feed, lines, pos, max(1, room))
                    lines_fed += before - len(lines)
                    if stopped:
                        break
                    if parser.ready_count >= self.batch_rows or (
                        self.batch_bytes is not None and parser.ready_count and pos - batch_pos >= self.batch_bytes
                    ):
                        batch_pos = pos
                        _check_still_there(fh, head, end)
                        offset, pstate = parser.checkpoint()
                        rows = self._take(parser)
                        rows_made += len(rows)
                        # Mid-file: record size = offset so a crash before the end never makes the file look
                        # unchanged (storage.md §5.4 step 2).
                        yield Batch(rows, self._update(st, offset, pstate, head, size=offset, fh=fh), offset - start)
                        if self.cancel():
                            self.cut_short = True
                            return
                if stopped:
                    break
            self.stopped_at_until = stopped
            _check_still_there(fh, head, end)  # (a short read, where it shrank, ends the blocks early too)
            offset, pstate = parser.checkpoint(final=True)
            size = offset if stopped else st.st_size
            rows = self._take(parser)
            yield Batch(rows, self._update(st, offset, pstate, head, size=size, fh=fh), end - start, final=True)

    def _whole(self, st: os.stat_result) -> Iterator[Batch]:
        """A whole document (storage.md §5.3), its rows handed out as the importer reads them. Only the last
        batch carries the checkpoint: rows committed before a crash or a cancel are read again next time and
        absorbed by dedupe, as the whole re-read of a changed document is."""
        with open(self.file.path, "rb") as fh:
            head = fh.read(min(st.st_size, HEAD_LEN))
        self.status = "read"
        window = self.window
        if self.keep_bound:  # (the daemon's re-read of a changed document: its capture start still holds)
            assert self.checkpoint is not None
            window = replace(window, since_us=self.checkpoint.since_us)
            self.pass_since_us = self.checkpoint.since_us
        batches = self.importer.read_whole_batches(self.file, window, self.stats, batch_bytes=self.batch_bytes)
        pending: list[Row] | None = None
        try:
            for rows, consumed in batches:
                self.bytes_read = consumed
                if pending:
                    self.rows_emitted += len(pending)
                    for i in range(0, len(pending), self.batch_rows):
                        yield Batch(pending[i : i + self.batch_rows], None, min(consumed, st.st_size))
                    if self.cancel():
                        batches.close()
                        self.cut_short = True
                        return
                pending = rows
        except DamagedFile:
            # The rows of the lines before the damage are committed, without a checkpoint: the file is read
            # (and reported) again next time, dedupe absorbing these rows.
            rows = pending or []
            self.rows_emitted += len(rows)
            for i in range(0, len(rows), self.batch_rows):
                yield Batch(rows[i : i + self.batch_rows], None, self.bytes_read)
            raise
        rows = pending or []
        self.rows_emitted += len(rows)
        update = self._update(st, st.st_size, "{}", head, size=st.st_size)
        for i in range(0, max(len(rows), 1), self.batch_rows):
            last = i + self.batch_rows >= len(rows)
            yield Batch(rows[i : i + self.batch_rows], update if last else None, st.st_size, final=last)
