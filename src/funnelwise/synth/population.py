"""Who and when: reps and teams, accounts, campaigns, deal arrivals and leads.

Times are float days since the window start (midnight of `start`); the
observation window is [0, window) and ends at `window`. Everything is drawn
with numpy over whole arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from funnelwise.synth.columns import coded, ids, width_for
from funnelwise.synth.params import SynthParams

FIRST_NAMES = (
    "Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kemi", "Liam", "Mei", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
)  # fmt: skip
LAST_NAMES = (
    "Alvarez", "Brown", "Chen", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito",
    "Jensen", "Kowalski", "Lopez", "Müller", "Novak", "Okafor", "Patel", "Rossi", "Silva",
)  # fmt: skip
COMPANY_WORDS = (
    "Acme", "Apex", "Blue", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris",
    "Juniper", "Keystone", "Lumen", "Maple", "Nimbus", "Orion", "Pine", "Quartz", "Summit",
    "Tidal", "Vertex", "Willow",
)  # fmt: skip
COMPANY_KINDS = ("Labs", "Systems", "Group", "Industries", "Health", "Logistics", "Foods", "Bank")
INDUSTRIES = (
    "software", "manufacturing", "healthcare", "retail", "finance", "logistics",
    "education", "energy",
)  # fmt: skip
SIZE_BANDS = ("smb", "mid", "enterprise")
SIZE_LIMITS = (200, 2000)  # employees: below the first smb, below the second mid


def exact_counts(total: int, shares: np.ndarray) -> np.ndarray:
    """Split `total` into integer counts proportional to `shares` (largest remainder)."""
    raw = total * shares / shares.sum()
    counts = np.floor(raw).astype(np.int64)
    short = total - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts


def normalised(values: tuple[float, ...]) -> np.ndarray:
    """A tuple of weights as probabilities."""
    arr = np.asarray(values, dtype=float)
    return arr / arr.sum()


@dataclass(frozen=True)
class Organisation:
    """Reps grouped in teams by region, with managers and one head of sales."""

    users: pa.Table
    rep_user: np.ndarray  # user row of each rep
    rep_region: np.ndarray
    rep_skill: np.ndarray
    region_first_rep: np.ndarray  # reps are sorted by region: region r holds reps [first, first+n)
    region_reps: np.ndarray
    n_skills: int  # skill levels of the process, held by some rep or not

    @property
    def skill_given_region(self) -> np.ndarray:
        """P(skill | region)[region, skill] among the reps; deals go to their region's
        reps uniformly. A skill no rep has (few deals, so few reps) has probability 0."""
        # Sized by the skill levels, not the highest one held: with a handful of reps the
        # top level may be missing, and every segment still indexes it.
        counts = np.zeros((len(self.region_reps), self.n_skills))
        np.add.at(counts, (self.rep_region, self.rep_skill), 1.0)
        return counts / counts.sum(axis=1, keepdims=True)


def organisation(
    params: SynthParams, deals: int, window: int, rng: np.random.Generator
) -> Organisation:
    """Enough reps for `deals` deals over `window` days, split across regions by the region mix.

    Each region's reps get skills in the exact proportions of `skill_mix`
    (then shuffled), so P(skill | region) is known without sampling noise.
    """
    n_regions = len(params.regions)
    per_year = deals / max(window / 365.25, 1e-9)
    n_reps = max(n_regions, math.ceil(per_year / params.deals_per_rep_per_year))
    region_reps = np.maximum(1, exact_counts(n_reps, normalised(params.region_mix)))
    rep_region = np.repeat(np.arange(n_regions), region_reps)
    rep_skill = np.concatenate(
        [
            rng.permutation(
                np.repeat(
                    np.arange(len(params.skills)),
                    exact_counts(int(k), normalised(params.skill_mix)),
                )
            )
            for k in region_reps
        ]
    )
    # Teams: consecutive reps of a region, at most reps_per_team each.
    first = np.concatenate([[0], np.cumsum(region_reps)[:-1]])
    rank = np.arange(rep_region.size) - first[rep_region]
    team_in_region = rank // params.reps_per_team
    teams_per_region = (region_reps + params.reps_per_team - 1) // params.reps_per_team
    team_offset = np.concatenate([[0], np.cumsum(teams_per_region)[:-1]])
    rep_team = team_offset[rep_region] + team_in_region
    n_teams = int(teams_per_region.sum())
    team_region = np.repeat(np.arange(n_regions), teams_per_region)
    team_number = np.arange(n_teams) - team_offset[team_region] + 1
    team_names = [
        f"{params.regions[r].upper()} {k}" for r, k in zip(team_region, team_number, strict=True)
    ]

    # Rows: the head of sales, then one manager per team, then the reps.
    n_users = 1 + n_teams + rep_region.size
    user_ids = ids("u", n_users, width_for(n_users))
    team_codes = np.concatenate([[-1], np.arange(n_teams), rep_team])
    manager_codes = np.concatenate([[-1], np.zeros(n_teams, np.int64), 1 + rep_team])
    role_codes = np.concatenate([[0], np.ones(n_teams, np.int64), np.full(rep_region.size, 2)])
    k = np.arange(n_users)
    first_name = coded(k % len(FIRST_NAMES), FIRST_NAMES)
    last_name = coded((k // len(FIRST_NAMES) + k) % len(LAST_NAMES), LAST_NAMES)
    users = pa.table(
        {
            "user_id": user_ids,
            "name": pc.binary_join_element_wise(first_name, last_name, " "),
            "role": coded(role_codes, ["head_of_sales", "manager", "rep"]),
            "team": coded(team_codes, team_names),
            "manager_id": coded(manager_codes, user_ids),
        }
    )
    return Organisation(
        users=users,
        rep_user=1 + n_teams + np.arange(rep_region.size),
        rep_region=rep_region,
        rep_skill=rep_skill,
        region_first_rep=first,
        region_reps=region_reps,
        n_skills=len(params.skills),
    )


@dataclass(frozen=True)
class Accounts:
    """Customer accounts, sorted by region so a deal can pick one in its region."""

    table: pa.Table
    names: pa.Array
    attributes: np.ndarray  # code into account_attributes(): size band × industry
    first: np.ndarray  # region r holds accounts [first[r], first[r] + count[r])
    count: np.ndarray

    def pick(self, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly drawn account of each deal's region."""
        return self.first[region] + np.floor(rng.random(region.size) * self.count[region]).astype(
            np.int64
        )


def account_attributes() -> list[str]:
    """The JSON attribute documents of deals: size band × industry."""
    return [
        f'{{"segment": "{band}", "industry": "{industry}"}}'
        for band in SIZE_BANDS
        for industry in INDUSTRIES
    ]


def accounts(params: SynthParams, deals: int, rng: np.random.Generator) -> Accounts:
    """About `accounts_per_deal` accounts per deal (some buy more than once)."""
    n_regions = len(params.regions)
    n = max(n_regions, math.ceil(deals * params.accounts_per_deal))
    count = np.maximum(1, exact_counts(n, normalised(params.region_mix)))
    n = int(count.sum())
    region = np.repeat(np.arange(n_regions), count)
    industry = rng.integers(0, len(INDUSTRIES), n)
    employees = np.maximum(5, np.rint(rng.lognormal(np.log(300.0), 1.5, n))).astype(np.int64)
    revenue = np.round(employees * rng.lognormal(np.log(200_000.0), 0.4, n), -3)
    band = np.searchsorted(np.asarray(SIZE_LIMITS), employees, side="right")
    word = coded(rng.integers(0, len(COMPANY_WORDS), n), COMPANY_WORDS)
    kind = coded(rng.integers(0, len(COMPANY_KINDS), n), COMPANY_KINDS)
    names = pc.binary_join_element_wise(word, kind, " ")
    attributes = band * len(INDUSTRIES) + industry
    table = pa.table(
        {
            "account_id": ids("A", n, width_for(n)),
            "name": names,
            "industry": coded(industry, INDUSTRIES),
            "region": coded(region, params.regions),
            "employees": pa.array(employees),
            "revenue": pa.array(revenue),
            "attributes": coded(attributes, account_attributes()),
        }
    )
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    return Accounts(table, names, attributes, first, count)


def weekday_day_probs(params: SynthParams, start: pd.Timestamp, window: int) -> np.ndarray:
    """Probability that an arrival falls on each day of the window (weekday weights)."""
    weekday = (start.weekday() + np.arange(window)) % 7
    w = np.asarray(params.weekday_weights, dtype=float)[weekday]
    return w / w.sum()


def arrival_days(
    params: SynthParams, start: pd.Timestamp, window: int, n: int, rng: np.random.Generator
) -> np.ndarray:
    """`n` sorted arrival times (days) in office hours, days drawn by weekday weight."""
    day = rng.choice(window, size=n, p=weekday_day_probs(params, start, window))
    hour = params.workday_start_hour + params.workday_hours * rng.random(n)
    return np.sort(day + hour / 24.0)


def gamma_with_median(median: float, shape: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n gamma draws with the given shape and median (days)."""
    from scipy.special import gammaincinv

    return rng.gamma(shape, median / float(gammaincinv(shape, 0.5)), n)


def quarter_of(start: pd.Timestamp, t: np.ndarray) -> np.ndarray:
    """Calendar quarter number (year * 4 + quarter - 1) of each time in days since start."""
    seconds = np.floor(t * 86_400.0).astype(np.int64)
    moment = start.to_datetime64().astype("datetime64[s]") + seconds.astype("timedelta64[s]")
    months = moment.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    return (1970 * 12 + months) // 3


@dataclass(frozen=True)
class Campaigns:
    """One campaign per paid source and calendar quarter."""

    table: pa.Table
    ids: pa.Array
    paid: np.ndarray  # per source: True when its leads come from campaigns
    first_quarter: int
    n_quarters: int

    def code(self, source: np.ndarray, quarter: np.ndarray) -> np.ndarray:
        """Campaign row of each lead (-1 for sources without campaigns)."""
        return np.where(
            self.paid[source], source * self.n_quarters + (quarter - self.first_quarter), -1
        )


def campaigns(
    params: SynthParams,
    lead_source: np.ndarray,
    lead_quarter: np.ndarray,
    rng: np.random.Generator,
) -> Campaigns:
    """Campaigns covering every quarter with leads; cost = leads × cost per lead × noise."""
    cpl = np.asarray(params.campaign_cost_per_lead, dtype=float)
    paid = cpl > 0
    q0, q1 = int(lead_quarter.min()), int(lead_quarter.max())
    nq = q1 - q0 + 1
    n_sources = len(params.sources)
    source = np.repeat(np.arange(n_sources), nq)
    quarter = np.tile(np.arange(q0, q1 + 1), n_sources)
    labels = [
        f"{params.sources[s]}-{q // 4}-q{q % 4 + 1}" for s, q in zip(source, quarter, strict=True)
    ]
    names = [
        f"{params.sources[s].capitalize()} {q // 4} Q{q % 4 + 1}"
        for s, q in zip(source, quarter, strict=True)
    ]
    all_ids = pa.array(labels, pa.string())
    leads_in = np.bincount(lead_source * nq + (lead_quarter - q0), minlength=n_sources * nq).astype(
        float
    )
    cost = np.round(leads_in * cpl[source] * rng.lognormal(0.0, 0.2, source.size), 2)
    month0 = quarter * 3 - 1970 * 12
    started = np.datetime64("1970-01", "M") + month0.astype("timedelta64[M]")
    ended = np.datetime64("1970-01", "M") + (month0 + 3).astype("timedelta64[M]")
    keep = paid[source] & (leads_in > 0)
    table = pa.table(
        {
            "campaign_id": all_ids.filter(pa.array(keep)),
            "name": pa.array(names, pa.string()).filter(pa.array(keep)),
            "source": coded(source[keep], params.sources),
            "cost": pa.array(cost[keep]),
            "started_at": pa.array(started[keep].astype("datetime64[us]")),
            "ended_at": pa.array(ended[keep].astype("datetime64[us]") - np.timedelta64(1, "s")),
        }
    )
    return Campaigns(table, all_ids, paid, q0, nq)
