"""EventLog: hand-computed numbers on the tiny log, and as_of properties on random logs."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path

import ibis
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funnelwise as fw
from analytics_data import build_tiny_plus, load
from funnelwise.analytics.hygiene import _changes
from funnelwise.errors import InputError
from funnelwise.forecast.history import _amount_base_at, _amount_changes
from funnelwise.log import EventLog
from funnelwise.process import parse_process, template_text
from funnelwise.scoring.features import _change_features

T = pd.Timestamp


def frame(table: object, order: list[str]) -> pd.DataFrame:
    return table.to_pandas().sort_values(order).reset_index(drop=True)  # type: ignore[attr-defined]


def test_counts_and_current_state(tiny_log: EventLog) -> None:
    counts = tiny_log.counts()
    assert (counts["deals_open"], counts["deals_won"], counts["deals_lost"]) == (2, 1, 1)
    assert counts["deals_no_decision"] == 1
    assert counts["stage_events"] == 15
    assert tiny_log.now == T("2024-03-01")
    cases = frame(tiny_log.cases, ["deal_id"]).set_index("deal_id")
    assert cases.loc["D3", "current_stage_id"] == "qualification"  # re-entered
    assert cases.loc["D3", "furthest_position"] == 2  # needs-assessment
    # D4 entered lead and qualification at the same instant: seq decides.
    assert cases.loc["D4", "current_stage_id"] == "qualification"
    assert cases.loc["D3", "days"] == 51.0  # 2024-01-10 .. 2024-03-01, censored
    assert cases.loc["D1", "days"] == 31.0  # created 01-01, won 02-01
    assert bool(cases.loc["D3", "censored"]) and not bool(cases.loc["D1", "censored"])


def test_stage_intervals_by_hand(tiny_log: EventLog) -> None:
    iv = frame(tiny_log.stage_intervals, ["deal_id", "step"])
    d3 = iv[iv.deal_id == "D3"]
    assert d3.stage_id.tolist() == ["lead", "qualification", "needs-assessment", "qualification"]
    assert d3.next_stage_id.tolist()[:3] == ["qualification", "needs-assessment", "qualification"]
    assert d3.days.tolist() == [2.0, 8.0, 12.0, 29.0]
    assert d3.censored.tolist() == [False, False, False, True]
    d4 = iv[iv.deal_id == "D4"]
    assert d4.days.tolist() == [0.0, 29.0]
    won = iv[(iv.deal_id == "D1") & (iv.stage_id == "won")]
    assert bool(won.terminal.iloc[0]) and won.days.iloc[0] == 0.0
    # The stage join leaves its keys once: no pipeline_id_right, stage_id_right.
    assert list(iv.columns) == [
        *("deal_id", "stage_id", "entered_at", "seq", "actor_id", "origin", "pipeline_id"),
        *("position", "kind", "step", "next_stage_id", "left_at", "censored", "terminal", "days"),
    ]


def test_as_of_rebuilds_past_state(tiny_log: EventLog) -> None:
    past = tiny_log.as_of("2024-01-22")
    deals = frame(past.deals, ["deal_id"]).set_index("deal_id")
    assert deals.index.tolist() == ["D1", "D2", "D3", "D5"]  # D4 created 02-01
    assert pd.isna(deals.loc["D1", "outcome"])  # won only on 02-01
    assert deals.loc["D2", "outcome"] == "lost"
    assert deals.loc["D3", "amount"] == 1500.0  # raised to 2000 on 01-25
    assert str(deals.loc["D3", "expected_close_date"])[:10] == "2024-02-15"
    assert deals.loc["D1", "owner_id"] == "u2"  # changed on 01-20
    assert tiny_log.as_of("2024-01-15").deals.filter(
        lambda d: d.deal_id == "D1"
    ).owner_id.execute().tolist() == ["u1"]
    # The boundary is inclusive: a change at exactly t is known at t.
    at_change = tiny_log.as_of("2024-01-25").deals.filter(lambda d: d.deal_id == "D3")
    assert at_change.amount.execute().tolist() == [2000.0]
    pushed = frame(tiny_log.as_of("2024-02-12").deals, ["deal_id"]).set_index("deal_id")
    assert str(pushed.loc["D3", "expected_close_date"])[:10] == "2024-03-15"
    iv = frame(past.stage_intervals, ["deal_id", "step"])
    d1 = iv[iv.deal_id == "D1"]
    assert d1.stage_id.tolist() == ["lead", "qualification", "proposal"]
    assert d1.censored.tolist() == [False, False, True]
    assert d1.days.tolist() == [4.0, 10.0, 7.0]  # proposal 01-15 .. cutoff 01-22
    assert past.now == T("2024-01-22")


def test_filters(tiny_log: EventLog) -> None:
    assert sorted(tiny_log.filter(segment="smb").deals.deal_id.execute()) == ["D1", "D3"]
    assert sorted(tiny_log.filter(source=["partner"]).deals.deal_id.execute()) == ["D2", "D4"]
    jan = tiny_log.filter(since="2024-01-02", until="2024-01-06")
    assert sorted(jan.deals.deal_id.execute()) == ["D2", "D5"]
    assert int(jan.stage_events.count().execute()) == 5
    with pytest.raises(KeyError, match="valid pipelines"):
        tiny_log.filter(pipeline="nope")
    with pytest.raises(InputError, match="cannot read 'soon' as a date"):
        tiny_log.as_of("soon")


def ids(log: EventLog) -> list[str]:
    return sorted(log.deals.deal_id.execute())


def test_filters_narrow_take_typed_values_and_name_unknown_keys(tiny_log: EventLog) -> None:
    # Filtering again narrows: no deal is both web and partner; windows intersect.
    assert ids(tiny_log.filter(source="web").filter(source="partner")) == []
    assert ids(tiny_log.filter(source=["web", "partner"]).filter(source="web")) == [
        "D1",
        "D3",
        "D5",
    ]
    wide = tiny_log.filter(since="2024-01-02").filter(since="2023-01-01", until="2024-01-06")
    assert (wide.since, wide.until) == (pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-06"))
    assert ids(wide) == ["D2", "D5"]
    # A window that holds no instant is an error, given at once or by narrowing.
    with pytest.raises(InputError, match="is not before --until"):
        tiny_log.filter(since="2024-02-01", until="2024-01-01")
    with pytest.raises(InputError, match="is not before --until"):
        tiny_log.filter(until="2024-01-05").filter(since="2024-01-05")
    # Numbers match numbers; None keeps deals without a value.
    assert ids(tiny_log.filter(amount=1000)) == ["D1"]
    assert ids(tiny_log.filter(amount=[300, 2000.0])) == ["D3", "D4"]
    assert ids(tiny_log.filter(segment=None)) == ["D4", "D5"]
    with pytest.raises(InputError, match="amount is a number; 'lots' is not one"):
        tiny_log.filter(amount="lots")
    # Dates match dates, however given (as the frames hand them back, say).
    for day in ("2024-03-15", dt.date(2024, 3, 15), pd.Timestamp("2024-03-15")):
        assert ids(tiny_log.filter(expected_close_date=day)) == ["D3"]
    # A typo keeps nothing, so it is an error naming the columns.
    with pytest.raises(InputError, match="no deal or lead has 'sorce'"):
        tiny_log.filter(sorce="web")


def test_leads_follow_the_filter_keys_they_have(tmp_path: Path) -> None:
    log = fw.open(build_tiny_plus(tmp_path / "p"))
    log.store.raw.execute(
        """UPDATE leads SET attributes = '{"tier": "gold"}' WHERE lead_id = 'L3'"""
    )
    # A key only leads have is accepted: no deal is gold, one lead is.
    gold = log.filter(tier="gold")
    assert ids(gold) == [] and sorted(gold.leads.lead_id.execute()) == ["L3"]
    # A key no lead can have (segment is the deals' own) leaves the leads as they are.
    assert int(log.filter(segment="smb").leads.count().execute()) == 4
    log.store.close()


def test_a_filter_as_of_a_date_reads_the_values_then(tiny_log: EventLog) -> None:
    # D1 was u1's until 2024-01-20, then u2's; D3 was worth 1,500 until 2024-01-25.
    before = tiny_log.as_of("2024-01-15")
    assert ids(before.filter(owner_id="u1")) == ["D1", "D2", "D3", "D5"]
    assert ids(before.filter(owner_id="u2")) == []
    assert ids(tiny_log.filter(owner_id="u2")) == ["D1", "D4"]
    assert ids(before.filter(amount=1500)) == ["D3"]
    assert ids(before.filter(amount=2000)) == []
    # The deals kept carry the values of that date too, and their events follow.
    kept = before.filter(owner_id="u1")
    assert int(kept.stage_events.filter(kept.stage_events.deal_id == "D1").count().execute()) == 3


def test_open_errors_teach(tmp_path: object) -> None:
    with pytest.raises(fw.ProjectError, match="funnelwise demo"):
        fw.open(str(tmp_path))
    with pytest.raises(fw.StoreError, match="unsupported store URL"):
        fw.open("mysql://x")


# -- properties on random logs -----------------------------------------------------

PROCESS = parse_process(template_text())
OPEN = list(PROCESS.default_pipeline.stage_ids)
OUTCOMES = {"won": "won", "lost": "lost", "no_decision": "no-decision"}
START = dt.datetime(2024, 1, 1)


@st.composite
def random_logs(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    n = draw(st.integers(1, 6))
    deals, events, changes = [], [], []
    for i in range(n):
        did = f"D{i}"
        t = START + dt.timedelta(hours=draw(st.integers(0, 24 * 20)))
        created = t
        stages = draw(st.lists(st.sampled_from(OPEN), min_size=1, max_size=5))
        for seq, stage in enumerate(stages):
            events.append((did, stage, t, seq))
            t += dt.timedelta(hours=draw(st.integers(0, 24 * 5)))  # 0 makes ties
        outcome = draw(st.sampled_from([None, "won", "lost", "no_decision"]))
        closed = None
        if outcome:
            closed = t
            events.append((did, OUTCOMES[outcome], t, len(stages)))
        amounts = draw(st.lists(st.integers(1, 9), min_size=1, max_size=4))
        at = created
        for old, new in itertools.pairwise(amounts):
            at += dt.timedelta(hours=draw(st.integers(1, 24 * 10)))
            changes.append((did, "amount", f"{old * 100}.0", f"{new * 100}.0", at))
        deals.append((did, created, closed, outcome, amounts[-1] * 100.0))
    return {
        "deals": pd.DataFrame(
            deals, columns=["deal_id", "created_at", "closed_at", "outcome", "amount"]
        ).assign(pipeline_id="new-business", version=1, currency="USD"),
        "stage_events": pd.DataFrame(events, columns=["deal_id", "stage_id", "entered_at", "seq"]),
        "deal_changes": pd.DataFrame(
            changes, columns=["deal_id", "field", "old_value", "new_value", "changed_at"]
        ),
    }


def expected_amount(tables: dict[str, pd.DataFrame], deal: str, t: dt.datetime) -> float:
    """Replay amount changes by hand: the last change at or before t, else the first old value."""
    ch = tables["deal_changes"]
    ch = ch[ch.deal_id == deal].sort_values("changed_at")
    current = float(tables["deals"].set_index("deal_id").loc[deal, "amount"])
    if ch.empty:
        return current
    before = ch[ch.changed_at <= t]
    if len(before):
        return float(before.new_value.iloc[-1])
    return float(ch.old_value.iloc[0])


cutoffs = st.integers(0, 24 * 60).map(lambda h: START + dt.timedelta(hours=h))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables=random_logs(), t1=cutoffs, t2=cutoffs)
def test_as_of_properties(
    tables: dict[str, pd.DataFrame], t1: dt.datetime, t2: dt.datetime
) -> None:
    log = load(tables)
    try:
        cut = log.as_of(t1)
        deals = cut.deals.to_pandas()
        # Never the future.
        assert (deals.created_at <= T(t1)).all()
        assert deals.closed_at.isna().all() or (deals.closed_at.dropna() <= T(t1)).all()
        assert (cut.stage_events.to_pandas().entered_at <= T(t1)).all()
        assert (cut.deal_changes.to_pandas().changed_at <= T(t1)).all()
        # Outcomes and amounts as a hand replay says.
        raw = tables["deals"].set_index("deal_id")
        for row in deals.itertuples():
            closed = raw.loc[row.deal_id, "closed_at"]
            known = closed is not None and not pd.isna(closed) and T(closed) <= T(t1)
            assert (
                (row.outcome == raw.loc[row.deal_id, "outcome"]) if known else pd.isna(row.outcome)
            )
            assert row.amount == expected_amount(tables, row.deal_id, t1)
        # Cutting twice equals cutting once at the earlier date.
        twice = log.as_of(t1).as_of(t2)
        once = log.as_of(min(t1, t2))
        for name, key in (("deals", ["deal_id"]), ("cases", ["deal_id"])):
            a = frame(getattr(twice, name), key)
            b = frame(getattr(once, name), key)
            pd.testing.assert_frame_equal(a, b)
        # Exactly one current state per deal.
        cases = cut.cases.to_pandas()
        assert len(cases) == len(deals) and cases.deal_id.is_unique
        assert set(cases.status) <= {"open", "won", "lost", "no_decision"}
        closed_cases = cases[cases.status != "open"]
        assert (closed_cases.current_stage_id == closed_cases.status.map(OUTCOMES)).all()
        assert (cases[cases.status == "open"].current_stage_id.isin(OPEN)).all()
    finally:
        log.store.close()


def tied_changes_log() -> EventLog:
    """Deals whose amount or owner changed more than once at one instant (2024-01-10,
    as a date-only export stamps them), the rows in the order below:

    | deal | rows at 01-10                          | then   | before |
    |------|----------------------------------------|--------|--------|
    | D1   | 200→300, 100→200 (a chain)             | 300    | 100    |
    | D2   | 100→200, 300→400, 200→300 (a chain)    | 400    | 100    |
    | D3   | 500→1000, 500→900 (no chain)           | 1000   | 500    |
    | D4   | 500→900, 500→1000 (no chain)           | 1000   | 500    |
    | D5   | owner u1→u2, u1→u3 (no chain)          | u3     | u1     |
    | D6   | 100→700 of import i2, 100→800 of i1    | 700    | 100    |

    A chain counts to its end (and was its start just before) whatever the rows'
    order; otherwise the later import's value counts (i2 started after i1), then the
    greater new value: an amount as a number (as text '900' > '1000'), an id as text.
    Each pair is given in both orders somewhere, so no row order passes by luck.
    """
    day = T("2024-01-10")
    rows = [
        ("D1", "amount", "200.0", "300.0", None),
        ("D1", "amount", "100.0", "200.0", None),
        ("D2", "amount", "100.0", "200.0", None),
        ("D2", "amount", "300.0", "400.0", None),
        ("D2", "amount", "200.0", "300.0", None),
        ("D3", "amount", "500.0", "1000.0", None),
        ("D3", "amount", "500.0", "900.0", None),
        ("D4", "amount", "500.0", "900.0", None),
        ("D4", "amount", "500.0", "1000.0", None),
        ("D5", "owner_id", "u1", "u2", None),
        ("D5", "owner_id", "u1", "u3", None),
        ("D6", "amount", "100.0", "700.0", "i2"),
        ("D6", "amount", "100.0", "800.0", "i1"),
    ]
    changes = pd.DataFrame(
        rows, columns=["deal_id", "field", "old_value", "new_value", "origin"]
    ).assign(changed_at=day)
    stored = {"D1": 300.0, "D2": 400.0, "D3": 1000.0, "D4": 1000.0, "D5": 50.0, "D6": 700.0}
    deals = pd.DataFrame({"deal_id": list(stored), "amount": list(stored.values())}).assign(
        created_at=T("2024-01-01"),
        owner_id=lambda d: d.deal_id.map({"D5": "u3"}).fillna("u1"),
        pipeline_id="new-business",
        version=1,
        currency="USD",
        closed_at=None,
        outcome=None,
    )
    log = load({"deals": deals, "deal_changes": changes})
    imports = pd.DataFrame(
        [("i1", "csv", T("2024-02-01")), ("i2", "csv", T("2024-02-02"))],
        columns=["import_id", "source", "started_at"],
    )
    with log.store.transaction():
        log.store.insert("imports", imports)
    return log


THEN = {"D1": 300.0, "D2": 400.0, "D3": 1000.0, "D4": 1000.0, "D5": 50.0, "D6": 700.0}
BEFORE = {"D1": 100.0, "D2": 100.0, "D3": 500.0, "D4": 500.0, "D5": 50.0, "D6": 100.0}


@pytest.fixture
def tied_log() -> Iterator[EventLog]:
    log = tied_changes_log()
    yield log
    log.store.close()


def test_changes_at_one_instant_count_to_a_chain_s_end_else_by_the_documented_key(
    tied_log: EventLog,
) -> None:
    then = frame(tied_log.as_of("2024-01-12").deals, ["deal_id"]).set_index("deal_id")
    assert then.amount.to_dict() == THEN
    assert then.loc["D5", "owner_id"] == "u3"


def test_before_changes_at_one_instant_the_value_is_a_chain_s_start(tied_log: EventLog) -> None:
    before = frame(tied_log.as_of("2024-01-05").deals, ["deal_id"]).set_index("deal_id")
    assert before.amount.to_dict() == BEFORE
    assert before.loc["D5", "owner_id"] == "u1"


def test_the_forecast_history_reads_tied_amount_changes_as_as_of_does(
    tied_log: EventLog,
) -> None:
    rows = tied_log.deals.mutate(
        late=ibis.literal(T("2024-01-12")), early=ibis.literal(T("2024-01-05"))
    )
    changes = _amount_changes(tied_log)
    for at, expected in (("late", THEN), ("early", BEFORE)):
        got = _amount_base_at(rows, ["deal_id"], at, changes, "USD").to_pandas()
        assert got.set_index("deal_id").amount_at.to_dict() == expected


def test_hygiene_and_scoring_read_a_tied_chain_s_first_amount_from_its_start(
    tied_log: EventLog,
) -> None:
    # Both count every change, a chain's links too.
    counts = {"D1": 2, "D2": 3, "D3": 2, "D4": 2, "D6": 2}
    firsts = {"D1": 100.0, "D2": 100.0, "D3": 500.0, "D4": 500.0, "D6": 100.0}
    scored = _change_features(tied_log).to_pandas().set_index("deal_id").drop("D5")
    assert scored._first_amount.to_dict() == firsts
    assert scored.amount_changes.to_dict() == counts
    checked = _changes(tied_log).to_pandas().set_index("deal_id")
    assert checked.amount_first.to_dict() == firsts
    assert checked.amount_changes.to_dict() == counts
