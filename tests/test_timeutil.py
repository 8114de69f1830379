"""core/timeutil.py: µs timestamps, ISO 8601 text (schema.md §3.2, cli.md §1 and §7.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from import_helpers import import_file

from hypaware_tui.core.timeutil import MAX_US, MIN_US, parse_iso_us, us_to_date, us_to_iso
from hypaware_tui.importers import get_importer


def test_us_to_iso_writes_four_digit_years():
    """cli.md §1, §7.1: ISO 8601 UTC. strftime's %Y wrote `1-01-01T00:00:00Z` for the year 1 (glibc)."""
    assert us_to_iso(MIN_US) == "0001-01-01T00:00:00Z"
    assert us_to_iso(MIN_US + 86_400_000_000 * 400 + 1_500) == "0002-02-05T00:00:00.0015Z"
    assert us_to_iso(MAX_US) == "9999-12-31T23:59:59.999999Z"
    assert us_to_iso(0) == "1970-01-01T00:00:00Z" and us_to_iso(None) is None
    for text in ("0001-01-01T00:00:00Z", "0999-06-30T12:34:56.5Z", "2026-11-27T08:00:00Z"):
        assert us_to_iso(parse_iso_us(text)) == text


def test_a_record_before_1970_is_dated_by_its_own_utc_day():
    """The partition date of a row stamped before the epoch (a negative µs count) is its UTC day: a division
    that rounds towards zero filed 1969-12-31T12:00Z under 1970-01-01."""
    assert us_to_date(parse_iso_us("1969-12-31T12:00:00Z")) == "1969-12-31"
    assert us_to_date(parse_iso_us("1969-12-31T23:59:59.999999Z")) == "1969-12-31"
    assert us_to_date(parse_iso_us("1970-01-01T00:00:00Z")) == "1970-01-01"
    assert us_to_date(parse_iso_us("0001-01-01T00:00:00Z")) == "0001-01-01"
    assert us_to_date(MAX_US) == "9999-12-31"


def test_rfc3339_lowercase_z_and_leap_seconds_parse():
    """RFC 3339 allows `z` for `Z` and a second 60; `fromisoformat` refuses both, so such a line took another
    line's stamp. A leap second is 59.999999 of its minute: the row stays in its day."""
    assert parse_iso_us("2026-11-27T08:00:00z") == parse_iso_us("2026-11-27T08:00:00Z")
    assert parse_iso_us("2026-11-27T08:01:00.5z") == parse_iso_us("2026-11-27T08:01:00.500Z")
    assert parse_iso_us("2026-11-27t08:00:00z") == parse_iso_us("2026-11-27T08:00:00Z")
    assert parse_iso_us("2016-12-31T23:59:60Z") == parse_iso_us("2016-12-31T23:59:59.999999Z")
    assert parse_iso_us("2016-12-31T23:59:60.25z") == parse_iso_us("2016-12-31T23:59:59.999999Z")
    assert parse_iso_us("2017-01-01T00:59:60+01:00") == parse_iso_us("2016-12-31T23:59:59.999999Z")
    # still refused: no zone, a second 61, a `z` after an offset, a lone leap second without a zone
    for bad in ("2026-11-27T08:00:00", "2016-12-31T23:59:61Z", "2026-11-27T08:00:00+05:30z",
                "2016-12-31T23:59:60", "2026-11-27T08:00:00zz", "z" * 20):
        assert parse_iso_us(bad) is None, bad


def _claude_file(path: Path, stamps: list[str]) -> None:
    lines, prev = [], None
    for i, ts in enumerate(stamps):
        uid = f"u{i}"
        lines.append(json.dumps({"type": "user", "sessionId": "s1", "uuid": uid, "parentUuid": prev, "timestamp": ts,
                                 "cwd": "/r", "message": {"role": "user", "content": f"m{i}"}}))
        prev = uid
    path.write_text("\n".join(lines) + "\n")


def _codex_file(path: Path, stamps: list[str]) -> None:
    lines = [json.dumps({"timestamp": stamps[0], "type": "session_meta",
                         "payload": {"id": "019ac000-0000-7000-8000-000000000009", "timestamp": stamps[0],
                                     "cwd": "/r", "originator": "codex_cli_rs", "cli_version": "0.118.0"}})]
    for i, ts in enumerate(stamps):
        lines.append(json.dumps({"timestamp": ts, "type": "response_item", "payload": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": f"m{i}"}]}}))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("client", ["claude", "codex"])
def test_both_importers_date_lowercase_z_and_leap_second_lines_by_their_own_stamp(tmp_path, client):
    """f5: a Claude line stamped `2026-11-27T08:00:00z` took the stamp of the line before it (11-26) and was
    written to the date=2026-11-26 partition; Codex likewise."""
    stamps = ["2026-11-26T10:00:00Z", "2026-11-26T23:59:60Z", "2026-11-27T08:00:00z", "2026-11-27T08:01:00.5z"]
    if client == "claude":
        path = tmp_path / "s1.jsonl"
        _claude_file(path, stamps)
    else:
        path = tmp_path / "rollout-2026-11-26T10-00-00-019ac000-0000-7000-8000-000000000009.jsonl"
        _codex_file(path, stamps)
    rows, _ = import_file(get_importer(client), path)
    got = [(r["date"], us_to_iso(r["message_created_at"])) for r in rows if r["part_index"] == 0]
    assert got == [("2026-11-26", "2026-11-26T10:00:00Z"), ("2026-11-26", "2026-11-26T23:59:59.999999Z"),
                   ("2026-11-27", "2026-11-27T08:00:00Z"), ("2026-11-27", "2026-11-27T08:01:00.5Z")]
    assert all("timestamp_source" not in json.loads(r["attributes"]).get("gateway", {}) for r in rows)
