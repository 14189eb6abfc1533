"""Currency conversion of deal amounts into the process currency.

Rates come from an `--fx` file in one of three shapes, recognised by its columns:

- `currency, date, rate`: `rate` is process currency per one unit of `currency`,
  valid from `date` until the next date of that currency;
- Salesforce DatedConversionRate (`IsoCode, ConversionRate, StartDate`, ...) and
- Salesforce CurrencyType (`IsoCode, ConversionRate`, ...): Salesforce rates are
  units of the currency per one unit of the corporate currency; they are turned
  around, and rebased when the process currency is not the corporate one.

Rates stored by earlier imports count too. A deal is converted at the rate in
force on its close date (or expected close date, or creation date); before a
currency's first rate, the first rate applies. A currency without any rate
stops the import with the list of currencies. The original amount and currency
stay on the deal.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from funnelwise.errors import SourceImportError
from funnelwise.ingest.parsing import Field, ReadOptions, typed_table
from funnelwise.ingest.staging import Staging, literal, quote
from funnelwise.ingest.validate import Problems

STATIC_DATE = dt.date(1900, 1, 1)  # the "from" date of rates without one


def read_fx(
    st: Staging,
    path: Path,
    problems: Problems,
    *,
    currency: str,
    options: ReadOptions,
    encoding: str | None = None,
) -> str:
    """Read an --fx file into a scratch table (currency, date, rate) in process-currency
    units per unit of `currency`. Rows that cannot be read are problems."""
    src = st.read(path, encoding=encoding)
    idx = len(st.files) - 1
    cols = src.columns
    salesforce = src.pick("IsoCode") is not None
    if salesforce:
        cur, rate, day = src.pick("IsoCode"), src.pick("ConversionRate"), src.pick("StartDate")
    else:
        cur, rate, day = src.pick("currency"), src.pick("rate"), src.pick("date")
    if cur is None or rate is None:
        raise SourceImportError(
            f"{path.name}: an --fx file needs columns currency, date, rate (rate = "
            f"{currency} per one unit of the currency), or a Salesforce DatedConversionRate "
            f"or CurrencyType export (IsoCode, ConversionRate); found columns: {', '.join(cols)}"
        )
    fields = [
        Field("currency", cur, required=True),
        Field("rate", rate, "number", required=True),
        Field("date", day, "date", required=True)
        if day
        else Field("date", const=STATIC_DATE.isoformat()),
    ]
    typed = typed_table(st, src.table, fields, problems, src=idx, options=options)
    problems.add(
        f"SELECT _src, _row, {literal(rate)}, rate, 'is not a positive rate' "
        f"FROM {quote(typed)} WHERE rate <= 0",
        quarantine=True,
        code="bad rate",
    )
    rates = (
        "SELECT upper(currency) AS currency, CAST(date AS DATE) AS date, rate "
        f"FROM ({problems.clean(typed)})"
    )
    if not salesforce:
        return st.create(st.name("fx"), rates)
    # Salesforce: units of the currency per corporate unit. Rebase on the process
    # currency where it is listed, else the corporate currency is the process one.
    return st.create(
        st.name("fx"),
        f"""
        WITH r AS ({rates}),
        base AS (SELECT date, rate AS base_rate FROM r WHERE currency = {literal(currency)})
        SELECT r.currency, r.date, coalesce(b.base_rate, 1.0) / r.rate AS rate
        FROM r ASOF LEFT JOIN base b ON r.date >= b.date
        """,
    )


def rates_table(st: Staging, stored: str, from_file: str | None) -> str:
    """All known rates: the stored ones (table `stored`) and the file's (the file wins
    on the same date)."""
    query = f"SELECT currency, date, rate FROM {stored}"
    if from_file:
        query = (
            f"SELECT currency, date, rate FROM {quote(from_file)} UNION ALL "
            f"SELECT * FROM ({query}) s WHERE NOT EXISTS (SELECT 1 FROM {quote(from_file)} f "
            "WHERE f.currency = s.currency AND f.date = s.date)"
        )
    return st.create(st.name("rates"), query)


def convert(st: Staging, deals: str, rates: str, *, currency: str) -> str:
    """`deals` with amount_base in the process currency; raises SourceImportError naming
    currencies that have amounts but no rate."""
    missing = st.sql(
        f"""SELECT d.currency, count(*) FROM {quote(deals)} d
            WHERE d.amount IS NOT NULL AND d.currency IS NOT NULL
              AND d.currency <> {literal(currency)}
              AND d.currency NOT IN (SELECT currency FROM {quote(rates)})
            GROUP BY 1 ORDER BY 2 DESC, 1"""
    )
    if missing:
        listed = ", ".join(f"{c} ({n} deal{'' if n == 1 else 's'})" for c, n in missing)
        raise SourceImportError(
            f"no exchange rate to {currency} for {listed}; pass --fx FILE with columns "
            f"currency, date, rate ({currency} per one unit of the currency), or Salesforce's "
            "DatedConversionRate / CurrencyType export"
        )
    foreign = st.scalar(
        f"SELECT count(*) FROM {quote(deals)} WHERE amount IS NOT NULL "
        f"AND currency IS NOT NULL AND currency <> {literal(currency)}"
    )
    if not foreign:
        return st.view(st.name("deals_fx"), f"SELECT *, amount AS amount_base FROM {quote(deals)}")
    first = st.create(
        st.name("firstrate"),
        f"SELECT currency, arg_min(rate, date) AS rate FROM {quote(rates)} GROUP BY 1",
    )
    on = "coalesce(CAST(d.closed_at AS DATE), d.expected_close_date, CAST(d.created_at AS DATE))"
    return st.view(
        st.name("deals_fx"),
        f"""
        SELECT d.* EXCLUDE (_fx_on),
            CASE WHEN d.amount IS NULL THEN NULL
                 WHEN d.currency IS NULL OR d.currency = {literal(currency)} THEN d.amount
                 ELSE d.amount * coalesce(r.rate, f.rate) END AS amount_base
        FROM (SELECT *, {on} AS _fx_on FROM {quote(deals)} d) d
        ASOF LEFT JOIN {quote(rates)} r ON d.currency = r.currency AND d._fx_on >= r.date
        LEFT JOIN {quote(first)} f ON f.currency = d.currency
        """,
    )
