"""Dates and the import window of a backfill (cli.md §1 "Dates", §5.1-5.2; storage.md §7).

* `parse_since` / `parse_until` turn a `--since` / `--until` value into µs UTC. An ISO date or datetime;
  no offset means local time; a bare date is the start of that day (`since`) or its end, inclusive (`until`).
* `cut_date` / `import_floor_us`: retention -> the cut date and the floor instant (00:00 UTC of the cut date;
  none when retention is 0). "Today" is the UTC date of `now`, computed once per run.
* `resolve_window(since, until, retention_days, now)` -> `(Window, floor_us, write_checkpoints)`.
* `describe_window` prints `<since> → <until>` in local time for headings; `zone_label` names the local zone
  (`CET/CEST, UTC+01:00/+02:00`), `CLocalTime` is it as a `tzinfo` when it has no IANA name (a POSIX `TZ`).

Nothing here reads the disk or imports a UI.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from time import localtime

from hypaware_tui.core.config import DEFAULT_RETENTION_DAYS
from hypaware_tui.core.timeutil import (
    MAX_US,
    MIN_US,
    US_PER_DAY,
    date_start_us,
    datetime_to_us,
    now_us,
    us_to_date,
    us_to_datetime,
    us_to_local,
)
from hypaware_tui.importers.base import Window

_EXAMPLE = "expected an ISO date or datetime like 2026-05-01 or 2026-05-01T09:30"
# A date without a time, in every complete ISO 8601 form `date.fromisoformat` reads: calendar (2026-11-21,
# 20261121) and week dates (2026-W47-6, 2026W476). (Other dates that reader takes, the week alone `2026-W47`,
# are not a day: refused, not read as its Monday.)
_DATE_ONLY = re.compile(r"^\d{4}(?:-\d{2}-\d{2}|\d{4}|-W\d{2}-\d|W\d{3})$")


class WindowError(ValueError):
    """A bad `--since` / `--until` value or pair. The message is what the CLI prints after `hyp <cmd>: `."""


def _offset_us(us: int) -> int:
    """The local zone's UTC offset at an instant, in µs (`TZ` as the process reads it, POSIX rules included)."""
    return localtime(us // 1_000_000).tm_gmtoff * 1_000_000


def _local_to_us(naive: datetime, *, fold: int = 0) -> int:
    """A naive datetime read as local wall-clock time -> µs UTC, as the first instant whose local wall clock
    is not earlier than it:

    * a time that exists once is that instant;
    * a repeated time (clocks set back) is its first occurrence (its second with `fold=1`, as PEP 495);
    * a time that does not exist (skipped when clocks go forward: 00:30 on 2026-09-06 in America/Santiago,
      where 00:00 becomes 01:00) is the instant after the gap, the change itself (01:00 local, 04:00Z).
      So the start of a local day is the first instant of that date even when its midnight is skipped.
      (Not PEP 495's fold=0 reading, the offset before the change, which would give 04:30Z = 01:30 local and
      leave out the half hour after the gap.)

    `naive.astimezone()` read a skipped time with the offset after the change: `--since 2026-09-06` in
    Santiago started at 23:00 on 09-05. Years the platform's local-time conversion does not cover are read as
    UTC: hours do not matter there."""
    wall = datetime_to_us(naive.replace(tzinfo=UTC))
    try:
        # Every offset in force within a day of this wall time: the one of a day before and a day after
        # (zones change offset at most once in two days; Samoa's skipped 2011-12-30 is a 24 h gap).
        before, after = _offset_us(wall - US_PER_DAY), _offset_us(wall + US_PER_DAY)
        exact = [u for u in sorted({wall - before, wall - after}) if u + _offset_us(u) == wall]
        if exact:
            return exact[-1] if fold else exact[0]
        if after <= before:  # (no gap between the two offsets: an offset change we cannot place; be plain)
            return wall - before
        # In the gap: the change lies between `wall - after` (still the old offset) and `wall - before` (the
        # new one). Find the first whole second whose wall clock reaches `wall` (changes fall on seconds).
        lo, hi = (wall - after) // 1_000_000, -(-(wall - before) // 1_000_000)
        while lo < hi:
            mid = (lo + hi) // 2
            if mid * 1_000_000 + _offset_us(mid * 1_000_000) >= wall:
                hi = mid
            else:
                lo = mid + 1
        return lo * 1_000_000
    except (ValueError, OverflowError, OSError):
        return wall


class CLocalTime(tzinfo):
    """The process's local time as the C library keeps it (`TZ`, POSIX rules included), as a `tzinfo`: for a
    local zone that has no IANA key (`TZ=CET-1CEST,M3.5.0,M10.5.0/3`, `TZ=UTC+3`). A fixed offset taken from
    now put the overview's days of the other half of the year an hour off (a row at 00:30 CEST on the day clocks
    go back was counted on the day before). Conversions are those of `hyp backfill` dates (`_local_to_us`):
    a skipped wall time is the instant after the gap, a repeated one its first occurrence unless `fold=1`."""

    def __repr__(self) -> str:
        return "CLocalTime()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CLocalTime)

    def __hash__(self) -> int:
        return hash(CLocalTime)

    @staticmethod
    def _instant(dt: datetime) -> int:
        return datetime_to_us(dt.replace(tzinfo=UTC))

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is None:
            return timedelta(microseconds=_safe_offset_us(now_us()))
        wall = self._instant(dt)
        return timedelta(microseconds=wall - _local_to_us(dt.replace(tzinfo=None), fold=dt.fold))

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        us = now_us() if dt is None else self._instant(dt) - int(self.utcoffset(dt) / timedelta(microseconds=1))
        try:
            return localtime(us // 1_000_000).tm_zone
        except (ValueError, OverflowError, OSError):
            return None

    def fromutc(self, dt: datetime) -> datetime:
        us = self._instant(dt)
        local = (dt + timedelta(microseconds=_safe_offset_us(us))).replace(tzinfo=self)
        if _local_to_us(local.replace(tzinfo=None)) != us:  # (the second time this wall clock reads so)
            local = local.replace(fold=1)
        return local


def _safe_offset_us(us: int) -> int:
    try:
        return _offset_us(us)
    except (ValueError, OverflowError, OSError):
        return 0


def _parse(value: str, flag: str, *, end_of_day: bool) -> int:
    text = value.strip() if isinstance(value, str) else ""
    try:
        if _DATE_ONLY.match(text):
            d = date.fromisoformat(text)
            if end_of_day:
                if d == date.max:  # (9999-12-31: "no upper bound")
                    return datetime_to_us(datetime.max.replace(tzinfo=UTC))
                # The last µs of the local day (inclusive), DST-safe: start of the next local day − 1 µs.
                return _local_to_us(datetime.combine(d + timedelta(days=1), time())) - 1
            return _local_to_us(datetime.combine(d, time()))
        if len(text) < 10 or not text[:4].isdigit():  # (also the week alone, `2026-W47`: not a day)
            raise ValueError(text)
        dt = datetime.fromisoformat(text.replace("z", "Z"))
    except (ValueError, OverflowError):
        raise WindowError(f'{flag}: {_EXAMPLE} (got "{value}")') from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        return _local_to_us(dt)
    try:
        return datetime_to_us(dt)
    except (ValueError, OverflowError):
        raise WindowError(f'{flag}: {_EXAMPLE} (got "{value}")') from None


def parse_since(value: str) -> int:
    """`--since` value -> µs UTC (a bare date is the start of that local day). Raises WindowError."""
    return _parse(value, "--since", end_of_day=False)


def parse_until(value: str) -> int:
    """`--until` value -> µs UTC (a bare date is the end of that local day, inclusive). Raises WindowError."""
    return _parse(value, "--until", end_of_day=True)


def parse_range(since: str | None, until: str | None) -> tuple[int | None, int | None]:
    """Both flags at once, with the `since` after `until` check (cli.md §5.2), quoting the values as given."""
    since_us = parse_since(since) if since is not None else None
    until_us = parse_until(until) if until is not None else None
    if since_us is not None and until_us is not None and since_us > until_us:
        raise WindowError(f"--since ({since}) is after --until ({until})")
    return since_us, until_us


# --------------------------------------------------------------------------------------------- retention


def utc_today(now_us: int) -> date:
    return us_to_datetime(now_us).date()


def cut_date(retention_days: int, now_us: int) -> str | None:
    """storage.md §7.2: (UTC today − retention_days) as YYYY-MM-DD; None when retention is 0 (forever)."""
    if retention_days <= 0:
        return None
    return (utc_today(now_us) - timedelta(days=retention_days)).isoformat()


def import_floor_us(retention_days: int, now_us: int) -> int | None:
    """storage.md §7.3: 00:00 UTC of the cut date, as µs; None when retention is 0."""
    cd = cut_date(retention_days, now_us)
    return date_start_us(cd) if cd is not None else None


def resolve_window(
    since_us: int | None, until_us: int | None, retention_days: int, now_us: int
) -> tuple[Window, int | None, bool]:
    """The run's window (cli.md §5.1, storage.md §7):

    * `until` = `--until` (which then holds for every line: `Window.until_given`), else `now`;
    * `since` = the later of `--since` and the import floor (rows before the floor are never imported);
    * `write_checkpoints` is True only when the run's lower bound is not later than the floor, i.e. no
      `--since`, or one at or before the floor (storage.md §7.5, daemon.md §3.1 rule 5). With no floor
      (retention 0), any `--since` forbids checkpoints.

    Returns `(Window, floor_us, write_checkpoints)`."""
    floor = import_floor_us(retention_days, now_us)
    until = until_us if until_us is not None else now_us
    if since_us is None:
        since, write = floor, True
    elif floor is None:
        since, write = since_us, False
    else:
        since, write = max(since_us, floor), since_us <= floor
    return Window(since_us=since, until_us=until, until_given=until_us is not None), floor, write


def check_window(window: Window, since: str | None, until: str | None, retention_days: int) -> None:
    """An empty window once the defaults and the floor apply is a usage error, like `--since` after
    `--until` (cli.md §5.2): `--until` before the import floor, or `--since` after now. Raises WindowError."""
    if window.since_us is None or window.until_us is None or window.since_us <= window.until_us:
        return
    if until is not None:
        cut = us_to_date(window.since_us)
        raise WindowError(f"--until ({until}) is before the import floor ({cut} UTC, {retention_days}-day retention): "
                          "nothing in that window can be imported. Raise retention_days in the config to "
                          "import older history")
    raise WindowError(f"--since ({since}) is after now ({local_text(window.until_us)} local time)")


# --------------------------------------------------------------------------------------------- display


def _wall_clock(us: int) -> tuple[str, bool]:
    """`(text, in_utc)`: `2026-05-02 02:00` in local time (seconds shown only when not zero), or the UTC
    wall clock when the local one is outside years 1-9999 (`--until 9999-12-31` east of UTC, a record of 0001
    west of it: Python has no such datetime)."""
    dt = us_to_local(us)
    in_utc = dt is None
    if dt is None:
        dt = us_to_datetime(min(max(us, MIN_US), MAX_US))
    # (the date by isoformat: strftime's %Y does not pad year 1 to 0001)
    return f"{dt.date().isoformat()} {dt.strftime('%H:%M:%S' if dt.second else '%H:%M')}", in_utc


def local_text(us: int | None, *, none: str = "everything") -> str:
    """`2026-05-02 02:00` in local time (seconds shown only when not zero). An instant whose local time is
    outside years 1-9999 is shown in UTC and says so: `9999-12-31 23:59:59 UTC`."""
    if us is None:
        return none
    text, in_utc = _wall_clock(us)
    return f"{text} UTC" if in_utc else text


def local_date_range(oldest_us: int | None, newest_us: int | None) -> str:
    """`2026-04-30 → 2026-08-29`: the local dates of a history's oldest and newest records (`—` for an unknown
    end, `—` alone for neither), as every history range is shown: `hyp backfill list` and `plan`, the wizard's
    Clients and Review screens and `hyp init --dry-run`, each with `local_dates_note` naming the zone. The
    wizard showed UTC dates, so the same file read a day apart there and in `hyp backfill plan`."""
    if oldest_us is None and newest_us is None:
        return "—"
    return " → ".join(local_text(us)[:10] if us is not None else "—" for us in (oldest_us, newest_us))


def describe_window(window: Window) -> str:
    """`2026-05-02 02:00 → 2026-08-30 14:15 (local time)` (`everything` for an open lower bound). When an end
    can only be shown in UTC (`--until 9999-12-31` east of UTC), each end says its zone:
    `2026-07-30 05:30 local → 9999-12-31 23:59:59 UTC`."""
    ends = [(none, False) if us is None else _wall_clock(us)
            for us, none in ((window.since_us, "everything"), (window.until_us, "now"))]
    if not any(in_utc for _, in_utc in ends):
        return f"{ends[0][0]} → {ends[1][0]} (local time)"
    labelled = [text if us is None else f"{text} {'UTC' if in_utc else 'local'}"
                for (text, in_utc), us in zip(ends, (window.since_us, window.until_us), strict=True)]
    return " → ".join(labelled)


def local_zone_name() -> str:
    return datetime.now(UTC).astimezone().tzname() or "local"


def zone_label(*stamps_us: int | None) -> str:
    """`EST, UTC-05:00`: the local zone at the instants `stamps_us` (None ones skipped; now's when there are
    none), by its abbreviations and UTC offsets; a zone whose offset differs between them says each
    (`CET/CEST, UTC+01:00/+02:00`); one without a name of its own (`-03`, or `UTC` at another offset: POSIX
    `TZ=UTC+3`) shows only the offset (`UTC-03:00`)."""
    stamps = [s for s in stamps_us if s is not None]
    if not stamps:
        stamps = [now_us()]
    seen: dict[int, str] = {}  # offset in minutes -> the zone's name at that offset
    for s in stamps:
        local = us_to_local(s)
        if local is None:  # (the last hours of 9999 east of UTC: no local date was shown for it either)
            continue
        minutes = int((local.utcoffset() or timedelta()).total_seconds()) // 60
        seen.setdefault(minutes, local.tzname() or "")

    def hhmm(minutes: int) -> str:
        sign, (h, m) = "+" if minutes >= 0 else "-", divmod(abs(minutes), 60)
        return f"{sign}{h:02d}:{m:02d}"

    if not seen:
        seen[0] = "UTC"
    order = sorted(seen)
    offset_text = ("UTC" if order == [0] else f"UTC{hhmm(order[0])}") if len(order) == 1 else (
        "UTC" + "/".join(hhmm(m) for m in order)
    )
    names = [n for n in (seen[m] for m in order) if n and n[0] not in "+-" and n != "UTC"]
    if len(names) == len(order):
        return f"{'/'.join(names)}, {offset_text}"
    return offset_text


def local_dates_note(*stamps_us: int | None) -> str:
    """`Dates in local time (EST, UTC-05:00).`: under the local dates of `local_date_range` (a date alone does
    not say its zone: the same file read a day apart in two views, one of them UTC). The zone is named by
    `zone_label` at the dates shown (`stamps_us`), or now's when there are none: a table of summer and winter
    dates says both (`EST/EDT, UTC-05:00/-04:00`), since the offset of today alone put a July date a day off
    for the reader."""
    return f"Dates in local time ({zone_label(*stamps_us)})."


__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "WindowError",
    "CLocalTime",
    "check_window",
    "cut_date",
    "describe_window",
    "import_floor_us",
    "local_date_range",
    "local_text",
    "local_dates_note",
    "local_zone_name",
    "parse_range",
    "parse_since",
    "parse_until",
    "resolve_window",
    "us_to_date",
    "utc_today",
    "zone_label",
]
