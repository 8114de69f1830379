"""hypaware_tui: keep Claude Code and Codex history as one queryable local dataset."""

__version__ = "0.1.0"

import os as _os
import sys as _sys

# `_RJEM_MALLOC_CONF` as this process was given it ("": unset), read before Polars loads (which rewrites the
# variable, its own defaults first), for a daemon started from here (core.daemon.memory.child_allocator_env).
_ALLOCATOR_CONF_GIVEN: str | None = None if "polars" in _sys.modules else _os.environ.get("_RJEM_MALLOC_CONF", "")
