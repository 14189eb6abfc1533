"""The report's sections on the process: key figures, funnel, outcomes, time in
stage, bottlenecks and the process map. One function per section, from analysis
results to text, tables and charts.

Each function reads numbers off result frames and formats them: the one-line
takeaway names the row it picked (the weakest step, the stage most over its
target, ...) and quotes its values and intervals as the result states them.
Nothing is estimated here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from funnelwise.analytics.discovery import SEPARATOR
from funnelwise.report import charts, fmt
from funnelwise.report.fmt import table
from funnelwise.report.section import TITLES, Chart, Section, Tile, confidence, first_row, notice

if TYPE_CHECKING:
    # Types only: the report runs with whichever analyses this version has.
    from funnelwise.analytics.bottlenecks import BottleneckResult
    from funnelwise.analytics.conformance import ConformanceResult
    from funnelwise.analytics.discovery import DiscoveryResult
    from funnelwise.analytics.funnel import FunnelResult
    from funnelwise.analytics.kpis import KpiResult
    from funnelwise.analytics.outcomes import OutcomesResult
    from funnelwise.analytics.timing import TimingResult
    from funnelwise.analytics.whose_move import WhoseMoveResult
    from funnelwise.ingest.quality import QualityReport


# -- what the data can tell ---------------------------------------------------------
def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_SHOWN_IDS = 5


def _unknown_stages_bullet(result: QualityReport) -> str | None:
    """The bullet on stage ids entered in the data but missing from the process."""
    issues = result.issues.set_index("check")
    check = "stage entries into stages not in the process"
    row = issues.loc[check] if check in issues.index else None
    if row is None or int(row["deals"]) == 0:
        return None
    unknown: Mapping[str, int] = result.meta.get("unknown_stages") or {}
    ids = [f"'{sid}' ({fmt.plural(n, 'deal')})" for sid, n in unknown.items()]
    if len(ids) > _SHOWN_IDS:
        ids = [*ids[:_SHOWN_IDS], f"{len(ids) - _SHOWN_IDS:,} more"]
    named = f" ({_names(ids)})" if ids else ""
    return (
        f"{fmt.count(row['deals'])} of {fmt.plural(row['of'], 'deal')} entered stages that "
        f"process.yaml does not have{named}, renamed or removed since the data was "
        "imported. The figures below cannot place those entries: the snapshot shows a deal "
        "last seen in one of them at the stage before, times in stage leave those stages out "
        "and the funnel counts the deals only as far as their other stages. In process.yaml, "
        "list each id among the aliases of the stage it now is and import the data again, "
        "or put the stage back."
    )


def data_section(result: QualityReport) -> Section:
    """What this data records and what it does not, so that no figure below is read
    for more than it rests on: stage entries into stages the process does not have,
    stages with no recorded entries, open deals without an expected close date, exit
    criteria never recorded, deals without history."""
    title = TITLES["data"]
    bullets = []
    # First: unlike the limits below, this one makes figures wrong, not just thin.
    stray = _unknown_stages_bullet(result)
    if stray is not None:
        bullets.append(stray)
    st = result.stages
    unseen = st[(st["entered"] == 0) & (st["passed"] > 0)]
    if len(unseen):
        names = [str(n) for n in unseen["name"]]
        went = [
            f"{fmt.count(r.passed)} past {r.name}"
            for r in (unseen.iloc[[0, -1]] if len(unseen) > 1 else unseen).itertuples()
        ]
        bullets.append(
            f"No deal was seen entering {_names(names)}, though deals went past "
            f"{'it' if len(names) == 1 else 'them'} ({', '.join(went)}): either the data has "
            "no history for them (a snapshot export has none) or every deal skipped them. The "
            "funnel counts the deals reaching them from later stages, time in the stage "
            "before them runs on through them, and process adherence counts them as skipped."
        )
    issues = result.issues.set_index("check")
    undated = issues.loc["open, no expected close date"] if len(issues) else None
    if undated is not None and int(undated["deals"]) > 0:
        bullets.append(
            f"{fmt.count(undated['deals'])} of {fmt.plural(undated['of'], 'open deal')} have no "
            "expected close date: nothing below can say whether they are late or were pushed, "
            "and forecasts learn their timing from the history instead."
        )
    history = issues.loc["no stage history"] if len(issues) else None
    if history is not None and int(history["deals"]) > 0:
        bullets.append(
            f"{fmt.count(history['deals'])} of {fmt.plural(history['of'], 'deal')} have no "
            "stage history: they count in totals, not in the funnel or the times in stage."
        )
    ck = result.checklist
    if len(ck) and int(ck["passed"].sum()) > 0 and int(ck["done"].sum()) == 0:
        bullets.append(
            "No exit-criteria checklist item is recorded for any deal: process adherence "
            "counts every item as missing, which says more about the data than the process."
        )
    fields = result.fields
    empty = fields[(fields["passed"] > 0) & (fields["filled"] == 0)]
    if len(empty):
        bullets.append(
            "Exit-criteria fields never filled in: "
            + _names([str(f).replace("_", " ") for f in dict.fromkeys(empty["field"])])
            + "."
        )
    if not bullets:
        takeaway = (
            "Every stage has recorded entries and every open deal an expected close date: "
            "the figures below rest on the deals' own history."
        )
    else:
        takeaway = (
            f"Read the figures below with {'this limit' if len(bullets) == 1 else 'these limits'}"
            " of the data in mind."
        )
    return Section("data", title, takeaway, bullets=tuple(bullets))


# -- key figures ---------------------------------------------------------------------
def _kpi(frame: pd.DataFrame, name: str) -> pd.Series | None:
    return first_row(frame, kpi=name)


def kpis_section(result: KpiResult) -> Section:
    """Tiles of the key figures (each with its interval or denominator), lead
    conversion, and the cost and return of each campaign when costs are known."""
    k = result.kpis
    currency = str(result.meta["currency"])
    level = confidence(result.meta)
    title = TITLES["kpis"]
    won, closed = _kpi(k, "win_rate"), _kpi(k, "win_rate_closed")
    if won is None or closed is None:
        return notice("kpis", title, "No deals in this log.")
    size, median_size = _kpi(k, "avg_deal_size"), _kpi(k, "median_deal_size")
    cycle, cycle_naive = _kpi(k, "cycle_days"), _kpi(k, "cycle_days_won_only")
    pipeline, velocity = _kpi(k, "open_pipeline"), _kpi(k, "sales_velocity")
    coverage = _kpi(k, "pipeline_coverage")
    tiles = [
        Tile(
            "Win rate",
            fmt.pct(won["value"]),
            f"{fmt.ci(won['lower'], won['upper'], level=level)}, open deals counted as open; "
            f"closed deals only: {fmt.pct(closed['value'])} of {fmt.count(closed['n'])}",
        )
    ]
    if size is not None:
        tiles.append(
            Tile(
                "Average won deal",
                fmt.money(size["value"], currency),
                f"{round(100 * level)}% CI {fmt.money(size['lower'], currency)}–"
                f"{fmt.money(size['upper'], currency)}; median "
                f"{fmt.money(median_size['value'] if median_size is not None else None, currency)}"
                f"; {fmt.plural(size['n'], 'won deal')}",
            )
        )
    if cycle is not None:
        naive = cycle_naive["value"] if cycle_naive is not None else None
        tiles.append(
            Tile(
                "Median time to won",
                fmt.days(cycle["value"]),
                f"open deals counted as open; won deals only: {fmt.days(naive)}",
            )
        )
    if pipeline is not None:
        tiles.append(
            Tile(
                "Open pipeline",
                fmt.money(pipeline["value"], currency),
                f"{fmt.plural(pipeline['n'], 'open deal')}"
                + (f"; {fmt.pct(coverage['value'])} of the target" if coverage is not None else ""),
            )
        )
    if velocity is not None:
        past, longest = _kpi(k, "open_past_longest_close"), _kpi(k, "longest_close_days")
        late = (
            f"; it counts {fmt.plural(past['value'], 'open deal')} older than any deal took "
            f"to close ({fmt.days(longest['value'])})"
            if past is not None and longest is not None and past["value"] > 0
            else ""
        )
        tiles.append(
            Tile(
                "Sales velocity",
                f"{fmt.money(velocity['value'], currency)}/day",
                f"open deals × win rate × average won deal ÷ days to won{late}",
            )
        )
    leads = result.leads
    if len(leads) == 1:
        ld = leads.iloc[0]
        tiles.append(
            Tile(
                "Leads becoming deals",
                fmt.pct(ld["conversion"]),
                f"{fmt.ci(ld['conversion_lower'], ld['conversion_upper'], level=level)} of "
                f"{fmt.plural(ld['leads'], 'lead')}; median "
                f"{fmt.days(ld['days_to_convert_median'])} to convert",
            )
        )
    if int(closed["n"]) == 0:
        takeaway = (
            f"All {fmt.plural(won['n'], 'deal')} are still open as of "
            f"{fmt.date(result.meta['as_of'])}: no deal has closed yet, so there is no win "
            "rate, deal size or cycle time to report."
        )
    else:
        open_deals = _kpi(k, "open_deals")
        counting = (
            f"counting the {fmt.count(open_deals['value'])} open deals as open"
            if open_deals is not None
            else "counting open deals as open"
        )
        takeaway = (
            f"{fmt.pct(won['value'])} of deals end won "
            f"({fmt.ci(won['lower'], won['upper'], level=level)}) {counting}; closed deals "
            f"only say {fmt.pct(closed['value'])}."
        )
        if cycle is not None and fmt.finite(cycle["value"]):
            takeaway = takeaway[:-1] + f"; half the wins come within {fmt.days(cycle['value'])}."
    tables = []
    campaigns = result.campaigns
    if len(campaigns):
        tables.append(
            table(
                campaigns,
                [
                    ("Campaign", lambda r: str(r.key), False),
                    ("Cost", lambda r: fmt.money(r.cost, currency), True),
                    ("Leads", lambda r: fmt.count(r.leads), True),
                    ("Deals", lambda r: fmt.count(r.deals), True),
                    ("Won", lambda r: fmt.count(r.won), True),
                    ("Won value", lambda r: fmt.money(r.won_value, currency), True),
                    ("Cost per lead", lambda r: fmt.money(r.cost_per_lead, currency), True),
                    ("Cost per win", lambda r: fmt.money(r.cpa, currency), True),
                    ("ROI", lambda r: fmt.pct(r.roi), True),
                ],
                caption="ROI = (won value − cost) ÷ cost. Deals still open count as not won "
                "yet, so recent campaigns look worse than they will.",
                title="Campaigns: cost and return",
                collapsed=True,
            )
        )
    return Section("kpis", title, takeaway, tiles=tuple(tiles), tables=tuple(tables))


def leads_section(result: KpiResult) -> Section:
    """Leads becoming deals: the censoring-aware conversion (leads still open count as
    open), beside the naive share, overall and per source."""
    title = TITLES["leads"]
    per = result.leads
    if not len(per) or int(per["leads"].sum()) == 0:
        return notice("leads", title, "No leads in this log.")
    level = confidence(result.meta)
    keys = [c for c in per.columns if c in ("source", "campaign_id", "owner_id")]
    n = int(per["leads"].sum())
    converted = int(per["converted"].sum())
    # The overall conversion comes from the unsplit run (its own row), not an average.
    overall = result.meta.get("leads_overall")
    tiles = [Tile("Leads", fmt.count(n), f"{fmt.count(converted)} became deals so far")]
    if isinstance(overall, Mapping):
        tiles.append(
            Tile(
                "Leads becoming deals",
                fmt.pct(overall["conversion"]),
                f"{fmt.ci(overall['conversion_lower'], overall['conversion_upper'], level=level)}"
                f", leads still open counted as open; converted so far: "
                f"{fmt.pct(overall['naive_rate'])} of {fmt.count(n)}",
            )
        )
        tiles.append(
            Tile(
                "Median time to convert",
                fmt.days(overall["days_to_convert_median"]),
                "of the leads that convert",
            )
        )
    takeaway = f"{fmt.count(converted)} of {fmt.plural(n, 'lead')} have become deals so far."
    if isinstance(overall, Mapping) and fmt.finite(overall["conversion"]):
        takeaway = (
            f"{fmt.pct(overall['conversion'])} of leads become deals "
            f"({fmt.ci(overall['conversion_lower'], overall['conversion_upper'], level=level)}),"
            f" counting the {fmt.plural(int(per['open'].sum()), 'open lead')} as open; "
            f"{fmt.count(converted)} of {fmt.count(n)} have so far."
        )
    tables = []
    if keys:
        key = keys[0]
        rows = per.sort_values("leads", ascending=False)
        tables.append(
            table(
                rows,
                [
                    (key.replace("_id", "").capitalize(), lambda r: str(getattr(r, key)), False),
                    ("Leads", lambda r: fmt.count(r.leads), True),
                    ("Became deals", lambda r: fmt.count(r.converted), True),
                    ("Open", lambda r: fmt.count(r.open), True),
                    (
                        "Conversion",
                        lambda r: fmt.pct_ci(r.conversion, r.conversion_lower, r.conversion_upper),
                        True,
                    ),
                    ("Median days", lambda r: fmt.days(r.days_to_convert_median), True),
                ],
                caption="Conversion counts leads still open as open (Aalen–Johansen), with "
                f"its {round(100 * level)}% interval; a source of few leads has a wide one.",
                title=f"Per {key.replace('_id', '')}",
            )
        )
    return Section("leads", title, takeaway, tiles=tuple(tiles), tables=tuple(tables))


# -- funnel --------------------------------------------------------------------------
def funnel_section(result: FunnelResult) -> Section:
    """Deals and value reaching each stage; the takeaway names the weakest step."""
    f = result.stages
    currency = str(result.meta["currency"])
    if f.empty or int(f["reached"].iloc[0]) == 0:
        return notice("funnel", TITLES["funnel"], "No deals in this log.")
    level = confidence(result.meta)
    # Judged among decided deals: a deal still open at the earlier stage has not
    # failed the step, and counting it as such makes a young funnel look weak.
    steps = f.iloc[1:].dropna(subset=["decided_rate"])
    steps = steps[steps["decided_n"] > 0]
    first, last = f.iloc[0], f.iloc[-1]
    if steps.empty:
        takeaway = (
            f"{fmt.plural(first['reached'], 'deal')} reached {first['name']}; no step has "
            "decided deals yet to judge it by."
        )
    else:
        at = int(steps["decided_rate"].idxmin())  # f has a RangeIndex: labels are positions
        w, prev = f.loc[at], f.loc[at - 1]
        decided = fmt.plural(w["decided_n"], "deal")
        takeaway = (
            f"The weakest step is {prev['name']} → {w['name']}: of the {decided} that "
            f"reached {prev['name']} and are no longer open there, {fmt.pct(w['decided_rate'])} "
            f"went on ({fmt.ci(w['decided_lower'], w['decided_upper'], level=level)}); "
            f"{fmt.pct(last['cumulative_rate'])} of all deals reached {last['name']}."
        )
    value_line = (
        f"By value, {fmt.pct(last['value_cumulative_rate'])} of the "
        f"{fmt.money(first['value'], currency)} that entered the funnel reached {last['name']} "
        f"({fmt.money(last['value'], currency)}); labels show each step's conversion."
    )
    rows = table(
        f,
        [
            ("Stage", lambda r: str(r.name), False),
            ("Reached", lambda r: fmt.count(r.reached), True),
            ("Skipped", lambda r: fmt.count(r.skipped), True),
            ("Open, got this far", lambda r: fmt.count(r.undecided), True),
            (
                "Step conversion",
                lambda r: fmt.pct_ci(r.step_rate, r.step_lower, r.step_upper),
                True,
            ),
            (
                "Among decided",
                lambda r: fmt.pct_ci(r.decided_rate, r.decided_lower, r.decided_upper),
                True,
            ),
            (
                "From first stage",
                lambda r: fmt.pct_ci(r.cumulative_rate, r.cumulative_lower, r.cumulative_upper),
                True,
            ),
            ("Value", lambda r: fmt.money(r.value, currency), True),
        ],
        caption=f"Rates with {round(100 * level)}% Wilson intervals in brackets.",
    )
    return Section(
        "funnel",
        TITLES["funnel"],
        takeaway,
        charts=(Chart(charts.funnel_chart(f, currency), value_line),),
        tables=(rows,),
        notes=(
            "A deal reaches a stage when it entered it or any later stage, so skipped stages "
            "are counted as reached and shown as skipped. Step conversion counts deals still "
            "open at the previous stage as not (yet) converted; 'among decided' leaves them "
            "out, as if they will convert as the decided ones did: the first is a floor, the "
            "second no ceiling. 'Open, got this far' counts the open deals at "
            "the furthest stage they reached: one that moved back since sits in an earlier "
            "stage of the pipeline today.",
        ),
    )


# -- outcomes ------------------------------------------------------------------------
def outcomes_section(result: OutcomesResult, stage_names: Mapping[str, str]) -> Section:
    """Cumulative incidence of won / lost / no decision, censoring-aware, against the
    naive closed-only win rate."""
    title = TITLES["outcomes"]
    summary = result.summary
    s = first_row(summary, scope="created")
    if s is None:
        return notice("outcomes", title, "No deals in this log.")
    closed = int(s["won"] + s["lost"] + s["no_decision"])
    if closed == 0:
        return notice(
            "outcomes",
            title,
            f"No deal has closed yet (all {fmt.plural(s['n'], 'deal')} are open as of "
            f"{fmt.date(result.meta['as_of'])}), so the chances of winning and losing cannot "
            "be estimated.",
        )
    level = confidence(result.meta)
    takeaway = (
        f"A new deal ends won with probability {fmt.pct(s['p_won'])} "
        f"({fmt.ci(s['p_won_lower'], s['p_won_upper'], level=level)}), lost "
        f"{fmt.pct(s['p_lost'])}, no decision {fmt.pct(s['p_no_decision'])}"
    )
    undecided = 1.0 - float(s["p_won"] + s["p_lost"] + s["p_no_decision"])
    if undecided >= 0.005:
        # The three chances are those by the end of the follow-up: the rest is unknown.
        takeaway += (
            f", and {fmt.pct(undecided)} still undecided after "
            f"{fmt.days(s['followup_days'])} (the longest follow-up)"
        )
    takeaway += (
        f"; counting closed deals only ({fmt.plural(closed, 'deal')}) would say "
        f"{fmt.pct(s['naive_win_rate'])} won."
    )
    curves = result.curves
    created = curves[curves["scope"] == "created"]
    by_stage = summary[summary["scope"] != "created"].copy()
    by_stage["name"] = by_stage["scope"].map(lambda sid: stage_names.get(sid, sid))
    chart_list = [
        Chart(
            charts.incidence_chart(created, s["naive_win_rate"]),
            f"Open deals are followed, not dropped: the bands are {round(100 * level)}% "
            f"intervals, widest where few deals are still open (follow-up "
            f"{fmt.days(s['followup_days'])}).",
        )
    ]
    if len(by_stage):
        a, b = by_stage.iloc[0], by_stage.iloc[-1]
        interval = fmt.ci(b["p_won_lower"], b["p_won_upper"], level=level)
        # One open stage: the first is the last, and "from A x, from A x" says it twice.
        line = (
            f"From {b['name']} {fmt.pct(b['p_won'])} of deals end won ({interval})."
            if len(by_stage) == 1
            else f"From {a['name']} {fmt.pct(a['p_won'])} of deals end won, from {b['name']} "
            f"{fmt.pct(b['p_won'])} ({interval})."
        )
        chart_list.append(Chart(charts.stage_win_chart(by_stage), line))
    names = dict(stage_names) | {"created": "Any new deal"}
    rows = table(
        summary.assign(label=summary["scope"].map(lambda sid: names.get(sid, sid))),
        [
            ("From", lambda r: str(r.label), False),
            ("Deals", lambda r: fmt.count(r.n), True),
            ("Open", lambda r: fmt.count(r.open), True),
            ("Won", lambda r: fmt.pct_ci(r.p_won, r.p_won_lower, r.p_won_upper), True),
            ("Lost", lambda r: fmt.pct_ci(r.p_lost, r.p_lost_lower, r.p_lost_upper), True),
            (
                "No decision",
                lambda r: fmt.pct_ci(r.p_no_decision, r.p_no_decision_lower, r.p_no_decision_upper),
                True,
            ),
            (
                "Closed only: won",
                lambda r: fmt.pct_ci(r.naive_win_rate, r.naive_win_lower, r.naive_win_upper),
                True,
            ),
        ],
        caption="Probability of each outcome by the end of follow-up, from creation and from "
        "reaching each stage.",
    )
    return Section(
        "outcomes",
        title,
        takeaway,
        charts=tuple(chart_list),
        tables=(rows,),
        notes=(str(result.meta.get("method", "")),),
    )


# -- time in stage -------------------------------------------------------------------
def timing_section(result: TimingResult) -> Section:
    """Time-in-stage distributions against the targets; the takeaway names the stage
    that overruns its target most often."""
    title = TITLES["timing"]
    st = result.stages
    if st.empty:
        return notice("timing", title, "No deal has entered an open stage yet.")
    level = confidence(result.meta)
    with_target = st.dropna(subset=["target_days", "over_target"])
    if len(with_target):
        w = with_target.loc[with_target["over_target"].idxmax()]
        takeaway = (
            f"{w['name']} overruns its {fmt.day_span(w['target_days'])} target most often: "
            f"{fmt.pct(w['over_target'])} of visits last longer "
            f"({fmt.ci(w['over_target_lower'], w['over_target_upper'], level=level)}); "
            f"median {fmt.days(w['median'])}."
        )
    else:
        slowest = st.dropna(subset=["median"])
        if slowest.empty:
            takeaway = "Too few visits have ended in any stage to estimate a median time."
        else:
            w = slowest.loc[slowest["median"].idxmax()]
            takeaway = f"Deals stay longest in {w['name']}: median {fmt.days(w['median'])} a visit."
    chart = Chart(
        charts.time_in_stage_chart(st, result.distribution),
        "Each panel: visits by whole days spent in the stage; solid line the median, dashed "
        "line the target. Axes are cut at 1.5× the larger of p90 and target.",
    )
    rows = table(
        st,
        [
            ("Stage", lambda r: str(r.name), False),
            ("Deals", lambda r: fmt.count(r.deals), True),
            ("Visits", lambda r: fmt.count(r.visits), True),
            ("Still in it", lambda r: fmt.count(r.still_in_stage), True),
            ("Median days", lambda r: fmt.days_ci(r.median, r.median_lower, r.median_upper), True),
            ("p75", lambda r: fmt.days_value(r.p75), True),
            ("p90", lambda r: fmt.days_value(r.p90), True),
            ("Target", lambda r: fmt.days_value(r.target_days), True),
            (
                "Over target",
                lambda r: fmt.pct_ci(r.over_target, r.over_target_lower, r.over_target_upper),
                True,
            ),
        ],
        caption=(
            "Days per visit: a deal that came back to a stage counts each stay; "
            f"{round(100 * level)}% intervals in brackets."
        ),
    )
    cycle = result.cycle
    tables = [rows]
    if len(cycle):
        tables.append(
            table(
                cycle,
                [
                    ("Deals", lambda r: fmt.count(r.deals), True),
                    ("Won", lambda r: fmt.count(r.won), True),
                    ("Median to won", lambda r: fmt.days_value(r.won_median), True),
                    ("p75 to won", lambda r: fmt.days_value(r.won_p75), True),
                    ("p90 to won", lambda r: fmt.days_value(r.won_p90), True),
                    (
                        "Won deals only: median",
                        lambda r: fmt.days_value(r.won_median_naive),
                        True,
                    ),
                    (
                        "Median to any close",
                        lambda r: fmt.days_ci(
                            r.close_median, r.close_median_lower, r.close_median_upper
                        ),
                        True,
                    ),
                ],
                caption="Cycle time in days from creation, deals still open censored.",
            )
        )
    return Section(
        "timing",
        title,
        takeaway,
        charts=(chart,),
        tables=tuple(tables),
        notes=(str(result.meta.get("method", "")),),
    )


# -- process map ---------------------------------------------------------------------
# Rows shown in the variants and moves tables.
TOP_VARIANTS = 10
TOP_MOVES = 12


def discovery_section(result: DiscoveryResult, stages: pd.DataFrame) -> Section:
    """The directly-follows graph as a process map, the most common variants and moves.

    `stages` is the process's stage table (stage_id, name, position, kind).
    """
    title = TITLES["discovery"]
    variants, edges = result.variants, result.edges
    if variants.empty:
        return notice("discovery", title, "No stage events in this log.")
    name = dict(zip(stages["stage_id"], stages["name"], strict=True))
    position = dict(zip(stages["stage_id"], stages["position"], strict=True))
    open_ids = set(stages.loc[stages["kind"] == "open", "stage_id"])

    def path(variant: str) -> str:
        return " → ".join(name.get(sid, sid) for sid in variant.split(SEPARATOR))

    top = variants.iloc[0]
    takeaway = (
        f"Deals took {fmt.plural(len(variants), 'path', 'different paths')} through the "
        "stages; the "
        f"most common, {path(str(top['variant']))}, covers {fmt.pct(top['share'], 1)} of deals."
    )
    moves = edges[edges["source"].isin(position) & edges["target"].isin(position)]
    back = moves[
        moves["source"].isin(open_ids)
        & (moves["target"].map(position) < moves["source"].map(position))
    ]
    if len(back):
        b = back.loc[back["count"].idxmax()]
        takeaway += (
            f" The most frequent step back is {name[b['source']]} → {name[b['target']]} "
            f"({fmt.count(b['count'])} times, {fmt.plural(b['deals'], 'deal')})."
        )
    variant_rows = table(
        variants.head(TOP_VARIANTS),
        [
            ("Path", lambda r: path(str(r.variant)), False),
            ("Deals", lambda r: fmt.count(r.deals), True),
            ("Share", lambda r: fmt.pct(r.share, 1), True),
            ("Median days", lambda r: fmt.days_value(r.median_days), True),
        ],
        caption=f"The {TOP_VARIANTS} most common of {fmt.count(len(variants))} paths; days "
        "from the first to the last stage entry.",
    )
    move_rows = table(
        moves.head(TOP_MOVES),
        [
            ("From", lambda r: name.get(r.source, r.source), False),
            ("To", lambda r: name.get(r.target, r.target), False),
            ("Times", lambda r: fmt.count(r.count), True),
            ("Deals", lambda r: fmt.count(r.deals), True),
            ("Median days", lambda r: fmt.days_value(r.median_days), True),
            ("p90 days", lambda r: fmt.days_value(r.p90_days), True),
        ],
        caption=f"The {TOP_MOVES} most frequent moves between stages; days between the two "
        "entries.",
    )
    return Section(
        "discovery",
        title,
        takeaway,
        charts=(
            Chart(
                charts.process_map_chart(edges, stages),
                "Arcs above move forward, arcs below move back, thicker means more often "
                "(labels: times · median days); under each stage, moves to lost (red) and to "
                "no decision (grey).",
            ),
        ),
        tables=(variant_rows, move_rows),
    )


# -- bottlenecks ---------------------------------------------------------------------
def bottlenecks_section(result: BottleneckResult) -> Section:
    """Stages ranked by value lost there and excess waiting × value, with the reason
    for each rank."""
    title = TITLES["bottlenecks"]
    rank = result.ranking
    currency = str(result.meta["currency"])
    if rank.empty or float(rank["score"].sum()) == 0:
        return notice(
            "bottlenecks",
            title,
            "No value has been lost and no deal has waited beyond a target yet.",
        )
    top = rank.iloc[0]
    lost = (
        f"{top['name']} costs the most: {fmt.money(top['value_lost'], currency)} left the "
        f"pipeline there ({fmt.pct(top['share_lost'])} of all value lost)"
    )
    if rank["target_days"].isna().all():
        # 0% of nothing: no waiting can be beyond a target that no stage has.
        takeaway = f"{lost}; no stage has a target time, so waiting is not weighed."
    else:
        takeaway = (
            f"{lost} and it holds {fmt.pct(top['share_waiting'])} of all waiting beyond "
            "target, weighted by value."
        )

    def over(text: Callable[[Any], str]) -> Callable[[Any], str]:
        # A stage without a target has no time over it (not 0 of it).
        return lambda r: "–" if fmt.missing(r.target_days) else text(r)

    rows = table(
        rank,
        [
            ("Rank", lambda r: str(r.rank), True),
            ("Stage", lambda r: str(r.name), False),
            ("Deals lost here", lambda r: fmt.count(r.deals_lost), True),
            ("Value lost", lambda r: fmt.money(r.value_lost, currency), True),
            ("Deals over target", over(lambda r: fmt.count(r.deals_over_target)), True),
            ("Their value", over(lambda r: fmt.money(r.value_over_target, currency)), True),
            ("Days over target", over(lambda r: fmt.count(r.excess_days)), True),
            ("Score", lambda r: f"{float(r.score):.2f}", True),
        ],
        caption="Value lost: deals lost or without decision whose last open stage this was. "
        "Score: share of value lost + share of excess value-days (0 to 2).",
    )
    return Section(
        "bottlenecks",
        title,
        takeaway,
        charts=(
            Chart(
                charts.bottleneck_chart(rank),
                "Each bar is a stage's score: its share of all value lost plus its share of "
                "all waiting beyond target (days over × deal value).",
            ),
        ),
        tables=(rows,),
        bullets=tuple(str(w) for w in rank["why"]),
    )


# -- whose move ----------------------------------------------------------------------
def whose_move_section(result: WhoseMoveResult) -> Section:
    """Each stage's time split into waiting for the buyer and for the seller."""
    title = TITLES["whose_move"]
    st = result.stages
    known = st.dropna(subset=["buyer_share"])
    if known.empty:
        return notice(
            "whose_move",
            title,
            "No activity carries a direction (inbound, outbound, waiting on customer), so "
            "whose move it is cannot be told.",
        )
    most = known.loc[known["buyer_share"].idxmax()]
    least = known.loc[known["buyer_share"].idxmin()]
    takeaway = (
        f"Deals wait longest on the buyer in {most['name']} "
        f"({fmt.pct(most['buyer_share'])} of its known time) and least in {least['name']} "
        f"({fmt.pct(least['buyer_share'])}); the rest of the time the next move is the seller's."
    )
    rows = table(
        st,
        [
            ("Stage", lambda r: str(r.name), False),
            ("Visits", lambda r: fmt.count(r.visits), True),
            ("Days in stage", lambda r: fmt.count(r.days), True),
            ("Buyer's move", lambda r: fmt.count(r.buyer_days), True),
            ("Seller's move", lambda r: fmt.count(r.seller_days), True),
            ("Unknown", lambda r: fmt.count(r.unknown_days), True),
        ],
        caption="Days summed over all visits. Unknown: before a deal's first activity with a "
        "direction.",
    )
    return Section(
        "whose_move",
        title,
        takeaway,
        charts=(
            Chart(
                charts.whose_move_chart(st),
                "After an outbound activity (or 'waiting on customer') the buyer has the "
                "move; after an inbound one, the seller.",
            ),
        ),
        tables=(rows,),
        notes=(str(result.meta.get("turns", "")),),
    )


# -- conformance ---------------------------------------------------------------------
# Non-conforming deals listed (folded) in the report.
TOP_DEVIANT_DEALS = 15


def _owners_caption(owners: pd.DataFrame, level: float) -> str:
    """The spread of adherence between owners, or that there is one owner only."""
    if len(owners) == 1:
        o = owners.iloc[0]
        return (
            f"All {fmt.plural(o['deals'], 'deal')} have one owner, {o['owner_id']} "
            f"({fmt.pct(o['conforming_rate'])} followed the process), so owners cannot be "
            f"compared; the bar is the {round(100 * level)}% interval."
        )
    lo = owners.loc[owners["conforming_rate"].idxmin()]
    hi = owners.loc[owners["conforming_rate"].idxmax()]
    if lo["conforming_rate"] == hi["conforming_rate"]:
        # A tie everywhere: "from 100% of A's 2 deals to 100% of A's 2" compares A with A.
        return (
            f"All {len(owners):,} owners have the same share of deals that followed the "
            f"process, {fmt.pct(lo['conforming_rate'])}; bars are {round(100 * level)}% "
            "intervals, wide for owners of few deals."
        )
    return (
        f"Per owner: from {fmt.pct(lo['conforming_rate'])} of {lo['owner_id']}'s "
        f"{fmt.count(lo['deals'])} deals to {fmt.pct(hi['conforming_rate'])} of "
        f"{hi['owner_id']}'s {fmt.count(hi['deals'])}; bars are {round(100 * level)}% intervals, "
        "the dashed line all deals."
    )


def _violations_caption(stages: pd.DataFrame) -> str:
    """The stage left most often without its exit criteria; when none is, the one
    with the most skips and moves back."""
    missing = stages["exits_missing_criteria"]
    if int(missing.sum()):
        w = stages.loc[missing.idxmax()]
        return (
            f"{w['name']} is left most often without its exit criteria: "
            f"{fmt.count(w['exits_missing_criteria'])} of {fmt.count(w['exits'])} exits."
        )
    other = stages["skipped_over"] + stages["moves_back"]
    if not int(other.sum()):
        return "No stage was left without its exit criteria, skipped over or moved back from."
    w = stages.loc[other.idxmax()]
    return (
        f"No stage was left without its exit criteria; most departures are at {w['name']}: "
        f"skipped over {fmt.plural(w['skipped_over'], 'time')} and moved back from "
        f"{fmt.plural(w['moves_back'], 'time')}."
    )


def conformance_section(result: ConformanceResult) -> Section:
    """Share of deals that followed the designed process; where and by whom not."""
    title = TITLES["conformance"]
    summary, owners, stages = result.summary, result.owners, result.stages
    if summary.empty or int(summary["deals"].sum()) == 0:
        return notice("conformance", title, "No deals in this log.")
    s = summary.iloc[0]
    level = confidence(result.meta)
    takeaway = (
        f"{fmt.pct(s['conforming_rate'])} of {fmt.plural(s['deals'], 'deal')} followed the "
        f"process as designed ({fmt.ci(s['conforming_lower'], s['conforming_upper'], level=level)}"
        f"); {fmt.count(s['backward'])} moved back, {fmt.count(s['reentries'])} re-entered a "
        f"stage, {fmt.count(s['exits_missing_criteria'])} left a stage without its exit "
        f"criteria and {fmt.count(s['skipped'])} skipped a stage."
    )
    chart_list = []
    if len(owners):
        chart_list.append(
            Chart(
                charts.adherence_chart(owners, s["conforming_rate"]),
                _owners_caption(owners, level),
            )
        )
    if len(stages):
        chart_list.append(Chart(charts.violations_chart(stages), _violations_caption(stages)))
    deals = result.deals.head(TOP_DEVIANT_DEALS)
    tables = []
    if len(deals):
        tables.append(
            table(
                deals,
                [
                    ("Deal", lambda r: str(r.deal_id), False),
                    ("Owner", lambda r: str(r.owner_id), False),
                    ("Skipped", lambda r: fmt.count(r.skipped), True),
                    ("Moves back", lambda r: fmt.count(r.backward), True),
                    ("Re-entries", lambda r: fmt.count(r.reentries), True),
                    ("Exits without criteria", lambda r: fmt.count(r.exits_missing_criteria), True),
                ],
                caption="Deals with the most departures from the process.",
                title="Deals furthest from the process",
                collapsed=True,
            )
        )
    return Section(
        "conformance",
        title,
        takeaway,
        charts=tuple(chart_list),
        tables=tuple(tables),
        notes=(
            "A deal conforms when it skipped no stage, never moved back or re-entered a stage, "
            "and left each stage with its exit criteria met (required fields, checklist). "
            "Moving to lost or no decision is never a violation.",
        ),
    )
