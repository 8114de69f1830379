"""The `hyp` command line. `main()` is the console-script entry point; `app` is the Typer root app."""

from hypaware_tui.cli.app import app, main

__all__ = ["app", "main"]
