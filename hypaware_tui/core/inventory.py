"""The fast inventory of every client's history (wizard.md §5), shared by `hyp backfill list/plan`, the
wizard's Clients / Retention / Review screens and `hyp init --dry-run`.

One `build_inventory` call detects each client, discovers its files and reads a bounded head and tail of
each (never a whole file). Everything else — totals, in-window figures for any `since`, JSON shapes — is
computed in memory from that one result by `figures` / `client_figures`, so a screen can recompute previews
as the user moves the cursor without rescanning, and every command shows the same numbers.

In-window figures are upper-bound estimates: a file counts when its newest timestamp is ≥ `since` (and, with
an `until`, its oldest is ≤ `until`), with its whole size.

No UI imports here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hypaware_tui.core.timeutil import us_to_iso
from hypaware_tui.importers import DISPLAY_NAMES, KNOWN_CLIENTS, get_importer
from hypaware_tui.importers.base import Detection, FileError, FileInventory, Importer

#: progress callback: (client, files scanned so far for that client, files found for that client)
InventoryProgress = Callable[[str, int, int], None]

_PROGRESS_INTERVAL_S = 0.1


@dataclass
class ClientInventory:
    """One client's detection, files and cheap per-file facts."""

    client: str
    name: str
    detection: Detection
    files: list[FileInventory] = field(default_factory=list)
    failed: list[FileError] = field(default_factory=list)
    detected_sources: list[str] = field(default_factory=list)
    error: str | None = None  # discovery itself failed (the message names what to do)
    session_keys: dict[str, str] = field(default_factory=dict)  # path_hash -> session key (is_session files)
    complete: bool = True  # False when cancelled before every file was inventoried

    @property
    def detected(self) -> bool:
        return self.detection.detected

    @property
    def root(self) -> str | None:
        return self.detection.root

    @property
    def roots(self) -> list[str]:
        """Every root the files are read from (the existing, readable ones: `root` is the first; two with
        `CLAUDE_CONFIG_DIR="a, b"`); when none is, the roots looked at."""
        found = [r for r in self.detection.roots if os.path.isdir(r) and os.access(r, os.R_OK | os.X_OK)]
        return found or list(self.detection.roots) or ([self.root] if self.root else [])

    @property
    def reason(self) -> str | None:
        return self.detection.reason


@dataclass
class Inventory:
    clients: dict[str, ClientInventory]
    scanned_at_us: int
    duration_s: float = 0.0

    def __getitem__(self, client: str) -> ClientInventory:
        return self.clients[client]

    def __iter__(self):
        return iter(self.clients.values())


@dataclass(frozen=True)
class Figures:
    """files / sessions / bytes / oldest / newest of a set of files (µs timestamps)."""

    files: int = 0
    sessions: int = 0
    bytes: int = 0
    oldest_us: int | None = None
    newest_us: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "sessions": self.sessions,
            "bytes": self.bytes,
            "oldest": us_to_iso(self.oldest_us),
            "newest": us_to_iso(self.newest_us),
        }


# --------------------------------------------------------------------------------------------- scanning


def config_root(config: Any, client: str) -> str | None:
    """The `root` configured for a client (cli.md §2), tolerating a missing config or entry."""
    if config is None:
        return None
    clients = getattr(config, "clients", None)
    if clients is None and isinstance(config, Mapping):
        clients = config.get("clients")
    if not clients:
        return None
    entry = clients.get(client) if isinstance(clients, Mapping) else None
    if entry is None:
        return None
    root = getattr(entry, "root", None)
    if root is None and isinstance(entry, Mapping):
        root = entry.get("root")
    return root or None


def inventory_client(
    importer: Importer,
    *,
    config_root_path: str | None = None,
    env: Mapping[str, str] = os.environ,
    progress: InventoryProgress | None = None,
    cancel: threading.Event | None = None,
    timestamps: bool = True,
) -> ClientInventory:
    """Detect, discover and inventory one client. Never raises for a bad file: unreadable files land in
    `failed`; a discovery crash lands in `error`. `timestamps=False`: the files' figures from discovery's
    stat alone, no file opened (first/last timestamps unknown, so `oldest_us`/`newest_us` are mtimes)."""
    name = importer.name
    try:
        detection = importer.detect(config_root_path, env)
    except Exception as exc:  # a broken importer must not break list/plan/the wizard
        detection = Detection(False, None, f"detection failed: {exc}", ())
    ci = ClientInventory(client=name, name=DISPLAY_NAMES.get(name, importer.display_name), detection=detection)
    if not detection.detected:
        return ci
    try:
        discovery = importer.discover(list(detection.roots) or [detection.root])
    except Exception as exc:
        ci.error = f"could not list {ci.name} history: {type(exc).__name__}: {exc}"
        return ci
    ci.failed.extend(discovery.failed)
    ci.detected_sources.extend(discovery.detected_sources)
    total = len(discovery.files)
    last = 0.0
    if progress is not None:
        progress(name, 0, total)
    for i, f in enumerate(discovery.files, 1):
        if cancel is not None and cancel.is_set():
            ci.complete = False
            break
        try:
            if not timestamps and f.device is not None:  # (discovery stat'ed it)
                inv = FileInventory(file=f, size=f.size, mtime_ns=f.mtime_ns, first_ts=None, last_ts=None)
            else:
                st = os.stat(f.path)
                inv = importer.inventory_file(f, st.st_size, st.st_mtime_ns)
        except OSError as exc:
            ci.failed.append(FileError(f.path_hash, f"cannot read file: {exc.strerror or exc}"))
        except Exception as exc:  # an importer bug on one odd file: report it, keep the file by its stat
            ci.failed.append(FileError(f.path_hash, f"could not inventory file: {type(exc).__name__}: {exc}"))
        else:
            ci.files.append(inv)
            if f.is_session:
                ci.session_keys[f.path_hash] = importer.session_key(f)
        if progress is not None:
            now = time.monotonic()
            if now - last >= _PROGRESS_INTERVAL_S or i == total:
                last = now
                progress(name, i, total)
    return ci


def build_inventory(
    clients: Iterable[str] = KNOWN_CLIENTS,
    *,
    config: Any = None,
    env: Mapping[str, str] = os.environ,
    importers: Mapping[str, Importer] | None = None,
    progress: InventoryProgress | None = None,
    cancel: threading.Event | None = None,
    timestamps: bool = True,
) -> Inventory:
    """Inventory the named clients (default: all known), in order (`timestamps`: see `inventory_client`)."""
    from hypaware_tui.core.timeutil import now_us

    started = time.monotonic()
    at = now_us()
    out: dict[str, ClientInventory] = {}
    for client in clients:
        if client in out:
            continue
        try:
            importer = importers[client] if importers is not None else get_importer(client)
        except Exception as exc:  # a missing or broken importer module: report it, keep the others
            out[client] = ClientInventory(
                client=client,
                name=DISPLAY_NAMES.get(client, client),
                detection=Detection(False, None, f"importer unavailable: {type(exc).__name__}: {exc}", ()),
            )
            continue
        out[client] = inventory_client(
            importer, config_root_path=config_root(config, client), env=env, progress=progress, cancel=cancel,
            timestamps=timestamps,
        )
    return Inventory(clients=out, scanned_at_us=at, duration_s=time.monotonic() - started)


# --------------------------------------------------------------------------------------------- figures


def before_window(fi: FileInventory, since_us: int | None) -> bool:
    """Whether a file ends before `since`: its newest timestamp (the last one of its bounded tail, its mtime
    when none was found there) is earlier. Such a file is not "in window" on the Retention and Review screens,
    in `hyp backfill plan` and `hyp init --dry-run`, and it is "older, not imported"; and an import given the
    inventory does not read it when it has no checkpoint and its mtime is before `since` too
    (`runner._run_provider`), so that what these show and what the import reads agree by construction.
    `hyp backfill`, which has no inventory, dates such a file by the same tail scan (`Importer.last_timestamp`,
    `runner._dated_before_window`)."""
    return since_us is not None and fi.newest_us < since_us


def _span(fi: FileInventory, since_us: int | None, until_us: int | None,
          beyond_us: int | None) -> tuple[int, int] | None:
    """The part of a file's first-to-last stamps that the import may reach inside the window (an upper bound),
    or None when it imports nothing of the file. An incremental pass stops at the first line stamped after
    `until` and not after `beyond_us` (see `client_figures`):
    - a file whose first stamp is after `until` is stopped at that line (nothing imported) unless that stamp
      is after `beyond_us` (its first lines are kept);
    - a file that starts in the window and whose last stamp is after `until` but not after `beyond_us` is
      stopped at that last line at the latest: nothing after `until` is kept, so its span ends at `until`;
    - one whose last stamp is after `beyond_us` may reach it (when no line stamped between `until` and
      `beyond_us` comes first; only the first and last stamps are known), so that stamp is shown.
    A file whose first line gave no stamp (none in the bounded head) is counted: nothing says the import stops
    before it."""
    if before_window(fi, since_us):
        return None
    lo, hi = fi.oldest_us, fi.newest_us
    if until_us is not None:
        if fi.first_ts is not None and lo > until_us:
            if beyond_us is None or lo <= beyond_us:
                return None
        elif hi > until_us and (beyond_us is None or hi <= beyond_us):
            hi = until_us
    if fi.first_ts is None:  # (its mtime stands in for the first stamp: the file starts no later than its end)
        lo = min(lo, hi)
    if since_us is not None:
        lo = max(lo, since_us)
    return lo, max(lo, hi)


def client_figures(
    ci: ClientInventory, since_us: int | None = None, until_us: int | None = None, *, beyond_us: int | None = None
) -> Figures:
    """Figures of the files in the window (all files when both bounds are None), each an upper bound of what
    the import reads: a file counts whole (its size, its session) as soon as part of it may be imported, and
    "in window" runs from the earliest to the latest stamp it may keep (`_span`). Oldest/newest are clamped to
    the window's bounds, except for stamps after `beyond_us`: the run's `Window.beyond_until` (its start +
    FUTURE_SKEW_US), after which the import keeps rows whatever `until` says (a clock set back, a corrupt
    stamp). Without it a history stamped two days ahead of the clock showed 0 files in `hyp backfill plan` and
    `hyp init --dry-run`, and was imported. A file that starts after `until` (and not after `beyond_us`) is
    not counted: the import stops at its first line."""
    files = sessions = size = 0
    oldest: int | None = None
    newest: int | None = None
    keys: set[str] = set()
    for fi in ci.files:
        span = _span(fi, since_us, until_us, beyond_us)
        if span is None:
            continue
        files += 1
        size += fi.size
        key = ci.session_keys.get(fi.file.path_hash)
        if key is not None:
            keys.add(key)
        o, n = span
        oldest = o if oldest is None else min(oldest, o)
        newest = n if newest is None else max(newest, n)
    sessions = len(keys)
    return Figures(files, sessions, size, oldest, newest)


def client_entry(
    ci: ClientInventory, since_us: int | None = None, until_us: int | None = None, *, beyond_us: int | None = None
) -> dict[str, Any]:
    """The per-client JSON block of `hyp init --dry-run --json` (without `selected`/`import`)."""
    return {
        "client": ci.client,
        "name": ci.name,
        "detected": ci.detected,
        "reason": ci.reason,
        "root": ci.root,
        "total": client_figures(ci).to_json(),
        "in_window": client_figures(ci, since_us, until_us, beyond_us=beyond_us).to_json(),
    }


def figures(
    inventory: Inventory, since_us: int | None = None, until_us: int | None = None, *, beyond_us: int | None = None
) -> dict[str, dict]:
    """Per client (in inventory order): detection, `total` and `in_window` figures, JSON-ready. The one
    source of the numbers shown by `hyp backfill plan/list`, the wizard and `hyp init --dry-run`."""
    return {ci.client: client_entry(ci, since_us, until_us, beyond_us=beyond_us) for ci in inventory}


def older_than(ci: ClientInventory, since_us: int | None) -> Figures:
    """Files entirely before `since` (the wizard's "Older: N sessions, not imported")."""
    if since_us is None:
        return Figures()
    files = size = 0
    keys: set[str] = set()
    for fi in ci.files:
        if before_window(fi, since_us):
            files += 1
            size += fi.size
            key = ci.session_keys.get(fi.file.path_hash)
            if key is not None:
                keys.add(key)
    return Figures(files, len(keys), size)


__all__ = [
    "ClientInventory",
    "Figures",
    "Inventory",
    "InventoryProgress",
    "before_window",
    "build_inventory",
    "client_entry",
    "client_figures",
    "config_root",
    "figures",
    "inventory_client",
    "older_than",
]


def scanned_path_hashes(config: Any, env: Mapping[str, str] = os.environ) -> dict[str, set[str] | None]:
    """For each client enabled in `config` (every client when there is no config: its defaults apply): the
    path hashes of the files a scan of its roots finds now, for dropping the checkpoints of vanished files
    (storage.md §7.4, as the daemon's daily pass does); None for a client whose roots are all missing, or
    whose scan failed or could not list a directory under them, so that its entries are kept; the files it
    found but could not read keep theirs (`Discovery.complete`, `Discovery.unread_hashes`)."""
    out: dict[str, set[str] | None] = {}
    enabled = getattr(config, "enabled_clients", None) if config is not None else list(KNOWN_CLIENTS)
    for name in enabled if enabled is not None else ():
        importer = get_importer(name)
        try:
            detection = importer.detect(config_root(config, name), env)
            # (a root that is a link to nothing is scanned too: its scan says it could not be read, so that a
            # second root that can be does not make the scan complete and forget the first one's files)
            roots = [r for r in (detection.roots or (detection.root,)) if r and (os.path.isdir(r) or os.path.islink(r))]
            disc = importer.discover(roots) if roots else None
            if disc is None or not disc.complete:
                out[name] = None
            else:
                out[name] = {f.path_hash for f in disc.files} | disc.unread_hashes()
        except Exception:  # noqa: BLE001 - a scan that did not complete keeps the entries
            out[name] = None
    return out
