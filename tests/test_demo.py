"""The demo scenario: deterministic generation, every type, valid references, and ``healthsim demo``."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from healthsim_models import ENTITY_TYPES, create_store_engine, session_scope
from healthsim_models.errors import InvalidArgumentError, ScenarioExistsError
from healthsim_state import ScenarioRepository, demo
from healthsim_state.interfaces.cli import app, main
from healthsim_state.interfaces.cli import terminal as progress_module
from healthsim_state.store.query import run_query
from tests.helpers import normalise

runner = CliRunner()
TYPES = [et.name for et in ENTITY_TYPES]


def _generate(patients: int, seed: int) -> dict[str, list[dict]]:
    return {name: list(stream) for name, stream in demo.scenario(patients, seed).items()}


def _load(url: str, name: str = "demo") -> dict[str, list[dict]]:
    engine = create_store_engine(url)
    with session_scope(engine) as session:
        entities = ScenarioRepository(session).load(name).entities
    engine.dispose()
    return entities


def _table(out: str) -> dict[str, str]:
    """The rows of a printed two-column table."""
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in out.splitlines() if line.count("│") == 3]
    return dict(cells)


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # nothing but progress, and progress is silent off a terminal
    return result.stdout


# -- the generator ------------------------------------------------------------


def test_every_registry_type_has_a_demo_factory() -> None:
    assert sorted(demo._FACTORIES) == sorted(TYPES)
    assert list(demo.scenario(1)) == TYPES  # registry order
    assert list(demo.entity_counts(1)) == TYPES


def test_same_seed_same_entities_other_seed_other_entities() -> None:
    first = _generate(30, 7)
    assert first == _generate(30, 7)
    other = _generate(30, 8)
    assert other != first
    assert other["patient"] != first["patient"]


def test_generators_follow_the_registry_and_stream() -> None:
    streams = demo.scenario(5)
    assert list(streams) == TYPES
    assert all(iter(stream) is stream for stream in streams.values())  # generators, not lists


def test_chunks_from_start_add_up_to_the_whole_scenario() -> None:
    whole = _generate(30, 7)
    chunks = [
        {name: list(stream) for name, stream in demo.scenario(size, 7, start=start).items()}
        for start, size in ((0, 12), (12, 18))
    ]
    assert {name: chunks[0][name] + chunks[1][name] for name in whole} == whole
    with pytest.raises(InvalidArgumentError, match="start"):
        demo.scenario(5, 7, start=-1)


def test_generators_read_in_any_order_give_the_same_entities() -> None:
    """The generators share the plans they draw: reading them round-robin,
    or one after another in reverse, changes nothing."""
    whole = _generate(40, 5)
    streams = demo.scenario(40, 5, start=0)
    round_robin: dict[str, list[dict]] = {name: [] for name in streams}
    live = dict(streams)
    while live:
        for name, stream in list(live.items()):
            doc = next(stream, None)
            if doc is None:
                del live[name]
            else:
                round_robin[name].append(doc)
    assert round_robin == whole
    reverse = demo.scenario(40, 5)
    assert {name: list(reverse[name]) for name in reversed(TYPES)} == whole


#: What the demo added with the types of revision 0004: the types, and the new fields of older types.
ADDED_TYPES = {
    "organization",
    "practitioner",
    "payer",
    "observation",
    "allergy",
    "immunization",
    "care_plan",
    "device",
    "supply",
    "imaging_study",
    "coverage",
}
ADDED_FIELDS = {
    "encounter": {"organization_id", "practitioner_id", "payer_id"},
    "diagnosis": {"code_system"},
    "claim": {"practitioner_id", "payer_id", "diagnosis_code_system"},
    "claim_line": {"procedure_code_system"},
}


def _digest(patients: int, seed: int, *, before_0004: bool = False) -> str:
    digest = hashlib.sha256()
    for name, stream in demo.scenario(patients, seed).items():
        for doc in stream:
            if before_0004 and name in ADDED_TYPES:
                continue
            if before_0004:
                doc = {k: v for k, v in doc.items() if k not in ADDED_FIELDS.get(name, ())}
            digest.update(json.dumps(doc, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def test_the_data_of_a_seed_never_changes() -> None:
    """Saved demo scenarios, docs and benchmarks rely on a seed giving the same
    entities in every version: a digest of 200 patients, pinned. The types and
    fields added since draw from generators of their own: without them, the
    documents are those of the 18 types before (their digest, pinned then). The
    first changed once since: allergies began before some patients' birth."""
    assert _digest(200, 11) == "ee7c19b6f7ddfb4677ff5da6b32938b0c3e47120284e67de53ea14f2a94ab789"
    assert _digest(200, 11, before_0004=True) == "36a636c34d751c1c545ff22bcd4fcce396233216d84c8c1873e02f8b291085c7"


def test_no_allergy_begins_before_its_patient_was_born() -> None:
    entities = _generate(400, 7)
    born = {p["mrn"]: p["birth_date"] for p in entities["patient"]}
    early = [a for a in entities["allergy"] if a["onset_datetime"][:10] < born[a["patient_mrn"]]]
    assert entities["allergy"] and early == []


@pytest.mark.parametrize("patients", [1, 2, 57])
def test_counts_are_known_without_generating_and_cover_every_type(patients: int) -> None:
    generated = {name: len(docs) for name, docs in _generate(patients, 3).items()}
    assert generated == demo.entity_counts(patients, 3)
    assert all(count > 0 for count in generated.values()), generated


def test_encounters_and_claims_name_the_directory_and_the_payers() -> None:
    entities = _generate(40, 42)
    organizations = {o["organization_id"] for o in entities["organization"]}
    practitioners = {p["practitioner_id"]: p for p in entities["practitioner"]}
    payers = {p["payer_id"] for p in entities["payer"]}
    coverage = {c["member_id"]: c["payer_id"] for c in entities["coverage"]}
    mrn_of = {p["ssn"]: p["mrn"] for p in entities["patient"]}
    member_of = {mrn_of[m["ssn"]]: m["member_id"] for m in entities["member"]}  # the same person
    assert set(coverage) == set(member_of.values()) and set(coverage.values()) <= payers
    assert {p["organization_id"] for p in practitioners.values()} <= organizations
    for encounter in entities["encounter"]:
        assert encounter["organization_id"] in organizations
        assert practitioners[encounter["practitioner_id"]]["name"] == encounter["attending_physician"]
        member_id = member_of.get(encounter["patient_mrn"])
        assert encounter.get("payer_id") == (coverage[member_id] if member_id else None)
    named = [claim for claim in entities["claim"] if "practitioner_id" in claim]
    assert 0 < len(named) < len(entities["claim"])  # some claims name the practitioner, some only the NPI
    for claim in entities["claim"]:
        assert claim["payer_id"] == coverage[claim["member_id"]]
        assert claim["diagnosis_code_system"] == "ICD-10-CM"
    for claim in named:
        assert practitioners[claim["practitioner_id"]]["npi"] == claim["provider_npi"]
    assert {d["code_system"] for d in entities["diagnosis"]} == {"ICD-10-CM"}
    assert any(len(a["reactions"]) > 1 for a in _generate(200, 42)["allergy"])  # arrays of objects


def test_the_same_person_across_products() -> None:
    entities = _generate(1, 42)
    patient, member, subject = entities["patient"][0], entities["member"][0], entities["subject"][0]
    for field in ("ssn", "name", "birth_date", "gender"):
        assert patient[field] == member[field] == subject[field]
    assert subject["patient_ref"] == patient["mrn"]
    assert subject["usubjid"] == f"{subject['study_id']}-{subject['site_id']}-{subject['subject_id']}"


def test_claim_totals_are_the_sums_of_their_lines() -> None:
    entities = _generate(40, 42)
    for claim in entities["claim"]:
        lines = [line for line in entities["claim_line"] if line["claim_id"] == claim["claim_id"]]
        assert claim["total_charge"] == sum(line["charge_amount"] for line in lines)
        assert claim["total_allowed"] == sum(line["allowed_amount"] for line in lines)


def test_prescription_and_pharmacy_claim_agree() -> None:
    entities = _generate(40, 42)
    prescriptions = {rx["prescription_number"]: rx for rx in entities["prescription"]}
    for fill in entities["pharmacy_claim"]:
        rx = prescriptions[fill["prescription_number"]]
        assert (fill["ndc"], fill["prescriber_npi"], fill["member_id"]) == (
            rx["ndc"],
            rx["prescriber_npi"],
            rx["member_id"],
        )


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_a_bad_size_is_refused(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="patients"):
        demo.scenario(bad)  # type: ignore[arg-type]


def test_zero_patients_is_an_empty_scenario() -> None:
    assert all(count == 0 for count in demo.entity_counts(0).values())
    assert all(not list(stream) for stream in demo.scenario(0).values())


# -- save_demo ------------------------------------------------------------------


def test_save_demo_validates_cleanly_and_round_trips(store_url: str) -> None:
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        summary = demo.save_demo(ScenarioRepository(session), patients=12, seed=5)
    engine.dispose()
    assert summary.warnings == []  # every reference, soft ones included, resolves
    assert summary.counts == demo.entity_counts(12, 5)
    assert sorted(summary.counts) == sorted(TYPES)
    assert all(count > 0 for count in summary.counts.values())
    loaded = _load(store_url)
    assert {name: len(docs) for name, docs in loaded.items() if docs} == summary.counts
    # Field for field, as generated: date-times with their offsets, provenance, ids.
    generated = _generate(12, 5)
    for name, docs in generated.items():
        assert normalise(loaded[name]) == normalise(docs), name
    # The references into the directory and to the payers resolved to their entities.
    unresolved = run_query(
        "SELECT count(*) FROM encounters WHERE organization_uuid IS NULL OR practitioner_uuid IS NULL "
        "OR (payer_id IS NOT NULL AND payer_uuid IS NULL)",
        database_url=store_url,
    )
    assert unresolved.rows == [(0,)]
    named = run_query("SELECT count(practitioner_uuid), count(payer_uuid) FROM claims", database_url=store_url)
    assert named.rows == [
        (sum("practitioner_id" in c for c in generated["claim"]), len(generated["claim"])),
    ]


def test_save_demo_consumes_generators_in_batches(duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    with session_scope(engine) as session:
        summary = demo.save_demo(ScenarioRepository(session, batch_size=7), patients=9)
    engine.dispose()
    assert summary.counts == demo.entity_counts(9)


def test_save_demo_replaces_its_own_scenario_but_not_others(duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    with session_scope(engine) as session:
        first = demo.save_demo(ScenarioRepository(session), patients=3)
    with session_scope(engine) as session:
        again = demo.save_demo(ScenarioRepository(session), patients=5)
    assert again.id == first.id and again.counts == demo.entity_counts(5)
    with session_scope(engine) as session:
        ScenarioRepository(session).save("mine", {"patient": _generate(1, 1)["patient"]})
    with pytest.raises(ScenarioExistsError, match="was not made by the demo"), session_scope(engine) as session:
        demo.save_demo(ScenarioRepository(session), name="mine", patients=2)
    with session_scope(engine) as session:
        assert ScenarioRepository(session).count_entities_by_type("mine")["patient"] == 1
        replaced = demo.save_demo(ScenarioRepository(session), name="mine", patients=2, overwrite=True)
    assert replaced.counts == demo.entity_counts(2)
    engine.dispose()


# -- healthsim demo -----------------------------------------------------------


def test_demo_on_the_default_database_prints_a_summary(isolated_home: Path) -> None:
    out = _ok("demo")
    database = isolated_home / "healthsim.duckdb"
    assert database.is_file()
    counts = demo.entity_counts(demo.DEFAULT_PATIENTS, demo.DEFAULT_SEED)
    assert out.splitlines()[0].strip() == "scenario: demo"
    assert _table(out) == {**{name: str(count) for name, count in counts.items()}, "total": str(sum(counts.values()))}
    assert f"database: duckdb:///{database}" in out
    stored = run_query(
        "SELECT entity_type, count(*) FROM scenario_entities GROUP BY entity_type", database_url=f"duckdb:///{database}"
    )
    assert dict(stored.rows) == counts
    assert all(count > 0 for count in dict(stored.rows).values()) and set(dict(stored.rows)) == set(TYPES)


def test_every_option(duckdb_url: str) -> None:
    out = _ok("demo", "--patients", "7", "--seed", "9", "--name", "small", "--database-url", duckdb_url)
    assert "scenario: small" in out
    assert _load(duckdb_url, "small") == _load_generated(7, 9, duckdb_url, "small")
    _ok("demo", "-n", "3", "--seed", "9", "--name", "small", "--database-url", duckdb_url, "--overwrite")
    assert len(_load(duckdb_url, "small")["patient"]) == 3


def test_json_gives_the_summary_for_programs(duckdb_url: str) -> None:
    report = json.loads(_ok("demo", "-n", "4", "--json", "--database-url", duckdb_url))
    counts = demo.entity_counts(4, demo.DEFAULT_SEED)
    assert report == {
        "scenario": "demo",
        "scenario_id": report["scenario_id"],
        "entities": counts,
        "total": sum(counts.values()),
        "database": duckdb_url,
    }
    stored = run_query("SELECT id FROM scenarios WHERE name = 'demo'", database_url=duckdb_url).rows
    assert [str(row[0]) for row in stored] == [report["scenario_id"]]


def _load_generated(patients: int, seed: int, url: str, name: str) -> dict[str, list[dict]]:
    """What loading ``name`` should give: the generated documents, saved through a second store."""
    other = url.replace(".duckdb", "-expected.duckdb")
    engine = create_store_engine(other)
    with session_scope(engine) as session:
        ScenarioRepository(session).save(name, demo.scenario(patients, seed))
    engine.dispose()
    return _load(other, name)


def test_rerunning_the_demo_replaces_it_deterministically(duckdb_url: str) -> None:
    _ok("demo", "-n", "6", "--database-url", duckdb_url)
    before = _load(duckdb_url)
    ids = run_query("SELECT entity_id FROM scenario_entities ORDER BY entity_id", database_url=duckdb_url).rows
    _ok("demo", "-n", "6", "--database-url", duckdb_url)
    assert _load(duckdb_url) == before
    assert run_query("SELECT entity_id FROM scenario_entities ORDER BY entity_id", database_url=duckdb_url).rows == ids
    _ok("demo", "-n", "6", "--seed", "43", "--database-url", duckdb_url)
    assert _load(duckdb_url)["patient"] != before["patient"]
    assert run_query("SELECT count(*) FROM patients", database_url=duckdb_url).rows == [(6,)]  # no orphans left


def test_another_scenario_of_that_name_needs_overwrite(duckdb_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    engine = create_store_engine(duckdb_url)
    with session_scope(engine) as session:
        ScenarioRepository(session).save("demo", {"patient": _generate(1, 1)["patient"]}, description="mine")
    engine.dispose()
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "-n", "2", "--database-url", duckdb_url])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("error: a scenario named 'demo' exists and was not made by the demo")
    assert "--overwrite" in captured.err
    assert run_query("SELECT description FROM scenarios", database_url=duckdb_url).rows == [("mine",)]
    _ok("demo", "-n", "2", "--overwrite", "--database-url", duckdb_url)
    assert len(_load(duckdb_url)["patient"]) == 2


def test_an_imported_demo_is_not_replaced_without_overwrite(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo's marker travels with an export: a demo imported under another name is the user's scenario."""
    _ok("demo", "-n", "1", "--database-url", store_url)
    exported = tmp_path / "demo.json"
    _ok("scenario", "export", "demo", str(exported), "--database-url", store_url)
    _ok("scenario", "import", str(exported), "--as", "mine", "--database-url", store_url)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "-n", "2", "--name", "mine", "--database-url", store_url])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: a scenario named 'mine' exists and was not made by the demo under that name")
    assert "--overwrite" in err and "--name" in err
    assert len(_load(store_url, "mine")["patient"]) == 1
    _ok("demo", "-n", "2", "--database-url", store_url)  # the demo's own scenario is replaced as before
    assert len(_load(store_url)["patient"]) == 2
    _ok("demo", "-n", "2", "--name", "mine", "--overwrite", "--database-url", store_url)
    assert len(_load(store_url, "mine")["patient"]) == 2


def test_a_demo_too_large_or_with_a_seed_beyond_64_bits_is_refused(duckdb_url: str) -> None:
    engine = create_store_engine(duckdb_url)
    with session_scope(engine) as session, pytest.raises(InvalidArgumentError, match="at most 10,000,000"):
        demo.save_demo(ScenarioRepository(session), patients=demo.MAX_PATIENTS + 1)
    with session_scope(engine) as session, pytest.raises(InvalidArgumentError, match="fits 64 bits"):
        demo.save_demo(ScenarioRepository(session), patients=1, seed=2**63)
    with pytest.raises(InvalidArgumentError, match="at most"):
        demo.entity_counts(10**30)
    engine.dispose()


def test_zero_patients_is_a_usage_error(duckdb_url: str) -> None:
    result = runner.invoke(app, ["demo", "--patients", "0", "--database-url", duckdb_url])
    assert result.exit_code == 2 and "--patients" in result.stderr


def test_the_progress_bar_counts_every_entity_on_a_terminal(duckdb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(progress_module, "_stderr", Console(file=screen, force_terminal=True, width=120))
    _ok("demo", "-n", "5", "--database-url", duckdb_url)
    total = sum(demo.entity_counts(5).values())
    assert "saving demo scenario 'demo'" in screen.getvalue()
    assert f"{total}/{total}" in screen.getvalue()


def test_the_readme_example_runs_after_its_quick_start(isolated_home: Path) -> None:
    """A reader runs the quick start's `healthsim demo`, then the README's Python example."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert ".venv/bin/healthsim demo\n" in readme
    _ok("demo", "--patients", "1")
    for code in re.findall(r"```python\n(.*?)```", readme, re.S):
        exec(compile(code, "README.md", "exec"), {})


# -- batches (the batch writer) ---------------------------------------------------------------


def test_a_demo_in_batches_is_the_demo_in_one_save(store_url: str) -> None:
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        batched = demo.save_demo(ScenarioRepository(session), name="batched", patients=11, seed=3, batch=4)
    with session_scope(engine) as session:
        whole = demo.save_demo(ScenarioRepository(session), name="whole", patients=11, seed=3)
    engine.dispose()
    assert batched.warnings == whole.warnings == []
    assert batched.counts == whole.counts == demo.entity_counts(11, 3)
    loaded, expected = _load(store_url, "batched"), _load(store_url, "whole")
    for name in TYPES:
        assert normalise(loaded[name]) == normalise(expected[name]), name
    # Run again, the batched demo replaces itself.
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        again = demo.save_demo(ScenarioRepository(session), name="batched", patients=2, seed=3, batch=1)
    engine.dispose()
    assert again.id == batched.id and again.counts == demo.entity_counts(2, 3)


def test_a_bad_batch_size_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="batch"):
        demo.save_demo(None, batch=0)  # type: ignore[arg-type]  (refused before the repository is used)


def test_demo_with_batch_prints_the_same_summary(isolated_home: Path) -> None:
    whole = _table(_ok("demo", "--patients", "7", "--name", "whole"))
    batched = _table(_ok("demo", "--patients", "7", "--batch", "3", "--name", "batched"))
    assert batched == whole
    database = f"duckdb:///{isolated_home / 'healthsim.duckdb'}"
    assert normalise(_load(database, "batched")) == normalise(_load(database, "whole"))
    assert run_query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '_hs_w_%'", database_url=database
    ).rows == [(0,)]


def test_demo_on_a_terminal_shows_entities_per_second_and_time_left(
    duckdb_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(progress_module, "_stderr", Console(file=screen, force_terminal=True, width=160))
    _ok("demo", "-n", "5", "--batch", "2", "--database-url", duckdb_url)
    total = sum(demo.entity_counts(5).values())
    assert f"{total}/{total}" in screen.getvalue()
    assert " entities/s" in screen.getvalue() and " left " in screen.getvalue()
