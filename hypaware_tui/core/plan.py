"""The `hyp init` plan and its commit (wizard.md §1, §6.5-6.6, §9-§11; cli.md §4; daemon.md §3.2, §9).

One core, two front ends: the Textual wizard and the headless `--yes` / `--dry-run` path both go

    inventory (core.inventory) → build_plan(...) → InitPlan (immutable) → commit steps → InitResult

* `build_plan` is pure: it reads nothing and writes nothing. Everything it shows (window, per-client
  figures, the exact config text, the backup name, the daemon action, warnings) comes from the inventory in
  memory and a `MachineState` gathered once by `gather_machine_state` (read-only).
* The commit is three steps, run in this order, so the wizard's worker can report each one:
  `write_config_step` (back up + write the config atomically + record the capture start),
  `import_step` (the runner, with a progress sink and a cancel flag) and `daemon_step` (daemon.md §9).
  `commit` runs all three for the headless path.
* `summary_text` / `summary_json` render the cli.md §4.2 summary; `plan_json` the §4.3 plan.

No Textual or Rich here.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypaware_tui.core import prog
from hypaware_tui.core.fmt import hanging_lines, plural, printable, wrap_line
from hypaware_tui.core.inventory import ClientInventory, Figures, Inventory, client_figures, older_than
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.timeutil import us_to_iso, us_to_local
from hypaware_tui.core.window import DEFAULT_RETENTION_DAYS, import_floor_us
from hypaware_tui.importers import DISPLAY_NAMES, KNOWN_CLIENTS
from hypaware_tui.importers.base import FUTURE_SKEW_US

RETENTION_PRESETS: tuple[int, ...] = (30, 90, 120, 365, 0)

MODE_FIRST = "first"
MODE_RECONFIGURE = "reconfigure"
MODE_IMPORT_AGAIN = "import_again"


def client_name(client: str) -> str:
    return DISPLAY_NAMES.get(client, client)


def join_names(names: Sequence[str]) -> str:
    """`Claude Code`, `Claude Code and Codex`, `A, B and C`."""
    names = list(names)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def tilde(path: str | os.PathLike[str], env: Mapping[str, str]) -> str:
    """`/home/ada/.hyp/x` -> `~/.hyp/x` (display only)."""
    text = os.fspath(path)
    home = (env.get("HOME") or "").rstrip("/")
    if home and (text == home or text.startswith(home + "/")):
        return "~" + text[len(home):]
    return text


# --------------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class ExistingConfig:
    """The config file found on disk, read once (never written here)."""

    path: Path
    exists: bool = False
    raw: bytes | None = None
    data: Mapping[str, Any] | None = None  # the parsed object, unknown keys included (None when invalid)
    error: str | None = None  # why it is invalid

    @property
    def valid(self) -> bool:
        return self.exists and self.data is not None and self.error is None

    @property
    def enabled_clients(self) -> tuple[str, ...]:
        if not self.valid:
            return ()
        clients = self.data.get("clients") or {}
        return tuple(c for c in KNOWN_CLIENTS
                     if isinstance(clients.get(c), Mapping) and clients[c].get("enabled", True) is True)

    @property
    def retention_days(self) -> int | None:
        if not self.valid:
            return None
        value = self.data.get("retention_days", DEFAULT_RETENTION_DAYS)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    @property
    def capture_enabled(self) -> bool | None:
        if not self.valid:
            return None
        capture = self.data.get("capture")
        if isinstance(capture, Mapping):
            return bool(capture.get("enabled", True))
        return True


@dataclass(frozen=True)
class DaemonState:
    """What the daemon action depends on (daemon.md §9): is one running, is a service unit installed."""

    running: bool = False
    pid: int | None = None
    service_installed: bool = False
    manager_available: bool = False
    unit_other_home: str | None = None  # the installed unit runs hyp with this other HYP_HOME


@dataclass(frozen=True)
class MachineState:
    """Everything `build_plan` needs from the machine besides the inventory, read once, read-only."""

    hyp_home: Path
    config: ExistingConfig
    daemon: DaemonState = DaemonState()
    home: str = ""
    partition_rows: tuple[tuple[str, int], ...] | None = None  # (date, stored rows) per dataset partition
    # The dataset is not the one the checkpoints describe (deleted, or restored from an older copy): what the
    # next import does about it (`storage.dataset_replaced_text`), for the Review's warnings.
    dataset_replaced: str | None = None

    def rows_older_than(self, retention_days: int, now_us: int) -> int | None:
        """Rows a retention of `retention_days` would delete at the next daily cleanup (None: unknown)."""
        from hypaware_tui.core.window import cut_date

        cut = cut_date(retention_days, now_us)
        if cut is None or self.partition_rows is None:
            return None
        return sum(rows for date, rows in self.partition_rows if date < cut)


@dataclass(frozen=True)
class Choices:
    """The answers: which clients, how long, import existing history, keep capturing."""

    clients: tuple[str, ...]
    retention_days: int = DEFAULT_RETENTION_DAYS
    import_history: bool = True
    capture: bool = True

    def with_clients(self, clients: Sequence[str]) -> Choices:
        return replace(self, clients=tuple(c for c in KNOWN_CLIENTS if c in set(clients)))


# --------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ClientPlan:
    client: str
    name: str
    detected: bool
    reason: str | None
    root: str | None
    selected: bool
    import_: bool  # selected, detected and the import accepted
    total: Figures
    in_window: Figures
    older: Figures

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "name": self.name,
            "detected": self.detected,
            "reason": self.reason,
            "selected": self.selected,
            "import": self.import_,
            "root": self.root,
            "total": self.total.to_json(),
            "in_window": self.in_window.to_json(),
        }


@dataclass(frozen=True)
class ConfigPlan:
    path: Path
    action: str  # create | replace | unchanged
    needs_force: bool
    backup: str | None  # file name of the backup (beside the config) when replacing
    text: str  # the exact file text that will be written (or the current text when unchanged)
    changes: tuple[str, ...] = ()


@dataclass(frozen=True)
class InitPlan:
    hyp_home: Path
    mode: str
    dry_run: bool
    demo_dir: Path | None
    choices: Choices
    since_us: int | None
    until_us: int
    clients: tuple[ClientPlan, ...]
    config: ConfigPlan
    daemon: Any  # core.daemon.action.DaemonAction
    warnings: tuple[str, ...] = ()
    previously_enabled: tuple[str, ...] = ()
    planned_at_us: int = 0  # when the plan was made (the backup name shown on Review)

    @property
    def retention_days(self) -> int:
        return self.choices.retention_days

    @property
    def import_clients(self) -> tuple[str, ...]:
        return tuple(c.client for c in self.clients if c.import_)

    @property
    def selected_clients(self) -> tuple[str, ...]:
        return tuple(c.client for c in self.clients if c.selected)

    def client(self, name: str) -> ClientPlan:
        return next(c for c in self.clients if c.client == name)

    def window_text(self) -> str:
        """`2026-05-02 00:00 UTC → now (120 days)` or `everything → now` (Review, `hyp init --dry-run`). The
        floor is 00:00 UTC of the cut date (cli.md §5.1), and says so, as the summary's Window line after the
        import does: beside the local dates of the clients' history, a bare `2026-05-02` read as a local date."""
        if self.since_us is None:
            return "everything → now"
        return f"{us_to_iso(self.since_us)[:10]} 00:00 UTC → now ({plural(self.retention_days, 'day')})"


def backup_name(config_path: Path, now_us: int) -> str:
    stamp = datetime.fromtimestamp(now_us / 1e6, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{config_path.name}.bak-{stamp}"


def new_config_data(existing: ExistingConfig, choices: Choices, *, demo: bool = False) -> dict[str, Any]:
    """The config to write: the existing object (unknown keys and hand edits kept) with the four managed
    keys set; defaults when there is none or it is invalid. A demo's has capture off: it never starts the
    daemon (wizard.md §10.2), and with capture on `hyp status` told the user to start one, which would have
    captured their real history (the daemon reads the real HOME) into the demo's dataset."""
    from hypaware_tui.core.config import build_config_data

    return build_config_data(
        dict(existing.data) if existing.valid else None,
        clients={c: c in choices.clients for c in KNOWN_CLIENTS},
        retention_days=choices.retention_days,
        capture_enabled=choices.capture and not demo,
    )


def render_config_text(data: Mapping[str, Any]) -> str:
    from hypaware_tui.core.config import render_config

    return render_config(data)


def config_changes(existing: ExistingConfig, choices: Choices) -> tuple[str, ...]:
    """`retention: 365 → 120 days`, `codex: on → off`, `capture: on → off` (Reconfigure)."""
    if not existing.valid:
        return ()
    out = []
    old_ret = existing.retention_days
    if old_ret is not None and old_ret != choices.retention_days:
        out.append(f"retention: {_days(old_ret)} → {_days(choices.retention_days)}")
    old = set(existing.enabled_clients)
    for c in KNOWN_CLIENTS:
        before, after = c in old, c in choices.clients
        if before != after:
            out.append(f"{c}: {'on' if before else 'off'} → {'on' if after else 'off'}")
    if existing.capture_enabled is not None and existing.capture_enabled != choices.capture:
        out.append(f"capture: {'on' if existing.capture_enabled else 'off'} → {'on' if choices.capture else 'off'}")
    return tuple(out)


def _canonical(data: Any) -> str:
    """JSON text that is the same for the same data whatever its key order (1, 1.0 and true stay apart)."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def _spelled_out(existing: ExistingConfig, data: Mapping[str, Any]) -> tuple[str, ...]:
    """Why a config with no setting changed is written all the same: it leaves keys to their defaults (no
    `version`, no `capture`) or spells a value in another form; the new file writes them out. Review says so
    rather than showing `replace` over an empty change list."""
    if not existing.valid:
        return ()
    keys = [k for k in data if _canonical(existing.data.get(k)) != _canonical(data[k])]
    return (f"same settings, with {join_names(keys)} written out in full",) if keys else ()


def _days(days: int) -> str:
    return "forever" if days == 0 else plural(days, "day")


CAPTURE_OFF_IN_CONFIG = "not started (capture is off in the config)"


def plan_daemon(state: DaemonState, *, capture: bool, config_changed: bool, demo: bool,
                user_declined: bool = False, off_in_config: bool = False) -> Any:
    """daemon.md §9, from facts gathered once (pure). `off_in_config`: capture is off because the config says so
    (Import again), not by a choice made in this run."""
    from hypaware_tui.core.daemon.action import DaemonAction, decide

    if demo:
        return DaemonAction("none", None, "not started (demo)")
    action, reason = decide(capture, state.running, config_changed)
    if action == "none" and not capture and (user_declined or off_in_config):
        reason = CAPTURE_OFF_IN_CONFIG if off_in_config else "not started (you chose not to)"
    # A unit for another HYP_HOME would start a daemon there: detached here (the Review warns about the unit),
    # and Done suggests hyp daemon install as when none is installed.
    installed = state.service_installed and state.unit_other_home is None
    usable = installed and state.manager_available
    mode = None if action == "none" else ("service" if usable else "detached")
    return DaemonAction(action, mode, reason, running_pid=state.pid, service_installed=installed)


def named_not_detected_warning(name: str, reason: str | None) -> str:
    return f"{name} was named but not detected ({reason}); its import will be skipped."


def shorter_retention_warning(existing: ExistingConfig, retention_days: int, rows_older: int | None, *,
                              capture: bool | None = None, daemon_running: bool = False) -> str | None:
    """wizard.md §6.3: a window shorter than the configured one deletes rows at the next daily cleanup. With no
    configured one to compare with (no config, or one that cannot be read, which Reconfigure replaces), the
    dataset's rows older than the window are what it deletes: said when there are any (a Reconfigure over a
    broken config chose 30 days and the new daemon's first cleanup deleted 12,594 rows, without a word).

    `capture`: the plan's choice (None: not asked yet, on the Retention screen). Off, no daily cleanup runs:
    the rows go at the next `hyp cache prune` (it said "at the next daily cleanup", which never came). On,
    with no daemon running, a window no shorter than the config's also warns when the dataset holds rows
    older than it (a retention lowered by hand, or rows that aged past it while capture was off): the new
    daemon's first cleanup deletes them (it did, without a word). A running daemon deletes such rows every
    day: nothing new to say."""
    when = ("will be deleted by the next hyp cache prune (capture is off, so no daily cleanup runs)"
            if capture is False else "will be deleted at the next daily cleanup")
    old = existing.retention_days
    if old is None or not existing.valid:
        if retention_days == 0 or not rows_older:
            return None
        why = "Your config cannot be read" if existing.exists else "There is no config"
        return (
            f"{why}, and hyp's dataset holds rows older than {plural(retention_days, 'day')} (about {rows_older:,}): "
            f"they {when}."
        )
    if retention_days == 0:
        return None
    if old != 0 and retention_days >= old:
        if not rows_older or capture is False or daemon_running:
            return None
        return (f"hyp's dataset holds rows older than {plural(retention_days, 'day')} (about {rows_older:,}): they "
                f"{when}.")
    if rows_older is None:
        older = ""
    elif rows_older == 0:
        older = " (none right now)"
    else:
        older = f" (about {rows_older:,})"
    current = "keep-forever setting" if old == 0 else f"current {plural(old, 'day')}"
    return f"Shorter than your {current}: rows older than {plural(retention_days, 'day')}{older} {when}."


def build_plan(
    inventory: Inventory,
    choices: Choices,
    machine: MachineState,
    *,
    now_us: int,
    mode: str = MODE_FIRST,
    dry_run: bool = False,
    demo_dir: Path | None = None,
    named_clients: Sequence[str] = (),
    rows_older: int | None = None,
    force: bool = False,
) -> InitPlan:
    """The immutable plan for `choices` (pure: reads and writes nothing). `force`: replacing an existing
    config is allowed (headless `--force`; the wizard's Review is the confirmation)."""
    existing = machine.config
    if rows_older is None:
        rows_older = machine.rows_older_than(choices.retention_days, now_us)
    since = import_floor_us(choices.retention_days, now_us)
    beyond = now_us + FUTURE_SKEW_US  # the import keeps the rows stamped later (Window.beyond_until)
    clients = []
    for c in KNOWN_CLIENTS:
        ci: ClientInventory | None = inventory.clients.get(c)
        detected = bool(ci and ci.detected)
        selected = c in choices.clients
        clients.append(
            ClientPlan(
                client=c,
                name=client_name(c),
                detected=detected,
                reason=ci.reason if ci else "not inventoried",
                root=ci.root if ci else None,
                selected=selected,
                import_=selected and detected and choices.import_history,
                total=client_figures(ci) if ci else Figures(),
                in_window=client_figures(ci, since, now_us, beyond_us=beyond) if ci else Figures(),
                older=older_than(ci, since) if ci else Figures(),
            )
        )

    config_path = Path(machine.hyp_home) / "hypaware-config.json"
    if mode == MODE_IMPORT_AGAIN and existing.valid:
        # (utf-8-sig: a BOM is no content; the text is parsed again for the import, as parse_config reads it)
        text = existing.raw.decode("utf-8-sig", "replace") if existing.raw else ""
        cfg = ConfigPlan(config_path, "unchanged", not force, None, text)
    else:
        data = new_config_data(existing, choices, demo=demo_dir is not None)
        text = render_config_text(data)
        if not existing.exists:
            cfg = ConfigPlan(config_path, "create", False, None, text)
        elif existing.valid and _canonical(existing.data) == _canonical(data):
            # The same settings, only formatted differently (a hand-written file, keys in another order): it is
            # left as it is. Rewriting it changed nothing the user chose, yet made a backup, replaced their
            # layout and counted as a config change (a running daemon restarted), under an empty change list.
            # A headless run without --force still stops on it (wizard.md §9.3): its dry run says so.
            cfg = ConfigPlan(config_path, "unchanged", not force, None,
                             existing.raw.decode("utf-8-sig", "replace") if existing.raw else text)
        else:
            cfg = ConfigPlan(
                config_path,
                "replace",
                not force,
                backup_name(config_path, now_us),
                text,
                config_changes(existing, choices) or _spelled_out(existing, data),
            )
    config_changed = cfg.action != "unchanged"
    again = mode == MODE_IMPORT_AGAIN  # (the choices are the config's: no question was asked)
    daemon = plan_daemon(machine.daemon, capture=choices.capture, config_changed=config_changed,
                         demo=demo_dir is not None, user_declined=not choices.capture and not again,
                         off_in_config=not choices.capture and again)

    warnings = []
    w = shorter_retention_warning(existing, choices.retention_days, rows_older, capture=choices.capture,
                                  daemon_running=machine.daemon.running)
    if w:
        warnings.append(w)
    for c in named_clients:
        cp = next((x for x in clients if x.client == c), None)
        if cp is not None and not cp.detected:
            warnings.append(named_not_detected_warning(cp.name, cp.reason))
    if machine.dataset_replaced:
        warnings.append(machine.dataset_replaced)
    if machine.daemon.unit_other_home is not None and demo_dir is None:
        from hypaware_tui.core.daemon.service import other_home_warning

        w = other_home_warning(machine.daemon.unit_other_home)
        warnings.append(f"{w[0].upper()}{w[1:]}" + (" (the daemon starts detached meanwhile)."
                                                    if daemon.mode == "detached" else "."))
    return InitPlan(
        hyp_home=Path(machine.hyp_home),
        mode=mode,
        dry_run=dry_run,
        demo_dir=demo_dir,
        choices=choices,
        since_us=since,
        until_us=now_us,
        clients=tuple(clients),
        config=cfg,
        daemon=daemon,
        warnings=tuple(warnings),
        previously_enabled=existing.enabled_clients,
        planned_at_us=now_us,
    )


def with_until(plan: InitPlan, until_us: int) -> InitPlan:
    """The plan at the commit point: `until` captured once; the window and in-window figures follow it."""
    if until_us == plan.until_us:
        return plan
    since = import_floor_us(plan.choices.retention_days, until_us)
    return replace(plan, until_us=until_us, since_us=since)


def plan_json(plan: InitPlan) -> dict[str, Any]:
    """cli.md §4.3."""
    cfg = plan.config
    return {
        "command": "init",
        "dry_run": True,
        "demo_dir": str(plan.demo_dir) if plan.demo_dir else None,
        "hyp_home": str(plan.hyp_home),
        "retention_days": plan.retention_days,
        "window": {"since": us_to_iso(plan.since_us), "until": us_to_iso(plan.until_us)},
        "clients": [c.to_json() for c in plan.clients],
        "config": {
            "path": str(cfg.path),
            "action": cfg.action,
            "needs_force": cfg.needs_force,
            "backup": cfg.backup,
            "text": cfg.text,
        },
        "daemon": {"action": plan.daemon.action, "mode": plan.daemon.mode, "reason": plan.daemon.reason},
        "warnings": list(plan.warnings),
    }


# --------------------------------------------------------------------------------------------- gather


def read_existing_config(layout: Layout) -> ExistingConfig:
    """Read (never write) the config. Invalid files are described, not raised."""
    from hypaware_tui.core.config import ConfigError, parse_config, read_config_bytes

    path = layout.config
    try:
        raw = read_config_bytes(path)
    except ConfigError as exc:  # not a regular file (never opened), or unreadable
        return ExistingConfig(path, True, None, None, str(exc))
    if raw is None:
        return ExistingConfig(path)
    try:
        cfg = parse_config(raw, path)
    except ConfigError as exc:
        return ExistingConfig(path, True, raw, None, str(exc))
    return ExistingConfig(path, True, raw, cfg.raw, None)


def gather_machine_state(layout: Layout, env: Mapping[str, str], *, demo: bool = False,
                         service_manager: Any = ..., process_table: Callable[[Layout], int | None] | None = None
                         ) -> MachineState:
    """Config and daemon facts, read-only (a demo never looks at any daemon). `service_manager=...` means
    the platform's manager; `process_table` defaults to the daemon's status file and pid lock."""
    existing = read_existing_config(layout)
    daemon = DaemonState()
    if not demo:
        from hypaware_tui.core.daemon import action

        pid = (process_table or action.real_process_table)(layout)
        manager = action._safe_manager() if service_manager is ... else service_manager
        installed = available = False
        other = None
        if manager is not None:
            try:
                installed = bool(manager.installed())
                available = installed and bool(manager.available())
            except Exception:  # noqa: BLE001 - a broken manager means: detached
                installed = available = False
            if installed:
                from hypaware_tui.core.daemon.service import unit_other_home

                other = unit_other_home(manager, layout.home)
        daemon = DaemonState(running=pid is not None, pid=pid, service_installed=installed,
                             manager_available=available, unit_other_home=other)
    partition_rows = None
    if layout.dataset_root.is_dir():  # (a dataset without a config too: the retention chosen may delete rows)
        try:  # Parquet footers only: quick, read-only (for "about N rows will be deleted")
            from hypaware_tui.core.storage import dataset_stats

            stats = dataset_stats(layout)
            partition_rows = tuple((p.date, p.rows) for p in stats.partitions)
        except Exception:  # noqa: BLE001 - the count is optional (wizard.md §6.3)
            partition_rows = None
    replaced = None
    if not demo:
        try:  # (a stat, the checkpoint database's meta: read-only)
            from hypaware_tui.core.storage import dataset_replaced, dataset_replaced_text

            replaced = dataset_replaced_text(layout, ahead=True) if dataset_replaced(layout) else None
        except Exception:  # noqa: BLE001 - a warning, never a reason to fail the plan
            replaced = None
    return MachineState(hyp_home=layout.home, config=existing, daemon=daemon, home=env.get("HOME", ""),
                        partition_rows=partition_rows, dataset_replaced=replaced)


# --------------------------------------------------------------------------------------------- commit


@dataclass(frozen=True)
class ConfigOutcome:
    status: str  # ok | failed
    action: str  # created | replaced | unchanged (what was done; when failed, what was planned)
    path: Path
    backup: Path | None = None
    error: str | None = None
    # failed because a config was there by the time it was written, though none was when the plan was made
    # (another `hyp init` ran meanwhile): nothing was written (wizard.md §9.3)
    exists: bool = False

    def line(self, env: Mapping[str, str]) -> str:
        if self.status == "failed":
            return f"failed: {self.error}"
        if self.action == "unchanged":
            return f"unchanged {tilde(self.path, env)}"
        backup = f" (backup {self.backup.name})" if self.backup else ""
        return f"written {tilde(self.path, env)}{backup}"


@dataclass
class InitResult:
    """What a commit did. Mutable while it runs (the wizard fills it from messages)."""

    plan: InitPlan
    config: ConfigOutcome | None = None
    backfill: Any = None  # runner.BackfillResult, or None when the import was declined or not run
    clients: dict[str, Any] = field(default_factory=dict)  # client -> runner.ProviderResult
    daemon: Any = None  # core.daemon.action.DaemonActionResult
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """wizard.md §11 (precedence 130, then 1, then 0)."""
        statuses = {getattr(r, "status", None) for r in self.clients.values()}
        if self.interrupted or "cancelled" in statuses:
            return 130
        if "failed" in statuses:
            return 1
        if self.config is not None and self.config.status == "failed":
            return 1
        if self.daemon is not None and self.daemon.status == "failed":
            return 1
        return 0


def write_config_step(plan: InitPlan, layout: Layout, *, now_us: int, replace_existing: bool = False
                      ) -> ConfigOutcome:
    """Back up an existing config and write the new one atomically (HYP_HOME 0700, config 0600), then
    record the capture start of the enabled clients (daemon.md §3.2). Raises nothing: failures are returned.

    The outcome says what was done, which is not always what the plan said: the plan was made earlier, and
    another `hyp init` may have written or removed the config since. A planned `create` never replaces a
    config that is there by then: it fails with `exists` (nothing written), unless `replace_existing` (the
    wizard, whose Review is the confirmation, and `--force`), where that config is backed up and the outcome
    is `replaced`. A planned `replace` of a config gone since is `created`, with no backup."""
    from hypaware_tui.core.config import save_config
    from hypaware_tui.core.daemon.capture import record_capture_start
    from hypaware_tui.core.paths import ensure_dir, set_umask

    cfg = plan.config
    action = {"create": "created", "replace": "replaced", "unchanged": "unchanged"}[cfg.action]
    backup: Path | None = None
    set_umask()
    try:
        ensure_dir(layout.home)
        if cfg.action != "unchanged":
            planned = datetime.fromtimestamp(plan.planned_at_us / 1e6, UTC)
            exclusive = cfg.action == "create" and not replace_existing
            try:
                done = save_config(layout, json.loads(cfg.text), backup=True, now=planned, create=exclusive)
            except FileExistsError:
                if not exclusive:
                    raise
                return ConfigOutcome("failed", action, cfg.path, None,
                                     f"a config already exists at {cfg.path} (written since this run began)",
                                     exists=True)
            action = done.action
            backup = layout.home / done.backup if done.backup else None
        record_capture_start(layout, plan.selected_clients, plan.until_us, plan.previously_enabled)
    except Exception as exc:  # noqa: BLE001 - reported to the user, never a crash
        return ConfigOutcome("failed", action, cfg.path, backup, _config_error_text(exc, layout.home))
    return ConfigOutcome("ok", action, cfg.path, backup)


def _config_error_text(exc: BaseException, home: Path) -> str:
    """Why the config could not be written and, where permissions or a read-only mount are why, what to do
    (it said "Permission denied (…/.hypaware-config.json.….tmp)" alone)."""
    import errno

    from hypaware_tui.core.paths import not_writable_hint, read_only_fs_hint

    text = _error_text(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
        return f"{text}. {not_writable_hint(home)}"
    if isinstance(exc, OSError) and exc.errno == errno.EROFS:
        return f"{text}. {read_only_fs_hint()}"
    return text


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__


def import_step(
    plan: InitPlan,
    layout: Layout,
    *,
    env: Mapping[str, str],
    inventory: Inventory | None = None,
    sink: Any = None,
    cancel: threading.Event | None = None,
    importers: Mapping[str, Any] | None = None,
):
    """Run the imports of the plan's clients over `[since, until]` through the runner. Clients selected but
    not imported (declined, not detected) are reported `skipped` by the runner or here."""
    from hypaware_tui.core.runner import run_backfill
    from hypaware_tui.importers.base import Window

    clients = plan.import_clients
    if not clients:
        return None
    return run_backfill(
        layout,
        list(clients),
        window=Window(since_us=plan.since_us, until_us=plan.until_us),
        write_checkpoints=True,
        dry_run=False,
        sink=sink,
        cancel=cancel,
        env=env,
        config=json.loads(plan.config.text) if plan.config.text else None,  # the config just written
        importers=importers,
        retention_days=plan.retention_days,
        now=plan.until_us,
        inventory=inventory,
    )


def daemon_step(
    plan: InitPlan,
    layout: Layout,
    *,
    env: Mapping[str, str],
    service_manager: Any = ...,
    spawner: Any = None,
    interrupted: bool = False,
) -> Any:
    """Perform the planned daemon action (never in a demo or a dry run). Raises nothing."""
    from hypaware_tui.core.daemon.action import DaemonActionResult, perform_daemon_action

    d = plan.daemon
    try:
        return perform_daemon_action(layout, d, dry_run=plan.dry_run, interrupted=interrupted, env=env,
                                     service=service_manager, spawner=spawner)
    except Exception as exc:  # noqa: BLE001
        log = str(layout.daemon_log)
        error = _error_text(exc)
        return DaemonActionResult(d.action, "failed", d.mode, None, error, log,
                                  f"failed to start: {error} (log: {log})", d.service_installed)


CONFIG_NOT_WRITTEN = "the config could not be written"


def skipped_daemon(plan: InitPlan, why: str = "the run was interrupted") -> Any:
    from hypaware_tui.core.daemon.action import DaemonActionResult

    d = plan.daemon
    line = "not started (demo)" if plan.demo_dir is not None else f"not started ({why})"
    return DaemonActionResult(d.action, "skipped", d.mode, None, None, None, line, d.service_installed)


def commit(
    plan: InitPlan,
    layout: Layout,
    *,
    env: Mapping[str, str],
    inventory: Inventory | None = None,
    sink: Any = None,
    cancel: threading.Event | None = None,
    importers: Mapping[str, Any] | None = None,
    service_manager: Any = ...,
    spawner: Any = None,
    skip_daemon_when_cancelled: bool = True,
    force: bool = False,
) -> InitResult:
    """The headless commit (wizard.md §9 step 4): config, imports, daemon action. Without `force`, a config
    written since the plan was made stops it before anything is written (`result.config.exists`)."""
    result = InitResult(plan)
    result.config = write_config_step(plan, layout, now_us=plan.until_us, replace_existing=force)
    if result.config.status != "ok":
        result.daemon = skipped_daemon(plan, CONFIG_NOT_WRITTEN)
        return result
    backfill = import_step(plan, layout, env=env, inventory=inventory, sink=sink, cancel=cancel,
                           importers=importers)
    result.backfill = backfill
    if backfill is not None:
        result.clients = {p.provider: p for p in backfill.providers}
    if backfill is not None and backfill.cancelled and skip_daemon_when_cancelled:
        result.interrupted = True
        result.daemon = skipped_daemon(plan)
        return result
    result.daemon = daemon_step(plan, layout, env=env, service_manager=service_manager, spawner=spawner)
    return result


# --------------------------------------------------------------------------------------------- summary


def detached_note() -> str:
    return f"It stops at logout or reboot; run {prog.NAME} daemon install to start it automatically."


def capture_line(result: InitResult) -> str:
    """wizard.md §6.7 item 2."""
    plan = result.plan
    d = result.daemon
    if plan.demo_dir is not None:
        return "not started (demo)"
    if d is None:
        return "not started"
    if d.status == "failed":
        return d.capture_line
    if plan.choices.capture and result.config is not None and result.config.status == "failed":
        return f"not started ({CONFIG_NOT_WRITTEN})"  # (not "setup was interrupted": it stopped at the config)
    if not plan.choices.capture:
        if d.action == "stop" and d.status == "ok":
            return "stopped"
        if d.action == "stop" and d.status == "skipped":  # (it still runs: not "not started")
            return f"still running (setup was interrupted; stop it with {prog.NAME} daemon stop)"
        return CAPTURE_OFF_IN_CONFIG if plan.mode == MODE_IMPORT_AGAIN else "not started (you chose not to)"
    text = d.capture_line
    if d.status == "skipped" and d.action != "none":
        text = f"not started (setup was interrupted; start it with {prog.NAME} daemon start)"
    elif d.mode == "detached" and d.pid:
        text += f". {detached_note()}"
    return text


def capture_runs(result: InitResult) -> bool:
    """Whether a capture daemon runs after this setup (new sessions will show up by themselves)."""
    d = result.daemon
    return (result.plan.demo_dir is None and result.plan.choices.capture and d is not None
            and d.status != "failed" and d.pid is not None)


def next_commands(result: InitResult) -> list[str]:
    """wizard.md §6.7 item 4. In a demo every command needs the demo's HYP_HOME (else it would look at the
    real one), so they carry it."""
    hyp = prog.NAME
    out = [f"{hyp} status", f"{hyp} query overview", f'{hyp} query sql "select …"']
    if result.config is not None and result.config.status == "failed":
        # Nothing was set up: no import ran, no daemon started (it said "Next hyp status · hyp query overview …"
        # under "Config failed: Permission denied", as if setup had worked).
        return [f"fix the config error above, then run {hyp} init again"]
    if result.plan.demo_dir is not None:
        return [f"{hyp} init (to set up hyp with your own history)"]
    if not result.plan.choices.import_history:
        out.append(f"{hyp} backfill")  # (the history declined: how to import it later)
    for client, r in result.clients.items():
        if getattr(r, "status", None) in ("failed", "cancelled"):
            out.append(f"{hyp} backfill {client}")
    # Also with capture off: `hyp daemon install` is how capture is turned on later (it sets capture.enabled).
    if not result.plan.daemon.service_installed:
        out.append(f"{hyp} daemon install")
    return out


def client_rows(result: InitResult) -> list[dict[str, Any]]:
    """One row per selected client: name, status, files, sessions, rows, duplicates, skipped, errors, error
    (and for the notes under the summary: error_path, more_errors)."""
    rows = []
    for cp in result.plan.clients:
        if not cp.selected:
            continue
        r = result.clients.get(cp.client)
        if r is None:
            reason = "import declined" if not result.plan.choices.import_history else (cp.reason or "not run")
            rows.append({"client": cp.client, "name": cp.name, "status": "skipped", "files": 0, "sessions": 0,
                         "rows": 0, "duplicates": 0, "skipped": 0, "errors": 0, "error": None,
                         "error_path": None, "more_errors": 0, "note": reason})
            continue
        rows.append({
            "client": cp.client, "name": cp.name, "status": r.status, "files": r.files_scanned,
            "sessions": r.sessions_seen, "rows": r.rows_written, "duplicates": r.duplicates_skipped,
            "skipped": sum(r.lines_skipped.values()), "errors": r.errors, "error": r.error, "note": None,
            "error_path": r.error_path, "more_errors": r.other_errors,
        })
    return rows


def error_notes_of(row: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """The notes under the summary for a `client_rows` row with an error: the error, where its file is, and
    how many more there were (as under `hyp backfill`'s table)."""
    from hypaware_tui.core.runner import error_notes  # (imported already: an import ran)

    return error_notes(row["client"], row["error"], row["error_path"], row["more_errors"], env,
                       logged=True)  # (the wizard's import is never a dry run: it logs its events)


def nothing_new_note(result: InitResult) -> str | None:
    """Under the summary of an import that ran to the end without writing a row because everything was already
    in the dataset ("Import again" on a history with nothing new): a table of zeros, files 0 included (unchanged
    files are not scanned), otherwise reads as if hyp had found nothing."""
    from hypaware_tui.core.runner import nothing_new_text  # (imported already: an import ran)

    clients = list(result.clients.values())
    if not clients or any(r.status != "ok" for r in clients):  # (none: no import ran)
        return None
    if any(r.rows_written for r in clients):
        return None
    return nothing_new_text(sum(r.duplicates_skipped for r in clients), sum(r.files_unchanged for r in clients),
                            sum(r.files_failed for r in clients), sum(r.folders_failed for r in clients))


SUMMARY_HEADER = ("Client", "Status", "Files", "Sessions", "Rows written", "Duplicates", "Lines skipped", "Errors")
# The same columns under one-word headers, for a terminal too narrow for the full ones (80 columns and numbers in
# the millions): "Skipped" is the lines skipped, as the wide header says.
SUMMARY_HEADER_SHORT = ("Client", "Status", "Files", "Sessions", "Rows", "Duplicates", "Skipped", "Errors")
LABEL = 10  # "Capture   ": where the text of a labelled line starts


def summary_text(result: InitResult, env: Mapping[str, str], width: int | None = None) -> str:
    """cli.md §4.2 text summary (also printed after the wizard closes, to stay in the scrollback). With a
    terminal `width`, nothing is wider than the terminal, which would wrap it mid-word: the table narrows
    (`summary_table`) and the long lines wrap between words, the `Next` line between commands."""
    plan = result.plan
    lines = []
    # Paths, reasons and errors are anybody's: shown as they are, their control characters as escapes (`printable`)
    # before the lines wrap (an `ESC ] 0 ; … BEL` in HYP_HOME retitled the terminal from this summary).
    if result.config is not None:
        lines.extend(_labelled("Config", printable(result.config.line(env)), width))
    since = "everything" if plan.since_us is None else f"{us_to_iso(plan.since_us)[:10]} 00:00 UTC"
    local = us_to_local(plan.until_us)  # (None past the year 9999 in local time: shown in UTC)
    until = f"{local.date().isoformat()} {local:%H:%M} local" if local else f"{us_to_iso(plan.until_us)[:16]} UTC"
    ret = "keep forever" if plan.retention_days == 0 else plural(plan.retention_days, "day")
    lines.extend(_labelled("Window", f"{since} → {until.replace('T', ' ')} ({ret})", width))
    lines.append("")
    table = []
    notes = []
    for row in client_rows(result):
        table.append([row["name"], row["status"], f"{row['files']:,}", f"{row['sessions']:,}", f"{row['rows']:,}",
                      f"{row['duplicates']:,}", f"{row['skipped']:,}", f"{row['errors']:,}"])
        if row["error"]:
            notes.extend(error_notes_of(row, env))
        elif row["note"] and row["status"] == "skipped":
            notes.append(f"  {row['client']}: {printable(str(row['note']))}")
    lines.extend(summary_table(table, width))
    lines.extend(hanging_lines(notes, width))
    note = nothing_new_note(result)
    if note is not None:
        lines.extend(_wrap(note, width))
    lines.append("")
    lines.extend(_labelled("Capture", printable(capture_line(result)), width))
    lines.extend(wrap_items("Next".ljust(LABEL), next_commands(result), width))
    if plan.demo_dir is not None:
        from hypaware_tui.core.demo import DemoDir

        lines.append("")
        lines.extend(printable(line) for line in DemoDir(Path(plan.demo_dir)).next_commands())
    return "\n".join(lines) + "\n"


def summary_table(rows: Sequence[Sequence[str]], width: int | None = None) -> list[str]:
    """The client table of the summary, as wide as it can be within `width`: full headers two spaces apart
    (cli.md §4.2), then one space apart, then one-word headers; when even that is too wide, one block per
    client (`Claude Code  ok` over `files 241 · sessions 133 · …`)."""
    for header in (SUMMARY_HEADER, SUMMARY_HEADER_SHORT):
        table = [list(header)] + [list(r) for r in rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for gap in ("  ", " "):
            if width is None or sum(widths) + len(gap) * (len(widths) - 1) <= width:
                out = []
                for r in table:
                    cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1])]
                    cells += [r[i].rjust(widths[i]) for i in range(2, len(r))]
                    out.append(gap.join(cells).rstrip())
                return out
    out = []
    for r in rows:
        out.append(f"{r[0]}  {r[1]}")
        parts = [f"{name.lower()} {value}" for name, value in zip(SUMMARY_HEADER[2:], r[2:], strict=True)]
        out.extend(wrap_items("  ", parts, width))
    return out


def _wrap(text: str, width: int | None, first: str = "", rest: str | None = None) -> list[str]:
    """`first + text` wrapped to `width` between words (`core.fmt.wrap_line`: a word longer than the line, a
    path, stays whole, and so does a hyp command); further lines start with `rest` (spaces; default: as many
    as `first` has characters)."""
    return wrap_line(first + text, width, len(first), len(first if rest is None else rest))


def _labelled(label: str, text: str, width: int | None) -> list[str]:
    """`Capture   <text>`, continued under the text."""
    return _wrap(text, width, label.ljust(LABEL), " " * LABEL)


def wrap_items(first: str, items: Sequence[str], width: int | None, sep: str = " · ") -> list[str]:
    """`items` joined by `sep` after `first`, wrapped to `width` between items, never inside one (each is a
    command to copy); continuation lines are indented as far as `first`."""
    lines: list[str] = []
    line = first
    for i, item in enumerate(items):
        if i == 0:
            line += item
        elif width is not None and len(line) + len(sep) + len(item) > width:
            lines.append(line)
            line = " " * len(first) + item
        else:
            line += sep + item
    lines.append(line)
    return lines


def _backfill_json(result: InitResult) -> dict[str, Any] | None:
    """The `hyp backfill --json` object of the import (null only when it was declined), with a `skipped` entry
    for each selected client that was not imported (named but not detected), as `hyp backfill` names one and
    as the text summary shows it: the JSON left them out, and was null when no selected client was found."""
    from hypaware_tui.core.runner import ProviderResult

    plan = result.plan
    if not plan.choices.import_history:
        return None
    if result.backfill is not None:
        doc = result.backfill.to_json()
    else:  # nothing to import: no run
        doc = {"run_id": None, "dry_run": False, "since": us_to_iso(plan.since_us), "until": us_to_iso(plan.until_us),
               "providers": []}
    have = {p["provider"]: p for p in doc["providers"]}
    providers = []
    for cp in plan.clients:
        if not cp.selected:
            continue
        providers.append(have.pop(cp.client, None)
                         or ProviderResult(cp.client, status="skipped", error=cp.reason or "not detected").to_json())
    doc["providers"] = providers + list(have.values())
    return doc


def summary_json(result: InitResult) -> dict[str, Any]:
    """cli.md §4.2 JSON summary."""
    plan = result.plan
    cfg = result.config
    d = result.daemon or skipped_daemon(plan)
    return {
        "command": "init",
        "dry_run": False,
        "demo_dir": str(plan.demo_dir) if plan.demo_dir else None,
        "hyp_home": str(plan.hyp_home),
        "config": {
            "path": str(plan.config.path),
            "action": cfg.action if cfg else None,
            "backup": str(cfg.backup) if cfg and cfg.backup else None,
            **({"error": cfg.error} if cfg and cfg.error else {}),
        },
        "clients": list(plan.selected_clients),
        "retention_days": plan.retention_days,
        "window": {"since": us_to_iso(plan.since_us), "until": us_to_iso(plan.until_us)},
        "backfill": _backfill_json(result),
        "daemon": d.to_json(),
        "exit_code": result.exit_code,
    }


# --------------------------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class Sample:
    at: float
    bytes_done: int


def throughput(samples: Sequence[Sample], now: float, span: float = 5.0) -> float:
    """Bytes per second over the last `span` seconds (wizard.md §6.6), from (time, bytes done) samples
    interpolated linearly; no progress since the last sample counts as zero speed."""
    if not samples or now <= samples[0].at:
        return 0.0

    def bytes_at(t: float) -> float:
        if t <= samples[0].at:
            return samples[0].bytes_done
        for a, b in zip(samples, samples[1:], strict=False):
            if a.at <= t <= b.at:
                if b.at == a.at:
                    return b.bytes_done
                return a.bytes_done + (b.bytes_done - a.bytes_done) * (t - a.at) / (b.at - a.at)
        return samples[-1].bytes_done

    start = max(now - span, samples[0].at)
    return max(0.0, (bytes_at(now) - bytes_at(start)) / (now - start))


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def skipped_reasons(lines_skipped: Mapping[str, int], top: int = 3, max_len: int | None = None) -> str:
    """`12 (malformed 9 · no session id 3)`: the three largest reasons (fewer when `max_len` is too short for
    them), then `+N more`."""
    total = sum(lines_skipped.values())
    if not total:
        return "0"
    items = sorted(((v, k) for k, v in lines_skipped.items() if v), key=lambda x: (-x[0], x[1]))
    text = ""
    for n in range(min(top, len(items)), -1, -1):
        parts = [f"{k.replace('_', ' ')} {v:,}" for v, k in items[:n]]
        if len(items) > n:
            parts.append(f"+{len(items) - n} more")
        text = f"{total:,} ({' · '.join(parts)})"
        if max_len is None or len(text) <= max_len:
            break
    return text


__all__ = [
    "Choices", "ClientPlan", "ConfigOutcome", "ConfigPlan", "DaemonState",
    "ExistingConfig", "InitPlan", "InitResult", "MachineState", "RETENTION_PRESETS", "build_plan", "commit",
    "daemon_step", "gather_machine_state", "import_step", "plan_json", "summary_json", "summary_text",
    "with_until", "write_config_step",
]
