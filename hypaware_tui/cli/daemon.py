"""`hyp daemon run | start | stop | restart | status | install | uninstall` (cli.md §9, daemon.md §4-8)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer._click.globals import get_current_context

from hypaware_tui.cli.output import (
    err,
    fmt_int,
    out,
    out_labelled,
    plural,
    print_json,
    short_path,
    utc_minute,
)
from hypaware_tui.cli.status import daemon_next_step, failed_text

app = typer.Typer(
    help="The capture daemon: keeps the dataset up to date as Claude Code and Codex write history.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    add_completion=False,
)


@app.callback()
def _daemon_root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        out(ctx.get_help())
        raise typer.Exit(0)


def _prog() -> str:
    try:
        from hypaware_tui.cli.app import PROG

        return PROG
    except Exception:  # noqa: BLE001
        return "hyp"


def _where() -> str:
    """The command that is running (`hyp daemon install`), the prefix of its errors as of every other
    command's; `hyp daemon` outside a command's context."""
    ctx = get_current_context(silent=True)
    return ctx.command_path if ctx is not None and ctx.parent is not None else f"{_prog()} daemon"


def _with_remedy(message: str) -> str:
    """An invalid config's error with the way out the other commands give (the daemon stores the bare error)."""
    if message.startswith("the config is invalid:"):  # (core/daemon/settings.py)
        from hypaware_tui.cli.output import config_advice

        return f"{message.rstrip('.')}. {config_advice(message, _prog())}"
    return message


def _fail(message: str, code: int = 1) -> None:
    err(f"{_where()}: {_with_remedy(message)}")
    raise typer.Exit(code)


def _layout() -> Any:
    from hypaware_tui.core.paths import Layout

    return Layout.resolve()


def _check_home(layout: Any, *, create: bool = False) -> None:
    """HYP_HOME is a file (or a device): say so in the words init, backfill and status use, exit 1. `create`:
    also one not there yet that this user cannot create (`hyp daemon run`, which creates it)."""
    from hypaware_tui.core.paths import hyp_home_problem

    problem = hyp_home_problem(layout.home, create=create)
    if problem is not None:
        _fail(problem)


@contextlib.contextmanager
def _reading(layout: Any) -> Iterator[None]:
    """The daemon's files read in a HYP_HOME this user may not read (or reach): said in the words of the other
    commands (`hyp_home_problem`, exit 1), not as an unexpected PermissionError. (A HYP_HOME that is a file, or
    a link to nothing, raises nothing here: no daemon can run there, which status and stop report.)"""
    try:
        yield
    except OSError:
        from hypaware_tui.core.paths import require_usable_home

        require_usable_home(layout.home)
        raise


def _manager() -> Any:
    from hypaware_tui.core.daemon.service import get_service_manager

    try:
        return get_service_manager()
    except Exception:  # noqa: BLE001 - no usable manager: everything goes detached
        return None


# --- run -----------------------------------------------------------------------------------------------


@app.command("run", help="Run the capture loop in the foreground (what the service and start run).")
def daemon_run(
    once: bool = typer.Option(False, "--once", help="One catch-up pass, then exit."),
) -> None:
    from hypaware_tui.core.daemon.control import AlreadyRunning, PidLock
    from hypaware_tui.core.paths import set_umask

    layout = _layout()
    _check_home(layout, create=True)
    # The single-instance lock first, before the heavy imports, so a second instance answers at once.
    set_umask()
    lock = PidLock(layout)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        _fail(str(exc))
    except OSError as exc:  # HYP_HOME (or its run/ directory) cannot be created or written
        from hypaware_tui.core.storage import _os_error_message

        _fail(_os_error_message(exc, "cannot take the daemon lock", layout))
    from hypaware_tui.core.daemon.memory import configure_allocator

    configure_allocator()  # before Polars loads: a long-lived, mostly idle process (see core.daemon.memory)
    from hypaware_tui.core.daemon.loop import run_daemon

    # An invalid config is found by the daemon itself (it records the error in its status and log, as the
    # service's runs do); on the terminal its line names the way out, as start's does.
    code = run_daemon(layout, once=once, lock=lock, explain=_with_remedy)
    raise typer.Exit(code)


# --- start / stop / restart ----------------------------------------------------------------------------


def _report(res: Any) -> None:
    for note in res.notes:
        out(note)
    if res.ok:
        out(res.message)
        raise typer.Exit(0)
    err(f"{_where()}: {_with_remedy(res.message)}")
    if res.log_tail:
        err(f"last lines of {short_path(_layout().daemon_log)}:")
        for line in res.log_tail:
            err(f"  {line}")
    raise typer.Exit(res.exit_code)


@app.command("start", help="Start the daemon in the background (through the service when installed).")
def daemon_start() -> None:
    from hypaware_tui.core.daemon.control import start_daemon

    _report(start_daemon(_layout(), service=_manager()))


@app.command("stop", help="Stop the daemon and wait up to 10 s. The config is not changed.")
def daemon_stop() -> None:
    from hypaware_tui.core.daemon.control import stop_daemon

    layout = _layout()
    with _reading(layout):
        res = stop_daemon(layout, service=_manager())
    _report(res)


@app.command("restart", help="Stop, then start the daemon.")
def daemon_restart() -> None:
    from hypaware_tui.core.daemon.control import restart_daemon

    layout = _layout()
    with _reading(layout):
        res = restart_daemon(layout, service=_manager())
    _report(res)


# --- status --------------------------------------------------------------------------------------------


def _service_info(layout: Any) -> dict[str, Any]:
    """Whether a unit is installed (its file written), whether the manager is available and the unit enabled,
    read-only (a broken or refused manager reports `unknown`: None)."""
    from hypaware_tui.core.daemon.service import other_home_warning, unit_other_home

    mgr = _manager()
    if mgr is None:
        return {"installed": False, "available": None, "enabled": None, "kind": None, "unit_path": None,
                "other_hyp_home": None, "warning": None}
    available = enabled = other = None
    try:
        installed = mgr.installed()
    except Exception:  # noqa: BLE001
        installed = None
    if installed:
        try:
            available = mgr.available()
            enabled = mgr.is_enabled() if available else False  # (nothing enables it without the manager)
        except Exception:  # noqa: BLE001
            pass
        other = unit_other_home(mgr, layout.home)  # (a HYP_HOME moved since the install: the unit runs the old)
    return {"installed": installed, "available": available, "enabled": enabled, "kind": mgr.kind,
            "unit_path": str(mgr.unit_path), "other_hyp_home": other,
            "warning": other_home_warning(other, _prog()) if other else None}


def _service_line(service: dict[str, Any]) -> str:
    """The Service line of `hyp daemon status`: a unit written but not enabled (no user systemd here, or enabling
    it failed) is not an installed service, and does not start capture at login."""
    if service["installed"] is None:
        return "unknown"
    if not service["installed"]:
        return f"not installed ({_prog()} daemon install starts capture at login)"
    unit = short_path(service["unit_path"])
    if service["enabled"] is False:
        manager = "systemd user services" if service["kind"] == "systemd" else "launchctl"
        why = (f"{manager} {'are' if service['kind'] == 'systemd' else 'is'} not available here"
               if service["available"] is False else f"{_prog()} daemon install enables it")
        return f"unit written, not enabled ({unit}): {why}; capture does not start at login"
    return f"installed ({unit})"


STATUS_LABEL_WIDTH = 16  # "Capture daemon  ": where the text of `hyp daemon status`'s lines starts


def _minute(at: object, missing: str) -> str:
    return utc_minute(at) if isinstance(at, str) and at else missing


@app.command("status", help="State, pid, mode, clients, last import, rows, last error, service. Writes nothing.")
def daemon_status(json_out: bool = typer.Option(False, "--json", help="Print one JSON document.")) -> None:
    from hypaware_tui.core.daemon.control import HEARTBEAT_S, LAGGING_AFTER_S, fmt_age, read_daemon_status
    from hypaware_tui.core.paths import hyp_home_problem
    from hypaware_tui.core.status import newer_log_error

    layout = _layout()
    with _reading(layout):
        report = read_daemon_status(layout)
    service = _service_info(layout)
    home_problem = hyp_home_problem(layout.home)
    warning = home_problem or report.warning  # (no daemon runs in a HYP_HOME that is a file)
    doc = report.to_json()  # (the text is rendered from it too: a daemon that is not running watches nothing)
    # An error the daemon logged but could not put in its status (a full disk): the status alone said none.
    log_error = newer_log_error(layout, report.status) if report.status is not None else None
    config_warning = None
    if report.running and home_problem is None:  # (runs with the config on disk? read only when it runs)
        from hypaware_tui.core.status import config_section, daemon_config_warning

        config_warning = daemon_config_warning(doc, *config_section(layout))
    if json_out:
        doc["config_warning"] = config_warning
        doc["log_error"] = log_error
        doc["warning"] = warning
        doc["service"] = service
        doc["log_path"] = str(layout.daemon_log)
        print_json(doc)
        raise typer.Exit(0)

    def show(text: str) -> None:  # (at a terminal, a line too long goes on under its text, not at column 1)
        out_labelled(text, STATUS_LABEL_WIDTH)

    show(f"Capture daemon  {report.message}")
    if warning:
        show(f"Warning         {warning}")
    if config_warning:
        show(f"Warning         {config_warning}")
    if not report.running and home_problem is None:
        from hypaware_tui.core.status import config_section

        step = daemon_next_step(doc, config_section(layout)[1], _prog(), layout.daemon_log)
        if step:
            show(f"Next            {step}")
    s = doc
    if report.status is not None:
        watch = s.get("watch") or "-"
        if watch == "polling" and s.get("watch_reason"):
            watch += f": {s['watch_reason']}"  # (file events failed, or would miss changes: why, and what to do)
        show(f"Watch           {watch}")
        # (times as `hyp status` and `hyp cache status` show them, to the minute in UTC; --json keeps ISO 8601)
        show(f"Started         {_minute(s.get('started_at'), '-')}")
        updated = f"Updated         {_minute(s.get('updated_at'), '-')}"
        age = report.status_age_s
        if report.running and age is not None and age > LAGGING_AFTER_S:
            # (no warning before STALE_AFTER_S: one long step may delay it; the fact is shown all the same)
            updated += f", status updated {fmt_age(age)} ago (written every {HEARTBEAT_S:g} s)"
        show(updated)
        show(f"Last import     {_minute(s.get('last_import_at'), 'none yet')}")
        show(f"Rows written    {fmt_int(s.get('rows_written') or 0)} (since it started)")
        clients = s.get("clients") or {}
        for name, c in clients.items():
            if not isinstance(c, dict):
                continue
            root_state = c.get("root_state") or ("-" if report.running else "not watching")
            line = (f"  {name:<8} {root_state:<13} rows {fmt_int(c.get('rows_written') or 0)}"
                    f"  last import {_minute(c.get('last_import_at'), 'none yet')}")
            if c.get("files_failed"):
                line += f"  failed: {failed_text(c['files_failed'], c.get('folders_failed') or 0)}"
            show(line)
        le = s.get("last_error")
        if isinstance(le, dict):
            show(f"Last error      {_minute(le.get('at'), '-')}  {le.get('message')}")
        else:
            show("Last error      none")
        if log_error is not None:
            show(f"Logged error    {utc_minute(log_error['at'])}  {log_error['message']} (in the log, not in the "
                "status)")
        if s.get("retention_applied_at"):
            show(f"Retention       {utc_minute(s['retention_applied_at'])} "
                f"({plural(s.get('rows_pruned') or 0, 'row')} pruned)")
    show(f"Service         {_service_line(service)}")
    if service["warning"]:
        show(f"Warning         {service['warning']}")
    show(f"Log             {short_path(layout.daemon_log)}")
    raise typer.Exit(0)


# --- install / uninstall -------------------------------------------------------------------------------

EPHEMERAL = (
    "this Python will disappear; install hypaware_tui with pipx install or uv tool install, then run "
    "hyp daemon install"
)


def _service_run(kind: str) -> tuple[str, dict[str, str]]:
    """The directory and the environment the unit's command runs in, for `_check_python`: a systemd user
    unit runs in the user's home, a launchd agent in `/`; neither has this shell's Python variables
    (PYTHONPATH, PYTHONHOME…), and the unit sets its own."""
    from hypaware_tui.core.paths import user_home

    workdir = user_home() if kind == "systemd" else "/"
    if not os.path.isdir(workdir):
        workdir = "/"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "__PYVENV_LAUNCHER__"}
    return workdir, env


def _not_an_interpreter(path: str) -> str | None:
    """Why `path` (given to --python) cannot be an interpreter at all, before running it; None if it may be."""
    if not os.path.lexists(path):
        return f"{path} does not exist"
    if not os.path.exists(path):
        return f"{path} is a link to {os.readlink(path)}, which does not exist"
    if os.path.isdir(path):
        return f"{path} is a directory, not a Python interpreter"
    if not os.access(path, os.X_OK):
        return f"{path} is not executable, so not a Python interpreter"
    return None


def _version_problem(python: str, workdir: str, env: dict[str, str]) -> str | None:
    try:
        proc = subprocess.run([python, "-m", "hypaware_tui", "--version"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL, cwd=workdir, env=env)
    except subprocess.TimeoutExpired:
        return f"{python} -m hypaware_tui --version did not finish in 60 s"
    except (OSError, subprocess.SubprocessError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOENT:  # (it exists: its `#!` line's program not)
            return f"{python} could not be run: the program its first line (#!) names does not exist"
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"{python} could not be run ({why.lower()}), so it is not a Python interpreter this system can use"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or [""]
        return f"{python} -m hypaware_tui --version failed (exit {proc.returncode}) {tail[0]}".strip()
    if not proc.stdout.strip():  # (`--python /bin/true`)
        return f"{python} -m hypaware_tui --version printed nothing, so {python} is not a Python interpreter"
    return None


def _check_python(python: str, kind: str, unit_env: dict[str, str]) -> str | None:
    """`<python> -m hypaware_tui --version` must work (daemon.md §8 SHOULD), run as the service will run it:
    in the unit's directory, with the unit's environment. Here it may work only because of PYTHONPATH or the
    current directory (a checkout: `-m` looks there first), which the service does not have; the problem then
    says so. Returns a problem or None."""
    workdir, env = _service_run(kind)
    problem = _version_problem(python, workdir, {**env, **unit_env})
    if problem is None:
        return None
    here_vars = [k for k in ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE") if os.environ.get(k)]
    try:
        cwd = os.getcwd()
    except OSError:  # (removed since)
        cwd = workdir
    here_env = {**os.environ, **unit_env}
    because = None
    if here_vars and _version_problem(python, workdir, here_env) is None:
        because = f"because of {' and '.join(here_vars)}, which the service does not have"
    elif cwd != workdir and _version_problem(python, cwd, {**env, **unit_env}) is None:
        because = f"in the current directory, {short_path(cwd)}; the service runs in {short_path(workdir)}"
    elif here_vars and cwd != workdir and _version_problem(python, cwd, here_env) is None:
        because = (f"with {' and '.join(here_vars)} and in the current directory, {short_path(cwd)}; the "
                   "service has neither")
    if because is not None:
        problem += f" (it works here only {because})"
    return problem


@app.command("install", help="Write and enable a systemd user unit (Linux) or launchd agent (macOS).")
def daemon_install(
    python: str | None = typer.Option(None, "--python", metavar="PATH",
                                      help="Interpreter the service runs (default: this one); a bare name is "
                                      "looked up on PATH."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the unit and commands; write nothing."),
) -> None:
    from hypaware_tui.core.daemon import control, settings
    from hypaware_tui.core.daemon.service import (
        ephemeral_reason,
        manager_commands,
        platform_kind,
        render_unit,
        unit_hyp_home,
        unit_problem,
        unit_spec,
    )

    layout = _layout()
    _check_home(layout)  # (a dry run too: the unit it shows would start a daemon that cannot run)
    mgr = _manager()
    kind = getattr(mgr, "kind", None) or platform_kind()
    if mgr is None or kind is None:
        _fail(f"hyp daemon install is not supported on {sys.platform}; use hyp daemon start")
    interpreter = python or sys.executable  # as is: a venv's python is a symlink that must stay one
    if python:
        interpreter = os.path.expanduser(python)
        if "/" not in interpreter:  # a command name (python3): where PATH finds it, symlinks kept as well
            found = shutil.which(interpreter)
            if found is None:
                raise typer.BadParameter(f"{interpreter} was not found on PATH; give the interpreter's path",
                                         param_hint="--python")
            interpreter = found
        interpreter = os.path.abspath(interpreter)
    if ephemeral_reason(interpreter):
        _fail(EPHEMERAL)
    not_one = _not_an_interpreter(interpreter) if python else None
    if not_one is not None:
        raise typer.BadParameter(f"{not_one}; give the path of a Python interpreter, or leave --python out",
                                 param_hint="--python")
    spec = unit_spec(interpreter, layout.home, layout.daemon_log, os.environ)
    problem = unit_problem(kind, spec)  # (a dry run too: it shows what install would write)
    if problem is not None:
        _fail(f"cannot write the {'systemd unit' if kind == 'systemd' else 'launchd agent'}: {problem}")
    text = render_unit(kind, spec)
    cfg = settings.load(layout)  # (a dry run too: no config, or an invalid one, and install would fail)
    if cfg.error is not None:
        _fail(cfg.error)
    problem = _check_python(interpreter, kind, spec.environment)  # (even for this interpreter: see there)
    if problem:
        _fail(f"{problem}. Point --python at an interpreter where hypaware_tui is installed.")
    if dry_run:
        out(f"Unit      {mgr.unit_path}")
        out("")
        out(text.rstrip("\n"))
        out("")
        out("Commands")
        for cmd in manager_commands(kind, "install", mgr.unit_path):
            out(f"  {cmd}")
        out("")
        out("Dry run: nothing was written.")
        raise typer.Exit(0)
    old_text = mgr.read_unit()
    if old_text is not None:
        old_home = unit_hyp_home(kind, old_text)
        if old_home and old_home != str(layout.home):
            out(f"replacing a unit that used HYP_HOME={old_home}")
    try:
        from hypaware_tui.core.paths import ensure_dir

        ensure_dir(layout.logs_dir)
        mgr.write_unit(text)
    except Exception as exc:  # noqa: BLE001
        _fail(f"could not write {mgr.unit_path}: {exc}")
    out(f"wrote {short_path(mgr.unit_path)}")
    if not cfg.capture_enabled:
        settings.set_capture_enabled(layout, True)
        out(f"capture was off; turned it on in {short_path(layout.config)}")
    try:
        available = mgr.available()
    except Exception:  # noqa: BLE001
        available = False
    if not available:
        if kind == "systemd":
            out(f"systemd user services are not available here; unit written to {mgr.unit_path} but not "
                "enabled. Start capture with hyp daemon start.")
        else:
            out(f"launchctl is not available here; agent written to {mgr.unit_path} but not loaded. "
                "Start capture with hyp daemon start.")
        raise typer.Exit(0)
    report = control.read_daemon_status(layout)
    if report.running and report.mode != "service":
        stopped = control.stop_daemon(layout)
        if not stopped.ok:
            _fail(f"could not stop the detached daemon (pid {report.pid}) first: {stopped.message}")
        out(f"stopped the detached daemon (pid {report.pid})")
    before = control.status_identity(layout)  # (the wait below ignores this run's report)
    try:
        mgr.reload()
        mgr.enable()
        if mgr.is_active():
            mgr.restart()
        else:
            mgr.start()
    except Exception as exc:  # noqa: BLE001
        _fail(f"the service manager could not enable the unit: {exc}. The unit is written; start capture "
              "with hyp daemon start meanwhile.")
    outcome, pid = control.wait_until_up(layout, timeout=control.START_TIMEOUT_S, pid=None, proc=None,
                                         not_run=before)
    if outcome == "up":
        out(f"capture daemon running (pid {pid}, service); it starts at login")
    else:
        out(f"service enabled; the daemon has not reported running yet (see {_prog()} daemon status and "
            f"{short_path(layout.daemon_log)})")
    if kind == "systemd":
        try:
            linger = mgr.linger_enabled()
        except Exception:  # noqa: BLE001
            linger = None
        if linger is False:
            out("capture stops when you log out; loginctl enable-linger keeps it running")
    raise typer.Exit(0)


@app.command("uninstall", help="Disable and remove the unit. Config, data and logs are kept.")
def daemon_uninstall(
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be removed; write nothing."),
) -> None:
    from hypaware_tui.core.daemon.service import manager_commands, platform_kind

    mgr = _manager()
    kind = getattr(mgr, "kind", None) or platform_kind()
    if mgr is None or kind is None:
        out("not installed")
        raise typer.Exit(0)
    try:
        installed = mgr.installed()
    except Exception as exc:  # noqa: BLE001
        _fail(f"cannot check the service: {exc}")
    if not installed:
        out("not installed" + ("; nothing would be removed" if dry_run else ""))
        raise typer.Exit(0)
    if dry_run:  # (daemon.md §8: the unit path, the unit text and the manager commands)
        out(f"Unit      {mgr.unit_path}")
        out("")
        try:
            out(Path(mgr.unit_path).read_text(errors="replace").rstrip("\n"))
        except OSError as exc:
            out(f"(cannot read it: {exc.strerror or exc})")
        out("")
        out("Commands")
        for cmd in manager_commands(kind, "uninstall", mgr.unit_path):
            out(f"  {cmd}")
        out("")
        out("Dry run: nothing was written.")
        raise typer.Exit(0)
    try:
        available = mgr.available()
    except Exception:  # noqa: BLE001
        available = False
    problems: list[str] = []
    if available:
        for step in (mgr.stop, mgr.disable):
            try:
                step()
            except Exception as exc:  # noqa: BLE001
                problems.append(str(exc))
    try:
        mgr.remove()
    except Exception as exc:  # noqa: BLE001
        _fail(f"could not remove {mgr.unit_path}: {exc}")
    if available:
        try:
            mgr.reload()
        except Exception as exc:  # noqa: BLE001
            problems.append(str(exc))
    for p in problems:
        err(f"{_where()}: warning: {p}")
    out(f"removed {short_path(mgr.unit_path)}; config, data and logs are kept")
    raise typer.Exit(0)
