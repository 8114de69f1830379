"""`hyp status [--json]` (cli.md §6): the one-page health report. Read-only: creates nothing.

The report is built section by section (`SECTIONS`, in the order of cli.md §6) into the JSON document, then
rendered as text from that same document, so the two never disagree. Sections other issues own are small
functions here with a clear hook:

* `clients`: per-client detection, root, files and size. Hook: the inventory (`hypaware_tui.core.inventory`)
  once the importers exist; until then an empty list (and no text block).
* `daemon`: read from `run/daemon-status.json` (daemon.md §6). The daemon issue may replace
  `daemon_section` / `daemon_running` with its own reader; keep the JSON keys.
* `recent_errors`: daemon status `last_error` and events-log entries with an `error`, last 7 days.

Exit 0 when the report was produced (also when unconfigured); 1 when the config is invalid or the dataset
unreadable (the report is still printed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from hypaware_tui.cli.output import fmt_int, human_size, out, plural, print_json, short_path

RECENT_ERRORS_MAX = 5
RECENT_ERRORS_DAYS = 7


def register(app: typer.Typer) -> None:
    app.command("status", help="One-page health report: config, clients, dataset, daemon, recent errors.")(
        status_command
    )


def status_command(
    json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON document."),
) -> None:
    from hypaware_tui.core.paths import Layout

    layout = Layout.resolve()
    report, code = build_report(layout)
    if json_out:
        print_json(report)
    else:
        render_text(report)
    raise typer.Exit(code)


# --- sections --------------------------------------------------------------------------------------------


def config_section(layout: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    from hypaware_tui.core.config import DEFAULT_RETENTION_DAYS, ConfigError, load_config

    section: dict[str, Any] = {
        "path": str(layout.config),
        "state": "missing",
        "error": None,
        "retention_days": DEFAULT_RETENTION_DAYS,
        "clients_enabled": [],
        "capture_enabled": None,
    }
    try:
        cfg = load_config(layout)
    except ConfigError as exc:
        section.update(state="invalid", error=exc.problem, retention_days=None)
        ctx["failed"] = True
        return section
    ctx["config"] = cfg
    if cfg is not None:
        section.update(
            state="ok",
            retention_days=cfg.retention_days,
            clients_enabled=cfg.enabled_clients,
            capture_enabled=cfg.capture.enabled,
        )
    return section


def clients_section(layout: Any, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    # Hook for the inventory issue: [{client, name, detected, reason, root, files, bytes}].
    return []


def dataset_section(layout: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    from hypaware_tui.core.storage import dataset_stats

    section: dict[str, Any] = {
        "path": str(layout.dataset_root),
        "bytes": 0,
        "files": 0,
        "rows": {},
        "total_rows": 0,
        "oldest": None,
        "newest": None,
        "error": None,
    }
    try:
        stats = dataset_stats(layout)
    except OSError as exc:
        section["error"] = f"cannot read the dataset: {exc.strerror or exc}"
        ctx["failed"] = True
        return section
    section.update(
        bytes=stats.bytes,
        files=stats.files,
        rows=dict(sorted(stats.rows.items())),
        total_rows=stats.total_rows,
        oldest=stats.oldest,
        newest=stats.newest,
    )
    if stats.unreadable:
        section["error"] = (
            f"{plural(len(stats.unreadable), 'unreadable file')}: {', '.join(stats.unreadable[:3])}"
            + (" …" if len(stats.unreadable) > 3 else "")
            + " (move them out of the dataset directory)"
        )
        ctx["failed"] = True
    return section


def read_daemon_status(layout: Any) -> dict[str, Any] | None:
    try:
        data = json.loads(layout.daemon_status.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def daemon_running(layout: Any) -> bool:
    data = read_daemon_status(layout)
    return bool(
        data and data.get("state") in ("starting", "running", "degraded") and _pid_alive(data.get("pid"))
    )


def daemon_section(layout: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    data = read_daemon_status(layout)
    ctx["daemon_status"] = data
    if data is None:
        return {"state": "never started", "running": False, "pid": None, "mode": None}
    section = dict(data)
    running = data.get("state") in ("starting", "running", "degraded") and _pid_alive(data.get("pid"))
    section["running"] = running
    if not running and data.get("state") != "stopped":
        section["state"] = "stopped"
        section["ended_unexpectedly_at"] = data.get("updated_at")
    section.setdefault("mode", None)
    return section


def recent_errors_section(layout: Any, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    from hypaware_tui.core.events import iter_events_reversed

    since = datetime.now(UTC) - timedelta(days=RECENT_ERRORS_DAYS)
    found: list[dict[str, Any]] = []
    daemon = ctx.get("daemon_status") or {}
    last = daemon.get("last_error")
    if isinstance(last, dict) and last.get("message"):
        found.append({"at": last.get("at"), "source": "daemon", "message": str(last["message"])})
    for ev in iter_events_reversed(layout, max_bytes=1024 * 1024):
        if len(found) >= RECENT_ERRORS_MAX * 2:
            break
        msg = ev.get("error")
        if not msg or not isinstance(msg, str):
            continue
        found.append({"at": ev.get("ts"), "source": ev.get("provider") or ev.get("event"), "message": msg})
    recent = [e for e in found if _parse_ts(e["at"]) is not None and _parse_ts(e["at"]) >= since]
    recent.sort(key=lambda e: _parse_ts(e["at"]), reverse=True)
    return recent[:RECENT_ERRORS_MAX]


def _parse_ts(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


# In the order of cli.md §6. Each builder gets the layout and a shared scratch dict (`ctx`) and returns the
# section's JSON value; setting ctx["failed"] makes the exit code 1.
SECTIONS: list[tuple[str, Callable[[Any, dict[str, Any]], Any]]] = [
    ("config", config_section),
    ("clients", clients_section),
    ("dataset", dataset_section),
    ("daemon", daemon_section),
    ("recent_errors", recent_errors_section),
]


def build_report(layout: Any) -> tuple[dict[str, Any], int]:
    from hypaware_tui import __version__

    report: dict[str, Any] = {"hyp_home": str(layout.home), "version": __version__}
    ctx: dict[str, Any] = {}
    for key, builder in SECTIONS:
        report[key] = builder(layout, ctx)
    return report, 1 if ctx.get("failed") else 0


# --- text --------------------------------------------------------------------------------------------------

LABEL_WIDTH = 10


def _block(label: str, lines: list[str]) -> None:
    for i, line in enumerate(lines):
        out(f"{(label if i == 0 else ''):<{LABEL_WIDTH}}{line}")


def render_text(report: dict[str, Any]) -> None:
    from hypaware_tui.cli.app import PROG

    cfg = report["config"]
    if cfg["state"] == "ok":
        retention = "forever" if cfg["retention_days"] == 0 else f"{cfg['retention_days']} days"
        clients = ", ".join(cfg["clients_enabled"]) or "none"
        capture = "on" if cfg["capture_enabled"] else "off"
        _block(
            "Config",
            [
                f"{short_path(cfg['path'])}: ok",
                f"retention {retention} · clients {clients} · capture {capture}",
            ],
        )
    elif cfg["state"] == "missing":
        _block("Config", [f"{short_path(cfg['path'])}: missing"])
    else:
        _block("Config", [f"{short_path(cfg['path'])}: invalid: {cfg['error']}"])

    for c in report.get("clients") or []:
        detected = "detected" if c.get("detected") else (c.get("reason") or "not detected")
        figures = ""
        if c.get("files") is not None:
            figures = f" · {plural(c['files'], 'file')} · {human_size(c.get('bytes'))}"
        _block("Clients" if c is report["clients"][0] else "", [f"{c.get('name') or c.get('client')}: {detected}"
               + (f" · {short_path(c['root'])}" if c.get("root") else "") + figures])  # fmt: skip

    ds = report["dataset"]
    lines = [short_path(ds["path"])]
    if ds["files"]:
        per_source = ", ".join(f"{s} {fmt_int(n)}" for s, n in ds["rows"].items())
        lines.append(
            f"{human_size(ds['bytes'])} in {plural(ds['files'], 'file')} · "
            f"{plural(ds['total_rows'], 'row')} ({per_source})"
        )
        lines.append(f"messages from {ds['oldest']} to {ds['newest']}")
    else:
        lines.append("empty: nothing imported yet")
    if ds.get("error"):
        lines.append(f"error: {ds['error']}")
    _block("Dataset", lines)

    d = report["daemon"]
    state = d.get("state")
    dl = []
    if state == "never started":
        dl.append("never started")
    else:
        text = str(state)
        if d.get("ended_unexpectedly_at"):
            text += f" (ended unexpectedly at {d['ended_unexpectedly_at']})"
        if d.get("running") and d.get("pid"):
            text += f" · pid {d['pid']}" + (f" · {d['mode']}" if d.get("mode") else "")
        dl.append(text)
        if d.get("last_import_at"):
            dl.append(
                f"last import {d['last_import_at']} · {plural(int(d.get('rows_written') or 0), 'row')} since start"
            )
    if cfg.get("capture_enabled") and not d.get("running"):
        dl.append(f"warning: capture is on but the daemon is not running (start it: {PROG} daemon start)")
    _block("Daemon", dl)

    errors = report.get("recent_errors") or []
    if errors:
        _block("Errors", [f"{e['at']} {e['source']}: {e['message']}" for e in errors])
    else:
        _block("Errors", ["none"])

    if cfg["state"] == "missing":
        out()
        out(f"Next: {PROG} init")
    elif cfg["state"] == "invalid":
        out()
        out(f"Next: fix {short_path(cfg['path'])} or run {PROG} init to rewrite it")
