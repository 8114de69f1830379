"""End to end in a real pseudo-terminal: `hyp init --demo`, Enter through every step, then the plain-text
summary left in the scrollback after the TUI closes (wizard.md §6.7, §10.2)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pexpect
import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


def test_demo_wizard_in_a_pty(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYP_", "CLAUDE_", "CODEX_", "TEXTUAL_"))}
    env.update(HOME=str(home), HYP_HOME=str(tmp_path / "real-hyp"), TMPDIR=str(tmp_path), TERM="xterm-256color",
               TEXTUAL_ANIMATIONS="none")
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(sys.executable, ["-m", "hypaware_tui", "init", "--demo"], env=env, cwd=str(REPO),
                          dimensions=(24, 80), encoding="utf-8", timeout=40)
    try:
        # Each step: wait for its title, then press Enter (the default everywhere).
        for title in ("Get started", "Which assistants", "How much history", "Import the history",
                      "Write config and start import"):
            child.expect_exact(title)
            if title == "Get started":
                child.expect_exact("Found")  # the inventory has finished: detected clients are pre-checked
            child.send("\r")
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
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYP_", "CLAUDE_", "CODEX_", "TEXTUAL_"))}
    env.update(HOME=str(home), HYP_HOME=str(tmp_path / "real-hyp"), TMPDIR=str(tmp_path), TERM="xterm-256color",
               TEXTUAL_ANIMATIONS="none")
    child = pexpect.spawn(sys.executable, ["-m", "hypaware_tui", "init", "--demo"], env=env, cwd=str(REPO),
                          dimensions=(24, 80), encoding="utf-8", timeout=40)
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
