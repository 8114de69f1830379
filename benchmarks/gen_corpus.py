"""Generate realistic Claude Code and Codex history of a chosen size, for benchmarks.

    python benchmarks/gen_corpus.py OUT_DIR --mb 250 [--seed 7] [--claude-share 0.6]

Writes OUT_DIR/home/.claude/projects/<project>/<session>.jsonl (with nested subagent files and sidecars) and
OUT_DIR/home/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl. Shapes and proportions follow real files:
streamed split assistant lines sharing message.id/requestId, tool calls with large tool results, thinking
blocks, file-history snapshots and progress lines, compaction boundaries, subagents; Codex envelope rollouts
with session_meta, turn_context, reasoning (summary + encrypted_content), function calls and outputs, and
token_count events after each response (with re-emits). Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta

WORDS = (
    "the a function test error file module import return value list parser state offset checkpoint row "
    "commit storage partition session token model cache read write query daemon wizard screen import "
    "config retention window schema column frame batch line json bytes chunk stream worker message"
).split()
TOOLS = ["Bash", "Read", "Edit", "Grep", "Glob", "Write", "TodoWrite", "Task", "WebFetch"]
MODELS_CLAUDE = ["claude-opus-4-6", "claude-sonnet-4-5", "claude-haiku-4-5"]
MODELS_CODEX = ["gpt-5-codex", "gpt-5.1-codex-max", "o4-mini"]
REPOS = ["/home/ada/src/hyp", "/home/ada/src/web-app", "/home/ada/work/billing", "/home/ada/src/dotfiles",
         "/home/ada/work/infra", "/home/ada/src/notes"]


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def code_blob(rng: random.Random, kb: int) -> str:
    lines = []
    size = 0
    while size < kb * 1024:
        line = f"    {rng.choice(WORDS)}_{rng.randint(0, 999)} = {rng.choice(WORDS)}({words(rng, 4)!r})"
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class ClaudeSession:
    def __init__(self, rng: random.Random, start: datetime, cwd: str) -> None:
        self.rng = rng
        self.t = start
        self.cwd = cwd
        self.sid = str(uuid.UUID(int=rng.getrandbits(128)))
        self.parent = None
        self.version = rng.choice(["2.0.14", "2.1.92", "2.1.96"])
        self.model = rng.choice(MODELS_CLAUDE)

    def _base(self, type_: str) -> dict:
        self.t += timedelta(seconds=self.rng.uniform(0.5, 20))
        u = str(uuid.UUID(int=self.rng.getrandbits(128)))
        d = {"parentUuid": self.parent, "isSidechain": False, "userType": "external", "cwd": self.cwd,
             "sessionId": self.sid, "version": self.version, "gitBranch": "main", "type": type_, "uuid": u,
             "timestamp": iso(self.t)}
        self.parent = u
        return d

    def turn(self) -> list[str]:
        rng = self.rng
        out = []
        u = self._base("user")
        u["message"] = {"role": "user", "content": words(rng, rng.randint(5, 60))}
        out.append(dumps(u))
        snap = {"type": "file-history-snapshot", "messageId": u["uuid"], "snapshot": {"trackedFileBackups": {},
                "timestamp": iso(self.t)}, "isSnapshotUpdate": False}
        out.append(dumps(snap))
        for _ in range(rng.randint(1, 6)):  # tool round trips
            msg_id = f"msg_{rng.getrandbits(64):016x}"
            req = f"req_{rng.getrandbits(64):016x}"
            usage = {"input_tokens": rng.randint(1, 20), "cache_creation_input_tokens": rng.randint(0, 3000),
                     "cache_read_input_tokens": rng.randint(1000, 90000), "output_tokens": rng.randint(1, 30),
                     "service_tier": "standard"}
            blocks = []
            if rng.random() < 0.5:
                blocks.append({"type": "thinking", "thinking": words(rng, rng.randint(20, 200)),
                               "signature": base64.b64encode(rng.randbytes(96)).decode()})
            blocks.append({"type": "text", "text": words(rng, rng.randint(5, 80))})
            tool = rng.choice(TOOLS)
            tid = f"toolu_{rng.getrandbits(80):020x}"
            blocks.append({"type": "tool_use", "id": tid, "name": tool,
                           "input": {"command": words(rng, 6), "description": words(rng, 5)}})
            for i, b in enumerate(blocks):  # streamed split: one line per block, same id and request
                a = self._base("assistant")
                a["requestId"] = req
                usage = dict(usage, output_tokens=usage["output_tokens"] + rng.randint(0, 200))
                a["message"] = {"id": msg_id, "type": "message", "role": "assistant", "model": self.model,
                                "content": [b], "stop_reason": "tool_use" if i == len(blocks) - 1 else None,
                                "stop_sequence": None, "usage": usage}
                out.append(dumps(a))
            if rng.random() < 0.3:
                p = {"type": "progress", "sessionId": self.sid, "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
                     "timestamp": iso(self.t), "data": {"type": "hook_progress", "hookName": "PostToolUse"}}
                out.append(dumps(p))
            r = self._base("user")
            size = rng.choice([1, 1, 2, 4, 8, 16, 40]) if rng.random() < 0.6 else 0
            content = code_blob(rng, size) if size else words(rng, 20)
            r["message"] = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid,
                                                         "content": content, "is_error": rng.random() < 0.05}]}
            r["toolUseResult"] = {"stdout": content[:2000], "stderr": "", "interrupted": False}
            r["sourceToolAssistantUUID"] = self.parent
            out.append(dumps(r))
        msg_id = f"msg_{rng.getrandbits(64):016x}"
        a = self._base("assistant")
        a["requestId"] = f"req_{rng.getrandbits(64):016x}"
        a["message"] = {"id": msg_id, "type": "message", "role": "assistant", "model": self.model,
                        "content": [{"type": "text", "text": words(rng, rng.randint(20, 150))}],
                        "stop_reason": "end_turn", "usage": {"input_tokens": 4, "output_tokens": rng.randint(50, 900),
                        "cache_read_input_tokens": rng.randint(1000, 90000), "cache_creation_input_tokens": 200}}
        out.append(dumps(a))
        if rng.random() < 0.04:
            b = self._base("system")
            b.update(subtype="compact_boundary", content="Conversation compacted", parentUuid=None,
                     logicalParentUuid=a["uuid"], compactMetadata={"trigger": "auto", "preTokens": 150000})
            out.append(dumps(b))
            s = self._base("user")
            s["isCompactSummary"] = True
            s["message"] = {"role": "user", "content": "This session is being continued. " + words(rng, 200)}
            out.append(dumps(s))
        return out


class CodexRollout:
    def __init__(self, rng: random.Random, start: datetime, cwd: str) -> None:
        self.rng = rng
        self.t = start
        self.cwd = cwd
        self.tid = str(uuid.UUID(int=rng.getrandbits(128)))
        self.model = rng.choice(MODELS_CODEX)
        self.total = {"input_tokens": 0, "cached_input_tokens": 0, "output_tokens": 0,
                      "reasoning_output_tokens": 0, "total_tokens": 0}

    def env(self, type_: str, payload: dict) -> str:
        self.t += timedelta(seconds=self.rng.uniform(0.2, 10))
        return dumps({"timestamp": iso(self.t), "type": type_, "payload": payload})

    def header(self) -> list[str]:
        return [self.env("session_meta", {"id": self.tid, "timestamp": iso(self.t), "cwd": self.cwd,
                                          "originator": "codex_cli_rs", "cli_version": "0.98.0",
                                          "instructions": None, "source": "cli", "model_provider": "openai",
                                          "git": {"commit_hash": f"{self.rng.getrandbits(160):040x}",
                                                  "branch": "main", "repository_url": "git@github.com:ada/x.git"}})]

    def tokens(self, out_tokens: int) -> str:
        last = {"input_tokens": self.rng.randint(2000, 60000), "cached_input_tokens": self.rng.randint(0, 50000),
                "output_tokens": out_tokens, "reasoning_output_tokens": out_tokens // 3}
        last["cached_input_tokens"] = min(last["cached_input_tokens"], last["input_tokens"])
        last["total_tokens"] = last["input_tokens"] + last["output_tokens"]
        for k in self.total:
            self.total[k] += last[k]
        return self.env("event_msg", {"type": "token_count", "info": {"total_token_usage": dict(self.total),
                        "last_token_usage": last, "model_context_window": 272000}, "rate_limits": None})

    def turn(self) -> list[str]:
        rng = self.rng
        turn_id = str(uuid.UUID(int=rng.getrandbits(128)))
        out = [self.env("event_msg", {"type": "task_started", "turn_id": turn_id, "model_context_window": 272000}),
               self.env("turn_context", {"turn_id": turn_id, "cwd": self.cwd, "approval_policy": "on-request",
                                         "sandbox_policy": {"type": "workspace-write"}, "model": self.model,
                                         "effort": "medium", "summary": "auto"})]
        text = words(rng, rng.randint(5, 60))
        out.append(self.env("response_item", {"type": "message", "role": "user",
                                              "content": [{"type": "input_text", "text": text}]}))
        out.append(self.env("event_msg", {"type": "user_message", "message": text, "images": []}))
        for _ in range(rng.randint(1, 6)):
            out.append(self.env("response_item", {"type": "reasoning", "summary": [
                {"type": "summary_text", "text": words(rng, rng.randint(10, 60))}],
                "content": None, "encrypted_content": base64.b64encode(rng.randbytes(rng.randint(300, 2000))).decode()}))
            call_id = f"call_{rng.getrandbits(96):024x}"
            out.append(self.env("response_item", {"type": "function_call", "name": "shell", "arguments": dumps(
                {"command": ["bash", "-lc", words(rng, 5)], "workdir": self.cwd}), "call_id": call_id}))
            out.append(self.tokens(rng.randint(20, 400)))
            size = rng.choice([1, 2, 4, 8, 16, 32]) if rng.random() < 0.6 else 0
            output = code_blob(rng, size) if size else words(rng, 15)
            out.append(self.env("response_item", {"type": "function_call_output", "call_id": call_id,
                                                  "output": dumps({"output": output, "metadata": {
                                                      "exit_code": 0 if rng.random() > 0.1 else 1,
                                                      "duration_seconds": 0.4}})}))
            if rng.random() < 0.4:  # a re-emit with an unchanged total
                out.append(self.env("event_msg", {"type": "token_count", "info": {
                    "total_token_usage": dict(self.total), "last_token_usage": None}, "rate_limits": None}))
        out.append(self.env("response_item", {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": words(rng, rng.randint(20, 200))}]}))
        out.append(self.tokens(rng.randint(50, 900)))
        out.append(self.env("event_msg", {"type": "task_complete", "turn_id": turn_id, "last_agent_message": None}))
        return out


def write_lines(path: str, lines: list[str]) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)


def generate(out: str, mb: float, seed: int = 7, claude_share: float = 0.6, now: datetime | None = None) -> dict:
    rng = random.Random(seed)
    now = now or datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    home = os.path.join(out, "home")
    target_claude = int(mb * 1024 * 1024 * claude_share)
    target_codex = int(mb * 1024 * 1024) - target_claude
    stats = {"claude_files": 0, "claude_bytes": 0, "codex_files": 0, "codex_bytes": 0}
    while stats["claude_bytes"] < target_claude:
        cwd = rng.choice(REPOS)
        start = now - timedelta(days=rng.uniform(0, 100))
        s = ClaudeSession(rng, start, cwd)
        lines = []
        for _ in range(rng.choice([1, 3, 8, 20, 40, 80])):
            lines += s.turn()
        project = os.path.join(home, ".claude", "projects", cwd.replace("/", "-"))
        stats["claude_bytes"] += write_lines(os.path.join(project, f"{s.sid}.jsonl"), lines)
        stats["claude_files"] += 1
        if rng.random() < 0.25:  # a nested subagent file with its sidecar
            agent = f"a{rng.getrandbits(64):016x}"
            sub = ClaudeSession(rng, s.t - timedelta(minutes=5), cwd)
            sub.sid = s.sid
            sub_lines = []
            for _ in range(rng.randint(1, 5)):
                for line in sub.turn():
                    obj = json.loads(line)
                    if "sessionId" in obj:
                        obj["isSidechain"] = True
                        obj["agentId"] = agent
                    sub_lines.append(dumps(obj))
            subdir = os.path.join(project, s.sid, "subagents")
            stats["claude_bytes"] += write_lines(os.path.join(subdir, f"agent-{agent}.jsonl"), sub_lines)
            with open(os.path.join(subdir, f"agent-{agent}.meta.json"), "w") as fh:
                json.dump({"agentType": "general-purpose", "toolUseId": f"toolu_{rng.getrandbits(80):020x}"}, fh)
            stats["claude_files"] += 1
    while stats["codex_bytes"] < target_codex:
        cwd = rng.choice(REPOS)
        start = now - timedelta(days=rng.uniform(0, 100))
        r = CodexRollout(rng, start, cwd)
        lines = r.header()
        for _ in range(rng.choice([1, 3, 8, 20, 40])):
            lines += r.turn()
        day = start.strftime("%Y/%m/%d")
        name = f"rollout-{start.strftime('%Y-%m-%dT%H-%M-%S')}-{r.tid}.jsonl"
        stats["codex_bytes"] += write_lines(os.path.join(home, ".codex", "sessions", day, name), lines)
        stats["codex_files"] += 1
    return stats


def append_percent(out: str, percent: float, seed: int = 11) -> int:
    """Append about `percent` % of new complete turns to existing session files (newest timestamps)."""
    rng = random.Random(seed)
    home = os.path.join(out, "home")
    files = []
    for root, _, names in os.walk(home):
        files += [os.path.join(root, n) for n in names if n.endswith(".jsonl")]
    files.sort()
    total = sum(os.path.getsize(f) for f in files)
    goal, added = total * percent / 100, 0
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    while added < goal:
        path = rng.choice(files)
        last = json.loads(open(path, "rb").read().rstrip(b"\n").rsplit(b"\n", 1)[-1])
        if "/.codex/" in path:
            r = CodexRollout(rng, now, rng.choice(REPOS))
            meta = json.loads(open(path, "rb").readline())
            r.tid = meta["payload"]["id"]
            lines = r.turn()
        else:
            s = ClaudeSession(rng, now, last.get("cwd", REPOS[0]))
            s.sid = last.get("sessionId", s.sid)
            lines = s.turn()
        data = ("\n".join(lines) + "\n").encode()
        with open(path, "ab") as fh:
            fh.write(data)
        added += len(data)
        now += timedelta(minutes=1)
    return int(added)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=250)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--claude-share", type=float, default=0.6)
    args = ap.parse_args()
    print(json.dumps(generate(args.out, args.mb, args.seed, args.claude_share)))


if __name__ == "__main__":
    main()
