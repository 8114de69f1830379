"""Overview benchmark: `hyp query overview` data (core.query.overview) over 1 million rows.

    python benchmarks/bench_overview.py [--rows 1000000] [--days 120] [--batches 4] [--repeat 3] [--keep DIR]

Generates realistic rows (Claude and Codex sessions over `--days` days: user prompts, streamed split
assistant lines repeating their usage, side-chain replays, API-error lines, tool calls and results, Codex
carriers) into a temporary HYP_HOME through `Storage.commit` in a few large batches, then times
`overview(days=30)` and `overview(days=0)` (all data) and a `select count(*)` for reference.

Prints a JSON report on stdout. There is no assertion: the target is < 2 s for `overview` on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from hypaware_tui.core.paths import Layout  # noqa: E402
from hypaware_tui.core.query import overview, run_sql  # noqa: E402
from hypaware_tui.core.schema import AI_GATEWAY_MESSAGES_SCHEMA, canonical_json  # noqa: E402
from hypaware_tui.core.storage import Storage  # noqa: E402

TOOLS = ["Bash", "Read", "Edit", "Write", "Grep", "Glob", "TodoWrite", "Task", "WebFetch", "MultiEdit",
         "shell", "apply_patch", "update_plan", "view_image", "mcp__github__get_issue"]  # fmt: skip
CLAUDE_MODELS = ["claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"]
CODEX_MODELS = ["gpt-5", "gpt-5-codex", "o3"]
PROJECTS = [f"/home/dev/src/project-{i:02d}" for i in range(40)] + ["/home/dev", "/tmp/scratch"]
LOREM = (
    "Let me look at the failing test first. The fixture builds a partition with two files and the reader "
    "dedupes by part_id, so the count should stay the same after compaction. I will run the suite again. "
)


def _rand(col: str, seed: int, k: int) -> pl.Expr:
    """A deterministic pseudo-random integer in [0, k) per row (hash of `col` with `seed`)."""
    return (pl.col(col).hash(seed) % k).cast(pl.Int64)


def _pick(choices: list[str], index: pl.Expr) -> pl.Expr:
    expr = pl.lit(choices[-1])
    for i, c in reversed(list(enumerate(choices[:-1]))):
        expr = pl.when(index == i).then(pl.lit(c)).otherwise(expr)
    return expr


def generate(n_rows: int, days: int, now: datetime) -> pl.DataFrame:
    """`n_rows` rows in schema order, vectorised with Polars. Sessions of 150 rows; about 30% Codex."""
    session_len = 150
    now_us = int(now.timestamp() * 1_000_000)
    i = pl.col("i")
    df = pl.DataFrame({"i": pl.int_range(0, n_rows, dtype=pl.Int64, eager=True)})
    df = df.with_columns(session=i // session_len, pos=i % session_len)
    df = df.with_columns(
        codex=_rand("session", 1, 10) < 3,
        start=pl.lit(now_us) - _rand("session", 2, days * 86_400) * 1_000_000 - 3_600_000_000,
        project=_rand("session", 3, len(PROJECTS)),
        model_ix=_rand("session", 4, 3),
        # Row kinds in a turn: 0 user, 1-3 streamed split (reasoning, text, tool_call), 4 tool result,
        # 5 side-chain replay of the turn's response; 6 (1%) an API-error line.
        kind=pl.when(_rand("i", 5, 100) == 0).then(6).otherwise(i % session_len % 6),
        turn=(i % session_len) // 6,
        out_base=_rand("i", 6, 2000) + 20,
        tool=_pick(TOOLS, _rand("i", 7, len(TOOLS))),
    )
    k = pl.col("kind")
    codex = pl.col("codex")
    assistant = ~k.is_in([0, 4])
    api_error = (k == 6) & ~codex  # Claude API-error lines (Codex has none)
    sess = pl.lit("sess-") + pl.col("session").cast(pl.String)
    message_id = sess + ":" + pl.col("pos").cast(pl.String)
    created = pl.col("start") + pl.col("pos") * 7_000_000
    part_type = (
        pl.when(k.is_in([1])).then(pl.lit("reasoning"))
        .when(k.is_in([3, 5])).then(pl.lit("tool_call"))
        .when(k == 4).then(pl.lit("tool_result"))
        .otherwise(pl.lit("text"))
    )  # fmt: skip

    def tok(expr: pl.Expr, when: pl.Expr = assistant) -> pl.Expr:
        return pl.when(api_error).then(0).when(when).then(expr).otherwise(None).cast(pl.Int64)

    attrs_plain = canonical_json({"gateway": {"identity_source": "native"}})
    attrs_err = canonical_json({"claude": {"api_error": True}, "gateway": {"identity_source": "native"}})
    attrs_codex = canonical_json(
        {
            "codex": {"model_provider": "openai", "thread_source": "cli"},
            "gateway": {"identity_source": "native"},
        }
    )
    none = pl.lit(None, dtype=pl.String)
    cols: dict[str, pl.Expr] = {
        "schema_version": pl.lit(1),
        "session_id": sess,
        "conversation_id": sess,
        "user_id": none,
        "provider": pl.when(codex).then(pl.lit("openai")).otherwise(pl.lit("anthropic")),
        "model": pl.when(assistant & ~api_error).then(
            pl.when(codex).then(_pick(CODEX_MODELS, pl.col("model_ix"))).otherwise(_pick(CLAUDE_MODELS, pl.col("model_ix")))
        ),
        "system_text": none,
        "tools": none,
        "conversation_started_at": pl.col("start"),
        "conversation_source": pl.when(codex).then(pl.lit("codex")).otherwise(pl.lit("claude")),
        "client_name": pl.when(codex).then(pl.lit("codex")).otherwise(pl.lit("claude")),
        "cwd": _pick(PROJECTS, pl.col("project")),
        "git_branch": pl.lit("main"),
        "git_remote": none,
        "head_sha": none,
        "repo_root": none,
        "client_version": pl.when(codex).then(pl.lit("0.118.0")).otherwise(pl.lit("2.1.92")),
        "entrypoint": pl.lit("cli"),
        "user_type": pl.lit("external"),
        "permission_mode": pl.lit("default"),
        "is_sidechain": pl.when(~codex).then(k == 5),
        "agent_id": none,
        "parent_thread_id": none,
        "message_id": message_id,
        "previous_message_id": pl.lit("[]"),
        "provider_uuid": message_id,
        "parent_uuid": none,
        "logical_parent_uuid": none,
        "source_tool_assistant_uuid": none,
        "request_id": pl.when(assistant & ~codex).then(
            pl.when(k == 5).then(pl.lit("req_side")).otherwise(pl.lit("req_") + pl.col("turn").cast(pl.String))
        ),
        "api_message_id": pl.when(assistant & ~codex).then(
            pl.lit("msg_") + pl.col("session").cast(pl.String) + "_" + pl.col("turn").cast(pl.String)
        ),
        "prompt_id": pl.lit("p") + pl.col("turn").cast(pl.String),
        "message_index": pl.col("pos"),
        "message_created_at": created,
        "role": pl.when(assistant).then(pl.lit("assistant")).otherwise(pl.lit("user")),
        "part_id": message_id + "#0",
        "part_index": pl.lit(0),
        "part_type": part_type,
        "provider_type": pl.when(codex).then(pl.lit("response_item")).otherwise(pl.lit("assistant")),
        "provider_subtype": part_type,
        "content_text": pl.when(part_type == "tool_call").then(none).otherwise(pl.lit(LOREM)),
        "tool_name": pl.when(k.is_in([3, 4, 5])).then(pl.col("tool")),
        "tool_call_id": pl.when(k.is_in([3, 4, 5])).then(pl.lit("toolu_") + i.cast(pl.String)),
        "tool_args": pl.when(part_type == "tool_call").then(pl.lit('{"command":"pytest -q tests/test_query.py"}')),
        "caller_type": none,
        "tool_result_for": none,
        "thinking_signature": none,
        "attachment_type": none,
        "hook_event": none,
        "is_error": pl.when(api_error).then(pl.lit(True)),
        "is_compact_summary": pl.lit(None, dtype=pl.Boolean),
        "compact_metadata": none,
        "finish_reason": pl.when(k == 3).then(pl.lit("tool_use")),
        # Streamed lines repeat the usage with output growing: reasoning 5, text half, tool_call all.
        "input_tokens": tok(_rand("i", 8, 50) + 1),
        "output_tokens": tok(
            pl.when(k == 1).then(5).when(k == 2).then(pl.col("out_base") // 2).otherwise(pl.col("out_base"))
        ),
        "cache_read_tokens": tok(_rand("i", 9, 80_000)),
        "cache_write_tokens": tok(_rand("i", 10, 5_000), assistant & ~codex),
        "status": none,
        "attributes": pl.when(codex).then(pl.lit(attrs_codex)).when(api_error).then(pl.lit(attrs_err))
        .otherwise(pl.lit(attrs_plain)),
        "raw_frame": pl.lit('{"type":"assistant"}'),
        "source_path_hash": pl.lit("0123456789abcdef"),
        "source_offset": i * 900,
        "record_format": pl.when(codex).then(pl.lit("codex-envelope")).otherwise(pl.lit("claude-jsonl")),
        "date": created.cast(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%d"),
    }  # fmt: skip
    exprs = []
    for name, dtype in AI_GATEWAY_MESSAGES_SCHEMA.items():
        e = cols[name]
        if name in ("conversation_started_at", "message_created_at"):
            e = e.cast(pl.Int64).cast(dtype)
        else:
            e = e.cast(dtype)
        exprs.append(e.alias(name))
    return df.select(exprs)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn, repeat: int) -> tuple[float, float, float, object]:
    """(best wall s, worst wall s, best process CPU s, last result). CPU time shows the work done whatever
    else the machine is running; wall time is what the user waits."""
    walls, cpus = [], []
    out = None
    for _ in range(repeat):
        c = _cpu()
        t = time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(_cpu() - c)
    return min(walls), max(walls), min(cpus), out


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=120, help="days of history the rows span")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="reuse (or create and keep) this HYP_HOME instead of a temp one")
    args = ap.parse_args()

    now = datetime.now(UTC).replace(microsecond=0)
    home = args.keep or tempfile.mkdtemp(prefix="hyp-bench-overview-")
    layout = Layout(Path(home).resolve())
    report: dict[str, object] = {"rows": args.rows, "days_spanned": args.days, "hyp_home": home}
    try:
        if not layout.dataset_root.is_dir():
            t = time.perf_counter()
            df = generate(args.rows, args.days, now - timedelta(hours=1))
            report["generate_s"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            per = -(-df.height // args.batches)
            with Storage(layout) as st:
                for k in range(args.batches):
                    st.commit(df.slice(k * per, per), [])
            report["commit_s"] = round(time.perf_counter() - t, 2)
            del df
        files = list(layout.dataset_root.rglob("*.parquet"))
        report["files"] = len(files)
        report["bytes"] = sum(f.stat().st_size for f in files)

        report["load_avg_1m_before"] = _load()
        lo, hi, cpu, n = timed(
            lambda: run_sql(layout, "select count(*) as n from ai_gateway_messages").item(), 1
        )
        report["count_rows"] = n
        report["select_count_s"] = {"wall": round(lo, 3), "cpu": round(cpu, 3)}
        for days in (30, 0):
            lo, hi, cpu, ov = timed(lambda d=days: overview(layout, days=d), args.repeat)
            report[f"overview_days_{days}_s"] = {
                "best": round(lo, 3),
                "worst": round(hi, 3),
                "cpu": round(cpu, 3),
            }
            report[f"overview_days_{days}_rows"] = ov.rows  # type: ignore[union-attr]
        report["load_avg_1m_after"] = _load()
        report["target_s"] = 2.0
        report["cpu_count"] = os.cpu_count()
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
