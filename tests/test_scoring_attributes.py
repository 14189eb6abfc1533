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
