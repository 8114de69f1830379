"""The config file `<HYP_HOME>/hypaware-config.json` (cli.md §2, daemon.md §5).

* `load_config(layout)` -> `Config`, or None when the file does not exist; raises `ConfigError` (naming the
  file and the problem) when it is invalid. Reading never creates anything.
* `build_config_data(existing, ...)` -> the dict `hyp init` writes: the known keys in their documented order,
  then every other key of the existing file, preserved as is.
* `render_config(data)` -> the exact file text (2-space indent, trailing newline).
* `write_config(layout, data, backup=...)` -> atomic write (0600) after a byte-for-byte timestamped backup;
  `save_config` the same, saying what it did, and with `create=True` never over an existing file.
* `set_capture_enabled(layout, enabled)` -> flip `capture.enabled` in place, every other key preserved.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypaware_tui.core import prog
from hypaware_tui.core.paths import (
    Layout,
    atomic_create_bytes,
    atomic_write_bytes,
    dangling_link_target,
    user_home,
)

CONFIG_VERSION = 1
DEFAULT_RETENTION_DAYS = 120
#: 100 years. More is a typo for "forever" (0); past ~739,000 days the cut date is before year 1, and every
#: command that computed it died on an OverflowError.
MAX_RETENTION_DAYS = 36_500
KNOWN_CLIENTS = ("claude", "codex")

# daemon.md §5: optional tuning keys under "capture", with their defaults.
CAPTURE_DEFAULTS: dict[str, float | int] = {
    "flush_seconds": 5,
    "flush_rows": 2000,
    "poll_seconds": 5,
    "rescan_seconds": 300,
}
_INT_KEYS = {"flush_rows"}
#: Arrays and objects inside each other. A config needs 3; a file nested thousands deep was an "unexpected
#: error: RecursionError" on every command (naming no file), and deeper than the recursion limit leaves for
#: the writer (`render_config`, `hyp init`) it could be read but not written back.
MAX_CONFIG_DEPTH = 100


class ConfigError(ValueError):
    """An invalid config file. `str()` names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class ClientConfig:
    enabled: bool
    root: str | None = None  # absolute; used instead of CLAUDE_CONFIG_DIR / CODEX_HOME and the defaults


@dataclass(frozen=True)
class CaptureConfig:
    enabled: bool = True
    flush_seconds: float = CAPTURE_DEFAULTS["flush_seconds"]
    flush_rows: int = int(CAPTURE_DEFAULTS["flush_rows"])
    poll_seconds: float = CAPTURE_DEFAULTS["poll_seconds"]
    rescan_seconds: float = CAPTURE_DEFAULTS["rescan_seconds"]


@dataclass(frozen=True)
class Config:
    path: Path
    version: int
    clients: dict[str, ClientConfig]  # known clients present in the file; a missing client is disabled
    retention_days: int
    capture: CaptureConfig
    raw: dict[str, Any] = field(default_factory=dict)  # the whole parsed file, unknown keys included

    def client_enabled(self, client: str) -> bool:
        entry = self.clients.get(client)
        return bool(entry and entry.enabled)

    @property
    def enabled_clients(self) -> list[str]:
        return [c for c in KNOWN_CLIENTS if self.client_enabled(c)]

    def client_root(self, client: str) -> str | None:
        entry = self.clients.get(client)
        return entry.root if entry else None


# --- reading ------------------------------------------------------------------------------------------------


def load_config(layout: Layout) -> Config | None:
    """The parsed config, or None when the file does not exist. Raises ConfigError when it is invalid."""
    data = read_config_bytes(layout.config)
    return None if data is None else parse_config(data, layout.config)


def read_config_bytes(path: str | os.PathLike[str]) -> bytes | None:
    """The config's bytes, or None when there is none. Raises ConfigError when it is not a regular file (a
    named pipe is never opened: reading one waits for a writer, and every command hung on it) or cannot be
    read."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        # A link to nothing is a config that cannot be read, not none at all: every command ran on defaults,
        # and `hyp init --yes` replaced the link with a file.
        target = dangling_link_target(path)
        if target is not None:
            raise ConfigError(path, f"is a symbolic link to {target}, which does not exist") from None
        return None
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror or exc}") from None
    _check_regular(path, st.st_mode)
    try:
        # (O_NONBLOCK: a pipe put there since the stat is not waited on; nothing for a regular file)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        _check_regular(path, os.fstat(fd).st_mode)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def not_a_regular_file(mode: int) -> str | None:
    """What a config path that is not a regular file is ("a directory", "a named pipe (FIFO)", …), or None."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _check_regular(path: Path, mode: int) -> None:
    kind = not_a_regular_file(mode)
    if kind is not None:
        raise ConfigError(path, f"is {kind}, not a regular file")


def parse_config(data: bytes | str, path: str | os.PathLike[str]) -> Config:
    path = Path(path)
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(path, f"is not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    too_deep = f"nests arrays and objects more than {MAX_CONFIG_DEPTH} levels deep"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        if not text.strip():
            raise ConfigError(path, "is empty (it holds no JSON object)") from None
        if exc.pos >= len(text.rstrip()):  # (the parser's message, "Expecting value", said nothing of that)
            raise ConfigError(path, f"is not valid JSON: it ends early, at line {exc.lineno}, column "
                                    f"{exc.colno} (was it cut short?)") from None
        raise ConfigError(
            path, f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise ConfigError(path, too_deep) from None
    if not isinstance(raw, dict):
        raise ConfigError(path, f"must be a JSON object, found {_json_type(raw)}")
    if _deeper_than(raw, MAX_CONFIG_DEPTH):
        raise ConfigError(path, too_deep)

    if "version" not in raw:
        raise ConfigError(path, f'has no "version" (expected {CONFIG_VERSION})')
    version = raw["version"]
    if not _is_int(version) or version != CONFIG_VERSION:
        raise ConfigError(
            path, f"has version {json.dumps(version)}; this hyp understands version {CONFIG_VERSION} only"
        )

    retention = raw.get("retention_days", DEFAULT_RETENTION_DAYS)
    if not _is_int(retention) or not 0 <= retention <= MAX_RETENTION_DAYS:
        raise ConfigError(
            path, f"retention_days must be an integer from 0 to {MAX_RETENTION_DAYS} (0 = keep forever), "
            f"found {json.dumps(retention)}"
        )

    clients_raw = raw.get("clients", {})
    if not isinstance(clients_raw, dict):
        raise ConfigError(path, f'"clients" must be an object, found {_json_type(clients_raw)}')
    clients: dict[str, ClientConfig] = {}
    for name in KNOWN_CLIENTS:
        if name not in clients_raw:
            continue
        entry = clients_raw[name]
        where = f"clients.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(
                path, f'"{where}" must be an object like {{"enabled": true}}, found {_json_type(entry)}'
            )
        enabled = entry.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(path, f'"{where}.enabled" must be true or false, found {json.dumps(enabled)}')
        root = entry.get("root")
        if root is not None:
            if not isinstance(root, str) or not root:
                raise ConfigError(path, f'"{where}.root" must be a path string, found {json.dumps(root)}')
            # (`~` as the importers expand it: an empty HOME is an unset one, not "/")
            tilde = root == "~" or root.startswith("~/")
            expanded = user_home() + root[1:] if tilde else os.path.expanduser(root)
            if not os.path.isabs(expanded):
                raise ConfigError(path, f'"{where}.root" must be an absolute path, found {json.dumps(root)}')
            root = expanded
        clients[name] = ClientConfig(enabled=enabled, root=root)

    capture_raw = raw.get("capture", {})
    if not isinstance(capture_raw, dict):
        raise ConfigError(path, f'"capture" must be an object, found {_json_type(capture_raw)}')
    cap_enabled = capture_raw.get("enabled", True)
    if not isinstance(cap_enabled, bool):
        raise ConfigError(path, f'"capture.enabled" must be true or false, found {json.dumps(cap_enabled)}')
    tuning: dict[str, Any] = {}
    for key, default in CAPTURE_DEFAULTS.items():
        value = capture_raw.get(key, default)
        ok = _is_int(value) if key in _INT_KEYS else (_is_number(value))
        if not ok or value <= 0:
            kind = "a whole number" if key in _INT_KEYS else "a number"
            raise ConfigError(path, f'"capture.{key}" must be {kind} > 0, found {json.dumps(value)}')
        tuning[key] = value
    capture = CaptureConfig(enabled=cap_enabled, **tuning)
    return Config(
        path=path, version=version, clients=clients, retention_days=retention, capture=capture, raw=raw
    )


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` arrays and objects (iterative: no recursion of its own)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        children = v.values() if isinstance(v, dict) else v
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v  # not NaN


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


# --- building and writing -------------------------------------------------------------------------------


def build_config_data(
    existing: Mapping[str, Any] | None,
    *,
    clients: Mapping[str, bool],
    retention_days: int,
    capture_enabled: bool,
    roots: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The config `hyp init` writes: `version`, `clients`, `retention_days`, `capture` in that order, then
    every other key of `existing` as it was. Existing client entries keep their other keys (e.g. `root`),
    and `capture` keeps its tuning keys. `clients` maps each client to enabled (known clients only)."""
    existing = dict(existing or {})
    old_clients = existing.get("clients") if isinstance(existing.get("clients"), dict) else {}
    new_clients: dict[str, Any] = {}
    for name in KNOWN_CLIENTS:
        if name not in clients:
            continue
        old = old_clients.get(name)
        entry: dict[str, Any] = {"enabled": bool(clients[name])}
        if isinstance(old, dict):
            entry.update({k: v for k, v in old.items() if k != "enabled"})
        if roots and name in roots:
            entry["root"] = roots[name]
        new_clients[name] = entry
    for name, old in old_clients.items():  # clients this hyp does not know: preserved
        if name not in KNOWN_CLIENTS:
            new_clients[name] = old
    old_capture = existing.get("capture") if isinstance(existing.get("capture"), dict) else {}
    capture = {"enabled": bool(capture_enabled)}
    capture.update({k: v for k, v in old_capture.items() if k != "enabled"})
    data: dict[str, Any] = {
        "version": CONFIG_VERSION,
        "clients": new_clients,
        "retention_days": int(retention_days),
        "capture": capture,
    }
    for key, value in existing.items():
        if key not in data:
            data[key] = value
    return data


def render_config(data: Mapping[str, Any]) -> str:
    """The exact file text: 2-space indent, UTF-8 (no ASCII escaping), trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def backup_name(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"hypaware-config.json.bak-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def write_config(
    layout: Layout, data: Mapping[str, Any], *, backup: bool, now: datetime | None = None
) -> str | None:
    """Write the config atomically (0600). With `backup` and an existing file whose bytes differ, first copy
    it byte-for-byte to `hypaware-config.json.bak-<YYYYMMDDTHHMMSSZ>` (never overwriting an older backup).
    Something there that is not a regular file (a directory, a named pipe) is moved to that name as it is,
    never opened. Returns the backup's file name, or None when none was made. Identical content is not
    rewritten."""
    return save_config(layout, data, backup=backup, now=now).backup


@dataclass(frozen=True)
class ConfigWrite:
    """What `save_config` did: `created` (there was none), `replaced` (with `backup`, the backup's file name,
    when one was made) or `unchanged` (the file already held these bytes)."""

    action: str
    backup: str | None = None


def save_config(
    layout: Layout, data: Mapping[str, Any], *, backup: bool, now: datetime | None = None, create: bool = False
) -> ConfigWrite:
    """`write_config`, saying what it did. With `create` the file must not exist: FileExistsError, and nothing
    written, when one does (checked at the write itself, so a config another process wrote since it was last
    looked at is never replaced). Without it, a config that appears between the look and the write is backed
    up like any other, never replaced unseen."""
    with config_lock(layout):
        return _save_config_locked(layout, data, backup=backup, now=now, create=create)


#: how long a config write waits for another hyp process's (a write takes milliseconds)
CONFIG_LOCK_WAIT_S = 10.0


@contextlib.contextmanager
def config_lock(layout: Layout) -> Iterator[None]:
    """Serialise the read, backup and write of the config between hyp processes (a flock on the HYP_HOME
    folder itself, which makes no file): two `hyp init --yes --force` at once each read the config, backed it
    up and replaced it, so one replaced the other's with no backup of it (cli.md §2: the previous config, byte
    for byte), both saying they had written theirs. No lock where there is no HYP_HOME yet (nothing to
    replace: a create never replaces, `save_config`) or it cannot be opened (the write then reports the
    problem). Not reentrant: hold it once per process."""
    fd: int | None = None
    try:
        fd = os.open(layout.home, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        fd = None
    try:
        if fd is not None:
            deadline = time.monotonic() + CONFIG_LOCK_WAIT_S
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ConfigError(layout.config, "is being written by another hyp process that does not "
                                          "finish (a stopped one?); try again") from None
                    time.sleep(0.02)
        yield
    finally:
        if fd is not None:
            os.close(fd)  # (the lock goes with it)


def _save_config_locked(
    layout: Layout, data: Mapping[str, Any], *, backup: bool, now: datetime | None, create: bool
) -> ConfigWrite:
    text = render_config(data).encode("utf-8")
    path = layout.config
    if create:
        _create(path, text)
        return ConfigWrite("created")
    for attempt in range(3):
        try:
            kind = not_a_regular_file(os.stat(path).st_mode)
        except FileNotFoundError:
            kind = None
        if kind is not None:
            if not backup:
                raise ConfigError(path, f"is {kind}, not a regular file")
            name = _backup_slot(layout, backup_name(now), None)
            os.rename(path, layout.home / name)
            atomic_write_bytes(path, text)
            return ConfigWrite("replaced", name)
        old = read_config_bytes(path)
        if old is None:
            if not backup:
                atomic_write_bytes(path, text)
                return ConfigWrite("created")
            try:
                _create(path, text)
            except FileExistsError:
                if attempt == 2:
                    raise
                continue  # written since the look above: backed up as any other
            return ConfigWrite("created")
        if old == text:
            return ConfigWrite("unchanged")
        made: str | None = None
        if backup:
            name = _backup_slot(layout, backup_name(now), old)
            if not (layout.home / name).exists():
                atomic_write_bytes(layout.home / name, old)
            made = name
        atomic_write_bytes(path, text)
        return ConfigWrite("replaced", made)
    raise AssertionError("unreachable")


def _create(path: Path, text: bytes) -> None:
    """Create the config atomically, never over an existing one (FileExistsError). A dangling symlink is not a
    config: it is replaced by the file, as it always was."""
    try:
        atomic_create_bytes(path, text)
    except FileExistsError:
        if not path.is_symlink() or path.exists():
            raise
        atomic_write_bytes(path, text)


def _backup_slot(layout: Layout, base: str, old: bytes | None) -> str:
    """The first of `base`, `base-2`, … that is free or already a regular file holding `old` (the same backup,
    the same second)."""
    name, n = base, 1
    while os.path.lexists(layout.home / name):
        where = layout.home / name
        if old is not None and where.is_file() and not where.is_symlink() and where.read_bytes() == old:
            break
        n += 1
        name = f"{base}-{n}"
    return name


def set_capture_enabled(layout: Layout, enabled: bool) -> bool:
    """Set `capture.enabled` (an atomic edit: every other key and its order preserved). Returns True when
    the file changed. Raises ConfigError when there is no valid config."""
    with config_lock(layout):  # (read and written under it: an edit of another hyp meanwhile is kept)
        cfg = load_config(layout)
        if cfg is None:
            raise ConfigError(layout.config, f"does not exist; run {prog.NAME} init first")
        raw = dict(cfg.raw)
        capture = dict(raw.get("capture") or {})
        if capture.get("enabled") is enabled:
            return False
        capture["enabled"] = enabled
        raw["capture"] = capture
        _save_config_locked(layout, raw, backup=False, now=None, create=False)
    return True
