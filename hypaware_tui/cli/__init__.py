"""The `hyp` command line. `run()` is the console-script entry point (`main()` and a quick exit); `main()`
runs one command and exits with its code (tests call it); `app` is the Typer root app.

`app` and `main` are loaded on first use (PEP 562): a parse worker process, which Python's `spawn` starts by
running the `hyp` script again (as `__mp_main__`, where only this package is imported), then skips the
command line's modules (Typer and every command's, ~45 ms of CPU per worker)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["app", "main", "run"]


def run() -> None:
    from hypaware_tui.cli.app import run as run_app

    run_app()


def __getattr__(name: str) -> Any:
    if name in ("app", "main"):
        module = importlib.import_module("hypaware_tui.cli.app")
        # (importing the submodule bound the name `app` here to it: the Typer app takes it back, as before)
        globals().update(app=module.app, main=module.main)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
