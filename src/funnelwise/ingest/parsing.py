"""Typing source columns in SQL: text, dates in several formats, numbers, booleans.

`typed_table` turns a source table (original columns, mostly text) into a table
of named, typed fields in one pass. A value that cannot be read becomes NULL
and a problem (file, row, column, value, reason); a required field that is
missing or unreadable quarantines its row. All of it runs in DuckDB.

Dates: ISO 8601 (with or without a UTC offset; naive times are read in the
import's time zone, UTC unless told) and day/month/year forms with `/`, `-` or
`.`. Whether `03/04/2024` is March or April is decided per column from the
values that can only be one of the two (`25/04/2024` is day first); when no
value decides, the file's other date columns do, then `--dayfirst` (month first
otherwise, but day first for dates written with dots, 03.04.2024); either way a
note says how the ones that read both ways were read. Dates in another form
than most of their column's (one 15/03/2023 among ISO dates) are read, and a
note says how many, the first row and how it was read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from funnelwise.ingest.staging import SourceFile, Staging, literal, quote
from funnelwise.ingest.validate import Problems

Kind = Literal["text", "timestamp", "date", "number", "integer", "bool"]

_TIMES = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p")
_DAY_FIRST = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y", "%d-%m-%y", "%d.%m.%y")
_MONTH_FIRST = ("%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y", "%m/%d/%y", "%m-%d-%y", "%m.%d.%y")
_NAMED = ("%d %b %Y", "%d-%b-%Y", "%d-%b-%y", "%b %d, %Y", "%d %B %Y", "%B %d, %Y")
_TRUE = ("true", "t", "1", "yes", "y", "x", "si", "sí", "oui", "vrai", "ja", "wahr")
_FALSE = ("false", "f", "0", "no", "n", "non", "faux", "nein", "falsch")
_SQL_TYPES = {
    "text": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "number": "DOUBLE",
    "integer": "BIGINT",
    "bool": "BOOLEAN",
}
_NOUN = {
    "timestamp": "a date and time",
    "date": "a date",
    "number": "a number",
    "integer": "a whole number",
    "bool": "true or false",
}


@dataclass(frozen=True)
class Field:
    """One typed field of a source: from a column, or a constant (`const`)."""

    name: str
    column: str | None = None
    kind: Kind = "text"
    required: bool = False
    const: str | None = None


def source_field(
    src: SourceFile, name: str, *columns: str, kind: Kind = "text", required: bool = False
) -> Field:
    """A field read from the first of `columns` the file has (ignoring case), else NULL."""
    return Field(name, src.pick(*columns), kind, required)


@dataclass(frozen=True)
class ReadOptions:
    """How to read dates (day first where ambiguous, an explicit strptime format) and
    numbers (a decimal comma where nothing in the file decides)."""

    dayfirst: bool = False
    date_format: str | None = None
    local_time: bool = False  # the scratch session's time zone is not UTC
    decimal_comma: bool = False


def _formats(dayfirst: bool) -> list[str]:
    dates = (_DAY_FIRST if dayfirst else _MONTH_FIRST) + _NAMED
    return [d + t for d in dates for t in _TIMES] + ["%Y%m%d", "%Y%m%d%H%M%S"]


def _text(col: str) -> str:
    return f"nullif(trim(CAST({col} AS VARCHAR)), '')"


@dataclass(frozen=True)
class _DateScan:
    day_first: int  # values only readable day first (first number > 12)
    month_first: int  # values only readable month first
    ambiguous: int  # day/month values that read both ways
    offsets: int  # values with a UTC offset or Z
    other: int  # values that are not ISO 8601
    iso: int  # values that look like ISO 8601 (a four-digit year first)
    dotted: int  # of the ambiguous ones, those written with dots (03.04.2024)


# Earlier years come only from a two-digit year read as four digits.
MIN_YEAR = 1000
SAMPLE = 1000  # distinct non-ISO values tried against every format


def _scan_dates(st: Staging, table: str, column: str) -> _DateScan:
    """One cheap pass over a text column: day/month evidence among non-ISO values,
    UTC offsets among ISO ones (a sign or Z after the date part), non-ISO count."""
    row = st.con.execute(
        rf"""
        SELECT count(*) FILTER (WHERE a > 12 AND b <= 12),
               count(*) FILTER (WHERE b > 12 AND a <= 12),
               count(*) FILTER (WHERE a <= 12 AND b <= 12),
               count(*) FILTER (WHERE iso AND (strpos(x[11:], '+') > 0
                                OR strpos(x[11:], '-') > 0 OR x[-1:] = 'Z')),
               count(*) FILTER (WHERE NOT iso), count(*) FILTER (WHERE iso),
               count(*) FILTER (WHERE a <= 12 AND b <= 12 AND regexp_matches(
                                x, '^\d{{1,2}}\.\d{{1,2}}\.'))
        FROM (
            SELECT x, iso, TRY_CAST(g.a AS INTEGER) AS a, TRY_CAST(g.b AS INTEGER) AS b
            FROM (
                SELECT x, iso, CASE WHEN NOT iso THEN regexp_extract(
                           x, '^(\d{{1,2}})[/.\-](\d{{1,2}})[/.\-]\d{{2,4}}', ['a', 'b'])
                       END AS g
                FROM (SELECT x, x LIKE '____-%' OR x LIKE '____/%' AS iso
                      FROM (SELECT trim({quote(column)}) AS x FROM {quote(table)}
                            WHERE {quote(column)} IS NOT NULL))))
        """
    ).fetchone()
    assert row is not None
    return _DateScan(*(int(v) for v in row))


def _fitting_formats(st: Staging, table: str, column: str, candidates: list[str]) -> list[str]:
    """The few formats that read a sample of the column's non-ISO values, most useful
    first: trying dozens of formats on every value would be far too slow."""
    # strptime takes constant formats only: one filtered aggregate per candidate.
    lists = ", ".join(
        f"list(x) FILTER (WHERE year(try_strptime(x, {literal(f)})) >= {MIN_YEAR})"
        for f in candidates
    )
    row = st.con.execute(
        f"""
        WITH sample AS (
            SELECT DISTINCT trim({quote(column)}) AS x FROM {quote(table)}
            WHERE {quote(column)} IS NOT NULL
              AND TRY_CAST(trim({quote(column)}) AS TIMESTAMP) IS NULL LIMIT {SAMPLE})
        SELECT {lists} FROM sample
        """
    ).fetchone()
    assert row is not None
    reads: dict[str, set[str]] = {f: set(xs) for f, xs in zip(candidates, row, strict=True) if xs}
    chosen: list[str] = []
    left: set[str] = set().union(*reads.values()) if reads else set()
    while left:  # greedy cover; on ties the earlier candidate
        best = max(candidates, key=lambda f: len(reads.get(f, set()) & left))
        gain = reads.get(best, set()) & left
        if not gain:
            break
        chosen.append(best)
        left -= gain
    return chosen


def _file_dayfirst(scans: Sequence[_DateScan]) -> bool | None:
    """Whether the date columns of a file that decide (values only one order reads,
    in one order only) say day first, month first, or nothing (None)."""
    clear = [s for s in scans if not (s.day_first and s.month_first)]
    day = sum(s.day_first for s in clear)
    month = sum(s.month_first for s in clear)
    return bool(day) if bool(day) != bool(month) else None


def _choose_dayfirst(
    st: Staging,
    scan: _DateScan,
    column: str,
    file: str,
    options: ReadOptions,
    file_dayfirst: bool | None = None,
) -> bool:
    if scan.day_first and scan.month_first:
        chosen = options.dayfirst if options.dayfirst else scan.day_first > scan.month_first
        st.notes.append(
            f"{file}: column {column!r} mixes day/month and month/day dates "
            f"({scan.day_first} only day first, {scan.month_first} only month first); "
            f"read as {'day' if chosen else 'month'} first, the others are problems"
        )
        return chosen
    if scan.day_first or scan.month_first:
        chosen = bool(scan.day_first)
        if scan.ambiguous:
            n = scan.day_first or scan.month_first
            st.notes.append(
                f"{file}: column {column!r}: {scan.ambiguous:,} of its dates such as 03/04, "
                f"which read both ways, read {'day' if chosen else 'month'} first (03/04 as "
                f"{'3 April' if chosen else 'March 4'}), as {n:,} such as "
                f"{'25/04' if chosen else '04/25'} read no other way"
            )
        return chosen
    if scan.ambiguous and not options.dayfirst and file_dayfirst is not None:
        # One export, one locale: a created date of 05/01 is read as the file's close
        # date of 25/01 shows.
        st.notes.append(
            f"{file}: column {column!r}: {scan.ambiguous:,} of its dates such as 03/04, "
            f"which read both ways, read {'day' if file_dayfirst else 'month'} first (03/04 "
            f"as {'3 April' if file_dayfirst else 'March 4'}), as the file's other date "
            "columns show it"
        )
        return file_dayfirst
    if scan.ambiguous and not options.dayfirst and scan.dotted == scan.ambiguous:
        # Dates with dots are written day first wherever they are common (Germany,
        # Russia, Poland, Turkey, Scandinavia); no locale writes 04.25.2024.
        st.notes.append(
            f"{file}: column {column!r}: {scan.ambiguous:,} of its dates such as 03.04.2024, "
            "which read both ways, read day first (03.04 as 3 April), as dates written "
            "with dots are"
        )
        return True
    if scan.ambiguous and not options.dayfirst:
        st.notes.append(
            f"{file}: column {column!r} has {scan.ambiguous} dates such as 03/04 that read "
            "both ways; read as month first (pass --dayfirst for day first)"
        )
    return options.dayfirst


def date_expr(
    st: Staging,
    table: str,
    column: str,
    *,
    kind: Kind,
    sql_type: str,
    file: str,
    options: ReadOptions,
    scan: _DateScan | None = None,
    file_dayfirst: bool | None = None,
) -> str:
    """SQL reading `column` as a naive-UTC TIMESTAMP (or DATE for kind 'date').

    `scan` is the column's scan when already made; `file_dayfirst` the day order the
    file's other date columns show (see `_file_dayfirst`), for a column that does not
    decide by itself."""
    col = quote(column)
    target = "DATE" if kind == "date" else "TIMESTAMP"
    if sql_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"CAST(timezone('UTC', {col}) AS {target})"
    if sql_type.startswith(("TIMESTAMP", "DATE")):
        return f"CAST({col} AS {target})"
    if sql_type != "VARCHAR":
        return f"TRY_CAST({col} AS {target})"
    scan = scan or _scan_dates(st, table, column)
    x = _text(col)
    if scan.offsets or options.local_time:
        iso = f"timezone('UTC', TRY_CAST({x} AS TIMESTAMPTZ))"
    else:
        iso = f"TRY_CAST({x} AS TIMESTAMP)"
    formats = [options.date_format] if options.date_format else []
    if scan.other:
        dayfirst = _choose_dayfirst(st, scan, column, file, options, file_dayfirst)
        formats += _fitting_formats(st, table, column, _formats(dayfirst))
    if not formats:
        return f"CAST({iso} AS {target})"
    # Two-digit-year forms first: they cannot read a four-digit year, while %Y reads both.
    # An explicit format stays first.
    explicit = int(bool(options.date_format))
    ordered = formats[:explicit] + sorted(
        dict.fromkeys(formats[explicit:]), key=lambda f: "%y" not in f
    )
    fmt = "[" + ", ".join(literal(f) for f in ordered) + "]"
    # %Y also reads a two-digit year ('01.01.00' as year 0): such a value is unreadable
    # under the chosen formats, never a date two thousand years ago.
    parsed = f"try_strptime({x}, {fmt})"
    other = f"CASE WHEN year({parsed}) >= {MIN_YEAR} THEN {parsed} END"
    if options.local_time:
        other = f"timezone('UTC', CAST({other} AS TIMESTAMPTZ))"
    # An explicit format is tried first; otherwise ISO first, the cheap common case.
    first, second = (other, iso) if options.date_format else (iso, other)
    read = f"CAST(coalesce({first}, {second}) AS {target})"
    _note_other_formats(st, table, column, file, scan, iso, ordered, explicit, read)
    return read


def _date_part(fmt: str) -> str:
    """The date form a strptime format reads, without its time of day: values with
    and without a time (14/03/2023, 14/03/2023 10:00) are in the same form."""
    for t in sorted(_TIMES, key=len, reverse=True):
        if t and fmt.endswith(t) and fmt[: -len(t)] in _DAY_FIRST + _MONTH_FIRST + _NAMED:
            return fmt[: -len(t)]
    return fmt


def _note_other_formats(
    st: Staging,
    table: str,
    column: str,
    file: str,
    scan: _DateScan,
    iso: str,
    formats: list[str],
    explicit: int,
    read: str,
) -> None:
    """A note when some of a column's dates are in another form than most of them
    (one 15/03/2023 among 2023-03-14): how many, the first row and how it was read.
    Each value counts in the form that reads it, tried in the order `read` tries them."""
    if len({_date_part(f) for f in formats}) < 2 and not scan.iso:
        return  # one form only: no second scan of the column
    x = _text(quote(column))
    whens = [
        f"WHEN year(try_strptime({x}, {literal(f)})) >= {MIN_YEAR} THEN {literal(_date_part(f))}"
        for f in formats
    ]
    iso_when = f"WHEN {iso} IS NOT NULL THEN 'ISO 8601'"
    whens = [*whens[:explicit], iso_when, *whens[explicit:]]
    rows = st.con.execute(
        f"""
        SELECT form, count(*) AS n, min(_row) AS first,
               arg_min(x, _row), strftime(arg_min(r, _row), '%Y-%m-%d %H:%M')
        FROM (SELECT _row, {x} AS x, {read} AS r, CASE {" ".join(whens)} END AS form
              FROM {quote(table)} WHERE {x} IS NOT NULL)
        WHERE form IS NOT NULL
        GROUP BY form ORDER BY n DESC, first
        """
    ).fetchall()
    if len(rows) < 2:
        return
    main, others = rows[0], rows[1:]
    n = sum(int(r[1]) for r in others)
    total = n + int(main[1])
    first = min(others, key=lambda r: r[2])
    when = str(first[4]).removesuffix(" 00:00")
    st.notes.append(
        f"{file}: column {column!r}: {n:,} of its {total:,} dates {_are(n)} in another form "
        f"than the column's main one ({_form_name(main[0])}, such as {main[3]}); the first on row "
        f"{first[2]}: {first[3]}, read as {when}"
    )


def _form_name(form: str) -> str:
    """%d/%m/%Y as DD/MM/YYYY."""
    for code, name in (("%d", "DD"), ("%m", "MM"), ("%Y", "YYYY"), ("%y", "YY")):
        form = form.replace(code, name)
    return form.replace("%b", "Mon").replace("%B", "Month")


def _are(n: int) -> str:
    return "is" if n == 1 else "are"


# Spaces (also the no-break and narrow ones French and Swiss exports group digits with),
# apostrophes (Swiss grouping), ISO codes and currency symbols (any, as a spreadsheet
# saved as CSV writes them: ₹, ₽, ₩, with the letters of R$, US$ or NZ$), stripped
# before reading.
_NUMBER_NOISE = "[\\s\\x{00A0}\\x{202F}\\x{2009}\\x{0027}\\x{2019}]|[A-Z]{0,2}\\p{Sc}|[A-Z]{3}"
# Values only one decimal mark can read: a second group, both marks, a first group of
# four digits or of 0, or other than three digits after the mark.
_ONLY_COMMA = (
    r"^-?(\d{1,3}(\.\d{3})+,\d+|\d{1,3}(\.\d{3}){2,}|\d*,(\d{1,2}|\d{4,})|\d{4,},\d+|0,\d+)$"
)
_ONLY_POINT = (
    r"^-?(\d{1,3}(,\d{3})+\.\d+|\d{1,3}(,\d{3}){2,}|\d*\.(\d{1,2}|\d{4,})|\d{4,}\.\d+|0\.\d+)$"
)
# 6.100 and 6,100: 6.1 or 6100, by the decimal mark.
_EITHER = r"^-?[1-9]\d{0,2}[.,]\d{3}$"
Decimal = Literal[".", ","]


def _number_text(col: str) -> str:
    return f"regexp_replace(trim({col}), {literal(_NUMBER_NOISE)}, '', 'g')"


@dataclass(frozen=True)
class _NumberScan:
    comma: int  # values only a decimal comma reads
    point: int  # values only a decimal point reads
    either: int  # values such as 6.100 that read both ways


def _scan_numbers(st: Staging, table: str, column: str) -> _NumberScan:
    """One pass over the values of a text column that hold a mark: decimal evidence."""
    x = _number_text(quote(column))
    row = st.con.execute(
        f"""SELECT count(*) FILTER (WHERE regexp_matches(x, {literal(_ONLY_COMMA)})),
                   count(*) FILTER (WHERE regexp_matches(x, {literal(_ONLY_POINT)})),
                   count(*) FILTER (WHERE regexp_matches(x, {literal(_EITHER)}))
            FROM (SELECT {x} AS x FROM {quote(table)}
                  WHERE contains({quote(column)}, '.') OR contains({quote(column)}, ','))"""
    ).fetchone()
    assert row is not None
    return _NumberScan(*(int(v) for v in row))


def _choose_decimals(
    st: Staging, scans: dict[str, _NumberScan], file: str, options: ReadOptions
) -> dict[str, Decimal]:
    """The decimal mark of each number column: its own values decide, else the option
    (--decimal-comma), else those of the file's other number columns (one export,
    one locale), else a point. Whenever values that read both ways (6.100) are
    decided by anything but the option, a note says how and why."""
    comma = sum(s.comma for s in scans.values() if not (s.comma and s.point))
    point = sum(s.point for s in scans.values() if not (s.comma and s.point))
    chosen: dict[str, Decimal] = {}
    for column, scan in scans.items():
        word = {",": "comma", ".": "point"}
        why = ""
        if scan.comma and scan.point:
            mark: Decimal = "," if scan.comma > scan.point else "."
            st.notes.append(
                f"{file}: column {column!r} mixes decimal commas and points ({scan.comma:,} "
                f"values only a comma reads, {scan.point:,} only a point): each is read by "
                f"its own mark, and the {scan.either:,} such as 6.100 that read both ways "
                f"with a decimal {word[mark]}"
            )
        elif scan.comma or scan.point:
            mark = "," if scan.comma else "."
            n = scan.comma or scan.point
            why = f"{n:,} of its values read no other way"
        elif options.decimal_comma:
            mark = ","
        elif bool(comma) != bool(point):
            mark = "," if comma else "."
            why = "the file's other number columns show it"
        else:
            mark = "."
            if scan.either:
                st.notes.append(
                    f"{file}: column {column!r} has numbers such as 6.100 or 6,100 "
                    f"({scan.either:,} of them) that nothing in the file decides; read with "
                    "a decimal point "
                    "(6.100 as 6.1, 6,100 as 6100; pass --decimal-comma for the other way)"
                )
        if why and scan.either:
            example = "6.100 as 6100" if mark == "," else "6.100 as 6.1"
            st.notes.append(
                f"{file}: column {column!r}: {scan.either:,} numbers such as 6.100 read with a "
                f"decimal {word[mark]} ({example}), as {why}"
            )
        chosen[column] = mark
    return chosen


def number_expr(column: str, sql_type: str, decimal: Decimal = ".") -> str:
    """SQL reading a column as DOUBLE: plain numbers, 1,234.56, 1.234,56, 12,5, with
    spaces, apostrophes, currency symbols and codes stripped. Each value is read by
    the mark it can only have; `decimal` reads those that can have either (6.100:
    6.1 with a point, 6100 with a comma). NaN and infinities (`nan`, `inf`, `1e400`)
    are not read: they would turn every sum of the column into NaN or infinity."""
    col = quote(column)
    if sql_type != "VARCHAR":
        return _finite(f"TRY_CAST({col} AS DOUBLE)")
    c = _number_text(col)
    commas_out = f"replace({c}, ',', '')"
    dots_out = f"replace(replace({c}, '.', ''), ',', '.')"
    rules = [
        # Grouping that only one mark can make (decimals after it, or several groups),
        # then one group that either could, then a lone decimal comma.
        (r"^-?[1-9]\d{0,2}(,\d{3})+\.\d+$", commas_out),
        (r"^-?[1-9]\d{0,2}(,\d{3}){2,}$", commas_out),
        (r"^-?[1-9]\d{0,2}(\.\d{3})+,\d+$", dots_out),
        (r"^-?[1-9]\d{0,2}(\.\d{3}){2,}$", dots_out),
        (r"^-?[1-9]\d{0,2},\d{3}$", commas_out if decimal == "." else dots_out),
        (r"^-?[1-9]\d{0,2}\.\d{3}$", c if decimal == "." else dots_out),
        (r"^-?\d*,\d+$", f"replace({c}, ',', '.')"),
    ]
    cases = " ".join(f"WHEN regexp_matches({c}, {literal(r)}) THEN {out}" for r, out in rules)
    text = _text(col)
    # The common plain number is read as it is, without the patterns.
    plain = (
        text
        if decimal == "."
        else f"CASE WHEN NOT (contains({text}, '.') OR contains({text}, ',')) THEN {text} END"
    )
    return _finite(
        f"coalesce(TRY_CAST({plain} AS DOUBLE), TRY_CAST(CASE {cases} ELSE {c} END AS DOUBLE))"
    )


def _finite(number: str) -> str:
    """SQL for a DOUBLE expression with NaN and the infinities made NULL."""
    # nullif evaluates its argument once (a CASE on isfinite would parse twice).
    return f"nullif(nullif(nullif({number}, 'nan'::DOUBLE), 'inf'::DOUBLE), '-inf'::DOUBLE)"


def bool_expr(column: str, sql_type: str) -> str:
    """SQL reading a column as BOOLEAN (true/false, 1/0, yes/no and a few languages)."""
    col = quote(column)
    if sql_type == "BOOLEAN":
        return col
    low = f"lower(trim(CAST({col} AS VARCHAR)))"
    yes = ", ".join(literal(v) for v in _TRUE)
    no = ", ".join(literal(v) for v in _FALSE)
    return f"CASE WHEN {low} IN ({yes}) THEN true WHEN {low} IN ({no}) THEN false END"


def typed_table(
    st: Staging,
    source: str,
    fields: Sequence[Field],
    problems: Problems,
    *,
    src: int,
    options: ReadOptions,
    where: str | None = None,
    keep: Sequence[str] = (),
) -> str:
    """A new scratch table or view with `_src`, `_row`, the typed fields and the `keep`
    columns.

    Unreadable values become NULL and a problem; rows whose required fields are
    missing or unreadable are quarantined. `source` must have `_row`.
    """
    types = st.columns(source)
    file = st.files[src].name
    inner = ["_row"]
    outer = [f"{src} AS _src", "_row"]
    checks: list[tuple[Field, str | None]] = []
    numbers = {
        f.column: _scan_numbers(st, source, f.column)
        for f in fields
        if f.kind in ("number", "integer") and f.column and types.get(f.column) == "VARCHAR"
    }
    decimals = _choose_decimals(st, numbers, file, options) if numbers else {}
    dates = {
        f.column: _scan_dates(st, source, f.column)
        for f in fields
        if f.kind in ("timestamp", "date") and f.column and types.get(f.column) == "VARCHAR"
    }
    file_dayfirst = _file_dayfirst(list(dates.values()))
    for i, f in enumerate(fields):
        if f.const is not None:
            outer.append(f"{literal(f.const)} AS {quote(f.name)}")
            continue
        if f.column is None:
            outer.append(f"CAST(NULL AS {_SQL_TYPES[f.kind]}) AS {quote(f.name)}")
            if f.required:
                checks.append((f, None))
            continue
        if f.column not in types:
            raise AssertionError(f"{f.column!r} not in {source}")  # readers check columns
        sql_type = types[f.column]
        col = quote(f.column)
        if f.kind == "text":
            expr = _text(col)
        elif f.kind in ("timestamp", "date"):
            expr = date_expr(
                st,
                source,
                f.column,
                kind=f.kind,
                sql_type=sql_type,
                file=file,
                options=options,
                scan=dates.get(f.column),
                file_dayfirst=file_dayfirst,
            )
        elif f.kind == "number":
            expr = number_expr(f.column, sql_type, decimals.get(f.column, "."))
        elif f.kind == "integer":
            number = number_expr(f.column, sql_type, decimals.get(f.column, "."))
            expr = f"TRY_CAST(round({number}) AS BIGINT)"
        else:
            expr = bool_expr(f.column, sql_type)
        inner.append(f"{expr} AS _v{i}")
        outer.append(f"_v{i} AS {quote(f.name)}")
        if f.kind != "text":
            # The raw text is kept only where it could not be read, for the problem list;
            # made only there (turning every typed value into text costs a lot).
            inner.append(f"{col} AS _t{i}")
            outer.append(
                f"CASE WHEN _v{i} IS NULL THEN {_text(f'_t{i}')} END AS {quote('_bad_' + f.name)}"
            )
        checks.append((f, f.column))
    inner += [quote(k) for k in keep]
    outer += [quote(k) for k in keep]
    query = f"SELECT {', '.join(inner)} FROM {quote(source)}"
    if where:
        query += f" WHERE {where}"
    # Text to parse is parsed once into a table; typed sources (Parquet) stay a view,
    # read where they are used rather than copied.
    parses = any(
        f.kind != "text" and f.column is not None and types.get(f.column) == "VARCHAR"
        for f in fields
    )
    make = st.create if parses else st.view
    table = make(st.name("typed"), f"SELECT {', '.join(outer)} FROM ({query})")
    # Every check of every field in one scan of the new table.
    found: list[tuple[str, str, str, str, bool, str]] = []  # when, column, value, why, q, kind
    for f, column in checks:
        label = column or f.name
        bad = quote("_bad_" + f.name)
        if f.kind != "text" and column is not None:
            found.append(
                (f"{bad} IS NOT NULL", label, bad, "not " + _NOUN[f.kind], f.required, "unreadable")
            )
        if f.required:
            missing = f"{quote(f.name)} IS NULL"
            if f.kind != "text" and column is not None:
                missing += f" AND {bad} IS NULL"
            found.append((missing, label, "NULL", "required value is missing", True, "missing"))
    if found:
        items = ", ".join(
            f"CASE WHEN {when} THEN {{'c': {literal(c)}, 'v': CAST({v} AS VARCHAR), "
            f"'m': {literal(m)}, 'q': {q}, 'k': {literal(k)}}} END"
            for when, c, v, m, q, k in found
        )
        any_bad = " OR ".join(f"({when})" for when, *_ in found)
        problems.add_many(
            f"SELECT _src, _row, p.c, p.v, p.m, p.q, p.k FROM (SELECT _src, _row, "
            f"unnest(list_filter([{items}], x -> x IS NOT NULL)) AS p "
            f"FROM {quote(table)} WHERE {any_bad})"
        )
    return table
