"""The report's sections on the pipeline and what it will bring: today's pipeline,
its flow, the revenue forecast and the forecast's backtest. One function per
section; formatting of result values only, nothing estimated here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from funnelwise.forecast.backtest import MIN_CUTOFFS
from funnelwise.report import charts, fmt
from funnelwise.report.fmt import table
from funnelwise.report.section import TITLES, Chart, Section, notice
from funnelwise.scoring.result import best_baseline, rankers, signed

if TYPE_CHECKING:
    from funnelwise.analytics.flow import FlowResult
    from funnelwise.analytics.hygiene import HygieneResult
    from funnelwise.analytics.snapshot import SnapshotResult
    from funnelwise.forecast.result import BacktestResult, ForecastResult
    from funnelwise.scoring.result import Evaluation, Scores


# -- snapshot ------------------------------------------------------------------------
def snapshot_section(result: SnapshotResult) -> Section:
    """Open deals per current stage: count, value, weighted value, overdue."""
    title = TITLES["snapshot"]
    st = result.stages
    totals = result.totals
    currency = str(result.meta["currency"])
    as_of = fmt.date(result.meta["as_of"])
    if totals.empty or int(totals["deals"].sum()) == 0:
        return notice("snapshot", title, f"No open deals as of {as_of}.")
    t = totals.iloc[0]
    weighted = (
        f" ({fmt.money(t['weighted_value'], currency)} weighted by the stage probabilities)"
        if fmt.finite(t["weighted_value"])
        else ""
    )
    over = (
        f"{fmt.count(t['over_target'])} are over their stage's target time and "
        if fmt.finite(t["over_target"])
        else ""
    )
    past = (
        f"{fmt.count(t['past_close_date'])} past their expected close date"
        if int(t["with_close_date"]) == int(t["deals"])
        else f"{fmt.count(t['past_close_date'])} of the {fmt.count(t['with_close_date'])} "
        "with an expected close date are past it"
        if int(t["with_close_date"])
        else "none has an expected close date"
    )
    takeaway = (
        f"{fmt.plural(t['deals'], 'open deal')} worth {fmt.money(t['value'], currency)} as of "
        f"{as_of}{weighted}; {over}{past}."
    )
    rows = table(
        st,
        [
            ("Stage", lambda r: str(r.name), False),
            ("Deals", lambda r: fmt.count(r.deals), True),
            ("Value", lambda r: fmt.money(r.value, currency), True),
            ("Weighted", lambda r: fmt.money(r.weighted_value, currency), True),
            ("Mean days in stage", lambda r: fmt.days_value(r.mean_days_in_stage), True),
            ("Over target", lambda r: fmt.count(r.over_target), True),
            ("Past close date", lambda r: fmt.count(r.past_close_date), True),
        ],
    )
    biggest = st.loc[st["value"].idxmax()]
    return Section(
        "snapshot",
        title,
        takeaway,
        charts=(
            Chart(
                charts.snapshot_chart(st, currency),
                f"Most open value sits in {biggest['name']}: "
                f"{fmt.money(biggest['value'], currency)} in "
                f"{fmt.plural(biggest['deals'], 'deal')}.",
            ),
        ),
        tables=(rows,),
        notes=(str(result.meta.get("weighting", "")),),
    )


# -- hygiene -------------------------------------------------------------------------
# Open deals listed in the report, most issues and value first.
TOP_HYGIENE_DEALS = 20


def _listed(value: object) -> str:
    if value is None or isinstance(value, float):
        return ""
    if isinstance(value, str):
        return value
    return ", ".join(str(v) for v in value)  # type: ignore[attr-defined]


def _close_cell(r: Any) -> str:
    late = int(r.days_past_close or 0)
    return fmt.date(r.expected_close_date) + (f" ({late} d late)" if late > 0 else "")


def hygiene_section(result: HygieneResult, stage_names: Mapping[str, str]) -> Section:
    """Open deals that are stale, past their close date, pushed, re-priced or missing
    exit-criteria fields, with the deals that need attention first."""
    title = TITLES["hygiene"]
    summary = result.summary
    currency = str(result.meta["currency"])
    if summary.empty or int(summary["open_deals"].sum()) == 0:
        return notice("hygiene", title, f"No open deals as of {fmt.date(result.meta['as_of'])}.")
    s = summary.iloc[0]
    dated = int(s["with_close_date"])
    past = (
        f"{fmt.count(s['past_close'])} past their expected close date"
        if dated == int(s["open_deals"])
        else f"{fmt.count(s['past_close'])} of the {fmt.count(dated)} with an expected close "
        "date are past it"
        if dated
        else "none has an expected close date to be past"
    )
    closing = (
        f"{past}, {fmt.count(s['pushed'])} had their close date pushed "
        f"({fmt.count(s['days_pushed'])} days in all), "
    )
    takeaway = (
        f"Of {fmt.plural(s['open_deals'], 'open deal')}, {fmt.count(s['stale'])} "
        f"{_verb(s['stale'], 'is', 'are')} stale, "
        f"{closing}{fmt.count(s['amount_changed'])} changed amount and "
        f"{fmt.count(s['missing_fields'])} {_verb(s['missing_fields'], 'lacks', 'lack')} "
        "exit-criteria fields."
    )
    deals = result.deals.head(TOP_HYGIENE_DEALS)
    tables = []
    if len(deals):
        columns: list[fmt.Column] = [
            ("Deal", lambda r: str(r.deal_id), False),
            ("Owner", lambda r: str(r.owner_id), False),
            ("Stage", lambda r: stage_names.get(r.stage_id, str(r.stage_id)), False),
            ("Value", lambda r: fmt.money(r.value, currency), True),
            ("Idle days", lambda r: fmt.count(r.idle_days) + (" stale" if r.stale else ""), True),
            ("Expected close", _close_cell, True),
            ("Pushes (days)", lambda r: f"{r.pushes} ({fmt.count(r.days_pushed)})", True),
            ("Amount changes", lambda r: fmt.count(r.amount_changes), True),
        ]
        if any(_listed(m) for m in deals["missing"]):
            columns.append(("Missing fields", lambda r: _listed(r.missing), False))
        tables.append(
            table(
                deals,
                columns,
                caption=f"The {TOP_HYGIENE_DEALS} open deals with the most issues (then the "
                f"most value), of {fmt.count(s['with_issues'])} with any.",
            )
        )
    th = result.thresholds
    tables.append(
        table(
            th,
            [
                ("Stage", lambda r: stage_names.get(r.stage_id, str(r.stage_id)), False),
                ("Target days", lambda r: fmt.days_value(r.target_days), True),
                (
                    "Stale after (days idle)",
                    lambda r: fmt.days_value(r.threshold_days),
                    True,
                ),
                ("Learned from", lambda r: str(r.basis), False),
            ],
            caption="A deal is stale when idle (no stage change, no activity) longer than its "
            "stage's threshold; p90 = 90% of past deals left the stage sooner.",
            title="Stale thresholds per stage",
            collapsed=True,
        )
    )
    return Section("hygiene", title, takeaway, tables=tuple(tables))


# -- flow ----------------------------------------------------------------------------
def flow_section(result: FlowResult) -> Section:
    """The waterfall from the pipeline at start to the pipeline at end."""
    title = TITLES["flow"]
    w = result.waterfall
    currency = str(result.meta["currency"])
    start, end = fmt.date(result.meta["start"]), fmt.date(result.meta["end"])
    if w.empty:
        return notice("flow", title, f"No deals between {start} and {end}.")
    step = {r.step: r for r in w.itertuples(index=False)}
    a, b = step["start"], step["end"]
    parts = w[~w["step"].isin(["start", "end"]) & (w["value"] != 0)]
    moved = ", ".join(
        f"{fmt.money(r.value, currency, signed=True)} {charts.STEP_LABELS[str(r.step)].lower()}"
        for r in parts.itertuples(index=False)
    )
    takeaway = (
        f"From {start} to {end} the open pipeline went from {fmt.money(a.value, currency)} "
        f"({fmt.plural(a.deals, 'deal')}) to {fmt.money(b.value, currency)} "
        f"({fmt.plural(b.deals, 'deal')})" + (f": {moved}." if moved else ".")
    )
    movements = result.movements
    tables = []
    if len(movements):
        tables.append(
            table(
                movements,
                [
                    ("Deals open at start that…", lambda r: charts.STEP_LABELS[r.move], False),
                    ("Deals", lambda r: fmt.count(r.deals), True),
                    ("Value at end", lambda r: fmt.money(r.value, currency), True),
                    ("Close date moved, total days", lambda r: fmt.count(r.days), True),
                ],
                caption="Every stage move and close-date change of deals open at start, "
                "whether or not it changed the total.",
            )
        )
    return Section(
        "flow",
        title,
        takeaway,
        charts=(
            Chart(
                charts.waterfall_chart(w, currency),
                "Won, lost and no decision leave the open pipeline; start plus the parts "
                "equals end to the cent.",
            ),
        ),
        tables=tuple(tables),
    )


# -- forecast ------------------------------------------------------------------------
def forecast_section(result: ForecastResult) -> Section:
    """Bookings expected over the horizon as a distribution: the fan chart and the
    quantiles per period."""
    title = TITLES["forecast"]
    currency = result.currency
    method = charts.METHOD_LABELS.get(result.method, result.method)
    end = result.as_of + pd.Timedelta(days=result.horizon_days)
    takeaway = (
        f"Expected bookings from {fmt.date(result.as_of)} to {fmt.date(end)}: "
        f"{fmt.money(result.expected, currency)}, with 80% chance between "
        f"{fmt.money(result.p10, currency)} and {fmt.money(result.p90, currency)}"
    )
    parts = result.components
    if "open_pipeline" in parts and "new_pipeline" in parts:
        takeaway += (
            f" ({fmt.money(parts['open_pipeline'], currency)} from deals open today, "
            f"{fmt.money(parts['new_pipeline'], currency)} from deals not yet created)"
        )
    takeaway += f"; method: {method}."
    if result.prob_target is not None:
        takeaway = takeaway[:-1] + (
            f"; the chance of reaching the {fmt.money(result.target, currency)} target is "
            f"{fmt.pct(result.prob_target)}."
        )
    periods = result.periods
    periods = periods[periods["segment"] == "all"]
    rows = table(
        periods,
        [
            ("Period", lambda r: str(r.period), False),
            ("Days", lambda r: fmt.count(r.days), True),
            ("Expected", lambda r: fmt.money(r.expected, currency), True),
            ("P10", lambda r: fmt.money(r.p10, currency), True),
            ("Median", lambda r: fmt.money(r.p50, currency), True),
            ("P90", lambda r: fmt.money(r.p90, currency), True),
        ],
        caption="Bookings inside each period (won value, process currency); the first and "
        "last periods may be partial: Days gives the days of the horizon each holds.",
    )
    notes = [*result.notes]
    if result.fallback:
        notes.insert(0, f"The requested method could not run: {result.fallback}.")
    seed = f", seed {result.seed}" if result.seed is not None else ""
    if result.n_paths:
        notes.append(f"{fmt.count(result.n_paths)} simulated paths{seed}.")
    return Section(
        "forecast",
        title,
        takeaway,
        charts=(
            Chart(
                charts.fan_chart(result.fan, result.as_of, currency, result.target),
                "Cumulative bookings: the line is the median, the bands hold 50%, 80% and "
                "90% of the simulated outcomes.",
            ),
        ),
        tables=(rows,),
        notes=tuple(notes),
    )


def backtest_section(result: BacktestResult, currency: str) -> Section:
    """Forecasts as of past dates against what was booked, per method (amounts in
    `currency`, the process currency)."""
    title = TITLES["backtest"]
    scores = result.scores
    n = len(result.cutoffs)
    horizon = fmt.day_span(result.horizon_days)
    mc, base = scores.get("montecarlo"), scores.get("weighted_pipeline")
    if mc is None or not fmt.finite(mc.wape):
        takeaway = f"Backtest over {fmt.plural(n, 'past cut-off')}: {result.reason}."
    else:
        takeaway = (
            f"Over {fmt.plural(n, 'past cut-off')}, Monte Carlo missed the {horizon} "
            f"bookings by {fmt.pct(mc.wape)} (WAPE)"
        )
        if base is not None and fmt.finite(base.wape):
            takeaway += f" against {fmt.pct(base.wape)} for the weighted pipeline CRMs show"
        takeaway += f"; its 80% interval held the actual {fmt.pct(mc.coverage80)} of the time."
        if n < MIN_CUTOFFS:
            takeaway += (
                f" {fmt.plural(n, 'cut-off').capitalize()} cannot tell the methods apart nor "
                f"judge an interval (at least {MIN_CUTOFFS} are needed): run `funnelwise "
                "backtest` with an earlier --start or a shorter --every before trusting it."
            )
    ranked = sorted(scores.values(), key=lambda sc: sc.pinball)
    frame = pd.DataFrame([sc.to_dict() for sc in ranked])
    rows = table(
        frame,
        [
            ("Method", lambda r: charts.METHOD_LABELS.get(r.method, r.method), False),
            ("WAPE", lambda r: fmt.pct(r.wape), True),
            ("Bias", lambda r: fmt.pct(r.bias), True),
            ("Pinball loss", lambda r: f"{float(r.pinball):.3f}", True),
            ("80% interval held", lambda r: fmt.pct(r.coverage80), True),
            ("Cut-offs", lambda r: fmt.count(r.n_cutoffs), True),
            ("Fell back", lambda r: fmt.count(r.n_fallback), True),
        ],
        caption="WAPE: total absolute error ÷ total actual; bias: positive means too high; "
        "pinball loss scores the whole distribution (lower is better).",
    )
    return Section(
        "backtest",
        title,
        takeaway,
        charts=(
            Chart(
                charts.backtest_chart(result.to_frame(), currency),
                f"Each point is a forecast of the next {fmt.days(result.horizon_days)}, made "
                "with only what was known on that date, against what was then booked; "
                f"cut-offs every {fmt.days(result.every_days)}.",
            ),
        ),
        tables=(rows,),
        notes=(f"Chosen by the backtest: {result.reason}.", *_chosen_elsewhere(result)),
    )


def _chosen_elsewhere(result: BacktestResult) -> tuple[str, ...]:
    """When the backtest ranks another method first, where its forecast is: the
    report's own forecast is always Monte Carlo's, with its shocks. The command
    names this backtest's horizon and spacing (other cut-offs may rank otherwise)."""
    if result.chosen == "montecarlo":
        return ()
    label = charts.METHOD_LABELS.get(result.chosen, result.chosen)
    command = (
        f"funnelwise forecast --method auto --horizon {result.horizon_days:g}d "
        f"--every {result.every_days:g}d"
    )
    return (
        f"The forecast above is Monte Carlo's; `{command}` forecasts with {label}, "
        "which this backtest ranks first.",
    )


# -- scoring -------------------------------------------------------------------------
# Open deals (and leads) listed in the report, most likely first.
TOP_SCORED = 15


def scores_section(scores: Mapping[str, Scores | None], key: str = "scores") -> Section:
    """The stored scores of the open deals (target `won`) or leads (`converted`), most
    likely first, with their reasons, the model and the instant they were scored as of,
    and the scores' `warning` (a model trained under other stages) as they carry it."""
    title = TITLES[key]
    shown = {t: s for t, s in scores.items() if s is not None and len(s.to_frame())}
    if not shown:
        flag = "" if "won" in scores else " --target converted"
        unit = "deals" if "won" in scores else "leads"
        return notice(
            key,
            title,
            f"No scores are stored for the open {unit}. Run `funnelwise score train{flag}` "
            f"and `funnelwise score apply{flag}` to list them here, most likely first, "
            "with the reasons.",
        )
    tables, notes, parts = [], [], []
    for target, s in shown.items():
        frame = s.to_frame()
        unit = "deal" if target == "won" else "lead"
        verb = "won" if target == "won" else "converted"
        id_column = s.id_column
        reasons = [c for c in frame.columns if c.startswith("reason_")]
        top = frame.head(TOP_SCORED)
        why = (
            top[reasons].apply(lambda r: "; ".join(v for v in r if isinstance(v, str)), axis=1)
            if reasons
            else pd.Series("", index=top.index)
        )
        top = pd.DataFrame({"unit": top[id_column], "probability": top["probability"], "why": why})
        # Units opened since the scoring have no score: the scored ones are not all.
        unscored = int(s.meta.get("opened_since", 0))
        listed = f"scored open {unit}" if unscored > 0 else f"open {unit}"
        tables.append(
            table(
                top,
                [
                    (unit.capitalize(), lambda r: str(r.unit), False),
                    (f"P({verb})", lambda r: fmt.pct(r.probability), True),
                    ("Why", lambda r: str(r.why), False),
                ],
                caption=f"The {len(top)} of the {fmt.plural(len(frame), listed)} most "
                f"likely to be {verb}; + raised the score, − lowered it.",
                title=f"Open {unit}s by probability of being {verb}",
            )
        )
        expected = float(frame["probability"].sum())
        outcome = "wins" if target == "won" else "conversions"
        parts.append(
            f"the scores of the {fmt.plural(len(frame), listed)} add up to "
            f"{expected:,.0f} expected {outcome}"
        )
        if unscored > 0:
            parts.append(
                f"{fmt.plural(unscored, 'open ' + unit)} opened after "
                f"{fmt.date(s.meta.get('as_of'))} {'has' if unscored == 1 else 'have'} no "
                "score: `funnelwise score apply"
                f"{'' if target == 'won' else ' --target converted'}` scores them"
            )
        notes.append(
            f"{unit.capitalize()} scores: model {s.meta.get('model_id')} (trained on outcomes up "
            f"to {fmt.date(s.meta.get('trained_as_of'))}), scored as of "
            f"{fmt.date(s.meta.get('as_of'))}."
        )
    sentences = ["; ".join(parts)]
    # Said beside the scores, as `score apply` says it: with a stage removed or moved,
    # a deal's stage may not mean to the model what it means now.
    sentences += [str(s.meta["warning"]) for s in shown.values() if s.meta.get("warning")]
    sentences.append("How well such scores rank is checked below")
    takeaway = " ".join(t[0].upper() + t[1:] + "." for t in sentences)
    return Section(
        key,
        title,
        takeaway,
        tables=tuple(tables),
        notes=tuple(notes),
    )


# Below this ROC AUC a ranking is too close to chance (0.5) to act on alone.
WEAK_AUC = 0.6


def _auc(r: Any) -> str:
    """A ROC AUC with its interval, when it has one: '0.769 [0.749–0.792]'."""
    auc = f"{float(r.roc_auc):.3f}"
    lo, hi = (fmt.number(getattr(r, c, None)) for c in ("roc_auc_lower", "roc_auc_upper"))
    return auc if lo is None or hi is None else f"{auc} [{lo:.3f}–{hi:.3f}]"


def _versus(best: pd.Series, auc: float, level: float) -> str:
    """The best baseline against the model, as far as the interval of the AUC
    difference supports a ranking: no claim without an interval. The difference is
    said the way round that makes it positive when one scorer ranks better."""
    name, other = best["scorer"], float(best["roc_auc"])
    diff, lo, hi = (
        fmt.number(best.get(c))
        for c in ("roc_auc_vs_model", "roc_auc_vs_model_lower", "roc_auc_vs_model_upper")
    )
    if diff is None or lo is None or hi is None:
        return f" The best baseline, {name}, has ROC AUC {other:.3f}."
    pct = f"{round(100 * level)}%"
    if hi < 0:
        return (
            f" The model ranks them better than the best baseline, {name}: ROC AUC {auc:.3f} "
            f"against {other:.3f} (difference {signed(-diff)}, {pct} interval {signed(-hi)} "
            f"to {signed(-lo)})."
        )
    how = "better" if lo > 0 else "about as well"
    return (
        f" The best baseline, {name}, ranks them {how}: ROC AUC {other:.3f} against the "
        f"model's {auc:.3f} (difference {signed(diff)}, {pct} interval {signed(lo)} to "
        f"{signed(hi)})."
    )


def _scoring_takeaway(
    m: pd.Series,
    baselines: pd.DataFrame,
    target: str = "won",
    bands: int = 2,
    level: float = 0.95,
) -> str:
    """The model's ranking quality against the best baseline (by ROC AUC), said
    plainly when the interval of their difference puts the baseline ahead (or the
    model), when the two rank about as well, or when the model is close to chance,
    and its calibration. Baselines that cannot rank are no competitors."""
    auc = float(m["roc_auc"])
    unit, model, outcomes = (
        ("deal", "win", "wins") if target == "won" else ("lead", "conversion", "conversions")
    )
    text = (
        f"On {fmt.plural(m['units'], 'later ' + unit)} ({fmt.count(m['rows'])} scored "
        f"moments), the {model} model ({m['scorer']}) ranks the {outcomes} with ROC AUC "
        f"{auc:.3f}."
    )
    best = best_baseline(baselines)
    if best is not None:
        text += _versus(best, auc, level)
    if auc < WEAK_AUC:
        text += (
            f" An AUC under {WEAK_AUC:.1f} is close to chance (0.5): the order of the scores "
            f"says little about which {unit}s will be {'won' if target == 'won' else 'converted'}."
        )
    if bands < 2:
        # One band: the error only compares the one level with the base rate.
        return text + (
            f" All its probabilities fall in one band, so its calibration error "
            f"({fmt.pct(m['ece'], 1)}) only compares that level with the "
            f"{'win' if target == 'won' else 'conversion'} rate: it does not tell {unit}s apart."
        )
    return text + (
        f" The model's probabilities are off by {fmt.pct(m['ece'], 1)} on average "
        "(expected calibration error)."
    )


def scoring_section(result: Evaluation, key: str = "scoring") -> Section:
    """The win (or conversion) model against its baselines on later deals (or
    leads): ranking quality and calibration (the reliability curve)."""
    title = TITLES[key]
    metrics = result.metrics
    if metrics.empty:
        return notice(key, title, "No scorer could be evaluated.")
    target = str(result.meta.get("target", "won"))
    unit, rate = ("deals", "win rate") if target == "won" else ("leads", "conversion rate")
    model = metrics[metrics["kind"] == "boosted"]
    m = model.iloc[0] if len(model) else metrics.iloc[0]
    curve = result.reliability
    bands = int((curve["scorer"] == m["scorer"]).sum()) if "scorer" in curve else 2
    level = float(result.meta.get("bootstrap", {}).get("level", 0.95))
    takeaway = _scoring_takeaway(
        m, metrics[metrics["kind"] != m["kind"]], target, bands, level=level
    )
    # The model's row stays; a baseline that cannot rank is a sentence, not a competitor.
    shown = metrics[(metrics["kind"] == m["kind"]) | metrics.index.isin(rankers(metrics).index)]
    order = list(shown["scorer"])
    rows = table(
        shown,
        [
            ("Scorer", lambda r: str(r.scorer), False),
            ("ROC AUC", _auc, True),
            ("PR AUC", lambda r: f"{float(r.pr_auc):.3f}", True),
            ("Brier", lambda r: f"{float(r.brier):.3f}", True),
            ("Calibration error", lambda r: fmt.pct(r.ece, 1), True),
            ("Lift, top 10%", lambda r: f"{float(r.lift_top_decile):.1f}×", True),
            ("Base rate", lambda r: fmt.pct(r.base_rate), True),
        ],
        caption=f"Fitted on {unit} created before "
        f"{fmt.date(result.meta.get('test_start'))}, measured on later ones as they were "
        "known at several instants; higher AUC ranks better, lower Brier and calibration "
        f"error are better. ROC AUC with its {round(100 * level)}% interval from resampling "
        f"the {unit} (each {unit[:-1]} is scored at several instants).",
    )
    return Section(
        key,
        title,
        takeaway,
        charts=(
            Chart(
                charts.reliability_chart(result.reliability, order),
                f"Predicted against observed {rate} per probability band, with 95% "
                "intervals; points on the diagonal mean the probabilities can be taken at "
                "their word.",
            ),
        ),
        tables=(rows,),
        bullets=tuple(result.cannot_rank()),
    )


def _verb(n: float, one: str, many: str) -> str:
    """The verb's form for a count: '1 is', '2 are'."""
    return one if not fmt.missing(n) and round(n) == 1 else many
