"""What a stage's exit date tells, beside the entry dates (HubSpot's "Date exited").

The canonical `stage_events` hold entries only: a deal leaves a stage when it
enters the next one, so an exit date stored on its own would say nothing new
when it agrees with the entries. Exit dates are therefore evidence, used in two
ways:

- checks: an exit before the deal began (its creation, or its first entry if
  earlier), or after the deal's next entry (into another stage, after the one
  the exit closes), contradicts the entries; it is recorded as a problem (row,
  exit column, value, reason) and ignored, the entries stand. An exit before
  its stage's entry but after the deal began closes an earlier visit (HubSpot
  keeps each stage's latest entry and exit): it is no problem, but the visit
  is not in the history, and a note counts such visits;
- a missing entry: a stage the deal was in without an entry date (a stage with
  an exit date only, or the deal's current stage when its history does not end
  there: no entry, or one before the deal's latest) was entered when the deal
  last left another stage before it, provided no known entry lies between that
  exit and the stage's own exit (for the current stage: ever after). An exit
  date at which some stage was entered is that move, and implies nothing more.

Stage names are compared folded (case, accents, surrounding spaces); mapping
them to process stages happens later, as for any entry.
"""

from __future__ import annotations

from funnelwise.ingest.staging import Staging, quote
from funnelwise.ingest.validate import Problems


def _fold(text: str) -> str:
    return f"strip_accents(lower(trim({text})))"


def _when(text: str) -> str:
    return f"strftime({text}, '%Y-%m-%d %H:%M')"


def exit_evidence(st: Staging, problems: Problems, entries: str, exits: str, deals: str) -> str:
    """Entries inferred from exit dates (same columns as `entries`), after recording
    the exits that contradict the entries.

    `entries`: _src, _row, deal_id, stage, entered_at. `exits`: _src, _row,
    deal_id, stage, exited_at, _column (the source column, for problems).
    `deals`: _src, _row, deal_id, stage (the current stage), created_at.
    """
    first = st.create(
        st.name("entry_keys"),
        f"SELECT deal_id, {_fold('stage')} AS k, any_value(stage) AS stage, "
        f"min(entered_at) AS entered_at FROM {quote(entries)} GROUP BY 1, 2",
    )
    # Each exit with its own stage's entry and the deal's next entry after that one.
    checked = st.create(
        st.name("exits_checked"),
        f"""SELECT x.*, {_fold("x.stage")} AS k, e.entered_at AS own_entry,
                   (SELECT arg_min(n.stage, n.entered_at) FROM {quote(first)} n
                    WHERE n.deal_id = x.deal_id AND n.k <> {_fold("x.stage")}
                      AND n.entered_at > e.entered_at) AS next_stage,
                   (SELECT min(n.entered_at) FROM {quote(first)} n
                    WHERE n.deal_id = x.deal_id AND n.k <> {_fold("x.stage")}
                      AND n.entered_at > e.entered_at) AS next_entry,
                   (SELECT least(coalesce(min(d.created_at), min(n.entered_at)),
                                 min(n.entered_at))
                    FROM {quote(first)} n LEFT JOIN {quote(deals)} d ON d.deal_id = n.deal_id
                    WHERE n.deal_id = x.deal_id) AS deal_first
            FROM {quote(exits)} x
            LEFT JOIN {quote(first)} e ON e.deal_id = x.deal_id AND e.k = {_fold("x.stage")}
            WHERE x.exited_at IS NOT NULL""",
    )
    problems.add(
        f"SELECT _src, _row, _column, exited_at, 'is before the deal entered ' || stage || "
        f"' (' || {_when('own_entry')} || '); ignored' FROM {quote(checked)} "
        "WHERE exited_at < own_entry AND exited_at < deal_first",
        quarantine=False,
        code="exit before entry",
    )
    earlier = st.scalar(
        f"SELECT count(*) FROM {quote(checked)} "
        "WHERE exited_at < own_entry AND exited_at >= deal_first"
    )
    if earlier:
        st.notes.append(
            f"{earlier:,} exit dates close an earlier visit to their stage (the export keeps "
            "each stage's latest entry): those visits are not in the stage history"
        )
    problems.add(
        f"SELECT _src, _row, _column, exited_at, 'is after the deal entered ' || next_stage || "
        f"' (' || {_when('next_entry')} || '), the stage after ' || stage || '; ignored' "
        f"FROM {quote(checked)} WHERE exited_at >= own_entry AND exited_at > next_entry",
        quarantine=False,
        code="exit after next entry",
    )
    valid = st.create(
        st.name("exits_valid"),
        f"SELECT * FROM {quote(checked)} WHERE NOT coalesce(exited_at < own_entry "
        "OR exited_at > next_entry, false)",
    )
    # Stages the deal was in without an entry date, each with the time it had left
    # by (NULL: the current stage, not left).
    unentered = st.create(
        st.name("unentered"),
        f"""SELECT _src, _row, deal_id, stage, k, min(exited_at) AS left_at
            FROM {quote(valid)} WHERE own_entry IS NULL GROUP BY ALL
            UNION ALL
            SELECT d._src, d._row, d.deal_id, d.stage, {_fold("d.stage")}, NULL
            FROM {quote(deals)} d
            WHERE d.stage IS NOT NULL
              AND coalesce((SELECT max(e.entered_at) FROM {quote(first)} e
                            WHERE e.deal_id = d.deal_id AND e.k = {_fold("d.stage")})
                           < (SELECT max(e.entered_at) FROM {quote(first)} e
                              WHERE e.deal_id = d.deal_id), true)
              AND NOT EXISTS (SELECT 1 FROM {quote(valid)} v
                              WHERE v.deal_id = d.deal_id AND v.k = {_fold("d.stage")}
                                AND v.own_entry IS NULL)""",
    )
    return st.view(
        st.name("exit_entries"),
        f"""SELECT _src, _row, deal_id, stage, entered_at FROM (
                SELECT u._src, u._row, u.deal_id, u.stage,
                       (SELECT max(v.exited_at) FROM {quote(valid)} v
                        WHERE v.deal_id = u.deal_id AND v.k <> u.k
                          AND (u.left_at IS NULL OR v.exited_at < u.left_at)) AS entered_at,
                       u.left_at
                FROM {quote(unentered)} u) p
            WHERE entered_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM {quote(first)} e
                              WHERE e.deal_id = p.deal_id AND e.entered_at >= p.entered_at
                                AND (p.left_at IS NULL OR e.entered_at < p.left_at))""",
    )
