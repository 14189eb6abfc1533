"""Amounts known only at the close (a snapshot's booked value).

A snapshot export often holds one amount per deal: the value booked when the
deal closed (zero or empty when lost, empty while open). Stored as the deal's
amount from its creation on, `log.as_of(t)` before the close would show a value
that depends on the outcome. With `amount_known_at: close` the booked amount is
instead an amount change at the close, from the listed amount (a list price,
when the mapping gives one) or from nothing; the deal row keeps the amount
known now: the booked one once closed, else the listed one.
"""

from __future__ import annotations

from funnelwise.ingest.staging import Staging, quote

LISTED = "_listed_amount"


def booked_at_close(st: Staging, deals: str) -> tuple[str, str]:
    """(deals, changes) for assembled `deals` (outcome and close known) whose amount is
    booked at the close: deals with their amount known now, and the amount changes
    at the close (old value the listed amount or NULL, new the booked amount)."""
    listed = LISTED if LISTED in st.columns(deals) else "CAST(NULL AS DOUBLE)"
    now = st.view(
        st.name("booked_deals"),
        f"SELECT * REPLACE (coalesce(amount, {listed}) AS amount) FROM {quote(deals)}",
    )
    changes = st.view(
        st.name("booked_changes"),
        f"""SELECT _src, _row, deal_id, 'amount' AS field,
                   CAST({listed} AS VARCHAR) AS old_value, CAST(amount AS VARCHAR) AS new_value,
                   closed_at AS changed_at, CAST(NULL AS VARCHAR) AS actor_id
            FROM {quote(deals)}
            WHERE outcome IS NOT NULL AND closed_at IS NOT NULL AND amount IS NOT NULL""",
    )
    return now, changes
