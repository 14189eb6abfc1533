"""The model registry and score history in the store.

A fitted scorer is saved as JSON text in `models` under an id made of its
kind and a hash of its content (the same model saved twice is one row).
Scores are saved in `scores`, one row per open deal (or lead), with the
model id and the as-of instant they were computed for; scoring again for
the same model and instant replaces those rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import ibis
import pandas as pd

from funnelwise.analytics.result import instant_text
from funnelwise.errors import InputError
from funnelwise.log import EventLog
from funnelwise.scoring.base import Scorer, stage_changes
from funnelwise.scoring.features import TARGETS, undecided
from funnelwise.scoring.models import scorer_from_json, scorer_to_json, stored_stages
from funnelwise.scoring.result import Scores
from funnelwise.store import Store


def _utcnow() -> pd.Timestamp:
    return pd.Timestamp(dt.datetime.now(dt.UTC).replace(tzinfo=None)).floor("s")


def save_model(store: Store, scorer: Scorer, *, metrics: dict[str, object] | None = None) -> str:
    """Store a fitted scorer; returns its model id (`<kind>-<12 hex digits>`)."""
    artifact = scorer_to_json(scorer)
    model_id = f"{scorer.kind}-{hashlib.sha256(artifact.encode()).hexdigest()[:12]}"
    row = pd.DataFrame(
        {
            "model_id": [model_id],
            "target": [scorer.target],
            "kind": [scorer.kind],
            "created_at": [_utcnow()],
            "trained_as_of": [scorer.trained_as_of_],
            "params": [json.dumps(scorer.get_params())],
            "metrics": [json.dumps(metrics or {})],
            "artifact": [artifact],
        }
    )
    if not store.insert_new("models", row, key=["model_id"]):
        # The same model trained again: it is now the latest one trained.
        store.raw.execute(
            "UPDATE models SET created_at = ? WHERE model_id = ?",
            [row["created_at"].iloc[0], model_id],
        )
    return model_id


def load_model(
    store: Store,
    *,
    target: str,
    model_id: str | None = None,
    kind: str = "boosted",
    as_of: pd.Timestamp | None = None,
    suggest_as_of: bool = True,
) -> tuple[str, Scorer]:
    """The stored scorer with this id, or the one of this kind for `target` trained
    as of the latest instant not after `as_of` (any, without it; among equals the
    one trained last).

    Raises InputError naming the stored models (or how to train one: with
    `--as-of` when `suggest_as_of`, as when the user gave the instant; and none
    when no deal or lead had been created by `as_of`, as there is nothing to learn
    from or to score then). A model learned from outcomes after `as_of` is never
    chosen: scoring with it would use what was not known then.
    """
    train = f"`funnelwise score train --target {target}" + (
        f" --as-of {as_of.date()}`" if as_of is not None and suggest_as_of else "`"
    )
    models = store.table("models")
    if model_id is not None:
        rows = models.filter(models.model_id == model_id).to_pandas()
        if rows.empty:
            ids = models.select("model_id").to_pandas()["model_id"]
            known = ", ".join(ids) or "none"
            raise InputError(f"no stored model {model_id!r}; models: {known}")
        if rows["target"].iloc[0] != target:
            raise InputError(
                f"model {model_id} scores {rows['target'].iloc[0]!r}, not {target!r}; "
                f"pass --target {rows['target'].iloc[0]}"
            )
    else:
        m = models.filter((models.target == target) & (models.kind == kind))
        fitting = m.filter(m.trained_as_of <= as_of) if as_of is not None else m
        rows = fitting.order_by([ibis.desc("trained_as_of"), ibis.desc("created_at")]).limit(1)
        rows = rows.to_pandas()
        if rows.empty:
            if as_of is not None:
                _check_units_by(store, target, as_of)
            later = m.trained_as_of.min().to_pandas() if as_of is not None else None
            if later is not None and not pd.isna(later):
                raise InputError(
                    f"every stored {kind} model for target {target!r} learned from outcomes "
                    f"after {as_of} (the earliest up to {later}); scoring with one would use "
                    f"what was not known then. Run {train} first"
                )
            raise InputError(
                f"no trained model for target {target!r}; run {train} first "
                "(or use `--model rule`, which needs no training)"
            )
    scorer = scorer_from_json(str(rows["artifact"].iloc[0]))
    if as_of is not None and scorer.trained_as_of_ is not None and as_of < scorer.trained_as_of_:
        raise InputError(
            f"model {rows['model_id'].iloc[0]} learned from outcomes up to "
            f"{scorer.trained_as_of_}; scoring as of {as_of} would use what was not known "
            f"then. Run {train} first"
        )
    return str(rows["model_id"].iloc[0]), scorer


def _check_units_by(store: Store, target: str, as_of: pd.Timestamp) -> None:
    """Raise InputError when no deal (or lead) had been created by `as_of`: no model
    can be trained as of then, and there is nothing to score."""
    unit = "deal" if target == "won" else "lead"
    table = store.table(f"{unit}s")
    first = table.created_at.min().to_pandas()
    if first is None or pd.isna(first):
        # No later --as-of can help: the store holds none at all.
        raise InputError(
            f"the log holds no {unit}s: there is nothing to score, nor to train a model "
            f"on. Import {unit}s first (`funnelwise import`)"
        )
    if pd.Timestamp(first) > as_of:
        since = f" (the first was created on {pd.Timestamp(first).date()})"
        raise InputError(
            f"no {unit} had been created by {instant_text(as_of)}{since}: there is nothing "
            "to score as of then, nor to train a model on. Pick a later --as-of."
        )


def save_scores(store: Store, scores: Scores) -> int:
    """Store scored deals (or leads) under their model id and as-of instant; returns rows.

    Earlier scores of the same model, target and instant are replaced.
    """
    meta = scores.meta
    frame = scores.to_frame()
    key = scores.id_column
    where = [str(meta["model_id"]), str(meta["target"]), pd.Timestamp(meta["as_of"])]
    reasons = [c for c in frame.columns if c.startswith("reason_")]
    texts = [json.dumps([v for v in r if isinstance(v, str)]) for r in frame[reasons].to_numpy()]
    rows = pd.DataFrame(
        {
            "model_id": str(meta["model_id"]),
            "target": str(meta["target"]),
            "as_of": pd.Timestamp(meta["as_of"]),
            "deal_id": frame[key] if key == "deal_id" else None,
            "lead_id": frame[key] if key == "lead_id" else None,
            "probability": frame["probability"].astype(float),
            "reasons": texts if reasons else None,
            "scored_at": _utcnow(),
        }
    )
    with store.transaction():
        store.raw.execute(
            "DELETE FROM scores WHERE model_id = ? AND target = ? AND as_of = ?", where
        )
        return store.insert("scores", rows) if len(frame) else 0


def latest_scores(log: EventLog, *, target: str = "won") -> Scores | None:
    """The scores stored last for `target` at an instant not after `log.now`, for
    the deals (or leads) of this log still undecided at `log.now`; None when
    nothing was scored by then. Among scorings of that instant, the latest run.

    Meta as `Scorer.score` gives it, with `as_of` the instant scored (which may
    be before `log.now`: say so when showing them), `open` the units listed,
    `opened_since` the undecided units created after the instant scored (which
    no score covers), and a `warning` when the model that scored them was trained
    under other stages than `log.process` has now (`base.stage_changes`).
    """
    key = TARGETS[target].id_column
    s = log.store.table("scores")
    s = s.filter((s.target == target) & (s.as_of <= log.now))
    last = s.order_by([ibis.desc("as_of"), ibis.desc("scored_at")]).limit(1).to_pandas()
    if last.empty:
        return None
    model_id, as_of = str(last["model_id"].iloc[0]), pd.Timestamp(last["as_of"].iloc[0])
    s = s.filter((s.model_id == model_id) & (s.as_of == as_of))
    units = undecided(log, target)
    # Units opened after the scoring instant have no score: said beside the scored ones.
    # (A lead older than the scorer's horizon is not scored by design: not counted.)
    opened_since = int(units.filter(units.created_at > as_of).count().to_pandas())
    rows = s.semi_join(units.select(**{key: units[key]}), key)
    frame = rows.select(key, "probability", "reasons").to_pandas()
    frame = frame.sort_values(["probability", key], ascending=[False, True], kind="stable")
    reasons = [json.loads(r) if isinstance(r, str) else [] for r in frame.pop("reasons")]
    width = max((len(r) for r in reasons), default=0)
    for i in range(width):
        frame[f"reason_{i + 1}"] = [r[i] if i < len(r) else None for r in reasons]
    models = log.store.table("models")
    model = models.filter(models.model_id == model_id).to_pandas()
    meta = {
        "as_of": as_of,
        "target": target,
        "unit": "deals" if target == "won" else "leads",
        "id_column": key,
        "model": str(model["kind"].iloc[0]) if len(model) else None,
        "model_id": model_id,
        "trained_as_of": model["trained_as_of"].iloc[0] if len(model) else None,
        "open": len(frame),
        "opened_since": opened_since,
    }
    # Against the process as it is now, not as it was when scored: stored scores are
    # shown again after process.yaml changes, with no `score apply` in between.
    if len(model):
        changed = stage_changes(stored_stages(str(model["artifact"].iloc[0])), log.process)
        if changed:
            meta["warning"] = changed
    return Scores({"scores": frame.reset_index(drop=True)}, meta)
