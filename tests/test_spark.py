"""Spark reads the Parquet lake: analysts' queries give the answers the same queries give on the store.

One local Spark session for the module (the ``spark`` fixture: startup is the cost), one test
per backend. CI runs these (it has Java and pyspark): they fail there rather than skip.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from healthsim_models import create_store_engine, session_scope
from healthsim_state import ScenarioRepository, demo
from healthsim_state.formats.synthea import import_synthea
from healthsim_state.lake import export_lake
from tests.helpers import FIXTURES

pytestmark = pytest.mark.spark

# The store side: scenario membership through the link table.
_IN_SCENARIO = (
    "JOIN scenario_entities se ON se.entity_id = {t}.id AND se.entity_type = '{type}' "
    "JOIN scenarios s ON s.id = se.scenario_id"
)

STORE = {
    "encounters per patient by class": (
        "SELECT s.name AS scenario, e.patient_mrn, e.class_code, count(*) AS encounters FROM encounters e "
        + _IN_SCENARIO.format(t="e", type="encounter")
        + " GROUP BY s.name, e.patient_mrn, e.class_code"
    ),
    "claim totals per member": (
        "SELECT s.name AS scenario, c.member_id, count(*) AS claims, sum(c.total_charge) AS charged, "
        "sum(c.total_paid) AS paid FROM claims c "
        + _IN_SCENARIO.format(t="c", type="claim")
        + " GROUP BY s.name, c.member_id"
    ),
    "condition prevalence": (
        "SELECT d.scenario, d.code, d.patients, p.patients AS population FROM "
        "(SELECT s.name AS scenario, x.code, count(DISTINCT x.patient_uuid) AS patients FROM diagnoses x "
        + _IN_SCENARIO.format(t="x", type="diagnosis")
        + " GROUP BY s.name, x.code) d JOIN "
        "(SELECT s.name AS scenario, count(*) AS patients FROM patients y "
        + _IN_SCENARIO.format(t="y", type="patient")
        + " GROUP BY s.name) p ON p.scenario = d.scenario"
    ),
}

# The lake side: the scenario is a column (the partition).
LAKE = {
    "encounters per patient by class": (
        "SELECT scenario, patient_mrn, class_code, count(*) AS encounters FROM encounters "
        "GROUP BY scenario, patient_mrn, class_code"
    ),
    "claim totals per member": (
        "SELECT scenario, member_id, count(*) AS claims, sum(total_charge) AS charged, sum(total_paid) AS paid "
        "FROM claims GROUP BY scenario, member_id"
    ),
    "condition prevalence": (
        "SELECT d.scenario, d.code, d.patients, p.patients AS population FROM "
        "(SELECT scenario, code, count(DISTINCT patient_uuid) AS patients FROM diagnoses GROUP BY scenario, code) d "
        "JOIN (SELECT scenario, count(*) AS patients FROM patients GROUP BY scenario) p ON p.scenario = d.scenario"
    ),
}


def _plain(value: object) -> object:
    """A value as both engines' drivers can be compared: sums of money as Decimal with two places."""
    if isinstance(value, Decimal):
        return value.quantize(Decimal("0.01"))
    return value


def _answers(rows: list[tuple]) -> list[tuple]:
    return sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)


def test_spark_answers_equal_the_store(store_url: str, spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        demo.save_demo(ScenarioRepository(session), patients=5)
        import_synthea(session, FIXTURES / "synthea-27", scenario="synthea")
    with session_scope(engine) as session:
        export_lake(session, tmp_path / "lake")
    with engine.connect() as connection:
        expected = {name: _answers([tuple(r) for r in connection.execute(sa.text(sql))]) for name, sql in STORE.items()}
    engine.dispose()

    for table in ("encounters", "claims", "diagnoses", "patients"):
        spark.read.parquet(str(tmp_path / "lake" / table)).createOrReplaceTempView(table)
    for name, sql in LAKE.items():
        got = _answers([tuple(row) for row in spark.sql(sql).collect()])
        assert expected[name], name  # the question has answers to compare
        assert got == expected[name], name
    # Both scenarios are in the lake, the Synthea cohort with its 27 patients.
    population = spark.sql("SELECT scenario, count(*) FROM patients GROUP BY scenario").collect()
    assert sorted(map(tuple, population)) == [("demo", 5), ("synthea", 27)]
