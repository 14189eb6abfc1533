"""Past outcome rates per value of a prefix column (target encoding), learned on
training rows only, for the predictive monitoring protocol (`scoring.ppm`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Cases of prior weight pulled into every rate: a resource seen in 10 cases keeps
# most of the overall rate, one seen in 500 mostly its own.
SMOOTHING = 50.0


@dataclass(frozen=True)
class PastRates:
    """Per value of `column`, the share of positive cases among the training cases
    that show the value in any of their prefixes, shrunk towards the overall
    share (`prior`) with the weight of SMOOTHING cases."""

    column: str
    rates: dict[str, float]
    prior: float

    @classmethod
    def fit(
        cls, rows: pd.DataFrame, column: str, positive: np.ndarray, smoothing: float = SMOOTHING
    ) -> PastRates:
        """Learn from `rows` (one per prefix, with `case_id` and `column`);
        `positive` is the 0/1 outcome of each row's case."""
        frame = pd.DataFrame({"case": rows["case_id"].to_numpy(), "y": positive})
        frame["value"] = rows[column].to_numpy()
        cases = frame.drop_duplicates("case")
        prior = float(cases["y"].mean()) if len(cases) else float("nan")
        # A case counts once per value, however many of its prefixes show it.
        pairs = frame.dropna(subset=["value"]).drop_duplicates(["case", "value"])
        g = pairs.groupby("value")["y"].agg(["sum", "count"])
        rate = (g["sum"] + smoothing * prior) / (g["count"] + smoothing)
        return cls(column, {str(k): float(v) for k, v in rate.items()}, prior)

    def __call__(self, rows: pd.DataFrame) -> np.ndarray:
        """The rate of each row's value; NaN where it is missing or unseen."""
        table = pd.Series(self.rates, dtype=float)
        values = rows[self.column].astype("string")
        return values.map(table).to_numpy(dtype=float, na_value=np.nan)
