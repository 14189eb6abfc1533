"""What a forecast's options may be: one check each, used by `forecast`,
`backtest` and the forecasters themselves, and by the command line (which
names its options `--horizon`, `--paths`, … in the messages)."""

from __future__ import annotations

import pandas as pd

from funnelwise.errors import InputError
from funnelwise.timeutil import Instant, calendar_days, to_days, to_timestamp

MAX_HORIZON_YEARS = 10
MIN_PATHS = 100


def horizon_days(
    horizon: str | float, start: pd.Timestamp | None = None, *, name: str = "horizon"
) -> float:
    """Days in a horizon such as `90d`, `13w`, `1q`: at least a day and at most ten
    years (the history cannot speak for longer; dates beyond a few centuries do not
    exist). From `start`, months, quarters and years are counted on the calendar."""
    days = to_days(horizon, name=name)
    if days <= 0:
        raise InputError(f"{name} must be positive (got {horizon!r}); for example 90d or 1q")
    if days > MAX_HORIZON_YEARS * 365.25:
        raise InputError(
            f"{name} must be at most {MAX_HORIZON_YEARS} years (got {horizon!r}, "
            f"{days:,.0f} days); forecast a shorter span, for example 1y"
        )
    if start is not None:
        days = calendar_days(horizon, start, name=name)
    if days < 1:
        raise InputError(f"{name} must be at least 1 day (got {horizon!r})")
    return days


def step_days(every: str | float, *, name: str = "every") -> float:
    """Days between backtest cut-offs: at least one."""
    days = to_days(every, name=name)
    if days <= 0:
        raise InputError(f"{name} must be positive (got {every!r}); for example 14d")
    if days < 1:
        raise InputError(f"{name} must be at least 1 day (got {every!r})")
    return days


def check_spacing(every: str | float, *, name: str = "every") -> None:
    """InputError unless `every` is "auto" (see `backtest.auto_spacing`) or at least
    a day."""
    if every != "auto":
        step_days(every, name=name)


def check_paths(n_paths: int, *, name: str = "n_paths") -> None:
    """InputError unless there are enough simulated futures for an 80% interval."""
    if n_paths < MIN_PATHS:
        raise InputError(
            f"{name} must be at least {MIN_PATHS} (got {n_paths}): fewer simulated futures "
            "cannot give an 80% interval; the default is 10000"
        )


def check_target(target: float | None, *, name: str = "target") -> None:
    """InputError unless the amount to reach is positive (or not given)."""
    if target is not None and not target > 0:
        raise InputError(f"{name} must be a positive amount (got {target:g})")


def check_cutoff_range(
    start: Instant | None, end: Instant | None, *, names: tuple[str, str] = ("start", "end")
) -> None:
    """InputError when the first backtest cut-off is after the last."""
    if start is None or end is None:
        return
    lo, hi = names
    if to_timestamp(start, name=lo) > to_timestamp(end, name=hi):
        raise InputError(
            f"{lo} {start} is after {hi} {end}: the cut-offs run from {lo} to {hi}; swap them"
        )
