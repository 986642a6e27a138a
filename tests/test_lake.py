"""The lake export (healthsim_state.lake, ``healthsim lake export``): Parquet and Delta datasets
read back with pyarrow and deltalake, on both backends."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa
from deltalake import DeltaTable, write_deltalake

from healthsim_models import ENTITY_TYPES, create_store_engine, session_scope
from healthsim_models.errors import LakeError, ScenarioNotFoundError
from healthsim_models.schema_version import head_revision
from healthsim_state import ScenarioRepository, demo
from healthsim_state.analytics.omop import build_omop
from healthsim_state.analytics.star import build_star
from healthsim_state.formats.synthea import import_synthea
from healthsim_state.interfaces.cli import main
from healthsim_state.lake import export_lake
from healthsim_state.lake.target import parse_target
from tests.helpers import FIXTURES

ODD = "odd/name 1"  # a scenario name that is not a path segment as it stands


def _store(url: str, *, synthea: bool = False) -> None:
    engine = create_store_engine(url)
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        demo.save_demo(repo, patients=3)
        patient = next(demo.scenario(1, seed=9)["patient"])
        repo.save(ODD, {"patients": [patient]})
        if synthea:
            import_synthea(session, FIXTURES / "synthea-27", scenario="synthea")
    engine.dispose()


def _export(url: str, target: Path | str, **options: object):  # type: ignore[no-untyped-def]
    engine = create_store_engine(url)
    with session_scope(engine) as session:
        summary = export_lake(session, target, **options)  # type: ignore[arg-type]
    engine.dispose()
    return summary


def _counts(url: str) -> dict[tuple[str, str], int]:
    """(table, scenario name) -> linked rows, from the store."""
    engine = create_store_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT s.name, se.entity_type, count(*) FROM scenario_entities se "
                "JOIN scenarios s ON s.id = se.scenario_id GROUP BY s.name, se.entity_type"
            )
        ).all()
    engine.dispose()
    tables = {et.name: et.model.__table__.name for et in ENTITY_TYPES}
    return {(tables[t], name): n for name, t, n in rows}


def _dataset(root: Path, table: str) -> pa.Table:
    return ds.dataset(root / table, format="parquet", partitioning="hive").to_table()


def test_parquet_lake_holds_every_table_per_scenario_with_real_types(store_url: str, tmp_path: Path) -> None:
    _store(store_url, synthea=True)
    lake = tmp_path / "lake"
    summary = _export(store_url, lake)

    expected = _counts(store_url)
    manifest = json.loads((lake / "_manifest.json").read_text())
    assert manifest["format"] == "parquet"
    assert manifest["schema_revision"] == head_revision()
    assert set(manifest["scenarios"]) == {"demo", "synthea", ODD}
    assert manifest["scenarios"][ODD]["partition"] == "scenario=odd%2Fname%201"
    assert (lake / "patients" / "scenario=odd%2Fname%201").is_dir()
    assert dt.datetime.fromisoformat(manifest["exported_at"]) == summary.exported_at
    for et in ENTITY_TYPES:
        table = et.model.__table__.name
        got = {(table, k): v for k, v in manifest["tables"][table]["rows"].items() if v}
        assert got == {k: v for k, v in expected.items() if k[0] == table}, table
        if not any(k[0] == table for k in expected):
            continue
        data = _dataset(lake, table)
        per_scenario = {}
        for name in data.column("scenario").to_pylist():
            per_scenario[(table, name)] = per_scenario.get((table, name), 0) + 1
        assert per_scenario == {k: v for k, v in expected.items() if k[0] == table}, table

    claims = _dataset(lake, "claims")
    schema = claims.schema
    assert schema.field("total_charge").type == pa.decimal128(12, 2)
    assert schema.field("service_date").type == pa.date32()
    assert schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("other_diagnoses").type == pa.list_(pa.string())
    assert schema.field("extensions").type == pa.string()
    assert _dataset(lake, "claim_lines").schema.field("diagnosis_pointers").type == pa.list_(pa.int64())
    assert _dataset(lake, "allergies").schema.field("reactions").type == pa.string()  # objects: JSON text

    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        stored = ScenarioRepository(session).documents("demo", "claim")[0]
    engine.dispose()
    row = next(r for r in claims.to_pylist() if r["claim_id"] == stored["claim_id"] and r["scenario"] == "demo")
    assert row["total_charge"] == Decimal(str(stored["total_charge"]))
    assert row["other_diagnoses"] == stored.get("other_diagnoses")
    assert row["service_date"] == dt.date.fromisoformat(stored["service_date"])
    assert row["scenario_id"] == manifest["scenarios"]["demo"]["id"]
    assert isinstance(json.loads(row["extensions"]), dict)
    synthea_patients = _dataset(lake, "patients").filter(ds.field("scenario") == "synthea")
    assert synthea_patients.num_rows == 27


def test_parquet_export_of_one_scenario_replaces_its_partitions_and_keeps_the_others(
    store_url: str, tmp_path: Path
) -> None:
    _store(store_url)
    lake = tmp_path / "lake"
    _export(store_url, lake)
    _export(store_url, lake, scenarios=["demo"])
    assert sorted(p.name for p in (lake / "patients").iterdir()) == ["scenario=demo", "scenario=odd%2Fname%201"]
    assert len(list((lake / "patients" / "scenario=demo").iterdir())) == 1  # the old file is gone
    manifest = json.loads((lake / "_manifest.json").read_text())
    assert manifest["tables"]["patients"]["rows"] == {"demo": 3, ODD: 1}

    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        ScenarioRepository(session).delete(ODD)
    engine.dispose()
    _export(store_url, lake)  # every scenario: the deleted one leaves the lake
    assert [p.name for p in (lake / "patients").iterdir()] == ["scenario=demo"]
    manifest = json.loads((lake / "_manifest.json").read_text())
    assert set(manifest["scenarios"]) == {"demo"}
    assert manifest["tables"]["patients"]["rows"] == {"demo": 3}


def test_delta_exports_only_changes_and_keeps_earlier_versions(store_url: str, tmp_path: Path) -> None:
    _store(store_url)
    lake = tmp_path / "delta"
    first = _export(store_url, lake, format="delta")
    assert first.versions["patients"] == 0 and first.written["patients"] == 4

    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        patient = dict(repo.documents("demo", "patient")[0])
        patient["name"] = {**patient["name"], "given_name": "Changed"}
        repo.add_entities("demo", {"patients": [patient]})
    engine.dispose()

    second = _export(store_url, lake, format="delta")
    assert second.written["patients"] == 1 and second.removed["patients"] == 0
    assert second.versions["patients"] == 1
    assert second.versions["encounters"] is None  # nothing changed: no new version
    table = DeltaTable(str(lake / "patients"))
    metrics = table.history(1)[0]["operationMetrics"]
    assert metrics["num_source_rows"] == 1 and metrics["num_target_rows_updated"] == 1
    now = table.to_pyarrow_table().to_pylist()
    before = DeltaTable(str(lake / "patients"), version=0).to_pyarrow_table().to_pylist()
    assert len(now) == len(before) == 4
    changed = next(r for r in now if r["id"] == patient["id"] or r["mrn"] == patient["mrn"])
    assert changed["given_name"] == "Changed"
    assert next(r for r in before if r["mrn"] == patient["mrn"])["given_name"] != "Changed"
    assert DeltaTable(str(lake / "encounters")).version() == 0

    # The demo saved again with two patients: the third one's rows leave the scenario.
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        demo.save_demo(ScenarioRepository(session), patients=2)
    engine.dispose()
    third = _export(store_url, lake, format="delta", scenarios=["demo"])
    assert third.removed["patients"] == 1
    current = DeltaTable(str(lake / "patients")).to_pyarrow_table()
    expected = _counts(store_url)
    assert {n: current.column("scenario").to_pylist().count(n) for n in ("demo", ODD)} == {
        "demo": expected[("patients", "demo")],
        ODD: 1,
    }
    encounters = DeltaTable(str(lake / "encounters")).to_pyarrow_table()
    assert encounters.num_rows == expected[("encounters", "demo")]
    manifest = json.loads((lake / "_manifest.json").read_text())
    assert manifest["format"] == "delta" and manifest["tables"]["patients"]["version"] == 2
    assert manifest["tables"]["patients"]["rows"] == {"demo": 2, ODD: 1}

    # A table written from a store of other columns is refused before anything is written.
    write_deltalake(
        str(lake / "payers"),
        pa.table({"id": ["x"], "scenario": ["demo"], "extra_column": ["1"]}),
        mode="overwrite",
        schema_mode="overwrite",
    )
    with pytest.raises(LakeError, match="extra_column that the store lacks"):
        _export(store_url, lake, format="delta")
    assert DeltaTable(str(lake / "patients")).version() == 2


def test_derived_tables_are_exported_when_built_and_asked_for(store_url: str, tmp_path: Path) -> None:
    _store(store_url)
    with pytest.raises(LakeError, match="healthsim analytics omop"):
        _export(store_url, tmp_path / "none", include=["omop"])
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        build_omop(session)
        build_star(session)
    with engine.connect() as connection:
        persons = connection.execute(sa.text("SELECT count(*) FROM omop.person")).scalar_one()
        facts = connection.execute(sa.text("SELECT count(*) FROM analytics.fact_encounter")).scalar_one()
    engine.dispose()
    lake = tmp_path / "lake"
    summary = _export(store_url, lake, include=["omop", "star"])
    assert persons > 0 and facts > 0
    assert summary.rows["omop/person"] == {"*": persons}
    assert ds.dataset(lake / "omop" / "person", format="parquet").to_table().num_rows == persons
    assert ds.dataset(lake / "star" / "fact_encounter", format="parquet").to_table().num_rows == facts
    manifest = json.loads((lake / "_manifest.json").read_text())
    assert manifest["tables"]["star/fact_encounter"]["rows"] == facts

    delta = _export(store_url, tmp_path / "delta", format="delta", include=["star"])
    again = _export(store_url, tmp_path / "delta", format="delta", include=["star"])
    assert (delta.versions["star/fact_encounter"], again.versions["star/fact_encounter"]) == (0, 1)
    assert DeltaTable(str(tmp_path / "delta" / "star" / "fact_encounter")).to_pyarrow_table().num_rows == facts


def test_bad_requests_are_refused_before_anything_is_written(duckdb_url: str, tmp_path: Path) -> None:
    _store(duckdb_url)
    with pytest.raises(ScenarioNotFoundError):
        _export(duckdb_url, tmp_path / "a", scenarios=["nope"])
    with pytest.raises(LakeError, match="unknown lake format 'orc'"):
        _export(duckdb_url, tmp_path / "a", format="orc")
    with pytest.raises(LakeError, match="unknown --include 'vocab'"):
        _export(duckdb_url, tmp_path / "a", include=["vocab"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(LakeError, match="is a file"):
        _export(duckdb_url, tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(LakeError, match="not a lake written by healthsim"):
        _export(duckdb_url, tmp_path / "other")
    _export(duckdb_url, tmp_path / "p")
    with pytest.raises(LakeError, match="holds a parquet lake"):
        _export(duckdb_url, tmp_path / "p", format="delta")
    assert not (tmp_path / "a").exists()


def test_object_store_targets_are_uris_with_their_options() -> None:
    fs, root = parse_target(
        "s3://bucket/lake/", {"AWS_REGION": "eu-west-1", "aws_access_key_id": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    ).filesystem()
    assert (type(fs).__name__, fs.region, root) == ("S3FileSystem", "eu-west-1", "bucket/lake")
    assert parse_target("gs://bucket/lake").filesystem()[1] == "bucket/lake"
    fs, root = parse_target("abfss://container@account.dfs.core.windows.net/lake").filesystem()
    assert (type(fs).__name__, root) == ("AzureFileSystem", "container/lake")
    assert parse_target("s3://bucket/lake").join("patients") == "s3://bucket/lake/patients"
    with pytest.raises(LakeError, match="AWS_NOPE cannot be given"):
        parse_target("s3://bucket/lake", {"AWS_NOPE": "1"}).filesystem()
    with pytest.raises(LakeError, match="local path"):
        parse_target("lake", {"AWS_REGION": "x"}).filesystem()
    with pytest.raises(LakeError, match="no bucket"):
        parse_target("s3:///lake")
    assert parse_target("file:///tmp/lake").uri == "/tmp/lake"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "nope"], "no scenario named or with id 'nope'"),
        (["--format", "orc"], "unknown lake format 'orc'"),
        (["--include", "omop,vocab"], "unknown --include 'vocab'"),
        (["--storage-option", "novalue"], "give KEY=VALUE"),
        (["--storage-option", "AWS_REGION=x"], "storage options apply to object-store URIs only"),
    ],
)
def test_cli_errors_are_one_line(
    duckdb_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    _store(duckdb_url)
    with pytest.raises(SystemExit) as exit_:
        main(["lake", "export", str(tmp_path / "lake"), *argv, "--database-url", duckdb_url])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1 and len(err) == 1 and message in err[0], err


def test_cli_export_prints_what_it_wrote(duckdb_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store(duckdb_url)
    argv = ["lake", "export", str(tmp_path / "lake"), "--format", "delta", "-s", "demo", "--database-url", duckdb_url]
    main([*argv, "--json"])
    first = json.loads(capsys.readouterr().out)
    main([*argv, "--json"])
    second = json.loads(capsys.readouterr().out)
    assert (first["tables"]["patients"]["written"], first["tables"]["patients"]["version"]) == (3, 0)
    assert (second["tables"]["patients"]["written"], second["tables"]["patients"]["version"]) == (0, None)
    assert first["scenarios"] == ["demo"]
    main(argv)
    out = capsys.readouterr().out
    assert "delta lake at" in out and "unchanged" in out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("ftp://host/lake", "unknown storage scheme 'ftp'"),
        ("file", "the lake target is a file"),
        ("s3:///lake", "names no bucket"),
        ("file/lake", "cannot write the lake at"),
    ],
)
def test_cli_refuses_a_bad_target_before_opening_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    (tmp_path / "file").write_text("not a lake")
    given = str(tmp_path / target) if target.startswith("file") else target
    store = tmp_path / "never.duckdb"
    cases = [([given], message), ([str(tmp_path / "lake"), "--format", "orc"], "unknown lake format 'orc'")]
    for argv, said in cases:
        with pytest.raises(SystemExit) as exit_:
            main(["lake", "export", *argv, "--database-url", f"duckdb:///{store}"])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_.value.code == 1 and len(err) == 1 and said in err[0], err
    # Refused before the store was opened; a target under a file fails only when written.
    assert store.exists() == (target == "file/lake")
