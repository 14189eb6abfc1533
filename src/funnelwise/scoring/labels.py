"""Outcome labels and time-ordered splits for scoring.

A scoring row is an open deal (or lead) as known at a past instant, with the
outcome it went on to have. Two rules keep the rows honest:

- Features come from `log.as_of(t)`, labels from a later cut `log.as_of(L)`,
  and a deal still open at `L` has no label yet: it is censored and left out,
  never counted as lost, unless it has been open longer than any deal took to
  be won, in a history at least twice that long (`stalled_days`): then a
  scorer learns it as not won (CRM exports keep many such deals open that
  nobody will close). That is an assumption, so an evaluation does not test
  against it: its test labels are outcomes that happened (won against lost).
  A lead is negative only once its horizon has passed (or it was disqualified).
- Time orders everything. A model is fitted on a log cut at its training
  instant; its calibration uses later snapshots of other deals; evaluation
  uses deals created after the first test deal's start, and the model being
  evaluated was fitted on the log as of that start.

Snapshots stop `maturity_days` before the label cut, so most deals open at a
snapshot have closed by the time the label is read (the censoring that
remains favours quick outcomes; calibration on a later slice and the test on
later deals measure what is left of it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import ibis
import pandas as pd
from lifelines import KaplanMeierFitter

from funnelwise.errors import InputError, NotEnoughDataError
from funnelwise.log import EventLog, days_between
from funnelwise.process import Process
from funnelwise.progressing import ProgressCallback
from funnelwise.scoring.features import (
    TARGETS,
    attribute_presence,
    decided_leads,
    snapshot_features,
    undecided,
    units_of,
)

# Snapshots stop where this share of deals would have closed (Kaplan–Meier): later
# ones would mostly hold deals whose outcome is not known yet.
MATURITY_SHARE = 0.8


def check_target(target: str) -> str:
    """Return target if known, else raise InputError naming the targets."""
    if target not in TARGETS:
        raise InputError(
            f"target: {target!r} is not one of {', '.join(TARGETS)} "
            "(won: open deals → won; converted: open leads → converted)"
        )
    return target


def stalled_days(log: EventLog) -> float | None:
    """Days after creation past which a deal still open at `log.now` counts as not
    won: the longest any deal took from creation to a win, when the history up to
    `log.now` is at least twice that long (long enough to have seen slower wins,
    had there been any). None when it is shorter, or nothing was won."""
    d = log.deals
    won = d.filter(d.outcome == "won")
    longest = won.aggregate(x=days_between(won.created_at, won.closed_at).max()).to_pandas()
    first = d.created_at.min().execute()
    if longest.empty or pd.isna(longest["x"].iloc[0]) or first is None or pd.isna(first):
        return None
    days = float(longest["x"].iloc[0])
    span = (log.now - pd.Timestamp(first)) / pd.Timedelta(days=1)
    return days if span >= 2.0 * days else None


def outcome_labels(
    log: EventLog, target: str, *, horizon_days: float, stalled: bool = True
) -> pd.DataFrame:
    """Units whose outcome is known at `log.now`: id column and 0/1 `label`, by id.

    With `stalled`, deals open longer than `stalled_days` are labelled 0; other
    open deals are left out (censored)."""
    if target == "won":
        d = log.deals
        known = d.outcome.notnull()
        stall = stalled_days(log) if stalled else None
        if stall is not None:
            now = ibis.literal(log.now.to_pydatetime(), type="timestamp")
            known = known | (days_between(d.created_at, now) > stall)
        d = d.filter(known)
        units = d.select("deal_id", label=(d.outcome == "won").fill_null(False).cast("int64"))
    else:
        units = decided_leads(log, horizon_days).select("lead_id", label="positive")
    # In id order: the engine's order is not stable from run to run.
    return units.order_by(units.columns[0]).to_pandas()


def unit_starts(log: EventLog, target: str) -> pd.Series:
    """Creation instants of every deal (or lead) in the log, sorted."""
    table = units_of(log, target)
    starts = table.select("created_at").to_pandas()["created_at"]
    return starts.sort_values(kind="stable").reset_index(drop=True)


def maturity_days(log: EventLog, target: str, *, horizon_days: float) -> float:
    """Days after which most outcomes are known.

    For deals, the Kaplan–Meier time by which MATURITY_SHARE of deals have
    closed, open deals counting as censored (closed deals alone would
    understate it: the slow ones are still open); the longest observed time
    when the estimate never gets there. For leads, the horizon.
    """
    if target != "won":
        return float(horizon_days)
    d = log.deals
    now = ibis.literal(log.now.to_pydatetime(), type="timestamp")
    frame = d.select(
        days=days_between(d.created_at, d.closed_at.fill_null(now)),
        closed=d.closed_at.notnull(),
    ).to_pandas()
    if frame.empty:
        return 0.0
    days = frame["days"].clip(lower=0.0).to_numpy(float)
    km = KaplanMeierFitter().fit(days, event_observed=frame["closed"].to_numpy(bool))
    survival = km.survival_function_.iloc[:, 0]
    reached = survival[survival <= 1.0 - MATURITY_SHARE + 1e-12]
    return float(reached.index[0]) if len(reached) else float(days.max())


def snapshot_times(start: pd.Timestamp, end: pd.Timestamp, n: int) -> list[pd.Timestamp]:
    """`n` evenly spaced instants in (start, end], the last one at `end`."""
    if n < 1 or end <= start:
        return []
    step = (end - start) / n
    # Whole seconds: timestamps in the store carry no finer part worth keeping.
    return [(start + step * (i + 1)).floor("s") for i in range(n)]


def snapshot_grid(start: pd.Timestamp, end: pd.Timestamp, step_days: float) -> list[pd.Timestamp]:
    """Instants every `step_days` after `start`, up to `end`."""
    if step_days <= 0 or end <= start:
        return []
    n = int((end - start) / pd.Timedelta(days=step_days))
    step = pd.Timedelta(days=step_days)
    return [(start + step * (i + 1)).floor("s") for i in range(n)]


@dataclass(frozen=True)
class Split:
    """The instants that order a fit in time.

    `start` is the first deal's creation; training snapshots lie in
    (start, train_end], every `step_days`. Calibration deals are those created
    in (train_end, calibration_end], followed by snapshots through
    (train_end, labels_until]. Labels are read as of `labels_until` (the
    fitted log's now), `maturity_days` after `calibration_end`.
    """

    start: pd.Timestamp
    train_end: pd.Timestamp
    calibration_end: pd.Timestamp
    labels_until: pd.Timestamp
    maturity_days: float
    step_days: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain values, for results and the model registry."""
        return {
            "start": self.start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "calibration_end": self.calibration_end.isoformat(),
            "labels_until": self.labels_until.isoformat(),
            "maturity_days": self.maturity_days,
            "step_days": self.step_days,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Split:
        """Rebuild from `to_dict`."""

        def at(key: str) -> pd.Timestamp:
            return pd.Timestamp(str(data[key]))

        return cls(
            start=at("start"),
            train_end=at("train_end"),
            calibration_end=at("calibration_end"),
            labels_until=at("labels_until"),
            maturity_days=float(str(data["maturity_days"])),
            step_days=float(str(data.get("step_days", 0.0))),
        )


def fit_split(
    log: EventLog, target: str, *, calibration_fraction: float, horizon_days: float
) -> Split:
    """Split the history known at `log.now` into a training and a later calibration slice.

    Raises NotEnoughDataError when the history is shorter than the time
    outcomes take to be known.
    """
    starts = unit_starts(log, target)
    unit = "deals" if target == "won" else "leads"
    if starts.empty:
        raise NotEnoughDataError(f"no {unit} in the log; a score needs closed {unit} to learn from")
    start = pd.Timestamp(starts.iloc[0])
    end = log.now
    maturity = maturity_days(log, target, horizon_days=horizon_days)
    # Keep at least half of the history for snapshots, whatever the cycle length.
    maturity = min(maturity, (end - start).total_seconds() / 86400.0 / 2.0)
    gap = pd.Timedelta(days=maturity).floor("s")
    usable = end - gap
    if usable <= start:
        raise NotEnoughDataError(
            f"the history from {start} to {end} is too short to learn {target!r}: "
            f"outcomes take about {maturity:.0f} days to be known"
        )
    train_end = (start + (usable - start) * (1.0 - calibration_fraction)).floor("s")
    return Split(
        start=start,
        train_end=train_end,
        calibration_end=usable,
        labels_until=end,
        maturity_days=maturity,
    )


def labelled_snapshots(
    log: EventLog,
    target: str,
    times: list[pd.Timestamp],
    *,
    labels_until: pd.Timestamp,
    horizon_days: float,
    rates_until: pd.Timestamp | None = None,
    keys: tuple[str, ...] = (),
    stalled: bool = True,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Snapshot rows (features as of each instant) with the 0/1 `label` known at
    `labels_until`; rows without a known outcome are left out (censored). Stalled
    deals count as not won with `stalled` (see `outcome_labels`)."""
    if not times:
        return pd.DataFrame()
    cut = log.as_of(labels_until)
    rows = snapshot_features(
        cut,
        target,
        times,
        horizon_days=horizon_days,
        rates_until=rates_until,
        keys=keys,
        progress=progress,
    )
    if rows.empty:
        return rows
    labels = outcome_labels(cut, target, horizon_days=horizon_days, stalled=stalled)
    key = TARGETS[target].id_column
    return rows.merge(labels, on=key, how="inner").reset_index(drop=True)


# (pipeline_id, stage_id, name) of an open stage.
StageRow = tuple[str, str, str]


def process_stages(process: Process) -> tuple[StageRow, ...]:
    """(pipeline_id, stage_id, name) of every open stage, pipeline by pipeline, in
    process order: what a deal's stage and stage position mean."""
    return tuple((p.id, s.id, s.label) for p in process.pipelines for s in p.stages)


@dataclass(frozen=True)
class TrainingData:
    """Rows to fit on: `train` (for the model) and `calibration` (a later slice).

    Calibration rows are deals created after the last training snapshot, so
    the calibrator sees the model's error on deals it has not learned, as a
    test would. `open_units` and `open_presence` describe the deals (or leads)
    with no outcome at the end of observation: how many, and per `attr_<key>`
    column the share that has a value (see `base.leaky_columns`). `stages`: the
    process's open stages the deal rows were built under (`process_stages`;
    empty for leads, whose features read no stage).
    """

    target: str
    split: Split
    train: pd.DataFrame
    calibration: pd.DataFrame
    keys: tuple[str, ...]
    open_units: int = 0
    open_presence: dict[str, float] = field(default_factory=dict)
    stages: tuple[StageRow, ...] = ()

    def counts(self) -> dict[str, int]:
        """Rows and distinct units by label in each slice."""
        key = TARGETS[self.target].id_column
        out: dict[str, int] = {}
        for name, frame in (("train", self.train), ("calibration", self.calibration)):
            labels = frame["label"] if len(frame) else pd.Series(dtype=int)
            out[f"{name}_rows"] = len(frame)
            out[f"{name}_positive"] = (
                int(frame.loc[labels == 1, key].nunique()) if len(frame) else 0
            )
            out[f"{name}_negative"] = (
                int(frame.loc[labels == 0, key].nunique()) if len(frame) else 0
            )
        return out


def training_data(
    log: EventLog,
    target: str,
    *,
    snapshots: int,
    calibration_fraction: float,
    horizon_days: float,
    keys: tuple[str, ...] = (),
    progress: ProgressCallback | None = None,
) -> TrainingData:
    """Labelled snapshots of the history known at `log.now`, split in time.

    `snapshots` instants are spread evenly from the first deal's creation to
    `maturity_days` before `log.now`; the earlier (1 − calibration_fraction)
    of them are for training. Calibration follows the deals created in the
    rest of that span, at the same spacing, until `log.now`. Labels are read
    as of `log.now`. Owner and source rates come from the past of each
    snapshot only.
    """
    split = fit_split(
        log, target, calibration_fraction=calibration_fraction, horizon_days=horizon_days
    )
    step = (split.calibration_end - split.start) / pd.Timedelta(days=1) / max(snapshots, 1)
    split = replace(split, step_days=step)
    times = snapshot_times(split.start, split.calibration_end, snapshots)
    train_times = [t for t in times if t <= split.train_end]
    cal_times = snapshot_grid(split.train_end, split.labels_until, step)
    train = labelled_snapshots(
        log,
        target,
        train_times,
        labels_until=split.labels_until,
        horizon_days=horizon_days,
        keys=keys,
        progress=progress,
    )
    cal = labelled_snapshots(
        log,
        target,
        cal_times,
        labels_until=split.labels_until,
        horizon_days=horizon_days,
        keys=keys,
        progress=progress,
    )
    key = TARGETS[target].id_column
    if len(cal):
        later = units_created_between(log, target, split.train_end, split.calibration_end)
        cal = cal[cal[key].isin(later)].reset_index(drop=True)
    # Attributes are stored as the data has them at its end, not as of each instant:
    # the units still undecided then show what an attribute looks like before the outcome.
    whole = replace(log, cutoff=None)
    open_units, presence = attribute_presence(undecided(whole, target), keys) if keys else (0, {})
    stages = process_stages(log.process) if target == "won" else ()
    return TrainingData(target, split, train, cal, keys, open_units, presence, stages)


def units_created_between(
    log: EventLog, target: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.Series:
    """Ids of the deals (or leads) created in (start, end]."""
    table = units_of(log, target)
    key = TARGETS[target].id_column
    kept = table.filter((table.created_at > start) & (table.created_at <= end))
    return kept.select(key).to_pandas()[key]


def require_outcomes(
    counts: dict[str, int],
    *,
    slice_name: str,
    minimum: int,
    target: str,
    split: Split | None = None,
) -> None:
    """Raise NotEnoughDataError unless a slice has `minimum` positive and negative units
    (the message names the slice's dates when `split` is given)."""
    pos, neg = counts[f"{slice_name}_positive"], counts[f"{slice_name}_negative"]
    if pos >= minimum and neg >= minimum:
        return
    what = ("won", "lost or no decision") if target == "won" else ("converted", "not converted")
    unit = "deals" if target == "won" else "leads"
    span = ""
    if split is not None:
        lo, hi = (
            (split.start, split.train_end)
            if slice_name == "train"
            else (split.train_end, split.calibration_end)
        )
        span = f" ({unit} created {lo:%Y-%m-%d} to {hi:%Y-%m-%d})"
    raise NotEnoughDataError(
        f"too few outcomes to learn {target!r} in the {slice_name} slice{span}: {pos} "
        f"{what[0]} and {neg} {what[1]} {unit}; at least {minimum} of each are needed. More "
        "history with outcomes in that slice helps (the slices follow the order of time), "
        "or accept a less certain model with a lower minimum (`--min-outcomes` "
        "on the command line, `min_outcomes=` in Python); the rule score needs no "
        "outcomes (`funnelwise score apply --model rule`)."
    )
