"""The wizard's daemon action (daemon.md §9), used by the Textual wizard and `hyp init --yes`.

`plan_daemon_action(...)` computes one action from the table below; `perform_daemon_action(...)` carries it
out after the imports (through the service manager when a unit is installed and the manager is available,
otherwise detached).

| Capture after commit | Daemon before | Config changed | Action |
|---|---|---|---|
| on  | not running | -   | start   |
| on  | running     | yes | restart |
| on  | running     | no  | none    |
| off | running     | -   | stop    |
| off | not running | -   | none    |
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from hypaware_tui.core.daemon import control
from hypaware_tui.core.daemon.service import ServiceManager, get_service_manager, unit_other_home
from hypaware_tui.core.paths import Layout

ACTIONS = ("start", "restart", "stop", "none")

#: A process table: returns the pid of the running daemon for this HYP_HOME, or None.
ProcessTable = Callable[[Layout], "int | None"]


def real_process_table(layout: Layout) -> int | None:
    report = control.read_daemon_status(layout)
    return report.pid if report.running else None


@dataclass(frozen=True)
class DaemonAction:
    action: str  # start | restart | stop | none
    mode: str | None  # service | detached | None (nothing to do)
    reason: str
    running_pid: int | None = None
    service_installed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "mode": self.mode, "reason": self.reason}


def decide(capture_on: bool, running: bool, config_changed: bool) -> tuple[str, str]:
    """The §9 table: (action, reason)."""
    if capture_on:
        if not running:
            return "start", "capture on, daemon not running"
        if config_changed:
            return "restart", "capture on, daemon running, config changed"
        return "none", "capture on, daemon already running"
    if running:
        return "stop", "capture off, daemon running"
    return "none", "capture off, daemon not running"


def _service_state(service: ServiceManager | None, layout: Layout) -> tuple[bool, bool]:
    """(installed, installed-and-available). Errors count as not installed (the action goes detached), and so
    does a unit that runs hyp with another HYP_HOME (through it, the daemon would run there)."""
    if service is None:
        return False, False
    try:
        installed = service.installed() and unit_other_home(service, layout.home) is None
        return installed, installed and service.available()
    except Exception:  # noqa: BLE001
        return False, False


def plan_daemon_action(
    layout: Layout,
    *,
    capture_on: bool,
    config_changed: bool,
    demo: bool = False,
    user_declined: bool = False,
    process_table: ProcessTable | None = None,
    service: ServiceManager | None | object = ...,  # ... = the platform's manager
) -> DaemonAction:
    """Plan the action. Read-only: it probes the process table and the service manager, changes nothing.

    `user_declined` (capture unchecked / `--no-daemon`) only changes the reason of a `none`."""
    if demo:
        return DaemonAction("none", None, "not started (demo)")
    if service is ...:
        service = _safe_manager()
    pid = (process_table or real_process_table)(layout)
    installed, usable = _service_state(service, layout)  # type: ignore[arg-type]
    action, reason = decide(capture_on, pid is not None, config_changed)
    if action == "none" and not capture_on and user_declined:
        reason = "not started (you chose not to)"
    mode = None if action == "none" else ("service" if usable else "detached")
    return DaemonAction(action, mode, reason, running_pid=pid, service_installed=installed)


def _safe_manager() -> ServiceManager | None:
    try:
        return get_service_manager()
    except Exception:  # noqa: BLE001
        return None


@dataclass
class DaemonActionResult:
    """What the Import step and Done show (`cli.md` §4.2 `daemon` object plus the capture line)."""

    action: str
    status: str  # ok | failed | skipped
    mode: str | None
    pid: int | None
    error: str | None
    log_path: str | None
    capture_line: str  # Done's "Capture" line (wizard.md §6.7)
    service_installed: bool = False

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in ("action", "status", "mode", "pid", "error")}


def perform_daemon_action(
    layout: Layout,
    plan: DaemonAction,
    *,
    dry_run: bool = False,
    interrupted: bool = False,
    env: Mapping[str, str] | None = None,
    service: ServiceManager | None | object = ...,
    spawner: control.Spawner | None = None,
    timeout: float = control.START_TIMEOUT_S,
) -> DaemonActionResult:
    """Carry out `plan`. Dry runs and interrupted runs (terminal closed, headless signal) perform nothing."""
    env = os.environ if env is None else env
    log = str(layout.daemon_log)
    if plan.reason == "not started (demo)":
        return DaemonActionResult("none", "skipped", None, None, None, None, "not started (demo)")
    if dry_run or interrupted:
        line = "not started (dry run)" if dry_run else "not started (the run was interrupted)"
        return DaemonActionResult(plan.action, "skipped", plan.mode, None, None, None, line,
                                  plan.service_installed)
    if service is ...:
        service = _safe_manager()
    mgr = service if plan.mode == "service" else None
    if plan.action == "none":
        if plan.running_pid is not None:
            report = control.read_daemon_status(layout)
            mode = report.mode or "detached"
            line = f"running (pid {report.pid}), new sessions appear within seconds"
            return DaemonActionResult("none", "skipped", mode, report.pid, None, None, line,
                                      plan.service_installed)
        line = plan.reason if plan.reason.startswith("not started") else "not started (capture is off)"
        return DaemonActionResult("none", "skipped", None, None, None, None, line, plan.service_installed)
    if plan.action == "stop":
        res = control.stop_daemon(layout, service=mgr)
        if res.ok:
            return DaemonActionResult("stop", "ok", plan.mode, None, None, None, "stopped",
                                      plan.service_installed)
        return DaemonActionResult("stop", "failed", plan.mode, res.pid, res.message, log,
                                  f"failed to stop: {res.message} (log: {log})", plan.service_installed)
    if plan.action == "restart":
        res = control.restart_daemon(layout, env=env, service=mgr, spawner=spawner, timeout=timeout)
    else:
        res = control.start_daemon(layout, env=env, service=mgr, spawner=spawner, timeout=timeout)
    if res.ok:
        line = f"running (pid {res.pid}), new sessions appear within seconds"
        return DaemonActionResult(plan.action, "ok", res.mode or plan.mode, res.pid, None, None, line,
                                  plan.service_installed)
    error = res.error or res.message
    return DaemonActionResult(plan.action, "failed", res.mode or plan.mode, res.pid, res.message, log,
                              f"failed to start: {error} (log: {log})", plan.service_installed)
