"""The `hyp init` wizard: the one place that sequences screens (wizard.md §3).

`WizardApp` runs the flow in a single async worker that pushes one step screen at a time and waits for its
result: Welcome (or Welcome back) → Clients → Retention → Consent → Review → Import → Done. Screens get
immutable data and return a value; `Back` goes one screen back with every answer kept. The inventory runs in
a thread worker from the start and reports through messages; the App passes what it learns down to the
screen on display. Quitting (§8) is decided here too.

Everything the wizard needs from the machine comes in through `WizardSettings` (built by `cli/init.py`):
paths, the config and daemon facts read once, and injectable seams (importers, service manager, spawner,
clocks, the first-look query) so tests and snapshots are deterministic.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from hypaware_tui.core.fmt import human_size, plural
from hypaware_tui.core.inventory import (
    ClientInventory,
    Figures,
    Inventory,
    build_inventory,
    client_figures,
    older_than,
)
from hypaware_tui.core.paths import Layout, panics_as_errors
from hypaware_tui.core.plan import (
    MODE_FIRST,
    MODE_IMPORT_AGAIN,
    MODE_RECONFIGURE,
    RETENTION_PRESETS,
    Choices,
    InitPlan,
    InitResult,
    MachineState,
    build_plan,
    client_name,
    join_names,
    shorter_retention_warning,
    summary_text,
    tilde,
    with_until,
)
from hypaware_tui.core.timeutil import now_us as wall_now_us
from hypaware_tui.core.window import DEFAULT_RETENTION_DAYS, import_floor_us, local_date_range
from hypaware_tui.importers import KNOWN_CLIENTS
from hypaware_tui.importers.base import FUTURE_SKEW_US
from hypaware_tui.screens.base import Back, StepInfo
from hypaware_tui.screens.clients import ClientsScreen, ClientView
from hypaware_tui.screens.consent import ConsentScreen
from hypaware_tui.screens.dialogs import ConfirmDialog, QuitSetupDialog, TooSmallScreen, pending_text
from hypaware_tui.screens.done import DoneScreen
from hypaware_tui.screens.import_ import ImportJob, ImportScreen, StopQuestionChanged
from hypaware_tui.screens.retention import RetentionScreen
from hypaware_tui.screens.review import ReviewScreen
from hypaware_tui.screens.welcome import LOOKING, WelcomeScreen
from hypaware_tui.screens.welcome_back import WelcomeBackScreen
from hypaware_tui.screens.widgets import ChoiceList

MIN_WIDTH, MIN_HEIGHT = 80, 24
SCREENS_DIR = Path(__file__).parent / "screens"


def _default_first_look(layout: Layout, env: Mapping[str, str]) -> Any:
    """`hyp query overview`'s default period (30 days); when that is empty and history was imported (a
    history that ended months ago), all of it, rather than "Nothing imported yet" over 80,000 rows. The period
    line of the first look shows which dates it covers."""
    from hypaware_tui.core.query import overview

    ov = overview(layout, days=30, home=env.get("HOME"))
    if ov.is_empty:
        ov = overview(layout, days=0, home=env.get("HOME"))
    return ov


@dataclass(frozen=True)
class WizardSettings:
    """What the wizard is started with. Built once by the CLI; never read from globals inside screens."""

    layout: Layout
    env: Mapping[str, str]
    machine: MachineState
    dry_run: bool = False
    demo_dir: Path | None = None
    seed_clients: tuple[str, ...] | None = None  # --client
    seed_retention: int | None = None  # --retention-days
    seed_import: bool = True  # not --no-backfill
    seed_capture: bool = True  # not --no-daemon
    welcome_back_facts: tuple[tuple[str, str], ...] = ()
    importers: Mapping[str, Any] | None = None
    service_manager: Any = None
    spawner: Any = None
    clock: Callable[[], float] = time.monotonic  # elapsed, throughput, ETA
    now_us: Callable[[], int] = wall_now_us  # the `until` of the plan
    first_look: Callable[[Layout, Mapping[str, str]], Any] | None = _default_first_look
    inventory_fn: Callable[..., Inventory] = build_inventory
    import_finish_delay: float = 0.0  # seconds the finished Import panels stay up (the CLI uses 1 s)
    handle_signals: bool = False  # SIGTERM / SIGHUP -> hang_up (the CLI turns it on)

    @property
    def badge(self) -> str | None:
        parts = [p for p, on in (("DEMO", self.demo_dir is not None), ("DRY RUN", self.dry_run)) if on]
        return " · ".join(parts) or None


# --------------------------------------------------------------------------------------------- messages


class InventoryProgressed(Message):
    def __init__(self, client: str, done: int, total: int) -> None:
        super().__init__()
        self.client = client
        self.done = done
        self.total = total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, InventoryProgressed) and message.client == self.client


class ClientsDetected(Message):
    """Which clients' roots exist (a few stat calls, reported before the slower inventory)."""

    def __init__(self, detections: dict[str, Any]) -> None:
        super().__init__()
        self.detections = detections


class ClientInventoried(Message):
    def __init__(self, inventory: ClientInventory) -> None:
        super().__init__()
        self.inventory = inventory


class TerminalGone(Message):
    """The terminal was closed: a write to it failed (posted from Textual's writer thread)."""


class InventoryFinished(Message):
    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error


# --------------------------------------------------------------------------------------------- app


def tilde_text(text: str | None, home: str) -> str | None:
    """Show the home directory as `~` inside a message (`not found: ~/.codex does not exist`)."""
    home = home.rstrip("/")
    if not text or not home:
        return text
    return text.replace(home + "/", "~/").replace(home + " ", "~ ")


def client_summary(ci: ClientInventory, f: Figures | None = None) -> str:
    """`241 files · 133 sessions · 1.1 GB · 2026-04-30 → 2026-08-29`: the dates local, as `hyp backfill list`
    shows them (the Clients screen names the zone under its rows). `f`: `client_figures(ci)`, if known."""
    f = f or client_figures(ci)
    span = ""
    if f.oldest_us is not None and f.newest_us is not None:
        span = f" · {local_date_range(f.oldest_us, f.newest_us)}"
    return f"{plural(f.files, 'file')} · {plural(f.sessions, 'session')} · {human_size(f.bytes)}{span}"


class WizardApp(App[int]):
    """`hyp init`, interactive. `return_code` is the wizard.md §11 exit code; `summary` is printed to stdout
    by the CLI after the TUI has closed."""

    TITLE = "hyp init"
    CSS_PATH = [SCREENS_DIR / "wizard.tcss"]
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+c", "request_quit", "quit", show=False, priority=True),
        Binding("ctrl+q", "request_quit", "quit", show=False, priority=True),
        # Ctrl+Z suspends the wizard as it does any terminal program (`fg` resumes it, redrawn): in raw mode it is
        # a key, and it did nothing, and the `fg` and Enter typed next reached the focused button (on Review, the
        # import started). Where the terminal cannot suspend (Windows), nothing.
        Binding("ctrl+z", "suspend_process", "suspend", show=False, priority=True),
    ]

    def __init__(self, settings: WizardSettings) -> None:
        super().__init__()
        self.settings = settings
        self.unexpected_error: str | None = None
        """One line describing an unexpected error that ended the wizard (exit 1)."""
        self.summary: str | None = None
        """Plain-text summary to print after the TUI closes (set on Done)."""
        self.result: InitResult | None = None
        self.plan: InitPlan | None = None
        self.inventory_clients: dict[str, ClientInventory] = {}
        self.scan_progress: dict[str, tuple[int, int]] = {}
        self.detections: dict[str, Any] = {}
        self.inventory_done = False
        self.list_cursors: dict[str, str] = {}
        """The row each checkbox list's cursor was last on (by list id), so that a screen shown again after Esc
        puts it back where the user left it."""
        self._inventory_event: asyncio.Event | None = None
        self.choices = self._initial_choices()
        self.clients_answer: tuple[str, ...] | None = self.choices.clients or None
        self.mode = MODE_FIRST
        self._hung_up = False
        self.terminal_lost = False
        """The terminal went away (writes failed): the CLI prints nothing more."""
        self._too_small: TooSmallScreen | None = None

    # -- setup ---------------------------------------------------------------------------------------

    def get_driver_class(self) -> Any:
        """Textual's driver, except on POSIX terminals: there, one that survives the terminal being closed
        (hypaware_tui/driver.py)."""
        driver = super().get_driver_class()
        if os.name == "posix":
            from textual.drivers.linux_driver import LinuxDriver

            if driver is LinuxDriver:
                from hypaware_tui.driver import hangup_safe_driver

                return hangup_safe_driver(LinuxDriver)
        return driver

    def _initial_choices(self) -> Choices:
        s = self.settings
        retention = s.seed_retention if s.seed_retention is not None else DEFAULT_RETENTION_DAYS
        return Choices(clients=tuple(s.seed_clients or ()), retention_days=retention,
                       import_history=s.seed_import, capture=s.seed_capture)

    def _seed_from_config(self) -> None:
        """Reconfigure / Import again: every choice starts from the config on disk (flags still win)."""
        s = self.settings
        cfg = s.machine.config
        if not cfg.valid:
            self.choices = self._initial_choices()
            self.clients_answer = self.choices.clients or None
            return
        clients = tuple(s.seed_clients) if s.seed_clients else cfg.enabled_clients
        retention = s.seed_retention if s.seed_retention is not None else (
            cfg.retention_days if cfg.retention_days is not None else DEFAULT_RETENTION_DAYS)
        capture = bool(cfg.capture_enabled) and s.seed_capture
        self.choices = Choices(clients=clients, retention_days=retention, import_history=s.seed_import,
                               capture=capture)
        self.clients_answer = clients

    def on_mount(self) -> None:
        if self.settings.handle_signals:
            import signal

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                try:
                    loop.add_signal_handler(sig, self.hang_up)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
        self._inventory_event = asyncio.Event()
        self._inventory_worker()
        self._flow()
        self.call_after_refresh(self._apply_size)

    # -- inventory -----------------------------------------------------------------------------------

    @work(thread=True, exit_on_error=False, group="inventory", description="inventory")
    def _inventory_worker(self) -> None:
        """Detection first (a few stat calls), then each client's inventory; only posts messages. It always
        ends with InventoryFinished, so Review never waits for a scan that died."""
        error = None
        try:
            with panics_as_errors():  # (a Polars panic is a BaseException)
                error = self._run_inventory()
        except Exception as exc:  # noqa: BLE001 - reported on the Welcome screen, never a crash
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.post_message(InventoryFinished(error))

    def _run_inventory(self) -> str | None:
        s = self.settings
        config = s.machine.config.data if s.machine.config.valid else None
        error = None
        detections: dict[str, Any] = {}
        try:
            from hypaware_tui.core.inventory import config_root
            from hypaware_tui.importers import get_importer

            for client in KNOWN_CLIENTS:
                importer = s.importers[client] if s.importers is not None else get_importer(client)
                detections[client] = importer.detect(config_root(config, client), s.env)
        except Exception:  # noqa: BLE001 - the inventory below reports detection too
            detections = {}
        if detections:
            self.post_message(ClientsDetected(detections))
        for client in KNOWN_CLIENTS:
            try:
                inv = s.inventory_fn(
                    [client], config=config, env=s.env, importers=s.importers,
                    progress=lambda c, done, total: self.post_message(InventoryProgressed(c, done, total)),
                )
                self.post_message(ClientInventoried(inv.clients[client]))
            except Exception as exc:  # noqa: BLE001 - one client's failure never stops the others
                error = f"{type(exc).__name__}: {exc}"
                from hypaware_tui.importers.base import Detection

                self.post_message(ClientInventoried(ClientInventory(
                    client, client_name(client), Detection(False, None, f"inventory failed: {error}"))))
        return error

    def on_clients_detected(self, message: ClientsDetected) -> None:
        self.detections = dict(message.detections)
        self._push_scan_state()

    def on_inventory_progressed(self, message: InventoryProgressed) -> None:
        self.scan_progress[message.client] = (message.done, message.total)
        self._push_scan_state()

    def on_client_inventoried(self, message: ClientInventoried) -> None:
        self.inventory_clients[message.inventory.client] = message.inventory
        self._push_scan_state()

    def on_inventory_finished(self, message: InventoryFinished) -> None:
        self.inventory_done = True
        if self._inventory_event is not None:
            self._inventory_event.set()
        self._push_scan_state()

    @property
    def inventory(self) -> Inventory:
        return Inventory(clients=dict(self.inventory_clients), scanned_at_us=0)

    def client_views(self) -> list[ClientView]:
        cfg = self.settings.machine.config
        enabled = set(cfg.enabled_clients) if cfg.valid else None
        home = self.settings.env.get("HOME", "")
        views = []
        for client in KNOWN_CLIENTS:
            ci = self.inventory_clients.get(client)
            done, total = self.scan_progress.get(client, (0, 0))
            if ci is None and self.inventory_done:  # the scan died before reaching this client
                views.append(ClientView(client, client_name(client), scanning=False, detected=False,
                                        reason="could not look for its history (see hyp backfill list)"))
                continue
            if ci is None:
                det = self.detections.get(client)
                detected = det.detected if det is not None else (True if client in self.scan_progress else None)
                views.append(ClientView(client, client_name(client), scanning=True, detected=detected,
                                        reason=tilde_text(det.reason, home) if det is not None else None,
                                        files_scanned=done))
                continue
            off = (self.mode == MODE_RECONFIGURE and enabled is not None and ci.detected
                   and client not in enabled)
            f = client_figures(ci)
            views.append(ClientView(client, ci.name, scanning=False, detected=ci.detected,
                                    reason=tilde_text(ci.reason, home),
                                    files_scanned=len(ci.files), summary=client_summary(ci, f),
                                    dates=(f.oldest_us, f.newest_us),
                                    empty=ci.detected and not ci.files, currently_off=off))
        return views

    def scan_status(self) -> str:
        if not self.inventory_done:
            return LOOKING
        found = [f"{ci.name} ({plural(len(ci.files), 'file')})" for ci in self.inventory_clients.values() if ci.detected]
        if not found:
            return "No Claude Code or Codex history was found on this computer."
        return "Found " + join_names(found) + "."

    def _push_scan_state(self) -> None:
        """Attributes down: tell the screen on display what the inventory knows now."""
        screen = self._step_screen()
        if isinstance(screen, WelcomeScreen):
            screen.set_scan_status(self.scan_status())
        elif isinstance(screen, ClientsScreen):
            screen.update_views(self.client_views())

    # -- previews (from the inventory in memory; never a rescan) --------------------------------------

    def retention_preview(self, days: int) -> str:
        now = self.settings.now_us()
        since = import_floor_us(days, now)
        parts = []
        sessions = size = older_sessions = 0
        for client in self.choices.clients:
            ci = self.inventory_clients.get(client)
            if ci is None or not ci.detected:
                continue
            f = client_figures(ci, since, now, beyond_us=now + FUTURE_SKEW_US)  # (as the import: Window)
            parts.append(f"{ci.name} {f.sessions:,}")
            sessions += f.sessions
            size += f.bytes
            older_sessions += older_than(ci, since).sessions
        text = f"In this window: up to {plural(sessions, 'session')} · {human_size(size)}"
        if len(parts) > 1:
            text += f" ({' · '.join(parts)})"
        text += "."
        if since is not None:
            # (over a dataset holding rows older than the window, some of those sessions are in it, and go at the
            # next cleanup: "not imported" was said of sessions imported long ago)
            fate = "not kept" if self.settings.machine.rows_older_than(days, now) else "not imported"
            text += (f" Older: {plural(older_sessions, 'session')}, {fate}." if older_sessions
                     else " Nothing older.")
        if not self.inventory_done:
            text += " (Still scanning…)"
        return text

    def retention_warning(self, days: int) -> str | None:
        machine = self.settings.machine
        return shorter_retention_warning(machine.config, days, machine.rows_older_than(days, self.settings.now_us()),
                                         daemon_running=machine.daemon.running)

    def on_choice_list_highlighted(self, message: ChoiceList.Highlighted) -> None:
        if message.choice_list.id:
            self.list_cursors[message.choice_list.id] = message.value

    # -- size ----------------------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._apply_size(event.size)

    def _apply_size(self, size: Any = None) -> None:
        size = size or self.size
        small = size.width < MIN_WIDTH or size.height < MIN_HEIGHT
        if small and self._too_small is None:
            self._too_small = TooSmallScreen(self._pending_text())
            self.push_screen(self._too_small)
        elif not small and self._too_small is not None:
            notice, self._too_small = self._too_small, None
            if self.screen is notice:
                self.pop_screen()
            # (else it is no longer on the stack: a step screen or a dialog replaced it, see _show and
            # action_request_quit; dismissing it would close whatever is on top)

    def _open_dialog(self) -> ConfirmDialog | None:
        """The quit dialog, when one is open: on top, or waiting under the resize notice."""
        return next((s for s in reversed(self.screen_stack) if isinstance(s, ConfirmDialog)), None)

    def _pending_text(self) -> str | None:
        """What the resize notice says waits under it: the quit dialog, or the Import screen's stop question
        (a panel inside that screen, not a dialog), with the keys that answer it; None when nothing does."""
        dialog = self._open_dialog()
        if dialog is not None:
            return pending_text(dialog.message, dialog.confirm_label, dialog.keep_label)
        step = self._step_screen()
        if isinstance(step, ImportScreen):
            return step.pending_text()
        return None

    def _sync_notice(self) -> None:
        if self._too_small is not None:
            self._too_small.set_pending(self._pending_text())

    def on_stop_question_changed(self, message: StopQuestionChanged) -> None:
        self._sync_notice()

    def _drop_notice(self) -> None:
        """Take the resize notice down before another screen goes on top (it comes back through
        `_apply_size`): dismissing it later, from under that screen, would close the screen instead."""
        notice = self._too_small
        if notice is not None and self.screen is notice:
            self.pop_screen()
            self._too_small = None

    def uncover(self, screen: Any) -> None:
        """After a hang-up: take down what covers `screen` (the resize notice, a dialog). Nobody will answer them
        or resize the terminal, and a step screen finishes only when it is on top (its dismiss would pop the
        cover instead)."""
        while self.screen is not screen and len(self.screen_stack) > 1:
            top = self.screen
            self.pop_screen()
            if top is self._too_small:
                self._too_small = None

    # -- flow ----------------------------------------------------------------------------------------

    def _step_screen(self) -> Any:
        for screen in reversed(self.screen_stack):
            if not isinstance(screen, (TooSmallScreen, ConfirmDialog)):
                return screen
        return self.screen

    async def _show(self, screen: Any) -> Any:
        """Push a step screen and wait for its result (the resize notice stays on top)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def _result(value: Any) -> None:
            if not done.done():
                done.set_result(value)

        self._drop_notice()
        await self.push_screen(screen, callback=_result)
        self._apply_size()
        return await done

    @work(group="wizard", exclusive=True, description="wizard flow")
    async def _flow(self) -> None:
        s = self.settings
        choice = "quit"  # Welcome back's default
        kept: tuple[Choices, tuple[str, ...] | None] | None = None  # Reconfigure's answers, after going back
        while True:
            if s.machine.config.exists:
                choice = await self._show(WelcomeBackScreen(StepInfo(1, 0, s.badge), list(s.welcome_back_facts),
                                                            s.machine.config.error, default=choice))
                if choice == "quit":
                    self.exit(return_code=0)
                    return
                self.mode = MODE_IMPORT_AGAIN if choice == "import_again" else MODE_RECONFIGURE
                if self.mode == MODE_RECONFIGURE and kept is not None:
                    # Back to Welcome back and Reconfigure again: the answers given are kept, as everywhere
                    # else in the wizard (Import again always runs on the config, so it seeds afresh).
                    self.choices, self.clients_answer = kept
                else:
                    self._seed_from_config()
            else:
                total = 5 if s.dry_run else 7
                await self._show(WelcomeScreen(StepInfo(1, total, s.badge), tilde(s.layout.home, s.env),
                                               self.scan_status(), demo=s.demo_dir is not None))
                self.mode = MODE_FIRST
            if await self._steps() is not Back:
                return
            if self.mode == MODE_RECONFIGURE:
                kept = (self.choices, self.clients_answer)

    def _total_steps(self) -> int:
        if self.mode == MODE_IMPORT_AGAIN:
            return 2 if self.settings.dry_run else 4  # (a dry run ends on Review)
        return 5 if self.settings.dry_run else 7

    async def _steps(self) -> Any:
        names = ["review"] if self.mode == MODE_IMPORT_AGAIN else ["clients", "retention", "consent", "review"]
        total = self._total_steps()
        i = 0
        while i < len(names):
            name = names[i]
            step = StepInfo(i + 2, total, self.settings.badge)
            result = await self._show(await self._make_screen(name, step))
            if isinstance(result, Back):
                self._keep(name, result.answer)
                if i == 0:
                    return Back
                i -= 1
                continue
            self._keep(name, result)
            if name == "review":
                if result == "close":
                    self.exit(return_code=0)
                    return None
                await self._commit(i + 3, total)
                return None
            i += 1
        return None

    def _keep(self, name: str, answer: Any) -> None:
        if answer is None:
            return
        if name == "clients":
            self.clients_answer = tuple(answer)
            self.choices = self.choices.with_clients(answer)
        elif name == "retention":
            self.choices = replace(self.choices, retention_days=int(answer))
        elif name == "consent":
            self.choices = replace(self.choices, import_history=bool(answer[0]), capture=bool(answer[1]))

    def _retention_options(self) -> list[int]:
        options = list(RETENTION_PRESETS)
        current = self.settings.machine.config.retention_days if self.mode == MODE_RECONFIGURE else None
        for extra in (current, self.choices.retention_days):
            if extra is not None and extra not in options:
                options.insert(next((k for k, d in enumerate(options) if d == 0 or d > extra), len(options)), extra)
        return options

    async def _make_screen(self, name: str, step: StepInfo) -> Any:
        s = self.settings
        if name == "clients":
            return ClientsScreen(step, self.client_views(), self.clients_answer,
                                 cursor=self.list_cursors.get("clients"))
        if name == "retention":
            current = s.machine.config.retention_days if self.mode == MODE_RECONFIGURE else None
            return RetentionScreen(step, self._retention_options(), self.choices.retention_days, current=current,
                                   preview=self.retention_preview, warning=self.retention_warning)
        if name == "consent":
            names = join_names([client_name(c) for c in self.choices.clients])
            return ConsentScreen(step, names, self.choices.retention_days, tilde(s.layout.home, s.env),
                                 import_history=self.choices.import_history, capture=self.choices.capture,
                                 demo=s.demo_dir is not None, cursor=self.list_cursors.get("consent"))
        if name == "review":
            if self._inventory_event is not None and not self.inventory_done:
                await self._inventory_event.wait()
            self.plan = build_plan(self.inventory, self.choices, s.machine, now_us=s.now_us(), mode=self.mode,
                                   dry_run=s.dry_run, demo_dir=s.demo_dir,
                                   named_clients=s.seed_clients or (), force=True)
            return ReviewScreen(step, self.plan, s.env)
        raise ValueError(name)

    async def _commit(self, number: int, total: int) -> None:
        s = self.settings
        plan = with_until(self.plan, s.now_us())  # `until` captured once, at the commit point
        self.plan = plan
        job = ImportJob(plan=plan, layout=s.layout, env=s.env, clock=s.clock, inventory=self.inventory,
                        importers=s.importers, service_manager=s.service_manager, spawner=s.spawner)
        result: InitResult = await self._show(ImportScreen(StepInfo(number, total, s.badge), job,
                                                           finish_delay=s.import_finish_delay))
        if self._hung_up:
            result.interrupted = True
        self.result = result
        self.summary = summary_text(result, s.env)
        if self._hung_up:
            self.exit(return_code=130)
            return
        first_look = None
        if s.first_look is not None:
            first_look = lambda: s.first_look(s.layout, s.env)  # noqa: E731
        await self._show(DoneScreen(StepInfo(number + 1, total, s.badge), result, s.env, first_look))
        self.exit(return_code=result.exit_code)

    # -- errors --------------------------------------------------------------------------------------

    def _fatal_error(self) -> None:
        """An unexpected error ends the wizard with one line on stderr (printed by the CLI) and exit 1;
        Textual's full traceback (with locals) only with HYP_DEBUG=1 (wizard.md §11)."""
        if os.environ.get("HYP_DEBUG") == "1":
            super()._fatal_error()
            return
        error = self._exception
        self.unexpected_error = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
        self._close_messages_no_wait()

    # -- quitting ------------------------------------------------------------------------------------

    def action_request_quit(self) -> None:
        """Ctrl+C / `q` (wizard.md §8). A second Ctrl+C in a dialog confirms it, also while the dialog waits under
        the resize notice."""
        dialog = self._open_dialog()
        if dialog is not None:
            self._drop_notice()  # (a dismiss pops whatever is on top: the notice goes first)
            dialog.action_confirm()
            return
        target = self._step_screen()
        kind = getattr(target, "QUIT_KIND", "setup")
        if kind == "import":
            target.ask_stop()  # (a second Ctrl+C stops the import: §8, the daemon action still runs)
            self._sync_notice()
            return
        # Over the resize notice (`q` works there), the notice goes first: a screen's dismiss() pops whatever
        # is on top, and a notice left under a dialog could never be removed.
        self._drop_notice()
        if kind == "done":
            target.action_next()
            return

        def answered(ok: bool | None) -> None:
            if ok:
                self.exit(return_code=130)
            else:
                self._apply_size()

        self.push_screen(QuitSetupDialog(), answered)
        # While the terminal is too small the notice goes back on top, as when it shrinks with the dialog open:
        # drawn at that size the dialog was cut off over the step screen. It shows once the terminal is 80×24;
        # meanwhile a second Ctrl+C still quits (§8).
        self._apply_size()

    def action_stop_key(self) -> None:
        """`c` under the resize notice: on Import, as `q` (§4: Ctrl+C, `q`, `c`); elsewhere nothing."""
        if getattr(self._step_screen(), "QUIT_KIND", None) == "import":
            self.action_request_quit()

    def action_answer_pending(self, confirm: bool) -> None:
        """`y` / `n` / Esc under the resize notice answer the question it names (§8), as they would in it."""
        dialog = self._open_dialog()
        if dialog is not None:
            self._drop_notice()  # (a dismiss pops whatever is on top; "keep going" brings the notice back)
            dialog.action_confirm() if confirm else dialog.action_cancel()
            return
        step = self._step_screen()
        if isinstance(step, ImportScreen) and step.is_mounted and step.confirming:
            step.action_confirm_stop() if confirm else step.action_keep_importing()
            self._sync_notice()

    def terminal_gone(self) -> None:
        """Called from Textual's writer thread when the terminal is gone (hypaware_tui/driver.py)."""
        self.terminal_lost = True
        self.post_message(TerminalGone())

    def on_terminal_gone(self, message: TerminalGone) -> None:
        if not self._hung_up:
            self.hang_up()

    def hang_up(self) -> None:
        """Terminal closed, SIGHUP, SIGTERM: nothing written before the commit; during the import stop after
        the batch and skip the daemon action. Exit 130."""
        self._hung_up = True
        target = self._step_screen()
        if isinstance(target, ImportScreen):
            target.hang_up()
        elif self.result is not None:
            self.exit(return_code=self.result.exit_code or 130)
        else:
            self.exit(return_code=130)

