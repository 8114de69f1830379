"""Pilot tests of the `hyp init` wizard (wizard.md §12 checks 8-14, 16-18, 22, and key latency)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from hypaware_tui.app import WizardApp
from hypaware_tui.core.plan import capture_line
from hypaware_tui.importers import get_importer
from hypaware_tui.screens.clients import PICK_ONE, ClientsScreen
from hypaware_tui.screens.consent import ConsentScreen
from hypaware_tui.screens.dialogs import QuitSetupDialog, TooSmallScreen
from hypaware_tui.screens.done import DoneScreen
from hypaware_tui.screens.import_ import (
    ImportFinished,
    ImportJob,
    ImportProgressed,
    ImportScreen,
    ImportStarted,
    run_import_job,
)
from hypaware_tui.screens.retention import RetentionScreen
from hypaware_tui.screens.review import ReviewScreen
from hypaware_tui.screens.welcome import WelcomeScreen
from hypaware_tui.screens.welcome_back import WelcomeBackScreen
from hypaware_tui.screens.widgets import ChoiceList
from tests.wizard_support import make_machine, wizard_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --------------------------------------------------------------------------------------------- helpers


async def wait_for(pilot, cond: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await pilot.pause(0.02)


async def on_screen(pilot, cls: type, timeout: float = 15.0) -> Any:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, cls), timeout, cls.__name__)
    await pilot.pause()
    return pilot.app.screen


async def to_clients(pilot) -> ClientsScreen:
    await on_screen(pilot, WelcomeScreen)
    await wait_for(pilot, lambda: pilot.app.inventory_done, what="inventory")
    await pilot.press("enter")
    return await on_screen(pilot, ClientsScreen)


async def to_first_look(pilot) -> DoneScreen:
    """Welcome to Done with every default, once its first look has shown (or its note)."""
    await to_review(pilot)
    done = await enter_to(pilot, DoneScreen)
    await wait_for(pilot, lambda: done.first_look_done, what="first look")
    return done


async def to_reconfigure_clients(pilot) -> ClientsScreen:
    """Welcome back (a config exists) to Reconfigure's Clients step, the inventory done."""
    await on_screen(pilot, WelcomeBackScreen)
    await pilot.press("up", "up")  # Reconfigure
    clients = await enter_to(pilot, ClientsScreen)
    await wait_for(pilot, lambda: pilot.app.inventory_done, what="inventory")
    return clients


async def to_consent(pilot) -> ConsentScreen:
    """Welcome to Consent with every default (Enter on each step)."""
    await to_clients(pilot)
    await enter_to(pilot, RetentionScreen)
    return await enter_to(pilot, ConsentScreen)


async def to_review(pilot) -> ReviewScreen:
    """Welcome to Review with every default (Enter on each step)."""
    await to_consent(pilot)
    return await enter_to(pilot, ReviewScreen)


async def send_key(app, key: str, cond: Callable[[], bool], timeout: float = 5.0) -> float:
    """Send a key as the terminal driver would (Pilot.press waits for the process to go idle, which never
    happens while an import keeps a core busy) and return the seconds until `cond` holds."""
    from textual import events

    t0 = time.perf_counter()
    app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
    while not cond():
        if time.perf_counter() - t0 > timeout:
            raise AssertionError(f"no response to {key!r} within {timeout} s")
        await asyncio.sleep(0.002)
    return time.perf_counter() - t0


async def enter_to(pilot, cls: type) -> Any:
    await pilot.press("enter")
    return await on_screen(pilot, cls)


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class WrappedImporter:
    """Delegates to a real importer; hooks for slow parsing, failures and recording windows."""

    def __init__(self, name: str, *, per_line_s: float = 0.0, sleep_per_line_s: float = 0.0,
                 gate: threading.Event | None = None, fail_discover_after: int | None = None,
                 windows: list | None = None) -> None:
        self.inner = get_importer(name)
        self.per_line_s = per_line_s  # CPU-bound (holds the GIL like real parsing)
        self.sleep_per_line_s = sleep_per_line_s  # I/O-like
        self.gate = gate  # each line waits until it is set
        self.fail_discover_after = fail_discover_after
        self.discover_calls = 0
        self.inventory_calls = 0
        self.detect_calls = 0
        self.windows = windows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def detect(self, *a, **k):
        self.detect_calls += 1
        return self.inner.detect(*a, **k)

    def discover(self, roots):
        self.discover_calls += 1
        if self.fail_discover_after is not None and self.discover_calls > self.fail_discover_after:
            raise RuntimeError("the Codex history could not be listed (injected failure)")
        return self.inner.discover(roots)

    def inventory_file(self, *a, **k):
        self.inventory_calls += 1
        return self.inner.inventory_file(*a, **k)

    def new_parser(self, file, state, window, stats):
        if self.windows is not None:
            self.windows.append(window)
        parser = self.inner.new_parser(file, state, window, stats)
        if self.per_line_s or self.sleep_per_line_s or self.gate is not None:
            feed = parser.feed

            def slow_feed(line, offset, next_offset):
                if self.gate is not None:
                    self.gate.wait(30)
                if self.sleep_per_line_s:
                    time.sleep(self.sleep_per_line_s)
                busy(self.per_line_s)
                return feed(line, offset, next_offset)

            parser.feed = slow_feed
        return parser

    def read_whole(self, file, window, stats):
        if self.windows is not None:
            self.windows.append(window)
        return self.inner.read_whole(file, window, stats)


def importers(**kwargs: Any) -> dict[str, WrappedImporter]:
    return {name: WrappedImporter(name, **kwargs.get(name, {})) for name in ("claude", "codex")}


def held_importers() -> tuple[dict[str, WrappedImporter], threading.Event]:
    """Claude read slowly (progress seconds long), Codex (read after it) held at its first line until the
    returned gate is set, then read at full speed: the import cannot end before the test is done with it,
    however slowly the test runs (a loaded machine). A fixed length of import (sleeps alone) ran out before the
    keys of a slowed test."""
    gate = threading.Event()
    return importers(claude={"sleep_per_line_s": 0.02}, codex={"gate": gate}), gate


def dataset_part_ids(layout) -> list[str]:
    files = sorted(layout.dataset_root.rglob("*.parquet"))
    if not files:
        return []
    return pl.concat([pl.read_parquet(f, columns=["part_id"]) for f in files])["part_id"].to_list()


# --------------------------------------------------------------------------------------------- checks


async def test_enter_alone_reaches_done_and_starts_the_daemon_once(tmp_path: Path) -> None:
    """§12.8: Enter alone from Welcome reaches Done with both clients, 120 days, import and capture on."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_consent(pilot)
        review = await enter_to(pilot, ReviewScreen)
        assert review.plan.choices.clients == ("claude", "codex")
        done = await enter_to(pilot, DoneScreen)
        assert {c: r.status for c, r in done.result.clients.items()} == {"claude": "ok", "codex": "ok"}
        assert all(r.rows_written > 0 for r in done.result.clients.values())
        await pilot.press("enter")
    assert app.return_code == 0
    assert json.loads(m.layout.config.read_text()) == {
        "version": 1,
        "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
        "retention_days": 120,
        "capture": {"enabled": True},
    }
    assert stat.S_IMODE(m.layout.home.stat().st_mode) == 0o700
    assert stat.S_IMODE(m.layout.config.stat().st_mode) == 0o600
    assert len(m.spawner.calls) == 1  # one detached `start`
    assert m.service.calls == [c for c in m.service.calls if c in ("installed", "available")]
    capture = json.loads(m.layout.capture_json.read_text())
    assert set(capture) == {"claude", "codex"} and capture["claude"]["set_by"] == "wizard"
    assert "Claude Code  ok" in app.summary and "Capture" in app.summary


def drawn(widget) -> list[str]:
    """The lines of `widget` as they are on the screen (wrapped and cut at its size), trailing blanks removed."""
    from textual.geometry import Region

    strips = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return ["".join(seg.text for seg in strip).rstrip() for strip in strips]


async def test_done_wraps_next_between_commands_and_capture_under_its_text(tmp_path: Path) -> None:
    """§6.7 at 80 columns: the Next line broke inside a command (`… · hyp` / `daemon install`) and went on at
    column 1, and so did the Capture line; both continue under their text, Next between commands, as the
    plain-text summary does."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_review(pilot)
        done = await enter_to(pilot, DoneScreen)
        capture = drawn(done.query_one("#capture"))
        nxt = drawn(done.query_one("#next"))
        width = done.query_one("#next").size.width
        await pilot.press("enter")
    assert nxt == ['Next     hyp status · hyp query overview · hyp query sql "select …"',
                   "         hyp daemon install"]
    assert capture[0].startswith("Capture  running (pid ") and len(capture) > 1
    assert all(line.startswith(" " * 9) and line[9] != " " for line in capture[1:])
    assert " ".join(line.strip() for line in capture) == "Capture  " + capture_line(app.result)
    assert width <= 80 and all(len(line) <= width for line in capture + nxt)


async def test_done_wraps_each_error_under_its_text(tmp_path: Path) -> None:
    """At 80 columns the error notes under the summary went on at column 1, a file's path split across the
    left edge ("    at" alone, then the path from column 1). Each note continues under its text now: an error
    past `codex: `, a path past `at `, cut at the edge only where it is wider than the screen."""
    m = make_machine(tmp_path)
    folder = next(Path(m.env["CODEX_HOME"]).glob("sessions/*/*/*"))
    for i in range(2):
        (folder / f"rollout-2026-11-20T1{i}-00-00-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b0{i}.jsonl.zst").write_bytes(
            b"not zstd")
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_review(pilot)
        done = await enter_to(pilot, DoneScreen)
        errors = drawn(done.query_one("#errors"))
        width = done.query_one("#errors").size.width
        await pilot.press("enter")
    starts = ["  codex: ", " " * 9, " " * 9, "    at ~/", " " * 7, "  codex: ", " " * 9]
    assert len(errors) == len(starts) and all(map(str.startswith, errors, starts)), errors
    assert [errors[i][n] != " " for i, n in ((1, 9), (2, 9), (4, 7), (6, 9))] == [True] * 4, errors
    assert errors[0].startswith("  codex: file ") and errors[-1].endswith("hyp backfill --dry-run lists their paths).")
    path = errors[3][len("    at "):] + errors[4].lstrip()
    assert (Path(m.env["HOME"]) / path[2:]).is_file(), errors
    assert " ".join(line.strip() for line in errors[:3]).startswith("codex: file ")
    assert all(len(line) <= width for line in errors)


async def test_a_choice_typed_fast_is_the_one_taken(tmp_path: Path) -> None:
    """Up then Enter as fast as a terminal delivers them (a fast typist, a pasted sequence): the retention
    taken is the one the list shows. It used to be the previous one, remembered from a message that the
    Enter overtook (Up, Enter on "Keep forever" gave "Keep forever", not 365 days)."""
    from textual import events

    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m, importers=importers()))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        await enter_to(pilot, RetentionScreen)
        for key in ("up", "up", "enter"):  # 120 -> 90 -> 30, then on at once
            app._driver.send_message(events.Key(key, None))
        consent = await on_screen(pilot, ConsentScreen)
        assert "up to 30 days" in " ".join(str(w.render()) for w in consent.query("Static"))
        await pilot.press("escape")
        back = await on_screen(pilot, RetentionScreen)
        assert back.query_one("#retention").checked == ("30",)
        await enter_to(pilot, ConsentScreen)
        review = await enter_to(pilot, ReviewScreen)
        assert review.plan.retention_days == 30


async def test_esc_goes_back_keeping_answers_and_does_nothing_from_import_on(tmp_path: Path) -> None:
    """§12.9: Esc on Clients, Retention, Consent and Review goes back with answers intact; not on Import/Done."""
    m = make_machine(tmp_path)
    gate = threading.Event()
    app = WizardApp(wizard_settings(m, importers=importers(claude={"gate": gate})))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        await pilot.press("down", "space")  # codex off
        await enter_to(pilot, RetentionScreen)
        await pilot.press("up", "up")  # 120 -> 30
        await enter_to(pilot, ConsentScreen)
        await pilot.press("down", "space")  # capture off
        review = await enter_to(pilot, ReviewScreen)
        assert review.plan.choices.clients == ("claude",)
        assert review.plan.retention_days == 30 and review.plan.choices.capture is False

        await pilot.press("escape")
        consent = await on_screen(pilot, ConsentScreen)
        cl = consent.query_one(ChoiceList)
        assert cl.is_checked("import") and not cl.is_checked("capture")
        await pilot.press("escape")
        retention = await on_screen(pilot, RetentionScreen)
        assert retention.query_one(ChoiceList).checked == ("30",)
        await pilot.press("escape")
        clients = await on_screen(pilot, ClientsScreen)
        assert clients.query_one(ChoiceList).checked == ("claude",)
        await pilot.press("escape")
        await on_screen(pilot, WelcomeScreen)

        await enter_to(pilot, ClientsScreen)
        await enter_to(pilot, RetentionScreen)
        await enter_to(pilot, ConsentScreen)
        review = await enter_to(pilot, ReviewScreen)
        assert (review.plan.choices.clients, review.plan.retention_days, review.plan.choices.capture) == (
            ("claude",), 30, False)
        # Tab stops only where the focus shows (`>`): the scrolling body was a stop with no marker, and Enter
        # there started the import with no button visibly chosen.
        stops = []
        for _ in range(4):
            await pilot.press("tab")
            stops.append(pilot.app.focused.id if pilot.app.focused is not None else None)
        assert stops == ["back", "start", "back", "start"]

        importing = await enter_to(pilot, ImportScreen)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert pilot.app.screen is importing
        assert "Esc" not in str(importing.query_one("#keys").render())
        gate.set()
        done = await on_screen(pilot, DoneScreen, timeout=30)
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert pilot.app.screen is done
        await pilot.press("q")
    assert app.return_code == 0
    assert json.loads(m.layout.config.read_text())["retention_days"] == 30
    assert m.spawner.calls == []  # capture off: no daemon


async def test_esc_back_puts_the_cursor_on_the_row_the_user_left(tmp_path: Path) -> None:
    """Coming back with Esc, Space toggles the row the user was on: the list started on its first checked row,
    so after unchecking Import and going back from Review, Space unchecked "Keep capturing" instead."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        consent = await to_consent(pilot)
        assert consent.query_one(ChoiceList).highlighted == "import"
        await pilot.press("space")  # Import off
        await enter_to(pilot, ReviewScreen)
        await pilot.press("escape")
        consent = await on_screen(pilot, ConsentScreen)
        cl = consent.query_one(ChoiceList)
        assert pilot.app.focused is cl and cl.highlighted == "import"
        assert "> [ ] Import existing history" in str(cl.render())
        await pilot.press("space")  # the user changes their mind: Import on again
        assert cl.is_checked("import") and cl.is_checked("capture")
        await pilot.press("down")  # on "Keep capturing", back to Retention and forward again
        await pilot.press("escape")
        await on_screen(pilot, RetentionScreen)
        consent = await enter_to(pilot, ConsentScreen)
        assert consent.query_one(ChoiceList).highlighted == "capture"
        # Clients too: the cursor left on Codex is on Codex again, though Claude Code is checked above it.
        await pilot.press("escape")
        await on_screen(pilot, RetentionScreen)
        await pilot.press("escape")
        clients = await on_screen(pilot, ClientsScreen)
        await pilot.press("down")
        await enter_to(pilot, RetentionScreen)
        await pilot.press("escape")
        clients = await on_screen(pilot, ClientsScreen)
        assert clients.query_one(ChoiceList).highlighted == "codex"
        await pilot.press("space")
        assert clients.query_one(ChoiceList).checked == ("claude",)
        await pilot.press("q", "y")
    assert app.return_code == 130


async def test_ctrl_z_suspends_the_wizard_and_presses_nothing(tmp_path: Path, monkeypatch) -> None:
    """Ctrl+Z did nothing in the wizard (a key in raw mode), and the `fg` and Enter typed next reached the app,
    where Enter activated the focused button: on Review, the import started. Ctrl+Z stops the process now
    (SIGTSTP to itself, Textual leaving the terminal as it found it first), where the terminal allows it; the
    signal itself is not sent here."""
    import signal

    from textual.drivers.headless_driver import HeadlessDriver

    sent: list[tuple[int, int]] = []
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        if pid == os.getpid() and sig == signal.SIGTSTP:
            sent.append((pid, sig))
            return
        real_kill(pid, sig)

    monkeypatch.setattr(os, "kill", kill)
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_review(pilot)
        await pilot.press("ctrl+z")  # the test driver cannot suspend: nothing
        await pilot.pause()
        assert sent == [] and isinstance(app.screen, ReviewScreen)
        monkeypatch.setattr(HeadlessDriver, "can_suspend", property(lambda self: True))
        await pilot.press("ctrl+z")
        await pilot.pause()
        assert sent == [(os.getpid(), signal.SIGTSTP)]
        assert isinstance(app.screen, ReviewScreen) and not m.layout.config.exists()


@pytest.mark.parametrize("key", ["ctrl+c", "q"])
async def test_quit_before_import_writes_nothing_and_exits_130(tmp_path: Path, key: str) -> None:
    """§12.10: Ctrl+C (or q) before Import opens the quit dialog; confirming exits 130, HYP_HOME absent."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        await enter_to(pilot, RetentionScreen)
        await pilot.press(key)
        await on_screen(pilot, QuitSetupDialog)
        await pilot.press("n")  # keep going
        await on_screen(pilot, RetentionScreen)
        await pilot.press(key)
        await on_screen(pilot, QuitSetupDialog)
        await pilot.press("ctrl+c" if key == "ctrl+c" else "y")
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 130
    assert not m.layout.home.exists()


async def test_ctrl_c_on_the_dry_run_review_asks_and_q_closes(tmp_path: Path) -> None:
    """§4, §8: Ctrl+C before Import asks, on a dry run's Review too (it exited 0 at once there, unlike every
    other screen); `q`, Enter and Close end the dry run with 0 (§6.5)."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m, dry_run=True))
    async with app.run_test(size=(80, 24)) as pilot:
        review = await to_review(pilot)
        await pilot.press("ctrl+c")
        dialog = await on_screen(pilot, QuitSetupDialog)
        assert "Nothing has been written" in str(dialog.query_one("#dialog-message").render())
        await pilot.press("n")
        assert await on_screen(pilot, ReviewScreen) is review and app.return_code is None
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 0
    assert not m.layout.home.exists()
    app = WizardApp(wizard_settings(m, dry_run=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_review(pilot)
        await pilot.press("ctrl+c")
        await on_screen(pilot, QuitSetupDialog)
        await pilot.press("ctrl+c")  # a second Ctrl+C confirms
        await wait_for(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 130
    assert not m.layout.home.exists()


async def test_done_suggests_daemon_install_with_capture_off(tmp_path: Path) -> None:
    """§6.7 item 4: Next lists `hyp daemon install` when none is installed, capture off included (it is how
    capture is turned on later); the plain-text summary left in the scrollback says the same."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_consent(pilot)
        await pilot.press("down", "space")  # capture off
        await enter_to(pilot, ReviewScreen)
        await pilot.press("enter")
        done = await on_screen(pilot, DoneScreen, timeout=30)
        shown = str(done.query_one("#next").render())
        await pilot.press("q")
    assert app.result.plan.choices.capture is False and m.spawner.calls == []
    assert shown == ('Next     hyp status · hyp query overview · hyp query sql "select …"\n'
                     '         hyp daemon install')
    assert 'Next      hyp status · hyp query overview · hyp query sql "select …" · hyp daemon install' in (
        app.summary.splitlines())


@pytest.mark.parametrize("capture", [False, True])
async def test_a_declined_import_says_how_to_import_later_and_what_shows_up_by_itself(tmp_path: Path,
                                                                                      capture: bool) -> None:
    """With the import declined and capture off, Done said "Nothing imported yet. New sessions will show up in hyp
    query overview." (nothing would: no daemon runs), and Next had no `hyp backfill` (wizard audit). The
    sentence now says what runs, and Next says how to import the history declined."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        consent = await to_consent(pilot)
        await pilot.press("space")  # import off (the cursor is on the first row)
        if not capture:
            await pilot.press("down", "space")
        assert consent.current_answer() == (False, capture)
        await enter_to(pilot, ReviewScreen)
        await pilot.press("enter")
        done = await on_screen(pilot, DoneScreen, timeout=30)
        await wait_for(pilot, lambda: done.first_look_done)
        note = str(done.query_one("#first-look").render())
        shown = str(done.query_one("#next").render())
        await pilot.press("q")
    assert (len(m.spawner.calls) == 1) is capture
    if capture:
        assert note == "Nothing imported yet. New sessions will show up in hyp query overview."
    else:
        assert " ".join(note.split()) == ("Nothing imported yet, and nothing is captured: hyp backfill imports your "
                                          "history, hyp daemon start captures new sessions.")
    commands = [c for line in shown.splitlines() for c in line[9:].split(" · ")]
    assert commands[:4] == ["hyp status", "hyp query overview", 'hyp query sql "select …"', "hyp backfill"], shown
    assert "hyp backfill" in app.summary


def test_without_capture_the_first_look_names_hyp_backfill_only_when_the_import_was_declined() -> None:
    """An import that ran and found nothing in the window, without capture: `hyp backfill` would find nothing
    again, so the sentence names only what captures (review)."""
    from types import SimpleNamespace as NS

    from hypaware_tui.core.plan import Choices
    from hypaware_tui.screens.done import nothing_yet

    def said(import_history: bool, capture: bool, pid: int | None) -> str:
        plan = NS(demo_dir=None, choices=Choices(("claude",), import_history=import_history, capture=capture))
        return nothing_yet(NS(plan=plan, daemon=NS(status="ok", pid=pid)))

    assert said(True, False, None) == "Nothing imported yet, and nothing is captured: hyp daemon start captures new sessions."
    assert said(False, False, None) == ("Nothing imported yet, and nothing is captured: hyp backfill imports your "
                                        "history, hyp daemon start captures new sessions.")
    assert said(True, True, 4242) == said(False, True, 4242) == (
        "Nothing imported yet. New sessions will show up in hyp query overview.")


async def test_footers_list_the_keys_valid_on_consent_and_on_a_declined_import(tmp_path: Path) -> None:
    """§4: the footer lists the keys valid on the screen. Consent took `a` (toggle all) without listing it (and
    only with the list focused); Import with the import declined listed `c`/`q`/Ctrl+C "stop import" with
    nothing to stop, and they asked "Stop the import?" all the same."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m, import_finish_delay=30.0))  # (the Import screen stays up to be read)
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        await enter_to(pilot, RetentionScreen)
        consent = await enter_to(pilot, ConsentScreen)
        footer = str(consent.query_one("#keys").render())
        assert "a all" in footer and footer.index("Space toggle") < footer.index("a all")
        await pilot.press("tab")  # to [ Continue ]: `a` still toggles every row
        assert app.focused is consent.query_one("#continue")
        await pilot.press("a")
        assert consent.current_answer() == (False, False)
        await pilot.press("a")
        assert consent.current_answer() == (True, True)
        await pilot.press("shift+tab", "space")  # import off (the cursor is on the first row)
        assert consent.current_answer() == (False, True)
        await enter_to(pilot, ReviewScreen)
        screen = await enter_to(pilot, ImportScreen)
        assert all(p.status == "skipped" for p in screen.query(".import-panel"))
        assert str(screen.query_one("#keys").render()) == ""
        for key in ("c", "q", "ctrl+c"):
            await pilot.press(key)
            assert not screen.confirming and not screen.stopping
        await wait_for(pilot, lambda: screen.result.daemon is not None)
        assert str(screen.query_one("#keys").render()) == ""
        screen.finish_delay = 0.0
        screen._finish()
        await on_screen(pilot, DoneScreen)
        await pilot.press("enter")
    assert app.return_code == 0


async def test_space_toggles_a_skips_disabled_and_empty_selection_stays(tmp_path: Path) -> None:
    """§12.11: Space toggles the focused client; `a` never checks a disabled row; nothing checked stays."""
    m = make_machine(tmp_path, clients=("claude",))
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await to_clients(pilot)
        cl = screen.query_one(ChoiceList)
        assert cl.checked == ("claude",)
        assert [r.disabled for r in cl.rows] == [False, True]
        assert "not found: ~/.codex does not exist" in cl.rows[1].detail
        await pilot.press("space")
        assert cl.checked == ()
        await pilot.press("a")
        assert cl.checked == ("claude",)
        await pilot.press("down", "space")  # the cursor skips the disabled row; space toggles claude
        assert cl.checked == ()
        await pilot.press("a", "a")
        assert cl.checked == ()
        await pilot.press("enter")
        await pilot.pause()
        assert pilot.app.screen is screen
        assert screen.problem == PICK_ONE
        # `a`, listed in the key bar, works wherever the focus is (it did nothing once Continue had focus)
        await pilot.press("tab")
        assert pilot.app.focused is screen.query_one("#continue")
        await pilot.press("a")
        assert cl.checked == ("claude",)


async def test_retention_preview_changes_without_touching_the_file_system(tmp_path: Path) -> None:
    """§12.12: moving the Retention cursor from 120 to 30 days changes the preview, no inventory call."""
    from tests.wizard_support import NOW_US

    m = make_machine(tmp_path, now_us=NOW_US - 20 * 86_400_000_000)  # history 20-40 days old
    imps = importers()
    app = WizardApp(wizard_settings(m, importers=imps))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        screen = await enter_to(pilot, RetentionScreen)
        counts = [(i.detect_calls, i.discover_calls, i.inventory_calls) for i in imps.values()]
        before = screen.preview(120)
        await pilot.press("up")  # 90
        await pilot.press("up")  # 30
        assert screen.selected == 30
        after = screen.preview(30)
        assert before != after
        assert "up to 21 sessions" in before and "Nothing older" in before
        assert "sessions, not imported" in after
        assert [(i.detect_calls, i.discover_calls, i.inventory_calls) for i in imps.values()] == counts


async def test_reconfigure_keeps_a_custom_retention_and_unknown_keys(tmp_path: Path) -> None:
    """§12.13: over a config with 60 days and "x": 1, Retention defaults to `60 days (current)` and the new
    config keeps "x": 1; the old file is backed up byte for byte. (A change is made, 60 → 90 days: with none
    the file is left as it is, see test_wizard_paths.)"""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    old = (b'{"version": 1, "clients": {"claude": {"enabled": true}, "codex": {"enabled": false}},\n'
           b' "retention_days": 60, "capture": {"enabled": false}, "x": 1}\n')
    m.layout.config.write_bytes(old)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        back = await on_screen(pilot, WelcomeBackScreen)
        assert back.query_one(ChoiceList).checked == ("quit",)
        await pilot.press("up", "up")
        clients = await enter_to(pilot, ClientsScreen)
        assert clients.step.total == 7 and clients.step.number == 2
        await wait_for(pilot, lambda: app.inventory_done)
        cl = clients.query_one(ChoiceList)
        assert cl.checked == ("claude",)  # seeded from the config, not from detection
        await wait_for(pilot, lambda: "currently off" in cl.rows[1].detail, what="codex label")
        retention = await enter_to(pilot, RetentionScreen)
        assert retention.selected == 60
        labels = [r.label for r in retention.query_one(ChoiceList).rows]
        assert "60 days (current)" in labels
        await pilot.press("down")  # 90 days
        consent = await enter_to(pilot, ConsentScreen)
        assert not consent.query_one(ChoiceList).is_checked("capture")  # seeded: capture was off
        review = await enter_to(pilot, ReviewScreen)
        assert review.plan.config.action == "replace"
        assert review.plan.config.changes == ("retention: 60 days → 90 days",)
        await enter_to(pilot, DoneScreen)
        await pilot.press("enter")
    new = json.loads(m.layout.config.read_text())
    assert new["x"] == 1 and new["retention_days"] == 90 and new["clients"]["codex"]["enabled"] is False
    backups = list(m.layout.home.glob("hypaware-config.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == old
    assert m.spawner.calls == []


async def test_consent_text_with_defaults(tmp_path: Path) -> None:
    """§12.14."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        consent = await to_consent(pilot)
        text = str(consent.query_one("#consent-text").render())
        text = " ".join(text.split())
        for phrase in ("up to 120 days", "nothing leaves this machine", "Image contents are never stored",
                       "one-way hash", "Claude Code and Codex"):
            assert phrase in text


def test_counts_of_one_read_in_the_singular_on_every_screen(tmp_path: Path) -> None:
    """Clients, Retention, Consent and Done say `1 session`, `1 day`, `1 active day`, never `1 sessions`."""
    from dataclasses import replace

    from rich.console import Console

    from hypaware_tui.app import client_summary
    from hypaware_tui.core.inventory import build_inventory
    from hypaware_tui.core.plan import Choices
    from hypaware_tui.core.query import DayCount, Overview, Period
    from hypaware_tui.screens.consent import consent_text
    from hypaware_tui.screens.retention import option_label
    from tests.wizard_support import NOW_US

    m = make_machine(tmp_path, clients=("claude",))
    ci = build_inventory(env=m.env).clients["claude"]
    sessions = {}
    for fi in ci.files:  # one file of each of two sessions: one 10 days old, one 200 days old
        key = ci.session_keys.get(fi.file.path_hash)
        if key is not None and key not in sessions and len(sessions) < 2:
            age = 10 if not sessions else 200
            sessions[key] = replace(fi, first_ts=NOW_US - age * 86_400_000_000, last_ts=NOW_US - age * 86_400_000_000)
    assert len(sessions) == 2
    app = WizardApp(wizard_settings(m))
    app.inventory_clients = {"claude": replace(ci, files=list(sessions.values()))}
    app.inventory_done = True
    app.choices = Choices(("claude",))
    assert app.retention_preview(120).startswith("In this window: up to 1 session · ")
    assert app.retention_preview(120).endswith(" Older: 1 session, not imported.")
    assert client_summary(replace(ci, files=list(sessions.values())[:1])).startswith("1 file · 1 session · ")
    assert app.scan_status() == "Found Claude Code (2 files)."
    app.inventory_clients = {"claude": replace(ci, files=list(sessions.values())[:1])}
    assert app.scan_status() == "Found Claude Code (1 file)."
    assert option_label(1) == "1 day" and option_label(1, current=1) == "1 day (current)"
    assert "going back up to 1 day:" in consent_text("Claude Code", 1, "~/.hyp")
    ov = Overview(Period("2026-06-01T00:00:00Z", "2026-06-01T12:00:00Z", 1, "UTC"), rows=1, sessions=1,
                  days=[DayCount("2026-06-01", 1, 1)])
    console = Console(width=80, record=True, color_system=None)
    console.print(DoneScreen._overview_main(ov))
    assert "2026-06-01 → 2026-06-01 (UTC) · 1 active day · 1 row\n" in console.export_text()


class ExplodingApp:
    """An app double: any widget access raises; only post_message is allowed."""

    def __init__(self) -> None:
        self.posted: list[Any] = []
        self.calls: list[str] = []

    def post_message(self, message: Any) -> bool:
        self.calls.append("post_message")
        self.posted.append(message)
        return True

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the worker touched {name}")


def test_import_worker_only_posts_messages(tmp_path: Path) -> None:
    """§12.16 (first half): the worker body against an app double whose query/query_one raise."""
    from hypaware_tui.core.inventory import build_inventory
    from hypaware_tui.core.plan import Choices, build_plan, gather_machine_state
    from tests.wizard_support import NOW_US, fixed_clock

    m = make_machine(tmp_path)
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    inv = build_inventory(config=None, env=m.env)
    plan = build_plan(inv, Choices(("claude", "codex")), machine, now_us=NOW_US)
    double = ExplodingApp()
    run_import_job(double, ImportJob(plan=plan, layout=m.layout, env=m.env, clock=fixed_clock, inventory=inv,
                                     service_manager=m.service, spawner=m.spawner))
    assert set(double.calls) == {"post_message"}
    kinds = [type(msg).__name__ for msg in double.posted]
    assert kinds[0] == "ConfigWritten" and kinds[-1] == "DaemonActionFinished"
    for client in ("claude", "codex"):
        assert any(isinstance(x, ImportStarted) and x.client == client for x in double.posted)
        assert any(isinstance(x, ImportFinished) and x.client == client and x.result.status == "ok"
                   for x in double.posted)


async def test_message_hook_sees_started_progressed_finished_per_client(tmp_path: Path) -> None:
    """§12.16 (second half)."""
    m = make_machine(tmp_path)
    seen: list[Any] = []
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await to_consent(pilot)
        await enter_to(pilot, ReviewScreen)
        await enter_to(pilot, DoneScreen)
    for client in ("claude", "codex"):
        for cls in (ImportStarted, ImportProgressed, ImportFinished):
            assert any(isinstance(x, cls) and x.client == client for x in seen), (cls.__name__, client)


async def test_a_failing_client_does_not_stop_the_other_or_the_daemon(tmp_path: Path) -> None:
    """§12.17: a Codex importer that raises: Claude imports, the daemon action runs, Codex failed, exit 1."""
    m = make_machine(tmp_path)
    imps = importers(codex={"fail_discover_after": 1})  # the inventory's discover works, the import's fails
    app = WizardApp(wizard_settings(m, importers=imps))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_consent(pilot)
        await enter_to(pilot, ReviewScreen)
        done = await enter_to(pilot, DoneScreen)
        assert done.result.clients["claude"].status == "ok"
        assert done.result.clients["codex"].status == "failed"
        assert done.title_text() == "Setup complete, with errors"
        errors = str(done.query_one("#errors").render())
        assert "codex:" in errors and "injected failure" in errors
        await pilot.press("enter")
    assert app.return_code == 1
    assert len(m.spawner.calls) == 1


async def test_stopping_the_import_keeps_data_consistent_and_runs_the_daemon(tmp_path: Path) -> None:
    """§12.18: stop mid-run: unfinished clients cancelled, no duplicate part_id, daemon action done, 130."""
    m = make_machine(tmp_path)
    imps, gate = held_importers()
    app = WizardApp(wizard_settings(m, importers=imps))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_consent(pilot)
        await enter_to(pilot, ReviewScreen)
        screen = await enter_to(pilot, ImportScreen)
        panel = screen.query_one("#panel-claude")
        await wait_for(pilot, lambda: panel.progress is not None and panel.progress.files_done >= 2)
        await send_key(app, "c", lambda: screen.confirming)
        assert "Stop the import?" in str(screen.query_one("#stop-message").render())
        await send_key(app, "y", lambda: not screen.confirming)
        gate.set()
        codex_panel = screen.query_one("#panel-codex")
        await wait_for(pilot, lambda: codex_panel.status == "cancelled" and codex_panel.finished_at is not None)
        assert codex_panel._speed_line().endswith("· cancelled")  # (it said "· done")
        done = await on_screen(pilot, DoneScreen, timeout=30)
        statuses = {c: r.status for c, r in done.result.clients.items()}
        assert statuses["codex"] == "cancelled"
        assert statuses["claude"] in ("cancelled", "ok")
        assert done.title_text() == "Setup finished, import stopped"
        assert done.result.daemon.action == "start" and done.result.daemon.status == "ok"
        await pilot.press("enter")
    assert app.return_code == 130
    ids = dataset_part_ids(m.layout)
    assert len(ids) == len(set(ids))
    assert len(m.spawner.calls) == 1


async def test_resize_notice_below_80x24_keeps_screen_and_answers(tmp_path: Path) -> None:
    """§12.22: at 79×23 the resize notice shows; at 80×24 the same screen and answers return."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        clients = await to_clients(pilot)
        await pilot.press("space")  # claude off
        await pilot.resize_terminal(79, 23)
        await on_screen(pilot, TooSmallScreen)
        assert "Make the terminal at least 80×24" in str(app.screen.query_one("#too-small").render())
        # the size it is and the way out (in tmux with a status bar a stock terminal is 80×23)
        assert str(app.screen.query_one("#too-small-size").render()) == "It is 79×23 now. q quits."
        await pilot.resize_terminal(60, 20)
        await wait_for(pilot, lambda: str(app.screen.query_one("#too-small-size").render()) ==
                       "It is 60×20 now. q quits.")  # fmt: skip
        await pilot.press("space", "enter")  # swallowed by the notice
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: app.screen is clients)
        assert clients.query_one(ChoiceList).checked == ("codex",)


async def test_quit_dialog_over_the_resize_notice_leaves_no_notice_behind(tmp_path: Path) -> None:
    """§4, §8: Ctrl+C while the notice shows opens the quit dialog; after "no" and a resize to 80×24 the step
    screen is back. The notice stayed under the dialog, and its dismissal closed the dialog instead: the
    notice then stayed for good, at any size."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        clients = await to_clients(pilot)
        await pilot.resize_terminal(70, 24)
        await on_screen(pilot, TooSmallScreen)
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: any(isinstance(s, QuitSetupDialog) for s in app.screen_stack))
        await pilot.resize_terminal(80, 24)
        await on_screen(pilot, QuitSetupDialog)
        await pilot.pause()
        assert isinstance(app.screen, QuitSetupDialog)  # the dialog stays until answered
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is clients)
        assert not any(isinstance(s, TooSmallScreen) for s in app.screen_stack)
        await pilot.resize_terminal(70, 24)  # and the notice still comes and goes
        await on_screen(pilot, TooSmallScreen)
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: app.screen is clients)


@pytest.mark.parametrize("order", ["ctrl+c then shrink", "shrink then ctrl+c"])
async def test_the_resize_notice_stays_over_the_quit_dialog_in_either_order(tmp_path: Path, order: str) -> None:
    """§4: below 80×24 the notice shows, whichever came first, the quit dialog or the small terminal. Ctrl+C
    under the notice drew the dialog over the step screen, cut off, and the notice was gone (the other order
    kept it). The dialog shows once the terminal is large enough; a second Ctrl+C quits meanwhile (§8)."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        clients = await to_clients(pilot)
        if order == "ctrl+c then shrink":
            await pilot.press("ctrl+c")
            await on_screen(pilot, QuitSetupDialog)
            await pilot.resize_terminal(70, 20)
        else:
            await pilot.resize_terminal(70, 20)
            await on_screen(pilot, TooSmallScreen)
            await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: any(isinstance(s, QuitSetupDialog) for s in app.screen_stack))
        await pilot.pause()
        notice = app.screen
        assert isinstance(notice, TooSmallScreen)
        assert [type(s) for s in app.screen_stack[-3:]] == [ClientsScreen, QuitSetupDialog, TooSmallScreen]
        assert "Make the terminal at least 80×24" in str(notice.query_one("#too-small").render())
        assert str(notice.query_one("#too-small-pending").render()) == (
            "Quit setup? Nothing has been written.\ny or Ctrl+C again: quit · n: keep going.")
        await pilot.press("n")  # answers the question the notice names: keep going, the notice stays
        await wait_for(pilot, lambda: not any(isinstance(s, QuitSetupDialog) for s in app.screen_stack))
        await on_screen(pilot, TooSmallScreen)
        assert not app.screen.query("#too-small-pending") and app.return_code is None
        await pilot.press("ctrl+c")  # asks again
        await wait_for(pilot, lambda: any(isinstance(s, QuitSetupDialog) for s in app.screen_stack))
        await pilot.resize_terminal(80, 24)
        await on_screen(pilot, QuitSetupDialog)
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is clients)
        assert not any(isinstance(s, (TooSmallScreen, QuitSetupDialog)) for s in app.screen_stack)
        # Small again, Ctrl+C twice: the second confirms under the notice.
        await pilot.resize_terminal(70, 20)
        await on_screen(pilot, TooSmallScreen)
        assert not app.screen.query("#too-small-pending")
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: any(isinstance(s, QuitSetupDialog) for s in app.screen_stack))
        assert isinstance(app.screen, TooSmallScreen)
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 130 and not m.layout.home.exists()


async def test_the_stop_question_under_the_resize_notice_is_named_and_answered_there(tmp_path: Path) -> None:
    """§4, §8 on Import: Ctrl+C with the terminal too small opened the stop question (a panel of the Import
    screen) under the notice, which did not name it, so the second Ctrl+C stopped an import the user never saw
    a question about; `c`, `y`, `n` did nothing there. As for the quit dialog, the notice names the question and
    its keys; a second Ctrl+C stops the import (the daemon action still runs) and Done shows at 80×24."""
    m = make_machine(tmp_path)
    imps, gate = held_importers()
    app = WizardApp(wizard_settings(m, importers=imps))
    question = ("Stop the import? The current batch finishes and rows already written are kept. Finish later "
                "with hyp backfill.\ny or Ctrl+C again: stop import · n: keep importing.")

    def pending() -> str | None:
        shown = app.screen.query("#too-small-pending")
        return str(shown.first().render()) if shown else None

    async with app.run_test(size=(80, 24)) as pilot:
        await to_review(pilot)
        screen = await enter_to(pilot, ImportScreen)
        await pilot.resize_terminal(70, 20)
        await on_screen(pilot, TooSmallScreen)
        assert pending() is None
        await send_key(app, "ctrl+c", lambda: pending() == question)
        assert screen.confirming and not screen.stopping
        await send_key(app, "n", lambda: pending() is None)  # keeps importing
        assert not screen.confirming and not screen.stopping
        await send_key(app, "c", lambda: pending() == question)  # `c` asks, as `q` and Ctrl+C do on Import
        await send_key(app, "escape", lambda: pending() is None)
        await send_key(app, "q", lambda: pending() == question)
        await send_key(app, "ctrl+c", lambda: screen.stopping)
        assert isinstance(app.screen, TooSmallScreen) and not screen.confirming
        gate.set()
        await wait_for(pilot, lambda: screen._pending_finish or pending() == (
            "Stopping the import after the current batch…"))
        await pilot.resize_terminal(80, 24)
        done = await on_screen(pilot, DoneScreen, timeout=30)
        assert "cancelled" in {r.status for r in done.result.clients.values()}
        assert done.result.daemon.action == "start" and done.result.daemon.status == "ok"
        await pilot.press("enter")
    assert app.return_code == 130
    assert len(m.spawner.calls) == 1


async def test_an_import_that_ends_under_the_resize_notice_goes_on_to_done(tmp_path: Path) -> None:
    """§4: an import that finishes while the terminal is too small shows Done once it is 80×24 again. The
    Import screen counted as current under the notice, dismissed itself, and popped the notice instead: the
    wizard was stuck on a finished Import screen that no key could leave."""
    m = make_machine(tmp_path)
    imps, gate = held_importers()
    app = WizardApp(wizard_settings(m, importers=imps))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_review(pilot)
        screen = await enter_to(pilot, ImportScreen)
        assert isinstance(screen, ImportScreen) and screen.query_one("#panel-claude").status != "ok"
        await pilot.resize_terminal(70, 24)
        await on_screen(pilot, TooSmallScreen)
        assert not screen._pending_finish  # (it ends under the notice)
        gate.set()
        await wait_for(pilot, lambda: screen._pending_finish, timeout=120)
        assert isinstance(app.screen, TooSmallScreen)
        await pilot.resize_terminal(80, 24)
        done = await on_screen(pilot, DoneScreen, timeout=30)
        assert not any(isinstance(s, (TooSmallScreen, ImportScreen)) for s in app.screen_stack)
        await pilot.press("enter")
    assert app.return_code == 0 and done.result is not None


async def test_keys_respond_within_250ms_while_a_slow_import_runs(tmp_path: Path) -> None:
    """§6.6: keys answer within 250 ms during the import (slow, CPU-bound fake parsing)."""
    m = make_machine(tmp_path)
    imps = importers(claude={"per_line_s": 0.02}, codex={"per_line_s": 0.02})
    app = WizardApp(wizard_settings(m, importers=imps))
    latencies: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await to_consent(pilot)
        await enter_to(pilot, ReviewScreen)
        screen = await enter_to(pilot, ImportScreen)
        panel = screen.query_one("#panel-claude")
        await wait_for(pilot, lambda: panel.status == "importing")
        for _ in range(6):
            latencies.append(await send_key(app, "q", lambda: screen.confirming))
            latencies.append(await send_key(app, "n", lambda: not screen.confirming))
        assert panel.status == "importing"  # every press was measured while the import ran
        screen.stop_import()
        await on_screen(pilot, DoneScreen, timeout=60)
    ordered = sorted(latencies)
    report = (f"key latency during import: max {ordered[-1] * 1000:.0f} ms, median "
              f"{ordered[len(ordered) // 2] * 1000:.0f} ms over {len(ordered)} presses "
              f"({', '.join(f'{x * 1000:.0f}' for x in latencies)} ms)")
    print("\n" + report)
    if os.environ.get("HYP_LATENCY_REPORT"):
        Path(os.environ["HYP_LATENCY_REPORT"]).write_text(report + "\n")
    # The test machine is shared (several test runs on 2 cores): a press that waited for the OS scheduler
    # is not the app's doing, so the bound is on three quarters of the presses; the report shows them all.
    assert ordered[(len(ordered) * 3) // 4 - 1] < 0.25, report


async def test_import_waiting_for_the_write_lock_says_so_in_the_panel(tmp_path: Path) -> None:
    """cli.md "Writers": a writer that waits for another one's lock says so; in the wizard, in the panel of
    the client that waits, until its import moves on. The lock is held here as another hyp process would."""
    from filelock import FileLock

    m = make_machine(tmp_path)
    m.layout.run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(m.layout.write_lock))
    lock.acquire()
    app = WizardApp(wizard_settings(m))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await to_review(pilot)
            screen = await enter_to(pilot, ImportScreen)
            panel = screen.query_one("#panel-claude")
            await wait_for(pilot, lambda: panel.waiting is not None, what="the lock notice")
            await pilot.pause()
            assert "waiting for another import to finish its batch…" in str(panel.render())
            assert dataset_part_ids(m.layout) == []  # nothing written while the lock is held
            lock.release()
            done = await on_screen(pilot, DoneScreen, timeout=30)
            assert panel.waiting is None
            assert {c: r.status for c, r in done.result.clients.items()} == {"claude": "ok", "codex": "ok"}
            await pilot.press("enter")
    finally:
        if lock.is_locked:
            lock.release()
    assert app.return_code == 0
    ids = dataset_part_ids(m.layout)
    assert ids and len(ids) == len(set(ids))


@contextlib.asynccontextmanager
async def _import_screen_held(tmp_path: Path):
    """The wizard at 100×32 on its Import step, Claude's import held at a gate (opened on the way out):
    (app, pilot, import screen, gate)."""
    m = make_machine(tmp_path)
    gate = threading.Event()
    app = WizardApp(wizard_settings(m, importers=importers(claude={"gate": gate})))
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            await to_review(pilot)
            yield app, pilot, await enter_to(pilot, ImportScreen), gate
    finally:
        gate.set()


async def test_a_lost_parse_worker_is_a_note_under_the_panels(tmp_path: Path) -> None:
    """The runner's notices (`on_notice`: a parse worker killed mid-import) reach the Import screen as a
    lasting note under the panels, with the client's name; a lock notice goes to that client's panel."""
    from hypaware_tui.core.runner import WORKER_LOST_NOTICE
    from hypaware_tui.screens.import_ import ImportNotice, _MessageSink

    posted: list[Any] = []
    sink = _MessageSink(posted.append, lambda: 0.0)
    sink.on_notice("codex", WORKER_LOST_NOTICE)
    sink.on_lock_wait("claude")
    assert [(type(x), x.client, x.kind) for x in posted] == [
        (ImportNotice, "codex", "note"), (ImportNotice, "claude", "waiting")]

    async with _import_screen_held(tmp_path) as (app, pilot, screen, gate):
        assert "Note" not in str(screen.query_one("#steps").render())
        for msg in posted:
            screen.post_message(msg)
        await wait_for(pilot, lambda: bool(screen.notes), what="the note")
        await pilot.pause()
        steps = str(screen.query_one("#steps").render())
        assert "Note     Codex: a parse worker process stopped unexpectedly" in steps
        assert "waiting for another import" in str(screen.query_one("#panel-claude").render())
        gate.set()
        await on_screen(pilot, DoneScreen, timeout=30)
        await pilot.press("enter")
    assert app.return_code == 0


async def test_files_read_but_not_saved_at_a_stop_are_a_note(tmp_path: Path) -> None:
    """A stopped parallel import drops the workers' results not taken yet: its final progress counts fewer
    files than the live one showed. `hyp backfill` says why ("N more files were read but not saved"); the
    Import screen says it too, as a note under the panels, and not for a final report without such files."""
    from hypaware_tui.core.runner import Progress
    from hypaware_tui.screens.import_ import ImportProgressed

    def progress(final: bool, unsaved: int) -> Progress:
        return Progress("claude", 10, 100, 841, 4620, 12, 300, 0, {}, 0, 1.0, final=final, files_unsaved=unsaved)

    async with _import_screen_held(tmp_path) as (app, pilot, screen, gate):
        screen.post_message(ImportProgressed("codex", progress(True, 0), 0.0))
        screen.post_message(ImportProgressed("claude", progress(False, 7), 0.0))  # (only a final one says it)
        await pilot.pause()
        assert screen.notes == []
        screen.post_message(ImportProgressed("claude", progress(True, 1052), 0.0))
        await wait_for(pilot, lambda: bool(screen.notes), what="the note")
        await pilot.pause()
        steps = str(screen.query_one("#steps").render())
        assert "Note     Claude Code: 1,052 more files were read but not saved; the next run reads them again" \
            in steps, steps
        gate.set()
        await on_screen(pilot, DoneScreen, timeout=30)
        await pilot.press("enter")
    assert app.return_code == 0


WIZARD_WITH_WORKERS = """
import asyncio, json, sys
from pathlib import Path
from hypaware_tui.app import WizardApp
from hypaware_tui.core import runner
from hypaware_tui.screens.done import DoneScreen
from tests.wizard_support import make_machine, wizard_settings
from tests.test_wizard_flow import enter_to, on_screen, to_review

runner.PARALLEL_MIN_TOTAL = 0  # the demo history is small: make it take the parse workers, as a big one does


async def main():
    root = Path(sys.argv[1])
    root.mkdir(parents=True, exist_ok=True)
    m = make_machine(root)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_review(pilot)
        done = await enter_to(pilot, DoneScreen)
        out = {c: [r.status, r.rows_written, r.error] for c, r in done.result.clients.items()}
        await pilot.press("enter")
    events = [json.loads(x) for x in m.layout.events_log.read_text().splitlines()]
    out["worker_lost"] = [e for e in events if e["event"] == "backfill.worker_lost"]
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_wizard_imports_with_parse_workers(tmp_path: Path) -> None:
    """The wizard's import with the parse workers, as every history over 32 MiB (or 4,000 files) has it, in a
    fresh process (multiprocessing starts its resource tracker once per process). Under Textual the start
    of the workers failed ("bad value(s) in fds_to_keep") and both clients ended `failed`."""
    import subprocess
    import sys

    script = tmp_path / "wizard_child.py"
    script.write_text(WIZARD_WITH_WORKERS)
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), str(repo / "tests")]))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "m")], capture_output=True, text=True,
                          timeout=180, env=env, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["worker_lost"] == []  # the workers started and parsed
    assert out["claude"][0] == "ok" and out["codex"][0] == "ok", out
    assert out["claude"][1] > 0 and out["codex"][1] > 0


def test_a_first_look_longer_than_the_line_keeps_its_newest_days() -> None:
    """§6.7 at 80×24: the first look over all history (its last 30 days were empty) had 107 days, one mark
    each; at 80 columns the newest 30 were cut off with `…` and min/max pushed onto a line of their own. The
    marks now fit: each the busiest of k days, the newest day in the last one, k said."""
    from types import SimpleNamespace

    from rich.console import Console

    from hypaware_tui.screens.done import SPARK, fit_days

    counts = [0] * 100 + [1, 0, 2, 0, 0, 3, 4]  # the newest day is the busiest
    days = [SimpleNamespace(sessions=c) for c in counts]
    ov = SimpleNamespace(period=SimpleNamespace(time_zone="UTC"), earlier=None, first_date="2026-08-13",
                         last_date="2026-11-27", active_days=4, rows=10, models=[], days=days)  # fmt: skip
    console = Console(width=78, record=True, color_system=None)
    console.print(DoneScreen._overview_main(ov, 78))
    line = next(x for x in console.export_text().splitlines() if x.startswith("Sessions per day"))
    assert "…" not in line and line.endswith("min 0 · max 4") and len(line) <= 78
    spark, note = line.split("  ")[1].split(" (")
    k = int(note.split(" ")[0])
    assert note.startswith(f"{k} days/mark)") and fit_days(counts, len(spark)) == (fit_days(counts, len(spark))[0], k)
    assert len(spark) == -(-len(counts) // k) > 20 and spark.endswith(SPARK[-1])  # the newest day is the last mark
    assert fit_days(counts[-30:], 44) == (counts[-30:], 1)  # the default 30 days: one mark a day


def test_the_first_looks_top_repos_use_the_width_they_have() -> None:
    """The repo names were cut at 28 columns whatever the terminal: at 160 columns a long path read
    `~/work/acme-corporation/bil…` beside 45 blank columns (wizard audit, §4 "use extra space when larger").
    They now take the half screen they have, and still give way (never the figures) on a narrow one."""
    from rich.console import Console

    repo = "~/work/acme-corporation/billing-service-monorepo/packages/pdf"  # (60 columns)
    for width, whole in ((76, True), (36, False)):  # (the halves of 160 and 80 columns, less the gap)
        console = Console(width=width, record=True, color_system=None)
        console.print(DoneScreen._top_table("Top repos", "sessions", [(repo, 12_345), ("~/dotfiles", 3)]))
        lines = console.export_text().splitlines()
        assert max(len(line) for line in lines) <= width, lines
        assert (repo in lines[1]) is whole and lines[1].rstrip().endswith("12,345"), lines
        if not whole:
            assert "…" in lines[1] and lines[1].startswith("~/work/acme-corporation"), lines


def test_first_look_token_counts_round_before_picking_the_unit() -> None:
    """The first look's tokens per model: 999,600 read `1000k` and 999,950,000 `1000M` (the unit was picked
    before rounding); 99,960 read `100.0k`. Every unit boundary reads as the next unit."""
    from types import SimpleNamespace

    from rich.console import Console

    cases = {
        999: "999", 1000: "1.0k", 1049: "1.0k", 99_940: "99.9k", 99_960: "100k", 999_499: "999k",
        999_600: "1.0M", 1_000_000: "1.0M", 9_999_999: "10.0M", 99_960_000: "100M", 999_950_000: "1.0B",
        1_000_000_000: "1.0B", 123_456_789_012: "123B",
    }
    models = [SimpleNamespace(model=f"m{i}", provider="claude", input_tokens=n, cached_tokens=0, output_tokens=0)
              for i, n in enumerate(cases)]
    shown = {}
    for i in range(0, len(models), 5):  # (the first look shows five models)
        ov = SimpleNamespace(period=SimpleNamespace(time_zone="UTC"), earlier=None, first_date="2026-11-01",
                             last_date="2026-11-27", active_days=1, rows=1, models=models[i:i + 5], days=[])
        console = Console(width=100, record=True, color_system=None)
        console.print(DoneScreen._overview_main(ov, 100))
        for line in console.export_text().splitlines():
            if line.startswith("m"):
                name, value = line.split()[:2]
                shown[int(name[1:])] = value
    assert shown == {i: text for i, text in enumerate(cases.values())}


async def test_review_panel_and_done_show_the_files_the_import_reads(tmp_path: Path) -> None:
    """wizard.md §6.6 "Bar total: in-window bytes from the inventory": the files the inventory found to end
    before the window are not read, so the panel keeps Review's files and bytes from start to end (it switched
    to every file of the history, `files 0/21` of 12.7 MB, after a Review of 4 files and 1.69 MB), and so does
    Done. Run again with nothing new, the panel says there is nothing to read (it showed `files 21/21`)."""
    import shutil
    from datetime import UTC, datetime

    from hypaware_tui.core.fmt import human_size
    from tests.test_window_skip import IN_WINDOW, ROWS_IN_WINDOW, write_history
    from tests.wizard_support import NOW_US

    m = make_machine(tmp_path, clients=("claude",))
    projects = Path(m.env["CLAUDE_CONFIG_DIR"]) / "projects"
    shutil.rmtree(projects)
    write_history(projects / "-home-ada-repo", datetime.fromtimestamp(NOW_US / 1e6, UTC))
    (projects / "-home-ada-repo" / "old-copied.jsonl").unlink()  # (its mtime is now: read, though Review leaves it out)
    size = human_size(sum((projects / "-home-ada-repo" / f"{n}.jsonl").stat().st_size for n in IN_WINDOW))

    async def through_import(app: WizardApp, pilot, reconfigure: bool) -> tuple[str, str]:
        if reconfigure:
            await on_screen(pilot, WelcomeBackScreen)
            await pilot.press("up", "up")
            await enter_to(pilot, ClientsScreen)
            await wait_for(pilot, lambda: app.inventory_done)
            await enter_to(pilot, RetentionScreen)  # (30 days, the current retention)
        else:
            await to_clients(pilot)
            await enter_to(pilot, RetentionScreen)
            await pilot.press("up", "up")  # 30 days
        await enter_to(pilot, ConsentScreen)
        review = await enter_to(pilot, ReviewScreen)
        shown = "\n".join(drawn(review.query_one("#clients")))
        screen = await enter_to(pilot, ImportScreen)
        panel = screen.query_one("#panel-claude")
        await wait_for(pilot, lambda: panel.status == "ok" and screen.finish_delay == 0, what="the import")
        await pilot.pause()
        drawn_panel = str(panel.render())
        screen._finish()  # (the finished panels stay up for `import_finish_delay`)
        await on_screen(pilot, DoneScreen)
        await pilot.press("enter")
        return shown, drawn_panel

    app = WizardApp(wizard_settings(m, import_finish_delay=30.0))
    async with app.run_test(size=(80, 24)) as pilot:
        review, panel = await through_import(app, pilot, reconfigure=False)
        assert f"Claude Code      2         2  {size}" in review
        assert f"100%   {size} of {size}" in panel
        assert f"files 2/2 · sessions 2 · rows {ROWS_IN_WINDOW} · duplicates 0" in panel
    assert app.result.clients["claude"].files_scanned == 2
    summary = next(line for line in app.summary.splitlines() if line.startswith("Claude Code")).split()
    assert summary[2:6] == ["ok", "2", "2", str(ROWS_IN_WINDOW)]  # status, files, sessions, rows written

    app = WizardApp(wizard_settings(m, import_finish_delay=30.0))
    async with app.run_test(size=(80, 24)) as pilot:
        review, panel = await through_import(app, pilot, reconfigure=True)
        assert f"Claude Code      2         2  {size}" in review  # (upper bounds: checkpoints aside)
        assert "100%   0 B of 0 B" in panel
        assert "nothing to read (4 files unchanged) · sessions 0 · rows 0 · duplicates 0" in panel
    summary = next(line for line in app.summary.splitlines() if line.startswith("Claude Code")).split()
    assert summary[2:6] == ["ok", "0", "0", "0"]


async def test_retention_over_a_stored_history_says_older_sessions_are_not_kept_and_forever_deletes_nothing(
    tmp_path: Path,
) -> None:
    """Reconfigure over a dataset holding the whole history (kept forever): at 30 days the preview said the
    older sessions were "not imported" (they were, long ago: they go at the next cleanup), and with Keep
    forever under the cursor the help still said rows older than it are deleted once a day (retention audit)."""
    from hypaware_tui.core.inventory import build_inventory
    from hypaware_tui.core.plan import Choices, build_plan, commit, gather_machine_state
    from hypaware_tui.screens.retention import HELP, HELP_FOREVER
    from tests.wizard_support import NOW_US

    m = make_machine(tmp_path, now_us=NOW_US - 20 * 86_400_000_000)  # history 20-40 days old
    inv = build_inventory(env=m.env)
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    first = build_plan(inv, Choices(("claude", "codex"), retention_days=0, capture=False), machine, now_us=NOW_US)
    commit(first, m.layout, env=m.env, inventory=inv, service_manager=m.service, spawner=m.spawner)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(100, 32)) as pilot:
        await to_reconfigure_clients(pilot)
        retention = await enter_to(pilot, RetentionScreen)
        assert retention.selected == 0
        shown = lambda wid: " ".join(str(retention.query_one(wid).render()).split())  # noqa: E731
        assert shown("#help") == HELP_FOREVER and "Older" not in shown("#preview")
        await pilot.press("up", "up", "up", "up")  # 30 days
        await wait_for(pilot, lambda: retention.selected == 30)
        assert shown("#help") == HELP
        assert re.search(r"Older: \d+ sessions?, not kept\.$", shown("#preview")), shown("#preview")
        assert shown("#warning").startswith("Shorter than your keep-forever setting: rows older than 30 days")


async def test_enter_in_the_quit_dialog_and_the_stop_question_keeps_going(tmp_path: Path) -> None:
    """§8: the safe choice is the focused one: `[Keep going]` in the quit dialog, `[Keep importing]` in the stop
    question. Enter pressed right after Ctrl+C (a reflex) keeps the setup and the import going; no test failed
    with `[Quit]` or `[Stop import]` focused instead (mutation audit)."""
    m = make_machine(tmp_path)
    imps, gate = held_importers()
    app = WizardApp(wizard_settings(m, importers=imps))
    async with app.run_test(size=(80, 24)) as pilot:
        clients = await to_clients(pilot)
        await pilot.press("ctrl+c")
        dialog = await on_screen(pilot, QuitSetupDialog)
        assert str(dialog.focused.render()).strip() == "> [ Keep going ]"
        await pilot.press("enter")
        assert await on_screen(pilot, ClientsScreen) is clients
        await pilot.pause(0.2)
        assert app.return_code is None and not m.layout.home.exists()
        await enter_to(pilot, RetentionScreen)
        await enter_to(pilot, ConsentScreen)
        await enter_to(pilot, ReviewScreen)
        screen = await enter_to(pilot, ImportScreen)
        panel = screen.query_one("#panel-claude")
        await wait_for(pilot, lambda: panel.progress is not None and panel.progress.files_done >= 1)
        await send_key(app, "c", lambda: screen.confirming)
        assert str(screen.focused.render()).strip() == "> [ Keep importing ]"
        await send_key(app, "enter", lambda: not screen.confirming)
        assert not screen.stopping and not screen.job.cancel.is_set()
        assert "Stopping" not in str(screen.query_one("#steps").render())
        await send_key(app, "c", lambda: screen.confirming)  # (now stop it, to end the test quickly)
        await send_key(app, "y", lambda: not screen.confirming)
        gate.set()
        await on_screen(pilot, DoneScreen, timeout=30)
        await pilot.press("enter")
    assert app.return_code == 130


async def test_q_on_done_exits_at_once_with_the_setups_code(tmp_path: Path) -> None:
    """§4, §8: on Done `q` exits directly (0 after a good setup). No test failed when it opened the dialog
    `Quit setup? Nothing has been written.` there instead, after the config was written, and whose Quit exited
    130 (mutation audit)."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_review(pilot)
        await enter_to(pilot, DoneScreen)
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None, timeout=5, what="exit on q")
        assert not any(isinstance(s, QuitSetupDialog) for s in app.screen_stack)
    assert app.return_code == 0
    assert m.layout.config.exists()


async def test_consent_after_keep_forever_says_as_far_back_as_it_goes(tmp_path: Path) -> None:
    """§6.4: with `Keep forever`, "going back up to <N> days" becomes "as far back as it goes", and the import
    row says `everything`; no test failed when the text read "going back up to 0 days" (mutation audit)."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        retention = await enter_to(pilot, RetentionScreen)
        await pilot.press("down", "down")  # 120 → 365 → Keep forever
        assert retention.current_answer() == 0
        consent = await enter_to(pilot, ConsentScreen)
        text = " ".join(str(consent.query_one("#consent-text").render()).split())
        shown = str(consent.query_one(ChoiceList).render())
        await pilot.press("ctrl+c")
        await pilot.press("y")
    assert ("hyp will read the session history that Claude Code and Codex keep on this computer, as far back as "
            "it goes: your prompts,") in text
    assert "0 days" not in text and "up to 0" not in shown
    assert "[x] Import existing history (everything)" in shown
