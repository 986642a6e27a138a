"""JSON export and import (healthsim_state.formats.json) on DuckDB and PostgreSQL:
byte-identical round trips, the document's shape, refused documents, names
and ids, and streaming in bounded pieces."""

from __future__ import annotations

import io
import itertools
import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from healthsim_models import ENTITY_TYPES, create_store_engine, session_scope
from healthsim_models.errors import DocumentError, ScenarioExistsError, ValidationError
from healthsim_state import ScenarioRepository, export_scenario, import_scenario
from healthsim_state.formats.json import stream as json_stream
from healthsim_state.formats.json.reader import _Arrays, _scan
from tests.helpers import FIXTURES, fixture, normalise
from tests.strategies import scenario_entities

CANONICAL = FIXTURES / "scenario-canonical.json"
NAME = "riverbend-cross-product-demo"


def do_import(engine, source: Any, **kwargs: Any):
    with session_scope(engine) as session:
        return import_scenario(session, source, **kwargs)


def do_export(engine, name: str, out: Any = None) -> bytes:
    sink = io.BytesIO() if out is None else out
    with session_scope(engine) as session:
        export_scenario(session, name, sink)
    return sink.getvalue() if out is None else Path(out).read_bytes()


def assert_empty(engine) -> None:
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        assert repo.list() == []
        assert repo.count_entities_by_type() == {}


def delete(engine, name: str) -> None:
    with session_scope(engine) as session:
        assert ScenarioRepository(session).delete(name)


# -- round trips ------------------------------------------------------------------


def test_export_import_export_is_byte_identical(engine, tmp_path: Path) -> None:
    do_import(engine, CANONICAL)
    first = do_export(engine, NAME, tmp_path / "first.json")
    delete(engine, NAME)
    assert_empty(engine)
    summary = do_import(engine, tmp_path / "first.json")
    assert str(summary.id) == "2e7ec343-1a17-4f4c-8e4b-d4d32e545898"
    second = do_export(engine, NAME)
    assert second == first
    # A file object and a path give the same bytes.
    assert do_export(engine, NAME, tmp_path / "again.json") == first


def test_the_canonical_fixture_is_in_the_export_format(engine) -> None:
    """The shared example document imports, and exports as the same document
    (tags sorted, numbers compared by value)."""
    do_import(engine, CANONICAL)
    exported = json.loads(do_export(engine, NAME))
    original = fixture("scenario-canonical.json")
    assert list(exported) == list(original)
    assert exported["tags"] == sorted(original["tags"])
    for key in ("schema_version", "scenario_id", "name", "description", "created_at"):
        assert exported[key] == original[key]
    assert normalise(exported["entities"]) == normalise(original["entities"])


def test_the_document_lists_every_type_in_catalogue_order_one_entity_per_line(engine) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save(
            "small",
            {
                "patient": [
                    {
                        "id": "P-1",
                        "mrn": "M-1",
                        "name": {"given_name": "Zoë", "family_name": "東京"},
                        "birth_date": "1980-01-02",
                        "gender": "F",
                    }
                ]
            },
            description="one patient",
            tags=["b", "a"],
        )
    text = do_export(engine, "small").decode("utf-8")
    document = json.loads(text)
    assert list(document) == ["schema_version", "scenario_id", "name", "description", "tags", "created_at", "entities"]
    assert document["schema_version"] == "1.0"
    assert list(document["entities"]) == [et.name for et in ENTITY_TYPES]
    assert len(document["entities"]) == 29
    assert all(document["entities"][et.name] == [] for et in ENTITY_TYPES if et.name != "patient")
    assert document["tags"] == ["a", "b"]
    assert '\n      {"id": "P-1", "mrn": "M-1", ' in text  # one entity per line, UTF-8 as is
    assert "Zoë" in text and text.endswith("}\n")


def test_decimal_columns_keep_their_digits(engine) -> None:
    do_import(engine, CANONICAL)
    text = do_export(engine, NAME).decode()
    assert '"charge_amount": 185.00' in text
    lines = json.loads(text)["entities"]["claim_line"]
    assert [line["charge_amount"] for line in lines] == [185.0, 64.0, 140.0]


def test_metadata_keys_are_kept_and_annotations_dropped(engine, tmp_path: Path) -> None:
    document = fixture("scenario-canonical.json")
    document["_comment"] = "an annotation"
    document["project"] = {"owner": "team-b", "budget": 3}
    document["created_by"] = "patientsim"
    source = tmp_path / "extra.json"
    source.write_text(json.dumps(document))
    do_import(engine, source)
    exported = json.loads(do_export(engine, NAME))
    assert exported["project"] == {"budget": 3, "owner": "team-b"}
    assert exported["created_by"] == "patientsim"
    assert "_comment" not in exported
    assert list(exported)[-1] == "entities"


def test_keys_in_any_order_and_types_out_of_catalogue_order(engine, tmp_path: Path) -> None:
    """Children before parents, entities before the name: the importer reads
    the arrays parents first whatever their order in the file."""
    document = fixture("scenario-canonical.json")
    reordered = {
        "entities": dict(reversed(list(document["entities"].items()))),
        **{k: v for k, v in reversed(list(document.items())) if k != "entities"},
    }
    source = tmp_path / "reordered.json"
    source.write_text(json.dumps(reordered, indent=1))
    do_import(engine, source)
    assert normalise(json.loads(do_export(engine, NAME))["entities"]) == normalise(document["entities"])


_names = itertools.count()


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_any_scenario_round_trips_byte_identically(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generated scenarios (every type, odd text, every date-time spelling,
    unknown keys), read in 7-byte chunks so that values, escapes and UTF-8
    sequences are cut at every kind of place."""
    monkeypatch.setattr(json_stream, "CHUNK_SIZE", 7)
    engine = create_store_engine(request.getfixturevalue(f"{backend}_url"))

    @settings(deadline=None, max_examples=10, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(entities=scenario_entities())
    def round_trip(entities) -> None:  # type: ignore[no-untyped-def]
        name = f"generated-{next(_names)}"
        with session_scope(engine) as session:
            ScenarioRepository(session).save(name, entities, description="générée ✓", tags=["x"])
        first = do_export(engine, name)
        delete(engine, name)
        do_import(engine, io.BytesIO(first))
        assert do_export(engine, name) == first
        delete(engine, name)

    try:
        round_trip()
    finally:
        engine.dispose()


# -- names and ids ------------------------------------------------------------------


def test_an_existing_name_needs_overwrite_or_a_new_name(engine) -> None:
    first = do_import(engine, CANONICAL)
    with pytest.raises(ScenarioExistsError, match=r"--overwrite.*--as NEW_NAME"):
        do_import(engine, CANONICAL)
    replaced = do_import(engine, CANONICAL, overwrite=True)
    assert replaced.id == first.id
    copy = do_import(engine, CANONICAL, name="riverbend-copy")
    assert copy.id != first.id  # the document's id belongs to the original
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        assert [i.name for i in repo.list()] == ["riverbend-copy", NAME]
        assert repo.scenario_summary("riverbend-copy").entity_counts == repo.scenario_summary(NAME).entity_counts
    assert json.loads(do_export(engine, "riverbend-copy"))["name"] == "riverbend-copy"


def test_a_new_name_in_an_empty_store_keeps_the_documents_id(engine) -> None:
    summary = do_import(engine, CANONICAL, name="elsewhere")
    assert str(summary.id) == "2e7ec343-1a17-4f4c-8e4b-d4d32e545898"


# -- refused documents ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error", "pattern"),
    [
        ("truncated.json", DocumentError, r"truncated\.json is truncated: it ends inside patient\[0\] .*line 12"),
        ("unknown-entity-type.json", DocumentError, r"line 9, column 5 .*'patientz' is not an entity type"),
        ("bad-date.json", ValidationError, r"patient\[0\] \(id PAT-INV-0101\) birth_date"),
        ("bad-gender.json", ValidationError, r"patient\[0\] .* gender: 'X'"),
        ("dangling-mrn.json", ValidationError, r"encounter\[0\] patient_mrn: 'MRN-900399'"),
        ("discharge-before-admission.json", ValidationError, r"encounter\[0\] discharge_time"),
    ],
)
def test_invalid_documents_are_refused_and_nothing_is_written(engine, name: str, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        do_import(engine, FIXTURES / "invalid" / name)
    assert_empty(engine)


def test_every_cut_of_a_document_is_refused_as_truncated(engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_stream, "CHUNK_SIZE", 64)
    whole = CANONICAL.read_bytes().rstrip()
    for cut in range(0, len(whole), 97):
        with pytest.raises(DocumentError, match="truncated|is empty"):
            do_import(engine, io.BytesIO(whole[:cut]))
    assert_empty(engine)


def test_a_syntax_error_names_line_column_and_entity(engine, tmp_path: Path) -> None:
    do_import(engine, CANONICAL)
    lines = do_export(engine, NAME).decode().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith('    "encounter"'))
    broken = lines[start + 3].replace('"status": ', '"status" ', 1)  # encounter[2]
    lines[start + 3] = broken
    source = tmp_path / "broken.json"
    source.write_text("".join(lines))
    delete(engine, NAME)
    column = broken.index('"status" ') + len('"status" ') + 1
    with pytest.raises(DocumentError, match=rf"line {start + 4}, column {column} .*encounter\[2\]: expecting ':'"):
        do_import(engine, source)
    assert_empty(engine)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"schema_version": "2.0"}, r"schema_version 2\.0 is newer than this HealthSim Store reads \(1\.0\); upgrade"),
        ({"schema_version": "1.1"}, r"schema_version 1\.1 is newer"),
        ({"schema_version": "2.0", "entities": {"immunization": []}}, r"schema_version 2\.0 is newer"),
        ({"schema_version": "0.9"}, r"schema_version 0\.9 is not a version of the scenario document"),
        ({"schema_version": 1}, r"schema_version 1 .*is not a version like '1\.0'"),
        ({"schema_version": "١.٠"}, r"schema_version '١\.٠' .*is not a version like '1\.0'"),  # other digits
        ({"name": ""}, r"'name' at line 1, column \d+ .*required"),
        ({"name": None}, r"'name'.*required"),
        ({"name": 7}, r"'name'.*required, a non-empty string"),
        ({"tags": "demo"}, r"'tags'.*expected an array"),
        ({"scenario_id": "not-a-uuid"}, r"'scenario_id'.*expected a UUID"),
        ({"created_at": "yesterday"}, r"'created_at'.*expected a date-time"),
        ({"entities": []}, r"expected an object of entity type -> array in 'entities'"),
        ({"entities": {"patient": {}}}, r"expected an array in entities\.patient"),
        ({"entities": {"patients": []}}, r"plural.*legacy v1 scenario file.*migrate-legacy"),
        ({"metadata": {"name": "x"}}, r"legacy v2 workspace.*migrate-legacy"),
    ],
)
def test_bad_headers_are_refused(engine, tmp_path: Path, change: dict[str, Any], pattern: str) -> None:
    document = fixture("scenario-canonical.json")
    document.update(change)
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(document))
    with pytest.raises(DocumentError, match=pattern):
        do_import(engine, source)
    assert_empty(engine)


def test_a_document_without_schema_version_is_read_as_the_current_one(engine, tmp_path: Path) -> None:
    document = fixture("scenario-canonical.json")
    del document["schema_version"]
    source = tmp_path / "doc.json"
    source.write_text(json.dumps(document))
    do_import(engine, source)
    assert json.loads(do_export(engine, NAME))["schema_version"] == "1.0"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (b"", r"is empty"),
        (b"[]", r"expected '\{' in the document, found '\['"),
        (b'{"name": "a", "name": "b", "entities": {}}', r"the key 'name' appears twice"),
        (b'{"name": "a", "entities": {"patient": [], "patient": []}}', r"'patient' appears twice"),
        (b'{"name": "a", "entities": {}} x', r"unexpected 'x' after the end"),
        (b'{"name": "a", "entities": {}}\xff', r"byte 29 is not valid UTF-8"),
    ],
)
def test_malformed_json_is_refused(engine, text: bytes, pattern: str) -> None:
    with pytest.raises(DocumentError, match=pattern):
        do_import(engine, io.BytesIO(text))
    assert_empty(engine)


def test_the_legacy_fixtures_point_to_migrate_legacy(engine) -> None:
    with pytest.raises(DocumentError, match="legacy v1 scenario file.*healthsim migrate-legacy --from"):
        do_import(engine, FIXTURES / "legacy-v1-scenario.json")
    with pytest.raises(DocumentError, match="legacy v2 workspace.*healthsim migrate-legacy --from"):
        do_import(engine, FIXTURES / "legacy-v2-workspace.json")


def test_a_missing_file_is_a_clear_error(engine, tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match=r"cannot read .*nope\.json: No such file"):
        do_import(engine, tmp_path / "nope.json")


def test_a_failed_export_leaves_the_target_as_it_was(engine, tmp_path: Path) -> None:
    """The document goes to a temporary file that replaces the target only when complete."""
    from contextlib import contextmanager

    do_import(engine, CANONICAL)
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "scenario.json"
    target.write_text("the previous export")

    @contextmanager
    def interrupted(description: str, total: int | None):
        def advance(n: int = 1) -> None:
            raise KeyboardInterrupt

        yield advance

    with pytest.raises(KeyboardInterrupt), session_scope(engine) as session:
        export_scenario(session, NAME, target, progress=interrupted)
    assert [p.name for p in folder.iterdir()] == ["scenario.json"]
    assert target.read_text() == "the previous export"


# -- streaming ------------------------------------------------------------------------


def many_entities(patients: int) -> dict[str, Any]:
    """Patients with two encounters each, as generators (never a list in memory)."""
    return {
        "patient": (
            {
                "id": f"P-{i}",
                "mrn": f"MRN-{i}",
                "name": {"given_name": "Ada", "family_name": f"Lovelace {i}"},
                "birth_date": "1980-02-03",
                "gender": "F",
                "note": "x" * 200,
            }
            for i in range(patients)
        ),
        "encounter": (
            {
                "encounter_id": f"E-{i}-{j}",
                "patient_mrn": f"MRN-{i}",
                "class_code": "O",
                "status": "finished",
                "admission_time": f"2024-01-0{j + 1}T10:00:00Z",
            }
            for i in range(patients)
            for j in range(2)
        ),
    }


class ChunkedOnly(io.RawIOBase):
    """A file that only gives data in bounded reads; a whole-file read fails the test."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.inner = io.BytesIO(data)
        self.limit = limit
        self.reads = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def read(self, size: int = -1) -> bytes:
        assert size is not None and 0 < size <= self.limit, f"read({size}): the importer read the whole file"
        self.reads += 1
        return self.inner.read(size)

    def readall(self) -> bytes:
        raise AssertionError("the importer read the whole file")

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("unexpected readinto")


def test_a_large_scenario_streams_both_ways(duckdb_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """25,000 entities (more than one repository batch): the export is written in
    pieces, the import reads 64 KiB at a time, and the round trip is exact."""
    monkeypatch.setattr(json_stream, "CHUNK_SIZE", 64 * 1024)
    engine = create_store_engine(duckdb_url)
    try:
        with session_scope(engine) as session:
            ScenarioRepository(session).save("large", many_entities(8_334))

        class Sink(io.BytesIO):
            largest = 0

            def write(self, data: Any) -> int:
                Sink.largest = max(Sink.largest, len(data))
                return super().write(data)

        sink = Sink()
        with session_scope(engine) as session:
            summary = export_scenario(session, "large", sink)
        first = sink.getvalue()
        assert summary.entities == 25_002 and summary.bytes == len(first)
        assert Sink.largest < 2 << 20 < len(first) // 2  # written in pieces, not as one text

        delete(engine, "large")
        source = ChunkedOnly(first, 64 * 1024)
        do_import(engine, source)
        assert source.reads > 2 * len(first) // (64 * 1024)  # both passes, chunk by chunk
        assert do_export(engine, "large") == first
    finally:
        engine.dispose()


def test_reading_holds_one_chunk_and_one_entity_not_the_file() -> None:
    """Scanning and streaming a 10 MB document with 64 KiB chunks: the text
    held at once and the memory allocated stay far below the file's size."""
    entity = {"id": "x", "mrn": "m", "name": {"given_name": "Ada", "family_name": "L"}, "pad": "y" * 300}
    parts = ['{"schema_version": "1.0", "name": "big", "entities": {"patient": [\n']
    parts.append(",\n".join(json.dumps({**entity, "id": f"P-{i}"}) for i in range(28_000)))
    parts.append("\n]}}\n")
    data = "".join(parts).encode()
    assert len(data) > 10_000_000
    raw = io.BytesIO(data)
    tracemalloc.start()
    try:
        reader = json_stream.JsonReader(raw, "big.json", chunk_size=64 * 1024)
        document = _scan(reader)
        count = sum(1 for _ in _Arrays(reader).entities(document.sections["patient"]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == document.total == 28_000
    assert reader.peak_buffer < 3 * 64 * 1024
    assert peak < len(data) // 10, f"peak {peak} bytes for a {len(data)}-byte file"


def test_a_pipe_is_read_through_a_temporary_file(engine) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

        def readinto(self, buffer: Any) -> int:
            return self.inner.readinto(buffer)

    summary = do_import(engine, io.BufferedReader(Pipe(CANONICAL.read_bytes())))
    assert summary.name == NAME and sum(summary.counts.values()) == 77


def test_progress_reports_every_entity(engine) -> None:
    seen: list[tuple[str, int | None, int]] = []

    from contextlib import contextmanager

    @contextmanager
    def progress(description: str, total: int | None):
        done = [0]
        yield lambda n=1: done.__setitem__(0, done[0] + n)
        seen.append((description, total, done[0]))

    with session_scope(engine) as session:
        import_scenario(session, CANONICAL, progress=progress)
    with session_scope(engine) as session:
        export_scenario(session, NAME, io.BytesIO(), progress=progress)
    assert seen == [
        (f"Checking {CANONICAL}", None, 77),
        (f"Importing {NAME}", 77, 77),
        (f"Exporting {NAME}", 77, 77),
    ]


def test_metadata_named_like_a_document_field_is_not_exported_twice(engine) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("clash", {}, extra={"entities": "mine"})
    with pytest.raises(DocumentError, match="metadata named 'entities'.*rename"):
        do_export(engine, "clash")


def test_a_document_without_name_or_entities_is_refused(engine) -> None:
    with pytest.raises(DocumentError, match="the document has no 'name'"):
        do_import(engine, io.BytesIO(b'{"entities": {}}'))
    with pytest.raises(DocumentError, match="the document has no 'entities' object"):
        do_import(engine, io.BytesIO(b'{"name": "x"}'))
    assert_empty(engine)


def test_exporting_onto_a_folder_is_refused_before_writing(engine, tmp_path: Path) -> None:
    do_import(engine, CANONICAL)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(DocumentError, match=r"cannot write .*out: it is a folder; give a file name"):
        do_export(engine, NAME, folder)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("store")) == ["out"]


def test_metadata_named_like_an_entity_group_but_not_an_array_round_trips(engine) -> None:
    """The demo keeps "patients": 50 in its metadata; only an array makes a legacy v1 group."""
    with session_scope(engine) as session:
        ScenarioRepository(session).save("counted", {}, extra={"patients": 50, "metadata": "plain text"})
    first = do_export(engine, "counted")
    delete(engine, "counted")
    do_import(engine, io.BytesIO(first))
    assert do_export(engine, "counted") == first


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        ({"patients": [1]}, r"metadata 'patients' that an import would read as an entity group of a legacy v1"),
        ({"metadata": {"a": 1}}, r"metadata 'metadata' that an import would read as the header of a legacy v2"),
        ({"_note": "x"}, r"metadata '_note' that an import would read as an annotation"),
    ],
)
def test_metadata_an_import_would_misread_is_not_exported(engine, extra: dict[str, Any], pattern: str) -> None:
    with session_scope(engine) as session:
        ScenarioRepository(session).save("clash", {}, extra=extra)
    with pytest.raises(DocumentError, match=pattern):
        do_export(engine, "clash")


def test_entity_streams_read_interleaved_are_refused_not_mixed_up() -> None:
    """The importer's streams share one reader: one resumed after another moved it must not read the wrong array."""
    document = fixture("scenario-canonical.json")
    reader = json_stream.JsonReader(io.BytesIO(json.dumps(document).encode()), "doc.json")
    arrays = _Arrays(reader)
    sections = _scan(reader).sections
    patients = arrays.entities(sections["patient"])
    assert next(patients)["id"] == document["entities"]["patient"][0]["id"]
    assert (
        next(arrays.entities(sections["encounter"]))["encounter_id"]
        == document["entities"]["encounter"][0]["encounter_id"]
    )
    with pytest.raises(RuntimeError, match="the patient array was resumed after the encounter array moved"):
        next(patients)


# -- the reader: linear in the size of a value, exact at every chunk boundary ------------


def _read_members(reader: json_stream.JsonReader) -> dict[str, Any]:
    """A top-level object read member by member, as the importer reads a header."""
    values = {key: reader.value(key) for key, _ in reader.members("the document")}
    reader.end()
    return values


def _work(size: int, chunk: int) -> tuple[int, int]:
    """(characters copied into buffers, characters handed to the decoder) to read
    one string value of ``size`` characters in ``chunk``-byte chunks."""
    data = ('{"a": "' + "x" * size + '", "b": 1}').encode()
    reader = json_stream.JsonReader(io.BytesIO(data), "big.json", chunk_size=chunk)
    scanned = 0
    decode = reader._decode

    def counting(text: str, index: int) -> Any:
        nonlocal scanned
        scanned += len(text) - index
        return decode(text, index)

    reader._decode = counting  # type: ignore[method-assign]
    assert _read_members(reader) == {"a": "x" * size, "b": 1}
    return reader.copied, scanned


def test_reading_a_long_value_costs_time_in_proportion_to_its_size() -> None:
    """A value spanning many chunks is copied and decoded a bounded number of
    times per character: 8 times the size costs about 8 times the work (a
    rebuilt buffer per chunk, or a decode from the start per chunk, would
    cost 64 times), and never more than a few passes over the value."""
    chunk = 4096
    small, large = 256 * 1024, 2 * 1024 * 1024
    small_copied, small_scanned = _work(small, chunk)
    large_copied, large_scanned = _work(large, chunk)
    for work_small, work_large in ((small_copied, large_copied), (small_scanned, large_scanned)):
        assert work_large <= 4 * large, (work_large, large)
        assert work_large / work_small < 10, (work_small, work_large)


TRICKY = {
    "plain": "x" * 300,
    "escapes": 'quote " backslash \\ slash / newline \n tab \t ' * 20,
    "unicode": "é 中文 😀 \u2028 \ufeff " * 30,
    "controls": "".join(chr(c) for c in range(1, 32)) * 5,
    "numbers": [0, -1, 1.5, -0.25, 1e-7, 1.5e10, 12345678901234567890, 2.5e-300, 6.02e23],
    "nested": {"a": [{"b": [None, True, False, "é" * 50]}] * 5},
    "n1": 123456789.125,
    "n2": -98765432101234567,
    "n3": 1e22,
    "t": True,
    "f": False,
    "z": None,
}


def test_every_chunk_size_reads_the_same_values() -> None:
    """Values across chunk boundaries at every offset: escapes (\\n, \\u00e9,
    surrogate pairs) and multibyte UTF-8 cut anywhere, and numbers cut after
    their "." or "e", which decode on their own as a shorter number."""
    texts = [
        json.dumps(TRICKY, ensure_ascii=False),  # multibyte UTF-8 cut across chunks
        json.dumps(TRICKY, ensure_ascii=True),  # \uXXXX escapes and surrogate pairs cut across chunks
        json.dumps(TRICKY, ensure_ascii=False, indent=2),
    ]
    for text in texts:
        data = text.encode("utf-8")
        for chunk in [*range(1, 40), 63, 64, 127, 1000, 4096]:
            reader = json_stream.JsonReader(io.BytesIO(data), "doc.json", chunk_size=chunk)
            assert _read_members(reader) == TRICKY, chunk


def test_a_number_cut_after_its_point_or_exponent_reads_whole() -> None:
    for text in ("1.5", "1e10", "1.5e+10", "-2.25E-3", "123456"):
        data = ('{"n": ' + text + "}").encode()
        for chunk in range(1, len(data) + 1):
            reader = json_stream.JsonReader(io.BytesIO(data), "doc.json", chunk_size=chunk)
            assert _read_members(reader) == {"n": json.loads(text)}, (text, chunk)


def test_a_value_larger_than_the_limit_is_refused_without_reading_it_all() -> None:
    data = ('{"a": "' + "x" * 100_000 + '"}').encode()
    raw = io.BytesIO(data)
    reader = json_stream.JsonReader(raw, "big.json", chunk_size=1024, max_value_chars=10_000)
    with pytest.raises(DocumentError, match="larger than 10000 characters"):
        _read_members(reader)
    assert raw.tell() < 30_000
    assert reader.peak_buffer < 30_000
