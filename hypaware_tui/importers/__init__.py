"""Importers, one module per client. `get_importer(name)` / `all_importers()` are the registry that the
runner, the inventory and the daemon use (tests may pass their own mapping instead)."""

from __future__ import annotations

import importlib

from hypaware_tui.importers.base import Importer

KNOWN_CLIENTS: tuple[str, ...] = ("claude", "codex")
DISPLAY_NAMES: dict[str, str] = {"claude": "Claude Code", "codex": "Codex"}
_CLASSES = {"claude": ("hypaware_tui.importers.claude", "ClaudeImporter"),
            "codex": ("hypaware_tui.importers.codex", "CodexImporter")}
_cache: dict[str, Importer] = {}


def get_importer(name: str) -> Importer:
    if name not in _CLASSES:
        raise KeyError(name)
    if name not in _cache:
        module, cls = _CLASSES[name]
        _cache[name] = getattr(importlib.import_module(module), cls)()
    return _cache[name]


def all_importers() -> dict[str, Importer]:
    return {name: get_importer(name) for name in KNOWN_CLIENTS}
