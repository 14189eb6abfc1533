"""funnelwise.synth: reproducible, schema-conformant, consistent, and true to its truth.

Statistical checks use stated tolerances: a binomial share is compared with
its exact value within 4 standard errors (a false alarm about 1 in 16,000
runs), and the seeds are fixed so the tests are deterministic.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import funnelwise as fw
from funnelwise.cli.app import app
from funnelwise.errors import InputError
from funnelwise.process import template_text
from funnelwise.store import Store, arrow_schema, conform
from funnelwise.synth import (
    PlantedChange,
    SynthParams,
    SynthResult,
    generate,
    stored_truth,
    write_project,
)
from funnelwise.synth.chain import (
    ChainTables,
    absorption,
    place_moves,
    segment_codes,
    simulate_paths,
)
from funnelwise.synth.generate import TABLE_NAMES
from funnelwise.synth.params import N_OPEN, STAGES

N = 20_000
OUTCOME_OF_STAGE = {"won": "won", "lost": "lost", "no-decision": "no_decision"}


def within(observed: float, expected: float, n: int, z: float = 4.0) -> bool:
    """A share of n trials is within z binomial standard errors of its expected value."""
    se = math.sqrt(max(expected * (1.0 - expected), 1e-12) / n)
    return abs(observed - expected) <= z * se


@pytest.fixture(scope="module")
def result() -> SynthResult:
    return generate(deals=N, seed=11)


@pytest.fixture(scope="module")
def frames(result: SynthResult) -> dict[str, pd.DataFrame]:
    return {
        name: result.tables[name].to_pandas()
        for name in ("deals", "stage_events", "deal_changes", "activities", "leads", "checklist")
    }


@pytest.fixture(scope="module")
def events(result: SynthResult, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Stage events in (deal, entered_at, seq) order with the next entry of the same deal."""
    e = frames["stage_events"].sort_values(["deal_id", "entered_at", "seq"]).reset_index(drop=True)
    same = e.deal_id.shift(-1) == e.deal_id
    e["next_stage"] = e.stage_id.shift(-1).where(same)
    e["next_at"] = e.entered_at.shift(-1).where(same)
    e["days"] = (e.next_at - e.entered_at).dt.total_seconds() / 86400.0
    d = frames["deals"].set_index("deal_id")
    e["created_at"] = e.deal_id.map(d.created_at)
    e["product"] = e.deal_id.map(d["product"])
    return e


# -- reproducibility and schema -----------------------------------------------------------


def test_same_seed_same_tables_other_seed_other_tables() -> None:
    a, b, c = (
        generate(deals=1500, seed=3),
        generate(deals=1500, seed=3),
        generate(deals=1500, seed=4),
    )
    assert set(a.tables) == set(TABLE_NAMES)
    for name in TABLE_NAMES:
        assert a.tables[name].equals(b.tables[name]), name
    assert not a.tables["deals"].equals(c.tables["deals"])
    assert not a.tables["stage_events"].equals(c.tables["stage_events"])
    assert json.dumps(a.truth.to_dict()) == json.dumps(b.truth.to_dict())


def test_every_table_conforms_to_the_canonical_schema(result: SynthResult) -> None:
    for name, table in result.tables.items():
        assert table.schema.equals(arrow_schema(name).remove_metadata()), name
        assert conform(name, table).equals(table), name
        assert table.num_rows > 0, name


def test_all_four_deal_states_and_a_realistic_open_share(frames: dict[str, pd.DataFrame]) -> None:
    outcome = frames["deals"].outcome.fillna("open")
    shares = outcome.value_counts(normalize=True)
    assert set(shares.index) == {"open", "won", "lost", "no_decision"}
    assert 0.05 <= shares["open"] <= 0.15  # the window is sized for that
    d = frames["deals"]
    assert (d.currency == "USD").all() and (d.amount_base == d.amount).all()
    assert d.deal_id.is_unique and (d.amount > 0).all()
    closed = d.outcome.notna()
    assert (
        d.closed_at.notna().eq(closed).all()
        and d.loss_reason.notna().eq(d.outcome.isin(["lost", "no_decision"])).all()
    )


def test_window_scales_with_deals_and_is_capped() -> None:
    p = SynthParams()
    assert p.window(5000) == 728 and p.window(1_000_000) == 728
    assert p.window(500) == 140  # 25 deals a week
    assert SynthParams(window_days=90).window(10**6) == 90


# -- consistency of the event log ---------------------------------------------------------


def test_events_are_ordered_and_consistent(
    result: SynthResult, frames: dict[str, pd.DataFrame], events: pd.DataFrame
) -> None:
    e, d = events, frames["deals"].set_index("deal_id")
    assert set(e.stage_id) == {*STAGES, "won", "lost", "no-decision"}
    g = e.groupby("deal_id", sort=False)
    # seq is 0..n-1 in event order, and entry times never go back.
    assert (e.seq.to_numpy() == g.cumcount().to_numpy()).all()
    assert (g.entered_at.diff().dropna() >= pd.Timedelta(0)).all()
    first = g.first()
    assert (first.entered_at == d.created_at.reindex(first.index)).all()
    assert first.stage_id.isin(["lead", "qualification"]).all()
    assert e.entered_at.max() <= result.observed_until
    assert d.created_at.max() < result.observed_until
    last = g.last()
    closed = d.outcome.reindex(last.index).notna()
    # A closed deal ends with its outcome stage at closed_at; an open deal never does.
    assert (
        last.stage_id[closed].map(OUTCOME_OF_STAGE) == d.outcome.reindex(last.index)[closed]
    ).all()
    assert (last.entered_at[closed] == d.closed_at.reindex(last.index)[closed]).all()
    assert last.stage_id[~closed].isin(STAGES).all()
    assert set(d.index) == set(last.index)
    # Outcome stages appear only as a deal's last event.
    terminal = e.stage_id.isin(OUTCOME_OF_STAGE)
    assert e.next_stage[terminal].isna().all()
    # Re-entries and skips happen.
    assert (g.size() > g.stage_id.nunique()).any()
    assert ((e.stage_id == "lead") & (e.next_stage == "needs-assessment")).any()


def test_other_tables_stay_inside_the_window(
    result: SynthResult, frames: dict[str, pd.DataFrame]
) -> None:
    until = result.observed_until
    d = frames["deals"].set_index("deal_id")
    for name, col in (("deal_changes", "changed_at"), ("activities", "at")):
        t = frames[name]
        assert t[col].max() <= until, name
        on_deal = t[t.deal_id.notna()]
        closed_at = on_deal.deal_id.map(d.closed_at)
        assert (on_deal[col] >= on_deal.deal_id.map(d.created_at)).all(), name
        assert (on_deal[col][closed_at.notna()] <= closed_at.dropna()).all(), name
    a = frames["activities"]
    assert a.deal_id.notna().ne(a.lead_id.notna()).all()  # a deal or a lead, never both
    assert set(a.direction) == {"inbound", "outbound", "waiting_on_customer"}
    assert {"call", "email", "meeting"} <= set(a.kind)
    lead = frames["leads"]
    conv = lead[lead.converted_deal_id.notna()].set_index("converted_deal_id")
    assert len(conv) == len(d)  # every deal came from a lead
    assert (conv.converted_at == d.created_at.reindex(conv.index)).all()
    assert (conv.created_at <= conv.converted_at).all()
    unconverted = lead[lead.converted_deal_id.isna()]
    assert unconverted.disqualified_at.notna().any() and unconverted.disqualified_at.isna().any()
    assert (unconverted.disqualified_at.dropna() <= until).all()


def test_change_replay_ends_at_the_current_values(frames: dict[str, pd.DataFrame]) -> None:
    c = frames["deal_changes"].sort_values(["deal_id", "changed_at"], kind="stable")
    d = frames["deals"].set_index("deal_id")
    assert set(c.field) == {"amount", "expected_close_date"}
    for field, current in (
        ("amount", d.amount.map(repr)),
        ("expected_close_date", d.expected_close_date.map(str)),
    ):
        f = c[c.field == field]
        g = f.groupby("deal_id")
        # Each change starts from the value the previous one left.
        prev_new = g.new_value.shift(1)
        chained = prev_new.isna() | (prev_new == f.old_value)
        assert chained.all(), field
        last = g.new_value.last()
        if field == "amount":
            assert np.allclose(last.astype(float), d.amount.reindex(last.index), rtol=0, atol=0)
        else:
            assert (last == current.reindex(last.index)).all()
    amounts = c[c.field == "amount"]
    assert (amounts.groupby("deal_id").size() > 1).any()  # drift happens more than once


def test_checklist_items_are_ticked_when_a_deal_first_moves_forward(
    result: SynthResult, frames: dict[str, pd.DataFrame], events: pd.DataFrame
) -> None:
    position = {s: i for i, s in enumerate(STAGES)} | {"won": len(STAGES)}
    e = events[events.stage_id.isin(STAGES)]
    ahead = e.next_stage.map(position) - e.stage_id.map(position)
    exits = e[ahead > 0].assign(skip=ahead[ahead > 0] == 2)
    first = exits.groupby(["deal_id", "stage_id"], as_index=False).first()
    ticks = frames["checklist"].merge(first, on=["deal_id", "stage_id"], how="left")
    # Items belong to the first forward exit from the stage, during that visit...
    left = ticks[ticks.entered_at.notna()]
    assert ((left.done_at >= left.entered_at) & (left.done_at <= left.next_at)).all()
    # ...or, cut by the end of observation, to the visit an open deal is still in.
    pending = ticks[ticks.entered_at.isna()][["deal_id", "stage_id", "done_at"]]
    current = events.groupby("deal_id").last()
    pending = pending.join(current[["stage_id", "entered_at"]], on="deal_id", rsuffix="_now")
    assert len(pending) > 0
    assert frames["deals"].set_index("deal_id").outcome.reindex(pending.deal_id).isna().all()
    assert (pending.stage_id == pending.stage_id_now).all()
    assert (pending.done_at >= pending.entered_at).all()
    assert not frames["checklist"].duplicated(["deal_id", "stage_id", "criterion"]).any()
    # Share of items done: 0.92 after an advance, 0.5 after a skip.
    items = {
        s.id: len(s.exit_criteria.checklist)
        for s in fw.load_process(Path(fw.__file__).parent / "process" / "templates" / "b2b.yaml")
        .pipeline("new-business")
        .stages
    }
    first["items"] = first.stage_id.map(items)
    for skip, p in ((False, 0.92), (True, 0.5)):
        chosen = first[first.skip == skip]
        done = ticks[ticks.skip == skip]
        assert within(len(done) / chosen["items"].sum(), p, int(chosen["items"].sum())), skip


def test_as_of_rebuilds_the_amount_before_the_first_change(
    tmp_path: Path, result: SynthResult, frames: dict[str, pd.DataFrame]
) -> None:
    write_project(result, tmp_path / "p")
    c = frames["deal_changes"]
    first = c[c.field == "amount"].sort_values("changed_at").groupby("deal_id").first()
    t = pd.Timestamp(result.start) + pd.Timedelta(days=120)
    created = frames["deals"].set_index("deal_id").created_at
    probe = first[(first.changed_at > t) & (created.reindex(first.index) <= t)]
    assert len(probe) > 20
    log = fw.open(tmp_path / "p")
    try:
        past = log.as_of(t).deals.to_pandas().set_index("deal_id").amount
    finally:
        log.store.close()
    assert np.allclose(past.reindex(probe.index), probe.old_value.astype(float))


# -- statistics against the truth ----------------------------------------------------------


def test_early_deals_win_at_the_exact_absorption_rate(
    result: SynthResult, frames: dict[str, pd.DataFrame]
) -> None:
    d = frames["deals"]
    t = result.truth
    early = d[d.created_at < result.start + pd.Timedelta(days=180)]
    assert early.outcome.notna().mean() > 0.995  # observed for 1.5 years: barely censored
    exact = t.absorption_overall("before")
    for k, name in enumerate(("won", "lost", "no_decision")):
        share = float((early.outcome == name).mean())
        assert within(share, float(exact[k]), len(early)), (name, share, exact[k])


def test_median_time_in_stage_matches_the_true_median(
    result: SynthResult, events: pd.DataFrame
) -> None:
    early = events[(events.created_at < result.start + pd.Timedelta(days=270))]
    truth = result.truth
    for stage in ("qualification", "proposal"):
        i = STAGES.index(stage)
        days = early[(early.stage_id == stage) & early.next_at.notna()].days
        m = truth.pooled_median_days("before")[i]
        # At the true median, the share of shorter visits is a binomial 1/2.
        assert within(float((days <= m).mean()), 0.5, len(days)), (stage, days.median(), m)
    # Enterprise deals are slower than starter deals by the stated factor.
    per_product = truth.median_days("before")
    q = STAGES.index("qualification")
    assert per_product[2, q] / per_product[0, q] == pytest.approx(1.5 / 0.7)
    ent = early[(early.stage_id == "qualification") & (early["product"] == "enterprise")]
    assert within(float((ent.days.dropna() <= per_product[2, q]).mean()), 0.5, ent.days.count())


def test_weekday_seasonality_matches_the_arrival_rates(
    result: SynthResult, frames: dict[str, pd.DataFrame]
) -> None:
    created = frames["deals"].created_at
    per_weekday = created.dt.weekday.value_counts().reindex(range(7), fill_value=0)
    days = pd.date_range(result.start, result.observed_until, inclusive="left")
    n_days = pd.Series(days.weekday).value_counts().reindex(range(7))
    expected = result.truth.deals_per_day_by_weekday() * n_days.to_numpy()
    assert expected.sum() == pytest.approx(N)
    # Poisson-like counts: within 4 standard deviations, and weekends clearly quieter.
    assert (np.abs(per_weekday.to_numpy() - expected) <= 4 * np.sqrt(expected)).all()
    assert per_weekday[6] < 0.15 * per_weekday[1]
    clock = created - created.dt.normalize()
    assert clock.between(pd.Timedelta(hours=8), pd.Timedelta(hours=18)).all()  # office hours


def test_planted_change_is_visible_before_and_after(
    result: SynthResult, events: pd.DataFrame
) -> None:
    change = result.truth.change_effect()
    assert change is not None
    date = pd.Timestamp(change["date"])
    assert date == result.start + pd.Timedelta(days=math.floor(0.6 * 728))
    done = events[events.next_at.notna()]
    proposal = done[done.stage_id == "proposal"]
    before = proposal[proposal.entered_at < date]
    after = proposal[proposal.entered_at >= date]
    p_before = float((before.next_stage == "negotiation").mean())
    p_after = float((after.next_stage == "negotiation").mean())
    assert within(p_before, change["advance_prob_before"], len(before))
    # After the change the segment mix of proposal visits shifts a little, so allow 0.01 more.
    assert abs(p_after - change["advance_prob_after"]) <= 0.01 + 4 * math.sqrt(0.25 / len(after))
    assert change["advance_prob_rise"] > 0.1 and p_after - p_before > 0.08
    # Negotiation gets faster by the stated factor.
    nego = done[done.stage_id == "negotiation"]
    for regime, rows in (
        ("before", nego[nego.entered_at < date]),
        ("after", nego[nego.entered_at >= date]),
    ):
        m = change[f"median_days_{regime}"]
        assert within(float((rows.days <= m).mean()), 0.5, len(rows)), regime
    assert change["median_days_after"] == pytest.approx(
        0.75 * change["median_days_before"], rel=0.02
    )


def test_absorption_is_exact_on_a_hand_computed_chain() -> None:
    # lead: advance 1/2, lost 1/2; qualification: advance 1/2, back 1/2; later stages advance.
    moves = np.zeros((N_OPEN, 5))
    moves[0] = (0.5, 0, 0, 0.5, 0)
    moves[1] = (0.5, 0, 0.5, 0, 0)
    moves[2:, 0] = 1.0
    b, n = absorption(place_moves(moves))
    # x = P(won | lead) = 1/2 (1/2 + 1/2 x)  =>  x = 1/3; from qualification 1/2 + x/2 = 2/3.
    assert b[0] == pytest.approx([1 / 3, 2 / 3, 0])
    assert b[1] == pytest.approx([2 / 3, 1 / 3, 0])
    # Entries into lead from lead: 1 + 1/4 + 1/16 + ... = 4/3.
    assert n[0, 0] == pytest.approx(4 / 3)


def test_absorption_equals_brute_force_simulation(result: SynthResult) -> None:
    truth = result.truth
    n = 100_000
    _, outcome, days = truth.simulate_outcomes(n=n, seed=5)
    for k, p in enumerate(truth.absorption_overall("before")):
        assert within(float((outcome == k).mean()), float(p), n)
    # The mean cycle is exact too: expected visits × mean gamma time, summed.
    assert abs(days.mean() - truth.expected_cycle_days()) <= 4 * days.std() / math.sqrt(n)
    # One segment started in proposal, in the changed regime.
    seg, stage = 17, STAGES.index("proposal")
    paths = simulate_paths(
        ChainTables.from_params(result.params),
        segment=np.full(n, seg),
        product=np.full(n, segment_codes(result.params)[1][seg]),
        start_stage=np.full(n, stage),
        start_day=np.zeros(n),
        change_day=-math.inf,
        rng=np.random.default_rng(1),
    )
    exact = truth.absorption_by_segment_stage[seg, 1, stage]
    for k in range(3):
        assert within(float((paths.final == N_OPEN + k).mean()), float(exact[k]), n)
    events_per_deal = paths.stage.size / n
    assert events_per_deal == pytest.approx(
        truth.visits_by_segment[seg, 1, stage].sum() + 1, rel=0.02
    )


def test_cumulative_incidence_rises_to_the_absorption_probabilities(result: SynthResult) -> None:
    truth = result.truth
    ci = truth.true_cumulative_incidence([0, 7, 30, 90, 365, 10_000], n=50_000, seed=2)
    assert list(ci.columns) == ["days", "won", "lost", "no_decision"]
    for name in ("won", "lost", "no_decision"):
        assert ci[name].is_monotonic_increasing and ci[name].iloc[0] == 0.0
    final = ci.iloc[-1][["won", "lost", "no_decision"]].to_numpy(dtype=float)
    exact = truth.absorption_overall("before")
    assert all(within(final[k], exact[k], 50_000) for k in range(3))
    assert ci.loc[2, "won"] < exact[0]  # a month is too short to win most deals that will be won


def test_truth_is_frozen_and_json_ready(result: SynthResult) -> None:
    truth = result.truth
    with pytest.raises(dataclasses.FrozenInstanceError):
        truth.seed = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        truth.matrices[0, 0, 0, 0] = 0.5
    d = json.loads(json.dumps(truth.to_dict()))
    assert d["absorption"]["before"]["won"] == pytest.approx(truth.absorption_overall()[0])
    assert len(d["segments"]) == result.params.n_segments
    assert sum(s["weight"] for s in d["segments"]) == pytest.approx(1.0)
    assert d["durations"]["family"] == "gamma"
    assert set(d["arrivals"]["deals_per_day"]) == {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
    assert np.allclose(np.asarray(d["base_matrix"]).sum(axis=1), 1.0)
    assert 10.0 <= d["expected_events_per_deal"] <= 12.0  # ~10 observed after censoring
    assert len(d["rep_skills"]) == int(
        (result.tables["users"].column("role").to_pandas() == "rep").sum()
    )


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="move_probs"):
        SynthParams(move_probs=((1.0, 0, 0, 0, 0),) * 5)
    with pytest.raises(ValueError, match="source_mix"):
        SynthParams(source_mix=(1.0,))
    with pytest.raises(ValueError, match="stage"):
        PlantedChange(stage="closed")
    with pytest.raises(InputError, match="at least 1"):
        generate(deals=0)


def test_no_planted_change_means_one_regime() -> None:
    r = generate(deals=800, seed=1, params=SynthParams(change=None))
    assert r.truth.change_effect() is None
    assert np.allclose(r.truth.matrices[:, 0], r.truth.matrices[:, 1])


def test_tiny_data_sets_are_complete() -> None:
    for n in (1, 7):
        r = generate(deals=n, seed=0)
        assert r.tables["deals"].num_rows == n
        assert r.tables["leads"].column("converted_deal_id").null_count < r.tables["leads"].num_rows
        first = r.tables["stage_events"].to_pandas().groupby("deal_id").seq.min()
        assert len(first) == n and (first == 0).all()


# -- writing ----------------------------------------------------------------------------


def test_write_project_with_parquet_round_trips(tmp_path: Path) -> None:
    r = generate(deals=1200, seed=2)
    root = write_project(r, tmp_path / "proj", parquet=True)
    assert root == tmp_path / "proj"
    for name in TABLE_NAMES:
        assert pq.read_table(root / "parquet" / f"{name}.parquet").equals(r.tables[name]), name
    with Store.open(f"duckdb://{root / 'funnelwise.duckdb'}", create=False) as store:
        assert store.count("stage_events") == r.tables["stage_events"].num_rows
        assert store.meta("observed_until") == r.observed_until.isoformat()
        assert store.meta_json("synth_truth") == json.loads(json.dumps(r.truth.to_dict()))
        back = stored_truth(store)
    assert back is not None and back.to_dict() == r.truth.to_dict()
    assert np.array_equal(back.absorption_overall("after"), r.truth.absorption_overall("after"))
    with pytest.raises(InputError, match="already holds"):
        write_project(r, root)


def test_cli_demo_and_synth_build_readable_projects(tmp_path: Path) -> None:
    runner = CliRunner()
    demo = tmp_path / "demo"
    res = runner.invoke(app, ["demo", str(demo), "--deals", "1500", "--seed", "3"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "synth"
    res = runner.invoke(
        app, ["synth", "--out", str(out), "--deals", "1500", "--seed", "3", "--parquet"]
    )
    assert res.exit_code == 0, res.output
    assert (out / "parquet" / "deals.parquet").exists()
    for root in (demo, out):
        log = fw.open(root)
        try:
            assert log.counts()["deals"] == 1500
        finally:
            log.store.close()
        res = runner.invoke(app, ["--project", str(root), "info", "--format", "json"])
        assert res.exit_code == 0, res.output
        info = json.loads(res.stdout)
        for state in ("open", "won", "lost", "no_decision"):
            assert info[f"deals_{state}"] > 0, state
    # Same seed, same data, whichever command wrote it.
    a = pq.read_table(out / "parquet" / "stage_events.parquet")
    assert a.equals(generate(deals=1500, seed=3).tables["stage_events"])


def test_cli_synth_keeps_a_process_of_ones_own_without_force(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "mine"
    out.mkdir()
    own = template_text().replace("target_days: 21", "target_days: 30")
    (out / "process.yaml").write_text(own, encoding="utf-8")
    res = runner.invoke(app, ["synth", "--out", str(out), "--deals", "100"])
    assert res.exit_code == 2, res.output
    assert "--force" in res.output and "differs from the bundled process" in res.output
    assert (out / "process.yaml").read_text(encoding="utf-8") == own
    assert not (out / "funnelwise.duckdb").exists()
    forced = runner.invoke(app, ["synth", "--out", str(out), "--deals", "100", "--force"])
    assert forced.exit_code == 0, forced.output
    assert (out / "process.yaml").read_text(encoding="utf-8") == template_text()
    # The bundled process itself is no process of one's own: writing it again is harmless.
    again = runner.invoke(app, ["synth", "--out", str(tmp_path / "new"), "--deals", "50"])
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("deals", [2, 13, 30, 45])
def test_cli_synth_writes_small_projects_whole(tmp_path: Path, deals: int) -> None:
    # With few deals there are few reps, and the top skill level may have none.
    out = tmp_path / "small"
    res = CliRunner().invoke(app, ["synth", "--out", str(out), "--deals", str(deals)])
    assert res.exit_code == 0, res.output
    with Store.open(f"duckdb://{out / 'funnelwise.duckdb'}", create=False) as store:
        assert store.count("deals") == deals
        truth = stored_truth(store)
    assert truth is not None
    weights = truth.segment_mix
    assert np.isfinite(weights).all() and weights.sum() == pytest.approx(1.0)
