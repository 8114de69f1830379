"""The `hyp` command line. `run()` is the console-script entry point (`main()` and a quick exit); `main()`
runs one command and exits with its code (tests call it); `app` is the Typer root app."""

from hypaware_tui.cli.app import app, main, run

__all__ = ["app", "main", "run"]
