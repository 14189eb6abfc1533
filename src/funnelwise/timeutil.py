"""Parsing user-given instants and periods into naive UTC timestamps."""

from __future__ import annotations

import calendar
import datetime as dt
import re

import pandas as pd

from funnelwise.errors import InputError

Instant = str | dt.date | dt.datetime | pd.Timestamp


# A date written day and month first (03/04/2024, 3.4.24): pandas reads the month
# first when both could be a month, which is the day in most of the world.
_DAY_MONTH = re.compile(r"^\s*(\d{1,2})[/.](\d{1,2})[/.](\d{2}|\d{4})(?!\d)")


def to_timestamp(value: Instant, *, name: str = "date") -> pd.Timestamp:
    """A naive-UTC pandas Timestamp from a string, date or datetime.

    Aware values are converted to UTC; 'now' and 'today' are the present instant in
    UTC (pandas reads them on the machine's clock, in its time zone). A date with
    day and month both 12 or less before the year (03/04/2024) is refused: it reads
    either way. Raises InputError naming `name`.
    """
    if isinstance(value, str) and value.strip().lower() in ("now", "today"):
        return pd.Timestamp.now(tz="UTC").tz_localize(None)
    both = _DAY_MONTH.match(value) if isinstance(value, str) else None
    if both and both.group(1) != both.group(2) and max(map(int, both.group(1, 2))) <= 12:
        text = both.string.strip()
        first, second = (int(part) for part in both.group(1, 2))
        year = int(both.group(3)) + (2000 if len(both.group(3)) == 2 else 0)
        raise InputError(
            f"{name}: {text!r} reads as {first} {calendar.month_name[second]} or as "
            f"{second} {calendar.month_name[first]}; write it year-month-day, e.g. "
            f"{dt.date(year, second, first).isoformat()}"
        )
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"{name}: cannot read {value!r} as a date; use ISO format such as 2024-03-31 "
            "or 2024-03-31T17:00"
        ) from exc
    if ts is pd.NaT:
        raise InputError(f"{name}: a date is required (got {value!r})")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dwmqy]?)\s*$")
_NEGATIVE = re.compile(r"^\s*-\s*\d")
_DAYS = {"": 1.0, "d": 1.0, "w": 7.0, "m": 30.4375, "q": 91.3125, "y": 365.25}


def to_days(value: str | float | int, *, name: str = "duration") -> float:
    """Days in a duration such as `90d`, `12w`, `3m`, `1q`, `1y` or a plain number."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(value)
    if not m and _NEGATIVE.match(value):
        raise InputError(f"{name} must be positive (got {value!r})")
    if not m:
        raise InputError(
            f"{name}: cannot read {value!r} as a duration; use a number of days or "
            "a number with d, w, m, q or y (for example 90d, 12w, 1q)"
        )
    return float(m.group(1)) * _DAYS[m.group(2)]


_MONTHS = {"m": 1, "q": 3, "y": 12}


def calendar_days(
    value: str | float | int, start: pd.Timestamp, *, name: str = "duration"
) -> float:
    """Days in a duration counted on the calendar from `start`: a whole number of
    months, quarters or years ends on the same day of the month (on the month's last
    day from a month end: 1q from 30 September ends 31 December); anything else is
    `to_days`."""
    days = to_days(value, name=name)
    m = _DURATION.match(value) if isinstance(value, str) else None
    if m is None or m.group(2) not in _MONTHS or not float(m.group(1)).is_integer():
        return days
    months = int(float(m.group(1))) * _MONTHS[m.group(2)]
    offset = pd.offsets.MonthEnd(months) if start.is_month_end else pd.DateOffset(months=months)
    return float((start + offset - start) / pd.Timedelta(days=1))
