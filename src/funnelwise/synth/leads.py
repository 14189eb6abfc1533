"""Leads: one converted lead behind every deal, plus the leads that never converted.

A deal's lead was created a few days before the deal (gamma delay) and
converted at the deal's creation. Unconverted leads arrive like deals (same
weekday weights) in numbers that make each source's conversion rate come out
at `lead_conversion`; most are disqualified after a while, the rest stay
open. Paid sources' leads belong to that quarter's campaign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from funnelwise.synth.columns import coded, constant, ids, timestamps, width_for
from funnelwise.synth.history import Activities, activity_minutes
from funnelwise.synth.params import SynthParams
from funnelwise.synth.population import (
    Campaigns,
    arrival_days,
    campaigns,
    gamma_with_median,
    normalised,
    quarter_of,
)

_LEAD_TOUCH_SHARE = 0.6  # unconverted leads that get one outbound touch


def unconverted_per_deal(params: SynthParams) -> np.ndarray:
    """Expected unconverted leads per deal, by source: mix × (1 - c) / c."""
    c = np.asarray(params.lead_conversion, dtype=float)
    return normalised(params.source_mix) * (1.0 - c) / c


@dataclass(frozen=True)
class Leads:
    """The leads table, its campaigns, each deal's campaign and the leads' activities."""

    table: pa.Table
    campaigns: Campaigns
    deal_campaign: np.ndarray  # campaign row per deal, -1 for none
    activities: Activities  # `deal` holds the lead row here
    lead_ids: pa.Array
    owner: np.ndarray  # user row of each lead's owner


def build_leads(
    params: SynthParams,
    *,
    start: pd.Timestamp,
    window: int,
    deal_t0: np.ndarray,
    deal_source: np.ndarray,
    deal_owner: np.ndarray,
    deal_ids: pa.Array,
    owner_ids: pa.Array,
    rep_users: np.ndarray,
    rng: np.random.Generator,
) -> Leads:
    """Leads for the deals (converted) and the unconverted rest, sorted by creation."""
    n = deal_t0.size
    until = float(window)
    delay = gamma_with_median(params.lead_to_deal_median_days, 1.5, n, rng)
    per_deal = unconverted_per_deal(params)
    m = int(np.rint(n * per_deal.sum()))
    u_source = rng.choice(len(params.sources), m, p=per_deal / per_deal.sum())
    u_created = arrival_days(params, start, window, m, rng)
    u_owner = rep_users[rng.integers(0, rep_users.size, m)]
    disq = u_created + gamma_with_median(params.lead_disqualify_median_days, 1.5, m, rng)
    disq[(rng.random(m) >= params.lead_disqualified_share) | (disq > until)] = np.nan

    created = np.concatenate([deal_t0 - delay, u_created])
    order = np.argsort(created, kind="stable")
    created = created[order]
    source = np.concatenate([deal_source, u_source])[order]
    owner = np.concatenate([deal_owner, u_owner])[order]
    deal_of = np.concatenate([np.arange(n), np.full(m, -1)])[order]
    disqualified = np.concatenate([np.full(n, np.nan), disq])[order]
    converted = deal_of >= 0
    converted_at = np.where(converted, deal_t0[np.maximum(deal_of, 0)], np.nan)

    quarter = quarter_of(start, created)
    camp = campaigns(params, source, quarter, rng)
    code = camp.code(source, quarter)
    deal_campaign = np.empty(n, dtype=np.int64)
    deal_campaign[deal_of[converted]] = code[converted]

    total = n + m
    lead_ids = ids("L", total, width_for(total))
    table = pa.table(
        {
            "lead_id": lead_ids,
            "created_at": timestamps(start, created),
            "source": coded(source, params.sources),
            "campaign_id": coded(code, camp.ids),
            "owner_id": coded(owner, owner_ids),
            "converted_deal_id": coded(deal_of, deal_ids),
            "converted_at": timestamps(start, np.nan_to_num(converted_at), null=~converted),
            "disqualified_at": timestamps(
                start, np.nan_to_num(disqualified), null=np.isnan(disqualified)
            ),
            "origin": constant("synth", total),
        }
    )

    # One outbound touch for some unconverted leads, before any disqualification.
    touched = np.flatnonzero(~converted & (rng.random(total) < _LEAD_TOUCH_SHARE))
    at = created[touched] + rng.random(touched.size)
    limit = np.fmin(disqualified[touched], until)
    touched, at = touched[at <= limit], at[at <= limit]
    kind = rng.integers(0, 2, touched.size)  # email or call
    touches = Activities(
        deal=touched,
        at=at,
        kind=kind,
        direction=np.zeros(touched.size, dtype=np.int64),
        minutes=activity_minutes(kind, rng),
    )
    return Leads(table, camp, deal_campaign, touches, lead_ids, owner)
