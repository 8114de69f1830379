"""80×24 SVG snapshots of every wizard screen (wizard.md §12 check 15).

Deterministic: a fixed `now` (the fixture history is laid out relative to it), a fixed clock for elapsed time,
throughput and ETA, HOME-relative paths shown as `~`, no animations, fakes for the daemon.

The SVGs are committed under `snapshots/` at the repository root: `snap` below is the plugin's comparison
(syrupy + pytest-textual-snapshot's SVG extension and normalisation) with the snapshot directory moved there.
Update after looking at the report: `pytest tests/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from textual._doc import take_svg_screenshot
from textual.app import App

from hypaware_tui.app import SCREENS_DIR, WizardApp
from hypaware_tui.core.daemon.action import DaemonActionResult
from hypaware_tui.core.inventory import build_inventory
from hypaware_tui.core.plan import Choices, build_plan, gather_machine_state
from hypaware_tui.core.runner import Progress
from hypaware_tui.screens.base import StepInfo
from hypaware_tui.screens.done import DoneScreen
from hypaware_tui.screens.import_ import (
    ConfigWritten,
    ImportJob,
    ImportProgressed,
    ImportScreen,
    ImportStarted,
    run_import_job,
)
from tests.wizard_support import NOW_US, fixed_clock, make_machine, wizard_settings

SNAPSHOT_DIR = Path(__file__).resolve().parent.parent / "snapshots"
SIZE = (80, 24)


class RootSnapshots(SVGImageExtension):
    """The plugin's SVG extension, stored in `<repo>/snapshots/` instead of `tests/__snapshots__/…`."""

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(SNAPSHOT_DIR / Path(test_location.filepath).stem)


@pytest.fixture
def tmp_path():
    """A temp dir whose path always has the same length: the fixture transcripts record their working
    directory under it, so file sizes (shown on screens) must not depend on the test's name."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="hypsnap-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def utc_zone(monkeypatch):
    """The screens show local dates and name the zone: the snapshots are taken in UTC wherever they run."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def snap(snapshot):
    snapshot = snapshot.use_extension(RootSnapshots)

    def compare(app: App, run_before=None, terminal_size: tuple[int, int] = SIZE) -> bool:
        app.animation_level = "none"
        svg = take_svg_screenshot(app=app, terminal_size=terminal_size, run_before=run_before)
        return snapshot == svg

    return compare


async def _ready(pilot) -> None:
    while not pilot.app.inventory_done:
        await pilot.pause(0.02)
    await pilot.pause()


def _enters(n: int, *, wait_screen: str | None = None):
    async def run_before(pilot) -> None:
        await _ready(pilot)
        for _ in range(n):
            await pilot.press("enter")
            await pilot.pause(0.05)
        if wait_screen:
            while type(pilot.app.screen).__name__ != wait_screen:
                await pilot.pause(0.02)
        await pilot.pause()

    return run_before


# --------------------------------------------------------------------------------------------- flow screens


def test_welcome(snap, tmp_path: Path) -> None:
    """Step 1 of 7 after the inventory: what hyp does, where the data stays, what was found."""
    m = make_machine(tmp_path)
    assert snap(WizardApp(wizard_settings(m)), run_before=_enters(0, wait_screen="WelcomeScreen"))


def test_welcome_back(snap, tmp_path: Path) -> None:
    """A configured machine: the facts, then Reconfigure / Import again / Quit (default)."""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text('{"version": 1, "clients": {"claude": {"enabled": true}}, "retention_days": 90}\n')
    facts = (("Config", "~/.hyp/hypaware-config.json"), ("Clients", "Claude Code"), ("Retention", "90 days"),
             ("Capture", "on"), ("Dataset", "1.2 MB · 4,210 rows · 2026-05-12 → 2026-06-01 (UTC)"),
             ("Daemon", "running (pid 4242)"))
    app = WizardApp(wizard_settings(m, welcome_back_facts=facts))
    assert snap(app, run_before=_enters(0, wait_screen="WelcomeBackScreen"))


def test_clients_one_undetected(snap, tmp_path: Path) -> None:
    """Clients with Codex not found: a disabled row that says why."""
    m = make_machine(tmp_path, clients=("claude",))
    assert snap(WizardApp(wizard_settings(m)), run_before=_enters(1, wait_screen="ClientsScreen"))


def test_clients_no_color(snap, tmp_path: Path, monkeypatch) -> None:
    """NO_COLOR=1: still legible; the disabled row is marked by text ([-] and the reason)."""
    monkeypatch.setenv("NO_COLOR", "1")
    m = make_machine(tmp_path, clients=("claude",))
    app = WizardApp(wizard_settings(m))
    assert app.no_color
    assert snap(app, run_before=_enters(1, wait_screen="ClientsScreen"))


def test_retention(snap, tmp_path: Path) -> None:
    """Retention with the live preview for the checked clients."""
    m = make_machine(tmp_path)
    assert snap(WizardApp(wizard_settings(m)), run_before=_enters(2, wait_screen="RetentionScreen"))


def test_consent(snap, tmp_path: Path) -> None:
    """The normative consent text and the two choices."""
    m = make_machine(tmp_path)
    assert snap(WizardApp(wizard_settings(m)), run_before=_enters(3, wait_screen="ConsentScreen"))


def test_review(snap, tmp_path: Path) -> None:
    """Review before the commit point."""
    m = make_machine(tmp_path)
    assert snap(WizardApp(wizard_settings(m)), run_before=_enters(4, wait_screen="ReviewScreen"))


def test_review_dry_run(snap, tmp_path: Path) -> None:
    """The last screen of `hyp init --dry-run` (M = 5)."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m, dry_run=True))
    assert snap(app, run_before=_enters(4, wait_screen="ReviewScreen"))


# --------------------------------------------------------------------------------------------- import, done


class ScreenHost(App[None]):
    """Shows one wizard screen with the wizard's styles."""

    CSS_PATH = [SCREENS_DIR / "wizard.tcss"]

    def __init__(self, screen_factory) -> None:
        super().__init__()
        self.screen_factory = screen_factory
        self.step_screen = None

    def on_mount(self) -> None:
        self.step_screen = self.screen_factory()
        self.push_screen(self.step_screen)

    def action_request_quit(self) -> None:
        pass


def _plan(m, machine=None):
    machine = machine or gather_machine_state(m.layout, m.env, service_manager=m.service,
                                              process_table=m.process_table)
    inv = build_inventory(config=None, env=m.env)
    return build_plan(inv, Choices(("claude", "codex")), machine, now_us=NOW_US), inv


def test_import_mid_run(snap, tmp_path: Path) -> None:
    """Import 20 s in with a fixed clock: Claude importing (bar, counters, skipped reasons, MB/s, ETA),
    Codex waiting, config written, daemon waiting."""
    m = make_machine(tmp_path)
    plan, inv = _plan(m)
    job = ImportJob(plan=plan, layout=m.layout, env=m.env, clock=fixed_clock, inventory=inv)
    total = plan.client("claude").in_window.bytes

    async def run_before(pilot) -> None:
        screen = pilot.app.step_screen
        while not screen.is_mounted:
            await pilot.pause(0.01)
        from hypaware_tui.core.plan import ConfigOutcome

        screen.post_message(ConfigWritten(ConfigOutcome("ok", "created", m.layout.config)))
        screen.post_message(ImportStarted("claude", total, 15, 980.0))
        for at, frac, files in ((990.0, 0.25, 4), (995.0, 0.40, 6), (1000.0, 0.58, 9)):
            progress = Progress("claude", int(total * frac), total, files, 15, sessions=8, rows_written=151,
                                duplicates=0, lines_skipped={"not_a_message": 16, "malformed": 1,
                                                             "outside_window": 3, "no_session_id": 2},
                                errors=0, elapsed_s=at - 980.0)
            screen.post_message(ImportProgressed("claude", progress, at))
            await pilot.pause()
        await pilot.pause()

    app = ScreenHost(lambda: ImportScreen(StepInfo(6, 7), job, start=False))
    assert snap(app, run_before=run_before)


def test_done(snap, tmp_path: Path) -> None:
    """Done after a real import of the fixture history: summary, capture line, first look, next commands."""
    from hypaware_tui.core.plan import InitResult
    from hypaware_tui.core.query import overview

    m = make_machine(tmp_path)
    plan, inv = _plan(m)
    posted: list[Any] = []

    class Collect:
        def post_message(self, message: Any) -> bool:
            posted.append(message)
            return True

    run_import_job(Collect(), ImportJob(plan=plan, layout=m.layout, env=m.env, clock=fixed_clock, inventory=inv,
                                        service_manager=m.service, spawner=m.spawner))
    result = InitResult(plan)
    for msg in posted:
        if type(msg).__name__ == "ConfigWritten":
            result.config = msg.outcome
        elif type(msg).__name__ == "ImportFinished":
            result.clients[msg.client] = msg.result
    result.daemon = DaemonActionResult("start", "ok", "detached", 4242, None, None,
                                       "running (pid 4242), new sessions appear within seconds")
    now = datetime.fromtimestamp(NOW_US / 1e6, UTC)

    def first_look():
        return overview(m.layout, days=30, now=now, tz="UTC", home=m.env["HOME"])

    async def run_before(pilot) -> None:
        screen = pilot.app.step_screen
        while not (screen.is_mounted and screen.first_look_done):
            await pilot.pause(0.02)
        await pilot.pause()

    app = ScreenHost(lambda: DoneScreen(StepInfo(7, 7), result, m.env, first_look))
    assert snap(app, run_before=run_before)
