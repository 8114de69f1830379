"""`hyp status [--json]` (cli.md §6): the one-page health report. Read-only: creates nothing.

The report is gathered by `hypaware_tui.core.status.gather_status` (config, clients, dataset, daemon, recent
errors; also used by the wizard's Welcome back screen) into the JSON document, then rendered as text from that
same document, so the two never disagree.

Exit 0 when the report was produced (also when unconfigured); 1 when the config is invalid or the dataset
unreadable (the report is still printed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from hypaware_tui.cli.output import (
    config_advice,
    err,
    fmt_int,
    human_size,
    out,
    out_labelled,
    plural,
    print_json,
    short_path,
    utc_minute,
)


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
    if code:  # (one line on stderr: an exit 1 with nothing there left a script's log with no reason)
        from hypaware_tui.cli.app import PROG
        from hypaware_tui.core.paths import hyp_home_problem

        problems = []
        cfg, ds = report["config"], report["dataset"]
        problem = hyp_home_problem(layout.home)
        if problem is not None:  # (the config and the dataset both: said once)
            problems.append(problem)
        else:
            if cfg.get("state") == "invalid":
                problems.append(f"the config at {short_path(cfg['path'])} is invalid: {cfg.get('error')}")
            if ds.get("error"):
                problems.append(str(ds["error"]))
        err(f"{PROG} status: {'; '.join(problems)}")
    raise typer.Exit(code)


def build_report(layout: Any) -> tuple[dict[str, Any], int]:
    """(the cli.md §6 JSON document, the exit code)."""
    from hypaware_tui.core.status import gather_status, status_exit_code

    report = gather_status(layout, os.environ)
    return report, status_exit_code(report)


def daemon_running(layout: Any) -> bool:
    """Whether the capture daemon is running (pid alive and lock held). Read-only."""
    from hypaware_tui.core.daemon.control import read_daemon_status

    try:
        return read_daemon_status(layout).running
    except Exception:  # noqa: BLE001 - the hint of `hyp` alone must never fail
        return False


# --- text --------------------------------------------------------------------------------------------------

LABEL_WIDTH = 10


def _block(label: str, lines: list[str]) -> None:
    if len(label) >= LABEL_WIDTH:  # a label wider than the column heads its own line
        out(label)
        label = ""
    for i, line in enumerate(lines):
        # (at a terminal, a line too long goes on two columns in from its text: each line of a block is one item)
        out_labelled(f"{(label if i == 0 else ''):<{LABEL_WIDTH}}{line}", LABEL_WIDTH, LABEL_WIDTH + 2)


def _last_import_line(last: dict[str, Any], prog: str) -> str:
    """The last `hyp backfill` or `hyp init` import (the daemon's own imports are in its section: after
    months of capture, "last import" here read as if nothing had been imported since setup)."""
    at = utc_minute(last.get("at"))
    status = last.get("status")
    if status == "ok":
        rows = last.get("rows_written")
        return f"last backfill {at}: ok" + (f", {plural(rows, 'new row')}" if isinstance(rows, int) else "")
    if status == "cancelled":
        return f"last backfill {at}: stopped before the end; {prog} backfill finishes it"
    if status == "failed":
        return f"last backfill {at}: failed (the error is below); {prog} backfill tries again"
    return (f"last backfill started {at} and recorded no end (still running, or interrupted); {prog} backfill "
            "finishes it")


# Where HYP_HOME is what cannot be used, the config and the daemon's status under it cannot be read: said in
# short, pointing at the one problem (the Next line says it whole, the dataset's error too).
UNUSABLE_HOME = "cannot be read: HYP_HOME cannot be used (see Next)"


def render_text(report: dict[str, Any]) -> None:
    from hypaware_tui.cli.app import PROG
    from hypaware_tui.core.paths import hyp_home_problem

    # A HYP_HOME no command can use (a file, a link to nothing) is the problem, not the config under it, which
    # hyp init cannot write either (a missing config said "Next: hyp init", which then refused it)
    home = Path(report["hyp_home"])
    problem = hyp_home_problem(home)
    cfg = report["config"]
    if problem is not None:
        _block("Config", [f"{short_path(cfg['path'])}: {UNUSABLE_HOME}"])
    elif cfg["state"] == "ok":
        retention = "forever" if cfg["retention_days"] == 0 else plural(cfg["retention_days"], "day")
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

    clients = report.get("clients") or []
    if clients:
        _block("Clients", [_client_line(c) for c in clients])

    ds = report["dataset"]
    lines = [short_path(ds["path"])]
    if ds["files"]:
        per_source = ", ".join(f"{s} {fmt_int(n)}" for s, n in ds["rows"].items())
        lines.append(
            f"{human_size(ds['bytes'])} in {plural(ds['files'], 'file')} · "
            f"{plural(ds['total_rows'], 'row')} ({per_source})"
        )
        # (the dates of its date= partitions: UTC dates, said, as local dates are elsewhere)
        lines.append(f"messages from {ds['oldest']} to {ds['newest']} (UTC)")
    elif ds.get("replaced"):  # (not "nothing imported yet": the checkpoints say otherwise)
        lines.append("empty")
    elif ds.get("empty_reason"):  # (hyp has read history: the retention window kept none of it, say)
        lines.append(f"empty: {ds['empty_reason']}")
    elif not ds.get("error"):  # (an unreadable dataset is not an empty one)
        lines.append("empty: nothing imported yet")
    if ds.get("replaced"):
        lines.append(f"{ds['replaced']} Run {PROG} backfill to import it now.")
    if ds.get("error"):
        lines.append(f"error: {ds['error']}")
    lines.extend(f"warning: {w}" for w in ds.get("warnings") or [])
    last = ds.get("last_import")
    if last:
        lines.append(_last_import_line(last, PROG))
    _block("Dataset", lines)

    from hypaware_tui.core.paths import Layout

    if problem is not None:
        _block("Daemon", ["unknown", f"its status {UNUSABLE_HOME}"])
    else:
        _block("Daemon", _daemon_lines(report["daemon"], cfg, PROG, Layout(home).daemon_log))

    errors = report.get("recent_errors") or []
    if errors:
        _block("Recent errors", [f"{utc_minute(e['at'])} {e['source']}: {e['message']}" for e in errors])
    else:
        _block("Recent errors", ["none"])

    if problem is not None:
        out()
        out(f"Next: {problem}")
    elif cfg["state"] == "missing":
        # (hyp init creates HYP_HOME: one that cannot be created, under a folder this user may not write in,
        # is what to fix first; hyp init refuses it up front)
        out()
        out(f"Next: {hyp_home_problem(home, f'run {PROG} init', create=True) or f'{PROG} init'}")
    elif cfg["state"] == "invalid":
        out()
        out(f"Next: {config_next_step(cfg, PROG)}")


def config_next_step(cfg: dict[str, Any], prog: str) -> str:
    """What to do about an invalid config (`hyp status`'s and `hyp daemon status`'s Next)."""
    advice = config_advice(str(cfg.get("error") or ""), prog, f"fix {short_path(cfg['path'])}, or ")
    return f"{advice[0].lower()}{advice[1:].rstrip('.')}"


def daemon_next_step(d: dict[str, Any], cfg: dict[str, Any], prog: str, log: Any) -> str | None:
    """What to do about a capture daemon that is not running, from its status (`core.status.daemon_section`)
    and the config section: the way out `hyp status` gives in its warning and `hyp daemon status` on its Next
    line, in the same words. An unexpected end adds where its log is. None while it runs."""
    if d.get("running"):
        return None
    if cfg.get("state") == "missing":
        return f"{prog} init"
    if cfg.get("state") == "invalid":
        return f"the config is invalid ({cfg.get('error')}): {config_next_step(cfg, prog)}"
    if cfg.get("capture_enabled"):
        step = f"start it: {prog} daemon start"
    else:
        step = f"capture is off in the config; {prog} daemon start turns it on and starts the daemon"
    if d.get("ended_unexpectedly"):
        step += f"; its log may say why it ended: {short_path(log)}"
    return step


def failed_text(failed: int, folders: int) -> str:
    """`2 files`, `1 folder`, `2 files and 1 folder`: a count of failures (files_failed) of which `folders`
    are folders that could not be listed (a folder called a file could not be found)."""
    files = max(failed - folders, 0)
    return " and ".join(plural(n, word) for n, word in ((files, "file"), (folders, "folder")) if n)


def _client_line(c: dict[str, Any]) -> str:
    """`Claude Code: detected · ~/.claude · 412 files · 96.1 MB · 130 sessions · enabled`."""
    name = c.get("name") or c.get("client")
    parts = [f"{name}: {'detected' if c.get('detected') else (c.get('reason') or 'not detected')}"]
    if c.get("detected"):
        roots = c.get("roots") or ([c["root"]] if c.get("root") else [])
        if roots:
            parts.append(", ".join(short_path(r) for r in roots))
        if c.get("files") is not None:
            parts.append(plural(c["files"], "file"))
            parts.append(human_size(c.get("bytes")))
        if c.get("sessions"):
            parts.append(plural(c["sessions"], "session"))
        if c.get("files_failed"):
            parts.append(f"{failed_text(c['files_failed'], c.get('folders_failed') or 0)} unreadable")
    if c.get("enabled") is not None:
        parts.append("enabled" if c["enabled"] else "disabled")
    line = " · ".join(parts)
    if c.get("error"):
        line += f" · error: {c['error']}"
    return line


def _daemon_lines(d: dict[str, Any], cfg: dict[str, Any], prog: str, log: Any) -> list[str]:
    from hypaware_tui.core.daemon.control import ended_unexpectedly_text

    state = d.get("state") or "unknown"
    lines: list[str] = []
    if state == "never started":
        lines.append("never started")
    else:
        text = str(state)
        if d.get("ended_unexpectedly"):
            text += f" ({ended_unexpectedly_text(d)})"
        if d.get("stale"):
            text += " (status stale)"
        if d.get("running") and d.get("pid"):
            text += f" · pid {d['pid']}"
        if d.get("mode"):
            text += f" · {d['mode']}"
        lines.append(text)
        if d.get("warning"):
            lines.append(f"warning: {d['warning']}")
        if d.get("last_import_at") or d.get("rows_written") is not None:
            lines.append(
                f"last import {utc_minute(d['last_import_at']) if d.get('last_import_at') else 'none yet'} · "
                f"{plural(int(d.get('rows_written') or 0), 'row')} written since start"
            )
        last = d.get("last_error")
        if isinstance(last, dict) and last.get("message"):
            at = f" {utc_minute(last['at'])}" if isinstance(last.get("at"), str) and last["at"] else ""
            lines.append(f"last error{at}: {last['message']}")
    if state == "unknown" and d.get("message"):
        lines.append(str(d["message"]))
    if d.get("service_warning"):
        lines.append(f"warning: {d['service_warning']}")
    if d.get("config_warning"):
        lines.append(f"warning: {d['config_warning']}")
    lines.extend(f"warning: {w}" for w in d.get("client_warnings") or [])
    if cfg.get("capture_enabled") and not d.get("running"):
        lines.append(f"warning: capture is on but the daemon is not running ({daemon_next_step(d, cfg, prog, log)})")
    return lines
