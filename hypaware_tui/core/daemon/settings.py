"""The daemon's view of the config (daemon.md §5): capture switch and tuning, enabled clients, retention."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypaware_tui.core import prog
from hypaware_tui.core.config import (
    DEFAULT_RETENTION_DAYS,
    Config,
    ConfigError,
    load_config,
)
from hypaware_tui.core.config import set_capture_enabled as _set_capture_enabled
from hypaware_tui.core.paths import Layout


def not_set_up() -> str:
    return f"not set up: run {prog.NAME} init"


@dataclass(frozen=True)
class DaemonSettings:
    """`error` is None for a usable config; otherwise the message to show (and nothing else is valid)."""

    error: str | None = None
    missing: bool = False
    capture_enabled: bool = False
    flush_seconds: float = 5.0
    flush_rows: int = 2000
    poll_seconds: float = 5.0
    rescan_seconds: float = 300.0
    retention_days: int = DEFAULT_RETENTION_DAYS
    clients: dict[str, str | None] = field(default_factory=dict)  # enabled client -> configured root
    config: Config | None = None


def from_config(cfg: Config) -> DaemonSettings:
    cap = cfg.capture
    return DaemonSettings(
        capture_enabled=cap.enabled,
        flush_seconds=float(cap.flush_seconds),
        flush_rows=int(cap.flush_rows),
        poll_seconds=float(cap.poll_seconds),
        rescan_seconds=float(cap.rescan_seconds),
        retention_days=cfg.retention_days,
        clients={c: cfg.client_root(c) for c in cfg.enabled_clients},
        config=cfg,
    )


def settings_digest(s: DaemonSettings | None) -> str | None:
    """A short digest of what the daemon does with a config (capture and its tuning, the clients and their
    roots, the retention), for its status file: `hyp status` compares it with the config on disk to tell a
    daemon that still runs with an older config (`core.status.daemon_config_warning`). A config rewritten with
    the same settings (another layout, an unknown key) has the same digest. None for an unusable config."""
    if s is None or s.error is not None:
        return None
    import hashlib
    import json

    doc = {"capture_enabled": s.capture_enabled, "flush_seconds": s.flush_seconds, "flush_rows": s.flush_rows,
           "poll_seconds": s.poll_seconds, "rescan_seconds": s.rescan_seconds, "retention_days": s.retention_days,
           "clients": s.clients}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def load(layout: Layout) -> DaemonSettings:
    try:
        cfg = load_config(layout)
    except ConfigError as exc:
        return DaemonSettings(error=f"the config is invalid: {exc}")
    if cfg is None:
        return DaemonSettings(error=not_set_up(), missing=True)
    return from_config(cfg)


def set_capture_enabled(layout: Layout, enabled: bool) -> bool:
    return _set_capture_enabled(layout, enabled)
