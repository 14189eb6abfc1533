"""From shocks measured over short windows to the shock over a forecast's horizon.

A log too short to compare windows as long as the horizon can still compare
shorter ones (weeks). How a shock measured over `s` days carries to a horizon
of `H` days depends on how long shocks last:

- transient (each week its own draw): shocks average out over the horizon,
  σ²(H) = σ²(s) · s / H;
- persistent (a level that moves and stays): σ²(H) = σ²(s).

Comparing several window lengths tells them apart (a variance-time plot): the
measured variances are fitted, in least squares with non-negative parts and
each scale weighted by the windows behind it, as σ²(s) = a + b / s, a the
persistent part and b the transient one, and σ²(H) = a + b / H. A single
window length cannot tell them apart: it counts as persistent, which errs wide
(an interval may; leaving the shock out errs narrow).

Limits: a level that keeps drifting (a random walk: the variance grows with
the window) is taken at its mean over the windows measured, which errs narrow
for it; and a shock that moves only every few months is invisible in weeks.
Both are why a forecast from weeks of history says its interval is a rough
guide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls


@dataclass(frozen=True)
class Scaled:
    """A shock carried to the horizon: `sigma` (log sd over `horizon_days`), its
    persistent and transient variance parts (`persistent`, `transient` · 1/days), the
    window lengths it was measured on (days) and the windows compared."""

    sigma: float
    persistent: float
    transient: float
    scales: tuple[float, ...]
    windows: int


def to_horizon(
    scales: Sequence[float], sigmas: Sequence[float], windows: Sequence[int], horizon_days: float
) -> Scaled:
    """The log sd over `horizon_days` of a shock measured as `sigmas` (log sds) over
    windows of `scales` days, each from `windows` comparisons (see the module
    docstring). Scales with no window are ignored; none at all gives σ = 0."""
    s = np.asarray(scales, dtype=float)
    v = np.asarray(sigmas, dtype=float) ** 2
    n = np.asarray(windows, dtype=float)
    keep = n > 0
    s, v, n = s[keep], v[keep], n[keep]
    if not len(s):
        return Scaled(0.0, 0.0, 0.0, (), 0)
    if len(np.unique(s)) < 2:
        a, b = float(np.average(v, weights=n)), 0.0
    else:
        root = np.sqrt(n)
        design = np.column_stack([np.ones(len(s)), 1.0 / s]) * root[:, None]
        (a, b), _ = nnls(design, v * root)
    sigma = float(np.sqrt(max(0.0, a + b / horizon_days)))
    return Scaled(sigma, float(a), float(b), tuple(float(x) for x in s), int(n.sum()))
