"""Data for the analytics tests: random logs for hypothesis, and the tiny log extended.

`random_logs()` draws small logs with everything the analyses look at: stage
paths with skips, moves back and tied timestamps; outcomes; amount and close
date changes; checklist evidence; activities with a direction. `load()` puts
one into an in-memory store.

`build_tiny_plus(root)` is the tiny log of tests/tiny.py (unchanged) plus
checklist evidence, activities and users, documented in its docstring.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import strategies as st

import funnelwise as fw
from funnelwise.log import EventLog
from funnelwise.process import parse_process, template_text
from funnelwise.project import Project, write_process
from funnelwise.store import Store
from tiny import build_tiny

PROCESS = parse_process(template_text())
OPEN = list(PROCESS.default_pipeline.stage_ids)
OUTCOMES = {"won": "won", "lost": "lost", "no_decision": "no-decision"}
START = dt.datetime(2024, 1, 1)
OBSERVED_UNTIL = dt.datetime(2024, 3, 15)
HOUR = dt.timedelta(hours=1)


@st.composite
def random_logs(draw: st.DrawFn, max_deals: int = 8) -> dict[str, pd.DataFrame]:
    """A small random log as canonical tables (deals, stage_events, deal_changes,
    checklist, activities)."""
    n = draw(st.integers(1, max_deals))
    deals, events, changes, checks, acts = [], [], [], [], []
    for i in range(n):
        did = f"D{i}"
        created = START + draw(st.integers(0, 24 * 40)) * HOUR
        t = created
        stages = draw(st.lists(st.sampled_from(OPEN), min_size=1, max_size=6))
        for seq, stage in enumerate(stages):
            events.append((did, stage, t, seq))
            if draw(st.booleans()):
                crit = PROCESS.default_pipeline.stages[OPEN.index(stage)].exit_criteria.checklist
                checks.append((did, stage, crit[0], t + draw(st.integers(0, 48)) * HOUR))
            t += draw(st.integers(0, 24 * 6)) * HOUR  # 0 makes ties
        outcome = draw(st.sampled_from([None, None, "won", "lost", "no_decision"]))
        closed = None
        if outcome and t <= OBSERVED_UNTIL:
            closed = t
            events.append((did, OUTCOMES[outcome], t, len(stages)))
        else:
            outcome = None
        amounts = draw(st.lists(st.integers(1, 9), min_size=1, max_size=4))
        at = created
        for old, new in itertools.pairwise(amounts):
            at += draw(st.integers(1, 24 * 10)) * HOUR
            changes.append((did, "amount", f"{old * 100}.0", f"{new * 100}.0", at))
        close_dates = draw(st.lists(st.integers(10, 90), min_size=1, max_size=3))
        at = created
        for old, new in itertools.pairwise(close_dates):
            at += draw(st.integers(1, 24 * 10)) * HOUR
            old_d, new_d = (created + dt.timedelta(days=x) for x in (old, new))
            changes.append((did, "expected_close_date", f"{old_d.date()}", f"{new_d.date()}", at))
        for k in range(draw(st.integers(0, 3))):
            when = created + draw(st.integers(0, 24 * 30)) * HOUR
            direction = draw(st.sampled_from(["inbound", "outbound", "waiting_on_customer", None]))
            acts.append((f"{did}-a{k}", did, "email", when, direction))
        owner = draw(st.sampled_from(["u1", "u2", "u3"]))
        expected = (created + dt.timedelta(days=close_dates[-1])).date()
        deals.append((did, owner, created, closed, outcome, amounts[-1] * 100.0, expected))
    return {
        "deals": deals_frame(deals),
        "stage_events": pd.DataFrame(events, columns=["deal_id", "stage_id", "entered_at", "seq"]),
        "deal_changes": pd.DataFrame(
            changes, columns=["deal_id", "field", "old_value", "new_value", "changed_at"]
        ),
        "checklist": pd.DataFrame(checks, columns=["deal_id", "stage_id", "criterion", "done_at"]),
        "activities": pd.DataFrame(
            acts, columns=["activity_id", "deal_id", "kind", "at", "direction"]
        ),
    }


DEAL_COLUMNS = [
    "deal_id",
    "owner_id",
    "created_at",
    "closed_at",
    "outcome",
    "amount",
    "expected_close_date",
]


def deals_frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    """Deals of the template's pipeline in USD from (deal_id, owner_id, created_at,
    closed_at, outcome, amount, expected_close_date) rows."""
    return pd.DataFrame(rows, columns=DEAL_COLUMNS).assign(
        pipeline_id="new-business", version=1, currency="USD"
    )


def load(tables: dict[str, pd.DataFrame]) -> EventLog:
    """An EventLog over an in-memory store holding the tables (observed until 2024-03-15)."""
    store = Store.open("duckdb://:memory:")
    write_process(store, PROCESS, template_text())
    d = tables["deals"].copy()
    d["amount_base"] = d["amount"]
    with store.transaction():
        store.insert("deals", d)
        for name in ("stage_events", "deal_changes", "checklist", "activities"):
            if name in tables:
                store.insert(name, tables[name])
        store.set_meta("observed_until", OBSERVED_UNTIL.isoformat())
    return EventLog(store, PROCESS)


def load_tables(tables: Mapping[str, Any], observed_until: str) -> EventLog:
    """An EventLog over an in-memory store holding canonical tables as they are
    (e.g. a synthetic data set's `tables`)."""
    store = Store.open("duckdb://:memory:")
    write_process(store, PROCESS, template_text())
    with store.transaction():
        for name, table in tables.items():
            store.insert(name, table)
        store.set_meta("observed_until", observed_until)
    return EventLog(store, PROCESS)


def build_tiny_plus(root: Path) -> Path:
    """The tiny log plus exit-criteria evidence, activities and users.

    Users: u1 in team "east", u2 in team "west".

    Checklist (stage: criterion, done_at):
    | deal | evidence                                                               |
    |------|------------------------------------------------------------------------|
    | D1   | lead: First conversation held 01-03; qualification: Budget confirmed,  |
    |      | Decision maker identified, Need confirmed, Timeline agreed 01-04;      |
    |      | proposal: Proposal presented 01-20                                     |
    | D2   | lead: First conversation held 01-12 (after it left lead on 01-10)      |
    | D3   | lead: First conversation held 01-11                                    |

    Activities (deal, at, direction): D3 01-12 outbound, D3 01-15 inbound,
    D3 01-25 waiting_on_customer, D4 02-10 outbound, D1 01-10 inbound,
    and a lead activity (no deal) 01-05.

    Leads (source, created, then): L1 web 2023-12-30 converted to D1 on
    2024-01-01; L2 partner 2024-01-01 disqualified 01-11; L3 web 2024-02-01
    still open; L4 web 2024-01-20 converted to D4 on 02-01.
    Campaigns: C1 (web) cost 400; C2 (partner) cost 100.
    """
    build_tiny(root)
    store = Project(root).open_store()
    t = pd.Timestamp
    checklist = pd.DataFrame(
        [
            ("D1", "lead", "First conversation held", t("2024-01-03")),
            ("D1", "qualification", "Budget confirmed", t("2024-01-04")),
            ("D1", "qualification", "Decision maker identified", t("2024-01-04")),
            ("D1", "qualification", "Need confirmed", t("2024-01-04")),
            ("D1", "qualification", "Timeline agreed", t("2024-01-04")),
            ("D1", "proposal", "Proposal presented", t("2024-01-20")),
            ("D2", "lead", "First conversation held", t("2024-01-12")),
            ("D3", "lead", "First conversation held", t("2024-01-11")),
        ],
        columns=["deal_id", "stage_id", "criterion", "done_at"],
    )
    activities = pd.DataFrame(
        [
            ("A1", "D3", None, "email", t("2024-01-12"), "outbound"),
            ("A2", "D3", None, "email", t("2024-01-15"), "inbound"),
            ("A3", "D3", None, "call", t("2024-01-25"), "waiting_on_customer"),
            ("A4", "D4", None, "email", t("2024-02-10"), "outbound"),
            ("A5", "D1", None, "meeting", t("2024-01-10"), "inbound"),
            ("A6", None, "L1", "call", t("2024-01-05"), "outbound"),
        ],
        columns=["activity_id", "deal_id", "lead_id", "kind", "at", "direction"],
    )
    users = pd.DataFrame(
        [("u1", "Ann", "rep", "east"), ("u2", "Bob", "rep", "west")],
        columns=["user_id", "name", "role", "team"],
    )
    leads = pd.DataFrame(
        [
            ("L1", t("2023-12-30"), "web", "D1", t("2024-01-01"), None),
            ("L2", t("2024-01-01"), "partner", None, None, t("2024-01-11")),
            ("L3", t("2024-02-01"), "web", None, None, None),
            ("L4", t("2024-01-20"), "web", "D4", t("2024-02-01"), None),
        ],
        columns=[
            "lead_id",
            "created_at",
            "source",
            "converted_deal_id",
            "converted_at",
            "disqualified_at",
        ],
    )
    campaigns = pd.DataFrame(
        [("C1", "web", 400.0), ("C2", "partner", 100.0)],
        columns=["campaign_id", "source", "cost"],
    )
    with store.transaction():
        store.insert("leads", leads)
        store.insert("campaigns", campaigns)
        store.insert("checklist", checklist)
        store.insert("activities", activities)
        store.insert("users", users)
    store.close()
    return root


def open_tiny_plus(factory: pytest.TempPathFactory) -> EventLog:
    """Build the extended tiny project in a fresh folder and open its log."""
    from funnelwise.log import open_log

    return open_log(build_tiny_plus(factory.mktemp("tiny_plus")))


@contextmanager
def tiny_changed(tiny_project: Path, folder: Path, sql: str) -> Iterator[fw.EventLog]:
    """The log of a copy of the tiny project in `folder`, changed by `sql`; its store
    closed afterwards."""
    log = fw.open(Path(shutil.copytree(tiny_project, folder)))
    try:
        log.store.raw.execute(sql)
        yield log
    finally:
        log.store.close()


def lost_booked_at_zero(tiny_project: Path, tmp_path: Path) -> AbstractContextManager[fw.EventLog]:
    """The tiny log with D2's amount set 500 -> 0 at its loss (2024-01-20), as CRM
    exports book a lost deal; its store closed afterwards."""
    return tiny_changed(
        tiny_project,
        tmp_path / "lost-at-zero",
        "UPDATE deals SET amount = 0, amount_base = 0 WHERE deal_id = 'D2'; "
        "INSERT INTO deal_changes VALUES "
        "('D2', 'amount', '500', '0', TIMESTAMP '2024-01-20', NULL, 'test')",
    )


def without_settings(tiny_project: Path, tmp_path: Path, *keys: str) -> Path:
    """A copy of the tiny project whose process.yaml drops the `keys` settings of
    every stage (as the BPI 2012 example sets no target time or probability)."""
    root = Path(shutil.copytree(tiny_project, tmp_path / "without"))
    text = (root / "process.yaml").read_text(encoding="utf-8")
    kept = [ln for ln in text.splitlines() if not any(f"{k}:" in ln for k in keys)]
    (root / "process.yaml").write_text("\n".join(kept) + "\n", encoding="utf-8")
    return root


def without_stage(tiny_project: Path, tmp_path: Path, stage: str) -> Path:
    """A copy of the tiny project whose process.yaml no longer has the open stage
    `stage`, while its stored events still enter it (a stage renamed or removed
    after the import)."""
    root = Path(shutil.copytree(tiny_project, tmp_path / f"without-{stage}"))
    lines = (root / "process.yaml").read_text(encoding="utf-8").splitlines()
    start = lines.index(f"      - id: {stage}")
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("      - id: "))
    (root / "process.yaml").write_text("\n".join(lines[:start] + lines[end:]) + "\n", "utf-8")
    return root


def needs_assessment_renamed(root: Path) -> None:
    """The synthetic project at `root` with its stage Needs assessment renamed
    Discovery (a new id, the old one kept as an alias) in process.yaml, and the
    stored history following it, as importing the data again does."""
    import duckdb

    yaml = root / "process.yaml"
    before = (
        "      - id: needs-assessment\n        name: Needs assessment\n"
        '        aliases: ["Needs Analysis", "Discovery", "Engaging"]\n'
    )
    after = (
        "      - id: discovery\n        name: Discovery\n"
        '        aliases: ["needs-assessment", "Needs Analysis", "Engaging"]\n'
    )
    text = yaml.read_text(encoding="utf-8")
    assert before in text
    yaml.write_text(text.replace(before, after), encoding="utf-8")
    with duckdb.connect(str(root / "funnelwise.duckdb")) as con:
        for table in ("stage_events", "checklist"):
            con.execute(
                f"UPDATE {table} SET stage_id = 'discovery' WHERE stage_id = 'needs-assessment'"
            )
