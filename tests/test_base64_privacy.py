"""schema.md §3.4 rule 3: image, audio and document bytes are never stored in any column (and the wizard's
consent says "Image contents are never stored"). Inline base64 data URIs are omitted wherever source text is
stored: not only content_text (rule 2) but every text column, the checkpoint's parser state, and the forms of
a data URI the rule 2 pattern alone does not see (upper-case `;BASE64,`, escaped slashes inside JSON text,
line-wrapped payloads)."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypaware_tui.core.reader import FilePass
from hypaware_tui.importers.base import ParseStats, Window, loads_state, strip_base64
from hypaware_tui.importers.claude import ClaudeImporter
from hypaware_tui.importers.codex import CodexImporter

sys.path.insert(0, str(Path(__file__).parent))
from import_helpers import import_file, source_file_for  # noqa: E402

# A PNG's base64: `iVBORw0KGgo` is what every PNG's encoding starts with; 1536 bytes make 2048 characters.
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 6).decode()
MARK = PNG[:16]
WRAPPED = "\n".join(PNG[i : i + 76] for i in range(0, len(PNG), 76))  # as `base64` and MIME emit it
OMITTED = "data:image/png;base64,<omitted>"


def _ts(seconds: int) -> str:
    t = datetime.now(UTC) - timedelta(days=1) + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _d(o: object) -> str:
    return json.dumps(o, separators=(",", ":"))


def write_claude_api_error(root: Path) -> Path:
    """A Claude session whose API-error line (`isApiErrorMessage`) quotes a request holding an image."""
    sid = str(uuid.uuid4())
    path = root / ".claude" / "projects" / "-srv-proj" / f"{sid}.jsonl"
    path.parent.mkdir(parents=True)
    base = {"isSidechain": False, "userType": "external", "cwd": "/srv/proj", "sessionId": sid, "version": "2.1.92"}
    u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
    lines = [
        {**base, "parentUuid": None, "type": "user", "uuid": u1, "timestamp": _ts(0),
         "message": {"role": "user", "content": "what is in this picture?"}},
        {**base, "parentUuid": u1, "type": "assistant", "uuid": u2, "timestamp": _ts(5), "isApiErrorMessage": True,
         "message": {"id": "msg_synth", "type": "message", "role": "assistant", "model": "<synthetic>",
                     "content": [{"type": "text", "text": f"API Error: 400 image rejected: data:image/png;base64,{PNG}"}],
                     "stop_reason": "stop_sequence", "usage": {"input_tokens": 0, "output_tokens": 0}}},
    ]  # fmt: skip
    path.write_text("".join(_d(o) + "\n" for o in lines))
    return path


def _codex_path(root: Path) -> tuple[Path, list[dict]]:
    tid = str(uuid.uuid4())
    now = datetime.now(UTC) - timedelta(days=1)
    path = root / ".codex" / "sessions" / now.strftime("%Y/%m/%d") / f"rollout-{now:%Y-%m-%dT%H-%M-%S}-{tid}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = [
        {"timestamp": _ts(0), "type": "session_meta", "payload": {
            "id": tid, "timestamp": _ts(0), "cwd": "/srv/proj", "originator": "codex_cli_rs", "cli_version": "0.63.0"}},
        {"timestamp": _ts(1), "type": "turn_context", "payload": {"cwd": "/srv/proj", "model": "gpt-5-codex"}},
        {"timestamp": _ts(2), "type": "response_item", "payload": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "draw me a square"}]}},
    ]  # fmt: skip
    return path, head


def write_codex_error(root: Path) -> Path:
    """A Codex rollout with an `error` event whose message holds a data URI."""
    path, lines = _codex_path(root)
    lines.append({"timestamp": _ts(3), "type": "event_msg", "payload": {
        "type": "error", "message": f"stream error: unsupported data:image/png;base64,{PNG}"}})  # fmt: skip
    path.write_text("".join(_d(o) + "\n" for o in lines))
    return path


def write_codex_candidate(root: Path) -> Path:
    """A Codex rollout whose last record is an assistant `output_text` with a data URI and no token_count
    after it: the message is the held candidate (codex.md §6.2), kept in the checkpoint's parser state."""
    path, lines = _codex_path(root)
    lines += [
        {"timestamp": _ts(3), "type": "response_item", "payload": {
            "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "first"}]}},
        {"timestamp": _ts(4), "type": "event_msg", "payload": {"type": "token_count", "info": {
            "total_token_usage": {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 2},
            "last_token_usage": {"input_tokens": 10, "cached_input_tokens": 0, "output_tokens": 2}}}},
        {"timestamp": _ts(5), "type": "response_item", "payload": {
            "type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": f"here it is: data:image/png;base64,{PNG}"}]}},
    ]  # fmt: skip
    path.write_text("".join(_d(o) + "\n" for o in lines))
    return path


def _texts(rows: list[dict]) -> str:
    return json.dumps([{k: v for k, v in r.items() if isinstance(v, str)} for r in rows])


# -------------------------------------------------------------------------------------- every text column


def test_claude_api_error_status_never_holds_the_image(tmp_path):
    rows, _ = import_file(ClaudeImporter(), write_claude_api_error(tmp_path))
    (err,) = [r for r in rows if r["is_error"]]
    assert err["content_text"] == f"API Error: 400 image rejected: {OMITTED}"
    assert json.loads(err["status"]) == {"error_code": "400", "error_message": f"API Error: 400 image rejected: {OMITTED}"}
    assert MARK not in _texts(rows)


def test_codex_error_event_status_never_holds_the_image(tmp_path):
    rows, _ = import_file(CodexImporter(), write_codex_error(tmp_path))
    (err,) = [r for r in rows if r["part_type"] == "error"]
    assert err["content_text"] == f"stream error: unsupported {OMITTED}"
    assert json.loads(err["status"]) == {"error_message": f"stream error: unsupported {OMITTED}"}
    assert MARK not in _texts(rows)


# -------------------------------------------------------------------------------------- stored on disk


def _stored_text(hyp: Path) -> str:
    """Every string cell of every Parquet file, every cell of every SQLite table, and the bytes of every
    other file under HYP_HOME."""
    out: list[str] = []
    for f in sorted(hyp.rglob("*")):
        if not f.is_file():
            continue
        if f.suffix == ".parquet":
            df = pl.read_parquet(f)
            out += [str(v) for c in df.columns if df.schema[c] == pl.String for v in df[c].to_list()]
        elif f.name.endswith(".sqlite"):
            con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
            try:
                for (t,) in con.execute("select name from sqlite_master where type='table'").fetchall():
                    out += [str(v) for row in con.execute(f'select * from "{t}"') for v in row]
            finally:
                con.close()
        elif not f.name.endswith(("-wal", "-shm")):
            out.append(f.read_bytes().decode("utf-8", "replace"))
    return "\n".join(out)


def test_backfill_stores_no_image_bytes_anywhere(tmp_path):
    """A real `hyp backfill` over the three sources above: no column of the dataset, no cell of the state
    database (the held Codex candidate is saved in `files.parser_state`) and no other file holds the image."""
    home, hyp = tmp_path / "home", tmp_path / "hyp"
    write_claude_api_error(home)
    write_codex_error(home)
    write_codex_candidate(home)
    _backfill(home, hyp)
    con = sqlite3.connect(f"file:{hyp / 'state' / 'ingest.sqlite'}?mode=ro", uri=True)
    states = [s for (s,) in con.execute("select parser_state from files")]
    con.close()
    assert any(OMITTED in s for s in states)  # the candidate is there, without its payload
    stored = _stored_text(hyp)
    assert OMITTED in stored
    assert MARK not in stored


def test_a_candidate_saved_by_an_older_version_is_stripped_when_emitted(tmp_path):
    """A parser state written before candidates were stripped still holds the payload: the rows it becomes
    when the file grows are stripped all the same."""
    imp = CodexImporter()
    path = write_codex_candidate(tmp_path)
    file = source_file_for(imp, path)
    fp = FilePass(imp, file, None, Window(), ParseStats(), write_checkpoints=True)
    entry = None
    for batch in fp.batches():
        if batch.update is not None:
            entry = batch.update.entry
    assert entry is not None
    state = loads_state(entry.parser_state)
    (cand,) = state["candidate"]
    assert cand["content_text"] == f"here it is: {OMITTED}"
    cand["content_text"] = f"here it is: data:image/png;base64,{PNG}"  # as the old code saved it
    entry = dataclasses.replace(entry, parser_state=json.dumps(state))
    with open(path, "a") as fh:
        fh.write(_d({"timestamp": _ts(9), "type": "event_msg", "payload": {"type": "token_count", "info": {
            "total_token_usage": {"input_tokens": 30, "cached_input_tokens": 0, "output_tokens": 9},
            "last_token_usage": {"input_tokens": 20, "cached_input_tokens": 0, "output_tokens": 7}}}}) + "\n")  # fmt: skip
    file = source_file_for(imp, path)
    rows = [r for b in FilePass(imp, file, entry, Window(), ParseStats(), write_checkpoints=True).batches()
            for r in b.rows]  # fmt: skip
    (msg,) = [r for r in rows if r.get("content_text", "").startswith("here it is")]
    assert msg["content_text"] == f"here it is: {OMITTED}" and msg["output_tokens"] == 7
    assert MARK not in _texts(rows)


# -------------------------------------------------------------------------------------- the forms of a data URI


@pytest.mark.parametrize(("text", "want"), [
    # RFC 2397: `;base64` (and the `data:` scheme) in any case
    (f"see data:image/png;BASE64,{PNG} now", f"see {OMITTED} now"),
    (f"see DATA:image/png;Base64,{PNG}== now", f"see {OMITTED} now"),
    # a tool result that is JSON from an encoder that escapes slashes (PHP's json_encode): the media type is
    # kept as written, so the JSON stays valid
    (json.dumps({"img": f"data:image/png;base64,{PNG}"}).replace("/", "\\/"),
     '{"img": "data:image\\/png;base64,<omitted>"}'),
    # line-wrapped at 76 (`base64`, MIME), LF or CRLF: every line goes, the text after it stays
    (f"data:image/png;base64,{WRAPPED}\nThe image shows a square.\n", f"{OMITTED}\nThe image shows a square.\n"),
    (f"data:image/png;base64,{WRAPPED}\r\nThe image shows a square.", f"{OMITTED}\r\nThe image shows a square."),
    (f"x data:image/png;base64,\n{WRAPPED}\ny", f"x {OMITTED}\ny"),  # the payload starts on the next line
    (json.dumps({"t": f"data:image/png;base64,{WRAPPED}\nok"}), f'{{"t": "{OMITTED}\\nok"}}'),  # in JSON text
], ids=["upper-BASE64", "upper-DATA-padded", "json-escaped-slashes", "wrapped-lf", "wrapped-crlf",
        "wrapped-from-next-line", "wrapped-in-json"])  # fmt: skip
def test_data_uri_variants_are_omitted(text, want):
    got = strip_base64(text)
    assert got == want
    assert MARK not in got and PNG[-40:] not in got
    assert strip_base64(got) == got


@pytest.mark.parametrize("text", [
    "data:image/png;base64,iVBORw0KGgo=\nThe next line is an ordinary sentence.",
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg\nThanks",
    f"data:image/png;base64,{PNG[:76]}\nDone",
    "data:image/png;base64,iVBORw0KGgo\n" + "-" * 70,  # a rule under it, not base64
    "a data:image/png;base64, with nothing after it",
], ids=["padded-then-sentence", "short-then-word", "one-line-then-word", "then-a-rule", "no-payload"])  # fmt: skip
def test_text_after_a_data_uri_stays(text):
    got = strip_base64(text)
    head, sep, tail = text.partition("\n")
    if sep:
        assert got == "data:image/png;base64,<omitted>\n" + tail
    else:
        assert got == text


# Rule 2's own pattern: what it already omitted is omitted exactly as before (text without the widened forms:
# no upper case, backslash or line break), and stripping twice changes nothing.
_RULE2 = re.compile(
    r"data:([A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(?:;[A-Za-z0-9!#$&^_.+=-]+)*)?;base64,[A-Za-z0-9+/_-]+=*"
)
_PIECES = ["data:", "image/png", "a/b", ";base64,", ";name=x.png", "AAAA", "iVBOR+/_-", "==", "=", " ", "x", ":",
           ";", "/", ",", "data", "64,", "é", "<omitted>", "\t"]  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14))
def test_what_rule_2_omitted_stays_byte_identical(pieces):
    text = "".join(pieces)
    want = _RULE2.sub(lambda m: f"data:{m.group(1) or 'application/octet-stream'};base64,<omitted>", text)
    assert strip_base64(text) == want


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([*_PIECES, "DATA:", ";BASE64,", "\\/", "\n", "\r\n", "\\n", PNG[:76], PNG[76:140]]),
                max_size=14))  # fmt: skip
def test_stripping_is_idempotent(pieces):
    once = strip_base64("".join(pieces))
    assert strip_base64(once) == once


# -------------------------------------------------------------------------------------- memory and time


@pytest.mark.parametrize("escape", [False, True], ids=["plain", "json-escaped-slashes"])
def test_a_large_payload_is_stripped_in_little_memory_and_time(escape):
    """A 4 MB image payload: stripping it holds no more than a few times the text in memory and takes well
    under a second (a repeated alternation in the pattern cost ~170 bytes a character: 20 MB took 3 GB)."""
    payload = base64.b64encode(bytes(range(256)) * 12_288).decode()  # 4 MiB of base64
    text = "see data:image/png;base64," + (payload.replace("/", "\\/") if escape else payload) + " end"
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        got = strip_base64(text)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == f"see {OMITTED} end"
    assert peak < 5 * len(text), f"peak {peak / len(text):.1f}x the text"
    assert elapsed < 1.0, f"{elapsed:.2f} s"


# -------------------------------------------------------------------------------------- ids stay verbatim

_DATA_IDS = ("data:a/b;base64,AAAA", "data:a/b;base64,BBBB", "toolu_data:x/y;base64,QUJD", "data:q/r;base64,Zm9v")
_SHA1 = "3a3a2244b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6"
_P72 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"  # a 1x1 PNG, 72 characters


def write_claude_data_uri_ids(root: Path) -> None:
    """Two Claude sessions whose native ids (uuid, parentUuid, tool_use id, sessionId) look like data URIs."""
    d1, d2, tool, sid2 = _DATA_IDS
    proj = root / ".claude" / "projects" / "-p"
    proj.mkdir(parents=True)
    base = {"isSidechain": False, "userType": "external", "cwd": "/w", "version": "2.0.14"}

    def user(uuid_, parent, content, t, sid="s1"):
        return {**base, "sessionId": sid, "parentUuid": parent, "type": "user", "uuid": uuid_, "timestamp": _ts(t),
                "message": {"role": "user", "content": content}}  # fmt: skip

    s1 = [
        user(d1, None, "first message", 0),
        user(d2, d1, "second message", 1),
        {**base, "sessionId": "s1", "parentUuid": d2, "type": "assistant", "uuid": "u3", "timestamp": _ts(2),
         "requestId": "req_1", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
         "content": [{"type": "tool_use", "id": tool, "name": "Bash", "input": {"command": "git rev-parse HEAD"}}],
         "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1}}},
        user("u4", "u3", [{"type": "tool_result", "tool_use_id": tool,
                           "content": f"data:image/png;base64,{_P72}\n{_SHA1}\n"}], 3),
        user("u5", "u4", f"The prefix is data:image/png;base64,\n{_SHA1}\nis the commit.", 4),
    ]  # fmt: skip
    (proj / "s1.jsonl").write_text("".join(_d(o) + "\n" for o in s1))
    (proj / "s2.jsonl").write_text(_d(user("v1", None, "hello", 5, sid=sid2)) + "\n")


def _backfill(home: Path, hyp: Path) -> None:
    hyp.mkdir(mode=0o700)
    (hyp / "hypaware-config.json").write_text(json.dumps({
        "version": 1, "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
        "retention_days": 120, "capture": {"enabled": False}}))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("HYP_DEBUG", "DEV_RUN_ID", "HYP_WORKERS")}
    env.update(HOME=str(home), HYP_HOME=str(hyp), CLAUDE_CONFIG_DIR=str(home / ".claude"),
               CODEX_HOME=str(home / ".codex"), NO_COLOR="1")  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "hypaware_tui", "backfill", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_ids_that_look_like_data_uris_are_stored_verbatim(tmp_path):
    """schema.md §4.2/§4.4/§4.6: native ids are kept as written. Two messages whose uuids differ only in a
    data-URI-shaped payload stay two rows (they were both rewritten to `data:a/b;base64,<omitted>#0` and one
    was dropped as a duplicate); only the content columns are stripped."""
    d1, d2, tool, sid2 = _DATA_IDS
    home, hyp = tmp_path / "home", tmp_path / "hyp"
    write_claude_data_uri_ids(home)
    _backfill(home, hyp)
    df = pl.concat([pl.read_parquet(f) for f in sorted(hyp.rglob("*.parquet"))], how="vertical")
    rows = {r["provider_uuid"]: r for r in df.to_dicts()}
    assert sorted(rows) == sorted([d1, d2, "u3", "u4", "u5", "v1"])
    for u, r in rows.items():
        assert r["message_id"] == u and r["part_id"] == f"{u}#0"
    assert rows[d2]["parent_uuid"] == d1 and rows["u3"]["parent_uuid"] == d2
    assert json.loads(rows[d2]["previous_message_id"]) == [d1]
    assert rows["u3"]["tool_call_id"] == tool and rows["u4"]["tool_call_id"] == tool
    assert rows["u4"]["tool_result_for"] == tool
    assert rows["v1"]["session_id"] == sid2 and rows["v1"]["conversation_id"] == sid2
    # raw_frame holds ids, types and a timestamp, never content: its ids are the ones the id columns hold
    assert json.loads(rows[d1]["raw_frame"])["uuid"] == d1
    assert json.loads(rows[d2]["raw_frame"])["parentUuid"] == d1
    assert rows["u4"]["content_text"] == f"{OMITTED}\n{_SHA1}\n"  # the content is still stripped
    assert rows["u5"]["content_text"] == f"The prefix is data:image/png;base64,\n{_SHA1}\nis the commit."


def test_a_held_codex_candidate_keeps_its_id_verbatim(tmp_path):
    """The Codex candidate saved in the parser state (an assistant message waiting for its token_count) is
    stripped like a finalized row: its content, not its ids."""
    path = write_codex_candidate(tmp_path)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    item_id = "msg_data:a/b;base64,QUJDRA"
    lines[-1]["payload"]["id"] = item_id
    lines.append({"timestamp": _ts(9), "type": "event_msg", "payload": {"type": "token_count", "info": {
        "total_token_usage": {"input_tokens": 30, "cached_input_tokens": 0, "output_tokens": 9},
        "last_token_usage": {"input_tokens": 20, "cached_input_tokens": 0, "output_tokens": 7}}}})  # fmt: skip
    path.write_text("".join(_d(o) + "\n" for o in lines))
    rows, _ = import_file(CodexImporter(), path)
    (msg,) = [r for r in rows if (r["content_text"] or "").startswith("here it is")]
    assert msg["message_id"] == item_id and msg["part_id"] == f"{item_id}#0"
    assert msg["provider_uuid"] == item_id
    assert json.loads(msg["raw_frame"])["payload"]["id"] == item_id
    assert msg["content_text"] == f"here it is: {OMITTED}" and msg["output_tokens"] == 7


# -------------------------------------------------------------------------------------- text after a payload

_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
_A76 = "QUJD" * 19  # one 76-character line of base64
# PNG payloads that end in `==` and make `data:image/png;base64,` + payload 2 more than a multiple of 76
_B97 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(89))).decode()  # 132 characters
_B40 = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(32))).decode()  # 56


def _wrap(s: str, width: int) -> str:
    return "\n".join(s[i : i + width] for i in range(0, len(s), width))


@pytest.mark.parametrize(("text", "want"), [
    # `;base64,` ends the line: a digest on the next line is the user's text
    (f"The prefix is data:image/png;base64,\n{_SHA1}\nis the commit.", None),
    (f"Prefix: data:image/png;base64,\n{_SHA256}\nend", None),
    (f"Prefix: data:image/png;base64,\n{_SHA256}\n{_SHA256}\nend", None),
    # a payload that is no wrap width wide ends on its line, whatever follows
    (f"data:text/plain;base64,SGVsbG8h\n{_SHA256}\nrest", f"data:text/plain;base64,<omitted>\n{_SHA256}\nrest"),
    (f"data:image/png;base64,{_P72}\n{_SHA1}\nrest", f"{OMITTED}\n{_SHA1}\nrest"),
    (f"data:image/png;base64,{_P72}\n{_SHA256}\nrest", f"{OMITTED}\n{_SHA256}\nrest"),
    (f"data:image/png;base64,{_P72}\n0123456789abcdef0123456789abcdef\nrest",
     f"{OMITTED}\n0123456789abcdef0123456789abcdef\nrest"),
    (f"data:image/png;base64,{_P72}\nabc1\nrest", f"{OMITTED}\nabc1\nrest"),
    (f"data:image/png;base64,{_P72}\n2024\nrest", f"{OMITTED}\n2024\nrest"),
    (_d({"u": f"data:image/png;base64,{_P72}\n{_SHA1}"}), _d({"u": f"{OMITTED}\n{_SHA1}"})),
    # after a full 76-wide line, a list of digests (or a word) is text
    (f"data:image/png;base64,{_A76}\n" + "\n".join([_SHA1] * 3), f"{OMITTED}\n" + "\n".join([_SHA1] * 3)),
    (f"data:image/png;base64,{_A76[:64]}\n{_SHA256}\n{_SHA256}", f"{OMITTED}\n{_SHA256}\n{_SHA256}"),
    (f"data:image/png;base64,{_A76}\n2024\nok", f"{OMITTED}\n2024\nok"),
], ids=["eol-sha1", "eol-sha256", "eol-sha256-list", "short-then-sha256", "72-then-sha1", "72-then-sha256",
        "72-then-uuid-hex", "72-then-abc1", "72-then-year", "json-escaped-then-sha1", "76-then-sha1-list",
        "64-then-sha256-list", "76-then-year"])  # fmt: skip
def test_lines_after_a_data_uri_that_are_text_stay(text, want):
    got = strip_base64(text)
    assert got == (text if want is None else want)
    assert strip_base64(got) == got


@pytest.mark.parametrize("text", [
    "data:image/png;base64," + "\n".join([_A76] * 3 + ["QUJD"]),  # 76-wide, an unpadded short last line
    "data:image/png;base64," + "\n".join(["A" * 76] * 3 + ["AAAA"]),
    "data:image/png;base64," + "\n".join([_A76[:64]] * 4 + ["QUI="]),  # PEM's 64
    "data:image/png;base64,\n" + "\n".join([_A76] * 2 + ["QQ=="]),  # from the next line
    "data:image/png;base64,\n" + "\n".join([_A76] * 3),
    "data:image/png;base64,\n" + _A76[:72] + "A===",  # one full padded line
    "data:image/png;base64," + _wrap(PNG, 60),  # Ruby's Base64.encode64 (and pack("m")): 60 a line
    "data:image/png;base64,\n" + _wrap(PNG, 60),
    "data:image/png;base64," + _wrap(PNG[:80], 60),  # Ruby's 60 then a short last line: no second line to agree
    "data:image/png;base64," + _wrap(PNG, 72),  # any other width >= 60, once two lines agree
    "data:image/png;base64,\n" + _wrap(PNG, 100),
    "data:image/png;base64,QUJD\n" + _wrap(PNG, 68),
    _wrap(f"data:image/png;base64,{_B97}", 76),  # the whole URI folded at 76: a last line of `==` alone
    _wrap(f"data:image/png;base64,{_B40}", 76),  # ... right after the first line
    _wrap(f"data:image/png;base64,{PNG}", 64),
    "data:image/png;base64,\niVBORw0KGgo=",  # `;base64,` ends its line: one padded line
], ids=["76-short-last", "76-AAAA", "64-padded", "next-line-padded", "next-line-full", "next-line-one-padded",
        "ruby-60", "ruby-60-next-line", "ruby-60-two-lines", "72-wide", "100-wide-next-line", "68-wide-after-a-short-first",
        "folded-76-padding-line", "folded-76-two-lines", "folded-64", "next-line-one-padded-short"])  # fmt: skip
def test_wrapped_payloads_are_omitted_whole(text):
    assert strip_base64(text + "\nNext line text") == f"{OMITTED}\nNext line text"
    assert strip_base64(json.dumps({"t": text})) == json.dumps({"t": OMITTED})  # (in JSON text, to its end)


@pytest.mark.parametrize(("text", "want"), [
    ("data:image/png;base64,\niVBORw0KGgo=\nThe end.", f"{OMITTED}\nThe end."),
    ("data:image/png;base64,\nSGVsbG8gd29ybGQh", OMITTED),
    ("data:image/png;base64,\nSGVsbG8gd29ybGQh\n", f"{OMITTED}\n"),
    (_d({"u": "data:image/png;base64,\nSGVsbG8gd29ybGQh"}), _d({"u": OMITTED})),
    # not padded and more text after it: kept (it may be the user's text)
    ("data:image/png;base64,\nSGVsbG8gd29ybGQh\nThe end.", None),
    ("data:image/png;base64,\nabc1", None),  # a hex id
    ("data:image/png;base64,\nHello", None),  # a word
], ids=["padded-then-text", "end-of-text", "end-of-text-newline", "end-of-json-value", "unpadded-then-text",
        "hex-at-end", "word-at-end"])  # fmt: skip
def test_one_line_after_a_base64_comma_at_the_end_of_a_line(text, want):
    got = strip_base64(text)
    assert got == (text if want is None else want)
    assert strip_base64(got) == got
