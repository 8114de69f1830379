"""The wizard's other paths: mouse only, Import again, an invalid config, nothing detected, an empty root,
flag seeds, the first-look timeout, and a terminal hang-up before and during the import."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from hypaware_tui.app import WizardApp
from hypaware_tui.screens import done as done_module
from hypaware_tui.screens.clients import NOTHING_FOUND, ClientsScreen
from hypaware_tui.screens.consent import ConsentScreen
from hypaware_tui.screens.dialogs import TooSmallScreen
from hypaware_tui.screens.done import DoneScreen
from hypaware_tui.screens.import_ import ImportScreen
from hypaware_tui.screens.retention import RetentionScreen
from hypaware_tui.screens.review import ReviewScreen
from hypaware_tui.screens.welcome import WelcomeScreen
from hypaware_tui.screens.welcome_back import WelcomeBackScreen
from hypaware_tui.screens.widgets import ChoiceList
from tests.test_wizard_flow import (
    enter_to,
    importers,
    on_screen,
    to_clients,
    to_consent,
    to_first_look,
    to_reconfigure_clients,
    wait_for,
)
from tests.wizard_support import make_machine, wizard_settings


async def test_everything_by_mouse(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, WelcomeScreen)
        await wait_for(pilot, lambda: app.inventory_done)
        await pilot.click("#start")
        clients = await on_screen(pilot, ClientsScreen)
        await pilot.click("#clients", offset=(8, 1))  # the Codex row
        assert clients.query_one(ChoiceList).checked == ("claude",)
        await pilot.click("#continue")
        retention = await on_screen(pilot, RetentionScreen)
        await pilot.click("#retention", offset=(8, 1))  # 90 days
        assert retention.selected == 90
        await pilot.click("#continue")
        consent = await on_screen(pilot, ConsentScreen)
        await pilot.click("#consent", offset=(8, 1))  # capture off
        assert not consent.query_one(ChoiceList).is_checked("capture")
        await pilot.click("#continue")
        review = await on_screen(pilot, ReviewScreen)
        assert (review.plan.choices.clients, review.plan.retention_days, review.plan.choices.capture) == (
            ("claude",), 90, False)
        await pilot.click("#back")
        await on_screen(pilot, ConsentScreen)
        await pilot.click("#continue")
        await on_screen(pilot, ReviewScreen)
        await pilot.click("#start")
        await on_screen(pilot, DoneScreen)
        await pilot.press("enter")
    assert app.return_code == 0
    assert json.loads(m.layout.config.read_text())["retention_days"] == 90


async def test_import_again_uses_the_config_and_four_steps(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    text = '{"version": 1, "clients": {"codex": {"enabled": true}}, "retention_days": 90, "capture": {"enabled": true}}\n'
    m.layout.config.write_text(text)
    m.running_pid[0] = 4242  # a daemon is running and the config does not change: action none
    gate = threading.Event()
    app = WizardApp(wizard_settings(m, importers=importers(codex={"gate": gate})))
    async with app.run_test(size=(80, 24)) as pilot:
        back = await on_screen(pilot, WelcomeBackScreen)
        assert back.step.total == 0
        await pilot.press("up", "enter")  # Import again
        review = await on_screen(pilot, ReviewScreen)
        assert (review.step.number, review.step.total) == (2, 4)
        assert review.plan.config.action == "unchanged" and review.plan.import_clients == ("codex",)
        assert review.plan.daemon.action == "none"
        from hypaware_tui.screens.review import config_lines

        assert config_lines(review.plan, m.env)[0].endswith("hypaware-config.json · unchanged")
        box = review.query_one("#config-json")  # the config, one 107-character line: wrapped, not cut off
        assert box.region.right <= 80 and box.region.height == 4 and "capture" in str(box.render())
        # The config is not written: neither the button nor the block says it is.
        assert str(review.query_one("#start").render()).strip() == "> [ Start import ]"
        assert str(review.query_one("#config-json-title").render()) == "Config file (unchanged: it is not written):"
        from dataclasses import replace

        from hypaware_tui.screens.review import start_label

        nothing_to_import = replace(review.plan, clients=tuple(replace(c, import_=False) for c in review.plan.clients))
        assert start_label(nothing_to_import) == "Continue"  # (the daemon action only)
        importing = await enter_to(pilot, ImportScreen)
        assert (importing.step.number, importing.step.total) == (3, 4)
        assert [p.id for p in importing.query(".import-panel")] == ["panel-codex"]
        gate.set()
        done = await on_screen(pilot, DoneScreen)
        assert (done.step.number, done.step.total) == (4, 4)
        assert done.result.clients["codex"].rows_written > 0 and "claude" not in done.result.clients
        await pilot.press("q")
    assert app.return_code == 0
    assert m.layout.config.read_text() == text
    assert not list(m.layout.home.glob("*.bak-*"))
    assert m.spawner.calls == []


async def test_import_again_with_capture_off_in_the_config_does_not_say_the_user_chose(tmp_path: Path) -> None:
    """Import again asks nothing: with capture off in the config, Review and Done said the daemon was "not started
    (you chose not to)" although no choice was made in that run (wizard audit). They say the config has it off."""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    text = '{"version": 1, "clients": {"codex": {"enabled": true}}, "retention_days": 90, "capture": {"enabled": false}}\n'
    m.layout.config.write_text(text)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, WelcomeBackScreen)
        await pilot.press("up", "enter")  # Import again
        review = await on_screen(pilot, ReviewScreen)
        from hypaware_tui.screens.review import daemon_line

        assert daemon_line(review.plan) == "none · not started (capture is off in the config)"
        done = await enter_to(pilot, DoneScreen)
        capture = str(done.query_one("#capture").render())
        await pilot.press("q")
    assert capture == "Capture  not started (capture is off in the config)", capture
    assert "Capture   not started (capture is off in the config)" in app.summary.splitlines()
    assert m.layout.config.read_text() == text and m.spawner.calls == []


def _plain(renderable: object) -> str:
    from rich.console import Console

    console = Console(width=80, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def test_import_again_with_nothing_new_says_so_and_shows_the_history_already_imported(tmp_path: Path) -> None:
    """"Import again" over a history already imported writes no row. Its Done screen said "Nothing imported yet"
    under a table of zeros (files 0: unchanged files are not scanned), as if hyp had found nothing; it now says
    nothing was new, and the first look shows the dataset."""
    from hypaware_tui.app import _default_first_look

    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text('{"version": 1, "clients": {"claude": {"enabled": true}}, "retention_days": 0, '
                               '"capture": {"enabled": false}}\n')
    notes = []
    for run in range(2):
        app = WizardApp(wizard_settings(m, first_look=_default_first_look))
        async with app.run_test(size=(80, 24)) as pilot:
            await on_screen(pilot, WelcomeBackScreen)
            await pilot.press("up", "enter")  # Import again
            await on_screen(pilot, ReviewScreen)
            done = await enter_to(pilot, DoneScreen)
            await wait_for(pilot, lambda done=done: done.first_look_done)
            written = done.result.clients["claude"].rows_written
            notes.append([str(w.render()) for w in done.query("#nothing-new")])
            look = _plain(done.query_one("#first-look").content)
            assert "Nothing imported yet" not in look and "Tokens per model" in look, (run, look)
            await pilot.press("enter")
        assert app.return_code == 0
        assert (written > 0) == (run == 0)
    assert notes == [[], ["Nothing new to import: no history was added since the last import."]]


async def test_welcome_back_quit_is_exit_0(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text('{"version": 1}\n')
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, WelcomeBackScreen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0
    assert sorted(p.name for p in m.layout.home.iterdir()) == ["hypaware-config.json"]


async def test_invalid_config_offers_reconfigure_from_defaults(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    broken = b'{"version": 1, "retention_days": "soon"'
    m.layout.config.write_bytes(broken)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        back = await on_screen(pilot, WelcomeBackScreen)
        assert "is not valid JSON" in str(back.query_one("#config-error").render())
        assert [r.value for r in back.query_one(ChoiceList).rows] == ["reconfigure", "quit"]
        await pilot.press("up", "enter")
        clients = await on_screen(pilot, ClientsScreen)
        await wait_for(pilot, lambda: app.inventory_done)
        await pilot.pause()
        assert clients.query_one(ChoiceList).checked == ("claude", "codex")  # defaults: the detected ones
        retention = await enter_to(pilot, RetentionScreen)
        assert retention.selected == 120
        await enter_to(pilot, ConsentScreen)
        review = await enter_to(pilot, ReviewScreen)
        assert review.plan.config.action == "replace"
        await enter_to(pilot, DoneScreen)
        await pilot.press("enter")
    backups = list(m.layout.home.glob("hypaware-config.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == broken
    assert json.loads(m.layout.config.read_text())["retention_days"] == 120


async def test_nothing_detected_only_quitting_is_possible(tmp_path: Path) -> None:
    m = make_machine(tmp_path, clients=())
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        clients = await to_clients(pilot)
        assert str(clients.query_one("#nothing-found").render()) == NOTHING_FOUND
        assert not clients.query_one("#continue").display
        assert "Enter" not in str(clients.query_one("#keys").render())
        await pilot.press("a", "space", "enter")
        await pilot.pause()
        assert app.screen is clients and clients.query_one(ChoiceList).checked == ()
        await pilot.press("q", "y")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 130 and not m.layout.home.exists()


async def test_empty_root_and_flag_seeds(tmp_path: Path) -> None:
    m = make_machine(tmp_path, clients=("claude",))
    (m.home / ".codex").mkdir()  # detected, but no history yet
    app = WizardApp(wizard_settings(m, seed_clients=("codex",), seed_retention=30, seed_import=False,
                                    seed_capture=False))
    async with app.run_test(size=(80, 24)) as pilot:
        clients = await to_clients(pilot)
        cl = clients.query_one(ChoiceList)
        assert cl.checked == ("codex",)
        assert cl.rows[1].detail == "no history yet · new sessions will be captured"
        retention = await enter_to(pilot, RetentionScreen)
        assert retention.selected == 30
        consent = await enter_to(pilot, ConsentScreen)
        assert consent.current_answer() == (False, False)
        review = await enter_to(pilot, ReviewScreen)
        assert str(review.query_one("#start").render()).strip() == "> [ Write config ]"
        done = await enter_to(pilot, DoneScreen)
        await wait_for(pilot, lambda: done.first_look_done)
        assert "Nothing imported yet" in str(done.query_one("#first-look").render())
        assert "not started (you chose not to)" in str(done.query_one("#capture").render())
        await pilot.press("enter")
    assert app.return_code == 0
    assert json.loads(m.layout.config.read_text())["capture"] == {"enabled": False}


async def test_first_look_that_takes_too_long_becomes_a_note(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(done_module, "FIRST_LOOK_TIMEOUT_S", 0.3)
    release = threading.Event()

    def slow_first_look(layout, env):
        release.wait(10)
        raise RuntimeError("too late")

    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m, first_look=slow_first_look))
    async with app.run_test(size=(80, 24)) as pilot:
        done = await to_first_look(pilot)
        assert "taking longer than 5 s" in str(done.query_one("#first-look").render())
        release.set()
        await pilot.pause(0.1)
        assert "taking longer" in str(done.query_one("#first-look").render())
        await pilot.press("enter")
    assert app.return_code == 0


@pytest.mark.parametrize("unreadable", [True, False])
async def test_a_first_look_that_fails_says_why_without_a_class_name(tmp_path: Path, unreadable: bool) -> None:
    """A dataset file that cannot be read: the first look said "(DatasetReadError: <its advice>); try hyp query
    overview", the class name of an error whose text is for the user, and a command that fails alike (message
    audit). It gives the error's own text and advice; an unforeseen error keeps its class and the hint."""
    from hypaware_tui.core.query import DatasetReadError

    advice = "a file of the dataset cannot be read: move it out of the dataset, then run hyp backfill"

    def failing_first_look(layout, env):
        raise DatasetReadError(advice) if unreadable else RuntimeError("boom")

    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m, first_look=failing_first_look))
    async with app.run_test(size=(100, 32)) as pilot:
        done = await to_first_look(pilot)
        shown = " ".join(str(done.query_one("#first-look").render()).split())
        await pilot.press("enter")
    if unreadable:
        assert shown == f"The first look is not available: {advice}"
    else:
        assert shown == "The first look is not available (RuntimeError: boom); try hyp query overview."


async def test_hang_up_before_the_commit_writes_nothing(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        await enter_to(pilot, RetentionScreen)
        app.hang_up()
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 130 and not m.layout.home.exists()


async def test_hang_up_during_the_import_skips_the_daemon(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    gate = threading.Event()
    app = WizardApp(wizard_settings(m, importers=importers(claude={"gate": gate})))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        for cls in (RetentionScreen, ConsentScreen, ReviewScreen, ImportScreen):
            await enter_to(pilot, cls)
        app.hang_up()
        gate.set()
        await wait_for(pilot, lambda: app.return_code is not None, timeout=30)
    assert app.return_code == 130
    assert app.result is not None and app.result.daemon.status == "skipped"
    assert m.spawner.calls == []
    assert app.summary and "Capture   not started" in app.summary


@pytest.mark.parametrize("cover", ["resize notice", "stop question under it"])
async def test_hang_up_on_the_import_under_the_resize_notice_still_exits(tmp_path: Path, cover: str) -> None:
    """The terminal closed while the import ran under the resize notice (an audit's tmux session): the import
    stopped, but the Import screen waits to be on top before it finishes (its dismiss would pop the notice),
    and with the terminal gone no resize ever took the notice down: `hyp init` stayed alive, idle, for good.
    After a hang-up nobody answers what covers it: it is taken down and the wizard exits 130."""
    m = make_machine(tmp_path)
    imps = importers(claude={"sleep_per_line_s": 0.01}, codex={"sleep_per_line_s": 0.01})
    app = WizardApp(wizard_settings(m, importers=imps))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        for cls in (RetentionScreen, ConsentScreen, ReviewScreen, ImportScreen):
            await enter_to(pilot, cls)
        await pilot.resize_terminal(70, 20)
        await wait_for(pilot, lambda: isinstance(app.screen, TooSmallScreen))
        if cover == "stop question under it":
            app.action_request_quit()  # Ctrl+C: the stop question, under the notice
            await pilot.pause()
        app.hang_up()
        await wait_for(pilot, lambda: app.return_code is not None, timeout=30)
    assert app.return_code == 130
    assert app.result is not None and app.result.daemon.status == "skipped" and m.spawner.calls == []


async def test_unexpected_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    def broken_clock() -> int:
        raise RuntimeError("the clock broke")

    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m, now_us=broken_clock))
    with pytest.raises(RuntimeError):
        async with app.run_test(size=(80, 24)) as pilot:
            await to_clients(pilot)
            await pilot.press("enter")  # Retention computes its preview with the clock
            await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1
    assert app.unexpected_error == "RuntimeError: the clock broke"
    assert not m.layout.home.exists()


async def test_a_dry_run_of_import_again_counts_its_two_steps(tmp_path: Path) -> None:
    """wizard.md §3: M is fixed once the path is known; a dry run ends on Review. Import again in a dry run
    read "Step 2 of 4 · Review" on its last screen."""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text('{"version": 1, "clients": {"claude": {"enabled": true}}, "retention_days": 0, '
                               '"capture": {"enabled": false}}\n')
    app = WizardApp(wizard_settings(m, dry_run=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await on_screen(pilot, WelcomeBackScreen)
        await pilot.press("up", "enter")  # Import again
        review = await on_screen(pilot, ReviewScreen)
        assert (review.step.number, review.step.total) == (2, 2)


async def test_done_keeps_a_gap_between_repos_and_tools_at_80_columns(tmp_path: Path) -> None:
    """§6.7 item 3 at 80×24: a 28-character repo name ran into the tools column ("12,345mcp__…", "sessionsTop
    tools"); the name is now cut with an ellipsis and the columns keep their gap."""
    from hypaware_tui.core.query import DayCount, ModelTokens, Overview, Period, RepoCount, ToolCount

    repo = "~/src/" + "a" * 22
    assert len(repo) == 28
    overview = Overview(Period(None, "2026-11-20T00:00:00Z", 30, "UTC"), rows=10, sessions=3,
                        models=[ModelTokens("anthropic", "claude-x", 1, 2, 3)], days=[DayCount("2026-11-01", 1, 2)],
                        repos=[RepoCount(repo, 12345, 1), RepoCount("~/b", 3, 1)],
                        tools=[ToolCount("mcp__server__" + "t" * 15, 9876), ToolCount("Bash", 5)])
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m, first_look=lambda layout, env: overview))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        for _ in range(4):  # Clients, Retention, Consent, Review (start)
            await pilot.press("enter")
            await pilot.pause()
        done = await on_screen(pilot, DoneScreen, timeout=30)
        await wait_for(pilot, lambda: done.first_look_done, what="first look")
        done.query_one("#body").scroll_end(animate=False)
        await pilot.pause()
        lines = [strip.text for strip in app.screen._compositor.render_strips()]
        await pilot.press("q")
    heading = next(line for line in lines if "Top repos" in line)
    first = next(line for line in lines if "12,345" in line)
    assert "sessions  Top tools" in heading, heading
    assert "~/src/aaaa" in first and "…" in first and "12,345  mcp__server__" in first, first


async def test_back_to_welcome_back_keeps_the_reconfigure_answers(tmp_path: Path) -> None:
    """§3, §4: Esc goes back keeping answers, up to Welcome back too. Its choice stays on Reconfigure (Enter
    there quit), and Reconfigure again shows the answers given, not the config's (they were reseeded)."""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text('{"version": 1, "clients": {"claude": {"enabled": true}, "codex": {"enabled": true}}, '
                               '"retention_days": 365, "capture": {"enabled": true}}\n')
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        clients = await to_reconfigure_clients(pilot)
        assert clients.query_one(ChoiceList).checked == ("claude", "codex")
        await pilot.press("down", "space")  # codex off
        await enter_to(pilot, RetentionScreen)
        await pilot.press("up", "up", "up")  # 365 -> 30
        await enter_to(pilot, ConsentScreen)
        await pilot.press("down", "space")  # capture off
        for screen in (RetentionScreen, ClientsScreen, WelcomeBackScreen):
            await pilot.press("escape")
            await on_screen(pilot, screen)
        assert app.screen.query_one(ChoiceList).checked == ("reconfigure",)
        clients = await enter_to(pilot, ClientsScreen)
        assert clients.query_one(ChoiceList).checked == ("claude",)
        retention = await enter_to(pilot, RetentionScreen)
        assert retention.query_one(ChoiceList).checked == ("30",)
        consent = await enter_to(pilot, ConsentScreen)
        assert not consent.query_one(ChoiceList).is_checked("capture")
        review = await enter_to(pilot, ReviewScreen)
        assert (review.plan.choices.clients, review.plan.retention_days, review.plan.choices.capture) == (
            ("claude",), 30, False)
        # Import again runs on the config whatever was answered before; Reconfigure after it still has them.
        for screen in (ConsentScreen, RetentionScreen, ClientsScreen, WelcomeBackScreen):
            await pilot.press("escape")
            await on_screen(pilot, screen)
        await pilot.press("down")  # Import again
        review = await enter_to(pilot, ReviewScreen)
        assert (review.plan.choices.clients, review.plan.retention_days, review.plan.choices.capture) == (
            ("claude", "codex"), 365, True)
        assert review.plan.config.action == "unchanged"
        await pilot.press("escape")
        back = await on_screen(pilot, WelcomeBackScreen)
        assert back.query_one(ChoiceList).checked == ("import_again",)
        await pilot.press("up")
        clients = await enter_to(pilot, ClientsScreen)
        assert clients.query_one(ChoiceList).checked == ("claude",)
        await pilot.press("q")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 130


async def test_reconfigure_that_changes_nothing_leaves_a_hand_written_config_alone(tmp_path: Path) -> None:
    """§6.5, §7: a Reconfigure that keeps every answer over a config written by hand (one line, another key
    order, an unknown key) planned `replace (backup: …)` under an empty change list and rewrote the file, since
    its bytes differed from hyp's rendering. Same data is `unchanged`: nothing written, no backup."""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    text = ('{"x": 1, "capture": {"enabled": true}, "retention_days": 120, "version": 1, '
            '"clients": {"codex": {"enabled": true}, "claude": {"enabled": true}}}\n')
    m.layout.config.write_text(text)
    m.running_pid[0] = 4242  # a daemon runs: an unchanged config does not restart it
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_reconfigure_clients(pilot)
        await enter_to(pilot, RetentionScreen)
        await enter_to(pilot, ConsentScreen)
        review = await enter_to(pilot, ReviewScreen)
        config_block = _plain(review.query_one("#config").content)
        assert "hypaware-config.json · unchanged" in config_block and "replace" not in config_block
        assert config_block.strip().count("\n") == 0  # no (empty) change list
        assert str(review.query_one("#start").render()).strip() == "> [ Start import ]"
        assert review.plan.daemon.action == "none"
        assert str(review.query_one("#config-json").render()) == text.rstrip("\n")  # the file as it is
        done = await enter_to(pilot, DoneScreen)
        assert done.result.config.action == "unchanged"
        await pilot.press("q")
    assert m.layout.config.read_text() == text
    assert not list(m.layout.home.glob("*.bak-*"))


async def test_demo_consent_shows_capture_off_and_review_names_an_undetected_client(tmp_path: Path) -> None:
    """§10.2: a demo never starts the daemon and writes capture off, yet Consent offered a checked, toggleable
    `Keep capturing` that Review's JSON then contradicted (`"capture": {"enabled": false}`): the row is off,
    disabled, and says why. §6.5: Review listed the undetected client as `not selected`; it is `import skipped`
    with the reason, as on Clients."""
    m = make_machine(tmp_path, clients=("claude",))
    app = WizardApp(wizard_settings(m, demo_dir=tmp_path / "hyp-demo-x"))
    async with app.run_test(size=(80, 24)) as pilot:
        await to_clients(pilot)
        await enter_to(pilot, RetentionScreen)
        consent = await enter_to(pilot, ConsentScreen)
        rows = {r.value: r for r in consent.query_one(ChoiceList).rows}
        assert rows["capture"].checked is False and rows["capture"].disabled is True
        assert rows["capture"].note == "Off in this demo: it does not start the hyp capture daemon."
        shown = str(consent.query_one(ChoiceList).render())
        assert "[-] Keep capturing new sessions after setup" in shown
        assert consent.current_answer() == (True, False)
        await pilot.press("down", "space", "a")  # the cursor stays off the disabled row; `a` skips it
        assert consent.current_answer() == (True, False)
        review = await enter_to(pilot, ReviewScreen)
        assert review.plan.choices.capture is False
        assert json.loads(review.plan.config.text)["capture"] == {"enabled": False}
        clients = _plain(review.query_one("#clients").content)
        assert "not selected" not in clients
        assert "Codex        import skipped (not found: ~/.codex does not exist)" in clients
        await pilot.press("ctrl+c")
        await pilot.press("y")
    assert app.return_code == 130


def test_a_finished_panel_keeps_the_files_figure_of_the_live_progress() -> None:
    """A resumed import's panel counted the unchanged files while it ran (files 19,283/20,000), then showed the
    files scanned once finished (10,815/20,000): the count went backwards. It now ends on the final report's
    figure; without one (a provider that failed before reporting), the files scanned (the files unchanged since
    the last import are not read, and not in the files the pass reads either)."""
    from hypaware_tui.core.runner import Progress, ProviderResult
    from hypaware_tui.screens.import_ import ImportPanel

    panel = ImportPanel("claude", "Claude Code", lambda: 0.0, skipped_reason=None, bytes_total=100, files_total=20)
    panel.result = ProviderResult("claude", status="ok", files_scanned=11, files_total=20, files_unchanged=9)
    assert panel._figures()["files"] == 11
    panel.progress = Progress(provider="claude", bytes_done=100, bytes_total=100, files_done=19, files_total=20,
                              sessions=5, rows_written=7, duplicates=0, lines_skipped={}, errors=0, elapsed_s=1.0,
                              rows_pending=0, final=True)
    assert panel._figures()["files"] == 19


async def test_review_of_a_declined_import_lists_no_figures_to_import(tmp_path: Path) -> None:
    """§6.5: with the import declined on Consent, Review's Clients block says `import skipped` for each client,
    not the files, sessions and bytes it would have imported; no test failed when it showed those figures under
    a `[ Write config ]` that imports nothing (mutation audit)."""
    m = make_machine(tmp_path)
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=(80, 24)) as pilot:
        consent = await to_consent(pilot)
        await pilot.press("space")  # import off (the cursor is on the first row)
        assert consent.current_answer() == (False, True)
        review = await enter_to(pilot, ReviewScreen)
        clients = _plain(review.query_one("#clients").content)
        assert str(review.query_one("#start").render()).strip() == "> [ Write config ]"
        await pilot.press("ctrl+c")
        await pilot.press("y")
    lines = [line.rstrip() for line in clients.splitlines()]
    assert "          Claude Code  import skipped (you chose not to import existing history)" in lines, clients
    assert "          Codex        import skipped (you chose not to import existing history)" in lines, clients
    assert not any(" MB" in line or " KB" in line or "→" in line for line in lines[1:]), clients
    assert app.return_code == 130 and not m.layout.home.exists()


async def test_a_client_named_by_flag_but_not_found_is_not_checked(tmp_path: Path) -> None:
    """§6.2: undetected rows are disabled and never checked, also when `--client` names one: `--client codex`
    without a Codex history left nothing checked, and Enter says so, rather than set up a client that is not
    there. No test failed with that row checked behind its `[-]` (mutation audit)."""
    m = make_machine(tmp_path, clients=("claude",))
    app = WizardApp(wizard_settings(m, seed_clients=("codex",)))
    async with app.run_test(size=(80, 24)) as pilot:
        clients = await to_clients(pilot)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is clients
        assert str(clients.query_one("#problem").render()) == "Pick at least one assistant."
        assert clients.query_one(ChoiceList).checked == ()
        await pilot.press("ctrl+c")
        await pilot.press("y")
    assert app.return_code == 130 and not m.layout.home.exists()
