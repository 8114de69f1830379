"""Compaction memory: the peak RSS of `hyp cache compact` on one partition made of many part files.

    python benchmarks/bench_compact.py [--files 64] [--rows 60000] [--text 2000] [--dupes 0.02] [--repeat 3]

The daemon writes one part file per flush into today's partition and compacts it every 64 flushes
(storage.md §8 reads the whole partition), so a heavy day's partition is the largest thing hyp ever holds in
memory at once. This writes `--rows` rows (texts of ~`--text` characters, words drawn at random, so they
compress like prose) as `--files` part files of one partition, `--dupes` of them written twice, into a
temporary HYP_HOME, and reports, as the best of `--repeat` runs each on a fresh copy: the wall time and the peak
RSS of `hyp cache compact --json`, the peak RSS of `hyp cache status --json` on the same home (what the
process costs before it reads a row), the uncompressed size of the rows, and the peak over the baseline per
row and as a multiple of that size. JSON on stdout, a short table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from bench_import import HYP, best, run_timed, warm_bytecode, write_config  # noqa: E402

WORDS = ("the a of to in is that for it as with was on be by this are from or an at not which have but "
         "def return self import class if else None True False print value result error file path line "
         "data row column query session message tool call output test assert config").split()


def text(rng: random.Random, mean: int) -> str:
    n = max(1, int(rng.expovariate(1 / mean)))
    out: list[str] = []
    size = 0
    while size < n:
        w = rng.choice(WORDS) if rng.random() > 0.1 else f"{rng.getrandbits(40):x}"
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def build(hyp_home: str, files: int, rows: int, mean_text: int, dupes: float) -> int:
    """One partition (claude, 2026-11-20) of `files` part files. Returns the rows' uncompressed size (bytes of
    their strings)."""
    from hypaware_tui.core.paths import Layout
    from hypaware_tui.core.schema import frame_from_rows
    from hypaware_tui.core.storage import Storage

    rng = random.Random(7)
    layout = Layout(__import__("pathlib").Path(hyp_home))
    storage = Storage(layout)
    base_us = 1_795_600_000_000_000  # 2026-11-20T...Z
    per_file = rows // files
    size = 0
    written: list[dict] = []
    try:
        pdir = layout.partition_dir("claude", "2026-11-20")
        for f in range(files):
            batch = []
            for i in range(per_file):
                k = f * per_file + i
                mid = f"m{k:08d}"
                t = base_us + k * 1_000_000
                body = text(rng, mean_text)
                row = {
                    "schema_version": 1, "session_id": f"s{k % 40}", "conversation_id": f"s{k % 40}",
                    "provider": "anthropic", "conversation_started_at": base_us, "conversation_source": "claude",
                    "client_name": "claude", "message_id": mid, "previous_message_id": "[]", "message_index": k,
                    "message_created_at": t, "role": "assistant" if k % 2 else "user", "part_id": f"{mid}#0",
                    "part_index": 0, "part_type": "text", "content_text": body,
                    "attributes": '{"gateway":{"identity_source":"native"}}', "source_path_hash": "0123456789abcdef",
                    "source_offset": k * 1000, "record_format": "claude-jsonl", "date": "2026-11-20",
                }
                size += sum(len(v) for v in row.values() if isinstance(v, str))
                batch.append(row)
            if written and dupes:  # rows an earlier file has too (as two writers without a lock would leave)
                batch.extend(rng.sample(written, min(len(written), int(per_file * dupes))))
            storage._write_part(pdir, frame_from_rows(batch))
            written.extend(batch[:per_file])
    finally:
        storage.close()
    return size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=64)
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--text", type=int, default=2000, help="mean content_text length")
    ap.add_argument("--dupes", type=float, default=0.02, help="share of each file's rows repeated from earlier")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--build", help=argparse.SUPPRESS)  # (internal: build the template in this HYP_HOME)
    args = ap.parse_args()
    if args.build:
        print(build(args.build, args.files, args.rows, args.text, args.dupes))
        return

    base = tempfile.mkdtemp(prefix="hyp-bench-compact-")
    try:
        template = os.path.join(base, "template")
        write_config(template)
        # (built by a child process: a child's peak RSS as wait4 reports it starts from its parent's size at the
        # fork, so the process that measures stays small)
        size = int(subprocess.run(
            [sys.executable, __file__, "--build", template, "--files", str(args.files), "--rows", str(args.rows),
             "--text", str(args.text), "--dupes", str(args.dupes)],
            check=True, capture_output=True, text=True).stdout)
        hyp_home = os.path.join(base, "hyp")
        env = dict(os.environ, HYP_HOME=hyp_home, HOME=os.path.join(base, "home"), NO_COLOR="1")
        for var in ("HYP_DEBUG", "PYTHONDONTWRITEBYTECODE", "HYP_FAULT"):
            env.pop(var, None)
        env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(base, "pycache"))
        warm_bytecode(env)
        runs, statuses = [], []
        for _ in range(max(1, args.repeat)):
            shutil.rmtree(hyp_home, ignore_errors=True)
            shutil.copytree(template, hyp_home)
            statuses.append(run_timed([*HYP, "cache", "status", "--json"], env, base))
            runs.append(run_timed([*HYP, "cache", "compact", "--json"], env, base))
        run = best(runs)
        doc = json.loads(run.out)
        baseline = min(s.rss_mib for s in statuses)
        peak = max(r.rss_mib for r in runs)
        result = {
            "files": args.files, "rows": args.rows, "text": args.text, "dupes": args.dupes,
            "rows_uncompressed_mib": round(size / 2**20, 1),
            "bytes_before_mib": round(doc["bytes_before"] / 2**20, 1),
            "bytes_after_mib": round(doc["bytes_after"] / 2**20, 1),
            "duplicates_removed": doc["duplicates_removed"],
            "compact_s": round(run.wall, 2), "compact_cpu_s": round(run.cpu, 2),
            "peak_rss_mib": round(peak, 1), "baseline_rss_mib": round(baseline, 1),
            "kib_per_row_over_baseline": round((peak - baseline) * 1024 / args.rows, 2),
            "peak_over_baseline_per_uncompressed": round((peak - baseline) * 2**20 / size, 2),
        }
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=2))
    sys.stderr.write(
        f"{args.files} files, {args.rows} rows, {result['rows_uncompressed_mib']} MiB of strings "
        f"({result['bytes_before_mib']} MiB on disk -> {result['bytes_after_mib']} MiB, "
        f"{result['duplicates_removed']} duplicates)\n"
        f"  compact            {result['compact_s']} s (cpu {result['compact_cpu_s']})\n"
        f"  peak RSS           {result['peak_rss_mib']} MiB (process baseline {result['baseline_rss_mib']} MiB)\n"
        f"  over the baseline  {result['kib_per_row_over_baseline']} KiB a row, "
        f"{result['peak_over_baseline_per_uncompressed']}x the rows' uncompressed size\n")


if __name__ == "__main__":
    main()
