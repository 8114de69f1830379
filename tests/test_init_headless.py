"""`hyp init` without the TUI: non-interactive refusal, `--yes`, `--dry-run`, `--demo --yes`, exit codes,
and the import hygiene of the headless paths (wizard.md §12 checks 1-7, 19-21)."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import polars as pl
import pytest

from hypaware_tui.cli.init import run_headless
from hypaware_tui.core.timeutil import now_us
from tests.wizard_support import make_machine as _make_machine
from tests.wizard_support import tree_listing

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def make_machine(tmp_path: Path, **kwargs):
    """The fixture machine with history ending an hour ago (headless runs use the real clock)."""
    return _make_machine(tmp_path, now_us=now_us(), **kwargs)


def hyp(args: list[str], env: dict[str, str], *, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m hypaware_tui <args>` with stdin from /dev/null and stdout/stderr piped."""
    return subprocess.run([PY, "-m", "hypaware_tui", *args], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, cwd=str(REPO))


def headless(m, **kwargs):
    """run_headless in-process with the machine's fakes; returns (code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    defaults = dict(clients=[], retention_days=None, dry_run=False, demo_dir=None, no_backfill=False,
                    no_daemon=False, force=False, json_out=True, service_manager=m.service, spawner=m.spawner)
    defaults.update(kwargs)
    with redirect_stdout(out), redirect_stderr(err):
        code = run_headless("hyp", dict(m.env), **defaults)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def fake_manager_env(tmp_path: Path) -> dict[str, str]:
    state = tmp_path / "fake-manager.json"
    state.write_text(json.dumps({"unit_path": str(tmp_path / "unit" / "hypaware.service"), "calls": []}))
    return {"HYP_TEST_SERVICE_MANAGER": str(state)}


# --------------------------------------------------------------------------------------------- §12.1


@pytest.mark.parametrize("args", [["init"], ["init", "--dry-run"]])
def test_not_interactive_exits_2_with_the_yes_hint_and_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    env = dict(os.environ, HOME=str(tmp_path / "home"), HYP_HOME=str(tmp_path / "fresh-hyp"))
    t0 = time.monotonic()
    proc = hyp(args, env)
    assert time.monotonic() - t0 < 2.0 + 3.0  # interpreter start on a loaded machine; the check itself is instant
    assert proc.returncode == 2
    assert "hyp init --yes" in proc.stderr and "interactive terminal" in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "fresh-hyp").exists()


@pytest.mark.parametrize(("args", "hint"), [
    (["init", "--demo"], "hyp init --demo --yes (add --dry-run to preview)"),
    (["init", "--demo", "--dry-run"], "hyp init --demo --yes --dry-run"),
    (["init", "--dry-run"], "hyp init --yes --dry-run"),
    (["init", "--force"], "hyp init --yes --force (add --dry-run to preview)"),
    (["init", "--client", "codex", "--retention-days", "30", "--no-backfill", "--no-daemon"],
     "hyp init --yes --client codex --retention-days 30 --no-backfill --no-daemon (add --dry-run to preview)"),
    (["init", "--client", "codex", "--client", "codex"], "hyp init --yes --client codex (add --dry-run to preview)"),
])
def test_not_interactive_hint_keeps_the_flags_given(tmp_path: Path, args: list[str], hint: str) -> None:
    """The hint said `hyp init --yes …` whatever was given: one who typed --demo and followed it imported the real
    history into the real HYP_HOME and started capture. It is the command given, made headless."""
    env = dict(os.environ, HOME=str(tmp_path / "home"), HYP_HOME=str(tmp_path / "fresh-hyp"))
    proc = hyp(args, env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == f"hyp init needs an interactive terminal. For a non-interactive setup run: {hint}"
    assert not (tmp_path / "fresh-hyp").exists()


def test_following_the_demo_hint_leaves_the_real_home_alone(tmp_path: Path, fake_manager_env) -> None:
    m = make_machine(tmp_path)  # a real HOME with Claude and Codex history, and no HYP_HOME yet
    env = dict(m.env, TMPDIR=str(tmp_path), **fake_manager_env)
    refused = hyp(["init", "--demo"], env)
    assert refused.returncode == 2
    command = refused.stderr.split("setup run: ", 1)[1].split(" (add", 1)[0].split()
    assert command[:2] == ["hyp", "init"]
    before = tree_listing(m.root)
    proc = hyp([*command[1:], "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["demo_dir"] is not None
    assert not m.layout.home.exists() and tree_listing(m.root) == before
    assert json.loads(Path(fake_manager_env["HYP_TEST_SERVICE_MANAGER"]).read_text())["calls"] == []


# --------------------------------------------------------------------------------------------- §12.2, §12.20


def test_yes_imports_both_clients(tmp_path: Path, fake_manager_env) -> None:
    m = make_machine(tmp_path)
    env = dict(m.env, **fake_manager_env)
    proc = hyp(["init", "--yes", "--no-daemon", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    providers = {p["provider"]: p for p in summary["backfill"]["providers"]}
    assert {p: providers[p]["status"] for p in providers} == {"claude": "ok", "codex": "ok"}
    assert all(p["rows_written"] > 0 for p in providers.values())
    assert summary["config"]["action"] == "created" and summary["exit_code"] == 0
    assert summary["daemon"] == {"action": "none", "status": "skipped", "mode": None, "pid": None, "error": None}
    assert "hyp: claude" in proc.stderr  # plain progress lines on a non-TTY stderr


def test_yes_json_summary_names_the_clients_and_the_retention_chosen(tmp_path: Path) -> None:
    """cli.md §4.2: the `--json` summary's `clients` are every client set up and `retention_days` the one
    written; a script reading it was told one client, or 120 days after `--retention-days 30` (mutation audit)."""
    m = make_machine(tmp_path)
    code, out, err = headless(m, retention_days=30, no_backfill=True, no_daemon=True)
    assert code == 0, err
    summary = json.loads(out)
    assert {k: summary[k] for k in ("command", "dry_run", "demo_dir", "hyp_home", "clients", "retention_days",
                                    "exit_code")} == {
        "command": "init", "dry_run": False, "demo_dir": None, "hyp_home": str(m.layout.home),
        "clients": ["claude", "codex"], "retention_days": 30, "exit_code": 0}
    assert json.loads(m.layout.config.read_text())["retention_days"] == 30


def test_demo_yes_keeps_the_real_home_untouched(tmp_path: Path, fake_manager_env) -> None:
    real_home = tmp_path / "real-home"
    real_home.mkdir()
    real_hyp = tmp_path / "real-hyp"
    env = dict(os.environ, HOME=str(real_home), HYP_HOME=str(real_hyp), TMPDIR=str(tmp_path),
               **fake_manager_env)
    env.pop("CLAUDE_CONFIG_DIR", None)
    env.pop("CODEX_HOME", None)
    proc = hyp(["init", "--demo", "--yes", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    demo_dir = Path(summary["demo_dir"])
    assert demo_dir.parent == tmp_path and demo_dir.name.startswith("hyp-demo-")
    assert summary["hyp_home"] == str(demo_dir / "hyp")
    rows = {p["provider"]: p["rows_written"] for p in summary["backfill"]["providers"]}
    assert rows["claude"] > 0 and rows["codex"] > 0
    files = list((demo_dir / "hyp" / "cache" / "ai_gateway_messages").rglob("*.parquet"))
    sources = set(pl.concat([pl.read_parquet(f, columns=["client_name"]) for f in files])["client_name"])
    assert sources == {"claude", "codex"}
    assert summary["daemon"]["status"] == "skipped" and summary["daemon"]["action"] == "none"
    assert not real_hyp.exists()
    assert list(real_home.iterdir()) == []
    assert json.loads(Path(fake_manager_env["HYP_TEST_SERVICE_MANAGER"]).read_text())["calls"] == []
    # capture off in the demo's config: with it on, `hyp status` told the user to start a daemon, which would
    # have read the real HOME's history into the demo's dataset
    assert json.loads((demo_dir / "hyp" / "hypaware-config.json").read_text())["capture"]["enabled"] is False
    status = hyp(["status"], dict(env, HYP_HOME=str(demo_dir / "hyp")))
    assert status.returncode == 0 and "daemon start" not in status.stdout and "capture off" in status.stdout
    text = hyp(["init", "--demo", "--yes"], env)  # the text summary names the demo dir and how to use it
    assert text.returncode == 0
    assert "HYP_HOME=" in text.stdout and "hyp query overview" in text.stdout and "rm -rf" in text.stdout
    assert "not started (demo)" in text.stdout
    dry = hyp(["init", "--demo", "--yes", "--dry-run", "--json"], env)  # a dry-run demo removes its directory
    assert dry.returncode == 0 and json.loads(dry.stdout)["demo_dir"]
    assert not Path(json.loads(dry.stdout)["demo_dir"]).exists()


def test_demo_under_a_tmpdir_with_brackets_and_a_space(tmp_path: Path, fake_manager_env) -> None:
    """Under TMPDIR=`…/t [old]` the demo imported its rows, then every read of them failed (its dataset root
    read as a glob), and its last line said `rm -rf …/t [old]/hyp-demo-…`: pasted as printed, that removes
    `…/t` and whatever `[old]/hyp-demo-…` names. The commands it prints quote their paths for a shell."""
    import shlex

    tmp = tmp_path / "t [old]"
    tmp.mkdir()
    env = dict(os.environ, HOME=str(tmp_path / "real-home"), HYP_HOME=str(tmp_path / "real-hyp"), TMPDIR=str(tmp),
               **fake_manager_env)
    env.pop("CLAUDE_CONFIG_DIR", None)
    env.pop("CODEX_HOME", None)
    proc = hyp(["init", "--demo", "--yes"], env)
    assert proc.returncode == 0, proc.stderr
    (demo_dir,) = tmp.iterdir()
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in proc.stdout.splitlines()
             if line.startswith(("Look at it:", "Delete it:"))}  # fmt: skip
    assert shlex.split(lines["Delete it"]) == ["rm", "-rf", str(demo_dir)]
    assert shlex.split(lines["Look at it"]) == [f"HYP_HOME={demo_dir / 'hyp'}", "hyp", "query", "overview"]
    look = hyp(["query", "overview", "--json"], dict(env, HYP_HOME=str(demo_dir / "hyp")))
    assert look.returncode == 0 and json.loads(look.stdout)["rows"] > 0, look.stderr


# --------------------------------------------------------------------------------------------- §12.3


def test_yes_with_nothing_detected_exits_2_naming_the_roots(tmp_path: Path) -> None:
    m = make_machine(tmp_path, clients=())
    code, out, err = headless(m)
    assert code == 2 and out == ""
    assert "no Claude Code or Codex history found" in err
    assert str(m.home / ".claude") in err and str(m.home / ".codex") in err
    assert "--demo --yes" in err
    assert not m.layout.home.exists()


# --------------------------------------------------------------------------------------------- §12.4, §12.5


def test_existing_config_needs_force_and_is_backed_up(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    old = b'{"version": 1, "clients": {"claude": {"enabled": true}}, "retention_days": 365, "x": 1}\n'
    m.layout.config.write_bytes(old)

    code, out, err = headless(m, no_backfill=True)
    assert code == 1 and json.loads(out)["error"] == err.strip().removeprefix("hyp init: ")
    assert f"a config already exists at {m.layout.config}" in err and "--force" in err
    assert headless(m, no_backfill=True, json_out=False)[1] == ""
    assert m.layout.config.read_bytes() == old

    code, out, err = headless(m, no_backfill=True, force=True, no_daemon=True)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["config"]["action"] == "replaced"
    backup = Path(summary["config"]["backup"])
    assert backup.name.startswith("hypaware-config.json.bak-") and len(backup.name) == len(
        "hypaware-config.json.bak-20260830T141502Z")
    assert backup.read_bytes() == old
    new = json.loads(m.layout.config.read_text())
    assert new["retention_days"] == 365  # §12.5: kept from the existing config
    assert new["x"] == 1 and new["clients"]["claude"]["enabled"] is True
    assert new["clients"]["codex"]["enabled"] is False  # clients kept from the config, not re-detected
    assert "retention: 365 days (kept from existing config)" in err
    assert "clients: claude (kept from existing config)" in err


def test_a_window_that_deletes_stored_rows_is_said_before_the_run(tmp_path: Path) -> None:
    """`--force --retention-days 7` over a keep-forever history (or over a config that cannot be read) deletes
    the older rows at the next daily cleanup: the wizard warns on Retention and Review, the headless run said
    nothing (review). It says the same warning on stderr before it writes anything."""
    m = make_machine(tmp_path)
    code, _, err = headless(m, retention_days=0, no_daemon=True)
    assert code == 0, err
    from hypaware_tui.core.plan import gather_machine_state

    machine = gather_machine_state(m.layout, dict(m.env), service_manager=m.service)
    older = machine.rows_older_than(7, now_us())
    assert older and older > 0
    code, _, err = headless(m, retention_days=7, no_daemon=True, force=True)
    assert code == 0, err
    # (capture off: no daemon, no daily cleanup; it said "at the next daily cleanup", which never came)
    prune = "will be deleted by the next hyp cache prune (capture is off, so no daily cleanup runs)."
    assert (f"hyp init: warning: Shorter than your keep-forever setting: rows older than 7 days (about {older:,}) "
            f"{prune}") in err.splitlines(), err
    m.layout.config.write_text('{"version":1, "clients":\n')  # (cannot be read)
    code, _, err = headless(m, retention_days=7, no_daemon=True, force=True)
    assert code == 0, err
    assert (f"hyp init: warning: Your config cannot be read, and hyp's dataset holds rows older than 7 days "
            f"(about {older:,}): they {prune}") in err.splitlines(), err
    code, _, err = headless(m, retention_days=0, no_daemon=True, force=True)  # (keeps every row: nothing said)
    assert code == 0 and "warning" not in err, err


def test_each_step_out_of_an_invalid_config_names_a_command_that_works(tmp_path: Path, fake_manager_env) -> None:
    """An invalid config: backfill said `hyp init --force`, which without a terminal suggested `hyp init --yes`,
    which said "Re-run with --force … or use hyp backfill" (which fails on the file). `hyp init --yes --force`
    was named nowhere in full."""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text('{"version":1, "clients":\n')
    env = dict(m.env, **fake_manager_env)
    backfill = hyp(["backfill"], env)
    assert backfill.returncode == 1 and "hyp init --yes --force without a terminal" in backfill.stderr
    forced = hyp(["init", "--force"], env)
    assert forced.returncode == 2 and "run: hyp init --yes --force (add --dry-run" in forced.stderr
    headless_run = hyp(["init", "--yes", "--no-daemon"], env)
    assert headless_run.returncode == 1 and headless_run.stdout == ""
    assert headless_run.stderr.strip() == (
        f"hyp init: the config is invalid: {m.layout.config}: is not valid JSON: it ends early, at line 2, column 1 "
        "(was it cut short?). "
        "Replace it with hyp init --yes --no-daemon --force (a backup is kept), or fix the file.")
    assert "backfill" not in headless_run.stderr
    command = headless_run.stderr.split("Replace it with ", 1)[1].split(" (a backup", 1)[0].split()
    done = hyp([*command[1:], "--no-backfill"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(m.layout.config.read_text())["version"] == 1
    backups = list(m.layout.home.glob("hypaware-config.json.bak-*"))
    assert [b.read_text() for b in backups] == ['{"version":1, "clients":\n']


# --------------------------------------------------------------------------------------------- §12.6, §12.7


def test_dry_runs_write_nothing_and_call_nothing(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    before = tree_listing(m.root, m.layout.home)
    code, out, err = headless(m, dry_run=True, json_out=True)
    assert code == 0, err
    plan = json.loads(out)
    assert plan["dry_run"] is True and plan["config"]["action"] == "create"
    assert json.loads(plan["config"]["text"]) == {
        "version": 1, "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
        "retention_days": 120, "capture": {"enabled": True}}
    assert plan["daemon"]["action"] == "start"
    code, out, err = headless(m, dry_run=True, json_out=False)
    assert code == 0 and out.startswith("Dry run: nothing was written.")
    assert tree_listing(m.root, m.layout.home) == before
    assert not m.layout.home.exists()
    assert m.service.calls == [] and m.spawner.calls == []


def test_plan_warns_about_a_unit_for_another_hyp_home_and_starts_detached(tmp_path: Path) -> None:
    """A unit written before HYP_HOME moved runs hyp with the old HYP_HOME: the plan started the daemon
    through it (a daemon for the other HYP_HOME) and said nothing."""
    from hypaware_tui.core.daemon.service import render_systemd_unit, unit_spec

    m = make_machine(tmp_path)
    m.service.unit_path.parent.mkdir(parents=True)
    m.service.unit_path.write_text(render_systemd_unit(unit_spec(PY, "/elsewhere/hyp", "/elsewhere/l.log", {})))
    code, out, err = headless(m, dry_run=True, json_out=False)
    assert code == 0, err
    lines = out.splitlines()
    assert "Daemon    start · capture on, daemon not running · detached" in lines
    assert ("Warning   The installed service unit runs hyp with HYP_HOME=/elsewhere/hyp, not this one; run hyp "
            "daemon install to point it here (the daemon starts detached meanwhile).") in lines
    assert m.service.calls == []
    # the real run says it too, on stderr before it writes (it said nothing: only --dry-run printed warnings)
    code, out, err = headless(m, json_out=False, no_backfill=True)
    assert code == 0, err
    assert ("hyp init: warning: The installed service unit runs hyp with HYP_HOME=/elsewhere/hyp, not this one; run "
            "hyp daemon install to point it here (the daemon starts detached meanwhile).") in err.splitlines(), err
    assert err.count("warning") == 1, err


def test_review_warns_when_the_dataset_is_not_the_one_imported_into(tmp_path: Path) -> None:
    """The dataset folder deleted after a setup: `hyp backfill` and `hyp status` say the next import reads all
    history again; the Review (here `--dry-run`'s), the wizard's screen of "what will happen", said nothing."""
    import shutil

    m = make_machine(tmp_path)
    code, _, err = headless(m, no_daemon=True)
    assert code == 0, err
    shutil.rmtree(m.layout.home / "cache")
    code, out, err = headless(m, dry_run=True, json_out=False, force=True)
    assert code == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("Warning")]
    assert any("is not the one hyp imported into" in w and "the next import reads all history again" in w
               for w in warnings), out
    # the real run says it once: the import itself does (not also as a warning of the plan before it)
    code, out, err = headless(m, json_out=False, force=True, no_daemon=True)
    assert code == 0, err
    assert err.count("is not the one hyp imported into") == 1, err


def test_dry_run_over_an_existing_config_is_not_an_error(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text('{"version": 1, "retention_days": 30}\n')
    before = tree_listing(m.layout.home)
    code, out, _err = headless(m, dry_run=True)
    assert code == 0
    cfg = json.loads(out)["config"]
    assert cfg["action"] == "replace" and cfg["needs_force"] is True and cfg["backup"].startswith(
        "hypaware-config.json.bak-")
    assert tree_listing(m.layout.home) == before


def test_a_dry_run_over_an_existing_config_previews_its_clients_and_retention(tmp_path: Path) -> None:
    """A dry run previews the real run (`--force`), which keeps the existing config's clients and retention
    (cli.md §4.1): a preview that fell back to every detected client and 120 days showed a plan the real run
    would not carry out (mutation audit)."""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text('{"version": 1, "clients": {"claude": {"enabled": true}}, "retention_days": 365}\n')
    code, out, err = headless(m, dry_run=True)
    assert code == 0, err
    plan = json.loads(out)
    assert plan["retention_days"] == 365
    assert {c["client"]: c["selected"] for c in plan["clients"]} == {"claude": True, "codex": False}
    assert "clients: claude (kept from existing config)" in err
    assert "retention: 365 days (kept from existing config)" in err


def test_dry_run_over_the_same_settings_says_a_real_run_needs_force(tmp_path: Path, fake_manager_env) -> None:
    """A config with the settings the run would write: the dry run said `unchanged` and `needs_force: false`,
    and the same command without --dry-run then exited 1 asking for --force (wizard.md §9.3, §10.1). The plan
    says what the real run does."""
    m = make_machine(tmp_path)
    env = dict(m.env, **fake_manager_env)
    first = hyp(["init", "--yes", "--no-backfill", "--no-daemon"], env)
    assert first.returncode == 0, first.stderr
    config = m.layout.config.read_bytes()
    text = hyp(["init", "--yes", "--no-daemon", "--dry-run"], env)
    assert text.returncode == 0, text.stderr
    assert "Config    ~/.hyp/hypaware-config.json · unchanged; a real run needs --force\n" in text.stdout
    doc = hyp(["init", "--yes", "--no-daemon", "--dry-run", "--json"], env)
    assert doc.returncode == 0, doc.stderr
    cfg = json.loads(doc.stdout)["config"]
    assert (cfg["action"], cfg["needs_force"], cfg["backup"]) == ("unchanged", True, None)
    real = hyp(["init", "--yes", "--no-daemon", "--no-backfill"], env)
    assert real.returncode == 1 and "a config already exists at" in real.stderr and "--force" in real.stderr
    # With --force the plan and the run agree: nothing to force, and the file is left as it is.
    forced = hyp(["init", "--yes", "--no-daemon", "--dry-run", "--force"], env)
    assert "Config    ~/.hyp/hypaware-config.json · unchanged\n" in forced.stdout
    forced = hyp(["init", "--yes", "--no-daemon", "--no-backfill", "--force", "--json"], env)
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["config"]["action"] == "unchanged"
    assert m.layout.config.read_bytes() == config


async def test_dry_run_json_in_window_equals_the_review_screen(tmp_path: Path) -> None:
    """§12.6 (interactive dry run writes nothing) and §12.7 (same in_window figures as Review)."""
    from hypaware_tui.app import WizardApp
    from hypaware_tui.screens.review import ReviewScreen
    from tests.test_wizard_flow import enter_to, on_screen, to_clients, wait_for
    from tests.wizard_support import wizard_settings

    m = make_machine(tmp_path)
    before = tree_listing(m.root, m.layout.home)
    code, out, _ = headless(m, dry_run=True, json_out=True)
    headless_in_window = {c["client"]: c["in_window"] for c in json.loads(out)["clients"]}

    app = WizardApp(wizard_settings(m, dry_run=True, now_us=__import__("hypaware_tui.core.timeutil",
                                                                     fromlist=["now_us"]).now_us))
    async with app.run_test(size=(80, 24)) as pilot:
        clients = await to_clients(pilot)
        assert clients.step.total == 5
        for _ in range(3):
            await pilot.press("enter")
        review = await on_screen(pilot, ReviewScreen)
        assert "Dry run: this is what hyp init would do." in str(review.query_one("#subtitle").render())
        assert review.query("#close") and not review.query("#start")
        screen_in_window = {c.client: c.in_window.to_json() for c in review.plan.clients}
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0
    assert screen_in_window == headless_in_window
    assert tree_listing(m.root, m.layout.home) == before
    assert m.service.calls == [] and m.spawner.calls == []
    _ = enter_to


# --------------------------------------------------------------------------------------------- §12.19


def test_every_importer_gets_the_same_until_as_the_summary(tmp_path: Path) -> None:
    from hypaware_tui.core.timeutil import parse_iso_us
    from tests.test_wizard_flow import WrappedImporter

    m = make_machine(tmp_path)
    windows: list = []
    imps = {n: WrappedImporter(n, windows=windows) for n in ("claude", "codex")}
    code, out, err = headless(m, importers=imps)
    assert code == 0, err
    summary = json.loads(out)
    until = parse_iso_us(summary["window"]["until"])
    assert windows and {w.until_us for w in windows} == {until}
    assert parse_iso_us(summary["backfill"]["until"]) == until
    assert summary["daemon"]["action"] == "start" and summary["daemon"]["status"] == "ok"
    assert len(m.spawner.calls) == 1


def test_failing_client_exit_1_and_text_summary(tmp_path: Path) -> None:
    from tests.test_wizard_flow import WrappedImporter

    m = make_machine(tmp_path)
    imps = {"claude": WrappedImporter("claude"), "codex": WrappedImporter("codex", fail_discover_after=1)}
    code, out, err = headless(m, importers=imps, json_out=False, no_daemon=True)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("Config    written ")
    assert lines[1].startswith("Window    ") and "(120 days)" in lines[1]
    header = next(line for line in lines if line.startswith("Client"))
    assert header.split() == ["Client", "Status", "Files", "Sessions", "Rows", "written", "Duplicates", "Lines",
                              "skipped", "Errors"]
    assert any(line.startswith("Codex") and " failed " in line for line in lines)
    assert any(line.startswith("  codex: ") and "injected failure" in line for line in lines)
    assert any(line.startswith("Next      ") and "hyp backfill codex" in line for line in lines)
    # --no-daemon: no service unit is installed, so Next says how to turn capture on later, as Done does
    assert next(line for line in lines if line.startswith("Next")).endswith(" · hyp daemon install")


def test_a_failing_client_gives_exit_code_1_in_the_json_summary_too(tmp_path: Path) -> None:
    """The `--json` summary's `exit_code` is the process's (cli.md §4.2, wizard.md §11): a script reading it was
    told 0 for a run that exited 1 with a client failed (mutation audit)."""
    from tests.test_wizard_flow import WrappedImporter

    m = make_machine(tmp_path)
    imps = {"claude": WrappedImporter("claude"), "codex": WrappedImporter("codex", fail_discover_after=1)}
    code, out, _err = headless(m, importers=imps, no_daemon=True)
    summary = json.loads(out)
    assert code == 1 and summary["exit_code"] == 1
    assert {p["provider"]: p["status"] for p in summary["backfill"]["providers"]} == {"claude": "ok",
                                                                                      "codex": "failed"}


def test_a_config_that_could_not_be_written_ends_without_the_next_steps_of_a_setup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The config write failed (a HYP_HOME this user may not write in): the summary said "Config failed:
    Permission denied (…)", "Capture not started (setup was interrupted; …)", and ended with "Next hyp status ·
    hyp query overview …" as if setup had worked. Nothing was set up: it says what to do about the config,
    and that the daemon was not started because of it."""
    import hypaware_tui.core.config as config_mod

    m = make_machine(tmp_path)
    tmp = m.layout.home / ".hypaware-config.json.0123.tmp"

    def save_config(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp))

    monkeypatch.setattr(config_mod, "save_config", save_config)
    code, out, err = headless(m, json_out=False)
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0] == (f"Config    failed: Permission denied ({tmp}). Check that {m.layout.home} and everything in "
                        "it belong to you and are writable (mode 0700), or point HYP_HOME at a writable directory.")
    assert "Capture   not started (the config could not be written)" in lines
    assert lines[-1] == "Next      fix the config error above, then run hyp init again"
    assert "hyp status" not in out and not m.spawner.calls


def test_file_errors_in_the_text_summary_name_the_first_file_and_count_the_others(tmp_path: Path) -> None:
    """As under `hyp backfill`: the first file error with the path of its file (the message names it by path
    hash only), then how many more there were."""
    m = make_machine(tmp_path)
    projects = Path(m.env["CLAUDE_CONFIG_DIR"]) / "projects"
    folder = next(p for p in sorted(projects.iterdir()) if p.is_dir())
    for i in range(3):
        os.symlink(f"loop{i}.jsonl", folder / f"loop{i}.jsonl")
    code, out, err = headless(m, json_out=False, no_daemon=True)
    assert code == 0, err
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  claude: "))
    assert "symbolic link loop" in lines[at]
    assert lines[at + 1] in {f"    at ~/{(folder / f'loop{i}.jsonl').relative_to(m.home)}" for i in range(3)}
    assert lines[at + 2] == ("  claude: and 2 more errors (hyp status shows the latest errors; the events log "
                             "has each, by path hash; hyp backfill --dry-run lists their paths).")


def test_import_again_with_a_file_that_could_not_be_read_does_not_say_nothing_was_added(tmp_path: Path) -> None:
    """`hyp init --yes --force` again with nothing new: the summary ended "Nothing new to import: no history was
    added since the last import." under `Errors 1` and the error of a file it could not read. As under `hyp
    backfill`, the line says what it is sure of; without the error, cli.md §5.3's text."""
    m = make_machine(tmp_path)
    assert headless(m, json_out=False, no_daemon=True)[0] == 0
    code, out, err = headless(m, json_out=False, no_daemon=True, force=True)
    assert code == 0, err
    assert "\nNothing new to import: no history was added since the last import.\n\nCapture   " in out
    folder = next(p for p in sorted((Path(m.env["CLAUDE_CONFIG_DIR"]) / "projects").iterdir()) if p.is_dir())
    os.symlink("loop.jsonl", folder / "loop.jsonl")
    code, out, err = headless(m, json_out=False, no_daemon=True, force=True)
    assert code == 0, err
    assert "symbolic link loop" in out and "no history was added" not in out
    assert ("\nNothing new to import from what could be read: 1 file could not be read (see above).\n\nCapture   "
            in out), out


# --------------------------------------------------------------------------------------------- §12.21


@pytest.mark.parametrize("args", [["init", "--help"], ["init", "--yes", "--no-daemon", "--no-backfill"],
                                  ["init", "--yes", "--dry-run"]])
def test_textual_is_not_imported_by_headless_paths(tmp_path: Path, args: list[str]) -> None:
    m = make_machine(tmp_path)
    marker = tmp_path / "modules.txt"
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: open({str(marker)!r}, 'w').write(str('textual' in sys.modules)))\n"
            "from hypaware_tui.cli.app import main\n"
            f"main({args!r})\n")
    proc = subprocess.run([PY, "-c", code], env=m.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "False"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    m = make_machine(tmp_path, clients=())
    for args, needle in ((["init", "--yes", "--client", "cursor"], "cursor"),
                         (["init", "--yes", "--retention-days", "-1"], "--retention-days"),
                         # (past ~739,000 the cut date is before year 1: it died on an OverflowError, exit 1)
                         (["init", "--yes", "--retention-days", "740000", "--dry-run"], "--retention-days"),
                         (["init", "--json"], "--json")):
        proc = hyp(args, m.env)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and proc.stdout == ""


def test_retention_days_0_keeps_everything(tmp_path: Path) -> None:
    """`--retention-days 0` is forever (cli.md §4.1: an integer ≥ 0), not a usage error: the edge of the range
    accepted, where -1 is refused (mutation audit)."""
    m = make_machine(tmp_path)
    proc = hyp(["init", "--yes", "--dry-run", "--json", "--retention-days", "0"], m.env)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["retention_days"] == 0 and json.loads(plan["config"]["text"])["retention_days"] == 0
    assert not m.layout.home.exists()


def test_welcome_back_facts_after_a_setup(tmp_path: Path) -> None:
    from hypaware_tui.cli.init import welcome_back_facts
    from hypaware_tui.core.plan import gather_machine_state

    m = make_machine(tmp_path)
    code, out, err = headless(m, no_daemon=True)
    assert code == 0, err
    rows = sum(p["rows_written"] for p in json.loads(out)["backfill"]["providers"])
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    facts = dict(welcome_back_facts(m.layout, m.env, machine))
    assert facts["Config"] == "~/.hyp/hypaware-config.json"
    assert facts["Clients"] == "Claude Code and Codex" and facts["Retention"] == "120 days"
    assert facts["Capture"] == "off" and facts["Daemon"] == "never started"
    assert f"{rows:,} rows" in facts["Dataset"]
    # (the dataset's dates are those of its UTC date partitions: said, as every other date says its zone)
    assert re.search(r" · \d{4}-\d\d-\d\d → \d{4}-\d\d-\d\d \(UTC\)$", facts["Dataset"]), facts["Dataset"]


def test_welcome_back_says_when_the_daemon_ended_unexpectedly(tmp_path: Path) -> None:
    """A daemon that was killed (its status still says running, nobody holds its lock) is not reported as a plain
    "stopped", which reads like a deliberate `hyp daemon stop`: Welcome back says what `hyp status` says."""
    from hypaware_tui.cli.init import welcome_back_facts
    from hypaware_tui.core.daemon.control import write_status_file
    from hypaware_tui.core.plan import gather_machine_state

    m = make_machine(tmp_path)
    code, _, err = headless(m, no_daemon=True)
    assert code == 0, err
    write_status_file(m.layout, {"pid": 999_999, "state": "running", "mode": "detached",
                                 "updated_at": "2026-11-20T08:15:00Z"})  # fmt: skip
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    facts = dict(welcome_back_facts(m.layout, m.env, machine))
    assert facts["Daemon"] == "stopped (ended unexpectedly at 2026-11-20T08:15:00Z)"


def test_yes_json_names_a_selected_client_that_was_not_found(tmp_path: Path, fake_manager_env) -> None:
    """A named but undetected client is `skipped` (wizard.md §9), in the JSON as in the text summary and in
    `hyp backfill --json`: it was missing from `backfill.providers`, and `backfill` was null when no named
    client was found, as if the import had been declined."""
    m = make_machine(tmp_path, clients=("codex",))
    env = dict(m.env, **fake_manager_env)
    proc = hyp(["init", "--yes", "--no-daemon", "--client", "claude", "--client", "codex", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    providers = summary["backfill"]["providers"]
    assert [(p["provider"], p["status"]) for p in providers] == [("claude", "skipped"), ("codex", "ok")]
    assert providers[0]["rows_written"] == 0 and "does not exist" in providers[0]["error"]

    (tmp_path / "none").mkdir()
    m2 = make_machine(tmp_path / "none", clients=("codex",))
    proc = hyp(["init", "--yes", "--no-daemon", "--client", "claude", "--json"], dict(m2.env, **fake_manager_env))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["backfill"] is not None and summary["backfill"]["run_id"] is None
    assert [(p["provider"], p["status"]) for p in summary["backfill"]["providers"]] == [("claude", "skipped")]
    proc = hyp(["init", "--yes", "--no-daemon", "--no-backfill", "--json", "--force"], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backfill"] is None  # declined


def test_hyp_home_that_is_a_file_is_named_as_such(tmp_path: Path) -> None:
    """HYP_HOME pointing at a file: init said "a config already exists at <file>/hypaware-config.json"
    (there is none) and offered --force. It names the real problem, exit 1, and writes nothing."""
    m = make_machine(tmp_path)
    m.layout.home.write_text("a file\n")
    for args in (["init", "--yes"], ["init", "--yes", "--force"], ["init", "--yes", "--dry-run"]):
        p = hyp(args, dict(m.env))
        assert p.returncode == 1, (args, p.stderr)
        assert p.stderr.strip() == (f"hyp init: HYP_HOME is {m.layout.home}, which is not a directory. Point "
                                    "HYP_HOME at a directory (or move that file away) and run it again.")
        assert m.layout.home.read_text() == "a file\n"


def test_hyp_home_that_is_a_dangling_link_is_named_as_such(tmp_path: Path) -> None:
    """HYP_HOME a symlink to a folder that does not exist (an unmounted disk): init said "Config failed: File
    exists" (making the folder found the link). It names the link and its target, exit 1, and writes nothing."""
    m = make_machine(tmp_path)
    target = tmp_path / "unmounted" / "hyp"
    m.layout.home.symlink_to(target)
    p = hyp(["init", "--yes", "--no-daemon"], dict(m.env))
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip() == (f"hyp init: HYP_HOME is {m.layout.home}, a link to {target}, which does not exist. "
                                "Create that folder (or point HYP_HOME elsewhere) and run it again.")
    assert not target.exists() and m.layout.home.is_symlink()


def test_a_config_with_a_utf8_bom_is_imported_over_and_rewritten_without_it(tmp_path: Path) -> None:
    """A config saved with a UTF-8 BOM (Notepad) was read by every command, yet `hyp init --yes --force` died
    with "unexpected error: JSONDecodeError: Unexpected UTF-8 BOM" before importing anything. Left unchanged
    it keeps its bytes; a rewrite drops the BOM (no content) and the backup keeps it byte for byte."""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    old = ('\ufeff{"version":1,"clients":{"claude":{"enabled":true},"codex":{"enabled":true}},'
           '"retention_days":120,"capture":{"enabled":false}}').encode()
    m.layout.config.write_bytes(old)

    code, out, err = headless(m, force=True, no_daemon=True, json_out=False)
    assert code == 0, err
    assert "unexpected error" not in err
    assert out.startswith("Config    unchanged ~/.hyp/hypaware-config.json\n")
    assert "\nClaude Code  ok  " in out and "\nCodex        ok  " in out
    assert m.layout.config.read_bytes() == old

    code, out, err = headless(m, force=True, no_daemon=True, no_backfill=True, retention_days=30)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["config"]["action"] == "replaced"
    assert Path(summary["config"]["backup"]).read_bytes() == old
    new = m.layout.config.read_bytes()
    assert not new.startswith(b"\xef\xbb\xbf") and json.loads(new)["retention_days"] == 30


@pytest.mark.parametrize("kind", ["fifo", "deep"])
def test_a_config_that_is_a_named_pipe_or_nested_too_deep_is_an_invalid_config(tmp_path: Path, kind: str) -> None:
    """A named pipe as the config hung every command (reading it waits for a writer); a config nested 200,000
    deep was "unexpected error: RecursionError" on every command, naming no file, and `hyp init --yes --force`
    could not replace either. Both are an invalid config like any other: named with the problem, and replaced
    by --force (a pipe is moved aside to the backup name, never opened)."""
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    if kind == "fifo":
        os.mkfifo(m.layout.config)
        reason = "is a named pipe (FIFO), not a regular file"
    else:
        m.layout.config.write_text('{"version": 1, "x": ' + "[" * 200_000 + "]" * 200_000 + "}")
        reason = "nests arrays and objects more than 100 levels deep"
    path, env = m.layout.config, dict(m.env)
    status = hyp(["status"], env, timeout=20)
    assert status.returncode == 1 and status.stdout.startswith(
        f"Config    ~/.hyp/hypaware-config.json: invalid: {reason}\n")
    backfill = hyp(["backfill"], env, timeout=20)
    assert backfill.returncode == 1 and backfill.stderr.startswith(
        f"hyp backfill: the config is invalid: {path}: {reason}. Fix the file, or replace it with hyp init")
    cache = hyp(["cache", "status"], env, timeout=20)
    assert "unexpected error" not in cache.stderr and reason in cache.stdout
    daemon = hyp(["daemon", "status"], env, timeout=20)
    assert f"the config is invalid ({reason}): fix " in daemon.stdout
    dry = hyp(["init", "--yes", "--dry-run"], env, timeout=20)
    assert dry.returncode == 0 and " · replace (backup: hypaware-config.json.bak-" in dry.stdout
    refused = hyp(["init", "--yes", "--no-daemon", "--no-backfill"], env, timeout=20)
    assert refused.returncode == 1 and refused.stderr.startswith(f"hyp init: the config is invalid: {path}: {reason}. ")

    forced = hyp(["init", "--yes", "--force", "--no-daemon", "--no-backfill"], env, timeout=20)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("Config    written ~/.hyp/hypaware-config.json (backup hypaware-config.json.bak-")
    backup = m.layout.home / forced.stdout.split("(backup ", 1)[1].split(")", 1)[0]
    if kind == "fifo":
        assert stat.S_ISFIFO(backup.lstat().st_mode)
    else:
        assert backup.read_text().startswith('{"version": 1, "x": [[[')
    assert json.loads(path.read_text())["version"] == 1
    assert hyp(["status"], env, timeout=20).stdout.startswith("Config    ~/.hyp/hypaware-config.json: ok\n")


# --------------------------------------------------------------------------------------------- §9.3, two at once


def _another_init_writes_between_plan_and_commit(monkeypatch: pytest.MonkeyPatch, m, text: bytes) -> list[int]:
    """Two `hyp init --yes` at once, made deterministic: the config the other one writes lands after this one's
    plan (made when there was none) and before its commit. Returns how many plans were made (a list to read)."""
    import hypaware_tui.core.plan as plan_mod

    real = plan_mod.build_plan
    plans = [0]

    def build_plan(*args, **kwargs):
        plan = real(*args, **kwargs)
        plans[0] += 1
        if plans[0] == 1:
            m.layout.home.mkdir(mode=0o700, exist_ok=True)
            m.layout.config.write_bytes(text)
        return plan

    monkeypatch.setattr(plan_mod, "build_plan", build_plan)
    return plans


OTHER_CONFIG = (b'{\n  "version": 1,\n  "clients": {"claude": {"enabled": true}, "codex": {"enabled": false}},\n'
                b'  "retention_days": 30\n}\n')


@pytest.mark.parametrize("json_out", [False, True])
def test_a_config_written_by_another_init_meanwhile_stops_this_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    json_out: bool) -> None:
    """Two `hyp init --yes` at once: both planned `create`, the second silently replaced the first's config (a
    backup kept, but its summary said "created") and the first's summary described a file that was gone. The
    config is created only where none is at the write itself; the second then ends as if the first's config had
    been there from the start: exit 1 with the §9.3 message, nothing written, the first's file intact."""
    m = make_machine(tmp_path)
    plans = _another_init_writes_between_plan_and_commit(monkeypatch, m, OTHER_CONFIG)
    code, out, err = headless(m, clients=["codex"], retention_days=365, no_daemon=True, json_out=json_out)
    assert code == 1
    assert plans[0] == 1  # (stopped at the same check as a config found at the start: no second plan)
    flags = " --json" if json_out else ""
    assert err.strip().splitlines()[-1] == (
        f"hyp init: a config already exists at {m.layout.config}. Re-run with --force to replace it (hyp init --yes "
        f"--client codex --retention-days 365 --no-daemon --force{flags}; a backup is kept), or use hyp backfill to "
        "import again.")
    if json_out:  # one document (cli.md §1): the failure, not a summary that claims a config it did not write
        doc = json.loads(out)
        assert doc["exit_code"] == 1 and doc["error"].startswith("a config already exists at ")
        assert "config" not in doc and "providers" not in doc
    else:
        assert out == ""
    assert m.layout.config.read_bytes() == OTHER_CONFIG
    assert sorted(p.name for p in m.layout.home.iterdir()) == ["hypaware-config.json"]  # no backup, no import


def test_with_force_a_config_written_meanwhile_is_backed_up_and_reported_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--force replaces an existing config: one that appeared after the plan too, but then with a backup, and the
    summary says `replaced` with that backup (it said `created`, or `created` with a backup)."""
    m = make_machine(tmp_path)
    _another_init_writes_between_plan_and_commit(monkeypatch, m, OTHER_CONFIG)
    code, out, err = headless(m, clients=["codex"], retention_days=365, no_daemon=True, no_backfill=True,
                              force=True)
    assert code == 0, err
    cfg = json.loads(out)["config"]
    assert cfg["action"] == "replaced" and cfg["backup"] is not None
    assert Path(cfg["backup"]).read_bytes() == OTHER_CONFIG
    assert json.loads(m.layout.config.read_text())["retention_days"] == 365


def test_the_wizard_step_backs_up_a_config_written_meanwhile_and_says_replaced(tmp_path: Path) -> None:
    """The wizard's Review is its confirmation: a config another `hyp init` wrote after the Review is backed up
    and replaced, and the outcome says so. A planned replace of a config removed meanwhile is `created`."""
    from hypaware_tui.core.inventory import build_inventory
    from hypaware_tui.core.plan import Choices, build_plan, gather_machine_state, write_config_step

    m = make_machine(tmp_path)
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    inventory = build_inventory(("claude", "codex"), env=m.env)
    plan = build_plan(inventory, Choices(clients=("codex",), retention_days=365), machine, now_us=now_us(),
                      force=True)
    assert plan.config.action == "create"
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_bytes(OTHER_CONFIG)
    outcome = write_config_step(plan, m.layout, now_us=plan.until_us, replace_existing=True)
    assert (outcome.status, outcome.action) == ("ok", "replaced")
    assert outcome.backup is not None and outcome.backup.read_bytes() == OTHER_CONFIG
    assert outcome.line(m.env) == f"written ~/.hyp/hypaware-config.json (backup {outcome.backup.name})"

    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    plan = build_plan(inventory, Choices(clients=("claude",), retention_days=30), machine, now_us=now_us(),
                      force=True)
    assert plan.config.action == "replace"
    m.layout.config.unlink()
    outcome = write_config_step(plan, m.layout, now_us=plan.until_us, replace_existing=True)
    assert (outcome.status, outcome.action, outcome.backup) == ("ok", "created", None)
    assert outcome.line(m.env) == "written ~/.hyp/hypaware-config.json"


def test_starting_capture_over_rows_older_than_the_configured_window_warns(tmp_path: Path) -> None:
    """A retention lowered by hand in the config (or rows that aged past it while capture was off), then
    `hyp init --yes` turning capture on: the window is the config's, so no "shorter than" warning, and the new
    daemon's first daily cleanup deleted the older rows without a word (retention audit). Said now, as a
    shorter window is; with capture left off nothing deletes them, and nothing is said."""
    m = make_machine(tmp_path)
    code, _, err = headless(m, retention_days=0, no_daemon=True)
    assert code == 0, err
    from hypaware_tui.core.plan import gather_machine_state

    data = json.loads(m.layout.config.read_text())
    data["retention_days"] = 7
    m.layout.config.write_text(json.dumps(data))
    machine = gather_machine_state(m.layout, dict(m.env), service_manager=m.service)
    older = machine.rows_older_than(7, now_us())
    assert older and older > 0
    code, out, err = headless(m, dry_run=True, force=True)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["retention_days"] == 7 and doc["daemon"]["action"] == "start", doc
    assert doc["warnings"] == [f"hyp's dataset holds rows older than 7 days (about {older:,}): they will be deleted "
                               "at the next daily cleanup."], doc["warnings"]
    code, out, err = headless(m, dry_run=True, force=True, no_daemon=True)
    assert code == 0 and json.loads(out)["warnings"] == [], out
