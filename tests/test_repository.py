"""ScenarioRepository on DuckDB and PostgreSQL: round trips, identity, references,
overwrite and delete, listing, batching and query helpers."""

from __future__ import annotations

import copy
import datetime as dt
import gc
import subprocess
import sys
import uuid
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from healthsim_models import (
    ENTITY_TYPES,
    AmbiguousEntityError,
    AmbiguousPatientError,
    ScenarioExistsError,
    ScenarioNotFoundError,
    UnknownEntityTypeError,
    ValidationError,
    entity_type,
    session_scope,
)
from healthsim_models.errors import InvalidArgumentError
from healthsim_state import ScenarioRepository
from healthsim_state.store import save as save_pipeline
from healthsim_state.store.dialects import dialect_of
from healthsim_state.store.tuning import BULK_GC_THRESHOLD
from tests.helpers import fixture, normalise

CANONICAL = fixture("scenario-canonical.json")


@pytest.fixture
def repo(engine):
    """A repository whose session commits after each test step that succeeds."""
    with session_scope(engine) as session:
        yield ScenarioRepository(session)


def save(engine, name: str, entities: dict[str, Any], **kwargs: Any):
    with session_scope(engine) as session:
        return ScenarioRepository(session).save(name, entities, **kwargs)


def load(engine, name: str):
    with session_scope(engine) as session:
        return ScenarioRepository(session).load(name)


def rows(engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def patient(mrn: str, given: str = "Ada", **extra: Any) -> dict[str, Any]:
    return {
        "id": extra.pop("id", f"PAT-{mrn}"),
        "mrn": mrn,
        "name": {"given_name": given, "family_name": "Lovelace"},
        "birth_date": "1980-02-03",
        "gender": "F",
        **extra,
    }


def encounter(enc_id: str, mrn: str, **extra: Any) -> dict[str, Any]:
    return {
        "encounter_id": enc_id,
        "patient_mrn": mrn,
        "class_code": "O",
        "status": "finished",
        "admission_time": "2024-01-02T10:00:00Z",
        **extra,
    }


def test_canonical_example_round_trips_field_for_field(engine) -> None:
    summary = save(
        engine, CANONICAL["name"], CANONICAL["entities"], description=CANONICAL["description"], tags=CANONICAL["tags"]
    )
    assert summary.name == CANONICAL["name"]
    assert summary.counts == {t: len(v) for t, v in CANONICAL["entities"].items() if v}
    assert summary.warnings == []
    loaded = load(engine, CANONICAL["name"])
    assert list(loaded.entities) == [et.name for et in ENTITY_TYPES]
    for type_name, documents in CANONICAL["entities"].items():
        assert normalise(loaded.entities[type_name]) == normalise(documents), type_name
    assert loaded.description == CANONICAL["description"]
    assert loaded.tags == sorted(CANONICAL["tags"])


def test_unknown_fields_provenance_and_ids_come_back(engine) -> None:
    save(engine, "s", CANONICAL["entities"])
    patients = load(engine, "s").entities["patient"]
    assert [p["id"] for p in patients] == ["8111e3d5-6926-4978-a238-2b454150c5ce", "PAT-0002", "PAT-0003"]
    assert patients[0]["address"]["county"] == "Franklin"
    assert patients[2]["custom_risk_score"] == 0.42
    assert patients[1]["_provenance"] == CANONICAL["entities"]["patient"][1]["_provenance"]
    med = load(engine, "s").entities["medication"][1]
    assert med["start_date"] == "2024-03-12"  # a bare date stays a bare date


def test_money_and_decimals_load_as_decimal(engine) -> None:
    from decimal import Decimal

    save(engine, "s", CANONICAL["entities"])
    claim = load(engine, "s").entities["claim"][0]
    assert claim["total_allowed"] == Decimal("148.83")
    assert isinstance(claim["total_charge"], Decimal)


def test_resaving_the_same_scenario_changes_nothing(engine) -> None:
    first = save(engine, "s", CANONICAL["entities"])
    with engine.connect() as c:
        before = sorted(map(tuple, c.execute(sa.text("SELECT id, mrn FROM patients")).all()))
    second = save(engine, "s", CANONICAL["entities"], overwrite=True)
    with engine.connect() as c:
        after = sorted(map(tuple, c.execute(sa.text("SELECT id, mrn FROM patients")).all()))
    assert first.id == second.id
    assert before == after
    assert rows(engine, "lab_results") == len(CANONICAL["entities"]["lab_result"])
    assert normalise(load(engine, "s").entities) == normalise(
        {et.name: CANONICAL["entities"].get(et.name, []) for et in ENTITY_TYPES}
    )


def test_a_uuid_id_is_one_entity_across_scenarios_latest_wins(engine) -> None:
    shared_id = str(uuid.uuid4())
    save(engine, "a", {"patient": [patient("MRN-1", "First", id=shared_id)]})
    save(engine, "b", {"patients": [patient("MRN-1", "Second", id=shared_id)]})
    assert rows(engine, "patients") == 1
    assert load(engine, "a").entities["patient"][0]["name"]["given_name"] == "Second"
    assert load(engine, "a").entities["patient"][0]["id"] == shared_id


def test_the_same_mrn_in_two_scenarios_is_two_people(engine) -> None:
    save(engine, "a", {"patient": [patient("MRN00001", "Alice", id="PAT-1")]})
    save(engine, "b", {"patient": [patient("MRN00001", "Bob", id="PAT-1")]})
    assert rows(engine, "patients") == 2
    assert load(engine, "a").entities["patient"][0]["name"]["given_name"] == "Alice"
    assert load(engine, "b").entities["patient"][0]["name"]["given_name"] == "Bob"


def test_the_last_occurrence_of_an_identity_wins(engine) -> None:
    docs = [patient("MRN-1", "Old"), patient("MRN-2"), patient("MRN-1", "New")]
    summary = save(engine, "s", {"patient": docs})
    assert summary.counts == {"patient": 2}
    loaded = load(engine, "s").entities["patient"]
    assert [(p["mrn"], p["name"]["given_name"]) for p in loaded] == [("MRN-2", "Ada"), ("MRN-1", "New")]


def test_content_identity_for_keyless_entities(engine) -> None:
    lab = {"test_name": "Sodium", "value": "140", "patient_mrn": "MRN-1", "collected_time": "2024-01-02T10:00:00Z"}
    entities = {"patient": [patient("MRN-1")], "lab_result": [lab, dict(lab), {**lab, "value": "141"}]}
    assert save(engine, "s", entities).counts["lab_result"] == 2
    save(engine, "s", entities, overwrite=True)
    assert rows(engine, "lab_results") == 2


def test_a_dangling_hard_reference_fails_and_writes_nothing(engine) -> None:
    bad = fixture("invalid/dangling-mrn.json")
    with pytest.raises(ValidationError) as info:
        save(engine, bad["name"], bad["entities"])
    (problem,) = info.value.problems
    assert (problem.entity_type, problem.position, problem.field) == ("encounter", 0, "patient_mrn")
    assert "MRN-900399" in problem.reason
    assert "encounter[0] patient_mrn" in str(info.value)
    with session_scope(engine) as session:
        assert not ScenarioRepository(session).exists(bad["name"])
    assert rows(engine, "patients") == 0
    assert rows(engine, "scenarios") == 0


@pytest.mark.parametrize(
    ("name", "type_name", "field", "reason"),
    [
        ("bad-date.json", "patient", "birth_date", "not a real calendar day"),
        ("bad-gender.json", "patient", "gender", "'X' is not one of"),
        ("discharge-before-admission.json", "encounter", "discharge_time", "before admission_time"),
    ],
)
def test_invalid_examples_name_type_field_and_reason(engine, name, type_name, field, reason) -> None:
    document = fixture(f"invalid/{name}")
    with pytest.raises(ValidationError) as info:
        save(engine, document["name"], document["entities"])
    matching = [p for p in info.value.problems if p.entity_type == type_name and p.field == field]
    assert matching and reason in matching[0].reason, info.value.problems
    assert rows(engine, "scenarios") == 0


def test_an_unknown_entity_type_lists_the_valid_ones(engine) -> None:
    document = fixture("invalid/unknown-entity-type.json")
    with pytest.raises(UnknownEntityTypeError, match="'patientz'.*payer, patient, encounter.*imaging_study.*coverage"):
        save(engine, document["name"], document["entities"])


def test_all_problems_are_reported_together(engine) -> None:
    docs = [
        patient("MRN-1", gender="X"),
        {**patient("MRN-2"), "birth_date": "yesterday", "ssn": "12"},
        {"mrn": "MRN-3"},
    ]
    with pytest.raises(ValidationError) as info:
        save(engine, "s", {"patient": docs})
    found = {(p.position, p.field) for p in info.value.problems}
    assert {(0, "gender"), (1, "birth_date"), (1, "ssn"), (2, "id"), (2, "name.given_name")} <= found
    assert "PAT-MRN-2" in str(info.value)


def test_a_failed_overwrite_leaves_the_scenario_as_it_was(engine) -> None:
    save(engine, "s", CANONICAL["entities"], tags=["kept"])
    before = load(engine, "s")
    broken = copy.deepcopy(CANONICAL["entities"])
    broken["encounter"][0]["patient_mrn"] = "MRN-NOBODY"
    with pytest.raises(ValidationError):
        save(engine, "s", broken, overwrite=True, tags=["lost"])
    after = load(engine, "s")
    assert after.entities == before.entities
    assert after.tags == ["kept"]


def test_existing_name_needs_overwrite(engine) -> None:
    save(engine, "s", {"patient": [patient("MRN-1")]})
    with pytest.raises(ScenarioExistsError, match="overwrite=True"):
        save(engine, "s", {"patient": [patient("MRN-2")]})


def test_overwrite_replaces_membership_and_deletes_orphans_only(engine) -> None:
    shared = patient("MRN-S", id=str(uuid.uuid4()))
    save(engine, "a", {"patient": [shared, patient("MRN-A")]})
    save(engine, "b", {"patient": [shared]})
    save(engine, "a", {"patient": [patient("MRN-NEW")]}, overwrite=True)
    assert [p["mrn"] for p in load(engine, "a").entities["patient"]] == ["MRN-NEW"]
    assert [p["mrn"] for p in load(engine, "b").entities["patient"]] == ["MRN-S"]
    assert rows(engine, "patients") == 2  # MRN-A is gone, MRN-S kept for b


def test_overwrite_of_a_missing_scenario_is_a_plain_create(engine) -> None:
    summary = save(engine, "new", {"patient": [patient("MRN-1")]}, overwrite=True, tags=["t"])
    assert summary.counts == {"patient": 1}
    loaded = load(engine, "new")
    assert ([p["mrn"] for p in loaded.entities["patient"]], loaded.tags) == (["MRN-1"], ["t"])
    save(engine, "new", {"patient": [patient("MRN-2")]}, overwrite=True)  # now a real overwrite
    assert [p["mrn"] for p in load(engine, "new").entities["patient"]] == ["MRN-2"]
    assert rows(engine, "patients") == 1


def test_overwrite_of_a_missing_scenario_through_the_cli_and_the_mcp_tool(store_url: str) -> None:
    from typer.testing import CliRunner

    from healthsim_state.interfaces.cli import app
    from healthsim_state.interfaces.mcp import tools
    from tests.helpers import FIXTURES

    result = CliRunner().invoke(
        app,
        ["scenario", "import", str(FIXTURES / "scenario-canonical.json"), "--overwrite", "--database-url", store_url],
    )
    assert result.exit_code == 0, result.output
    assert f"imported {CANONICAL['name']!r}" in result.stdout
    store = tools.Store(store_url)
    try:
        saved = tools.save_scenario(store, "via-mcp", {"patient": [patient("MRN-1")]}, overwrite=True)
        assert saved["counts"] == {"patient": 1}
        listed = tools.list_scenarios(store)["scenarios"]
        assert sorted(s["name"] for s in listed) == sorted([CANONICAL["name"], "via-mcp"])
        assert sum(listed[[s["name"] for s in listed].index(CANONICAL["name"])]["entity_counts"].values()) == 77
    finally:
        store.close()


def test_delete_removes_links_tags_and_unshared_entities(engine) -> None:
    shared = patient("MRN-S", id=str(uuid.uuid4()))
    save(engine, "a", {"patient": [shared, patient("MRN-A")], "encounter": [encounter("E1", "MRN-A")]}, tags=["x"])
    save(engine, "b", {"patient": [shared]})
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        assert repo.delete("a") is True
        assert repo.delete("a") is False
    assert rows(engine, "patients") == 1
    assert rows(engine, "encounters") == 0
    assert rows(engine, "scenario_tags") == 0
    assert rows(engine, "scenario_entities") == 1
    assert load(engine, "b").entities["patient"][0]["mrn"] == "MRN-S"


def test_add_entities_resolves_against_what_the_scenario_holds(engine) -> None:
    save(engine, "s", {"patient": [patient("MRN-1")]})
    with session_scope(engine) as session:
        summary = ScenarioRepository(session).add_entities("s", {"encounters": [encounter("E1", "MRN-1")]})
    assert summary.counts == {"patient": 1, "encounter": 1}
    assert summary.saved == {"encounter": 1}
    with engine.connect() as c:
        pid, enc_patient = c.execute(sa.text("SELECT p.id, e.patient_uuid FROM patients p, encounters e")).one()
    assert pid == enc_patient
    with pytest.raises(ValidationError, match="MRN-2"), session_scope(engine) as session:
        ScenarioRepository(session).add_entities("s", {"encounter": [encounter("E2", "MRN-2")]})


def test_add_entities_keeps_business_keys_unique_in_the_scenario(engine) -> None:
    save(engine, "s", {"patient": [patient("MRN-1", id="P-1")]})
    with (
        pytest.raises(ValidationError, match="MRN-1 is already used by another patient"),
        session_scope(engine) as session,
    ):
        ScenarioRepository(session).add_entities("s", {"patient": [patient("MRN-1", id="P-2")]})


def test_add_entities_to_a_missing_scenario(engine) -> None:
    with pytest.raises(ScenarioNotFoundError, match="nope"), session_scope(engine) as session:
        ScenarioRepository(session).add_entities("nope", {"patient": [patient("MRN-1")]})


def test_soft_references_only_warn(engine) -> None:
    subject = {
        "id": "SUBJ-1",
        "name": {"given_name": "A", "family_name": "B"},
        "birth_date": "1970-01-01",
        "gender": "M",
        "subject_id": "0001",
        "usubjid": "STUDY-101-0001",
        "study_id": "STUDY",
        "site_id": "101",
        "informed_consent_date": "2024-01-01",
        "patient_ref": "MRN-ABSENT",
    }
    summary = save(engine, "s", {"subject": [subject]})
    assert summary.warnings and "patient_ref" in summary.warnings[0] and "MRN-ABSENT" in summary.warnings[0]
    assert load(engine, "s").entities["subject"][0]["patient_ref"] == "MRN-ABSENT"


def test_nested_claim_lines_are_lifted(engine) -> None:
    claim = copy.deepcopy(CANONICAL["entities"]["claim"][0])
    lines = [line for line in CANONICAL["entities"]["claim_line"] if line["claim_id"] == claim["claim_id"]]
    claim["claim_lines"] = [{k: v for k, v in line.items() if k != "claim_id"} for line in lines]
    entities = {name: CANONICAL["entities"][name] for name in ("organization", "practitioner", "payer", "member")}
    entities["claim"] = [claim]
    assert save(engine, "s", entities).counts["claim_line"] == len(lines)
    loaded = load(engine, "s")
    assert "claim_lines" not in loaded.entities["claim"][0]
    assert normalise(loaded.entities["claim_line"]) == normalise(lines)


def test_generators_are_consumed_in_bounded_batches(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    dialect = dialect_of(engine)
    real_upsert, real_upsert_arrow = dialect.upsert, dialect.upsert_arrow

    def counting_upsert(session, table, rows, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(rows))
        return real_upsert(session, table, rows, *args, **kwargs)

    def counting_upsert_arrow(session, table, data, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(data.num_rows)  # batches encoded column by column
        return real_upsert_arrow(session, table, data, *args, **kwargs)

    monkeypatch.setattr(dialect, "upsert", counting_upsert)
    monkeypatch.setattr(dialect, "upsert_arrow", counting_upsert_arrow)
    pulled = []

    def patients():
        for i in range(35):
            pulled.append(i)
            yield patient(f"MRN-{i:03d}")

    with session_scope(engine) as session:
        summary = ScenarioRepository(session, batch_size=10).save("s", {"patient": patients()})
    assert calls == [10, 10, 10, 5]
    assert summary.counts == {"patient": 35}
    assert [p["mrn"] for p in load(engine, "s").entities["patient"]] == [f"MRN-{i:03d}" for i in range(35)]


def test_links_are_written_in_bounded_batches_across_types(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    dialect = dialect_of(engine)
    real_link = dialect.link

    def counting_link(session, scenario_id, links):  # type: ignore[no-untyped-def]
        calls.append(len(links))
        return real_link(session, scenario_id, links)

    monkeypatch.setattr(dialect, "link", counting_link)
    monkeypatch.setattr(save_pipeline, "LINK_BATCH_SIZE", 15)
    patients = [patient(f"MRN-{i:03d}") for i in range(25)]
    patients.append(patient("MRN-003", given="Again", id="PAT-MRN-003"))  # same identity, a later batch
    encounters = [encounter(f"E-{i}", f"MRN-{i:03d}") for i in range(12)]
    with session_scope(engine) as session:
        summary = ScenarioRepository(session, batch_size=10).save("s", {"patient": patients, "encounter": encounters})
    # Batches of 10: patients 10+10 (flush), 6 + encounters 10 (flush), the last 2 at the end.
    assert calls == [20, 16, 2]
    assert summary.counts == {"patient": 25, "encounter": 12}
    loaded = load(engine, "s").entities
    assert [p["mrn"] for p in loaded["patient"]] == [f"MRN-{i:03d}" for i in range(25)]
    assert loaded["patient"][3]["name"]["given_name"] == "Again"
    assert [e["encounter_id"] for e in loaded["encounter"]] == [f"E-{i}" for i in range(12)]


def test_a_repeated_identity_keeps_its_first_place_across_batches(engine) -> None:
    docs = [patient("MRN-A"), patient("MRN-B"), patient("MRN-C"), patient("MRN-A", given="Later")]
    with session_scope(engine) as session:
        summary = ScenarioRepository(session, batch_size=2).save("s", {"patient": docs})
    assert summary.counts == {"patient": 3}
    loaded = load(engine, "s").entities["patient"]
    assert [(p["mrn"], p["name"]["given_name"]) for p in loaded] == [
        ("MRN-A", "Later"),
        ("MRN-B", "Ada"),
        ("MRN-C", "Ada"),
    ]
    with session_scope(engine) as session:  # sent again later: updated in place
        ScenarioRepository(session).add_entities("s", {"patient": [patient("MRN-B", given="Again")]})
    loaded = load(engine, "s").entities["patient"]
    assert [(p["mrn"], p["name"]["given_name"]) for p in loaded] == [
        ("MRN-A", "Later"),
        ("MRN-B", "Again"),
        ("MRN-C", "Ada"),
    ]


def test_one_batch_updates_stored_entities_and_inserts_new_ones(engine) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    save(engine, "a", {"patient": [patient("MRN-1", "Old", id=first)]})
    with session_scope(engine) as session:
        summary = ScenarioRepository(session).add_entities(
            "a", {"patient": [patient("MRN-1", "New", id=first), patient("MRN-2", id=second)]}
        )
    assert summary.saved == {"patient": 2}
    assert rows(engine, "patients") == 2
    loaded = load(engine, "a").entities["patient"]
    assert [(p["id"], p["name"]["given_name"]) for p in loaded] == [(first, "New"), (second, "Ada")]


def test_a_written_batch_is_not_held_until_commit(engine) -> None:
    """Each batch's Arrow table is freed once its statement ran, inside the
    transaction: a save of millions of entities never holds them all."""
    if engine.dialect.name != "duckdb":
        pytest.skip("the Arrow batches are DuckDB's write path")
    docs = [patient(f"MRN-{i:05d}", given="x" * 200) for i in range(3000)]
    gc.collect()
    before = pa.total_allocated_bytes()
    with session_scope(engine) as session:
        ScenarioRepository(session, batch_size=1000).save("s", {"patient": docs})
        held = pa.total_allocated_bytes() - before
    assert held < 100_000, f"{held} bytes of Arrow memory held before commit"
    assert rows(engine, "patients") == 3000


def test_scenario_work_leaves_the_canonical_and_population_mappers_alone(duckdb_url: str) -> None:
    """A process that saves and loads scenarios never pays SQLAlchemy's setup
    of the 1,200 column attributes of the tables it reaches through Core."""
    script = f"""
from healthsim_models import CanonicalBase, PopulationBase, Scenario, create_store_engine, session_scope
from healthsim_state import ScenarioRepository
engine = create_store_engine({duckdb_url!r})
with session_scope(engine) as session:
    ScenarioRepository(session).save("s", {{"patient": [{patient("MRN-1")!r}]}})
with session_scope(engine) as session:
    ScenarioRepository(session).load("s")
    ScenarioRepository(session).list()
assert Scenario.__mapper__.configured
print([m.class_.__name__ for base in (CanonicalBase, PopulationBase) for m in base.registry.mappers if m.configured])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_save_that_fails_after_writing_links_leaves_nothing(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(save_pipeline, "LINK_BATCH_SIZE", 5)
    patients = [patient(f"MRN-{i:03d}") for i in range(20)] + [patient("MRN-BAD", gender="X")]
    with pytest.raises(ValidationError, match="gender"), session_scope(engine) as session:
        ScenarioRepository(session, batch_size=10).save("s", {"patient": patients})
    assert rows(engine, "scenario_entities") == 0
    assert rows(engine, "patients") == 0
    assert rows(engine, "scenarios") == 0


def test_a_pyarrow_table_with_flat_columns(engine) -> None:
    table = pa.table(
        {
            "id": ["P-1", "P-2"],
            "mrn": ["MRN-1", "MRN-2"],
            "given_name": ["Ada", "Grace"],
            "family_name": ["Lovelace", "Hopper"],
            "birth_date": ["1815-12-10", "1906-12-09"],
            "gender": ["F", "F"],
            "city": ["London", None],
        }
    )
    save(engine, "s", {"patient": table})
    loaded = load(engine, "s").entities["patient"]
    assert loaded[0]["name"] == {"given_name": "Ada", "family_name": "Lovelace"}
    assert loaded[0]["address"] == {"city": "London"}
    assert loaded[1]["address"] == {"city": None}


def test_list_filters_and_pages_in_one_query(engine) -> None:
    save(engine, "alpha", {"patient": [patient("M1")]}, tags=["demo", "diabetes"], description="first one")
    save(engine, "beta", {}, tags=["demo"])
    save(engine, "gamma_100%", {}, description="Contains DIABETES text")
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        everything = repo.list()
        assert len([s for s in statements if "scenarios" in s]) == 1
        assert [s.name for s in everything] == ["alpha", "beta", "gamma_100%"]
        assert everything[0].tags == ["demo", "diabetes"]
        assert everything[0].entity_counts == {"patient": 1}
        assert [s.name for s in repo.list(tag="demo")] == ["alpha", "beta"]
        assert [s.name for s in repo.list(tag=["demo", "diabetes"])] == ["alpha"]
        assert [s.name for s in repo.list(search="diabetes")] == ["gamma_100%"]
        assert [s.name for s in repo.list(search="100%")] == ["gamma_100%"]
        assert [s.name for s in repo.list(search="a_1")] == ["gamma_100%"]
        assert [s.name for s in repo.list(limit=1, offset=1)] == ["beta"]
        assert repo.list(limit=0) == [] and repo.list(offset=2**63 - 1) == []
        for bad in [
            {"offset": -1},
            {"limit": -1},
            {"offset": 2**63},
            {"limit": 2**64},
            {"limit": "5"},
            {"offset": False},
        ]:
            with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
                repo.list(**bad)


def test_tags_and_exists(engine) -> None:
    summary = save(engine, "s", {}, tags=["a"])
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        assert repo.exists("s") and repo.exists(summary.id) and repo.exists(str(summary.id))
        assert not repo.exists("t")
        assert repo.add_tags("s", ["b", "a", "c"]) == ["a", "b", "c"]
        assert repo.remove_tags("s", ["a", "zzz"]) == ["b", "c"]
    with pytest.raises(ValidationError, match="tag"):
        save(engine, "t", {}, tags=[""])


def test_query_helpers(engine) -> None:
    save(engine, CANONICAL["name"], CANONICAL["entities"])
    save(engine, "other", {"patient": [patient("MRN-100231", id="X-1")]})
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        assert [p["mrn"] for p in repo.patients_in_scenario(CANONICAL["name"])] == [
            "MRN-100231",
            "MRN-100232",
            "MRN-100233",
        ]
        assert repo.get_patient("PAT-0002")["mrn"] == "MRN-100232"
        assert repo.get_patient("8111e3d5-6926-4978-a238-2b454150c5ce")["mrn"] == "MRN-100231"
        assert repo.get_patient("MRN-100233")["id"] == "PAT-0003"
        assert repo.get_patient("MRN-NONE") is None
        with pytest.raises(AmbiguousPatientError):
            repo.get_patient("MRN-100231")
        assert repo.get_patient("MRN-100231", scenario="other")["id"] == "X-1"
        # The same lookups for any type: by business key, document id or store UUID.
        claims = repo.documents(CANONICAL["name"], "claims")
        assert claims and repo.find_entity("claim", claims[0]["claim_id"]) == claims[0]
        assert repo.find_entity("claim", "no-such-claim") is None
        encounters = repo.documents(CANONICAL["name"], "encounter")
        assert repo.find_entity("encounters", encounters[-1]["encounter_id"]) == encounters[-1]
        with pytest.raises(AmbiguousEntityError, match="matches patients in more than one scenario"):
            repo.find_entity("patient", "MRN-100231")
        counts = repo.count_entities_by_type(CANONICAL["name"])
        assert counts["lab_result"] == 6 and counts["patient"] == 3
        assert repo.count_entities_by_type()["patient"] == 4
        summary = repo.scenario_summary(CANONICAL["name"])
        assert summary.entity_counts == counts
        frame = repo.entities_frame(CANONICAL["name"], "lab_results")
        assert isinstance(frame, pa.Table)
        assert frame.num_rows == 6
        assert frame.column_names == [c.name for c in entity_type("lab_result").model.__table__.columns]
        assert frame.column("loinc_code").to_pylist()[0] == "4548-4"


def test_entities_frame_finds_the_scenario_by_name_or_id_and_refuses_unknown_ones(engine) -> None:
    lab = {"test_name": "Sodium", "value": "140", "patient_mrn": "MRN-1", "collected_time": "2024-01-02T10:00:00Z"}
    first = save(engine, "first", {"patient": [patient("MRN-1")], "lab_result": [lab]})
    # A scenario whose name is the other one's id: the name wins, as everywhere.
    save(engine, str(first.id), {"patient": [patient("MRN-2"), patient("MRN-3")]})
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        assert repo.entities_frame("first", "patient").column("mrn").to_pylist() == ["MRN-1"]
        assert repo.entities_frame(first.id, "patient").column("mrn").to_pylist() == ["MRN-1"]
        assert repo.entities_frame(str(first.id), "patient").column("mrn").to_pylist() == ["MRN-2", "MRN-3"]
        # No entities of the type: an empty table with the columns, not an error.
        empty = repo.entities_frame(str(first.id), "lab_result")
        assert empty.num_rows == 0 and empty.column_names == repo.entities_frame("first", "lab_result").column_names
        # The fetch reads through the driver: an unflushed change of the session counts.
        first_row = repo._require("first")
        first_row.name = "renamed"
        assert repo.entities_frame("renamed", "patient").column("mrn").to_pylist() == ["MRN-1"]
        with pytest.raises(ScenarioNotFoundError):
            repo.entities_frame("first", "patient")
        session.rollback()
        with pytest.raises(ScenarioNotFoundError, match="missing"):
            repo.entities_frame("missing", "patient")
        with pytest.raises(ScenarioNotFoundError):
            repo.entities_frame(uuid.uuid4(), "patient")


def test_backslash_text_is_not_mistaken_for_nul(engine) -> None:
    doc = patient("MRN-1", x_note="\\u0000 is how JSON writes NUL", x_list=["\\u0000"])
    save(engine, "s", {"patient": [doc]})
    assert load(engine, "s").entities["patient"][0]["x_list"] == ["\\u0000"]


def test_a_real_nul_is_refused_on_every_backend(engine) -> None:
    with pytest.raises(ValidationError, match="NUL"):
        save(engine, "s", {"patient": [patient("MRN-1", x_note="a\x00b")]})
    with pytest.raises(ValidationError, match="NUL"):
        save(engine, "s", {"patient": [patient("MRN-1", given="A\x00")]})


def test_an_unknown_field_that_is_not_json_is_refused_by_name(engine) -> None:
    doc = patient("MRN-1", x_when=dt.datetime(2025, 1, 1))
    with pytest.raises(ValidationError, match=r"patient\[0\] \(id PAT-MRN-1\) x_when: .*is not a JSON value"):
        save(engine, "s", {"patient": [doc]})
    assert rows(engine, "patients") == 0


def test_provenance_extra_keys_and_nulls_come_back(engine) -> None:
    plain = patient("MRN-1")
    extra = patient("MRN-2", _provenance={"source_type": "generated", "note": {"run": [1, 2]}})
    nulled = patient("MRN-3", _provenance={"source_type": "generated", "skill_used": None})
    save(engine, "s", {"patient": [plain, extra, nulled]})
    assert load(engine, "s").entities["patient"] == [plain, extra, nulled]


def test_a_new_scenario_can_keep_the_id_and_creation_time_it_had(engine) -> None:
    sid = uuid.uuid4()
    created = dt.datetime(2025, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    summary = save(engine, "imported", {"patient": [patient("MRN-1")]}, scenario_id=sid, created_at=created)
    assert summary.id == sid
    loaded = load(engine, sid)
    assert loaded.name == "imported"
    assert loaded.created_at == created
    with pytest.raises(ScenarioExistsError, match="already belongs to the scenario 'imported'"):
        save(engine, "other", {"patient": [patient("MRN-2")]}, scenario_id=sid)
    assert rows(engine, "patients") == 1


def test_iter_entities_streams_in_saved_order_across_batches(engine) -> None:
    patients = [patient(f"MRN-{i:03d}") for i in range(25)]
    save(engine, "s", {"patient": list(reversed(patients))})
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        streamed = list(repo.iter_entities("s", "patients", batch_size=4))
        assert streamed == repo.load("s").entities["patient"]
        assert [p["mrn"] for p in streamed] == [p["mrn"] for p in reversed(patients)]
        assert list(repo.iter_entities("s", "encounter")) == []


def test_iter_entities_pages_are_slices_of_the_saved_order(engine) -> None:
    # A repeated identity leaves a gap in the positions; add_entities appends.
    docs = [patient(f"MRN-{i:03d}") for i in range(12)]
    save(engine, "s", {"patient": [*docs[:6], docs[2], *docs[6:10]]})
    with session_scope(engine) as session:
        ScenarioRepository(session).add_entities("s", {"patient": docs[10:]})
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        everything = list(repo.iter_entities("s", "patient"))
        assert len(everything) == 12
        for offset, limit in [(0, 5), (3, 4), (9, 10), (11, 1), (12, 3), (40, 2), (4, None), (0, 0)]:
            end = None if limit is None else offset + limit
            page = list(repo.iter_entities("s", "patient", offset=offset, limit=limit, batch_size=2))
            assert page == everything[offset:end], (offset, limit)
        for bad in [
            {"offset": -1},
            {"limit": -2},
            {"offset": 1.5},
            {"limit": True},
            {"offset": None},
            {"offset": 2**63},
            {"limit": 2**64},
        ]:
            with pytest.raises(InvalidArgumentError, match=next(iter(bad))):
                list(repo.iter_entities("s", "patient", **bad))


def _thresholds_seen(docs: list[dict[str, Any]], seen: list[tuple[int, ...]]) -> Any:
    for doc in docs:
        seen.append(gc.get_threshold())
        yield doc


@pytest.mark.parametrize("fails", [False, True])
def test_a_save_collects_garbage_less_often_and_restores_the_thresholds(engine, fails: bool) -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 11, 12)
        seen: list[tuple[int, ...]] = []
        docs = [patient("M1"), patient("M2", gender="bad" if fails else "M")]
        if fails:
            with pytest.raises(ValidationError):
                save(engine, "gc", {"patient": _thresholds_seen(docs, seen)})
        else:
            save(engine, "gc", {"patient": _thresholds_seen(docs, seen)})
        assert seen == [(BULK_GC_THRESHOLD, 11, 12)] * 2
        assert gc.get_threshold() == (700, 11, 12)
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("first", [0, BULK_GC_THRESHOLD * 2])
def test_a_save_leaves_collection_alone_when_the_caller_turned_it_off_or_down(engine, first: int) -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(first, 10, 10)
        seen: list[tuple[int, ...]] = []
        save(engine, "gc", {"patient": _thresholds_seen([patient("M1")], seen)})
        assert seen == [(first, 10, 10)] and gc.get_threshold() == (first, 10, 10)
    finally:
        gc.set_threshold(*before)
