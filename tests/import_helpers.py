"""Test helpers shared by the importer tests: run the real reader (`FilePass`) over one file, in one pass or
over growing prefixes of a copy of it with the checkpoint carried between passes exactly as storage would
(storage.md §5.5, the split invariant), and compare row sets.

Signatures here are stable (other engineers' tests import them):

* ``import_file(importer, path, window=Window(), pieces=None, *, file=None) -> (rows, stats)``
* ``rows_multiset(rows) -> Counter``
* ``source_file_for(importer, path, *, path_hash=None) -> SourceFile``
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hypaware_tui.core.checkpoints import Checkpoint
from hypaware_tui.core.reader import FilePass
from hypaware_tui.core.schema import COLUMN_NAMES
from hypaware_tui.importers.base import Importer, ParseStats, SourceFile, Window

Row = dict[str, Any]
_ALL = Window()


def _path_hash(real: str) -> str:
    return hashlib.sha256(os.fsencode(real)).hexdigest()[:16]


def source_file_for(importer: Importer, path: str | os.PathLike[str], *, path_hash: str | None = None) -> SourceFile:
    """A `SourceFile` for one path, as discovery would build it (read mode from the name: `*.json` and
    `*.zst` are whole documents, everything else is incremental). `path_hash` defaults to the hash of the
    real path; pass the original's hash when reading a copy so the rows stay comparable."""
    real = os.path.realpath(path)
    name = os.path.basename(real)
    whole = name.endswith(".json") or name.endswith(".zst")
    st = os.stat(real)
    return SourceFile(
        client=importer.name,
        path=real,
        path_hash=path_hash or _path_hash(real),
        read_mode="whole" if whole else "incremental",
        is_session=not name.startswith("agent-"),
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
    )


_NULLS: Row = dict.fromkeys(COLUMN_NAMES)


def _full(row: Row) -> Row:
    """A row with every column as a key, in schema order (an importer may leave null columns out: a missing
    key reads as null, as in `frame_from_rows`), so that tests may index any column."""
    return {**_NULLS, **row}


def _run_pass(
    importer: Importer,
    file: SourceFile,
    checkpoint: Checkpoint | None,
    window: Window,
    stats: ParseStats,
    batch_rows: int,
) -> tuple[list[Row], Checkpoint | None, FilePass]:
    fp = FilePass(importer, file, checkpoint, window, stats, write_checkpoints=True, batch_rows=batch_rows)
    rows: list[Row] = []
    for batch in fp.batches():
        rows.extend(_full(r) for r in batch.rows)
        if batch.update is not None:
            checkpoint = batch.update.entry
    if fp.status == "failed":
        raise AssertionError(f"pass failed: {fp.error}")
    return rows, checkpoint, fp


def import_file(
    importer: Importer,
    path: str | os.PathLike[str],
    window: Window = _ALL,
    pieces: Iterable[int] | None = None,
    *,
    file: SourceFile | None = None,
    batch_rows: int = 50_000,
) -> tuple[list[Row], ParseStats]:
    """Import one file through `FilePass` and return (finalized rows, every column a key, stats).

    With `pieces` (byte offsets, any values; out-of-range ones are clamped, duplicates ignored), a copy of
    the file (plus its sibling files sharing the stem, e.g. a Claude `agent-x.meta.json` sidecar) is grown
    to each cut point in turn and read with the checkpoint of the previous pass, then to the full size. A
    cut inside a line leaves a partial trailing line for that pass. The copy keeps the original's
    `source_path_hash`, so the rows compare equal to a one-shot import of `path`."""
    stats = ParseStats()
    if file is None:
        file = source_file_for(importer, path)
    if pieces is None:
        rows, _, _ = _run_pass(importer, file, None, window, stats, batch_rows)
        return rows, stats

    src = Path(file.path)
    data = src.read_bytes()
    cuts = sorted({min(max(int(c), 0), len(data)) for c in pieces} | {len(data)})
    tmp = tempfile.mkdtemp(prefix="hyp-pieces-")
    try:
        dst = Path(tmp) / src.name
        stem = src.name.split(".", 1)[0]
        for sib in src.parent.iterdir():
            if sib.name != src.name and sib.name.startswith(stem + ".") and sib.is_file():
                shutil.copyfile(sib, Path(tmp) / sib.name)
        dst.write_bytes(b"")
        copy = SourceFile(
            client=file.client,
            path=str(dst),
            path_hash=file.path_hash,
            read_mode=file.read_mode,
            is_session=file.is_session,
        )
        rows: list[Row] = []
        checkpoint: Checkpoint | None = None
        written = 0
        for cut in cuts:
            with open(dst, "ab") as fh:
                fh.write(data[written:cut])
            written = cut
            got, checkpoint, _ = _run_pass(importer, copy, checkpoint, window, stats, batch_rows)
            rows.extend(got)
        return rows, stats
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def row_key(row: Row) -> tuple:
    """All 64 columns of a row, in schema order (a missing key is null)."""
    return tuple(row.get(c) for c in COLUMN_NAMES)


def rows_multiset(rows: Iterable[Row]) -> Counter:
    """Rows as a multiset of 64-column tuples, for split-equals-whole comparisons."""
    return Counter(row_key(r) for r in rows)


def counts(stats: ParseStats) -> tuple[dict[str, int], dict[str, int]]:
    """`records_by_type` and `lines_skipped` without zero entries, for comparing the counts of two imports."""
    return ({k: v for k, v in stats.records_by_type.items() if v},
            {k: v for k, v in stats.lines_skipped.items() if v})  # fmt: skip


def lines_without_rows(body: bytes, rows: list[Row]) -> int:
    """The complete, non-blank lines of a JSONL file that produced none of `rows` (by `source_offset`):
    schema.md §7 says each is counted under exactly one skip reason."""
    with_rows = {r.get("source_offset") for r in rows}
    n, at = 0, 0
    for line in body.split(b"\n")[:-1]:  # (the bytes after the last newline are not a complete line)
        text = line[3:] if at == 0 and line.startswith(b"\xef\xbb\xbf") else line
        text = text[:-1] if text.endswith(b"\r") else text
        if text and not text.isspace() and at not in with_rows:
            n += 1
        at += len(line) + 1
    return n
