"""Peak memory of `hyp backfill` on one large transcript (issue 3: memory stays flat).

    python benchmarks/bench_large_file.py [--mb 500] [--compare-mb 50] [--keep DIR]
    python benchmarks/bench_large_file.py --huge-line-mb 150 [--client claude|codex] [--compare-mb 50]

Generates a single ~N MB transcript (streamed assistant lines with tool calls, large tool results, thinking,
file-history snapshots) in a temp dir, runs `hyp backfill claude --json` in a subprocess with HOME,
HYP_HOME and CLAUDE_CONFIG_DIR pointing there, and reports the child's peak RSS (ru_maxrss from wait4), the
peak of the summed RSS of its process tree (sampled every 50 ms: parse workers included), the wall time and
the rows written. With `--compare-mb`, a smaller file is measured the same way first, so the two peaks show
whether memory grows with the size of one file.

With `--huge-line-mb N` the file is instead a short session (a few KB of ordinary lines) around ONE line of
about N MB: for `--client claude` a user line whose tool_result `content` is an N MB text (a whole file read
by a tool), for `--client codex` a rollout whose `function_call_output` holds it (the `output` string is JSON
with the text and an exit code, as Codex writes it). `--compare-mb` is then the size of the smaller huge line.
Not part of the test suite.
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
from datetime import UTC, datetime, timedelta

sys.path.insert(0, os.path.dirname(__file__))
from bench_import import _tree_rss_kib  # noqa: E402  (the summed RSS of a process tree, as there)

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


def huge_text(mb: float) -> str:
    """About `mb` MB of source code text (newlines included: JSON escapes them, as in a real tool result)."""
    chunk = CHUNK.format(i=7)
    return chunk * max(1, int(mb * 1_000_000 / len(chunk)))


def generate_huge_claude(path: str, mb: float) -> int:
    """A short Claude session around one user line whose tool_result holds about `mb` MB. Returns the lines."""
    start = datetime.now(UTC) - timedelta(days=2)
    sid = "5f0c2d9e-1b7a-4c55-9e1e-3d2f8a7b6c02"
    base = {"sessionId": sid, "cwd": "/home/ada/src/hyp", "version": "2.0.14", "gitBranch": "main",
            "userType": "external", "entrypoint": "cli"}
    recs = [
        {**base, "type": "user", "uuid": "u-0", "parentUuid": None, "timestamp": _iso(start),
         "message": {"role": "user", "content": "Read the generated parser and tell me what is wrong."}},
        {**base, "type": "assistant", "uuid": "a-0", "parentUuid": "u-0", "requestId": "req_0",
         "timestamp": _iso(start + timedelta(seconds=1)),
         "message": {"id": "msg_0", "role": "assistant", "model": "claude-sonnet-4-5",
                     "content": [{"type": "tool_use", "id": "toolu_0", "name": "Read",
                                  "input": {"file_path": "/home/ada/src/hyp/generated_parser.py"}}],
                     "stop_reason": "tool_use", "usage": {"input_tokens": 1200, "output_tokens": 40}}},
        {**base, "type": "user", "uuid": "r-0", "parentUuid": "a-0", "timestamp": _iso(start + timedelta(seconds=2)),
         "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0",
                                                  "content": huge_text(mb)}]},
         "toolUseResult": {"stdout": "", "stderr": "", "interrupted": False}},
        {**base, "type": "assistant", "uuid": "a-1", "parentUuid": "r-0", "requestId": "req_1",
         "timestamp": _iso(start + timedelta(seconds=9)),
         "message": {"id": "msg_1", "role": "assistant", "model": "claude-sonnet-4-5",
                     "content": [{"type": "text", "text": "The file is too large to review at once."}],
                     "stop_reason": "end_turn", "usage": {"input_tokens": 90000, "output_tokens": 30}}},
    ]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in recs:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    return len(recs)


def generate_huge_codex(path: str, mb: float) -> int:
    """A short Codex rollout around one function_call_output of about `mb` MB. Returns the lines."""
    start = datetime.now(UTC) - timedelta(days=2)
    tid = "0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    cwd = "/home/ada/src/hyp"

    def env(sec: float, type_: str, payload: dict) -> dict:
        return {"timestamp": _iso(start + timedelta(seconds=sec)), "type": type_, "payload": payload}

    output = json.dumps({"output": huge_text(mb), "metadata": {"exit_code": 0, "duration_seconds": 0.4}},
                        separators=(",", ":"))
    recs = [
        env(0, "session_meta", {"id": tid, "timestamp": _iso(start), "cwd": cwd, "originator": "codex_cli_rs",
                                "cli_version": "0.98.0", "source": "cli", "model_provider": "openai"}),
        env(1, "turn_context", {"turn_id": "t-0", "cwd": cwd, "approval_policy": "on-request",
                                "sandbox_policy": {"type": "workspace-write"}, "model": "gpt-5-codex"}),
        env(2, "response_item", {"type": "message", "role": "user",
                                 "content": [{"type": "input_text", "text": "Print the generated parser."}]}),
        env(3, "response_item", {"type": "function_call", "name": "shell", "call_id": "call_0",
                                 "arguments": json.dumps({"command": ["cat", "generated_parser.py"]})}),
        env(4, "response_item", {"type": "function_call_output", "call_id": "call_0", "output": output}),
        env(9, "response_item", {"type": "message", "role": "assistant",
                                 "content": [{"type": "output_text", "text": "The file is too large."}]}),
    ]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in recs:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    return len(recs)


def peak_rss_of(cmd: list[str], env: dict[str, str]) -> tuple[int, float, bytes, int, int]:
    """Run `cmd`, return (peak RSS in KiB of that child (wait4), seconds, stdout, exit code, peak summed RSS in
    KiB of its process tree, sampled every 50 ms)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    tree = [0]

    def sample() -> None:
        while proc.returncode is None:
            kib = _tree_rss_kib(proc.pid)
            if kib is None:
                return
            tree[0] = max(tree[0], kib)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    return usage.ru_maxrss, time.perf_counter() - t, out, proc.returncode, tree[0]


def run_one(base: str, mb: float, huge: bool = False, client: str = "claude") -> dict:
    kind = f"huge-{client}-" if huge else ""
    home = os.path.join(base, f"home-{kind}{mb:g}")
    hyp = os.path.join(base, f"hyp-{kind}{mb:g}")
    if client == "codex":
        path = os.path.join(home, ".codex", "sessions", "2026", "01", "02",
                            "rollout-2026-01-02T10-00-00-0199a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.jsonl")
    else:
        path = os.path.join(home, ".claude", "projects", "-home-ada-src-hyp", "5f0c2d9e.jsonl")
    t = time.perf_counter()
    # Generated in a child process: the children `peak_rss_of` starts report (ru_maxrss) at least the RSS this
    # process had when they were started, and building a huge line here takes a few times its size.
    kind = f"huge-{client}" if huge else "large"
    gen = subprocess.run([sys.executable, os.path.abspath(__file__), "--generate", kind, path, str(mb)],
                         check=True, stdout=subprocess.PIPE)
    lines = int(gen.stdout)
    gen_s = time.perf_counter() - t
    os.makedirs(hyp, mode=0o700, exist_ok=True)
    with open(os.path.join(hyp, "hypaware-config.json"), "w") as fh:
        json.dump({"version": 1, "clients": {client: {"enabled": True}}, "retention_days": 0,
                   "capture": {"enabled": False}}, fh)
    env = dict(os.environ, HOME=home, HYP_HOME=hyp, CLAUDE_CONFIG_DIR=os.path.join(home, ".claude"),
               CODEX_HOME=os.path.join(home, ".codex"), NO_COLOR="1")
    env.pop("HYP_DEBUG", None)
    cmd = [sys.executable, "-m", "hypaware_tui", "backfill", client, "--json"]
    rss_kib, secs, out, rc, tree_kib = peak_rss_of(cmd, env)
    if rc != 0:
        raise SystemExit(f"hyp backfill failed with exit code {rc}")
    data = json.loads(out)
    size = os.path.getsize(path)
    rerun_rss, rerun_s, out2, _, _ = peak_rss_of(cmd, env)
    return {
        "client": client,
        "file_mb": round(size / 1e6, 1),
        "lines": lines,
        "generate_s": round(gen_s, 1),
        "import_s": round(secs, 1),
        "mb_per_s": round(size / 1e6 / secs, 1),
        "rows_written": data["providers"][0]["rows_written"],
        "peak_rss_mib": round(rss_kib / 1024, 1),
        "peak_tree_rss_mib": round(tree_kib / 1024, 1),
        "rerun_s": round(rerun_s, 2),
        "rerun_rows_written": json.loads(out2)["providers"][0]["rows_written"],
        "rerun_peak_rss_mib": round(rerun_rss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=500)
    ap.add_argument("--compare-mb", type=float, default=0, help="also measure a smaller file first")
    ap.add_argument("--huge-line-mb", type=float, default=0,
                    help="a short session around one line of this many MB instead (--mb is then ignored)")
    ap.add_argument("--client", choices=("claude", "codex"), default="claude",
                    help="with --huge-line-mb: whose transcript (default claude)")
    ap.add_argument("--keep", help="work in this directory and keep it")
    ap.add_argument("--generate", nargs=3, metavar=("KIND", "PATH", "MB"), help=argparse.SUPPRESS)  # (the child)
    args = ap.parse_args()
    if args.generate:
        kind, path, mb = args.generate
        make = {"large": generate, "huge-claude": generate_huge_claude, "huge-codex": generate_huge_codex}[kind]
        print(make(path, float(mb)))
        return
    base = args.keep or tempfile.mkdtemp(prefix="hyp-large-")
    try:
        results = []
        huge = args.huge_line_mb > 0
        if not huge and args.client != "claude":
            ap.error("--client codex needs --huge-line-mb")
        top = args.huge_line_mb if huge else args.mb
        for mb in ([args.compare_mb] if args.compare_mb else []) + [top]:
            r = run_one(base, mb, huge, args.client)
            results.append(r)
            sys.stderr.write(f"{r}\n")
        print(json.dumps(results, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
