"""`hyp init --demo` (wizard.md §10.2): a throwaway HOME with the bundled sample transcripts.

The samples in `hypaware_tui/demo/data/` are written as if the user's home were `/home/demo`. Copying them
1. shifts every timestamp by one constant so the newest is one hour before `now` (relative spacing kept),
2. rewrites the `/home/demo` prefix of working directories to the demo home (so repos show as `~/…`),
3. lays Codex rollouts out as Codex does (`sessions/YYYY/MM/DD/rollout-<local time>-<id>.jsonl`) and
   gives every file the mtime of its newest line.
Lines that are not JSON (the deliberately malformed sample line) are copied byte for byte.

Nothing here touches the real HOME or HYP_HOME: the caller points HOME, CLAUDE_CONFIG_DIR, CODEX_HOME and
HYP_HOME into the demo directory with `demo_env`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypaware_tui.core import prog
from hypaware_tui.core.fmt import escape_char, printable
from hypaware_tui.core.timeutil import parse_iso_us

DATA_DIR = Path(__file__).resolve().parent.parent / "demo" / "data"
SAMPLE_HOME = "/home/demo"
PREFIX = "hyp-demo-"


@dataclass(frozen=True)
class DemoDir:
    """A created demo directory. `hyp_home` does not exist until the commit point creates it."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def claude_dir(self) -> Path:
        return self.home / ".claude"

    @property
    def codex_home(self) -> Path:
        return self.home / ".codex"

    @property
    def hyp_home(self) -> Path:
        return self.root / "hyp"

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` with HOME, CLAUDE_CONFIG_DIR, CODEX_HOME and HYP_HOME pointed inside the demo directory."""
        env = dict(base)
        env.update(
            HOME=str(self.home),
            CLAUDE_CONFIG_DIR=str(self.claude_dir),
            CODEX_HOME=str(self.codex_home),
            HYP_HOME=str(self.hyp_home),
        )
        return env

    def next_commands(self) -> list[str]:
        """What the end of a demo run prints: where it is, how to look at it, how to delete it. The commands
        quote the paths (`shell_quote`), so they paste as they read: the folder is in the system temp area
        (TMPDIR), and with TMPDIR `/tmp/t [old]` the `rm -rf /tmp/t [old]/hyp-demo-…` to copy deleted /tmp/t."""
        return [
            f"Demo directory: {self.root}",
            f"Look at it:     HYP_HOME={shell_quote(str(self.hyp_home))} {prog.NAME} query overview",
            f"Delete it:      rm -rf {shell_quote(str(self.root))}",
        ]


def shell_quote(text: str) -> str:
    """`text` as one word of a POSIX shell command, to paste: as it is when no character is special
    (`/tmp/hyp-demo-x1`), else in single quotes (`'/tmp/t [old]/hyp-demo-x1'`). A control character (or a byte of
    a path that is not UTF-8) cannot be pasted nor shown: that word is written `$'…'` with the character as an
    escape (`$'/tmp/a\\x1bb'`), which bash and zsh read back as the same path."""
    if printable(text) == text:
        return shlex.quote(text)
    out = []
    for char in text:
        if char in "\\'":
            out.append("\\" + char)
        elif printable(char) != char:
            out.append(escape_char(char))
        else:
            out.append(char)
    return "$'" + "".join(out) + "'"


def _format_iso(us: int) -> str:
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _sample_files() -> list[Path]:
    return sorted(p for p in DATA_DIR.rglob("*") if p.is_file())


def _line_timestamps(obj: dict[str, Any]) -> list[int]:
    out = []
    for holder in (obj, obj.get("payload") if isinstance(obj.get("payload"), dict) else None):
        if holder is not None:
            us = parse_iso_us(holder.get("timestamp"))
            if us is not None:
                out.append(us)
    return out


def newest_sample_us() -> int:
    """The newest timestamp in the bundled samples."""
    newest = 0
    for path in _sample_files():
        if path.suffix != ".jsonl":
            continue
        for raw in path.read_bytes().split(b"\n"):
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                newest = max([newest, *_line_timestamps(obj)])
    return newest


def _rewrite(obj: dict[str, Any], delta_us: int, home: str) -> None:
    for holder in (obj, obj.get("payload") if isinstance(obj.get("payload"), dict) else None):
        if holder is None:
            continue
        us = parse_iso_us(holder.get("timestamp"))
        if us is not None:
            holder["timestamp"] = _format_iso(us + delta_us)
        cwd = holder.get("cwd")
        if isinstance(cwd, str) and (cwd == SAMPLE_HOME or cwd.startswith(SAMPLE_HOME + "/")):
            holder["cwd"] = home + cwd[len(SAMPLE_HOME):]


def _copy_jsonl(src: Path, dst: Path, delta_us: int, home: str) -> tuple[int | None, int | None, str | None]:
    """Copy one transcript, shifted. Returns (first_us, newest_us, codex thread id)."""
    out: list[bytes] = []
    first = newest = None
    thread_id = None
    for raw in src.read_bytes().split(b"\n")[:-1]:
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            out.append(raw)
            continue
        _rewrite(obj, delta_us, home)
        for us in _line_timestamps(obj):
            first = us if first is None else first
            newest = us if newest is None else max(newest, us)
        if obj.get("type") == "session_meta" and thread_id is None:
            thread_id = obj["payload"].get("id")
        out.append(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(b"".join(line + b"\n" for line in out))
    return first, newest, thread_id


def _project_dir_name(cwd: str) -> str:
    return cwd.replace("/", "-").replace(".", "-").replace("\\", "-").replace(":", "-")


def create_demo_dir(now_us: int, *, tmp_root: str | None = None) -> DemoDir:
    """Create `hyp-demo-<random>` in the system temp area (or `tmp_root`) and copy the samples into its
    `home/.claude/projects/…` and `home/.codex/sessions/…`, shifted so the newest line is one hour old."""
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=tmp_root))
    demo = DemoDir(root)
    try:
        _populate(demo, now_us)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return demo


def _populate(demo: DemoDir, now_us: int) -> None:
    delta_us = (now_us - 3_600_000_000) - newest_sample_us()
    delta_us -= delta_us % 1000  # whole milliseconds: the samples' precision
    home = str(demo.home)
    claude_src = DATA_DIR / "claude" / "projects"
    codex_src = DATA_DIR / "codex" / "sessions"
    for src in _sample_files():
        rel = src.relative_to(DATA_DIR)
        if src.is_relative_to(claude_src):
            parts = list(src.relative_to(claude_src).parts)
            if parts[0].startswith(_project_dir_name(SAMPLE_HOME)):
                parts[0] = _project_dir_name(home) + parts[0][len(_project_dir_name(SAMPLE_HOME)):]
            dst = demo.claude_dir.joinpath("projects", *parts)
            if src.suffix == ".jsonl":
                _, newest, _ = _copy_jsonl(src, dst, delta_us, home)
            else:  # the subagent sidecar: no timestamps
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
                newest = None
        elif src.is_relative_to(codex_src):
            tmp = demo.codex_home / ".incoming" / src.name
            first, newest, thread_id = _copy_jsonl(src, tmp, delta_us, home)
            start = datetime.fromtimestamp((first or now_us) / 1e6).astimezone()
            name = f"rollout-{start:%Y-%m-%dT%H-%M-%S}-{thread_id or src.stem}.jsonl"
            dst = demo.codex_home / "sessions" / f"{start:%Y}" / f"{start:%m}" / f"{start:%d}" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dst)
        else:  # pragma: no cover - nothing else is bundled
            raise RuntimeError(f"unexpected demo sample {rel}")
        if newest is not None:
            os.utime(dst, ns=(newest * 1000, newest * 1000))
    shutil.rmtree(demo.codex_home / ".incoming", ignore_errors=True)


def remove_demo_dir(demo: DemoDir) -> None:
    """Delete a demo directory (used by `--demo --dry-run` on exit)."""
    shutil.rmtree(demo.root, ignore_errors=True)
