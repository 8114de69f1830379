"""core/timeutil.py: µs timestamps, ISO 8601 text (schema.md §3.2, cli.md §1 and §7.1)."""

from __future__ import annotations

from hypaware_tui.core.timeutil import MAX_US, MIN_US, parse_iso_us, us_to_iso


def test_us_to_iso_writes_four_digit_years():
    """cli.md §1, §7.1: ISO 8601 UTC. strftime's %Y wrote `1-01-01T00:00:00Z` for the year 1 (glibc)."""
    assert us_to_iso(MIN_US) == "0001-01-01T00:00:00Z"
    assert us_to_iso(MIN_US + 86_400_000_000 * 400 + 1_500) == "0002-02-05T00:00:00.0015Z"
    assert us_to_iso(MAX_US) == "9999-12-31T23:59:59.999999Z"
    assert us_to_iso(0) == "1970-01-01T00:00:00Z" and us_to_iso(None) is None
    for text in ("0001-01-01T00:00:00Z", "0999-06-30T12:34:56.5Z", "2026-11-27T08:00:00Z"):
        assert us_to_iso(parse_iso_us(text)) == text
