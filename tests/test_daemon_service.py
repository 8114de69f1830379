"""`hyp daemon install | uninstall` and the service-manager seam (daemon.md §8, §10; acceptance 13-16)."""

from __future__ import annotations

import json
import os
import plistlib
import sys
from pathlib import Path

import pytest
from test_daemon_support import REPO, Home

from hypaware_tui.cli import daemon as daemon_cli
from hypaware_tui.cli.app import main
from hypaware_tui.core.daemon import control, service
from hypaware_tui.core.daemon.service import (
    FakeServiceManager,
    LaunchdAgentManager,
    ServiceError,
    SystemdUserManager,
    ephemeral_reason,
    get_service_manager,
    render_launchd_plist,
    render_systemd_unit,
    unit_hyp_home,
    unit_spec,
)

REAL_CHECK = daemon_cli._check_python


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    h = Home(tmp_path)
    for k in list(h.env):
        monkeypatch.setenv(k, h.env[k])
    monkeypatch.delenv("HYP_TEST_SERVICE_MANAGER", raising=False)
    monkeypatch.setattr(control, "START_TIMEOUT_S", 0.3)
    # The suite's own interpreter may live in a temporary clone (CI checks out anywhere): treat exactly that
    # interpreter as durable, so the install tests do not depend on where the repo sits. Every other path is
    # judged as usual (acceptance 14 passes a temp-dir interpreter explicitly).
    real = service.ephemeral_reason
    monkeypatch.setattr(service, "ephemeral_reason",
                        lambda p, env=None: None if p == sys.executable else real(p, env))
    # Nor on whether this interpreter has hypaware_tui installed (the suite may run from a checkout through
    # PYTHONPATH, which install's check rightly ignores): the tests of the check put it back.
    monkeypatch.setattr(daemon_cli, "_check_python", lambda *a, **k: None)
    return h


@pytest.fixture
def fake(home: Home) -> FakeServiceManager:
    mgr = FakeServiceManager(home.home / ".config/systemd/user/hypaware.service", kind="systemd")
    service.set_service_manager_factory(lambda: mgr)
    yield mgr
    service.set_service_manager_factory(None)


def unit_command(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("ExecStart="))[len("ExecStart="):]


# --- acceptance 13 ------------------------------------------------------------------------------------------


def test_install_writes_unit_with_unresolved_interpreter_and_enables(home: Home, fake: FakeServiceManager,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "daemon", "install")
    assert code == 0, err
    text = fake.unit_path.read_text()
    # the exact interpreter path as given (a venv's python is a symlink: it must not be resolved)
    if Path(sys.executable).is_symlink():
        assert os.path.realpath(sys.executable) not in text
    assert unit_command(text) == f'"{sys.executable}" "-m" "hypaware_tui" "daemon" "run"'
    assert f'Environment="HYP_HOME={home.hyp}"' in text
    assert f'Environment="CLAUDE_CONFIG_DIR={home.claude}"' in text
    assert 'Environment="HYP_DAEMON_MODE=service"' in text
    assert f"StandardOutput=append:{home.layout.daemon_log}" in text
    assert "Restart=on-failure" in text and "RestartSec=10" in text and "WantedBy=default.target" in text
    assert fake.calls[:3] == ["write_unit", "reload", "enable"]
    assert "start" in fake.calls
    assert unit_hyp_home("systemd", text) == str(home.hyp)
    assert "wrote" in out


def test_install_with_manager_unavailable_writes_unit_only(home: Home, fake: FakeServiceManager,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake._available = False
    code, out, err = run_cli(capsys, "daemon", "install")
    assert code == 0, err
    assert fake.unit_path.is_file()
    assert "enable" not in fake.calls and "start" not in fake.calls and "reload" not in fake.calls
    assert ("systemd user services are not available here; unit written to "
            f"{fake.unit_path} but not enabled. Start capture with hyp daemon start.") in out


def _service_status(capsys: pytest.CaptureFixture[str]) -> tuple[str, dict]:
    code, out, err = run_cli(capsys, "daemon", "status")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("Service "))
    code, out, err = run_cli(capsys, "daemon", "status", "--json")
    return line[len("Service"):].strip(), json.loads(out)["service"]


def test_status_tells_a_written_unit_from_an_enabled_one(home: Home, fake: FakeServiceManager,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`hyp daemon status` said "Service installed" when install had written the unit but could not enable it
    (no user systemd: a container, WSL), so capture would not start at login as it implied."""
    unit = "~/.config/systemd/user/hypaware.service"
    assert _service_status(capsys)[0] == "not installed (hyp daemon install starts capture at login)"
    fake._available = False
    assert run_cli(capsys, "daemon", "install")[0] == 0
    line, doc = _service_status(capsys)
    assert line == (f"unit written, not enabled ({unit}): systemd user services are not available here; capture "
                    "does not start at login")
    assert (doc["installed"], doc["available"], doc["enabled"]) == (True, False, False)
    # the manager is there, but enabling failed: install exits 1, and status says so too
    fake._available = True
    fake.fail = {"enable": "Failed to enable unit: Access denied"}
    assert run_cli(capsys, "daemon", "install")[0] == 1
    line, doc = _service_status(capsys)
    assert line == f"unit written, not enabled ({unit}): hyp daemon install enables it; capture does not start at login"
    assert (doc["installed"], doc["available"], doc["enabled"]) == (True, True, False)
    fake.fail = {}
    assert run_cli(capsys, "daemon", "install")[0] == 0
    line, doc = _service_status(capsys)
    assert line == f"installed ({unit})" and doc["enabled"] is True


def test_install_turns_capture_on_and_warns_about_linger(home: Home, fake: FakeServiceManager,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    home.write_config(enabled=False)
    fake._linger = False
    code, out, _err = run_cli(capsys, "daemon", "install")
    assert code == 0
    assert json.loads(home.layout.config.read_text())["capture"]["enabled"] is True
    assert "capture stops when you log out; loginctl enable-linger keeps it running" in out


def test_install_without_config_fails(home: Home, fake: FakeServiceManager,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The dry run too (it printed a unit and exited 0, where install itself says to run hyp init)."""
    home.layout.config.unlink()
    for args in (("daemon", "install"), ("daemon", "install", "--dry-run")):
        code, out, err = run_cli(capsys, *args)
        assert (code, out, err) == (1, "", "hyp daemon install: not set up: run hyp init\n")
    assert not fake.unit_path.exists() and fake.calls == []


def _python_without_hyp(tmp_path: Path, own_path: str = "") -> Path:
    """An interpreter with hyp's dependencies but not hyp itself (as a venv with the deps installed): this one
    without its site-packages, finding the dependencies through a path of its own (plus `own_path`)."""
    sites = os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
    py = tmp_path / "venv-deps/bin/python"
    py.parent.mkdir(parents=True)
    py.write_text(f'#!/bin/sh\nPYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{own_path}{os.pathsep}{sites}" '
                  f'exec "{sys.executable}" -S "$@"\n')
    py.chmod(0o755)
    return py


def test_install_checks_the_interpreter_as_the_service_runs_it(home: Home, fake: FakeServiceManager,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`<python> -m hypaware_tui --version` ran here: with this shell's PYTHONPATH, in this directory (a checkout,
    which `-m` looks in first), and not at all for the running interpreter. The service has neither, so install
    wrote a unit that failed with "No module named hypaware_tui" and said it had succeeded. The check now runs
    as the service will (the user's home, no PYTHON* variables) and says why it works here."""
    monkeypatch.setattr(daemon_cli, "_check_python", REAL_CHECK)
    monkeypatch.setattr(service, "ephemeral_reason", lambda *a, **k: None)
    py = _python_without_hyp(tmp_path)
    point = ". Point --python at an interpreter where hypaware_tui is installed.\n"
    # (the interpreter names itself with its path normalized: pytest run as `../venv/bin/python` has a `..` in
    # sys.executable, which the child it execs has not)
    failed = (f"hyp daemon install: {py} -m hypaware_tui --version failed (exit 1) {os.path.normpath(sys.executable)}: "
              "No module named hypaware_tui")
    # PYTHONPATH names the checkout (the fixture's environment)
    monkeypatch.chdir(home.base)
    assert os.environ["PYTHONPATH"] == str(REPO)
    for args in (("--python", str(py)), ("--python", str(py), "--dry-run")):
        code, out, err = run_cli(capsys, "daemon", "install", *args)
        assert (code, out) == (1, ""), err
        assert err == f"{failed} (it works here only because of PYTHONPATH, which the service does not have){point}"
    # the running interpreter is checked too (`PYTHONPATH=<checkout> python -m hypaware_tui daemon install`)
    monkeypatch.setattr(sys, "executable", str(py))
    code, out, err = run_cli(capsys, "daemon", "install")
    assert (code, out) == (1, "") and "(it works here only because of PYTHONPATH" in err
    # run from the checkout, without PYTHONPATH
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.chdir(REPO)
    code, out, err = run_cli(capsys, "daemon", "install", "--python", str(py))
    assert (code, out) == (1, "")
    assert err == f"{failed} (it works here only in the current directory, {REPO}; the service runs in ~){point}"
    assert not fake.unit_path.exists() and fake.calls == []
    # an interpreter that has hyp of its own passes, from anywhere
    monkeypatch.chdir(home.base)
    good = _python_without_hyp(tmp_path / "good", own_path=str(REPO))
    code, out, err = run_cli(capsys, "daemon", "install", "--python", str(good))
    assert code == 0, err
    assert unit_command(fake.unit_path.read_text()).startswith(f'"{good}" "-m"')


def test_install_says_why_a_python_path_is_no_interpreter(home: Home, fake: FakeServiceManager, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`--python /nowhere` said "cannot run /nowhere: [Errno 2] No such file or directory: '/nowhere'". A path
    that is not there, a folder or not executable is a bad value (exit 2, as a name not on PATH); one that does
    not run, or runs and is no Python, is named with the reason (exit 1)."""
    monkeypatch.setattr(daemon_cli, "_check_python", REAL_CHECK)
    monkeypatch.setattr(service, "ephemeral_reason", lambda *a, **k: None)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    dangling = tmp_path / "python-link"
    dangling.symlink_to(tmp_path / "gone")
    way_out = "; give the path of a Python interpreter, or leave --python out"
    for path, why in (("/nowhere", "/nowhere does not exist"),
                      (str(tmp_path), f"{tmp_path} is a directory, not a Python interpreter"),
                      (str(text), f"{text} is not executable, so not a Python interpreter"),
                      (str(dangling), f"{dangling} is a link to {tmp_path / 'gone'}, which does not exist")):
        code, out, err = run_cli(capsys, "daemon", "install", "--python", path)
        assert (code, out) == (2, "")
        assert err.splitlines()[:2] == [f"hyp daemon install: invalid value for --python: {why}{way_out}",
                                        "Usage: hyp daemon install [OPTIONS]"]
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01not a program\n")
    shebang = tmp_path / "script"
    shebang.write_text("#!/nonexistent/python3\n")
    silent = tmp_path / "true"
    silent.write_text("#!/bin/sh\nexit 0\n")
    point = ". Point --python at an interpreter where hypaware_tui is installed.\n"
    for path, why in (
            (garbage, f"{garbage} could not be run (exec format error), so it is not a Python interpreter this "
                      "system can use"),
            (shebang, f"{shebang} could not be run: the program its first line (#!) names does not exist"),
            (silent, f"{silent} -m hypaware_tui --version printed nothing, so {silent} is not a Python "
                     "interpreter")):
        path.chmod(0o755)
        code, out, err = run_cli(capsys, "daemon", "install", "--python", str(path))
        assert (code, out, err) == (1, "", f"hyp daemon install: {why}{point}")
    assert not fake.unit_path.exists() and fake.calls == []


def test_install_finds_a_bare_python_name_on_path(home: Home, fake: FakeServiceManager, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`--python python3` became the current directory's `python3` (`ExecStart="/python3"` from /). A name is
    looked up on PATH, and the path found is kept as it is (a venv's python is a symlink); none: exit 2."""
    monkeypatch.setattr(service, "ephemeral_reason", lambda *a, **k: None)
    bindir = tmp_path / "venv/bin"
    bindir.mkdir(parents=True)
    (bindir / "python3").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{tmp_path / 'empty'}{os.pathsep}{bindir}")
    monkeypatch.chdir("/")
    code, out, err = run_cli(capsys, "daemon", "install", "--dry-run", "--python", "python3")
    assert code == 0, err
    exec_start = next(line for line in out.splitlines() if line.startswith("ExecStart="))
    assert exec_start == f'ExecStart="{bindir}/python3" "-m" "hypaware_tui" "daemon" "run"'
    code, out, err = run_cli(capsys, "daemon", "install", "--python", "python9")
    assert (code, out) == (2, "")
    assert err.splitlines()[:2] == [
        "hyp daemon install: invalid value for --python: python9 was not found on PATH; give the interpreter's path",
        "Usage: hyp daemon install [OPTIONS]"]
    assert not fake.unit_path.exists() and fake.calls == []


def test_reinstall_names_previous_hyp_home(home: Home, fake: FakeServiceManager,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    other = unit_spec(sys.executable, "/elsewhere/hyp", "/elsewhere/hyp/logs/daemon.log", {})
    fake.unit_path.parent.mkdir(parents=True)
    fake.unit_path.write_text(render_systemd_unit(other))
    code, out, _ = run_cli(capsys, "daemon", "install")
    assert code == 0
    assert "HYP_HOME=/elsewhere/hyp" in out
    assert unit_hyp_home("systemd", fake.unit_path.read_text()) == str(home.hyp)


def test_status_warns_about_a_unit_for_a_moved_hyp_home(home: Home, fake: FakeServiceManager,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """HYP_HOME moved after `hyp daemon install` (HOME renamed): the unit still runs hyp with the old HYP_HOME,
    and `hyp daemon status` and `hyp status` said only "unit written, not enabled"."""
    fake._available = False
    assert run_cli(capsys, "daemon", "install")[0] == 0
    moved = home.base / "moved-hyp"
    home.hyp.rename(moved)
    monkeypatch.setenv("HYP_HOME", str(moved))
    warning = (f"the installed service unit runs hyp with HYP_HOME={home.hyp}, not this one; run hyp daemon "
               "install to point it here")
    code, out, err = run_cli(capsys, "daemon", "status")
    assert code == 0, err
    assert f"Warning         {warning}" in out.splitlines()
    line, doc = _service_status(capsys)
    assert doc["other_hyp_home"] == str(home.hyp) and doc["warning"] == warning
    code, out, err = run_cli(capsys, "status")
    assert f"          warning: {warning}" in out.splitlines(), out
    code, out, err = run_cli(capsys, "status", "--json")
    assert json.loads(out)["daemon"]["service_warning"] == warning
    # pointed here again: no warning
    assert run_cli(capsys, "daemon", "install")[0] == 0
    assert "Warning" not in run_cli(capsys, "daemon", "status")[1]
    assert warning not in run_cli(capsys, "status")[1]


# --- acceptance 14 ------------------------------------------------------------------------------------------


def test_install_refuses_ephemeral_interpreter(home: Home, fake: FakeServiceManager, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(p.name for p in home.hyp.iterdir())
    code, out, err = run_cli(capsys, "daemon", "install", "--python", str(tmp_path / "venv/bin/python"))
    assert code == 1
    assert ("this Python will disappear; install hypaware_tui with pipx install or uv tool install, then run "
            "hyp daemon install") in err
    assert not fake.unit_path.exists() and fake.calls == []
    assert sorted(p.name for p in home.hyp.iterdir()) == before


@pytest.mark.parametrize("path", [
    "/tmp/x/bin/python",
    "/home/ada/.cache/uv/archive-v0/abc123/bin/python",
    "/home/ada/.local/pipx/.cache/9f8e/bin/python",
])
def test_ephemeral_paths(path: str) -> None:
    assert ephemeral_reason(path, {}) is not None


@pytest.mark.parametrize(("path", "env"), [
    ("/Users/ada/Library/Caches/pipx/0a1b2c3d/bin/python", {"HOME": "/Users/ada"}),  # macOS default
    ("/home/ada/.pipx/.cache/0a1b2c3d/bin/python", {"PIPX_HOME": "/home/ada/.pipx"}),
    ("/srv/ada/pipx-home/.cache/0a1b2c3d/bin/python", {"PIPX_HOME": "/srv/ada/pipx-home"}),
    ("/home/ada/.local/pipx/.cache/0a1b2c3d/bin/python", {"HOME": "/home/ada"}),  # before pipx 1.3
    ("/home/ada/.cache/pipx/0a1b2c3d/bin/python", {"HOME": "/home/ada"}),
    ("/data/cache/pipx/0a1b2c3d/bin/python", {"XDG_CACHE_HOME": "/data/cache"}),
])
def test_pipx_run_caches_are_ephemeral(path: str, env: dict[str, str]) -> None:
    """`pipx run`'s environments were judged durable in pipx's default cache on macOS and under a PIPX_HOME:
    the code read PIPX_CACHE_DIR, which pipx does not define."""
    assert ephemeral_reason(path, env) == "it is inside a tool runner's cache"
    if "PIPX_HOME" in env:  # (its venvs stay)
        assert ephemeral_reason(path.replace("/.cache/0a1b2c3d/", "/venvs/hypaware-tui/"), env) is None


@pytest.mark.parametrize("path", [
    "/home/ada/.local/share/uv/tools/hypaware-tui/bin/python",
    "/home/ada/.local/pipx/venvs/hypaware-tui/bin/python",
    "/usr/bin/python3",
])
def test_durable_paths(path: str) -> None:
    assert ephemeral_reason(path, {}) is None


# --- acceptance 15 ------------------------------------------------------------------------------------------


def test_dry_runs_write_nothing_and_call_no_manager(home: Home, fake: FakeServiceManager,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(str(p) for p in home.base.rglob("*"))
    code, out, _ = run_cli(capsys, "daemon", "install", "--dry-run")
    assert code == 0
    assert str(fake.unit_path) in out and "ExecStart=" in out and "systemctl --user daemon-reload" in out
    code2, out2, _ = run_cli(capsys, "daemon", "uninstall", "--dry-run")
    assert (code2, out2.strip()) == (0, "not installed; nothing would be removed")
    assert fake.calls == []
    assert sorted(str(p) for p in home.base.rglob("*")) == before
    # installed: the dry run shows the unit that would go (path, text) and the manager commands
    assert run_cli(capsys, "daemon", "install")[0] == 0
    fake.calls.clear()
    unit = fake.unit_path.read_text()
    code3, out3, _ = run_cli(capsys, "daemon", "uninstall", "--dry-run")
    assert code3 == 0 and str(fake.unit_path) in out3 and unit.strip() in out3
    assert "systemctl --user disable hypaware.service" in out3 and out3.rstrip().endswith("nothing was written.")
    assert fake.calls == [] and fake.unit_path.read_text() == unit


def test_install_writes_the_client_roots_made_absolute(home: Home, fake: FakeServiceManager,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`CLAUDE_CONFIG_DIR=claude` and `CODEX_HOME=~/codex` went into the unit as they were: the service runs
    elsewhere (a relative root names another folder) and systemd does not expand `~`. The unit gets what the
    importers resolve here: each entry of a list, `~` expanded, made absolute."""
    work = home.base / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", " claude , ~/more,, ./claude/")
    monkeypatch.setenv("CODEX_HOME", "~/codex")
    code, out, err = run_cli(capsys, "daemon", "install", "--dry-run")
    assert code == 0, err
    assert f'Environment="CLAUDE_CONFIG_DIR={work}/claude,{home.home}/more"' in out.splitlines(), out
    assert f'Environment="CODEX_HOME={home.home}/codex"' in out.splitlines(), out
    assert run_cli(capsys, "daemon", "install")[0] == 0
    text = fake.unit_path.read_text()
    assert f'Environment="CLAUDE_CONFIG_DIR={work}/claude,{home.home}/more"' in text.splitlines()
    assert f'Environment="CODEX_HOME={home.home}/codex"' in text.splitlines()


def test_uninstall(home: Home, fake: FakeServiceManager, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "daemon", "uninstall")
    assert (code, out.strip()) == (0, "not installed")
    assert run_cli(capsys, "daemon", "install")[0] == 0
    fake.calls.clear()
    code, out, _ = run_cli(capsys, "daemon", "uninstall")
    assert code == 0
    assert fake.calls == ["stop", "disable", "remove", "reload"]
    assert not fake.unit_path.exists()
    assert home.layout.config.exists()


def test_install_unsupported_platform(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    service.set_service_manager_factory(lambda: None)
    try:
        code, _out, err = run_cli(capsys, "daemon", "install")
    finally:
        service.set_service_manager_factory(None)
    assert code == 1
    assert "hyp daemon install is not supported on" in err and "use hyp daemon start" in err


# --- acceptance 16 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SystemdUserManager, LaunchdAgentManager])
def test_real_backends_refuse_under_pytest(cls: type, tmp_path: Path) -> None:
    calls: list[list[str]] = []
    mgr = cls(unit_path=tmp_path / "unit", runner=lambda argv: calls.append(list(argv)))
    for name in ("available", "installed", "read_unit", "reload", "enable", "start", "stop", "restart",
                 "disable", "remove", "is_active"):
        with pytest.raises(ServiceError, match="under pytest"):
            getattr(mgr, name)()
    with pytest.raises(ServiceError):
        mgr.write_unit("x")
    if cls is SystemdUserManager:
        with pytest.raises(ServiceError):
            mgr.linger_enabled()
    assert calls == [] and not (tmp_path / "unit").exists()


def test_factory_picks_platform_and_test_fake(tmp_path: Path) -> None:
    assert isinstance(get_service_manager({}, "linux"), SystemdUserManager)
    assert isinstance(get_service_manager({}, "darwin"), LaunchdAgentManager)
    assert get_service_manager({}, "win32") is None
    state = tmp_path / "fake.json"
    state.write_text(json.dumps({"unit_path": str(tmp_path / "u.service"), "available": False}))
    mgr = get_service_manager({"HYP_TEST_SERVICE_MANAGER": str(state)}, "linux")
    assert isinstance(mgr, FakeServiceManager) and not mgr.available()


def test_launchd_plist_shape(tmp_path: Path) -> None:
    spec = unit_spec("/opt/venv/bin/python", "/Users/ada/.hyp", "/Users/ada/.hyp/logs/daemon.log",
                     {"CODEX_HOME": "/Users/ada/.codex", "UNRELATED": "x"})
    doc = plistlib.loads(render_launchd_plist(spec).encode())
    assert doc["Label"] == "dev.hypaware.daemon"
    assert doc["ProgramArguments"] == ["/opt/venv/bin/python", "-m", "hypaware_tui", "daemon", "run"]
    assert doc["EnvironmentVariables"] == {"HYP_HOME": "/Users/ada/.hyp", "HYP_DAEMON_MODE": "service",
                                           "CODEX_HOME": "/Users/ada/.codex"}
    assert doc["StandardOutPath"] == doc["StandardErrorPath"] == "/Users/ada/.hyp/logs/daemon.log"
    assert doc["RunAtLoad"] is True and doc["KeepAlive"] == {"SuccessfulExit": False}
    assert unit_hyp_home("launchd", render_launchd_plist(spec)) == "/Users/ada/.hyp"


def test_systemd_quoting_of_odd_paths() -> None:
    spec = unit_spec('/opt/my "py"/100%/python', "/home/a b/.hyp", "/home/a b/.hyp/logs/daemon.log", {})
    text = render_systemd_unit(spec)
    assert unit_command(text).startswith('"/opt/my \\"py\\"/100%%/python" "-m"')
    assert unit_hyp_home("systemd", text) == "/home/a b/.hyp"


def test_systemd_quoting_of_dollars_tabs_and_line_separators() -> None:
    """ExecStart= expands `$NAME` (a literal `$` is `$$`); the HYP_HOME read back from a unit is the one written,
    whatever it holds (a tab, U+2028, which str.splitlines took for a line end, backslashes and quotes)."""
    home = '/home/a\tb\u2028c\\"d%/.hyp'
    spec = unit_spec("/opt/$HOME/python", home, home + "/logs/daemon.log", {})
    text = render_systemd_unit(spec)
    assert unit_command(text).startswith('"/opt/$$HOME/python" "-m"')
    assert unit_hyp_home("systemd", text) == home


@pytest.mark.parametrize("kind", ["systemd", "launchd"])
def test_install_refuses_a_path_the_unit_cannot_hold(home: Home, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """A line break in HYP_HOME went raw into `Environment="HYP_HOME=…"` and `StandardOutput=append:…`, which
    systemd reads to the end of the line (another HYP_HOME, another log file, a broken unit). systemd cannot
    name that log file at all; launchd cannot hold a carriage return or an escape. Install says so and writes
    nothing, the dry run too."""
    mgr = FakeServiceManager(home.home / f"unit.{kind}", kind=kind)
    service.set_service_manager_factory(lambda: mgr)
    try:
        bad = "\n" if kind == "systemd" else "\r"
        odd = home.base / f"hyp{bad}X"
        odd.mkdir()
        (odd / "hypaware-config.json").write_text(home.layout.config.read_text())
        monkeypatch.setenv("HYP_HOME", str(odd))
        shown = str(odd).replace(bad, "\\n" if kind == "systemd" else "\\r")
        why = ("contains a line break, and a systemd unit names the daemon's log file in it verbatim on one line "
               "(StandardOutput=append:)" if kind == "systemd" else "contains a carriage return, which a launchd "
               "agent cannot hold")
        unit = "systemd unit" if kind == "systemd" else "launchd agent"
        for args in (("daemon", "install", "--dry-run"), ("daemon", "install")):
            code, out, err = run_cli(capsys, *args)
            assert (code, out) == (1, ""), out
            assert err == (f"hyp daemon install: cannot write the {unit}: HYP_HOME {shown} {why}. Use a "
                           "path without it, or start capture with hyp daemon start (it needs no unit)\n")
        assert mgr.calls == [] and not mgr.unit_path.exists()
        # a control character in a client root too; a line break there is fine in a plist
        monkeypatch.setenv("HYP_HOME", str(home.hyp))
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/x/a\x1bb")
        code, _, err = run_cli(capsys, "daemon", "install", "--dry-run")
        assert code == 1 and (f"CLAUDE_CONFIG_DIR /x/a\\x1bb contains the control character \\x1b, which a "
                              f"{unit} cannot hold") in err, err
        if kind == "launchd":
            monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/x/a\nb")
            assert run_cli(capsys, "daemon", "install")[0] == 0
            doc = plistlib.loads(mgr.unit_path.read_bytes())
            assert doc["EnvironmentVariables"]["CLAUDE_CONFIG_DIR"] == "/x/a\nb"
    finally:
        service.set_service_manager_factory(None)
