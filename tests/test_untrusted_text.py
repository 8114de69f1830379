"""Paths, roots and messages that hyp did not write are shown exactly as they are, in the wizard and in the CLI:
never read as Rich or Textual markup (`[/]` crashed with a MarkupError, `[old]` vanished, `[@click=app.quit]x`
made a link that quit the wizard), and their control characters written as escapes (`ESC ] 0 ; … BEL`
retitled the terminal). The demo's commands quote their paths, so they paste as they read."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from hypaware_tui.app import WizardApp
from hypaware_tui.core.demo import create_demo_dir
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.runner import ProviderResult
from hypaware_tui.core.timeutil import now_us
from hypaware_tui.screens.clients import ClientsScreen
from hypaware_tui.screens.consent import ConsentScreen
from hypaware_tui.screens.done import DoneScreen
from hypaware_tui.screens.import_ import ImportPanel, ImportScreen
from hypaware_tui.screens.retention import RetentionScreen
from hypaware_tui.screens.review import ReviewScreen
from hypaware_tui.screens.welcome import WelcomeScreen
from hypaware_tui.screens.welcome_back import WelcomeBackScreen
from tests.test_wizard_flow import WrappedImporter, drawn, enter_to, on_screen, wait_for
from tests.wizard_support import make_machine, wizard_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REPO = Path(__file__).resolve().parent.parent
# name in a path -> how it reads on the screen
ODD = {
    "markup": ("x[/]x", "x[/]x"),
    "link": ("[@click=app.quit]clickme", "[@click=app.quit]clickme"),
    "escape": ("t\x1b]0;T\x07", "t\\x1b]0;T\\x07"),
}
SIZE = (200, 50)  # wide enough that no line below wraps


def odd_machine(tmp_path: Path, name: str):
    """The fixture machine with HYP_HOME `~/hyp-<name>` and CLAUDE_CONFIG_DIR `~/nope-<name>` (missing: Claude
    Code is not found, and its reason names that root)."""
    m = make_machine(tmp_path)
    env = dict(m.env, HYP_HOME=str(m.home / f"hyp-{name}"), CLAUDE_CONFIG_DIR=str(m.home / f"nope-{name}"))
    return dataclasses.replace(m, env=env, layout=Layout.resolve(env))


def drawn_outer(widget) -> list[str]:
    """`drawn`, borders included."""
    from textual.geometry import Region

    strips = widget.render_lines(Region(0, 0, widget.outer_size.width, widget.outer_size.height))
    return ["".join(seg.text for seg in strip).rstrip() for strip in strips]


def line_with(lines: list[str], needle: str) -> str:
    found = [line for line in lines if needle in line]
    assert len(found) == 1, (needle, lines)
    return found[0]


def assert_no_control(lines: list[str]) -> None:
    assert not any(ch < " " or "\x7f" <= ch <= "\x9f" for line in lines for ch in line), lines


def failing_spawner(layout: Layout, env) -> None:
    """The capture daemon cannot start: its log (in HYP_HOME) is not writable."""
    raise PermissionError(13, "Permission denied", str(layout.daemon_log))


@pytest.mark.parametrize("kind", ODD)
async def test_the_wizard_shows_hyp_home_and_a_root_as_they_are(tmp_path: Path, kind: str) -> None:
    name, shown = ODD[kind]
    m = odd_machine(tmp_path, name)
    app = WizardApp(wizard_settings(m, spawner=failing_spawner, import_finish_delay=2.0))
    async with app.run_test(size=SIZE) as pilot:
        welcome = await on_screen(pilot, WelcomeScreen)
        await wait_for(pilot, lambda: app.inventory_done)
        lines = drawn(welcome.query_one("#welcome-text"))
        assert lines[-1] == f"Everything stays on this computer, in ~/hyp-{shown}."
        assert_no_control(lines)
        clients = await enter_to(pilot, ClientsScreen)
        rows = drawn(clients.query_one("#clients"))
        assert line_with(rows, "Claude Code").endswith(f"not found: ~/nope-{shown} does not exist")
        assert_no_control(rows)
        await enter_to(pilot, RetentionScreen)
        consent = await enter_to(pilot, ConsentScreen)
        text = drawn(consent.query_one("#consent-text"))
        assert line_with(text, "The copy is stored").startswith(
            f"The copy is stored only on this computer, in ~/hyp-{shown}. Nothing is uploaded")
        assert_no_control(text)
        review = await enter_to(pilot, ReviewScreen)
        block = drawn(review.query_one("#clients"))
        assert line_with(block, "Claude Code").endswith(
            f"Claude Code  import skipped (not found: ~/nope-{shown} does not exist)")
        config = drawn(review.query_one("#config"))
        assert config[0] == f"Config    ~/hyp-{shown}/hypaware-config.json · new"
        assert_no_control(block + config)
        importing = await enter_to(pilot, ImportScreen)
        await wait_for(pilot, lambda: importing.result.daemon is not None)
        steps = drawn(importing.query_one("#steps"))
        done = await on_screen(pilot, DoneScreen)
        capture = " ".join(line.strip() for line in drawn(done.query_one("#capture")))
        await pilot.press("enter")
    log = f"{m.home}/hyp-{shown}/logs/daemon.log"
    daemon = " ".join(line.strip() for line in steps[1:])  # (the Daemon line, wrapped)
    assert daemon.startswith(f"Daemon   failed  could not start the capture daemon: Permission denied ({log}).")
    assert capture.startswith(f"Capture  failed to start: could not start the capture daemon: Permission denied ({log}).")
    assert capture.endswith(f"(log: {log})")
    assert_no_control(steps + [capture])
    assert app.return_code == 1  # (the daemon failed)
    assert f"Config    written ~/hyp-{shown}/hypaware-config.json" in app.summary
    assert_no_control(app.summary.splitlines())


async def test_a_link_in_hyp_home_is_text_a_click_does_not_quit(tmp_path: Path) -> None:
    """`[@click=app.quit]clickme` in HYP_HOME made "clickme" on Welcome a link that quit the wizard."""
    m = odd_machine(tmp_path, ODD["link"][0])
    app = WizardApp(wizard_settings(m))
    async with app.run_test(size=SIZE) as pilot:
        welcome = await on_screen(pilot, WelcomeScreen)
        widget = welcome.query_one("#welcome-text")
        lines = drawn(widget)
        y = next(i for i, line in enumerate(lines) if "clickme" in line)
        await pilot.click(widget, offset=(lines[y].index("clickme") + 2, y))
        await pilot.pause(0.2)
        assert app.is_running and isinstance(app.screen, WelcomeScreen)
        await enter_to(pilot, ClientsScreen)
        await pilot.press("ctrl+c", "y")
    assert app.return_code == 130


@pytest.mark.parametrize("kind", ODD)
async def test_an_invalid_config_is_shown_as_it_is(tmp_path: Path, kind: str) -> None:
    """A root `claude[/]old` in the config crashed the "cannot be read" screen (its error quotes the value)."""
    from hypaware_tui.cli.init import welcome_back_facts
    from hypaware_tui.core.plan import gather_machine_state

    name, shown = ODD[kind]
    m = odd_machine(tmp_path, name)
    m.layout.home.mkdir(parents=True)
    m.layout.config.write_text(json.dumps({"version": 1, "clients": {"claude": {"root": f"claude{name}"}}}))
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    facts = welcome_back_facts(m.layout, m.env, machine)
    app = WizardApp(wizard_settings(m, welcome_back_facts=facts))
    async with app.run_test(size=SIZE) as pilot:
        back = await on_screen(pilot, WelcomeBackScreen)
        error = drawn(back.query_one("#config-error"))
        error = [" ".join(error[: error.index("")]), *error[error.index(""):]]  # (its first paragraph wraps)
        facts_shown = drawn(back.query_one("#facts"))
        await pilot.press("enter")  # Quit, the default
    assert error[0] == (f"{m.home}/hyp-{shown}/hypaware-config.json: \"clients.claude.root\" must be an absolute "
                        f"path, found {json.dumps(f'claude{name}')}")  # (the error writes it as JSON)
    assert error[2].startswith("Reconfigure starts from the defaults")
    assert facts_shown[0] == f"Config   ~/hyp-{shown}/hypaware-config.json (invalid)"
    assert_no_control(error + facts_shown)
    assert app.return_code == 0


class FailingImporter(WrappedImporter):
    """Its import fails with a message naming a path (the inventory's listing works)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(name, fail_discover_after=1)
        self.message = message

    def discover(self, roots):
        self.discover_calls += 1
        if self.discover_calls > 1:
            raise OSError(self.message)
        return self.inner.discover(roots)


@pytest.mark.parametrize("kind", ODD)
async def test_an_import_error_naming_a_path_is_shown_as_it_is(tmp_path: Path, kind: str) -> None:
    """The Import panel's `error:` line, Done's notes and the summary printed after the wizard."""
    import threading

    name, shown = ODD[kind]
    m = make_machine(tmp_path)
    gate = threading.Event()
    imps = {"claude": FailingImporter("claude", f"cannot list /srv/{name}"),
            "codex": WrappedImporter("codex", gate=gate)}
    app = WizardApp(wizard_settings(m, importers=imps))
    async with app.run_test(size=SIZE) as pilot:
        await on_screen(pilot, WelcomeScreen)
        await wait_for(pilot, lambda: app.inventory_done)
        for screen in (ClientsScreen, RetentionScreen, ConsentScreen, ReviewScreen, ImportScreen):
            importing = await enter_to(pilot, screen)
        panel = importing.query_one("#panel-claude", ImportPanel)
        await wait_for(pilot, lambda: panel.status == "failed")
        await pilot.pause()
        panel_lines = drawn_outer(panel)
        gate.set()
        done = await on_screen(pilot, DoneScreen)
        errors = drawn(done.query_one("#errors"))
        await pilot.press("enter")
    assert line_with(panel_lines, "error:").strip(" ┃") == f"error: the importer stopped: OSError: cannot list /srv/{shown}"
    assert errors[0] == f"  claude: the importer stopped: OSError: cannot list /srv/{shown}"
    assert f"  claude: the importer stopped: OSError: cannot list /srv/{shown}" in app.summary.splitlines()
    assert_no_control(panel_lines + errors + app.summary.splitlines())


# --------------------------------------------------------------------------------------------- the demo


def bash_words(command: str) -> list[bytes]:
    """The words bash reads in `command` (as pasted), each as bytes."""
    proc = subprocess.run(["bash", "-c", f'for a in {command}; do printf "%s\\0" "$a"; done'],
                          capture_output=True, check=True)
    return proc.stdout.split(b"\0")[:-1]


def demo_lines(text: str) -> tuple[str, str, str]:
    lines = text.splitlines()
    where = line_with(lines, "Demo directory:").split(": ", 1)[1]
    look = line_with(lines, "Look at it:").split(":", 1)[1].strip()
    delete = line_with(lines, "Delete it:").split(":", 1)[1].strip()
    return where, look, delete


async def demo_done_lines(tmpdir: Path, size: tuple[int, int]) -> tuple[WizardApp, Path, list[str]]:
    """The demo wizard (its folder in `tmpdir`, as in TMPDIR) run to Done: the app, the demo's folder and the
    lines its `#demo` block draws."""
    m = make_machine(tmpdir)
    app = WizardApp(wizard_settings(m, demo_dir=m.root))
    async with app.run_test(size=size) as pilot:
        await on_screen(pilot, WelcomeScreen)
        await wait_for(pilot, lambda: app.inventory_done)
        for screen in (ClientsScreen, RetentionScreen, ConsentScreen, ReviewScreen, DoneScreen):
            done = await enter_to(pilot, screen)
        shown = drawn(done.query_one("#demo"))
        await pilot.press("enter")
    return app, m.root, shown


async def test_the_demo_done_screen_shows_its_folder_and_commands_that_paste(tmp_path: Path) -> None:
    """TMPDIR `/tmp/t [old]`: Done showed `…/t /hyp-demo-…`, and its `rm -rf /tmp/t /hyp-demo-…` deleted /tmp/t."""
    (tmp_path / "t [old]").mkdir()
    app, demo_root, shown = await demo_done_lines(tmp_path / "t [old]", SIZE)
    root = str(demo_root)
    assert "[old]" in root
    assert shown == [f"Demo directory: {root}",
                     f"Look at it:     HYP_HOME='{root}/hyp' hyp query overview",
                     f"Delete it:      rm -rf '{root}'"]
    where, look, delete = demo_lines("\n".join(shown))
    assert bash_words(look) == [f"HYP_HOME={root}/hyp".encode(), b"hyp", b"query", b"overview"]
    assert bash_words(delete) == [b"rm", b"-rf", root.encode()]
    assert demo_lines(app.summary) == (where, look, delete)


async def test_at_80_columns_the_demo_commands_go_on_under_themselves() -> None:
    """A long TMPDIR (macOS: /var/folders/…/T/) at 80 columns: the Done screen wrapped `… hyp query` / `overview`
    back to column 1, under the label. Each command goes on under its own start, between words, and its words
    read back as the command."""
    import itertools
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="hq-", dir="/tmp"))  # (short: every word of the command fits a line)
    try:
        deep = base / "v" / "T"
        deep.mkdir(parents=True)
        _app, root, shown = await demo_done_lines(deep, (80, 24))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    at = next(i for i, line in enumerate(shown) if line.startswith("Look at it:     HYP_HOME="))
    more = list(itertools.takewhile(lambda line: line.startswith(" " * 16) and line[16] != " ", shown[at + 1:]))
    assert more and shown[at + 1 + len(more)].startswith("Delete it:      rm -rf "), shown
    assert all(len(line) <= 80 for line in shown), shown
    look = " ".join(line[16:] for line in [shown[at], *more])
    assert bash_words(look) == [f"HYP_HOME={root}/hyp".encode(), b"hyp", b"query", b"overview"], shown


@pytest.mark.parametrize("tmp_name", ["t [old]", "it's", "t\x1b]0;T\x07"])
def test_the_demo_summary_commands_paste_as_they_read(tmp_path: Path, tmp_name: str) -> None:
    """`hyp init --demo --yes`: the summary's commands name the demo's folder whatever TMPDIR holds (a control
    character as `$'…\\x1b…'`, which bash reads back as the same path)."""
    tmpdir = tmp_path / tmp_name
    tmpdir.mkdir()
    state = tmp_path / "fake-manager.json"
    state.write_text(json.dumps({"unit_path": str(tmp_path / "unit" / "hypaware.service"), "calls": []}))
    env = dict(os.environ, HOME=str(tmp_path / "home"), HYP_HOME=str(tmp_path / "real-hyp"), TMPDIR=str(tmpdir),
               HYP_TEST_SERVICE_MANAGER=str(state), NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "hypaware_tui", "init", "--demo", "--yes"], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert_no_control(proc.stdout.splitlines() + proc.stderr.splitlines())
    (root,) = list(tmpdir.iterdir())
    where, look, delete = demo_lines(proc.stdout)
    assert where == str(root).replace("\x1b", "\\x1b").replace("\x07", "\\x07")
    assert bash_words(look) == [f"HYP_HOME={root}/hyp".encode(), b"hyp", b"query", b"overview"]
    assert bash_words(delete) == [b"rm", b"-rf", str(root).encode()]


# --------------------------------------------------------------------------------------------- the CLI


def cli_env(tmp_path: Path, name: str) -> tuple[dict[str, str], Path]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    state = tmp_path / "fake-manager.json"
    state.write_text(json.dumps({"unit_path": str(tmp_path / "unit" / "hypaware.service"), "calls": []}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYP_", "CLAUDE_", "CODEX_"))}
    env.update(HOME=str(home), HYP_HOME=str(home / f"hyp-{name}"), CLAUDE_CONFIG_DIR=str(home / f"nope-{name}"),
               CODEX_HOME=str(home / ".codex"), HYP_TEST_SERVICE_MANAGER=str(state), NO_COLOR="1")
    return env, home


def run_hyp(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hypaware_tui", *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, cwd=str(REPO))


def row(stdout: str, first: str) -> list[str]:
    """The cells of the table row starting with `first` (cells are two or more spaces apart)."""
    import re

    return re.split(r"\s{2,}", line_with([ln for ln in stdout.splitlines() if ln.startswith(first)], first).strip())


@pytest.mark.parametrize("kind", ODD)
def test_backfill_list_and_plan_show_a_root_as_it_is(tmp_path: Path, kind: str) -> None:
    name, shown = ODD[kind]
    env, home = cli_env(tmp_path, name)
    reason = f"not found: {home}/nope-{shown} does not exist"
    listed = run_hyp(["backfill", "list"], env)
    assert listed.returncode == 0, listed.stderr
    assert row(listed.stdout, "claude")[:5] == ["claude", "Claude Code", reason, "no config", f"~/nope-{shown}"]
    plan = run_hyp(["backfill", "plan"], env)
    assert plan.returncode == 0, plan.stderr
    assert row(plan.stdout, "claude") == ["claude", reason, "—", "—", "—", "—"]
    assert_no_control((listed.stdout + plan.stdout + listed.stderr + plan.stderr).splitlines())


@pytest.mark.parametrize("kind", ODD)
def test_backfill_dry_run_summary_shows_the_reason_as_it_is(tmp_path: Path, kind: str) -> None:
    name, shown = ODD[kind]
    env, home = cli_env(tmp_path, name)
    proc = run_hyp(["backfill", "--dry-run", "claude", "codex"], env)
    assert f"  claude: not found: {home}/nope-{shown} does not exist" in proc.stdout.splitlines(), proc.stdout
    assert_no_control((proc.stdout + proc.stderr).splitlines())


@pytest.mark.parametrize("kind", ODD)
def test_backfill_live_panel_shows_a_skipped_reason_as_it_is(kind: str) -> None:
    """The live panel on a terminal: the `skipped` row of a client whose root is missing."""
    from hypaware_tui.cli.backfill import RichSink

    name, shown = ODD[kind]
    sink = RichSink("hyp", dry_run=True)
    sink.on_provider_finish(ProviderResult("claude", status="skipped", error=f"not found: /r/{name} does not exist"))
    sink.on_provider_start("codex", 10, 1)
    sink.on_provider_finish(ProviderResult("codex", status="failed", error=f"OSError: /r/{name}"))
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None, force_terminal=True).print(sink._render())
    lines = [line.rstrip() for line in buf.getvalue().splitlines()]
    assert lines[0] == f"Claude Code  skipped    not found: /r/{shown} does not exist"
    assert f"             OSError: /r/{shown}" in lines
    assert_no_control(lines)


@pytest.mark.parametrize("kind", ODD)
def test_init_yes_and_dry_run_show_hyp_home_as_it_is(tmp_path: Path, kind: str) -> None:
    name, shown = ODD[kind]
    env, home = cli_env(tmp_path, name)
    demo = create_demo_dir(now_us(), tmp_root=str(tmp_path))  # history for Codex (Claude Code's root is missing)
    env["CODEX_HOME"] = str(demo.codex_home)
    dry = run_hyp(["init", "--dry-run", "--yes", "--client", "claude", "--client", "codex"], env)
    assert dry.returncode == 0, dry.stderr
    assert f"Config    ~/hyp-{shown}/hypaware-config.json · new" in dry.stdout.splitlines()
    assert f"  claude: not found: {home}/nope-{shown} does not exist" in dry.stdout.splitlines()
    real = run_hyp(["init", "--yes", "--no-daemon", "--client", "claude", "--client", "codex"], env)
    assert real.returncode == 0, real.stderr
    assert f"Config    written ~/hyp-{shown}/hypaware-config.json" in real.stdout.splitlines()
    assert_no_control((dry.stdout + dry.stderr + real.stdout + real.stderr).splitlines())
