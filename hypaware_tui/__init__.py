"""hypaware_tui: keep Claude Code and Codex history as one queryable local dataset."""

__version__ = "0.1.0"
