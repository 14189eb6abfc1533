"""Plotly figures drawn from result frames: one function per chart, no estimation.

Every figure shares one sober style (system fonts, white background, few
colours: outcomes keep the same colour everywhere). Figures are sized for a
narrow column; the report embeds plotly.js once and each figure as a div.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from funnelwise.report import fmt

FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
INK = "#222222"
MUTED = "#6b7280"
GRID = "#e5e7eb"
PRIMARY = "#33658a"
LIGHT = "#a9c1d6"
TARGET = "#c77700"
OUTCOME_COLORS = {"won": "#2e7d32", "lost": "#b3261e", "no_decision": "#7a7a7a"}
OUTCOME_LABELS = {"won": "Won", "lost": "Lost", "no_decision": "No decision"}
METHOD_LABELS = {
    "montecarlo": "Monte Carlo",
    "montecarlo_calibrated": "Monte Carlo, interval calibrated on past errors",
    "weighted_pipeline": "weighted pipeline (CRM)",
    "weighted_historical": "weighted by history",
    "run_rate": "run rate",
}
METHOD_COLORS = {
    "montecarlo": PRIMARY,
    "weighted_pipeline": TARGET,
    "weighted_historical": "#9c6ade",
    "run_rate": MUTED,
}
STEP_LABELS = {
    "start": "Start",
    "created": "Created",
    "advanced": "Advanced",
    "moved_back": "Moved back",
    "pulled_in": "Pulled in",
    "pushed_out": "Pushed out",
    "amount_changed": "Amount changed",
    "won": "Won",
    "lost": "Lost",
    "no_decision": "No decision",
    "end": "End",
}
# Plotly's config for every figure: no logo, no editing, fits its container.
# A sober page: no tool bar over the charts; hover and drag-to-zoom still work.
CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}


def plain(text: object) -> str:
    """User text (a stage name, an owner id) as plotly shows it: plotly reads tags such
    as <b>, <br> and <a href=...> and entities in every label, so a name holding them
    would be drawn bold, broken or as a link; written as entities, it reads as typed."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(values: pd.Series) -> list[str]:
    return [plain(v) for v in values]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def style(fig: go.Figure, *, height: int, legend: bool = False) -> go.Figure:
    """The report's look: system fonts, thin grid, tight margins, fixed height."""
    fig.update_layout(
        template="simple_white",
        height=height,
        font={"family": FONT, "size": 12, "color": INK},
        margin={"l": 8, "r": 8, "t": 36, "b": 8},
        showlegend=legend,
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": 1.02,
            "x": 0,
            "title": None,
            "traceorder": "normal",
        },
        hoverlabel={"font": {"family": FONT}},
        bargap=0.25,
    )
    fig.update_xaxes(showgrid=False, linecolor=GRID, tickcolor=GRID, automargin=True)
    fig.update_yaxes(showgrid=True, gridcolor=GRID, linecolor=GRID, tickcolor=GRID, automargin=True)
    fig.update_annotations(font_family=FONT)
    return fig


def _money_axis(currency: str) -> dict[str, str]:
    symbol = fmt.currency_symbol(currency) or ""
    return {
        "tickprefix": symbol,
        "tickformat": "~s",
        "ticksuffix": "" if symbol else f" {currency}",
    }


def _band(
    fig: go.Figure, x: pd.Series, lower: pd.Series, upper: pd.Series, fill: str, shape: str
) -> None:
    """A shaded band between lower and upper (two invisible lines, the second filled)."""
    for y, mode in ((upper, "none"), (lower, "tonexty")):
        fig.add_scatter(
            x=x,
            y=y,
            mode="lines",
            line={"width": 0, "shape": shape},
            fill=mode,
            fillcolor=fill,
            hoverinfo="skip",
            showlegend=False,
        )


def _interval(
    value: pd.Series, lower: pd.Series, upper: pd.Series, color: str, width: int = 4
) -> dict[str, object]:
    """Error bars drawing each value's interval [lower, upper] (plotly wants the
    distances from the value)."""
    return {
        "type": "data",
        "array": upper - value,
        "arrayminus": value - lower,
        "color": color,
        "thickness": 1.5,
        "width": width,
    }


def _line(
    fig: go.Figure, x: pd.Series, y: pd.Series, name: str, line: dict[str, object], hover: str
) -> None:
    """A named line; `hover` is the value part of its tooltip (plotly template)."""
    fig.add_scatter(
        x=x, y=y, mode="lines", name=name, line=line, hovertemplate=f"{hover}<extra>{name}</extra>"
    )


def funnel_chart(stages: pd.DataFrame, currency: str) -> go.Figure:
    """Two horizontal bar panels: deals reaching each stage and their value; labels
    give the count (value) and the step conversion."""
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("Deals reaching the stage", f"Their value ({currency})"),
    )
    fig.update_annotations(font_size=13)  # the panel titles
    names = _plain(stages["name"])
    panels = (
        (stages["reached"], stages["step_rate"], PRIMARY, fmt.count, "%{x:,} deals"),
        (
            stages["value"],
            stages["value_step_rate"],
            LIGHT,
            lambda v: fmt.money(v, currency),
            "%{x:,.0f}",
        ),
    )
    for col, (x, rate, color, label, hover) in enumerate(panels, start=1):
        text = [
            label(v) if fmt.missing(r) else f"{label(v)} · {fmt.pct(r)}"
            for v, r in zip(x, rate, strict=True)
        ]
        fig.add_bar(
            x=x,
            y=names,
            orientation="h",
            marker_color=color,
            text=text,
            textposition="auto",
            insidetextanchor="start",
            hovertemplate=f"%{{y}}: {hover}<extra></extra>",
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(showticklabels=False, showgrid=False)
    return style(fig, height=70 + 34 * len(names))


def incidence_chart(curves: pd.DataFrame, naive_win_rate: float | None) -> go.Figure:
    """Cumulative incidence of each outcome by day since creation, with its band, and
    the naive closed-only win rate as a dashed line."""
    fig = go.Figure()
    for outcome in ("won", "lost", "no_decision"):
        c = curves[curves["outcome"] == outcome]
        if c.empty:
            continue
        color = OUTCOME_COLORS[outcome]
        band = c.dropna(subset=["lower", "upper"])
        _band(fig, band["day"], band["lower"], band["upper"], _rgba(color, 0.18), shape="hv")
        fig.add_scatter(
            x=c["day"],
            y=c["cif"],
            mode="lines",
            name=OUTCOME_LABELS[outcome],
            line={"color": color, "width": 2, "shape": "hv"},
            customdata=c[["at_risk"]],
            hovertemplate=(
                f"{OUTCOME_LABELS[outcome]} by day %{{x}}: %{{y:.1%}}"
                "<br>%{customdata[0]:,} deals still followed<extra></extra>"
            ),
        )
    if naive_win_rate is not None and fmt.finite(naive_win_rate):
        fig.add_hline(
            y=naive_win_rate,
            line={"color": OUTCOME_COLORS["won"], "dash": "dash", "width": 1},
            annotation_text=f"closed-only win rate {fmt.pct(naive_win_rate)}",
            annotation_position="top left",
            annotation_font={"color": OUTCOME_COLORS["won"], "size": 11},
        )
    fig.update_xaxes(title_text="days since the deal was created", rangemode="tozero")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return style(fig, height=340, legend=True)


def stage_win_chart(summary: pd.DataFrame) -> go.Figure:
    """Probability of ending won from each stage (with interval) beside the naive
    closed-only rate from the same stage (drawn side by side at each stage)."""
    fig = go.Figure()
    names = _plain(summary["name"])
    at = list(range(len(names)))
    fig.add_scatter(
        x=[i - 0.1 for i in at],
        y=summary["p_won"],
        mode="markers",
        name="won, censoring-aware",
        marker={"color": OUTCOME_COLORS["won"], "size": 9},
        error_y=_interval(
            summary["p_won"], summary["p_won_lower"], summary["p_won_upper"], OUTCOME_COLORS["won"]
        ),
        text=names,
        hovertemplate="%{text}: %{y:.1%}<extra>censoring-aware</extra>",
    )
    fig.add_scatter(
        x=[i + 0.1 for i in at],
        y=summary["naive_win_rate"],
        mode="markers",
        name="closed deals only",
        marker={
            "color": "white",
            "size": 9,
            "symbol": "diamond",
            "line": {"color": MUTED, "width": 1.5},
        },
        text=names,
        hovertemplate="%{text}: %{y:.1%}<extra>closed only</extra>",
    )
    fig.update_xaxes(tickvals=at, ticktext=names, range=[-0.5, len(names) - 0.5])
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", title_text="ends won")
    return style(fig, height=300, legend=True)


def time_in_stage_chart(stages: pd.DataFrame, distribution: pd.DataFrame) -> go.Figure:
    """Small multiples, one per stage: visits by whole days in the stage (finished and
    still running), the median (solid) and the target (dashed)."""
    n = len(stages)
    cols = 3 if n > 4 else max(n, 1)
    rows = math.ceil(n / cols) if n else 1
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=_plain(stages["name"]),
        horizontal_spacing=0.06,
        vertical_spacing=0.16 if rows > 1 else 0.1,
    )
    fig.update_annotations(font_size=13)  # the panel titles
    for i, st in enumerate(stages.itertuples(index=False)):
        r, c = i // cols + 1, i % cols + 1
        d = distribution[distribution["stage_id"] == st.stage_id]
        for column, color, label in (
            ("finished", PRIMARY, "left the stage"),
            ("ongoing", LIGHT, "still in the stage"),
        ):
            fig.add_bar(
                x=d["day"],
                y=d[column],
                marker_color=color,
                name=label,
                legendgroup=column,
                showlegend=i == 0,
                hovertemplate=f"day %{{x}}: %{{y:,}} visits<extra>{label}</extra>",
                row=r,
                col=c,
            )
        marks = [m for m in map(fmt.number, (st.median, st.p90, st.target_days)) if m is not None]
        right = max(marks) * 1.5 if marks else float(d["day"].max()) if len(d) else 1.0
        fig.update_xaxes(range=[0, max(right, 1.0)], row=r, col=c)
        lines = ((st.median, {"color": INK}), (st.target_days, {"color": TARGET, "dash": "dash"}))
        for x, line in lines:
            if fmt.finite(x):
                fig.add_vline(x=x, line=line | {"width": 2}, opacity=1, layer="above", row=r, col=c)
    fig = style(fig, height=70 + 200 * rows, legend=True)
    # The legend sits above the panel titles, which plotly draws as annotations.
    fig.update_layout(
        barmode="stack", bargap=0.05, margin={"t": 60}, legend={"y": 1.0 + 40 / (200 * rows)}
    )
    return fig


def process_map_chart(edges: pd.DataFrame, stages: pd.DataFrame) -> go.Figure:
    """The directly-follows graph as an arc diagram: open stages and Won on a line in
    process order, moves forward as arcs above (width by count), moves back as arcs
    below; each stage's box shows how many moves went from it to lost (red) and to
    no decision (grey)."""
    line = stages[stages["kind"].isin(["open", "won"])].sort_values("position")
    x_of = {str(sid): float(i) for i, sid in enumerate(line["stage_id"])}
    name = {sid: plain(n) for sid, n in zip(stages["stage_id"], stages["name"], strict=True)}
    moves = edges[edges["source"].isin(x_of) & edges["target"].isin(x_of)]
    span = moves["target"].map(x_of) - moves["source"].map(x_of)
    biggest = float(moves["count"].max()) if len(moves) else 1.0
    fig = go.Figure()
    tips: list[tuple[float, float, str]] = []
    for m, d in zip(moves.to_dict("records"), span, strict=True):
        a = x_of[str(m["source"])]
        # Control point at 0.8·d: the curve peaks at 0.4·d, above forward, below backward.
        h = 0.8 * d
        fig.add_shape(
            type="path",
            path=f"M {a},0 Q {a + d / 2},{h} {a + d},0",
            line={
                "color": _rgba(PRIMARY if d > 0 else TARGET, 0.85),
                "width": 1 + 11 * float(m["count"]) / biggest,
            },
            fillcolor="rgba(0,0,0,0)",
            layer="below",
        )
        label = fmt.count(m["count"]) + " · " + fmt.days(m["median_days"]).replace(" days", " d")
        source, target = (name.get(m[k], plain(m[k])) for k in ("source", "target"))
        tips.append(
            (
                a + d / 2,
                h / 2,
                f"{source} → {target}: {label} median, {fmt.plural(m['deals'], 'deal')}",
            )
        )
        if abs(d) == 1:
            fig.add_annotation(
                x=a + d / 2,
                y=h / 2,
                text=label,
                showarrow=False,
                yshift=9 if d > 0 else -9,
                font={"size": 10, "color": PRIMARY if d > 0 else TARGET},
            )
    fig.add_scatter(
        x=[t[0] for t in tips],
        y=[t[1] for t in tips],
        mode="markers",
        marker={"size": 14, "opacity": 0},
        hovertext=[t[2] for t in tips],
        hoverinfo="text",
    )
    for st in line.itertuples(index=False):
        # Long names wrap once so neighbouring boxes do not overlap.
        label = plain(st.name).replace(" ", "<br>", 1) if len(str(st.name)) > 11 else plain(st.name)
        exits = []
        out = edges[edges["source"] == st.stage_id]
        for kind in ("lost", "no_decision"):
            ids = stages.loc[stages["kind"] == kind, "stage_id"]
            n = out.loc[out["target"].isin(ids), "count"]
            if len(n):
                exits.append(
                    f"<span style='color:{OUTCOME_COLORS[kind]}'>{fmt.count(n.iloc[0])}</span>"
                )
        lines = [f"<b>{label}</b>", " · ".join(exits)] if exits else [f"<b>{label}</b>"]
        fig.add_annotation(
            x=x_of[str(st.stage_id)],
            y=0,
            text="<br>".join(lines),
            showarrow=False,
            bgcolor="white",
            bordercolor=OUTCOME_COLORS["won"] if st.kind == "won" else INK,
            borderwidth=1,
            borderpad=4,
            font={"size": 11},
        )
    up = 0.4 * float(span.max()) if (span > 0).any() else 0.3
    down = 0.4 * float(-span.min()) if (span < 0).any() else 0.3
    fig.update_xaxes(visible=False, range=[-0.55, len(line) - 0.45])
    fig.update_yaxes(visible=False, range=[-down - 0.3, up + 0.25])
    return style(fig, height=int(100 + 200 * (up + down)))


def fan_chart(
    fan: pd.DataFrame, as_of: pd.Timestamp, currency: str, target: float | None
) -> go.Figure:
    """Cumulative bookings from the as-of date: the median, the expected value and
    nested bands (P25–P75, P10–P90, P5–P95), starting at zero on the as-of date."""
    start = pd.DataFrame({"end": [as_of], **{c: [0.0] for c in fan.columns if c != "end"}})
    f = pd.concat([start, fan], ignore_index=True)
    fig = go.Figure()
    for lo, hi, alpha in (("q05", "q95", 0.12), ("q10", "q90", 0.2), ("q25", "q75", 0.3)):
        _band(fig, f["end"], f[lo], f[hi], _rgba(PRIMARY, alpha), shape="linear")
    hover = "%{x|%Y-%m-%d}: %{y:,.0f}"
    _line(fig, f["end"], f["q50"], "median", {"color": PRIMARY, "width": 2}, hover)
    _line(
        fig, f["end"], f["expected"], "expected", {"color": INK, "width": 1, "dash": "dot"}, hover
    )
    if target is not None and fmt.finite(target):
        fig.add_hline(
            y=target,
            line={"color": TARGET, "dash": "dash", "width": 1},
            annotation_text=f"target {fmt.money(target, currency)}",
            annotation_position="top left",
            annotation_font={"color": TARGET, "size": 11},
        )
    fig.update_yaxes(rangemode="tozero", **_money_axis(currency))
    return style(fig, height=320, legend=True)


def backtest_chart(rows: pd.DataFrame, currency: str) -> go.Figure:
    """Forecasts made as of past cut-offs against what was then booked: the actual
    bookings, each method's expected value, and the Monte Carlo P10–P90 band."""
    fig = go.Figure()
    mc = rows[rows["method"] == "montecarlo"]
    if len(mc):
        _band(fig, mc["cutoff"], mc["p10"], mc["p90"], _rgba(PRIMARY, 0.15), shape="linear")
    # The calibrated Monte Carlo shares the Monte Carlo's expected value: one line.
    lines = rows[rows["method"] != "montecarlo_calibrated"]
    for method, part in lines.groupby("method", sort=False):
        _line(
            fig,
            part["cutoff"],
            part["expected"],
            METHOD_LABELS.get(str(method), str(method)),
            {"color": METHOD_COLORS.get(str(method), MUTED), "width": 1.5},
            "as of %{x|%Y-%m-%d}: %{y:,.0f}",
        )
    actual = rows.drop_duplicates("cutoff")
    fig.add_scatter(
        x=actual["cutoff"],
        y=actual["actual"],
        mode="lines+markers",
        name="actually booked",
        line={"color": INK, "width": 2},
        marker={"size": 6},
        hovertemplate="as of %{x|%Y-%m-%d}: %{y:,.0f}<extra>booked</extra>",
    )
    fig.update_xaxes(title_text="forecast made as of")
    fig.update_yaxes(rangemode="tozero", **_money_axis(currency))
    return style(fig, height=340, legend=True)


def adherence_chart(owners: pd.DataFrame, overall: float | None) -> go.Figure:
    """Share of each owner's deals that followed the process, with its interval,
    owners sorted by that share; the dashed line is the share over all deals."""
    o = owners.sort_values("conforming_rate", kind="stable")
    labels = [plain(f"{r.owner_id} · {r.team}") for r in o.itertuples(index=False)]
    fig = go.Figure()
    fig.add_scatter(
        x=o["conforming_rate"],
        y=labels,
        mode="markers",
        marker={"color": PRIMARY, "size": 8},
        error_x=_interval(
            o["conforming_rate"], o["conforming_lower"], o["conforming_upper"], LIGHT, width=0
        ),
        customdata=o[["deals"]],
        hovertemplate="%{y}: %{x:.0%} of %{customdata[0]:,} deals<extra></extra>",
    )
    if overall is not None and fmt.finite(overall):
        fig.add_vline(x=overall, line={"color": MUTED, "dash": "dash", "width": 1})
    fig.update_xaxes(tickformat=".0%", rangemode="tozero", showgrid=True, gridcolor=GRID)
    fig.update_yaxes(showgrid=False)
    return style(fig, height=60 + 20 * len(o))


def _hbars(
    fig: go.Figure, frame: pd.DataFrame, bars: tuple[tuple[str, str, str], ...], percent: bool
) -> None:
    """Horizontal bars per stage (`name` column), one trace per (column, colour, label)."""
    for column, color, label in bars:
        text = [fmt.pct(v) if percent else fmt.count(v) for v in frame[column]]
        fig.add_bar(
            x=frame[column],
            y=_plain(frame["name"]),
            orientation="h",
            name=label,
            marker_color=color,
            text=text,
            textposition="inside" if percent else "auto",
            insidetextanchor="middle",
            hovertemplate=f"%{{y}}: %{{text}}<extra>{label}</extra>",
        )
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_xaxes(showgrid=True, gridcolor=GRID, tickformat=".0%" if percent else ",")


def violations_chart(stages: pd.DataFrame) -> go.Figure:
    """Per stage: forward exits without the exit criteria, times skipped over, and
    moves back from it."""
    fig = go.Figure()
    bars = (
        ("exits_missing_criteria", TARGET, "left without its exit criteria"),
        ("skipped_over", MUTED, "skipped over"),
        ("moves_back", OUTCOME_COLORS["lost"], "moved back from it"),
    )
    _hbars(fig, stages, bars, percent=False)
    fig.update_layout(barmode="group", bargap=0.2)
    return style(fig, height=100 + 60 * len(stages), legend=True)


def whose_move_chart(stages: pd.DataFrame) -> go.Figure:
    """Per stage, the known time split into waiting for the buyer and for the seller."""
    fig = go.Figure()
    bars = (
        ("buyer_share", _rgba(PRIMARY, 0.85), "waiting for the buyer"),
        ("seller_share", _rgba(TARGET, 0.75), "waiting for the seller"),
    )
    _hbars(fig, stages, bars, percent=True)
    fig.update_layout(barmode="stack")
    fig.update_xaxes(range=[0, 1.001])
    return style(fig, height=90 + 34 * len(stages), legend=True)


def reliability_chart(reliability: pd.DataFrame, order: list[str]) -> go.Figure:
    """Small multiples, one per scorer: mean predicted probability against the observed
    rate in each probability bin (with its interval); on the diagonal is calibrated."""
    n = len(order)
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=order,
        horizontal_spacing=0.08,
        vertical_spacing=0.14 if rows > 1 else 0.1,
    )
    fig.update_annotations(font_size=13)  # the panel titles
    for i, scorer in enumerate(order):
        r, c = i // cols + 1, i % cols + 1
        part = reliability[reliability["scorer"] == scorer]
        fig.add_scatter(
            x=[0, 1],
            y=[0, 1],
            mode="lines",
            line={"color": GRID, "width": 1},
            hoverinfo="skip",
            row=r,
            col=c,
        )
        fig.add_scatter(
            x=part["predicted"],
            y=part["observed_rate"],
            mode="markers+lines",
            line={"color": LIGHT, "width": 1},
            marker={"color": PRIMARY, "size": 7},
            error_y=_interval(
                part["observed_rate"],
                part["observed_lower"],
                part["observed_upper"],
                LIGHT,
                width=0,
            ),
            customdata=part[["rows"]],
            hovertemplate="predicted %{x:.0%}, observed %{y:.0%} of %{customdata[0]:,}"
            "<extra></extra>",
            row=r,
            col=c,
        )
    fig.update_xaxes(range=[0, 1], tickformat=".0%", dtick=0.25, showgrid=True, gridcolor=GRID)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", dtick=0.25)
    # Which axis is which, once: under the panels of the last row, left of the first column.
    for i in range(n):
        r, c = i // cols + 1, i % cols + 1
        if i + cols >= n:  # no panel below
            fig.update_xaxes(title_text="predicted probability", row=r, col=c)
        if c == 1:
            fig.update_yaxes(title_text="observed rate", row=r, col=c)
    return style(fig, height=60 + 260 * rows)


def bottleneck_chart(ranking: pd.DataFrame) -> go.Figure:
    """Stages in rank order, each bar its score: the share of all value lost there plus
    the share of all excess waiting (value-days beyond target) there."""
    fig = go.Figure()
    bars = (
        ("share_lost", _rgba(OUTCOME_COLORS["lost"], 0.75), "share of value lost"),
        (
            "share_waiting",
            _rgba(TARGET, 0.75),
            "share of excess waiting (value × days over target)",
        ),
    )
    _hbars(fig, ranking, bars, percent=True)
    fig.update_layout(barmode="stack")
    return style(fig, height=90 + 34 * len(ranking), legend=True)


def snapshot_chart(stages: pd.DataFrame, currency: str) -> go.Figure:
    """Open value per current stage beside its stage-probability-weighted value, with
    the deal count on each bar."""
    fig = go.Figure()
    names = _plain(stages["name"])
    fig.add_bar(
        x=names,
        y=stages["value"],
        name="open value",
        marker_color=PRIMARY,
        text=[fmt.plural(n, "deal") for n in stages["deals"]],
        textposition="outside",
        hovertemplate="%{x}: %{y:,.0f}<extra>open value</extra>",
    )
    fig.add_bar(
        x=names,
        y=stages["weighted_value"],
        name="weighted by stage probability (CRM view)",
        marker_color=LIGHT,
        hovertemplate="%{x}: %{y:,.0f}<extra>weighted</extra>",
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(**_money_axis(currency))
    return style(fig, height=320, legend=True)


def waterfall_chart(waterfall: pd.DataFrame, currency: str) -> go.Figure:
    """The pipeline value from start to end, one bar per part that moved it
    (parts with no deal and no value are left out)."""
    keep = waterfall[
        waterfall["step"].isin(["start", "end"])
        | (waterfall["deals"] != 0)
        | (waterfall["value"] != 0)
    ]
    measure = [
        "absolute" if s == "start" else "total" if s == "end" else "relative" for s in keep["step"]
    ]
    ends = ("start", "end")
    text = [
        f"{fmt.money(v, currency, signed=s not in ends)}<br>{fmt.plural(abs(n), 'deal')}"
        for s, v, n in zip(keep["step"], keep["value"], keep["deals"], strict=True)
    ]
    fig = go.Figure(
        go.Waterfall(
            x=[STEP_LABELS.get(s, s) for s in keep["step"]],
            y=keep["value"],
            measure=measure,
            text=text,
            textposition="outside",
            cliponaxis=False,
            connector={"line": {"color": GRID}},
            increasing={"marker": {"color": PRIMARY}},
            decreasing={"marker": {"color": "#c98a84"}},
            totals={"marker": {"color": "#4b5563"}},
            hovertemplate="%{x}: %{y:,.0f}<extra></extra>",
        )
    )
    fig.update_yaxes(**_money_axis(currency))
    return style(fig, height=360)
