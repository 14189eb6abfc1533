"""The predictive process monitoring protocol: XES reading, labels, the time split,
prefix lengths and the length-weighted AUC, by hand and on a planted signal."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from funnelwise.scoring.ppm import (
    CONFIGS,
    ENSEMBLE,
    _Config,
    _fit,
    _inner_split,
    _members,
    _predict,
    _prepare,
    _Prepared,
    monitoring_benchmark,
    read_xes_events,
    weighted_auc,
)

XES = """<?xml version="1.0" encoding="UTF-8" ?>
<log>
  <trace>
    <string key="concept:name" value="c1"/>
    <string key="AMOUNT_REQ" value="5000"/>
    <event>
      <string key="org:resource" value="112"/>
      <string key="lifecycle:transition" value="COMPLETE"/>
      <string key="concept:name" value="A_SUBMITTED"/>
      <date key="time:timestamp" value="2011-10-01T00:38:44.546+02:00"/>
    </event>
    <event>
      <string key="concept:name" value="W_Call"/>
      <string key="lifecycle:transition" value="START"/>
      <date key="time:timestamp" value="2011-10-01T11:36:46.437+02:00"/>
    </event>
  </trace>
  <trace>
    <string key="concept:name" value="c2"/>
    <event>
      <string key="concept:name" value="O_ACCEPTED"/>
      <string key="lifecycle:transition" value="COMPLETE"/>
      <date key="time:timestamp" value="2011-11-01T09:00:00.000+01:00"/>
    </event>
  </trace>
</log>
"""


def test_read_xes_events(tmp_path: Path) -> None:
    path = tmp_path / "log.xes.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(XES)
    frame = read_xes_events(path, case_attributes=["AMOUNT_REQ"]).to_pandas()
    assert list(frame["case_id"]) == ["c1", "c1", "c2"]
    assert list(frame["activity"]) == ["A_SUBMITTED", "W_Call", "O_ACCEPTED"]
    assert list(frame["lifecycle"]) == ["COMPLETE", "START", "COMPLETE"]
    assert frame["resource"].iloc[0] == "112" and frame["resource"].iloc[1] is None
    # Naive UTC: +02:00 in October, +01:00 in November.
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2011-09-30 22:38:44.546")
    assert frame["timestamp"].iloc[2] == pd.Timestamp("2011-11-01 08:00:00")
    assert list(frame["AMOUNT_REQ"]) == ["5000", "5000", None]
    assert list(frame["position"]) == [0, 1, 2]


def test_weighted_auc_by_hand() -> None:
    # Length 1: 4 cases, perfectly ranked (AUC 1); length 2: 2 cases, inverted (AUC 0);
    # length 3: one class only, left out. Weighted: (4·1 + 2·0) / 6.
    y = np.array([1, 1, 0, 0, 1, 0, 1])
    p = np.array([0.9, 0.8, 0.2, 0.1, 0.3, 0.7, 0.5])
    k = np.array([1, 1, 1, 1, 2, 2, 3])
    auc, table = weighted_auc(y, p, k)
    assert auc == pytest.approx(4 / 6)
    assert list(table["cases"]) == [4, 2, 1]
    assert np.isnan(table["auc"].iloc[2])


def _planted_log(n: int = 400, seed: int = 0) -> pa.Table:
    """Cases of 6–12 events, one a day; the third event says the outcome 80% of the time."""
    rng = np.random.default_rng(seed)
    rows = []
    t0 = pd.Timestamp("2020-01-01")
    for c in range(n):
        outcome = ["O_ACCEPTED", "O_DECLINED", "O_CANCELLED"][rng.integers(3)]
        hint = outcome if rng.random() < 0.8 else ["O_ACCEPTED", "O_CANCELLED"][rng.integers(2)]
        length = int(rng.integers(6, 13))
        start = t0 + pd.Timedelta(hours=6 * c)
        names = ["A_SUBMITTED", "W_Check", f"W_Hint_{hint}"]
        names += ["W_Call"] * (length - 5) + ["O_SENT", outcome]
        for i, name in enumerate(names):
            rows.append((f"c{c:04d}", name, "COMPLETE", start + pd.Timedelta(days=i), "r1", "1000"))
    # A case whose last O_ event is no outcome is left out.
    rows.append(("zz", "O_SENT", "COMPLETE", t0, "r1", "1000"))
    frame = pd.DataFrame(
        rows, columns=["case_id", "activity", "lifecycle", "timestamp", "resource", "AMOUNT_REQ"]
    )
    frame["position"] = np.arange(len(frame))
    return pa.Table.from_pandas(frame, preserve_index=False)


def _prepared(events: pa.Table) -> _Prepared:
    """The protocol's prefix rows and split, with the benchmark's settings."""
    return _prepare(
        events,
        outcomes=("O_ACCEPTED", "O_DECLINED", "O_CANCELLED"),
        static=("AMOUNT_REQ",),
        train_fraction=0.8,
        max_prefix=40,
        quantile=0.9,
    )


def test_protocol_split_and_prefix_lengths() -> None:
    frame = _planted_log().to_pandas()
    # The first case changes hands twice in its first four events: r1, r2, r2, r1.
    first = frame.index[frame["case_id"] == "c0000"]
    frame.loc[first[:4], "resource"] = ["r1", "r2", "r2", "r1"]
    # Work items taken up: the second event by r2, the fourth by r1 (any case of START).
    frame.loc[first[[1, 3]], "lifecycle"] = ["START", "start"]
    events = pa.Table.from_pandas(frame, preserve_index=False)
    prep = _prepared(events)
    rows = prep.rows
    assert "zz" not in set(rows["case_id"])
    assert prep.cases == {"train": 320, "test": 80}
    # Cases start 6 hours apart: the first test case is case 320.
    assert prep.split_at == pd.Timestamp("2020-01-01") + pd.Timedelta(hours=6 * 320)
    train, test = rows[rows["train"]], rows[~rows["train"]]
    assert train["timestamp"].max() < prep.split_at
    assert test["case_id"].min() == "c0320"
    # Positive cases are 6 to 12 events long: the 90th percentile rounds up to 12.
    assert set(prep.max_prefix.values()) == {12}
    # One order whatever the engine returns: by case, then prefix length.
    assert rows[["case_id", "event_nr"]].equals(
        rows[["case_id", "event_nr"]].sort_values(["case_id", "event_nr"], ignore_index=True)
    )
    c = rows[rows["case_id"] == "c0000"].sort_values("event_nr")
    assert list(c["event_nr"]) == list(range(1, len(c) + 1))
    assert c["elapsed_h"].iloc[2] == pytest.approx(48.0)
    assert list(c["handovers"].iloc[:5]) == [0, 1, 1, 2, 2]
    assert c["work_resource"].iloc[0] is None
    assert list(c["work_resource"].iloc[1:6]) == ["r2", "r2", "r1", "r1", "r1"]
    # The third event's type is visible from prefix 3 on, not before.
    assert c["ev_3"].isna().iloc[:2].all() and c["ev_3"].notna().iloc[2:].all()
    # 2020-01-01 was a Wednesday (Monday is 0); one event a day.
    assert list(c["weekday"].iloc[:3]) == [2, 3, 4]


def test_planted_signal_is_found_from_the_third_event() -> None:
    result = monitoring_benchmark(_planted_log(), num_threads=1)
    summary = result.summary.set_index("task")
    by = result.by_prefix
    accepted = by[by["task"] == "O_ACCEPTED"].set_index("prefix_length")
    # Nothing to go on before the hint; after it, the outcome is mostly known.
    assert accepted.loc[1, "auc"] < 0.7
    assert accepted.loc[3, "auc"] > 0.8
    assert summary.loc["O_ACCEPTED", "auc"] > 0.75
    assert (summary["brier"] < 0.25).all()
    assert set(summary["configuration"]) <= {c.name for c in CONFIGS} | {ENSEMBLE}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_every_candidate_finds_the_planted_signal(config: _Config) -> None:
    rows = _prepared(_planted_log()).rows
    rows = rows[rows["event_nr"] <= 3]
    train, test = rows[rows["train"]], rows[~rows["train"]]
    p = _predict(_fit(config, train, "O_ACCEPTED", seed=0, num_threads=1), test)
    _, table = weighted_auc(
        (test["outcome"] == "O_ACCEPTED").to_numpy(int), p, test["event_nr"].to_numpy()
    )
    by = table.set_index("prefix_length")["auc"]
    # Probabilities, no better than chance before the hint and far better at it.
    assert ((p > 0) & (p < 1)).all()
    assert by.loc[1] < 0.7 and by.loc[3] > 0.8


def test_the_ensemble_is_the_mean_of_the_tree_configurations() -> None:
    assert [c.name for c in _members(ENSEMBLE)] == ["aggregate", "aggregate+index"]
    assert [c.name for c in _members("logistic")] == ["logistic"]


def test_a_prefix_does_not_see_later_events() -> None:
    frame = _planted_log().to_pandas()
    base = _prepared(pa.Table.from_pandas(frame, preserve_index=False)).rows
    # Case c0100 is changed from its fourth event on: other steps, another resource,
    # an hour later; and other cases' events after its third event too
    case = frame["case_id"] == "c0100"
    third = frame.loc[case, "timestamp"].sort_values().iloc[2]
    # (its outcome event stays, or the case would lose its label).
    later_own = case & (frame["timestamp"] > third) & ~frame["activity"].str.startswith("O_")
    frame.loc[later_own, "activity"] = "W_Other"
    frame.loc[later_own, "resource"] = "r9"
    frame.loc[later_own, "timestamp"] += pd.Timedelta(hours=1)
    others = ~case & (frame["timestamp"] > third)
    frame.loc[others, "resource"] = "r7"
    frame.loc[others, "AMOUNT_REQ"] = frame.loc[others, "AMOUNT_REQ"].where(
        frame.loc[others, "case_id"] != "c0101", "9999"
    )
    changed = _prepared(pa.Table.from_pandas(frame, preserve_index=False)).rows
    features = [c for c in base.columns if c not in ("outcome", "train")]

    def prefixes(rows: pd.DataFrame) -> pd.DataFrame:
        c = rows[(rows["case_id"] == "c0100") & (rows["event_nr"] <= 3)]
        return c.sort_values("event_nr")[features].reset_index(drop=True)

    pd.testing.assert_frame_equal(prefixes(base), prefixes(changed))
    # The change itself is seen from the fourth prefix on (the test can fail).
    later = (base["case_id"] == "c0100") & (base["event_nr"] == 4)
    later_changed = (changed["case_id"] == "c0100") & (changed["event_nr"] == 4)
    assert base.loc[later, "last_ev"].iloc[0] != changed.loc[later_changed, "last_ev"].iloc[0]


def test_inner_slices_follow_the_protocol() -> None:
    rows = _prepared(_planted_log()).rows
    train = rows[rows["train"]]
    seen: set[str] = set()
    for lower, upper in ((0.4, 0.6), (0.6, 0.8), (0.8, 1.0)):
        early, valid = _inner_split(train, lower, upper)
        ids = set(valid["case_id"])
        # 320 training cases, 6 hours apart: the slice holds the cases at those shares.
        assert ids == {f"c{i:04d}" for i in range(int(lower * 320), int(upper * 320))}
        assert not ids & seen
        seen |= ids
        # The earlier cases only, cut at the slice's first event.
        assert set(early["case_id"]) == {f"c{i:04d}" for i in range(int(lower * 320))}
        assert early["timestamp"].max() < valid["timestamp"].min()


def test_several_inner_slices_choose_and_calibrate() -> None:
    slices = ((0.5, 0.75), (0.75, 1.0))
    result = monitoring_benchmark(_planted_log(), inner_slices=slices, num_threads=1)
    assert result.meta["inner_slices"] == [[0.5, 0.75], [0.75, 1.0]]
    summary = result.summary.set_index("task")
    # The planted hint is found whichever slices choose the configuration.
    assert summary.loc["O_ACCEPTED", "auc"] > 0.75
    assert summary["validation_auc"].between(0.5, 1.0).all()
    assert (summary["brier"] < 0.25).all()
