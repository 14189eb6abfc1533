"""Past outcome rates per resource (target encoding) for the monitoring protocol, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnelwise.scoring.ppm_rates import PastRates


def test_past_rates_by_hand() -> None:
    # Cases a, b (positive) and c (negative); a shows r1 in two prefixes and r2 in one.
    rows = pd.DataFrame(
        {
            "case_id": ["a", "a", "a", "b", "c", "c"],
            "work_resource": [None, "r1", "r1", "r1", "r1", "r2"],
        }
    )
    y = np.array([1, 1, 1, 1, 0, 0], dtype=float)
    rates = PastRates.fit(rows, "work_resource", y, smoothing=3.0)
    prior = 2 / 3
    # r1: cases a, b, c once each (2 positive of 3); r2: case c (0 of 1).
    assert rates.prior == pytest.approx(prior)
    assert rates.rates["r1"] == pytest.approx((2 + 3 * prior) / (3 + 3))
    assert rates.rates["r2"] == pytest.approx((0 + 3 * prior) / (1 + 3))
    new = pd.DataFrame({"case_id": ["x", "x", "x"], "work_resource": ["r2", None, "r9"]})
    got = rates(new)
    assert got[0] == pytest.approx((0 + 3 * prior) / 4)
    assert np.isnan(got[1]) and np.isnan(got[2])
