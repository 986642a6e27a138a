"""OMOP data-quality checks (``check_omop``, ``healthsim analytics check``), on DuckDB and PostgreSQL.

Each check must catch a violation planted in a small hand-made CDM schema:
the official DDL with its NOT NULL, varchar lengths and keys left out, so
that the databases let the bad rows in and only the checks can find them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from typer.testing import CliRunner

from healthsim_models import create_store_engine, session_scope
from healthsim_models.errors import InvalidArgumentError, OmopSchemaNotFoundError
from healthsim_state import ScenarioRepository, demo
from healthsim_state.analytics.omop import build_omop
from healthsim_state.analytics.omop.check import CHECKS, CheckResult, check_omop, specification
from healthsim_state.analytics.omop.schema import ddl_statements, foreign_key_statements
from healthsim_state.formats.synthea import import_synthea
from healthsim_state.interfaces.cli import app, main

runner = CliRunner()

#: Clean rows: person 1 born 1980-05-20 (year, month, day; no birth_datetime), alive, observed
#: from birth; person 2 died 2010-01-01, observed until 60 days after death (DQD's grace), with
#: a condition on that last day. Every concept they use is in CONCEPT.
CLEAN = [
    "INSERT INTO omop.concept VALUES (0, 'No matching concept', 'Metadata', 'None', 'Undefined', NULL, 'No matching "
    "concept', DATE '1970-01-01', DATE '2099-12-31', NULL)",
    "INSERT INTO omop.concept VALUES (8507, 'MALE', 'Gender', 'Gender', 'Gender', 'S', 'M', DATE '1970-01-01', "
    "DATE '2099-12-31', NULL)",
    "INSERT INTO omop.vocabulary VALUES ('None', 'OMOP Standardized Vocabularies', NULL, NULL, 0)",
    "INSERT INTO omop.vocabulary VALUES ('Gender', 'OMOP Gender', NULL, NULL, 0)",
    "INSERT INTO omop.domain VALUES ('Metadata', 'Metadata', 0)",
    "INSERT INTO omop.domain VALUES ('Gender', 'Gender', 0)",
    "INSERT INTO omop.concept_class VALUES ('Undefined', 'Undefined', 0)",
    "INSERT INTO omop.concept_class VALUES ('Gender', 'Gender', 0)",
    "INSERT INTO omop.person (person_id, gender_concept_id, year_of_birth, month_of_birth, day_of_birth, "
    "race_concept_id, ethnicity_concept_id, gender_source_value) VALUES (1, 8507, 1980, 5, 20, 0, 0, 'M')",
    "INSERT INTO omop.person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id) "
    "VALUES (2, 8507, 1950, 0, 0)",
    "INSERT INTO omop.observation_period VALUES (1, 1, DATE '1980-05-20', DATE '2020-12-31', 0)",
    "INSERT INTO omop.observation_period VALUES (2, 2, DATE '2000-01-01', DATE '2010-03-02', 0)",
    "INSERT INTO omop.death (person_id, death_date, death_type_concept_id) VALUES (2, DATE '2010-01-01', 0)",
    "INSERT INTO omop.condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, "
    "condition_start_date, condition_end_date, condition_type_concept_id) "
    "VALUES (1, 1, 0, DATE '1980-05-20', DATE '1980-05-21', 0)",
    "INSERT INTO omop.condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, "
    "condition_start_date, condition_type_concept_id) VALUES (2, 2, 0, DATE '2010-03-02', 0)",
]


def _condition(key: int, person: int, start: str, end: str | None = None, concept: int = 0) -> str:
    return (
        "INSERT INTO omop.condition_occurrence (condition_occurrence_id, person_id, condition_concept_id, "
        f"condition_start_date, condition_end_date, condition_type_concept_id) VALUES ({key}, {person}, {concept}, "
        f"DATE '{start}', {f'DATE {end!r}' if end else 'NULL'}, 0)"
    )


#: A planted violation per check: the statements, and the (check, table, field, rows violating)
#: results that must then fail; every other result must pass.
PLANTED = {
    "cdmTable": (["DROP TABLE omop.note_nlp"], {("cdmTable", "note_nlp", None, 1)}),
    "cdmField": (["ALTER TABLE omop.note DROP COLUMN note_title"], {("cdmField", "note", "note_title", 1)}),
    "isRequired": (
        [
            "INSERT INTO omop.person (person_id, year_of_birth, race_concept_id, ethnicity_concept_id) "
            "VALUES (3, 1990, 0, 0)"
        ],
        {("isRequired", "person", "gender_concept_id", 1)},
    ),
    "fieldLength": (
        [f"UPDATE omop.person SET gender_source_value = '{'é' * 51}' WHERE person_id = 1"],
        {("fieldLength", "person", "gender_source_value", 1)},
    ),
    "isPrimaryKey": (
        [_condition(1, 1, "1990-01-01")],
        {("isPrimaryKey", "condition_occurrence", "condition_occurrence_id", 2)},
    ),
    "isForeignKey": (
        [_condition(3, 1, "1990-01-01", concept=4242)],
        {("isForeignKey", "condition_occurrence", "condition_concept_id", 1)},
    ),
    "plausibleAfterBirth": (
        [_condition(3, 1, "1980-05-19")],
        {
            ("plausibleAfterBirth", "condition_occurrence", "condition_start_date", 1),
            ("withinObservationPeriod", "condition_occurrence", "condition_start_date", 1),
        },
    ),
    "plausibleBeforeDeath": (
        [_condition(3, 2, "2010-03-03")],
        {
            ("plausibleBeforeDeath", "condition_occurrence", "condition_start_date", 1),
            ("withinObservationPeriod", "condition_occurrence", "condition_start_date", 1),
        },
    ),
    "plausibleStartBeforeEnd": (
        [
            _condition(3, 1, "2001-01-02", "2001-01-01"),
            "INSERT INTO omop.procedure_occurrence (procedure_occurrence_id, person_id, procedure_concept_id, "
            "procedure_date, procedure_end_date, procedure_type_concept_id) "
            "VALUES (1, 1, 0, DATE '2001-02-02', DATE '2001-02-01', 0)",
        ],
        {
            ("plausibleStartBeforeEnd", "condition_occurrence", "condition_start_date", 1),
            ("plausibleStartBeforeEnd", "procedure_occurrence", "procedure_date", 1),
        },
    ),
    "withinObservationPeriod": (
        [_condition(3, 1, "2021-01-01")],
        {("withinObservationPeriod", "condition_occurrence", "condition_start_date", 1)},
    ),
}


def _relaxed(statement: str) -> str:
    """A DDL statement without NOT NULL and varchar lengths, so that bad rows get in."""
    statement = re.sub(r"\bNOT NULL\b", "NULL", statement, flags=re.IGNORECASE)
    return re.sub(r"varchar\((\d+|MAX)\)", "varchar", statement, flags=re.IGNORECASE)


@pytest.fixture
def cdm(store_url: str) -> Iterator[Engine]:
    """A store with a relaxed OMOP CDM schema ``omop`` holding the clean rows."""
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        connection = session.connection()
        connection.exec_driver_sql("CREATE SCHEMA omop")
        for statement in ddl_statements(connection.dialect.name, "ddl", "omop"):
            connection.exec_driver_sql(_relaxed(statement))
        for statement in CLEAN:
            connection.exec_driver_sql(statement)
    yield engine
    engine.dispose()


def _check(engine: Engine) -> list[CheckResult]:
    with session_scope(engine) as session:
        return check_omop(session)


def _failures(results: list[CheckResult]) -> set[tuple[str, str, str | None, int]]:
    return {(r.check, r.table, r.field, r.rows_violating) for r in results if not r.passed}


def test_the_specification_is_the_cdm_5_4() -> None:
    spec = specification()
    assert len(spec) == 39 and sum(len(fields) for fields in spec.values()) == 432
    person = {f.name: f for f in spec["person"]}
    assert person["person_id"].primary_key and person["gender_concept_id"].required
    assert person["gender_concept_id"].fk_table == "concept" and person["gender_concept_id"].fk_field == "concept_id"
    assert person["gender_source_value"].length == 50 and person["birth_datetime"].is_date
    assert {f.name: f for f in spec["note"]}["note_text"].length is None  # varchar(MAX)


def test_clean_rows_pass_every_check(cdm: Engine) -> None:
    results = _check(cdm)
    assert not _failures(results)
    applicable = {r.check for r in results if r.status == "pass"}
    assert applicable == set(CHECKS)
    by_key = {(r.check, r.table, r.field): r for r in results}
    assert by_key["isRequired", "person", "gender_concept_id"].rows_checked == 2
    assert by_key["isForeignKey", "person", "gender_concept_id"].rows_checked == 2
    # person 2's condition, 60 days after death, is inside the grace; person 1's is on the day of birth.
    assert by_key["plausibleBeforeDeath", "condition_occurrence", "condition_start_date"].rows_checked == 1
    assert by_key["plausibleAfterBirth", "condition_occurrence", "condition_start_date"].rows_checked == 2
    assert by_key["plausibleStartBeforeEnd", "condition_occurrence", "condition_start_date"].rows_checked == 1
    # Checks of an empty table run no query and are not applicable.
    specimen = [r for r in results if r.table == "specimen" and r.check not in ("cdmTable", "cdmField")]
    assert specimen and {r.status for r in specimen} == {"not applicable"}
    assert all(r.percentage is None for r in specimen)


@pytest.mark.parametrize("check", list(CHECKS))
def test_each_check_catches_its_planted_violation(cdm: Engine, check: str) -> None:
    statements, expected = PLANTED[check]
    with session_scope(cdm) as session:
        for statement in statements:
            session.connection().exec_driver_sql(statement)
    results = _check(cdm)
    assert _failures(results) == expected
    failed = next(r for r in results if not r.passed and r.check == check)
    assert failed.status == "fail" and failed.percentage == 100.0 * failed.rows_violating / failed.rows_checked


def test_a_store_without_the_schema_is_told_to_build_it(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = create_store_engine(store_url)
    with session_scope(engine) as session, pytest.raises(OmopSchemaNotFoundError, match="healthsim analytics omop"):
        check_omop(session, "omop")
    with session_scope(engine) as session, pytest.raises(InvalidArgumentError, match="taken by the store"):
        check_omop(session, "main")  # refused as build_omop refuses it
    engine.dispose()
    with pytest.raises(SystemExit) as exit:
        main(["analytics", "check", "--schema", "elsewhere", "--database-url", store_url])
    assert exit.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "error: no OMOP CDM tables in schema 'elsewhere': build them first with "
        "'healthsim analytics omop --schema elsewhere' (build_omop in Python)"
    )


def test_cli_prints_the_report_and_exits_3_on_a_failure(cdm: Engine, store_url: str) -> None:
    result = runner.invoke(app, ["analytics", "check", "--database-url", store_url], env={"COLUMNS": "150"})
    assert result.exit_code == 0, result.output
    assert re.search(r"isRequired\s+│ person\s+│ gender_concept_id\s+│\s+0 │\s+2 │ 0.00 │ pass", result.stdout)
    assert "0 failed" in result.stdout and "cdmTable" not in result.stdout  # passing structure: counted only
    with session_scope(cdm) as session:
        session.connection().exec_driver_sql(_condition(3, 1, "2021-01-01"))
    result = runner.invoke(app, ["analytics", "check", "--json", "--database-url", store_url])
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    assert report["schema"] == "omop" and report["passed"] is False and report["counts"]["fail"] == 1
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert failed == [
        {
            "check": "withinObservationPeriod",
            "table": "condition_occurrence",
            "field": "condition_start_date",
            "rows_violating": 1,
            "rows_checked": 3,
            "percentage": 100 / 3,
            "status": "fail",
        }
    ]


SYNTHEA = Path(__file__).parent / "fixtures" / "synthea-27"
VOCABULARY = Path(__file__).parent / "fixtures" / "omop-vocabulary-sample"


@pytest.mark.parametrize("vocabulary", [None, VOCABULARY], ids=["no-vocabulary", "vocabulary"])
def test_the_export_of_synthea_and_the_demo_passes_every_check(store_url: str, vocabulary: Path | None) -> None:
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        import_synthea(session, SYNTHEA, scenario="synthea")
        ScenarioRepository(session).save("demo", demo.scenario(25))
    with session_scope(engine) as session:
        build_omop(session, ["synthea", "demo"], vocabulary=vocabulary)
    with session_scope(engine) as session:
        results = check_omop(session)
    assert not _failures(results), sorted(_failures(results))
    filled = {r.table for r in results if r.status == "pass" and r.check == "isRequired"}
    assert {"person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure"} <= filled
    assert {"measurement", "observation", "procedure_occurrence", "death", "cost", "concept"} <= filled
    assert {r.check for r in results if r.status == "pass"} == set(CHECKS)
    engine.dispose()


def test_postgresql_holds_and_enforces_the_foreign_keys(postgresql_url: str) -> None:
    """After a build, PostgreSQL has the official DDL's foreign keys and refuses a row that breaks one."""
    engine = create_store_engine(postgresql_url)
    with session_scope(engine) as session:
        ScenarioRepository(session).save("demo", demo.scenario(5))
        build_omop(session, ["demo"])
    declared = {name for _, name, _ in foreign_key_statements("postgresql", "omop")}
    with session_scope(engine) as session:
        present = session.execute(
            text(
                "SELECT constraint_name FROM information_schema.table_constraints "
                "WHERE constraint_schema = 'omop' AND constraint_type = 'FOREIGN KEY'"
            )
        ).scalars()
        assert declared and declared <= set(present)
        person = session.execute(text("SELECT min(person_id) FROM omop.person")).scalar_one()
        for bad in (
            f"INSERT INTO omop.observation_period VALUES (-1, {-abs(person) - 1}, DATE '2000-01-01', "
            "DATE '2000-01-02', 0)",
            f"INSERT INTO omop.observation_period VALUES (-1, {person}, DATE '2000-01-01', DATE '2000-01-02', -42)",
        ):
            savepoint = session.begin_nested()
            with pytest.raises(IntegrityError, match="fpk_observation_period"):
                session.connection().exec_driver_sql(bad)
            savepoint.rollback()
    engine.dispose()
