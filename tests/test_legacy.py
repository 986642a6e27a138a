"""Migration of legacy v1 scenario files and v2 workspaces, on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from healthsim_models import session_scope
from healthsim_models.errors import DocumentError
from healthsim_state import ScenarioRepository, legacy_status, migrate_legacy
from healthsim_state.formats.legacy import LEGACY_KEY, read_legacy
from tests.helpers import FIXTURES, fixture

V1_FILE = "3635caf4-5ecc-4c52-a6de-66f75addcd59.json"
V2_FILE = "402e27b8-cb95-42f8-ae34-a83a16acdaff.json"
V1_NAME = "copd-clinic-pair"
V2_NAME = "ed-chest-pain-with-claim"


@pytest.fixture
def legacy_home(isolated_home: Path) -> Path:
    """The fixtures where the original tool kept them: scenarios/ and workspaces/ under the home."""
    (isolated_home / "scenarios").mkdir(parents=True)
    (isolated_home / "workspaces").mkdir()
    shutil.copy(FIXTURES / "legacy-v1-scenario.json", isolated_home / "scenarios" / V1_FILE)
    shutil.copy(FIXTURES / "legacy-v2-workspace.json", isolated_home / "workspaces" / V2_FILE)
    return isolated_home


def migrate(engine, *args: Any, **kwargs: Any):
    with session_scope(engine) as session:
        return migrate_legacy(session, *args, **kwargs)


def status(engine, *args: Any):
    with session_scope(engine) as session:
        return {Path(r.path).name: r.status for r in legacy_status(session, *args)}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*.json"))}


def stored(engine) -> dict[str, dict[str, int]]:
    with session_scope(engine) as session:
        return {i.name: i.entity_counts for i in ScenarioRepository(session).list()}


def test_both_formats_become_scenarios_with_names_metadata_and_provenance(engine, legacy_home: Path) -> None:
    reports = migrate(engine)
    assert [(Path(r.path).name, r.format, r.status, r.scenario) for r in reports] == [
        (V1_FILE, "v1", "migrated", V1_NAME),
        (V2_FILE, "v2", "migrated", V2_NAME),
    ]
    assert reports[0].scenario_id == "3635caf4-5ecc-4c52-a6de-66f75addcd59"
    assert reports[1].scenario_id == "402e27b8-cb95-42f8-ae34-a83a16acdaff"
    assert reports[1].entities == 10  # the claim's two nested lines became claim_line entities
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        v1 = repo.load(V1_NAME)
        v2 = repo.load(V2_NAME)
        seeds = repo.entities_frame(V2_NAME, "patient").column("generation_seed").to_pylist()
    assert v1.description.startswith("Two COPD clinic patients")
    assert v1.tags == ["copd", "legacy"]
    assert v1.created_at.isoformat().startswith("2024-10-08T14:22:31")
    assert v1.extra["created_by"] == "patientsim" and v1.extra["healthsim_version"] == "0.9.2"
    assert v1.extra[LEGACY_KEY]["format"] == "v1" and v1.extra[LEGACY_KEY]["file"] == V1_FILE
    assert "provenance_summary" not in v1.extra
    flat = v1.entities["patient"][0]
    assert flat["id"] == "8e386f13-3ad3-49ee-8ae0-7fbceb05121d"  # patient_id
    assert flat["name"] == {"given_name": "Winifred", "family_name": "Castellane"}
    assert flat["address"]["city"] == "Burlington" and flat["contact"]["phone"] == "802-555-0134"
    assert flat["_provenance"]["skill_used"] == "copd-management"
    assert {k: len(v) for k, v in v1.entities.items() if v} == {
        "patient": 2,
        "encounter": 2,
        "diagnosis": 2,
        "medication": 1,
        "lab_result": 1,
    }

    assert v2.tags == ["chest-pain", "claims", "emergency"]
    assert v2.extra["product"] == "patientsim"
    patient = v2.entities["patient"][0]
    assert patient["_provenance"]["generation_seed"] == 42
    assert patient["_provenance"]["generation_params"] == {"seed": 42, "age_range": [45, 70]}
    assert seeds == [42, 42]
    assert v2.entities["encounter"][0]["id"] == "ENC-20241201-7781"  # entity_id, as data has no id
    assert v2.entities["member"][0]["_provenance"]["derived_from"] == ["5796b06d-ee6d-4e9c-92ac-8f091947cd43"]
    assert [line["line_number"] for line in v2.entities["claim_line"]] == [1, 2]


def test_rerunning_is_idempotent_and_originals_are_untouched(engine, legacy_home: Path) -> None:
    before = snapshot(legacy_home)
    migrate(engine)
    after_first = stored(engine)
    with session_scope(engine) as session:
        updated = {i.name: i.updated_at for i in ScenarioRepository(session).list()}
    reports = migrate(engine)
    assert [(r.status, r.reason) for r in reports] == [
        ("skipped", f"already migrated as {V1_NAME!r}"),
        ("skipped", f"already migrated as {V2_NAME!r}"),
    ]
    assert reports[1].entities == 10
    assert stored(engine) == after_first
    with session_scope(engine) as session:
        assert {i.name: i.updated_at for i in ScenarioRepository(session).list()} == updated
    assert snapshot(legacy_home) == before  # same files, bytes and times: nothing moved, changed or added


def test_dry_run_checks_every_file_and_writes_nothing(engine, legacy_home: Path) -> None:
    bad = fixture("legacy-v1-scenario.json")
    bad["name"] = "bad-gender"
    bad["entities"]["patients"][1]["gender"] = "X"
    (legacy_home / "scenarios" / "bad.json").write_text(json.dumps(bad))
    reports = migrate(engine, dry_run=True, backup_dir=legacy_home / "backup")
    assert [(Path(r.path).name, r.status) for r in reports] == [
        (V1_FILE, "would-migrate"),
        ("bad.json", "failed"),
        (V2_FILE, "would-migrate"),
    ]
    assert "patient[1] (id PAT-V1-0002) gender: 'X'" in reports[1].reason
    assert stored(engine) == {}
    with session_scope(engine) as session:
        assert ScenarioRepository(session).count_entities_by_type() == {}
    assert not (legacy_home / "backup").exists()
    assert status(engine) == {V1_FILE: "pending", "bad.json": "pending", V2_FILE: "pending"}


def test_a_failing_file_is_reported_and_the_others_are_saved(engine, tmp_path: Path) -> None:
    """The failure rolls the session back; the file saved before it is saved again."""
    folder = tmp_path / "old"
    folder.mkdir()
    for stem, name in (("a", "first"), ("c", "third")):
        document = fixture("legacy-v1-scenario.json")
        document.update(name=name, scenario_id=None)
        (folder / f"{stem}.json").write_text(json.dumps(document))
    bad = fixture("legacy-v1-scenario.json")
    bad["name"] = "second"
    bad["entities"]["encounters"][0]["patient_mrn"] = "MRN-NOBODY"
    (folder / "b.json").write_text(json.dumps(bad))
    reports = migrate(engine, [folder])
    assert [r.status for r in reports] == ["migrated", "failed", "migrated"]
    assert "'MRN-NOBODY' matches no patient.mrn" in reports[1].reason
    assert sorted(stored(engine)) == ["first", "third"]
    assert reports[0].scenario_id != reports[2].scenario_id  # files without an id get one each


def test_backup_copies_only_on_request(engine, legacy_home: Path, tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    reports = migrate(engine, backup_dir=backup)
    assert reports[0].backup == str(backup / "scenarios" / V1_FILE)
    assert (backup / "workspaces" / V2_FILE).read_bytes() == (legacy_home / "workspaces" / V2_FILE).read_bytes()
    assert (legacy_home / "scenarios" / V1_FILE).is_file()  # copied, not moved
    again = migrate(engine, backup_dir=backup)
    assert [r.backup for r in again] == [None, None]  # skipped files are not copied again


def test_status_follows_the_files(engine, legacy_home: Path) -> None:
    assert status(engine) == {V1_FILE: "pending", V2_FILE: "pending"}
    migrate(engine)
    assert status(engine) == {V1_FILE: "migrated", V2_FILE: "migrated"}
    changed = fixture("legacy-v1-scenario.json")
    changed["description"] = "edited after the migration"
    (legacy_home / "scenarios" / V1_FILE).write_text(json.dumps(changed))
    assert status(engine) == {V1_FILE: "outdated", V2_FILE: "migrated"}
    reports = migrate(engine)
    assert reports[0].status == "skipped" and "--overwrite migrates it again" in reports[0].reason
    reports = migrate(engine, overwrite=True)
    assert [r.status for r in reports] == ["migrated", "migrated"]
    with session_scope(engine) as session:
        assert ScenarioRepository(session).scenario_summary(V1_NAME).description == "edited after the migration"
    assert status(engine) == {V1_FILE: "migrated", V2_FILE: "migrated"}


def test_status_dry_run_and_migration_count_the_same_entities(engine, legacy_home: Path) -> None:
    """The v2 workspace's claim holds two nested claim_lines: 8 wrapped entities become 10 stored."""

    def counts(reports) -> dict[str, int]:
        return {Path(r.path).name: r.entities for r in reports}

    with session_scope(engine) as session:
        pending = counts(legacy_status(session))
    dry = counts(migrate(engine, dry_run=True))
    done = counts(migrate(engine))
    with session_scope(engine) as session:
        migrated = counts(legacy_status(session))
    assert pending == dry == done == migrated
    assert done[V2_FILE] == 10
    assert {n: sum(c.values()) for n, c in stored(engine).items()} == {V1_NAME: done[V1_FILE], V2_NAME: 10}


def test_a_name_taken_by_another_scenario_needs_overwrite(engine, legacy_home: Path) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save(V1_NAME, {}, description="made by hand")
    reports = migrate(engine)
    assert reports[0].status == "failed"
    assert "not migrated from this file; --overwrite replaces it" in reports[0].reason
    assert reports[1].status == "migrated"
    assert migrate(engine, overwrite=True)[0].status == "migrated"
    with session_scope(engine) as session:
        assert ScenarioRepository(session).scenario_summary(V1_NAME).description.startswith("Two COPD")


def test_unreadable_and_foreign_files_fail_with_a_reason(engine, tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "cut.json").write_text('{"name": "cut", "entities": {"patients": [{"mrn": ')
    (folder / "list.json").write_text("[]")
    (folder / "other.json").write_text('{"hello": "world"}')
    shutil.copy(FIXTURES / "scenario-canonical.json", folder / "export.json")
    wrapped = fixture("legacy-v2-workspace.json")
    wrapped["entities"]["patients"][0] = {"entity_id": "x"}
    (folder / "wrapped.json").write_text(json.dumps(wrapped))
    reasons = {Path(r.path).name: r.reason for r in migrate(engine, [folder])}
    assert "line 1, column 51: not valid JSON (the file is truncated)" in reasons["cut.json"]
    assert "expected a JSON object" in reasons["list.json"]
    assert "not a legacy scenario file" in reasons["other.json"]
    assert "is a scenario document" in reasons["export.json"] and "healthsim scenario import" in reasons["export.json"]
    assert "entities.patients[0]: expected a wrapped entity" in reasons["wrapped.json"]
    assert stored(engine) == {}


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("name", "  ", "'name': required, a non-empty string"),
        ("description", 7, "'description': expected a string or null, got 7"),
        ("tags", ["ok", ""], "'tags': expected an array of non-empty strings, got ['ok', '']"),
        ("created_at", "yesterday", "'created_at': expected a date-time like 2025-01-14T16:05:00Z, got 'yesterday'"),
    ],
)
@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_bad_metadata_is_refused_as_a_scenario_document_refuses_it(
    fmt: str, key: str, value: Any, problem: str, tmp_path: Path
) -> None:
    """Legacy files and scenario documents share one check, so one wording."""
    if fmt == "v1":
        document = fixture("legacy-v1-scenario.json")
        document[key] = value
    else:
        document = fixture("legacy-v2-workspace.json")
        document["metadata"][key] = value
    source = tmp_path / f"{fmt}.json"
    source.write_text(json.dumps(document))
    with pytest.raises(DocumentError) as refused:
        read_legacy(source)
    assert str(refused.value) == f"{source}: {problem}"


def test_a_workspace_id_that_is_not_a_uuid_is_named(tmp_path: Path) -> None:
    document = fixture("legacy-v2-workspace.json")
    document["metadata"]["workspace_id"] = "ws-7"
    source = tmp_path / "workspace.json"
    source.write_text(json.dumps(document))
    with pytest.raises(DocumentError, match=r"'workspace_id': expected a UUID, got 'ws-7'"):
        read_legacy(source)


def test_workspace_metadata_never_shadows_a_document_field(engine, tmp_path: Path) -> None:
    document = fixture("legacy-v2-workspace.json")
    document["metadata"].update(scenario_id="old-id", entities=3, owner="ward 4")
    source = tmp_path / "workspace.json"
    source.write_text(json.dumps(document))
    assert migrate(engine, [source])[0].status == "migrated"
    with session_scope(engine) as session:
        extra = ScenarioRepository(session).scenario_summary(V2_NAME).extra
    assert extra["owner"] == "ward 4" and "scenario_id" not in extra and "entities" not in extra


def test_a_file_without_a_name_is_named_after_itself(engine, tmp_path: Path) -> None:
    document = fixture("legacy-v1-scenario.json")
    del document["name"]
    source = tmp_path / "my-old-scenario.json"
    source.write_text(json.dumps(document))
    assert migrate(engine, [source])[0].scenario == "my-old-scenario"


def test_two_files_with_one_name_are_not_both_saved(engine, tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(FIXTURES / "legacy-v1-scenario.json", folder / "a.json")
    edited = fixture("legacy-v1-scenario.json")
    edited["description"] = "another version"
    (folder / "b.json").write_text(json.dumps(edited))
    reports = migrate(engine, [folder], overwrite=True)
    assert [r.status for r in reports] == ["migrated", "failed"]
    assert "also becomes the scenario 'copd-clinic-pair' in this run" in reports[1].reason


def test_missing_sources(engine, isolated_home: Path, tmp_path: Path) -> None:
    assert migrate(engine) == []  # no legacy folders under the home: nothing to do
    with pytest.raises(DocumentError, match="no legacy files at .*nowhere"):
        migrate(engine, [tmp_path / "nowhere"])


def test_status_counts_what_the_migration_saved(engine, legacy_home: Path) -> None:
    saved = {Path(r.path).name: r.entities for r in migrate(engine)}
    with session_scope(engine) as session:
        reported = {Path(r.path).name: r.entities for r in legacy_status(session)}
    assert reported == saved == {V1_FILE: 8, V2_FILE: 10}


def test_an_exported_scenario_document_with_count_metadata_points_to_import(engine, tmp_path: Path) -> None:
    """ "patients": 50 at the top level (the demo's metadata) is not a v1 entity group."""
    document = fixture("scenario-canonical.json")
    document["patients"] = 50
    source = tmp_path / "export.json"
    source.write_text(json.dumps(document))
    reason = migrate(engine, [source])[0].reason
    assert "is a scenario document" in reason and "healthsim scenario import" in reason
