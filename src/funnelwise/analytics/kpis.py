"""Key figures: win rate, deal size, cycle, velocity, coverage, leads and campaign ROI.

Every figure is a row with its value, interval where one exists, the number
it rests on and its unit. Win rate and cycle come twice: the closed-only
figure a CRM shows, and the censoring-aware one (Aalen–Johansen) that counts
open deals as open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from scipy.stats import norm

from funnelwise.analytics.common import (
    VALUE,
    base_meta,
    elapsed_days,
    empty_meta,
    group_deals,
    iter_groups,
    timestamp,
    to_pandas,
)
from funnelwise.analytics.outcomes import CREATED, outcome_day_counts
from funnelwise.analytics.result import Result, frame_view, with_interval
from funnelwise.analytics.stats import (
    ALPHA,
    cumulative_incidence,
    incidence_quantile,
    rate_columns,
    value_at,
)
from funnelwise.log import EventLog

LEAD_CODES = {"converted": 1, "disqualified": 2}
LEAD_COLUMNS = ("source", "campaign_id", "owner_id")


@dataclass(frozen=True, eq=False)
class KpiResult(Result):
    """Frames `kpis` (one row per group and figure), `leads` and `campaigns`."""

    analysis = "kpis"
    title = "Key figures"
    display: ClassVar[Mapping[str, Sequence[str]]] = {
        "kpis": ["kpi", "value", "n", "unit"],
        "campaigns": ["key", "cost", "leads", "deals", "won", "won_value", "cpa", "roi"],
        "leads": [
            "leads",
            "converted",
            "disqualified",
            "open",
            "naive_rate",
            "conversion",
            "days_to_convert_median",
        ],
    }
    percent: ClassVar[frozenset[str]] = frozenset({"conversion"})

    kpis = frame_view("One row per group and figure: value, lower, upper, n, unit.")

    def display_frame(self, name: str) -> pd.DataFrame:
        """As for every result; in `kpis` each value beside its interval, shares (unit
        'share') as percentages."""
        out = super().display_frame(name)
        if name != "kpis":
            return out
        f = self.frames[name].loc[out.index]
        out["value"] = [
            with_interval(v, lo, hi, percent=unit == "share")
            for v, lo, hi, unit in zip(f["value"], f["lower"], f["upper"], f["unit"], strict=True)
        ]
        return out

    leads = frame_view("Per lead group: leads, converted, conversion (naive and censoring-aware).")
    campaigns = frame_view("Per campaign (or source, with costs given): cost, deals, CPA, ROI.")


def _row(
    kpi: str, value: float, unit: str, n: float, lo: float = np.nan, hi: float = np.nan
) -> dict[str, Any]:
    return {"kpi": kpi, "value": value, "lower": lo, "upper": hi, "n": int(n), "unit": unit}


def kpis(
    log: EventLog,
    *,
    by: str | None = None,
    target: float | None = None,
    costs: Mapping[str, float] | None = None,
    alpha: float = ALPHA,
) -> KpiResult:
    """Key figures of the sales process, per group.

    Args:
        log: the event log.
        by: a deal column or attribute key to split by.
        target: a revenue target (process currency) for pipeline coverage.
        costs: spend per deal source (process currency) for cost per acquisition
            and ROI per source; without it the campaigns table's costs are used,
            in a since/until window the share of each campaign's days inside it.
        alpha: 1 - confidence level.

    Figures: win_rate_closed (won / closed), win_rate (censoring-aware),
    avg_deal_size and median_deal_size (won deals), cycle_days (censoring-aware
    median days to won) and cycle_days_won_only, open_deals, open_pipeline,
    sales_velocity (open deals × win rate × average size / cycle days, value
    per day), pipeline_coverage (open pipeline / target), longest_close_days (the
    most days from creation to close of any closed deal) and open_past_longest_close
    (open deals older than that: velocity counts them, the history has no deal that
    closed so late).
    """
    currency = log.process.currency
    deals, groups = group_deals(log, log.deals, by=by, reserved=("kpi", "value", "unit"))
    won = (deals.outcome == "won").fill_null(False)
    value = deals[VALUE]
    money = to_pandas(
        deals.group_by(groups).aggregate(
            deals=deals.count(),
            open=deals.outcome.isnull().cast("int64").sum(),
            won=won.cast("int64").sum(),
            closed=deals.outcome.notnull().cast("int64").sum(),
            won_mean=value.mean(where=won),
            won_sd=value.std(where=won),
            won_median=value.median(where=won),
            open_value=value.sum(where=deals.outcome.isnull()),
        )
    )
    counts = outcome_day_counts(log, deals, groups, from_stages=False)
    counts = counts[counts["scope"] == CREATED]
    z = float(norm.ppf(1 - alpha / 2))
    rows = []
    for label, part in iter_groups(counts, groups):
        m = money
        for g in groups:
            m = m[m[g] == label[g]]
        rec = m.iloc[0]
        rows += [label | r for r in _deal_figures(part, rec, currency, target, z, alpha)]
    frame = pd.DataFrame(rows, columns=[*groups, "kpi", "value", "lower", "upper", "n", "unit"])
    leads = _lead_figures(log, by, alpha)
    campaigns = _campaigns(log, costs)
    meta = base_meta(
        log,
        by=by,
        groups=groups,
        target=target,
        alpha=alpha,
        unit=currency,
        **empty_meta(log, frame),
    )
    return KpiResult({"kpis": frame, "leads": leads, "campaigns": campaigns}, meta)


def _deal_figures(
    part: pd.DataFrame,
    rec: pd.Series,
    currency: str,
    target: float | None,
    z: float,
    alpha: float,
) -> list[dict[str, Any]]:
    curve = cumulative_incidence(part["day"], part["code"], part["n"], alpha=alpha)
    won_curve = curve[curve["outcome"] == "won"]
    followup = int(part["day"].max())
    p, p_lo, p_hi = value_at(won_curve, followup, ["cif", "lower", "upper"])
    closed = rate_columns([rec["won"]], [rec["closed"]], "r", alpha=alpha)
    r, r_lo, r_hi = (float(closed[f"r_{k}"][0]) for k in ("rate", "lower", "upper"))
    n_won = int(rec["won"])
    mean = float(rec["won_mean"]) if n_won else np.nan
    half = z * float(rec["won_sd"]) / np.sqrt(n_won) if n_won > 1 else np.nan
    cycle = incidence_quantile(won_curve, 0.5)
    won_days = part[part["code"] == 1]
    naive_cycle = float(np.median(np.repeat(won_days["day"], won_days["n"]))) if n_won else np.nan
    open_value = float(rec["open_value"]) if pd.notna(rec["open_value"]) else 0.0
    velocity = rec["open"] * p * mean / cycle if cycle and cycle > 0 else np.nan
    # Open deals older than any deal has ever taken to close: velocity counts them at
    # full weight, though the history has no example of one closing that late.
    closed_days = part.loc[part["code"] != 0, "day"]
    longest = float(closed_days.max()) if len(closed_days) else np.nan
    past = part[(part["code"] == 0) & (part["day"] > longest)]["n"].sum() if len(closed_days) else 0
    out = [
        _row("win_rate_closed", r, "share", rec["closed"], r_lo, r_hi),
        _row("win_rate", p, "share", rec["deals"], p_lo, p_hi),
        _row("avg_deal_size", mean, currency, n_won, mean - half, mean + half),
        _row("median_deal_size", float(rec["won_median"]) if n_won else np.nan, currency, n_won),
        _row("cycle_days", cycle, "days", n_won),
        _row("cycle_days_won_only", naive_cycle, "days", n_won),
        _row("open_deals", float(rec["open"]), "deals", rec["open"]),
        _row("open_pipeline", open_value, currency, rec["open"]),
        _row("sales_velocity", float(velocity), f"{currency}/day", rec["deals"]),
        _row("longest_close_days", longest, "days", rec["closed"]),
        _row("open_past_longest_close", float(past), "deals", rec["open"]),
    ]
    if target:
        out.append(_row("pipeline_coverage", open_value / target, "ratio", rec["open"]))
    return out


def _lead_figures(log: EventLog, by: str | None, alpha: float) -> pd.DataFrame:
    """Lead-to-deal conversion: naive (converted / leads) and censoring-aware, with
    disqualification competing and open leads censored; median days to convert."""
    lead = log.leads
    keys = [by] if by in LEAD_COLUMNS else []
    now = timestamp(log.now)
    end = ibis.coalesce(lead.converted_at, lead.disqualified_at, now)
    code = ibis.cases(
        (lead.converted_at.notnull(), LEAD_CODES["converted"]),
        (lead.disqualified_at.notnull(), LEAD_CODES["disqualified"]),
        else_=0,
    )
    t = lead.mutate(
        **{k: lead[k].fill_null("(missing)") for k in keys},
        day=elapsed_days(lead.created_at, end).ceil().clip(lower=0).cast("int64"),
        code=code,
    )
    counts = to_pandas(t.group_by([*keys, "day", "code"]).aggregate(n=t.count()))
    rows = []
    for label, part in iter_groups(counts, keys):
        if part.empty:
            continue
        n = int(part["n"].sum())
        converted = int(part.loc[part["code"] == 1, "n"].sum())
        curve = cumulative_incidence(
            part["day"], part["code"], part["n"], alpha=alpha, labels=LEAD_CODES
        )
        conv = curve[curve["outcome"] == "converted"]
        p, lo, hi = value_at(conv, int(part["day"].max()), ["cif", "lower", "upper"])
        naive = rate_columns([converted], [n], "naive", alpha=alpha)
        rows.append(
            label
            | {
                "leads": n,
                "converted": converted,
                "disqualified": int(part.loc[part["code"] == 2, "n"].sum()),
                "open": int(part.loc[part["code"] == 0, "n"].sum()),
                "naive_rate": float(naive["naive_rate"][0]),
                "naive_lower": float(naive["naive_lower"][0]),
                "naive_upper": float(naive["naive_upper"][0]),
                "conversion": p,
                "conversion_lower": lo,
                "conversion_upper": hi,
                "days_to_convert_median": incidence_quantile(conv, 0.5),
            }
        )
    columns = [
        *keys,
        "leads",
        "converted",
        "disqualified",
        "open",
        "naive_rate",
        "naive_lower",
        "naive_upper",
        "conversion",
        "conversion_lower",
        "conversion_upper",
        "days_to_convert_median",
    ]
    return pd.DataFrame(rows, columns=columns)


def _window_costs(log: EventLog, campaigns: pd.DataFrame) -> pd.DataFrame:
    """Each campaign's cost (key, cost) spent in the log's since/until window and by
    its instant, the leads and deals of which are those created then: the cost times
    the share of the campaign's days inside both (a running campaign runs to the
    log's instant). Unknown (NaN) for a campaign without a start when a window or an
    as-of date is set."""
    out = pd.DataFrame({"key": campaigns["campaign_id"], "cost": campaigns["cost"]})
    if log.since is None and log.until is None and log.cutoff is None:
        return out
    start = pd.to_datetime(campaigns["started_at"])
    end = pd.to_datetime(campaigns["ended_at"]).fillna(log.now)
    end = end.where(end >= start, start)
    lo = start.where(start >= log.since, log.since) if log.since is not None else start
    # Nothing is spent after the log's instant (as of a date, later days have not come).
    stop = min(t for t in (log.until, log.now) if t is not None)
    hi = end.where(end <= stop, stop)
    inside = (hi - lo).where(hi > lo, pd.Timedelta(0))
    length = end - start
    # A campaign of one instant is all in the window or all out of it.
    share = (inside / length).where(length > pd.Timedelta(0), (lo <= hi).astype(float))
    out["cost"] = (out["cost"] * share.where(start.notna())).astype(float)
    return out


def _campaigns(log: EventLog, costs: Mapping[str, float] | None) -> pd.DataFrame:
    """Cost, leads, deals, wins, cost per acquisition (cost / won) and ROI per campaign,
    or per source when `costs` gives the spend per source."""
    d = log.deals
    key = "source" if costs is not None else "campaign_id"
    won = (d.outcome == "won").fill_null(False)
    deals = d.group_by(key=d[key]).aggregate(
        deals=d.count(),
        won=won.cast("int64").sum(),
        won_value=d[VALUE].sum(where=won),
    )
    lead = log.leads
    leads = lead.group_by(key=lead[key]).aggregate(leads=lead.count())
    if costs is not None:
        spend = ibis.memtable(pd.DataFrame({"key": list(costs), "cost": list(costs.values())}))
    else:
        c = log.store.table("campaigns")
        spend = ibis.memtable(_window_costs(log, to_pandas(c.filter(c.cost.notnull()))))
    j: ir.Table = spend.left_join(deals, "key").select(spend, "deals", "won", "won_value")
    j = j.left_join(leads, "key").select(j, "leads")
    frame = to_pandas(
        j.mutate(
            deals=j.deals.fill_null(0),
            won=j.won.fill_null(0),
            leads=j.leads.fill_null(0),
            won_value=j.won_value.fill_null(0.0),
        )
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        per_lead = frame["cost"] / frame["leads"]
        frame["cost_per_lead"] = np.where(frame["leads"] > 0, per_lead, np.nan)
        frame["cpa"] = np.where(frame["won"] > 0, frame["cost"] / frame["won"], np.nan)
        frame["roi"] = np.where(
            frame["cost"] > 0, (frame["won_value"] - frame["cost"]) / frame["cost"], np.nan
        )
    cols = ["key", "cost", "leads", "deals", "won", "won_value", "cost_per_lead", "cpa", "roi"]
    return frame[cols].sort_values("key").reset_index(drop=True)
