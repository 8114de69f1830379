"""Peak memory of `hyp backfill claude` on one large Claude Code transcript (issue 3: memory stays flat).

    python benchmarks/bench_large_file.py [--mb 500] [--compare-mb 50] [--keep DIR]

Generates a single ~N MB transcript (streamed assistant lines with tool calls, large tool results, thinking,
file-history snapshots) in a temp dir, runs `hyp backfill claude --json` in a subprocess with HOME,
HYP_HOME and CLAUDE_CONFIG_DIR pointing there, and reports the child's peak RSS (ru_maxrss from wait4), the
wall time and the rows written. With `--compare-mb`, a smaller file is measured the same way first, so
the two peaks show whether memory grows with the size of one file. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

CHUNK = ("    value_{i} = compute(state, offset, {i}) # checkpoint row partition session\n" * 40)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def generate(path: str, mb: float) -> int:
    """Write one transcript of about `mb` MB. Returns the number of lines."""
    target = int(mb * 1_000_000)
    start = datetime.now(UTC) - timedelta(days=20)
    sid = "5f0c2d9e-1b7a-4c55-9e1e-3d2f8a7b6c01"
    base = {"sessionId": sid, "cwd": "/home/ada/src/hyp", "version": "2.0.14", "gitBranch": "main",
            "userType": "external", "entrypoint": "cli"}
    written = lines = 0
    i = 0
    prev = None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            t = start + timedelta(seconds=i * 3)
            u, a1, a2, tr = f"u-{i}", f"a-{i}-1", f"a-{i}-2", f"r-{i}"
            big = CHUNK.format(i=i) * (1 + i % 4)  # 3-12 kB tool results
            recs = [
                {**base, "type": "user", "uuid": u, "parentUuid": prev, "timestamp": _iso(t),
                 "message": {"role": "user", "content": f"Please fix the failing test number {i} in the parser."}},
                # one API response streamed over two lines (thinking, then a tool call)
                {**base, "type": "assistant", "uuid": a1, "parentUuid": u, "requestId": f"req_{i}",
                 "timestamp": _iso(t + timedelta(milliseconds=900)),
                 "message": {"id": f"msg_{i}", "role": "assistant", "model": "claude-sonnet-4-5",
                             "content": [{"type": "thinking", "thinking": "Look at the reader first. " * 8,
                                          "signature": "c2ln" * 40}],
                             "usage": {"input_tokens": 1200 + i % 50, "cache_read_input_tokens": 30000,
                                       "output_tokens": 40}}},
                {**base, "type": "assistant", "uuid": a2, "parentUuid": a1, "requestId": f"req_{i}",
                 "timestamp": _iso(t + timedelta(milliseconds=1500)),
                 "message": {"id": f"msg_{i}", "role": "assistant", "model": "claude-sonnet-4-5",
                             "content": [{"type": "tool_use", "id": f"toolu_{i}", "name": "Read",
                                          "input": {"file_path": f"/home/ada/src/hyp/mod_{i % 97}.py"}}],
                             "stop_reason": "tool_use",
                             "usage": {"input_tokens": 1200 + i % 50, "cache_read_input_tokens": 30000,
                                       "output_tokens": 160}}},
                {**base, "type": "user", "uuid": tr, "parentUuid": a2, "timestamp": _iso(t + timedelta(seconds=2)),
                 "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}",
                                                          "content": big}]}},
            ]
            if i % 10 == 0:
                recs.append({"type": "file-history-snapshot", "messageId": u, "snapshot": {"files": {}}})
            for r in recs:
                line = json.dumps(r, separators=(",", ":")) + "\n"
                fh.write(line)
                written += len(line)
                lines += 1
            prev = tr
            i += 1
    return lines


def peak_rss_of(cmd: list[str], env: dict[str, str]) -> tuple[int, float, bytes, int]:
    """Run `cmd`, return (peak RSS in KiB of that child, seconds, stdout, exit code) using wait4."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss, time.perf_counter() - t, out, proc.returncode


def run_one(base: str, mb: float) -> dict:
    home = os.path.join(base, f"home-{mb:g}")
    hyp = os.path.join(base, f"hyp-{mb:g}")
    path = os.path.join(home, ".claude", "projects", "-home-ada-src-hyp", "5f0c2d9e.jsonl")
    t = time.perf_counter()
    lines = generate(path, mb)
    gen_s = time.perf_counter() - t
    os.makedirs(hyp, mode=0o700, exist_ok=True)
    with open(os.path.join(hyp, "hypaware-config.json"), "w") as fh:
        json.dump({"version": 1, "clients": {"claude": {"enabled": True}}, "retention_days": 0,
                   "capture": {"enabled": False}}, fh)
    env = dict(os.environ, HOME=home, HYP_HOME=hyp, CLAUDE_CONFIG_DIR=os.path.join(home, ".claude"),
               CODEX_HOME=os.path.join(home, ".codex"), NO_COLOR="1")
    env.pop("HYP_DEBUG", None)
    cmd = [sys.executable, "-m", "hypaware_tui", "backfill", "claude", "--json"]
    rss_kib, secs, out, rc = peak_rss_of(cmd, env)
    if rc != 0:
        raise SystemExit(f"hyp backfill failed with exit code {rc}")
    data = json.loads(out)
    size = os.path.getsize(path)
    rerun_rss, rerun_s, out2, _ = peak_rss_of(cmd, env)
    return {
        "file_mb": round(size / 1e6, 1),
        "lines": lines,
        "generate_s": round(gen_s, 1),
        "import_s": round(secs, 1),
        "mb_per_s": round(size / 1e6 / secs, 1),
        "rows_written": data["providers"][0]["rows_written"],
        "peak_rss_mib": round(rss_kib / 1024, 1),
        "rerun_s": round(rerun_s, 2),
        "rerun_rows_written": json.loads(out2)["providers"][0]["rows_written"],
        "rerun_peak_rss_mib": round(rerun_rss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=500)
    ap.add_argument("--compare-mb", type=float, default=0, help="also measure a smaller file first")
    ap.add_argument("--keep", help="work in this directory and keep it")
    args = ap.parse_args()
    base = args.keep or tempfile.mkdtemp(prefix="hyp-large-")
    try:
        results = []
        for mb in ([args.compare_mb] if args.compare_mb else []) + [args.mb]:
            r = run_one(base, mb)
            results.append(r)
            sys.stderr.write(f"{r}\n")
        print(json.dumps(results, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
