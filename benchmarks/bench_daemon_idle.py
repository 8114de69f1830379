"""Idle cost of the capture daemon: CPU (% of one core) and memory while nothing changes.

    python benchmarks/bench_daemon_idle.py [--seconds 60] [--sessions 40] [--history-mb 0] [--polling] [--json]

Builds a small isolated home (Claude Code transcripts, a HYP_HOME with a config; with `--history-mb N`, also
N MB of realistic Claude Code and Codex history from gen_corpus.py over the last 100 days, both clients
enabled, so the daemon's catch-up imports that much before it goes idle), runs
`python -m hypaware_tui daemon run` on it, waits until it reports `running` and its catch-up is done, lets it
settle for 5 s, then samples /proc/<pid>/stat (utime + stime) and /proc/<pid>/status (VmRSS, VmHWM) over the
idle period. Targets (daemon.md): < 1% of one core, < 150 MiB RSS. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from gen_corpus import generate  # noqa: E402
from test_daemon_support import Home, session_text  # noqa: E402

from hypaware_tui.core.daemon.capture import record_capture_start  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """utime + stime of the process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5), after "pid (comm)"


def mem_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[key] = int(value.split()[0])
    return out


def wakeups(pid: int) -> int:
    """How many times the process's threads went to sleep so far (voluntary context switches, all threads): each
    is a wakeup when idle, which keeps a laptop's CPU out of its deep sleep states."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as fh:
                for line in fh:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except OSError:  # (a thread that ended meanwhile)
            pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="idle period measured (default 60)")
    ap.add_argument("--sessions", type=int, default=40, help="transcript files in the home (default 40)")
    ap.add_argument("--history-mb", type=float, default=0.0,
                    help="also write this many MB of realistic Claude Code + Codex history for the catch-up")
    ap.add_argument("--polling", action="store_true", help="force polling mode (HYP_NO_WATCHFILES=1)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="hyp-bench-idle-"))
    clients = {"claude": True, "codex": True} if args.history_mb > 0 else None
    home = Home(base, retention_days=120, clients=clients)
    history: dict[str, int] = {}
    if args.history_mb > 0:
        # gen_corpus writes base/home/.claude and base/home/.codex: the home's own client folders
        history = generate(str(base), args.history_mb, now=datetime.now(UTC) - timedelta(hours=3))
    start = datetime.now(UTC) - timedelta(hours=2)
    for i in range(args.sessions):
        sid = f"{i:08x}-0000-4000-8000-{i:012x}"
        home.session(sid).write_text(session_text(sid, 60, start + timedelta(minutes=i)))
    # an old capture start, so the catch-up imports this history (memo and caches warm, as after setup)
    record_capture_start(home.layout, list(clients or ["claude"]), 0)
    env = {"HYP_NO_WATCHFILES": "1"} if args.polling else {}
    proc = home.spawn_daemon(extra_env=env)
    try:
        st = home.wait_state("running", pid=proc.pid, timeout=120 + 10 * args.history_mb)
        time.sleep(5.0)  # settle: first retention pass, first heartbeat
        t0, c0, w0 = time.monotonic(), cpu_ticks(proc.pid), wakeups(proc.pid)
        peak_rss = 0
        samples = 0
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1.0)
            peak_rss = max(peak_rss, mem_kib(proc.pid)["VmRSS"])
            samples += 1
        t1, c1, w1 = time.monotonic(), cpu_ticks(proc.pid), wakeups(proc.pid)
        mem = mem_kib(proc.pid)
        status = home.status() or {}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    cpu_pct = 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0)
    result = {
        "watch": st.get("watch"),
        "sessions": args.sessions,
        "history_mb": round((history.get("claude_bytes", 0) + history.get("codex_bytes", 0)) / 2**20, 1),
        "idle_seconds": round(t1 - t0, 1),
        "cpu_percent_of_one_core": round(cpu_pct, 3),
        # (the sampling here wakes nothing in the daemon: it reads /proc)
        "wakeups_per_second": round((w1 - w0) / (t1 - t0), 2),
        "rss_mib": round(mem["VmRSS"] / 1024, 1),
        "peak_rss_mib_during_idle": round(peak_rss / 1024, 1),
        "hwm_rss_mib": round(mem["VmHWM"] / 1024, 1),
        # of the RSS: memory of the process's own, and pages of files it maps (mostly Polars' library, ~45 MiB
        # once its writer and reader have run: shared and clean, the kernel takes them back when it needs to)
        "rss_anon_mib": round(mem.get("RssAnon", 0) / 1024, 1),
        "rss_file_mib": round(mem.get("RssFile", 0) / 1024, 1),
        "threads": mem.get("Threads"),
        "rows_written": status.get("rows_written"),
        "targets": {"cpu_percent_of_one_core": "< 1", "rss_mib": "< 150"},
        "ok": cpu_pct < 1.0 and mem["VmRSS"] / 1024 < 150,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"watch mode        {result['watch']}")
        extra = f" + {result['history_mb']} MB of history" if history else ""
        print(f"idle period       {result['idle_seconds']} s ({args.sessions} sessions{extra}, "
              f"{result['rows_written']} rows imported at start)")
        print(f"CPU               {result['cpu_percent_of_one_core']:.3f} % of one core (target < 1 %)")
        print(f"wakeups           {result['wakeups_per_second']} a second (all threads)")
        print(f"RSS               {result['rss_mib']} MiB now, {result['peak_rss_mib_during_idle']} MiB peak "
              f"while idle, {result['hwm_rss_mib']} MiB high-water mark (target < 150 MiB)")
        print(f"RSS by kind       {result['rss_anon_mib']} MiB the process's own, {result['rss_file_mib']} MiB "
              "of mapped files (libraries' code)")
        print(f"threads           {result['threads']}")
    import shutil

    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
