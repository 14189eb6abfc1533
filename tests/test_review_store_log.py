"""The store, the log's filters and as_of, the process loader and the project folder
on edge cases: values only known later, odd attribute keys, bad paths, odd files."""

from __future__ import annotations

from pathlib import Path

import funnelwise as fw
from analytics_data import build_tiny_plus
from funnelwise.log import EventLog


def ids(log: EventLog) -> list[str]:
    return sorted(log.deals.deal_id.execute())


def lead_ids(log: EventLog) -> list[str]:
    return sorted(log.leads.lead_id.execute())


def test_a_filter_on_the_outcome_as_of_a_date_reads_the_outcome_then(
    tiny_log: EventLog,
) -> None:
    # As of 2024-01-25 D2 is lost (01-20); D1 (won 02-01) and D5 (no decision 02-15)
    # are still open, as is D3; D4 is not created yet.
    then = tiny_log.as_of("2024-01-25")
    assert ids(then.filter(outcome="won")) == []
    assert ids(then.filter(outcome="lost")) == ["D2"]
    assert ids(then.filter(outcome=None)) == ["D1", "D3", "D5"]
    assert ids(then.filter(closed_at=None)) == ["D1", "D3", "D5"]
    # Filtering first and cutting after reads the same.
    assert ids(tiny_log.filter(outcome="won").as_of("2024-01-25")) == []
    # Without a cutoff the stored outcome counts.
    assert ids(tiny_log.filter(outcome="won")) == ["D1"]


def test_a_lead_filter_as_of_a_date_reads_the_conversion_then(tmp_path: Path) -> None:
    # L1 converted 01-01, L2 disqualified 01-11, L4 (created 01-20) converted 02-01.
    log = fw.open(build_tiny_plus(tmp_path / "p"))
    then = log.as_of("2024-01-25")
    assert lead_ids(then.filter(converted_deal_id=None)) == ["L2", "L4"]
    assert lead_ids(then.filter(converted_deal_id="D4")) == []
    assert lead_ids(then.filter(disqualified_at=None)) == ["L1", "L4"]
    log.store.close()
