"""Step 5 (wizard.md §6.5): the plan, before anything is written. The final screen of `--dry-run`."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from hypaware_tui.core.fmt import human_size
from hypaware_tui.core.plan import InitPlan, tilde
from hypaware_tui.core.window import local_date_range, local_dates_note
from hypaware_tui.screens.base import StepInfo, WizardScreen
from hypaware_tui.screens.widgets import ActionButton, plain

LABEL_WIDTH = 10


def _block(label: str, lines: list[str | Text]) -> Table:
    """`Label     first line` with every further (or wrapped) line indented under the first. A line that is a
    `str` is shown as it is (`plain`): it may hold a root, a path or an error message, which a Rich table cell
    reads as markup (`[/]` in a root crashed Review)."""
    grid = Table.grid(padding=(0, 0))
    grid.add_column(width=LABEL_WIDTH, no_wrap=True, style="bold")
    grid.add_column(ratio=1)
    for i, line in enumerate(lines or [""]):
        grid.add_row(label if i == 0 else "", plain(line) if isinstance(line, str) else line)
    return grid


def client_lines(plan: InitPlan, env: Mapping[str, str] | None = None) -> list[str]:
    """A small table: what each client would import (in window, upper bounds), or `import skipped` and why
    (wizard.md §6.5); an undetected client says it was not found, as on Clients, not "not selected". The dates
    are local, and the last line names the zone, as `hyp backfill plan` (the same figures, cli.md §5.5)."""
    home = ((env or {}).get("HOME") or "").rstrip("/")
    name_w = max(len(c.name) for c in plan.clients)
    cells = []
    shown: list[int | None] = []
    for c in plan.clients:
        f = c.in_window
        if c.import_ and f.files:
            span = local_date_range(f.oldest_us, f.newest_us)
            shown += [f.oldest_us, f.newest_us]
            cells.append((c.name, f"{f.files:,}", f"{f.sessions:,}", human_size(f.bytes), span, None))
            continue
        if not c.detected:
            reason = c.reason or "not found"
            text = f"import skipped ({reason.replace(home + '/', '~/') if home else reason})"
        elif not c.selected:
            text = "import skipped (not selected)"
        elif not c.import_:
            text = "import skipped (you chose not to import existing history)"
        else:
            text = "nothing in this window yet"
        cells.append((c.name, "", "", "", "", text))
    widths = [max([len(h)] + [len(row[k]) for row in cells if row[5] is None])
              for k, h in enumerate(("", "files", "sessions", "size"))]
    widths[0] = name_w
    out = [f"{'':{name_w}}  {'files':>{widths[1]}}  {'sessions':>{widths[2]}}  {'size':>{widths[3]}}  "
           "oldest → newest (up to)"]
    for name, files, sessions, size, span, text in cells:
        if text is not None:
            out.append(f"{name:{name_w}}  {text}")
        else:
            out.append(f"{name:{name_w}}  {files:>{widths[1]}}  {sessions:>{widths[2]}}  {size:>{widths[3]}}  {span}")
    if any(us is not None for us in shown):
        out.append(local_dates_note(*shown))
    return out


def config_lines(plan: InitPlan, env: Mapping[str, str]) -> list[str]:
    cfg = plan.config
    path = tilde(cfg.path, env)
    if cfg.action == "create":
        state = "new"
    elif cfg.action == "unchanged":
        state = "unchanged"
    elif plan.dry_run and cfg.needs_force:
        state = f"replace (a real run needs --force; backup: {cfg.backup})"
    else:
        state = f"replace (backup: {cfg.backup})"
    return [f"{path} · {state}", *(f"  {c}" for c in cfg.changes)]


def start_label(plan: InitPlan) -> str:
    """The commit button says what it does: wizard.md §6.5's `Write config and start import` / `Write config`
    when the config is written; when it is unchanged (Import again, or a Reconfigure that changes nothing) it
    is not written, and "Write config" would say otherwise."""
    written = plan.config.action != "unchanged"
    if plan.import_clients:
        return "Write config and start import" if written else "Start import"
    return "Write config" if written else "Continue"


def config_json_title(plan: InitPlan) -> str:
    if plan.config.action == "unchanged":
        return "Config file (unchanged: it is not written):"
    return "Config file, exactly as it will be written:"


def daemon_line(plan: InitPlan) -> str:
    d = plan.daemon
    mode = f" · {d.mode}" if d.mode else ""
    return f"{d.action} · {d.reason}{mode}"


class ReviewScreen(WizardScreen):
    """Returns "start" (commit), "close" (dry run) or Back."""

    NAME = "Review"
    TITLE = "Review"
    BINDINGS = [
        Binding("down,j", "scroll_body(1)", "", show=False),
        Binding("up,k", "scroll_body(-1)", "", show=False),
        Binding("pagedown", "scroll_body(10)", "", show=False),
        Binding("pageup", "scroll_body(-10)", "", show=False),
        Binding("tab,right,l", "app.focus_next", "", show=False),
        Binding("shift+tab,left,h", "app.focus_previous", "", show=False),
        Binding("q", "q_key", "quit", show=False),
    ]

    def __init__(self, step: StepInfo, plan: InitPlan, env: Mapping[str, str]) -> None:
        super().__init__(step)
        self.plan = plan
        self.env = env
        self.AUTO_FOCUS = "#close" if plan.dry_run else "#start"

    def compose_body(self) -> ComposeResult:
        plan = self.plan
        subtitle = ("Dry run: this is what hyp init would do. Nothing will be written." if plan.dry_run
                    else "Nothing has been written yet.")
        yield Static(subtitle, id="subtitle")
        yield Static(_block("Window", [plan.window_text()]), classes="block", id="window")
        yield Static(_block("Clients", client_lines(plan, self.env)), classes="block", id="clients")
        yield Static(_block("Config", config_lines(plan, self.env)), classes="block", id="config")
        yield Static(_block("Daemon", [daemon_line(plan)]), classes="block", id="daemon")
        if plan.warnings:
            yield Static(_block("Warnings", list(plan.warnings)), classes="block", id="warnings")
        yield Static(Text(config_json_title(plan), style="dim"), id="config-json-title")
        # (JSON escapes C0 controls, not DEL or C1: U+009B in a root is a one-character CSI)
        yield Static(plain(plan.config.text.rstrip("\n"), newlines=True), id="config-json")

    def compose_buttons(self) -> ComposeResult:
        if self.plan.dry_run:
            yield ActionButton("Close", id="close")
        else:
            yield ActionButton(start_label(self.plan), id="start")
            yield ActionButton("Back", id="back")

    def keys(self) -> list[tuple[str, str]]:
        if self.plan.dry_run:
            return [("Enter", "close"), ("↑↓", "scroll"), ("Esc", "back"), ("q", "close")]
        return [("Enter", "activate"), ("Tab", "move"), ("↑↓", "scroll"), ("Esc", "back"), ("q", "quit")]

    def action_scroll_body(self, lines: int) -> None:
        self.query_one("#body").scroll_relative(y=lines, animate=False)

    def action_next(self) -> None:
        self.dismiss("close" if self.plan.dry_run else "start")

    def action_q_key(self) -> None:
        """`q` closes a dry run's last screen (wizard.md §6.5: exit 0), as Enter does; elsewhere it asks, as
        Ctrl+C always does here: Ctrl+C is the interrupt (§4, §8) on every screen before Import, a dry run's
        Review included, so one stray key never closes the plan the user is reading."""
        if self.plan.dry_run:
            self.action_next()
        else:
            self.app.action_request_quit()

    def on_action_button_pressed(self, event: ActionButton.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
        else:
            self.action_next()
