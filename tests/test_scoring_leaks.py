"""Information recorded at the outcome never reaches a score: attributes written at
the close, and deals that stay open longer than any deal took to close."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funnelwise as fw
from funnelwise.scoring import BoostedScorer
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
