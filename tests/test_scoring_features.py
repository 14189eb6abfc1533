"""Scoring features and labels on the tiny log, every number computed by hand."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path

import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pytest

import funnelwise as fw
from analytics_data import deals_frame, load
from funnelwise.log import EventLog
from funnelwise.scoring.features import (
    PRIOR_STRENGTH,
    attribute_keys,
    deal_feature_table,
    features,
    snapshot_features,
)
from funnelwise.scoring.labels import outcome_labels, snapshot_times
from funnelwise.scoring.snapshots import run_as_of
from funnelwise.store import Store
from tiny import build_tiny

T = pd.Timestamp


@pytest.fixture(scope="module")
def tiny_log(tmp_path_factory: pytest.TempPathFactory) -> EventLog:
    return fw.open(build_tiny(tmp_path_factory.mktemp("tiny")))


def test_no_usual_stage_time_before_half_the_visits_ended(tiny_log: EventLog) -> None:
    # On 2024-01-09: D1 in qualification since 01-05, where no visit has ended yet;
    # D2 (since 01-02) and D5 (since 01-05) in lead. Lead visits: D1 4 days (ended),
    # D5 4 days and D2 7 days (running). At day 4 the ending comes first, so D5 is
    # still at risk: S = 1 - 1/3 = 2/3, and D2 is censored at 7: S never reaches 1/2,
    # so lead has no usual time and no ratio. The median of finished visits had said
    # 4 days (D2 "1.8x longer than usual"); counting D5 as gone before the ending
    # would give S = 1 - 1/2 at day 4, a median of 4 days too.
    f = features(tiny_log.as_of("2024-01-09"), keys=()).set_index("deal_id")
    assert f.loc[["D1", "D2", "D5"], "days_in_stage"].tolist() == pytest.approx([4, 7, 4])
    assert f.loc[["D1", "D2", "D5"], "stage_time_ratio"].isna().all()


def test_usual_stage_time_counts_the_visits_still_running() -> None:
    # Negotiation visits, as of 2024-03-15: ended after 2 (N1, on to closing), 4 (N2,
    # won) and 12 days (N3, lost); running for 3 (N4), 6 (N5) and 20 days (N6).
    # Kaplan-Meier: day 2, 6 at risk, 1 ends: S = 5/6; day 4, 4 at risk (N4 left at
    # 3): S = 5/6 * 3/4 = 5/8; day 12, 2 at risk (N5 left at 6): S = 5/8 * 1/2 =
    # 5/16 <= 1/2, so the usual time is 12 days. The median of finished visits
    # (2, 4, 12) says 4, and N6 read 5x longer than usual where it is 5/3.
    t = pd.Timestamp
    rows = [
        ("N1", t("2024-02-01"), None, None, [("negotiation", "02-01"), ("closing", "02-03")]),
        (
            "N2",
            t("2024-02-01"),
            t("2024-02-05"),
            "won",
            [("negotiation", "02-01"), ("won", "02-05")],
        ),
        (
            "N3",
            t("2024-02-01"),
            t("2024-02-13"),
            "lost",
            [("negotiation", "02-01"), ("lost", "02-13")],
        ),
        ("N4", t("2024-03-12"), None, None, [("negotiation", "03-12")]),
        ("N5", t("2024-03-09"), None, None, [("negotiation", "03-09")]),
        ("N6", t("2024-02-24"), None, None, [("negotiation", "02-24")]),
    ]
    deals = deals_frame(
        [
            (d, "u1", created, closed, outcome, 100.0, dt.date(2024, 6, 1))
            for d, created, closed, outcome, _ in rows
        ]
    )
    events = pd.DataFrame(
        [
            (d, stage, t(f"2024-{day}"), seq)
            for d, *_, visits in rows
            for seq, (stage, day) in enumerate(visits)
        ],
        columns=["deal_id", "stage_id", "entered_at", "seq"],
    )
    log = load({"deals": deals, "stage_events": events})
    f = features(log).set_index("deal_id")
    assert f.loc[["N4", "N5", "N6"], "stage_time_ratio"].tolist() == pytest.approx(
        [3 / 12, 6 / 12, 20 / 12]
    )
    # N1 is the only visit to closing, still running: no usual time.
    assert np.isnan(f.loc["N1", "stage_time_ratio"])


def test_deal_features_by_hand(tiny_log: EventLog) -> None:
    keys = attribute_keys(tiny_log.deals)
    assert keys == ("segment",)
    f = features(tiny_log.as_of("2024-02-20"), keys=keys).set_index("deal_id")
    # Open on 2024-02-20: D3 and D4 (D1, D2, D5 closed before).
    assert list(f.index) == ["D3", "D4"]
    d3 = f.loc["D3"]
    assert d3["stage"] == "qualification"
    assert d3["stage_name"] == "Qualification"
    assert d3["furthest_stage_name"] == "Needs assessment"
    assert d3["days_in_stage"] == pytest.approx(19.0)  # back in qualification since 02-01
    # Qualification visits: D1 10 days, D2 10, D3's first 8 ended; D3's second and
    # D4's still running (19 days): Kaplan-Meier falls to 2/5 at day 10 -> median 10.
    assert d3["stage_time_ratio"] == pytest.approx(1.9)
    assert d3["deal_age_days"] == pytest.approx(41.0)
    assert d3["stage_changes"] == 3  # lead->qual, qual->needs, needs->qual
    assert d3["backward_moves"] == 1
    assert d3["reentries"] == 1
    assert d3["close_pushes"] == 1  # 02-15 -> 03-15 on 02-10
    assert d3["days_to_close"] == pytest.approx(24.0)  # 03-15 from 02-20
    assert d3["amount_changes"] == 1
    assert d3["amount_ratio"] == pytest.approx(2000.0 / 1500.0)
    assert d3["attr_segment"] == "smb"
    # Exit criteria due by qualification: 1 lead item + 4 BANT items, none checked;
    # fields source, amount, expected_close_date all filled.
    assert (d3["checklist_done"], d3["checklist_required"]) == (0, 5)
    assert (d3["fields_done"], d3["fields_required"]) == (3, 3)
    # Closed by 02-20: D1 won (owner u2 then), D2 lost (u1), D5 no decision (u1).
    overall = 1.0 / 3.0
    m = PRIOR_STRENGTH
    assert d3["owner_closed"] == 2
    assert d3["owner_win_rate"] == pytest.approx((0 + m * overall) / (2 + m))
    assert f.loc["D4", "owner_win_rate"] == pytest.approx((1 + m * overall) / (1 + m))
    assert d3["source_win_rate"] == pytest.approx((1 + m * overall) / (2 + m))  # web: D1, D5
    assert f.loc["D4", "days_in_stage"] == pytest.approx(19.0)
    assert f.loc["D4", "backward_moves"] == 0
    assert pd.isna(f.loc["D4", "attr_segment"])


def test_features_never_see_the_future(tiny_log: EventLog) -> None:
    # On 2024-01-18 D2 is still open in qualification: its loss on 01-20 is unknown.
    f = features(tiny_log.as_of("2024-01-18")).set_index("deal_id")
    assert sorted(f.index) == ["D1", "D2", "D3", "D5"]
    assert f.loc["D2", "stage"] == "qualification"
    assert f.loc["D2", "days_in_stage"] == pytest.approx(8.0)
    # D3's amount change (01-25) and close-date push (02-10) are later.
    assert f.loc["D3", "amount_changes"] == 0
    assert f.loc["D3", "close_pushes"] == 0
    # No deal had closed yet, so there is no win rate to learn from.
    assert f["owner_win_rate"].isna().all()


def test_rates_stop_at_rates_until(tiny_log: EventLog) -> None:
    # As of 02-20 but with rates from 01-25: only D2 (lost, u1, partner) had closed.
    f = features(tiny_log.as_of("2024-02-20"), rates_until=T("2024-01-25")).set_index("deal_id")
    assert f.loc["D3", "owner_closed"] == 1
    assert f.loc["D3", "owner_win_rate"] == pytest.approx(0.0)
    assert f.loc["D4", "owner_closed"] == 0


def test_snapshots_compiled_once_equal_one_query_per_instant(tiny_log: EventLog) -> None:
    times = [*snapshot_times(T("2024-01-01"), T("2024-02-28"), 3), T("2024-01-05")]
    keys = ("segment",)
    at_once = snapshot_features(tiny_log, "won", times, keys=keys)
    one_by_one = pd.concat(
        [features(tiny_log.as_of(t), keys=keys) for t in times], ignore_index=True
    )
    one_by_one = one_by_one.sort_values(["as_of", "deal_id"], kind="stable")
    pd.testing.assert_frame_equal(
        at_once.reset_index(drop=True), one_by_one.reset_index(drop=True), check_dtype=False
    )
    assert len(at_once) > 0
    with pytest.raises(ValueError, match="at most the log's now"):
        run_as_of(tiny_log.as_of("2024-01-10"), lambda lg: lg.deals, [T("2024-02-01")])


def test_deal_snapshots_of_many_instants_are_one_query(
    tiny_log: EventLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The expression is built once, for a stand-in instant, and its SQL rerun per
    # instant; anything in it that is not SQL (an in-memory table) falls back to
    # building it per instant.
    built: list[pd.Timestamp] = []

    def counted(log: EventLog, *, keys: tuple[str, ...] = ()) -> ir.Table:
        built.append(log.now)
        return deal_feature_table(log, keys=keys)

    # The package re-exports a function named `features`, which hides the module.
    module = importlib.import_module("funnelwise.scoring.features")
    monkeypatch.setattr(module, "deal_feature_table", counted)
    times = snapshot_times(T("2024-01-01"), T("2024-02-28"), 4)
    snapshot_features(tiny_log, "won", times)
    assert len(built) == 1


def test_deal_labels_leave_open_deals_out(tiny_log: EventLog) -> None:
    labels = outcome_labels(tiny_log.as_of("2024-02-01"), "won", horizon_days=90)
    # By 02-01: D1 won, D2 lost; D5 (no decision on 02-15) is still open, so censored.
    assert dict(zip(labels["deal_id"], labels["label"], strict=True)) == {"D1": 1, "D2": 0}


def _lead_store(path: Path) -> EventLog:
    root = build_tiny(path)
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5"],
            "created_at": pd.to_datetime(
                ["2024-01-01", "2024-01-02", "2024-01-03", "2024-02-20", "2024-01-05"]
            ),
            "source": ["web", "web", "partner", "web", "partner"],
            "campaign_id": ["c1", None, "c1", "c2", None],
            "converted_at": pd.to_datetime(["2024-01-10", None, "2024-02-25", None, None]),
            "converted_deal_id": ["D1", None, "D3", None, None],
            "disqualified_at": pd.to_datetime([None, "2024-01-08", None, None, None]),
        }
    )
    acts = pd.DataFrame(
        {
            "activity_id": ["a1", "a2", "a3", "a4"],
            "lead_id": ["L4", "L4", "L5", "L5"],
            "kind": ["call", "email", "call", "call"],
            "at": pd.to_datetime(["2024-02-21", "2024-02-28", "2024-01-06", "2024-02-01"]),
        }
    )
    with Store.open(f"duckdb://{root / 'funnelwise.duckdb'}") as store, store.transaction():
        store.insert("leads", leads)
        store.insert("activities", acts)
    return fw.open(root)


def test_lead_labels_wait_for_the_horizon(tmp_path: Path) -> None:
    log = _lead_store(tmp_path / "p").as_of("2024-02-29")
    labels = outcome_labels(log, "converted", horizon_days=30)
    got = dict(zip(labels["lead_id"], labels["label"], strict=True))
    # L1 converted in 9 days; L2 disqualified; L3 converted after its 30 days (negative,
    # and 01-03 + 30 days has passed); L5 has waited more than 30 days; L4 is 9 days old.
    assert got == {"L1": 1, "L2": 0, "L3": 0, "L5": 0}


def test_lead_features_by_hand(tmp_path: Path) -> None:
    log = _lead_store(tmp_path / "p").as_of("2024-02-29")
    f = features(log, "converted", horizon_days=30).set_index("lead_id")
    # Open on 02-29: L4 only (L1 and L3 converted, L2 was disqualified, and L5, 55
    # days old, has let its 30 days pass: it is decided, not open).
    assert sorted(f.index) == ["L4"]
    assert f.loc["L4", "lead_age_days"] == pytest.approx(9.0)
    assert f.loc["L4", "activities"] == 2
    assert f.loc["L4", "early_activities"] == 1  # 02-21; 02-28 is 8 days after creation
    assert f.loc["L4", "days_since_activity"] == pytest.approx(1.0)
    # Decided by 02-29 with a 30-day horizon: L1 (1), L2 (0), L3 (0), L5 (0); web 1 of 2.
    overall = 0.25
    m = PRIOR_STRENGTH
    assert f.loc["L4", "source_conversion_rate"] == pytest.approx((1 + m * overall) / (2 + m))
    assert f.loc["L4", "campaign_conversion_rate"] == pytest.approx(overall)  # c2 unseen
    # With 90 days L5 is still open; decided: L1 (1), L2 (0), L3 (1, within 90 days).
    g = features(log, "converted", horizon_days=90).set_index("lead_id")
    assert sorted(g.index) == ["L4", "L5"]
    assert g.loc["L5", "early_activities"] == 1  # 01-06 only
    assert g.loc["L5", "activities_recent"] == 0  # nothing since 02-15
    assert g.loc["L5", "source_conversion_rate"] == pytest.approx((1 + m * 2 / 3) / (1 + m))


def test_attribute_keys_with_dots_and_quotes_are_read_as_written(tmp_path: Path) -> None:
    # Salesforce imports store an account's fields as `account.<Field>`: a JSON path
    # would read `account.Employees` as a key `Employees` inside `account`.
    root = build_tiny(tmp_path / "t")
    store = Store.open(f"duckdb://{root / 'funnelwise.duckdb'}")
    store.raw.execute(
        "UPDATE deals SET attributes = "
        """'{"account.Employees": 250, "account.Industry": "Energy", "Customer''s size": "big"}'"""
        " WHERE deal_id = 'D3'"
    )
    store.close()
    log = fw.open(root)
    try:
        keys = attribute_keys(log.deals)
        assert set(keys) >= {"account.Employees", "account.Industry", "Customer's size"}
        f = features(log.as_of("2024-02-20"), keys=keys).set_index("deal_id")
        d3 = f.loc["D3"]
        assert d3["attr_account.Employees"] == "250"
        assert d3["attr_account.Industry"] == "Energy"
        assert d3["attr_Customer's size"] == "big"
        assert pd.isna(f.loc["D4", "attr_account.Industry"])
    finally:
        log.store.close()
