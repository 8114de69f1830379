"""A small fake importer implementing the importer contract, for the runner and `hyp backfill` tests.

Its files are `*.jsonl` under `<root>/` (root = the config root, else `$FAKE_<NAME>_ROOT`, else
`$HOME/.fake-<name>`). Lines:

* `{"type": "msg", "session": "s1", "id": "m1", "ts": "2026-05-01T10:00:00Z", "text": "hi"}` -> one row
* `{"type": "noise"}` -> no row (`not_a_message`)
* `{"type": "boom"}` -> the parser raises (a per-file error)
* `{"type": "die"}` -> in a parse worker, the worker process kills itself with SIGKILL (what the OOM killer
  does); in the committing process, a noise line
* `{"type": "die_sending"}` -> in a parse worker, the worker writes the start of a 1 MB message to the pool's
  result pipe and then kills itself with SIGKILL (killed while sending a large result); elsewhere, noise
* `{"type": "shout"}` -> in a parse worker, `WORKER-SHOUT` is written to file descriptor 2 (what a library's
  warning would do); in the committing process, a noise line
* anything that is not JSON -> `malformed` (the generic parser counts it)

`install(mode)` puts fakes named `claude` and `codex` in the importer registry (used in-process, and by the
launcher script of the CLI tests, which runs the real `hyp` main in a subprocess). With `mode="codex-raises"`
the codex fake raises from `discover` (outside per-file handling); with `mode="slow"` every message line
takes 2 ms.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hypaware_tui.core.checkpoints import path_hash
from hypaware_tui.core.timeutil import parse_iso_us
from hypaware_tui.importers.base import (
    Discovery,
    FileInventory,
    Importer,
    Parser,
    ParseStats,
    SourceFile,
    Window,
    head_tail_timestamps,
)

TESTS_DIR = Path(__file__).resolve().parent


def _line_ts(obj: dict[str, Any]) -> int | None:
    return parse_iso_us(obj.get("ts"))


def _die_sending() -> None:
    """Write the length header and the first 4 KiB of a 1 MB message to the result pipe of the pool this worker
    serves, then die: the executor's manager thread is left reading a message that never ends."""
    import gc
    import struct
    from multiprocessing.queues import SimpleQueue

    (results,) = [o for o in gc.get_objects() if isinstance(o, SimpleQueue)]
    os.write(results._writer.fileno(), struct.pack("!i", 1 << 20) + b"x" * 4096)
    time.sleep(0.3)  # (the manager thread starts reading it)
    os.kill(os.getpid(), signal.SIGKILL)


class FakeParser(Parser):
    delay_s = 0.0  # "slow" mode: sleep per message line, so a signal can land mid-run

    def fresh_state(self) -> dict[str, Any]:
        return {"index": 0}

    def own_timestamp(self, obj: dict[str, Any]) -> int | None:
        return _line_ts(obj)

    def handle(self, obj: dict[str, Any], offset: int) -> None:
        typ = obj.get("type")
        self.count_type(str(typ))
        if typ == "boom":
            raise RuntimeError(f"cannot parse {self.file.path}")
        if typ == "die" and multiprocessing.parent_process() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        if typ == "die_sending" and multiprocessing.parent_process() is not None:
            _die_sending()
        if typ == "shout" and multiprocessing.parent_process() is not None:
            os.write(2, b"WORKER-SHOUT\n")
        if typ == "nap" and multiprocessing.parent_process() is not None:  # a slow line in a parse worker
            time.sleep(float(obj.get("s", 0.02)))
        if typ != "msg":
            self.stats.lines_skipped["not_a_message"] += 1
            return
        if self.delay_s:
            time.sleep(self.delay_s)
        ts = _line_ts(obj)
        if ts is not None:
            self.note_timestamp(ts)
        else:
            ts, _src = self.inherited_ts()
        sid = obj.get("session") or "s"
        mid = obj.get("id") or f"{self.file.path_hash}:{offset}"
        idx = self.state["index"]
        self.state["index"] = idx + 1
        client = self.file.client
        row = {
            "schema_version": 1,
            "session_id": sid,
            "conversation_id": sid,
            "provider": "anthropic" if client == "claude" else "openai",
            "conversation_started_at": ts,
            "conversation_source": client,
            "client_name": client,
            "message_id": mid,
            "previous_message_id": "[]",
            "message_index": idx,
            "message_created_at": ts,
            "role": "user",
            "part_id": f"{mid}#0",
            "part_index": 0,
            "part_type": "text",
            "content_text": obj.get("text", ""),
            "attributes": {"gateway": {"identity_source": "native"}},
            "source_path_hash": self.file.path_hash,
            "source_offset": offset,
            "record_format": "claude-jsonl" if client == "claude" else "codex-envelope",
        }
        self.emit([row])


class FakeImporter(Importer):
    def __init__(self, name: str, *, raise_in: str | None = None) -> None:
        self.name = name
        self.display_name = {"claude": "Claude Code", "codex": "Codex"}.get(name, name)
        self.provider = "anthropic" if name == "claude" else "openai"
        self.raise_in = raise_in

    def roots(self, config_root: str | None, env: Mapping[str, str]) -> list[str]:
        if config_root:
            return [config_root]
        raw = env.get(f"FAKE_{self.name.upper()}_ROOT")
        if raw:
            return [os.path.abspath(raw)]
        return [os.path.join(env.get("HOME") or os.path.expanduser("~"), f".fake-{self.name}")]

    def discover(self, roots: list[str]) -> Discovery:
        if self.raise_in == "discover":
            raise RuntimeError("simulated importer crash")
        disc = Discovery()
        seen: set[str] = set()
        for root in roots:
            if not os.path.isdir(root):
                continue
            for dirpath, dirnames, names in os.walk(root):
                dirnames.sort()
                for n in sorted(names):
                    if not n.endswith(".jsonl"):
                        continue
                    real = os.path.realpath(os.path.join(dirpath, n))
                    if real in seen:
                        continue
                    seen.add(real)
                    st = os.stat(real)
                    disc.files.append(
                        SourceFile(
                            client=self.name,
                            path=real,
                            path_hash=path_hash(real),
                            read_mode="incremental",
                            is_session=not n.startswith("agent-"),
                            size=st.st_size,
                            mtime_ns=st.st_mtime_ns,
                            device=st.st_dev,
                            inode=st.st_ino,
                        )
                    )
        return disc

    def new_parser(self, file: SourceFile, state: dict[str, Any] | None, window: Window, stats: ParseStats) -> Parser:
        return FakeParser(file, state, window, stats)

    def inventory_file(self, file: SourceFile, size: int, mtime_ns: int) -> FileInventory:
        first, last = head_tail_timestamps(file.path, size, _line_ts)
        return FileInventory(file=file, size=size, mtime_ns=mtime_ns, first_ts=first, last_ts=last)


def fakes(mode: str = "ok") -> dict[str, Importer]:
    return {
        "claude": FakeImporter("claude"),
        "codex": FakeImporter("codex", raise_in="discover" if mode == "codex-raises" else None),
    }


def install(mode: str = "ok") -> None:
    """Replace the registry's importers with fakes (in this process)."""
    import hypaware_tui.importers as registry

    if mode == "slow":
        FakeParser.delay_s = 0.002
    registry._cache.update(fakes(mode))


def write_session(
    path: str | os.PathLike[str],
    session: str,
    times: list[str],
    *,
    noise: int = 0,
    malformed: int = 0,
    prefix: str | None = None,
    boom_at: int | None = None,
    text: str = "hello",
) -> int:
    """Write a transcript: one `msg` line per timestamp (ids `<prefix><i>`), then `noise` noise lines and
    `malformed` broken lines. Returns the number of message lines."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    prefix = prefix if prefix is not None else f"{session}-m"
    lines = []
    for i, ts in enumerate(times):
        if boom_at is not None and i == boom_at:
            lines.append(json.dumps({"type": "boom"}))
        lines.append(json.dumps({"type": "msg", "session": session, "id": f"{prefix}{i}", "ts": ts, "text": text}))
    lines += [json.dumps({"type": "noise", "ts": times[-1] if times else None})] * noise
    lines += ["{not json"] * malformed
    p.write_text("\n".join(lines) + "\n")
    return len(times)


LAUNCHER = """\
import sys
sys.path.insert(0, {tests!r})
import backfill_fakes
backfill_fakes.install({mode!r})
from hypaware_tui.cli import main
if __name__ == "__main__":  # parse workers are spawned: they must not run the command again
    sys.argv[0] = "hyp"
    main()
"""


def write_launcher(directory: str | os.PathLike[str], mode: str = "ok") -> str:
    """A script that runs the real `hyp` main with the fakes installed (for subprocess CLI tests)."""
    path = Path(directory) / f"hyp_fake_{mode.replace('-', '_')}.py"
    path.write_text(LAUNCHER.format(tests=str(TESTS_DIR), mode=mode))
    return str(path)
