"""What every scorer shares: the scikit-learn contract over an event log.

A scorer is built with keyword hyperparameters only (`__init__` stores them
and does nothing else), learns with `fit(log) -> self` from the history known
at `log.now`, and answers `predict_proba(log_or_frame)` with one row per open
deal (or lead): `[P(not), P(yes)]`. Fitted attributes end in `_`; using a
scorer before `fit` raises `NotFittedError` saying so.

Subclasses implement `_fit_rows(data)` and `_predict_rows(frame)`; `fit`
builds the time-ordered training rows once, and `fit_data` lets several
scorers share them (evaluation fits four models on the same rows).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from funnelwise.errors import FunnelwiseError, InputError
from funnelwise.log import EventLog
from funnelwise.process import Process
from funnelwise.progressing import ProgressCallback
from funnelwise.scoring.features import (
    ATTRIBUTE_PREFIX,
    TARGETS,
    attribute_keys,
    feature_columns,
    features,
    units_of,
)
from funnelwise.scoring.labels import (
    StageRow,
    TrainingData,
    check_target,
    process_stages,
    require_outcomes,
    training_data,
)
from funnelwise.scoring.reasons import top_reasons
from funnelwise.scoring.result import Scores

# A category seen fewer times than this in training is treated as unknown.
MIN_CATEGORY_COUNT = 5
MAX_CATEGORIES = 60
# An attribute present LEAK_RATIO times as often in one outcome as in the other
# (and in at least LEAK_MIN_SHARE of that outcome's rows) was most likely written
# at the outcome, as CRM exports often do.
LEAK_RATIO = 10.0
# A model that learned from outcomes more than this many days before the scoring
# date misses a quarter of what happened since: the scores say so.
STALE_DAYS = 90
LEAK_MIN_SHARE = 0.05
# An attribute is read as a number when at least NUMERIC_SHARE of its non-empty
# training values parse as numbers and it takes more than MIN_NUMERIC_LEVELS
# distinct ones (fewer read better as categories: a 1-to-5 rating, a year).
NUMERIC_SHARE = 0.95
MIN_NUMERIC_LEVELS = 10
# The reference values a numeric attribute's percentile is read against, at most.
MAX_REFERENCE_VALUES = 1001


class NotFittedError(FunnelwiseError, ValueError):
    """A scorer was used before `fit`."""

    exit_code = 6


@dataclass(frozen=True)
class Encoder:
    """Turns a feature frame into a float matrix: numeric columns, then categorical
    columns as category codes (NaN for missing or unseen values)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...]
    ) -> Encoder:
        """Learn the frequent categories of each categorical column."""
        cats = []
        for col in categorical:
            counts = frame[col].dropna().astype(str).value_counts()
            kept = counts[counts >= MIN_CATEGORY_COUNT].index[:MAX_CATEGORIES]
            cats.append(tuple(sorted(str(v) for v in kept)))
        return cls(numeric, categorical, tuple(cats))

    @property
    def names(self) -> tuple[str, ...]:
        """Column names of the matrix, in order."""
        return (*self.numeric, *self.categorical)

    @property
    def categorical_indices(self) -> list[int]:
        """Matrix columns that hold category codes."""
        return list(range(len(self.numeric), len(self.names)))

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The float matrix of a feature frame (missing columns are all NaN)."""
        n = len(frame)
        out = np.full((n, len(self.names)), np.nan)
        for j, col in enumerate(self.numeric):
            if col in frame.columns:
                out[:, j] = pd.to_numeric(frame[col], errors="coerce").to_numpy(float)
        for k, (col, cats) in enumerate(zip(self.categorical, self.categories, strict=True)):
            if col in frame.columns and cats:
                values = frame[col].astype("string").astype(object)
                codes = pd.Categorical(values, categories=list(cats)).codes.astype(float)
                codes[codes < 0] = np.nan
                out[:, len(self.numeric) + k] = codes
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "categories": [list(c) for c in self.categories],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Encoder:
        """Rebuild from `to_dict`."""
        return cls(
            tuple(data["numeric"]),
            tuple(data["categorical"]),
            tuple(tuple(c) for c in data["categories"]),
        )


def numeric_attribute_keys(frame: pd.DataFrame, keys: Sequence[str]) -> tuple[str, ...]:
    """The attribute keys whose `attr_<key>` values in `frame` are numbers: at least
    NUMERIC_SHARE of the non-empty ones parse as numbers, with more than
    MIN_NUMERIC_LEVELS distinct values."""
    out = []
    for key in keys:
        col = f"{ATTRIBUTE_PREFIX}{key}"
        if col not in frame.columns:
            continue
        text = frame[col].dropna().astype(str).str.strip()
        text = text[text != ""]
        if text.empty:
            continue
        values = pd.to_numeric(text, errors="coerce")
        share = float(values.notna().mean())
        if share >= NUMERIC_SHARE and values.nunique() > MIN_NUMERIC_LEVELS:
            out.append(key)
    return tuple(out)


def attribute_reference(
    frame: pd.DataFrame, keys: Sequence[str], id_column: str
) -> dict[str, tuple[float, ...]]:
    """Per numeric attribute key, the sorted values of the training units (each unit's
    latest row), thinned to MAX_REFERENCE_VALUES quantiles: what a value's
    percentile is read against ("more than 80% of deals")."""
    last = frame.drop_duplicates(id_column, keep="last") if id_column in frame else frame
    out = {}
    for key in keys:
        col = f"{ATTRIBUTE_PREFIX}{key}"
        values = np.sort(pd.to_numeric(last[col], errors="coerce").dropna().to_numpy(float))
        if len(values) > MAX_REFERENCE_VALUES:
            grid = np.linspace(0.0, 1.0, MAX_REFERENCE_VALUES)
            values = np.quantile(values, grid, method="inverted_cdf")
        out[key] = tuple(float(v) for v in values)
    return out


def leaky_columns(
    frame: pd.DataFrame,
    columns: Sequence[str],
    *,
    open_units: int = 0,
    open_presence: Mapping[str, float] | None = None,
) -> tuple[str, ...]:
    """Columns recorded at the outcome: filled in (almost) only for one outcome, or
    for decided rows but (almost) never for units still undecided.

    With a and b the shares of positive and negative rows that have a value,
    the column is a leak, not a predictor, when a ≥ LEAK_RATIO·b (and
    a ≥ LEAK_MIN_SHARE) or the other way round. With s the share of all rows
    that have a value and o its share among the `open_units` undecided units
    (`open_presence`), it is a leak when s ≥ LEAK_RATIO·o and s ≥
    LEAK_MIN_SHARE, provided the undecided units are enough to expect
    MIN_CATEGORY_COUNT values among them at the share s. Such a column
    (a close reason, a signed-contract date) tells the outcome in training and
    is empty for every deal being scored.
    """
    if frame.empty:
        return ()
    pos = (frame["label"] == 1).to_numpy()
    leaky = []
    for col in columns:
        present = frame[col].notna().to_numpy()
        if pos.any() and not pos.all():
            a, b = float(present[pos].mean()), float(present[~pos].mean())
            if max(a, b) >= LEAK_MIN_SHARE and max(a, b) >= LEAK_RATIO * min(a, b):
                leaky.append(col)
                continue
        s = float(present.mean())
        o = (open_presence or {}).get(col)
        enough = o is not None and s * open_units >= MIN_CATEGORY_COUNT
        if enough and s >= LEAK_MIN_SHARE and s >= LEAK_RATIO * (o or 0.0):
            leaky.append(col)
    return tuple(leaky)


def _stage_names(rows: Sequence[tuple[str, str]], twice: set[str]) -> list[str]:
    """Each stage's name, with its id where the name alone would not tell it apart."""
    return [f"{name} [{sid}]" if name in twice and name != sid else name for sid, name in rows]


def stage_changes(trained: Sequence[StageRow], process: Process) -> str | None:
    """How the open stages a model was trained under differ from `process`'s, as one
    warning sentence with the fix; None when each pipeline has the same stage ids in
    the same order, or when the model recorded none (saved before stages were
    recorded, or one whose features read no stage).

    A stage renamed only in its `name` is the same stage: the features read its id.
    """
    now = process_stages(process)
    if not trained or [r[:2] for r in trained] == [r[:2] for r in now]:
        return None
    pipelines = list(dict.fromkeys(r[0] for r in (*trained, *now)))
    parts = []
    for pid in pipelines:
        before = [(sid, name) for p, sid, name in trained if p == pid]
        after = [(sid, name) for p, sid, name in now if p == pid]
        ids_before, ids_after = [r[0] for r in before], [r[0] for r in after]
        if ids_before == ids_after:
            continue
        removed = [r for r in before if r[0] not in ids_after]
        added = [r for r in after if r[0] not in ids_before]
        # "Qualification removed, Qualification added" would hide an id changed alone.
        twice = {n for _, n in removed} & {n for _, n in added}
        names_before = ", ".join(_stage_names(before, twice))
        names_after = ", ".join(_stage_names(after, twice))
        if not after:
            parts.append(f"pipeline {pid} ({names_before}) is no longer in process.yaml")
            continue
        if not before:
            parts.append(f"pipeline {pid} ({names_after}) is new in process.yaml")
            continue
        changes = [f"{n} removed" for n in _stage_names(removed, twice)]
        changes += [f"{n} added" for n in _stage_names(added, twice)]
        if [i for i in ids_before if i in ids_after] != [i for i in ids_after if i in ids_before]:
            changes.append("reordered")
        where = f"in pipeline {pid}, " if len(pipelines) > 1 else ""
        parts.append(
            f"{where}the model was trained on stages {names_before}; process.yaml now has "
            f"{names_after} ({', '.join(changes)})"
        )
    if not parts:
        # Only the pipelines' order differs: positions count within a pipeline.
        return None
    # A warning, not a refusal: the scores of deals in stages that kept their id and
    # place still mean what they meant.
    return (
        "; ".join(parts) + ". The model reads a deal's stage and its position in the "
        "pipeline, which may now mean something else: retrain with `funnelwise score train`"
    )


class Scorer:
    """Base of the scorers: time-ordered fitting on a log and probability prediction.

    Parameters (all keyword): `target` ('won': open deals → won; 'converted':
    open leads → converted within `horizon_days`), `snapshots` (past instants
    to learn from), `calibration_fraction` (the later share of the history
    kept for calibration), `min_outcomes` (the fewest positive and negative
    deals to learn from), `seed`.
    """

    kind: ClassVar[str] = "scorer"
    label: ClassVar[str] = "scorer"
    needs_outcomes: ClassVar[bool] = True

    def __init__(
        self,
        *,
        target: str = "won",
        snapshots: int = 32,
        calibration_fraction: float = 0.25,
        horizon_days: float = 90.0,
        min_outcomes: int = 20,
        seed: int = 0,
    ) -> None:
        self.target = target
        self.snapshots = snapshots
        self.calibration_fraction = calibration_fraction
        self.horizon_days = horizon_days
        self.min_outcomes = min_outcomes
        self.seed = seed

    # -- parameters ------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's keyword parameters and their values (`deep` is accepted
        for scikit-learn's `clone`; a scorer holds no nested estimators)."""
        names = [
            param.name
            for cls in type(self).__mro__
            if "__init__" in cls.__dict__ and issubclass(cls, Scorer)
            for param in inspect.signature(cls.__dict__["__init__"]).parameters.values()
            if param.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        return {name: getattr(self, name) for name in dict.fromkeys(names)}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters by name; returns self (unknown names raise)."""
        known = self.get_params()
        for name, value in params.items():
            if name not in known:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; it has: " + ", ".join(known)
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- fitting ---------------------------------------------------------------
    def training_data(
        self, log: EventLog, *, progress: ProgressCallback | None = None
    ) -> TrainingData:
        """The labelled, time-split snapshot rows this scorer would fit on."""
        target = check_target(self.target)
        table = units_of(log, target)
        return training_data(
            log,
            target,
            snapshots=self.snapshots,
            calibration_fraction=self.calibration_fraction,
            horizon_days=self.horizon_days,
            keys=attribute_keys(table),
            progress=progress,
        )

    def fit(self, log: EventLog, *, progress: ProgressCallback | None = None) -> Self:
        """Learn from the history known at `log.now`; returns self.

        Raises NotEnoughDataError (with the counts and the minimum) when too
        few deals (or leads) have each outcome.
        """
        return self.fit_data(self.training_data(log, progress=progress))

    def fit_data(self, data: TrainingData) -> Self:
        """Learn from prepared training rows (see `training_data`); returns self."""
        check_target(self.target)
        if data.target != self.target:
            raise ValueError(f"rows are for target {data.target!r}, scorer for {self.target!r}")
        counts = data.counts()
        if self.needs_outcomes:
            require_outcomes(
                counts,
                slice_name="train",
                minimum=self.min_outcomes,
                target=self.target,
                split=data.split,
            )
        rows = pd.concat([data.train, data.calibration])
        leaky = leaky_columns(
            rows,
            [f"{ATTRIBUTE_PREFIX}{k}" for k in data.keys],
            open_units=data.open_units,
            open_presence=data.open_presence,
        )
        self.dropped_keys_ = tuple(c.removeprefix(ATTRIBUTE_PREFIX) for c in leaky)
        self.keys_ = tuple(k for k in data.keys if k not in self.dropped_keys_)
        self.numeric_keys_ = numeric_attribute_keys(rows, self.keys_)
        self.attribute_reference_ = attribute_reference(
            rows, self.numeric_keys_, TARGETS[self.target].id_column
        )
        self.split_ = data.split
        self.stages_ = data.stages
        self.trained_as_of_ = data.split.labels_until
        self.counts_ = counts
        numeric, categorical = feature_columns(self.target, self.keys_, self.numeric_keys_)
        self._fit_rows(data, numeric, categorical)
        return self

    def _fit_rows(
        self, data: TrainingData, numeric: tuple[str, ...], categorical: tuple[str, ...]
    ) -> None:
        raise NotImplementedError

    # -- predicting --------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "trained_as_of_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call .fit(log) first"
            )

    def features(self, log: EventLog) -> pd.DataFrame:
        """The feature frame of the open deals (or leads) at `log.now`, as this scorer
        reads it (rates from its training window only)."""
        self._check_fitted()
        if log.now < self.trained_as_of_:
            raise InputError(
                f"this {type(self).__name__} learned from outcomes up to "
                f"{self.trained_as_of_}; scoring the log as of {log.now} would use what was "
                "not known then. Fit one on the log as of that date"
            )
        return features(
            log,
            self.target,
            horizon_days=self.horizon_days,
            rates_until=self.trained_as_of_,
            keys=self.keys_,
        )

    def predict_proba(self, X: EventLog | pd.DataFrame) -> np.ndarray:
        """Probabilities `[P(not), P(yes)]`, one row per open unit of the log at its
        `now` (or per row of a feature frame from `features`)."""
        self._check_fitted()
        frame = X if isinstance(X, pd.DataFrame) else self.features(X)
        p = np.clip(self._predict_rows(frame), 0.0, 1.0) if len(frame) else np.zeros(0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: EventLog | pd.DataFrame) -> np.ndarray:
        """1 where the probability is at least one half, else 0 (as `predict_proba`)."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    @property
    def classes_(self) -> np.ndarray:
        """The classes of `predict_proba`'s columns: 0 (not), 1 (won or converted)."""
        self._check_fitted()
        return np.array([0, 1])

    def _predict_rows(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def contributions(self, frame: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]] | None:
        """Per row and feature, how much each feature moved the score (None: not known)."""
        return None

    def score(self, log: EventLog, *, top: int = 3, model_id: str | None = None) -> Scores:
        """The open deals (or leads) at `log.now` with their probability and top reasons,
        most likely first."""
        frame = self.features(log)
        key = TARGETS[self.target].id_column
        p = self.predict_proba(frame)[:, 1]
        out = pd.DataFrame({key: frame[key] if len(frame) else [], "probability": p})
        contrib = self.contributions(frame) if len(frame) else None
        if contrib is not None:
            reasons = top_reasons(
                frame,
                contrib[0],
                contrib[1],
                top=top,
                reference=getattr(self, "attribute_reference_", {}),
                unit="deals" if self.target == "won" else "leads",
            )
            out = pd.concat([out, reasons.reset_index(drop=True)], axis=1)
        out = out.sort_values(["probability", key], ascending=[False, True], kind="stable")
        meta = {
            "as_of": log.now,
            "target": self.target,
            "unit": "deals" if self.target == "won" else "leads",
            "id_column": key,
            "model": self.kind,
            "model_id": model_id,
            "trained_as_of": self.trained_as_of_,
            "open": len(out),
        }
        age = (log.now - pd.Timestamp(self.trained_as_of_)) / pd.Timedelta(days=1)
        if age > STALE_DAYS:
            # The command trains `won` unless told: a lead model needs its target named.
            flag = "" if self.target == "won" else f" --target {self.target}"
            meta["note"] = (
                f"the model learned from outcomes up to {self.trained_as_of_:%Y-%m-%d}, "
                f"{age:.0f} days before {log.now:%Y-%m-%d}: what happened since is not in "
                f"it; run `funnelwise score train{flag}` to refresh it"
            )
        changed = stage_changes(self.stages_, log.process)
        if changed:
            meta["warning"] = changed
        return Scores({"scores": out.reset_index(drop=True)}, meta)

    # -- saving (see models.scorer_to_json) ------------------------------------------
    def _fitted_dict(self) -> dict[str, Any]:
        return {}

    def _load_fitted(self, fitted: dict[str, Any]) -> None:
        return None
