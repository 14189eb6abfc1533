"""Reasons in words: the top factors of each score, as a rep would say them.

The model's per-row contributions (LightGBM's `pred_contrib`, in log-odds)
say how much each feature moved a deal's score up or down. The largest ones
become phrases built from the deal's own values: "in Proposal 3.0× longer
than usual", "source: partner referral", "close date pushed 2×". A leading
"+" or "−" says which way the factor pushed.

A rate reads beside the rate of all deals (or leads) it is drawn from: "owner
ben wins 23% (all owners 29%)". A tree model can push a below-average owner's
deal up (or an above-average one down) through interactions with other
features; worded as a rate, such a push would contradict itself ("+ owner ben
wins 23%" while all owners win 29%), so that factor is left out of the deal's
reasons and the next one takes its place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from funnelwise.scoring.features import ATTRIBUTE_PREFIX, OVERALL_RATE, RECENT_DAYS

# Contributions smaller than this (log-odds) are not worth a reason.
MIN_EFFECT = 0.01
Phrase = Callable[[pd.DataFrame], pd.Series]


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(np.nan, index=frame.index, dtype=object)


def _num(frame: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(_col(frame, name), errors="coerce")


def _fmt(values: pd.Series, template: str, missing: str = "") -> pd.Series:
    """Each value formatted into `template` (as `{v}`), or `missing` when absent."""
    return values.map(lambda v: missing if pd.isna(v) else template.format(v=v))


def _text(frame: pd.DataFrame, name: str, fallback: str = "") -> pd.Series:
    col = _col(frame, name)
    return col.where(col.notna(), fallback).astype(str)


def _pick(conditions: list[tuple[pd.Series, pd.Series]], default: pd.Series) -> pd.Series:
    """Per row, the phrase of the first true condition, else the default."""
    out = default.copy()
    for cond, phrase in reversed(conditions):
        out = out.mask(cond.fillna(False).astype(bool), phrase)
    return out


def _count(name: str, some: str, none: str) -> Phrase:
    def phrase(f: pd.DataFrame) -> pd.Series:
        n = _num(f, name)
        return _pick([(n > 0, _fmt(n, some))], pd.Series(none, index=f.index))

    return phrase


def _stage_time(f: pd.DataFrame) -> pd.Series:
    stage = _text(f, "stage_name", "this stage")
    r = _num(f, "stage_time_ratio")
    d = _num(f, "days_in_stage")
    longer = "in " + stage + " " + _fmt(r, "{v:.1f}× longer than usual")
    shorter = "in " + stage + " for " + _fmt(d, "{v:.0f} days, quicker than usual")
    usual = "in " + stage + " about as long as usual"
    # A stage where fewer than half the visits have ended has no usual time yet.
    unknown = "in " + stage + " for " + _fmt(d, "{v:.0f} days", "a while")
    return _pick([(r.isna(), unknown), (r >= 1.5, longer), (r <= 0.67, shorter)], usual)


def _close_date(f: pd.DataFrame) -> pd.Series:
    d = _num(f, "days_to_close")
    overdue = _fmt(-d, "expected close date {v:.0f} days overdue")
    ahead = _fmt(d, "expected to close in {v:.0f} days")
    return _pick(
        [(d.isna(), pd.Series("no expected close date", index=f.index)), (d < 0, overdue)], ahead
    )


def _amount_drift(f: pd.DataFrame) -> pd.Series:
    r = _num(f, "amount_ratio")
    up = _fmt(100 * (r - 1), "amount raised {v:.0f}% since first entered")
    down = _fmt(100 * (1 - r), "amount cut {v:.0f}% since first entered")
    return _pick([(r > 1.05, up), (r < 0.95, down)], pd.Series("amount unchanged", index=f.index))


def _rate(who: str, name: str, rate: str, verb: str, everyone: str) -> Phrase:
    def phrase(f: pd.DataFrame) -> pd.Series:
        value = _text(f, name, "unknown")
        overall = _fmt(_num(f, OVERALL_RATE), f" ({everyone} {{v:.0%}})")
        return f"{who} " + value + _fmt(_num(f, rate), f" {verb} {{v:.0%}}") + overall

    return phrase


# The features worded as a rate, and which rate of all deals (or leads) they are
# compared with: the mean over the closed deals (or decided leads), which include
# those without a source or campaign.
RATES: dict[str, str] = {
    "owner_win_rate": "all owners",
    "source_win_rate": "all deals",
    "source_conversion_rate": "all leads",
    "campaign_conversion_rate": "all leads",
}


def rate_side(frame: pd.DataFrame, feature: str) -> np.ndarray:
    """Per row, +1 where a rate feature reads above the rate of all deals (or leads),
    −1 below, 0 where the two read alike in whole percent, where either is
    unknown, or where the feature is not a rate."""
    if feature not in RATES or OVERALL_RATE not in frame.columns:
        return np.zeros(len(frame))
    rate = np.round(100 * _num(frame, feature).to_numpy(float))
    overall = np.round(100 * _num(frame, OVERALL_RATE).to_numpy(float))
    return np.nan_to_num(np.sign(rate - overall))


def _share(done: str, required: str, what: str) -> Phrase:
    def phrase(f: pd.DataFrame) -> pd.Series:
        return _fmt(_num(f, done), "{v:.0f}") + " of " + _fmt(_num(f, required), "{v:.0f}") + what

    return phrase


PHRASES: dict[str, Phrase] = {
    "stage": lambda f: "stage: " + _text(f, "stage_name", "none"),
    "stage_position": lambda f: "at stage " + _text(f, "stage_name", "none"),
    "furthest_position": lambda f: "got as far as " + _text(f, "furthest_stage_name", "the start"),
    "days_in_stage": lambda f: (
        _fmt(_num(f, "days_in_stage"), "{v:.0f} days in ") + _text(f, "stage_name", "this stage")
    ),
    "stage_time_ratio": _stage_time,
    "deal_age_days": lambda f: _fmt(_num(f, "deal_age_days"), "open for {v:.0f} days"),
    "stage_changes": _count("stage_changes", "{v:.0f} stage changes so far", "no stage change yet"),
    "backward_moves": _count("backward_moves", "moved back {v:.0f}×", "never moved back"),
    "reentries": _count("reentries", "re-entered a stage {v:.0f}×", "no stage re-entered"),
    "close_pushes": _count("close_pushes", "close date pushed {v:.0f}×", "close date never pushed"),
    "days_to_close": _close_date,
    "amount_changes": _count("amount_changes", "amount changed {v:.0f}×", "amount never changed"),
    "amount_ratio": _amount_drift,
    "owner_changes": _count("owner_changes", "owner changed {v:.0f}×", "same owner throughout"),
    "activities": _count("activities", "{v:.0f} activities logged", "no activity logged"),
    "activities_recent": _count(
        "activities_recent",
        f"{{v:.0f}} activities in the last {RECENT_DAYS:.0f} days",
        f"no activity in the last {RECENT_DAYS:.0f} days",
    ),
    "early_activities": _count(
        "early_activities", "{v:.0f} activities in the first week", "no activity in the first week"
    ),
    "days_since_activity": lambda f: _fmt(
        _num(f, "days_since_activity"), "last activity {v:.0f} days ago", "no activity logged"
    ),
    "inbound_share": lambda f: _fmt(
        _num(f, "inbound_share"), "{v:.0%} of activities inbound", "no activity logged"
    ),
    "owner_closed": lambda f: _fmt(_num(f, "owner_closed"), "owner has closed {v:.0f} deals"),
    "owner_win_rate": _rate("owner", "owner_id", "owner_win_rate", "wins", RATES["owner_win_rate"]),
    "source_win_rate": _rate(
        "source", "source", "source_win_rate", "wins", RATES["source_win_rate"]
    ),
    "source_conversion_rate": _rate(
        "source", "source", "source_conversion_rate", "converts", RATES["source_conversion_rate"]
    ),
    "campaign_conversion_rate": _rate(
        "campaign",
        "campaign",
        "campaign_conversion_rate",
        "converts",
        RATES["campaign_conversion_rate"],
    ),
    "amount_log10": lambda f: _fmt(_num(f, "amount"), "amount {v:,.0f}", "no amount"),
    "account_employees": lambda f: _fmt(
        _num(f, "account_employees"), "account has {v:,.0f} employees", "account size unknown"
    ),
    "account_revenue": lambda f: _fmt(
        _num(f, "account_revenue"), "account revenue {v:,.0f}", "account revenue unknown"
    ),
    "checklist_share": _share(
        "checklist_done", "checklist_required", " exit-criteria items checked"
    ),
    "fields_share": _share("fields_done", "fields_required", " required fields filled"),
    "stage_probability": lambda f: (
        _text(f, "stage_name", "no stage")
        + _fmt(_num(f, "stage_probability"), ": process probability {v:.0%}")
    ),
    "lead_age_days": lambda f: _fmt(_num(f, "lead_age_days"), "lead is {v:.0f} days old"),
    "source": lambda f: "source: " + _text(f, "source", "none"),
    "product": lambda f: "product: " + _text(f, "product", "none"),
    "region": lambda f: "region: " + _text(f, "region", "none"),
    "account_industry": lambda f: "industry: " + _text(f, "account_industry", "unknown"),
    "campaign": lambda f: "campaign: " + _text(f, "campaign", "none"),
}


# Features that describe one fact about a deal: their effects add up to one reason,
# worded by the member that pushed hardest in the direction of the sum. Apart, a
# deal could read "+ 288 days in Needs assessment" and "− in Needs assessment 6.4×
# longer than usual", or "no activity logged" twice.
FACTS: dict[str, str] = {
    "days_in_stage": "stage time",
    "stage_time_ratio": "stage time",
    "stage": "stage",
    "stage_position": "stage",
    "stage_probability": "stage",
    "activities": "activity",
    "activities_recent": "activity",
    "early_activities": "activity",
    "days_since_activity": "activity",
    "inbound_share": "activity",
    "owner_closed": "owner",
    "owner_win_rate": "owner",
    "source": "source",
    "source_win_rate": "source",
    "source_conversion_rate": "source",
    "campaign": "campaign",
    "campaign_conversion_rate": "campaign",
    "amount_changes": "amount",
    "amount_ratio": "amount",
    "checklist_share": "readiness",
    "fields_share": "readiness",
}
# "1 days" and the like, in phrases built from templates.
_SINGULAR = re.compile(r"(?<![\d.,])1 (day|activitie|deal|stage change)s\b")


def number_text(v: float) -> str:
    """A number as a rep would read it: grouped thousands, no needless decimals
    (8801 -> '8,801', 2.5 -> '2.5', 0.0042 -> '0.0042')."""
    if float(v).is_integer():
        return f"{v:,.0f}"
    if abs(v) < 1:
        return f"{v:.2g}"
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def standing(v: float, reference: Sequence[float], unit: str) -> str:
    """Where `v` stands among the sorted `reference` values, one per training deal
    (or lead): 'more than 80% of deals' (the share with a smaller value), or
    'less than 70% of deals' (the share with a larger one), whichever is larger."""
    ref = np.asarray(reference, dtype=float)
    n = len(ref)
    if n == 0:
        return ""
    below = float(np.searchsorted(ref, v, side="left")) / n
    above = float(n - np.searchsorted(ref, v, side="right")) / n
    if below >= above:
        return f"more than all {unit}" if below >= 1 else f"more than {below:.0%} of {unit}"
    return f"less than all {unit}" if above >= 1 else f"less than {above:.0%} of {unit}"


def _numeric_attribute(
    frame: pd.DataFrame, feature: str, reference: Sequence[float], unit: str
) -> pd.Series:
    key = feature.removeprefix(ATTRIBUTE_PREFIX)
    values = _num(frame, feature)

    def one(v: float) -> str:
        if pd.isna(v):
            return f"{key} unknown"
        where = standing(float(v), reference, unit)
        return f"{key} {number_text(float(v))}" + (f" ({where})" if where else "")

    return values.map(one).astype(object)


def phrase(
    frame: pd.DataFrame,
    feature: str,
    *,
    reference: Mapping[str, Sequence[float]] | None = None,
    unit: str = "deals",
) -> pd.Series:
    """The phrase for one feature on every row of a feature frame. An attribute key
    in `reference` (numeric attributes: the training values) reads as its number
    and percentile, 'employees 8,801 (more than 80% of deals)'."""
    key = feature.removeprefix(ATTRIBUTE_PREFIX)
    if feature in PHRASES:
        words = PHRASES[feature](frame)
    elif feature.startswith(ATTRIBUTE_PREFIX) and reference and key in reference:
        words = _numeric_attribute(frame, feature, reference[key], unit)
    elif feature.startswith(ATTRIBUTE_PREFIX):
        words = f"{key}: " + _text(frame, feature, "none")
    else:
        words = feature + ": " + _text(frame, feature, "none")
    return words.str.replace(_SINGULAR, lambda m: "1 " + _singular(m.group(1)), regex=True)


def _singular(word: str) -> str:
    """The singular of a plural stripped of its final s: activitie -> activity."""
    return word[:-2] + "y" if word.endswith("ie") and word != "ie" else word


def _facts(contributions: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per row and fact: the summed effect, and which feature (column of `names`)
    words it."""
    facts = list(dict.fromkeys(FACTS.get(name, name) for name in names))
    member = np.array([facts.index(FACTS.get(name, name)) for name in names])
    n = contributions.shape[0]
    total = np.zeros((n, len(facts)))
    np.add.at(total.T, member, contributions.T)
    # The wording member: the largest effect pointing the way of its fact's sum.
    along = contributions * np.sign(total[:, member])
    pick = np.zeros((n, len(facts)), dtype=int)
    for f in range(len(facts)):
        cols = np.flatnonzero(member == f)
        pick[:, f] = cols[np.argmax(along[:, cols], axis=1)]
    return total, pick


def top_reasons(
    frame: pd.DataFrame,
    contributions: np.ndarray,
    names: tuple[str, ...],
    *,
    top: int = 3,
    reference: Mapping[str, Sequence[float]] | None = None,
    unit: str = "deals",
) -> pd.DataFrame:
    """The `top` largest factors per row: `reason_i` (signed phrase) and `effect_i`
    (log-odds; positive raises the score). Features about the same fact (`FACTS`)
    count as one factor. Factors below MIN_EFFECT are left blank, and so is a factor
    worded by a rate that pushed against the rate's side of the average (a
    below-average owner's rate raising the score): the next factor takes its place.
    Numeric attributes (the keys of `reference`) read with their percentile among
    the training `unit` (see `phrase`)."""
    n = contributions.shape[0]
    columns: dict[str, object] = {}
    total, pick = _facts(contributions, names) if n else (np.zeros((0, 0)), None)
    k = min(top, total.shape[1])
    if n == 0 or k == 0 or pick is None:
        for i in range(1, top + 1):
            columns[f"reason_{i}"] = pd.Series(dtype=object)
            columns[f"effect_{i}"] = pd.Series(dtype=float)
        return pd.DataFrame(columns)
    phrases = np.column_stack(
        [phrase(frame, name, reference=reference, unit=unit).to_numpy(object) for name in names]
    )
    sides = np.column_stack([rate_side(frame, name) for name in names])
    against = np.take_along_axis(sides, pick, axis=1) * np.sign(total) < 0
    # Contradicting factors rank after all others (an absolute effect is never < 0).
    order = np.argsort(np.where(against, 1.0, -np.abs(total)), axis=1, kind="stable")[:, :k]
    effects = np.take_along_axis(total, order, axis=1)
    hidden = np.take_along_axis(against, order, axis=1)
    words = np.take_along_axis(phrases, np.take_along_axis(pick, order, axis=1), axis=1)
    sign = np.where(effects >= 0, "+ ", "− ")
    for i in range(top):
        if i < k:
            text = pd.Series(sign[:, i].astype(object) + words[:, i], index=frame.index)
            small = (np.abs(effects[:, i]) < MIN_EFFECT) | hidden[:, i]
            columns[f"reason_{i + 1}"] = text.mask(small, None)
            columns[f"effect_{i + 1}"] = pd.Series(effects[:, i], index=frame.index)
        else:
            columns[f"reason_{i + 1}"] = pd.Series(None, index=frame.index, dtype=object)
            columns[f"effect_{i + 1}"] = pd.Series(np.nan, index=frame.index)
    return pd.DataFrame(columns, index=frame.index)
