"""Numeric attributes (employees, revenue) are read as numbers: the models rank by
them, naive Bayes counts them by quantile bin, reasons give the number and its
percentile, and a model saved before they were read so still loads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import funnelwise as fw
from funnelwise.process import template_text
from funnelwise.project import Project
from funnelwise.scoring import BoostedScorer
from funnelwise.scoring import base as scoring_base
from funnelwise.scoring.base import numeric_attribute_keys
from funnelwise.scoring.baselines import LogisticScorer, NaiveBayesScorer
from funnelwise.scoring.models import scorer_from_json, scorer_to_json
from funnelwise.scoring.reasons import number_text, standing
from test_scoring_leaks import write_deal_store

FAST = {"num_threads": 1, "n_estimators": 100, "learning_rate": 0.1, "snapshots": 8, "seed": 3}
CUT = pd.Timestamp("2024-10-01")


def _sized_store(root: Path, *, as_text: bool = False, deals: int = 2000, seed: int = 7) -> Path:
    """Deals created over two years whose account size (`employees`, 10 to 100,000
    on a log scale, nearly every value distinct) sets their win chance:
    1 / (1 + exp(-2 (log10(employees) - 3))). Every deal closes 10 to 60 days
    after creation; observed until 2025-01-01. `as_text` writes each size as a
    label ('n8801'), so it can only be read as a category. A `rebate` attribute,
    a number too, is filled in only on won deals (written at the win)."""
    rng = np.random.default_rng(seed)
    created = (pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.uniform(0, 730, deals), "D")).floor(
        "s"
    )
    employees = np.round(10 ** rng.uniform(1, 5, deals)).astype(int)
    chance = 1 / (1 + np.exp(-2 * (np.log10(employees) - 3)))
    won = rng.uniform(size=deals) < chance
    kind = np.where(won, "won", "lost")
    closed = (created + pd.to_timedelta(rng.uniform(10, 60, deals), "D")).floor("s")
    end = pd.Timestamp("2025-01-01")
    attributes = []
    for e, w, c, r in zip(employees, won, closed <= end, rng.uniform(1, 30, deals), strict=True):
        doc: dict[str, object] = {"employees": f"n{e}" if as_text else int(e)}
        if w and c:
            doc["rebate"] = round(float(r), 1)
        attributes.append(json.dumps(doc))
    return write_deal_store(
        root, rng, created=created, closed=closed, kind=kind, end=end, attributes=attributes
    )


@pytest.fixture(scope="module")
def numeric_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sized_store(tmp_path_factory.mktemp("sized") / "numbers")


@pytest.fixture(scope="module")
def text_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sized_store(tmp_path_factory.mktemp("sized") / "labels", as_text=True)


def _truth(log: fw.EventLog, deal_ids: pd.Series) -> pd.Series:
    """Each deal's final outcome (1 won), from the whole history."""
    deals = log.deals.to_pandas().set_index("deal_id")
    return (deals.loc[deal_ids, "outcome"] == "won").astype(int).reset_index(drop=True)


def _open_auc(root: Path, scorer: BoostedScorer | NaiveBayesScorer | LogisticScorer) -> float:
    """ROC AUC of the scorer, fitted on the history as of CUT, over the deals open
    then, against how they ended."""
    log = fw.open(root)
    cut = log.as_of(CUT)
    scorer.fit(cut)
    frame = scorer.features(cut)
    p = scorer.predict_proba(frame)[:, 1]
    return float(roc_auc_score(_truth(log, frame["deal_id"]), p))


def test_a_numeric_attribute_ranks_as_a_number(numeric_root: Path, text_root: Path) -> None:
    number = BoostedScorer(**FAST).fit(fw.open(numeric_root).as_of(CUT))
    label = BoostedScorer(**FAST).fit(fw.open(text_root).as_of(CUT))
    assert number.numeric_keys_ == ("employees",)
    assert label.numeric_keys_ == ()
    assert "attr_employees" in number.encoder_.numeric
    assert "attr_employees" in label.encoder_.categorical
    # Written only at the win, the rebate is left out, number or not.
    assert number.dropped_keys_ == ("rebate",) == label.dropped_keys_
    by_number = _open_auc(numeric_root, BoostedScorer(**FAST))
    by_label = _open_auc(text_root, BoostedScorer(**FAST))
    assert by_number > 0.75
    assert by_number > by_label + 0.15


def test_baselines_read_a_numeric_attribute(numeric_root: Path, text_root: Path) -> None:
    nb = NaiveBayesScorer(snapshots=8).fit(fw.open(numeric_root).as_of(CUT))
    edges = nb.bins_["attr_employees"]
    assert 5 <= len(edges) <= 9
    assert list(edges) == sorted(edges)
    for make in (lambda: NaiveBayesScorer(snapshots=8), lambda: LogisticScorer(snapshots=8)):
        by_number, by_label = _open_auc(numeric_root, make()), _open_auc(text_root, make())
        assert by_number > 0.75
        assert by_number > by_label + 0.15


def test_a_numeric_reason_gives_the_number_and_its_percentile(numeric_root: Path) -> None:
    log = fw.open(numeric_root).as_of(CUT)
    model = BoostedScorer(**FAST).fit(log)
    table = model.score(log, top=3).to_frame()
    employees = (
        log.deals.to_pandas()
        .set_index("deal_id")["attributes"]
        .map(lambda a: json.loads(a)["employees"])
    )
    reasons = table.filter(like="reason_")
    said = 0
    pattern = re.compile(r"^[+−] employees ([\d,]+) \((more|less) than (\d+)% of deals\)$")
    reference = np.asarray(model.attribute_reference_["employees"])
    for deal_id, row in zip(table["deal_id"], reasons.to_numpy(), strict=True):
        for text in row:
            if isinstance(text, str) and "employees" in text:
                m = pattern.match(text)
                assert m, text
                value = employees[deal_id]
                assert m.group(1) == f"{value:,}"
                share = (reference < value).mean() if m.group(2) == "more" else None
                if share is not None:
                    assert int(m.group(3)) == round(100 * share)
                said += 1
    # The attribute that sets the win chance is among the top reasons of most deals.
    assert said > len(table) / 2
    assert not reasons.stack().str.contains(r"employees: ").any()


def test_a_model_saved_before_numeric_attributes_still_loads(
    numeric_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fw.open(numeric_root).as_of(CUT)
    with monkeypatch.context() as m:
        # As before: every attribute a category.
        m.setattr(scoring_base, "NUMERIC_SHARE", 2.0)
        old = BoostedScorer(**FAST).fit(log)
    assert old.numeric_keys_ == ()
    doc = json.loads(scorer_to_json(old))
    del doc["numeric_keys"], doc["attribute_reference"]
    loaded = scorer_from_json(json.dumps(doc))
    assert loaded.numeric_keys_ == ()
    assert loaded.attribute_reference_ == {}
    np.testing.assert_allclose(loaded.predict_proba(log), old.predict_proba(log))
    table = loaded.score(log).to_frame()
    assert len(table) == len(old.features(log))
    assert table["probability"].between(0, 1).all()
    # Its reasons read the attribute as a category, as it learned it.
    assert not table.filter(like="reason_").stack().str.contains("% of deals").any()
    # A new model survives the round trip with its numeric keys and reference values.
    new = BoostedScorer(**FAST).fit(log)
    again = scorer_from_json(scorer_to_json(new))
    assert again.numeric_keys_ == ("employees",)
    assert again.attribute_reference_ == new.attribute_reference_
    np.testing.assert_allclose(again.predict_proba(log), new.predict_proba(log))


LEAD_HORIZON = 30.0
LEAD_CUT = pd.Timestamp("2024-07-01")


def _sized_lead_store(
    root: Path, *, as_text: bool = False, leads: int = 3000, seed: int = 11
) -> Path:
    """Leads created over two years whose company size (`employees`, 10 to 100,000
    on a log scale) sets their chance to convert: 1 / (1 + exp(-2 (log10(employees)
    - 3))). A lead that converts does so 1 to 25 days after creation (within the
    30-day horizon); half of the others are disqualified 5 to 60 days after
    creation, the rest are never decided. Random sources and owners; observed
    until 2025-01-01. `as_text` writes each size as a label ('n8801')."""
    rng = np.random.default_rng(seed)
    created = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.uniform(0, 730, leads), "D")
    created = created.floor("s")
    employees = np.round(10 ** rng.uniform(1, 5, leads)).astype(int)
    converts = rng.uniform(size=leads) < 1 / (1 + np.exp(-2 * (np.log10(employees) - 3)))
    converted = (created + pd.to_timedelta(rng.uniform(1, 25, leads), "D")).floor("s")
    dropped = (created + pd.to_timedelta(rng.uniform(5, 60, leads), "D")).floor("s")
    drops = ~converts & (rng.uniform(size=leads) < 0.5)
    end = pd.Timestamp("2025-01-01")
    frame = pd.DataFrame(
        {
            "lead_id": [f"L{i:05d}" for i in range(leads)],
            "created_at": created,
            "source": rng.choice(["web", "partner"], size=leads),
            "owner_id": rng.choice(["u1", "u2", "u3", "u4"], size=leads),
            "attributes": [
                json.dumps({"employees": f"n{e}" if as_text else int(e)}) for e in employees
            ],
            "converted_at": pd.Series(converted).where(converts & (converted <= end)),
            "disqualified_at": pd.Series(dropped).where(drops & (dropped <= end)),
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "process.yaml").write_text(template_text(), encoding="utf-8")
    store = Project(root).open_store(create=True)
    with store.transaction():
        store.insert("leads", frame)
        store.set_meta("observed_until", end.isoformat())
    store.close()
    return root


@pytest.fixture(scope="module")
def numeric_leads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sized_lead_store(tmp_path_factory.mktemp("leads") / "numbers")


@pytest.fixture(scope="module")
def text_leads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sized_lead_store(tmp_path_factory.mktemp("leads") / "labels", as_text=True)


def _lead_scorers() -> list[BoostedScorer | NaiveBayesScorer | LogisticScorer]:
    common = {"target": "converted", "horizon_days": LEAD_HORIZON, "snapshots": 8}
    return [
        BoostedScorer(**{**FAST, **common}),
        NaiveBayesScorer(**common),
        LogisticScorer(**common),
    ]


def _open_lead_auc(
    root: Path, scorer: BoostedScorer | NaiveBayesScorer | LogisticScorer
) -> tuple[float, int, int]:
    """ROC AUC of the scorer, fitted on the history as of LEAD_CUT, over the leads
    open at LEAD_CUT and every 30 days after it (each lead once: a lead is open for
    30 days at most) until 150 days later, against whether they converted within
    the horizon; with the positive and negative leads counted."""
    log = fw.open(root)
    scorer.fit(log.as_of(LEAD_CUT))
    leads = log.store.table("leads").to_pandas().set_index("lead_id")
    within = leads.converted_at <= leads.created_at + pd.Timedelta(days=LEAD_HORIZON)
    ids, p = [], []
    for k in range(6):
        frame = scorer.features(log.as_of(LEAD_CUT + pd.Timedelta(days=30 * k)))
        ids.append(frame["lead_id"])
        p.append(scorer.predict_proba(frame)[:, 1])
    scored = pd.concat(ids, ignore_index=True)
    assert scored.is_unique
    labels = within.loc[scored].astype(int).to_numpy()
    auc = float(roc_auc_score(labels, np.concatenate(p)))
    return auc, int(labels.sum()), int(len(labels) - labels.sum())


def test_a_numeric_lead_attribute_ranks_as_a_number(numeric_leads: Path, text_leads: Path) -> None:
    """Leads whose conversion chance rises with company size: the lead models read
    the size as a number and rank the later open leads by it far better than when
    each size is a label."""
    for number_model, label_model in zip(_lead_scorers(), _lead_scorers(), strict=True):
        by_number, positives, negatives = _open_lead_auc(numeric_leads, number_model)
        by_label, _, _ = _open_lead_auc(text_leads, label_model)
        assert number_model.numeric_keys_ == ("employees",)
        assert label_model.numeric_keys_ == ()
        assert number_model.dropped_keys_ == () == label_model.dropped_keys_
        # About 160 converted and 320 other leads: the standard error of a ROC AUC
        # near 0.9 is about 0.015 (Hanley and McNeil), near 0.7 about 0.025, so the
        # floor is more than 20 standard errors above chance and the gap 5 standard
        # errors of the difference wide. Read as labels, the size still helps a
        # little (sizes below 100 repeat) and so does the lead's age.
        assert positives > 100 and negatives > 250
        assert by_number > 0.85, (type(number_model).__name__, by_number)
        assert by_number > by_label + 0.15, (type(number_model).__name__, by_number, by_label)


def test_a_numeric_lead_reason_gives_the_number_and_its_percentile(numeric_leads: Path) -> None:
    log = fw.open(numeric_leads).as_of(LEAD_CUT)
    model = BoostedScorer(target="converted", horizon_days=LEAD_HORIZON, **FAST).fit(log)
    assert "attr_employees" in model.encoder_.numeric
    table = model.score(log, top=3).to_frame()
    assert len(table) > 50
    employees = (
        log.store.table("leads")
        .to_pandas()
        .set_index("lead_id")["attributes"]
        .map(lambda a: json.loads(a)["employees"])
    )
    pattern = re.compile(r"^[+−] employees ([\d,]+) \((more|less) than (\d+)% of leads\)$")
    reference = np.asarray(model.attribute_reference_["employees"])
    said = 0
    for lead_id, row in zip(table["lead_id"], table.filter(like="reason_").to_numpy(), strict=True):
        for text in row:
            if isinstance(text, str) and "employees" in text:
                m = pattern.match(text)
                assert m, text
                value = employees[lead_id]
                assert m.group(1) == f"{value:,}"
                if m.group(2) == "more":
                    assert int(m.group(3)) == round(100 * (reference < value).mean())
                else:
                    assert int(m.group(3)) == round(100 * (reference > value).mean())
                said += 1
    # The attribute that sets the conversion chance is among the top reasons of most leads.
    assert said > len(table) / 2


def test_which_attributes_are_numbers() -> None:
    many = [str(v) for v in range(40)]
    frame = pd.DataFrame(
        {
            "attr_size": [*many, None, ""],
            "attr_rating": [str(v % 5) for v in range(42)],  # a handful of values
            "attr_code": [*many[:38], "x", "y", None, None],  # 95% numbers: 38 of 40
            "attr_mixed": [*many[:36], "a", "b", "c", "d", None, None],  # 90%
            "attr_text": ["web"] * 42,
        }
    )
    keys = ("size", "rating", "code", "mixed", "text", "absent")
    assert numeric_attribute_keys(frame, keys) == ("size", "code")


def test_numbers_and_percentiles_in_words() -> None:
    assert number_text(8801.0) == "8,801"
    assert number_text(1234567.25) == "1,234,567.25"
    assert number_text(2.5) == "2.5"
    assert number_text(0.0042) == "0.0042"
    ref = [float(v) for v in range(1, 101)]
    assert standing(81.0, ref, "deals") == "more than 80% of deals"
    assert standing(20.0, ref, "leads") == "less than 80% of leads"
    assert standing(1000.0, ref, "deals") == "more than all deals"
    assert standing(0.0, ref, "deals") == "less than all deals"
