"""The config file (cli.md §2, daemon.md §5): reading, validation errors, atomic writes, backups, unknown
keys preserved."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hypaware_tui.core.config import (
    DEFAULT_RETENTION_DAYS,
    ConfigError,
    build_config_data,
    load_config,
    render_config,
    set_capture_enabled,
    write_config,
)
from hypaware_tui.core.paths import Layout

STANDARD = {
    "version": 1,
    "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
    "retention_days": 120,
    "capture": {"enabled": True},
}


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(tmp_path / "hyp")


def put(layout: Layout, text: str | dict) -> None:
    layout.home.mkdir(parents=True, exist_ok=True)
    layout.config.write_text(text if isinstance(text, str) else json.dumps(text))


def test_missing_config_is_none_and_creates_nothing(layout: Layout) -> None:
    assert load_config(layout) is None
    assert not layout.home.exists()
    assert DEFAULT_RETENTION_DAYS == 120


def test_standard_config(layout: Layout) -> None:
    put(layout, STANDARD)
    cfg = load_config(layout)
    assert cfg is not None
    assert cfg.version == 1 and cfg.retention_days == 120 and cfg.capture.enabled is True
    assert cfg.enabled_clients == ["claude", "codex"]
    assert (cfg.capture.flush_seconds, cfg.capture.flush_rows, cfg.capture.poll_seconds) == (5, 2000, 5)
    assert cfg.capture.rescan_seconds == 300
    assert cfg.raw == STANDARD


def test_defaults_and_options(layout: Layout) -> None:
    put(layout, {"version": 1, "clients": {"codex": {"enabled": False}, "claude": {"root": "/opt/claude"}},
                 "capture": {"enabled": False, "flush_rows": 10, "poll_seconds": 0.5}, "x": 1})  # fmt: skip
    cfg = load_config(layout)
    assert cfg.retention_days == 120  # absent: the default
    assert cfg.enabled_clients == ["claude"]  # an entry without "enabled" is enabled; codex is off
    assert cfg.client_root("claude") == "/opt/claude" and cfg.client_root("codex") is None
    assert cfg.capture.enabled is False and cfg.capture.flush_rows == 10 and cfg.capture.poll_seconds == 0.5
    assert cfg.raw["x"] == 1  # unknown keys are kept (and ignored)
    put(layout, {"version": 1, "clients": {}, "retention_days": 0})
    cfg = load_config(layout)
    assert cfg.enabled_clients == [] and cfg.retention_days == 0  # 0 = keep forever


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"version": 1,\n  "retention_days": 120,,\n}', "is not valid JSON: Expecting property name enclosed in double quotes at line 2, column 25"),
        # (the parser's "Expecting value at line 1, column 1" said nothing of an empty or a cut file)
        ("", "is empty (it holds no JSON object)"),
        ("  \n", "is empty (it holds no JSON object)"),
        ('{"version": 1, "clients":', "is not valid JSON: it ends early, at line 1, column 26 (was it cut short?)"),
        ("[1, 2]", "must be a JSON object, found an array"),
        ('{"retention_days": 120}', 'has no "version" (expected 1)'),
        ('{"version": 2}', "has version 2; this hyp understands version 1 only"),
        ('{"version": "1"}', 'has version "1"; this hyp understands version 1 only'),
        ('{"version": 1, "retention_days": -1}', "retention_days must be an integer from 0 to 36500 (0 = keep forever), found -1"),
        ('{"version": 1, "retention_days": "120"}', 'retention_days must be an integer from 0 to 36500 (0 = keep forever), found "120"'),
        ('{"version": 1, "retention_days": 99999999999}',
         "retention_days must be an integer from 0 to 36500 (0 = keep forever), found 99999999999"),
        ('{"version": 1, "retention_days": 1.5}', "found 1.5"),
        ('{"version": 1, "retention_days": true}', "found true"),
        ('{"version": 1, "clients": ["claude"]}', '"clients" must be an object, found an array'),
        ('{"version": 1, "clients": {"claude": true}}', '"clients.claude" must be an object like {"enabled": true}, found a boolean'),
        ('{"version": 1, "clients": {"codex": {"enabled": "yes"}}}', '"clients.codex.enabled" must be true or false, found "yes"'),
        ('{"version": 1, "clients": {"codex": {"root": "relative/dir"}}}', '"clients.codex.root" must be an absolute path, found "relative/dir"'),
        ('{"version": 1, "clients": {"codex": {"root": 7}}}', '"clients.codex.root" must be a path string, found 7'),
        ('{"version": 1, "capture": {"enabled": 1}}', '"capture.enabled" must be true or false, found 1'),
        ('{"version": 1, "capture": {"flush_rows": 0}}', '"capture.flush_rows" must be a whole number > 0, found 0'),
        ('{"version": 1, "capture": {"poll_seconds": "5"}}', '"capture.poll_seconds" must be a number > 0, found "5"'),
    ],
)  # fmt: skip
def test_invalid_configs_name_the_file_and_the_problem(layout: Layout, text: str, problem: str) -> None:
    put(layout, text)
    with pytest.raises(ConfigError) as info:
        load_config(layout)
    assert info.value.path == str(layout.config)
    assert problem in info.value.problem
    assert str(info.value).startswith(f"{layout.config}: ")


def test_unknown_client_names_are_ignored_not_invalid(layout: Layout) -> None:
    put(layout, {"version": 1, "clients": {"cursor": {"enabled": "whatever"}, "claude": {"enabled": True}}})
    assert load_config(layout).enabled_clients == ["claude"]


def test_config_not_utf8_or_a_directory(layout: Layout) -> None:
    layout.home.mkdir(parents=True)
    layout.config.write_bytes(b'{"version": 1, "x": "\xff"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(layout)
    layout.config.unlink()
    layout.config.mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(layout)



@pytest.mark.parametrize("depth", [101, 5_000, 200_000])
def test_a_config_nested_too_deep_names_the_file_and_the_problem(layout: Layout, depth: int) -> None:
    """Deeper than the recursion limit was "unexpected error: RecursionError" on every command; between ~990
    and the limit it could be read but `hyp init` could not write it back."""
    put(layout, '{"version": 1, "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}")
    with pytest.raises(ConfigError) as info:
        load_config(layout)
    assert str(info.value) == f"{layout.config}: nests arrays and objects more than 100 levels deep"
    put(layout, '{"version": 1, "x": ' + "[" * 99 + "]" * 99 + "}")  # 100 levels: read, and written back
    cfg = load_config(layout)
    write_config(layout, cfg.raw, backup=False)
    assert load_config(layout).raw == cfg.raw


@contextlib.contextmanager
def _fails_after(seconds: int) -> Iterator[None]:
    def hung(*_: object) -> None:
        raise AssertionError(f"still waiting after {seconds}s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_write_config_moves_aside_what_is_not_a_regular_file(layout: Layout, kind: str) -> None:
    layout.home.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(layout.config)
    else:
        layout.config.mkdir()
        (layout.config / "note").write_text("kept")
    with _fails_after(10), pytest.raises(ConfigError, match="not a regular file"):  # (a read of a pipe hangs)
        load_config(layout)
    now = datetime(2026, 8, 30, 14, 15, 2, tzinfo=UTC)
    with _fails_after(10):
        assert write_config(layout, STANDARD, backup=True, now=now) == "hypaware-config.json.bak-20260830T141502Z"
    moved = layout.home / "hypaware-config.json.bak-20260830T141502Z"
    if kind == "fifo":
        assert stat.S_ISFIFO(moved.lstat().st_mode)
    else:
        assert (moved / "note").read_text() == "kept"
    assert load_config(layout).raw == STANDARD


def test_render_config_exact_text() -> None:
    assert render_config({"version": 1, "clients": {"claude": {"enabled": True}}, "name": "café"}) == (
        '{\n  "version": 1,\n  "clients": {\n    "claude": {\n      "enabled": true\n    }\n  },\n'
        '  "name": "café"\n}\n'
    )


def test_write_config_creates_home_and_file_with_modes(layout: Layout) -> None:
    old = os.umask(0o022)
    try:
        assert write_config(layout, STANDARD, backup=True) is None  # nothing to back up
    finally:
        os.umask(old)
    assert layout.config.read_text() == render_config(STANDARD)
    assert stat.S_IMODE(layout.home.stat().st_mode) == 0o700
    assert stat.S_IMODE(layout.config.stat().st_mode) == 0o600
    assert load_config(layout).raw == STANDARD
    assert sorted(p.name for p in layout.home.iterdir()) == ["hypaware-config.json"]  # no temp left


def test_save_config_create_never_replaces_a_config_and_writes_0600(layout: Layout) -> None:
    """`create=True` (a `hyp init` that found no config): the file is created whole (0600, no temp left) only
    where none is at the write itself; one written meanwhile stays as it is (FileExistsError)."""
    from hypaware_tui.core.config import save_config

    old = os.umask(0o022)
    try:
        assert save_config(layout, STANDARD, backup=True, create=True).action == "created"
    finally:
        os.umask(old)
    assert stat.S_IMODE(layout.config.stat().st_mode) == 0o600
    assert layout.config.read_text() == render_config(STANDARD)
    with pytest.raises(FileExistsError):
        save_config(layout, dict(STANDARD, retention_days=30), backup=True, create=True)
    assert layout.config.read_text() == render_config(STANDARD)
    assert sorted(p.name for p in layout.home.iterdir()) == ["hypaware-config.json"]  # no temp, no backup left
    # Without create: what was done, as it was done.
    done = save_config(layout, dict(STANDARD, retention_days=30), backup=True)
    assert done.action == "replaced" and (layout.home / done.backup).read_text() == render_config(STANDARD)
    assert save_config(layout, dict(STANDARD, retention_days=30), backup=True).action == "unchanged"


def test_write_config_backs_up_byte_for_byte(layout: Layout) -> None:
    original = '{"version":1,  "retention_days": 30, "x": {"keep": [1,2]}}\n'
    put(layout, original)
    when = datetime(2026, 8, 30, 14, 15, 2, tzinfo=UTC)
    new = build_config_data(load_config(layout).raw, clients={"claude": True, "codex": False},
                            retention_days=30, capture_enabled=True)  # fmt: skip
    name = write_config(layout, new, backup=True, now=when)
    assert name == "hypaware-config.json.bak-20260830T141502Z"
    assert (layout.home / name).read_text() == original
    assert stat.S_IMODE((layout.home / name).stat().st_mode) == 0o600
    assert json.loads(layout.config.read_text()) == {
        "version": 1,
        "clients": {"claude": {"enabled": True}, "codex": {"enabled": False}},
        "retention_days": 30,
        "capture": {"enabled": True},
        "x": {"keep": [1, 2]},
    }
    # Unchanged content: no rewrite, no backup.
    assert write_config(layout, new, backup=True, now=when) is None
    # Another change within the same second keeps the first backup and adds a second one.
    newer = dict(new, retention_days=60)
    second = write_config(layout, newer, backup=True, now=when)
    assert second == "hypaware-config.json.bak-20260830T141502Z-2"
    assert (layout.home / name).read_text() == original
    assert json.loads((layout.home / second).read_text())["retention_days"] == 30


def test_build_config_data_preserves_unknown_keys_and_client_extras() -> None:
    existing = {
        "x": 1,
        "capture": {"enabled": False, "flush_rows": 50},
        "version": 1,
        "clients": {"claude": {"enabled": False, "root": "/opt/c", "note": "n"}, "cursor": {"on": 1}},
        "retention_days": 7,
    }
    data = build_config_data(
        existing, clients={"claude": True, "codex": True}, retention_days=120, capture_enabled=True
    )
    assert list(data) == ["version", "clients", "retention_days", "capture", "x"]
    assert data["clients"] == {
        "claude": {"enabled": True, "root": "/opt/c", "note": "n"},
        "codex": {"enabled": True},
        "cursor": {"on": 1},
    }
    assert data["capture"] == {"enabled": True, "flush_rows": 50}
    assert build_config_data(None, clients={"claude": True}, retention_days=0, capture_enabled=False) == {
        "version": 1,
        "clients": {"claude": {"enabled": True}},
        "retention_days": 0,
        "capture": {"enabled": False},
    }


def test_set_capture_enabled_edits_in_place(layout: Layout) -> None:
    raw = {"zeta": True, "version": 1, "capture": {"enabled": True, "poll_seconds": 3}, "retention_days": 9}
    put(layout, raw)
    assert set_capture_enabled(layout, False) is True
    after = json.loads(layout.config.read_text())
    assert list(after) == ["zeta", "version", "capture", "retention_days"]  # order kept
    assert after["capture"] == {"enabled": False, "poll_seconds": 3}
    assert set_capture_enabled(layout, False) is False
    assert [p.name for p in layout.home.iterdir()] == ["hypaware-config.json"]  # no backup for this edit


def test_set_capture_enabled_needs_a_valid_config(layout: Layout) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        set_capture_enabled(layout, True)
    put(layout, "{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        set_capture_enabled(layout, True)
    assert layout.config.read_text() == "{oops"


def test_a_replace_backs_up_the_config_that_is_there_when_it_writes(layout: Layout) -> None:
    """Two `hyp init --yes --force` at once: each read the config, backed it up and replaced it, so one
    replaced the other's with no backup (cli.md §2: the previous config, byte for byte), both saying they
    wrote theirs. The read, backup and write of each now hold the config lock: the second backs up the
    first's config."""
    import threading

    from hypaware_tui.core.config import config_lock, save_config

    layout.home.mkdir(mode=0o700)
    first = render_config({"version": 1, "retention_days": 10}).encode()
    layout.config.write_bytes(first)
    other = render_config({"version": 1, "retention_days": 30}).encode()
    done: list[object] = []
    with config_lock(layout):  # (another hyp init in the middle of its write)
        t = threading.Thread(target=lambda: done.append(save_config(
            layout, {"version": 1, "retention_days": 60}, backup=True, now=datetime(2026, 11, 28, tzinfo=UTC))))
        t.start()
        t.join(0.3)
        assert t.is_alive() and not done  # (waits for it)
        layout.config.write_bytes(other)  # what the other one writes
    t.join(10)
    assert done and done[0].action == "replaced"
    assert (layout.home / done[0].backup).read_bytes() == other  # the other's config, backed up
    assert json.loads(layout.config.read_text())["retention_days"] == 60


def test_set_capture_enabled_keeps_an_edit_made_while_it_waited(layout: Layout) -> None:
    import threading

    from hypaware_tui.core.config import config_lock, set_capture_enabled

    layout.home.mkdir(mode=0o700)
    layout.config.write_text(render_config({"version": 1, "retention_days": 10, "capture": {"enabled": False}}))
    with config_lock(layout):
        t = threading.Thread(target=set_capture_enabled, args=(layout, True))
        t.start()
        t.join(0.3)
        assert t.is_alive()
        layout.config.write_text(render_config({"version": 1, "retention_days": 45, "capture": {"enabled": False}}))
    t.join(10)
    data = json.loads(layout.config.read_text())
    assert (data["retention_days"], data["capture"]["enabled"]) == (45, True)


def test_a_config_that_is_a_link_to_nothing_or_unreadable_is_said_so_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config that is a symbolic link to nothing was "missing": every command ran on defaults and `hyp init
    --yes` replaced the link with a file. It is a config that cannot be read, and the advice is to fix the link
    (message audit). An unreadable one (permissions) was told to be replaced with --force, which fails: it
    needs its bytes for the backup; the advice is its mode."""
    from hypaware_tui.cli import main
    from hypaware_tui.cli.output import config_advice

    home = tmp_path / "hyp"
    home.mkdir()
    config = home / "hypaware-config.json"
    config.symlink_to(tmp_path / "drive" / "hypaware-config.json")
    monkeypatch.setenv("HYP_HOME", str(home))
    with pytest.raises(ConfigError, match="is a symbolic link to .*drive/hypaware-config.json, which does not exist"):
        load_config(Layout(home))
    with pytest.raises(SystemExit) as exc:
        main(["backfill"])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and err.strip().endswith("which does not exist. Fix or remove the link, then run it again.")
    assert config.is_symlink()  # (left as it is)
    assert config_advice(f"{config}: cannot be read: Permission denied", "hyp") == (
        "Check that it belongs to you and is readable (chmod 600 on it), then run it again.")


def test_a_config_replaced_or_edited_is_0600_even_when_the_old_one_was_world_readable(layout: Layout) -> None:
    """cli.md §2: the config is mode 0600, whoever wrote the one it replaces. A config made by hand (0644 under
    umask 022) rewritten by `hyp init --force` or by `hyp daemon start` (capture.enabled) is 0600 after, and so
    is the backup of it: it names the folders of a person's history."""
    old = os.umask(0o022)
    try:
        put(layout, STANDARD)
        assert stat.S_IMODE(layout.config.stat().st_mode) == 0o644
        name = write_config(layout, dict(STANDARD, retention_days=30), backup=True)
        assert name is not None
        assert json.loads(layout.config.read_text())["retention_days"] == 30
        assert stat.S_IMODE(layout.config.stat().st_mode) == 0o600
        assert stat.S_IMODE((layout.home / name).stat().st_mode) == 0o600
        os.chmod(layout.config, 0o644)
        assert set_capture_enabled(layout, False) is True
        assert json.loads(layout.config.read_text())["capture"] == {"enabled": False}
        assert stat.S_IMODE(layout.config.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_retention_days_at_the_limit_the_message_names_is_valid(layout: Layout) -> None:
    """The error says "an integer from 0 to 36500": 36500 itself loads (100 years), 36501 is refused."""
    put(layout, dict(STANDARD, retention_days=36_500))
    assert load_config(layout).retention_days == 36_500
    put(layout, dict(STANDARD, retention_days=36_501))
    with pytest.raises(ConfigError, match="from 0 to 36500 .* found 36501"):
        load_config(layout)
