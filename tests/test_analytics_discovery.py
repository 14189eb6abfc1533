"""Directly-follows graph and variants: by hand on the tiny log, and against a plain
pandas computation on BPI Challenge 2012 (also with the stored rows shuffled)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funnelwise as fw
from analytics_data import load_tables
from conftest import shared_data
from funnelwise.analytics import case_durations

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_variants_and_edges_by_hand(tiny_log: fw.EventLog) -> None:
    r = fw.discovery(tiny_log)
    v = r.variants.set_index("variant")
    assert v.deals.to_dict() == {
        "lead,no-decision": 1,
        "lead,qualification": 1,  # D4: the tie at 02-01 ordered by seq
        "lead,qualification,lost": 1,
        "lead,qualification,needs-assessment,qualification": 1,
        "lead,qualification,proposal,won": 1,
    }
    assert v.share.tolist() == [0.2] * 5
    assert v.loc["lead,qualification,proposal,won", "median_days"] == 31
    e = r.edges.set_index(["source", "target"])
    # lead -> qualification: D1 4 days, D2 8, D3 2, D4 0.
    lq = e.loc[("lead", "qualification")]
    assert (lq["count"], lq.deals, lq.median_days, lq.mean_days) == (4, 4, 3, 3.5)
    assert e.loc[("needs-assessment", "qualification"), "median_days"] == 12
    assert e.loc[("(start)", "lead"), "count"] == 5
    assert e.loc[("qualification", "(end)"), "count"] == 2  # D3 and D4, still open
    nodes = r.nodes.set_index("stage_id")
    assert (nodes.loc["qualification", "entries"], nodes.loc["qualification", "deals"]) == (5, 4)
    assert len(fw.discovery(tiny_log, top=2).variants) == 2


def _reference(events: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The same analyses written plainly in pandas, from the raw rows."""
    ev = events.sort_values(["deal_id", "entered_at", "seq"], kind="mergesort")
    g = ev.groupby("deal_id", sort=False)
    ev = ev.assign(
        target=g["stage_id"].shift(-1),
        days=(g["entered_at"].shift(-1) - ev["entered_at"]).dt.total_seconds() / 86400,
    )
    steps = ev.dropna(subset=["target"]).rename(columns={"stage_id": "source"})
    edges = steps.groupby(["source", "target"]).agg(
        count=("deal_id", "size"), deals=("deal_id", "nunique"), median_days=("days", "median")
    )
    cases = g.agg(
        variant=("stage_id", ",".join),
        first=("entered_at", "min"),
        last=("entered_at", "max"),
    )
    cases["days"] = (cases["last"] - cases["first"]).dt.total_seconds() / 86400
    variants = cases.groupby("variant").agg(deals=("days", "size"), median_days=("days", "median"))
    return {"edges": edges, "variants": variants, "cases": cases}


@pytest.fixture(scope="module")
def bpi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fw.EventLog]:
    xes = pytest.importorskip("funnelwise.ingest.xes", reason="needs the XES importer")
    data = shared_data("bpic2012", "BPI_Challenge_2012.xes.gz")
    root = tmp_path_factory.mktemp("bpi")
    shutil.copy(EXAMPLES / "bpic2012" / "process.yaml", root / "process.yaml")
    from funnelwise.project import Project

    project = Project(root)
    store = project.open_store(create=True)
    xes.import_xes(store, project.load_process(), data, xes=xes.XesOptions("AMOUNT_REQ"))
    store.close()
    log = fw.open(root)
    yield log
    log.store.close()


@pytest.mark.shared_data
def test_discovery_equals_plain_pandas_on_bpi_2012(bpi: fw.EventLog) -> None:
    raw = bpi.store.table("stage_events").to_pandas()
    ref = _reference(raw.sample(frac=1.0, random_state=11))
    r = fw.discovery(bpi)
    edges = r.edges[~r.edges.source.isin(["(start)"]) & ~r.edges.target.isin(["(end)"])]
    edges = edges.set_index(["source", "target"]).sort_index()
    expected = ref["edges"].sort_index()
    assert edges.index.tolist() == expected.index.tolist()
    assert edges["count"].tolist() == expected["count"].tolist()  # no tolerance on counts
    assert edges.deals.tolist() == expected.deals.tolist()
    np.testing.assert_allclose(edges.median_days, expected.median_days, rtol=1e-9, atol=1e-12)
    variants = r.variants.set_index("variant").sort_index()
    assert variants.deals.to_dict() == ref["variants"].deals.to_dict()
    np.testing.assert_allclose(
        variants.median_days, ref["variants"].median_days.sort_index(), rtol=1e-9, atol=1e-12
    )
    cases = case_durations(bpi).to_pandas().set_index("deal_id").sort_index()
    np.testing.assert_allclose(cases.days, ref["cases"].days.sort_index(), rtol=1e-9, atol=1e-12)
    assert int(variants.deals.sum()) == 13087


@pytest.mark.shared_data
def test_discovery_ignores_the_order_rows_are_stored_in(bpi: fw.EventLog) -> None:
    before = fw.discovery(bpi)
    raw = bpi.store.table("stage_events").to_pandas()
    with bpi.store.transaction():
        bpi.store.replace("stage_events", raw.sample(frac=1.0, random_state=5))
    after = fw.discovery(bpi)
    for name in ("variants", "edges", "nodes"):
        pd.testing.assert_frame_equal(before.frame(name), after.frame(name))


def test_small_variant_shares_print_as_their_percent() -> None:
    """A path of 2 deals in 600 is 0.3% of them, not '0.0%' (as if no deal took it)."""
    synth = pytest.importorskip("funnelwise.synth", reason="needs funnelwise.synth")
    data = synth.generate(deals=600, seed=3)
    log = load_tables(data.tables, data.observed_until.isoformat())
    try:
        r = fw.discovery(log)
    finally:
        log.store.close()
    shown = r.display_frame("variants").share  # the first rows, as printed
    shares = r.variants.share[shown.index]
    small = shares[(shares >= 0.0005) & (shares < 0.005)]
    assert len(small) > 0  # the case this test is about is there
    assert shown[small.index].tolist() == [f"{100 * s:.1f}%" for s in small]
    assert all(cell != "0.0%" for cell in shown)
