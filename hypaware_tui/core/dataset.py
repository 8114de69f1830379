"""Read-only access to the `ai_gateway_messages` dataset (storage.md §9).

`scan_messages(layout)` is the relation every reader shipped with hyp builds on: the part files of the
dataset's partitions (`source=<client_name>/date=<YYYY-MM-DD>/`, as storage lists them: never an in-flight
`.tmp` file, nor a `*.parquet` file elsewhere under the root) with Hive partitioning, `date` kept as a String, the
partition key `source` added, and rows deduplicated by `part_id` across the whole dataset, keeping the row from
the smallest file name (UUIDv7 names: the oldest copy).

The files are passed to Polars as a list of paths (`glob=False`): the dataset root is a user's path (HYP_HOME)
and is never read as a pattern. Polars also reads a `key=value` folder above the dataset as a Hive partition
(`/x/a=1/hyp` failed every read: "path contains column not present in the given Hive schema"): under such a
root the files of each source are scanned without Hive partitioning, `source` taken from the folder's name
(`date` is a column of every file anyway).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

import polars as pl

from hypaware_tui.core.paths import Layout
from hypaware_tui.core.schema import AI_GATEWAY_MESSAGES_SCHEMA
from hypaware_tui.core.storage import iter_partitions, list_part_files, part_file_paths

_FILE_COL = "__hyp_file"
_Frame = TypeVar("_Frame", pl.DataFrame, pl.LazyFrame)
HIVE_SCHEMA = {"source": pl.String(), "date": pl.String()}
MESSAGES_SCHEMA: dict[str, pl.DataType] = {**AI_GATEWAY_MESSAGES_SCHEMA, "source": pl.String()}


def _hive_safe(root: Path) -> bool:
    """Whether Polars' Hive partitioning would see only `source=`/`date=` in the paths under `root`: no folder of
    `root` itself holds a `=`."""
    return "=" not in str(root)


def has_parquet_files(root: Path) -> bool:
    """True when a partition of the dataset under `root` holds a part file (read-only, stops at the first)."""
    return any(list_part_files(pdir) for _, _, pdir in iter_partitions(root))


# Whether `scan_messages` reads a column missing from a file as null (`missing_columns_as_null`).
_MISSING_AS_NULL: ContextVar[bool] = ContextVar("hyp_missing_as_null", default=False)


@contextlib.contextmanager
def missing_columns_as_null() -> Iterator[None]:
    """Within it, `scan_messages` reads a column that a part file lacks as null: for a reader that has checked
    that every such column is nullable (`storage.DatasetStats.mismatched`), and reads again."""
    token = _MISSING_AS_NULL.set(True)
    try:
        yield
    finally:
        _MISSING_AS_NULL.reset(token)


def missing_as_null() -> bool:
    return _MISSING_AS_NULL.get()


def empty_messages() -> pl.LazyFrame:
    return pl.LazyFrame(schema=MESSAGES_SCHEMA)


FILE_NAME = "__hyp_file_name"  # the part file's name, with `scan_messages(dedupe=False, file_names=True)`


def scan_messages(layout: Layout, *, dedupe: bool = True, file_names: bool = False) -> pl.LazyFrame:
    """The deduplicated `ai_gateway_messages` relation: schema.md §2 columns in order, then `source`.

    It reads exactly the part files of the dataset's partitions (`storage.part_file_paths`: the files status,
    compaction and retention work on), listed now; a `*.parquet` file elsewhere under the root (the root itself,
    `date=abc`, `source=Claude Code`) is not part of it. Columns a file has beyond schema_version 1 (a newer
    hyp's) are ignored. A file without one of its columns fails the read, unless within
    `missing_columns_as_null()`: then the column reads as null (the query layer reads so once it has checked that
    only nullable columns are missing, `core.query._with_retry`).

    A missing or empty dataset gives an empty frame with the full schema. Nothing is read until the frame
    is collected; a file removed between listing and reading (compaction, retention) makes `collect` raise
    FileNotFoundError, and the caller retries once (storage.md §9)."""
    root = layout.dataset_root
    files = part_file_paths(root) if root.is_dir() else []
    if not files:
        empty = empty_messages()
        return empty.with_columns(pl.lit(None, pl.String).alias(FILE_NAME)) if file_names and not dedupe else empty
    columns = list(MESSAGES_SCHEMA)
    options = {
        "glob": False,  # (the paths are the files' own: never patterns)
        "schema": AI_GATEWAY_MESSAGES_SCHEMA,
        "extra_columns": "ignore",
        "missing_columns": "insert" if _MISSING_AS_NULL.get() else "raise",
        "include_file_paths": _FILE_COL,
    }
    if _hive_safe(root):
        lf = pl.scan_parquet(
            [str(p) for _, p in files],
            hive_partitioning=True,
            hive_schema=HIVE_SCHEMA,
            try_parse_hive_dates=False,
            **options,  # type: ignore[arg-type]
        )
    else:
        lf = _scan_by_source(files, options)
    name = pl.col(_FILE_COL).str.extract(r"([^/\\]+)$", 1)
    if not dedupe:
        return lf.select(*columns, name.alias(FILE_NAME)) if file_names else lf.select(columns)
    # Duplicates are rare, and a window over every `part_id` string costs more than the rest of a typical
    # query. So: rows whose 64-bit hash of `part_id` is unique are unique (kept as they are); only rows whose
    # hash repeats (true duplicates, or a hash collision) go through the exact per-`part_id` rule.
    lf = lf.with_columns(_dup=pl.col("part_id").hash().is_duplicated())
    single = lf.filter(~pl.col("_dup")).select(columns)
    repeated = (
        lf.filter(pl.col("_dup"))
        .with_columns(_name=name)
        .filter(pl.col("_name") == pl.col("_name").min().over("part_id"))
        .select(columns)
    )
    return pl.concat([single, repeated])


def _scan_by_source(files: list[tuple[str, Path]], options: dict[str, object]) -> pl.LazyFrame:
    """The Hive scan's rows (columns, `source`, the file path) for a root whose own path holds a `=`: the part
    files of each source scanned without Hive partitioning (a filter on `date` then reads the footers instead
    of skipping the folders by name: slower, but right)."""
    by_source: dict[str, list[str]] = {}
    for source, path in files:
        by_source.setdefault(source, []).append(str(path))
    scans = [
        pl.scan_parquet(paths, hive_partitioning=False, **options)  # type: ignore[arg-type]
        .with_columns(source=pl.lit(source, pl.String()))
        for source, paths in by_source.items()
    ]
    return pl.concat(scans)


def part_id_hashes(raw: pl.LazyFrame) -> pl.LazyFrame:
    """What `relation_copies` reads of a scan (the 64-bit hashes of `part_id`, column `h`), for a caller that
    collects it along with other figures of the same scan (`pl.collect_all` reads the files once)."""
    return raw.select(h=pl.col("part_id").hash())


def relation_copies(raw: pl.LazyFrame, hashes: pl.Series | None = None) -> pl.DataFrame | None:
    """For a scan from `scan_messages(dedupe=False, file_names=True)`: which copy of each `part_id` found twice
    the relation keeps (`part_id`, `_winner` = its file name: the smallest, as in `scan_messages`), or None when
    none is (almost always). Found on the hashes of `part_id` alone (`hashes`: `part_id_hashes(raw)` already
    collected; sorted in place), so that a caller can filter the scan first and drop the other copies from what it
    kept (`keep_relation_copies`), without holding every row."""
    if hashes is None:
        hashes = part_id_hashes(raw).collect(engine="streaming")["h"]
    # Sorted, a hash found twice is next to itself: 8 bytes a row (`is_duplicated` held a table of ~100 bytes a
    # row: 190 MiB for 1M rows).
    hashes.sort(in_place=True)
    twice = hashes.filter(hashes == hashes.shift(1)).unique()
    if twice.is_empty():
        return None
    return (
        raw.filter(pl.col("part_id").hash().is_in(twice.implode()))
        .group_by("part_id")
        .agg(_winner=pl.col(FILE_NAME).min())
        .collect(engine="streaming")
    )


def keep_relation_copies(frame: _Frame, winners: pl.DataFrame | None) -> _Frame:
    """`frame` (rows of the scan, with FILE_NAME; eager or lazy) without the copies the relation drops; without
    FILE_NAME. The order of the rows is not kept (the overview sums them)."""
    if winners is not None:
        frame = (
            frame.join(winners.lazy() if isinstance(frame, pl.LazyFrame) else winners,  # type: ignore[arg-type]
                       on="part_id", how="left")
            .filter(pl.col("_winner").is_null() | (pl.col(FILE_NAME) == pl.col("_winner")))
            .drop("_winner")
        )  # fmt: skip
    return frame.drop(FILE_NAME)
