"""Shared helpers for the daemon tests (no tests here): realistic Claude Code transcript lines, isolated
homes, a real daemon subprocess, and dataset readers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from hypaware_tui.core.config import build_config_data, render_config
from hypaware_tui.core.paths import Layout

REPO = Path(__file__).resolve().parents[1]
PROJECT = "-home-ada-src-hyp"


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def claude_line(session: str, i: int, ts: datetime, *, role: str | None = None, agent: str | None = None) -> str:
    """One Claude Code message line (user on even i, assistant on odd i), as bytes of a real transcript."""
    role = role or ("user" if i % 2 == 0 else "assistant")
    uid = f"{session[:8]}-{agent or 'main'}-{i:05d}"
    base: dict[str, Any] = {
        "parentUuid": f"{session[:8]}-{agent or 'main'}-{i - 1:05d}" if i else None,
        "isSidechain": agent is not None,
        "userType": "external",
        "cwd": "/home/ada/src/hyp",
        "sessionId": session,
        "version": "2.1.3",
        "gitBranch": "main",
        "type": role,
        "uuid": uid,
        "timestamp": iso(ts),
    }
    if agent:
        base["agentId"] = agent
    if role == "user":
        base["message"] = {"role": "user", "content": f"please look at item {i} of the parser state"}
    else:
        base["requestId"] = f"req_{uid}"
        base["message"] = {
            "id": f"msg_{uid}",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "text", "text": f"Item {i}: the checkpoint offset moves forward only."},
                {"type": "tool_use", "id": f"toolu_{uid}", "name": "Read", "input": {"file_path": f"/x/{i}.py"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 10 + i, "output_tokens": 5 + i, "cache_read_input_tokens": 0,
                      "cache_creation_input_tokens": 0},
        }
    return json.dumps(base, separators=(",", ":")) + "\n"


def session_text(session: str, n: int, start: datetime, *, step_s: float = 7.0, first: int = 0) -> str:
    return "".join(claude_line(session, first + k, start + timedelta(seconds=step_s * k)) for k in range(n))


class Home:
    """An isolated HOME with a Claude Code config dir and a HYP_HOME, plus the env to run hyp in it."""

    def __init__(self, base: Path, *, retention_days: int = 0, capture: dict[str, Any] | None = None,
                 clients: dict[str, bool] | None = None) -> None:
        self.base = base
        self.home = base / "home"
        self.claude = self.home / ".claude"
        self.projects = self.claude / "projects" / PROJECT
        self.hyp = base / "hyp"
        self.layout = Layout(self.hyp)
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HYP_", "CLAUDE_", "CODEX_"))}
        self.env.update({
            "HOME": str(self.home),
            "HYP_HOME": str(self.hyp),
            "CLAUDE_CONFIG_DIR": str(self.claude),
            "CODEX_HOME": str(self.home / ".codex"),
            "PYTHONPATH": str(REPO),
            "NO_COLOR": "1",
        })
        self.write_config(retention_days=retention_days, capture=capture, clients=clients)

    def write_config(self, *, retention_days: int = 0, capture: dict[str, Any] | None = None,
                     clients: dict[str, bool] | None = None, enabled: bool = True) -> None:
        data = build_config_data(None, clients=clients or {"claude": True}, retention_days=retention_days,
                                 capture_enabled=enabled)
        data["capture"].update(capture or {})
        self.hyp.mkdir(parents=True, exist_ok=True)
        (self.hyp / "hypaware-config.json").write_text(render_config(data))

    def session(self, name: str) -> Path:
        self.projects.mkdir(parents=True, exist_ok=True)
        return self.projects / f"{name}.jsonl"

    def hyp_cmd(self, *args: str, timeout: float = 60, extra_env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, **(extra_env or {}))
        return subprocess.run([sys.executable, "-m", "hypaware_tui", *args], env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def spawn_daemon(self, *, extra_env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[bytes]:
        env = dict(self.env, **(extra_env or {}))
        log = open(self.base / "daemon-stderr.log", "ab")  # noqa: SIM115
        return subprocess.Popen([sys.executable, "-m", "hypaware_tui", "daemon", "run"], env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, **popen)

    def status(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.layout.daemon_status.read_text())
        except (OSError, ValueError):
            return None

    def wait_state(self, *states: str, timeout: float = 20.0, pid: int | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.status()
            if st and st.get("state") in states and (pid is None or st.get("pid") == pid):
                return st
            time.sleep(0.05)
        raise AssertionError(f"daemon never reached {states}; status={self.status()}; log:\n{self.log_text()}")

    def log_text(self) -> str:
        parts = []
        for p in (self.layout.daemon_log, self.base / "daemon-stderr.log"):
            if p.exists():
                parts.append(p.read_text(errors="replace")[-4000:])
        return "\n".join(parts)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def dataset(layout: Layout) -> pl.DataFrame:
    """Every stored row (duplicates kept, so a double write shows)."""
    root = layout.dataset_root
    files = sorted(root.glob("source=*/date=*/*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="vertical_relaxed")


def part_ids(layout: Layout) -> Counter[str]:
    df = dataset(layout)
    return Counter(df["part_id"].to_list()) if df.height else Counter()


def rows_by_part(layout: Layout) -> dict[str, dict[str, Any]]:
    df = dataset(layout)
    return {r["part_id"]: r for r in df.iter_rows(named=True)} if df.height else {}


def wait_for(pred: Any, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def now_utc() -> datetime:
    return datetime.now(UTC)
