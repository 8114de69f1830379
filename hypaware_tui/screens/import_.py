"""Step 6 (wizard.md §6.6): the commit. Config, one panel per client, capture daemon.

Worker contract: `run_import_job(target, job)` is the whole worker body. It runs in a Textual thread worker
(`thread=True`, `exit_on_error=False`, group "import"), calls the core commit steps and only ever calls
`target.post_message(...)` with the messages defined here; it never reads or writes a widget. The screen's
handlers own every widget update.
"""

from __future__ import annotations

import math
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from hypaware_tui.cli.output import WAITING_NOTICE
from hypaware_tui.core.fmt import files_progress, human_size, printable
from hypaware_tui.core.inventory import Inventory
from hypaware_tui.core.paths import Layout, PanicError, panics_as_errors
from hypaware_tui.core.plan import (
    CONFIG_NOT_WRITTEN,
    ConfigOutcome,
    InitPlan,
    InitResult,
    Sample,
    daemon_step,
    fmt_duration,
    import_step,
    skipped_daemon,
    skipped_reasons,
    throughput,
    write_config_step,
)
from hypaware_tui.core.runner import Progress, ProviderResult, unsaved_files_text
from hypaware_tui.screens.base import StepInfo, WizardScreen
from hypaware_tui.screens.dialogs import STOP_QUESTION, pending_text
from hypaware_tui.screens.widgets import ActionButton, KeyBar

ETA_GRACE_S = 3.0
GIL_SWITCH_INTERVAL_S = 0.0005
THROUGHPUT_SPAN_S = 5.0

# --------------------------------------------------------------------------------------------- messages


class ConfigWritten(Message):
    """The config step ended (written, unchanged or failed)."""

    def __init__(self, outcome: ConfigOutcome) -> None:
        super().__init__()
        self.outcome = outcome


class ImportStarted(Message):
    def __init__(self, client: str, bytes_total: int, files_total: int, at: float) -> None:
        super().__init__()
        self.client = client
        self.bytes_total = bytes_total
        self.files_total = files_total
        self.at = at


class ImportProgressed(Message):
    """A progress snapshot; a newer one replaces a pending one for the same client."""

    def __init__(self, client: str, progress: Progress, at: float) -> None:
        super().__init__()
        self.client = client
        self.progress = progress
        self.at = at

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ImportProgressed) and message.client == self.client


class ImportFinished(Message):
    """The final per-client result."""

    def __init__(self, client: str, result: ProviderResult, at: float) -> None:
        super().__init__()
        self.client = client
        self.result = result
        self.at = at


class ImportNotice(Message):
    """Something the user should know while a client imports: `waiting` (another hyp process holds the write
    lock; shown in the client's panel until its import moves on) or a lasting `note` (a parse worker was
    lost), shown under the panels."""

    def __init__(self, client: str, kind: str, text: str) -> None:
        super().__init__()
        self.client = client
        self.kind = kind  # "waiting" | "note"
        self.text = text


class StopQuestionChanged(Message):
    """The stop question opened or closed, or the import began to stop: the App updates the resize notice,
    which names what waits under it."""


class DaemonActionFinished(Message):
    def __init__(self, outcome: Any) -> None:  # core.daemon.action.DaemonActionResult
        super().__init__()
        self.outcome = outcome


# --------------------------------------------------------------------------------------------- worker


@dataclass(frozen=True)
class ImportJob:
    """Everything the worker needs; immutable apart from the two flags it watches."""

    plan: InitPlan
    layout: Layout
    env: Mapping[str, str]
    clock: Callable[[], float]
    inventory: Inventory | None = None
    importers: Mapping[str, Any] | None = None
    service_manager: Any = None
    spawner: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)  # stop after the current batch
    hangup: threading.Event = field(default_factory=threading.Event)  # terminal gone: skip the daemon action


class _MessageSink:
    """The runner's ProgressSink, turned into messages."""

    def __init__(self, post: Callable[[Message], Any], clock: Callable[[], float]) -> None:
        self.post = post
        self.clock = clock
        self.finished: set[str] = set()

    def on_provider_start(self, provider: str, bytes_total: int, files_total: int) -> None:
        self.post(ImportStarted(provider, bytes_total, files_total, self.clock()))

    def on_progress(self, progress: Progress) -> None:
        self.post(ImportProgressed(progress.provider, progress, self.clock()))

    def on_provider_finish(self, result: ProviderResult) -> None:
        self.finished.add(result.provider)
        self.post(ImportFinished(result.provider, result, self.clock()))

    def on_lock_wait(self, provider: str) -> None:
        self.post(ImportNotice(provider, "waiting", WAITING_NOTICE))

    def on_notice(self, provider: str, message: str) -> None:
        self.post(ImportNotice(provider, "note", message))


def run_import_job(target: Any, job: ImportJob) -> None:
    """The worker body: config, imports, daemon action. Only `target.post_message` is called."""
    post = target.post_message
    clients = job.plan.import_clients
    # (the Review is the confirmation: a config another hyp init wrote since is backed up and replaced, and the
    # outcome says so)
    outcome = write_config_step(job.plan, job.layout, now_us=job.plan.until_us, replace_existing=True)
    post(ConfigWritten(outcome))
    if outcome.status != "ok":
        for client in clients:
            post(ImportFinished(client, ProviderResult(client, status="skipped",
                                                       error=f"not run: {CONFIG_NOT_WRITTEN}"),
                                job.clock()))
        post(DaemonActionFinished(skipped_daemon(job.plan, CONFIG_NOT_WRITTEN)))
        return
    sink = _MessageSink(post, job.clock)
    try:
        import_step(job.plan, job.layout, env=job.env, inventory=job.inventory, sink=sink, cancel=job.cancel,
                    importers=job.importers)
    except Exception as exc:  # noqa: BLE001 - a crash becomes a failed result, never a crashed app
        message = f"{type(exc).__name__}: {exc}"
        for client in clients:
            if client not in sink.finished:
                sink.on_provider_finish(ProviderResult(client, status="failed", error=message, errors=1))
    for client in clients:
        if client not in sink.finished:  # defensive: the runner reports every provider
            status = "cancelled" if job.cancel.is_set() else "failed"
            sink.on_provider_finish(ProviderResult(client, status=status,
                                                   error=None if status == "cancelled" else "no result"))
    if job.hangup.is_set():
        post(DaemonActionFinished(skipped_daemon(job.plan)))
        return
    post(DaemonActionFinished(daemon_step(job.plan, job.layout, env=job.env,
                                          service_manager=job.service_manager, spawner=job.spawner)))


# --------------------------------------------------------------------------------------------- panel


class ImportPanel(Widget):
    """One client's progress: bar with %, bytes, files, sessions, rows, duplicates, skipped lines, speed."""

    def __init__(self, client: str, name: str, clock: Callable[[], float], *, skipped_reason: str | None,
                 bytes_total: int = 0, files_total: int = 0) -> None:
        super().__init__(id=f"panel-{client}", classes="import-panel")
        self.client = client
        self.display_name = name
        self.clock = clock
        self.status = "skipped" if skipped_reason else "waiting"
        self.skipped_reason = skipped_reason
        self.bytes_total = bytes_total  # in-window bytes from the inventory until the runner says more
        self.files_total = files_total
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.progress: Progress | None = None
        self.result: ProviderResult | None = None
        self.samples: deque[Sample] = deque(maxlen=200)
        self.waiting: str | None = None  # the write-lock notice, until the import moves on
        self.border_title = name
        self.border_subtitle = self.status

    def get_content_height(self, container, viewport, width: int) -> int:
        return 4

    def set_status(self, status: str) -> None:
        self.status = status
        self.border_subtitle = status
        self.set_class(status == "failed", "-failed")
        self.set_class(status == "ok", "-ok")
        self.refresh()

    def start(self, bytes_total: int, files_total: int, at: float) -> None:
        self.bytes_total = bytes_total
        self.files_total = files_total
        self.started_at = at
        self.samples.append(Sample(at, 0))
        self.set_status("importing")

    def wait_notice(self, text: str) -> None:
        self.waiting = text
        self.refresh()

    def update_progress(self, progress: Progress, at: float) -> None:
        if self.started_at is None:
            self.start(progress.bytes_total, progress.files_total, at)
        self.waiting = None  # the runner reports again only once the lock is taken (same thread, in order)
        self.progress = progress
        # What the pass reads, from the runner, once it started: 0 when a rerun finds nothing new (the
        # in-window figures of the Review screen it started with count the files unchanged since the last
        # import too)
        self.bytes_total = progress.bytes_total
        self.files_total = progress.files_total
        self.samples.append(Sample(at, progress.bytes_done))
        self.refresh()

    def finish(self, result: ProviderResult, at: float) -> None:
        self.result = result
        self.waiting = None
        self.finished_at = at
        if self.started_at is None:
            self.started_at = at
        self.set_status(result.status)

    # -- rendering -----------------------------------------------------------------------------------

    def _figures(self) -> dict[str, Any]:
        r, p = self.result, self.progress
        if r is not None:
            # The files figure of the live progress (read or failed): its final report, where there is one, so
            # the count does not fall back to the files scanned at the end (19,283/20,000 became 10,815/20,000
            # when a resumed import finished); the summary on Done gives the files scanned.
            files = p.files_done if p is not None and p.final else r.files_scanned
            return {
                "files": files, "sessions": r.sessions_seen, "rows": r.rows_written,
                "duplicates": r.duplicates_skipped, "skipped": dict(r.lines_skipped),
                "bytes": max(r.bytes_read, p.bytes_done if p else 0),
                "files_total": p.files_total if p is not None else self.files_total,
                "unchanged": r.files_unchanged,
            }
        if p is not None:
            return {
                "files": p.files_done, "sessions": p.sessions, "rows": p.rows_written, "duplicates": p.duplicates,
                "skipped": dict(p.lines_skipped), "bytes": p.bytes_done, "files_total": p.files_total,
                "unchanged": p.files_unchanged,
            }
        return {"files": 0, "sessions": 0, "rows": 0, "duplicates": 0, "skipped": {}, "bytes": 0,
                "files_total": self.files_total, "unchanged": 0}

    def render(self) -> Text:
        width = max(20, self.content_size.width)
        if self.status == "skipped" and self.result is None:
            return Text(f"skipped: {printable(self.skipped_reason or '')}")  # (a reason names a root)
        f = self._figures()
        total = self.bytes_total
        done = f["bytes"]
        if self.status == "ok":
            frac = 1.0
        else:
            frac = min(1.0, done / total) if total else 0.0
        pct = f"{int(frac * 100):>3d}%"
        amount = f"{human_size(min(done, total) if total else done)} of {human_size(total)}"
        bar_width = max(10, width - len(pct) - len(amount) - 7)
        filled = int(round(frac * bar_width))
        out = Text()
        out.append("[")
        out.append("█" * filled, style="bold")
        out.append("░" * (bar_width - filled), style="dim")
        out.append(f"] {pct}   {amount}\n")
        lines = [
            f"{files_progress(f['files'], f['files_total'], f['unchanged'])} · sessions {f['sessions']:,} · "
            f"rows {f['rows']:,} · duplicates {f['duplicates']:,}",
            f"lines skipped {skipped_reasons(f['skipped'], max_len=width - 14)}",
        ]
        failed = self.status == "failed" and self.result is not None and self.result.error
        lines.append(f"error: {printable(self.result.error or '')}" if failed else self._speed_line())
        for i, line in enumerate(lines):
            if len(line) > width:
                line = line[: width - 1] + "…"
            out.append(line, style="bold" if failed and i == 2 else "")
            if i < len(lines) - 1:
                out.append("\n")
        return out

    def _speed_line(self) -> str:
        if self.waiting is not None:
            return self.waiting
        if self.started_at is None:
            return "waiting for the previous client" if self.status == "waiting" else ""
        now = self.finished_at if self.finished_at is not None else self.clock()
        elapsed = max(0.0, now - self.started_at)
        rate = throughput(list(self.samples), now, THROUGHPUT_SPAN_S)
        if self.finished_at is not None:
            avg = (self._figures()["bytes"] / elapsed) if elapsed > 0 else 0.0
            end = "done" if self.status in ("ok", "done") else self.status  # (a stopped client is not "done")
            return f"{human_size(avg)}/s · elapsed {fmt_duration(elapsed)} · {end}"
        remaining = max(0, self.bytes_total - self._figures()["bytes"])
        eta = "—" if elapsed < ETA_GRACE_S or rate <= 0 else fmt_duration(math.ceil(remaining / rate))
        return f"{human_size(rate)}/s · elapsed {fmt_duration(elapsed)} · ETA {eta}"


# --------------------------------------------------------------------------------------------- screen


class ImportScreen(WizardScreen):
    """Runs the commit; dismisses with the InitResult when the daemon step has ended."""

    NAME = "Import"
    TITLE = "Importing your history"
    CAN_GO_BACK = False
    QUIT_KIND = "import"
    BINDINGS = [
        Binding("c", "app.request_quit", "stop import", show=False),
        Binding("y", "confirm_stop", "stop import", show=False),
        Binding("n", "keep_importing", "keep importing", show=False),
    ]

    def __init__(self, step: StepInfo, job: ImportJob, *, start: bool = True, finish_delay: float = 0.0) -> None:
        super().__init__(step)
        self.job = job
        self.autostart = start
        self.finish_delay = finish_delay  # a moment to see the finished panels before Done
        self.result = InitResult(job.plan)
        self.stopping = False
        self._pending_finish = False
        self.notes: list[str] = []  # lasting notices of the run (a lost parse worker), shown under the panels

    def title_text(self) -> str:
        return "Importing your history" if self.job.plan.import_clients else "Finishing setup"

    def compose_body(self) -> ComposeResult:
        plan = self.job.plan
        for cp in plan.clients:
            if not cp.selected:
                continue
            reason = None
            if not cp.import_:
                reason = ("you chose not to import existing history" if cp.detected else cp.reason) or "not run"
            yield ImportPanel(cp.client, cp.name, self.job.clock, skipped_reason=reason,
                              bytes_total=cp.in_window.bytes, files_total=cp.in_window.files)
        yield Static(self._steps_text(), id="steps")

    def compose(self) -> ComposeResult:
        yield from super().compose()
        # The stop confirmation lives on this screen (an overlay layer), not in a modal screen: showing and
        # hiding it repaints a few lines instead of the whole screen, so keys stay fast during the import.
        with Vertical(id="stop-confirm"):
            yield Static(STOP_QUESTION, id="stop-message")
            with Horizontal(id="stop-buttons"):
                yield ActionButton("Keep importing", id="keep")
                yield ActionButton("Stop import", id="stop")
            yield KeyBar([("y", "stop import"), ("n", "keep importing")], id="stop-keys")

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        if self.autostart:
            # The import is CPU-bound Python in a thread: hand the GIL back to the UI more often than the
            # default 5 ms so keys keep answering quickly (wizard.md §6.6: within 250 ms).
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
            self._import_worker()

    def on_unmount(self) -> None:
        if getattr(self, "_switch_interval", None) is not None:
            sys.setswitchinterval(self._switch_interval)

    def keys(self) -> list[tuple[str, str]]:
        """The stop keys while there is an import to stop; none once there is not (import declined, or every
        client finished while the daemon action runs): they did nothing then, or asked to stop nothing."""
        if not self.can_stop:
            return []
        return [("c", "stop import"), ("q", "stop import"), ("Ctrl+C", "stop import")]

    @property
    def can_stop(self) -> bool:
        return (not self.stopping and self.result.daemon is None
                and any(c not in self.result.clients for c in self.job.plan.import_clients))

    def _tick(self) -> None:
        for panel in self.query(ImportPanel):
            if panel.status == "importing":
                panel.refresh()

    @work(thread=True, exit_on_error=False, group="import", description="hyp init: config, import, daemon")
    def _import_worker(self) -> None:
        with panics_as_errors():  # (a Polars panic is a BaseException: the worker would never end)
            run_import_job(self, self.job)

    # -- steps lines ---------------------------------------------------------------------------------

    def _steps_text(self) -> Text:
        r = self.result
        out = Text()
        if r.config is None:
            cfg = "waiting"
        elif r.config.status != "ok":
            cfg = f"failed  {printable(r.config.error or '')}"  # (errors name paths: shown as they are)
        elif r.config.action == "unchanged":
            cfg = "ok  unchanged"
        else:
            cfg = "ok  written (backup kept)" if r.config.backup else "ok  written"
        out.append("Config   ", style="bold")
        out.append(f"{cfg}\n")
        out.append("Daemon   ", style="bold")
        d = r.daemon
        plan = self.job.plan
        if d is None:
            out.append("waiting" + (f" ({plan.daemon.action})" if plan.daemon.action != "none" else ""))
        elif d.status == "failed":
            out.append(f"failed  {printable(str(d.error))}")
        elif d.status == "skipped":
            why = "demo" if plan.demo_dir is not None else ("nothing to do" if d.action == "none" else "not performed")
            out.append(f"skipped ({why})")
        else:
            out.append(f"ok  {d.action}" + (f" (pid {d.pid})" if d.pid else ""))
        for note in self.notes:
            out.append("\nNote     ", style="bold")
            out.append(printable(note))
        if self.stopping and d is None:
            out.append("\nStopping after the current batch…", style="bold")
        return out

    def _refresh_steps(self) -> None:
        self.query_one("#steps", Static).update(self._steps_text())

    # -- handlers ------------------------------------------------------------------------------------

    def _panel(self, client: str) -> ImportPanel | None:
        try:
            return self.query_one(f"#panel-{client}", ImportPanel)
        except Exception:  # noqa: BLE001 - a client without a panel (not selected)
            return None

    def on_config_written(self, message: ConfigWritten) -> None:
        self.result.config = message.outcome
        self._refresh_steps()

    def on_import_started(self, message: ImportStarted) -> None:
        panel = self._panel(message.client)
        if panel is not None:
            panel.start(message.bytes_total, message.files_total, message.at)

    def on_import_progressed(self, message: ImportProgressed) -> None:
        panel = self._panel(message.client)
        if panel is not None and panel.result is None:
            panel.update_progress(message.progress, message.at)
        unsaved = message.progress.files_unsaved if message.progress.final else 0
        if unsaved:  # (why the files figure went back when the import stopped, as `hyp backfill` says it)
            self._add_note(panel.display_name if panel is not None else message.client, unsaved_files_text(unsaved))

    def on_import_notice(self, message: ImportNotice) -> None:
        panel = self._panel(message.client)
        if message.kind == "waiting":
            if panel is not None and panel.result is None:
                panel.wait_notice(message.text)
            return
        self._add_note(panel.display_name if panel is not None else message.client, message.text)

    def _add_note(self, name: str, text: str) -> None:
        note = f"{name}: {text}"
        if note not in self.notes:
            self.notes.append(note)
            self._refresh_steps()

    def on_import_finished(self, message: ImportFinished) -> None:
        self.result.clients[message.client] = message.result
        panel = self._panel(message.client)
        if panel is not None:
            panel.finish(message.result, message.at)
        if not self.can_stop:
            self.query_one("#keys", KeyBar).set_keys(self.keys())
            if self.confirming:  # nothing left to stop
                self._close_confirm()

    def on_daemon_action_finished(self, message: DaemonActionFinished) -> None:
        self.result.daemon = message.outcome
        self._refresh_steps()
        if self.confirming:  # nothing left to stop (the question may be open under the resize notice)
            self._close_confirm()
        self.query_one("#keys", KeyBar).set_keys(self.keys())
        self._finish()

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "import" or event.state != WorkerState.ERROR:
            return
        exc = event.worker.error
        error = str(exc) if isinstance(exc, PanicError) else f"{type(exc).__name__}: {exc}"
        for client in self.job.plan.import_clients:
            if client not in self.result.clients:
                failed = ProviderResult(client, status="failed", error=error, errors=1)
                self.on_import_finished(ImportFinished(client, failed, self.job.clock()))
        if self.result.daemon is None:
            self.result.daemon = skipped_daemon(self.job.plan)
            self._refresh_steps()
        self._finish()

    def _finish(self) -> None:
        if self.job.cancel.is_set() and self.job.hangup.is_set():
            self.result.interrupted = True
        if self.finish_delay > 0 and not self.job.hangup.is_set():  # (no one is looking after a hang-up)
            delay, self.finish_delay = self.finish_delay, 0.0
            self.set_timer(delay, self._finish)
            return
        if self.app.screen is not self and self.job.hangup.is_set():
            self.app.uncover(self)  # (the terminal is gone: no resize will ever take the notice down)
        if self.app.screen is not self:  # (`is_current` is also true under a modal, the resize notice)
            self._pending_finish = True  # e.g. the resize notice is on top; finish when it goes
            return
        self.dismiss(self.result)

    def on_screen_resume(self) -> None:
        if self._pending_finish:
            self._pending_finish = False
            self.dismiss(self.result)

    # -- the stop confirmation (wizard.md §8) ---------------------------------------------------------

    @property
    def confirming(self) -> bool:
        return self.query_one("#stop-confirm").display

    def ask_stop(self) -> None:
        """Ctrl+C / q / c: ask before stopping; a second Ctrl+C confirms. Nothing to stop, nothing to ask."""
        if not self.can_stop:
            return
        if self.confirming:
            self.action_confirm_stop()
            return
        self._focus_before = self.focused
        self.query_one("#stop-confirm").display = True
        self.query_one("#keep", ActionButton).focus()
        self.post_message(StopQuestionChanged())

    def _close_confirm(self) -> None:
        self.query_one("#stop-confirm").display = False
        self.set_focus(getattr(self, "_focus_before", None))
        self.post_message(StopQuestionChanged())

    def pending_text(self) -> str | None:
        """What the resize notice says about this screen: the stop question when it is open (the notice covers
        it), or that the import is stopping."""
        if not self.is_mounted:
            return None
        if self.confirming:
            return pending_text(STOP_QUESTION, "Stop import", "Keep importing")
        if self.stopping and self.result.daemon is None:
            return "Stopping the import after the current batch…"
        return None

    def action_confirm_stop(self) -> None:
        if self.confirming:
            self._close_confirm()
            self.stop_import()

    def action_keep_importing(self) -> None:
        if self.confirming:
            self._close_confirm()

    def action_back(self) -> None:
        """Esc keeps importing when the question is open; otherwise there is no going back from here."""
        self.action_keep_importing()

    @on(ActionButton.Pressed, "#keep")
    def _keep_pressed(self) -> None:
        self.action_keep_importing()

    @on(ActionButton.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_confirm_stop()

    # -- called by the App ---------------------------------------------------------------------------

    def hang_up(self) -> None:
        """Terminal closed / SIGTERM: stop after the batch and skip the daemon action."""
        self.job.hangup.set()
        self.stop_import()

    def stop_import(self) -> None:
        """The user confirmed "Stop import": workers stop after their batch; the daemon action still runs."""
        self.stopping = True
        self.job.cancel.set()
        if self.is_mounted:
            self.query_one("#stop-confirm").display = False
            self.query_one("#keys", KeyBar).set_keys(self.keys())
            self._refresh_steps()
            self.post_message(StopQuestionChanged())
