"""The fast inventory (core/inventory.py, wizard.md §5): detection, totals, in-window figures computed in
memory, bounded reads."""

from __future__ import annotations

import os

import pytest
from backfill_fakes import FakeImporter, fakes, write_session

from hypaware_tui.core.checkpoints import path_hash
from hypaware_tui.core.inventory import build_inventory, client_figures, figures, older_than
from hypaware_tui.core.timeutil import parse_iso_us
from hypaware_tui.importers import base as base_mod


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    return {"HOME": str(home), "FAKE_CLAUDE_ROOT": str(home / "claude"), "FAKE_CODEX_ROOT": str(home / "codex")}


def fixture_files(env):
    root = env["FAKE_CLAUDE_ROOT"]
    write_session(os.path.join(root, "p", "a.jsonl"), "a", ["2026-04-01T10:00:00Z", "2026-04-03T10:00:00Z"])
    write_session(os.path.join(root, "p", "b.jsonl"), "b", ["2026-05-01T10:00:00Z", "2026-05-10T10:00:00Z"])
    write_session(os.path.join(root, "p", "agent-1.jsonl"), "b", ["2026-05-02T10:00:00Z", "2026-05-02T11:00:00Z"])
    write_session(os.path.join(root, "q", "c.jsonl"), "c", ["2026-06-01T10:00:00Z", "2026-06-02T10:00:00Z"])


def test_detection_reasons(env):
    os.makedirs(env["FAKE_CODEX_ROOT"])
    inv = build_inventory(["claude", "codex"], env=env, importers=fakes())
    claude, codex = inv["claude"], inv["codex"]
    assert not claude.detected
    assert claude.reason == f"not found: {env['FAKE_CLAUDE_ROOT']} does not exist"
    assert claude.root == env["FAKE_CLAUDE_ROOT"]
    assert codex.detected and codex.reason is None and codex.root == env["FAKE_CODEX_ROOT"]
    assert client_figures(codex).files == 0  # detected, empty


def test_totals_and_in_window_figures(env):
    fixture_files(env)
    inv = build_inventory(["claude"], env=env, importers=fakes())
    ci = inv["claude"]
    total = client_figures(ci)
    sizes = sum(os.path.getsize(f.file.path) for f in ci.files)
    assert (total.files, total.sessions, total.bytes) == (4, 3, sizes)  # agent-1 is a file, not a session
    assert total.oldest_us == parse_iso_us("2026-04-01T10:00:00Z")
    assert total.newest_us == parse_iso_us("2026-06-02T10:00:00Z")

    since = parse_iso_us("2026-05-05T00:00:00Z")
    win = client_figures(ci, since)
    # b (newest 05-10) and c are in; a and agent-1 (newest 05-02) are not
    assert (win.files, win.sessions) == (2, 2)
    assert win.oldest_us == since  # clamped to the window: never a date outside it
    assert win.newest_us == total.newest_us

    until = parse_iso_us("2026-05-20T00:00:00Z")
    win = client_figures(ci, since, until)
    assert (win.files, win.sessions, win.newest_us) == (1, 1, parse_iso_us("2026-05-10T10:00:00Z"))
    win = client_figures(ci, since, parse_iso_us("2026-06-01T12:00:00Z"))
    assert (win.files, win.newest_us) == (2, parse_iso_us("2026-06-01T12:00:00Z"))  # clamped to until

    old = older_than(ci, since)
    assert (old.files, old.sessions) == (2, 1)


def test_a_file_whose_last_stamp_is_the_window_start_is_in_the_window(env):
    """The window includes its start (`since_us <= message_created_at`): a file whose newest stamp is exactly
    `since` (a line at 00:00:00 UTC of the cut date) has a row the import writes, so it is in the window, not
    "older, not imported" (which also keeps the import from reading it: `before_window`)."""
    fixture_files(env)
    ci = build_inventory(["claude"], env=env, importers=fakes())["claude"]
    since = parse_iso_us("2026-05-02T11:00:00Z")  # agent-1's last stamp
    win = client_figures(ci, since)
    assert (win.files, win.sessions, win.oldest_us) == (3, 2, since)  # b, agent-1 and c
    assert (older_than(ci, since).files, older_than(ci, since).sessions) == (1, 1)  # a alone
    assert (older_than(ci, since + 1).files, client_figures(ci, since + 1).files) == (2, 2)


def test_files_stamped_a_day_past_now_are_in_the_window_the_import_keeps_them(env):
    """A history stamped two days ahead of the clock (a clock set back): the import keeps lines stamped more
    than FUTURE_SKEW_US after its start whatever `until` says (Window.beyond_until), but the window's figures
    dropped the file (its oldest stamp is after `until` = now): `hyp backfill plan` said 0 files."""
    fixture_files(env)
    root = env["FAKE_CLAUDE_ROOT"]
    write_session(os.path.join(root, "f", "ahead.jsonl"), "f", ["2026-06-12T10:00:00Z", "2026-06-12T11:00:00Z"])
    write_session(os.path.join(root, "f", "soon.jsonl"), "g", ["2026-06-10T13:00:00Z", "2026-06-10T14:00:00Z"])
    inv = build_inventory(["claude"], env=env, importers=fakes())
    ci = inv["claude"]
    now = parse_iso_us("2026-06-10T12:00:00Z")
    since = parse_iso_us("2026-05-05T00:00:00Z")
    assert client_figures(ci, since, now).files == 2  # b and c; without `beyond_us` as before
    win = client_figures(ci, since, now, beyond_us=now + base_mod.FUTURE_SKEW_US)
    # ahead (2 days later) is imported and counted; soon (an hour later, within the skew) waits for its time
    assert (win.files, win.sessions) == (3, 3)
    assert win.newest_us == parse_iso_us("2026-06-12T11:00:00Z")  # (not clamped to `until`: it is imported)
    assert figures(inv, since, now, beyond_us=now + base_mod.FUTURE_SKEW_US)["claude"]["in_window"]["files"] == 3


def test_figures_json_shape_and_no_rescan(env, monkeypatch):
    fixture_files(env)
    imps = fakes()
    calls = {"discover": 0, "inventory": 0}
    real_discover, real_inv = FakeImporter.discover, FakeImporter.inventory_file

    def discover(self, roots):
        calls["discover"] += 1
        return real_discover(self, roots)

    def inventory_file(self, *a):
        calls["inventory"] += 1
        return real_inv(self, *a)

    monkeypatch.setattr(FakeImporter, "discover", discover)
    monkeypatch.setattr(FakeImporter, "inventory_file", inventory_file)
    inv = build_inventory(["claude", "codex"], env=env, importers=imps)
    assert calls == {"discover": 1, "inventory": 4}
    previews = [figures(inv, parse_iso_us(f"2026-0{m}-01T00:00:00Z")) for m in (3, 4, 5, 6, 7)]
    assert calls == {"discover": 1, "inventory": 4}  # five previews, no rescan
    assert [p["claude"]["in_window"]["files"] for p in previews] == [4, 4, 3, 1, 0]
    entry = previews[2]["claude"]
    assert set(entry) == {"client", "name", "detected", "reason", "root", "total", "in_window"}
    assert set(entry["in_window"]) == {"files", "sessions", "bytes", "oldest", "newest"}
    assert entry["total"]["oldest"] == "2026-04-01T10:00:00Z"
    assert previews[2]["codex"]["detected"] is False


def test_reads_only_head_and_tail(env, monkeypatch):
    root = env["FAKE_CLAUDE_ROOT"]
    path = os.path.join(root, "big.jsonl")
    write_session(path, "big", [f"2026-05-01T10:{m:02d}:00Z" for m in range(60)], text="y" * 200_000)
    size = os.path.getsize(path)
    assert size > 10_000_000
    read = {"bytes": 0}
    real_open = open

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            data = self.fh.read(n)
            read["bytes"] += len(data)
            return data

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(base_mod, "open", lambda *a, **k: Counting(real_open(*a, **k)), raising=False)
    inv = build_inventory(["claude"], env=env, importers=fakes())
    fi = inv["claude"].files[0]
    assert read["bytes"] <= 2 * base_mod.HEAD_TAIL_BYTES
    # lines are 200 kB: the head window holds the first line, the tail window the last complete one
    assert fi.first_ts == parse_iso_us("2026-05-01T10:00:00Z")
    assert fi.last_ts == parse_iso_us("2026-05-01T10:59:00Z")


def test_progress_callback_and_failed_files(env, monkeypatch):
    fixture_files(env)
    real_inv = FakeImporter.inventory_file

    def inventory_file(self, file, size, mtime_ns):
        if file.path.endswith("c.jsonl"):
            raise ValueError("odd file")
        return real_inv(self, file, size, mtime_ns)

    monkeypatch.setattr(FakeImporter, "inventory_file", inventory_file)
    seen = []
    inv = build_inventory(["claude"], env=env, importers=fakes(), progress=lambda c, n, t: seen.append((c, n, t)))
    ci = inv["claude"]
    assert len(ci.files) == 3 and len(ci.failed) == 1
    c_path = os.path.realpath(os.path.join(env["FAKE_CLAUDE_ROOT"], "q", "c.jsonl"))
    assert "odd file" in ci.failed[0].message and ci.failed[0].where == path_hash(c_path)
    assert seen[0] == ("claude", 0, 4) and seen[-1] == ("claude", 4, 4)


def test_missing_importer_module_is_reported_not_raised(env):
    class Registry(dict):
        def __getitem__(self, k):
            raise ModuleNotFoundError(f"No module named 'hypaware_tui.importers.{k}'")

    inv = build_inventory(["codex"], env=env, importers=Registry())
    assert not inv["codex"].detected and "importer unavailable" in inv["codex"].reason


def test_scanned_path_hashes_is_complete_despite_a_file_it_cannot_read(tmp_path):
    """A transcript that is a link to nothing (a drive not mounted) or a link loop is reported, but hides no
    other file: one such link stopped `hyp cache prune` from forgetting any vanished file of its client. The
    file behind the link keeps its own entry."""
    from hypaware_tui.core.inventory import scanned_path_hashes

    claude = tmp_path / "claude"
    sessions = tmp_path / "codex" / "sessions" / "2026" / "01" / "01"
    kept = claude / "projects" / "-a" / "s1.jsonl"
    rollout = sessions / "rollout-2026-01-01T10-00-00-019b0000-0000-7000-8000-000000000001.jsonl"
    for f in (kept, rollout):
        f.parent.mkdir(parents=True)
        f.write_text("{}\n")
    away = tmp_path / "drive" / "s2.jsonl"
    (kept.parent / "s2.jsonl").symlink_to(away)
    (kept.parent / "s3.jsonl").symlink_to(kept.parent / "s3.jsonl")  # a loop
    codex_away = tmp_path / "drive" / rollout.name.replace("01.jsonl", "02.jsonl")
    (sessions / codex_away.name).symlink_to(codex_away)
    env = {"HOME": str(tmp_path / "home"), "CLAUDE_CONFIG_DIR": str(claude), "CODEX_HOME": str(tmp_path / "codex")}
    got = scanned_path_hashes(None, env)
    real = [path_hash(os.path.realpath(p)) for p in (kept, away, kept.parent / "s3.jsonl", rollout, codex_away)]
    assert (got["claude"], got["codex"]) == (set(real[:3]), set(real[3:]))


def test_scanned_path_hashes_keeps_a_client_whose_scan_could_not_read_a_folder(tmp_path, monkeypatch):
    """storage.md §7.4: `hyp cache prune` forgets the checkpoints of vanished files only after a complete
    scan: a project folder that cannot be read for now (permissions, a disk away) keeps the client's entries
    (its transcripts were forgotten and read again from byte 0). Without a config, the defaults apply."""
    from hypaware_tui.core.config import parse_config
    from hypaware_tui.core.inventory import scanned_path_hashes

    claude = tmp_path / "claude"
    a = claude / "projects" / "-a" / "s1.jsonl"
    b = claude / "projects" / "-b" / "s2.jsonl"
    for f in (a, b):
        f.parent.mkdir(parents=True)
        f.write_text("{}\n")
    env = {"HOME": str(tmp_path / "home"), "CLAUDE_CONFIG_DIR": str(claude), "CODEX_HOME": str(tmp_path / "nocodex")}
    both = {path_hash(os.path.realpath(a)), path_hash(os.path.realpath(b))}
    config = parse_config('{"version": 1, "clients": {"claude": {"enabled": true}}, "retention_days": 0}', "c.json")
    assert scanned_path_hashes(config, env)["claude"] == both
    assert scanned_path_hashes(None, env) == {"claude": both, "codex": None}  # no config: every client, defaults

    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path) == str(b.parent):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert scanned_path_hashes(config, env)["claude"] is None
    assert scanned_path_hashes(None, env)["claude"] is None


@pytest.mark.parametrize("lines", [1, 3, 40, 4000])
def test_the_tail_scan_alone_finds_the_last_timestamp_of_the_inventory(tmp_path, lines):
    """`hyp backfill` dates a file by `tail_timestamp` (no head read): the inventory's last timestamp, for a
    file shorter than the tail window, one longer, and one whose tail starts mid-line."""
    from hypaware_tui.importers.claude import line_timestamp

    path = tmp_path / "s.jsonl"
    stamps = [f"2026-05-01T{10 + i // 3600 % 10:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(lines)]
    pad = "x" * 150
    path.write_text("".join(f'{{"timestamp": "{s}", "pad": "{pad}"}}\n' for s in stamps) + '{"type": "snapshot"}\n')
    size = path.stat().st_size
    first, last = base_mod.head_tail_timestamps(str(path), size, line_timestamp)
    assert last == parse_iso_us(stamps[-1])
    assert base_mod.tail_timestamp(str(path), size, line_timestamp) == last
    assert base_mod.tail_timestamp(str(path), size, line_timestamp, span=1000) == last


def test_the_tail_scan_further_back_finds_a_stamp_past_a_long_last_line_within_a_bound(tmp_path, monkeypatch):
    """`further`: a last message longer than the 256 KB tail (then untimestamped records) is still found, the
    scan reading 8 times further back each time; it never reads more than `TAIL_FURTHER_MAX` at once (memory
    stays bounded on a huge file), and says None past it."""
    from hypaware_tui.importers.claude import line_timestamp

    path = tmp_path / "s.jsonl"
    path.write_text('{"timestamp": "2026-05-01T10:00:00Z"}\n'
                    '{"timestamp": "2026-05-01T11:00:00Z", "text": "' + "x" * 3_000_000 + '"}\n'
                    '{"type": "last-prompt"}\n')
    size = path.stat().st_size
    assert base_mod.tail_timestamp(str(path), size, line_timestamp) is None  # (the 256 KB tail: no stamp)
    want = parse_iso_us("2026-05-01T11:00:00Z")
    assert base_mod.tail_timestamp(str(path), size, line_timestamp, further=True) == want
    reads = []
    real = base_mod._tail

    def tail(fh, size, span):
        reads.append(span)
        return real(fh, size, span)

    monkeypatch.setattr(base_mod, "_tail", tail)
    monkeypatch.setattr(base_mod, "TAIL_FURTHER_MAX", 2 * 1024 * 1024)
    assert base_mod.tail_timestamp(str(path), size, line_timestamp, further=True) is None
    assert max(reads) <= 2 * 1024 * 1024
