"""Exporting the log for process-mining tools: an event table and an XES file.

The table has PM4Py's column names (`case:concept:name`, `concept:name`,
`time:timestamp` in UTC, `lifecycle:transition`, `org:resource`) plus
`funnelwise:kind` (stage or activity), `funnelwise:seq` and deal columns as
`case:*`; rows are sorted by case, time and `seq`, as PM4Py needs. The XES file
has one trace per deal (deal id, pipeline, amount, currency, outcome) and one
event per stage entry (named by stage id) and, if asked, per activity. Imported
again, stage ids map back to their stages, and each deal keeps its pipeline and
currency (`funnelwise:pipeline`, `funnelwise:currency`); its outcome and owner
(`funnelwise:outcome`, `funnelwise:owner`) follow from the events again.

Both are built as Ibis expressions; the XES lines are formatted in the engine
and streamed to the file in batches, so memory stays flat.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from funnelwise.analytics.common import union_all
from funnelwise.errors import InputError
from funnelwise.ingest.xes_tables import CASE_KEYS, CASE_PREFIX
from funnelwise.log import EventLog
from funnelwise.outfile import atomic_output

XES_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0" xes.features="nested-attributes" xmlns="http://www.xes-standard.org/">
  <extension name="Concept" prefix="concept" uri="http://www.xes-standard.org/concept.xesext"/>
  <extension name="Time" prefix="time" uri="http://www.xes-standard.org/time.xesext"/>
  <extension name="Lifecycle" prefix="lifecycle" uri="http://www.xes-standard.org/lifecycle.xesext"/>
  <extension name="Organizational" prefix="org" uri="http://www.xes-standard.org/org.xesext"/>
  <classifier name="Activity" keys="concept:name"/>
  <string key="source" value="funnelwise"/>
"""
BATCH_ROWS = 100_000


def _events(log: EventLog, activities: bool) -> ir.Table:
    """Stage entries (and activities) with the PM4Py column names, unsorted."""
    s = log.stage_events
    stages = s.select(
        case=s.deal_id,
        name=s.stage_id,
        at=s.entered_at,
        resource=s.actor_id,
        kind=ibis.literal("stage"),
        seq=s.seq,
        lifecycle=ibis.literal("complete"),
    )
    if not activities:
        return stages
    a = log.activities.filter(log.activities.deal_id.notnull())
    # Activity ids from XES imports end in their lifecycle transition.
    tail = a.activity_id.split(":")[-1]
    acts = a.select(
        case=a.deal_id,
        name=a.kind,
        at=a.at,
        resource=a.owner_id,
        kind=ibis.literal("activity"),
        seq=ibis.null("int64"),
        lifecycle=ibis.ifelse(
            tail.isin(["schedule", "start", "complete"]), tail, ibis.literal("complete")
        ),
    )
    return union_all(stages, acts)


def event_table(log: EventLog, *, activities: bool = False) -> pa.Table:
    """The log as a PM4Py-compatible event table (Arrow), sorted by case, time, seq.

    `time:timestamp` is UTC (timezone-aware); deal columns come as `case:pipeline`,
    `case:amount`, `case:currency`, `case:outcome`, `case:owner`.
    """
    e = _events(log, activities)
    d = log.deals
    j = e.join(
        d.select("deal_id", "pipeline_id", "amount", "currency", "outcome", owner="owner_id"),
        e.case == d.deal_id,
    )
    order = [j.case, j.at, (j.kind == "activity").cast("int8"), j.seq]
    out = j.order_by(order).select(
        **{
            "case:concept:name": j.case,
            "concept:name": j.name,
            "time:timestamp": j.at,
            "lifecycle:transition": j.lifecycle,
            "org:resource": j.resource,
            "funnelwise:kind": j.kind,
            "funnelwise:seq": j.seq,
            "case:pipeline": j.pipeline_id,
            "case:amount": j.amount,
            "case:currency": j.currency,
            "case:outcome": j.outcome,
            "case:owner": j.owner,
        }
    )
    table = out.to_pyarrow()
    i = table.column_names.index("time:timestamp")
    utc = table.column(i).cast(pa.timestamp("us", tz="UTC"))
    return table.set_column(i, "time:timestamp", utc)


def write_event_table(log: EventLog, path: Path, *, activities: bool = False) -> int:
    """Write the event table as CSV or Parquet (by suffix); returns the rows written."""
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise InputError(f"{path.name}: export a table as .csv or .parquet")
    table = event_table(log, activities=activities)
    with atomic_output(path) as temp:
        if suffix == ".csv":
            pa_csv.write_csv(table, temp)
        else:
            pq.write_table(table, temp)
    return table.num_rows


def _xml(value: ir.Value) -> ir.StringValue:
    """XML-escaped text of a value."""
    text = value.cast("string")
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        text = text.replace(raw, escaped)
    return text


def _attr(tag: str, key: str, value: ir.Value, indent: int) -> ir.StringValue:
    """`<tag key=".." value=".."/>` on a line of its own (a newline, then `indent`
    spaces), or '' when the value is NULL."""
    start = f'\n{" " * indent}<{tag} key="{key}" value="'
    line = ibis.literal(start) + _xml(value) + ibis.literal('"/>')
    return line.fill_null("")


def _when(value: ir.TimestampValue) -> ir.StringValue:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + ibis.literal("+00:00")


# The XES type of a deal attribute's JSON value (strings, and anything else, as string).
_XES_TYPES = {"BIGINT": "int", "UBIGINT": "int", "DOUBLE": "float", "BOOLEAN": "boolean"}


def _attribute_lines(log: EventLog, deals: ir.Table) -> ir.Table:
    """Per deal (`case`), its attributes as trace attribute lines (`attr_lines`), in
    key order, typed as int, float, boolean or string. Lists, objects and nulls are
    left out, and so are keys the trace head writes itself."""
    sql = log.store.backend.compile(deals.select("deal_id", "attributes"))

    def esc(x: str) -> str:
        for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
            x = f"replace({x}, '{raw}', '{escaped}')"
        return x

    types = " ".join(f"WHEN '{j}' THEN '{x}'" for j, x in _XES_TYPES.items())
    tag = f"CASE json_type(j.value) {types} ELSE 'string' END"
    taken = ", ".join(f"'{k}'" for k in ("concept:name", "amount"))
    return log.store.backend.sql(
        f"""SELECT deal_id AS "case", string_agg(
                chr(10) || '    <' || {tag} || ' key="' || {esc("j.key")} || '" value="'
                || {esc("(j.value ->> '$')")} || '"/>', '' ORDER BY j.key) AS attr_lines
            FROM ({sql}) d, json_each(d.attributes) j
            WHERE json_type(j.value) NOT IN ('OBJECT', 'ARRAY', 'NULL')
              AND j.key NOT IN ({taken}) AND NOT starts_with(j.key, '{CASE_PREFIX}')
            GROUP BY deal_id"""
    )


def xes_lines(log: EventLog, *, activities: bool = False) -> ir.Table:
    """The XES text in file order, one row (`line`) per trace head, event and trace
    end, each element on a line of its own (what the quick XES reader reads). A
    trace carries its deal's attributes (`_attribute_lines`)."""
    e = _events(log, activities)
    d = log.deals
    extra = _attribute_lines(log, d)
    h = d.left_join(extra, d.deal_id == extra.case)
    head = h.select(
        case=h.deal_id,
        part=ibis.literal(0),
        at=ibis.null("timestamp"),
        order=ibis.null("int64"),
        line=ibis.literal("  <trace>")
        + _attr("string", "concept:name", h.deal_id, 4)
        + _attr("string", CASE_KEYS["pipeline"], h.pipeline_id, 4)
        + _attr("float", "amount", h.amount, 4)
        + _attr("string", CASE_KEYS["currency"], h.currency, 4)
        + _attr("string", f"{CASE_PREFIX}outcome", h.outcome, 4)
        + _attr("string", f"{CASE_PREFIX}owner", h.owner_id, 4)
        + h.attr_lines.fill_null(""),
    )
    body = e.select(
        case=e.case,
        part=ibis.literal(1),
        at=e.at,
        order=(e.kind == "activity").cast("int64") * 10**12 + e.seq.fill_null(0),
        line=ibis.literal("    <event>")
        + _attr("string", "concept:name", e.name, 6)
        + _attr("date", "time:timestamp", _when(e.at), 6)
        + _attr("string", "lifecycle:transition", e.lifecycle, 6)
        + _attr("string", "org:resource", e.resource, 6)
        + _attr("string", "funnelwise:kind", e.kind, 6)
        + ibis.literal("\n    </event>"),
    )
    tail = d.select(
        case=d.deal_id,
        part=ibis.literal(2),
        at=ibis.null("timestamp"),
        order=ibis.null("int64"),
        line=ibis.literal("  </trace>"),
    )
    lines = union_all(head, body.filter(body.case.isin(d.deal_id)), tail)
    return lines.order_by(["case", "part", "at", "order"]).select("line")


def _text_out(path: Path, *, gz: bool) -> IO[str]:
    """A text file to write, gzip-compressed if `gz`."""
    if gz:
        return gzip.open(path, "wt", encoding="utf-8")
    return path.open("w", encoding="utf-8")


def write_xes(log: EventLog, path: Path, *, activities: bool = False) -> int:
    """Write the log as XES (gzip when the name ends in .gz), one element per line;
    returns the lines written."""
    if path.suffix.lower() in (".csv", ".parquet", ".pq", ".xlsx", ".json"):
        # A table's name is a slip: the XES written under it would not read as one.
        raise InputError(
            f"{path.name}: export XES as .xes or .xes.gz (for a CSV or Parquet event "
            "table: funnelwise export table FILE)"
        )
    lines = xes_lines(log, activities=activities)
    written = XES_HEAD.count("\n") + 1  # the header's lines and the closing </log>
    gz = path.name.lower().endswith(".gz")
    with atomic_output(path) as temp, _text_out(temp, gz=gz) as fh:
        fh.write(XES_HEAD)
        # Streamed from the engine in batches (compiled here: the store is DuckDB).
        sql = log.store.backend.compile(lines)
        for batch in log.store.raw.execute(sql).to_arrow_reader(BATCH_ROWS):
            column = batch.column(0)
            fh.write("\n".join(column.to_pylist()))
            fh.write("\n")
            written += len(column) + (pc.sum(pc.count_substring(column, "\n")).as_py() or 0)
        fh.write("</log>\n")
    return written
