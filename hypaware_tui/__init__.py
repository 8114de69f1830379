"""hypaware_tui: keep Claude Code and Codex history as one queryable local dataset."""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# `_RJEM_MALLOC_CONF` as this process was given it, read before Polars loads here (Polars rewrites the variable
# with its own defaults first): what a daemon started from here inherits (core.daemon.memory.child_allocator_env).
_ALLOCATOR_CONF_GIVEN: str | None = None if "polars" in _sys.modules else _os.environ.get("_RJEM_MALLOC_CONF", "")
