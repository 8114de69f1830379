"""`hyp init` (cli.md §4, wizard.md): the wizard, `--yes`, `--dry-run` and `--demo`.

Both front ends share `core.plan`: inventory → plan → commit. This module parses flags, chooses the front
end, and renders the headless plan and summary. Textual is imported only when the wizard starts (never for
`--help`, `--yes` or a headless dry run).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer

from hypaware_tui.cli.output import Days, err, human_size, plural, print_json, printable
from hypaware_tui.core.config import MAX_RETENTION_DAYS

NOT_INTERACTIVE = ("hyp init needs an interactive terminal. For a non-interactive setup run: hyp init --yes "
                   "[--client claude] [--retention-days N] (add --dry-run to preview)")


def headless_command(prog: str, *, demo: bool = False, dry_run: bool = False, clients: Sequence[str] = (),
                     retention_days: int | None = None, no_backfill: bool = False, no_daemon: bool = False,
                     force: bool = False, json_out: bool = False) -> str:
    """`hyp init --yes` with the flags given, for a hint to run: dropping one changes what it does (without
    --demo it imports the real history into the real HYP_HOME and starts capture; without --dry-run it writes;
    without --force it stops on the existing config)."""
    given = ["--demo"] if demo else []
    given += ["--yes"] + (["--dry-run"] if dry_run else [])
    for c in clients:
        given += ["--client", c]
    if retention_days is not None:
        given += ["--retention-days", str(retention_days)]
    given += (["--no-backfill"] if no_backfill else []) + (["--no-daemon"] if no_daemon else [])
    given += (["--force"] if force else []) + (["--json"] if json_out else [])
    return f"{prog} init {' '.join(given)}"


def not_interactive_message(prog: str, **flags: Any) -> str:
    """wizard.md §2's refusal, whose hint is the command given, made headless (`headless_command`)."""
    command = headless_command(prog, **flags)
    if command == f"{prog} init --yes":  # nothing given: the spec's sentence, with the choices one can add
        return NOT_INTERACTIVE.replace("hyp init", f"{prog} init")
    return (f"{prog} init needs an interactive terminal. For a non-interactive setup run: {command}"
            + ("" if flags.get("dry_run") else " (add --dry-run to preview)"))


def register(app: typer.Typer) -> None:
    app.command("init", help="Set up hyp: pick clients, import their history, start capture.")(init_command)


def _prog(ctx: typer.Context) -> str:
    root = ctx.find_root()
    return (root.info_name or "hyp") if root is not None else "hyp"


def interactive_terminal() -> bool:
    """wizard.md §2: stdin and stdout are TTYs and TERM is not `dumb`."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


def init_command(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", "-y", help="Headless: no TUI, no prompts."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compute and show the plan; write nothing."),
    demo: bool = typer.Option(False, "--demo", help="Run against bundled sample data in a temporary HOME."),
    client: list[str] | None = typer.Option(None, "--client", metavar="CLIENT",  # noqa: B008
                                            help="claude or codex (repeatable). Default: the clients the "
                                                 "current config enables, else every detected client."),
    retention_days: int | None = typer.Option(None, "--retention-days", metavar="N",
                                              click_type=Days(0, MAX_RETENTION_DAYS),
                                              help="Window and retention in days; 0 = forever. Default: the "
                                                   "current config's, else 120."),
    no_backfill: bool = typer.Option(False, "--no-backfill", help="Do not import existing history."),
    no_daemon: bool = typer.Option(False, "--no-daemon", help="Record capture as off; do not start the daemon, and "
                                   "stop a running one."),
    force: bool = typer.Option(False, "--force", help="Headless only: replace an existing config (backup kept)."),
    json_out: bool = typer.Option(False, "--json", help="Headless only: print the summary (or plan) as JSON."),
) -> None:
    from hypaware_tui.importers import KNOWN_CLIENTS

    clients: list[str] = []
    for value in client or []:
        if value not in KNOWN_CLIENTS:
            raise typer.BadParameter(f'expected claude or codex (got "{value}")', param_hint="--client")
        if value not in clients:
            clients.append(value)
    if json_out and not yes:
        raise typer.BadParameter("--json needs --yes (the wizard prints no JSON)", param_hint="--json")
    if not yes and not interactive_terminal():
        err(not_interactive_message(_prog(ctx), demo=demo, dry_run=dry_run, clients=clients,
                                    retention_days=retention_days, no_backfill=no_backfill, no_daemon=no_daemon,
                                    force=force))
        raise typer.Exit(2)

    demo_dir = None
    env: dict[str, str] = dict(os.environ)
    if demo:
        from hypaware_tui.core.demo import create_demo_dir
        from hypaware_tui.core.timeutil import now_us

        demo_dir = create_demo_dir(now_us())
        env = demo_dir.env(os.environ)
        # Everything in this process now sees the demo HOME; the real HOME and HYP_HOME are never read.
        os.environ.update({k: env[k] for k in ("HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "HYP_HOME")})
    from hypaware_tui.core.paths import Layout, hyp_home_problem

    home = Layout.resolve(env).home
    # (else: "a config already exists at <file>/…"; and a HYP_HOME that cannot be created, under a folder this
    # user may not write in, failed only at the commit: "Config failed: Permission denied", after the Review)
    problem = hyp_home_problem(home, create=not dry_run)
    if problem is not None:
        err(f"{_prog(ctx)} init: {problem}")
        if json_out:
            print_json(failure_json(problem, home, dry_run=dry_run))
        raise typer.Exit(1)
    try:
        if yes:
            code = run_headless(
                _prog(ctx), env, clients=clients, retention_days=retention_days, dry_run=dry_run,
                demo_dir=demo_dir.root if demo_dir else None, no_backfill=no_backfill, no_daemon=no_daemon,
                force=force, json_out=json_out,
            )
        else:
            code = run_wizard(env, clients=clients, retention_days=retention_days, dry_run=dry_run,
                              demo_dir=demo_dir.root if demo_dir else None, no_backfill=no_backfill,
                              no_daemon=no_daemon)
    finally:
        # A demo keeps its directory (its results), except a dry run's, or one quit before the commit point
        # (its HYP_HOME was never created: there is nothing to look at).
        if demo_dir is not None and (dry_run or not demo_dir.hyp_home.exists()):
            from hypaware_tui.core.demo import remove_demo_dir

            remove_demo_dir(demo_dir)
    raise typer.Exit(code)


# --------------------------------------------------------------------------------------------- wizard


def welcome_back_facts(layout: Any, env: Mapping[str, str], machine: Any) -> tuple[tuple[str, str], ...]:
    """Config path, enabled clients, retention, dataset size, rows and range, daemon state (read-only)."""
    from hypaware_tui.core.plan import client_name, join_names, tilde

    cfg = machine.config
    facts: list[tuple[str, str]] = [("Config", tilde(cfg.path, env) + ("" if cfg.valid else " (invalid)"))]
    if cfg.valid:
        facts.append(("Clients", join_names([client_name(c) for c in cfg.enabled_clients]) or "none enabled"))
        days = cfg.retention_days
        facts.append(("Retention", "forever" if days == 0 else plural(days, "day")))
        facts.append(("Capture", "on" if cfg.capture_enabled else "off"))
    try:  # the quick sections of `hyp status` (no inventory: the wizard runs its own)
        from hypaware_tui.core.status import daemon_section, dataset_section

        report = {"dataset": dataset_section(layout), "daemon": daemon_section(layout)}
        ds = report.get("dataset") or {}
        if ds.get("total_rows"):
            # (the dates of the partitions, which are UTC dates: said, beside the local dates of other screens)
            span = f"{(ds.get('oldest') or '')[:10]} → {(ds.get('newest') or '')[:10]} (UTC)"
            facts.append(("Dataset", f"{human_size(ds.get('bytes') or 0)} · {plural(ds['total_rows'], 'row')} · {span}"))
        else:
            facts.append(("Dataset", "empty"))
        d = report.get("daemon") or {}
        state = d.get("state") or ("running" if d.get("running") else "never started")
        if d.get("ended_unexpectedly"):  # killed or crashed: not the same news as a daemon stopped on purpose
            from hypaware_tui.core.daemon.control import ended_unexpectedly_text

            state += f" ({ended_unexpectedly_text(d)})"
        pid = f" (pid {d['pid']})" if d.get("running") and d.get("pid") else ""
        stale = ", status stale: see hyp daemon status" if d.get("stale") else ""
        facts.append(("Daemon", f"{state}{pid}{stale}"))
    except Exception as exc:  # noqa: BLE001 - the screen still works without these facts
        facts.append(("Dataset", f"unknown ({type(exc).__name__})"))
    return tuple(facts)


def run_wizard(env: dict[str, str], *, clients: list[str], retention_days: int | None, dry_run: bool,
               demo_dir: Path | None, no_backfill: bool, no_daemon: bool) -> int:
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.plan import gather_machine_state

    layout = Layout.resolve(env)
    machine = gather_machine_state(layout, env, demo=demo_dir is not None)
    facts = welcome_back_facts(layout, env, machine) if machine.config.exists else ()

    from hypaware_tui.app import WizardApp, WizardSettings  # Textual is imported here, and only here

    settings = WizardSettings(
        layout=layout, env=env, machine=machine, dry_run=dry_run, demo_dir=demo_dir,
        seed_clients=tuple(clients) or None, seed_retention=retention_days, seed_import=not no_backfill,
        seed_capture=not no_daemon, welcome_back_facts=facts, handle_signals=True, import_finish_delay=1.0,
    )
    app = WizardApp(settings)
    app.run()
    code = app.return_code if app.return_code is not None else 1
    if app.terminal_lost:
        # Nobody is there to read it, and each write would fail (EIO); the events log has the run's outcome.
        return code
    if app.unexpected_error:
        err(f"hyp init: unexpected error: {app.unexpected_error}")
        err("Run it again with HYP_DEBUG=1 to see the traceback.")
        return 1
    if app.result is not None:
        from hypaware_tui.core.plan import summary_text

        sys.stdout.write(printable(summary_text(app.result, env, _terminal_width()), newlines=True))
        sys.stdout.flush()
    elif code == 130:
        err("hyp init: cancelled; nothing was written.")
    return code


# --------------------------------------------------------------------------------------------- headless


def run_headless(prog: str, env: dict[str, str], *, clients: list[str], retention_days: int | None,
                 dry_run: bool, demo_dir: Path | None, no_backfill: bool, no_daemon: bool, force: bool,
                 json_out: bool, service_manager: Any = ..., spawner: Any = None,
                 importers: Mapping[str, Any] | None = None, _again: bool = False) -> int:
    """wizard.md §9 and §10.1 (headless). Returns the exit code."""
    from hypaware_tui.core.inventory import build_inventory
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.plan import Choices, build_plan, gather_machine_state
    from hypaware_tui.core.timeutil import now_us
    from hypaware_tui.core.window import DEFAULT_RETENTION_DAYS
    from hypaware_tui.importers import KNOWN_CLIENTS

    layout = Layout.resolve(env)
    machine = gather_machine_state(layout, env, demo=demo_dir is not None, service_manager=service_manager)
    existing = machine.config
    if existing.exists and not force and not dry_run:
        again = headless_command(prog, clients=clients, retention_days=retention_days, no_backfill=no_backfill,
                                 no_daemon=no_daemon, force=True, json_out=json_out)
        if existing.valid:
            message = (f"a config already exists at {existing.path}. Re-run with --force to replace it "
                       f"({again}; a backup is kept), or use {prog} backfill to import again.")
        else:  # (hyp backfill stops on an invalid config: --force is the way out)
            message = (f"the config is invalid: {existing.error}. Replace it with {again} (a backup is kept), "
                       "or fix the file.")
        err(f"{prog} init: {message}")
        if json_out:
            print_json(failure_json(message, layout.home, dry_run=dry_run, demo_dir=demo_dir))
        return 1
    config_data = existing.data if existing.valid else None
    inventory = build_inventory(KNOWN_CLIENTS, config=config_data, env=env, importers=importers)
    replacing = existing.valid and (force or dry_run)

    if clients:
        chosen = list(clients)
    elif replacing and existing.enabled_clients:
        chosen = list(existing.enabled_clients)
        err(f"clients: {', '.join(chosen)} (kept from existing config)")
    else:
        chosen = [ci.client for ci in inventory if ci.detected]
    if not chosen:
        roots = [r for ci in inventory for r in (ci.detection.roots or ((ci.root,) if ci.root else ()))]
        err(f"{prog} init: no Claude Code or Codex history found (looked in {', '.join(roots)}). Name a client "
            "with --client, or try hyp init --demo --yes.")
        return 2
    for c in chosen:
        ci = inventory.clients.get(c)
        if ci is not None and not ci.detected:
            err(f"{prog} init: warning: {ci.name} not detected ({ci.reason}); its import will be skipped.")

    if retention_days is not None:
        retention = retention_days
    elif replacing and existing.retention_days is not None:
        retention = existing.retention_days
        err(f"retention: {'forever' if retention == 0 else plural(retention, 'day')} (kept from existing config)")
    else:
        retention = DEFAULT_RETENTION_DAYS

    choices = Choices(clients=tuple(c for c in KNOWN_CLIENTS if c in chosen), retention_days=retention,
                      import_history=not no_backfill, capture=not no_daemon)
    plan = build_plan(inventory, choices, machine, now_us=now_us(), dry_run=dry_run, demo_dir=demo_dir,
                      named_clients=clients, force=force)
    if dry_run:
        if json_out:
            from hypaware_tui.core.plan import plan_json

            print_json(plan_json(plan))
        else:
            print_plan_text(plan, env)
        return 0
    # The warnings the wizard shows on Review, before anything is written (a `--force --retention-days 30` over
    # a keep-forever history deleted rows without a word: wizard.md §6.3; a service unit of another HYP_HOME). A
    # client named and not detected was said above, and the import says itself that the dataset was replaced.
    from hypaware_tui.core.plan import named_not_detected_warning

    said = {named_not_detected_warning(cp.name, cp.reason) for cp in plan.clients if not cp.detected}
    said.add(machine.dataset_replaced)
    for w in plan.warnings:
        if w not in said:
            err(f"{prog} init: warning: {w}")
    code = _commit_headless(prog, plan, layout, env, inventory, json_out=json_out, force=force, again=_again,
                            service_manager=service_manager, spawner=spawner, importers=importers)
    if code is None:
        # Another hyp init wrote a config between the look above and the write (nothing was written): the run
        # ends as if that config had been there from the start (wizard.md §9.3), by the same check and message.
        return run_headless(prog, env, clients=clients, retention_days=retention_days, dry_run=dry_run,
                            demo_dir=demo_dir, no_backfill=no_backfill, no_daemon=no_daemon, force=force,
                            json_out=json_out, service_manager=service_manager, spawner=spawner,
                            importers=importers, _again=True)
    return code


def failure_json(error: str, hyp_home: Path, *, dry_run: bool, demo_dir: Path | None = None) -> dict[str, Any]:
    """The `--json` document of a headless run that stopped before its plan (exit 1; cli.md §1): the summary's
    keys known then (cli.md §4.2), `exit_code` and `error` (the message on stderr, without `hyp init: `)."""
    return {"command": "init", "dry_run": dry_run, "demo_dir": str(demo_dir) if demo_dir else None,
            "hyp_home": str(hyp_home), "exit_code": 1, "error": error}


def _commit_headless(prog: str, plan: Any, layout: Any, env: Mapping[str, str], inventory: Any, *,
                     json_out: bool, force: bool, again: bool, service_manager: Any, spawner: Any,
                     importers: Mapping[str, Any] | None) -> int | None:
    """The commit and its summary; the exit code. None (nothing written, nothing printed): a config was written
    by someone else since the plan was made, and this run has no --force (`again`: already the second look,
    when the config was gone again by then: reported as a failed config)."""
    from hypaware_tui.cli.backfill import PlainSink, RichSink, _Interrupts
    from hypaware_tui.core.plan import commit, summary_json, summary_text

    cancel = threading.Event()
    use_rich = sys.stderr.isatty()
    # (the layout: a wait for the write lock names the capture daemon holding it, as `hyp backfill` does)
    sink: Any = (RichSink(prog, dry_run=False, layout=layout) if use_rich
                 else PlainSink(prog, dry_run=False, layout=layout))
    # The notice of a first Ctrl+C goes through the live panels' console: written straight to the terminal, past
    # them, it was erased by their next repaint, which left two lines of the panels above them (init audit).
    with _Interrupts(prog, cancel, sink.say if use_rich else None):
        if use_rich:
            sink.start()
        try:
            result = commit(plan, layout, env=env, inventory=inventory, sink=sink, cancel=cancel,
                            importers=importers, service_manager=service_manager, spawner=spawner, force=force)
        finally:
            if use_rich:
                sink.stop()
    if result.config is not None and result.config.exists and not again:
        return None
    if cancel.is_set():
        result.interrupted = True
    if json_out:
        print_json(summary_json(result))
    else:
        sys.stdout.write(printable(summary_text(result, env, _terminal_width()), newlines=True))
        sys.stdout.flush()
    return result.exit_code


def _terminal_width() -> int | None:
    """The terminal's width when stdout is one (the summary adapts its table); None otherwise."""
    import shutil

    try:
        return shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    except (AttributeError, ValueError, OSError):
        return None


def print_plan_text(plan: Any, env: Mapping[str, str]) -> None:
    """cli.md §4.3 text: the Review screen's blocks as Rich tables, headed `Dry run: nothing was written.`"""
    from rich.syntax import Syntax
    from rich.table import Table

    from hypaware_tui.cli.output import out_console
    from hypaware_tui.core.plan import tilde
    from hypaware_tui.core.window import local_date_range, local_dates_note

    console = out_console()
    console.print("Dry run: nothing was written.", markup=False)
    console.print()
    console.print(f"Window    {plan.window_text()}", markup=False)
    console.print()
    table = Table(box=None, pad_edge=False, header_style="bold", title_justify="left")
    for name, justify in (("Client", "left"), ("Import", "left"), ("Files", "right"), ("Sessions", "right"),
                          ("Size", "right"), ("Oldest → newest", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    notes = []
    shown: list[int | None] = []
    for c in plan.clients:
        f = c.in_window
        span = local_date_range(f.oldest_us, f.newest_us) if f.files else "—"
        if f.files:
            shown += [f.oldest_us, f.newest_us]
        if c.import_:
            state = "yes"
        elif not c.selected:
            state = "not selected"
        elif not c.detected:
            state = "not detected"
            notes.append(f"  {c.client}: {printable(str(c.reason))}")
        else:
            state = "declined"
        table.add_row(c.name, state, f"{f.files:,}", f"{f.sessions:,}", human_size(f.bytes), span)
    console.print("Clients   in the window, upper bounds:", markup=False)
    console.print(table)
    if any(us is not None for us in shown):  # (local dates, as Review's and hyp backfill plan's)
        console.print(local_dates_note(*shown), markup=False)
    for note in notes:
        console.print(note, markup=False)
    console.print()
    cfg = plan.config
    if cfg.action == "create":
        state = "new"
    else:  # (an existing config, even one left unchanged, stops a real run without --force: wizard.md §9.3)
        state = "unchanged" if cfg.action == "unchanged" else f"replace (backup: {cfg.backup})"
        state += "; a real run needs --force" if cfg.needs_force else ""
    # (printable: the paths, reasons and warnings are shown as they are, their escape sequences as `\x1b`)
    console.print(printable(f"Config    {tilde(cfg.path, env)} · {state}"), markup=False)
    for change in cfg.changes:
        console.print(printable(f"          {change}"), markup=False)
    # (JSON escapes C0 controls, not DEL or C1: U+009B in a root is a one-character CSI)
    console.print(Syntax(printable(cfg.text.rstrip("\n"), newlines=True), "json", theme="ansi_dark",
                         background_color="default"))
    d = plan.daemon
    console.print(printable(f"Daemon    {d.action} · {d.reason}" + (f" · {d.mode}" if d.mode else "")), markup=False)
    if plan.warnings:
        console.print()
        for w in plan.warnings:
            console.print(printable(f"Warning   {w}"), markup=False)
