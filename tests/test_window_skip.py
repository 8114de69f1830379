"""An import given the inventory (the wizard, `hyp init --yes`) does not open a file without a checkpoint that
the inventory found to end before the window (`inventory.before_window`): nobody's rows are in it. What the
Review screen, `hyp init --dry-run` and `hyp backfill plan` show as in the window is then what the import
reads, and its progress and summary say the same files and bytes (they said 21 files and 12.7 MB after a
Review of 4 files and 1.69 MB). The rows are the same as without the skip; a skipped file appended to later
is read whole, and raising the retention imports it. A file not read gets a checkpoint of nothing read, so
that neither the daemon nor the next `hyp backfill` reads it either.

`hyp backfill` has no inventory: it dates each file without a checkpoint whose mtime is before the window by
the inventory's own tail scan, and skips it by the same rule (it read two years of history whole under a 90-day
retention, and its dry run counted 21 files where `hyp backfill plan` said 1). The tests of the rule run both
ways (`inventory`: the setup import; without: `hyp backfill`)."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from helpers import claude_session_lines, iso_ms
from polars.testing import assert_frame_equal

from hypaware_tui.core.fmt import human_size
from hypaware_tui.core.inventory import build_inventory
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.runner import run_backfill
from hypaware_tui.core.timeutil import now_us
from hypaware_tui.core.window import resolve_window

NOW = datetime.now(UTC).replace(microsecond=0)
RETENTION = 30


_iso = iso_ms
session_lines = claude_session_lines


def write(path: Path, lines: list[str], mtime: datetime | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))


# name -> (days before now of its first turn, turns, between turns, mtime: its last line's time, or None: now, as
# in a history copied without its mtimes); with a 30-day retention, the first three end before the window
FILES = {
    "old-a": (90, 6, timedelta(hours=1), "end"),
    "old-b": (60, 4, timedelta(minutes=5), "end"),
    "old-copied": (75, 3, timedelta(minutes=5), None),
    "straddling": (41, 5, timedelta(days=5), "end"),  # from 41 to 21 days ago: 2 turns in the window
    "new": (3, 5, timedelta(hours=2), "end"),
}
OLD = ("old-a", "old-b", "old-copied")
# not read: their last stamp AND their mtime are before the window (the copied one, its mtime now, is read, its
# lines before the window skipped one by one: a stamp alone never costs the rows of a file written since)
SKIPPED = ("old-a", "old-b")
IN_WINDOW = ("straddling", "new")
ROWS_IN_WINDOW = 14  # 2 turns of the straddling session, 5 of the new one


def write_history(projects: Path, now: datetime) -> None:
    """The sessions of `FILES` in one Claude Code project folder, dated from `now`."""
    for name, (days, turns, step, mtime) in FILES.items():
        start = now - timedelta(days=days)
        end = start + step * (turns - 1) + timedelta(seconds=30)
        write(projects / f"{name}.jsonl", session_lines(name, start, turns, step), end if mtime == "end" else None)


def make_home(tmp_path: Path, *, copied: bool = True) -> dict[str, str]:
    home = tmp_path / "home"
    write_history(home / ".claude" / "projects" / "-home-ada-repo", NOW)
    if not copied:
        (home / ".claude" / "projects" / "-home-ada-repo" / "old-copied.jsonl").unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYP_", "CLAUDE_", "CODEX_"))}
    env.update(HOME=str(home), CLAUDE_CONFIG_DIR=str(home / ".claude"), CODEX_HOME=str(home / ".codex"),
               HYP_HOME=str(tmp_path / "hyp"), TZ="UTC")
    return env


def configure(env: dict[str, str], retention: int = RETENTION) -> None:
    """The config `hyp init` writes for Claude Code, capture on, without running it."""
    hyp = Path(env["HYP_HOME"])
    hyp.mkdir(mode=0o700, parents=True, exist_ok=True)
    (hyp / "hypaware-config.json").write_text(json.dumps({
        "version": 1, "clients": {"claude": {"enabled": True}, "codex": {"enabled": False}},
        "retention_days": retention, "capture": {"enabled": True},
    }))


def session_path(env: dict[str, str], name: str) -> Path:
    return Path(env["CLAUDE_CONFIG_DIR"]) / "projects" / "-home-ada-repo" / f"{name}.jsonl"


def with_hyp_home(env: dict[str, str], path: Path) -> dict[str, str]:
    return {**env, "HYP_HOME": str(path)}


def import_(env: dict[str, str], retention: int, *, inventory: bool = True, now: int | None = None):
    """An import of Claude Code's history as `hyp init` runs it (with the inventory) or as `hyp backfill`
    does (without)."""
    now = now if now is not None else now_us()
    window, _floor, write_checkpoints = resolve_window(None, None, retention, now)
    inv = build_inventory(["claude"], env=env) if inventory else None
    res = run_backfill(Layout.resolve(env), ["claude"], window=window, write_checkpoints=write_checkpoints,
                       dry_run=False, env=env, retention_days=retention, now=now, inventory=inv, workers=1)
    assert res.status == "ok", res.providers[0].error
    return res.providers[0], window


def frame(env: dict[str, str]) -> pl.DataFrame:
    files = sorted(Layout.resolve(env).dataset_root.glob("**/*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]).sort("part_id")


# --------------------------------------------------------------------------------------------- rows


def test_the_rows_are_those_of_an_import_of_everything_cut_to_the_window(tmp_path: Path) -> None:
    env = make_home(tmp_path)
    skipping, window = import_(env, RETENTION)
    assert skipping.files_scanned == 3 and skipping.files_outside_window == len(SKIPPED)
    assert skipping.commits == 1  # (the checkpoints of the files not read go in the transaction of the rows)
    got = frame(env)

    everything, _ = import_(with_hyp_home(env, tmp_path / "all"), 0)
    assert everything.files_scanned == len(FILES)
    want = frame(with_hyp_home(env, tmp_path / "all")).filter(pl.col("message_created_at") >= window.since_us)
    assert got.height == ROWS_IN_WINDOW and set(got["session_id"]) == set(IN_WINDOW)
    assert_frame_equal(got, want)

    # and without the inventory (`hyp backfill`), the same files are dated by their tails: the same rows
    reading, _ = import_(with_hyp_home(env, tmp_path / "cli"), RETENTION, inventory=False)
    assert reading.files_scanned == 3 and reading.files_outside_window == len(SKIPPED)
    assert reading.bytes_read == sum(session_path(env, n).stat().st_size for n in FILES if n not in SKIPPED)
    assert_frame_equal(frame(with_hyp_home(env, tmp_path / "cli")), got)


BOTH_WAYS = pytest.mark.parametrize("inventory", [True, False], ids=["setup", "backfill"])


@BOTH_WAYS
def test_a_skipped_file_appended_to_later_is_read_whole(tmp_path: Path, inventory: bool) -> None:
    """`claude --resume` appends to an old transcript: its mtime and its last timestamp move into the window.
    Its checkpoint of nothing read no longer matches its stat: it is read from its start, as a fresh import
    reads it."""
    env = make_home(tmp_path)
    first, _ = import_(env, RETENTION, inventory=inventory)
    assert first.files_outside_window == len(SKIPPED)
    path = session_path(env, "old-a")
    with path.open("a") as fh:
        fh.write("\n".join(session_lines("old-a", NOW - timedelta(minutes=30), 2, timedelta(minutes=1),
                                         first=6)) + "\n")
    now = now_us()
    again, _ = import_(env, RETENTION, now=now, inventory=inventory)
    assert again.files_scanned == 1 and again.rows_written == 4  # the two new turns, nothing older
    assert again.files_unchanged == len(FILES) - 1 and again.files_outside_window == 0

    fresh, _ = import_(with_hyp_home(env, tmp_path / "fresh"), RETENTION, now=now)
    assert fresh.files_scanned == 4  # (old-a, now in the window, the copied one, straddling, new)
    assert_frame_equal(frame(env), frame(with_hyp_home(env, tmp_path / "fresh")))
    # (the same whether or not the old lines were read by this pass: message_index, parents, the session's
    # start all come from the whole file)
    appended = frame(env).filter(pl.col("session_id") == "old-a")
    assert sorted(appended["message_index"].to_list()) == [12, 13, 14, 15]


@BOTH_WAYS
def test_raising_the_retention_afterwards_imports_the_old_files(tmp_path: Path, inventory: bool) -> None:
    env = make_home(tmp_path)
    first, _ = import_(env, RETENTION, inventory=inventory)
    assert first.files_outside_window == len(SKIPPED)
    raised, _ = import_(env, 0, inventory=inventory)
    assert raised.files_scanned == len(FILES)  # (the floor was lowered: every checkpoint was reset)
    import_(with_hyp_home(env, tmp_path / "all"), 0)
    assert_frame_equal(frame(env), frame(with_hyp_home(env, tmp_path / "all")))


@BOTH_WAYS
def test_raising_the_retention_not_past_the_old_files_still_does_not_read_them(tmp_path: Path, inventory: bool) -> None:
    """The floor moves back (retention 30 -> 45 days) but the old files still end before it: the checkpoints,
    reset to offset 0 by the move, no longer told them from new files, and both were read whole again, their
    every line dropped as outside the window, while the dry run said they were not read (review). They are
    dated again, not read, and get a checkpoint of nothing read at the new floor."""
    env = make_home(tmp_path)
    first, _ = import_(env, RETENTION, inventory=inventory)
    assert first.files_outside_window == len(SKIPPED)
    wider = 45  # (old-a ended 90 days ago, old-b 60 days ago: both still before the window)
    raised, window = import_(env, wider, inventory=inventory)
    assert raised.files_outside_window == len(SKIPPED), raised
    assert raised.files_scanned == len(FILES) - len(SKIPPED)
    assert raised.bytes_read == sum(session_path(env, n).stat().st_size for n in FILES if n not in SKIPPED)
    again, _ = import_(env, wider, inventory=inventory)
    assert (again.files_scanned, again.files_unchanged, again.rows_written) == (0, len(FILES), 0)
    import_(with_hyp_home(env, tmp_path / "all"), 0)
    want = frame(with_hyp_home(env, tmp_path / "all")).filter(pl.col("message_created_at") >= window.since_us)
    assert_frame_equal(frame(env), want)


def _rows_equal_a_forever_import_cut_to_the_window(tmp_path: Path, env: dict[str, str], *,
                                                    inventory: bool = True) -> pl.DataFrame:
    skipping, window = import_(env, RETENTION, inventory=inventory)
    assert skipping.files_outside_window == len(SKIPPED)  # (old-a and old-b only)
    import_(with_hyp_home(env, tmp_path / "all"), 0)
    want = frame(with_hyp_home(env, tmp_path / "all")).filter(pl.col("message_created_at") >= window.since_us)
    assert_frame_equal(frame(env), want)
    return want


def _late_bad_turns(env: dict[str, str], mtime: datetime) -> None:
    """Two sessions from 60 days ago whose last turn, 2 days ago, holds a lone surrogate escape or invalid
    UTF-8; their mtime `mtime`."""
    projects = session_path(env, "x").parent
    for name, bad in (("sur", b'"caf\\ud83d"'), ("bad8", b'"caf\xe9\xe8"')):
        lines = session_lines(name, NOW - timedelta(days=60), 3, timedelta(minutes=5))[:-1]
        last = json.loads(lines[-1])
        turn = {**last, "uuid": f"{name}-late", "parentUuid": last["uuid"], "type": "user",
                "timestamp": _iso(NOW - timedelta(days=2)),
                "message": {"role": "user", "content": "@@TEXT@@"}}
        raw = json.dumps(turn).encode().replace(b'"@@TEXT@@"', bad)
        path = projects / f"{name}.jsonl"
        path.write_bytes(("\n".join(lines) + "\n").encode() + raw + b"\n")
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def test_a_last_line_orjson_refuses_still_dates_the_file(tmp_path: Path) -> None:
    """A turn in the window whose text holds a lone surrogate escape (Node's JSON.stringify of a string cut
    mid-emoji) or invalid UTF-8 is a line the import reads (claude.md §2 rule 3: replaced, then json.loads).
    The inventory's tail scan parsed with orjson alone: the line was invisible, an older stamp stood for the
    file's last, Review left the file out and the setup import skipped it, its rows lost for good."""
    env = make_home(tmp_path, copied=False)
    _late_bad_turns(env, NOW - timedelta(days=2))
    inv = build_inventory(["claude"], env=env)
    window, _floor, _w = resolve_window(None, None, RETENTION, now_us())
    from hypaware_tui.core.inventory import client_figures

    assert client_figures(inv.clients["claude"], window.since_us).files == 4  # (straddling, new, sur, bad8)
    want = _rows_equal_a_forever_import_cut_to_the_window(tmp_path, env)
    assert set(want.filter(pl.col("message_id").str.ends_with("-late"))["session_id"]) == {"sur", "bad8"}


@BOTH_WAYS
def test_a_last_line_orjson_refuses_dates_a_file_whose_mtime_is_before_the_window(tmp_path: Path,
                                                                                   inventory: bool) -> None:
    """As above, the files' mtimes set back before the window too (a copy that kept its mtimes, `touch -d`): the
    tail's stamp alone keeps them read, so it must be found in the line the import reads."""
    env = make_home(tmp_path, copied=False)
    _late_bad_turns(env, NOW - timedelta(days=59))
    want = _rows_equal_a_forever_import_cut_to_the_window(tmp_path, env, inventory=inventory)
    assert set(want.filter(pl.col("message_id").str.ends_with("-late"))["session_id"]) == {"sur", "bad8"}


@BOTH_WAYS
def test_stamps_out_of_order_never_cost_the_rows_of_a_file_written_in_the_window(tmp_path: Path,
                                                                                inventory: bool) -> None:
    """Turns in the window, then a last line stamped before it (a clock set back): the file's last stamp is
    not its newest. Its mtime (in the window) keeps it read."""
    env = make_home(tmp_path, copied=False)
    path = session_path(env, "ooo")
    lines = session_lines("ooo", NOW - timedelta(days=10), 3, timedelta(hours=1))
    lines += session_lines("ooo", NOW - timedelta(days=60), 1, timedelta(hours=1), first=3)
    write(path, lines, NOW - timedelta(days=9))
    want = _rows_equal_a_forever_import_cut_to_the_window(tmp_path, env, inventory=inventory)
    assert want.filter(pl.col("session_id") == "ooo").height == 6


@BOTH_WAYS
def test_a_file_copied_without_its_mtimes_is_read(tmp_path: Path, inventory: bool) -> None:
    """Every stamp before the window, its mtime now (`old-copied`: a history copied without its mtimes): only the
    file system says when it was last written, and it says now. Read, its lines skipped one by one."""
    env = make_home(tmp_path)
    skipping, _ = import_(env, RETENTION, inventory=inventory)
    assert skipping.files_outside_window == len(SKIPPED)
    assert skipping.files_scanned == len(FILES) - len(SKIPPED)  # (old-copied, straddling, new)
    assert skipping.lines_skipped["outside_window"] >= 6  # (old-copied's three turns among them)


def test_a_file_written_while_it_is_dated_is_read(tmp_path: Path, monkeypatch) -> None:
    """`hyp backfill` dates an old file by its tail while `claude --resume` appends to it: the stat it dated no
    longer holds, so the file is read (the dry run, which writes no checkpoint of nothing read, too)."""
    from hypaware_tui.importers.claude import ClaudeImporter

    env = make_home(tmp_path, copied=False)
    path = session_path(env, "old-b")
    dated = ClaudeImporter.last_timestamp

    def appending(self, file, size, mtime_ns):
        ts = dated(self, file, size, mtime_ns)
        if file.path == str(path) and path.stat().st_size == size:
            with path.open("a") as fh:
                fh.write("\n".join(session_lines("old-b", NOW - timedelta(minutes=3), 1, timedelta(minutes=1),
                                                 first=4)) + "\n")
        return ts

    monkeypatch.setattr(ClaudeImporter, "last_timestamp", appending)
    now = now_us()
    window, _floor, write_checkpoints = resolve_window(None, None, RETENTION, now)
    res = run_backfill(Layout.resolve(env), ["claude"], window=window, write_checkpoints=write_checkpoints,
                       dry_run=True, env=env, retention_days=RETENTION, now=now, workers=1)
    pr = res.providers[0]
    assert (pr.files_outside_window, pr.files_scanned) == (1, 3)  # (old-a not read; old-b, straddling, new)
    assert pr.rows_written == ROWS_IN_WINDOW + 2  # (old-b's new turn)


def test_a_file_replaced_by_another_of_the_same_size_and_mtime_is_read(tmp_path: Path) -> None:
    """Between the inventory (Review) and the import, a file is replaced (a new inode: `rsync`, a restore) by one
    of the same size and mtime: what the inventory saw of it says nothing of the new one."""
    env = make_home(tmp_path, copied=False)
    path = session_path(env, "old-b")
    now = now_us()
    window, _floor, write_checkpoints = resolve_window(None, None, RETENTION, now)
    inv = build_inventory(["claude"], env=env)
    st = path.stat()
    text = path.read_text()
    late = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    new = text.replace(text[text.index('"timestamp": "') + 14:][:19], late)  # (same length: one stamp moved)
    assert len(new) == len(text) and new != text
    tmp = path.with_suffix(".new")
    tmp.write_text(new)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)
    res = run_backfill(Layout.resolve(env), ["claude"], window=window, write_checkpoints=write_checkpoints,
                       dry_run=False, env=env, retention_days=RETENTION, now=now, inventory=inv, workers=1)
    assert res.providers[0].files_outside_window == 1  # (old-a only)
    assert frame(env).filter(pl.col("session_id") == "old-b").height == 1  # its first line, moved into the window


# --------------------------------------------------------------------------------------------- figures


@pytest.fixture
def hyp_main(monkeypatch, capsys):
    """`hyp` in this process, in `env`; returns (exit code, stdout, stderr). stderr is not a terminal: the
    progress is the plain line of wizard.md §9 step 5."""

    def call(env: dict[str, str], *args: str) -> tuple[int, str, str]:
        for k in list(os.environ):
            if k.startswith(("HYP_", "CLAUDE_", "CODEX_")):
                monkeypatch.delenv(k)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(sys, "argv", ["hyp"])
        from hypaware_tui.cli.app import main

        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main(list(args))
        got = capsys.readouterr()
        return exc.value.code, got.out, got.err

    return call


def claude_row(text: str, start: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(start))
    return line.split()


def test_review_plan_progress_and_summary_show_the_same_files_and_bytes(tmp_path: Path, hyp_main) -> None:
    env = make_home(tmp_path, copied=False)  # (a copied file is read though Review leaves it out: see above)
    in_window = [session_path(env, n).stat().st_size for n in IN_WINDOW]
    size = human_size(sum(in_window))

    rc, out, _ = hyp_main(env, "init", "--yes", "--dry-run", "--retention-days", str(RETENTION))
    assert rc == 0
    review = claude_row(out, "Claude Code")  # Client Import Files Sessions Size Oldest → newest
    assert review[3:6] == ["2", "2", size.split()[0]]

    rc, out, err = hyp_main(env, "init", "--yes", "--no-daemon", "--retention-days", str(RETENTION))
    assert rc == 0
    progress = [x for x in err.splitlines() if x.startswith("hyp: claude ")][-1]
    assert progress.startswith(f"hyp: claude ok 100% {size}/{size} files 2/2 sessions 2 rows {ROWS_IN_WINDOW} ")
    summary = claude_row(out, "Claude Code")  # Client Status Files Sessions Rows ...
    assert summary[2:6] == ["ok", "2", "2", str(ROWS_IN_WINDOW)]

    rc, out, _ = hyp_main(env, "backfill", "plan", "claude")
    assert rc == 0
    plan = claude_row(out, "claude")  # provider detected files sessions size
    assert plan[2:6] == ["2", "2", *size.split()]


def test_backfill_dry_run_progress_and_summary_show_the_files_and_bytes_of_the_plan(tmp_path: Path,
                                                                                     hyp_main) -> None:
    """`hyp backfill --dry-run` read every file (`files 5`) where `hyp backfill plan` said 2 for the same window;
    the real run's progress and summary say the plan's files and bytes too."""
    env = make_home(tmp_path, copied=False)  # (a copied file is read though the plan leaves it out: see above)
    configure(env)
    size = human_size(sum(session_path(env, n).stat().st_size for n in IN_WINDOW))
    rc, out, _ = hyp_main(env, "backfill", "plan", "claude")
    assert rc == 0
    assert claude_row(out, "claude")[2:6] == ["2", "2", *size.split()]

    for args in (("--dry-run",), ()):
        rc, out, err = hyp_main(env, "backfill", "claude", *args)
        assert rc == 0, out + err
        progress = [x for x in err.splitlines() if x.startswith("hyp: claude ")][-1]
        assert progress.startswith(f"hyp: claude ok 100% {size}/{size} files 2/2 sessions 2 rows {ROWS_IN_WINDOW} ")
        summary = claude_row(out, "claude")  # provider status files sessions rows duplicates skipped errors
        assert summary[1:5] == ["ok", "2", "2", str(ROWS_IN_WINDOW)]
        assert f"{'Would import' if args else 'Imported'} {ROWS_IN_WINDOW} new rows." in out


def test_a_rerun_with_nothing_new_says_nothing_to_read(tmp_path: Path, hyp_main) -> None:
    """The files unchanged since the last import are not read, so not "done": the progress said `files 5/5`
    next to `rows 0`, above a summary of 0 files."""
    env = make_home(tmp_path)
    assert hyp_main(env, "init", "--yes", "--no-daemon", "--retention-days", str(RETENTION))[0] == 0
    rc, out, err = hyp_main(env, "init", "--yes", "--no-daemon", "--force")
    assert rc == 0
    progress = [x for x in err.splitlines() if x.startswith("hyp: claude ")][-1]
    assert progress.startswith("hyp: claude ok 100% 0 B/0 B nothing to read (5 files unchanged) sessions 0 rows 0 ")
    assert claude_row(out, "Claude Code")[2:4] == ["ok", "0"]
    assert "Nothing new to import: no history was added since the last import." in out


# --------------------------------------------------------------------------------------------- afterwards


def init(env: dict[str, str], retention: int = RETENTION, *, capture: bool = True) -> None:
    """`hyp init --yes` with capture on (the wizard's default), its daemon not started (a fake spawner)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from hypaware_tui.cli.init import run_headless
    from hypaware_tui.core.daemon.service import FakeServiceManager
    from tests.wizard_support import FakeSpawner

    service = FakeServiceManager(Path(env["HOME"]) / "unit" / "hypaware.service", available=True)
    with redirect_stdout(io.StringIO()) as out, redirect_stderr(io.StringIO()):
        code = run_headless("hyp", dict(env), clients=["claude"], retention_days=retention, dry_run=False,
                            demo_dir=None, no_backfill=False, no_daemon=not capture, force=False, json_out=True,
                            service_manager=service, spawner=FakeSpawner())
    assert code == 0, out.getvalue()


def daemon_once(env: dict[str, str]) -> None:
    from hypaware_tui.core.daemon.loop import DaemonLoop

    assert DaemonLoop(Layout.resolve(env), env=env).run(once=True) == 0


def bytes_read_by_scans(env: dict[str, str], after: int) -> list[int]:
    """The bytes read of each `backfill.scan` event (the daemon's and the runner's) from line `after` of the
    events log on."""
    lines = events_lines(env)[after:]
    return [e["bytes_read"] for e in map(json.loads, lines) if e["event"] == "backfill.scan"]


def events_lines(env: dict[str, str]) -> list[str]:
    path = Layout.resolve(env).home / "logs" / "events.jsonl"
    return path.read_text().splitlines() if path.exists() else []


def test_the_daemon_and_the_next_backfill_read_none_of_the_files_the_import_skipped(tmp_path: Path) -> None:
    """The import's skip left the old files without a checkpoint: the daemon's first catch-up read them whole
    (from its capture start: nothing kept), and the next `hyp backfill`, whose window starts earlier, read them
    whole again (`files 17 · lines skipped 4,631 · Nothing new to import`): old history read twice where it
    was read once before the skip. Each skipped file now has a checkpoint of nothing read."""
    env = make_home(tmp_path)
    init(env)
    before = len(events_lines(env))
    got = frame(env)
    assert got.height == ROWS_IN_WINDOW

    daemon_once(env)
    assert bytes_read_by_scans(env, before) == []  # (a catch-up that reads nothing logs no scan)

    after, _ = import_(env, RETENTION, inventory=False)  # `hyp backfill`
    assert (after.files_scanned, after.bytes_read, after.rows_written) == (0, 0, 0)
    assert after.files_unchanged == len(FILES)
    assert_frame_equal(frame(env), got)


def test_the_daemon_and_the_next_backfill_read_none_of_the_files_hyp_backfill_skipped(tmp_path: Path) -> None:
    env = make_home(tmp_path)
    configure(env)
    first, _ = import_(env, RETENTION, inventory=False)  # `hyp backfill`
    assert first.files_outside_window == len(SKIPPED)
    got = frame(env)
    before = len(events_lines(env))
    daemon_once(env)
    assert bytes_read_by_scans(env, before) == []
    after, _ = import_(env, RETENTION, inventory=False)
    assert (after.files_scanned, after.bytes_read, after.rows_written) == (0, 0, 0)
    assert after.files_unchanged == len(FILES)
    assert_frame_equal(frame(env), got)


def test_a_skipped_file_appended_to_is_read_whole_by_the_daemon(tmp_path: Path) -> None:
    """The daemon finds the checkpoint of nothing read changed by the append: it reads the file from its start
    with the window of the import floor, as a fresh import does. (A safety check: it passed before, when the
    file had no checkpoint and the daemon read it from its capture start.)"""
    env = make_home(tmp_path)
    init(env)
    daemon_once(env)
    path = session_path(env, "old-b")
    with path.open("a") as fh:
        fh.write("\n".join(session_lines("old-b", NOW - timedelta(minutes=2), 2, timedelta(seconds=20),
                                         first=4)) + "\n")
    before = len(events_lines(env))
    daemon_once(env)
    assert bytes_read_by_scans(env, before) == [path.stat().st_size]

    import_(with_hyp_home(env, tmp_path / "fresh"), RETENTION)
    assert_frame_equal(frame(env), frame(with_hyp_home(env, tmp_path / "fresh")))
    appended = frame(env).filter(pl.col("session_id") == "old-b")
    assert sorted(appended["message_index"].to_list()) == [8, 9, 10, 11]


def test_raising_the_retention_after_the_skip_gives_the_rows_of_a_forever_import(tmp_path: Path) -> None:
    """Through the daemon (retention raised in the config) and through `hyp backfill`. (A safety check: the
    lower floor resets every checkpoint, and a window starting before a checkpoint's bound reads its file again
    in any case, `reader.must_widen`.)"""
    env = make_home(tmp_path)
    init(env)
    import_(with_hyp_home(env, tmp_path / "all"), 0)
    forever = frame(with_hyp_home(env, tmp_path / "all"))

    cfg = Layout.resolve(env).config
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "retention_days": 0}))
    daemon_once(env)
    assert_frame_equal(frame(env), forever)

    other = with_hyp_home(env, tmp_path / "cli")
    init(other)
    raised, _ = import_(other, 0, inventory=False)
    assert raised.files_scanned == len(FILES)
    assert_frame_equal(frame(other), forever)


def test_a_home_whose_every_file_was_skipped_is_not_taken_for_a_replaced_dataset(tmp_path: Path, hyp_main) -> None:
    """Checkpoints of nothing read claim no rows: with no part file at all, the next backfill says nothing of a
    dataset replaced and reads nothing."""
    env = make_home(tmp_path)
    for name in IN_WINDOW:
        session_path(env, name).unlink()
    init(env, capture=False)
    rc, out, err = hyp_main(env, "backfill")
    assert rc == 0
    assert "is not the one hyp imported into" not in out + err
    progress = [x for x in err.splitlines() if x.startswith("hyp: claude ")][-1]
    assert progress.startswith(f"hyp: claude ok 100% 0 B/0 B nothing to read ({len(OLD)} files unchanged) ")
    assert "Nothing new to import: no history was added since the last import." in out


def test_cache_prune_forgets_the_checkpoint_of_a_skipped_file_that_is_gone(tmp_path: Path, hyp_main) -> None:
    from hypaware_tui.core.checkpoints import StateDB

    env = make_home(tmp_path)
    init(env, capture=False)
    layout = Layout.resolve(env)
    with StateDB.open(layout, create=False) as db:
        assert db.count("claude") == len(FILES)
    session_path(env, "old-a").unlink()
    rc, out, err = hyp_main(env, "cache", "prune")
    assert rc == 0, out + err
    with StateDB.open(layout, create=False) as db:
        assert db.count("claude") == len(FILES) - 1


@BOTH_WAYS
def test_a_dry_run_writes_no_checkpoint(tmp_path: Path, inventory: bool) -> None:
    env = make_home(tmp_path)
    now = now_us()
    window, _floor, write = resolve_window(None, None, RETENTION, now)
    inv = build_inventory(["claude"], env=env) if inventory else None
    res = run_backfill(Layout.resolve(env), ["claude"], window=window, write_checkpoints=write, dry_run=True,
                       env=env, retention_days=RETENTION, now=now, inventory=inv, workers=1)
    assert res.providers[0].files_outside_window == len(SKIPPED)
    assert res.providers[0].rows_written == ROWS_IN_WINDOW
    assert not Layout.resolve(env).ingest_db.exists()


def test_a_backfill_since_after_the_floor_skips_the_old_files_and_writes_no_checkpoint(tmp_path: Path,
                                                                                      hyp_main) -> None:
    """`hyp backfill --since` later than the import floor may write no checkpoint (storage.md §7.5): the files
    before its window are not read, and none gets a checkpoint of nothing read (a later run with the floor's
    window must read them)."""
    from hypaware_tui.core.checkpoints import StateDB

    env = make_home(tmp_path, copied=False)
    configure(env)
    since = (NOW - timedelta(days=20)).date().isoformat()  # (after the 30-day floor: old-a, old-b and the
    # straddling session, whose last turn is 21 days old, end before it)
    rc, out, err = hyp_main(env, "backfill", "claude", "--since", since)
    assert rc == 0, out + err
    progress = [x for x in err.splitlines() if x.startswith("hyp: claude ")][-1]
    assert " files 1/1 sessions 1 rows 10 " in progress
    assert claude_row(out, "claude")[1:5] == ["ok", "1", "1", "10"]
    with StateDB.open(Layout.resolve(env), create=False) as db:
        assert db.count("claude") == 0
    wide, _ = import_(env, RETENTION, inventory=False)
    assert (wide.files_scanned, wide.files_outside_window, wide.rows_written) == (2, 2, 4)


# --------------------------------------------------------------------------------------------- codex


@pytest.mark.parametrize("inventory", [True, False], ids=["setup", "backfill"])
def test_codex_rollouts_before_the_window_are_skipped_and_the_rows_are_those_of_a_forever_import(
        tmp_path: Path, inventory: bool) -> None:
    """Every Codex fixture (plain, `.zst` and whole-document `.json` rollouts), each file's mtime its last
    stamp, under a 90-day retention whose floor falls among them."""
    from hypaware_tui.core.inventory import before_window

    fixtures = Path(__file__).parent / "fixtures" / "codex"
    env = make_home(tmp_path, copied=False)
    for f in session_path(env, "x").parent.iterdir():
        f.unlink()
    sessions = Path(env["CODEX_HOME"]) / "sessions"
    sessions.mkdir(parents=True)
    for f in fixtures.glob("rollout-*"):
        (sessions / f.name).write_bytes(f.read_bytes())
    for fi in build_inventory(["codex"], env=env)["codex"].files:
        if fi.last_ts is not None:
            os.utime(fi.file.path, ns=(fi.last_ts * 1000 + 10**9, fi.last_ts * 1000 + 10**9))
    now = int(datetime(2026, 4, 1, tzinfo=UTC).timestamp() * 1_000_000)
    window, _floor, write = resolve_window(None, None, 90, now)
    ci = build_inventory(["codex"], env=env)["codex"]
    old = {fi.file.path_hash for fi in ci.files if fi.last_ts is not None and before_window(fi, window.since_us)}
    assert len(old) >= 4, old

    def run(e: dict[str, str], retention: int, inv) -> object:
        w, _f, wr = resolve_window(None, None, retention, now)
        res = run_backfill(Layout.resolve(e), ["codex"], window=w, write_checkpoints=wr, dry_run=False, env=e,
                           retention_days=retention, now=now, inventory=inv, workers=1)
        assert res.status == "ok", res.providers[0].error
        return res.providers[0]

    pr = run(env, 90, build_inventory(["codex"], env=env) if inventory else None)
    assert pr.files_outside_window == len(old)
    assert pr.files_scanned == len(ci.files) - len(old)
    everything = with_hyp_home(env, tmp_path / "all")
    run(everything, 0, None)
    want = frame(everything).filter(pl.col("message_created_at") >= window.since_us)
    assert want.height > 0
    assert_frame_equal(frame(env), want)
