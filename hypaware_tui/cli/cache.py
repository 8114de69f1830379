"""`hyp cache status | compact | prune` (cli.md §8): dataset housekeeping.

`status` and every `--dry-run` are read-only (no lock, no events, nothing created). `compact` and `prune`
take the commit lock, log `cache.compact` / `cache.prune` events, and exit 1 when a partition fails (the
dataset is left as it was before that partition).
"""

from __future__ import annotations

from typing import Any

import typer

from hypaware_tui.cli.output import (
    config_advice,
    err,
    fmt_int,
    human_size,
    out,
    plural,
    print_json,
    print_json_error,
    short_path,
    utc_minute,
    waiting_notice,
)

app = typer.Typer(
    help="Dataset housekeeping: status, compaction, retention.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    add_completion=False,
)


@app.callback()
def _cache_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        out(ctx.get_help())
        raise typer.Exit(0)


def _prog() -> str:
    from hypaware_tui.cli.app import PROG

    return PROG


def _retention(layout: Any) -> tuple[int | None, str, str | None]:
    """(retention_days, source, config error). Source: `config`, `default` (no config) or `invalid`."""
    from hypaware_tui.core.config import DEFAULT_RETENTION_DAYS, ConfigError, load_config
    from hypaware_tui.core.paths import hyp_home_problem

    problem = hyp_home_problem(layout.home)  # (else: "…/hypaware-config.json: cannot be read: Not a directory")
    if problem is not None:
        return None, "invalid", problem
    try:
        cfg = load_config(layout)
    except ConfigError as exc:
        return None, "invalid", str(exc)
    if cfg is None:
        return DEFAULT_RETENTION_DAYS, "default", None
    return cfg.retention_days, "config", None


# --- status ----------------------------------------------------------------------------------------------


@app.command(
    "status", help="Path, size, files, rows, dates, compaction candidates and retention. Writes nothing."
)
def cache_status(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    from hypaware_tui.core.events import last_event_times
    from hypaware_tui.core.paths import Layout, require_usable_home
    from hypaware_tui.core.storage import (
        cut_date_for,
        dataset_stats,
    )

    layout = Layout.resolve()
    require_usable_home(layout.home)  # (else: an empty dataset "not created yet", 0 rows)
    stats = dataset_stats(layout)
    retention, retention_source, config_error = _retention(layout)
    cut = cut_date_for(retention) if retention is not None else None
    old = [p for p in stats.partitions if cut is not None and p.date < cut]
    times = last_event_times(layout, ["cache.compact", "cache.prune"])
    doc = {
        "path": str(layout.dataset_root),
        "exists": stats.exists,
        "bytes": stats.bytes,
        "files": stats.files,
        "partitions": len(stats.partitions),
        "rows": dict(sorted(stats.rows.items())),
        "total_rows": stats.total_rows,
        "oldest": stats.oldest,
        "newest": stats.newest,
        "compaction_candidates": {"partitions": stats.small_file_partitions, "files": stats.small_files},
        "tmp_files": stats.tmp_files,
        "unreadable_files": stats.unreadable,
        "unopened_files": [{"path": p.path, "error": p.reason} for p in stats.unopened],
        "mismatched_files": [{"path": m.path, "error": m.detail, "readable": m.readable} for m in stats.mismatched],
        "ignored_paths": stats.ignored,
        "retention_days": retention,
        "retention_source": retention_source,
        "cut_date": cut,
        "rows_older_than_retention": sum(p.rows for p in old) if retention is not None else None,
        "partitions_older_than_retention": len(old) if retention is not None else None,
        "last_compact_at": times["cache.compact"],
        "last_prune_at": times["cache.prune"],
        "config_error": config_error,
    }
    code = 1 if (config_error or stats.unreadable or stats.unopened or stats.unreadable_mismatches) else 0
    prog = _prog()
    if json_out:
        print_json(doc)
        _status_problems(prog, layout, stats, config_error)
        raise typer.Exit(code)

    rows = doc["rows"]
    out(f"Dataset      {short_path(doc['path'])}" + ("" if stats.exists else " (not created yet)"))
    out(
        f"Size         {human_size(doc['bytes'])} in {plural(doc['files'], 'file')}, {plural(doc['partitions'], 'partition')}"
    )
    per_source = ", ".join(f"{s} {fmt_int(n)}" for s, n in rows.items())
    out(f"Rows         {fmt_int(doc['total_rows'])}" + (f" ({per_source})" if per_source else ""))
    # (the dates of its date= partitions: UTC dates, said, as local dates are elsewhere)
    out(f"Dates        {doc['oldest']} → {doc['newest']} (UTC)" if doc["oldest"] else "Dates        none")
    cand = doc["compaction_candidates"]
    if cand["partitions"]:
        out(
            f"Small files  {plural(cand['files'], 'file')} in {plural(cand['partitions'], 'partition')} "
            f"({prog} cache compact merges them)"
        )
    else:
        out("Small files  none")
    if retention is None:
        out(f"Retention    unknown: {config_error}")
    elif retention == 0:
        out("Retention    forever (retention_days 0)")
    else:
        src = " (default)" if retention_source == "default" else ""
        older = doc["rows_older_than_retention"]
        line = f"Retention    {plural(retention, 'day')}{src}, cut {cut} UTC: "
        if older or old:
            line += (
                f"{plural(older, 'row')} in {plural(len(old), 'partition')} older than that "
                f"({prog} cache prune removes them)"
            )
        else:
            line += "nothing older"
        out(line)
    for label, at in (("Last compact", doc["last_compact_at"]), ("Last prune  ", doc["last_prune_at"])):
        out(f"{label} {utc_minute(at) if at else 'never'}")
    _status_problems(prog, layout, stats, config_error)
    raise typer.Exit(code)


def _status_problems(prog: str, layout: Any, stats: Any, config_error: str | None) -> None:
    """`hyp cache status`'s problems on stderr, with `--json` too: an exit 1 with nothing there left a script's
    log with no reason (the config's error was only on stdout, or only in the JSON)."""
    from hypaware_tui.core.storage import damaged_file_advice, mismatch_text, unopened_text

    if config_error:
        err(f"{prog} cache status: retention unknown: the config is invalid: {config_error}. "
            f"{config_advice(config_error, prog)}")
    if stats.unopened:
        err(f"{prog} cache status: {unopened_text(stats.unopened)}")
    if stats.unreadable:
        for p in stats.unreadable:
            err(f"{prog} cache status: unreadable file {p}: damaged or not written by hyp")
        err(f"{prog} cache status: {damaged_file_advice(layout, len(stats.unreadable))}")
    if stats.mismatched:
        err(f"{prog} cache status: {mismatch_text(stats.mismatched)}")
        if stats.unreadable_mismatches:
            err(f"{prog} cache status: {damaged_file_advice(layout, len(stats.unreadable_mismatches))}")
    if stats.ignored:
        from hypaware_tui.core.status import ignored_text

        err(f"{prog} cache status: {ignored_text(stats.ignored, layout)}")


# --- compact ---------------------------------------------------------------------------------------------


@app.command("compact", help="Merge each partition made of several files into one, dropping duplicate rows.")
def cache_compact(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be compacted; write nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    from hypaware_tui.core.daemon.memory import COMPACT_ALLOCATOR_CONF, configure_allocator
    from hypaware_tui.core.events import EventLog
    from hypaware_tui.core.ids import new_run_id
    from hypaware_tui.core.paths import Layout, require_usable_home, set_umask

    layout = Layout.resolve()
    require_usable_home(layout.home)  # (else: "Nothing to compact", for a dataset it could not see)
    prog = _prog()
    if not dry_run:
        set_umask()
        configure_allocator(COMPACT_ALLOCATOR_CONF)  # (before Polars loads: see core.daemon.memory)
    from hypaware_tui.core.storage import Storage

    events = None if dry_run else EventLog(layout, new_run_id(), enabled=True)
    try:
        with Storage(layout, events=events) as storage:
            result = storage.compact(dry_run=dry_run, on_wait=waiting_notice(prog, layout))
    except KeyboardInterrupt:
        # (it ended with a bare line: the partitions already compacted, and the one under way, are safe either
        # way: the journal of the one under way is finished or undone by the next hyp process that writes)
        err("")
        err(f"{prog} cache compact: interrupted. The partitions compacted so far stay compacted, and the others "
            "as they were; nothing was lost. Run it again to finish.")
        if json_out:  # (cli.md §1: one document, also when it fails)
            print_json_error("interrupted")
        raise typer.Exit(130) from None
    parts = [
        {
            "partition": p.name,
            "files_before": p.files_before,
            "rows_before": p.rows_before,
            "duplicates": p.duplicates,
            "bytes_before": p.bytes_before,
            "bytes_after": p.bytes_after,
            "file": p.file,
        }
        for p in result.partitions
    ]
    doc = {
        "dry_run": dry_run,
        "partitions": parts,
        "partitions_compacted": 0 if dry_run else len(parts),
        "files_before": result.files_before,
        "files_after": result.files_after,
        "bytes_before": result.bytes_before,
        "bytes_after": result.bytes_after,
        "duplicates_removed": result.duplicates_removed,
        "error": result.error,
        "failed_partition": result.failed_partition,
    }
    code = 1 if result.error else 0
    if json_out:
        print_json(doc)
    else:
        n = len(parts)
        if dry_run:
            if n:
                out(
                    f"Dry run: nothing written · would compact {plural(n, 'partition')}: "
                    f"{plural(result.files_before, 'file')} → {plural(n, 'file')}, "
                    f"{human_size(result.bytes_before)} now, {plural(result.duplicates_removed, 'duplicate row')} to remove."
                )
            elif not result.error:
                out("Dry run: nothing written · nothing to compact: every partition is a single file.")
        elif n:
            out(
                f"Compacted {plural(n, 'partition')}: {plural(result.files_before, 'file')} → {plural(n, 'file')}, "
                f"{human_size(result.bytes_before)} → {human_size(result.bytes_after)}, "
                f"{plural(result.duplicates_removed, 'duplicate row')} removed."
            )
        elif not result.error:
            out("Nothing to compact: every partition is a single file.")
    if result.error:
        err(f"{prog} cache compact: {result.error}")
    raise typer.Exit(code)


# --- prune -----------------------------------------------------------------------------------------------


@app.command(
    "prune", help="Delete the date partitions older than the retention window. No-op at retention 0."
)
def cache_prune(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be removed; remove nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    from hypaware_tui.core.events import EventLog
    from hypaware_tui.core.ids import new_run_id
    from hypaware_tui.core.paths import Layout, hyp_home_problem, set_umask
    from hypaware_tui.core.storage import Storage, StorageError

    layout = Layout.resolve()
    prog = _prog()
    retention, _source, config_error = _retention(layout)
    if retention is None:
        # (a HYP_HOME that is a file: its problem says what to do, and hyp init cannot write a config there)
        home_problem = hyp_home_problem(layout.home) is not None
        message = str(config_error) if home_problem else f"the config is invalid: {config_error}"
        err(f"{prog} cache prune: {message}")
        err("Nothing was removed." if home_problem else
            f"Nothing was removed. {config_advice(str(config_error), prog)}")
        if json_out:
            print_json(_prune_doc(dry_run, None, None, message))
        raise typer.Exit(1)
    if not dry_run:
        set_umask()
    events = None if dry_run else EventLog(layout, new_run_id(), enabled=True)
    hashes = None
    if layout.ingest_db.exists():  # checkpoints of vanished files go too, as in the daemon's pass (a dry run counts)
        from hypaware_tui.core.config import load_config
        from hypaware_tui.core.inventory import scanned_path_hashes

        hashes = scanned_path_hashes(load_config(layout))
    error: str | None = None
    with Storage(layout, events=events) as storage:
        try:
            result = storage.prune(retention, dry_run=dry_run, client_roots_hashes=hashes,
                                   on_wait=waiting_notice(prog, layout))  # fmt: skip
        except KeyboardInterrupt:
            # (it ended on the lock-waiting notice alone, and --json printed no document; each partition goes
            # in one rename, and the checkpoints' floor is recorded before the first: nothing is half done)
            text = ("interrupted. The partitions removed so far stay removed, and the others as they were; nothing "
                    "was lost. Run it again to finish.")
            err("")
            err(f"{prog} cache prune: {text}")
            if json_out:  # (cli.md §1: one document, also when it fails)
                print_json(_prune_doc(dry_run, retention, None, "interrupted: run it again to finish (partitions "
                                      "removed before the interrupt are not listed here)"))
            raise typer.Exit(130) from None
        except StorageError as exc:
            # A prune that failed after removing partitions (at the checkpoint database, on a full disk) still
            # says which: they are gone. Before anything was removed, the error alone.
            if exc.pruned is None or not exc.pruned.partitions:
                if not json_out:
                    raise
                err(f"{prog} cache prune: {exc}")
                print_json(_prune_doc(dry_run, retention, exc.pruned, str(exc)))  # (nothing removed)
                raise typer.Exit(1) from None
            result, error = exc.pruned, str(exc)
    doc = _prune_doc(dry_run, retention, result, error)
    if json_out:
        print_json(doc)
        if error:
            err(f"{prog} cache prune: {error}")
        raise typer.Exit(1 if error else 0)
    if retention == 0:
        msg = "retention is 0 (keep forever): nothing to prune."
    elif not result.partitions:
        msg = f"nothing to prune: no partition is older than {result.cut_date} UTC ({retention}-day retention)."
    else:
        msg = (
            f"{'would remove' if dry_run else 'removed'} {plural(len(result.partitions), 'partition')} older "
            f"than {result.cut_date} UTC ({retention}-day retention): {plural(result.files_removed, 'file')}, "
            f"{plural(result.rows_removed, 'row')}, {human_size(result.bytes_removed)}."
        )
    out(f"Dry run: nothing removed · {msg}" if dry_run else msg[0].upper() + msg[1:])
    if result.partitions:
        for p in result.partitions:
            out(f"  {p.name}  {plural(p.files, 'file')}  {plural(p.rows, 'row')}")
    if result.checkpoints_removed:
        n = result.checkpoints_removed
        # (storage.md §7.4: a file gone, or one outside the roots scanned now: CLAUDE_CONFIG_DIR set elsewhere)
        out(f"{'Would forget' if dry_run else 'Forgot'} the import position of {plural(n, 'file')} that "
            f"{'is' if n == 1 else 'are'} gone or no longer under the clients' folders.")
    if result.kept_foreign:  # (what hyp did not write there stays: the README says no hyp command deletes it)
        n = len(result.kept_foreign)
        out(f"{'Would keep' if dry_run else 'Kept'} {plural(n, 'entry', 'entries')} hyp did not write, where "
            f"{'it is' if n == 1 else 'they are'}:")
        for path in result.kept_foreign:
            out(f"  {short_path(path)}")
    if result.tmp_removed:  # (said: "nothing to prune" alone hid them, though the dataset's size went down)
        out(f"{'Would remove' if dry_run else 'Removed'} {plural(result.tmp_removed, 'unfinished file')} an "
            "interrupted write left behind (.tmp).")
    if error:
        err(f"{prog} cache prune: {error}")
    raise typer.Exit(1 if error else 0)


def _prune_doc(dry_run: bool, retention: int | None, result: Any, error: str | None) -> dict[str, Any]:
    """The `hyp cache prune --json` document; `result` None: the prune did not run (nothing was removed)."""
    from hypaware_tui.core.storage import cut_date_for

    parts = result.partitions if result is not None else []
    if result is not None:
        cut = result.cut_date
    else:
        cut = cut_date_for(retention) if retention is not None else None
    return {
        "dry_run": dry_run,
        "retention_days": retention,
        "cut_date": cut,
        "partitions": [{"partition": p.name, "files": p.files, "rows": p.rows, "bytes": p.bytes} for p in parts],
        "partitions_removed": len(parts),
        "files_removed": result.files_removed if result is not None else 0,
        "rows_removed": result.rows_removed if result is not None else 0,
        "bytes_removed": result.bytes_removed if result is not None else 0,
        "tmp_files_removed": result.tmp_removed if result is not None else 0,
        "checkpoints_removed": result.checkpoints_removed if result is not None else 0,
        "kept_foreign": list(result.kept_foreign) if result is not None else [],
        "error": error,
    }
