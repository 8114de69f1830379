"""The data of `hyp status` (cli.md §6), gathered without any UI so the wizard's Welcome back screen can reuse it.

`gather_status(layout, env)` returns exactly the `hyp status --json` document:

    {hyp_home, version,
     config: {path, state, error, retention_days, clients_enabled, capture_enabled},
     clients: [{client, name, enabled, detected, reason, root, roots, files, bytes, sessions, files_failed, error}],
     dataset: {path, bytes, files, rows: {source: n}, total_rows, oldest, newest, error, warnings, last_import,
               replaced, empty_reason},
     daemon: {running, state, message, ended_unexpectedly, pid, mode, service_warning, config_warning,
              client_warnings, …daemon.md §6 fields},
     recent_errors: [{at, source, message}]}

Read-only: nothing here creates `HYP_HOME` or any file in it (cli.md §1). Every section is built defensively:
a broken piece is reported in its section and never stops the report. `status_exit_code(report)` is 1 when the
config is invalid or the dataset unreadable, else 0.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypaware_tui.core import prog
from hypaware_tui.core.paths import Layout, hyp_home_fault, hyp_home_problem, in_the_way_message, read_tail

RECENT_ERRORS_MAX = 5
RECENT_ERRORS_DAYS = 7
_EVENTS_TAIL_BYTES = 1024 * 1024
_DAEMON_LOG_TAIL_BYTES = 256 * 1024


def gather_status(
    layout: Layout,
    env: Mapping[str, str] = os.environ,
    *,
    now: datetime | None = None,
    include_clients: bool = True,
) -> dict[str, Any]:
    """The whole report (see the module docstring). `include_clients=False` skips the client inventory (the
    only part that lists the clients' history files), for callers that need a quick answer."""
    from hypaware_tui import __version__

    now = now or datetime.now(UTC)
    report: dict[str, Any] = {"hyp_home": str(layout.home), "version": __version__}
    config, report["config"] = config_section(layout)
    report["clients"] = clients_section(config, env) if include_clients else []
    report["dataset"] = dataset_section(layout)
    report["dataset"]["last_import"] = last_import(layout)
    report["dataset"]["replaced"] = dataset_replaced_note(layout)
    report["dataset"]["empty_reason"] = empty_reason(layout, report["dataset"])
    report["daemon"] = daemon_section(layout)
    report["daemon"]["service_warning"] = service_warning(layout)
    report["daemon"]["config_warning"] = daemon_config_warning(report["daemon"], config, report["config"])
    report["daemon"]["client_warnings"] = daemon_client_warnings(report["daemon"], report["clients"])
    report["recent_errors"] = recent_errors(layout, report["daemon"], now=now)
    return report


def status_exit_code(report: Mapping[str, Any]) -> int:
    """cli.md §6: 1 when the config is invalid or the dataset unreadable (the report is still produced)."""
    if report.get("config", {}).get("state") == "invalid":
        return 1
    if report.get("dataset", {}).get("error"):
        return 1
    return 0


# --- config ------------------------------------------------------------------------------------------------


def config_section(layout: Layout) -> tuple[Any, dict[str, Any]]:
    """(the parsed Config or None, the JSON section). State `ok`, `missing` or `invalid`."""
    from hypaware_tui.core.config import DEFAULT_RETENTION_DAYS, ConfigError, load_config

    section: dict[str, Any] = {
        "path": str(layout.config),
        "state": "missing",
        "error": None,
        "retention_days": DEFAULT_RETENTION_DAYS,
        "clients_enabled": [],
        "capture_enabled": None,
    }
    # A HYP_HOME no command can use (a directory this user may not read, a file, a link to nothing): the config
    # under it cannot be read, which is no fault of the config ("invalid: cannot be read: Permission denied").
    # The state stays `invalid` (the config is unusable, cli.md §6's exit 1); the error names HYP_HOME.
    fault = hyp_home_fault(layout.home)
    if fault is not None:
        section.update(state="invalid", error=f"cannot be read: {fault}", retention_days=None)
        return None, section
    try:
        cfg = load_config(layout)
    except ConfigError as exc:
        section.update(state="invalid", error=exc.problem, retention_days=None)
        return None, section
    if cfg is not None:
        section.update(
            state="ok",
            retention_days=cfg.retention_days,
            clients_enabled=cfg.enabled_clients,
            capture_enabled=cfg.capture.enabled,
        )
    return cfg, section


# --- clients -----------------------------------------------------------------------------------------------


def clients_section(config: Any, env: Mapping[str, str] = os.environ) -> list[dict[str, Any]]:
    """Per known client: detection (or the reason), root, and the files found there (count, size, sessions),
    from the shared inventory (`core.inventory`, the numbers `hyp backfill list` shows). Listing and stat'ing
    the files is enough for these: no file is opened, so the report stays quick on tens of thousands of
    transcripts (their first and last timestamps, read from each file's head and tail, took 1-2 s for 20,000).
    The history's date range per client is `hyp backfill list`'s; the dataset section has the stored one."""
    from hypaware_tui.core.inventory import build_inventory, client_figures
    from hypaware_tui.importers import KNOWN_CLIENTS

    try:
        inventory = build_inventory(KNOWN_CLIENTS, config=config, env=env, timestamps=False)
    except Exception as exc:  # noqa: BLE001 - a broken importer must not break the report
        return [
            {"client": c, "name": c, "enabled": _enabled(config, c), "detected": False, "reason": None,
             "root": None, "roots": [], "files": None, "bytes": None, "sessions": None, "files_failed": 0, "folders_failed": 0,
             "error": f"could not look for {c} history: {type(exc).__name__}: {exc}"}
            for c in KNOWN_CLIENTS
        ]  # fmt: skip
    out: list[dict[str, Any]] = []
    for ci in inventory:
        entry: dict[str, Any] = {
            "client": ci.client,
            "name": ci.name,
            "enabled": _enabled(config, ci.client),
            "detected": ci.detected,
            "reason": ci.reason,
            "root": ci.root,
            "roots": ci.roots,
            "files": None,
            "bytes": None,
            "sessions": None,
            "files_failed": len(ci.failed),  # files and folders (as the daemon's); the folders among them:
            "folders_failed": sum(1 for fe in ci.failed if fe.folder),
            "error": ci.error,
        }
        if ci.detected:
            fig = client_figures(ci)
            entry.update(files=fig.files, bytes=fig.bytes, sessions=fig.sessions)
        out.append(entry)
    return out


def _enabled(config: Any, client: str) -> bool | None:
    """Enabled in the config; None when there is no (valid) config."""
    if config is None:
        return None
    return bool(config.client_enabled(client))


# --- dataset -----------------------------------------------------------------------------------------------


def dataset_section(layout: Layout) -> dict[str, Any]:
    """Size, files, stored rows per source (from the Parquet footers) and the date range (partition dates)."""
    from hypaware_tui.core.storage import damaged_file_advice, dataset_stats, mismatch_text, unopened_text

    section: dict[str, Any] = {
        "path": str(layout.dataset_root),
        "bytes": 0,
        "files": 0,
        "rows": {},
        "total_rows": 0,
        "oldest": None,
        "newest": None,
        "error": None,
        "warnings": [],
    }
    # A HYP_HOME no command can use (a file, a link to nothing, a directory this user may not read), or a file
    # where the dataset directory or one of the directories above it belongs: listed as empty otherwise, while
    # every import there fails.
    problem = hyp_home_problem(layout.home)
    if problem is not None:
        section["error"] = f"cannot read the dataset: {problem}"
        return section
    where = layout.dataset_root
    try:
        while not where.exists() and where != layout.home and where.parent != where:
            where = where.parent
        in_the_way = where.exists() and not where.is_dir()
    except OSError as exc:  # (a folder of it this user may not open)
        section["error"] = f"cannot read the dataset: {exc.strerror or exc} ({exc.filename})"
        return section
    if in_the_way:
        section["error"] = f"cannot read the dataset: {in_the_way_message(where, layout.home)}"
        return section
    try:
        stats = dataset_stats(layout)
    except OSError as exc:
        section["error"] = f"cannot read the dataset: {exc.strerror or exc}"
        return section
    section.update(
        bytes=stats.bytes,
        files=stats.files,
        rows=dict(sorted(stats.rows.items())),
        total_rows=stats.total_rows,
        oldest=stats.oldest,
        newest=stats.newest,
    )
    errors = [unopened_text(stats.unopened)] if stats.unopened else []
    if stats.unreadable:
        n = len(stats.unreadable)
        errors.append(
            f"{n} unreadable file{'s' if n != 1 else ''}: {', '.join(stats.unreadable[:3])}"
            + (" …" if n > 3 else "")
            + f" (damaged or not written by hyp). {damaged_file_advice(layout, n)}"
        )
    wrong = stats.unreadable_mismatches
    if wrong:
        errors.append(f"{mismatch_text(wrong)} Queries fail on it. {damaged_file_advice(layout, len(wrong))}"
                      if len(wrong) == 1 else
                      f"{mismatch_text(wrong)} Queries fail on them. {damaged_file_advice(layout, len(wrong))}")
    if errors:
        section["error"] = " ".join(errors)
    readable = [m for m in stats.mismatched if m.readable]
    if readable:
        section["warnings"].append(f"{mismatch_text(readable)} Queries read {'it' if len(readable) == 1 else 'them'}.")
    if stats.ignored:
        section["warnings"].append(ignored_text(stats.ignored, layout))
    return section


def ignored_text(paths: list[str], layout: Layout) -> str:
    """What status says about `*.parquet` files and folders under the dataset root outside its partitions."""
    root = layout.dataset_root
    n = len(paths)
    names = [os.path.relpath(p, root) for p in paths[:10]]
    shown = ", ".join(names) + (f" and {n - 10} more" if n > 10 else "")
    it = "it" if n == 1 else "them"
    return (
        f"{'1 path' if n == 1 else f'{n} paths'} under {root} {'is' if n == 1 else 'are'} not part of the dataset "
        f"(partition folders are source=<client>/date=<YYYY-MM-DD>): {shown}. No query reads {it}, and hyp cache "
        f"prune and compact leave {it} alone: move {it} out of the dataset folder."
    )


def dataset_replaced_note(layout: Layout) -> str | None:
    """When the dataset is not the one the checkpoints describe (deleted, moved, restored from a copy), what the
    next import does about it (`storage.dataset_replaced_text`); None otherwise. Read-only: the checkpoint
    database's meta, then the dataset's marker file."""
    from hypaware_tui.core.storage import dataset_replaced, dataset_replaced_text

    try:
        return dataset_replaced_text(layout, ahead=True) if dataset_replaced(layout) else None
    except OSError:  # (a HYP_HOME this user may not read: the dataset section says so)
        return None


def empty_reason(layout: Layout, section: Mapping[str, Any]) -> str | None:
    """Why a readable dataset without a file is empty when hyp has read history (`storage.empty_dataset_text`:
    the retention window kept nothing, say); None otherwise ("nothing imported yet" is then true)."""
    if section["files"] or section.get("error") or section.get("replaced"):
        return None
    from hypaware_tui.core.storage import empty_dataset_text, history_read

    read = history_read(layout)
    return empty_dataset_text(read) if read is not None else None


def last_import(layout: Layout) -> dict[str, Any] | None:
    """The newest backfill or wizard import in the events log: `{at, status, rows_written}`, where status is
    the run's (`ok`, `cancelled`, `failed`) or `unfinished` when it logged a start and no end (still running,
    or killed: a killed `hyp init --yes` left nothing in `hyp status` to say the import was incomplete).
    None when none is logged (dry runs log nothing). Read-only."""
    from hypaware_tui.core.events import iter_events_reversed

    try:
        for ev in iter_events_reversed(layout, max_bytes=_EVENTS_TAIL_BYTES):
            name = ev.get("event")
            if name == "backfill.finish":
                rows = ev.get("rows_written")
                return {"at": ev.get("ts"), "status": str(ev.get("status") or "ok"),
                        "rows_written": rows if isinstance(rows, int) else None}
            if name == "backfill.start":
                return {"at": ev.get("ts"), "status": "unfinished", "rows_written": None}
    except OSError:
        return None
    return None


# --- daemon ------------------------------------------------------------------------------------------------


def daemon_section(layout: Layout) -> dict[str, Any]:
    """daemon.md §6 fields plus `running` (pid alive and lock held), `mode`, `message` and
    `ended_unexpectedly`, from the daemon's own read-only reader."""
    from hypaware_tui.core.daemon.control import read_daemon_status

    # In a HYP_HOME no command can use, the daemon's files cannot be read: said as that, not as the exception
    # (`PermissionError: [Errno 13] Permission denied: '…/run/daemon-status.json'`), nor as "never started"
    # (a HYP_HOME this user may not read may well have a daemon of its owner's running).
    fault = hyp_home_fault(layout.home)
    if fault is not None:
        return _unknown_daemon(f"cannot read the daemon status: {fault}")
    try:
        return read_daemon_status(layout).to_json()
    except Exception as exc:  # noqa: BLE001 - an unreadable status must not break the report
        return _unknown_daemon(f"cannot read the daemon status: {type(exc).__name__}: {exc}")


def _unknown_daemon(message: str) -> dict[str, Any]:
    return {"running": False, "state": "unknown", "message": message, "ended_unexpectedly": False, "pid": None,
            "mode": None}


def daemon_config_warning(daemon: Mapping[str, Any], config: Any, section: Mapping[str, Any]) -> str | None:
    """A running daemon that does not run with the config on disk (`hyp status`, `hyp daemon status`): it is
    read at the start and at SIGHUP only, so after `hyp init` changed it without restarting the daemon (its
    daemon action skipped by a hang-up, say) the daemon goes on as before: capturing though capture is now
    off, or deleting at its daily retention pass rows the config now keeps. `daemon` is `daemon_section`,
    `config` and `section` are `config_section`'s. None when it does run with it, or when that is unknown (no
    valid config, a daemon still starting or from a version that does not say)."""
    if not daemon.get("running") or daemon.get("state") not in ("running", "degraded"):
        return None
    if config is None or section.get("state") != "ok":
        return None
    if section.get("capture_enabled") is False:
        return f"capture is off in the config but the daemon is running: {prog.NAME} daemon stop"
    from hypaware_tui.core.daemon.settings import from_config, settings_digest

    theirs = daemon.get("config_digest")
    try:
        ours = settings_digest(from_config(config))
    except Exception:  # noqa: BLE001 - a warning, never a reason to fail the report
        return None
    if isinstance(theirs, str) and ours is not None and theirs != ours:
        return f"the daemon runs with an older config: {prog.NAME} daemon restart"
    return None


def daemon_client_warnings(daemon: Mapping[str, Any], clients: list[Mapping[str, Any]]) -> list[str]:
    """A running daemon that captures nothing of a client whose history this shell finds: its folder is
    missing (`waiting`) or unreadable where the daemon looks (its own environment's: CLAUDE_CONFIG_DIR set
    elsewhere since it started, a folder moved). `hyp status` said "running" and nothing else, while new
    sessions went uncaptured. Where the daemon looks is known by its hash only (the status file names no
    path): when it is not where this shell looks, a restart from here is the way. (Not said of a client not
    detected here either: the Clients section says so.)"""
    if not daemon.get("running") or daemon.get("state") not in ("running", "degraded"):
        return []
    theirs = daemon.get("clients")
    if not isinstance(theirs, Mapping):
        return []
    from hypaware_tui.core.checkpoints import roots_hash
    from hypaware_tui.core.daemon.control import CLIENT_ROOT_ENV
    from hypaware_tui.core.paths import shown_path
    from hypaware_tui.core.plan import tilde

    variables = {client: name for name, client in CLIENT_ROOT_ENV.items()}
    out = []
    for c in clients:
        d = theirs.get(c.get("client"))
        if not isinstance(d, Mapping) or d.get("root_state") not in ("waiting", "unreadable") or not c.get("detected"):
            continue
        text = (f"{c.get('name')}: the daemon's folder for it does not exist: none of it is captured"
                if d["root_state"] == "waiting" else
                f"{c.get('name')}: the daemon cannot read its folder for it: none of it is captured")
        here = [r for r in c.get("roots") or [] if isinstance(r, str)]
        if here and isinstance(d.get("roots_hash"), str) and d["roots_hash"] != roots_hash(here):
            var = variables.get(str(c.get("client")), "its folder setting")
            shown = ", ".join(tilde(shown_path(r), os.environ) for r in here)
            text += (f" (it looks elsewhere than this shell, which finds it in {shown}: was {var} changed since "
                     f"it started? {prog.NAME} daemon restart from here watches that)")
        out.append(text)
    return out


def service_warning(layout: Layout) -> str | None:
    """The installed service unit runs hyp with another HYP_HOME (this one was moved or renamed since `hyp
    daemon install`): where a service manager exists, `hyp daemon start` and the wizard would go through it.
    None otherwise. Reads the unit file only."""
    from hypaware_tui.core.daemon.service import get_service_manager, other_home_warning, unit_other_home

    try:
        other = unit_other_home(get_service_manager(), layout.home)
    except Exception:  # noqa: BLE001 - a broken manager must not break the report
        return None
    return other_home_warning(other) if other else None


# --- recent errors -----------------------------------------------------------------------------------------

_LOG_LINE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[+-]\d{2}:?\d{2}|Z)?)\s+(ERROR|CRITICAL)\s+(.*)$"
)


def recent_errors(
    layout: Layout,
    daemon: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
    limit: int = RECENT_ERRORS_MAX,
    days: int = RECENT_ERRORS_DAYS,
) -> list[dict[str, Any]]:
    """Up to `limit` errors from the last `days` days, newest first: the daemon status (`last_error`, and each
    client's), the events log (`error` fields) and `ERROR` lines of the daemon log. The same message at the
    same second is listed once."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    found: list[tuple[datetime, str, str]] = []

    def add(at: object, source: str, message: object) -> None:
        ts = parse_ts(at)
        if ts is None or ts < since or not isinstance(message, str) or not message.strip():
            return
        found.append((ts, source, message.strip()))

    daemon = daemon or {}
    last = daemon.get("last_error")
    if isinstance(last, Mapping):
        add(last.get("at"), "daemon", last.get("message"))
    clients = daemon.get("clients")
    if isinstance(clients, Mapping):
        for name, c in clients.items():
            if isinstance(c, Mapping) and isinstance(c.get("last_error"), Mapping):
                message = c["last_error"].get("message")
                if isinstance(message, str) and message.startswith(f"{name}: "):  # (its source says the client:
                    message = message[len(name) + 2:]  # "daemon claude: claude: …" said it twice)
                add(c["last_error"].get("at"), f"daemon {name}", message)
    _events_errors(layout, add, since)
    _daemon_log_errors(layout, add)

    found.sort(key=lambda e: e[0], reverse=True)
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for ts, source, message in found:
        at = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # (the same error said by several places is listed once; but two clients' imports that failed alike in
        # the same second, a full disk, are two errors: only one of them was listed)
        key = (at, message, source if source in _CLIENT_SOURCES else "")
        if key in seen:
            continue
        seen.add(key)
        out.append({"at": at, "source": source, "message": message})
        if len(out) >= limit:
            break
    return out


_CLIENT_SOURCES = frozenset({"claude", "codex"})


def _events_errors(layout: Layout, add: Callable[[object, str, object], None], since: datetime) -> None:
    from hypaware_tui.core.events import iter_events_reversed

    errors: list[Mapping[str, Any]] = []
    try:
        for ev in iter_events_reversed(layout, max_bytes=_EVENTS_TAIL_BYTES):
            ts = parse_ts(ev.get("ts"))
            if ts is not None and ts < since:
                break  # newest first: everything further is older
            msg = ev.get("error")
            if ev.get("status") == "skipped":
                continue  # a client that is not there, the reason it was left out: not an error (cli.md §5.1)
            if isinstance(msg, str) and msg:
                errors.append(ev)
    except OSError:
        pass
    # A provider's finish repeats its first file error (cli.md §5.3 `error`), seconds after the
    # `backfill.file_error` event of that run: the error is listed once, when it happened.
    file_errors = {(ev.get("dev_run_id"), ev.get("provider"), ev["error"]) for ev in errors
                   if ev.get("event") == "backfill.file_error"}
    for ev in errors:
        if ev.get("event") != "backfill.file_error" and (ev.get("dev_run_id"), ev.get("provider"),
                                                         ev["error"]) in file_errors:
            continue
        source = ev.get("provider") or ev.get("event") or "events"
        add(ev.get("ts"), str(source), ev["error"])


def newer_log_error(layout: Layout, daemon: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The newest `ERROR` line of the daemon log written during the run the status file describes (not before
    its `started_at`) and after its `last_error`, as `{at, message}`, else None. A daemon that cannot write its
    status (a full disk) still logs why: the status file alone said "Last error none"."""
    daemon = daemon or {}
    started = parse_ts(daemon.get("started_at"))
    last = daemon.get("last_error")
    last_at = parse_ts(last.get("at")) if isinstance(last, Mapping) else None
    last_message = last.get("message") if isinstance(last, Mapping) else None
    best: tuple[datetime, str] | None = None

    def add(at: object, _source: str, message: object) -> None:
        nonlocal best
        ts = parse_ts(at)
        if ts is None or not isinstance(message, str) or not message.strip():
            return
        if (started is not None and ts < started) or (last_at is not None and ts <= last_at):
            return
        if isinstance(last_message, str) and message.strip() == last_message.strip():
            return  # (the status's own error, logged a second later)
        if best is None or ts >= best[0]:  # (the later line of the same second: the log is in order)
            best = (ts, message.strip())

    _daemon_log_errors(layout, add)
    if best is None:
        return None
    return {"at": best[0].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "message": best[1]}


def _daemon_log_errors(layout: Layout, add: Callable[[object, str, object], None]) -> None:
    for path in (layout.daemon_log, Path(f"{layout.daemon_log}.1")):
        try:
            lines = [raw.decode("utf-8", "replace").rstrip("\r") for raw in read_tail(path, _DAEMON_LOG_TAIL_BYTES)]
        except OSError:
            continue
        for line in lines:
            m = _LOG_LINE.match(line)
            if m:
                add(m.group(1), "daemon log", m.group(3))


def parse_ts(value: object) -> datetime | None:
    """An ISO 8601 timestamp (`Z`, `+00:00` or `+0000`; naive = UTC) as an aware datetime, else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    m = re.search(r"([+-]\d{2})(\d{2})$", text)
    if m and not re.search(r"[+-]\d{2}:\d{2}$", text):
        text = text[: m.start()] + f"{m.group(1)}:{m.group(2)}"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
