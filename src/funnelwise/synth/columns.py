"""Building Arrow columns from numpy codes and day offsets without per-row Python.

Strings are made once per distinct value and spread by dictionary indices;
times are float days since the window start, rounded to whole seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from funnelwise.synth.params import SECONDS_PER_DAY


def ids(prefix: str, n: int, width: int) -> pa.Array:
    """`prefix` followed by 0..n-1 zero-padded to `width` digits, as one Arrow array."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def width_for(n: int) -> int:
    """Digits needed to number n items (at least 4)."""
    return max(4, len(str(max(n - 1, 0))))


def coded(codes: np.ndarray, labels: pa.Array | list[str] | tuple[str, ...]) -> pa.Array:
    """Labels taken by integer codes (negative codes become nulls), as a plain string array."""
    dictionary = labels if isinstance(labels, pa.Array) else pa.array(list(labels), pa.string())
    codes = np.asarray(codes)
    mask = codes < 0
    indices = pa.array(np.where(mask, 0, codes).astype(np.int32), mask=mask if mask.any() else None)
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def constant(value: str, n: int) -> pa.Array:
    """The same string n times."""
    return coded(np.zeros(n, dtype=np.int32), [value])


def seconds(t: np.ndarray) -> np.ndarray:
    """Days since the window start as whole seconds (int64).

    Rounding is monotone, so an order of times survives it, and a time at or
    before a whole-second bound stays at or before it.
    """
    return np.rint(np.asarray(t) * SECONDS_PER_DAY).astype(np.int64)


def timestamps(start: pd.Timestamp, t: np.ndarray, *, null: np.ndarray | None = None) -> pa.Array:
    """Naive timestamps (microseconds) at `t` days after `start`; `null` masks rows out."""
    base = start.value // 1000  # ns -> us since the epoch
    us = base + seconds(t) * 1_000_000
    mask = None if null is None or not null.any() else null
    return pa.array(us, type=pa.timestamp("us"), mask=mask)


def dates(start: pd.Timestamp, day: np.ndarray) -> pa.Array:
    """Dates `day` whole days after `start`'s date."""
    epoch_day = (start.normalize() - pd.Timestamp(0)).days
    return pa.array((epoch_day + np.asarray(day)).astype(np.int32), type=pa.date32())


def as_text(values: pa.Array) -> pa.Array:
    """Numbers or dates as text the way `deal_changes` stores them (shortest round trip)."""
    return pc.cast(values, pa.string())
