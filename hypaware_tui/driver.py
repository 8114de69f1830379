"""The wizard's terminal driver: Textual's LinuxDriver, made to survive the terminal going away (wizard.md §8:
terminal closed → stop after the batch, skip the daemon action, exit 130).

When the terminal is closed the tty hangs up: every write fails with EIO, reads return end-of-file, and the
process gets SIGHUP and SIGCONT. With Textual's own driver three things then go wrong, and `hyp init` stays
alive, idle, forever:

- the writer thread dies on the first failed write; its queue holds 30 writes, so the next repaints block the
  event loop for good, and with it the SIGHUP handler and the end of the import;
- SIGCONT restarts the application mode although nothing suspended it, with a second writer thread that dies
  the same way;
- the input thread spins on the end-of-file.

So the output file swallows the failure and reports it once, SIGCONT only resumes a suspended app, and the
input thread is told to stop. The App hears about the hang-up through `on_gone` and stops like on SIGHUP.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import IO, Any


class TerminalOutput:
    """The file Textual's writer thread writes to. Once a write or flush fails (the terminal is gone), it
    drops everything after it and calls `on_gone` once, from the writer thread."""

    def __init__(self, file: IO[str], on_gone: Callable[[], None]) -> None:
        self._file = file
        self._on_gone = on_gone
        self._lock = threading.Lock()
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self._file.write(text)
            except (OSError, ValueError):  # EIO on a hung-up tty; ValueError once the file is closed
                self._lost()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._file.flush()
            except (OSError, ValueError):
                self._lost()

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return True

    def _lost(self) -> None:
        with self._lock:
            if self.gone:
                return
            self.gone = True
        self._on_gone()


def hangup_safe_driver(base: type) -> type:
    """A subclass of Textual's LinuxDriver `base` (imported by the caller: it needs termios)."""

    class HangupSafeDriver(base):  # type: ignore[misc, valid-type]
        def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(app, *args, **kwargs)
            self._file = TerminalOutput(self._file, self._terminal_gone)

        def _terminal_gone(self) -> None:
            """Writer thread: stop the input thread (it would spin on end-of-file) and tell the App."""
            self.exit_event.set()
            notify = getattr(self._app, "terminal_gone", None)
            if notify is not None:
                notify()

        def _sigcont_application(self, *args: Any) -> None:
            # Only a SIGTSTP (Ctrl+Z) suspends the app; the SIGCONT that comes with a hang-up must not start
            # a second application mode on the dead terminal.
            if self._must_signal_resume:
                super()._sigcont_application(*args)

    return HangupSafeDriver
