"""Shared fixtures for the `hyp init` tests: a fixture machine made from the bundled demo transcripts (both
clients, real formats), a fixed clock, a fake service manager and a fake daemon spawner that record calls.

Everything lives under the test's tmp dir: HOME, the clients' roots and HYP_HOME (= ~/.hyp, so screens show
`~/.hyp` and snapshots do not depend on the tmp path)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypaware_tui.core.daemon import control
from hypaware_tui.core.daemon.service import FakeServiceManager
from hypaware_tui.core.demo import create_demo_dir
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.plan import gather_machine_state
from hypaware_tui.core.timeutil import parse_iso_us

NOW_US = parse_iso_us("2026-06-01T12:00:00Z")
FIXED_CLOCK = 1000.0


def fixed_clock() -> float:
    return FIXED_CLOCK


def fixed_now() -> int:
    return NOW_US


@dataclass
class Machine:
    root: Path
    env: dict[str, str]
    layout: Layout
    service: FakeServiceManager
    spawner: FakeSpawner
    running_pid: list[int | None] = field(default_factory=lambda: [None])

    def process_table(self, layout: Layout) -> int | None:
        return self.running_pid[0]

    @property
    def home(self) -> Path:
        return Path(self.env["HOME"])


class FakeSpawner:
    """Stands in for `spawn_detached`: records the call and reports a daemon that is up at once (its pid is
    the test process, which is alive)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, layout: Layout, env: Mapping[str, str]) -> control.Spawned:
        self.calls.append(str(layout.home))
        control.write_status_file(layout, {"pid": os.getpid(), "state": "running", "mode": "detached",
                                           "updated_at": control.utc_iso(time.time())})
        return control.Spawned(os.getpid(), lambda: None)


def make_machine(tmp_path: Path, *, clients: tuple[str, ...] = ("claude", "codex"), now_us: int = NOW_US) -> Machine:
    """A HOME with the demo transcripts for `clients` (the others' roots do not exist)."""
    demo = create_demo_dir(now_us, tmp_root=str(tmp_path))
    home = demo.home
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYP_", "CLAUDE_", "CODEX_"))}
    env.pop("NO_COLOR", None)
    env.update(HOME=str(home), CLAUDE_CONFIG_DIR=str(demo.claude_dir), CODEX_HOME=str(demo.codex_home),
               HYP_HOME=str(home / ".hyp"), TZ="UTC")
    import shutil

    if "claude" not in clients:
        shutil.rmtree(demo.claude_dir)
    if "codex" not in clients:
        shutil.rmtree(demo.codex_home)
    layout = Layout.resolve(env)
    service = FakeServiceManager(tmp_path / "unit" / "hypaware.service", available=True)
    return Machine(root=demo.root, env=env, layout=layout, service=service, spawner=FakeSpawner())


def tree_listing(*roots: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of everything under the roots (missing roots list nothing)."""
    out = []
    for root in roots:
        if not root.exists():
            out.append((str(root), -1, -1))
            continue
        for p in sorted(root.rglob("*")):
            st = p.lstat()
            out.append((str(p), st.st_size if p.is_file() else 0, st.st_mtime_ns))
    return out


def wizard_settings(m: Machine, **overrides: Any):
    """WizardSettings over the fixture machine, deterministic: fixed clock and `now`, fakes for the daemon."""
    from hypaware_tui.app import WizardSettings

    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    kwargs: dict[str, Any] = dict(
        layout=m.layout, env=m.env, machine=machine, service_manager=m.service, spawner=m.spawner,
        clock=fixed_clock, now_us=fixed_now, first_look=None,
    )
    kwargs.update(overrides)
    return WizardSettings(**kwargs)
