"""Writing a generated data set into a project folder (and optionally Parquet files)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from funnelwise.errors import InputError
from funnelwise.process import template_text
from funnelwise.progressing import ProgressCallback, no_progress
from funnelwise.project import PROCESS_FILE, STORE_FILE, Project
from funnelwise.store import Store
from funnelwise.synth.generate import TABLE_NAMES, SynthResult


def _refuse_filled_store(root: Path) -> None:
    path = root / STORE_FILE
    if not path.exists():
        return
    with Store.open(f"duckdb://{path.resolve()}", create=False) as store:
        n = store.count("deals")
    if n:
        raise InputError(
            f"{path} already holds {n:,} deals; write the synthetic project to an empty "
            f"folder, or delete {path} first (`funnelwise demo|synth --force` does that)"
        )


def _refuse_own_process(root: Path) -> None:
    """InputError when `root` holds a process.yaml other than the bundled one: it may be
    the user's own process, which the synthetic project would replace."""
    path = root / PROCESS_FILE
    if path.is_file() and path.read_text(encoding="utf-8") != template_text():
        raise InputError(
            f"{path} exists already and differs from the bundled process; write the "
            "synthetic project to an empty folder, or pass --force to replace it"
        )


def write_project(
    result: SynthResult,
    out_dir: str | Path,
    parquet: bool = False,
    progress: ProgressCallback | None = None,
    *,
    replace_process: bool = False,
) -> Path:
    """Make `out_dir` a project holding `result`: process.yaml (the bundled B2B process)
    and funnelwise.duckdb with every table, written in one transaction.

    Records meta `observed_until` (ISO) and `synth_truth` (the truth as JSON).
    With `parquet=True` also writes `out_dir/parquet/<table>.parquet`.
    Refuses (InputError), before writing anything, a folder whose store already
    holds deals, and one whose process.yaml is not the bundled process unless
    `replace_process`.
    """
    report = progress or no_progress
    root = Path(out_dir)
    _refuse_filled_store(root)
    if not replace_process:
        _refuse_own_process(root)
    # Computed before any write, so that a failure leaves no half-written project.
    truth = json.dumps(result.truth.to_dict())
    Project(root).make_folder()
    (root / PROCESS_FILE).write_text(template_text(), encoding="utf-8")
    total = len(TABLE_NAMES) + 1
    with Project(root).open_store(create=True) as store, store.transaction():
        for k, name in enumerate(TABLE_NAMES, start=1):
            store.insert(name, result.tables[name])
            report("write store", k, total)
        store.set_meta("observed_until", result.observed_until.isoformat())
        store.set_meta("synth_truth", truth)
        report("write store", total, total)
    if parquet:
        folder = root / "parquet"
        folder.mkdir(exist_ok=True)
        for k, name in enumerate(TABLE_NAMES, start=1):
            pq.write_table(result.tables[name], folder / f"{name}.parquet")
            report("write parquet", k, len(TABLE_NAMES))
    return root
