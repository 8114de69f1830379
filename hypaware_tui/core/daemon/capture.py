"""Capture start per client, `HYP_HOME/state/capture.json` (daemon.md §3.2).

```json
{"claude": {"capture_since": "2026-08-30T12:15:02Z", "set_by": "wizard"}}
```

* The wizard's Import step calls `record_capture_start(layout, enabled, until_us, previously_enabled)`:
  `capture_since = until` for every enabled client that has no entry or was disabled before; other entries
  are kept (Import again and Reconfigure do not move them).
* The daemon calls `ensure_capture_start(layout, clients, now_us)` for enabled clients without an entry
  (a hand-edited config): `set_by: "daemon"`, its own start time. A capture.json it cannot read
  (`capture_problem`) it first sets aside (`set_aside`), and gives the clients the earliest time the setup
  left behind (`recovered_since_us`) instead: every entry was lost, not just one never made.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hypaware_tui.core.paths import Layout, atomic_write_bytes
from hypaware_tui.core.timeutil import parse_iso_us, us_to_iso

SET_BY = ("wizard", "daemon")
GRACE_US = 5 * 60 * 1_000_000  # daemon.md §2: lines written shortly after the timestamp they carry


@dataclass(frozen=True)
class CaptureStart:
    capture_since_us: int
    set_by: str

    def to_json(self) -> dict[str, str]:
        return {"capture_since": us_to_iso(self.capture_since_us) or "", "set_by": self.set_by}


def capture_problem(layout: Layout) -> str | None:
    """Why capture.json cannot be used (not JSON, not an object of entries, unreadable); None when it is
    fine or missing. Read-only."""
    try:
        raw = json.loads(layout.capture_json.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError:
        return "not valid JSON"
    return None if isinstance(raw, dict) else "not a JSON object"


def set_aside(layout: Layout, now: float) -> Path:
    """Move a damaged capture.json aside, as `capture.json.bad-<UTC stamp>` next to it (kept, not overwritten:
    it may still be read by a person). Returns the new path."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = layout.capture_json.with_name(f"{layout.capture_json.name}.bad-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = layout.capture_json.with_name(f"{layout.capture_json.name}.bad-{stamp}-{n}")
    os.replace(layout.capture_json, dest)
    return dest


def recovered_since_us(layout: Layout, oldest_checkpoint_us: int | None, now_us: int) -> int:
    """The capture start for clients whose entries were lost with a damaged capture.json: the earliest instant
    this HYP_HOME records of its setup, not the daemon's start (which would miss every line written between
    the setup and now in a file the backfill did not checkpoint). The setup wrote the config, capture.json
    and the checkpoints of the files it imported, so each of their times is at or after it, and the earliest
    is the nearest: the config's and the damaged file's last change, the oldest checkpoint's update. Never
    later than `now_us`."""
    times = [now_us]
    for path in (layout.config, layout.capture_json):
        with contextlib.suppress(OSError):
            times.append(path.stat().st_mtime_ns // 1000)
    if oldest_checkpoint_us is not None:
        times.append(oldest_checkpoint_us)
    return min(times)


def read_capture(layout: Layout) -> dict[str, CaptureStart]:
    """The valid entries of capture.json ({} when missing or unreadable). Read-only."""
    try:
        raw = json.loads(layout.capture_json.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    out: dict[str, CaptureStart] = {}
    for client, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        since = parse_iso_us(entry.get("capture_since"))
        set_by = entry.get("set_by")
        if since is None:
            continue
        out[client] = CaptureStart(since, set_by if set_by in SET_BY else "wizard")
    return out


def write_capture(layout: Layout, entries: dict[str, CaptureStart]) -> None:
    data = {client: entries[client].to_json() for client in sorted(entries)}
    atomic_write_bytes(layout.capture_json, (json.dumps(data, indent=2) + "\n").encode())


def record_capture_start(
    layout: Layout,
    enabled: Iterable[str],
    until_us: int,
    previously_enabled: Iterable[str] = (),
) -> dict[str, CaptureStart]:
    """The wizard's rule. Returns the entries after the update (the file is written only when it changes)."""
    entries = read_capture(layout)
    before = dict(entries)
    prev = set(previously_enabled)
    for client in enabled:
        if client not in entries or client not in prev:
            entries[client] = CaptureStart(until_us, "wizard")
    if entries != before or not layout.capture_json.exists():
        write_capture(layout, entries)
    return entries


def ensure_capture_start(layout: Layout, clients: Iterable[str], now_us: int) -> dict[str, CaptureStart]:
    """The daemon's rule for enabled clients without an entry."""
    entries = read_capture(layout)
    missing = [c for c in clients if c not in entries]
    if missing:
        for client in missing:
            entries[client] = CaptureStart(now_us, "daemon")
        write_capture(layout, entries)
    return entries


def capture_bound_us(start: CaptureStart | None) -> int | None:
    """`capture_since - 5 min`: where the daemon's first pass over a file begins (before the floor applies)."""
    return start.capture_since_us - GRACE_US if start is not None else None


def daemon_since_us(start: CaptureStart | None, floor_us: int | None) -> int | None:
    """Lower bound for a file without a checkpoint: `capture_since - 5 min`, not before the floor."""
    bound = capture_bound_us(start)
    if bound is None:
        return floor_us
    if floor_us is None:
        return bound
    return max(bound, floor_us)
