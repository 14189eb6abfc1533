"""The Salesforce reader on a hand-made export (tests/fixtures/ingest/salesforce):
Opportunity.csv in Windows-1252 with accents and a description with a line break,
OpportunityHistory.csv in UTF-8 with a byte-order mark, 15- and 18-character ids,
three currencies, custom fields, a stage renamed half-way (Propuesta, then the
English names), tasks and events."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

import funnelwise as fw
from funnelwise.errors import SourceImportError
from funnelwise.ingest import ImportOptions
from funnelwise.ingest.encoding import detect_encoding
from funnelwise.ingest.salesforce import SalesforceFiles, import_salesforce
from ingest_util import FIXTURES, NOW, dump, history, new_project, rows

SF = FIXTURES / "salesforce"
O1, O2, O3 = "0065g00000AbCd1AAB", "0065g00000AbCd2AAC", "0065g00000AbCd3AAD"
OPTS = ImportOptions(now=NOW, fx=SF / "DatedConversionRate.csv")


def test_encodings_are_detected() -> None:
    assert detect_encoding(SF / "Opportunity.csv") == "cp1252"
    assert detect_encoding(SF / "OpportunityHistory.csv") == "utf_8_sig"
    assert detect_encoding(SF / "Task.csv") == "utf_8"


def test_export_hand_computed(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    r = import_salesforce(store, process, SalesforceFiles.find(SF), options=OPTS)
    # A history row whose stage did not change (O1 on 01-20) is a push, not an entry;
    # "Calificación", "Propuesta", "Negotiation/Review" and "Ganada" map through aliases.
    assert history(store, O1) == [
        ("lead", "2024-01-10 09:00"),
        ("qualification", "2024-01-15 10:00"),
        ("proposal", "2024-02-05 12:00"),
        ("won", "2024-03-01 15:30"),
    ]
    assert history(store, O2) == [
        ("lead", "2024-02-01 08:00"),
        ("proposal", "2024-02-10 08:00"),
        ("negotiation", "2024-03-01 08:00"),
    ]
    assert history(store, O3) == [("lead", "2024-01-20 10:00"), ("lost", "2024-02-20 10:00")]
    assert rows(
        store,
        "SELECT deal_id, name, outcome, amount, currency, round(amount_base, 6), "
        "expected_close_date, attributes FROM deals ORDER BY 1",
    ) == [
        # Dated rates, turned around (EUR 0.80 per USD from 03-01): 12000 / 0.8.
        (
            O1,
            "Café Olé",
            "won",
            12000.0,
            "EUR",
            15000.0,
            dt.date(2024, 3, 1),
            '{"Type":"Nuevo negocio","Region__c":"Norte","Segmento__c":"Pymes"}',
        ),
        (
            O2,
            "Señal Técnica",
            None,
            5000.0,
            "USD",
            5000.0,
            dt.date(2024, 4, 15),
            '{"Region__c":"Sur"}',
        ),
        (
            O3,
            "Über GmbH",
            "lost",
            3000.0,
            "GBP",
            4000.0,
            dt.date(2024, 2, 20),
            '{"Region__c":"Norte","Segmento__c":"Grandes"}',
        ),
    ]
    # The won entry's exact time wins over the CloseDate (a day).
    assert rows(store, f"SELECT closed_at FROM deals WHERE deal_id = '{O1}'") == [
        (dt.datetime(2024, 3, 1, 15, 30),)
    ]
    assert rows(
        store, "SELECT field, old_value, new_value, changed_at FROM deal_changes ORDER BY 4, 1"
    ) == [
        ("amount", "10000.0", "12000.0", dt.datetime(2024, 1, 20, 11)),
        ("expected_close_date", "2024-02-28", "2024-03-15", dt.datetime(2024, 1, 20, 11)),
        ("expected_close_date", "2024-03-15", "2024-03-01", dt.datetime(2024, 3, 1, 15, 30)),
    ]
    assert rows(
        store,
        "SELECT activity_id, deal_id, kind, duration_min, direction FROM activities ORDER BY 1",
    ) == [
        ("00T5g00000Tsk01AAA", O1, "call", 10.0, "outbound"),
        ("00T5g00000Tsk03AAA", O2, "email", None, None),  # WhatId given with 15 characters
        ("00U5g00000Evt01AAA", O3, "meeting", 45.0, None),
    ]
    assert [str(p) for p in r.problems] == [
        "Opportunity.csv row 5, Amount = '-100.0': is negative (quarantined)",
        "OpportunityHistory.csv row 12, OpportunityId = '0065g00000ZZZZZ': refers to a deal "
        "that is neither in this import (or was quarantined) nor in the store (quarantined)",
    ]
    assert r.notes == ("Task.csv: 1 rows are not about an opportunity (WhatId not 006…); skipped",)
    assert r.counts["fx_rates"].loaded == 4
    before = dump(store)
    again = import_salesforce(store, process, SalesforceFiles.find(SF), options=OPTS)
    assert dump(store) == before
    assert sum(c.loaded + c.updated for c in again.counts.values()) == 0
    store.close()


def test_missing_rate_names_the_currencies(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    with pytest.raises(SourceImportError) as err:
        import_salesforce(store, process, SalesforceFiles.find(SF), options=replace(OPTS, fx=None))
    assert "no exchange rate to USD for EUR (1 deal), GBP (1 deal)" in str(err.value)
    assert rows(store, "SELECT count(*) FROM deals") == [(0,)]
    store.close()


def test_wrong_encoding_is_a_clear_error(tmp_path: Path) -> None:
    store, process = new_project(tmp_path / "p")
    with pytest.raises(SourceImportError, match=r"Opportunity\.csv.*not UTF-8.*--encoding"):
        import_salesforce(
            store, process, SalesforceFiles.find(SF), options=replace(OPTS, encoding="utf-8")
        )
    store.close()


def test_an_empty_file_is_named_as_empty(tmp_path: Path) -> None:
    # A download cut short leaves a file of no bytes (or a byte-order mark alone): it
    # was read as one column 'column0' and reported as lacking every standard column.
    folder = tmp_path / "export"
    shutil.copytree(SF, folder)
    store, process = new_project(tmp_path / "p")
    for content in (b"", b"\xef\xbb\xbf\r\n"):
        (folder / "OpportunityHistory.csv").write_bytes(content)
        with pytest.raises(SourceImportError) as err:
            import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
        assert str(err.value) == (
            "OpportunityHistory.csv is empty: not even a header row; export the file again"
        )
    assert rows(store, "SELECT count(*) FROM deals") == [(0,)]
    store.close()


def test_history_of_a_deal_not_exported_is_one_problem_per_row(tmp_path: Path) -> None:
    # An Opportunity export filtered to fewer deals than the history: each history row
    # of O1 is a stage entry and three field changes, and was reported four times.
    folder = tmp_path / "export"
    shutil.copytree(SF, folder)
    text = (SF / "Opportunity.csv").read_bytes().decode("cp1252")
    o1 = text[text.index(O1) : text.index("\r\n" + O2) + 2]
    (folder / "Opportunity.csv").write_bytes(text.replace(o1, "").encode("cp1252"))
    store, process = new_project(tmp_path / "p")
    r = import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    unknown = [(p.file, p.row) for p in r.problems if p.code == "unknown deal"]
    assert unknown == [("OpportunityHistory.csv", row) for row in (2, 3, 4, 5, 6, 12)] + [
        ("Task.csv", 2)
    ]
    assert r.n_problems == len(r.problems) == 8  # and O4's negative amount
    (group,) = [g for g in r.problem_groups if g.file == "OpportunityHistory.csv"]
    assert group.rows == 6
    store.close()


def test_a_data_loader_export_with_headers_in_capitals(tmp_path: Path) -> None:
    # Data Loader writes the headers in capitals (ID, STAGENAME, REGION__C): the export
    # was refused as lacking Id, StageName and CreatedDate, and custom fields matched
    # only in the case `__c` would have been left out.
    folder = tmp_path / "export"
    shutil.copytree(SF, folder)
    for name in ("Opportunity.csv", "OpportunityHistory.csv", "Task.csv", "Event.csv"):
        data = (folder / name).read_bytes()
        end = data.index(b"\n")
        (folder / name).write_bytes(data[:end].upper() + data[end:])
    dumps = []
    for source in (SF, folder):
        store, process = new_project(tmp_path / f"p{len(dumps)}")
        import_salesforce(store, process, SalesforceFiles.find(source), options=OPTS)
        dumps.append(dump(store))
        store.close()
    plain, capitals = dumps
    assert capitals["deals"][0][-1] == (
        '{"TYPE":"Nuevo negocio","REGION__C":"Norte","SEGMENTO__C":"Pymes"}'
    )
    for table in ("deals", "stage_events", "deal_changes", "activities"):
        assert [_keys_folded(r) for r in capitals[table]] == plain[table], table


def _keys_folded(row: tuple[object, ...]) -> tuple[object, ...]:
    """A dumped row with the keys of its JSON attributes (last) as Data Export spells
    the fixture's fields."""
    spelled = {"TYPE": "Type", "REGION__C": "Region__c", "SEGMENTO__C": "Segmento__c"}
    last = row[-1]
    if not isinstance(last, str) or not last.startswith("{"):
        return row
    return (
        *row[:-1],
        json.dumps(
            {spelled[k]: v for k, v in json.loads(last).items()},
            ensure_ascii=False,
            separators=(",", ":"),
        ),
    )


def test_opportunity_ids_of_15_characters_match_references_of_18(tmp_path: Path) -> None:
    # A report exports 15-character Ids, Data Loader the history and tasks with 18: the
    # 18-character references were "refers to a deal that is neither in this import".
    folder = tmp_path / "export"
    shutil.copytree(SF, folder)
    text = (SF / "Opportunity.csv").read_bytes().decode("cp1252")
    for long in (O1, O2, O3):
        text = text.replace(long, long[:15])
    (folder / "Opportunity.csv").write_bytes(text.encode("cp1252"))
    store, process = new_project(tmp_path / "p")
    r = import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    assert [(p.file, p.row) for p in r.problems if p.code == "unknown deal"] == [
        ("OpportunityHistory.csv", 12)  # 0065g00000ZZZZZ, in no export
    ]
    assert history(store, O1[:15]) == [
        ("lead", "2024-01-10 09:00"),
        ("qualification", "2024-01-15 10:00"),
        ("proposal", "2024-02-05 12:00"),
        ("won", "2024-03-01 15:30"),
    ]
    assert rows(store, "SELECT deal_id, count(*) FROM activities GROUP BY 1 ORDER BY 1") == [
        (O1[:15], 1),
        (O2[:15], 1),
        (O3[:15], 1),
    ]
    store.close()


def test_opportunities_alone_give_known_events_only(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(SF / "Opportunity.csv", folder / "opportunity.csv")
    store, process = new_project(tmp_path / "p")
    import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    # Without history: the current stage at creation, the outcome at CloseDate.
    assert history(store, O1) == [("won", "2024-03-01 00:00")]
    assert history(store, O2) == [("negotiation", "2024-02-01 08:00")]
    store.close()
    with pytest.raises(SourceImportError, match=r"has no Opportunity\.csv"):
        SalesforceFiles.find(tmp_path)


def test_a_status_against_the_stage_is_noted(tmp_path: Path) -> None:
    # O3 is in Closed Lost but flagged won: the stage is taken, and the row is named.
    folder = tmp_path / "export"
    folder.mkdir()
    text = (SF / "Opportunity.csv").read_bytes()
    lost = b"Closed Lost,3000,GBP,2024-02-20,2024-01-20T10:00:00.000+0000,true,"
    assert text.count(lost + b"false") == 1
    (folder / "Opportunity.csv").write_bytes(text.replace(lost + b"false", lost + b"true"))
    store, process = new_project(tmp_path / "p")
    r = import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    assert rows(store, f"SELECT outcome FROM deals WHERE deal_id = '{O3}'") == [("lost",)]
    (note,) = [p for p in r.problems if "the stage is taken" in p.reason]
    # Row 4 as a spreadsheet shows it: O1's description spans two lines of the file.
    assert (note.row, note.column, note.value) == (4, "IsClosed, IsWon", "won")
    assert "says won but the stage Closed Lost is lost" in note.reason
    assert not any(p.quarantined and p.row == 4 for p in r.problems)
    store.close()
    # Flagged open instead: still closed by its stage, at its CloseDate, nothing set aside.
    (folder / "Opportunity.csv").write_bytes(
        text.replace(lost + b"false", lost.replace(b",true,", b",false,") + b"false")
    )
    store, process = new_project(tmp_path / "q")
    r = import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    closed = f"SELECT outcome, closed_at FROM deals WHERE deal_id = '{O3}'"
    assert rows(store, closed) == [("lost", dt.datetime(2024, 2, 20))]
    (note,) = [p for p in r.problems if "the stage is taken" in p.reason]
    assert "says open but the stage Closed Lost is lost" in note.reason
    assert not any(p.quarantined and p.row == 4 for p in r.problems)
    store.close()
    # Closed, not won, in a no-decision stage: the flags have no word for it, no note.
    (folder / "Opportunity.csv").write_bytes(
        text.replace(
            lost + b"false", lost.replace(b"Closed Lost", b"Closed No Decision") + b"false"
        )
    )
    store, process = new_project(tmp_path / "n")
    r = import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    assert rows(store, f"SELECT outcome FROM deals WHERE deal_id = '{O3}'") == [("no_decision",)]
    assert not [p for p in r.problems if "the stage is taken" in p.reason]
    store.close()


def _with_directory(tmp_path: Path) -> Path:
    """The export folder plus Account.csv and User.csv (fixtures/salesforce-directory)."""
    folder = tmp_path / "export"
    shutil.copytree(SF, folder)
    for name in ("Account.csv", "User.csv"):
        shutil.copy(FIXTURES / "salesforce-directory" / name, folder / name)
    return folder


def test_accounts_and_users(tmp_path: Path) -> None:
    files = SalesforceFiles.find(_with_directory(tmp_path))
    assert files.accounts is not None and files.users is not None
    store, process = new_project(tmp_path / "p")
    r = import_salesforce(store, process, files, options=OPTS)
    # Owners are named; two users are called Ana Ruiz, so each carries its id. O2's
    # owner id has 18 characters, User.csv gives 15. Account fields other than the
    # standard ones and custom fields (IsDeleted) stay out; Acc03 is not in Account.csv.
    assert rows(
        store, "SELECT deal_id, owner_id, account_id, attributes FROM deals ORDER BY 1"
    ) == [
        (
            O1,
            "Lucía Gómez",
            "0015g00000Acc01AAA",
            '{"Type":"Nuevo negocio","Region__c":"Norte","Segmento__c":"Pymes",'
            '"account.Name":"Cafés Unidos","account.Industry":"Food & Beverage",'
            '"account.BillingCountry":"Spain","account.NumberOfEmployees":"120",'
            '"account.AnnualRevenue":"5000000","account.Type":"Customer",'
            '"account.Tier__c":"Gold","owner.id":"0055g00000Usr01AAA"}',
        ),
        (
            O2,
            "Ana Ruiz (0055g00000Usr02)",
            "0015g00000Acc02AAA",
            '{"Region__c":"Sur","account.Name":"Señales SA",'
            '"account.Industry":"Telecommunications","account.BillingCountry":"Mexico",'
            '"account.Type":"Prospect","owner.id":"0055g00000Usr02AAA"}',
        ),
        (
            O3,
            "Lucía Gómez",
            "0015g00000Acc03AAA",
            '{"Region__c":"Norte","Segmento__c":"Grandes","owner.id":"0055g00000Usr01AAA"}',
        ),
    ]
    # Every user reference is named: history authors and activity owners too.
    assert rows(
        store, "SELECT DISTINCT actor_id FROM stage_events WHERE actor_id IS NOT NULL ORDER BY 1"
    ) == [("Ana Ruiz (0055g00000Usr02)",), ("Lucía Gómez",)]
    assert rows(store, "SELECT activity_id, owner_id FROM activities ORDER BY 1") == [
        ("00T5g00000Tsk01AAA", "Lucía Gómez"),
        ("00T5g00000Tsk03AAA", "Ana Ruiz (0055g00000Usr02)"),
        ("00U5g00000Evt01AAA", "Ana Ruiz (0055g00000Usr02)"),
    ]
    assert rows(store, "SELECT DISTINCT actor_id FROM deal_changes") == [("Lucía Gómez",)]
    assert "Opportunity.csv: 1 AccountId values are not in Account.csv" in " ".join(r.notes)
    # The accounts and users tables, keyed as the deals refer to them: Acc02's Id as the
    # opportunity spells it (18 characters), users by their names.
    assert rows(store, "SELECT * FROM accounts ORDER BY 1") == [
        (
            "0015g00000Acc01AAA",
            "Cafés Unidos",
            "Food & Beverage",
            "Spain",
            120,
            5000000.0,
            '{"Type":"Customer","Tier__c":"Gold"}',
        ),
        (
            "0015g00000Acc02AAA",
            "Señales SA",
            "Telecommunications",
            "Mexico",
            None,
            None,
            '{"Type":"Prospect"}',
        ),
    ]
    assert rows(store, "SELECT * FROM users ORDER BY 1") == [
        ("Ana Ruiz (0055g00000Usr02)", "Ana Ruiz", "00E5g000000Rol2AAA", "Ventas", "Lucía Gómez"),
        (
            "Ana Ruiz (0055g00000Usr05AAA)",
            "Ana Ruiz",
            "00E5g000000Rol2AAA",
            "Soporte",
            "Lucía Gómez",
        ),
        ("Lucía Gómez", "Lucía Gómez", "00E5g000000Rol1AAA", "Ventas", None),
    ]
    assert (r.counts["accounts"].loaded, r.counts["users"].loaded) == (2, 3)
    before = dump(store)
    again = import_salesforce(store, process, files, options=OPTS)
    assert dump(store) == before
    assert sum(c.loaded + c.updated for c in again.counts.values()) == 0
    store.close()


def test_unknown_users_keep_their_ids_and_repeated_ids_stop(tmp_path: Path) -> None:
    folder = _with_directory(tmp_path)
    (folder / "User.csv").write_text("Id,Name\n0055g00000Usr01AAA,Lucía Gómez\n", encoding="utf-8")
    store, process = new_project(tmp_path / "p")
    r = import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    assert rows(store, "SELECT deal_id, owner_id FROM deals ORDER BY 1") == [
        (O1, "Lucía Gómez"),
        (O2, "0055g00000Usr02AAA"),
        (O3, "Lucía Gómez"),
    ]
    assert "Opportunity.csv: 1 user ids are not in User.csv; kept as ids" in r.notes
    # A later export with a changed account replaces it; an unreadable number is noted.
    text = (folder / "Account.csv").read_text(encoding="utf-8")
    (folder / "Account.csv").write_text(text.replace(",120,", ",unos 120,"), encoding="utf-8")
    again = import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    assert rows(store, "SELECT account_id, employees FROM accounts ORDER BY 1") == [
        ("0015g00000Acc01AAA", None),
        ("0015g00000Acc02AAA", None),
    ]
    counted = again.counts["accounts"]
    assert (counted.loaded, counted.updated, counted.duplicates) == (0, 1, 1)
    assert [str(p) for p in again.problems if p.file == "Account.csv"] == [
        "Account.csv row 2, NumberOfEmployees = 'unos 120': is not a number; left empty (loaded)"
    ]
    (folder / "User.csv").write_text(
        "Id,Name\n0055g00000Usr01AAA,Lucía Gómez\n0055g00000Usr01,Lucía G.\n", encoding="utf-8"
    )
    with pytest.raises(SourceImportError, match=r"User\.csv: the Id repeats .*rows \[2, 3\]"):
        import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    store.close()


def test_changes_at_one_instant_are_read_as_one(tmp_path: Path) -> None:
    # A workflow moves O2's close date twice in one second (04-15 to 05-01 to 05-31),
    # and the history lists the later row first. The store keeps no order among rows
    # at one instant: the chain is one change, 04-15 to 05-31. The rows are appended
    # with LF line ends to a file of CR LF ones, as another editor would.
    folder = tmp_path / "export"
    shutil.copytree(SF, folder)
    at = "2024-03-05T09:00:00.000+0000"
    rest = "0055g00000Usr02AAA,Negotiation/Review,5000,,"
    with (folder / "OpportunityHistory.csv").open("a", encoding="utf-8", newline="") as f:
        f.write(f"{O2},{at},{rest}2024-05-31,,,5000,2024-05-01\n")
        f.write(f"{O2},{at},{rest}2024-05-01,,,5000,2024-04-15\n")
        f.write(f"{O2},2024-03-32T09:00:00.000+0000,{rest}2024-05-01,,,,\n")
    store, process = new_project(tmp_path / "p")
    r = import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    # Line numbers are the file's own (row 14 repeats row 13's stage entry).
    assert [(p.row, p.column) for p in r.problems if p.file == "OpportunityHistory.csv"] == [
        (12, "OpportunityId"),
        (14, "StageName"),
        (15, "CreatedDate"),
    ]
    when = dt.datetime(2024, 3, 5, 9)
    assert rows(
        store,
        f"SELECT old_value, new_value, changed_at FROM deal_changes WHERE deal_id = '{O2}'",
    ) == [("2024-04-15", "2024-05-31", when)]
    store.close()
    log = fw.open(tmp_path / "p")

    def close(t: dt.datetime) -> object:
        d = log.as_of(t).deals
        return d.filter(d.deal_id == O2).expected_close_date.to_pandas().iloc[0]

    assert close(when - dt.timedelta(seconds=1)) == pd.Timestamp("2024-04-15")
    assert close(when) == pd.Timestamp("2024-05-31")
    log.store.close()
    # Imported again: nothing added.
    store, process = new_project(tmp_path / "p")
    again = import_salesforce(store, process, SalesforceFiles.find(folder), options=OPTS)
    assert again.counts["deal_changes"].loaded == 0
    store.close()
