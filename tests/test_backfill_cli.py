"""`hyp backfill`, `hyp backfill list`, `hyp backfill plan` as real subprocesses (cli.md §5 and the backfill
checks of §10). Every run points HYP_HOME, HOME, CLAUDE_CONFIG_DIR and CODEX_HOME into tmp_path.

Two kinds of fixtures: real Claude Code transcripts read by the real importer, and the fake importer of
tests/backfill_fakes.py (installed by a launcher script that then runs the real `hyp` main) where a test needs
to control the importer (a crash, a slow parse for signals)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from backfill_fakes import fakes, write_launcher, write_session
from helpers import claude_session_lines, iso_ms, resumed_pair_sessions_csv, write_resumed_pair

from hypaware_tui.core.inventory import build_inventory, client_figures
from hypaware_tui.core.timeutil import parse_iso_us

HYP = [sys.executable, "-m", "hypaware_tui"]
KEYS = {"run_id", "dry_run", "since", "until", "providers"}
PROVIDER_KEYS = {
    "provider", "status", "files_scanned", "sessions_seen", "rows_written", "duplicates_skipped",
    "lines_skipped", "errors", "error",
}


class Home:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.home = tmp_path / "home"
        self.hyp = tmp_path / "hyp"
        self.claude = self.home / ".claude"
        self.codex = self.home / ".codex"
        self.home.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("HYP_DEBUG", "DEV_RUN_ID", "HYP_WORKERS")}
        env.update(
            HOME=str(self.home),
            HYP_HOME=str(self.hyp),
            CLAUDE_CONFIG_DIR=str(self.claude),
            CODEX_HOME=str(self.codex),
            FAKE_CLAUDE_ROOT=str(self.home / "fake-claude"),
            FAKE_CODEX_ROOT=str(self.home / "fake-codex"),
            NO_COLOR="1",
        )
        self.env = env

    def run(self, *args: str, fake: str | None = None, timeout: float = 120, env: dict | None = None):
        cmd = ([sys.executable, write_launcher(self.tmp, fake)] if fake else HYP) + list(args)
        return subprocess.run(cmd, env=env or self.env, capture_output=True, text=True, timeout=timeout)

    def json(self, *args: str, **kw) -> tuple[dict, subprocess.CompletedProcess]:
        proc = self.run(*args, "--json", **kw)
        assert proc.stdout.strip(), proc.stderr
        return json.loads(proc.stdout), proc

    def config(self, **clients: bool) -> None:
        self.hyp.mkdir(mode=0o700, exist_ok=True)
        (self.hyp / "hypaware-config.json").write_text(json.dumps({
            "version": 1, "clients": {k: {"enabled": v} for k, v in clients.items()},
            "retention_days": 120, "capture": {"enabled": False},
        }))

    def dataset(self) -> pl.DataFrame:
        files = sorted((self.hyp / "cache" / "ai_gateway_messages").glob("**/*.parquet"))
        return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame({"part_id": []})

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(self.hyp)): (p.stat().st_size, p.stat().st_mtime_ns)
                for p in self.hyp.rglob("*")} if self.hyp.exists() else {}

    def drop_checkpoints(self) -> None:
        for p in (self.hyp / "state").glob("ingest.sqlite*"):
            p.unlink()


@pytest.fixture
def h(tmp_path) -> Home:
    return Home(tmp_path)


@pytest.fixture
def inproc(h, monkeypatch, capsys):
    """Run `hyp` in this process (same main, same environment as the subprocess runs): for the many quick
    checks of messages and exit codes. Returns (exit code, stdout, stderr)."""
    for k, v in h.env.items():
        monkeypatch.setenv(k, v)
    for k in ("HYP_DEBUG", "DEV_RUN_ID", "HYP_WORKERS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(sys, "argv", ["hyp"])
    from hypaware_tui.cli.app import main

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        got = capsys.readouterr()
        return exc.value.code, got.out, got.err

    return call


_iso = iso_ms


def claude_session(path: Path, sid: str, turns: int, start: datetime) -> tuple[int, int]:
    """A real-looking Claude Code transcript: `turns` user+assistant pairs (one row each), plus a summary, a
    file-history snapshot and a malformed line. Returns (rows, lines that produce no row)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"type": "summary", "summary": "work", "leafUuid": f"{sid}-leaf"})]
    lines += claude_session_lines(sid, start, turns, timedelta(minutes=2))
    lines.append("{this is not json")
    path.write_text("\n".join(lines) + "\n")
    return 2 * turns, 3


def recent(days: float) -> datetime:
    return (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0)


def midday(days: int) -> datetime:
    """Noon UTC `days` days ago: a session starting then stays on one date (one partition). Started `days` days
    before now, a session begun in the last minutes before midnight UTC ran past it and had rows on two dates,
    and tests counting partitions or sessions per partition failed in runs near midnight."""
    return (datetime.now(UTC) - timedelta(days=days)).replace(hour=12, minute=0, second=0, microsecond=0)


def claude_fixtures(h: Home, sessions: int = 3, turns: int = 5) -> tuple[int, int]:
    """`sessions` sessions of `turns` turns, one per day from 3 days ago back, each on one date."""
    rows = skipped = 0
    for i in range(sessions):
        r, s = claude_session(h.claude / "projects" / f"-home-ada-repo{i % 2}" / f"sess-{i}.jsonl", f"sess-{i}",
                              turns, midday(3 + i))
        rows += r
        skipped += s
    return rows, skipped


def fake_fixtures(h: Home, files: int = 2, msgs: int = 10) -> int:
    base = recent(2)
    ts = [_iso(base + timedelta(minutes=m)) for m in range(msgs)]
    for i in range(files):
        write_session(Path(h.env["FAKE_CLAUDE_ROOT"]) / f"s{i}.jsonl", f"c{i}", ts, noise=1)
    write_session(Path(h.env["FAKE_CODEX_ROOT"]) / "r.jsonl", "x", ts, noise=1)
    return (files + 1) * msgs


# --------------------------------------------------------------------------------------------- usage


def test_bad_flags_and_dates_exit_2_and_write_nothing(h, inproc):
    p = h.run("backfill", "--sinse", "2026-01-01")  # one real process for §10 check 2
    assert p.returncode == 2 and p.stdout == ""
    assert "--sinse" in p.stderr and p.stderr.startswith("hyp backfill: ")
    rc, out, err = inproc("backfill", "--since", "yesterday", "--json")
    assert rc == 2 and out == ""
    assert err.splitlines()[0] == (
        'hyp backfill: --since: expected an ISO date or datetime like 2026-05-01 or 2026-05-01T09:30 '
        '(got "yesterday")'
    )
    assert err.splitlines()[1].startswith("Usage: hyp backfill [PROVIDER]...")
    rc, out, err = inproc("backfill", "--since", "2026-06-01", "--until", "2026-05-01")
    assert rc == 2 and out == ""
    assert err.splitlines()[0] == "hyp backfill: --since (2026-06-01) is after --until (2026-05-01)"
    rc, out, err = inproc("backfill", "plan", "--until", "soon")
    assert rc == 2 and err.startswith("hyp backfill plan: --until: expected an ISO date")
    rc, out, err = inproc("backfill", "list", "--since", "2026-01-01")
    assert rc == 2 and "--since" in err and out == ""
    rc, out, err = inproc("backfill", "claude", "--since")
    assert rc == 2 and "--since" in err
    assert not h.hyp.exists()


def test_same_day_since_until_covers_the_whole_local_day(h, inproc, monkeypatch):
    day = recent(2).date().isoformat()
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        rc, out, err = inproc("backfill", "--since", day, "--until", day, "--dry-run", "--json")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert rc == 0, err
    data = json.loads(out)
    since, until = parse_iso_us(data["since"]), parse_iso_us(data["until"])
    assert until - since == 86_400_000_000 - 1 or until - since == 82_800_000_000 - 1 or \
        until - since == 90_000_000_000 - 1  # 24 h, or a DST day
    assert data["since"].startswith(day) and data["since"][11:13] in ("04", "05")  # local midnight in UTC


def test_every_iso_8601_date_form_is_a_whole_local_day(h, inproc, monkeypatch):
    """cli.md §1: `--since`/`--until` take ISO 8601 dates, a bare date being its whole day. `--until 2026-W47-6`
    (the week date of 2026-11-21) was read as the START of the day (the window `2026-11-21 00:00 → 2026-11-21
    00:00`, no rows), and `--until 20261121` was refused. The week alone is not a day: refused as before."""
    claude_fixtures(h, sessions=1)  # (with history to read: the heading is printed)
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        seen = set()
        for form in ("2026-11-21", "20261121", "2026-W47-6", "2026W476"):
            rc, out, err = inproc("backfill", "--since", form, "--until", form, "--dry-run", "--json")
            assert rc == 0, err
            seen.add((json.loads(out)["since"], json.loads(out)["until"]))
            rc, out, err = inproc("backfill", "--since", form, "--until", form, "--dry-run")
            assert out.startswith("Dry run: nothing written · Backfill 2026-11-21 00:00 → 2026-11-21 23:59:59 "
                                  "(local time) · run "), out
        assert seen == {("2026-11-20T18:30:00Z", "2026-11-21T18:29:59.999999Z")}
        for flag in ("--since", "--until"):
            rc, out, err = inproc("backfill", flag, "2026-W47", "--dry-run")
            assert rc == 2 and out == ""
            assert err.splitlines()[0] == (f"hyp backfill: {flag}: expected an ISO date or datetime like 2026-05-01 "
                                           'or 2026-05-01T09:30 (got "2026-W47")')
    finally:
        monkeypatch.undo()
        time.tzset()


def test_until_9999_12_31_east_of_utc_prints_the_summary(h):
    """`--until 9999-12-31` (no upper bound) is the last µs of 9999 in UTC, in the year 10000 in Kolkata: the
    heading crashed after the rows were committed (OverflowError, exit 1, no summary); `plan` too."""
    rows, _ = claude_fixtures(h, sessions=1)
    env = {**h.env, "TZ": "Asia/Kolkata"}
    p = h.run("backfill", "--until", "9999-12-31", env=env)
    assert p.returncode == 0, p.stderr
    heading = p.stdout.splitlines()[0]
    assert heading.startswith("Backfill ") and " local → 9999-12-31 23:59:59 UTC · run " in heading
    assert p.stdout.splitlines()[-1] == f"Imported {rows} new rows."
    p = h.run("backfill", "plan", "--until", "9999-12-31", env={**h.env, "TZ": "Pacific/Kiritimati"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].startswith("Plan ") and "→ 9999-12-31 23:59:59 UTC" in p.stdout


def test_unknown_provider_exits_1_and_runs_nothing(h, inproc):
    claude_fixtures(h)
    p = h.run("backfill", "cursor")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip() == 'hyp backfill: unknown provider "cursor" (known: claude, codex)'
    for args in (["claude", "cursor"], ["plan", "cursor"], ["cursor", "--dry-run", "--json"]):
        rc, out, err = inproc("backfill", *args)
        assert rc == 1 and 'unknown provider "cursor" (known: claude, codex)' in err
        if "--json" in args:  # (cli.md §1: one document, also when nothing ran)
            assert json.loads(out) == {"dry_run": True, "providers": [],
                                       "error": 'unknown provider "cursor" (known: claude, codex)'}
        else:
            assert out == "", args
    rc, out, err = inproc("backfill", "run")  # internal names are not commands either
    assert rc == 1 and 'unknown provider "run"' in err
    assert not h.hyp.exists()  # nothing ran


def test_read_only_commands_never_create_hyp_home(h, inproc):
    claude_fixtures(h)
    p = h.run("backfill", "--dry-run", "--json")
    assert p.returncode == 0 and not h.hyp.exists()
    for args in (["list"], ["list", "--json"], ["plan"], ["plan", "--json"], ["--dry-run"],
                 ["claude", "--dry-run"], ["--help"], ["plan", "--help"], ["claude", "--help"]):
        rc, out, err = inproc("backfill", *args)
        assert rc == 0, (args, err)
        assert not h.hyp.exists(), args


# --------------------------------------------------------------------------------------------- real importer


def test_rerun_nothing_new_then_checkpoints_deleted(h):
    rows, skipped = claude_fixtures(h)
    first, p = h.json("backfill")
    assert p.returncode == 0, p.stderr
    assert set(first) == KEYS and first["dry_run"] is False
    assert [set(x) for x in first["providers"]] == [PROVIDER_KEYS]  # no config: detected clients only
    claude = first["providers"][0]
    assert claude["provider"] == "claude" and claude["status"] == "ok"
    assert claude["rows_written"] == rows and claude["files_scanned"] == 3 and claude["sessions_seen"] == 3
    assert sum(claude["lines_skipped"].values()) == skipped  # §10 check 9
    assert claude["lines_skipped"] == {"malformed": 3, "not_a_message": 6}
    assert h.dataset().height == rows

    second, p = h.json("backfill")
    c2 = second["providers"][0]
    assert (c2["rows_written"], c2["duplicates_skipped"], c2["files_scanned"]) == (0, 0, 0)
    text = h.run("backfill")
    assert text.returncode == 0
    assert text.stdout.strip().splitlines()[-1] == "Nothing new to import: no history was added since the last import."
    assert text.stdout.startswith("Backfill ") and " (local time) · run " in text.stdout.splitlines()[0]

    h.drop_checkpoints()
    third, p = h.json("backfill")
    c3 = third["providers"][0]
    assert c3["duplicates_skipped"] == claude["rows_written"] and c3["rows_written"] == 0
    assert c3["files_scanned"] == 3
    h.drop_checkpoints()
    text = h.run("backfill", "claude")
    assert text.stdout.strip().splitlines()[-1] == (
        f"Nothing new to import: all {rows} rows in this window are already in the dataset."
    )
    assert h.dataset().height == rows


def test_dry_run_json_equals_the_following_real_run_and_changes_nothing(h):
    claude_fixtures(h, sessions=2)
    assert h.run("backfill").returncode == 0
    # new history arrives, and one old file grows
    claude_session(h.claude / "projects" / "-home-ada-new" / "new.jsonl", "new", 4, recent(1))
    with open(h.claude / "projects" / "-home-ada-repo0" / "sess-0.jsonl", "a") as fh:
        fh.write(json.dumps({"type": "user", "sessionId": "sess-0", "uuid": "late-u", "timestamp": _iso(recent(0.5)),
                             "message": {"role": "user", "content": "one more"}}) + "\n")
    before = h.snapshot()
    dry, p = h.json("backfill", "--dry-run")
    assert p.returncode == 0 and dry["dry_run"] is True
    assert h.snapshot() == before  # dataset, checkpoints, logs and lock untouched
    real, p = h.json("backfill")
    assert [x["rows_written"] for x in dry["providers"]] == [x["rows_written"] for x in real["providers"]] == [9]
    assert [x["duplicates_skipped"] for x in dry["providers"]] == [x["duplicates_skipped"] for x in real["providers"]]
    text = h.run("backfill", "--dry-run")
    assert text.stdout.startswith("Dry run: nothing written · Backfill ")


def test_dry_run_on_a_fresh_home_creates_nothing_and_predicts(h):
    rows, _ = claude_fixtures(h)
    dry, p = h.json("backfill", "--dry-run")
    assert not h.hyp.exists()
    assert dry["providers"][0]["rows_written"] == rows
    assert "Would import" in h.run("backfill", "--dry-run").stdout
    real, _ = h.json("backfill")
    assert real["providers"][0]["rows_written"] == rows


def test_json_stdout_is_one_document_and_progress_goes_to_stderr(h, inproc):
    claude_fixtures(h)
    p = h.run("backfill", "--json")
    json.loads(p.stdout)
    assert "hyp: claude ok 100%" in p.stderr  # the end-of-provider progress line
    assert "hyp:" not in p.stdout
    for args in (["list", "--json"], ["plan", "--json"]):
        rc, out, err = inproc("backfill", *args)
        json.loads(out)
        assert err == ""


def test_no_config_and_nothing_detected_is_an_empty_selection(h, inproc):
    data, p = h.json("backfill")
    assert p.returncode == 0 and data["providers"] == [] and set(data) == KEYS
    rc, out, err = inproc("backfill")
    assert rc == 0
    assert out.strip() == "Nothing to import: no Claude Code or Codex history found."
    assert not h.hyp.exists()


def test_named_undetected_provider_is_skipped_not_failed(h, inproc):
    claude_fixtures(h)
    rc, out, err = inproc("backfill", "codex", "claude", "--json")
    assert rc == 0
    data = json.loads(out)
    codex, claude = data["providers"]
    assert codex["status"] == "skipped" and codex["error"] == f"not found: {h.codex} does not exist"
    assert claude["status"] == "ok"


def test_list_reports_detection_enablement_and_totals(h, inproc):
    rows, _ = claude_fixtures(h)

    def listing():
        rc, out, err = inproc("backfill", "list", "--json")
        assert rc == 0, err
        return json.loads(out)

    data = listing()
    by = {x["provider"]: x for x in data["providers"]}
    assert set(by) == {"claude", "codex"}
    keys = {"provider", "name", "detected", "reason", "enabled", "root", "roots", "files", "sessions", "bytes",
            "oldest", "newest"}
    assert all(set(x) == keys for x in data["providers"])
    assert by["claude"]["detected"] is True and by["claude"]["enabled"] is None and by["claude"]["files"] == 3
    assert by["claude"]["root"] == str(h.claude)
    assert by["codex"]["detected"] is False and by["codex"]["reason"].startswith("not found: ")
    h.config(claude=True, codex=False)
    data = listing()
    assert [x["enabled"] for x in data["providers"]] == [True, False]
    rc, text, _ = inproc("backfill", "list")
    assert "no config" not in text and "Claude Code" in text


def test_list_shows_every_claude_root(h, inproc, monkeypatch):
    """With `CLAUDE_CONFIG_DIR="a, b"` the list counted the files of both roots next to the first one only."""
    claude_fixtures(h)
    other = h.home / "claude-b"
    claude_session(other / "projects" / "-home-ada-b" / "sess-b.jsonl", "sess-b", 3, recent(2))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{h.claude}, {other}")
    rc, text, _ = inproc("backfill", "list")
    row = next(line for line in text.splitlines() if line.startswith("claude "))
    assert "~/.claude, ~/claude-b " in row, text
    rc, out, err = inproc("backfill", "list", "--json")
    assert rc == 0, err
    claude = json.loads(out)["providers"][0]
    assert claude["files"] == 4 and claude["root"] == str(h.claude)
    assert claude["roots"] == [str(h.claude), str(other)]


def test_list_of_records_dated_0001_and_9999_in_any_zone(h):
    """`hyp backfill list` exited 1 (OverflowError) when a transcript has a line of 9999-12-31 (in the year
    10000 in Kolkata) or of 0001-01-01T00:00Z (the year 0 in Los Angeles); its history range now shows them."""
    path = h.claude / "projects" / "-home-ada-repo" / "s.jsonl"
    claude_session(path, "s", 2, recent(1))
    lines = path.read_text().splitlines(keepends=True)
    for i, stamp in ((1, "0001-01-01T00:00:00.000Z"), (4, "9999-12-31T23:59:59.999Z")):
        rec = json.loads(lines[i])
        rec["timestamp"] = stamp
        lines[i] = json.dumps(rec) + "\n"
    path.write_text("".join(lines))
    for zone in ("Asia/Kolkata", "America/Los_Angeles", "UTC"):
        p = h.run("backfill", "list", env={**h.env, "TZ": zone})
        assert p.returncode == 0, p.stderr
        (claude,) = [line for line in p.stdout.splitlines() if line.startswith("claude ")]
        assert claude.rstrip().endswith("0001-01-01 → 9999-12-31"), (zone, claude)
    data = json.loads(h.run("backfill", "list", "--json").stdout)
    assert (data["providers"][0]["oldest"], data["providers"][0]["newest"]) == (
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z")


def test_list_and_plan_say_their_dates_are_local_and_the_json_stays_utc(h):
    """`hyp backfill list` and `plan` show local dates and the wizard UTC ones, and neither said which: a
    session of 02:00 UTC read a day earlier in New York than on the wizard's screens. The text now names its
    zone; the JSON keeps ISO 8601 UTC with `Z` (cli.md §1)."""
    from zoneinfo import ZoneInfo

    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=2, minute=0, second=0, microsecond=0)
    claude_session(h.claude / "projects" / "-home-ada-repo" / "s.jsonl", "s", 2, day)
    before = (day - timedelta(days=1)).date().isoformat()  # the local date in New York (UTC-4 or -5)
    zone = ZoneInfo("America/New_York")

    def note(*stamps: datetime) -> str:
        """What the last line must say: the zone's names and offsets at the instants whose dates are shown."""
        seen = {}
        for st in stamps:
            local = st.astimezone(zone)
            seen.setdefault(int(local.utcoffset().total_seconds()) // 3600, local.tzname())
        order = sorted(seen)
        return (f"Dates in local time ({'/'.join(seen[o] for o in order)}, "
                f"UTC{'/'.join(f'{o:+03d}:00' for o in order)}).")

    env = {**h.env, "TZ": "America/New_York"}
    for args, range_ in ((("list",), f"{before} → {before}"), (("plan", "claude"), f"{before} → {before}")):
        p = h.run("backfill", *args, env=env)
        assert p.returncode == 0, p.stderr
        (claude,) = [line for line in p.stdout.splitlines() if line.startswith("claude ")]
        assert claude.rstrip().endswith(range_), (args, claude)
        data = json.loads(h.run("backfill", *args, "--json", env=env).stdout)
        assert data["providers"][0]["oldest"] == day.strftime("%Y-%m-%dT%H:%M:%SZ"), data
        # list shows the session's dates; plan its window too (from the retention floor to now)
        shown = [day] if args == ("list",) else [day, datetime.fromisoformat(data["since"]), datetime.now(UTC)]
        assert p.stdout.splitlines()[-1] == note(*shown), p.stdout


def test_the_dates_note_names_every_offset_of_the_dates_shown(h):
    """A July date shown in New York in November is EDT (UTC-04:00), not the EST of today: the note named only
    today's offset, so the reader put the date a day off (a session at 03:30 UTC)."""
    july = datetime(2026, 7, 10, 3, 30, tzinfo=UTC)
    january = datetime(2026, 1, 10, 3, 30, tzinfo=UTC)
    claude_session(h.claude / "projects" / "-home-ada-repo" / "s.jsonl", "s", 2, july)
    claude_session(h.claude / "projects" / "-home-ada-repo" / "t.jsonl", "t", 2, january)
    p = h.run("backfill", "list", env={**h.env, "TZ": "America/New_York"})
    assert p.returncode == 0, p.stderr
    (claude,) = [line for line in p.stdout.splitlines() if line.startswith("claude ")]
    assert claude.rstrip().endswith("2026-01-09 → 2026-07-09"), claude
    assert p.stdout.splitlines()[-1] == "Dates in local time (EST/EDT, UTC-05:00/-04:00).", p.stdout
    p = h.run("backfill", "list", env={**h.env, "TZ": "Asia/Kolkata"})
    assert p.stdout.splitlines()[-1] == "Dates in local time (IST, UTC+05:30).", p.stdout


def test_plan_figures_equal_the_inventory_in_window_figures(h, inproc):
    claude_fixtures(h, sessions=4)
    # an old session outside the default window
    claude_session(h.claude / "projects" / "-old" / "old.jsonl", "old", 2, recent(300))
    data, p = h.json("backfill", "plan")
    assert p.returncode == 0
    assert set(data) == {"since", "until", "providers"}
    assert [x["provider"] for x in data["providers"]] == ["claude", "codex"]
    claude = data["providers"][0]
    assert set(claude) == {"provider", "detected", "reason", "files", "sessions", "bytes", "oldest", "newest"}
    assert claude["files"] == 4 and claude["sessions"] == 4  # the old file is not in the window
    inv = build_inventory(["claude"], env=h.env)
    fig = client_figures(inv["claude"], parse_iso_us(data["since"]), parse_iso_us(data["until"])).to_json()
    assert {k: claude[k] for k in fig} == fig
    rc, out, _ = inproc("backfill", "plan", "claude", "--since", "2000-01-01", "--json")
    assert json.loads(out)["providers"][0]["files"] == 4  # --since cannot go below the import floor
    # an --until before the import floor leaves an empty window: a usage error that says why (it was a plan
    # of 0 files, or of files that only looked in the window)
    rc, out, err = inproc("backfill", "plan", "claude", "--until", recent(250).date().isoformat(), "--json")
    assert rc == 2 and out == "" and "is before the import floor" in err and "retention_days" in err
    assert not h.hyp.exists()


def test_history_stamped_days_ahead_of_the_clock_is_planned_as_it_is_imported(h, inproc):
    """A clock set back: a session stamped two days from now. `hyp backfill plan` and `hyp init --dry-run`
    said 0 files (the file starts after `until` = now), and `hyp init --yes` imported it (a line stamped more
    than 24 h after the run's start is kept); then `hyp query overview` said "Nothing imported yet."."""
    rows, _ = claude_session(h.claude / "projects" / "-home-ada-repo" / "ahead.jsonl", "ahead", 2,
                             datetime.now(UTC) + timedelta(days=2))
    rc, out, _ = inproc("backfill", "plan", "--json")
    (claude, _codex) = json.loads(out)["providers"]
    assert rc == 0 and (claude["files"], claude["sessions"]) == (1, 1)
    assert claude["newest"] > claude["oldest"] > json.loads(out)["until"]
    dry = json.loads(h.run("init", "--yes", "--dry-run", "--json").stdout)
    (plan,) = [c for c in dry["clients"] if c["client"] == "claude"]
    assert plan["in_window"]["files"] == 1, plan
    rc, out, _ = inproc("backfill", "--json")
    assert rc == 0 and json.loads(out)["providers"][0]["rows_written"] == rows == h.dataset().height
    for days in ("0", "30"):
        rc, out, _ = inproc("query", "overview", "--days", days)
        assert rc == 0 and out.startswith(f"No messages up to now: the {rows} rows in the dataset are dated after "
                                          "now, from "), out
        assert "Nothing imported yet" not in out and "--days 0" not in out


def test_plan_until_does_not_count_what_the_import_stops_before(h, inproc):
    """`hyp backfill plan --until DATE` with lines stamped after now: a session that runs past `--until` into
    lines stamped days ahead of the clock showed an "in window" range ending days after `--until`, and a
    session that starts after `--until` was counted; the import stops at the first line after `--until`, so it
    never reaches those lines and reads nothing of the second session (the lines written since `--until` stop
    it first)."""
    now = datetime.now(UTC).replace(microsecond=0)
    day = timedelta(days=1)
    proj = h.claude / "projects" / "-home-ada-repo"
    for name, starts in (("mixed", (-10, -8, -2, 3)), ("late", (-1, 3))):  # days from now
        lines = [json.dumps({"type": "user", "sessionId": name, "uuid": f"{name}-{i}",
                             "timestamp": _iso(now + d * day), "cwd": "/home/ada/repo",
                             "message": {"role": "user", "content": f"q {i}"}})
                 for i, d in enumerate(starts)]
        proj.mkdir(parents=True, exist_ok=True)
        (proj / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    until = (now - 5 * day).date().isoformat()
    rc, out, _ = inproc("backfill", "plan", "claude", "--until", until, "--json")
    plan = json.loads(out)
    (claude,) = plan["providers"]
    assert rc == 0 and (claude["files"], claude["sessions"]) == (1, 1), claude
    assert claude["oldest"] == _iso(now - 10 * day).replace(".000Z", "Z")
    # its last stamp is 3 days ahead; an explicit --until holds for every line (Window.until_given), so the
    # range ends at the end of the --until day (here the line of 2 days ago stops the pass)
    assert claude["newest"] == f"{until}T23:59:59.999999Z", claude
    rc, out, _ = inproc("backfill", "claude", "--until", until, "--dry-run", "--json")
    (run,) = json.loads(out)["providers"]
    assert (run["sessions_seen"], run["rows_written"]) == (1, 2)
    # up to now (no --until), no line lies between `until` (now) and a day ahead: the import keeps the lines
    # stamped 3 days ahead, and the plan shows them (as for a session stamped ahead from its start)
    rc, out, _ = inproc("backfill", "plan", "claude", "--json")
    (claude,) = json.loads(out)["providers"]
    assert (claude["files"], claude["newest"]) == (2, _iso(now + 3 * day).replace(".000Z", "Z")), claude
    rc, out, _ = inproc("backfill", "claude", "--dry-run", "--json")
    assert json.loads(out)["providers"][0]["rows_written"] == 6


def test_the_plan_range_holds_every_row_the_import_keeps(h):
    """The plan's figures are upper bounds of what the import keeps (cli.md §5.5). Three files broke that (the
    rerun audit): lines stamped days ahead after lines written before `--until` (no line in between stops
    the pass: the import keeps them, the plan ended its range at `--until`); the same with a clock set back
    (an mtime days ahead); and a first line longer than the head the plan reads (its mtime stood in for its
    first stamp: the file counted as starting after `--until`, 0 files, while the import read it). (Since then an
    explicit `--until` holds for every line: the ahead-stamped lines stop the pass, and the plan ends at it.)"""
    now = datetime.now(UTC).replace(microsecond=0)
    day = timedelta(days=1)
    proj = h.claude / "projects" / "-home-ada-repo"
    proj.mkdir(parents=True)

    def session(name: str, offsets: tuple[float, ...], big_first: bool = False) -> Path:
        lines = [json.dumps({"type": "user", "sessionId": name, "uuid": f"{name}-{i}",
                             "timestamp": _iso(now + d * day), "cwd": "/home/ada/repo",
                             "message": {"role": "user", "content": ("x" * 300_000 if big_first and i == 0
                                                                      else f"q {i}")}})
                 for i, d in enumerate(offsets)]
        path = proj / f"{name}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        return path

    session("far", (-5, -4, 3, 4))
    set_back = session("setback", (-2, -1 / 24, 3, 4))
    ahead = (now + 5 * day).timestamp()
    os.utime(set_back, (ahead, ahead))
    session("big", (-5, -4.5, -4))
    until = (now - 3 * day).date().isoformat()
    for args in (("--until", until), ()):
        plan, p = h.json("backfill", "plan", "claude", *args)
        assert p.returncode == 0, p.stderr
        (claude,) = plan["providers"]
        home = h.hyp.parent / f"hyp-{len(args)}"
        env = {**h.env, "HYP_HOME": str(home)}
        p = h.run("backfill", "claude", *args, env=env)
        assert p.returncode == 0, p.stderr
        p = h.run("query", "sql", "--format", "json", "select count(distinct session_id) s, "
                  "min(message_created_at) lo, max(message_created_at) hi from ai_gateway_messages", env=env)
        assert p.returncode == 0, p.stderr
        (row,) = json.loads(p.stdout)
        # (with --until, the set-back session's first line, 2 days ago, stops its pass: nothing of it is kept)
        assert claude["sessions"] >= row["s"] == (2 if args else 3), (args, claude, row)
        assert claude["oldest"] <= row["lo"] and claude["newest"] >= row["hi"], (args, claude, row)
        # without --until both ahead-stamped tails are kept; an explicit --until stops the passes at them
        assert row["hi"] == _iso(now + (-4 if args else 4) * day).replace(".000Z", "Z"), row


def test_plan_matches_init_dry_run(h):
    """§10 check 11: `hyp backfill plan --json` = the in_window figures of `hyp init --yes --dry-run --json`."""
    claude_fixtures(h)
    probe = h.run("init", "--help")
    if probe.returncode != 0:
        pytest.skip("hyp init is not registered yet")
    init = h.run("init", "--yes", "--dry-run", "--json")
    assert init.returncode == 0, init.stderr
    plan, _ = h.json("backfill", "plan")
    init_data = json.loads(init.stdout)
    for entry in plan["providers"]:
        c = next(x for x in init_data["clients"] if x["client"] == entry["provider"])
        if not entry["detected"]:
            continue
        assert {k: entry[k] for k in ("files", "sessions", "bytes", "oldest")} == {
            k: c["in_window"][k] for k in ("files", "sessions", "bytes", "oldest")}


def test_plan_sizes_read_as_on_the_wizard_review(h, inproc):
    """One size format: `hyp backfill plan` showed `5.5 MB` / `153.0 kB` where the wizard's Review showed
    `5.51 MB` / `153 kB` for the same files."""
    import re

    from hypaware_tui.core.plan import Choices, ExistingConfig, MachineState, build_plan
    from hypaware_tui.core.timeutil import now_us
    from hypaware_tui.screens.review import client_lines

    claude_fixtures(h, sessions=2)
    pad = h.claude / "projects" / "-home-ada-repo0" / "sess-0.jsonl"  # to 5,510,000 bytes: two decimals
    with pad.open("a") as f:
        f.write(" " * (5_510_000 - pad.stat().st_size - 1) + "\n")
    rc, out, _ = inproc("backfill", "plan", "claude")
    assert rc == 0
    cli_size = re.search(r"claude .*?(\d[\d.]* [kMG]?B)", out).group(1)
    plan = build_plan(build_inventory(["claude"], env=h.env), Choices(("claude",)),
                      MachineState(hyp_home=h.hyp, config=ExistingConfig(h.hyp / "hypaware-config.json")),
                      now_us=now_us())
    review = next(line for line in client_lines(plan) if line.startswith("Claude Code"))
    total = client_figures(build_inventory(["claude"], env=h.env)["claude"]).bytes
    assert 5_510_000 < total < 5_515_000
    assert cli_size == "5.51 MB" and "  5.51 MB  " in review


# --------------------------------------------------------------------------------------------- fake importer


RESUMED_QUERY = ("select session_id, conversation_id, count(*) as rows from ai_gateway_messages "
                 "group by session_id, conversation_id order by session_id")


@pytest.mark.parametrize("how", ["backfill", "parallel", "init", "backfill-long", "init-long"])
def test_a_session_resumed_into_a_new_file_keeps_its_messages(h, inproc, monkeypatch, how):
    """`claude --resume` (1.0.x) wrote the conversation again into a new session file, each line under its
    original `uuid` and timestamp. The first committed copy of a message is kept (schema.md §4.6), and the
    files were read in path order: when the copy's random name sorted first, the original conversation kept
    no row and all its messages were filed under the copy's session, where the daemon (which saw the original
    written first) filed them under the original. Session files are now read in the order their own lines were
    last written (not by mtime: the original's is the later one here), sequentially, with the parse workers,
    and in the setup import (which takes the timestamps from its inventory). `-long`: the original's last
    message is longer than the 256 KB tail first scanned for a timestamp; the scan goes further back rather than
    take the mtime (review)."""
    write_resumed_pair(h.claude / "projects" / "-home-ada-repo", midday(3), long_last=how.endswith("-long"))
    how = how.removesuffix("-long")
    if how == "init":
        state = h.tmp / "fake-manager.json"
        state.write_text(json.dumps({"unit_path": str(h.tmp / "unit" / "hypaware.service"), "calls": []}))
        proc = h.run("init", "--yes", "--no-daemon", "--client", "claude",
                     env=dict(h.env, HYP_TEST_SERVICE_MANAGER=str(state)))
        assert proc.returncode == 0, proc.stderr
    else:
        if how == "parallel":
            from hypaware_tui.core import runner as runner_mod

            monkeypatch.setattr(runner_mod, "PARALLEL_MIN_TOTAL", 0)
            monkeypatch.setenv("HYP_WORKERS", "2")
            parallel = runner_mod._parallel_file_results
            used = []

            def spy(*args, **kw):
                used.append(1)
                yield from parallel(*args, **kw)

            monkeypatch.setattr(runner_mod, "_parallel_file_results", spy)
        code, out, err = inproc("backfill", "claude")
        assert code == 0, err
        assert how != "parallel" or used  # (the files went to the parse workers)
    code, out, err = inproc("query", "sql", RESUMED_QUERY, "--format", "csv")
    assert code == 0, err
    assert out.splitlines() == resumed_pair_sessions_csv()


def test_importer_raising_for_codex_fails_only_codex(h):
    fake_fixtures(h)
    data, p = h.json("backfill", fake="codex-raises")
    assert p.returncode == 1
    claude, codex = data["providers"]
    assert claude["status"] == "ok" and claude["rows_written"] == 20
    assert codex["status"] == "failed" and "simulated importer crash" in codex["error"]
    text = h.run("backfill", fake="codex-raises")
    assert text.returncode == 1
    assert "  codex: the importer stopped: RuntimeError: simulated importer crash" in text.stdout


def test_config_selection(h):
    fake_fixtures(h)
    h.config(claude=True, codex=False)
    data, p = h.json("backfill", fake="ok")
    assert [x["provider"] for x in data["providers"]] == ["claude"]
    data, p = h.json("backfill", "codex", fake="ok")  # named: runs even though disabled
    assert [x["provider"] for x in data["providers"]] == ["codex"] and data["providers"][0]["rows_written"] == 10
    h.config(claude=False, codex=False)
    p = h.run("backfill", fake="ok")
    assert p.returncode == 0 and p.stdout.strip() == (
        "Nothing to import: no client is enabled in the config. Name one (hyp backfill claude) or run hyp init."
    )
    data, p = h.json("backfill", fake="ok")
    assert data["providers"] == [] and data["dry_run"] is False
    # (a script reads whether anything could have been written from `dry_run`, even when no client ran)
    data, p = h.json("backfill", "--dry-run", fake="ok")
    assert p.returncode == 0 and data["providers"] == [] and data["dry_run"] is True


def test_invalid_config_exits_1_naming_the_file(h, inproc):
    claude_fixtures(h)
    h.hyp.mkdir()
    (h.hyp / "hypaware-config.json").write_text("{nope")
    for args in ([], ["plan"]):
        rc, out, err = inproc("backfill", *args)
        assert rc == 1 and str(h.hyp / "hypaware-config.json") in err and out == "", args
        # the way out named in full: `hyp init --force` alone asks for a terminal, `--yes` alone stops on the file
        assert "replace it with hyp init (hyp init --yes --force without a terminal; a backup is kept)" in err


def test_list_reports_with_an_invalid_config(h, inproc):
    """cli.md §5.4: `backfill list` exits 0. It failed like the commands that need the config; it lists the
    providers, with `enabled` unknown, and names the file, its problem and the way out on stderr."""
    claude_fixtures(h)
    h.hyp.mkdir()
    (h.hyp / "hypaware-config.json").write_text("{nope")
    rc, out, err = inproc("backfill", "list", "--json")
    assert rc == 0, err
    claude = json.loads(out)["providers"][0]
    assert claude["provider"] == "claude" and claude["detected"] is True and claude["enabled"] is None
    assert claude["files"] > 0
    assert f"warning: the config is invalid: {h.hyp / 'hypaware-config.json'}: is not valid JSON" in err
    assert "hyp init --yes --force" in err
    rc, out, err = inproc("backfill", "list")
    assert rc == 0 and "config invalid" in out.splitlines()[2]


def _wait_for_parquet(h: Home, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list((h.hyp / "cache").glob("**/*.parquet")) if (h.hyp / "cache").exists() else []:
            return
        if proc.poll() is not None:
            raise AssertionError(f"finished before the first commit: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("no commit within the timeout")


def _slow_fixtures(h: Home) -> int:
    base = recent(2)
    ts = [_iso(base + timedelta(seconds=s)) for s in range(250)]
    for i in range(16):
        write_session(Path(h.env["FAKE_CLAUDE_ROOT"]) / f"s{i:02d}.jsonl", f"c{i}", ts)
    write_session(Path(h.env["FAKE_CODEX_ROOT"]) / "r.jsonl", "x", ts[:50])
    return 16 * 250 + 50


def test_sigint_finishes_the_batch_prints_the_summary_and_exits_130(h):
    total = _slow_fixtures(h)  # 2 ms per row: ~8 s of parsing
    launcher = write_launcher(h.tmp, "slow")
    proc = subprocess.Popen([sys.executable, launcher, "backfill", "--json"], env=h.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_parquet(h, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    data = json.loads(out)
    claude, codex = data["providers"]
    assert claude["status"] == "cancelled" and codex["status"] == "cancelled"
    assert 0 < claude["rows_written"] < 16 * 250 and codex["rows_written"] == 0
    assert "stopping after the current batch" in err
    df = h.dataset()
    assert df.height == claude["rows_written"] and df["part_id"].n_unique() == df.height
    rerun, p = h.json("backfill", fake="ok")
    assert p.returncode == 0
    df = h.dataset()
    assert df.height == df["part_id"].n_unique() == total


class _Streams:
    """Reads a process's stdout and stderr as it writes them (threads), so that a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self.threads = [threading.Thread(target=self._read, args=(f, buf), daemon=True)
                        for f, buf in ((proc.stdout, self.out), (proc.stderr, self.err))]
        for th in self.threads:
            th.start()

    @staticmethod
    def _read(f, buf: list[str]) -> None:
        for line in f:
            buf.append(line)

    def wait_err(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in list(self.err)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"no {text!r} on stderr (exit {self.proc.poll()}): {''.join(self.err)}")
            time.sleep(0.01)

    def wait(self, timeout: float = 60) -> tuple[str, str]:
        self.proc.wait(timeout=timeout)
        for th in self.threads:
            th.join(timeout)
        return "".join(self.out), "".join(self.err)


def test_second_sigint_exits_at_once_and_data_stays_consistent(h):
    total = _slow_fixtures(h)
    launcher = write_launcher(h.tmp, "slow")
    proc = subprocess.Popen([sys.executable, launcher, "backfill"], env=h.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    streams = _Streams(proc)
    _wait_for_parquet(h, proc)
    proc.send_signal(signal.SIGINT)
    # The second Ctrl+C once the first one has been taken (its notice): two sent 50 ms apart to a process
    # that did not run in between (a loaded machine) arrive as one, and the run then finishes its batch.
    streams.wait_err("stopping after the current batch")
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = streams.wait(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - t < 5
    assert out == "", out  # at once: no summary, no closing line
    for f in (h.hyp / "cache").glob("**/*.parquet"):
        pl.read_parquet_schema(f)  # no partial file is visible
    p = h.run("backfill", "--json", fake="ok")
    assert p.returncode == 0, p.stderr
    df = h.dataset()
    assert df.height == df["part_id"].n_unique() == total


def test_a_second_sigint_after_the_run_ended_still_exits_130(tmp_path):
    """The race behind a CI failure: the first Ctrl+C ended the run within 50 ms, the handlers were restored,
    and the second one, landing before the process had exited, killed it with a KeyboardInterrupt (-2)."""
    script = tmp_path / "second.py"
    script.write_text(
        "import os, signal, threading, time\n"
        "from hypaware_tui.cli.backfill import _Interrupts\n"
        "cancel = threading.Event()\n"
        "with _Interrupts('hyp', cancel):\n"
        "    os.kill(os.getpid(), signal.SIGINT)  # the first: stop after the batch\n"
        "    time.sleep(0.2)\n"
        "    assert cancel.is_set()\n"
        "os.kill(os.getpid(), signal.SIGINT)  # the second, after the run, before the exit\n"
        "time.sleep(2)\n"
        "raise SystemExit(3)\n"
    )
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 130, (p.returncode, p.stderr)
    assert "stopping after the current batch" in p.stderr and "Traceback" not in p.stderr


def test_a_second_sigint_during_the_interpreter_teardown_still_exits_130(tmp_path):
    """The same race one step later (a CI failure again): Python's teardown resets the handlers it installed
    to the default, and with Polars loaded it lasts long enough for the second Ctrl+C to land in it. Before
    the fix, most of these tries ended with status -2."""
    script = tmp_path / "teardown.py"
    script.write_text(
        "import os, signal, sys, threading, time\n"
        "import polars as pl\n"
        "from hypaware_tui.cli.backfill import _Interrupts\n"
        "cancel = threading.Event()\n"
        "with _Interrupts('hyp', cancel):\n"
        "    os.kill(os.getpid(), signal.SIGINT)  # the first: stop after the batch\n"
        f"    pl.DataFrame({{'a': list(range(100_000))}}).write_parquet({str(tmp_path / 'x.parquet')!r})\n"
        "    time.sleep(0.01)\n"
        "print('ending', flush=True)\n"
        "raise SystemExit(130)\n"
    )
    codes = []
    for delay in (0.0, 0.005, 0.01, 0.02, 0.03, 0.05):
        p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "ending\n"
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGINT)  # the second, while the process exits
        p.communicate(timeout=30)
        codes.append(p.returncode)
    assert codes == [130] * 6


def test_a_ctrl_c_while_polars_is_at_work_still_finishes_the_batch_and_prints_the_summary(tmp_path):
    """Polars installs a SIGINT handler of its own on import, which turns a Ctrl+C into a KeyboardInterrupt
    inside the Polars operation under way. `hyp backfill` imports Polars after installing its own handler,
    so a first Ctrl+C that landed while a batch was being encoded ended the run with exit 130 and no summary
    (about half the tries 0.8-0.9 s into a small import). Here the Ctrl+C always lands during Polars work in
    the first commit; before the fix stdout stayed empty."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from gen_corpus import generate

    generate(str(tmp_path), 1.0, seed=5, now=datetime.now(UTC) - timedelta(days=1))
    hyp = tmp_path / "hyp"
    hyp.mkdir(mode=0o700)
    (hyp / "hypaware-config.json").write_text(json.dumps({
        "version": 1, "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
        "retention_days": 0, "capture": {"enabled": False}}))
    script = tmp_path / "ctrl_c.py"
    script.write_text(
        "import io, os, signal, sys, threading\n"
        "import hypaware_tui.core.storage as storage\n"
        "real = storage.encode_part\n"
        "def encode_part(df):\n"
        "    if not getattr(encode_part, 'done', False):\n"
        "        encode_part.done = True\n"
        "        pl = storage.pl\n"
        "        work = pl.DataFrame({'a': [str(i * 7919) for i in range(300_000)]})\n"
        "        sent = threading.Event()\n"
        "        def ctrl_c():\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "            sent.set()\n"
        "        threading.Timer(0.05, ctrl_c).start()\n"
        "        while not sent.is_set():\n"
        "            work.write_parquet(io.BytesIO(), compression='zstd')  # Polars at work when it lands\n"
        "        work.write_parquet(io.BytesIO(), compression='zstd')\n"
        "    return real(df)\n"
        "storage.encode_part = encode_part\n"
        "from hypaware_tui.cli.app import main\n"
        "main(['backfill', '--json'])\n"
    )
    env = dict(os.environ, HOME=str(tmp_path / "home"), HYP_HOME=str(hyp), HYP_WORKERS="1",
               CLAUDE_CONFIG_DIR=str(tmp_path / "home" / ".claude"), CODEX_HOME=str(tmp_path / "home" / ".codex"))
    p = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # (as at a terminal)
    assert p.returncode == 130, (p.returncode, p.stderr[-2000:])
    assert "stopping after the current batch" in p.stderr and "Traceback" not in p.stderr
    data = json.loads(p.stdout)  # the summary, whole
    claude, codex = data["providers"]
    # (claude is ok when the stop landed in its last commit, every file read to its end; codex never started)
    assert claude["status"] in ("ok", "cancelled") and codex["status"] == "cancelled"
    written = claude["rows_written"]
    assert written > 0 and pl.read_parquet(hyp / "cache" / "**" / "*.parquet").height == written


class _Screen:
    """Just enough of a terminal for Rich's live display: text, CR, LF, cursor up, erase line, cursor shown or
    hidden (other escape sequences, colours among them, change nothing on it)."""

    def __init__(self) -> None:
        self.lines: list[str] = [""]
        self.row = self.col = 0
        self.cursor_shown = True

    def feed(self, data: str) -> None:
        for m in re.finditer(r"\x1b\[([0-9;?]*)([ -/]*[@-~])|\x1b[()][0-9A-B]|\x1b[=>]|([\r\n])|([^\x1b\r\n]+)",
                             data):
            params, final, ctl, text = m.group(1), m.group(2), m.group(3), m.group(4)
            if ctl == "\r":
                self.col = 0
            elif ctl == "\n":
                self.row += 1
                while len(self.lines) <= self.row:
                    self.lines.append("")
            elif text is not None:
                line = self.lines[self.row].ljust(self.col)
                self.lines[self.row] = line[: self.col] + text + line[self.col + len(text):]
                self.col += len(text)
            elif final == "A":
                self.row = max(0, self.row - int(params or 1))
            elif final == "K":
                self.lines[self.row] = "" if params == "2" else self.lines[self.row][: self.col]
            elif final in "hl" and params == "?25":
                self.cursor_shown = final == "h"


NEVER_ENDING_RUN = """
import time
from hypaware_tui.core import runner


def run_backfill(layout, names, *, sink, cancel, **kw):
    # A batch that never ends, with the parse workers started, and progress reported all along.
    pool = runner._Pool(1)
    pool.get().submit(abs, 1).result()  # (a worker is up: a Ctrl+C while it starts shows its traceback)
    pool.get().submit(time.sleep, 600)
    sink.on_provider_start("claude", 10_000_000, 10)
    t0 = time.monotonic()
    while True:
        sink.on_progress(runner.Progress("claude", 1_000_000, 10_000_000, 1, 10, 1, 0, 0, {}, 0,
                                         time.monotonic() - t0))
        time.sleep(0.05)


if __name__ == "__main__":  # (not in the spawned workers)
    import sys

    runner.run_backfill = run_backfill
    from hypaware_tui.cli.app import main

    main(sys.argv[1:] or ["backfill", "claude"])
"""


@pytest.mark.parametrize("command", ["backfill claude", "init --yes --client claude --retention-days 0 --no-daemon"])
def test_ctrl_c_at_a_terminal_keeps_its_notice_and_a_second_one_gives_the_cursor_back(h, tmp_path, command):
    """At a terminal, under the live panels. The first Ctrl+C's notice was written past the panels and erased by
    their next repaint; it now stays above them (`hyp init --yes` still wrote it past them, which also left two
    stale panel lines above: init audit). The second Ctrl+C exited with the cursor still hidden and the
    shell's prompt glued to the last panel line (the show-cursor code went to Rich's proxy of stderr, which
    `os._exit` discarded), and multiprocessing's resource tracker printed "There appear to be 8 leaked
    semaphore objects" after the exit."""
    pexpect = pytest.importorskip("pexpect")
    script = tmp_path / "never_ending.py"
    script.write_text(NEVER_ENDING_RUN)
    env = dict(h.env, TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    h.claude.mkdir(parents=True)  # (detected, for `hyp init --yes --client claude`)
    # Under a shell, as at a prompt: the process exiting does not hang the terminal up, and what comes after
    # its exit (the resource tracker's warning) is seen. `EXIT=` stands for the prompt.
    child = pexpect.spawn("/bin/bash", ["-c", f'"{sys.executable}" "{script}" {command}; echo "EXIT=$?"; sleep 1.5'],
                          env=env, dimensions=(24, 100), encoding="utf-8", timeout=30)
    screen = _Screen()
    notice = "hyp: stopping after the current batch (press Ctrl+C again to quit at once)"
    try:
        child.expect_exact("files 1/10")
        screen.feed(child.before + child.after)
        child.sendintr()
        child.expect_exact(notice)
        screen.feed(child.before + child.after)
        for _ in range(4):  # repaints of the panels after the notice
            child.expect_exact("files 1/10")
            screen.feed(child.before + child.after)
        assert notice in [line.rstrip() for line in screen.lines], screen.lines
        child.sendintr()
        child.expect_exact("EXIT=")
        screen.feed(child.before)
        assert screen.cursor_shown and screen.col == 0, (screen.cursor_shown, screen.lines[-3:])
        child.expect(pexpect.EOF)
        after = child.before
    finally:
        child.close()
    assert after.startswith("130"), after
    assert notice in [line.rstrip() for line in screen.lines]
    assert "Traceback" not in "".join(screen.lines)
    assert "leaked" not in after, after


def test_error_notes_at_a_terminal_hang_under_their_text_and_keep_a_path_whole(h):
    """At an 80-column terminal Rich wrapped the notes under the summary back to column 1: `    at` alone on
    its line, then the path cut in two by a line break (a copy of it no longer named the file). Each note now
    goes on under its text, and a path stays whole, for the terminal to fold."""
    pexpect = pytest.importorskip("pexpect")
    day = h.codex / "sessions" / "2026" / "01" / "15"
    day.mkdir(parents=True)
    damaged = day / "rollout-2026-01-15T10-00-00-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b00.jsonl.zst"
    damaged.write_bytes(b"not zstd")
    env = dict(h.env, TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(sys.executable, ["-m", "hypaware_tui", "backfill", "codex", "--dry-run"], env=env,
                          dimensions=(40, 80), encoding="utf-8", timeout=30)
    screen = _Screen()
    try:
        child.expect(pexpect.EOF)
        screen.feed(child.before)
    finally:
        child.close()
    lines = [line.rstrip() for line in screen.lines]
    at = next(i for i, line in enumerate(lines) if line.startswith("  codex: file "))
    message = [lines[at]] + list(itertools.takewhile(lambda line: line.startswith(" " * 9) and line[9] != " ",
                                                     lines[at + 1:]))
    assert len(message) > 1 and all(len(line) <= 80 for line in message), lines
    assert "nothing could be read from it." in message[-1], lines
    assert lines[at + len(message)] == f"    at ~/{damaged.relative_to(h.home)}", lines


# --------------------------------------------------------------------------------------------- both real importers


def test_both_real_importers_end_to_end(h):
    """A realistic two-client corpus (benchmarks/gen_corpus.py, both importers): import, rerun with nothing
    new, dry run after the checkpoints are lost (dedupe only), and the plan and list figures."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from gen_corpus import generate

    generate(str(h.tmp), 1.5, seed=11, now=datetime.now(UTC) - timedelta(days=1))
    h.hyp.mkdir(mode=0o700)
    (h.hyp / "hypaware-config.json").write_text(json.dumps({
        "version": 1, "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
        "retention_days": 0, "capture": {"enabled": False}}))
    first, p = h.json("backfill")
    assert p.returncode == 0, p.stderr
    assert first["since"] is None  # retention 0: no floor, no lower bound
    by = {x["provider"]: x for x in first["providers"]}
    assert by["claude"]["status"] == by["codex"]["status"] == "ok"
    assert by["claude"]["rows_written"] > 100 and by["codex"]["rows_written"] > 100
    assert by["claude"]["errors"] == by["codex"]["errors"] == 0
    df = h.dataset()
    assert df.height == df["part_id"].n_unique() == sum(x["rows_written"] for x in first["providers"])

    text = h.run("backfill")
    assert text.returncode == 0
    assert text.stdout.strip().splitlines()[-1] == "Nothing new to import: no history was added since the last import."

    h.drop_checkpoints()
    dry, p = h.json("backfill", "--dry-run")
    assert [x["rows_written"] for x in dry["providers"]] == [0, 0]
    assert [x["duplicates_skipped"] for x in dry["providers"]] == [x["rows_written"] for x in first["providers"]]
    assert not (h.hyp / "state" / "ingest.sqlite").exists()  # the dry run created nothing

    plan, _ = h.json("backfill", "plan")
    listing, _ = h.json("backfill", "list")
    for entry, lst in zip(plan["providers"], listing["providers"], strict=True):
        assert entry["files"] == lst["files"] > 0  # no lower bound: every file is in the window
        # sessions = top-level files (subagent files belong to their parent's session) = distinct session ids
        assert entry["sessions"] == lst["sessions"] == by[entry["provider"]]["sessions_seen"]


def test_terminal_progress_panel(h):
    """On a TTY stderr gets the Rich panel; the run still ends with the summary and exit 0."""
    pexpect = pytest.importorskip("pexpect")
    claude_fixtures(h)
    env = dict(h.env)
    env.pop("NO_COLOR")
    child = pexpect.spawn(sys.executable, ["-m", "hypaware_tui", "backfill", "claude", "codex"], env=env,
                          dimensions=(24, 80), encoding="utf-8", timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    text = child.before
    assert child.exitstatus == 0, text
    assert "Claude Code" in text and "skipped" in text and "Imported 30 new rows." in text
    assert "Traceback" not in text


def test_cache_prune_forgets_the_checkpoints_of_vanished_files_only(h):
    """`hyp cache prune` is the daemon's daily pass (cli.md §8): besides old partitions, it drops the
    checkpoints of files that no longer exist, and keeps everything of a client whose root is gone."""
    from hypaware_tui.core.checkpoints import StateDB
    from hypaware_tui.core.paths import Layout

    h.config(claude=True, codex=False)
    claude_fixtures(h)
    first, p = h.json("backfill")
    assert p.returncode == 0 and first["providers"][0]["files_scanned"] == 3, p.stderr

    def entries() -> int:
        db = StateDB.open(Layout(h.hyp), create=False)
        try:
            return len(db.get_all("claude"))
        finally:
            db.close()

    assert entries() == 3
    gone = next((h.claude / "projects").glob("*/sess-1.jsonl"))
    gone.unlink()
    doc, p = h.json("cache", "prune")
    assert p.returncode == 0 and doc["checkpoints_removed"] == 1 and doc["partitions_removed"] == 0, p.stderr
    assert entries() == 2
    again, _ = h.json("backfill")  # the files still there are still known: nothing is read again
    assert (again["providers"][0]["files_scanned"], again["providers"][0]["rows_written"]) == (0, 0)

    moved = h.claude.rename(h.tmp / "claude-elsewhere")  # the whole root missing: nothing is forgotten
    doc, p = h.json("cache", "prune")
    assert p.returncode == 0 and doc["checkpoints_removed"] == 0
    assert entries() == 2 and moved.exists()
    text = h.run("cache", "prune")
    assert text.returncode == 0 and "import position" not in text.stdout and ".tmp" not in text.stdout
    # an interrupted write's leftover, older than an hour: removed, and said (it said only "nothing to prune")
    part = next((h.hyp / "cache").rglob("date=*"))
    stale = part / "part-x.parquet.tmp"
    stale.write_bytes(b"x" * 100)
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    text = h.run("cache", "prune")
    assert text.returncode == 0 and not stale.exists()
    assert "Removed 1 unfinished file an interrupted write left behind (.tmp)." in text.stdout


def test_cache_prune_says_files_outside_the_roots_are_forgotten_not_gone(h):
    """After CLAUDE_CONFIG_DIR was switched to another folder, prune forgot the positions of the old folder's
    files (storage.md §7.4) and said they "no longer exist", while every one of them was still there."""
    h.config(claude=True, codex=False)
    claude_fixtures(h)
    assert h.run("backfill").returncode == 0
    other = h.home / "claude-b"
    claude_session(other / "projects" / "-home-ada-b" / "sess-b.jsonl", "sess-b", 3, recent(2))
    text = h.run("cache", "prune", env={**h.env, "CLAUDE_CONFIG_DIR": str(other)})
    assert text.returncode == 0, text.stderr
    assert ("Forgot the import position of 3 files that are gone or no longer under the clients' folders."
            in text.stdout.splitlines()), text.stdout
    assert len(list(h.claude.rglob("*.jsonl"))) == 3
    assert h.run("backfill").returncode == 0  # the old root again, then one file deleted: one
    next(h.claude.rglob("sess-1.jsonl")).unlink()
    text = h.run("cache", "prune")
    assert ("Forgot the import position of 1 file that is gone or no longer under the clients' folders."
            in text.stdout.splitlines()), text.stdout


def test_rows_pruned_after_retention_was_lowered_come_back_when_it_is_raised_again(h):
    """storage.md §7.3/§12: raising retention reads the now-allowed older rows again. After retention was
    lowered without an import (`hyp init --no-backfill`) and `hyp cache prune` removed the older partitions,
    the import floor recorded by the first import was still the earlier one: raising retention back did not
    look lower than it, no checkpoint was reset, and the pruned rows of files still on disk never came back
    ("Nothing new to import")."""
    old_rows, _ = claude_session(h.claude / "projects" / "-home-ada-old" / "old.jsonl", "old", 4, recent(200))
    new_rows, _ = claude_session(h.claude / "projects" / "-home-ada-new" / "new.jsonl", "new", 3, recent(5))
    base = ("init", "--yes", "--no-daemon", "--client", "claude")
    p = h.run(*base, "--retention-days", "365")
    assert p.returncode == 0, p.stderr
    assert h.dataset().height == old_rows + new_rows
    p = h.run(*base, "--force", "--no-backfill", "--retention-days", "120")
    assert p.returncode == 0, p.stderr
    doc, p = h.json("cache", "prune")
    assert p.returncode == 0 and doc["rows_removed"] == old_rows, p.stderr
    assert h.dataset().height == new_rows
    p = h.run(*base, "--force", "--retention-days", "365")
    assert p.returncode == 0, p.stderr
    df = h.dataset()
    assert df.height == df["part_id"].n_unique() == old_rows + new_rows
    again = h.run("backfill")
    assert again.stdout.strip().splitlines()[-1] == "Nothing new to import: no history was added since the last import."


def test_a_ctrl_c_while_waiting_for_the_lock_stops_the_wait_and_prints_the_summary(h):
    """cli.md §5.3: a Ctrl+C ends a backfill with exit 130 and its summary. While another process held the
    write lock, the first Ctrl+C was only noted: hyp went on waiting until the lock came free. Nothing is
    lost: the next run imports everything."""
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.storage import Storage

    h.config(claude=True, codex=False)
    rows, _ = claude_fixtures(h)
    with Storage(Layout(h.hyp)) as other, other.locked():
        p = subprocess.Popen(HYP + ["backfill", "--json"], env=dict(h.env, PYTHONFAULTHANDLER="1"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # (as at a terminal)
        assert "waiting for another import to finish its batch" in p.stderr.readline()
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=20)  # the lock is still held all along
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGABRT)
            pytest.fail(f"still waiting 20 s after Ctrl+C:\n{p.communicate(timeout=10)[1]}")
    assert p.returncode == 130, err
    (claude,) = json.loads(out)["providers"]
    assert claude["status"] == "cancelled" and claude["rows_written"] == 0
    assert "stopping after the current batch" in err
    again, p = h.json("backfill")
    assert p.returncode == 0 and again["providers"][0]["rows_written"] == rows


def test_a_sigterm_notice_does_not_say_press_ctrl_c(h):
    """A SIGTERM (a script, a service manager, a cron timeout) printed "press Ctrl+C again to quit at once" in
    the job's log (scripting audit): it says to send the signal again; exit 130 and the summary as for Ctrl+C."""
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.storage import Storage

    h.config(claude=True, codex=False)
    claude_fixtures(h)
    with Storage(Layout(h.hyp)) as other, other.locked():
        p = subprocess.Popen(HYP + ["backfill", "--json"], env=h.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        assert "waiting for another import to finish its batch" in p.stderr.readline()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 130, err
    assert "hyp: stopping after the current batch (send the signal again to quit at once)" in err, err
    assert "Ctrl+C" not in err and json.loads(out)["providers"][0]["status"] == "cancelled"


def test_a_locked_checkpoint_database_is_waited_for_out_loud(h):
    """Another process holding the checkpoint database (a long transaction): `hyp backfill` waited 30 s per
    provider in silence before failing. It says it is waiting, as for the storage lock, and goes on once the
    database is free."""
    import sqlite3

    from hypaware_tui.core.checkpoints import StateDB
    from hypaware_tui.core.paths import Layout

    h.config(claude=True, codex=False)
    rows, _ = claude_fixtures(h)
    StateDB.open(Layout(h.hyp), create=True).close()
    other = sqlite3.connect(Layout(h.hyp).ingest_db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        p = subprocess.Popen(HYP + ["backfill", "--json"], env=dict(h.env, PYTHONFAULTHANDLER="1"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        assert p.stderr.readline().strip() == "waiting for another import to finish its batch…"
        assert time.monotonic() - t0 < 15
    finally:
        other.execute("ROLLBACK")
        other.close()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    (claude,) = json.loads(out)["providers"]
    assert claude["status"] == "ok" and claude["rows_written"] == rows


def test_help_works_with_any_other_arguments_and_lists_the_import_options(inproc):
    """cli.md §1: -h/--help on every command, exit 0. `hyp backfill --dry-run --help` said "no such option:
    --dry-run" (exit 2), and `hyp backfill --help` listed only -h among its options."""
    rc, out, _ = inproc("backfill", "--help")
    assert rc == 0
    for piece in ("--since DATE", "--until DATE", "--dry-run", "--json", "claude or codex", "list", "plan"):
        assert piece in out, piece
    for args in (["--dry-run", "--help"], ["--since", "2026-01-01", "-h"], ["--help", "--json"], ["claude", "-h"]):
        rc, out, err = inproc("backfill", *args)
        assert rc == 0 and out.startswith("Usage: hyp backfill [PROVIDER]...") and "--until DATE" in out, (args, err)


def test_hyp_home_that_is_a_file_is_named_by_backfill(h, inproc, monkeypatch):
    """HYP_HOME pointing at a file: `hyp backfill` said "the config is invalid: …/hypaware-config.json: cannot
    be read: Not a directory. Fix the file, or run hyp init --force", about a config that is fine."""
    h.hyp.write_text("a file\n")
    for args in (["backfill", "claude"], ["backfill", "plan"], ["backfill", "--dry-run"]):
        rc, out, err = inproc(*args)
        assert rc == 1 and out == "", args
        assert err.strip().endswith(f"HYP_HOME is {h.hyp}, which is not a directory. Point HYP_HOME at a "
                                    "directory (or move that file away) and run it again."), (args, err)
    assert h.hyp.read_text() == "a file\n"


def _full_disk(monkeypatch, files_before: int, code: str = "ENOSPC"):
    """ENOSPC (or the errno named `code`) on every write of a claude partition file after the first
    `files_before` (each file is written in two halves): the counter, to switch it off with `["fail"] = False`."""
    import errno

    from hypaware_tui.core import paths as paths_mod

    real_write_all = paths_mod.write_all
    state = {"writes": 0, "fail": True}
    number = getattr(errno, code)

    def write_all(fd, data):
        if state["fail"] and "source=claude" in os.readlink(f"/proc/self/fd/{fd}"):
            state["writes"] += 1
            if state["writes"] > 2 * files_before:
                raise OSError(number, os.strerror(number))
        return real_write_all(fd, data)

    monkeypatch.setattr(paths_mod, "write_all", write_all)
    return state


def test_a_file_size_limit_names_ulimit(h, inproc, monkeypatch):
    """A write stopped by the process's file-size limit (`ulimit -f`: EFBIG, since Python ignores SIGXFSZ) said
    "File too large. Nothing already committed was lost; run it again once the problem is fixed": not the
    cause (a limit of this process, not of the disk or the file), nor what fixes it."""
    claude_fixtures(h)
    _full_disk(monkeypatch, files_before=0, code="EFBIG")
    rc, out, _ = inproc("backfill", "claude", "--json")
    (claude,) = json.loads(out)["providers"]
    assert rc == 1 and claude["status"] == "failed"
    assert claude["error"] == (
        "could not write to the dataset: File too large. A limit on the size of the files this process may write "
        "(`ulimit -f`, inherited from the shell or service that started it) stopped the write: raise it "
        "(`ulimit -f unlimited`) and run it again. Rows already committed are kept, and the next run resumes "
        "from the last checkpoint."
    )


def _last_line(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_a_full_disk_midway_reports_the_rows_committed_and_the_error(h, inproc, monkeypatch):
    """The disk fills at the second of the three partition files of claude's commit: the first one is in the
    dataset. The summary said `rows written 0` and "No history in this window."; it counts those rows, shows
    the storage error (what to do), and exits 1 (cli.md §5.3)."""
    import shutil

    claude_fixtures(h)  # 3 sessions of 10 rows on 3 days
    disk = _full_disk(monkeypatch, files_before=1)
    rc, out, _ = inproc("backfill", "claude", "--json")
    assert rc == 1
    (claude,) = json.loads(out)["providers"]
    assert h.dataset().height == 10
    # (the session of those rows only: the other two have no row in the dataset, cli.md §5.3)
    assert (claude["status"], claude["rows_written"], claude["sessions_seen"]) == ("failed", 10, 1)
    assert claude["error"].startswith("could not write to the dataset: No space left on device. Free some disk")

    shutil.rmtree(h.hyp)
    disk["writes"] = 0
    rc, out, _ = inproc("backfill", "claude")
    assert rc == 1
    row = next(line.split() for line in out.splitlines() if line.startswith("claude "))
    assert row[:2] == ["claude", "failed"] and row[4] == "10"  # provider status files sessions rows-written …
    assert "  claude: could not write to the dataset: No space left on device. Free some disk space" in out
    assert "No history in this window." not in out
    assert _last_line(out) == "Imported 10 new rows."


def test_no_history_in_this_window_is_never_said_after_a_failure(h, inproc, monkeypatch):
    """A provider that failed, or whose files all failed to read, wrote nothing: the closing line says that it
    failed (its error is printed above), never "No history in this window.", which reads as "all is well,
    there was nothing to import"."""
    import hypaware_tui.importers as registry

    # the disk is full from the first write: claude failed, nothing written
    claude_fixtures(h, sessions=1)
    disk = _full_disk(monkeypatch, files_before=0)
    rc, out, _ = inproc("backfill", "claude")
    assert rc == 1 and h.dataset().height == 0
    assert "  claude: could not write to the dataset: No space left on device." in out
    assert _last_line(out) == "Nothing was imported: claude failed (the error is above)."
    disk["fail"] = False

    # the importer raised before reading a file (codex), and every file of claude failed to read
    for name, importer in fakes("codex-raises").items():
        monkeypatch.setitem(registry._cache, name, importer)
    for i in range(2):
        write_session(Path(h.env["FAKE_CLAUDE_ROOT"]) / f"s{i}.jsonl", f"c{i}", [_iso(recent(1))], boom_at=0)
    write_session(Path(h.env["FAKE_CODEX_ROOT"]) / "r.jsonl", "x", [_iso(recent(1))])
    rc, out, _ = inproc("backfill", "codex")
    assert rc == 1 and "  codex: the importer stopped: RuntimeError: simulated importer crash" in out
    assert _last_line(out) == "Nothing was imported: codex failed (the error is above)."
    rc, out, _ = inproc("backfill", "claude")
    assert rc == 0  # (files that cannot be read are errors, not a failure: cli.md §5.3)
    row = next(line.split() for line in out.splitlines() if line.startswith("claude "))
    assert row[1] == "ok" and row[4] == "0" and row[-1] == "2"
    assert _last_line(out) == "Nothing was imported: history of claude could not be read (the error is above)."
    rc, out, _ = inproc("backfill", "claude", "codex")
    assert rc == 1 and _last_line(out) == "Nothing was imported: codex failed (the error is above)."
    assert "No history in this window." not in out


def test_closing_line_of_an_interrupted_run_that_wrote_nothing():
    from hypaware_tui.cli.backfill import closing_line
    from hypaware_tui.core.runner import BackfillResult, ProviderResult

    def result(*providers: ProviderResult) -> BackfillResult:
        return BackfillResult(run_id="r", dry_run=False, since_us=None, until_us=None, providers=list(providers))

    # (the duplicates of a run stopped early: not "all rows in this window are already in the dataset")
    stopped = result(ProviderResult("claude", status="cancelled", duplicates_skipped=5))
    assert closing_line(stopped) == (
        "Nothing was imported: the import was interrupted. Run it again to import this window."
    )
    both = result(ProviderResult("claude", status="failed"), ProviderResult("codex", status="failed"))
    assert closing_line(both) == "Nothing was imported: claude and codex failed (the error is above)."
    assert closing_line(result(ProviderResult("claude"))) == "No history in this window."
    assert closing_line(result(ProviderResult("claude", status="failed", rows_written=3))) == "Imported 3 new rows."
    assert closing_line(result(ProviderResult("claude", rows_written=1))) == "Imported 1 new row."


def test_a_line_stamped_in_2099_does_not_stop_hyp_backfill(h, inproc):
    """A Claude Code transcript with one line stamped 2099 in the middle (a corrupt stamp): every `hyp backfill`
    stopped there (daemon.md §3.1 rule 4, the line is after `until`), and the lines after it were never
    imported. One run imports every line, that one too (the daemon would store it); the rerun writes nothing."""
    path = h.claude / "projects" / "-home-ada-repo" / "s.jsonl"
    rows, _ = claude_session(path, "s", 4, recent(1))
    lines = path.read_text().splitlines(keepends=True)
    future = json.loads(lines[3])
    future.update(uuid="s-future", timestamp="2099-01-01T00:00:00.000Z")
    lines.insert(4, json.dumps(future) + "\n")
    path.write_text("".join(lines))
    rc, out, _ = inproc("backfill", "claude", "--json")
    (claude,) = json.loads(out)["providers"]
    assert rc == 0 and claude["status"] == "ok"
    assert claude["rows_written"] == rows + 1 == h.dataset().height
    assert "outside_window" not in claude["lines_skipped"]
    assert "2099-01-01" in {str(d) for d in h.dataset()["date"].to_list()}
    rc, out, _ = inproc("backfill", "claude", "--json")
    (again,) = json.loads(out)["providers"]
    assert (again["rows_written"], again["duplicates_skipped"], again["lines_skipped"]) == (0, 0, {})


def test_an_explicit_until_holds_for_a_line_stamped_in_2099(h, inproc):
    """`hyp backfill --until X` wrote the row of a line stamped 2099 (a `date=2099-01-01` partition in a run asked
    for nothing after X), kept by the rule above for runs whose `until` is now (found by the reliability audit).
    `--until` is an upper bound (cli.md §5.2): the pass stops at that line like at any line after X, and a run
    without `--until` goes on from there. The plan, which sees a file's first and last stamps, ends its range at
    X for a file whose last line is the one stamped 2099."""
    path = h.claude / "projects" / "-home-ada-repo" / "s.jsonl"
    start = recent(1)
    rows, _ = claude_session(path, "s", 4, start)
    lines = path.read_text().splitlines(keepends=True)
    future = json.loads(lines[3])
    future.update(uuid="s-future", timestamp="2099-01-01T00:00:00.000Z")
    lines.insert(4, json.dumps(future) + "\n")  # after the first question, its answer and the second question
    path.write_text("".join(lines))
    until = _iso(start + timedelta(hours=1))  # after every other line
    rc, out, _ = inproc("backfill", "claude", "--until", until, "--json")
    (claude,) = json.loads(out)["providers"]
    assert rc == 0 and claude["status"] == "ok" and claude["rows_written"] == 3 == h.dataset().height
    assert max(str(d) for d in h.dataset()["date"].to_list()) < "2099"
    rc, out, _ = inproc("backfill", "claude", "--json")
    (rest,) = json.loads(out)["providers"]
    assert rest["rows_written"] == rows + 1 - 3 and h.dataset().height == rows + 1
    assert (rest["duplicates_skipped"], rest["lines_skipped"]) == (0, {"malformed": 1, "not_a_message": 1})
    ends = h.claude / "projects" / "-home-ada-repo" / "t.jsonl"
    claude_session(ends, "t", 1, start)
    ends.write_text(ends.read_text() + json.dumps({**future, "uuid": "t-future", "sessionId": "t"}) + "\n")
    for args, newest in ((["--until", until], until.replace(".000Z", "Z")), ([], "2099-01-01T00:00:00Z")):
        rc, out, _ = inproc("backfill", "plan", "claude", *args, "--json")
        (plan,) = json.loads(out)["providers"]
        assert rc == 0 and plan["files"] == 2 and plan["newest"] == newest


def _cut_zst(h: Home) -> tuple[Path, int]:
    """A Codex rollout compressed and cut at two thirds (whole zstd blocks before the cut), beside a good plain
    rollout. Returns the cut file and the rows of the complete rollout."""
    import zstandard
    from test_codex_importer import FIX, big_rollout

    day = h.codex / "sessions" / "2026" / "01" / "15"
    day.mkdir(parents=True)
    good = next(FIX.glob("rollout-2026-01-15*.jsonl"))
    (day / good.name).write_bytes(good.read_bytes())
    z = zstandard.ZstdCompressor().compress(big_rollout())
    cut = day / "rollout-2026-01-15T10-00-00-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b99.jsonl.zst"
    cut.write_bytes(z[: len(z) * 2 // 3])
    return cut, 1500


def test_a_truncated_zst_rollout_is_reported_and_its_rows_before_the_cut_imported_once(h, inproc):
    """A cut `.jsonl.zst` was counted as read, nothing said. Now the rows before the cut are imported, the file
    is an error in the text (with its path, to find it) and JSON (by path hash), and a rerun adds nothing."""
    h.config(codex=True)
    cfg = json.loads((h.hyp / "hypaware-config.json").read_text())
    (h.hyp / "hypaware-config.json").write_text(json.dumps({**cfg, "retention_days": 0}))
    cut, whole_rows = _cut_zst(h)
    rc, out, err = inproc("backfill", "--json")
    assert rc == 0, err
    codex = json.loads(out)["providers"][0]
    assert codex["status"] == "ok" and codex["errors"] == 1
    assert codex["files_scanned"] == 2  # (opened and read, up to the damage: it was left out of the count)
    assert "truncated" in codex["error"] and "the lines before the damage were imported" in codex["error"]
    assert str(h.tmp) not in codex["error"]
    from hypaware_tui.core.checkpoints import path_hash

    assert codex["error"].startswith(f"file {path_hash(str(cut))}: ")
    df = h.dataset()
    assert df.height == df["part_id"].n_unique() == codex["rows_written"]
    from_cut = df.filter(pl.col("source_path_hash") == path_hash(str(cut))).height
    assert 0 < from_cut < whole_rows

    rc, out, err = inproc("backfill")
    assert rc == 0, err
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "truncated" in line)
    assert lines[at].startswith("  codex: file ")
    assert lines[at + 1] == f"    at ~/.codex/sessions/2026/01/15/{cut.name}"  # (HOME is h.home)
    assert "more error" not in out
    assert h.dataset().height == df.height  # read again, reported again, nothing doubled
    assert str(h.tmp) not in (h.hyp / "logs" / "events.jsonl").read_text()


def test_each_file_error_is_logged_and_the_summary_counts_the_others(h, inproc):
    """The summary showed only the first of N file errors, by path hash: now its path (terminal only), and how
    many more, which are in the events log (by path hash) and in hyp status."""
    claude_fixtures(h, sessions=1)
    bad = [h.claude / "projects" / "-home-ada-repo0" / f"loop{i}.jsonl" for i in range(3)]
    for p in bad:
        os.symlink(p.name, p)
    rc, out, err = inproc("backfill", "claude")
    assert rc == 0, err
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  claude: "))
    assert "symbolic link loop" in lines[at]
    assert lines[at + 1] in {f"    at ~/{p.relative_to(h.home)}" for p in bad}
    assert lines[at + 2] == ("  claude: and 2 more errors (hyp status shows the latest errors; the events log "
                             "has each, by path hash; hyp backfill --dry-run lists their paths).")
    events = [json.loads(x) for x in (h.hyp / "logs" / "events.jsonl").read_text().splitlines()]
    logged = [e for e in events if e["event"] == "backfill.file_error"]
    assert len(logged) == 3 and all("symbolic link loop" in e["error"] and e["provider"] == "claude" for e in logged)
    assert str(h.tmp) not in json.dumps(events)
    rc, out, err = inproc("status", "--json")
    assert sum("symbolic link loop" in e["message"] for e in json.loads(out)["recent_errors"]) >= 3
    # a dry run logs nothing: it lists every error, each with its path (the daemon names a failing file by path
    # hash only and sends a person here for its path, whichever of the errors it was)
    from hypaware_tui.core.checkpoints import path_hash

    rc, out, err = inproc("backfill", "claude", "--dry-run")
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  claude: "))
    hashes = {path_hash(os.path.realpath(p)): p for p in bad}
    listed = lines[at:at + 6]
    assert [line.split(":")[0] for line in listed[0::2]] == ["  claude"] * 3, lines
    for said, where in zip(listed[0::2], listed[1::2], strict=True):
        assert "symbolic link loop" in said
        hash_ = re.search(r"\b([0-9a-f]{16}):", said).group(1)
        assert where == f"    at ~/{hashes.pop(hash_).relative_to(h.home)}"
    assert hashes == {} and "more error" not in out


def test_a_session_linked_from_a_drive_not_mounted_is_a_file_error(h, inproc):
    """A transcript symlinked to a file that is not there (its drive not mounted) was skipped without a word:
    no error, not in the events, not in hyp status, while a link loop was reported. It is a file error now,
    with its path on the terminal and its path hash in the log; status counts it with the failed files."""
    claude_fixtures(h, sessions=1)
    link = h.claude / "projects" / "-home-ada-repo0" / "gone.jsonl"
    os.symlink(h.tmp / "unmounted" / "gone.jsonl", link)
    rc, out, err = inproc("backfill", "claude", "--json")
    (claude,) = json.loads(out)["providers"]
    assert rc == 0 and claude["status"] == "ok" and claude["errors"] == 1, err
    assert "symbolic link to a file that does not exist" in claude["error"]
    events = [json.loads(x) for x in (h.hyp / "logs" / "events.jsonl").read_text().splitlines()]
    logged = [e["error"] for e in events if e["event"] == "backfill.file_error"]
    assert len(logged) == 1 and "symbolic link to a file that does not exist" in logged[0]
    assert [e["files_failed"] for e in events if e["event"] == "backfill.scan"] == [1]
    assert str(h.tmp) not in json.dumps(events)
    rc, out, _ = inproc("backfill", "claude")
    assert f"    at ~/{link.relative_to(h.home)} (a link to {h.tmp / 'unmounted' / 'gone.jsonl'})" in out.splitlines()
    rc, out, _ = inproc("status", "--json")
    doc = json.loads(out)
    assert any("symbolic link to a file that does not exist" in e["message"] for e in doc["recent_errors"])
    assert [(c["files"], c["files_failed"]) for c in doc["clients"] if c["client"] == "claude"] == [(1, 1)]


NOTHING_NEW = "Nothing new to import: no history was added since the last import."
CODEX_ROLLOUT = (Path(__file__).parent / "fixtures" / "codex"
                 / "rollout-2026-01-15T14-02-11-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b01.jsonl")


def _count_checkpoints(h: Home, client: str) -> int:
    from hypaware_tui.core.checkpoints import StateDB
    from hypaware_tui.core.paths import Layout

    db = StateDB.open(Layout(h.hyp), create=False)
    try:
        return len(db.get_all(client))
    finally:
        db.close()


@pytest.mark.parametrize("link", ["claude projects", "claude root", "codex home", "codex sessions"])
def test_a_history_folder_on_a_drive_not_mounted_is_said_and_keeps_its_checkpoints(h, inproc, monkeypatch, link):
    """~/.claude/projects a link to a folder on a drive that is not mounted counted as a healthy, empty root:
    `backfill list` said "yes … 0 files", `hyp backfill` "ok 0 files, errors 0" and no word, and `hyp cache
    prune` forgot every checkpoint of that folder (the next import read it all again once the drive was back).
    Such a folder (`projects`, the Claude root itself beside a second root, the Codex home, its `sessions`)
    cannot be read: each command says so, with where the link points, and prune keeps its checkpoints
    (storage.md §7.4: "a client whose roots could not all be read keeps its entries")."""
    client, which = link.split()
    drive = h.tmp / "drive"
    h.hyp.mkdir(mode=0o700)
    (h.hyp / "hypaware-config.json").write_text(json.dumps({
        "version": 1, "clients": {client: {"enabled": True}}, "retention_days": 0, "capture": {"enabled": False}}))
    if link == "claude projects":
        (drive / "projects").mkdir(parents=True)
        h.claude.mkdir()
        (h.claude / "projects").symlink_to(drive / "projects")
        shown, target = "~/.claude/projects", drive / "projects"
    elif link == "claude root":  # beside a second root that can be read, with a session already imported
        drive.mkdir()
        h.claude.symlink_to(drive)
        other = h.home / "claude-b"
        claude_session(other / "projects" / "-home-ada-b" / "sess-b.jsonl", "sess-b", 2, midday(2))
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", f"{h.claude},{other}")
        shown, target = "~/.claude", drive
    elif link == "codex home":
        drive.mkdir()
        h.codex.symlink_to(drive)
        shown, target = "~/.codex", drive
    else:
        (drive / "sessions").mkdir(parents=True)
        h.codex.mkdir()
        (h.codex / "sessions").symlink_to(drive / "sessions")
        shown, target = "~/.codex/sessions", drive / "sessions"
    if client == "claude":
        claude_fixtures(h)
    else:
        day = h.codex / "sessions" / "2026" / "01" / "15"
        day.mkdir(parents=True)
        (day / CODEX_ROLLOUT.name).write_bytes(CODEX_ROLLOUT.read_bytes())
    rc, out, err = inproc("backfill")
    assert rc == 0 and out.splitlines()[-1].startswith("Imported "), out + err
    known = _count_checkpoints(h, client)
    assert known == (4 if link == "claude root" else 3 if client == "claude" else 1)

    drive.rename(h.tmp / "drive-unmounted")
    rc, out, err = inproc("backfill")
    lines = out.splitlines()
    assert rc == 0, err
    if link == "codex home":  # its only root: not detected, and why
        assert (f"  codex: not readable: {h.codex} (a symbolic link to {target}, which does not exist: mount its "
                "drive or fix the link)") in lines, out
        assert lines[-1] == "Nothing was imported: history of codex could not be read (the error is above).", out
    else:
        at = lines.index(f"    at {shown} (a link to {target})")
        assert lines[at - 1].startswith(f"  {client}: ") and (
            "folder: it is a symbolic link to a folder that does not exist (on a drive that is not mounted, or "
            "moved or deleted), so none of its history was read. Mount the drive or make that folder available "
            "again, or remove the link.") in lines[at - 1], out
        if link == "claude root":  # (the second root's session: unchanged)
            assert lines[-1] == ("Nothing new to import from what could be read: 1 folder could not be read "
                                 "(see above)."), out
        else:
            assert lines[-1] == (f"Nothing was imported: history of {client} could not be read (the error is "
                                 "above)."), out

    rc, out, _ = inproc("backfill", "list")
    assert rc == 0
    if link == "codex home":
        assert f"not readable: {h.codex} (a symbolic link to {target}" in out
    else:
        assert f"    at {shown} (a link to {target})" in out.splitlines(), out

    rc, out, _ = inproc("cache", "prune", "--dry-run")
    assert rc == 0 and "import position" not in out, out
    rc, out, _ = inproc("cache", "prune", "--json")
    assert rc == 0 and json.loads(out)["checkpoints_removed"] == 0
    assert _count_checkpoints(h, client) == known

    (h.tmp / "drive-unmounted").rename(drive)  # the drive back: nothing is read again
    rc, out, _ = inproc("backfill")
    assert rc == 0 and out.splitlines()[-1] == NOTHING_NEW, out


def test_nothing_new_is_said_only_of_what_could_be_read(h, inproc):
    """"Nothing new to import: no history was added since the last import." closed a run whose table said
    `errors 1` and whose error (a file that could not be read) was printed just above: the line now says what
    it is sure of. cli.md §5.3's text is unchanged for a run without error."""
    claude_fixtures(h, sessions=2)
    assert inproc("backfill", "claude")[0] == 0
    rc, out, _ = inproc("backfill", "claude")
    assert rc == 0 and out.splitlines()[-1] == NOTHING_NEW
    os.symlink("loop.jsonl", h.claude / "projects" / "-home-ada-repo0" / "loop.jsonl")
    rc, out, _ = inproc("backfill", "claude")
    assert rc == 0 and "symbolic link loop" in out
    assert out.splitlines()[-1] == ("Nothing new to import from what could be read: 1 file could not be read "
                                    "(see above)."), out
    h.drop_checkpoints()  # every row read again, all duplicates: the same
    rc, out, _ = inproc("backfill", "claude")
    assert rc == 0 and out.splitlines()[3].split()[5] == "20"  # (20 duplicates)
    assert out.splitlines()[-1] == ("Nothing new to import from what could be read: 1 file could not be read "
                                    "(see above)."), out


def test_without_a_config_a_root_that_cannot_be_read_is_not_no_history_found(h, inproc):
    """Without a config, `hyp backfill` imports the detected clients; ~/.claude a link to a drive not mounted
    is not detected, and the run said "no Claude Code or Codex history found" of history that is there."""
    h.claude.symlink_to(h.tmp / "unmounted")
    rc, out, _ = inproc("backfill")
    assert rc == 0
    assert out.splitlines() == [
        "Nothing to import: no Claude Code or Codex history could be read.",
        f"  claude: not readable: {h.claude} (a symbolic link to {h.tmp / 'unmounted'}, which does not exist: "
        "mount its drive or fix the link)",
    ]
    h.claude.unlink()
    rc, out, _ = inproc("backfill")
    assert out.splitlines() == ["Nothing to import: no Claude Code or Codex history found."]


def test_the_tty_panel_of_a_provider_with_nothing_to_read_says_0_B(monkeypatch):
    """A rerun under a terminal: both providers read nothing, and the panel said `100%  1 B/0 B`."""
    import io

    from rich.console import Console

    from hypaware_tui.cli import backfill as bf
    from hypaware_tui.core.runner import ProviderResult

    sink = bf.RichSink("hyp", dry_run=False)
    sink.on_provider_start("claude", 0, 3)
    sink.on_provider_finish(ProviderResult(provider="claude", status="ok"))
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(sink._render())
    assert "0 B/0 B" in out.getvalue() and "1 B" not in out.getvalue()


def test_a_stdout_that_cannot_encode_the_arrows_gets_question_marks_not_a_crash(h):
    """`LANG=en_US.ISO-8859-1` or PYTHONIOENCODING=ascii: the range arrow of `hyp backfill list` and the dots
    of `hyp status` cannot be encoded; `hyp backfill list` died with UnicodeEncodeError (exit 1)."""
    h.config(claude=True, codex=False)
    claude_fixtures(h)
    env = dict(h.env, PYTHONIOENCODING="ascii")
    for args in (("backfill", "list"), ("backfill", "plan"), ("backfill",), ("status",)):
        p = h.run(*args, env=env)
        assert p.returncode == 0, (args, p.stderr)
        assert "Error" not in p.stderr
    listing = h.run("backfill", "list", env=env).stdout
    assert re.search(r"\d{4}-\d\d-\d\d \? \d{4}-\d\d-\d\d", listing), listing


def test_following_the_advice_for_a_damaged_part_file_gets_its_rows_back(h, inproc):
    """A part file cut short: every command that finds it said to move it out of the dataset, and nothing more;
    the next `hyp backfill` then said "Nothing new to import" and its rows were gone for good (the checkpoints
    say its history was read). Each gives the same, complete advice, and following it word for word brings the
    rows back, once each."""
    import re

    rows, _ = claude_fixtures(h)  # 3 sessions on 3 days: 3 part files
    assert inproc("backfill", "claude")[0] == 0 and h.dataset().height == rows
    victim = sorted((h.hyp / "cache" / "ai_gateway_messages").glob("**/*.parquet"))[0]
    os.truncate(victim, victim.stat().st_size // 2)

    advice = set()
    for args in (["query", "sql", "select count(*) from ai_gateway_messages"], ["query", "overview"],
                 ["status"], ["cache", "status"]):
        rc, out, err = inproc(*args)
        assert rc == 1 and str(victim) in out + err, (args, out, err)
        said = re.search(r"Move it into .*? if you stopped it\.", out + err)
        assert said, (args, out, err)
        advice.add(said[0])
    assert len(advice) == 1  # (the same words everywhere)
    m = re.fullmatch(r"Move it into (\S+)/ \(make that directory if there is none\)\. Then, to import its rows again "
                     r"from the history on this computer: stop the daemon if it runs \(hyp daemon stop\), delete "
                     r"(\S+), run hyp backfill .*", advice.pop())
    assert m
    trash, state_db = Path(m[1]), Path(m[2])
    assert trash.parent == h.hyp / "cache" and state_db == h.hyp / "state" / "ingest.sqlite"

    trash.mkdir(parents=True, exist_ok=True)
    victim.rename(trash / victim.name)
    state_db.unlink()
    rc, out, err = inproc("backfill")
    assert rc == 0, out + err
    data = h.dataset()
    assert data.height == rows and data["part_id"].n_unique() == rows
    assert inproc("status")[0] == 0


def _damage_pages(db: Path, first: int) -> None:
    """Garbage over every page of the SQLite file from page `first` on (the header and the pages before stay:
    the database opens, and reading a table finds it malformed)."""
    with open(db, "r+b") as fh:
        page = int.from_bytes(fh.read(100)[16:18], "big")
        size = db.stat().st_size
        assert size >= first * page
        fh.seek((first - 1) * page)
        fh.write(bytes(range(256)) * ((size - (first - 1) * page) // 256))


def test_a_damaged_checkpoint_database_fails_a_dry_run_as_the_real_run(h, inproc):
    """Pages past the schema's cut: a dry run ended with "unexpected error: DatabaseError: database disk image
    is malformed", where the real run fails each provider with what happened and what to do."""
    claude_fixtures(h)
    assert inproc("backfill", "claude")[0] == 0
    _damage_pages(h.hyp / "state" / "ingest.sqlite", 3)
    problem = (f"cannot use the checkpoint database {h.hyp / 'state' / 'ingest.sqlite'}: database disk image is "
               "malformed. If it is damaged, move it away")
    since = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    for args in (["claude", "--dry-run"], ["claude", "--dry-run", "--since", since]):
        rc, out, err = inproc("backfill", *args, "--json")
        assert rc == 1 and "unexpected error" not in err, err
        (claude,) = json.loads(out)["providers"]
        assert claude["status"] == "failed" and claude["error"].startswith(problem), claude
    rc, out, err = inproc("backfill", "claude", "--dry-run")
    assert rc == 1 and f"  claude: {problem}" in out and "unexpected error" not in err
    # the real run says the same
    rc, out, _ = inproc("backfill", "claude", "--json")
    (claude,) = json.loads(out)["providers"]
    assert rc == 1 and claude["status"] == "failed" and claude["error"].startswith(problem)



def test_a_checkpoint_database_missing_a_column_or_a_directory_says_to_move_it_away(h, inproc):
    """A `files` table without one of its columns failed every run with "no such column: rows_emitted. …
    run it again once the problem is fixed" (it never is); a directory in its place said to check that
    HYP_HOME is writable. Both say to move it away, and doing that imports again."""
    import sqlite3

    rows, _ = claude_fixtures(h, sessions=2)
    db = h.hyp / "state" / "ingest.sqlite"
    assert inproc("backfill", "claude")[0] == 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("ALTER TABLE files DROP COLUMN rows_emitted")
        conn.commit()
    claude_session(h.claude / "projects" / "-home-ada-new" / "new.jsonl", "new", 4, recent(1))
    move_away = "move it away: the next import re-reads every file and dedupe drops the rows already stored."
    expected = f"cannot use the checkpoint database {db}: its files table has no column rows_emitted. If it " \
        f"is damaged, {move_away}"
    for args in (["claude"], ["claude", "--dry-run"]):
        rc, out, err = inproc("backfill", *args)
        assert rc == 1 and f"  claude: {expected}\n" in out, (args, out, err)
        assert "run it again" not in out
    h.drop_checkpoints()
    assert inproc("backfill", "claude")[0] == 0 and h.dataset().height == rows + 8

    h.drop_checkpoints()
    db.mkdir()
    rc, out, _ = inproc("backfill", "claude")
    assert rc == 1 and f"  claude: cannot use the checkpoint database {db}: it is a directory, not a database. " \
        f"{move_away.capitalize()}\n" in out, out


def test_an_events_log_that_cannot_be_written_is_said_once_by_a_backfill(h):
    """A backfill emits dozens of events; with logs/events.jsonl a directory it dropped each without a word.
    It says so once (stderr: the JSON on stdout stays one document) and imports as usual."""
    rows, _ = claude_fixtures(h, sessions=2)
    log = h.hyp / "logs" / "events.jsonl"
    log.mkdir(parents=True)
    p = h.run("backfill", "claude", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["providers"][0]["rows_written"] == rows
    said = [line for line in p.stderr.splitlines() if "events log" in line]
    assert said == [f"hyp: cannot write the events log {log}: it is a directory. Move {log} away; until then hyp "
                    "records no events (the history that hyp status and hyp cache status show)."]

def test_a_read_only_checkpoint_database_says_to_make_it_writable_not_to_move_it(h):
    """Any SQLite error on the checkpoint database said "If it is damaged, move it away": for a read-only file
    or directory that moved a good database (or failed to: the directory is read-only), and the next import
    re-read every file for nothing. It says what storage says of a read-only HYP_HOME, and doing that works."""
    from test_daemon_process import _drop_dac_caps

    from hypaware_tui.core.paths import not_writable_hint

    rows, _ = claude_fixtures(h, sessions=2)
    db, state = h.hyp / "state" / "ingest.sqlite", h.hyp / "state"
    kwargs = {"preexec_fn": _drop_dac_caps} if os.geteuid() == 0 else {}

    def unprivileged_backfill() -> tuple[int, dict]:
        p = subprocess.run([*HYP, "backfill", "claude", "--json"], env=h.env, capture_output=True, text=True,
                           timeout=120, **kwargs)
        (claude,) = json.loads(p.stdout)["providers"]
        return p.returncode, claude

    expected = f"cannot use the checkpoint database {db}: attempt to write a readonly database. " + \
        not_writable_hint(h.hyp)
    for path, mode, fixed in ((db, 0o400, 0o600), (state, 0o555, 0o700)):
        assert h.run("backfill", "claude").returncode == 0  # (and closed: no -wal, -shm left)
        assert sorted(p.name for p in state.glob("ingest.sqlite*")) == ["ingest.sqlite"]
        path.chmod(mode)
        try:
            rc, claude = unprivileged_backfill()
        finally:
            path.chmod(fixed)
        assert rc == 1 and (claude["status"], claude["error"]) == ("failed", expected), (path, claude)
        assert h.dataset().height == rows
    # done as it says (the file, or the directory, made writable again): it imports
    claude_session(h.claude / "projects" / "-home-ada-new" / "new.jsonl", "new", 4, recent(1))
    db.chmod(0o400)
    rc, claude = unprivileged_backfill()
    assert rc == 1 and claude["error"] == expected
    db.chmod(0o600)
    rc, claude = unprivileged_backfill()
    assert rc == 0 and claude["rows_written"] == 8 and h.dataset().height == rows + 8, claude


@pytest.mark.parametrize("name", ["cache", "state", "run", "partition"])
def test_a_file_where_a_directory_of_hyp_home_belongs_is_named(h, inproc, name):
    """`cache` (or `state`, `run`) a file: the backfill said "Not a directory (…/cache/ai_gateway_messages/
    source=claude/date=…)" or "File exists (…/state)" and "run it again once the problem is fixed". It names
    the file in the way, in `hyp status`'s words, and moving it away is all it takes."""
    rows, _ = claude_fixtures(h)
    h.config(claude=True)
    blocker = h.hyp / name
    if name == "partition":  # (a partition that is a file: the error named the file itself, not a path below)
        blocker = h.hyp / "cache" / "ai_gateway_messages" / "source=claude" / f"date={recent(3).date()}"
        blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way\n")
    rc, out, _ = inproc("backfill", "--json")
    (claude,) = json.loads(out)["providers"]
    assert rc == 1 and claude["status"] == "failed", claude
    assert claude["error"].endswith(f": {blocker} is not a directory (move it away)"), claude["error"]
    if name == "cache":
        rc, out, _ = inproc("status", "--json")
        assert json.loads(out)["dataset"]["error"] == f"cannot read the dataset: {blocker} is not a directory " \
            "(move it away)"
    blocker.rename(h.tmp / "moved")
    rc, out, _ = inproc("backfill", "--json")
    (claude,) = json.loads(out)["providers"]
    assert rc == 0 and claude["rows_written"] == rows and h.dataset().height == rows


def test_backfill_help_lists_providers_as_arguments_with_the_real_default(inproc):
    """`hyp backfill --help` listed `[PROVIDER]...` under Options (`backfill plan` has an Arguments section),
    and its default left out what happens without a config (cli.md §5.1: every detected client; plan shows
    both)."""
    rc, out, _ = inproc("backfill", "--help")
    sections = " ".join(out.split()).split("Commands:")[0]
    assert rc == 0
    assert ("Arguments: [PROVIDER]... claude or codex (default: the clients enabled in the config, or every "
            "detected client when there is no config). Options: --since DATE") in sections
    rc, out, _ = inproc("backfill", "plan", "--help")
    assert rc == 0
    assert ("Arguments: [PROVIDER]... claude or codex (default: the clients enabled in the config, or both when "
            "there is no config). Options:") in " ".join(out.split())


def _names_not_utf8(h: Home) -> tuple[int, int]:
    """A Claude session with a subagent file named `agent-\\xff\\xfeQ.jsonl` (no `agentId` on its lines), and
    a Codex rollout without `session_meta` named `rollout-…-\\xff\\xfe.jsonl`: file names made of bytes that
    are not UTF-8, whose ids come from the name. Returns the Claude and Codex rows."""
    rows, _ = claude_session(h.claude / "projects" / "-home-ada-repo" / "sess-a.jsonl", "sess-a", 3, recent(2))
    sub = os.fsencode(h.claude / "projects" / "-home-ada-repo" / "sess-a" / "subagents")
    os.makedirs(sub)
    tmp = h.tmp / "agent.jsonl"
    agent_rows, _ = claude_session(tmp, "sess-a", 2, recent(1))
    with open(sub + b"/agent-\xff\xfeQ.jsonl", "wb") as fh:
        fh.write(tmp.read_bytes().replace(b'"sess-a-', b'"sess-a-agent-'))  # (its own uuids)
    tmp.unlink()
    day = os.fsencode(h.codex / "sessions" / "2026" / "11" / "27")
    os.makedirs(day)
    t = recent(1)
    lines = [{"timestamp": _iso(t + timedelta(seconds=i)), "type": "response_item",
              "payload": {"type": "message", "role": role, "content": [{"type": kind, "text": f"{role} {i}"}]}}
             for i, (role, kind) in enumerate([("user", "input_text"), ("assistant", "output_text")] * 2)]
    messages = len(lines)
    lines.append({"timestamp": _iso(t + timedelta(seconds=9)), "type": "event_msg", "payload": {"type": "task_complete"}})
    with open(day + b"/rollout-2026-11-27T10-00-00-\xff\xfe.jsonl", "wb") as fh:
        fh.write(b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    return rows + agent_rows, messages


def test_file_names_that_are_not_utf8_import_with_their_ids_escaped(h, inproc):
    """Such a name stopped the whole client's import: `claude failed`, 0 rows written of all, "the importer
    stopped: UnicodeEncodeError: … surrogates not allowed" on every run, while --dry-run said it would import
    them; the daemon retried forever. Every row is written now, the dry run agrees, and the ids taken from the
    names show the bytes as `\\xff` escapes."""
    claude_rows, codex_rows = _names_not_utf8(h)
    dry, _ = h.json("backfill", "--dry-run")
    doc, p = h.json("backfill")
    assert p.returncode == 0, p.stderr
    got = {x["provider"]: (x["status"], x["rows_written"], x["errors"], x["error"]) for x in doc["providers"]}
    assert got == {"claude": ("ok", claude_rows, 0, None), "codex": ("ok", codex_rows, 0, None)}
    assert [x["rows_written"] for x in dry["providers"]] == [claude_rows, codex_rows]
    rc, out, err = inproc("query", "sql", "--format", "csv", "select client_name, agent_id, conversation_id, "
                          "count(*) n from ai_gateway_messages where agent_id is not null or client_name = 'codex' "
                          "group by all order by 1")
    assert rc == 0, err
    assert out.splitlines() == ["client_name,agent_id,conversation_id,n", "claude,\\xff\\xfeQ,sess-a,4",
                                f"codex,,rollout-2026-11-27T10-00-00-\\xff\\xfe,{codex_rows}"]
    again, _ = h.json("backfill")
    assert [(x["status"], x["rows_written"]) for x in again["providers"]] == [("ok", 0), ("ok", 0)]


def test_a_utf8_name_that_spells_the_escapes_out_keeps_its_own_id_and_rows(h, inproc):
    """`rollout-…-\\xff\\xfe.jsonl` (the two bytes) and `rollout-…-\\\\xff\\\\xfe.jsonl` (UTF-8, backslashes
    spelled out), same lines, no `session_meta`: both got the conversation id `rollout-…-\\xff\\xfe` and the
    second file's rows were dropped as duplicates; the Claude `agent-\\xff\\xfeQ.jsonl` pair shared an agent id.
    Now a name holding a backslash has it written `\\x5c`: every id differs and every row is written."""
    claude_rows, codex_rows = _names_not_utf8(h)
    sub = h.claude / "projects" / "-home-ada-repo" / "sess-a" / "subagents"
    (sub / "agent-\\xff\\xfeQ.jsonl").write_bytes(
        next(sub.iterdir()).read_bytes().replace(b'"sess-a-agent-', b'"sess-a-twin-'))  # (its own uuids)
    day = h.codex / "sessions" / "2026" / "11" / "27"
    (day / "rollout-2026-11-27T10-00-00-\\xff\\xfe.jsonl").write_bytes(next(day.iterdir()).read_bytes())
    doc, p = h.json("backfill")
    assert p.returncode == 0, p.stderr
    got = {x["provider"]: (x["status"], x["rows_written"], x["duplicates_skipped"]) for x in doc["providers"]}
    assert got == {"claude": ("ok", claude_rows + 4, 0), "codex": ("ok", 2 * codex_rows, 0)}
    rc, out, err = inproc("query", "sql", "--format", "csv", "select client_name, agent_id, conversation_id, "
                          "count(*) n from ai_gateway_messages where agent_id is not null or client_name = 'codex' "
                          "group by all order by all")
    assert rc == 0, err
    assert out.splitlines() == ["client_name,agent_id,conversation_id,n",
                                "claude,\\x5cxff\\x5cxfeQ,sess-a,4", "claude,\\xff\\xfeQ,sess-a,4",
                                f"codex,,rollout-2026-11-27T10-00-00-\\x5cxff\\x5cxfe,{codex_rows}",
                                f"codex,,rollout-2026-11-27T10-00-00-\\xff\\xfe,{codex_rows}"]


def test_a_path_that_is_not_utf8_is_shown_with_escapes_on_a_strict_terminal(h):
    """The summary names the path of a file it could not read; one with bytes that are not UTF-8 ended
    `hyp backfill` with "unexpected error: UnicodeEncodeError" on a strict UTF-8 stdout (the usual for a UTF-8
    locale other than C.UTF-8), after the import. The bytes are shown as `\\xfe` escapes."""
    claude_fixtures(h, sessions=1)
    link = os.fsencode(h.claude / "projects" / "-home-ada-repo0") + b"/gone-\xfe.jsonl"
    os.symlink(h.tmp / "unmounted" / "gone.jsonl", link)
    env = dict(h.env, PYTHONIOENCODING="utf-8:strict")
    p = h.run("backfill", "claude", env=env)
    assert p.returncode == 0, p.stderr
    assert (f"    at ~/.claude/projects/-home-ada-repo0/gone-\\xfe.jsonl (a link to {h.tmp / 'unmounted' / 'gone.jsonl'})"
            in p.stdout.splitlines())
    events = (h.hyp / "logs" / "events.jsonl").read_bytes().decode("utf-8")  # (strict)
    assert all(json.loads(x) for x in events.splitlines())


def test_a_folder_nested_past_path_max_is_said_to_have_a_path_too_long(h, inproc):
    """A Claude project folder nested deeper than the system's longest path (PATH_MAX) was reported as
    "cannot read a Claude Code transcript directory (File name too long); its sessions are skipped. Check its
    permissions.": permissions have nothing to do with it."""
    claude_fixtures(h, sessions=1)
    fd = os.open(h.claude / "projects", os.O_RDONLY)
    try:
        for _ in range(24):  # 24 x 201 bytes: past Linux's 4096 and macOS's 1024
            os.mkdir("d" * 200, dir_fd=fd)
            nxt = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)
    rc, out, err = inproc("backfill", "claude")
    assert rc == 0, err
    (line,) = [x for x in out.splitlines() if x.startswith("  claude: ")]
    assert line.endswith("(File name too long); its sessions are skipped. Its path is longer than the system "
                         "can open: move or rename its folders to shorten it."), line


def test_rerun_after_one_file_is_replaced_says_what_was_read_and_what_was_unchanged(h):
    """A file given a new inode (copied back in place) is read again, the others are skipped as unchanged: the
    closing line said "all 10 rows in this window are already in the dataset" while the window held 30."""
    rows, _ = claude_fixtures(h)
    assert h.run("backfill").returncode == 0
    f = h.claude / "projects" / "-home-ada-repo0" / "sess-0.jsonl"
    tmp = h.tmp / "copy.jsonl"
    tmp.write_bytes(f.read_bytes())
    os.utime(tmp, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns))
    os.replace(tmp, f)
    again = h.run("backfill")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == (
        f"Nothing new to import: the {rows // 3} rows read are already in the dataset and 2 files are unchanged "
        "since the last import."
    )
    assert h.dataset().height == rows


def test_every_date_range_says_its_zone_and_the_wizard_agrees_with_plan(h, monkeypatch):
    """Los Angeles, a session at 00:20 UTC: `hyp backfill plan` showed it on the day before (local, labelled),
    the wizard's Clients and Review screens and `hyp init --yes --dry-run` on its UTC date (unlabelled), and
    `hyp status` / `hyp cache status` their UTC partition dates without a word. The wizard and the dry run now
    show the local dates of plan (cli.md §5.5: the same figures) and name the zone; a UTC date says "UTC"."""
    import time as time_mod

    from hypaware_tui.app import client_summary
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.plan import Choices, build_plan, gather_machine_state
    from hypaware_tui.core.timeutil import now_us
    from hypaware_tui.screens.review import client_lines

    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=20, second=0, microsecond=0)
    claude_session(h.claude / "projects" / "-home-ada-repo" / "s.jsonl", "s", 2, day)
    utc_day, local_day = day.date().isoformat(), (day - timedelta(days=1)).date().isoformat()
    env = {**h.env, "TZ": "America/Los_Angeles"}
    zone_note = re.compile(r"^ *Dates in local time \(P[SD]T, UTC-0[78]:00\)\.$")

    plan = h.run("backfill", "plan", "claude", env=env)
    (row,) = [x for x in plan.stdout.splitlines() if x.startswith("claude ")]
    assert row.rstrip().endswith(f"{local_day} → {local_day}"), plan.stdout

    dry = h.run("init", "--yes", "--dry-run", "--client", "claude", env=env)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    (row,) = [x for x in lines if x.startswith("Claude Code ")]
    assert row.rstrip().endswith(f"{local_day} → {local_day}"), dry.stdout
    table_end = next(i for i, x in enumerate(lines) if x.startswith("Config "))
    assert any(zone_note.match(x) for x in lines[lines.index(row) + 1 : table_end]), dry.stdout
    (window,) = [x for x in lines if x.startswith("Window ")]
    assert re.fullmatch(r"Window    \d{4}-\d\d-\d\d 00:00 UTC → now \(120 days\)", window), window

    for k, v in env.items():  # the wizard's screens, in this process, in Los Angeles
        monkeypatch.setenv(k, v)
    time_mod.tzset()
    try:
        inv = build_inventory(["claude"], env=env)
        assert client_summary(inv.clients["claude"]).endswith(f" · {local_day} → {local_day}")
        machine = gather_machine_state(Layout(h.hyp), env, service_manager=None)
        review = client_lines(build_plan(inv, Choices(("claude",)), machine, now_us=now_us()), env)
        assert review[1].endswith(f"{local_day} → {local_day}") and zone_note.match(review[-1]), review
    finally:
        monkeypatch.undo()
        time_mod.tzset()

    assert h.run("backfill", env=env).returncode == 0
    status = h.run("status", env=env)
    assert f"messages from {utc_day} to {utc_day} (UTC)" in status.stdout, status.stdout
    cache = h.run("cache", "status", env=env)
    assert f"Dates        {utc_day} → {utc_day} (UTC)" in cache.stdout, cache.stdout


def test_status_and_overview_after_the_retention_cleanup_deleted_every_row_do_not_say_nothing_was_imported(
    h, inproc
):
    """After `hyp cache prune` deleted every row (all older than the new retention window), `hyp status` said
    "empty: nothing imported yet" and `hyp query overview` "Nothing imported yet.", over a backfill that had
    imported them (and whose line said so). Both now say why the dataset is empty."""
    rows_a, _ = claude_session(h.claude / "projects" / "-home-ada-old" / "a.jsonl", "a", 3, recent(200))
    rows_b, _ = claude_session(h.claude / "projects" / "-home-ada-old" / "b.jsonl", "b", 2, recent(150))
    base = ("init", "--yes", "--no-daemon", "--client", "claude")
    code, _, err = inproc(*base, "--retention-days", "365")
    assert code == 0 and h.dataset().height == rows_a + rows_b, err
    code, out, err = inproc("status")
    assert "empty" not in out
    code, _, err = inproc(*base, "--force", "--no-backfill", "--retention-days", "30")
    assert code == 0, err
    code, out, err = inproc("cache", "prune")
    assert code == 0 and "Removed 2 partitions" in out, out + err
    from hypaware_tui.core.storage import cut_date_for

    cut = cut_date_for(30)
    why = (f"none of the 2 files hyp has read has a message from {cut} on (the retention window: older messages "
           "are not kept)")
    code, out, _ = inproc("status")
    assert f"empty: {why}" in out and "nothing imported" not in out, out
    doc = json.loads(inproc("status", "--json")[1])
    assert doc["dataset"]["empty_reason"] == why and doc["dataset"]["files"] == 0
    for days in ("30", "0"):
        code, out, _ = inproc("query", "overview", "--days", days)
        assert code == 0 and out.strip() == f"No messages: {why}.", out
    # A backfill now reads nothing older either: the same text, with the floor of that run
    code, out, _ = inproc("backfill")
    assert code == 0 and f"empty: {why}" in inproc("status")[1]


def test_status_and_overview_of_history_without_messages_say_so(h, inproc):
    """Retention 0 (no floor) and a file that holds no message (a summary line only): not "nothing imported
    yet" either, but that the file read holds none; a fresh home still says "Nothing imported yet."."""
    code, out, _ = inproc("query", "overview")
    assert out.strip() == "Nothing imported yet."
    path = h.claude / "projects" / "-home-ada" / "s.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"type": "summary", "summary": "s", "leafUuid": "x"}) + "\n")
    code, _, err = inproc("init", "--yes", "--no-daemon", "--client", "claude", "--retention-days", "0")
    assert code == 0, err
    assert "empty: the file hyp has read has no message\n" in inproc("status")[1]
    assert inproc("query", "overview", "--days", "0")[1].strip() == "No messages: the file hyp has read has no message."


def test_overview_of_a_dataset_deleted_by_hand_says_the_next_import_reads_it_again(h, inproc):
    """`hyp status` said the dataset was replaced; `hyp query overview` said "Nothing imported yet." over the
    import whose rows were deleted. It says what status says, and what to run."""
    import shutil

    claude_session(h.claude / "projects" / "-home-ada" / "a.jsonl", "a", 2, recent(3))
    code, _, err = inproc("init", "--yes", "--no-daemon", "--client", "claude", "--retention-days", "30")
    assert code == 0, err
    shutil.rmtree(h.hyp / "cache" / "ai_gateway_messages")
    code, out, _ = inproc("query", "overview")
    assert code == 0 and out.startswith("No messages. The dataset at "), out
    assert "the next import reads all history again" in out and "Run hyp backfill to import it now." in out
