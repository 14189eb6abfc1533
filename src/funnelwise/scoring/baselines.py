"""The baselines every evaluation shows next to the model.

- `RuleScorer`: what a CRM administrator would configure. For deals, the
  process's own stage probability, raised by the exit criteria met so far
  (the BANT-style checklist and the required fields); for leads, points for
  engagement. It learns nothing, so it is available even when there are too
  few outcomes to train on.
- `NaiveBayesScorer`: the frequency model open-source CRMs ship for
  predictive lead scoring: per field value, how often it appeared among won
  and among lost records, multiplied under an independence assumption
  (Laplace smoothing).
- `LogisticScorer`: logistic regression on the same features as the model
  (numeric ones sign-log transformed and standardised, categories one-hot).

NB and logistic regression fit on the training and calibration rows
together: they have no calibration step of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import CategoricalNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from funnelwise.log import EventLog
from funnelwise.progressing import ProgressCallback
from funnelwise.scoring.base import Encoder, Scorer, leaky_columns
from funnelwise.scoring.features import ATTRIBUTE_PREFIX
from funnelwise.scoring.labels import Split, StageRow, TrainingData, check_target

# Weights of the deal rule score: stage probability, checklist, required fields.
RULE_WEIGHTS = {"stage_probability": 0.5, "checklist_share": 0.25, "fields_share": 0.25}
# Lead rule points saturate at this many activities (all / first week).
LEAD_ACTIVITY_CAP = 5.0
LEAD_EARLY_CAP = 3.0
# Equal-count bins of a numeric attribute, for naive Bayes.
NB_BINS = 10


def _rule_components(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """Per row, the rule's components in [0, 1] (NaN: not applicable)."""
    if target == "won":
        cols = {c: pd.to_numeric(frame[c], errors="coerce") for c in RULE_WEIGHTS}
        cols["stage_probability"] = cols["stage_probability"].fillna(0.0)
        return pd.DataFrame(cols, index=frame.index)
    return pd.DataFrame(
        {
            "activities": (frame["activities"] / LEAD_ACTIVITY_CAP).clip(upper=1.0),
            "early_activities": (frame["early_activities"] / LEAD_EARLY_CAP).clip(upper=1.0),
            "campaign": frame["campaign"].notna().astype(float),
        },
        index=frame.index,
    )


def _rule_weights(target: str) -> dict[str, float]:
    if target == "won":
        return RULE_WEIGHTS
    return {"activities": 0.5, "early_activities": 0.25, "campaign": 0.25}


# The rule's parts in words: none given ("the process gives no ..."), or the same on
# every row ("they all have the same ...").
RULE_PARTS = {
    "stage_probability": ("stage probabilities", "stage probability"),
    "checklist_share": ("exit-criteria checklist", "share of checklist items checked"),
    "fields_share": ("required fields", "share of required fields filled"),
    "activities": ("activities", "activity count"),
    "early_activities": ("first-week activities", "first-week activity count"),
    "campaign": ("campaigns", "campaign status"),
}


def _listed(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return " and ".join([", ".join(items[:-1]), items[-1]]) if len(items) > 1 else items[0]


class RuleScorer(Scorer):
    """A CRM-style rule score in [0, 1]; needs no outcomes to learn from.

    Deals: the weighted mean of the process's stage probability (weight 0.5),
    the share of due exit-criteria checklist items checked (0.25) and the
    share of due required fields filled (0.25), over the parts that apply.
    Leads: activities (0.5, saturating at 5), first-week activities (0.25,
    at 3) and a known campaign (0.25).
    """

    kind: ClassVar[str] = "rule"
    label: ClassVar[str] = "Rule score (process)"
    needs_outcomes: ClassVar[bool] = False

    def fit(self, log: EventLog, *, progress: ProgressCallback | None = None) -> Self:
        """Record the target and the instant; the rule learns nothing from outcomes."""
        check_target(self.target)
        now = log.now
        self.keys_ = ()
        self.dropped_keys_ = ()
        self.numeric_keys_: tuple[str, ...] = ()
        self.attribute_reference_: dict[str, tuple[float, ...]] = {}
        self.split_ = Split(now, now, now, now, 0.0)
        # The rule reads the process as it is when scoring: no stage can be out of date.
        self.stages_: tuple[StageRow, ...] = ()
        self.trained_as_of_ = now
        self.counts_: dict[str, int] = {}
        return self

    def _fit_rows(
        self, data: TrainingData, numeric: tuple[str, ...], categorical: tuple[str, ...]
    ) -> None:
        self.keys_ = ()
        self.numeric_keys_ = ()
        self.attribute_reference_ = {}

    def _predict_rows(self, frame: pd.DataFrame) -> np.ndarray:
        parts = _rule_components(frame, self.target)
        weights = pd.Series(_rule_weights(self.target))
        present = parts.notna()
        total = (parts.fillna(0.0) * weights).sum(axis=1)
        norm = (present * weights).sum(axis=1)
        return (total / norm.where(norm > 0)).fillna(0.0).to_numpy(float)

    def why_constant(self, frame: pd.DataFrame) -> str:
        """Why the rule gives every row of `frame` the same score: the parts the
        process does not give (no value on any row) and those equal on every row."""
        raw = frame.reindex(columns=list(RULE_WEIGHTS)) if self.target == "won" else None
        parts = _rule_components(frame, self.target)
        names = list(_rule_weights(self.target))
        absent = [c for c in names if raw is not None and raw[c].isna().all()]
        same = [c for c in names if c not in absent and parts[c].nunique(dropna=False) <= 1]
        said = []
        if absent:
            said.append("the process gives " + _listed(["no " + RULE_PARTS[c][0] for c in absent]))
        if same:
            said.append("they all have the same " + _listed([RULE_PARTS[c][1] for c in same]))
        return ", and ".join(said)

    def contributions(self, frame: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
        """Each part's weight times its distance from one half (above half raises the score)."""
        parts = _rule_components(frame, self.target)
        weights = pd.Series(_rule_weights(self.target))
        effect = ((parts - 0.5) * weights).fillna(0.0)
        return effect.to_numpy(float), tuple(parts.columns)


def _both(data: TrainingData) -> pd.DataFrame:
    return pd.concat([data.train, data.calibration], ignore_index=True)


def quantile_edges(values: pd.Series, bins: int) -> tuple[float, ...]:
    """The inner edges of `bins` equal-count bins of the numbers in `values` (fewer
    where values repeat)."""
    x = pd.to_numeric(values, errors="coerce").dropna().to_numpy(float)
    if len(x) == 0:
        return ()
    inner = np.quantile(x, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return tuple(float(v) for v in np.unique(inner))


def binned(values: pd.Series, edges: Sequence[float]) -> pd.Series:
    """Each number's bin as text ('bin 0' below the first edge ...), missing where
    the value is not a number."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(float)
    slot = np.searchsorted(np.asarray(edges, dtype=float), x, side="right")
    labels = [None if np.isnan(v) else f"bin {i}" for v, i in zip(x, slot, strict=True)]
    return pd.Series(labels, index=values.index, dtype=object)


class NaiveBayesScorer(Scorer):
    """Naive Bayes over field values (stage, source, product, region, owner, industry,
    attributes), as in the predictive lead scoring of open-source CRMs. Fields
    filled in only at the outcome are left out (see `base.leaky_columns`). A
    numeric attribute counts by its quantile bin among the training rows
    (NB_BINS equal-count bins)."""

    kind: ClassVar[str] = "naive_bayes"
    label: ClassVar[str] = "Naive Bayes (CRM-style)"

    def _fit_rows(
        self, data: TrainingData, numeric: tuple[str, ...], categorical: tuple[str, ...]
    ) -> None:
        raw = _both(data)
        self.bins_ = {
            c: quantile_edges(raw[c], NB_BINS) for c in numeric if c.startswith(ATTRIBUTE_PREFIX)
        }
        rows = self._binned(raw)
        # The owner is a field like any other, unless it is only filled in at the outcome.
        owner = ("owner_id",) if "owner_id" in rows.columns else ()
        fields = (*categorical, *self.bins_, *(c for c in owner if not leaky_columns(rows, owner)))
        self.encoder_ = Encoder.fit(rows, (), fields)
        y = rows["label"].to_numpy(int)
        self.prior_ = float(y.mean())
        self.nb_: CategoricalNB | None = None
        if fields:
            sizes = [len(c) + 1 for c in self.encoder_.categories]
            self.nb_ = CategoricalNB(alpha=1.0, min_categories=sizes).fit(self._codes(raw), y)

    def _binned(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame with each numeric attribute replaced by its quantile bin."""
        present = {c: e for c, e in getattr(self, "bins_", {}).items() if c in frame.columns}
        if not present:
            return frame
        return frame.assign(**{c: binned(frame[c], e) for c, e in present.items()})

    def _codes(self, frame: pd.DataFrame) -> np.ndarray:
        """Category codes with missing or unseen values in their own last bucket."""
        m = self.encoder_.matrix(self._binned(frame))
        unknown = np.array([len(c) for c in self.encoder_.categories], dtype=float)
        return np.where(np.isnan(m), unknown, m).astype(int)

    def _predict_rows(self, frame: pd.DataFrame) -> np.ndarray:
        if self.nb_ is None:
            return np.full(len(frame), self.prior_)
        return np.asarray(self.nb_.predict_proba(self._codes(frame))[:, 1], dtype=float)


def _signed_log(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def logistic_pipeline(
    n_numeric: int, categorical: Sequence[int], *, c: float, seed: int
) -> Pipeline:
    """L2 logistic regression over an `Encoder` matrix: the first `n_numeric`
    columns imputed by their median (with a missing flag each), signed-log
    transformed and standardised; the `categorical` columns one-hot encoded."""
    num = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        FunctionTransformer(_signed_log),
        StandardScaler(),
    )
    cat = make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
        OneHotEncoder(handle_unknown="ignore"),
    )
    transformers: list[tuple[str, Any, list[int]]] = [("num", num, list(range(n_numeric)))]
    if categorical:
        transformers.append(("cat", cat, list(categorical)))
    return Pipeline(
        [
            ("features", ColumnTransformer(transformers)),
            ("lr", LogisticRegression(C=c, max_iter=5000, random_state=seed)),
        ]
    )


class LogisticScorer(Scorer):
    """Logistic regression on the model's features (L2, C=1)."""

    kind: ClassVar[str] = "logistic"
    label: ClassVar[str] = "Logistic regression"

    def _fit_rows(
        self, data: TrainingData, numeric: tuple[str, ...], categorical: tuple[str, ...]
    ) -> None:
        rows = _both(data)
        self.encoder_ = Encoder.fit(rows, numeric, categorical)
        self.model_ = logistic_pipeline(
            len(numeric), self.encoder_.categorical_indices, c=1.0, seed=self.seed
        ).fit(self.encoder_.matrix(rows), rows["label"].to_numpy(int))

    def _predict_rows(self, frame: pd.DataFrame) -> np.ndarray:
        proba = self.model_.predict_proba(self.encoder_.matrix(frame))
        return np.asarray(proba[:, 1], dtype=float)
