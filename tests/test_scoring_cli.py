"""`funnelwise score train|apply|evaluate` through Typer's CliRunner."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import funnelwise as fw
from analytics_data import needs_assessment_renamed, without_settings
from funnelwise.cli import app
from funnelwise.synth import generate, write_project

runner = CliRunner()
FAST = ["--snapshots", "8", "--threads", "1"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "p"
    write_project(generate(deals=1500, seed=3), root)
    return root


def _run(project: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--project", str(project), "score", *args])
    return result.exit_code, result.output


def test_train_then_apply_stores_scores_per_deal(project: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(project, tmp_path / "p"))
    code, out = _run(root, "train", *FAST, "--format", "json")
    assert code == 0, out
    trained = json.loads(out)
    assert trained["model_id"].startswith("boosted-")
    assert trained["target"] == "won"
    assert trained["train_positive"] >= 20
    # The synthetic deals' attributes: a size band and an industry, both labels.
    assert trained["attributes"] == "industry (label), segment (label)"

    code, out = _run(root, "apply", "--format", "csv")
    assert code == 0, out
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["deal_id", "probability", "reason_1", "reason_2", "reason_3"]
    log = fw.open(root)
    assert len(frame) == log.counts()["deals_open"]
    assert frame["probability"].between(0, 1).all()
    assert frame["reason_1"].str.match(r"^[+−] ").all()

    stored = log.store.table("scores").to_pandas()
    assert len(stored) == len(frame)
    assert set(stored["model_id"]) == {trained["model_id"]}
    assert set(stored["as_of"]) == {log.now}
    assert sorted(stored["deal_id"]) == sorted(frame["deal_id"])
    log.store.close()
    # Scoring again for the same model and instant replaces, never duplicates.
    code, out = _run(root, "apply")
    assert code == 0 and "Scores: scores" in out
    with fw.open(root).store as store:
        assert store.count("scores") == len(frame)

    # A model cannot score a date before the outcomes it learned from.
    code, out = _run(root, "apply", "--as-of", "2023-06-01")
    assert code == 2
    assert "would use what was not known then" in out


def test_apply_picks_the_model_trained_as_of_the_latest_date_it_may_use(
    project: Path, tmp_path: Path
) -> None:
    root = Path(shutil.copytree(project, tmp_path / "p"))
    ids = {}
    # Trained on everything, then as of an earlier date, then on everything again:
    # the third training gives the first model back (same content, same id).
    for label, extra in (("full", []), ("early", ["--as-of", "2023-12-01"]), ("again", [])):
        code, out = _run(root, "train", *FAST, *extra, "--format", "json")
        assert code == 0, out
        ids[label] = json.loads(out)["model_id"]
    assert ids["full"] == ids["again"] != ids["early"]
    code, out = _run(root, "apply", "--format", "json")
    assert code == 0, out
    assert json.loads(out)["meta"]["model_id"] == ids["full"]
    # Between the two training dates only the early model knew nothing too late.
    code, out = _run(root, "apply", "--as-of", "2024-01-15", "--format", "json")
    assert code == 0, out
    assert json.loads(out)["meta"]["model_id"] == ids["early"]
    assert "note" not in json.loads(out)["meta"]  # 45 days old
    # Scoring the log's end (2024-02-26) with a model of 2023-09-01 says how old what
    # it learned is; with the early one (87 days) it does not.
    code, out = _run(root, "train", *FAST, "--as-of", "2023-09-01", "--format", "json")
    assert code == 0, out
    old = json.loads(out)["model_id"]
    code, out = _run(root, "apply", "--model-id", old, "--format", "csv")
    assert code == 0, out
    assert "outcomes up to 2023-09-01, 178 days before 2024-02-26" in " ".join(out.split())
    code, out = _run(root, "apply", "--model-id", ids["early"], "--format", "csv")
    assert code == 0 and "the model learned from outcomes" not in out
    # Before both: no model may be used, and the advice names the target.
    code, out = _run(root, "apply", "--as-of", "2023-06-01")
    assert code == 2
    assert "score train --target won --as-of 2023-06-01" in out
    # A model of the other target is named as such.
    code, out = _run(root, "apply", "--target", "converted", "--model-id", ids["full"])
    assert code == 2
    assert f"model {ids['full']} scores 'won', not 'converted'" in " ".join(out.split())


def test_apply_needs_a_model_but_the_rule_needs_none(project: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(project, tmp_path / "p"))
    code, out = _run(root, "apply")
    assert code == 2
    assert "no trained model for target 'won'" in out
    # The command to run is the one that fits: no --as-of when none was given.
    assert "run `funnelwise score train --target won` first" in " ".join(out.split())
    code, out = _run(root, "apply", "--as-of", "2023-06-01")
    assert code == 2
    assert "`funnelwise score train --target won --as-of 2023-06-01`" in " ".join(out.split())
    # Before the first deal there is nothing to train on or to score: no such advice.
    log = fw.open(root)
    with log.store:
        first = log.deals.created_at.min().to_pandas()
    code, out = _run(root, "apply", "--as-of", "2000-01-01")
    assert code == 2
    assert "score train" not in out
    assert (
        f"no deal had been created by 2000-01-01 (the first was created on "
        f"{pd.Timestamp(first).date()})" in " ".join(out.split())
    )
    code, out = _run(root, "apply", "--model", "rule", "--format", "csv")
    assert code == 0, out
    frame = pd.read_csv(io.StringIO(out))
    assert frame["reason_1"].str.contains("process probability").any()
    with fw.open(root).store as store:
        models = store.table("models").to_pandas()
    assert list(models["kind"]) == ["rule"]


def test_evaluate_prints_the_model_against_its_baselines(project: Path) -> None:
    code, out = _run(project, "evaluate", *FAST, "--format", "json")
    assert code == 0, out
    result = json.loads(out)
    metrics = {m["kind"]: m for m in result["frames"]["metrics"]}
    assert set(metrics) == {"boosted", "rule", "naive_bayes", "logistic"}
    for m in metrics.values():
        assert 0.5 < m["roc_auc"] <= 1.0
        assert 0.0 < m["brier"] < 0.3
    assert result["meta"]["test_start"] < result["meta"]["as_of"]


def _column(out: str, header: str) -> list[str]:
    """The cells of one column of a printed table (header row first, then body rows)."""
    lines = [ln for ln in out.splitlines() if ln.startswith(("┃", "│"))]
    rows = [[c.strip() for c in ln.strip("┃│").split("┃" if "┃" in ln else "│")] for ln in lines]
    at = rows[0].index(header)
    return [r[at] for r in rows[1:]]


def test_evaluate_table_prints_calibration_error_as_percent_and_no_flat_rule(
    project: Path, tmp_path: Path
) -> None:
    """ECE is a share like the base rate (the report writes 2.4%, the table wrote 0.02);
    a rule score equal for every deal (a process with no stage probabilities,
    checklist or required fields) is a sentence, not a row beside the model."""
    keys = ("probability", "exit_criteria", "fields", "checklist")
    root = without_settings(project, tmp_path, *keys)
    code, out = _run(root, "evaluate", *FAST)
    assert code == 0, out
    result = json.loads(_run(root, "evaluate", *FAST, "--format", "json")[1])
    metrics = {m["scorer"]: m for m in result["frames"]["metrics"]}
    rule = metrics.pop("Rule score (process)")
    assert _column(out, "scorer") == list(metrics)
    assert _column(out, "ece") == [f"{100 * m['ece']:.1f}%" for m in metrics.values()]
    assert isinstance(rule["ece"], float)  # JSON keeps the number
    assert rule["cannot_rank"].startswith("Rule score (process) gives the ")
    assert rule["cannot_rank"] in " ".join(out.split())


def test_too_few_outcomes_is_a_clear_error(tiny_project: Path) -> None:
    code, out = _run(tiny_project, "train", *FAST)
    assert code == 6
    assert "1 won and 2 lost or no decision deals" in out
    assert "at least 20 of each" in out
    # The advice can be followed from the command line: the option exists.
    assert "--min-outcomes" in out
    code, out = _run(tiny_project, "train", *FAST, "--min-outcomes", "3")
    assert code == 6 and "at least 3 of each" in out
    # Nonsense options are named as such, not blamed on the data.
    code, out = _run(tiny_project, "train", "--snapshots", "0")
    assert code == 2 and "--snapshots" in out and "too few outcomes" not in out


def test_apply_says_why_nothing_was_scored(tiny_project: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    result = CliRunner().invoke(
        app,
        ["--project", str(root), "score", "apply", "-t", "converted", "--model", "rule"],
    )
    assert result.exit_code == 0, result.output
    # The tiny log has no leads at all: none is converted, disqualified or too old.
    assert "No open lead as of 2024-03-01 00:00:00: the log holds no leads; nothing to score." in (
        " ".join(result.output.split())
    )


def test_a_reason_about_one_activity_is_singular() -> None:
    from funnelwise.scoring.reasons import phrase

    frame = pd.DataFrame({"activities": [1.0, 2.0], "activities_recent": [1.0, 0.0]})
    assert phrase(frame, "activities").tolist() == ["1 activity logged", "2 activities logged"]
    assert phrase(frame, "activities_recent").tolist()[0] == "1 activity in the last 14 days"


def test_an_error_after_the_progress_bar_is_its_first_line(tiny_project: Path) -> None:
    result = CliRunner().invoke(app, ["--project", str(tiny_project), "score", "train", *FAST])
    assert result.exit_code == 6
    assert result.stderr.startswith("error: too few outcomes"), repr(result.stderr[:40])


def test_apply_notes_are_one_line_each(project: Path, tiny_project: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(project, tmp_path / "p"))
    code, out = _run(root, "train", *FAST, "--as-of", "2023-09-01", "--format", "json")
    assert code == 0, out
    result = runner.invoke(app, ["--project", str(root), "score", "apply", "--format", "csv"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("note: the model learned from outcomes")
    assert notes[0].endswith("run `funnelwise score train` to refresh it")
    args = ["score", "apply", "-t", "converted", "--model", "rule"]
    lead = runner.invoke(app, ["--project", str(tiny_project), *args])
    notes = [line for line in lead.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("No open lead as of 2024-03-01")
    assert notes[0].endswith("nothing to score.")


def _evaluation(lower: float) -> object:
    from funnelwise.scoring.result import Evaluation

    nan = float("nan")
    metrics = pd.DataFrame(
        {
            "scorer": ["LightGBM, calibrated", "Naive Bayes", "Logistic regression"],
            "kind": ["boosted", "naive_bayes", "logistic"],
            "rows": [400, 400, 400],
            "units": [80, 80, 80],
            "base_rate": [0.3, 0.3, 0.3],
            "roc_auc": [0.70, 0.74, 0.78],
            "roc_auc_vs_model": [nan, 0.04, 0.08],
            "roc_auc_vs_model_lower": [nan, 0.01, lower],
            "roc_auc_vs_model_upper": [nan, 0.07, 0.12],
            "cannot_rank": [None, None, None],
        }
    )
    meta = {"unit": "deals", "bootstrap": {"level": 0.95}}
    return Evaluation({"metrics": metrics, "reliability": pd.DataFrame()}, meta)


@pytest.mark.parametrize("lower", [0.03, -0.01])
def test_evaluate_says_when_a_baseline_ranks_better(
    project: Path, monkeypatch: pytest.MonkeyPatch, lower: float
) -> None:
    import funnelwise.scoring

    evaluation = _evaluation(lower)
    monkeypatch.setattr(funnelwise.scoring, "evaluate_scorers", lambda *a, **k: evaluation)
    code, out = _run(project, "evaluate", *FAST)
    assert code == 0, out
    text = " ".join(out.split())
    said = (
        "Logistic regression ranks the deals better than the model (LightGBM, calibrated): "
        "ROC AUC 0.780 against 0.700 (difference +0.080, 95% interval +0.030 to +0.120)."
    )
    # As the report: only the best baseline, and only where its interval is above zero
    # (naive Bayes's is, but logistic regression ranks higher and its interval is not).
    assert (said in text) is (lower > 0)
    assert ("better than the model" in text) is (lower > 0)
    if lower > 0:
        assert text.index(said) > text.rindex("└")  # under the table


def test_train_says_how_each_attribute_is_read() -> None:
    from funnelwise.cli.score_cmds import _attributes

    assert _attributes(("employees", "sector"), ("employees",)) == (
        "employees (number), sector (label)"
    )
    assert _attributes((), ()) == "none"


def test_apply_on_a_log_without_units_says_so(tiny_project: Path, tmp_path: Path) -> None:
    """The tiny log has no leads, and a new project no deals: no later --as-of can
    help, and no date reads 'NaT'."""
    code, out = _run(tiny_project, "apply", "--target", "converted")
    text = " ".join(out.split())
    assert code == 2, out
    assert "the log holds no leads: there is nothing to score" in text
    assert "NaT" not in text and "later --as-of" not in text
    empty = tmp_path / "empty"
    assert runner.invoke(app, ["init", str(empty)]).exit_code == 0
    code, out = _run(empty, "apply")
    assert code == 2 and "the log holds no deals" in " ".join(out.split())


def test_a_stale_lead_model_is_refreshed_with_its_target(project: Path) -> None:
    # `score train` alone trains the win model: the lead model's note names its target.
    from funnelwise.scoring import RuleScorer

    log = fw.open(project)
    try:
        scorer = RuleScorer(target="converted").fit(log.as_of("2023-09-01"))
        note = scorer.score(log).meta["note"]
    finally:
        log.store.close()
    assert note.endswith("run `funnelwise score train --target converted` to refresh it")


def test_apply_refuses_a_model_id_with_the_rule(tiny_project: Path, tmp_path: Path) -> None:
    # The id had been ignored without a word: the rule scored, not the model named.
    root = Path(shutil.copytree(tiny_project, tmp_path / "p"))
    code, out = _run(root, "apply", "--model", "rule", "--model-id", "boosted-x")
    assert code == 2, out
    assert "--model-id boosted-x picks a stored trained model, while --model rule builds" in (
        " ".join(out.split())
    )


def test_apply_warns_when_the_process_stages_changed_since_training(
    project: Path, tmp_path: Path
) -> None:
    import duckdb

    root = Path(shutil.copytree(project, tmp_path / "p"))
    code, out = _run(root, "train", *FAST, "--format", "json")
    assert code == 0, out
    apply = ["--project", str(root), "score", "apply", "--format", "csv"]
    same = runner.invoke(app, apply)
    assert same.exit_code == 0, same.output
    assert "warning" not in same.stderr
    needs_assessment_renamed(root)

    changed = runner.invoke(app, apply)
    assert changed.exit_code == 0, changed.output
    log = fw.open(root)
    assert len(pd.read_csv(io.StringIO(changed.stdout))) == log.counts()["deals_open"]
    log.store.close()
    said = " ".join(changed.stderr.split())
    assert said.startswith(
        "warning: the model was trained on stages Lead, Qualification, Needs assessment, "
        "Proposal, Negotiation, Closing; process.yaml now has Lead, Qualification, "
        "Discovery, Proposal, Negotiation, Closing (Needs assessment removed, Discovery "
        "added)."
    )
    assert said.endswith("retrain with `funnelwise score train`")
    data = runner.invoke(app, [*apply[:-1], "json"])
    assert "Discovery added" in json.loads(data.stdout)["meta"]["warning"]

    # A model stored before the stages were recorded is applied as before, silently.
    with duckdb.connect(str(root / "funnelwise.duckdb")) as con:
        artifact = json.loads(con.execute("SELECT artifact FROM models").fetchone()[0])
        del artifact["stages"]
        con.execute("UPDATE models SET artifact = ?", [json.dumps(artifact)])
    older = runner.invoke(app, apply)
    assert older.exit_code == 0, older.output
    assert "warning" not in older.stderr
