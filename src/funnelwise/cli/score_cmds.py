"""Scoring commands: `funnelwise score train|apply|evaluate`.

Each parses options, calls the scoring core and renders its result; models
and scores are stored through the registry. No computation here.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from funnelwise.analytics.result import Result
from funnelwise.cli.context import cli_context, cut
from funnelwise.cli.progress import progress_bar
from funnelwise.cli.render import (
    OutputFormat,
    console,
    print_frame,
    print_record,
    say,
    to_json,
)
from funnelwise.errors import InputError
from funnelwise.log import EventLog

if TYPE_CHECKING:
    from funnelwise.scoring import BoostedScorer


class Target(StrEnum):
    """What to score."""

    won = "won"
    converted = "converted"


class ModelKind(StrEnum):
    """Which scorer `apply` uses."""

    boosted = "boosted"
    rule = "rule"


FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: table, csv or json.")
]
TargetOpt = Annotated[
    Target,
    typer.Option(
        "--target", "-t", help="won: open deals → won; converted: open leads → converted."
    ),
]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Use the log as it was known at this date.")
]
SeedOpt = Annotated[int, typer.Option(help="Random seed of the model.")]
SnapshotsOpt = Annotated[int, typer.Option(min=2, help="Past instants to learn from.")]
MinOutcomesOpt = Annotated[
    int,
    typer.Option(
        "--min-outcomes",
        min=1,
        help="Fewest deals (or leads) of each outcome to learn from; below 20 the model "
        "rests on very few cases.",
    ),
]
ThreadsOpt = Annotated[int, typer.Option(help="LightGBM threads (0: all cores).")]

score_app = typer.Typer(
    help="Calibrated win and conversion probabilities with reasons.", no_args_is_help=True
)


def _attributes(keys: Sequence[str], numeric: Sequence[str]) -> str:
    """The attributes a model reads, each saying whether as a number or a label."""
    read = [f"{k} ({'number' if k in numeric else 'label'})" for k in keys]
    return ", ".join(read) or "none"


def _log(ctx: typer.Context, as_of: str | None, *, read_only: bool = False) -> EventLog:
    log = cli_context(ctx).log(read_only=read_only)
    return cut(log, as_of)


def _boosted(
    target: Target, snapshots: int, min_outcomes: int, seed: int, threads: int
) -> BoostedScorer:
    from funnelwise.scoring import BoostedScorer

    return BoostedScorer(
        target=target.value,
        snapshots=snapshots,
        min_outcomes=min_outcomes,
        seed=seed,
        num_threads=threads,
    )


def _emit(result: Result, fmt: OutputFormat, *, csv_columns: list[str] | None = None) -> None:
    if fmt is OutputFormat.json:
        sys.stdout.write(to_json(result.to_dict()) + "\n")
    elif fmt is OutputFormat.csv:
        frame = result.to_frame()
        print_frame(frame[csv_columns] if csv_columns else frame, fmt)
    else:
        console.print(result)


@score_app.command("train")
def train(
    ctx: typer.Context,
    target: TargetOpt = Target.won,
    as_of: AsOfOpt = None,
    snapshots: SnapshotsOpt = 32,
    min_outcomes: MinOutcomesOpt = 20,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Fit the calibrated LightGBM scorer on the history and store it."""
    from funnelwise.scoring.registry import save_model

    log = _log(ctx, as_of)
    scorer = _boosted(target, snapshots, min_outcomes, seed, threads)
    with progress_bar() as progress:
        scorer.fit(log, progress=progress)
    model_id = save_model(log.store, scorer)
    record = {
        "model_id": model_id,
        "target": scorer.target,
        "trained_as_of": scorer.trained_as_of_,
        "calibration": scorer.calibrator_.method,
        **scorer.counts_,
        "attributes": _attributes(scorer.keys_, scorer.numeric_keys_),
        "dropped_attributes": ", ".join(scorer.dropped_keys_) or "none",
    }
    print_record(record, fmt, title="Trained scorer")
    if fmt is OutputFormat.table:
        unit, outcome = ("leads", "converted") if scorer.target == "converted" else ("deals", "won")
        say(
            f"rows: open {unit} as known at past instants (a {unit[:-1]} counts once for "
            f"each past instant at which it was open); positive / negative: distinct {unit} "
            f"among them that went on to be {outcome} / not {outcome}."
        )


@score_app.command("apply")
def apply(
    ctx: typer.Context,
    target: TargetOpt = Target.won,
    as_of: AsOfOpt = None,
    model: Annotated[
        ModelKind,
        typer.Option(
            help="boosted: the stored model trained as of the latest date not after the "
            "scoring date; rule: the process rule score."
        ),
    ] = ModelKind.boosted,
    model_id: Annotated[
        str | None, typer.Option("--model-id", help="A stored model id (default: latest).")
    ] = None,
    top: Annotated[int, typer.Option(min=0, help="Reasons per deal.")] = 3,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Score the open deals (or leads) and store the scores with the model id."""
    from funnelwise.scoring import RuleScorer
    from funnelwise.scoring.base import Scorer
    from funnelwise.scoring.registry import load_model, save_model, save_scores

    if model is ModelKind.rule and model_id is not None:
        # The rule is built from process.yaml, never loaded: the id would go unused.
        raise InputError(
            f"--model-id {model_id} picks a stored trained model, while --model rule builds "
            "the rule score from process.yaml: give one or the other"
        )
    log = _log(ctx, as_of)
    scorer: Scorer
    if model is ModelKind.rule:
        scorer = RuleScorer(target=target.value).fit(log)
        chosen = save_model(log.store, scorer)
    else:
        chosen, scorer = load_model(
            log.store,
            target=target.value,
            model_id=model_id,
            as_of=log.now,
            suggest_as_of=as_of is not None,
        )
    scores = scorer.score(log, top=top, model_id=chosen)
    save_scores(log.store, scores)
    notes = [f"warning: {scores.meta['warning']}"] if "warning" in scores.meta else []
    notes += [f"note: {scores.meta['note']}"] if "note" in scores.meta else []
    if not len(scores.to_frame()):
        notes.append(_nothing_open(target, log, scorer.horizon_days))
    for note in notes:
        say(note, err=True)
    key = scores.id_column
    reasons = [c for c in scores.to_frame().columns if c.startswith("reason_")]
    _emit(scores, fmt, csv_columns=[key, "probability", *reasons])


def _nothing_open(target: Target, log: EventLog, horizon_days: float) -> str:
    """Why `apply` scored nothing."""
    from funnelwise.scoring.features import has_leads

    if target is Target.won:
        return f"No open deal as of {log.now}: nothing to score."
    if not has_leads(log):
        # Not "every lead is converted or disqualified": there is none to be.
        return f"No open lead as of {log.now}: the log holds no leads; nothing to score."
    return (
        f"No open lead as of {log.now}: every lead is converted, disqualified, or older "
        f"than the {horizon_days:g}-day horizon (decided by then); nothing to score."
    )


@score_app.command("evaluate")
def evaluate(
    ctx: typer.Context,
    target: TargetOpt = Target.won,
    as_of: AsOfOpt = None,
    test_fraction: Annotated[
        float, typer.Option(help="Share of the latest deals (or leads) held out for the test.")
    ] = 0.2,
    snapshots: SnapshotsOpt = 32,
    min_outcomes: MinOutcomesOpt = 20,
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Measure the model against the rule, naive Bayes and logistic baselines.

    On a time-ordered split: ROC AUC, PR AUC, Brier, calibration error, lift.
    """
    from funnelwise.scoring import evaluate_scorers

    log = _log(ctx, as_of, read_only=True)
    model = _boosted(target, snapshots, min_outcomes, seed, threads)
    with progress_bar() as progress:
        result = evaluate_scorers(
            log, target=target.value, model=model, test_fraction=test_fraction, progress=progress
        )
    _emit(result, fmt)


def register(app: typer.Typer) -> None:
    """Attach `score train|apply|evaluate` to the root app."""
    app.add_typer(score_app, name="score")
