"""Many small sessions: the first import and the rerun of a history made of thousands of small files.

    python benchmarks/bench_many_files.py [--sessions 20000] [--days 270] [--repeat 3]
                                          [--ccusage DIR_WITH_node_modules] [--keep DIR]

Real histories are thousands of short Claude Code sessions spread over months. There the cost is per file and
per partition, not per byte: every file is opened, its head hashed and its checkpoint written, and a commit of
history spread over many days touches one partition per day. `bench_import.py` (372 files) does not show it.

Writes `--sessions` sessions of 4 lines each (~1 KB) under `--days` days into a temporary HOME (`--keep DIR`
keeps and reuses it), then reports, each as the best of `--repeat` runs: the first `hyp backfill --json` into a
fresh HYP_HOME (wall, CPU of every process, rows, part files written, peak RSS) and the rerun with nothing new;
and `ccusage daily --json --offline` on the same files when installed (see bench_import.py). JSON on stdout,
a short table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(__file__))
from bench_import import HYP, best, rows_written, run_timed, warm_bytecode, write_config  # noqa: E402

PROJECTS = 200
START = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def generate(home: str, sessions: int, days: int) -> int:
    """`sessions` files of 4 lines (user, assistant, user, assistant), one per session, day `i % days`.
    Returns the bytes written."""
    total = 0
    for i in range(sessions):
        project = os.path.join(home, ".claude", "projects", f"-home-dev-proj-{i % PROJECTS}")
        os.makedirs(project, exist_ok=True)
        sid = f"{i:08x}-0000-4000-8000-000000000000"
        t0 = START + timedelta(days=i % days, seconds=i)
        lines = []
        for k in range(4):
            role = "user" if k % 2 == 0 else "assistant"
            ts = (t0 + timedelta(seconds=k)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            msg: dict = {"role": role, "content": f"message {k} of session {i}"}
            if role == "assistant":
                msg.update(model="claude-sonnet-4-5", id=f"msg_{i:08x}_{k}",
                           usage={"input_tokens": 10 + k, "output_tokens": 20 + k})
            lines.append(json.dumps({"type": role, "sessionId": sid, "uuid": f"{sid[:-1]}{k}", "timestamp": ts,
                                     "cwd": "/home/dev/proj", "version": "2.0.14", "message": msg}))
        data = ("\n".join(lines) + "\n").encode()
        with open(os.path.join(project, f"{sid}.jsonl"), "wb") as fh:
            fh.write(data)
        total += len(data)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=270)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ccusage", default=os.environ.get("CCUSAGE_DIR", "/tmp/ccu"),
                    help="directory holding node_modules/.bin/ccusage")
    ap.add_argument("--keep", help="generate the sessions here, and reuse them on the next run")
    args = ap.parse_args()
    repeat = max(1, args.repeat)

    base = os.path.abspath(args.keep or tempfile.mkdtemp(prefix="hyp-many-"))
    home = os.path.join(base, "home")
    marker = os.path.join(base, f"generated-{args.sessions}-{args.days}")
    if not os.path.exists(marker):
        shutil.rmtree(home, ignore_errors=True)
        size = generate(home, args.sessions, args.days)
        with open(marker, "w") as fh:
            fh.write(str(size))
    size = int(open(marker).read())
    hyp_home = os.path.join(base, "hyp")
    tmp = tempfile.mkdtemp(prefix="hyp-many-run-")
    env = dict(os.environ, HOME=home, HYP_HOME=hyp_home, CLAUDE_CONFIG_DIR=os.path.join(home, ".claude"),
               CODEX_HOME=os.path.join(home, ".codex"), NO_COLOR="1")
    for var in ("HYP_DEBUG", "PYTHONDONTWRITEBYTECODE", "HYP_FAULT", "HYP_WORKERS"):
        env.pop(var, None)
    env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(base, "pycache"))
    cmd = [*HYP, "backfill", "--json"]
    warm_bytecode(env)

    imports = []
    for _ in range(repeat):
        shutil.rmtree(hyp_home, ignore_errors=True)
        write_config(hyp_home)
        imports.append(run_timed(cmd, env, tmp))
    imp = best(imports)
    parts = sum(1 for _, _, names in os.walk(hyp_home) for n in names if n.endswith(".parquet"))
    reruns = [run_timed(cmd, env, tmp) for _ in range(repeat)]
    assert all(rows_written(r) == 0 for r in reruns), "a rerun wrote rows"
    re = best(reruns)
    result = {"sessions": args.sessions, "days": args.days, "bytes": size, "cpus": os.cpu_count(),
              "load_before": round(os.getloadavg()[0], 2), "import_s": round(imp.wall, 2),
              "import_cpu_s": round(imp.cpu, 2), "rows": rows_written(imp), "part_files": parts,
              "peak_rss_mib": round(max(r.rss_mib for r in imports), 1),
              "peak_tree_rss_mib": round(max(r.tree_rss_mib for r in imports), 1),
              "rerun_s": round(re.wall, 3), "rerun_cpu_s": round(re.cpu, 3)}
    bin_dir = os.path.join(args.ccusage, "node_modules", ".bin")
    if os.path.exists(os.path.join(bin_dir, "ccusage")):
        cenv = dict(env, PATH=bin_dir + os.pathsep + env.get("PATH", ""))
        cc = best([run_timed(["ccusage", "daily", "--json", "--offline"], cenv, tmp) for _ in range(repeat)])
        result.update(ccusage_s=round(cc.wall, 2), import_over_ccusage=round(imp.wall / cc.wall, 2))
    print(json.dumps(result, indent=2))
    sys.stderr.write(
        f"\n{args.sessions:,} sessions over {args.days} days ({size / 1e6:.1f} MB), {os.cpu_count()} CPUs, "
        f"best of {repeat}\n"
        f"  first import   {imp.wall:.2f} s (cpu {imp.cpu:.2f})   {result['rows']:,} rows in {parts:,} part files, "
        f"peak RSS {result['peak_rss_mib']:.0f} MiB ({result['peak_tree_rss_mib']:.0f} MiB all processes)\n"
        f"  rerun          {re.wall:.2f} s (cpu {re.cpu:.2f})\n"
        + (f"  ccusage        {result['ccusage_s']:.2f} s   import / ccusage {result['import_over_ccusage']:.2f}x\n"
           if "ccusage_s" in result else "")
    )
    shutil.rmtree(tmp, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
