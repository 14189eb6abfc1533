"""Scorers: the scikit-learn contract, time-ordered fitting, calibration against the
synthetic truth, the model against its baselines, reasons in words."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import funnelwise as fw
from funnelwise.errors import InputError, NotEnoughDataError
from funnelwise.log import EventLog
from funnelwise.scoring import (
    BoostedScorer,
    Evaluation,
    NotFittedError,
    RuleScorer,
    evaluate_scorers,
)
from funnelwise.scoring.evaluate import (
    auc_intervals,
    lift_and_gains,
    reliability_table,
    score_metrics,
    weighted_auc,
)
from funnelwise.scoring.labels import labelled_snapshots, outcome_labels
from funnelwise.scoring.models import Calibrator, scorer_from_json, scorer_to_json
from funnelwise.scoring.reasons import top_reasons
from funnelwise.store import Store
from funnelwise.synth import SynthParams, Truth, generate, write_project
from funnelwise.synth.chain import segment_index
from funnelwise.synth.params import STAGES

# A strong, known signal: rep skill, source and product move the odds of every
# step; activities carry no hint of the outcome, so P(won | stage, segment) from
# the chain's absorption probabilities is the whole truth.
PARAMS = SynthParams(
    change=None,
    skill_shift=(-1.0, 0.0, 1.0),
    source_shift=(0.0, 1.0, 0.6, -0.8, -0.3),
    product_shift=(0.5, 0.0, -0.5),
    inbound_share=(0.3, 0.3, 0.3),
    waiting_share=(0.08, 0.08, 0.08),
)
FAST = {"num_threads": 1, "n_estimators": 200, "learning_rate": 0.05}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "p"
    write_project(generate(deals=4000, seed=11, params=PARAMS), root)
    return root


@pytest.fixture(scope="module")
def evaluation(synth_root: Path) -> Evaluation:
    log = fw.open(synth_root)
    return evaluate_scorers(log, model=BoostedScorer(snapshots=20, seed=1, **FAST))


# -- metrics ------------------------------------------------------------------------
def test_metrics_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    p = np.array([0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05])
    m = score_metrics(y, p)
    # Pairs (pos, neg) ranked right: 0.95 beats 7, 0.75 beats 6, 0.05 beats 0 -> 13 of 21.
    assert m["roc_auc"] == pytest.approx(13 / 21)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    # Top decile = 1 row (0.95, a win): precision 1 over base rate 0.3; gains 1 of 3.
    assert lift_and_gains(y, p) == pytest.approx((1 / 0.3, 1 / 3))
    # A constant score has no top decile: lift 1 whatever the row order.
    flat = np.full(10, 0.25)
    assert lift_and_gains(y, flat) == pytest.approx((1.0, 0.1))
    assert lift_and_gains(y[::-1], flat) == pytest.approx((1.0, 0.1))
    # 20 rows, top 2: one clear leader (a win) and three tied at the cut of which
    # one won: 1 + 1 x 1/3 expected hits of 2, over a base rate of 5/20.
    y2 = np.array([1, 1, 0, 0] + [1, 1, 1] + [0] * 13)
    p2 = np.array([0.9, 0.5, 0.5, 0.5] + [0.1] * 16)
    assert lift_and_gains(y2, p2)[0] == pytest.approx(((1 + 1 / 3) / 2) / (5 / 20))
    table = reliability_table(y, p)
    assert table["rows"].sum() == 10
    assert table.loc[table["bin_lo"] == 0.9, "observed_rate"].item() == 1.0
    # ECE: every bin holds one row, gap |p - y| each, weighted 1/10.
    assert m["ece"] == pytest.approx(np.mean(np.abs(p - y)))


def test_weighted_auc_counts_each_row_as_often_as_its_weight() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 60)
    p = rng.integers(0, 6, 60) / 5  # many ties
    ones = weighted_auc(y, p, np.ones(60))
    assert ones.tolist() == pytest.approx([score_metrics(y, p)["roc_auc"]])
    # Weights 0, 1, 2, 3: the same as the rows repeated that often.
    w = np.arange(60) % 4
    repeated = score_metrics(np.repeat(y, w), np.repeat(p, w))["roc_auc"]
    assert weighted_auc(y, p, np.vstack([w, np.ones(60)]))[0] == pytest.approx(repeated)
    # A resample with no positive has no AUC.
    assert np.isnan(weighted_auc(y, p, (y == 0).astype(float))[0])


def test_auc_intervals_resample_units_and_pair_the_scorers() -> None:
    rng = np.random.default_rng(7)
    n = 300
    y = rng.integers(0, 2, n)
    noise = rng.normal(size=n)
    scores = {
        "model": y + noise,
        "twin": y + noise + rng.normal(scale=0.05, size=n),  # ranks like the model
        "sharp": 3 * y + noise,  # ranks far better
    }
    one = auc_intervals(y, scores, np.arange(n), reference="model", resamples=300, seed=1)
    # Each unit scored at four instants, alike: the rows add nothing the units did not
    # say, and a bootstrap over units gives the same intervals (one over rows would
    # narrow them by about half).
    units = np.repeat(np.arange(n), 4)
    four = auc_intervals(
        np.repeat(y, 4),
        {k: np.repeat(v, 4) for k, v in scores.items()},
        units,
        reference="model",
        resamples=300,
        seed=1,
    )
    pd.testing.assert_frame_equal(one, four)
    for k, p in scores.items():
        auc = roc_auc_score(y, p)
        assert one.loc[k, "roc_auc_lower"] < auc < one.loc[k, "roc_auc_upper"]
    twin, sharp = one.loc["twin"], one.loc["sharp"]
    assert np.isnan(one.loc["model", "roc_auc_vs_model_lower"])
    assert twin["roc_auc_vs_model_lower"] < 0 < twin["roc_auc_vs_model_upper"]
    assert sharp["roc_auc_vs_model_lower"] > 0
    # Paired: the difference of near twins varies far less than either AUC.
    width = twin["roc_auc_vs_model_upper"] - twin["roc_auc_vs_model_lower"]
    assert width < 0.25 * (twin["roc_auc_upper"] - twin["roc_auc_lower"])
    expected = roc_auc_score(y, scores["sharp"]) - roc_auc_score(y, scores["model"])
    assert sharp["roc_auc_vs_model"] == pytest.approx(expected)


def test_evaluation_gives_auc_intervals_over_deals(evaluation: Evaluation) -> None:
    m = evaluation.metrics.set_index("kind")
    assert (m["roc_auc_lower"] <= m["roc_auc"]).all() and (m["roc_auc"] <= m["roc_auc_upper"]).all()
    others = m.drop(index="boosted")
    diff = others["roc_auc"] - m.loc["boosted", "roc_auc"]
    np.testing.assert_allclose(others["roc_auc_vs_model"], diff)
    assert (others["roc_auc_vs_model_lower"] <= diff).all()
    assert (diff <= others["roc_auc_vs_model_upper"]).all()
    assert evaluation.meta["bootstrap"]["seed"] == 1  # the model's seed
    assert evaluation.meta["bootstrap"]["over"] == "deals"


# -- the scikit-learn contract --------------------------------------------------------
def test_isotonic_calibration_never_claims_certainty() -> None:
    # Raw scores 0.1..0.9; the 4 lowest all lost, the 3 highest all won, a mix between.
    raw = np.linspace(0.1, 0.9, 10)
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
    cal = Calibrator.fit("isotonic", raw, y, seed=0)
    p = cal(raw)
    # Plain isotonic gives 0 for the first block (4 rows) and 1 for the last (4 rows:
    # 0.6 joins them); Jeffreys: 0.5 / 5 and 4.5 / 5.
    assert p[0] == pytest.approx(0.5 / 5) and p[-1] == pytest.approx(4.5 / 5)
    assert p[4] == pytest.approx(0.5)  # the middle block (1, 0) keeps its mean
    assert np.all(np.diff(p) >= 0)
    # Beyond the calibration range it stays at the ends, never 0 or 1.
    assert cal(np.array([0.0, 1.0])).tolist() == pytest.approx([0.1, 0.9])
    # Snapshot rows: the four lowest are two deals seen twice each, the top four one
    # deal seen four times. Two deals lost say less than four: 0.5 / 3, and 1.5 / 2.
    deals = np.array(["a", "a", "b", "b", "c", "d", "e", "e", "e", "e"])
    by_deal = Calibrator.fit("isotonic", raw, y, seed=0, groups=deals)(raw)
    assert by_deal[0] == pytest.approx(0.5 / 3) and by_deal[-1] == pytest.approx(1.5 / 2)
    assert by_deal[4] == pytest.approx(0.5)


def test_init_is_inert_and_use_before_fit_is_refused(tiny_log: EventLog) -> None:
    s = BoostedScorer(target="won", snapshots=7, seed=3, calibration="sigmoid")
    assert s.get_params()["snapshots"] == 7
    assert s.get_params()["seed"] == 3
    assert not [k for k in vars(s) if k.endswith("_")]
    with pytest.raises(NotFittedError, match="not fitted yet"):
        s.predict_proba(tiny_log)
    with pytest.raises(InputError, match="target: 'lost' is not one of won, converted"):
        BoostedScorer(target="lost").fit(tiny_log)
    # scikit-learn's own tools take it: clone copies the parameters, not the state.
    from sklearn.base import clone

    twin = clone(s.set_params(seed=5))
    assert type(twin) is BoostedScorer and twin.get_params() == s.get_params()
    assert twin.get_params()["seed"] == 5 and twin is not s
    with pytest.raises(ValueError, match="has no parameter 'depth'"):
        s.set_params(depth=3)


def test_a_fitted_scorer_refuses_a_log_older_than_its_outcomes(tiny_log: EventLog) -> None:
    rule = RuleScorer().fit(tiny_log)
    assert rule.classes_.tolist() == [0, 1]
    assert rule.predict(tiny_log).tolist() == [0, 0]  # both open deals score 0.35
    with pytest.raises(InputError, match="would use what was not known then"):
        rule.predict_proba(tiny_log.as_of("2024-02-01"))


def test_too_few_outcomes_names_the_counts_and_the_rule_still_scores(
    tiny_log: EventLog,
) -> None:
    with pytest.raises(NotEnoughDataError) as err:
        BoostedScorer(snapshots=8, **FAST).fit(tiny_log)
    msg = str(err.value)
    assert "in the train slice (deals created 2024-01-01 to 2024-01-23): 1 won and 2 lost" in msg
    assert "at least 20 of each" in msg
    assert "--model rule" in msg
    scores = RuleScorer().fit(tiny_log).score(tiny_log).to_frame().set_index("deal_id")
    # D3 and D4 in qualification: 0.5 × 20% (process) + 0.25 × 0/5 checklist + 0.25 × 3/3.
    assert scores["probability"].to_dict() == pytest.approx({"D3": 0.35, "D4": 0.35})
    assert scores.loc["D3", "reason_1"] == "− Qualification: process probability 20%"


def test_fit_is_seeded_and_survives_a_json_round_trip(synth_root: Path) -> None:
    log = fw.open(synth_root).as_of("2024-06-30")
    data = BoostedScorer(snapshots=6, seed=5, **FAST).training_data(log)
    a = BoostedScorer(snapshots=6, seed=5, **FAST).fit_data(data)
    b = BoostedScorer(snapshots=6, seed=5, **FAST).fit_data(data)
    frame = a.features(log)
    assert len(frame) > 50
    np.testing.assert_array_equal(a.predict_proba(frame), b.predict_proba(frame))
    c = scorer_from_json(scorer_to_json(a))
    np.testing.assert_allclose(c.predict_proba(frame), a.predict_proba(frame), rtol=1e-12)
    p = a.predict_proba(log)
    assert p.shape == (len(frame), 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


# -- time order -------------------------------------------------------------------------
def _corrupt_after(root: Path, cut: pd.Timestamp, dest: Path) -> Path:
    """A copy of the project where everything after `cut` is different: outcomes of
    deals closed later are flipped, later amounts changed, later activities gone."""
    shutil.copytree(root, dest)
    with Store.open(f"duckdb://{dest / 'funnelwise.duckdb'}") as s, s.transaction():
        ts = cut.isoformat()
        s.raw.execute(
            "UPDATE deals SET outcome = CASE outcome WHEN 'won' THEN 'lost' ELSE 'won' END "
            f"WHERE closed_at > TIMESTAMP '{ts}' AND outcome IN ('won', 'lost')"
        )
        s.raw.execute(
            "UPDATE stage_events SET stage_id = CASE stage_id WHEN 'won' THEN 'lost' "
            f"ELSE 'won' END WHERE entered_at > TIMESTAMP '{ts}' AND stage_id IN ('won', 'lost')"
        )
        s.raw.execute(
            "UPDATE deal_changes SET new_value = '1.0' "
            f"WHERE changed_at > TIMESTAMP '{ts}' AND field = 'amount'"
        )
        s.raw.execute(f"DELETE FROM activities WHERE \"at\" > TIMESTAMP '{ts}'")
    return dest


def test_no_training_row_uses_information_after_the_split(synth_root: Path, tmp_path: Path) -> None:
    cut = pd.Timestamp("2024-05-01")
    log = fw.open(synth_root)
    other = fw.open(_corrupt_after(synth_root, cut, tmp_path / "corrupt"))
    model = BoostedScorer(snapshots=6, seed=2, **FAST)
    data = model.training_data(log.as_of(cut))
    assert data.train["as_of"].max() <= data.split.train_end < data.split.labels_until == cut
    # Calibration is a later slice: later deals, as known after the last training instant.
    assert data.calibration["as_of"].min() > data.split.train_end
    assert data.calibration["as_of"].max() <= cut
    created = data.calibration["as_of"] - pd.to_timedelta(data.calibration["deal_age_days"], "D")
    assert created.min() > data.split.train_end - pd.Timedelta(seconds=1)
    # The same rows, to the last digit, from a history that differs after the cut...
    again = model.training_data(other.as_of(cut))
    for mine, theirs in ((data.train, again.train), (data.calibration, again.calibration)):
        pd.testing.assert_frame_equal(mine, theirs)
    a = BoostedScorer(snapshots=6, seed=2, **FAST).fit_data(data)
    b = BoostedScorer(snapshots=6, seed=2, **FAST).fit_data(again)
    frame = a.features(log.as_of(cut))
    np.testing.assert_array_equal(a.predict_proba(frame), b.predict_proba(frame))
    # ...while the outcomes known later differ (the test can fail).
    late = pd.Timestamp("2024-09-01")
    mine = outcome_labels(log.as_of(late), "won", horizon_days=90.0).set_index("deal_id")
    theirs = outcome_labels(other.as_of(late), "won", horizon_days=90.0).set_index("deal_id")
    assert (mine["label"] != theirs["label"]).sum() > 100


# -- calibration and discrimination on synthetic data -------------------------------------
def _true_probability(log: EventLog, evaluation: Evaluation) -> pd.DataFrame:
    """Test rows with the chain's exact P(won | stage, segment)."""
    truth = Truth.from_dict(json.loads(str(log.store.meta("synth_truth"))))
    p = truth.params
    rows = labelled_snapshots(
        log,
        "won",
        sorted(pd.Timestamp(t) for t in evaluation.predictions["as_of"].unique()),
        labels_until=log.now,
        horizon_days=90.0,
        rates_until=evaluation.meta["test_start"],
    )
    rows = evaluation.predictions.merge(
        rows[["deal_id", "as_of", "stage", "source", "product", "region", "owner_id"]],
        on=["deal_id", "as_of"],
    )
    skills = dict(truth.rep_skills)

    def codes(values: pd.Series, names: tuple[str, ...]) -> np.ndarray:
        return np.array([names.index(v) for v in values])

    seg = segment_index(
        codes(rows["source"], p.sources),
        codes(rows["product"], p.products),
        codes(rows["region"], p.regions),
        codes(rows["owner_id"].map(skills), p.skills),
        p,
    )
    won = 0  # outcome order in the truth: won, lost, no decision
    rows["true_p"] = truth.absorption_by_segment_stage[seg, 0, codes(rows["stage"], STAGES), won]
    return rows


def test_calibrated_on_synthetic_data_with_known_probability(
    synth_root: Path, evaluation: Evaluation
) -> None:
    metrics = evaluation.metrics.set_index("kind")
    assert metrics.loc["boosted", "units"] > 400
    assert metrics.loc["boosted", "ece"] < 0.05
    curve = evaluation.reliability
    curve = curve[(curve["scorer"] == "LightGBM, calibrated") & (curve["rows"] >= 50)]
    assert len(curve) >= 5
    # Reliability close to the diagonal: no bin off by 0.2, and observed against
    # predicted has a slope near 1 (weighted by rows).
    assert (curve["observed_rate"] - curve["predicted"]).abs().max() < 0.2
    slope = np.polyfit(curve["predicted"], curve["observed_rate"], 1, w=np.sqrt(curve["rows"]))[0]
    assert 0.8 < slope < 1.2
    rows = _true_probability(fw.open(synth_root), evaluation)
    # Against the truth itself: close on average, and the truth ranks no better.
    assert np.mean(np.abs(rows["boosted"] - rows["true_p"])) < 0.1
    oracle = score_metrics(rows["label"].to_numpy(), rows["true_p"].to_numpy())
    assert metrics.loc["boosted", "roc_auc"] > oracle["roc_auc"] - 0.04


def test_model_beats_the_crm_baselines(evaluation: Evaluation, synth_root: Path) -> None:
    m = evaluation.metrics.set_index("kind")
    assert m.loc["boosted", "roc_auc"] > m.loc["rule", "roc_auc"] + 0.1
    assert m.loc["boosted", "brier"] < m.loc["rule", "brier"] - 0.05
    # The synthetic odds of a deal are additive on the log-odds scale in its
    # segment's factors: naive Bayes and logistic regression have the right form
    # and sit near the truth's own AUC, so the model must keep up with them.
    for kind in ("naive_bayes", "logistic"):
        assert m.loc["boosted", "roc_auc"] > m.loc[kind, "roc_auc"] - 0.03
    # Leads convert fast or not at all: the odds fall with age in a way a tree
    # follows and a frequency table cannot.
    leads = evaluate_scorers(
        fw.open(synth_root),
        model=BoostedScorer(target="converted", horizon_days=30, snapshots=16, **FAST),
    ).metrics.set_index("kind")
    assert leads.loc["boosted", "roc_auc"] > leads.loc["naive_bayes", "roc_auc"] + 0.1
    assert leads.loc["boosted", "roc_auc"] > leads.loc["rule", "roc_auc"] + 0.3
    assert leads.loc["boosted", "brier"] < leads.loc["naive_bayes", "brier"] - 0.03
    assert leads.loc["boosted", "roc_auc"] > leads.loc["logistic", "roc_auc"] - 0.02
    assert leads.loc["boosted", "ece"] < 0.06


# -- reasons ----------------------------------------------------------------------------
def test_reasons_in_words() -> None:
    frame = pd.DataFrame(
        {
            "stage_name": ["Proposal", "Negotiation"],
            "stage_time_ratio": [3.04, 0.5],
            "days_in_stage": [30.0, 4.0],
            "source": ["partner referral", None],
            "close_pushes": [2.0, 0.0],
            "days_to_close": [-12.0, 20.0],
        }
    )
    names = ("stage_time_ratio", "source", "close_pushes", "days_to_close")
    contrib = np.array([[-1.2, 0.8, -0.5, 0.001], [0.3, -0.2, 0.1, -0.4]])
    r = top_reasons(frame, contrib, names, top=3)
    assert list(r.iloc[0][["reason_1", "reason_2", "reason_3"]]) == [
        "− in Proposal 3.0× longer than usual",
        "+ source: partner referral",
        "− close date pushed 2×",
    ]
    assert list(r.iloc[1][["reason_1", "reason_2", "reason_3"]]) == [
        "− expected to close in 20 days",
        "+ in Negotiation for 4 days, quicker than usual",
        "− source: none",
    ]
    assert r.loc[0, "effect_1"] == pytest.approx(-1.2)
    # A stage without a usual time yet: the days alone, no comparison.
    frame.loc[0, "stage_time_ratio"] = np.nan
    r = top_reasons(frame, contrib, names, top=1)
    assert r.loc[0, "reason_1"] == "− in Proposal for 30 days"


def test_one_reason_per_fact_with_the_sign_of_its_total() -> None:
    frame = pd.DataFrame(
        {
            "stage_name": ["Needs assessment"],
            "days_in_stage": [288.0],
            "stage_time_ratio": [6.4],
            "activities": [0.0],
            "days_since_activity": [np.nan],
            "lead_age_days": [1.0],
        }
    )
    names = ("days_in_stage", "stage_time_ratio", "activities", "days_since_activity")
    names += ("lead_age_days",)
    # Time in stage: +0.5 and -0.2 are one fact pushing up by 0.3, worded by the
    # member that pushed up. The two "no activity logged" features: one reason.
    contrib = np.array([[0.5, -0.2, 0.15, 0.1, 0.05]])
    r = top_reasons(frame, contrib, names, top=3)
    assert list(r.iloc[0][["reason_1", "reason_2", "reason_3"]]) == [
        "+ 288 days in Needs assessment",
        "+ no activity logged",
        "+ lead is 1 day old",
    ]
    assert list(r.iloc[0][["effect_1", "effect_2"]]) == pytest.approx([0.3, 0.25])


def test_a_rate_reads_beside_all_deals_and_never_against_its_push() -> None:
    frame = pd.DataFrame(
        {
            "owner_id": ["ben", "ann", "cy"],
            "owner_win_rate": [0.225, 0.41, 0.29],
            "source": ["web", "web", "partner"],
            "source_win_rate": [0.20, 0.20, 0.35],
            "overall_rate": [0.286, 0.286, 0.286],
            "close_pushes": [2.0, 0.0, 1.0],
        }
    )
    names = ("owner_win_rate", "source_win_rate", "close_pushes")
    # ben: the model raised his deal for the owner although ben wins less than all
    # owners (an interaction); ann's owner push agrees with her rate; cy's rate reads
    # as the average, so either sign is no contradiction.
    contrib = np.array([[0.9, -0.4, -0.2], [0.9, -0.4, -0.2], [-0.9, 0.4, -0.2]])
    r = top_reasons(frame, contrib, names, top=3)
    assert list(r.iloc[0][["reason_1", "reason_2", "reason_3"]]) == [
        "− source web wins 20% (all deals 29%)",
        "− close date pushed 2×",
        None,
    ]
    assert list(r.iloc[1][["reason_1", "reason_2", "reason_3"]]) == [
        "+ owner ann wins 41% (all owners 29%)",
        "− source web wins 20% (all deals 29%)",
        "− close date never pushed",
    ]
    assert list(r.iloc[2][["reason_1", "reason_2"]]) == [
        "− owner cy wins 29% (all owners 29%)",
        "+ source partner wins 35% (all deals 29%)",
    ]
    assert list(r.iloc[0][["effect_1", "effect_2"]]) == pytest.approx([-0.4, -0.2])


def test_every_open_deal_gets_a_probability_and_reasons(synth_root: Path) -> None:
    log = fw.open(synth_root).as_of("2024-06-30")
    model = BoostedScorer(snapshots=6, seed=0, **FAST).fit(log.as_of("2024-06-15"))
    scores = model.score(log, model_id="m1")
    frame = scores.to_frame()
    assert len(frame) == log.counts()["deals_open"]
    assert frame["probability"].between(0, 1).all()
    assert frame["probability"].is_monotonic_decreasing
    assert frame["reason_1"].str.match(r"^[+−] \S").all()
    assert scores.meta["model_id"] == "m1"
    assert scores.meta["as_of"] == pd.Timestamp("2024-06-30")


def test_stage_changes_names_what_differs_from_the_training_process() -> None:
    from funnelwise.process import parse_process, template_text
    from funnelwise.scoring.base import stage_changes
    from funnelwise.scoring.labels import process_stages

    text = template_text()
    process = parse_process(text)
    trained = process_stages(process)
    assert stage_changes(trained, process) is None
    # A model saved before stages were recorded has nothing to compare.
    assert stage_changes((), parse_process(text.replace("id: proposal", "id: offer"))) is None
    # A new display name alone is the same stage: the model reads ids.
    offer = text.replace("name: Proposal\n", "name: Offer\n")
    assert offer != text and stage_changes(trained, parse_process(offer)) is None
    # An id changed alone: the names cannot tell the two apart, the ids do.
    said = stage_changes(trained, parse_process(text.replace("id: proposal", "id: offer")))
    assert said is not None
    assert "(Proposal [proposal] removed, Proposal [offer] added)" in said
    # Two stages swapped: the same stages, other positions.
    p = process.pipelines[0]
    swapped = (p.stages[1], p.stages[0], *p.stages[2:])
    one = process.model_copy(update={"pipelines": (p.model_copy(update={"stages": swapped}),)})
    said = stage_changes(trained, one)
    assert said is not None and "Qualification, Lead, Needs assessment" in said
    assert said.startswith("the model was trained on stages Lead, Qualification,")
    assert "(reordered)" in said
    # A pipeline added, then the one trained on taken away: each is named.
    renewals = p.model_copy(update={"id": "renewals"})
    two = process.model_copy(update={"pipelines": (p, renewals)})
    said = stage_changes(trained, two)
    assert said is not None
    assert said.startswith("pipeline renewals (Lead, Qualification, Needs assessment,")
    assert "is new in process.yaml" in said
    only = process.model_copy(update={"pipelines": (renewals,)})
    said = stage_changes(process_stages(two), only)
    assert said is not None and said.startswith("pipeline new-business (Lead, ")
    assert "is no longer in process.yaml" in said
    assert said.endswith("retrain with `funnelwise score train`")
