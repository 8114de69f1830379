"""Per-file checkpoints (storage.md §5.1). The SQLite API lives in StateDB below (filled in by storage work)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Checkpoint:
    """One row of the `files` table. `parser_state` is importer-owned JSON text."""

    path_hash: str
    client_name: str
    read_mode: str  # "incremental" | "whole"
    device: int | None
    inode: int | None
    size: int
    mtime_ns: int
    offset: int
    head_len: int
    head_sha256: str
    parser_state: str
    rows_emitted: int = 0


@dataclass(frozen=True)
class CheckpointUpdate:
    """A checkpoint a batch wants to write, with the file's real path so storage can re-stat it under the
    lock (storage.md §6.3). The path is never stored."""

    entry: Checkpoint
    path: str
