"""The scratch database where an import is read, typed and checked before loading.

Every import works in its own in-memory DuckDB database with a memory limit
(it spills to a scratch folder beyond that), so reading and checking millions
of rows never touches the store and keeps memory bounded. Source files become
tables `src_<n>` with their original columns plus `_row`, the row number a
spreadsheet would show (the header is row 1, the first record row 2).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import re
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from funnelwise.errors import SourceImportError
from funnelwise.ingest.encoding import lf_copy, utf8_copy
from funnelwise.store import Store

MEMORY_LIMIT = "1GB"
SCRATCH_CHECKPOINT = "64GB"
MAX_RESTARTS = 100  # unclosed quotes in a CSV after which it is not read at all
# A text cell may hold a pasted mail thread or an inline image: DuckDB's default of
# 2 MB per record set such deals aside. The buffer stays at DuckDB's default size.
_RECORD_LIMIT = f"max_line_size = {16 << 20}, buffer_size = {32 << 20}"
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet", ".pq")


def quote(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class SourceFile:
    """One file read into the scratch database."""

    name: str  # shown in problems: the file name
    path: Path
    sha256: str
    table: str  # scratch table: original columns + _row
    columns: tuple[str, ...]  # original column names, in file order
    rows: int
    encoding: str | None = None

    def pick(self, *names: str) -> str | None:
        """The first of `names` that is a column (matched ignoring case), else None."""
        lower = {c.lower(): c for c in self.columns}
        return next((lower[n.lower()] for n in names if n.lower() in lower), None)


class Staging:
    """The scratch database of one import, attached to the store's connection.

    The scratch tables live in an in-memory database attached beside the store
    (and made the default catalog while the import runs), so checked rows reach
    the store by plain INSERT ... SELECT, without leaving the engine. A memory
    limit (spilling to the store's temporary folder) bounds what the import may use.
    Use as a context manager; `in_store()` switches to the store's catalog for
    the load.
    """

    _serial = itertools.count()

    def __init__(
        self, store: Store, *, memory_limit: str = MEMORY_LIMIT, timezone: str = "UTC"
    ) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="funnelwise-import-"))
        self.con = store.raw
        self.store_db = str(self.con.execute("SELECT current_database()").fetchone()[0])
        self.db = f"fw_import_{next(self._serial)}"
        # Spilling goes to the store's own temporary folder (DuckDB's default).
        settings = ("memory_limit", "TimeZone", "enable_progress_bar", "checkpoint_threshold")
        self._restore = {
            k: self.con.execute(f"SELECT current_setting('{k}')").fetchone()[0] for k in settings
        }
        # Compressed like a database file: millions of rows fit the memory limit.
        self.con.execute(f"ATTACH ':memory:' AS {self.db} (COMPRESS)")
        self.con.execute(f"USE {self.db}")
        self.con.execute(f"SET memory_limit = {literal(memory_limit)}")
        self.con.execute("SET enable_progress_bar = false")
        # The scratch database is never checkpointed (compressed) while it is filled:
        # compressing every table it makes costs more than it saves.
        self.con.execute(f"SET checkpoint_threshold = {literal(SCRATCH_CHECKPOINT)}")
        try:
            self.con.execute(f"SET TimeZone = {literal(timezone)}")
        except duckdb.Error as exc:
            self.close()
            raise SourceImportError(
                f"unknown time zone {timezone!r}; use an IANA name such as UTC, "
                "Europe/Madrid or America/New_York"
            ) from exc
        self.files: list[SourceFile] = []
        self.notes: list[str] = []  # decisions worth telling the user (date order, ...)
        self._names = itertools.count()
        self._hashing = ThreadPoolExecutor(max_workers=1)
        self._hashes: dict[int, Future[str]] = {}
        self._attached: list[str] = []
        # SQL for (_src, _row, value, reason) of CSV records that could not be read.
        self.unparsed: list[str] = []

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the scratch database and its folder; restore the connection's settings."""
        self._hashing.shutdown(wait=True, cancel_futures=True)
        for name in self._attached:
            self.con.unregister(name)
        self.con.execute(f"USE {quote(self.store_db)}")
        self.con.execute(f"DETACH DATABASE IF EXISTS {self.db}")
        for key, value in self._restore.items():
            if value not in (None, ""):
                self.con.execute(f"SET {key} = {literal(str(value))}")
        shutil.rmtree(self.scratch, ignore_errors=True)

    @contextmanager
    def in_store(self) -> Iterator[None]:
        """Make the store's catalog the default (scratch tables then need `q()`)."""
        self.con.execute(f"USE {quote(self.store_db)}")
        # Loaded rows carry their order (`seq`): inserting them in any order lets the
        # engine write in parallel.
        self.con.execute("SET preserve_insertion_order = false")
        # The store checkpoints as it always does.
        threshold = self._restore["checkpoint_threshold"]
        self.con.execute(f"SET checkpoint_threshold = {literal(str(threshold))}")
        try:
            yield
        finally:
            self.con.execute("RESET preserve_insertion_order")
            self.con.execute(f"SET checkpoint_threshold = {literal(SCRATCH_CHECKPOINT)}")
            self.con.execute(f"USE {self.db}")

    def q(self, table: str) -> str:
        """A scratch table's name, qualified: usable from the store's catalog."""
        return f"{self.db}.main.{quote(table)}"

    def store_table(self, table: str) -> str:
        """A store table's name, qualified: usable from the scratch catalog."""
        return f"{quote(self.store_db)}.main.{quote(table)}"

    def hashed(self) -> list[SourceFile]:
        """The source files, with their SHA-256 (computed beside the reading)."""
        for i, future in self._hashes.items():
            self.files[i] = replace(self.files[i], sha256=future.result())
        self._hashes.clear()
        return self.files

    def attach(self, name: str, data: pa.Table) -> str:
        """Make an Arrow table readable as `name` until the import ends (no copy)."""
        self.con.register(name, data)
        self._attached.append(name)
        return name

    def add_file(self, src: SourceFile, digest: Future[str] | None = None) -> SourceFile:
        """Record a source file; its hash is computed in the background."""
        self._hashes[len(self.files)] = digest or self._hashing.submit(file_hash, src.path)
        self.files.append(src)
        return src

    # -- SQL helpers -------------------------------------------------------------
    def name(self, prefix: str) -> str:
        """A fresh table name."""
        return f"{prefix}_{next(self._names)}"

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and fetch all rows (for compact results only)."""
        return self.con.execute(query, params or []).fetchall()

    def scalar(self, query: str, params: list[Any] | None = None) -> Any:
        """The first value of the first row."""
        row = self.con.execute(query, params or []).fetchone()
        return None if row is None else row[0]

    def create(self, name: str, query: str) -> str:
        """CREATE OR REPLACE TABLE name AS query; returns name."""
        self.con.execute(f"CREATE OR REPLACE TABLE {quote(name)} AS {query}")
        return name

    def view(self, name: str, query: str) -> str:
        """CREATE OR REPLACE VIEW name AS query; returns name."""
        self.con.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS {query}")
        return name

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> DuckDB type of a scratch table."""
        rows = self.sql(f"DESCRIBE {quote(table)}")
        return {r[0]: str(r[1]) for r in rows}

    def count(self, table: str) -> int:
        """Rows of a scratch table."""
        return int(self.scalar(f"SELECT count(*) FROM {quote(table)}"))

    def register(self, name: str, data: pa.Table) -> str:
        """Copy an Arrow table into the scratch database."""
        self.con.register("_fw_arrow", data)
        try:
            self.create(name, "SELECT * FROM _fw_arrow")
        finally:
            self.con.unregister("_fw_arrow")
        return name

    # -- reading sources -----------------------------------------------------------
    def read(
        self,
        path: Path,
        *,
        encoding: str | None = None,
        delimiter: str | None = None,
        sheet: str | None = None,
    ) -> SourceFile:
        """Read a CSV, Parquet or Excel file into a scratch table (CSV and Excel as text)."""
        path = Path(path)
        if not path.is_file():
            raise SourceImportError(f"{path}: file not found")
        suffix = path.suffix.lower()
        if suffix in PARQUET_SUFFIXES:
            return self._read_parquet(path)
        if suffix in EXCEL_SUFFIXES:
            return self._read_excel(path, sheet)
        if suffix in CSV_SUFFIXES or suffix == "":
            return self._read_csv(path, encoding, delimiter)
        raise SourceImportError(
            f"{path.name}: cannot read {suffix!r} files; use CSV, Parquet or Excel (.xlsx)"
        )

    def _add(
        self, path: Path, table: str, encoding: str | None, digest: Future[str] | None = None
    ) -> SourceFile:
        cols = tuple(c for c in self.columns(table) if c != "_row")
        dupes = [c for c in cols if c.startswith("_row") or c.startswith("_fw")]
        if dupes:
            raise SourceImportError(f"{path.name}: column names {dupes} are reserved; rename them")
        src = SourceFile(
            name=path.name,
            path=path,
            sha256="",
            table=table,
            columns=cols,
            rows=self.count(table),
            encoding=encoding,
        )
        return self.add_file(src, digest)

    def _read_csv(self, path: Path, encoding: str | None, delimiter: str | None) -> SourceFile:
        # Hash while DuckDB parses: both release the interpreter.
        digest = self._hashing.submit(file_hash, path)
        readable, codec = utf8_copy(path, encoding, self.scratch)
        if _blank(readable):
            # DuckDB reads an empty file as one column named column0, which every
            # reader would then report as a file lacking its columns.
            raise SourceImportError(
                f"{path.name} is empty: not even a header row; export the file again"
            )
        table = self.name("src")
        # RFC 4180 quoting always: detection would take a stray quote for plain text.
        opts = ["header = true", "all_varchar = true", "strict_mode = true", "quote = '\"'"]
        opts += ["escape = '\"'", _RECORD_LIMIT]
        if delimiter:
            opts.append(f"delim = {literal(delimiter)}")

        def read_strictly(readable: Path) -> None:
            reader = f"read_csv({literal(str(readable))}, {', '.join(opts)})"
            self.create(f"{table}_data", f"SELECT * FROM {reader}")
            if not delimiter and _one_glued_column(self.columns(f"{table}_data")):
                # Records of varying length can make the dialect detection settle on
                # one column: read strictly with the header's delimiter to find them.
                self.create(
                    f"{table}_data",
                    f"SELECT * FROM read_csv({literal(str(readable))}, {', '.join(opts)}, "
                    f"delim = {literal(_header_delimiter(readable))})",
                )
            if self.count(f"{table}_data") == 0:
                # When only the last record has a field too many (an unquoted 1,200.50),
                # the dialect detection takes that record for the header and reads no
                # row at all: the mapping's columns then seemed missing from the file.
                header = _column_names(_csv_header(readable, delimiter))
                if len(header) > 1 and header != list(self.columns(f"{table}_data")):
                    raise duckdb.InvalidInputException("the header is not the first line")

        rows, rejects = "rowid + 2", None
        try:
            try:
                read_strictly(readable)
            except duckdb.Error:
                # Lines ending in CR LF and in LF alone (rows appended in another
                # editor) defeat the dialect detection: read them with LF throughout.
                unified = lf_copy(readable, self.scratch)
                if unified is None:
                    raise
                readable = unified
                read_strictly(readable)
        except duckdb.Error as exc:
            # Malformed records (an unclosed quote, a wrong field count) are set aside
            # and the rest is read; the import decides whether that may load.
            rejects = self._read_csv_leniently(readable, delimiter, f"{table}_data")
            if rejects is None:
                raise SourceImportError(_csv_error(path, codec, exc)) from exc
            rows = self._rows_around(rejects)
        data = quote(table + "_data")
        kept, star = list(self.columns(table + "_data")), "*"
        if kept[:2] == ["row", "reason"] and len(kept) > 2:
            # A quarantine file (see quarantine.py), fixed and imported again: its
            # first two columns say where the row came from and why it was set aside.
            kept, star = kept[2:], "* EXCLUDE (row, reason)"
            self.notes.append(
                f"{path.name}: a quarantine file: its row and reason columns are left out"
            )
        # A record of empty fields only (the ",,,," a spreadsheet writes for a formatted
        # but empty row) holds nothing to load or to set aside: quarantined, it would
        # stop an import with --on-error fail.
        empty = " AND ".join(f"t.{quote(c)} IS NULL" for c in kept)
        blank, first = self.sql(f"SELECT count(*), min({rows}) FROM {data} t WHERE {empty}")[0]
        # rowid follows insertion order, which DuckDB keeps for CSV reads.
        self.con.execute(
            f"CREATE VIEW {quote(table)} AS SELECT {rows} AS _row, {star} FROM {data} t"
            + (f" WHERE NOT ({empty})" if blank else "")
        )
        if blank:
            self.notes.append(
                f"{path.name}: {blank:,} empty records (delimiters only) skipped, "
                f"the first on row {first}"
            )
        self._note_renamed(
            path, _csv_header(readable, delimiter), list(self.columns(table + "_data"))
        )
        src = self._add(path, table, codec, digest)
        if rejects is not None:
            self.unparsed.append(
                f"SELECT {len(self.files) - 1} AS _src, line AS _row, value, reason "
                f"FROM {quote(rejects)}"
            )
        return src

    def _read_csv_leniently(self, path: Path, delimiter: str | None, table: str) -> str | None:
        """Read a CSV with RFC 4180 quoting, skipping malformed records into a table
        (line, value, reason) whose name is returned; None when even that fails."""
        rejects = self.name("rejects")
        try:
            delim = delimiter or _header_delimiter(path)
            with path.open(encoding="utf-8-sig", newline="") as fh:
                header = next(csv.reader(fh, delimiter=delim))
            names = _column_names(header)
            columns = "{" + ", ".join(f"{literal(c)}: 'VARCHAR'" for c in names) + "}"
            dialect = (
                f"auto_detect = false, columns = {columns}, delim = {literal(delim)}, "
                "quote = '\"', escape = '\"', strict_mode = true, ignore_errors = true, "
                f"store_rejects = true, {_RECORD_LIMIT}"
            )
            pieces: list[str] = []  # SELECTs of (line, value, reason) per piece read
            piece, offset, first_line = path, 0, 2
            while True:
                errors = self.name("csv_errors")
                opts = (
                    f"{dialect}, header = {first_line == 2}, rejects_table = '{errors}', "
                    f"rejects_scan = '{errors}_scans'"
                )
                part = self.create(
                    self.name("csv_part"), f"SELECT * FROM read_csv({literal(str(piece))}, {opts})"
                )
                # An unclosed quote runs on over line ends into one bad record: the
                # records start again on the line after the quote's.
                broken = self.con.execute(
                    f"SELECT line, line_byte_position, csv_line FROM {quote(errors)} "
                    "WHERE error_type = 'UNQUOTED VALUE' "
                    "AND strpos(rtrim(csv_line, chr(13) || chr(10)), chr(10)) > 0 "
                    "ORDER BY line LIMIT 1"
                ).fetchone()
                upto = "true" if broken is None else f"line <= {int(broken[0])}"
                keep = ""
                if broken is not None:
                    bad_before = self.scalar(
                        f"SELECT count(DISTINCT line) FROM {quote(errors)} "
                        f"WHERE line < {int(broken[0])}"
                    )
                    keep = f" WHERE rowid < {int(broken[0]) - first_line - int(bad_before)}"
                read = f"SELECT * EXCLUDE (rowid) FROM (SELECT rowid, * FROM {quote(part)}){keep}"
                if pieces:
                    self.con.execute(f"INSERT INTO {quote(table)} {read} ORDER BY rowid")
                else:
                    self.create(table, f"{read} ORDER BY rowid")
                # One problem per record; a record may break in several ways.
                pieces.append(
                    f"SELECT {offset} + line AS line, "
                    f"split_part(arg_min(csv_line, column_idx), chr(10), 1) AS value, "
                    "'cannot be read as a CSV record: ' || string_agg(error_message, '; ' "
                    f"ORDER BY column_idx) AS reason FROM {quote(errors)} WHERE {upto} "
                    "GROUP BY line"
                )
                if broken is None:
                    break
                if len(pieces) > MAX_RESTARTS:
                    return None  # each restart copies the rest of the file
                # The reported position may be a byte off: find the record's first line.
                line = broken[2].split("\n", 1)[0].encode("utf-8") + b"\n"
                start = max(int(broken[1]) - 2, 0)
                with piece.open("rb") as fh:
                    fh.seek(start)
                    rest = fh.read()
                at = rest.find(line)
                if at < 0:
                    return None
                rest = rest[at + len(line) :]
                piece = self.scratch / f"{errors}.csv"
                piece.write_bytes(rest)
                offset, first_line = offset + int(broken[0]), 1
            self.create(rejects, " UNION ALL ".join(pieces))
        except (duckdb.Error, OSError, UnicodeDecodeError, StopIteration, csv.Error):
            return None
        return rejects

    def _rows_around(self, rejects: str) -> str:
        """SQL for `_row` of the records read when the records in `rejects` were skipped:
        each skipped record moves the ones after it down a row."""
        # The k-th skipped record (line L, k from 1) comes before rowids >= L - k - 1.
        shifts = self.create(
            self.name("shifts"),
            f"SELECT line - row_number() OVER (ORDER BY line) - 1 AS first_rowid, "
            f"row_number() OVER (ORDER BY line) AS shift FROM {quote(rejects)}",
        )
        return (
            f"rowid + 2 + coalesce((SELECT max(s.shift) FROM {quote(shifts)} s "
            f"WHERE s.first_rowid <= t.rowid), 0)"
        )

    def _note_renamed(self, path: Path, header: list[str], columns: list[str]) -> None:
        """A note naming the columns read under another name than their header's: where
        the header repeats a name (letter case aside), the reader suffixes later ones
        (DuckDB `_1`, pandas `.1`)."""
        if len(header) != len(columns):
            return  # a CSV with another delimiter than the header's most frequent one
        # DuckDB trims names and calls an empty one column<n>: not renames to report.
        renamed = [
            (i, h.strip(), c)
            for i, (h, c) in enumerate(zip(header, columns, strict=True), start=1)
            if h.strip() and h.strip() != c
        ]
        if renamed:
            listed = ", ".join(f"{h!r} (column {i}) as {c!r}" for i, h, c in renamed)
            self.notes.append(
                f"{path.name}: the header repeats a name (letter case aside), so columns "
                f"are read under other names: {listed}; a name given twice means its "
                "first column"
            )

    def _read_parquet(self, path: Path) -> SourceFile:
        table = self.name("src")
        try:
            # A view: Parquet scans fast enough to be read where it is used.
            self.view(
                table,
                f"SELECT file_row_number + 1 AS _row, * EXCLUDE (file_row_number) "
                f"FROM read_parquet({literal(str(path))}, file_row_number = true)",
            )
        except duckdb.Error as exc:
            raise SourceImportError(f"{path.name}: cannot read as Parquet: {exc}") from exc
        return self._add(path, table, None)

    def _read_excel(self, path: Path, sheet: str | None) -> SourceFile:
        import pandas as pd

        try:
            frame = pd.read_excel(path, sheet_name=sheet or 0, dtype=str, engine="openpyxl")
        except (ValueError, KeyError, OSError) as exc:
            raise SourceImportError(f"{path.name}: cannot read as Excel: {exc}") from exc
        except Exception as exc:  # openpyxl raises zipfile / XML errors on damaged files
            raise SourceImportError(f"{path.name}: not a readable Excel file: {exc}") from exc
        frame.columns = [str(c) for c in frame.columns]
        frame.insert(0, "_row", range(2, len(frame) + 2))
        # As in a CSV: a row of empty cells (formatted but unused) holds nothing to load.
        empty = frame.drop(columns="_row").isna().all(axis=1)
        if empty.any():
            first = int(frame["_row"][empty].iloc[0])
            self.notes.append(
                f"{path.name}: {int(empty.sum()):,} empty rows skipped, the first on row {first}"
            )
            frame = frame[~empty]
        data = pa.Table.from_pandas(frame, preserve_index=False)
        table = self.register(self.name("src"), data)
        read = [c for c in self.columns(table) if c != "_row"]
        names = set(read)
        mangled = any(c.rsplit(".", 1)[0] in names for c in read if re.fullmatch(r".+\.\d+", c))
        if mangled or read != list(frame.columns[1:]):
            # Only then the header is read as written: a second pass over the sheet.
            raw = pd.read_excel(
                path, sheet_name=sheet or 0, header=None, nrows=1, dtype=str, engine="openpyxl"
            )
            header = ["" if pd.isna(v) else str(v) for v in raw.iloc[0]] if len(raw) else []
            self._note_renamed(path, header, read)
        return self._add(path, table, None)


_LINE = re.compile(r"CSV Error on Line: (\d+)")


def _csv_error(path: Path, codec: str, exc: Exception) -> str:
    text = str(exc)
    first = text.splitlines()[0] if text else repr(exc)
    m = _LINE.search(text)
    where = f" line {m.group(1)}" if m else ""
    hint = "check the delimiter and quoting (fields with commas or line breaks need quotes)"
    if "unicode" in text.lower():
        hint = "the file is not UTF-8; pass its encoding with --encoding (for example cp1252)"
    return f"{path.name}{where}: cannot read as CSV ({codec}): {first}; {hint}"


_DELIMITERS = (",", ";", "\t", "|")


def _blank(path: Path) -> bool:
    """Whether a UTF-8 file holds nothing but a byte-order mark and white space."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
        if fh.read(1):
            return False
    return not head.removeprefix(b"\xef\xbb\xbf").strip()


def _one_glued_column(columns: dict[str, str]) -> bool:
    """Whether a CSV read as one column whose name holds a delimiter."""
    names = [c for c in columns if c != "_row"]
    return len(names) == 1 and any(d in names[0] for d in _DELIMITERS)


def _column_names(header: list[str]) -> list[str]:
    """The column names DuckDB's own header reading gives: trimmed, column<n> for an
    empty one, and a name already taken (letter case aside) suffixed `_1`, `_2`, ..."""
    used: set[str] = set()
    names = []
    for i, h in enumerate(header):
        base = h.strip() or f"column{i}"
        name, n = base, 0
        while name.lower() in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name.lower())
        names.append(name)
    return names


def _csv_header(path: Path, delimiter: str | None) -> list[str]:
    """The names of a CSV's header as written (none when it cannot be read)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        try:
            return next(csv.reader(fh, delimiter=delimiter or _header_delimiter(path)))
        except (StopIteration, csv.Error):
            return []


def _header_delimiter(path: Path) -> str:
    """The delimiter most frequent in a CSV's first line (a comma on ties)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
    return max(_DELIMITERS, key=first.count)
