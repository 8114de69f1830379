"""The init plan and its commit steps (core/plan.py): pure planning from an inventory in memory, the exact
config text, backups, capture start, the daemon table, exit codes and the summaries."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from hypaware_tui.core.demo import DATA_DIR, create_demo_dir, newest_sample_us
from hypaware_tui.core.inventory import build_inventory, client_figures
from hypaware_tui.core.plan import (
    Choices,
    DaemonState,
    ExistingConfig,
    InitResult,
    MachineState,
    Sample,
    build_plan,
    capture_line,
    commit,
    fmt_duration,
    gather_machine_state,
    next_commands,
    plan_daemon,
    plan_json,
    read_existing_config,
    shorter_retention_warning,
    skipped_reasons,
    summary_json,
    summary_text,
    throughput,
    tilde,
    with_until,
)
from hypaware_tui.core.timeutil import US_PER_DAY, parse_iso_us, us_to_iso
from tests.wizard_support import NOW_US, make_machine

# --------------------------------------------------------------------------------------------- demo data


def test_bundled_samples_cover_what_the_demo_promises() -> None:
    files = [p for p in DATA_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 1_000_000
    text = "\n".join(p.read_text() for p in files if p.suffix == ".jsonl")
    models = set(json.loads(m) for m in __import__("re").findall(r'"model":("[^"]+")', text))
    assert {"claude-opus-4-6", "claude-sonnet-4-5", "claude-haiku-4-5", "gpt-5-codex", "gpt-5.1-codex-mini"} <= models
    assert len({p.parent.name for p in (DATA_DIR / "claude" / "projects").glob("*/*.jsonl")}) == 3
    assert '"token_count"' in text and '"session_meta"' in text
    assert list((DATA_DIR / "claude").rglob("subagents/agent-*.jsonl"))
    stamps = [parse_iso_us(t) for t in __import__("re").findall(r'"timestamp":"([^"]+)"', text)]
    assert (max(stamps) - min(stamps)) >= 14 * US_PER_DAY
    malformed = 0
    for p in files:
        if p.suffix == ".jsonl":
            for line in p.read_bytes().splitlines():
                try:
                    json.loads(line)
                except ValueError:
                    malformed += 1
    assert malformed == 1


def test_demo_copy_shifts_time_and_points_cwd_into_the_demo_home(tmp_path: Path) -> None:
    now = parse_iso_us("2026-09-01T10:00:00Z")
    demo = create_demo_dir(now, tmp_root=str(tmp_path))
    assert demo.root.name.startswith("hyp-demo-") and not demo.hyp_home.exists()
    copied = [p for p in demo.home.rglob("*.jsonl")]
    assert len(copied) == len([p for p in DATA_DIR.rglob("*.jsonl")])
    newest = 0
    cwds = set()
    for p in copied:
        for line in p.read_bytes().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            for holder in (obj, obj.get("payload") or {}):
                if isinstance(holder, dict):
                    ts = parse_iso_us(holder.get("timestamp"))
                    newest = max(newest, ts or 0)
                    if isinstance(holder.get("cwd"), str):
                        cwds.add(holder["cwd"])
    assert newest == now - 3_600_000_000
    assert cwds and all(c.startswith(str(demo.home) + "/") for c in cwds)
    rollouts = list((demo.codex_home / "sessions").rglob("rollout-*.jsonl"))
    assert len(rollouts) == 7 and all(len(p.relative_to(demo.codex_home / "sessions").parts) == 4 for p in rollouts)
    env = demo.env({"HOME": "/home/real", "HYP_HOME": "/home/real/.hyp", "PATH": "/bin"})
    assert env["HOME"] == str(demo.home) and env["HYP_HOME"] == str(demo.hyp_home) and env["PATH"] == "/bin"
    assert env["CLAUDE_CONFIG_DIR"] == str(demo.claude_dir) and env["CODEX_HOME"] == str(demo.codex_home)
    assert newest_sample_us() < now


# --------------------------------------------------------------------------------------------- planning


def _machine_state(m, config: ExistingConfig | None = None, daemon: DaemonState | None = None) -> MachineState:
    return MachineState(hyp_home=m.layout.home, config=config or ExistingConfig(m.layout.config),
                        daemon=daemon or DaemonState(),
                        home=m.env["HOME"])


def test_plan_is_pure_and_matches_the_inventory(tmp_path: Path) -> None:
    m = make_machine(tmp_path, now_us=NOW_US - 50 * US_PER_DAY)  # history 50-70 days old
    inv = build_inventory(env=m.env)
    plan = build_plan(inv, Choices(("claude", "codex"), retention_days=60), _machine_state(m), now_us=NOW_US)
    assert not m.layout.home.exists()
    assert plan.since_us == parse_iso_us("2026-04-02T00:00:00Z")  # 00:00 UTC of (today - 60 days)
    assert plan.window_text() == "2026-04-02 00:00 UTC → now (60 days)"
    for cp in plan.clients:
        assert cp.in_window == client_figures(inv[cp.client], plan.since_us, NOW_US)
        assert cp.total == client_figures(inv[cp.client])
        assert cp.in_window.files + cp.older.files == cp.total.files
        assert 0 < cp.in_window.files < cp.total.files
    forever = build_plan(inv, Choices(("claude",), retention_days=0), _machine_state(m), now_us=NOW_US)
    assert forever.since_us is None and forever.window_text() == "everything → now"
    assert forever.client("codex").selected is False and forever.import_clients == ("claude",)
    declined = build_plan(inv, Choices(("claude",), import_history=False), _machine_state(m), now_us=NOW_US)
    assert declined.selected_clients == ("claude",) and declined.import_clients == ()
    named = build_plan(inv, Choices(("claude", "codex")), _machine_state(m), now_us=NOW_US,
                       named_clients=("claude", "codex"))
    assert named.warnings == ()  # (both named clients are there: nothing to warn about)
    later = with_until(plan, NOW_US + 3 * US_PER_DAY)
    assert later.until_us == NOW_US + 3 * US_PER_DAY and later.since_us == plan.since_us + 3 * US_PER_DAY
    assert later.config == plan.config and later.planned_at_us == plan.planned_at_us


def test_history_stamped_days_ahead_of_the_clock_is_counted_in_the_window(tmp_path: Path) -> None:
    """A history whose stamps run up to three days past the plan's now (a clock set back): the import keeps
    every row stamped more than FUTURE_SKEW_US ahead (`Window.beyond_until`), so the Review and `hyp init
    --dry-run` count those files and show their newest date; without it they were left out of "in window"
    (and its newest clamped to now) while the import wrote them."""
    from hypaware_tui.importers.base import FUTURE_SKEW_US

    m = make_machine(tmp_path, now_us=NOW_US + 3 * US_PER_DAY)
    inv = build_inventory(env=m.env)
    plan = build_plan(inv, Choices(("claude", "codex"), retention_days=30), _machine_state(m), now_us=NOW_US)
    doc = {c["client"]: c for c in plan_json(plan)["clients"]}
    for cp in plan.clients:
        ahead = [fi for fi in inv[cp.client].files if fi.oldest_us > NOW_US + FUTURE_SKEW_US]
        assert ahead  # (the fixture: some files start more than a day ahead)
        assert cp.in_window.files >= len(ahead)
        assert cp.in_window.newest_us == cp.total.newest_us > NOW_US + FUTURE_SKEW_US
        assert doc[cp.client]["in_window"]["files"] == cp.in_window.files
        assert doc[cp.client]["in_window"]["newest"] == us_to_iso(cp.total.newest_us)


def test_plan_json_shape(tmp_path: Path) -> None:
    m = make_machine(tmp_path, clients=("claude",))
    inv = build_inventory(env=m.env)
    plan = build_plan(inv, Choices(("claude", "codex")), _machine_state(m), now_us=NOW_US,
                      named_clients=("codex",))
    doc = plan_json(plan)
    assert list(doc) == ["command", "dry_run", "demo_dir", "hyp_home", "retention_days", "window", "clients",
                         "config", "daemon", "warnings"]
    codex = doc["clients"][1]
    assert codex["detected"] is False and codex["import"] is False and codex["selected"] is True
    assert codex["reason"].startswith("not found: ") and codex["in_window"]["files"] == 0
    assert list(doc["clients"][0]) == ["client", "name", "detected", "reason", "selected", "import", "root", "total",
                                       "in_window"]
    assert list(doc["clients"][0]["in_window"]) == ["files", "sessions", "bytes", "oldest", "newest"]
    assert doc["config"]["action"] == "create" and doc["config"]["backup"] is None
    assert doc["config"]["text"].endswith("}\n") and json.loads(doc["config"]["text"])["version"] == 1
    assert any("Codex was named but not detected" in w for w in doc["warnings"])
    assert doc["window"]["until"] == us_to_iso(NOW_US)


def test_reconfigure_keeps_unknown_keys_and_lists_changes(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    old = {"version": 1, "clients": {"claude": {"enabled": True, "root": str(m.home / ".claude")},
                                     "codex": {"enabled": True}},
           "retention_days": 365, "capture": {"enabled": True, "flush_rows": 500}, "x": 1}
    m.layout.config.write_text(json.dumps(old))
    existing = read_existing_config(m.layout)
    assert existing.valid and existing.enabled_clients == ("claude", "codex") and existing.retention_days == 365
    inv = build_inventory(env=m.env)
    plan = build_plan(inv, Choices(("claude",), retention_days=120, capture=False), _machine_state(m, existing),
                      now_us=NOW_US, mode="reconfigure", force=True)
    new = json.loads(plan.config.text)
    assert new["x"] == 1 and new["capture"] == {"enabled": False, "flush_rows": 500}
    assert new["clients"]["claude"] == {"enabled": True, "root": str(m.home / ".claude")}
    assert new["clients"]["codex"] == {"enabled": False}
    assert plan.config.action == "replace" and plan.config.needs_force is False
    assert plan.config.backup == "hypaware-config.json.bak-20260601T120000Z"
    assert plan.config.changes == ("retention: 365 days → 120 days", "codex: on → off", "capture: on → off")
    assert plan.warnings[0].startswith("Shorter than your current 365 days: rows older than 120 days")
    again = build_plan(inv, Choices(("claude", "codex"), 365), _machine_state(m, existing), now_us=NOW_US,
                       mode="import_again")
    assert again.config.action == "unchanged" and again.config.text == m.layout.config.read_text()


@pytest.mark.parametrize(("text", "changes"), [
    # Same data, another layout (one line, keys in another order, an unknown key): left alone.
    ('{"x": 1, "capture": {"enabled": true}, "retention_days": 120, "version": 1, '
     '"clients": {"codex": {"enabled": true}, "claude": {"enabled": true}}}', None),
    # Same settings, some left to their defaults: written, and Review says why (not an empty change list).
    ('{"version": 1, "clients": {"claude": {"enabled": true}, "codex": {}}}',
     ("same settings, with clients, retention_days and capture written out in full",)),
])
def test_a_reconfigure_that_changes_no_setting(tmp_path: Path, text: str, changes: tuple[str, ...] | None) -> None:
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text(text)
    existing = read_existing_config(m.layout)
    plan = build_plan(build_inventory(env=m.env), Choices(("claude", "codex")), _machine_state(m, existing),
                      now_us=NOW_US, mode="reconfigure", force=True)
    if changes is None:
        assert plan.config.action == "unchanged" and plan.config.text == text
        assert plan.config.backup is None and plan.config.changes == ()
    else:
        assert plan.config.action == "replace" and plan.config.changes == changes
        assert json.loads(plan.config.text)["capture"] == {"enabled": True}


def test_invalid_config_is_described_not_raised(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    m.layout.home.mkdir(mode=0o700)
    m.layout.config.write_text('{"version": 1, "retention_days": -1}')
    existing = read_existing_config(m.layout)
    assert existing.exists and not existing.valid and "retention_days" in existing.error
    plan = build_plan(build_inventory(env=m.env), Choices(("claude",)), _machine_state(m, existing),
                      now_us=NOW_US, mode="reconfigure", force=True)
    assert plan.config.action == "replace" and json.loads(plan.config.text)["retention_days"] == 120


@pytest.mark.parametrize(("capture", "running", "changed", "action"), [
    (True, False, False, "start"), (True, True, True, "restart"), (True, True, False, "none"),
    (False, True, False, "stop"), (False, False, True, "none")])
def test_daemon_action_table(capture: bool, running: bool, changed: bool, action: str) -> None:
    """daemon.md §9 (checked with a fake process table through gather_machine_state below)."""
    d = plan_daemon(DaemonState(running=running, pid=4242 if running else None), capture=capture,
                    config_changed=changed, demo=False)
    assert d.action == action
    assert d.mode == (None if action == "none" else "detached")
    service = plan_daemon(DaemonState(running=running, service_installed=True, manager_available=True),
                          capture=capture, config_changed=changed, demo=False)
    assert service.mode == (None if action == "none" else "service")
    assert plan_daemon(DaemonState(running=running), capture=capture, config_changed=changed, demo=True).action == "none"


def test_gather_machine_state_uses_the_injected_fakes(tmp_path: Path) -> None:
    m = make_machine(tmp_path)
    m.running_pid[0] = 4242
    state = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    assert state.daemon == DaemonState(running=True, pid=4242, service_installed=False, manager_available=False)
    assert m.service.calls == []
    demo = gather_machine_state(m.layout, m.env, demo=True, service_manager=m.service,
                                process_table=lambda layout: pytest.fail("a demo never looks at the daemon"))
    assert demo.daemon == DaemonState()


# --------------------------------------------------------------------------------------------- commit


def test_commit_writes_config_capture_rows_and_starts_once(tmp_path: Path) -> None:
    from hypaware_tui.core.daemon.capture import read_capture
    from hypaware_tui.core.timeutil import now_us

    m = make_machine(tmp_path, now_us=now_us())
    inv = build_inventory(env=m.env)
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    plan = build_plan(inv, Choices(("claude", "codex")), machine, now_us=now_us())
    result = commit(plan, m.layout, env=m.env, inventory=inv, service_manager=m.service, spawner=m.spawner)
    assert result.exit_code == 0
    assert result.config.status == "ok" and result.config.action == "created" and result.config.backup is None
    assert stat.S_IMODE(m.layout.home.stat().st_mode) == 0o700
    assert stat.S_IMODE(m.layout.config.stat().st_mode) == 0o600
    assert m.layout.config.read_text() == plan.config.text
    starts = read_capture(m.layout)
    assert {c: s.capture_since_us for c, s in starts.items()} == {"claude": plan.until_us, "codex": plan.until_us}
    assert {c: r.status for c, r in result.clients.items()} == {"claude": "ok", "codex": "ok"}
    assert result.daemon.action == "start" and result.daemon.status == "ok" and len(m.spawner.calls) == 1
    assert capture_line(result).startswith(f"running (pid {result.daemon.pid})")
    assert "hyp daemon install" in capture_line(result)
    doc = summary_json(result)
    assert list(doc) == ["command", "dry_run", "demo_dir", "hyp_home", "config", "clients", "retention_days",
                         "window", "backfill", "daemon", "exit_code"]
    assert doc["daemon"] == {"action": "start", "status": "ok", "mode": "detached", "pid": result.daemon.pid,
                             "error": None}
    assert doc["window"]["until"] == doc["backfill"]["until"]

    # Import again over the same machine: nothing new, config unchanged, capture start kept.
    existing = read_existing_config(m.layout)
    m.running_pid[0] = result.daemon.pid
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    again = build_plan(inv, Choices(existing.enabled_clients, existing.retention_days), machine,
                       now_us=now_us(), mode="import_again")
    second = commit(again, m.layout, env=m.env, inventory=inv, service_manager=m.service, spawner=m.spawner)
    assert second.config.action == "unchanged"
    assert all(r.rows_written == 0 for r in second.clients.values())
    assert second.daemon.action == "none" and len(m.spawner.calls) == 1
    assert read_capture(m.layout) == starts
    text = summary_text(second, m.env)
    assert text.startswith("Config    unchanged ~/.hyp/hypaware-config.json\n")
    # A table of zeros says why: nothing was new (the first run's summary has no such line).
    nothing_new = "Nothing new to import: no history was added since the last import."
    assert f"\n{nothing_new}\n\nCapture   " in text and nothing_new not in summary_text(result, m.env)



def test_import_again_over_a_config_with_a_utf8_bom(tmp_path: Path) -> None:
    """The wizard's Import again over a config saved with a BOM: the import parsed the config's text with the
    BOM in it and failed (JSONDecodeError) after Review; Review showed the BOM as part of the JSON."""
    from hypaware_tui.core.timeutil import now_us

    m = make_machine(tmp_path, now_us=now_us())
    m.layout.home.mkdir(mode=0o700)
    old = '\ufeff{"version": 1, "clients": {"claude": {"enabled": true}}, "capture": {"enabled": false}}\n'
    m.layout.config.write_bytes(old.encode())
    existing = read_existing_config(m.layout)
    inv = build_inventory(env=m.env)
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    plan = build_plan(inv, Choices(existing.enabled_clients, existing.retention_days, capture=False), machine,
                      now_us=now_us(), mode="import_again")
    assert plan.config.action == "unchanged" and plan.config.text == old[1:]
    result = commit(plan, m.layout, env=m.env, inventory=inv, service_manager=m.service, spawner=m.spawner)
    assert result.exit_code == 0
    assert {c: r.status for c, r in result.clients.items()} == {"claude": "ok"}
    assert summary_text(result, m.env).startswith("Config    unchanged ~/.hyp/hypaware-config.json\n")
    assert m.layout.config.read_bytes() == old.encode()


def test_exit_code_precedence() -> None:
    from types import SimpleNamespace as NS

    plan = NS(choices=Choices(("claude",)))
    r = InitResult(plan)  # type: ignore[arg-type]
    assert r.exit_code == 0
    r.daemon = NS(status="failed")
    assert r.exit_code == 1
    r.clients["claude"] = NS(status="cancelled")
    assert r.exit_code == 130
    r.clients["codex"] = NS(status="failed")
    assert r.exit_code == 130  # (an interrupted run: 130 before a client's failure)


def test_next_commands_and_the_nothing_new_note_follow_the_run() -> None:
    from types import SimpleNamespace as NS

    from hypaware_tui.core.plan import nothing_new_note

    plan = NS(choices=Choices(("claude", "codex")), demo_dir=None, daemon=NS(service_installed=True))
    r = InitResult(plan)  # type: ignore[arg-type]
    r.clients = {"claude": NS(status="ok", rows_written=5, duplicates_skipped=40, files_unchanged=3),
                 "codex": NS(status="cancelled", rows_written=0, duplicates_skipped=0, files_unchanged=0)}
    assert next_commands(r) == ["hyp status", "hyp query overview", 'hyp query sql "select …"', "hyp backfill codex"]
    r.clients["codex"].status = "ok"
    assert nothing_new_note(r) is None  # (new rows were written besides the 40 already stored)



def test_capture_line_says_what_the_daemon_step_did() -> None:
    from types import SimpleNamespace as NS

    def line(capture: bool, mode: str = "first", **daemon: object) -> str:
        plan = NS(choices=Choices(("claude",), capture=capture), demo_dir=None, mode=mode)
        return capture_line(InitResult(plan, daemon=NS(mode=None, pid=None, **daemon)))  # type: ignore[arg-type]

    assert line(False, action="stop", status="ok", capture_line="stopped (pid 5)") == "stopped"
    assert line(False, action="none", status="ok", capture_line="x") == "not started (you chose not to)"
    # a stop the interrupted setup skipped: the daemon still runs
    assert line(False, action="stop", status="skipped", capture_line="x") == (
        "still running (setup was interrupted; stop it with hyp daemon stop)")
    # Import again asks nothing: the config has capture off
    assert line(False, "import_again", action="none", status="ok", capture_line="x") == (
        "not started (capture is off in the config)")
    # nothing to do was skipped: what the daemon is doing, not "setup was interrupted"
    assert line(True, action="none", status="skipped", capture_line="running (pid 5)") == "running (pid 5)"


def test_wrap_items_fills_the_line_to_the_last_column() -> None:
    from hypaware_tui.core.plan import wrap_items

    assert wrap_items("Next ", ["aaa", "bbb"], len("Next aaa · bbb")) == ["Next aaa · bbb"]
    assert wrap_items("Next ", ["aaa", "bbb"], len("Next aaa · bbb") - 1) == ["Next aaa", "     bbb"]


# --------------------------------------------------------------------------------------------- progress text


def test_progress_formatting() -> None:
    samples = [Sample(0.0, 0), Sample(2.0, 2_000_000), Sample(6.0, 10_000_000), Sample(10.0, 30_000_000)]
    assert throughput(samples, 10.0) == pytest.approx((30_000_000 - 8_000_000) / 5.0)  # last 5 s, interpolated
    assert throughput(samples, 15.0) == pytest.approx(0.0)  # nothing since t=10
    assert throughput(samples, 1.0) == pytest.approx(1_000_000.0)
    assert throughput([Sample(1.0, 5)], 2.0) == 0.0
    assert fmt_duration(20) == "0:20" and fmt_duration(3725) == "1:02:05"
    from hypaware_tui.core.fmt import human_size

    # wizard.md's figures (612 MB of 1.05 GB, 1.1 GB, 31.2 MB/s): three significant digits, no trailing zeros
    assert [human_size(n) for n in (612_000_000, 1_050_000_000, 1_100_000_000, 31_200_000, 999, 999_600, 5_510_000,
                                    153_000, None)] == [
        "612 MB", "1.05 GB", "1.1 GB", "31.2 MB", "999 B", "1 MB", "5.51 MB", "153 kB", "unknown"]
    reasons = {"malformed": 9, "no_session_id": 3, "not_a_message": 40, "outside_window": 1, "empty_content": 2}
    assert skipped_reasons(reasons) == "55 (not a message 40 · malformed 9 · no session id 3 · +2 more)"
    assert skipped_reasons({"malformed": 9, "no_session_id": 3}) == "12 (malformed 9 · no session id 3)"
    assert skipped_reasons({}) == "0"
    assert skipped_reasons({"too_large": 2, "malformed": 2}) == "4 (malformed 2 · too large 2)"  # (ties by name)
    assert skipped_reasons(reasons, max_len=31) == "55 (not a message 40 · +4 more)"
    assert skipped_reasons(reasons, max_len=30) == "55 (+5 more)"


def test_shorter_retention_warning_counts_rows_from_the_dataset(tmp_path: Path) -> None:
    m = make_machine(tmp_path, now_us=NOW_US - 20 * US_PER_DAY)  # history 20-40 days old
    inv = build_inventory(env=m.env)
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    first = build_plan(inv, Choices(("claude", "codex"), capture=False), machine, now_us=NOW_US)
    result = commit(first, m.layout, env=m.env, inventory=inv, service_manager=m.service, spawner=m.spawner)
    written = sum(r.rows_written for r in result.clients.values())
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    assert machine.rows_older_than(120, NOW_US) == 0
    older = machine.rows_older_than(30, NOW_US)
    assert 0 < older < written
    assert machine.rows_older_than(0, NOW_US) is None
    plan = build_plan(inv, Choices(("claude", "codex"), retention_days=30), machine, now_us=NOW_US,
                      mode="reconfigure", force=True)
    assert plan.warnings == (f"Shorter than your current 120 days: rows older than 30 days (about {older:,}) "
                             "will be deleted at the next daily cleanup.",)


def test_a_window_that_deletes_stored_rows_warns_without_a_readable_config(tmp_path: Path) -> None:
    """With a config that cannot be read (Reconfigure replaces it) or none at all, over a dataset, there was no
    setting to compare the window with, and no warning: a Reconfigure to 30 days over a broken config of a
    keep-forever history started a daemon whose first cleanup deleted 12,594 rows without a word (wizard
    audit). The dataset's rows older than the window are said instead, when there are any."""
    m = make_machine(tmp_path, now_us=NOW_US - 20 * US_PER_DAY)  # history 20-40 days old
    inv = build_inventory(env=m.env)
    machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
    first = build_plan(inv, Choices(("claude", "codex"), capture=False), machine, now_us=NOW_US)
    commit(first, m.layout, env=m.env, inventory=inv, service_manager=m.service, spawner=m.spawner)
    config = m.layout.config
    for broken, why in ((b'{"version": 1, "retention_days": -5,', "Your config cannot be read"),
                        (None, "There is no config")):
        if broken is None:
            config.unlink()
        else:
            config.write_bytes(broken)
        machine = gather_machine_state(m.layout, m.env, service_manager=m.service, process_table=m.process_table)
        assert not machine.config.valid
        older = machine.rows_older_than(30, NOW_US)
        assert older and older > 0
        mode = "reconfigure" if broken is not None else "first"
        plan = build_plan(inv, Choices(("claude", "codex"), retention_days=30), machine, now_us=NOW_US, mode=mode,
                          force=True)
        assert plan.warnings == (f"{why}, and hyp's dataset holds rows older than 30 days (about {older:,}): they "
                                 "will be deleted at the next daily cleanup.",), plan.warnings
        # a window that keeps every stored row, or keeps forever: nothing to say
        for days in (120, 0):
            plan = build_plan(inv, Choices(("claude", "codex"), retention_days=days), machine, now_us=NOW_US,
                              mode=mode, force=True)
            assert plan.warnings == (), (days, plan.warnings)
    # no dataset (a first setup): nothing to delete, nothing said
    fresh = ExistingConfig(tmp_path / "nowhere.json")
    assert shorter_retention_warning(fresh, 30, None) is None and shorter_retention_warning(fresh, 30, 0) is None


def test_a_keep_forever_config_is_read_as_such(tmp_path: Path) -> None:
    """retention_days 0 is "forever", not an invalid value: going to 30 days warns about it."""
    path = tmp_path / "hypaware-config.json"
    data = {"version": 1, "clients": {"claude": {"enabled": True}}, "retention_days": 0}
    existing = ExistingConfig(path, True, json.dumps(data).encode(), data)
    assert existing.retention_days == 0
    assert shorter_retention_warning(existing, 30, 7) == (
        "Shorter than your keep-forever setting: rows older than 30 days (about 7) will be deleted at the next "
        "daily cleanup."
    )
    kept = ExistingConfig(path, True, b"{}", {**data, "retention_days": 120})
    assert shorter_retention_warning(kept, 0, 7) is None
    # the same window over rows older than it (lowered by hand, or aged while capture was off): a new daemon's
    # first cleanup deletes them; a running one deletes such rows every day, and with capture off none runs
    assert shorter_retention_warning(kept, 120, 7) == (
        "hyp's dataset holds rows older than 120 days (about 7): they will be deleted at the next daily cleanup."
    )
    assert shorter_retention_warning(kept, 120, 7, daemon_running=True) is None
    assert shorter_retention_warning(kept, 120, 7, capture=False) is None
    assert shorter_retention_warning(kept, 120, 0) is None and shorter_retention_warning(kept, 120, None) is None
    assert shorter_retention_warning(existing, 30, 7, capture=False) == (
        "Shorter than your keep-forever setting: rows older than 30 days (about 7) will be deleted by the next hyp "
        "cache prune (capture is off, so no daily cleanup runs)."
    )
    assert shorter_retention_warning(kept, 30, 0) == (
        "Shorter than your current 120 days: rows older than 30 days (none right now) will be deleted at the next "
        "daily cleanup."
    )


def test_rows_older_than_the_cut_date_leave_the_cut_date_itself(tmp_path: Path) -> None:
    existing = ExistingConfig(tmp_path / "hypaware-config.json")
    machine = MachineState(tmp_path, existing, partition_rows=(("2026-05-01", 3), ("2026-05-02", 4), ("2026-05-03", 5)))
    assert machine.rows_older_than(120, parse_iso_us("2026-08-30T12:00:00Z")) == 3  # (the cut date is 2026-05-02)


def test_tilde_only_on_a_path_component_boundary() -> None:
    env = {"HOME": "/home/ada/"}
    assert tilde("/home/ada", env) == "~" and tilde("/home/ada/.hyp/x", env) == "~/.hyp/x"
    assert tilde("/home/adam/.hyp", env) == "/home/adam/.hyp"


def test_summary_table_fits_a_narrow_terminal(tmp_path: Path) -> None:
    from hypaware_tui.core.runner import ProviderResult

    m = make_machine(tmp_path)
    plan = build_plan(build_inventory(env=m.env), Choices(("claude", "codex")), _machine_state(m), now_us=NOW_US)
    result = InitResult(plan)
    for c in ("claude", "codex"):
        result.clients[c] = ProviderResult(c, status="ok", files_scanned=241, sessions_seen=133, rows_written=48210,
                                           duplicates_skipped=0, lines_skipped={"malformed": 12}, errors=0, error=None)
    wide = summary_text(result, m.env)
    assert "Client       Status  Files  Sessions  Rows written" in wide
    narrow = summary_text(result, m.env, width=80)
    assert all(len(line) <= 80 for line in narrow.splitlines())
    assert "Claude Code ok       241      133       48,210          0            12      0" in narrow


def test_summary_fits_80_columns_with_large_numbers_and_wraps_next_between_commands(tmp_path: Path) -> None:
    """The summary printed after the wizard (and by `hyp init --yes`) stays in the scrollback: at 80 columns with
    numbers in the millions no line may be wider than the terminal (which cuts `Errors` as `Error`/`s` and
    `hyp backf`/`ill codex`)."""
    from hypaware_tui.core.runner import ProviderResult

    m = make_machine(tmp_path)
    plan = build_plan(build_inventory(env=m.env), Choices(("claude", "codex")), _machine_state(m), now_us=NOW_US)
    result = InitResult(plan)
    result.clients["claude"] = ProviderResult("claude", status="cancelled", files_scanned=12_345, sessions_seen=123_456,
                                              rows_written=1_234_567, duplicates_skipped=123_456,
                                              lines_skipped={"malformed": 12_345}, errors=0, error=None)
    result.clients["codex"] = ProviderResult("codex", status="failed", files_scanned=12_345, sessions_seen=12_345,
                                             rows_written=1_234_567, duplicates_skipped=12, lines_skipped={},
                                             errors=3, error="could not write to the dataset: No space left",
                                             error_path=m.env["HOME"] + "/.codex/sessions")
    commands = next_commands(result)
    assert "hyp backfill claude" in commands and "hyp backfill codex" in commands
    text = summary_text(result, m.env, width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    assert "Client       Status      Files  Sessions       Rows  Duplicates  Skipped  Errors" in lines
    assert "Claude Code  cancelled  12,345   123,456  1,234,567     123,456   12,345       0" in lines
    assert "Codex        failed     12,345    12,345  1,234,567          12        0       3" in lines
    # The Next line wraps between commands, with the continuation under the first command.
    start = next(i for i, line in enumerate(lines) if line.startswith("Next      "))
    block = [lines[start][10:]] + [line[10:] for line in lines[start + 1:] if line.startswith(" " * 10)]
    assert len(block) > 1
    assert [c for line in block for c in line.split(" · ")] == commands
    # A terminal wide enough keeps the cli.md §4.2 table; one far narrower gets one block per client.
    assert "Client       Status      Files  Sessions  Rows written  Duplicates  Lines skipped  Errors" in \
        summary_text(result, m.env, width=120)
    narrow = summary_text(result, m.env, width=60)
    assert max(len(line) for line in narrow.splitlines()) <= 60, narrow
    assert "Claude Code  cancelled\n  files 12,345 · sessions 123,456 · rows written 1,234,567\n" in narrow
    # the error's note goes on under its text, past `codex: ` (it went on two columns in)
    notes = summary_text(result, m.env, width=40).splitlines()
    at = notes.index("  codex: could not write to the dataset:")
    assert notes[at + 1:at + 4] == ["         No space left", "    at ~/.codex/sessions",
                                    "  codex: and 3 more errors (hyp status"], notes


def test_counts_of_one_read_in_the_singular(tmp_path: Path) -> None:
    """`1 day`, `1 row`, never `1 days` / `1 rows` (a retention of 1 day is a valid choice)."""
    from hypaware_tui.core.runner import nothing_new_text

    m = make_machine(tmp_path)
    inv = build_inventory(env=m.env)
    data = {"retention_days": 365, "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}}}
    machine = _machine_state(m, config=ExistingConfig(m.layout.home / "hypaware-config.json", exists=True,
                                                      raw=json.dumps(data).encode(), data=data))
    plan = build_plan(inv, Choices(("claude",), retention_days=1), machine, now_us=NOW_US, mode="reconfigure",
                      rows_older=1, force=True)
    assert plan.window_text() == "2026-05-31 00:00 UTC → now (1 day)"
    assert plan.config.changes == ("retention: 365 days → 1 day", "codex: on → off")
    assert plan.warnings == ("Shorter than your current 365 days: rows older than 1 day (about 1) will be deleted "
                             "at the next daily cleanup.",)
    assert "(1 day)\n" in summary_text(InitResult(plan), m.env).splitlines(keepends=True)[0]
    assert nothing_new_text(1, 0) == "Nothing new to import: the 1 row in this window is already in the dataset."
    assert nothing_new_text(1, 1) == ("Nothing new to import: the 1 row read is already in the dataset and 1 file is "
                                      "unchanged since the last import.")


def test_notes_under_the_summary_hang_under_their_text_and_keep_a_path_whole() -> None:
    """The notes under an import's summary (`  codex: <error>`, `    at <path>`): wrapped to the terminal, each
    goes on under its text (the init summary went on two columns in, the backfill summary and the Done screen
    at column 1). A path longer than the line stays whole for the terminal to fold, so that a copy of it has no
    break, unless the caller must cut it (a screen, which clips at its edge)."""
    from hypaware_tui.core.fmt import hanging_lines

    path = "~/.codex/sessions/2026/11/14/rollout-2026-11-20T10-00-00-019bc2a1-7f3e-7d10-9b1a-3c5e2f4a6b00.jsonl.zst"
    notes = ["  codex: file 36a271989c645a5d: the compressed rollout (.jsonl.zst) is damaged or not zstd data; "
             "nothing could be read from it.", f"    at {path}", "  codex: short"]
    assert hanging_lines(notes, None) == notes and hanging_lines(notes, 200) == notes
    assert hanging_lines(notes, 60) == [
        "  codex: file 36a271989c645a5d: the compressed rollout",
        "         (.jsonl.zst) is damaged or not zstd data; nothing",
        "         could be read from it.",
        f"    at {path}",
        "  codex: short",
    ]
    cut = hanging_lines(notes[1:2], 60, break_long_words=True)
    assert cut == [f"    at {path[:53]}", f"       {path[53:]}"]
    # where the hang would cut a word that a line holds whole from the line's own indent, it is not used
    folder = "/var/folders/x7/abcdefghijklmnopqrstuvwx/T/hyp-demo-x1"
    assert hanging_lines([f"Demo directory: {folder}"], 60, break_long_words=True, hang=16) == [
        "Demo directory:", folder]
    assert hanging_lines([f"Demo directory: {folder}"], 80, break_long_words=True, hang=16) == [
        f"Demo directory: {folder}"]
    # a line with no `client: ` or `at ` hangs under its own indent; a label wider than half the line does not
    assert hanging_lines(["    one two three four five six"], 16) == ["    one two", "    three four", "    five six"]
    assert hanging_lines(["  a-very-long-client-name: one two three"], 30) == [
        "  a-very-long-client-name: one", "  two three"]


def test_a_wrapped_text_never_splits_a_hyp_command() -> None:
    """Wrapped to a terminal, a message kept words together but not commands: `… replace it with hyp init (hyp
    init` / `--yes --force …`, and a copy of the command across the break ran `hyp init` alone. At every width,
    each command in the text is on one line; a path stays whole; the words are the text's words."""
    from hypaware_tui.core.fmt import wrap_line

    text = ("hyp backfill: the config is invalid: /tmp/t2/hyp/hypaware-config.json: is not valid JSON: it ends early "
            "(was it cut short?). Fix the file, or replace it with hyp init (hyp init --yes --force without a "
            "terminal; a backup is kept). Then run hyp backfill --since 2026-05-01 codex, or hyp daemon install "
            "--python /usr/bin/python3, and see hyp status; hyp query sql \"select 1\" reads it.")
    commands = ["hyp init --yes --force", "hyp backfill --since 2026-05-01 codex",
                "hyp daemon install --python /usr/bin/python3", "hyp status", "hyp query sql"]
    for width in range(40, 120):
        lines = wrap_line(text, width, 0, 2)
        assert " ".join(line.strip() for line in lines) == text, width
        # (a line longer than the width holds one thing that must not break: a path, or a command longer than it)
        assert all(len(line) <= width or " " not in line.strip() or line.strip().rstrip(",") in commands
                   for line in lines), (width, lines)
        for command in commands:
            assert any(command in line for line in lines), (width, command, lines)
        assert any("/tmp/t2/hyp/hypaware-config.json:" in line for line in lines), width
