"""A tiny hand-made log whose every number can be computed by hand.

Process: the bundled B2B template (lead, qualification, needs-assessment,
proposal, negotiation, closing; won / lost / no-decision). Observation ends
2024-03-01.

| deal | created | stage entries (2024 dates)                          | outcome          |
|------|---------|-----------------------------------------------------|------------------|
| D1   | 01-01   | lead 01-01, qualif. 01-05, proposal 01-15, won 02-01 | won 02-01, 1000  |
| D2   | 01-02   | lead 01-02, qualif. 01-10, lost 01-20                | lost 01-20, 500  |
| D3   | 01-10   | lead 01-10, qualif. 01-12, needs 01-20, qualif. 02-01 | open, 2000       |
| D4   | 02-01   | lead 02-01, qualif. 02-01 (same instant, seq 1)      | open, 300        |
| D5   | 01-05   | lead 01-05, no-decision 02-15                        | no_decision 02-15 |

Changes: D3 amount 1500 -> 2000 on 2024-01-25; D3 close date 2024-02-15 ->
2024-03-15 on 2024-02-10 (a push); D1 owner u1 -> u2 on 2024-01-20.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from funnelwise.process import template_text
from funnelwise.project import Project
from funnelwise.store import Store

T = pd.Timestamp


def build_tiny(root: Path) -> Path:
    """Write the tiny project into root and return root."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "process.yaml").write_text(template_text(), encoding="utf-8")
    store: Store = Project(root).open_store(create=True)
    deals = pd.DataFrame(
        [
            ("D1", "u2", "web", 1000.0, "2024-01-01", "2024-02-01", "2024-02-01", "won"),
            ("D2", "u1", "partner", 500.0, "2024-01-02", "2024-01-25", "2024-01-20", "lost"),
            ("D3", "u1", "web", 2000.0, "2024-01-10", "2024-03-15", None, None),
            ("D4", "u2", "partner", 300.0, "2024-02-01", "2024-04-01", None, None),
            ("D5", "u1", "web", 800.0, "2024-01-05", "2024-02-20", "2024-02-15", "no_decision"),
        ],
        columns=[
            "deal_id",
            "owner_id",
            "source",
            "amount",
            "created_at",
            "expected_close_date",
            "closed_at",
            "outcome",
        ],
    )
    deals["pipeline_id"] = "new-business"
    deals["currency"] = "USD"
    deals["amount_base"] = deals["amount"]
    deals["version"] = 1
    deals["attributes"] = [
        '{"segment": "smb"}',
        '{"segment": "ent"}',
        '{"segment": "smb"}',
        None,
        None,
    ]
    for col in ("created_at", "closed_at"):
        deals[col] = pd.to_datetime(deals[col])
    deals["expected_close_date"] = pd.to_datetime(deals["expected_close_date"]).dt.date
    events = pd.DataFrame(
        [
            ("D1", "lead", "2024-01-01", 0),
            ("D1", "qualification", "2024-01-05", 1),
            ("D1", "proposal", "2024-01-15", 2),
            ("D1", "won", "2024-02-01", 3),
            ("D2", "lead", "2024-01-02", 0),
            ("D2", "qualification", "2024-01-10", 1),
            ("D2", "lost", "2024-01-20", 2),
            ("D3", "lead", "2024-01-10", 0),
            ("D3", "qualification", "2024-01-12", 1),
            ("D3", "needs-assessment", "2024-01-20", 2),
            ("D3", "qualification", "2024-02-01", 3),
            ("D4", "lead", "2024-02-01", 0),
            ("D4", "qualification", "2024-02-01", 1),
            ("D5", "lead", "2024-01-05", 0),
            ("D5", "no-decision", "2024-02-15", 1),
        ],
        columns=["deal_id", "stage_id", "entered_at", "seq"],
    )
    events["entered_at"] = pd.to_datetime(events["entered_at"])
    changes = pd.DataFrame(
        [
            ("D3", "amount", "1500.0", "2000.0", "2024-01-25"),
            ("D3", "expected_close_date", "2024-02-15", "2024-03-15", "2024-02-10"),
            ("D1", "owner_id", "u1", "u2", "2024-01-20"),
        ],
        columns=["deal_id", "field", "old_value", "new_value", "changed_at"],
    )
    changes["changed_at"] = pd.to_datetime(changes["changed_at"])
    with store.transaction():
        store.insert("deals", deals)
        # Shuffled on purpose: order of arrival must never matter.
        store.insert("stage_events", events.sample(frac=1.0, random_state=3))
        store.insert("deal_changes", changes)
        store.set_meta("observed_until", "2024-03-01T00:00:00")
    store.close()
    return root
