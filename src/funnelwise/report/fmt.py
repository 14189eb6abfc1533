"""Formatting of result values for people: shares, money, days, counts, intervals,
and the small text tables of the report. Formatting only: nothing is estimated here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

DASH = "–"
# Currencies written with a symbol in front; others get their ISO code after.
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}


def missing(value: Any) -> bool:
    """True for None, NaN, NaT and pandas NA."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def pct(value: Any, digits: int = 0) -> str:
    """A share as a percentage: 0.2685 -> '27%' (digits=0) or '26.8%'."""
    if missing(value):
        return DASH
    text = f"{100 * float(value):.{digits}f}"
    if float(text) == 0:  # a small negative share rounds to 0, not to "−0"
        text = f"{0:.{digits}f}"
    return text.replace("-", "−") + "%"


def ci(lower: Any, upper: Any, *, level: float = 0.95) -> str:
    """A share's interval for prose: '95% CI 25–29%'."""
    if missing(lower) or missing(upper):
        return f"{round(100 * level)}% CI not available"
    return f"{round(100 * level)}% CI {100 * float(lower):.0f}–{100 * float(upper):.0f}%"


def pct_ci(value: Any, lower: Any, upper: Any) -> str:
    """A share with its interval for tables: '27% [25–29]'."""
    if missing(value):
        return DASH
    if missing(lower) or missing(upper):
        return pct(value)
    return f"{pct(value)} [{100 * float(lower):.0f}–{100 * float(upper):.0f}]"


def count(value: Any) -> str:
    """A whole number with thousands separators: 1851 -> '1,851'."""
    if missing(value):
        return DASH
    return f"{round(float(value)):,}"


def currency_symbol(currency: str) -> str | None:
    """The symbol written before amounts of this currency, if it has a common one."""
    return _SYMBOLS.get(currency)


def _short(value: float) -> str:
    size = abs(value)
    # Below ten thousand every digit is shown: $4,600 reads better than $4.6k.
    for threshold, unit, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if size >= threshold:
            scaled = value / unit
            return f"{scaled:.1f}{suffix}" if abs(scaled) < 100 else f"{scaled:.0f}{suffix}"
    return f"{value:,.0f}"


def money(value: Any, currency: str, *, signed: bool = False) -> str:
    """An amount, short: 20928273 USD -> '$20.9M', 4600 USD -> '$4,600', 512 CHF -> '512 CHF'.
    `signed` puts + or − in front."""
    if missing(value):
        return DASH
    v = float(value)
    sign = ("+" if v > 0 else "−" if v < 0 else "") if signed else ("−" if v < 0 else "")
    body = _short(abs(v))
    symbol = _SYMBOLS.get(currency)
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {currency}"


def days(value: Any) -> str:
    """A duration in days: 19.67 -> '19.7 days', 84 -> '84 days'."""
    if missing(value):
        return DASH
    v = float(value)
    text = f"{v:.0f}" if v >= 100 or v.is_integer() else f"{v:.1f}"
    return f"{text} day" if text == "1" else f"{text} days"


def days_value(value: Any) -> str:
    """A duration in days without the unit, for table cells: 19.67 -> '19.7'."""
    return days(value).split(" ")[0]


def day_span(value: Any) -> str:
    """A duration as an adjective: 14 -> '14-day', 3.5 -> '3.5-day'."""
    if missing(value):
        return DASH
    return days_value(value) + "-day"


def days_ci(value: Any, lower: Any, upper: Any) -> str:
    """A duration with its interval for tables: '19.7 [18.5–20.9]'."""
    if missing(value):
        return DASH
    core = days_value(value)
    if missing(lower) or missing(upper):
        return core
    return f"{core} [{days_value(lower)}–{days_value(upper)}]"


def date(value: Any) -> str:
    """An instant as its calendar date: '2024-07-15'."""
    if missing(value):
        return DASH
    return pd.Timestamp(value).date().isoformat()


def plural(n: Any, word: str, many: str | None = None) -> str:
    """'1 deal', '1,851 deals'."""
    k = round(float(n)) if not missing(n) else 0
    return f"{k:,} {word if k == 1 else many or word + 's'}"


def finite(value: Any) -> bool:
    """True for a real, finite number."""
    return not missing(value) and math.isfinite(float(value))


def number(value: Any) -> float | None:
    """The value as a float, or None when it is missing or not finite."""
    return float(value) if finite(value) else None


@dataclass(frozen=True)
class Table:
    """A small text table: header, rows of formatted cells, which columns are numbers."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]
    caption: str = ""
    title: str = ""
    collapsed: bool = False  # long tables start folded under their title


Column = tuple[str, Callable[[Any], str], bool]


def table(
    frame: pd.DataFrame,
    columns: Sequence[Column],
    caption: str = "",
    *,
    title: str = "",
    collapsed: bool = False,
) -> Table:
    """Format a frame's rows: each column is (header, row -> text, is_number)."""
    rows = tuple(tuple(fn(row) for _, fn, _ in columns) for row in frame.itertuples(index=False))
    return Table(
        columns=tuple(h for h, _, _ in columns),
        rows=rows,
        numeric=tuple(n for _, _, n in columns),
        caption=caption,
        title=title,
        collapsed=collapsed,
    )
