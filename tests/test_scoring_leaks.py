"""Information recorded at the outcome never reaches a score: attributes written at
the close, and deals that stay open longer than any deal took to close."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funnelwise as fw
from funnelwise.process import template_text
from funnelwise.project import Project
from funnelwise.scoring import BoostedScorer
from funnelwise.scoring.labels import outcome_labels, stalled_days
from funnelwise.store import Store
from funnelwise.synth import generate, write_project

FAST = {"num_threads": 1, "n_estimators": 100, "learning_rate": 0.1, "snapshots": 8, "seed": 3}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("leaks") / "clean"
    write_project(generate(deals=1500, seed=5), root)
    return root


def _with_close_note(root: Path, dest: Path) -> Path:
    """A copy where every closed deal, won or not, has a `close_note` attribute that
    names its outcome, as CRMs fill a close reason at the close; open deals have none."""
    shutil.copytree(root, dest)
    with Store.open(f"duckdb://{dest / 'funnelwise.duckdb'}") as s, s.transaction():
        s.raw.execute(
            "UPDATE deals SET attributes = json_merge_patch(attributes, json_object("
            "'close_note', CASE outcome WHEN 'won' THEN 'signed' WHEN 'lost' THEN 'price' "
            "ELSE 'quiet' END)) WHERE outcome IS NOT NULL"
        )
    return dest


def test_an_attribute_written_at_every_close_is_left_out(clean: Path, tmp_path: Path) -> None:
    leaky = fw.open(_with_close_note(clean, tmp_path / "leaky"))
    base = fw.open(clean)
    # Fitted on the whole history, and as of an earlier date (as an evaluation does,
    # when deals open then carry the note they got at their later close).
    for cut in (None, pd.Timestamp("2024-02-01")):
        on_leaky = leaky if cut is None else leaky.as_of(cut)
        on_base = base if cut is None else base.as_of(cut)
        data = BoostedScorer(**FAST).training_data(on_leaky)
        # The note tells the outcome of every training row (the test can fail)...
        rows = pd.concat([data.train, data.calibration])
        assert rows["attr_close_note"].notna().all()
        assert (rows["attr_close_note"] == "signed").eq(rows["label"] == 1).all()
        model = BoostedScorer(**FAST).fit_data(data)
        assert model.dropped_keys_ == ("close_note",)
        # ...and is left out: the scores are those of the history without it.
        reference = BoostedScorer(**FAST).fit(on_base)
        np.testing.assert_allclose(
            model.predict_proba(on_leaky)[:, 1], reference.predict_proba(on_base)[:, 1]
        )


def write_deal_store(
    root: Path,
    rng: np.random.Generator,
    *,
    created: pd.DatetimeIndex,
    closed: pd.DatetimeIndex,
    kind: np.ndarray,
    end: pd.Timestamp,
    attributes: list[str] | None = None,
) -> Path:
    """A project at `root` whose deals go lead → qualification (3 days after
    `created`) → `kind` ('won' or 'lost') at `closed` when that is by `end`, or
    stay open; random owners, sources and amounts; observed until `end`."""
    deals = len(created)
    root.mkdir(parents=True, exist_ok=True)
    (root / "process.yaml").write_text(template_text(), encoding="utf-8")
    store = Project(root).open_store(create=True)
    is_closed = (kind != "open") & (closed <= end)
    ids = [f"D{i:04d}" for i in range(deals)]
    frame = pd.DataFrame(
        {
            "deal_id": ids,
            "pipeline_id": "new-business",
            "owner_id": rng.choice(["u1", "u2", "u3", "u4"], size=deals),
            "source": rng.choice(["web", "partner"], size=deals),
            "amount": rng.uniform(1_000, 5_000, deals).round(),
            "currency": "USD",
            "created_at": created,
            "closed_at": pd.Series(closed).where(is_closed),
            "outcome": pd.Series(kind).where(is_closed),
            "version": 1,
        }
    )
    if attributes is not None:
        frame["attributes"] = attributes
    frame["amount_base"] = frame["amount"]
    steps = [
        pd.DataFrame({"deal_id": ids, "stage_id": "lead", "entered_at": created, "seq": 0}),
        pd.DataFrame(
            {
                "deal_id": ids,
                "stage_id": "qualification",
                "entered_at": created + pd.Timedelta(days=3),
                "seq": 1,
            }
        ),
        pd.DataFrame({"deal_id": ids, "stage_id": kind, "entered_at": closed, "seq": 2})[is_closed],
    ]
    with store.transaction():
        store.insert("deals", frame)
        store.insert("stage_events", pd.concat(steps, ignore_index=True))
        store.set_meta("observed_until", end.isoformat())
    store.close()
    return root


def _abandoned_store(root: Path, *, deals: int = 600, seed: int = 4) -> Path:
    """Deals created over two years: 40% won and 35% lost 10 to 60 days after
    creation, 25% left open for good (never won, as in CRM exports where nobody
    closes a dead deal). Observed until 2025-01-01."""
    rng = np.random.default_rng(seed)
    created = (pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.uniform(0, 730, deals), "D")).floor(
        "s"
    )
    kind = rng.choice(["won", "lost", "open"], size=deals, p=[0.4, 0.35, 0.25])
    closed = (created + pd.to_timedelta(rng.uniform(10, 60, deals), "D")).floor("s")
    end = pd.Timestamp("2025-01-01")
    return write_deal_store(root, rng, created=created, closed=closed, kind=kind, end=end)


def test_a_deal_open_longer_than_any_win_is_not_won(tmp_path: Path) -> None:
    log = fw.open(_abandoned_store(tmp_path / "p"))
    deals = log.deals.to_pandas()
    won = deals[deals["outcome"] == "won"]
    longest = ((won["closed_at"] - won["created_at"]) / pd.Timedelta(days=1)).max()
    assert stalled_days(log) == pytest.approx(longest)
    # Open deals older than any win are labelled 0; younger open deals wait (censored).
    labels = outcome_labels(log, "won", horizon_days=90.0).set_index("deal_id")["label"]
    age = (log.now - deals.set_index("deal_id")["created_at"]) / pd.Timedelta(days=1)
    still_open = deals.set_index("deal_id")["outcome"].isna()
    stalled = still_open & (age > longest)
    assert stalled.sum() > 50
    assert (labels.reindex(stalled[stalled].index) == 0).all()
    assert not labels.index.isin(still_open[still_open & ~stalled].index).any()
    # Before a history twice that long, nothing open is labelled.
    early = log.as_of(pd.Timestamp("2023-03-15"))
    assert stalled_days(early) is None
    assert (
        outcome_labels(early, "won", horizon_days=90.0)["deal_id"]
        .isin(early.deals.filter(early.deals.outcome.notnull()).to_pandas()["deal_id"])
        .all()
    )
    # The score of a deal that has outlived every win is near 0, as the data says;
    # an open deal under 30 days old is won with a chance of 34% to 40% (of the
    # won and lost deals, those not closed yet, and the 25% left open).
    model = BoostedScorer(**FAST).fit(log)
    scores = model.score(log).to_frame().set_index("deal_id")["probability"]
    assert scores[stalled[stalled].index].mean() < 0.05
    young = still_open & (age < 30)
    assert young.sum() >= 10
    assert 0.2 < scores[young[young].index].mean() < 0.6


def test_an_evaluation_tests_only_outcomes_that_happened(tmp_path: Path) -> None:
    # The scorer learns stalled deals as not won; the test must not take that
    # assumption for an outcome: its labels are wins and losses only.
    log = fw.open(_abandoned_store(tmp_path / "p"))
    result = fw.evaluate_scorers(log, model=BoostedScorer(**FAST), test_snapshots=6)
    tested = result.predictions["deal_id"].unique()
    outcome = log.deals.to_pandas().set_index("deal_id")["outcome"]
    assert len(tested) > 20
    assert outcome.reindex(tested).notna().all()
