"""Synthea's directory, payers, coverage, claims and claim lines as documents (formats/synthea/administrative.py).

Each target's query runs over the reader's tables of the synthea-27 folder
(Synthea v3.0) and of the same folder rewritten in the later layout; the
documents are compared with the CSV files read here with the csv module,
and checked by the codec like any save.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from healthsim_state.codec.checks import check_row
from healthsim_state.codec.document import encode
from healthsim_state.codec.layout import layout
from healthsim_state.formats.synthea.administrative import (
    CLAIM_LINES,
    CLAIMS,
    COVERAGES,
    MEMBERS,
    ORGANIZATIONS,
    PAYERS,
    PROVIDERS,
    TARGETS,
    TRANSACTIONS_KEY,
)
from healthsim_state.formats.synthea.importer import entity_batches, entity_source
from healthsim_state.formats.synthea.reader import Loaded, read_folder
from healthsim_state.formats.synthea.sql import derived_uuid_py
from healthsim_state.formats.synthea.targets import EXTENSION_KEY, Target
from tests.helpers import FIXTURES

SYNTHEA_27 = FIXTURES / "synthea-27"

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
Docs = dict[str, list[dict[str, Any]]]


def run(loaded: Loaded, target: Target) -> list[dict[str, Any]]:
    """The target's documents as the importer reads them (Arrow batches in file order, lists attached), as dicts."""
    return [d for batch in entity_batches(loaded, target, entity_source(target, loaded)) for d in batch.to_pylist()]


def documents(folder: Path) -> Docs:
    """Every target's documents, by entity type (the targets whose needs are present)."""
    with read_folder(folder) as loaded:
        return {t.entity_type: run(loaded, t) for t in TARGETS if t.runs_on(loaded)}


def rows(folder: Path, stem: str) -> list[dict[str, str | None]]:
    with open(folder / f"{stem}.csv", newline="", encoding="utf-8") as handle:
        return [{k: v or None for k, v in row.items()} for row in csv.DictReader(handle)]


def money(text: str | None) -> Decimal:
    return Decimal(text or "0").quantize(Decimal("0.01"))


@pytest.fixture(scope="module")
def v30() -> Docs:
    return documents(SYNTHEA_27)


# -- the later layout, made from synthea-27 ---------------------------------------------

_RENAMED = {
    "START_YEAR": "START_DATE",
    "END_YEAR": "END_DATE",
    "OWNERSHIP": "PLAN_OWNERSHIP",
    "OWNERNAME": "OWNER_NAME",
}


def npi(identifier: str) -> str:
    """A 10-digit NPI made from a Synthea Id (stable, so tests can recompute it)."""
    return "1" + str(int(identifier.replace("-", ""), 16))[-9:]


def _write(path: Path, header: list[str], body: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: row.get(k) or "" for k in header} for row in body)


def later_layout(source: Path, target: Path) -> Path:
    """``source`` (v3.0) rewritten in the later layout with NPIs (and a patient_expenses.csv, as Synthea writes)."""
    shutil.copytree(source, target)
    transitions = [{_RENAMED.get(k, k): v for k, v in r.items()} for r in rows(source, "payer_transitions")]
    _write(target / "payer_transitions.csv", [_RENAMED.get(k, k) for k in transitions[0]], transitions)
    payers = rows(source, "payers")
    for row in payers:
        row["OWNERSHIP"] = "GOVERNMENT" if row["NAME"] in ("Medicare", "Medicaid", "Dual Eligible") else "PRIVATE"
    header = list(payers[0])
    header.insert(2, header.pop())
    _write(target / "payers.csv", header, payers)
    providers = rows(source, "providers")
    for row in providers:
        row["ENCOUNTERS"], row["PROCEDURES"], row["NPI"] = row.pop("UTILIZATION"), "3", npi(row["Id"] or "")
    _write(target / "providers.csv", list(providers[0]), providers)
    organizations = rows(source, "organizations")
    for row in organizations:
        row["NPI"] = npi(row["Id"] or "")
    _write(target / "organizations.csv", list(organizations[0]), organizations)
    expenses = [
        {
            "PATIENT_ID": p["Id"],
            "YEAR": f"{year}-01-01T00:00:00Z",
            "PAYER_ID": rows(source, "payers")[1]["Id"],
            "HEALTHCARE_EXPENSES": "12.50",
            "INSURANCE_COSTS": "0.00",
            "COVERED_COSTS": f"{year}.00",
        }
        for p in rows(source, "patients")
        for year in (2021, 2022)
    ]
    _write(target / "patient_expenses.csv", list(expenses[0]), expenses)
    return target


@pytest.fixture(scope="module")
def later_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return later_layout(SYNTHEA_27, tmp_path_factory.mktemp("later") / "csv")


@pytest.fixture(scope="module")
def later(later_folder: Path) -> Docs:
    return documents(later_folder)


# -- counts --------------------------------------------------------------------------


def _kept_claims(folder: Path) -> set[str]:
    covered = {r["PATIENT"] for r in rows(folder, "payer_transitions")}
    return {c["Id"] for c in rows(folder, "claims") if c["PATIENTID"] in covered and c["DIAGNOSIS1"]}  # type: ignore[misc]


def test_entities_per_type_are_the_csv_rows_less_the_exclusions(v30: Docs) -> None:
    transitions = rows(SYNTHEA_27, "payer_transitions")
    kept = _kept_claims(SYNTHEA_27)
    expected = {
        "organization": len(rows(SYNTHEA_27, "organizations")),
        "practitioner": len(rows(SYNTHEA_27, "providers")),
        "payer": len(rows(SYNTHEA_27, "payers")),
        "coverage": len(transitions),
        "member": len({r["PATIENT"] for r in transitions}),
        "claim": len(kept),
        "claim_line": sum(
            1 for t in rows(SYNTHEA_27, "claims_transactions") if t["TYPE"] == "CHARGE" and t["CLAIMID"] in kept
        ),
    }
    assert {k: len(v) for k, v in v30.items()} == expected
    assert expected["claim_line"] > 1000 and expected["claim"] > 1000
    for docs in v30.values():
        assert len({d["id"] for d in docs}) == len(docs)


def test_claims_of_patients_without_coverage_or_diagnosis_are_left_out_with_their_lines(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    shutil.copytree(SYNTHEA_27, folder)
    claims = rows(SYNTHEA_27, "claims")
    uncovered = claims[0]["PATIENTID"]
    transitions = [r for r in rows(SYNTHEA_27, "payer_transitions") if r["PATIENT"] != uncovered]
    _write(folder / "payer_transitions.csv", list(transitions[0]), transitions)
    undiagnosed = next(c for c in claims if c["PATIENTID"] != uncovered)
    undiagnosed["DIAGNOSIS1"] = None
    _write(folder / "claims.csv", list(claims[0]), claims)

    docs = documents(folder)
    gone = {c["Id"] for c in claims if c["PATIENTID"] == uncovered} | {undiagnosed["Id"]}
    assert {d["claim_id"] for d in docs["claim"]} == {c["Id"] for c in claims} - gone
    assert not {d["claim_id"] for d in docs["claim_line"]} & gone
    assert uncovered not in {d["member_id"] for d in docs["member"]}
    assert len(docs["claim"]) == len(_kept_claims(folder))


# -- values ---------------------------------------------------------------------------


def test_claim_totals_and_line_payments_are_the_sums_of_their_transactions(v30: Docs) -> None:
    transactions = rows(SYNTHEA_27, "claims_transactions")
    charged: Counter[str] = Counter()
    paid: Counter[str] = Counter()
    for t in transactions:
        if t["TYPE"] == "CHARGE":
            charged[t["CLAIMID"]] += money(t["AMOUNT"])  # type: ignore[index]
        elif t["TYPE"] == "PAYMENT":
            paid[t["CLAIMID"]] += money(t["PAYMENTS"])  # type: ignore[index]
    for claim in v30["claim"]:
        assert claim["total_charge"] == charged[claim["claim_id"]], claim["claim_id"]
        assert claim["total_paid"] == paid[claim["claim_id"]], claim["claim_id"]

    lines = v30["claim_line"]
    for line in lines:
        folded = line[TRANSACTIONS_KEY]
        assert line["paid_amount"] == sum(money(t["PAYMENTS"]) for t in folded if t["TYPE"] == "PAYMENT")
        assert {t["TYPE"] for t in folded} <= {"PAYMENT", "ADJUSTMENT", "TRANSFERIN", "TRANSFEROUT"}
        # A folded row settles its own charge: same claim, same code.
        assert {(t["CLAIMID"], t["PROCEDURECODE"]) for t in folded} <= {(line["claim_id"], line["procedure_code"])}
    by_claim: defaultdict[str, list[int]] = defaultdict(list)
    for line in lines:
        by_claim[line["claim_id"]].append(line["line_number"])
    assert all(sorted(n) == list(range(1, len(n) + 1)) for n in by_claim.values())
    assert sum(line["paid_amount"] for line in lines) == sum(c["total_paid"] for c in v30["claim"])

    # Every transaction row of a kept claim is a line or folded into exactly one line, verbatim.
    kept = {c["claim_id"] for c in v30["claim"]}
    seen = Counter([line["id"] for line in lines] + [t["ID"] for line in lines for t in line[TRANSACTIONS_KEY]])
    by_id = {t["ID"]: t for t in transactions}
    assert seen == Counter(t["ID"] for t in transactions if t["CLAIMID"] in kept)
    assert all(t == by_id[t["ID"]] for line in lines for t in line[TRANSACTIONS_KEY])


def test_claim_fields_come_from_their_columns(v30: Docs) -> None:
    claims = {c["Id"]: c for c in rows(SYNTHEA_27, "claims")}
    for doc in v30["claim"]:
        row = claims[doc["claim_id"]]
        assert doc["claim_type"] == {"1": "PROFESSIONAL", "2": "INSTITUTIONAL"}[row["HEALTHCARECLAIMTYPEID1"]]  # type: ignore[index]
        assert doc["member_id"] == row["PATIENTID"] and doc["practitioner_id"] == row["PROVIDERID"]
        insurance = row["PRIMARYPATIENTINSURANCEID"]
        assert doc["payer_id"] == (None if insurance == "0" else insurance)
        assert doc[EXTENSION_KEY]["PRIMARYPATIENTINSURANCEID"] == insurance
        assert doc["principal_diagnosis"] == row["DIAGNOSIS1"]
        assert doc["other_diagnoses"] == ([row[f"DIAGNOSIS{i}"] for i in range(2, 9) if row[f"DIAGNOSIS{i}"]] or None)
        assert doc["service_date"] == dt.date.fromisoformat(row["SERVICEDATE"][:10])  # type: ignore[index]
        assert doc["provider_npi"] is None
    assert {d["payer_id"] for d in v30["claim"]} >= {None}


def test_line_codes_keep_their_system(v30: Docs) -> None:
    claims = {c["Id"]: c for c in rows(SYNTHEA_27, "claims")}

    def given(stem: str) -> set[tuple[str | None, ...]]:
        return {(r["PATIENT"], r["ENCOUNTER"], r["CODE"]) for r in rows(SYNTHEA_27, stem)}

    drugs, vaccines = given("medications"), given("immunizations")
    systems = Counter()
    for line in v30["claim_line"]:
        key = (claims[line["claim_id"]]["PATIENTID"], claims[line["claim_id"]]["APPOINTMENTID"], line["procedure_code"])
        expected = "RxNorm" if key in drugs else "CVX" if key in vaccines else "SNOMED"
        assert line["procedure_code_system"] == expected
        systems[expected] += 1
    assert systems["RxNorm"] and systems["CVX"] and systems["SNOMED"]


def test_coverages_and_members(v30: Docs) -> None:
    transitions = rows(SYNTHEA_27, "payer_transitions")
    payers = {p["Id"]: p["NAME"] for p in rows(SYNTHEA_27, "payers")}
    coverages = {d["id"]: d for d in v30["coverage"]}
    relationship = {"Self": "self", "Spouse": "spouse", "Guardian": "child", None: None}
    for row in transitions:
        doc = coverages[str(derived_uuid_py("payer_transitions", row["PATIENT"], row["START_YEAR"], row["PAYER"]))]
        assert (doc["member_id"], doc["payer_id"], doc["secondary_payer_id"]) == (
            row["PATIENT"],
            row["PAYER"],
            row["SECONDARY_PAYER"],
        )
        assert doc["subscriber_id"] == row["MEMBERID"] and doc["policy_holder"] == row["OWNERNAME"]
        assert doc["relationship"] == relationship[row["OWNERSHIP"]]
        assert doc[EXTENSION_KEY] == {"PLAN_OWNERSHIP": row["OWNERSHIP"]}
        assert doc["period_start"] == dt.datetime.fromisoformat(row["START_YEAR"])  # type: ignore[arg-type]
        assert doc["period_end"] == dt.datetime.fromisoformat(row["END_YEAR"])  # type: ignore[arg-type]

    patients = {p["Id"]: p for p in rows(SYNTHEA_27, "patients")}
    code = {"Self": "18", "Spouse": "01", "Guardian": "19", None: None}
    for member in v30["member"]:
        mine = [r for r in transitions if r["PATIENT"] == member["member_id"]]
        # The latest START_YEAR, the last in the file among equals.
        latest = max(reversed(mine), key=lambda r: r["START_YEAR"])  # type: ignore[arg-type,return-value]
        assert member["id"] == str(derived_uuid_py("member", member["member_id"]))
        assert member["relationship_code"] == code[latest["OWNERSHIP"]]
        assert (member["group_id"], member["plan_code"]) == (latest["PAYER"], payers[latest["PAYER"]])
        assert member["coverage_start"] == min(dt.date.fromisoformat(r["START_YEAR"][:10]) for r in mine)  # type: ignore[index]
        assert member["coverage_end"] == max(dt.date.fromisoformat(r["END_YEAR"][:10]) for r in mine)  # type: ignore[index]
        patient = patients[member["member_id"]]
        assert member["name"]["family_name"] == patient["LAST"]
        assert member["birth_date"] == dt.date.fromisoformat(patient["BIRTHDATE"])  # type: ignore[arg-type]


def test_every_reference_names_an_imported_entity(v30: Docs) -> None:
    keys = {
        "member": {d["member_id"] for d in v30["member"]},
        "payer": {d["payer_id"] for d in v30["payer"]},
        "practitioner": {d["practitioner_id"] for d in v30["practitioner"]},
        "organization": {d["organization_id"] for d in v30["organization"]},
        "claim": {d["claim_id"] for d in v30["claim"]},
    }
    patients = {p["Id"] for p in rows(SYNTHEA_27, "patients")}
    assert keys["member"] <= patients
    checked = Counter()
    for type_name, docs in v30.items():
        for ref in layout(type_name).entity.references:
            for doc in docs:
                value = doc.get(ref.field)
                if value is not None:
                    assert value in keys[ref.parent], (type_name, ref.field, value)
                    checked[(type_name, ref.field)] += 1
    assert set(checked) >= {
        ("practitioner", "organization_id"),
        ("coverage", "member_id"),
        ("coverage", "payer_id"),
        ("coverage", "secondary_payer_id"),
        ("claim", "member_id"),
        ("claim", "practitioner_id"),
        ("claim", "payer_id"),
        ("claim_line", "claim_id"),
    }


def test_the_codec_accepts_every_document(v30: Docs, later: Docs) -> None:
    for docs in (v30, later):
        for type_name, entities in docs.items():
            lay = layout(type_name)
            for doc in entities:
                row, problems = encode(lay, doc, NOW)
                assert problems + check_row(lay, row) == [], (type_name, doc["id"])


# -- every column lands ------------------------------------------------------------------


def _landed(target: Target, docs: list[dict[str, Any]], loaded: Loaded) -> set[str]:
    """The columns of the target's file that landed: in a field that ran, or kept in extensions."""
    landed = {c for f in target.fields for c in f.columns if f.path in docs[0] and docs[0][f.path] is not None}
    for doc in docs:
        landed |= set(doc.get(EXTENSION_KEY) or ())
        for folded in doc.get(TRANSACTIONS_KEY) or ():
            landed |= set(folded)
    return landed


@pytest.mark.parametrize("layout_name", ["v3.0", "later"])
def test_every_column_of_every_file_lands(layout_name: str, later_folder: Path) -> None:
    folder = SYNTHEA_27 if layout_name == "v3.0" else later_folder
    with read_folder(folder) as loaded:
        landed: defaultdict[str, set[str]] = defaultdict(set)
        for target in TARGETS:
            docs = run(loaded, target)
            # A field lands its columns where some document has a value for it.
            for f in target.fields:
                if any(d.get(f.path) is not None for d in docs):
                    landed[target.file] |= set(f.columns)
            landed[target.file] |= _landed(target, docs, loaded)
        for stem in {t.file for t in TARGETS}:
            file = loaded.files[stem]
            assert set(file.header) - landed[stem] == set(), stem


def test_a_column_no_release_has_is_kept_in_extensions(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    shutil.copytree(SYNTHEA_27, folder)
    payers = rows(SYNTHEA_27, "payers")
    for i, row in enumerate(payers):
        row["RATING"] = str(i)
    _write(folder / "payers.csv", list(payers[0]), payers)
    docs = documents(folder)
    assert [d[EXTENSION_KEY]["RATING"] for d in docs["payer"]] == [str(i) for i in range(len(payers))]


# -- files absent ------------------------------------------------------------------------


def test_without_organizations_or_payers_the_references_into_them_stay_in_extensions(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    shutil.copytree(SYNTHEA_27, folder)
    (folder / "organizations.csv").unlink()
    (folder / "payers.csv").unlink()
    docs = documents(folder)
    assert "organization" not in docs and "payer" not in docs and "coverage" not in docs
    providers = {p["Id"]: p for p in rows(SYNTHEA_27, "providers")}
    for doc in docs["practitioner"]:
        assert "organization_id" not in doc
        assert doc[EXTENSION_KEY]["ORGANIZATION"] == providers[doc["practitioner_id"]]["ORGANIZATION"]
    assert not any("payer_id" in d for d in docs["claim"])
    latest = {}
    for row in sorted(rows(SYNTHEA_27, "payer_transitions"), key=lambda r: r["START_YEAR"]):  # type: ignore[arg-type,return-value]
        latest[row["PATIENT"]] = row["PAYER"]
    assert {d["member_id"]: d["plan_code"] for d in docs["member"]} == latest


def test_claims_need_members_and_practitioners(tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    shutil.copytree(SYNTHEA_27, folder)
    (folder / "providers.csv").unlink()
    (folder / "medications.csv").unlink()
    with read_folder(folder) as loaded:
        assert not loaded.has(*CLAIMS.needs) and not loaded.has(*CLAIM_LINES.needs)
        # Run anyway, the lines read medications.csv only when it is there.
        lines = run(loaded, CLAIM_LINES)
    assert "RxNorm" not in {line["procedure_code_system"] for line in lines}


# -- the later layout --------------------------------------------------------------------


def _mapped(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in (EXTENSION_KEY, "npi", "provider_npi", "ownership")}


def test_the_later_layout_gives_the_same_entities_for_the_same_rows(v30: Docs, later: Docs, later_folder: Path) -> None:
    assert set(later) == set(v30)
    for type_name, docs in v30.items():
        old = {d["id"]: _mapped(d) for d in docs}
        new = {d["id"]: _mapped(d) for d in later[type_name]}
        assert new == old, type_name

    npis = {p["Id"]: p["NPI"] for p in rows(later_folder, "providers")}
    assert all(d["npi"] == npi(d["practitioner_id"]) for d in later["practitioner"])
    assert all(d["npi"] == npi(d["organization_id"]) for d in later["organization"])
    assert all(d["provider_npi"] == npis[d["practitioner_id"]] for d in later["claim"])
    assert {d["ownership"] for d in later["payer"]} == {"GOVERNMENT", "PRIVATE"}
    providers = {d["id"]: d[EXTENSION_KEY] for d in later["practitioner"]}
    assert all(set(e) == {"ENCOUNTERS", "PROCEDURES", "GENDER", "STATE"} for e in providers.values())
    assert all(set(d[EXTENSION_KEY]) == {"UTILIZATION", "GENDER", "STATE"} for d in v30["practitioner"])


# -- the declarations --------------------------------------------------------------------


def test_the_declarations_cover_the_files_and_say_their_rules() -> None:
    assert [t.entity_type for t in TARGETS] == [
        "organization",
        "practitioner",
        "payer",
        "member",
        "coverage",
        "claim",
        "claim_line",
    ]
    assert {ORGANIZATIONS.file, PROVIDERS.file, PAYERS.file, MEMBERS.file, COVERAGES.file} == {
        "organizations",
        "providers",
        "payers",
        "payer_transitions",
    }
    for target in TARGETS:
        assert target.fields
        assert all(f.path for f in target.fields)
    assert CLAIMS.exclusions and CLAIM_LINES.exclusions and MEMBERS.exclusions
    assert [e.reason for e in CLAIMS.excluded] == list(CLAIMS.exclusions)


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def test_extensions_hold_text_only(v30: Docs) -> None:
    kinds: Callable[[Any], bool] = lambda v: v is None or isinstance(v, str | dict | list)  # noqa: E731
    for docs in v30.values():
        for doc in docs:
            for key in (EXTENSION_KEY, TRANSACTIONS_KEY):
                assert all(kinds(v) for v in _walk(doc.get(key)))
