"""`generate()`: draw a whole synthetic CRM, then cut it at the end of observation.

Every deal's path is simulated to the end (uncensored); the window is then
cut at `observed_until` uniformly across tables: deals whose outcome falls
after it are open, and their later stage events, field changes and
activities are removed, so that the data look like a CRM export taken that
day. The truth knows what the cut removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from funnelwise.errors import InputError
from funnelwise.process import parse_process, template_text
from funnelwise.progressing import ProgressCallback, no_progress
from funnelwise.store import conform
from funnelwise.synth.chain import ChainTables, segment_index, simulate_paths
from funnelwise.synth.columns import (
    as_text,
    coded,
    constant,
    dates,
    ids,
    timestamps,
    width_for,
)
from funnelwise.synth.history import (
    ACTIVITY_DIRECTIONS,
    LOSS_REASONS,
    Activities,
    Checklist,
    FieldHistory,
    amount_history,
    checklist,
    close_date_history,
    deal_activities,
    loss_reasons,
)
from funnelwise.synth.leads import Leads, build_leads
from funnelwise.synth.params import (
    OUTCOME_STAGES,
    OUTCOMES,
    PIPELINE_ID,
    STAGES,
    WON,
    SynthParams,
)
from funnelwise.synth.population import (
    account_attributes,
    accounts,
    arrival_days,
    normalised,
    organisation,
)
from funnelwise.synth.truth import Truth
from funnelwise.timeutil import Instant, to_timestamp

STATE_IDS: tuple[str, ...] = (*STAGES, *OUTCOME_STAGES)
TABLE_NAMES: tuple[str, ...] = (
    "users",
    "accounts",
    "campaigns",
    "leads",
    "deals",
    "stage_events",
    "deal_changes",
    "checklist",
    "activities",
)
_BATCH_ROWS = 122_880
_STEPS = ("organisation", "deals", "stage paths", "deal history", "leads", "tables")


@dataclass(frozen=True)
class SynthResult:
    """A generated data set: canonical Arrow tables, the truth, and the window.

    `tables` maps table names to Arrow tables conforming to the canonical
    schema; open deals are censored at `observed_until`.
    """

    tables: dict[str, pa.Table]
    truth: Truth
    params: SynthParams
    start: pd.Timestamp
    observed_until: pd.Timestamp
    seed: int

    @property
    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {name: t.num_rows for name, t in self.tables.items()}


def _change_day(
    params: SynthParams, start: pd.Timestamp, window: int
) -> tuple[pd.Timestamp | None, float]:
    """The planted change's date and its day number (inf when there is none)."""
    c = params.change
    if c is None:
        return None, math.inf
    if c.date is not None:
        date = to_timestamp(c.date, name="PlantedChange.date").normalize()
    else:
        date = start + pd.Timedelta(days=math.floor(c.at_fraction * window))
    return date, (date - start) / pd.Timedelta(days=1)


def _batched(table: pa.Table) -> pa.Table:
    """The same rows in record batches of at most _BATCH_ROWS."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=_BATCH_ROWS), table.schema)


def _stage_criteria() -> tuple[tuple[str, ...], ...]:
    """The checklist items of each stage of the bundled process, in stage order."""
    pipeline = parse_process(template_text()).pipeline(PIPELINE_ID)
    by_id = {s.id: s.exit_criteria.checklist for s in pipeline.stages}
    return tuple(tuple(by_id.get(stage, ())) for stage in STAGES)


def generate(
    deals: int = 5000,
    seed: int = 0,
    params: SynthParams | None = None,
    start: Instant = "2023-01-02",
    progress: ProgressCallback | None = None,
) -> SynthResult:
    """Generate `deals` synthetic deals with their leads, history and organisation.

    The window starts at midnight of `start` and lasts `params.window(deals)`
    days (about two years for 5,000 deals or more); deals arrive throughout
    it, so the ones still open at its end are censored. Same seed, same
    tables. Progress is reported per step as `generate <step>`.
    """
    if deals < 1:
        raise InputError(f"deals must be at least 1 (got {deals})")
    params = params or SynthParams()
    report = progress or no_progress
    start_ts = to_timestamp(start, name="start").normalize()
    window = params.window(deals)
    until = float(window)
    rng = np.random.default_rng(seed)
    done = iter(range(1, len(_STEPS) + 1))

    def step(name: str) -> None:
        report(f"generate {name}", next(done), len(_STEPS))

    org = organisation(params, deals, window, rng)
    acc = accounts(params, deals, rng)
    step("organisation")

    t0 = arrival_days(params, start_ts, window, deals, rng)
    source = rng.choice(len(params.sources), deals, p=normalised(params.source_mix))
    product = rng.choice(len(params.products), deals, p=normalised(params.product_mix))
    region = rng.choice(len(params.regions), deals, p=normalised(params.region_mix))
    rep = org.region_first_rep[region] + np.floor(
        rng.random(deals) * org.region_reps[region]
    ).astype(np.int64)
    owner = org.rep_user[rep]
    account = acc.pick(region, rng)
    segment = segment_index(source, product, region, org.rep_skill[rep], params)
    start_stage = (rng.random(deals) < np.asarray(params.source_start_qualified)[source]).astype(
        np.int64
    )
    change_date, change_day = _change_day(params, start_ts, window)
    step("deals")

    paths = simulate_paths(
        ChainTables.from_params(params),
        segment=segment,
        product=product,
        start_stage=start_stage,
        start_day=t0,
        change_day=change_day,
        rng=rng,
        report=lambda d, n: report("generate stage paths (deals closed)", d, n),
    )
    step("stage paths")

    final, end = paths.final, paths.end
    amounts = amount_history(params, paths, product, rng)
    close_dates = close_date_history(params, t0, end, final, product, rng)
    reasons = loss_reasons(paths, rng)
    acts = deal_activities(params, t0, end, final, rng)
    criteria = _stage_criteria()
    ticks = checklist(params, paths, criteria, rng).cut(until)
    step("deal history")

    user_ids = org.users.column("user_id").combine_chunks()
    deal_ids = ids("D", deals, width_for(deals))
    leads = build_leads(
        params,
        start=start_ts,
        window=window,
        deal_t0=t0,
        deal_source=source,
        deal_owner=owner,
        deal_ids=deal_ids,
        owner_ids=user_ids,
        rep_users=org.rep_user,
        rng=rng,
    )
    step("leads")

    # -- the cut at observed_until -------------------------------------------------
    closed = end <= until
    amounts, amount_now = amounts.cut(until)
    close_dates, close_date_now = close_dates.cut(until)
    keep = paths.t <= until
    ev_deal = paths.deal[keep]
    stage_events = pa.table(
        {
            "deal_id": coded(ev_deal, deal_ids),
            "stage_id": coded(paths.stage[keep], STATE_IDS),
            "entered_at": timestamps(start_ts, paths.t[keep]),
            "seq": pa.array(paths.seq[keep]),
            "actor_id": coded(owner[ev_deal], user_ids),
            "origin": constant("synth", ev_deal.size),
        }
    )
    outcome = np.where(closed, final - WON, -1)
    product_names = tuple(p.capitalize() for p in params.products)
    deals_table = pa.table(
        {
            "deal_id": deal_ids,
            "pipeline_id": constant(PIPELINE_ID, deals),
            "name": pc.binary_join_element_wise(
                pc.take(acc.names, pa.array(account)), coded(product, product_names), " - "
            ),
            "account_id": coded(account, acc.table.column("account_id").combine_chunks()),
            "owner_id": coded(owner, user_ids),
            "source": coded(source, params.sources),
            "campaign_id": coded(leads.deal_campaign, leads.campaigns.ids),
            "product": coded(product, params.products),
            "region": coded(region, params.regions),
            "amount": pa.array(amount_now),
            "currency": constant("USD", deals),
            "amount_base": pa.array(amount_now),
            "created_at": timestamps(start_ts, t0),
            "expected_close_date": dates(start_ts, close_date_now),
            "closed_at": timestamps(start_ts, np.where(closed, end, 0.0), null=~closed),
            "outcome": coded(outcome, OUTCOMES),
            "loss_reason": coded(np.where(closed, reasons, -1), LOSS_REASONS),
            "attributes": coded(acc.attributes[account], account_attributes()),
            "version": pa.array(np.ones(deals, dtype=np.int32)),
            "origin": constant("synth", deals),
        }
    )
    changes = _deal_changes(start_ts, amounts, close_dates, owner, deal_ids, user_ids)
    activities = _activities(
        start_ts, acts.cut(until), leads.activities, owner, deal_ids, leads, user_ids, params
    )

    tables = {
        "users": org.users,
        "accounts": acc.table,
        "campaigns": leads.campaigns.table,
        "leads": leads.table,
        "deals": deals_table,
        "stage_events": stage_events,
        "deal_changes": changes,
        "checklist": _checklist(start_ts, ticks, criteria, owner, deal_ids, user_ids),
        "activities": activities,
    }
    # Record batches of DuckDB's row-group size: it scans and loads them in
    # parallel, about twice as fast as one huge chunk.
    tables = {name: _batched(conform(name, t)) for name, t in tables.items()}
    step("tables")

    rep_user_ids = pc.take(user_ids, pa.array(org.rep_user)).to_pylist()
    rep_skills = tuple(
        zip(rep_user_ids, [params.skills[k] for k in org.rep_skill.tolist()], strict=True)
    )
    truth = Truth.build(
        params,
        start=start_ts,
        window=window,
        deals=deals,
        seed=seed,
        change_date=change_date,
        skill_given_region=org.skill_given_region,
        rep_skills=rep_skills,
    )
    return SynthResult(tables, truth, params, start_ts, truth.observed_until, seed)


def _deal_changes(
    start: pd.Timestamp,
    amounts: FieldHistory,
    close_dates: FieldHistory,
    owner: np.ndarray,
    deal_ids: pa.Array,
    user_ids: pa.Array,
) -> pa.Table:
    """Amount and close-date changes, ordered by deal then time; values as text."""
    deal = np.concatenate([amounts.deal, close_dates.deal])
    at = np.concatenate([amounts.at, close_dates.at])
    field = np.repeat([0, 1], [amounts.deal.size, close_dates.deal.size])
    old = pa.concat_arrays([as_text(pa.array(amounts.old)), as_text(dates(start, close_dates.old))])
    new = pa.concat_arrays([as_text(pa.array(amounts.new)), as_text(dates(start, close_dates.new))])
    order = np.lexsort((at, deal))
    take = pa.array(order)
    deal, at = deal[order], at[order]
    return pa.table(
        {
            "deal_id": coded(deal, deal_ids),
            "field": coded(field[order], ["amount", "expected_close_date"]),
            "old_value": old.take(take),
            "new_value": new.take(take),
            "changed_at": timestamps(start, at),
            "actor_id": coded(owner[deal], user_ids),
            "origin": constant("synth", deal.size),
        }
    )


def _activities(
    start: pd.Timestamp,
    deal_acts: Activities,
    lead_acts: Activities,
    deal_owner: np.ndarray,
    deal_ids: pa.Array,
    leads: Leads,
    user_ids: pa.Array,
    params: SynthParams,
) -> pa.Table:
    """Deal activities then lead touches, numbered in that order."""
    n_deal, n_lead = deal_acts.deal.size, lead_acts.deal.size
    n = n_deal + n_lead
    none_d, none_l = np.full(n_lead, -1), np.full(n_deal, -1)
    owner = np.concatenate([deal_owner[deal_acts.deal], leads.owner[lead_acts.deal]])
    minutes = np.concatenate([deal_acts.minutes, lead_acts.minutes])
    return pa.table(
        {
            "activity_id": ids("ACT", n, width_for(n)),
            "deal_id": coded(np.concatenate([deal_acts.deal, none_d]), deal_ids),
            "lead_id": coded(np.concatenate([none_l, lead_acts.deal]), leads.lead_ids),
            "kind": coded(np.concatenate([deal_acts.kind, lead_acts.kind]), params.activity_kinds),
            "at": timestamps(start, np.concatenate([deal_acts.at, lead_acts.at])),
            "owner_id": coded(owner, user_ids),
            "duration_min": pa.array(minutes, from_pandas=True),
            "direction": coded(
                np.concatenate([deal_acts.direction, lead_acts.direction]), ACTIVITY_DIRECTIONS
            ),
            "origin": constant("synth", n),
        }
    )


def _checklist(
    start: pd.Timestamp,
    ticks: Checklist,
    criteria: tuple[tuple[str, ...], ...],
    owner: np.ndarray,
    deal_ids: pa.Array,
    user_ids: pa.Array,
) -> pa.Table:
    """Checklist rows; criterion codes index the stages' items laid end to end."""
    return pa.table(
        {
            "deal_id": coded(ticks.deal, deal_ids),
            "stage_id": coded(ticks.stage, STAGES),
            "criterion": coded(ticks.criterion, [c for items in criteria for c in items]),
            "done_at": timestamps(start, ticks.at),
            "actor_id": coded(owner[ticks.deal], user_ids),
        }
    )
