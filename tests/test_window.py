"""Date flags and the import window (cli.md §1 "Dates", §5.1-5.2; storage.md §7)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest

from hypaware_tui.core.timeutil import MAX_US, MIN_US, date_start_us, parse_iso_us
from hypaware_tui.core.window import (
    WindowError,
    cut_date,
    describe_window,
    import_floor_us,
    local_text,
    parse_range,
    parse_since,
    parse_until,
    resolve_window,
)
from hypaware_tui.importers.base import Window

US = 1_000_000


def _set_tz(value: str | None) -> None:
    if value is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = value
    time.tzset()


@pytest.fixture
def paris():
    old = os.environ.get("TZ")
    _set_tz("Europe/Paris")
    yield
    _set_tz(old)


def test_zoned_values_are_exact():
    assert parse_since("2026-05-01T09:30:00Z") == parse_iso_us("2026-05-01T09:30:00Z")
    assert parse_since("2026-05-01T09:30:00+02:00") == parse_iso_us("2026-05-01T07:30:00Z")
    assert parse_until("2026-05-01T09:30:00.250Z") == parse_iso_us("2026-05-01T09:30:00.250Z")


def test_no_offset_means_local_time(paris):
    # Paris is UTC+2 in May
    assert parse_since("2026-05-01T09:30") == parse_iso_us("2026-05-01T07:30:00Z")
    assert parse_since("2026-05-01") == parse_iso_us("2026-04-30T22:00:00Z")
    # a bare `until` date is the end of that local day, inclusive
    assert parse_until("2026-05-01") == parse_iso_us("2026-05-01T22:00:00Z") - 1


def test_same_day_since_until_covers_the_whole_local_day(paris):
    s, u = parse_range("2026-05-01", "2026-05-01")
    assert u - s == 86_400 * US - 1
    assert s <= parse_iso_us("2026-05-01T21:59:59.999999Z") <= u
    assert not (s <= parse_iso_us("2026-05-01T22:00:00Z") <= u)


def test_dst_day_end_is_correct(paris):
    # 2026-03-29: clocks go forward in Paris, the local day has 23 hours
    s, u = parse_range("2026-03-29", "2026-03-29")
    assert u - s == 23 * 3600 * US - 1


def test_a_day_whose_midnight_is_skipped_starts_at_its_first_instant():
    """America/Santiago sets clocks forward at 00:00 on 2026-09-06 (to 01:00): that local day starts at
    01:00 (04:00Z). `--since 2026-09-06` started at 23:00 on 09-05 (03:00Z) and `--until 2026-09-05` ended an
    hour into 09-06, so a row of 09-05 23:30 was counted in both days."""
    old = os.environ.get("TZ")
    try:
        _set_tz("America/Santiago")
        assert parse_since("2026-09-06") == parse_iso_us("2026-09-06T04:00:00Z")
        assert parse_until("2026-09-05") == parse_iso_us("2026-09-06T04:00:00Z") - 1
        assert parse_since("2026-09-05") == parse_iso_us("2026-09-05T04:00:00Z")  # 24 h + 23 h days
        assert parse_until("2026-09-06") == parse_iso_us("2026-09-07T03:00:00Z") - 1
        # a skipped wall time is the instant after the gap, for both flags
        assert parse_since("2026-09-06T00:30") == parse_until("2026-09-06T00:30") == parse_iso_us(
            "2026-09-06T04:00:00Z")
        assert parse_since("2026-09-06T01:00") == parse_iso_us("2026-09-06T04:00:00Z")
        # a repeated wall time (clocks set back at 00:00 on 2026-04-05, to 23:00) is its first occurrence
        assert parse_since("2026-04-04T23:30") == parse_iso_us("2026-04-05T02:30:00Z")
        assert parse_until("2026-04-04") == parse_iso_us("2026-04-05T04:00:00Z") - 1  # a 25 h day
        _set_tz("Europe/Paris")
        assert parse_since("2026-03-29T02:30") == parse_iso_us("2026-03-29T01:00:00Z")  # 02:00 -> 03:00
        assert parse_since("2026-10-25T02:30") == parse_iso_us("2026-10-25T00:30:00Z")  # first of two 02:30
        _set_tz("EST5EDT")  # a POSIX rule, not an IANA name
        assert parse_since("2026-03-08T02:30") == parse_iso_us("2026-03-08T07:00:00Z")
    finally:
        _set_tz(old)


def test_basic_and_week_dates_are_bare_dates(paris):
    """ISO 8601 dates in the basic form and as week dates are whole days, like 2026-11-21 (`2026-W47-6` was
    read as 00:00 even for `--until`; `20261121` was refused); the week alone is not a day."""
    for form in ("20261121", "2026-W47-6", "2026W476"):
        assert parse_since(form) == parse_since("2026-11-21") == parse_iso_us("2026-11-20T23:00:00Z")
        assert parse_until(form) == parse_until("2026-11-21") == parse_iso_us("2026-11-21T23:00:00Z") - 1
    assert parse_since("2026-W47-6T09:30") == parse_iso_us("2026-11-21T08:30:00Z")  # (a datetime, as before)
    for bad in ("2026-W47", "2026W47", "2026-325"):
        with pytest.raises(WindowError, match="expected an ISO date or datetime"):
            parse_until(bad)


@pytest.mark.parametrize(("posix", "iana"), [("CET-1CEST,M3.5.0,M10.5.0/3", "Europe/Berlin"),
                                              ("<-04>4<-03>,M9.1.6/24,M4.1.6/24", "America/Santiago")])
def test_c_local_time_follows_the_dst_rules_of_a_posix_tz(posix, iana):
    """`CLocalTime` (the overview's zone for a `TZ` without an IANA name) reads local time as the C library
    does: its midnights and wall clocks are those of the IANA zone with the same rules (Santiago's midnight is
    skipped in September, repeated in April)."""
    from datetime import date, time, timedelta
    from zoneinfo import ZoneInfo

    from hypaware_tui.core.timeutil import datetime_to_us
    from hypaware_tui.core.window import CLocalTime

    old = os.environ.get("TZ")
    try:
        _set_tz(posix)
        c, z = CLocalTime(), ZoneInfo(iana)
        for i in range(366):
            d = date(2026, 1, 1) + timedelta(days=i)
            assert datetime_to_us(datetime.combine(d, time(), c)) == datetime_to_us(datetime.combine(d, time(), z))
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for k in range(366 * 48):
            u = start + timedelta(minutes=30 * k)
            a, b = u.astimezone(c), u.astimezone(z)
            assert (a.replace(tzinfo=None), a.fold, a.utcoffset(), a.tzname()) == \
                (b.replace(tzinfo=None), b.fold, b.utcoffset(), b.tzname()), u
            assert a.astimezone(UTC) == u
    finally:
        _set_tz(old)


@pytest.mark.parametrize("bad", ["yesterday", "", "2026-13-01", "05/01/2026", "2026-05-01T25:00", "now"])
def test_unparseable_values_have_the_exact_message(bad):
    with pytest.raises(WindowError) as e:
        parse_since(bad)
    assert str(e.value) == (
        f'--since: expected an ISO date or datetime like 2026-05-01 or 2026-05-01T09:30 (got "{bad}")'
    )
    with pytest.raises(WindowError) as e:
        parse_until(bad)
    assert str(e.value).startswith("--until: expected an ISO date")


def test_since_after_until_quotes_the_values():
    with pytest.raises(WindowError) as e:
        parse_range("2026-06-01", "2026-05-01")
    assert str(e.value) == "--since (2026-06-01) is after --until (2026-05-01)"
    # the same instant at both ends is a window of one instant, not an error
    at = "2026-05-01T10:00:00Z"
    assert parse_range(at, at) == (parse_iso_us(at), parse_iso_us(at))


def test_cut_date_and_floor_use_the_utc_day():
    now = parse_iso_us("2026-08-30T23:30:00Z")
    assert cut_date(120, now) == "2026-05-02"
    assert import_floor_us(120, now) == date_start_us("2026-05-02")
    assert cut_date(0, now) is None and import_floor_us(0, now) is None
    assert cut_date(1, parse_iso_us("2026-01-01T00:00:00Z")) == "2025-12-31"


@pytest.mark.parametrize(("zone", "now", "cut"), [
    # 01:30 on 08-31 in Paris, still 08-30 in UTC
    ("Europe/Paris", "2026-08-30T23:30:00Z", "2026-05-02"),
    # 19:00 on 08-30 in Los Angeles, already 08-31 in UTC
    ("America/Los_Angeles", "2026-08-31T02:00:00Z", "2026-05-03"),
])
def test_the_cut_and_the_floor_are_utc_whatever_the_local_zone(zone: str, now: str, cut: str):
    """storage.md §7.2-7.3: the cut date is the UTC date of now minus the retention, the floor 00:00 UTC of it,
    wherever the machine is: the local date of now put the cut a day off, and a local midnight put the floor
    hours off (rows of the cut date before local midnight not imported), east and west of UTC alike."""
    old = os.environ.get("TZ")
    _set_tz(zone)
    try:
        at = parse_iso_us(now)
        assert cut_date(120, at) == cut
        assert import_floor_us(120, at) == parse_iso_us(f"{cut}T00:00:00Z")
        window, floor, _ = resolve_window(None, None, 120, at)
        assert window.since_us == floor == parse_iso_us(f"{cut}T00:00:00Z")
    finally:
        _set_tz(old)


def test_resolve_window_defaults_and_checkpoint_rule():
    now = parse_iso_us("2026-08-30T12:00:00Z")
    floor = date_start_us("2026-05-02")
    w, f, write = resolve_window(None, None, 120, now)
    assert w == Window(floor, now) and f == floor and write is True
    # a --since before the floor is clamped to it and still writes checkpoints
    early = date_start_us("2026-01-01")
    w, f, write = resolve_window(early, None, 120, now)
    assert w.since_us == floor and write is True
    # exactly at the floor: allowed
    assert resolve_window(floor, None, 120, now)[2] is True
    # later than the floor: no checkpoints (storage.md §7.5)
    late = date_start_us("2026-06-01")
    w, f, write = resolve_window(late, None, 120, now)
    assert w.since_us == late and write is False
    # no floor (forever): no --since writes checkpoints, any --since does not
    w, f, write = resolve_window(None, None, 0, now)
    assert w == Window(None, now) and f is None and write is True
    assert resolve_window(early, None, 0, now)[2] is False
    # --until replaces now
    until = date_start_us("2026-07-01")
    assert resolve_window(None, until, 120, now)[0].until_us == until


def test_describe_window_local_time(paris):
    w = Window(parse_iso_us("2026-05-02T00:00:00Z"), parse_iso_us("2026-08-30T12:15:30Z"))
    assert describe_window(w) == "2026-05-02 02:00 → 2026-08-30 14:15:30 (local time)"
    assert describe_window(Window(None, parse_iso_us("2026-08-30T12:15:00Z"))) == (
        "everything → 2026-08-30 14:15 (local time)"
    )


def test_local_time_follows_tz():
    old = os.environ.get("TZ")
    try:
        _set_tz("UTC")
        assert parse_since("2026-05-01") == int(datetime(2026, 5, 1, tzinfo=UTC).timestamp()) * US
        _set_tz("America/New_York")
        assert parse_since("2026-05-01") == parse_iso_us("2026-05-01T04:00:00Z")
    finally:
        _set_tz(old)


def test_the_far_ends_of_the_calendar_are_dates_too(paris):
    """0001-01-01 and 9999-12-31 are ISO dates: `--since 0001-01-01T00:00` crashed (year 0 is out of range,
    exit 1), and `--until 9999-12-31` was called unparseable."""
    assert parse_since("0001-01-01") <= parse_since("0001-01-02") < 0
    assert parse_since("0001-01-01T00:00") == parse_since("0001-01-01")
    assert parse_until("9999-12-31") == 253402300799999999  # the last µs of 9999 (UTC)
    assert parse_until("9999-12-31T23:59") > parse_until("2026-05-01")


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Pacific/Kiritimati", "America/Los_Angeles", "UTC"])
def test_instants_whose_local_time_has_no_year_are_shown_in_utc(zone):
    """`--until 9999-12-31` is the last µs of 9999 in UTC: east of UTC its local time is in the year 10000, and
    the first hours of 0001 are in the year 0 west of UTC. The heading of `hyp backfill` crashed there
    (OverflowError, exit 1, after the rows were committed). Such an end is shown in UTC and says so."""
    old = os.environ.get("TZ")
    try:
        _set_tz(zone)
        east = zone in ("Asia/Kolkata", "Pacific/Kiritimati")
        west = zone in ("Pacific/Kiritimati", "America/Los_Angeles")  # (Kiritimati's LMT of 0001 is −10:29)
        until = parse_until("9999-12-31")
        assert (local_text(until) == "9999-12-31 23:59:59 UTC") is east
        assert (local_text(MAX_US + 1) == "9999-12-31 23:59:59 UTC") is east  # (clamped, no crash)
        assert (local_text(MIN_US) == "0001-01-01 00:00 UTC") is west
        assert local_text(MIN_US - 1)[:10] == "0001-01-01"
        since = parse_iso_us("2026-07-30T00:00:00Z")
        text = describe_window(Window(since, until))
        if east:
            assert text == f"{local_text(since)} local → 9999-12-31 23:59:59 UTC"
        else:
            assert text == f"{local_text(since)} → {local_text(until)} (local time)"
        if zone == "America/Los_Angeles":
            assert local_text(parse_iso_us("0001-01-02T00:00:00Z")) == "0001-01-01 16:07:02"  # (LMT −7:52:58)
    finally:
        _set_tz(old)


def test_an_empty_window_after_the_floor_is_a_usage_error():
    """cli.md §5.2: like `--since` after `--until`, a window left empty once the floor and the default
    `until` apply exits 2 and says why (it ran, and `hyp backfill plan` showed the files of an empty window)."""
    from hypaware_tui.core.window import check_window

    now = parse_iso_us("2026-11-27T10:00:00Z")
    until = parse_until("2026-06-30T23:59:59Z")
    window, _, _ = resolve_window(parse_since("2026-05-01T00:00:00Z"), until, 120, now)
    with pytest.raises(WindowError) as e:
        check_window(window, "2026-05-01", "2026-06-30", 120)
    # (the floor is a UTC date and now a local time: each says so, as the time zone audit found they did not)
    assert str(e.value) == ("--until (2026-06-30) is before the import floor (2026-07-30 UTC, 120-day retention): "
                            "nothing in that window can be imported. Raise retention_days in the config to import "
                            "older history")
    window, _, _ = resolve_window(parse_since("2027-01-01T00:00:00Z"), None, 120, now)
    with pytest.raises(WindowError) as e:
        check_window(window, "2027-01-01", None, 120)
    assert str(e.value).startswith("--since (2027-01-01) is after now (2026-11-27 ")
    assert str(e.value).endswith(" local time)")
    for since, until_ in ((None, None), ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"), ("2020-01-01T00:00:00Z", None)):
        window, _, _ = resolve_window(since and parse_since(since), until_ and parse_until(until_), 120, now)
        check_window(window, since, until_, 120)  # not empty: no error
    window, _, _ = resolve_window(None, parse_until("2020-01-01T00:00:00Z"), 0, now)  # retention 0: no floor
    check_window(window, None, "2020-01-01", 0)
    # --until at the floor's first instant, and --since at now: one instant, which can be imported
    window, _, _ = resolve_window(None, parse_until("2026-07-30T00:00:00Z"), 120, now)
    check_window(window, None, "2026-07-30T00:00:00Z", 120)
    window, _, _ = resolve_window(now, None, 120, now)
    check_window(window, "2026-11-27T10:00:00Z", None, 120)


@pytest.mark.parametrize(("zone", "at", "note"), [
    ("Europe/Paris", "2026-05-01T12:00:00Z", "Dates in local time (CEST, UTC+02:00)."),
    ("America/New_York", "2026-01-15T12:00:00Z", "Dates in local time (EST, UTC-05:00)."),
    ("Asia/Kolkata", "2026-05-01T12:00:00Z", "Dates in local time (IST, UTC+05:30)."),
    ("America/Sao_Paulo", "2026-05-01T12:00:00Z", "Dates in local time (UTC-03:00)."),  # (its name is "-03")
    ("UTC", "2026-05-01T12:00:00Z", "Dates in local time (UTC)."),
])
def test_local_dates_note_names_the_zone_and_its_offset(zone, at, note):
    from hypaware_tui.core.window import local_dates_note

    old = os.environ.get("TZ")
    _set_tz(zone)
    try:
        assert local_dates_note(parse_iso_us(at)) == note
    finally:
        _set_tz(old)
