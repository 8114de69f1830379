"""Import benchmark: one run, one corpus, every figure issue 8 asks for.

    python benchmarks/bench_import.py [--mb 250] [--corpus DIR] [--repeat 3] [--workers N]
                                      [--ccusage DIR_WITH_node_modules] [--ccusage-repeat 1] [--keep]

Generates a Claude Code + Codex corpus of about `--mb` MB (benchmarks/gen_corpus.py; reused when `--corpus`
already holds one), then measures, each as the best of `--repeat` runs (wall and CPU time, the CPU of every
child process included):

  floor      a bare `orjson.loads` of every line of every file, in this process (the floor), measured right
             before each import; the ratio is also the median of those pairs
  import     `hyp backfill --json` into a fresh HYP_HOME with retention 0 (the whole corpus is in the window);
             MB/s, and the peak RSS of the largest process of the run and of all its processes together
             (committer and parse workers, sampled every 50 ms)
  rerun      the same command again with nothing new
  append     after appending ~1 % new lines to existing files (the corpus is truncated back afterwards and
             HYP_HOME restored from a snapshot taken after the import, so every repeat sees the same state)
  ccusage    `ccusage daily --json --offline` + `ccusage-codex daily --json --offline` on the same files, when
             installed (npm install ccusage@18.0.11 @ccusage/codex@18.0.11; --ccusage points at that folder),
             run right after each import; the ratio is also the median of those pairs

Prints a table with the ratios and the issue 8 targets on stderr, and the figures as JSON on stdout. The
machine's CPU count and load average are part of the report: on a shared machine, compare ratios measured
in the same run. The child processes run without PYTHONDONTWRITEBYTECODE, with their bytecode cache under
the benchmark directory (an installed hyp has one; nothing is written into the source tree).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import orjson

sys.path.insert(0, os.path.dirname(__file__))
from gen_corpus import append_percent, generate  # noqa: E402

HYP = [sys.executable, "-m", "hypaware_tui"]
TARGETS = {"import_over_floor": 4.0, "import_over_ccusage": 0.5, "peak_rss_mib": 600.0,
           "rerun_pct_of_import": 5.0, "rerun_s": 1.0, "append_pct_of_import": 10.0}


@dataclass
class Run:
    wall: float
    cpu: float  # user + system of the process and all its children
    rss_mib: float  # peak RSS of the largest process of the tree
    tree_rss_mib: float  # peak of the summed RSS of the tree (sampled every 50 ms from /proc)
    out: str


def corpus_files(home: str) -> list[str]:
    out = []
    for root, _, names in os.walk(home):
        out += [os.path.join(root, n) for n in names if n.endswith(".jsonl")]
    return sorted(out)


def floor(files: list[str]) -> tuple[float, float, int, int]:
    """(wall, cpu, bytes, lines) of parsing every complete line with orjson, read in 8 MiB chunks."""
    t, c = time.perf_counter(), time.process_time()
    total = lines = 0
    for path in files:
        with open(path, "rb") as fh:
            rest = b""
            while True:
                chunk = fh.read(8 * 1024 * 1024)
                if not chunk:
                    break
                data = rest + chunk
                cut = data.rfind(b"\n")
                rest = data[cut + 1 :]
                for line in data[: cut + 1].split(b"\n"):
                    if line:
                        orjson.loads(line)
                        lines += 1
                total += cut + 1
    return time.perf_counter() - t, time.process_time() - c, total, lines


def run_timed(cmd: list[str], env: dict[str, str], tmp: str) -> Run:
    """Run `cmd`; wall time, CPU and peak RSS of its whole process tree (wait4), stdout."""
    out_path, err_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        peak = [0]
        sampler = threading.Thread(target=_sample_tree_rss, args=(proc.pid, peak), daemon=True)
        sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(open(err_path, encoding="utf-8", errors="replace").read()[-2000:])
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}")
    return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, peak[0] / 1024,
               open(out_path, encoding="utf-8").read())


def _tree_rss_kib(root: int) -> int | None:
    """Summed VmRSS (KiB) of `root` and its descendants, from /proc; None once `root` is gone."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as fh:
                text = fh.read()
        except OSError:
            continue
        ppid = vm = 0
        for line in text.split(b"\n"):
            if line.startswith(b"PPid:"):
                ppid = int(line.split()[1])
            elif line.startswith(b"VmRSS:"):
                vm = int(line.split()[1])
        children.setdefault(ppid, []).append(int(name))
        rss[int(name)] = vm
    if root not in rss:
        return None
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return total


def _sample_tree_rss(root: int, peak: list[int]) -> None:
    while True:
        kib = _tree_rss_kib(root)
        if kib is None:
            return
        peak[0] = max(peak[0], kib)
        time.sleep(0.05)


def warm_bytecode(env: dict[str, str]) -> None:
    """Fill the bytecode cache the runs use (PYTHONPYCACHEPREFIX) before timing anything: an installed hyp has
    its modules and Polars' compiled already, and a first run that compiles them would count ~1.5 s more."""
    subprocess.run([sys.executable, "-c", "import polars, hypaware_tui.cli.app, hypaware_tui.core.runner, "
                    "hypaware_tui.importers.claude, hypaware_tui.importers.codex"], env=env, check=True)


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall)


def rows_written(run: Run) -> int:
    return sum(p["rows_written"] for p in json.loads(run.out)["providers"])


def write_config(hyp_home: str) -> None:
    os.makedirs(hyp_home, exist_ok=True)
    with open(os.path.join(hyp_home, "hypaware-config.json"), "w") as fh:
        json.dump({"version": 1, "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
                   "retention_days": 0, "capture": {"enabled": False}}, fh)  # retention 0: everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=250)
    ap.add_argument("--corpus", help="reuse/generate the corpus here (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    ap.add_argument("--workers", help="HYP_WORKERS for the imports (default: hyp's own default)")
    ap.add_argument("--ccusage", default=os.environ.get("CCUSAGE_DIR", "/tmp/ccu"),
                    help="directory holding node_modules/.bin/ccusage")
    ap.add_argument("--ccusage-repeat", type=int, default=99,
                    help="ccusage runs, each right after one of the imports (default: after every import)")
    ap.add_argument("--keep", action="store_true", help="keep a generated temp corpus")
    args = ap.parse_args()
    repeat = max(1, args.repeat)

    base = os.path.abspath(args.corpus or tempfile.mkdtemp(prefix="hyp-bench-"))
    home = os.path.join(base, "home")
    if not os.path.isdir(home):
        t = time.perf_counter()
        info = generate(base, args.mb)
        sys.stderr.write(f"corpus generated in {time.perf_counter() - t:.1f}s: {info}\n")
    files = corpus_files(home)
    hyp_home = os.path.join(base, "hyp")
    snapshot = hyp_home + ".after-import"
    tmp = tempfile.mkdtemp(prefix="hyp-bench-run-")
    env = dict(os.environ, HOME=home, HYP_HOME=hyp_home, CLAUDE_CONFIG_DIR=os.path.join(home, ".claude"),
               CODEX_HOME=os.path.join(home, ".codex"), NO_COLOR="1")
    for var in ("HYP_DEBUG", "PYTHONDONTWRITEBYTECODE", "HYP_FAULT"):
        env.pop(var, None)
    env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(base, "pycache"))
    if args.workers:
        env["HYP_WORKERS"] = args.workers
    result: dict = {"files": len(files), "cpus": os.cpu_count(), "repeat": repeat,
                    "workers": env.get("HYP_WORKERS", "default"), "load_before": round(os.getloadavg()[0], 2)}
    cmd = [*HYP, "backfill", "--json"]
    warm_bytecode(env)

    # -- floor and full import (each into a fresh HYP_HOME), in pairs: a shared machine's speed drifts, so the
    #    ratio is also given as the median of the ratios of each floor and the import right after it
    bin_dir = os.path.join(args.ccusage, "node_modules", ".bin")
    has_ccusage = os.path.exists(os.path.join(bin_dir, "ccusage"))
    cenv = dict(env, PATH=bin_dir + os.pathsep + env.get("PATH", ""))
    floors, imports, cc = [], [], []
    for i in range(repeat):
        floors.append(floor(files))
        shutil.rmtree(hyp_home, ignore_errors=True)
        write_config(hyp_home)
        imports.append(run_timed(cmd, env, tmp))
        if has_ccusage and i < max(1, args.ccusage_repeat):  # right after the import: a paired ratio too
            a = run_timed(["ccusage", "daily", "--json", "--offline"], cenv, tmp)
            b = run_timed(["ccusage-codex", "daily", "--json", "--offline"], cenv, tmp)
            cc.append((a.wall + b.wall, a.cpu + b.cpu, a.wall, b.wall))
    f_wall, f_cpu, f_bytes, f_lines = min(floors)
    imp = best(imports)
    pairs = sorted(i.wall / f[0] for f, i in zip(floors, imports, strict=True))
    result.update(floor_s=round(f_wall, 2), floor_cpu_s=round(f_cpu, 2), bytes=f_bytes, lines=f_lines)
    result.update(import_s=round(imp.wall, 2), import_cpu_s=round(imp.cpu, 2),
                  mb_per_s=round(f_bytes / imp.wall / 1e6, 1), rows=rows_written(imp),
                  peak_rss_mib=round(max(r.rss_mib for r in imports), 1),
                  peak_tree_rss_mib=round(max(r.tree_rss_mib for r in imports), 1),
                  import_over_floor=round(imp.wall / f_wall, 2),
                  import_over_floor_paired=round(pairs[len(pairs) // 2], 2))

    # -- rerun with nothing new
    reruns = [run_timed(cmd, env, tmp) for _ in range(repeat)]
    re = best(reruns)
    assert all(rows_written(r) == 0 for r in reruns), "a rerun wrote rows"
    result.update(rerun_s=round(re.wall, 3), rerun_cpu_s=round(re.cpu, 3),
                  rerun_pct_of_import=round(100 * re.wall / imp.wall, 1))

    # -- ccusage on the same files (measured above, each run right after an import)
    if cc:
        c_wall, c_cpu, c_claude, c_codex = min(cc)
        cpairs = sorted(i.wall / c[0] for c, i in zip(cc, imports, strict=False))
        result.update(ccusage_s=round(c_wall, 2), ccusage_cpu_s=round(c_cpu, 2), ccusage_claude_s=round(c_claude, 2),
                      ccusage_codex_s=round(c_codex, 2), import_over_ccusage=round(imp.wall / c_wall, 2),
                      import_over_ccusage_paired=round(cpairs[len(cpairs) // 2], 2))

    # -- append ~1 %: the same appended lines each repeat, from the same post-import state
    shutil.rmtree(snapshot, ignore_errors=True)
    shutil.copytree(hyp_home, snapshot, symlinks=True)
    sizes = {p: os.path.getsize(p) for p in files}
    appends = []
    added = 0
    try:
        for _ in range(repeat):
            shutil.rmtree(hyp_home)
            shutil.copytree(snapshot, hyp_home, symlinks=True)
            added = append_percent(base, 1.0)
            try:
                appends.append(run_timed(cmd, env, tmp))
            finally:
                for p, size in sizes.items():  # back to the corpus as generated
                    if os.path.getsize(p) != size:
                        os.truncate(p, size)
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    ap_run = best(appends)
    result.update(append_bytes=added, append_s=round(ap_run.wall, 2), append_cpu_s=round(ap_run.cpu, 2),
                  append_rows=rows_written(ap_run), append_pct_of_import=round(100 * ap_run.wall / imp.wall, 1))
    result["load_after"] = round(os.getloadavg()[0], 2)

    print(json.dumps(result, indent=2))
    report(result)
    shutil.rmtree(tmp, ignore_errors=True)
    if not args.keep and not args.corpus:
        shutil.rmtree(base, ignore_errors=True)


def report(r: dict) -> None:
    def line(name: str, value: str, note: str = "") -> None:
        sys.stderr.write(f"  {name:<22} {value:<28} {note}\n")

    def target(key: str, value: float, fmt: str) -> str:
        limit = TARGETS[key]
        return f"target ≤ {limit:{fmt}}: {'ok' if value <= limit else 'MISSED'}"

    mb = r["bytes"] / 1e6
    sys.stderr.write(f"\n{r['files']} files, {mb:.0f} MB, {r['lines']} lines; {r['cpus']} CPUs, load "
                     f"{r['load_before']} -> {r['load_after']}; workers {r['workers']}; best of {r['repeat']}\n")
    line("orjson floor", f"{r['floor_s']:.2f} s (cpu {r['floor_cpu_s']:.2f})")
    line("full import", f"{r['import_s']:.2f} s (cpu {r['import_cpu_s']:.2f})",
         f"{r['mb_per_s']} MB/s, {r['rows']} rows")
    line("  / floor", f"{r['import_over_floor']:.2f}x (paired {r['import_over_floor_paired']:.2f}x)",
         target("import_over_floor", r["import_over_floor_paired"], ".0f"))
    if "ccusage_s" in r:
        line("ccusage (claude+codex)", f"{r['ccusage_s']:.2f} s (cpu {r['ccusage_cpu_s']:.2f})",
             f"{r['ccusage_claude_s']:.2f} + {r['ccusage_codex_s']:.2f} s")
        line("  import / ccusage", f"{r['import_over_ccusage']:.2f}x (paired {r['import_over_ccusage_paired']:.2f}x)",
             target("import_over_ccusage", r["import_over_ccusage_paired"], ".1f"))
    line("peak RSS", f"{r['peak_rss_mib']:.0f} MiB", target("peak_rss_mib", r["peak_rss_mib"], ".0f")
         + f" (largest process; all processes together: {r['peak_tree_rss_mib']:.0f} MiB)")
    line("rerun, nothing new", f"{r['rerun_s']:.3f} s (cpu {r['rerun_cpu_s']:.3f})",
         f"{r['rerun_pct_of_import']}% of import; " + target("rerun_pct_of_import", r["rerun_pct_of_import"], ".0f")
         + "; " + target("rerun_s", r["rerun_s"], ".0f").replace("target", "and"))
    line("append 1%", f"{r['append_s']:.2f} s (cpu {r['append_cpu_s']:.2f})",
         f"{r['append_pct_of_import']}% of import ({r['append_bytes'] / 1e6:.1f} MB, {r['append_rows']} rows); "
         + target("append_pct_of_import", r["append_pct_of_import"], ".0f"))


if __name__ == "__main__":
    main()
