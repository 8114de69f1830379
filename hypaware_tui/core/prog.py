"""The name the user runs hyp by, for the commands that texts of the core name (`run hyp init`). Both `hyp` and
`hypaware` are installed (pyproject.toml [project.scripts]); the command line sets `NAME` to the one it was
run as, before it runs a command (`cli.app.main`). Anything else (the daemon, run as `python -m hypaware_tui`,
the tests) keeps "hyp". Read it when a text is built, never into a module constant."""

from __future__ import annotations

NAME = "hyp"


def set_name(name: str) -> None:
    global NAME
    NAME = name
