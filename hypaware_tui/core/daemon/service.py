"""Service managers for `hyp daemon install|uninstall` (daemon.md §8, §10).

Every call to systemd or launchd goes through one interface, `ServiceManager`, and one factory,
`get_service_manager()`. Tests inject `FakeServiceManager` (which records calls); the real backends refuse to
do anything while `PYTEST_CURRENT_TEST` is set, so a test can never start or stop the developer's real
service.

The unit text is rendered by pure functions (`render_unit`), so `--dry-run` shows exactly what would be
written without touching any manager.
"""

from __future__ import annotations

import json
import os
import plistlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hypaware_tui.core import prog
from hypaware_tui.core.paths import atomic_write_bytes, user_home

SYSTEMD_UNIT_NAME = "hypaware.service"
LAUNCHD_LABEL = "dev.hypaware.daemon"
MODULE_ARGS = ("-m", "hypaware_tui", "daemon", "run")
PASSED_ENV = ("CLAUDE_CONFIG_DIR", "CODEX_HOME")
TEST_MANAGER_ENV = "HYP_TEST_SERVICE_MANAGER"  # path of a FakeServiceManager state file (subprocess tests)


class ServiceError(RuntimeError):
    """A service-manager command failed; the message names the command and its output."""


@dataclass(frozen=True)
class UnitSpec:
    """What a unit runs: `<python> -m hypaware_tui daemon run` with an explicit HYP_HOME."""

    python: str
    hyp_home: str
    log_path: str
    env: Mapping[str, str] = field(default_factory=dict)  # CLAUDE_CONFIG_DIR / CODEX_HOME when set

    @property
    def argv(self) -> list[str]:
        return [self.python, *MODULE_ARGS]

    @property
    def environment(self) -> dict[str, str]:
        out = {"HYP_HOME": self.hyp_home, "HYP_DAEMON_MODE": "service"}
        out.update({k: v for k, v in self.env.items() if v})
        return out


def unit_spec(python: str, hyp_home: str | os.PathLike[str], log_path: str | os.PathLike[str],
              env: Mapping[str, str]) -> UnitSpec:
    """`CLAUDE_CONFIG_DIR` / `CODEX_HOME` when set, made absolute as the importers resolve them from here
    (daemon.md §8): the service runs in another directory, and neither systemd nor launchd expands `~`."""
    from hypaware_tui.core.daemon.control import client_root_env

    roots = client_root_env(env)
    extra = {k: roots[k] for k in PASSED_ENV if k in roots}
    return UnitSpec(python=python, hyp_home=os.fspath(hyp_home), log_path=os.fspath(log_path), env=extra)


# --------------------------------------------------------------------------------------------- rendering

# What a unit cannot hold. systemd: a line break or another control character (tab aside) in a value. The unit
# names the daemon's log file verbatim to the end of its line (`StandardOutput=append:` takes no quotes or
# escapes), and older systemd versions ignore an `Environment=` value with any control character but tab (a
# daemon started without its HYP_HOME, or watching the default roots instead of CLAUDE_CONFIG_DIR's). launchd:
# the C0 control characters but tab and line feed, which XML 1.0 cannot write at all (plistlib refuses them,
# and silently turns a carriage return into a line feed, another path).
_SYSTEMD_UNHOLDABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_LAUNCHD_UNHOLDABLE = re.compile("[\x00-\x08\x0b-\x1f]")


def _no_unit() -> str:
    return f"start capture with {prog.NAME} daemon start (it needs no unit)"


def _shown(value: str) -> str:
    """A value for a message: undecodable bytes as `\xff`, control characters as escapes (`\n`)."""
    from hypaware_tui.core.fmt import printable

    return printable(value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def unit_problem(kind: str, spec: UnitSpec) -> str | None:
    """Why `spec` cannot be written as a `kind` unit, or None. The words name the value and what to do."""
    unit, unholdable = (("a systemd unit", _SYSTEMD_UNHOLDABLE) if kind == "systemd"
                        else ("a launchd agent", _LAUNCHD_UNHOLDABLE))
    values = [("the interpreter path", spec.python), ("HYP_HOME", spec.hyp_home),
              *((k, v) for k, v in spec.env.items())]
    for name, value in values:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return (f"{name} {_shown(value)} is not valid UTF-8, and {unit} is UTF-8 text. Use a path that is, or "
                    f"{_no_unit()}")
        m = unholdable.search(value)
        if m is None:
            continue
        what = {"\n": "a line break", "\r": "a carriage return"}.get(m.group()) or \
            f"the control character {_shown(m.group())}"
        why = (", and a systemd unit names the daemon's log file in it verbatim on one line "
               "(StandardOutput=append:)" if name == "HYP_HOME" and kind == "systemd" and m.group() in "\r\n"
               else f", which {unit} cannot hold")
        return f"{name} {_shown(value)} contains {what}{why}. Use a path without it, or {_no_unit()}"
    return None


def _systemd_quote(value: str, *, command: bool = False) -> str:
    """A double-quoted systemd word: backslash and quote escaped, `%` doubled (specifier escape); in a
    `command` line `$` doubled too (ExecStart= expands `$NAME`; `$$` is a literal `$`). The value holds no
    control character but tab (`unit_problem`)."""
    text = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return '"' + (text.replace("$", "$$") if command else text) + '"'


def _systemd_unquote(word: str) -> str:
    """`_systemd_quote`'s value back (reading an installed unit): `%%`, then the backslash escapes."""
    word = word.replace("%%", "%")
    if not (len(word) >= 2 and word.startswith('"') and word.endswith('"')):
        return word
    return re.sub(r"\\(.)", r"\1", word[1:-1])


def render_systemd_unit(spec: UnitSpec) -> str:
    problem = unit_problem("systemd", spec)
    if problem is not None:
        raise ValueError(problem)
    exec_start = " ".join(_systemd_quote(a, command=True) for a in spec.argv)
    env_lines = "\n".join(f"Environment={_systemd_quote(f'{k}={v}')}" for k, v in spec.environment.items())
    log = spec.log_path.replace("%", "%%")  # (taken verbatim to the end of the line: no quotes, no escapes)
    return (
        "# Written by hyp daemon install. Remove with hyp daemon uninstall.\n"
        "[Unit]\n"
        "Description=hyp capture daemon (keeps the Claude Code and Codex history dataset up to date)\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={exec_start}\n"
        f"{env_lines}\n"
        f"StandardOutput=append:{log}\n"
        f"StandardError=append:{log}\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def render_launchd_plist(spec: UnitSpec) -> str:
    problem = unit_problem("launchd", spec)
    if problem is not None:
        raise ValueError(problem)
    doc = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": spec.argv,
        "EnvironmentVariables": spec.environment,
        "StandardOutPath": spec.log_path,
        "StandardErrorPath": spec.log_path,
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "ProcessType": "Background",
    }
    return plistlib.dumps(doc, sort_keys=False).decode()


def render_unit(kind: str, spec: UnitSpec) -> str:
    if kind == "systemd":
        return render_systemd_unit(spec)
    if kind == "launchd":
        return render_launchd_plist(spec)
    raise ValueError(f"unknown service manager kind {kind!r}")


def unit_hyp_home(kind: str, text: str) -> str | None:
    """The HYP_HOME an installed unit names (to say so when a reinstall points elsewhere)."""
    if kind == "launchd":
        try:
            doc = plistlib.loads(text.encode())
        except Exception:
            return None
        env = doc.get("EnvironmentVariables") if isinstance(doc, dict) else None
        value = env.get("HYP_HOME") if isinstance(env, dict) else None
        return value if isinstance(value, str) else None
    for line in text.split("\n"):  # (systemd's lines: not str.splitlines, which also splits at U+2028 and more)
        line = line.strip()
        if line.startswith("Environment="):
            value = _systemd_unquote(line[len("Environment="):].strip())
            if value.startswith("HYP_HOME="):
                return value[len("HYP_HOME="):]
    return None


def _same_path(a: str, b: str) -> bool:
    if os.path.normpath(a) == os.path.normpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # (one of them is gone: a HYP_HOME moved or renamed since the install)
        return False


def unit_other_home(manager: ServiceManager | None, home: str | os.PathLike[str]) -> str | None:
    """The HYP_HOME the installed unit runs hyp with, when it is not `home` (the folder was moved or renamed
    since `hyp daemon install`, or the unit was installed from another HYP_HOME); None when no unit is
    installed, it names `home`, or it cannot be read. Read-only: it reads the unit file, calls no manager."""
    if manager is None:
        return None
    try:
        text = manager.read_unit()
    except Exception:  # noqa: BLE001 - a manager that refuses (the real ones under pytest) tells nothing
        return None
    other = unit_hyp_home(manager.kind, text) if text is not None else None
    if not other or _same_path(other, os.fspath(home)):
        return None
    return other


def other_home_warning(other: str, prog: str = "hyp") -> str:
    """What `hyp status`, `hyp daemon status|start` and the wizard say about a unit for another HYP_HOME."""
    return (f"the installed service unit runs hyp with HYP_HOME={_shown(other)}, not this one; run {prog} "
            "daemon install to point it here")


def default_unit_path(kind: str, home: str | os.PathLike[str] | None = None) -> Path:
    base = Path(home) if home is not None else Path(user_home())
    if kind == "systemd":
        return base / ".config" / "systemd" / "user" / SYSTEMD_UNIT_NAME
    return base / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def manager_commands(kind: str, action: str, unit_path: Path | str, uid: int | None = None) -> list[str]:
    """The commands `install` / `uninstall` run, as text (for `--dry-run`)."""
    if kind == "systemd":
        sc = "systemctl --user"
        if action == "install":
            return [f"{sc} daemon-reload", f"{sc} enable {SYSTEMD_UNIT_NAME}", f"{sc} start {SYSTEMD_UNIT_NAME}"]
        return [f"{sc} stop {SYSTEMD_UNIT_NAME}", f"{sc} disable {SYSTEMD_UNIT_NAME}", f"rm {unit_path}",
                f"{sc} daemon-reload"]
    uid = os.getuid() if uid is None and hasattr(os, "getuid") else (uid or 0)
    target = f"gui/{uid}/{LAUNCHD_LABEL}"
    if action == "install":
        return [f"launchctl bootout {target}  (if loaded; then wait until it is gone)",
                f"launchctl bootstrap gui/{uid} {unit_path}"]
    return [f"launchctl bootout {target}", f"rm {unit_path}"]


# --------------------------------------------------------------------------------------------- interface


class ServiceManager(ABC):
    """One user service for the capture daemon. All methods may raise ServiceError."""

    kind: str  # "systemd" | "launchd"
    unit_path: Path

    @abstractmethod
    def available(self) -> bool:
        """Whether the manager can be used here (a user systemd instance; launchctl)."""

    def installed(self) -> bool:
        return self.unit_path.is_file()

    def read_unit(self) -> str | None:
        try:
            return self.unit_path.read_text(encoding="utf-8")
        except OSError:
            return None

    def write_unit(self, text: str) -> None:
        atomic_write_bytes(self.unit_path, text.encode("utf-8"), mode=0o644)

    @abstractmethod
    def reload(self) -> None:
        """Make the manager re-read unit files (systemd daemon-reload; nothing for launchd)."""

    @abstractmethod
    def enable(self) -> None:
        """Start at login (systemd enable; launchd: unload if loaded, wait, load)."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def restart(self) -> None: ...

    @abstractmethod
    def disable(self) -> None: ...

    def remove(self) -> None:
        try:
            self.unit_path.unlink()
        except FileNotFoundError:
            pass

    @abstractmethod
    def is_active(self) -> bool:
        """Whether the service's process is running (as the manager sees it)."""

    def is_enabled(self) -> bool | None:
        """Whether the unit is enabled (starts at login; launchd: loaded), None when unknown. A written unit is
        not always an enabled one: the manager may be unavailable, or enabling it may have failed."""
        return None

    def linger_enabled(self) -> bool | None:
        """systemd only: whether the user's services keep running after logout (None: unknown / n/a)."""
        return None


# --------------------------------------------------------------------------------------------- real backends

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _refuse_under_pytest(what: str) -> None:
    if os.environ.get("PYTEST_CURRENT_TEST"):
        raise ServiceError(
            f"refusing to use the real {what} under pytest; inject a FakeServiceManager "
            "(hypaware_tui.core.daemon.service.set_service_manager_factory)"
        )


def _default_runner(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


class _RealBackend(ServiceManager):
    label = "service manager"

    def __init__(self, unit_path: Path | None = None, runner: Runner | None = None) -> None:
        self.unit_path = unit_path or default_unit_path(self.kind)
        self._runner = runner or _default_runner

    def _guard(self) -> None:
        _refuse_under_pytest(self.label)

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self._guard()
        try:
            proc = self._runner(argv)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServiceError(f"{' '.join(argv)} failed: {exc}") from exc
        if check and proc.returncode != 0:
            out = (proc.stderr or proc.stdout or "").strip()
            raise ServiceError(f"{' '.join(argv)} failed (exit {proc.returncode}){': ' + out if out else ''}")
        return proc

    # every inherited method refuses under pytest too
    def installed(self) -> bool:
        self._guard()
        return super().installed()

    def read_unit(self) -> str | None:
        self._guard()
        return super().read_unit()

    def write_unit(self, text: str) -> None:
        self._guard()
        super().write_unit(text)

    def remove(self) -> None:
        self._guard()
        super().remove()


class SystemdUserManager(_RealBackend):
    kind = "systemd"
    label = "systemd user manager"

    def _sc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run("systemctl", "--user", *args, check=check)

    def available(self) -> bool:
        self._guard()
        if shutil.which("systemctl") is None:
            return False
        try:
            proc = self._sc("show-environment", check=False)
        except ServiceError:
            return False
        return proc.returncode == 0

    def reload(self) -> None:
        self._sc("daemon-reload")

    def enable(self) -> None:
        self._sc("enable", SYSTEMD_UNIT_NAME)

    def start(self) -> None:
        self._sc("start", SYSTEMD_UNIT_NAME)

    def stop(self) -> None:
        self._sc("stop", SYSTEMD_UNIT_NAME)

    def restart(self) -> None:
        self._sc("restart", SYSTEMD_UNIT_NAME)

    def disable(self) -> None:
        self._sc("disable", SYSTEMD_UNIT_NAME, check=False)

    def is_active(self) -> bool:
        proc = self._sc("is-active", "--quiet", SYSTEMD_UNIT_NAME, check=False)
        return proc.returncode == 0

    def is_enabled(self) -> bool | None:
        proc = self._sc("is-enabled", "--quiet", SYSTEMD_UNIT_NAME, check=False)
        return proc.returncode == 0

    def linger_enabled(self) -> bool | None:
        self._guard()
        user = os.environ.get("USER") or os.environ.get("LOGNAME")
        if user and Path("/var/lib/systemd/linger", user).exists():
            return True
        if shutil.which("loginctl") is None:
            return None
        try:
            proc = self._run("loginctl", "show-user", str(os.getuid()), "-p", "Linger", check=False)
        except ServiceError:
            return None
        out = (proc.stdout or "").strip()
        if out.startswith("Linger="):
            return out.endswith("yes")
        return None


class LaunchdAgentManager(_RealBackend):
    kind = "launchd"
    label = "launchd agent manager"
    UNLOAD_WAIT_S = 10.0
    BOOTSTRAP_RETRIES = 3

    @property
    def _domain(self) -> str:
        return f"gui/{os.getuid()}"

    @property
    def _target(self) -> str:
        return f"{self._domain}/{LAUNCHD_LABEL}"

    def available(self) -> bool:
        self._guard()
        return sys.platform == "darwin" and shutil.which("launchctl") is not None

    def _loaded(self) -> bool:
        return self._run("launchctl", "print", self._target, check=False).returncode == 0

    def reload(self) -> None:
        self._guard()  # launchd reads the plist at bootstrap time

    def enable(self) -> None:
        if self._loaded():
            self._run("launchctl", "bootout", self._target, check=False)
            deadline = time.monotonic() + self.UNLOAD_WAIT_S
            while self._loaded():
                if time.monotonic() > deadline:
                    raise ServiceError(f"{LAUNCHD_LABEL} did not unload within {self.UNLOAD_WAIT_S:g} s")
                time.sleep(0.2)
        last: ServiceError | None = None
        for attempt in range(self.BOOTSTRAP_RETRIES):
            try:
                self._run("launchctl", "bootstrap", self._domain, str(self.unit_path))
                return
            except ServiceError as exc:  # "Bootstrap failed: 5: Input/output error" is transient
                last = exc
                time.sleep(0.5 * (attempt + 1))
        assert last is not None
        raise last

    def start(self) -> None:
        if not self._loaded():
            self.enable()
        else:
            self._run("launchctl", "kickstart", self._target)

    def stop(self) -> None:
        self._run("launchctl", "kill", "SIGTERM", self._target, check=False)

    def restart(self) -> None:
        if not self._loaded():
            self.enable()
        else:
            self._run("launchctl", "kickstart", "-k", self._target)

    def disable(self) -> None:
        self._run("launchctl", "bootout", self._target, check=False)

    def is_active(self) -> bool:
        proc = self._run("launchctl", "print", self._target, check=False)
        return proc.returncode == 0 and "state = running" in (proc.stdout or "")

    def is_enabled(self) -> bool | None:
        return self._loaded()  # (an agent runs at load: loaded is enabled)


# --------------------------------------------------------------------------------------------- fake


class FakeServiceManager(ServiceManager):
    """Records calls; never runs anything. With `state_file`, its state and calls persist in a JSON file,
    so a subprocess started with HYP_TEST_SERVICE_MANAGER=<file> shares them with the test."""

    def __init__(
        self,
        unit_path: Path | str,
        *,
        kind: str = "systemd",
        available: bool = True,
        linger: bool | None = True,
        state_file: Path | str | None = None,
        fail: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.unit_path = Path(unit_path)
        self._available = available
        self._linger = linger
        self.state_file = Path(state_file) if state_file else None
        self.calls: list[str] = []
        self.active = False
        self.enabled = False
        self.fail = dict(fail or {})
        self.on_start: Callable[[], None] | None = None  # tests may start a real process here
        self.on_stop: Callable[[], None] | None = None
        self._load()

    @classmethod
    def from_state_file(cls, path: str | os.PathLike[str]) -> FakeServiceManager:
        data = json.loads(Path(path).read_text())
        return cls(data["unit_path"], kind=data.get("kind", "systemd"), available=data.get("available", True),
                   linger=data.get("linger", True), state_file=path, fail=data.get("fail"))

    def _load(self) -> None:
        if self.state_file and self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            self.calls = list(data.get("calls", []))
            self.active = bool(data.get("active", False))
            self.enabled = bool(data.get("enabled", False))

    def _save(self) -> None:
        if self.state_file:
            data = {"unit_path": str(self.unit_path), "kind": self.kind, "available": self._available,
                    "linger": self._linger, "calls": self.calls, "active": self.active, "enabled": self.enabled,
                    "fail": self.fail}
            self.state_file.write_text(json.dumps(data, indent=2))

    def _call(self, name: str) -> None:
        self.calls.append(name)
        self._save()
        if name in self.fail:
            raise ServiceError(self.fail[name])

    def available(self) -> bool:
        return self._available

    def write_unit(self, text: str) -> None:
        self._call("write_unit")
        super().write_unit(text)

    def reload(self) -> None:
        self._call("reload")

    def enable(self) -> None:
        self._call("enable")
        self.enabled = True
        self._save()

    def start(self) -> None:
        self._call("start")
        self.active = True
        self._save()
        if self.on_start:
            self.on_start()

    def stop(self) -> None:
        self._call("stop")
        self.active = False
        self._save()
        if self.on_stop:
            self.on_stop()

    def restart(self) -> None:
        self._call("restart")
        self.active = True
        self._save()
        if self.on_stop:
            self.on_stop()
        if self.on_start:
            self.on_start()

    def disable(self) -> None:
        self._call("disable")
        self.enabled = False
        self._save()

    def remove(self) -> None:
        self._call("remove")
        super().remove()

    def is_active(self) -> bool:
        return self.active

    def is_enabled(self) -> bool | None:
        return self.enabled

    def linger_enabled(self) -> bool | None:
        return self._linger


# --------------------------------------------------------------------------------------------- factory

_factory_override: Callable[[], ServiceManager | None] | None = None


def set_service_manager_factory(factory: Callable[[], ServiceManager | None] | None) -> None:
    """Tests: make `get_service_manager()` return `factory()` (None restores the default)."""
    global _factory_override
    _factory_override = factory


def platform_kind(platform: str | None = None) -> str | None:
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return "systemd"
    if platform == "darwin":
        return "launchd"
    return None


def get_service_manager(env: Mapping[str, str] | None = None, platform: str | None = None) -> ServiceManager | None:
    """The service manager for this platform, or None where install is not supported."""
    env = os.environ if env is None else env
    if _factory_override is not None:
        return _factory_override()
    state = env.get(TEST_MANAGER_ENV)
    if state:
        return FakeServiceManager.from_state_file(state)
    kind = platform_kind(platform)
    if kind == "systemd":
        return SystemdUserManager()
    if kind == "launchd":
        return LaunchdAgentManager()
    return None


# --------------------------------------------------------------------------------------------- interpreter

_EPHEMERAL_MARKERS = (
    "/uv/archive-v",  # uvx / uv tool run environments live in the uv cache
    "/uv/environments-v",
    "/uv/builds-v",
    "/pipx/.cache/",  # pipx run: $PIPX_HOME/.cache (~/.local/pipx before pipx 1.3), or the user cache dir
    "/.pipx/.cache/",
    "/.cache/pipx/",
    "/Library/Caches/pipx/",  # (macOS: platformdirs.user_cache_path("pipx"))
    "/pip-build-env-",
    "/pip-req-build-",
    "/_npx/",
)


def ephemeral_reason(python: str, env: Mapping[str, str] | None = None) -> str | None:
    """Why `python` would disappear (a temp dir, a tool runner's cache), or None when it looks durable.
    The path is judged as given (symlinks are not resolved: a venv's python is a symlink)."""
    env = os.environ if env is None else env
    p = os.path.abspath(os.path.expanduser(python))
    temp_roots = {tempfile.gettempdir(), "/tmp", "/var/tmp", "/private/tmp", "/private/var/folders", "/var/folders"}
    for key in ("TMPDIR", "TEMP", "TMP"):
        if env.get(key):
            temp_roots.add(env[key])
    for root in temp_roots:
        root = os.path.abspath(root).rstrip("/")
        if root and (p == root or p.startswith(root + "/")):
            return "it is inside the temporary directory"
    home = user_home(env)
    caches = [env.get("UV_CACHE_DIR"), env.get("PIPX_CACHE_DIR")]
    if env.get("PIPX_HOME"):  # pipx run caches its environments in $PIPX_HOME/.cache (pipx defines no
        caches.append(os.path.join(os.path.expanduser(env["PIPX_HOME"]), ".cache"))  # PIPX_CACHE_DIR)
    if env.get("XDG_CACHE_HOME"):
        caches.append(os.path.join(env["XDG_CACHE_HOME"], "pipx"))
    if home:
        caches += [os.path.join(home, ".local/pipx/.cache"), os.path.join(home, "Library/Caches/pipx"),
                   os.path.join(home, ".cache/pipx")]
    for root in caches:
        if root and p.startswith(os.path.abspath(root).rstrip("/") + "/"):
            return "it is inside a tool runner's cache"
    for marker in _EPHEMERAL_MARKERS:
        if marker in p:
            return "it is inside a tool runner's cache"
    return None
