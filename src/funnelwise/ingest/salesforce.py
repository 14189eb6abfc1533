"""The Salesforce reader: Opportunity.csv and OpportunityHistory.csv as Data Export
or Data Loader write them (standard API field names), with optional Task.csv and
Event.csv.

- Opportunity: one deal per row (Id, Name, AccountId, OwnerId, StageName, Amount,
  CurrencyIsoCode, CreatedDate, CloseDate, IsClosed, IsWon, LeadSource,
  CampaignId). CloseDate is the close of a closed deal and the expected close of
  an open one. Type, ForecastCategoryName, NextStep, Probability and every
  custom field (`…__c`) become deal attributes.
- OpportunityHistory: a row per change of stage, amount, close date or
  probability. A row whose stage did not change is not a stage entry; its
  amount or close-date change (a "push") goes to `deal_changes`, as do
  probability changes. The first row of an opportunity is its creation.
- Task / Event: activities of the opportunity named by WhatId (ids starting
  with 006); tasks about accounts, contacts or leads are skipped.
- Account (optional): the opportunity's account (AccountId) lends its fields
  to the deal's attributes, prefixed `account.` (Name, Industry, Type,
  BillingCountry, BillingState, NumberOfEmployees, AnnualRevenue, Rating,
  Ownership, AccountSource and custom fields); `account_id` stays the Id. The
  accounts also fill the `accounts` table (industry, region = BillingCountry,
  employees, revenue; the other fields as attributes).
- User (optional): user ids (the opportunity's OwnerId, the history's
  CreatedById, the activities' OwnerId) become user names, the names people
  know; a name that several users share is told apart as `Name (Id)`. The
  owner's id is kept in the attributes as `owner.id`. Ids not in User.csv stay
  ids (noted). The users fill the `users` table under those names (role =
  UserRole.Name or UserRoleId, team = Department, manager by name).

Ids may be 15 or 18 characters: references match either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from funnelwise.errors import SourceImportError
from funnelwise.ingest.assemble import Staged
from funnelwise.ingest.importer import ImportOptions, Reader, run_import
from funnelwise.ingest.load import ImportResult
from funnelwise.ingest.parsing import Field, Kind, source_field, typed_table
from funnelwise.ingest.staging import SourceFile, Staging, literal, quote
from funnelwise.ingest.table import attributes_sql, with_attributes
from funnelwise.ingest.validate import Problems
from funnelwise.process import Process
from funnelwise.progressing import ProgressCallback
from funnelwise.store import Store

OPPORTUNITY_PREFIX = "006"
_ATTRIBUTE_FIELDS = ("Type", "ForecastCategoryName", "NextStep", "Probability")
_ACCOUNT_FIELDS = (
    "Name",
    "Industry",
    "Type",
    "BillingCountry",
    "BillingState",
    "NumberOfEmployees",
    "AnnualRevenue",
    "Rating",
    "Ownership",
    "AccountSource",
)
_NAMES = {
    "opportunities": ("Opportunity.csv", "Opportunities.csv"),
    "history": ("OpportunityHistory.csv",),
    "tasks": ("Task.csv", "Tasks.csv"),
    "events": ("Event.csv", "Events.csv"),
    "accounts": ("Account.csv", "Accounts.csv"),
    "users": ("User.csv", "Users.csv"),
}


@dataclass(frozen=True)
class SalesforceFiles:
    """The export files; only Opportunity.csv is required."""

    opportunities: Path
    history: Path | None = None
    tasks: Path | None = None
    events: Path | None = None
    accounts: Path | None = None
    users: Path | None = None

    @classmethod
    def find(cls, folder: Path) -> SalesforceFiles:
        """The standard file names in an export folder (any letter case)."""
        if not folder.is_dir():
            raise SourceImportError(f"{folder}: not a folder")
        present = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
        found: dict[str, Path | None] = {}
        for role, names in _NAMES.items():
            found[role] = next((present[n.lower()] for n in names if n.lower() in present), None)
        opportunities = found.pop("opportunities")
        if opportunities is None:
            raise SourceImportError(
                f"{folder} has no Opportunity.csv; export the Opportunity object "
                "(and OpportunityHistory for stage history) with Data Export or Data Loader"
            )
        return cls(opportunities, **found)


def _need(src: SourceFile, *columns: str) -> None:
    missing = [c for c in columns if src.pick(c) is None]
    if missing:
        raise SourceImportError(
            f"{src.name} lacks the column(s) {', '.join(missing)}; export it with the "
            f"standard API field names. Its columns: {', '.join(src.columns)}"
        )


def _extra(column: str, standard: tuple[str, ...]) -> bool:
    """Whether a column is a custom field (`…__c`) or one of `standard`, in any letter
    case: Data Loader writes the headers in capitals (ID, STAGENAME, REGION__C)."""
    low = column.lower()
    return low.endswith("__c") or low in {s.lower() for s in standard}


def _field(
    src: SourceFile, name: str, column: str, kind: Kind = "text", *, required: bool = False
) -> Field:
    return source_field(src, name, column, kind=kind, required=required)


def _id15(sql: str) -> str:
    """SQL for the 15-character form of an id (18-character ids add a checksum)."""
    return f"left(trim({sql}), 15)"


def _one_row_per_id(st: Staging, src: SourceFile) -> None:
    repeated = st.sql(
        f"SELECT any_value(Id), list(_row ORDER BY _row)[1:3] FROM {quote(src.table)} "
        f"WHERE Id IS NOT NULL GROUP BY {_id15('Id')} HAVING count(*) > 1 LIMIT 3"
    )
    if repeated:
        listed = "; ".join(f"{k!r} on rows {rows}" for k, rows in repeated)
        raise SourceImportError(f"{src.name}: the Id repeats ({listed}); one row per Id")


class _SalesforceReader:
    def __init__(self, files: SalesforceFiles, options: ImportOptions) -> None:
        self.files = files
        self.options = options

    def _read(self, st: Staging, path: Path) -> tuple[SourceFile, int]:
        src = st.read(path, encoding=self.options.encoding)
        return src, len(st.files) - 1

    def _users(self, st: Staging) -> str | None:
        """Register `_sf_users(k, name)` (users by 15-character id, names told apart);
        returns the users shaped like the canonical table, keyed by those names."""
        if self.files.users is None:
            return None
        src, _ = self._read(st, self.files.users)
        _need(src, "Id", "Name")
        _one_row_per_id(st, src)
        st.create(
            "_sf_users",
            f"""SELECT {_id15("Id")} AS k,
                       CASE WHEN count(*) OVER (PARTITION BY trim(Name)) > 1
                            THEN trim(Name) || ' (' || trim(Id) || ')' ELSE trim(Name) END AS name
                FROM {quote(src.table)}
                WHERE Id IS NOT NULL AND nullif(trim(Name), '') IS NOT NULL""",
        )
        role, team, manager = (
            f"nullif(trim(s.{quote(c)}), '')" if c else "NULL"
            for c in (
                src.pick("UserRole.Name", "UserRoleName", "UserRoleId"),
                src.pick("Department", "Division"),
                src.pick("ManagerId"),
            )
        )
        return st.view(
            st.name("sf_users"),
            f"""SELECT u.name AS user_id, trim(s.Name) AS name, {role} AS role, {team} AS team,
                       coalesce(m.name, {manager}) AS manager_id
                FROM {quote(src.table)} s JOIN _sf_users u ON u.k = {_id15("s.Id")}
                LEFT JOIN _sf_users m ON m.k = {_id15(manager)}""",
        )

    def _accounts(
        self, st: Staging, problems: Problems, opp: SourceFile, acc: SourceFile, idx: int
    ) -> str:
        """Account.csv shaped like the canonical `accounts`, with the Id as the
        opportunities spell it; numbers that do not read are left empty (noted)."""
        col = {
            c: f"nullif(trim(a.{quote(c)}), '')" if acc.pick(c) else "NULL"
            for c in ("Name", "Industry", "BillingCountry", "NumberOfEmployees", "AnnualRevenue")
        }
        for field, sql_type in (("NumberOfEmployees", "BIGINT"), ("AnnualRevenue", "DOUBLE")):
            if acc.pick(field):
                problems.add(
                    f"SELECT {idx}, a._row, {literal(field)}, {col[field]}, "
                    f"'is not a number; left empty' FROM {quote(acc.table)} a "
                    f"WHERE {col[field]} IS NOT NULL "
                    f"AND TRY_CAST({col[field]} AS {sql_type}) IS NULL",
                    quarantine=False,
                    code="unreadable",
                )
        named = {c.lower() for c in col}
        rest = [c for c in acc.columns if _extra(c, _ACCOUNT_FIELDS) and c.lower() not in named]
        return st.view(
            st.name("sf_account_rows"),
            f"""SELECT coalesce(o.account_id, trim(a.Id)) AS account_id, {col["Name"]} AS name,
                       {col["Industry"]} AS industry, {col["BillingCountry"]} AS region,
                       TRY_CAST({col["NumberOfEmployees"]} AS BIGINT) AS employees,
                       TRY_CAST({col["AnnualRevenue"]} AS DOUBLE) AS revenue,
                       {attributes_sql([(c, c) for c in rest])} AS attributes
                FROM {quote(acc.table)} a
                LEFT JOIN (SELECT {_id15("AccountId")} AS k, any_value(trim(AccountId))
                                  AS account_id
                           FROM {quote(opp.table)} GROUP BY 1) o ON o.k = {_id15("a.Id")}
                WHERE nullif(trim(a.Id), '') IS NOT NULL""",
        )

    def _named(self, st: Staging, table: str, column: str, what: str) -> str:
        """`table` with the user ids of `column` replaced by user names (with User.csv)."""
        if self.files.users is None:
            return table
        col = quote(column)
        missing = st.scalar(
            f"SELECT count(DISTINCT t.{col}) FROM {quote(table)} t WHERE t.{col} IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM _sf_users u WHERE u.k = {_id15(f't.{col}')})"
        )
        if missing:
            st.notes.append(f"{what}: {missing} user ids are not in User.csv; kept as ids")
        return st.view(
            st.name("sf_named"),
            f"""SELECT t.* REPLACE (coalesce(u.name, t.{col}) AS {col})
                FROM {quote(table)} t LEFT JOIN _sf_users u ON u.k = {_id15(f"t.{col}")}""",
        )

    def _with_account(
        self, st: Staging, problems: Problems, opp: SourceFile
    ) -> tuple[str, list[tuple[str, str]], str | None]:
        """The opportunities with their account's fields as `account.<field>` columns,
        the (attribute key, column) pairs, and the canonical accounts."""
        if self.files.accounts is None:
            return opp.table, [], None
        _need(opp, "AccountId")
        acc, acc_idx = self._read(st, self.files.accounts)
        _need(acc, "Id")
        _one_row_per_id(st, acc)
        fields = [c for c in acc.columns if _extra(c, _ACCOUNT_FIELDS)]
        unknown = st.scalar(
            f"SELECT count(DISTINCT o.AccountId) FROM {quote(opp.table)} o "
            f"WHERE nullif(trim(o.AccountId), '') IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
            f"{quote(acc.table)} a WHERE {_id15('a.Id')} = {_id15('o.AccountId')})"
        )
        if unknown:
            st.notes.append(
                f"{opp.name}: {unknown} AccountId values are not in {acc.name}; "
                "those deals have no account fields"
            )
        pairs = [(f"account.{c}", f"account.{c}") for c in fields]
        select = ", ".join(f"a.{quote(c)} AS {quote(f'account.{c}')}" for c in fields)
        view = st.view(
            st.name("sf_accounts"),
            f"SELECT o.*{', ' + select if select else ''} FROM {quote(opp.table)} o "
            f"LEFT JOIN {quote(acc.table)} a ON {_id15('a.Id')} = {_id15('o.AccountId')}",
        )
        return view, pairs, self._accounts(st, problems, opp, acc, acc_idx)

    def _deals(self, st: Staging, problems: Problems) -> tuple[str, str | None, str | None]:
        """The opportunities staged as deals, and the accounts and users, if given."""
        src, idx = self._read(st, self.files.opportunities)
        _need(src, "Id", "StageName", "CreatedDate")
        custom = [c for c in src.columns if _extra(c, _ATTRIBUTE_FIELDS)]
        table, account_pairs, accounts = self._with_account(st, problems, src)
        users = self._users(st)
        pairs = [(c, c) for c in custom] + account_pairs
        if self.files.users is not None and src.pick("OwnerId"):
            pairs.append(("owner.id", "OwnerId"))
        table, attr_fields = with_attributes(st, table, pairs)
        fields = [
            _field(src, "deal_id", "Id", required=True),
            _field(src, "name", "Name"),
            _field(src, "account_id", "AccountId"),
            _field(src, "owner_id", "OwnerId"),
            _field(src, "stage", "StageName", required=True),
            _field(src, "amount", "Amount", "number"),
            _field(src, "currency", "CurrencyIsoCode"),
            _field(src, "created_at", "CreatedDate", "timestamp", required=True),
            _field(src, "_close", "CloseDate", "date"),
            _field(src, "_is_closed", "IsClosed", "bool"),
            _field(src, "_is_won", "IsWon", "bool"),
            _field(src, "source", "LeadSource"),
            _field(src, "campaign_id", "CampaignId"),
        ]
        fields += attr_fields
        typed = typed_table(st, table, fields, problems, src=idx, options=self.options.reading())
        typed = self._named(st, typed, "owner_id", src.name)
        deals = st.view(
            st.name("sf_deals"),
            f"""SELECT * EXCLUDE (_close, _is_closed, _is_won),
                   _close AS expected_close_date,
                   -- CloseDate stays beside an open flag: a Closed Lost stage with
                   -- IsClosed false is closed by its stage, at that date.
                   CAST(_close AS TIMESTAMP) AS closed_at,
                   CASE WHEN _is_closed AND _is_won THEN 'won' WHEN _is_closed THEN 'lost'
                        WHEN NOT _is_closed THEN 'open' END AS outcome
                FROM {quote(typed)}""",
        )
        return deals, accounts, users

    def _resolve(self, st: Staging, deals: str, table: str, column: str) -> str:
        """`table` with deal_id: `column` matched to an opportunity Id, 15 or 18 chars
        on either side (a report exports 15, Data Loader 18)."""
        ref = f"t.{quote(column)}"
        return st.view(
            st.name("sf_ref"),
            f"""SELECT t.*, coalesce(o.deal_id, o15.deal_id, {ref}) AS deal_id
                FROM {quote(table)} t
                LEFT JOIN (SELECT DISTINCT deal_id FROM {quote(deals)}) o
                       ON o.deal_id = {ref}
                LEFT JOIN (SELECT left(deal_id, 15) AS k, any_value(deal_id) AS deal_id
                           FROM {quote(deals)} WHERE length(deal_id) IN (15, 18) GROUP BY 1) o15
                       ON length({ref}) IN (15, 18) AND o15.k = left({ref}, 15)""",
        )

    def _history(self, st: Staging, problems: Problems, deals: str) -> tuple[str, str]:
        assert self.files.history is not None
        src, idx = self._read(st, self.files.history)
        _need(src, "OpportunityId", "CreatedDate", "StageName")
        fields = [
            _field(src, "_ref", "OpportunityId", required=True),
            _field(src, "entered_at", "CreatedDate", "timestamp", required=True),
            _field(src, "actor_id", "CreatedById"),
            _field(src, "stage", "StageName"),
            _field(src, "_amount", "Amount", "number"),
            _field(src, "_close", "CloseDate", "date"),
            _field(src, "_probability", "Probability", "number"),
            _field(src, "_prev_amount", "PrevAmount", "number"),
            _field(src, "_prev_close", "PrevCloseDate", "date"),
        ]
        typed = typed_table(
            st, src.table, fields, problems, src=idx, options=self.options.reading()
        )
        typed = self._named(st, typed, "actor_id", src.name)
        hist = self._resolve(st, deals, typed, "_ref")
        events = st.view(
            st.name("sf_events"),
            f"SELECT _src, _row, deal_id, stage, entered_at, actor_id FROM {quote(hist)} "
            "WHERE stage IS NOT NULL",
        )
        ordered = st.create(
            st.name("sf_hist"),
            f"""SELECT *, row_number() OVER w AS _n,
                       lag(_amount) OVER w AS _lag_amount, lag(_close) OVER w AS _lag_close,
                       lag(_probability) OVER w AS _lag_probability
                FROM {quote(hist)}
                WINDOW w AS (PARTITION BY deal_id ORDER BY entered_at, _row)""",
        )
        # The first history row is the creation: its values are not changes.
        parts = [
            f"""SELECT _src, _row, deal_id, {literal(name)} AS field,
                       CAST({old} AS VARCHAR) AS old_value, CAST({new} AS VARCHAR) AS new_value,
                       entered_at AS changed_at, actor_id
                FROM {quote(ordered)} WHERE _n > 1"""
            for name, old, new in (
                ("amount", "coalesce(_prev_amount, _lag_amount)", "_amount"),
                ("expected_close_date", "coalesce(_prev_close, _lag_close)", "_close"),
                ("probability", "_lag_probability", "_probability"),
            )
        ]
        changes = st.view(st.name("sf_changes"), " UNION ALL ".join(parts))
        return events, changes

    def _activities(self, st: Staging, problems: Problems, deals: str) -> str | None:
        parts = []
        for path, default in ((self.files.tasks, "task"), (self.files.events, "meeting")):
            if path is None:
                continue
            src, idx = self._read(st, path)
            _need(src, "Id", "WhatId")
            when = [
                column
                for c in (
                    "CompletedDateTime",
                    "StartDateTime",
                    "ActivityDateTime",
                    "ActivityDate",
                    "CreatedDate",
                )
                if (column := src.pick(c))
            ]
            if not when:
                raise SourceImportError(
                    f"{src.name} has no date column (ActivityDate, StartDateTime or CreatedDate)"
                )
            kind = src.pick("TaskSubtype", "Type")
            fields = [
                _field(src, "activity_id", "Id", required=True),
                _field(src, "_what", "WhatId"),
                Field("_kind", kind),
                _field(src, "owner_id", "OwnerId"),
                _field(src, "_seconds", "CallDurationInSeconds", "number"),
                _field(src, "_minutes", "DurationInMinutes", "number"),
                _field(src, "direction", "CallType"),
                *(Field(f"_at{i}", c, "timestamp") for i, c in enumerate(when)),
            ]
            about = f"upper(left(trim({quote('WhatId')}), 3)) = {literal(OPPORTUNITY_PREFIX)}"
            skipped = st.scalar(
                f"SELECT count(*) FROM {quote(src.table)} WHERE NOT ({about}) OR WhatId IS NULL"
            )
            if skipped:
                st.notes.append(
                    f"{src.name}: {skipped} rows are not about an opportunity (WhatId not "
                    f"{OPPORTUNITY_PREFIX}…); skipped"
                )
            typed = typed_table(
                st,
                src.table,
                fields,
                problems,
                src=idx,
                options=self.options.reading(),
                where=about,
            )
            at = "coalesce(" + ", ".join(f"_at{i}" for i in range(len(when))) + ")"
            problems.add(
                f"SELECT _src, _row, {literal(when[0])}, NULL, 'no date' "
                f"FROM {quote(typed)} WHERE {at} IS NULL",
                quarantine=True,
                code="missing",
            )
            typed = self._named(st, typed, "owner_id", src.name)
            resolved = self._resolve(st, deals, typed, "_what")
            parts.append(
                f"""SELECT _src, _row, activity_id, deal_id,
                           coalesce(lower(_kind), {literal(default)}) AS kind, {at} AS at,
                           owner_id, coalesce(_seconds / 60.0, _minutes) AS duration_min,
                           lower(direction) AS direction
                    FROM {quote(resolved)}"""
            )
        if not parts:
            return None
        return st.view(st.name("sf_activities"), " UNION ALL ".join(parts))

    def __call__(self, st: Staging, problems: Problems) -> Staged:
        deals, accounts, users = self._deals(st, problems)
        staged = Staged(source="salesforce", deals=deals, accounts=accounts, users=users)
        staged.labels = {
            "deals": {
                "deal_id": "Id",
                "created_at": "CreatedDate",
                "closed_at": "CloseDate",
                "amount": "Amount",
                "stage": "StageName",
                "outcome": "IsClosed, IsWon",
            },
            "events": {
                "deal_id": "OpportunityId",
                "entered_at": "CreatedDate",
                "stage": "StageName",
            },
            "changes": {"deal_id": "OpportunityId", "changed_at": "CreatedDate"},
            "activities": {"deal_id": "WhatId", "activity_id": "Id", "at": "ActivityDate"},
        }
        if self.files.history is not None:
            staged.events, staged.changes = self._history(st, problems, deals)
        staged.activities = self._activities(st, problems, deals)
        return staged


def import_salesforce(
    store: Store,
    process: Process,
    files: SalesforceFiles,
    *,
    options: ImportOptions = ImportOptions(),
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Import a Salesforce export (see the module docstring for the files)."""
    reader: Reader = _SalesforceReader(files, options)
    return run_import(
        store, process, reader, source="salesforce", options=options, progress=progress
    )
