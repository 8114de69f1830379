"""Human formats shared by every front end (the CLI, the wizard and the plan text), so one figure reads the
same everywhere: `plural` (`1 session`, `2 sessions`), `fmt_int` (`1,234`).

No Textual or Rich here (the core renders the `hyp init` summary with these).
"""

from __future__ import annotations


def fmt_int(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 session`, `0 sessions`, `1,204 sessions` (`words`: an irregular plural)."""
    return f"{fmt_int(n)} {word if n == 1 else (words or word + 's')}"
