"""Timestamps as integer microseconds since the Unix epoch, UTC (schema.md §3.2)."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta, tzinfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_DAY = 86_400_000_000
DATE_CACHE: dict[int, str] = {}  # day number -> `us_to_date` text (read directly by `finalize_row`)
_fromisoformat = datetime.fromisoformat
MIN_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
# `<date><T, t or space><hh>:<mm>:60[.fraction]<zone>`: a leap second (RFC 3339 §5.6)
_LEAP_SECOND = re.compile(r"^(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}):60(?:[.,]\d+)?([Zz]|[+-]\d{2}:?\d{2}(?::?\d{2})?)$")


def _rfc3339(value: str) -> datetime | None:
    """The RFC 3339 forms `fromisoformat` refuses: a lowercase `z` zone, and a leap second (`23:59:60Z`),
    read as 59.999999 of its minute so that its row stays in its day (Python has no second 60)."""
    text = value[:-1] + "Z" if value[-1] == "z" and value[-2].isdigit() else value  # (after the seconds)
    leap = _LEAP_SECOND.match(text)
    if leap is not None:
        text = f"{leap[1]}:59.999999{leap[2]}"
    if text == value:
        return None
    try:
        return _fromisoformat(text)
    except ValueError:
        return None


def parse_iso_us(value: object) -> int | None:
    """An ISO-8601 string *with* a zone (`Z` or an offset) -> µs UTC; anything else -> None. The one parser
    of record timestamps (Claude and Codex importers, inventory). RFC 3339's lowercase `z` and leap second
    are accepted too (`_rfc3339`), only after `fromisoformat` refused the text: the common path is unchanged
    (this is called for every line of an import).

    Precision below the microsecond is truncated (Python keeps at most 6 fraction digits)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        dt = _fromisoformat(value)
    except ValueError:
        dt = _rfc3339(value)
        if dt is None:
            return None
    if dt.tzinfo is None:  # (fromisoformat only makes fixed-offset zones: a zone always has an offset)
        return None
    td = dt - EPOCH  # (its fields: `td // timedelta(microseconds=1)` without the slow division of timedeltas)
    us = td.days * US_PER_DAY + td.seconds * 1_000_000 + td.microseconds
    # "0001-01-01T00:00:00+05:30" is in year 0 in UTC: no datetime (nor Parquet reader) can show it
    return us if MIN_US <= us <= MAX_US else None


def parse_claude_ts(value: object) -> int | None:
    """Claude accepts a zoned ISO string or a number of epoch milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        try:
            return int(value * 1000)
        except (OverflowError, ValueError):
            return None
    return parse_iso_us(value)


def us_to_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def us_to_local(us: int, zone: tzinfo | None = None) -> datetime | None:
    """µs UTC -> an aware datetime in `zone` (default: the process's local zone, as `TZ` sets it); None when
    that wall-clock time is outside years 1-9999 (the first hours of 0001 west of UTC, the last ones of 9999
    east of it: Python has no such datetime). A value outside MIN_US..MAX_US is clamped first."""
    dt = us_to_datetime(min(max(us, MIN_US), MAX_US))
    try:
        return dt.astimezone(zone)
    except (OverflowError, ValueError, OSError):
        return None


def us_to_date(us: int) -> str:
    """The UTC `YYYY-MM-DD` of a µs timestamp (memoized per day)."""
    day = us // US_PER_DAY
    s = DATE_CACHE.get(day)
    if s is None:
        s = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        DATE_CACHE[day] = s
    return s


def us_to_iso(us: int | None) -> str | None:
    """ISO 8601 UTC with `Z`, second precision unless there is a fraction. The year has four digits
    (`0001-01-01T00:00:00Z`: strftime's %Y writes `1` on glibc)."""
    if us is None:
        return None
    dt = us_to_datetime(us)
    text = dt.replace(tzinfo=None).isoformat(timespec="seconds")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


def datetime_to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    delta = dt - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def date_start_us(d: str) -> int:
    """00:00 UTC of a `YYYY-MM-DD` date."""
    return datetime_to_us(datetime.fromisoformat(d).replace(tzinfo=UTC))


def now_us() -> int:
    return time.time_ns() // 1000
