"""A model-based test of the import core (storage.md §5-§8, schema.md §3.1, §4.6): Hypothesis drives sequences
of what real machines do to the clients' files between runs, over a temporary home with a Claude and a Codex
root, and checks the product's promises after every backfill.

Rules: a new session file of either client (user turns, multi-part content, streamed split assistant lines
sharing a message id, tool calls and results, lines without a native id or a timestamp, Codex token events in
either order; some files with CRLF line ends); appending whole lines; appending half a line and finishing it later (or writing over it: the
next line joins it); a malformed line (truncated JSON, invalid UTF-8, a non-object) between valid ones; a
rewrite in place (same inode) with new or edited content; a replacement (write a temp file, `os.replace`); a
truncation; a deletion (the path may come back later as a new session); Codex archiving a rollout (moved or
copied into `archived_sessions/`, or compressed there as `.jsonl.zst`); a backfill (`run_backfill`,
`workers=1`, with batches of 50 000, 3 or 1 rows: commits and checkpoints inside a file), sometimes twice in
a row; a compaction (`Storage.compact`, the `hyp cache compact` path).

Invariants, after each backfill (B = the dataset, F = a FRESH import of the current files into an empty
HYP_HOME):

1. Within a partition no `part_id` appears twice; the deduplicated relation (`scan_messages`, the query
   layer's) has each `part_id` once. (A `part_id` may sit in two partitions only after a rewrite changed its
   date: storage.md §6.4 allows that, the query layer removes it.)
2. Every row of F is in B. Equal in all 64 columns when the model never saw that `part_id` with other
   values; otherwise the copy in B is one of the values seen (the first committed copy wins, schema.md §4.6:
   a file rewritten with the same native ids but other content keeps the first copy's values). No column
   differs by run in schema_version 1 (no run id, no ingest time: schema.md §3.1 rule 2), so none is
   excluded.
3. Nothing invented, nothing lost: every row of B is one of the values a fresh import gave at some backfill;
   no `part_id` ever written disappears (retention is 0).
4. While the run's history is append-only (no rewrite, replace, truncation, deletion, move or compressed
   copy; a plain copy into `archived_sessions/` is allowed, its rows are the original's): B equals F exactly
   (same set of rows, no duplicates at all), and the skip counts summed over the backfills equal F's.
5. A second backfill right after a backfill writes 0 rows and finds 0 duplicates; no import raises or
   reports an error; every malformed line we wrote is counted as `malformed` in F, once F consumed it (a
   line after a record held for a timestamp or its token count waits, schema.md §3.2 rule 3).
6. A compaction changes no row of the deduplicated relation and leaves one file per partition.

The modification rules keep file mtimes moving (a model clock, one second per change): a same-size rewrite
within one mtime tick is skipped unopened by design (storage.md §5.4 step 2), and so is a change past the
first 4 KiB of a same-inode file that does not shrink it below the checkpoint (§5.4 step 3, §5.4 step 5):
in-place changes here always start in the first 4 KiB.

CI runs a small number of examples; `HYP_STATEFUL_EXAMPLES=2000` (and `HYP_STATEFUL_STEPS`) search longer,
`HYP_STATEFUL_SHRINK=0` reports a failure unshrunk, `HYP_STATEFUL_LOG=<file>` tallies the rules run.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import zstandard
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    multiple,
    precondition,
    rule,
)

from hypaware_tui.core.checkpoints import StateDB, path_hash
from hypaware_tui.core.dataset import scan_messages
from hypaware_tui.core.paths import Layout
from hypaware_tui.core.runner import run_backfill
from hypaware_tui.core.schema import COLUMN_NAMES
from hypaware_tui.core.storage import Storage
from hypaware_tui.importers.base import Window

EXAMPLES = int(os.environ.get("HYP_STATEFUL_EXAMPLES", "100"))
STEPS = int(os.environ.get("HYP_STATEFUL_STEPS", "30"))
LOG = os.environ.get("HYP_STATEFUL_LOG")
PID = COLUMN_NAMES.index("part_id")
T0 = datetime(2026, 5, 20, 10, 0, tzinfo=UTC)
HEAD = 4096  # storage.md §5.4 step 5: the bytes a checkpoint's head hash covers, at most

# complete lines that are malformed (schema.md §7): truncated JSON, invalid UTF-8 outside any string, not an object
MALFORMED = [
    b'{"type":"user","sessionId":"cut","message":{"role":"user","content":"half',
    b'\xff\xfe{"type":"user"}',
    b"[1,2,3]",
]


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _dump(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


# --------------------------------------------------------------------------------------------- source files


class Source:
    """One session file and the generator of its next lines (ids salted per file, so that no two files share
    a native id by accident: that case is `first committed copy wins`, schema.md §4.6, not an equality)."""

    def __init__(self, client: str, path: Path, salt: str) -> None:
        self.client = client
        self.path = path
        self.salt = salt
        self.n = 0
        self.clock = T0 + timedelta(hours=len(salt) % 7)
        self.tools: list[str] = []
        self.total = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0, "reasoning_output_tokens": 0}
        self.partial: bytes | None = None  # the rest of a half-written line (and the lines after it)
        self.crlf = False  # lines end with \r\n (stripped by the importers)
        self.frozen = False  # a compressed archived rollout: Codex never writes it again
        self.order = "after"  # Codex: token_count after the response's items, or before them

    def tick(self, ms: int = 1500) -> str:
        self.clock += timedelta(milliseconds=ms)
        return _iso(self.clock)

    def next_id(self, tag: str) -> str:
        self.n += 1
        return f"{self.salt}-{tag}{self.n}"

    # -- Claude --------------------------------------------------------------------------------------
    def _claude(self, typ: str, message: dict | None, *, uuid: bool = True, ts: bool = True, **extra) -> dict:
        rec: dict = {"type": typ, "sessionId": self.salt, "cwd": "/home/ada/repo", "version": "2.1.9",
                     "userType": "external"}  # fmt: skip
        if uuid:
            rec["uuid"] = self.next_id("u")
        if ts:
            rec["timestamp"] = self.tick()
        if message is not None:
            rec["message"] = message
        rec.update(extra)
        return rec

    def claude_event(self, kind: str) -> list[bytes]:
        if kind == "user":
            return [_dump(self._claude("user", {"role": "user", "content": f"question {self.n} é✅"}))]
        if kind == "blocks":  # multi-part user content
            return [_dump(self._claude("user", {"role": "user", "content": [
                {"type": "text", "text": "see"}, {"type": "text", "text": f"part two\u2028{self.n}"}]}))]
        if kind in ("split", "split3"):  # a streamed response: one line per block, sharing message.id + requestId
            mid, req = self.next_id("msg"), self.next_id("req")
            lines, out = [], 0
            for k, block in enumerate(["thinking", "text", "tool_use"][: 2 if kind == "split" else 3]):
                out += 7
                if block == "thinking":
                    b: dict = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
                elif block == "text":
                    b = {"type": "text", "text": f"answer {k}\r\nmore"}
                else:
                    tid = self.next_id("toolu")
                    self.tools.append(tid)
                    b = {"type": "tool_use", "id": tid, "name": "Bash", "input": {"command": "ls"}}
                lines.append(_dump(self._claude("assistant", {
                    "id": mid, "role": "assistant", "model": "claude-opus-4-6", "content": [b],
                    "stop_reason": "tool_use" if block == "tool_use" else None,
                    "usage": {"input_tokens": 3, "output_tokens": out, "cache_read_input_tokens": 9}}, requestId=req)))
            return lines
        if kind == "multi":  # one assistant line, text + tool call
            tid = self.next_id("toolu")
            self.tools.append(tid)
            return [_dump(self._claude("assistant", {
                "id": self.next_id("msg"), "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": "running"}, {"type": "tool_use", "id": tid, "name": "Read",
                                                                  "input": {"file_path": "/x"}}],
                "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}}))]
        if kind == "result":
            tid = self.tools[-1] if self.tools else "toolu_none"
            return [_dump(self._claude("user", {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": tid, "content": "a.txt\nb.txt", "is_error": False}]},
                sourceToolAssistantUUID=f"{self.salt}-x"))]
        if kind == "noid":  # no native id: the fallback id (schema.md §4.2)
            return [_dump(self._claude("user", {"role": "user", "content": "continue"}, uuid=False))]
        if kind == "untimed":  # no timestamp: inherited (held at the start of a file, schema.md §3.2)
            return [_dump(self._claude("user", {"role": "user", "content": "no time"}, ts=False))]
        if kind == "noise":
            return [_dump({"type": "file-history-snapshot", "messageId": self.next_id("snap"), "snapshot": {}}),
                    _dump(self._claude("system", None, subtype="turn_duration"))]
        if kind == "meta":
            return [_dump(self._claude("user", {"role": "user", "content": "<command-name>/clear</command-name>"},
                                       isMeta=True))]
        if kind == "badutf8":  # invalid UTF-8 inside a string: decoded with replacement, a valid row
            rec = self._claude("user", {"role": "user", "content": "BAD"})
            return [_dump(rec).replace(b'"BAD"', b'"caf\xe9 \xff"')]
        if kind == "empty":
            return [_dump(self._claude("user", {"role": "user", "content": []}))]
        raise AssertionError(kind)

    # -- Codex ---------------------------------------------------------------------------------------
    def _env(self, typ: str, payload: dict, *, ts: bool = True) -> bytes:
        rec: dict = {"timestamp": self.tick(400)} if ts else {}
        rec.update(type=typ, payload=payload)
        return _dump(rec)

    def codex_header(self) -> list[bytes]:
        return [self._env("session_meta", {"id": self.salt, "timestamp": _iso(self.clock), "cwd": "/home/ada/repo",
                                           "originator": "codex_cli_rs", "cli_version": "0.130.0", "source": "cli"})]

    def _tokens(self) -> bytes:
        last = {"input_tokens": 900 + self.n, "cached_input_tokens": 100, "output_tokens": 40,
                "reasoning_output_tokens": 5}  # fmt: skip
        self.total = {k: self.total[k] + last[k] for k in last}
        return self._env("event_msg", {"type": "token_count", "info": {"total_token_usage": dict(self.total),
                                                                        "last_token_usage": last}})

    def codex_event(self, kind: str) -> list[bytes]:
        if kind == "turn":
            turn = self.next_id("t")
            return [self._env("event_msg", {"type": "task_started", "turn_id": turn}),
                    self._env("turn_context", {"turn_id": turn, "cwd": "/home/ada/repo", "model": "gpt-5.2-codex",
                                               "effort": "low", "sandbox_policy": {"type": "read-only"}}),
                    self._env("response_item", {"type": "message", "role": "user",
                                                "content": [{"type": "input_text", "text": f"do {self.n}"}]})]
        if kind in ("answer", "answer_id"):
            item: dict = {"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": f"done {self.n}"}]}
            if kind == "answer_id":
                item["id"] = self.next_id("msg")
            body = [self._env("response_item", item)]
            return [self._tokens(), *body] if self.order == "before" else [*body, self._tokens()]
        if kind == "call":
            cid = self.next_id("call")
            call = self._env("response_item", {"type": "function_call", "name": "shell",
                                               "arguments": '{"command":["ls"]}', "call_id": cid})
            out = self._env("response_item", {"type": "function_call_output", "call_id": cid,
                                              "output": json.dumps({"output": "a\n", "metadata": {"exit_code": 0}})})
            return [self._tokens(), call, out] if self.order == "before" else [call, self._tokens(), out]
        if kind == "reasoning":
            return [self._env("response_item", {"type": "reasoning", "encrypted_content": "enc",
                                                "summary": [{"type": "summary_text", "text": "thinking"}]})]
        if kind == "no_info":
            return [self._env("event_msg", {"type": "token_count", "info": None})]
        if kind == "complete":
            return [self._env("event_msg", {"type": "task_complete"})]
        if kind == "error":
            return [self._env("event_msg", {"type": "error", "message": f"boom {self.n}"})]
        raise AssertionError(kind)

    def event(self, kind: str) -> list[bytes]:
        lines = self.claude_event(kind) if self.client == "claude" else self.codex_event(kind)
        return self.eol(lines)

    def header(self) -> list[bytes]:
        return self.eol(self.codex_header()) if self.client == "codex" else []

    def eol(self, lines: list[bytes]) -> list[bytes]:
        return [line[:-1] + b"\r\n" for line in lines] if self.crlf else lines


CLAUDE_EVENTS = ["user", "blocks", "split", "split3", "multi", "result", "noid", "untimed", "noise", "meta",
                 "badutf8", "empty"]  # fmt: skip
CODEX_EVENTS = ["turn", "answer", "answer_id", "call", "reasoning", "no_info", "complete", "error"]
events = st.lists(st.integers(0, 11), min_size=1, max_size=4)  # indexes into the file's client's kinds


def _kinds(src: Source, picks: list[int]) -> list[str]:
    names = CLAUDE_EVENTS if src.client == "claude" else CODEX_EVENTS
    return [names[i % len(names)] for i in picks]


# --------------------------------------------------------------------------------------------- dataset reads


def _rows(df: pl.DataFrame) -> list[tuple]:
    return df.select(COLUMN_NAMES).rows()


def raw_partitions(layout: Layout) -> dict[str, list[tuple]]:
    """Every stored row, by partition (`source=…/date=…`)."""
    out: dict[str, list[tuple]] = {}
    for f in sorted(layout.dataset_root.glob("**/*.parquet")):
        part = f"{f.parent.parent.name}/{f.parent.name}"
        out.setdefault(part, []).extend(_rows(pl.read_parquet(f)))
    return out


def deduped(layout: Layout) -> list[tuple]:
    return _rows(scan_messages(layout).collect())


# --------------------------------------------------------------------------------------------- the machine


def counted(fn):
    """Tally the rule's runs (for the long search's log)."""

    @functools.wraps(fn)
    def run(self, *args, **kwargs):
        self.steps += 1
        self.rules[fn.__name__] += 1
        return fn(self, *args, **kwargs)

    return run


class ImportMachine(RuleBasedStateMachine):
    files = Bundle("files")
    SKIP_TOTALS = True  # invariant 4: the backfills' skip counts sum to the fresh import's

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="hyp-stateful-"))
        home = self.tmp / "home"
        self.claude_root = home / ".claude"
        self.codex_root = home / ".codex"
        (self.claude_root / "projects").mkdir(parents=True)
        (self.codex_root / "sessions").mkdir(parents=True)
        self.env = {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(self.claude_root), "CODEX_HOME": str(self.codex_root)}
        self.layout = Layout(self.tmp / "hyp")
        self.live: list[Source] = []
        self.dead_paths: list[tuple[str, Path]] = []
        self.salts = 0
        self.mtime_ns = int(datetime.now(UTC).timestamp()) * 10**9
        self.append_only = True
        self.versions: dict[str, set[tuple]] = {}  # part_id -> every row value a fresh import gave for it
        self.written: set[str] = set()  # every part_id the dataset has held
        self.skips: Counter = Counter()  # lines_skipped summed over the backfills
        self.backfills = 0
        self.last_was_backfill = False
        self.steps = 0
        self.rules: Counter = Counter()

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if LOG:  # (the long search's tally: one line per example)
            with open(LOG, "a") as fh:
                fh.write(json.dumps({"steps": self.steps, "backfills": self.backfills, "rows": len(self.written),
                                     "append_only": self.append_only, "rules": self.rules}) + "\n")

    # -- helpers -------------------------------------------------------------------------------------
    def _salt(self) -> str:
        self.salts += 1
        return f"019e{self.salts:04x}-0000-7000-8000-{self.salts:012x}"

    def _touch(self, src: Source) -> None:
        """Time passes between changes: a change moves the mtime by one second."""
        self.mtime_ns += 10**9
        os.utime(src.path, ns=(self.mtime_ns, self.mtime_ns))
        self.last_was_backfill = False

    def _writable(self, src: Source) -> bool:
        return src in self.live and not src.frozen

    def _append(self, src: Source, data: bytes) -> None:
        with open(src.path, "ab") as fh:
            fh.write(data)
        self._touch(src)

    def _new_path(self, client: str, salt: str, reuse: bool) -> Path:
        if reuse:
            for i, (c, p) in enumerate(self.dead_paths):
                if c == client:
                    del self.dead_paths[i]
                    return p
        if client == "claude":
            return self.claude_root / "projects" / f"-home-ada-p{self.salts % 2}" / f"{salt}.jsonl"
        return self.codex_root / "sessions" / "2026" / "05" / "20" / f"rollout-2026-05-20T10-00-00-{salt}.jsonl"

    def _content_for_rewrite(self, src: Source, mode: str, old: bytes) -> bytes:
        """New bytes for a file rewritten or replaced: a new session (new ids), or the old lines edited (the
        same ids: a line removed, or a text changed, so offsets and values move)."""
        lines = old.split(b"\n")
        if mode == "edit" and len(lines) > 2:
            drop = 1 if src.client == "codex" else 0  # (keep Codex's header)
            return b"\n".join(lines[:drop] + lines[drop + 1:])
        if mode == "retext" and b"question" in old:
            return old.replace(b"question", b"Question", 1)
        if mode == "retext" and b"done " in old:
            return old.replace(b"done ", b"Done ", 1)
        src.salt = self._salt()
        src.partial = None
        body = src.header()
        for kind in ("turn", "answer") if src.client == "codex" else ("user", "split"):
            body += src.event(kind)
        return b"".join(body)

    # -- rules: files --------------------------------------------------------------------------------
    @initialize(target=files, claude=events, codex=events, order=st.sampled_from(["after", "before"]))
    def two_sessions(self, claude, codex, order):
        """Every run starts with a session of each client."""
        return multiple(self._new_session("claude", claude, False, order, False),
                        self._new_session("codex", codex, False, order, False))  # fmt: skip

    @rule(target=files, client=st.sampled_from(["claude", "codex"]), picks=events, reuse=st.booleans(),
          order=st.sampled_from(["after", "before"]), crlf=st.sampled_from([False, False, True]))
    @counted
    def new_session(self, client, picks, reuse, order, crlf):
        return self._new_session(client, picks, reuse, order, crlf)

    def _new_session(self, client, picks, reuse, order, crlf):
        salt = self._salt()
        path = self._new_path(client, salt, reuse)
        src = Source(client, path, salt)
        src.order = order
        src.crlf = crlf
        path.parent.mkdir(parents=True, exist_ok=True)
        body = src.header()
        for kind in _kinds(src, picks):
            body += src.event(kind)
        if path.exists():  # (a deleted path reused: a stale copy of the model would be a bug here)
            raise AssertionError(path)
        path.write_bytes(b"".join(body))
        self._touch(src)
        self.live.append(src)
        return src

    @precondition(lambda self: self.live)
    @rule(src=files, picks=events, finish_first=st.booleans())
    @counted
    def append_lines(self, src, picks, finish_first):
        if not self._writable(src):
            return
        data = b""
        if src.partial is not None and finish_first:
            data += src.partial
        src.partial = None  # (else: the half line is written over, the next line joins it)
        for kind in _kinds(src, picks):
            data += b"".join(src.event(kind))
        self._append(src, data)

    @precondition(lambda self: self.live)
    @rule(src=files, pick=st.integers(0, 11), cut=st.floats(0.05, 0.95))
    @counted
    def append_half_line(self, src, pick, cut):
        if not self._writable(src) or src.partial is not None:
            return
        lines = src.event(_kinds(src, [pick])[0])
        first = lines[0]
        at = max(1, min(len(first) - 1, int(len(first) * cut)))
        src.partial = first[at:] + b"".join(lines[1:])
        self._append(src, first[:at])

    @precondition(lambda self: any(s.partial is not None for s in self.live))
    @rule(src=files)
    @counted
    def finish_half_line(self, src):
        if not self._writable(src) or src.partial is None:
            return
        rest, src.partial = src.partial, None
        self._append(src, rest)

    @precondition(lambda self: self.live)
    @rule(src=files, which=st.integers(0, len(MALFORMED) - 1), picks=events)
    @counted
    def append_malformed(self, src, which, picks):
        if not self._writable(src):
            return
        data = (src.partial or b"") + MALFORMED[which] + b"\n"
        src.partial = None
        for kind in _kinds(src, picks):
            data += b"".join(src.event(kind))
        self._append(src, data)

    @precondition(lambda self: self.live)
    @rule(src=files, mode=st.sampled_from(["new", "edit", "retext"]))
    @counted
    def rewrite_in_place(self, src, mode):
        if not self._writable(src):
            return
        old = src.path.read_bytes()
        new = self._content_for_rewrite(src, mode, old)
        first_diff = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
        if new == old or first_diff >= HEAD:
            return  # (a change past the head of a same-inode file is not looked for, storage.md §5.4)
        ino = os.stat(src.path).st_ino
        with open(src.path, "r+b") as fh:
            fh.write(new)
            fh.truncate(len(new))
        assert os.stat(src.path).st_ino == ino
        src.partial = None
        self.append_only = False
        self._touch(src)

    @precondition(lambda self: self.live)
    @rule(src=files, mode=st.sampled_from(["new", "edit", "retext", "same"]))
    @counted
    def replace_file(self, src, mode):
        if not self._writable(src):
            return
        old = src.path.read_bytes()
        new = old if mode == "same" else self._content_for_rewrite(src, mode, old)
        tmp = src.path.with_name(src.path.name + ".tmp")  # (not a *.jsonl: discovery ignores it)
        tmp.write_bytes(new)
        os.replace(tmp, src.path)
        src.partial = None
        self.append_only = False
        self._touch(src)

    @precondition(lambda self: self.live)
    @rule(src=files, frac=st.floats(0.0, 1.0))
    @counted
    def truncate(self, src, frac):
        if not self._writable(src):
            return
        size = os.path.getsize(src.path)
        at = min(int(size * frac), size - 1, HEAD - 1)
        if at < 0:
            return
        os.truncate(src.path, at)
        src.partial = None  # (a cut inside a line leaves half a line; the next append joins it)
        self.append_only = False
        self._touch(src)

    @precondition(lambda self: any(s.client == "codex" and not s.frozen for s in self.live))
    @rule(src=files, how=st.sampled_from(["move", "copy", "zst", "zst_copy"]))
    @counted
    def archive(self, src, how):
        """Codex archives a rollout: moved (or, as seen in the wild, copied) into `archived_sessions/`, or
        compressed there as `.jsonl.zst` (codex.md §1 rules 2-4; a whole-document read, §2.1)."""
        if not self._writable(src) or src.client != "codex" or "archived_sessions" in src.path.parts:
            return
        top = self.codex_root / "archived_sessions"
        top.mkdir(exist_ok=True)
        data = src.path.read_bytes()
        target = top / (src.path.name + (".zst" if how.startswith("zst") else ""))
        if target.exists():
            return
        if how.startswith("zst"):
            target.write_bytes(zstandard.ZstdCompressor().compress(data))
        else:
            if how == "move":
                os.rename(src.path, target)
            else:
                shutil.copyfile(src.path, target)
        self.mtime_ns += 10**9
        os.utime(target, ns=(self.mtime_ns, self.mtime_ns))
        self.last_was_backfill = False
        if how in ("copy", "zst_copy"):  # a second copy of the thread: the same part_ids (absorbed by dedupe)
            copy = Source("codex", target, src.salt)
            copy.frozen = True  # (only the one in sessions/ grows)
            self.live.append(copy)
            self.append_only = False if how == "zst_copy" else self.append_only
            return
        if how == "zst":
            os.unlink(src.path)
            src.frozen = True
        src.path = target
        self.append_only = False

    @precondition(lambda self: self.live)
    @rule(src=consumes(files))
    @counted
    def delete(self, src):
        if src not in self.live:
            return
        os.unlink(src.path)
        self.live.remove(src)
        if src.path.suffix == ".jsonl":  # (a new session may come back at its path; not at a .jsonl.zst one)
            self.dead_paths.append((src.client, src.path))
        self.append_only = False
        self.last_was_backfill = False

    # -- rules: the core -----------------------------------------------------------------------------
    def _backfill(self, layout: Layout, batch_rows: int = 50_000, **options):
        """`options`: more arguments of `run_backfill` (the parallel variant's `workers` and `batch_bytes`)."""
        options = {"workers": 1, **options}
        result = run_backfill(layout, ["claude", "codex"], window=Window(), write_checkpoints=True, dry_run=False,
                              env=self.env, retention_days=0, batch_rows=batch_rows, **options)  # fmt: skip
        for p in result.providers:
            assert p.status == "ok" and p.errors == 0 and p.error is None, (p.provider, p.status, p.error)
        return result

    def _fresh(self):
        """A fresh import of the current files into an empty HYP_HOME: (rows, lines_skipped, checkpoint offset
        by path hash)."""
        fresh = Layout(Path(tempfile.mkdtemp(prefix="fresh-", dir=self.tmp)) / "hyp")
        try:
            result = self._backfill(fresh)
            skips = Counter()
            for p in result.providers:
                skips.update(p.lines_skipped)
            with StateDB.open(fresh, create=False) as db:
                offsets = {h: cp.offset for h, cp in db.get_all().items()}
            return deduped(fresh), +skips, offsets
        finally:
            shutil.rmtree(fresh.home.parent, ignore_errors=True)

    @rule(twice=st.booleans(), batch_rows=st.sampled_from([50_000, 50_000, 1, 3]))
    @counted
    def backfill(self, twice, batch_rows):
        """A backfill (with tiny batches: commits and checkpoints inside a file), maybe run again at once."""
        result = self._backfill(self.layout, batch_rows)
        self.backfills += 1
        for p in result.providers:
            self.skips.update(p.lines_skipped)
        if twice:
            again = self._backfill(self.layout)
            self.backfills += 1
            assert (again.rows_written, again.duplicates_skipped) == (0, 0), "a rerun wrote rows"
        self.last_was_backfill = True
        self.check_dataset()

    @precondition(lambda self: self.last_was_backfill)
    @rule()
    @counted
    def rerun(self):
        again = self._backfill(self.layout)
        self.backfills += 1
        assert (again.rows_written, again.duplicates_skipped) == (0, 0), "a rerun wrote rows"

    @rule()
    @counted
    def compact(self):
        before = Counter(deduped(self.layout))
        with Storage(self.layout) as storage:
            result = storage.compact()
        assert result.error is None, result.error
        assert Counter(deduped(self.layout)) == before, "compaction changed the rows"
        for f in self.layout.dataset_root.glob("**/*.parquet") if self.layout.dataset_root.is_dir() else []:
            assert len(list(f.parent.glob("*.parquet"))) == 1, f.parent

    # -- the checks ----------------------------------------------------------------------------------
    def check_dataset(self) -> None:
        fresh_rows, fresh_skips, offsets = self._fresh()
        for row in fresh_rows:
            self.versions.setdefault(row[PID], set()).add(row)
        parts = raw_partitions(self.layout)
        for part, rows in parts.items():
            ids = Counter(r[PID] for r in rows)
            dup = [k for k, n in ids.items() if n > 1]
            assert not dup, f"{part}: part_id stored twice: {dup[:3]}"
        view = deduped(self.layout)
        by_id = {r[PID]: r for r in view}
        assert len(by_id) == len(view), "the deduplicated relation repeats a part_id"
        # 2. every fresh row is in the dataset
        for row in fresh_rows:
            got = by_id.get(row[PID])
            assert got is not None, f"row lost: {row[PID]}"
            if len(self.versions[row[PID]]) == 1:
                assert got == row, _diff(got, row)
        # 3. nothing invented, nothing lost
        for row in view:
            assert row in self.versions.get(row[PID], ()), f"row no fresh import gave: {row[PID]}"
        assert self.written <= set(by_id), f"rows lost: {sorted(self.written - set(by_id))[:3]}"
        self.written |= set(by_id)
        # 4. append-only history: exactly the fresh import
        raw = [r for rows in parts.values() for r in rows]
        if self.append_only:
            assert Counter(raw) == Counter(fresh_rows), _set_diff(raw, fresh_rows)
            if self.SKIP_TOTALS:  # (a machine whose lines are also read elsewhere, the daemon's, has no such sum)
                assert +self.skips == fresh_skips, (dict(self.skips), dict(fresh_skips))
        # 5. malformed lines are counted: those the fresh import consumed (not those after a record held for a
        # timestamp or its token count, schema.md §3.2 rule 3: they are read, and counted, once it is released)
        ours = 0
        for s in self.live:
            body = _plain(s.path)
            if s.path.suffix == ".zst":  # (read whole; skipped when the plain file is there, codex.md §1 rule 3)
                end = 0 if s.path.with_suffix("").exists() else len(body)
            else:
                end = offsets.get(path_hash(os.path.realpath(s.path)), 0)
            ours += sum(line in MALFORMED for line in body[:end].split(b"\n")[:-1])
        assert fresh_skips.get("malformed", 0) >= ours, (fresh_skips, ours)


def _plain(path: Path) -> bytes:
    data = path.read_bytes()
    return zstandard.ZstdDecompressor().decompressobj().decompress(data) if path.suffix == ".zst" else data


def _diff(got: tuple, want: tuple) -> str:
    cols = [f"{c}: stored {a!r} != fresh {b!r}" for c, a, b in zip(COLUMN_NAMES, got, want, strict=True) if a != b]
    return f"{want[PID]}: " + "; ".join(cols)


def _set_diff(raw: list[tuple], fresh: list[tuple]) -> str:
    a, b = Counter(raw), Counter(fresh)
    extra, missing = a - b, b - a
    return f"stored only: {[r[PID] for r in extra][:5]}; fresh only: {[r[PID] for r in missing][:5]}"


def machine_settings(examples: int, steps: int) -> settings:
    """The settings of every stateful machine (this one, the parallel import's, the daemon's)."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        # (HYP_STATEFUL_SHRINK=0: report the first failure as found; shrinking a long run can take minutes)
        phases=[p for p in Phase if os.environ.get("HYP_STATEFUL_SHRINK", "1") != "0" or p is not Phase.shrink],
    )


ImportMachine.TestCase.settings = machine_settings(EXAMPLES, STEPS)
TestImportStateful = ImportMachine.TestCase
