"""A hand-made project with two pipelines, new business and renewals, whose
forecast and backtest figures can be computed by hand.

Process: the bundled B2B template plus a `renewals` pipeline (review 0.5, quote
0.9; renewed / churned / undecided). Observation ends 2024-07-01. Both pipelines'
first deal is created on 2024-01-01, so their default backtest cut-offs agree.
Every deal enters its pipeline's first stage (lead, renewal-review) when created.

| deal | pipeline | created | stage entries after the first (2024)     | outcome, amount, ECD |
|------|----------|---------|------------------------------------------|----------------------|
| N1   | new      | 01-01   | qualification 01-20, won 03-10           | won 1000             |
| N2   | new      | 01-15   | qualif. 02-01, proposal 03-01, won 04-15 | won 2000             |
| N3   | new      | 02-01   | qualif. 02-20, proposal 04-01, won 05-20 | won 4000             |
| N4   | new      | 02-10   | lost 03-05                               | lost 600             |
| N5   | new      | 05-01   | qualification 06-01                      | open 1000, 07-20     |
| N6   | new      | 04-01   | qualif. 05-01, proposal 06-10            | open 2000, 08-10     |
| N7   | new      | 06-15   | (none)                                   | open 4000, 12-31     |
| R1   | renewals | 01-01   | renewed 03-20                            | won 300              |
| R2   | renewals | 02-01   | quote 03-15, renewed 04-05               | won 500              |
| R3   | renewals | 03-01   | quote 05-01, renewed 06-10               | won 700              |
| R4   | renewals | 02-15   | churned 04-20                            | lost 900             |
| R5   | renewals | 05-15   | (none)                                   | open 3000, 07-15     |
| R6   | renewals | 04-20   | quote 06-01                              | open 500, 09-01      |

Weighted pipeline over 90 days from 2024-07-01 (to 09-29; N7's 12-31 is past it):
new business 0.2 × 1000 + 0.6 × 2000 = 1400; renewals 0.5 × 3000 + 0.9 × 500 = 1950.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from funnelwise.process import template_text
from funnelwise.project import Project

RENEWALS = """\
  - id: renewals
    name: Renewals
    stages:
      - id: renewal-review
        name: Renewal review
        probability: 0.5
      - id: renewal-quote
        name: Renewal quote
        probability: 0.9
    outcomes:
      won: {id: renewed, name: Renewed}
      lost: {id: churned, name: Churned}
      no_decision: {id: renewal-undecided, name: Undecided}
"""
# Weighted pipelines over 90 days from the end of observation (see the table).
WEIGHTED = {"new-business": 1400.0, "renewals": 1950.0}

_DEALS = [
    ("N1", "new-business", 1000.0, "2024-01-01", "2024-03-10", "2024-03-10", "won"),
    ("N2", "new-business", 2000.0, "2024-01-15", "2024-04-15", "2024-04-15", "won"),
    ("N3", "new-business", 4000.0, "2024-02-01", "2024-05-20", "2024-05-20", "won"),
    ("N4", "new-business", 600.0, "2024-02-10", "2024-03-05", "2024-03-05", "lost"),
    ("N5", "new-business", 1000.0, "2024-05-01", "2024-07-20", None, None),
    ("N6", "new-business", 2000.0, "2024-04-01", "2024-08-10", None, None),
    ("N7", "new-business", 4000.0, "2024-06-15", "2024-12-31", None, None),
    ("R1", "renewals", 300.0, "2024-01-01", "2024-03-20", "2024-03-20", "won"),
    ("R2", "renewals", 500.0, "2024-02-01", "2024-04-05", "2024-04-05", "won"),
    ("R3", "renewals", 700.0, "2024-03-01", "2024-06-10", "2024-06-10", "won"),
    ("R4", "renewals", 900.0, "2024-02-15", "2024-04-20", "2024-04-20", "lost"),
    ("R5", "renewals", 3000.0, "2024-05-15", "2024-07-15", None, None),
    ("R6", "renewals", 500.0, "2024-04-20", "2024-09-01", None, None),
]
_EVENTS = {
    "N1": [("lead", "01-01"), ("qualification", "01-20"), ("won", "03-10")],
    "N2": [("lead", "01-15"), ("qualification", "02-01"), ("proposal", "03-01"), ("won", "04-15")],
    "N3": [("lead", "02-01"), ("qualification", "02-20"), ("proposal", "04-01"), ("won", "05-20")],
    "N4": [("lead", "02-10"), ("lost", "03-05")],
    "N5": [("lead", "05-01"), ("qualification", "06-01")],
    "N6": [("lead", "04-01"), ("qualification", "05-01"), ("proposal", "06-10")],
    "N7": [("lead", "06-15")],
    "R1": [("renewal-review", "01-01"), ("renewed", "03-20")],
    "R2": [("renewal-review", "02-01"), ("renewal-quote", "03-15"), ("renewed", "04-05")],
    "R3": [("renewal-review", "03-01"), ("renewal-quote", "05-01"), ("renewed", "06-10")],
    "R4": [("renewal-review", "02-15"), ("churned", "04-20")],
    "R5": [("renewal-review", "05-15")],
    "R6": [("renewal-review", "04-20"), ("renewal-quote", "06-01")],
}


def build_two_pipelines(root: Path) -> Path:
    """Write the two-pipeline project into root and return root."""
    root.mkdir(parents=True, exist_ok=True)
    # The template's pipelines list is the file's last key: a second pipeline goes after it.
    text = template_text().rstrip("\n") + "\n" + RENEWALS
    (root / "process.yaml").write_text(text, encoding="utf-8")
    deals = pd.DataFrame(
        _DEALS,
        columns=[
            "deal_id",
            "pipeline_id",
            "amount",
            "created_at",
            "expected_close_date",
            "closed_at",
            "outcome",
        ],
    )
    deals["currency"] = "USD"
    deals["amount_base"] = deals["amount"]
    deals["version"] = 1
    for col in ("created_at", "closed_at"):
        deals[col] = pd.to_datetime(deals[col])
    deals["expected_close_date"] = pd.to_datetime(deals["expected_close_date"]).dt.date
    events = pd.DataFrame(
        [
            (deal, stage, pd.Timestamp(f"2024-{day}"), seq)
            for deal, visits in _EVENTS.items()
            for seq, (stage, day) in enumerate(visits)
        ],
        columns=["deal_id", "stage_id", "entered_at", "seq"],
    )
    store = Project(root).open_store(create=True)
    with store.transaction():
        store.insert("deals", deals)
        store.insert("stage_events", events)
        store.set_meta("observed_until", "2024-07-01T00:00:00")
    store.close()
    return root
