"""Import benchmark: one run, one corpus, every figure issue 8 asks for.

    python benchmarks/bench_import.py [--mb 250] [--corpus DIR] [--ccusage DIR_WITH_node_modules]

Reports (JSON on stdout, a table on stderr):
  floor_s          bare orjson parse of every line of every file (the floor)
  import_s, MB/s   full `hyp backfill` (claude + codex) in a fresh HYP_HOME, peak RSS of that process
  rerun_s          the same command again with nothing new
  append_s         after appending ~1 % new lines to existing files
  ccusage_s        `ccusage daily --json --offline` + `ccusage-codex daily --json --offline` on the same files
                   (when the npm packages are installed: npm install ccusage@18.0.11 @ccusage/codex@18.0.11)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import orjson

sys.path.insert(0, os.path.dirname(__file__))
from gen_corpus import append_percent, generate  # noqa: E402

HYP = [sys.executable, "-m", "hypaware_tui"]


def corpus_files(home: str) -> list[str]:
    out = []
    for root, _, names in os.walk(home):
        out += [os.path.join(root, n) for n in names if n.endswith(".jsonl")]
    return sorted(out)


def floor(files: list[str]) -> tuple[float, int, int]:
    t = time.perf_counter()
    total = lines = 0
    for path in files:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(8 * 1024 * 1024)
                if not chunk:
                    break
                # corpus files end with a newline; a chunk may cut a line: carry the remainder
                total += len(chunk)
                rest = b""
                data = chunk
                cut = data.rfind(b"\n")
                rest = data[cut + 1 :]
                for line in data[: cut + 1].split(b"\n"):
                    if line:
                        orjson.loads(line)
                        lines += 1
                if rest:
                    fh.seek(-len(rest), os.SEEK_CUR)
                    total -= len(rest)
    return time.perf_counter() - t, total, lines


def run_timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall time, peak RSS (KiB) of the child tree's largest process, stdout."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - t
    if proc.returncode not in (0,):
        sys.stderr.write(err.decode()[-2000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, rss, out.decode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=250)
    ap.add_argument("--corpus", help="reuse/generate the corpus here (default: a temp dir)")
    ap.add_argument("--ccusage", default=os.environ.get("CCUSAGE_DIR", "/tmp/ccu"),
                    help="directory holding node_modules/.bin/ccusage")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    base = args.corpus or tempfile.mkdtemp(prefix="hyp-bench-")
    home = os.path.join(base, "home")
    if not os.path.isdir(home):
        t = time.perf_counter()
        info = generate(base, args.mb)
        sys.stderr.write(f"corpus generated in {time.perf_counter() - t:.1f}s: {info}\n")
    files = corpus_files(home)
    hyp_home = os.path.join(base, "hyp")
    shutil.rmtree(hyp_home, ignore_errors=True)
    env = dict(os.environ, HOME=home, HYP_HOME=hyp_home, CLAUDE_CONFIG_DIR=os.path.join(home, ".claude"),
               CODEX_HOME=os.path.join(home, ".codex"), NO_COLOR="1")
    env.pop("HYP_DEBUG", None)
    result: dict = {"files": len(files)}

    f_s, f_bytes, f_lines = floor(files)
    result.update(floor_s=round(f_s, 2), bytes=f_bytes, lines=f_lines)

    # Retention 0 = forever, so the whole corpus is in the window.
    os.makedirs(hyp_home, exist_ok=True)
    with open(os.path.join(hyp_home, "hypaware-config.json"), "w") as fh:
        json.dump({"version": 1, "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
                   "retention_days": 0, "capture": {"enabled": False}}, fh)
    cmd = [*HYP, "backfill", "--json"]
    imp_s, rss_kib, out = run_timed(cmd, env)
    rows = sum(p["rows_written"] for p in json.loads(out)["providers"])
    result.update(import_s=round(imp_s, 2), mb_per_s=round(f_bytes / imp_s / 1e6, 1), rows=rows,
                  peak_rss_mib=round(rss_kib / 1024, 1), import_over_floor=round(imp_s / f_s, 2))

    re_s, _, out = run_timed(cmd, env)
    result.update(rerun_s=round(re_s, 3), rerun_rows=sum(p["rows_written"] for p in json.loads(out)["providers"]),
                  rerun_pct_of_import=round(100 * re_s / imp_s, 1))

    bin_dir = os.path.join(args.ccusage, "node_modules", ".bin")
    if os.path.exists(os.path.join(bin_dir, "ccusage")):
        cenv = dict(env, PATH=bin_dir + os.pathsep + env.get("PATH", ""))
        t = time.perf_counter()
        subprocess.run(["ccusage", "daily", "--json", "--offline"], env=cenv, check=True, capture_output=True)
        subprocess.run(["ccusage-codex", "daily", "--json", "--offline"], env=cenv, check=True,
                       capture_output=True)
        result["ccusage_s"] = round(time.perf_counter() - t, 2)
        result["import_over_ccusage"] = round(imp_s / result["ccusage_s"], 2)

    added = append_percent(base, 1.0)
    ap_s, _, out = run_timed(cmd, env)
    result.update(append_bytes=added, append_s=round(ap_s, 2), append_pct_of_import=round(100 * ap_s / imp_s, 1),
                  append_rows=sum(p["rows_written"] for p in json.loads(out)["providers"]))

    print(json.dumps(result, indent=2))
    if not args.keep and not args.corpus:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
