"""End to end in a real pseudo-terminal: `hyp init --demo`, Enter through every step, then the plain-text
summary left in the scrollback after the TUI closes (wizard.md §6.7, §10.2)."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pexpect
import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


def _spawn_demo(tmp_path: Path) -> pexpect.spawn:
    """`hyp init --demo` in an 80×24 pseudo-terminal, HOME empty, the demo directory under `tmp_path`."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYP_", "CLAUDE_", "CODEX_", "TEXTUAL_"))}
    env.update(HOME=str(home), HYP_HOME=str(tmp_path / "real-hyp"), TMPDIR=str(tmp_path), TERM="xterm-256color",
               TEXTUAL_ANIMATIONS="none")
    env.pop("NO_COLOR", None)
    return pexpect.spawn(sys.executable, ["-m", "hypaware_tui", "init", "--demo"], env=env, cwd=str(REPO),
                         dimensions=(24, 80), encoding="utf-8", timeout=40)


def _enter_through_to_import(child: pexpect.spawn) -> None:
    """Each step up to the import: wait for its title, then press Enter (the default everywhere)."""
    for title in ("Get started", "Which assistants", "How much history", "Import the history",
                  "Write config and start import"):
        child.expect_exact(title)
        if title == "Get started":
            child.expect_exact("Found")  # the inventory has finished: detected clients are pre-checked
        child.send("\r")


def test_demo_wizard_in_a_pty(tmp_path: Path) -> None:
    child = _spawn_demo(tmp_path)
    try:
        _enter_through_to_import(child)
        child.expect_exact("Setup complete")
        child.expect_exact("First look")
        child.send("\r")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    # After the TUI has closed: the summary, capture line and next commands, as plain text.
    tail = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]", "", child.before or "")
    rows = {m.group(1): int(m.group(2).replace(",", "")) for m in
            re.finditer(r"^(Claude Code|Codex)\s+ok\s+[\d,]+\s+[\d,]+\s+([\d,]+)", tail, re.M)}
    assert rows.keys() == {"Claude Code", "Codex"} and all(n > 0 for n in rows.values()), tail
    assert "Capture   not started (demo)" in tail
    assert "Next      hyp init (to set up hyp with your own history)" in tail
    demo = re.search(r"Demo directory: (\S+)", tail)
    assert demo and Path(demo.group(1)).parent == tmp_path
    assert f"HYP_HOME={demo.group(1)}/hyp hyp query overview" in tail
    assert not (tmp_path / "real-hyp").exists()


def test_ctrl_c_in_a_pty_quits_with_130_and_leaves_nothing(tmp_path: Path) -> None:
    child = _spawn_demo(tmp_path)
    try:
        child.expect_exact("Get started")
        child.sendcontrol("c")
        child.expect_exact("Quit setup?")
        child.send("y")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 130
    assert "cancelled; nothing was written" in (child.before or "")
    assert not list(tmp_path.glob("hyp-demo-*")) and not (tmp_path / "real-hyp").exists()


def _wait_exit(child: pexpect.spawn, seconds: float) -> int | None:
    """The child's exit status once it has exited within `seconds`, else None (it is then killed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not child.ptyproc.isalive():
            return child.ptyproc.exitstatus if child.ptyproc.exitstatus is not None else -child.ptyproc.signalstatus
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.ptyproc.wait()
    return None


def _close_terminal(child: pexpect.spawn) -> None:
    """Close the master side of the pty, as a terminal window being closed does: the tty hangs up (writes fail
    with EIO, reads see end-of-file) and the process gets SIGHUP and SIGCONT. (pexpect's own close() would
    send signals itself.)"""
    child.ptyproc.fileobj.close()


def test_closing_the_terminal_during_the_import_exits_130_and_commits_nothing_half_written(tmp_path: Path) -> None:
    """wizard.md §8, "Terminal closed" during the import: stop after the batch, skip the daemon action, exit 130.
    Another hyp process holds the write lock, so the import is still running (waiting for its first commit)
    when the terminal goes away. Before the fix Textual's writer thread died on the first failed write, the
    next repaints blocked and `hyp init` stayed alive, idle, forever."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gen_corpus import generate

    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.storage import Storage

    generate(str(tmp_path), 1, seed=5, now=datetime.now(UTC))
    hyp_home = tmp_path / "hyp"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYP_", "CLAUDE_", "CODEX_", "TEXTUAL_"))}
    env.update(HOME=str(tmp_path / "home"), HYP_HOME=str(hyp_home), TERM="xterm-256color", TEXTUAL_ANIMATIONS="none")
    layout = Layout.resolve(env)
    held, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with Storage(layout).locked():
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    assert held.wait(10)
    child = pexpect.spawn(sys.executable, ["-m", "hypaware_tui", "init", "--no-daemon"], env=env, cwd=str(REPO),
                          dimensions=(24, 80), encoding="utf-8", timeout=40)
    try:
        _enter_through_to_import(child)
        child.expect_exact("waiting for another import")  # the import runs, blocked before its first commit
        _close_terminal(child)
        status = _wait_exit(child, 20)
    finally:
        release.set()
        holder.join()
    assert status == 130, "hyp init was still running 20 s after its terminal was closed" if status is None else status
    events = [json.loads(line) for line in (hyp_home / "logs" / "events.jsonl").read_text().splitlines()]
    finishes = {e["provider"]: e["status"] for e in events if e["event"] == "backfill.provider_finish"}
    assert finishes == {"claude": "cancelled", "codex": "cancelled"}, finishes
    assert not list((hyp_home / "cache").glob("**/*.parquet"))  # nothing committed, nothing half-written
    assert json.loads((hyp_home / "hypaware-config.json").read_text())["capture"]["enabled"] is False


def test_closing_the_terminal_on_done_exits(tmp_path: Path) -> None:
    """The same hang-up after the import, on Done: the wizard exits (130, wizard.md §8 "Anywhere") instead of
    hanging."""
    child = _spawn_demo(tmp_path)
    _enter_through_to_import(child)
    child.expect_exact("First look")
    _close_terminal(child)
    status = _wait_exit(child, 20)
    assert status == 130, "hyp init was still running 20 s after its terminal was closed" if status is None else status
